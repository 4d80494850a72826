//! Retention's untagged cleanup on the emulator against a naive baseline, in the same run, on
//! two identical 8,000-image repositories: 1,500 published releases in the ledger (a tagged
//! index and two children pushed by digest, untagged: 4,500 images that must stay), 500
//! stale untagged indexes with two children each and 2,000 stale untagged images (3,500
//! that may go).
//!
//! - naive: DescribeImages, then BatchDeleteImage of every untagged image, 100 at a time, one
//!   call after the other; it reads no manifest, so it also destroys the releases' children.
//! - archgate: the whole run (inventory, the manifests that can reference others read in
//!   concurrent batches, ledger, plan, deletions in concurrent batches wave by wave).
//!
//! `cargo bench -p archgate-cli --bench retention_emulator` (or `./dev bench`).

use archgate::aws::{DynamoLedger, EcrRegistry, EventBridgePublisher};
use archgate::domain::oci::{DOCKER_MANIFEST, OCI_INDEX};
use archgate::domain::release::{Candidate, CandidateChild, EventKind, Publication};
use archgate::domain::retention::{ReleasePolicy, RetentionPolicy};
use archgate::domain::{
    Arch, BuildStatus, Digest, ManifestMode, Millis, Release, ReleaseKey, ReleaseTag, SourceObject,
};
use archgate::ports::Ledger;
use archgate::ports::{Clock, SystemClock};
use archgate::retention::{apply_plan, survey_repository, Rules, Targets};
use archgate_cli::local::{default_config, LocalEnv};
use aws_sdk_ecr::types::ImageIdentifier;
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

const RELEASES: usize = 1_500;
const STALE_INDEXES: usize = 500;
const STRAYS: usize = 2_000;
const DAY: Millis = 86_400_000;

struct Image {
    tag: Option<String>,
    /// The children of an index.
    children: Vec<Digest>,
    media_type: &'static str,
    body: String,
}

fn child(name: &str) -> Image {
    let body = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "digest": Digest::of(format!("config {name}").as_bytes()).to_string(), "size": 512},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "digest": Digest::of(format!("layer {name}").as_bytes()).to_string(), "size": 4096}],
    })
    .to_string();
    Image {
        tag: None,
        children: Vec::new(),
        media_type: DOCKER_MANIFEST,
        body,
    }
}

fn index(children: &[&Image], tag: Option<String>) -> Image {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .zip(["amd64", "arm64"])
        .map(|(c, arch)| {
            serde_json::json!({"mediaType": c.media_type, "digest": Digest::of(c.body.as_bytes()).to_string(),
                               "size": c.body.len(), "platform": {"os": "linux", "architecture": arch}})
        })
        .collect();
    let body =
        serde_json::json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
            .to_string();
    Image {
        tag,
        children: children
            .iter()
            .map(|c| Digest::of(c.body.as_bytes()))
            .collect(),
        media_type: OCI_INDEX,
        body,
    }
}

/// The ledger record of a published release whose index is `index`.
fn published(repository: &str, index: &Image, now: Millis) -> Release {
    let tag = ReleaseTag::parse(index.tag.as_deref().expect("a release index is tagged"))
        .expect("a valid tag");
    let source = SourceObject {
        bucket: "sources".into(),
        key: format!("releases/{tag}.zip"),
        version_id: Some("1".into()),
        etag: None,
        size: None,
        uploaded_at: Some(now),
        sequencer: None,
    };
    let mut release = Release::new(
        ReleaseKey::new(repository, tag.clone()),
        source,
        ManifestMode::Native,
        now,
    );
    for (arch, child) in Arch::ALL.iter().zip(&index.children) {
        let build = match arch {
            Arch::Amd64 => &mut release.amd64,
            Arch::Arm64 => &mut release.arm64,
        };
        build.build_id = Some(format!("{tag}-{arch}:1"));
        build.status = Some(BuildStatus::Succeeded);
        build.image_digest = Some(child.clone());
    }
    release.candidate = Some(Candidate {
        tag: tag.candidate_tag(),
        digest: Digest::of(index.body.as_bytes()),
        children: Arch::ALL
            .iter()
            .zip(&index.children)
            .map(|(arch, digest)| CandidateChild {
                arch: *arch,
                digest: digest.clone(),
            })
            .collect(),
        manifest: Some(index.body.clone()),
        media_type: Some(OCI_INDEX.to_owned()),
    });
    release.published = Some(Publication {
        tags: vec![tag.to_string()],
        at: now,
    });
    release.emitted = vec![
        EventKind::Started,
        EventKind::CandidateReady,
        EventKind::Published,
    ];
    release
}

