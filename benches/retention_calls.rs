//! AWS calls of one retention run over a 100,000-image repository, counted on the SDK's own
//! requests: the registry is simulated behind the real ECR client (paginated DescribeImages
//! honouring maxResults/nextToken, BatchGetImage and BatchDeleteImage honouring their batch
//! limits), because the emulator returns every image on one page.
//!
//! `cargo bench -p archgate-benches --bench retention_calls`

use archgate::aws::{DynamoLedger, EcrRegistry, EventBridgePublisher};
use archgate::domain::oci::{OCI_INDEX, OCI_MANIFEST};
use archgate::domain::retention::RetentionPolicy;
use archgate::domain::Digest;
use archgate::retention::{apply_plan, plan_repository, Targets};
use aws_sdk_ecr::config::retry::RetryConfig;
use aws_sdk_ecr::types::{Image, ImageDetail, ImageIdentifier};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::DateTime;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

const IMAGES: usize = 100_000;
const INDEXES: usize = 10_000;
const REFERRERS: usize = 1_000;
const DAY: i64 = 24 * 3600;

struct Synthetic {
    details: Vec<ImageDetail>,
    manifests: HashMap<String, (String, String)>,
}

/// 10,000 indexes (half tagged releases, half stale) with two children each, 1,000 OCI
/// referrers, and plain images, a third of them tagged; old and young mixed.
fn synthetic(now: i64) -> Synthetic {
    let mut details = Vec::with_capacity(IMAGES);
    let mut manifests = HashMap::new();
    let digest = |kind: &str, i: usize| Digest::of(format!("{kind}-{i}").as_bytes()).to_string();
    let detail =
        |digest: &str, tags: Vec<String>, media: &str, artifact: Option<&str>, age_days: i64| {
            ImageDetail::builder()
                .image_digest(digest)
                .set_image_tags(Some(tags))
                .image_manifest_media_type(media)
                .set_artifact_media_type(artifact.map(str::to_owned))
                .image_pushed_at(DateTime::from_secs(now / 1000 - age_days * DAY))
                .image_size_in_bytes(50_000_000)
                .build()
        };
    let image_config = Some("application/vnd.oci.image.config.v1+json");
    for i in 0..INDEXES {
        let children: Vec<String> = (0..2).map(|c| digest("child", i * 2 + c)).collect();
        for child in &children {
            details.push(detail(child, vec![], OCI_MANIFEST, image_config, 30));
        }
        let body = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": children.iter().map(|c| serde_json::json!({"mediaType": OCI_MANIFEST, "digest": c, "size": 500})).collect::<Vec<_>>()})
        .to_string();
        let index = Digest::of(body.as_bytes()).to_string();
        let tags = if i % 2 == 0 {
            vec![format!("release-{i}")]
        } else {
            vec![]
        };
        details.push(detail(&index, tags, OCI_INDEX, None, 30));
        manifests.insert(index, (OCI_INDEX.to_owned(), body));
    }
    for i in 0..REFERRERS {
        let subject = details[(i * 3) % details.len()]
            .image_digest()
            .unwrap()
            .to_owned();
        let body = serde_json::json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
            "subject": {"mediaType": OCI_INDEX, "digest": subject, "size": 500}, "layers": [], "ordinal": i})
        .to_string();
        let referrer = Digest::of(body.as_bytes()).to_string();
        details.push(detail(
            &referrer,
            vec![],
            OCI_MANIFEST,
            Some("application/spdx+json"),
            30,
        ));
        manifests.insert(referrer, (OCI_MANIFEST.to_owned(), body));
    }
    let mut i = 0;
    while details.len() < IMAGES {
        let tags = if i % 3 == 0 {
            vec![format!("build-{i}")]
        } else {
            vec![]
        };
        let age = if i % 5 == 0 { 1 } else { 30 };
        details.push(detail(
            &digest("plain", i),
            tags,
            OCI_MANIFEST,
            image_config,
            age,
        ));
        i += 1;
    }
    Synthetic { details, manifests }
}