/// The repository's images, children before their index; and the digests that must stay.
fn repository() -> (Vec<Image>, HashSet<String>) {
    let mut images = Vec::new();
    let mut needed = HashSet::new();
    for n in 0..RELEASES + STALE_INDEXES {
        let (a, b) = (child(&format!("{n} amd64")), child(&format!("{n} arm64")));
        let tag = (n < RELEASES).then(|| format!("release-{n}"));
        let top = index(&[&a, &b], tag);
        if n < RELEASES {
            for image in [&a, &b, &top] {
                needed.insert(Digest::of(image.body.as_bytes()).to_string());
            }
        }
        images.extend([a, b, top]);
    }
    images.extend((0..STRAYS).map(|n| child(&format!("stray {n}"))));
    (images, needed)
}

async fn fill(ecr: &aws_sdk_ecr::Client, name: &str, images: &[Image]) {
    ecr.create_repository()
        .repository_name(name)
        .send()
        .await
        .expect("the repository is created");
    // Children first, 16 pushes at a time.
    for chunk in images.chunks(16) {
        let mut pushes = JoinSet::new();
        for image in chunk {
            let request = ecr
                .put_image()
                .repository_name(name)
                .set_image_tag(image.tag.clone())
                .image_manifest(&image.body)
                .image_manifest_media_type(image.media_type)
                .image_digest(Digest::of(image.body.as_bytes()).as_str());
            pushes.spawn(async move { request.send().await.map(|_| ()) });
        }
        while let Some(pushed) = pushes.join_next().await {
            pushed.expect("the push ran").expect("the image is pushed");
        }
    }
}

/// Every image digest of a repository.
async fn digests(ecr: &aws_sdk_ecr::Client, name: &str) -> HashSet<String> {
    let mut all = HashSet::new();
    let mut pages = ecr
        .describe_images()
        .repository_name(name)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.expect("DescribeImages answers");
        all.extend(
            page.image_details()
                .iter()
                .filter_map(|d| d.image_digest().map(str::to_owned)),
        );
    }
    all
}

/// DescribeImages then BatchDeleteImage of every untagged image, sequentially.
async fn naive(ecr: &aws_sdk_ecr::Client, name: &str) -> (Duration, usize) {
    let started = Instant::now();
    let mut untagged = Vec::new();
    let mut calls = 0;
    let mut pages = ecr
        .describe_images()
        .repository_name(name)
        .max_results(1000)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        calls += 1;
        let page = page.expect("DescribeImages answers");
        for detail in page.image_details() {
            if detail.image_tags().is_empty() {
                untagged.extend(detail.image_digest().map(str::to_owned));
            }
        }
    }
    for batch in untagged.chunks(100) {
        calls += 1;
        let ids = batch
            .iter()
            .map(|d| ImageIdentifier::builder().image_digest(d).build())
            .collect();
        ecr.batch_delete_image()
            .repository_name(name)
            .set_image_ids(Some(ids))
            .send()
            .await
            .expect("BatchDeleteImage answers");
    }
    (started.elapsed(), calls)
}

#[tokio::main]
async fn main() {
    let env = LocalEnv::start(default_config(ManifestMode::Native))
        .await
        .expect("the emulator is required");
    let ecr = &env.clients.ecr;
    let (images, needed) = repository();
    let filling = Instant::now();
    fill(ecr, "bench-naive", &images).await;
    fill(ecr, "bench-archgate", &images).await;
    let ledger = DynamoLedger::new(env.clients.dynamodb.clone(), &env.config.ledger_table);
    let pushed = SystemClock.now_millis();
    for index in images.iter().filter(|i| i.tag.is_some()) {
        ledger
            .save(&published("bench-archgate", index, pushed), None)
            .await
            .expect("the release is recorded");
    }
    let filled = filling.elapsed();

    let (naive_time, naive_calls) = naive(ecr, "bench-naive").await;
    let left = digests(ecr, "bench-naive").await;
    let naive_deleted = images.len() - left.len();
    let destroyed = needed.iter().filter(|d| !left.contains(*d)).count();

    // Everything was pushed moments ago: plan a month later so all of it is old.
    let now = SystemClock.now_millis() + 30 * DAY;
    let rules = Rules {
        images: RetentionPolicy {
            untagged_age_ms: 7 * DAY,
            max_delete_share: 0.5,
            delete_orphan_referrers: false,
            force: false,
        },
        releases: ReleasePolicy::default(),
    };
    let inventory = EcrRegistry::new(ecr.clone());
    // Where a run's time goes on the emulator: each read alone, once, before the run.
    let part = Instant::now();
    let listed = archgate::ports::RepositoryInventory::list_images(&inventory, "bench-archgate")
        .await
        .expect("DescribeImages answers");
    let describe = part.elapsed();
    let part = Instant::now();
    ledger.list(usize::MAX).await.expect("the ledger answers");
    let scan = part.elapsed();
    let stale: Vec<Digest> = listed
        .iter()
        .filter(|i| i.tags.is_empty() && i.media_type.as_deref() == Some(OCI_INDEX))
        .map(|i| i.digest.clone())
        .collect();
    let part = Instant::now();
    archgate::ports::RepositoryInventory::manifests_by_digest(
        &inventory,
        "bench-archgate",
        &stale[..100],
    )
    .await
    .expect("BatchGetImage answers");
    let one_read = part.elapsed();
    let started = Instant::now();
    let survey = survey_repository(&inventory, &ledger, "bench-archgate", &rules, &[], now)
        .await
        .expect("the survey runs");
    let surveyed = started.elapsed();
    let report = apply_plan(
        &Targets {
            inventory: &inventory,
            ledger: &ledger,
            events: None::<&EventBridgePublisher>,
        },
        "bench-archgate",
        &survey,
        false,
    )
    .await
    .expect("the cleanup runs");
    let archgate_time = started.elapsed();
    let left = digests(ecr, "bench-archgate").await;
    let lost = needed.iter().filter(|d| !left.contains(*d)).count();
    let read = survey.manifests_read;

    let s = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    println!(
        "## Untagged cleanup on the emulator ({} images, {} of them needed by releases)",
        images.len(),
        needed.len()
    );
    println!();
    println!("| | naive baseline | archgate |");
    println!("|---|---|---|");
    println!("| whole run | {} | {} |", s(naive_time), s(archgate_time));
    println!(
        "| of which survey (inventory, manifest reads, ledger, plan) | – | {} |",
        s(surveyed)
    );
    println!(
        "| parts, each alone: DescribeImages (all pages) / ledger Scan / one BatchGetImage of 100 | – | {} / {} / {} |",
        s(describe),
        s(scan),
        s(one_read)
    );
    println!(
        "| manifests read | 0 | {read} (indexes the ledger does not hold; images that cannot reference others are not read) |"
    );
    println!(
        "| images deleted | {naive_deleted} | {} |",
        images.len() - left.len()
    );
    println!("| images releases needed, deleted | {destroyed} | {lost} |");
    println!("| AWS calls | {naive_calls} | {} |", report.aws_calls);
    println!();
    println!(
        "(Filling the two repositories took {}; moto answers DescribeImages in one page.)",
        s(filled)
    );
    assert_eq!(lost, 0, "archgate deleted images releases need");
}