#[tokio::main]
async fn main() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let repo = Arc::new(synthetic(now));

    let pages = repo.clone();
    let describe = mock!(aws_sdk_ecr::Client::describe_images).then_compute_output(move |input| {
        let size = input.max_results().unwrap_or(100) as usize;
        let start: usize = input.next_token().and_then(|t| t.parse().ok()).unwrap_or(0);
        let end = (start + size).min(pages.details.len());
        aws_sdk_ecr::operation::describe_images::DescribeImagesOutput::builder()
            .set_image_details(Some(pages.details[start..end].to_vec()))
            .set_next_token((end < pages.details.len()).then(|| end.to_string()))
            .build()
    });
    let reads = repo.clone();
    let get = mock!(aws_sdk_ecr::Client::batch_get_image).then_compute_output(move |input| {
        assert!(
            input.image_ids().len() <= 100,
            "BatchGetImage takes at most 100 ids"
        );
        let images = input
            .image_ids()
            .iter()
            .filter_map(|id| {
                let digest = id.image_digest()?;
                let (media, body) = reads.manifests.get(digest)?;
                Some(
                    Image::builder()
                        .image_id(ImageIdentifier::builder().image_digest(digest).build())
                        .image_manifest(body)
                        .image_manifest_media_type(media)
                        .build(),
                )
            })
            .collect();
        aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput::builder()
            .set_images(Some(images))
            .build()
    });
    let delete = mock!(aws_sdk_ecr::Client::batch_delete_image).then_compute_output(|input| {
        assert!(
            input.image_ids().len() <= 100,
            "BatchDeleteImage takes at most 100 ids"
        );
        aws_sdk_ecr::operation::batch_delete_image::BatchDeleteImageOutput::builder()
            .set_image_ids(Some(input.image_ids().to_vec()))
            .build()
    });
    let ecr = mock_client!(
        aws_sdk_ecr,
        RuleMode::MatchAny,
        [&describe, &get, &delete],
        |c| c.retry_config(RetryConfig::disabled())
    );
    let scan = mock!(aws_sdk_dynamodb::Client::scan)
        .then_output(|| aws_sdk_dynamodb::operation::scan::ScanOutput::builder().build());
    let dynamodb = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&scan], |c| c
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled()));

    let inventory = EcrRegistry::new(ecr);
    let ledger = DynamoLedger::new(dynamodb, "archgate-ledger");
    let policy = RetentionPolicy {
        untagged_age_ms: 7 * DAY * 1000,
        // Half of this synthetic repository is stale; let the run go ahead.
        max_delete_share: 0.75,
        delete_orphan_referrers: false,
        force: false,
    };
    let started = Instant::now();
    let survey = plan_repository(&inventory, &ledger, "myapp", &policy, now)
        .await
        .unwrap();
    let report = apply_plan(
        &Targets {
            inventory: &inventory,
            ledger: &ledger,
            events: None::<&EventBridgePublisher>,
        },
        "myapp",
        &survey,
        false,
    )
    .await
    .unwrap();
    let (images, plan) = (&survey.images, &survey.plan);
    let elapsed = started.elapsed();

    let n = images.len();
    let read = images
        .iter()
        .filter(|i| !matches!(i.links, archgate::domain::retention::ManifestLinks::NotRead))
        .count();
    let deleted = report.deleted.len();
    let expected = (n.div_ceil(1000), read.div_ceil(100), deleted.div_ceil(100));
    let counted = (describe.num_calls(), get.num_calls(), delete.num_calls());
    println!("\n## Retention calls on a simulated 100,000-image repository\n");
    println!("| operation | items | expected calls | counted calls |");
    println!("|---|---|---|---|");
    println!(
        "| DescribeImages (1000 a page) | N = {n} | {} | {} |",
        expected.0, counted.0
    );
    println!(
        "| BatchGetImage (100 a call) | I = {read} indexes and possible referrers | {} | {} |",
        expected.1, counted.1
    );
    println!(
        "| BatchDeleteImage (100 a call) | D = {deleted} deletions | {} | {} |",
        expected.2, counted.2
    );
    println!(
        "\nkept {}, refused: {:?}, whole run (inventory + plan + delete, simulated registry) {:.0} ms",
        plan.keep.len(),
        plan.refused,
        elapsed.as_secs_f64() * 1000.0
    );
    assert_eq!(
        counted, expected,
        "calls must be exactly ceil(N/1000), ceil(I/100), ceil(D/100)"
    );
}
