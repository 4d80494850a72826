//! The release lifecycle across releases and time (DESIGN.md), on the emulator through the
//! real adapters and handlers: one test per promise the simulation checks, so each is also
//! proven against an AWS-compatible endpoint.

use archgate::config::ReconcilePolicy;
use archgate::domain::{Arch, Phase};
use archgate::ports::Clock;
use archgate_integration_tests::*;
use aws_sdk_dynamodb::types::AttributeValue;
use serde_json::Value;

const CRITICAL: LocalFinding = LocalFinding {
    id: "CVE-2024-3094",
    severity: "CRITICAL",
    package: "xz-utils",
};

const POLICY: ReconcilePolicy = ReconcilePolicy {
    stale_after_ms: 15 * 60_000,
    deadline_ms: 6 * 3_600_000,
};

fn hours_later(hours: i64) -> i64 {
    archgate::ports::SystemClock.now_millis() + hours * 3_600_000
}

/// Scans both per-arch images of a release's current attempt with these findings.
async fn scan_both(env: &local::LocalEnv, tag: &str, amd64: &[LocalFinding]) -> Vec<Value> {
    let mut answers = Vec::new();
    for (arch, findings) in [(Arch::Amd64, amd64), (Arch::Arm64, &[][..])] {
        let event = env
            .scan_arch_image(tag, arch, "COMPLETE", findings)
            .await
            .unwrap();
        answers.push(env.scan_gate(event).await);
    }
    answers
}

async fn publish(env: &local::LocalEnv, tag: &str) {
    candidate_ready(env, tag).await;
    let answers = scan_both(env, tag, &[]).await;
    assert_eq!(answers[1]["phase"], "published", "{answers:?}");
}

/// The release events published since the last call, as (detail-type, detail).
async fn events(env: &local::LocalEnv) -> Vec<(String, Value)> {
    env.release_events()
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e["detail-type"].as_str().unwrap_or("?").to_owned(),
                e["detail"].clone(),
            )
        })
        .collect()
}

fn of_type<'e>(events: &'e [(String, Value)], kind: &str) -> Vec<&'e Value> {
    events
        .iter()
        .filter(|(k, _)| k == kind)
        .map(|(_, d)| d)
        .collect()
}

#[tokio::test]
async fn reserved_names_start_nothing_and_are_announced_with_the_rule() {
    // Given a release that is building
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;
    events(&env).await;
    calls(&env);

    // When uploads arrive whose names would enter the internal, moving and cache tags
    for (key, rule) in [
        ("releases/myapp-1.4.2-amd64.zip", "internal-suffix"),
        ("releases/myapp-1.4.2-candidate.zip", "internal-suffix"),
        ("releases/latest.zip", "moving-tag"),
        ("releases/buildcache.zip", "cache-ref"),
    ] {
        let answer = env.start_builds(upload(&env, key).await).await;
        assert_eq!(status(&answer), "applied", "{key}: {answer}");
        assert_eq!(answer["phase"], "rejected", "{key}: {answer}");

        // Then no build starts, and a Release Rejected names the key, the rule and attempt 0
        assert_eq!(count(&calls(&env), "CodeBuild.StartBuild"), 0, "{key}");
        let published = events(&env).await;
        let rejected = of_type(&published, "Release Rejected");
        assert_eq!(rejected.len(), 1, "{key}: {published:?}");
        assert_eq!(rejected[0]["rule"], rule, "{key}");
        assert_eq!(rejected[0]["source"]["key"], key);
        assert_eq!(rejected[0]["attempt"], 0);
        assert!(!rejected[0]["reason"].as_str().unwrap().is_empty());
    }

    // And the building release is published with exactly its own builds' images
    for arch in Arch::ALL {
        let (event, _) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        env.build_completed(event).await;
    }
    scan_both(&env, TAG, &[]).await;
    let release = env.release(TAG).await.unwrap().unwrap().release;
    assert_eq!(release.phase(), Phase::Published);
    let children: Vec<_> = release.candidate.clone().unwrap().children;
    for child in children {
        assert_eq!(
            Some(&child.digest),
            release
                .build(archgate::domain::BuildRole::arch(child.arch))
                .image_digest
                .as_ref()
        );
    }
}

#[tokio::test]
async fn an_upload_from_another_folder_whose_name_is_taken_is_refused() {
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;
    events(&env).await;

    let answer = env
        .start_builds(upload(&env, "releases/team/myapp-1.4.2.zip").await)
        .await;

    assert_eq!(status(&answer), "applied", "{answer}");
    let published = events(&env).await;
    let rejected = of_type(&published, "Release Rejected");
    assert_eq!(rejected.len(), 1, "{published:?}");
    assert_eq!(rejected[0]["rule"], "taken");
    assert_eq!(
        rejected[0]["source"]["key"],
        "releases/team/myapp-1.4.2.zip"
    );
    assert_eq!(rejected[0]["attempt"], 1);
    let release = env.release(TAG).await.unwrap().unwrap().release;
    assert_eq!(release.source.key, KEY);
}

#[tokio::test]
async fn a_failed_release_is_built_again_by_a_new_version_as_the_next_attempt() {
    // Given a release whose amd64 build failed
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;
    let (event, _) = env
        .finish_arch_build(TAG, Arch::Amd64, "FAILED", ImageShape::Manifest)
        .await
        .unwrap();
    env.build_completed(event).await;
    assert_eq!(
        env.release(TAG).await.unwrap().unwrap().release.phase(),
        Phase::Failed
    );
    events(&env).await;
    calls(&env);

    // When a new version of the same object key is uploaded
    let answer = env.start_builds(upload(&env, KEY).await).await;

    // Then attempt 2 starts both builds, and its events say so
    assert_eq!(answer["phase"], "building", "{answer}");
    assert_eq!(count(&calls(&env), "CodeBuild.StartBuild"), 2);
    let release = env.release(TAG).await.unwrap().unwrap().release;
    assert_eq!(release.attempt, 2);
    assert_eq!(release.history.len(), 1);
    assert_eq!(release.history[0].outcome, Phase::Failed);
    let published = events(&env).await;
    let started = of_type(&published, "Release Started");
    assert_eq!(started.len(), 1, "{published:?}");
    assert_eq!(started[0]["attempt"], 2);

    // And attempt 2 goes on to be published
    for arch in Arch::ALL {
        let (event, _) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        env.build_completed(event).await;
    }
    scan_both(&env, TAG, &[]).await;
    let published = events(&env).await;
    let done = of_type(&published, "Release Published");
    assert_eq!(done.len(), 1, "{published:?}");
    assert_eq!(done[0]["attempt"], 2);
}

#[tokio::test]
async fn a_published_release_keeps_its_record_forever_and_refuses_new_versions() {
    // Given a published release
    let env = installation(ManifestMode::Native).await;
    publish(&env, TAG).await;
    let index = resolve(&env, TAG).await;
    events(&env).await;

    // Then its ledger item carries no TTL
    let item = env
        .clients
        .dynamodb
        .get_item()
        .table_name(&env.config.ledger_table)
        .key("pk", AttributeValue::S(format!("myapp#{TAG}")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert!(!item.contains_key("expires_at"), "{item:?}");

    // When a new version of its file is uploaded
    let answer = env.start_builds(upload(&env, KEY).await).await;

    // Then it is refused and announced, and the tag still names the same index
    assert_eq!(answer["phase"], "published", "{answer}");
    let published = events(&env).await;
    let rejected = of_type(&published, "Release Rejected");
    assert_eq!(rejected.len(), 1, "{published:?}");
    assert_eq!(rejected[0]["rule"], "published");
    assert_eq!(resolve(&env, TAG).await, index);
}

#[tokio::test]
async fn a_blocked_release_rests_past_the_deadline_and_a_re_evaluation_publishes_it() {
    // Given a release blocked by a critical finding
    let env = installation(ManifestMode::Native).await;
    candidate_ready(&env, TAG).await;
    let answers = scan_both(&env, TAG, &[CRITICAL]).await;
    assert_eq!(answers[1]["phase"], "blocked", "{answers:?}");
    events(&env).await;

    // When the reconciler runs long past the deadline
    let report = archgate_reconciler::handler::handle(&env.pipeline, POLICY, hours_later(30))
        .await
        .unwrap();

    // Then the release is still blocked, and no Release Failed was sent
    assert!(report.reconciled.iter().all(|r| !r.changed()), "{report:?}");
    assert_eq!(
        env.release(TAG).await.unwrap().unwrap().release.phase(),
        Phase::Blocked
    );
    assert!(of_type(&events(&env).await, "Release Failed").is_empty());

    // When the finding is accepted (an allowlist change) and an operator re-evaluates
    let allowing = local::config_with(
        ManifestMode::Native,
        &[(
            "ARCHGATE_GATE_ALLOWLIST",
            r#"[{"id": "CVE-2024-3094", "expires": "2099-12-31", "reason": "not linked into the binary"}]"#,
        )],
    );
    let evaluation = archgate::evaluate::evaluate(&env.clients.pipeline(&allowing), &env.key(TAG))
        .await
        .unwrap();

    // Then it is published
    assert_eq!(evaluation.phase, Phase::Published, "{evaluation:?}");
    assert!(resolve(&env, TAG).await.is_some());
}

#[tokio::test]
async fn latest_stays_on_the_newest_upload_when_an_older_one_is_published_later() {
    // Given two releases, the older uploaded first, both with their candidate
    let env = installation(ManifestMode::Native).await;
    let (older, newer) = ("myapp-1.0", "myapp-2.0");
    candidate_ready(&env, older).await;
    candidate_ready(&env, newer).await;

    // When the newer is published first (its scans came first)
    scan_both(&env, newer, &[]).await;
    assert_eq!(resolve(&env, "latest").await, resolve(&env, newer).await);
    events(&env).await;

    // And the older is published afterwards (a slow scan)
    scan_both(&env, older, &[]).await;

    // Then `latest` stays on the newer, and the older's Release Published says so
    assert_eq!(resolve(&env, "latest").await, resolve(&env, newer).await);
    let published = events(&env).await;
    let done = of_type(&published, "Release Published");
    assert_eq!(done.len(), 1, "{published:?}");
    assert_eq!(done[0]["tag"], older);
    assert_eq!(done[0]["tags"], serde_json::json!([older]));
}

#[tokio::test]
async fn a_critical_finding_after_publication_is_announced_and_the_release_stays() {
    // Given a published release
    let env = installation(ManifestMode::Native).await;
    publish(&env, TAG).await;
    let index = resolve(&env, TAG).await;
    events(&env).await;

    // When a rescan of its amd64 image finds a critical vulnerability, delivered twice
    let rescan = env
        .scan_arch_image(TAG, Arch::Amd64, "COMPLETE", &[CRITICAL])
        .await
        .unwrap();
    let answer = env.scan_gate(rescan.clone()).await;
    assert_eq!(status(&answer), "applied", "{answer}");
    let again = env.scan_gate(rescan).await;
    assert_eq!(status(&again), "ignored", "{again}");

    // Then one Release Vulnerable carries the findings, and the release stays published
    let published = events(&env).await;
    let vulnerable = of_type(&published, "Release Vulnerable");
    assert_eq!(vulnerable.len(), 1, "{published:?}");
    // (the emulator keeps an image's first scan's findings, so only the counts of the
    // rescan's event are here; the worst findings come with a real rescan's findings)
    let amd64 = &vulnerable[0]["scans"]["amd64"];
    assert_eq!(amd64["counts"]["CRITICAL"], 1);
    assert_eq!(amd64["verdict"], "block");
    assert!(amd64["rule"].as_str().unwrap().contains("CRITICAL"));
    assert_eq!(vulnerable[0]["attempt"], 1);
    assert_eq!(resolve(&env, TAG).await, index);
    assert_eq!(
        env.release(TAG).await.unwrap().unwrap().release.phase(),
        Phase::Published
    );
}

#[tokio::test]
async fn pushes_under_a_release_arch_tag_keep_its_record_small_and_its_images_its_own() {
    // Given a release that is building
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;

    // When someone pushes 120 other images under its amd64 tag, each scanned
    for n in 0..120 {
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": archgate::domain::Digest::of(format!("foreign {n}").as_bytes()).to_string(),
                       "size": 2},
            "layers": []
        }))
        .unwrap();
        env.clients
            .ecr
            .put_image()
            .repository_name(&env.config.repository)
            .image_tag(format!("{TAG}-amd64"))
            .image_manifest(String::from_utf8(manifest.clone()).unwrap())
            .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
            .image_digest(archgate::domain::Digest::of(&manifest).as_str())
            .send()
            .await
            .unwrap();
        let scan = env
            .scan_arch_image(TAG, Arch::Amd64, "COMPLETE", &[CRITICAL])
            .await
            .unwrap();
        let answer = env.scan_gate(scan).await;
        assert_ne!(status(&answer), "error", "{answer}");
    }

    // Then the ledger item stays small
    let item = env
        .clients
        .dynamodb
        .get_item()
        .table_name(&env.config.ledger_table)
        .key("pk", AttributeValue::S(format!("myapp#{TAG}")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let doc = item["doc"].as_s().unwrap();
    assert!(doc.len() < 16 * 1024, "{} bytes", doc.len());

    // And when its own builds finish, the index is made of the images they pushed
    let mut pushed = Vec::new();
    for arch in Arch::ALL {
        let (event, image) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        pushed.push(image.unwrap().digest);
        env.build_completed(event).await;
    }
    let release = env.release(TAG).await.unwrap().unwrap().release;
    let children: Vec<_> = release
        .candidate
        .unwrap()
        .children
        .into_iter()
        .map(|c| c.digest)
        .collect();
    assert_eq!(children, pushed);
}

#[tokio::test]
async fn a_digest_shared_by_two_releases_is_recorded_for_both_and_its_scans_reach_both() {
    // Given two releases whose builds push byte-identical images
    let env = installation(ManifestMode::Native).await;
    let tags = ["myapp-1.0", "myapp-1.0-hotfix"];
    let shared = |arch: Arch| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": archgate::domain::Digest::of(format!("same {arch}").as_bytes()).to_string(),
                       "size": 2},
            "layers": []
        }))
        .unwrap()
    };
    for tag in tags {
        env.start_builds(upload(&env, &format!("releases/{tag}.zip")).await)
            .await;
    }
    for tag in tags {
        let release = env.release(tag).await.unwrap().unwrap().release;
        for arch in Arch::ALL {
            let manifest = shared(arch);
            let digest = archgate::domain::Digest::of(&manifest);
            env.clients
                .ecr
                .put_image()
                .repository_name(&env.config.repository)
                .image_tag(format!("{tag}-{arch}"))
                .image_manifest(String::from_utf8(manifest).unwrap())
                .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                .image_digest(digest.as_str())
                .send()
                .await
                .unwrap();
            let build_id = release
                .build(archgate::domain::BuildRole::arch(arch))
                .build_id
                .clone()
                .unwrap();
            let template = match arch {
                Arch::Amd64 => archgate_testkit::builder::EventTemplate::Amd64,
                Arch::Arm64 => archgate_testkit::builder::EventTemplate::Arm64,
            };
            let project = env
                .config
                .project_for(archgate::domain::BuildRole::arch(arch))
                .unwrap();
            let environment = vec![
                ("IMAGE_REPO_NAME".to_owned(), env.config.repository.clone()),
                ("IMAGE_TAG".to_owned(), format!("{tag}-{arch}")),
                ("IMAGE_ARCH".to_owned(), arch.as_str().to_owned()),
                ("ARCHGATE_RELEASE_TAG".to_owned(), tag.to_owned()),
            ];
            let event = archgate_testkit::builder::with_exported(
                archgate_testkit::builder::state_change_event(
                    template,
                    project,
                    &build_id,
                    "SUCCEEDED",
                    &environment,
                ),
                &[("IMAGE_DIGEST".to_owned(), digest.to_string())],
            );
            let answer = env.build_completed(event).await;
            assert_ne!(status(&answer), "error", "{answer}");
        }
    }

    // Then the digest pointer of each image names both releases
    for arch in Arch::ALL {
        let digest = archgate::domain::Digest::of(&shared(arch));
        let item = env
            .clients
            .dynamodb
            .get_item()
            .table_name(&env.config.ledger_table)
            .key("pk", AttributeValue::S(format!("digest#{digest}")))
            .send()
            .await
            .unwrap()
            .item
            .unwrap();
        let mut entries = item["releases"].as_ss().unwrap().clone();
        entries.sort();
        assert_eq!(
            entries,
            tags.iter()
                .map(|t| format!("myapp#{t}#{arch}"))
                .collect::<Vec<_>>()
        );
    }

    // And one scan event per image (its tags list only one release) publishes both
    for arch in Arch::ALL {
        let digest = archgate::domain::Digest::of(&shared(arch)).to_string();
        let event = env
            .scan_image(&digest, &[format!("{}-{arch}", tags[0])], "COMPLETE", &[])
            .await
            .unwrap();
        let answer = env.scan_gate(event).await;
        assert_ne!(status(&answer), "error", "{answer}");
    }
    for tag in tags {
        assert_eq!(
            env.release(tag).await.unwrap().unwrap().release.phase(),
            Phase::Published,
            "{tag}"
        );
    }
}

#[tokio::test]
async fn an_item_that_does_not_parse_is_skipped_and_reported_and_stops_nothing() {
    // Given a release whose builds' completion events were lost, and a ledger item written by
    // another version that this one cannot read
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;
    for arch in Arch::ALL {
        env.finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
    }
    env.clients
        .dynamodb
        .put_item()
        .table_name(&env.config.ledger_table)
        .item("pk", AttributeValue::S("myapp#myapp-9.9".to_owned()))
        .item("version", AttributeValue::N("3".to_owned()))
        .item(
            "doc",
            AttributeValue::S(r#"{"schema": 7, "phases": ["next-generation"]}"#.to_owned()),
        )
        .send()
        .await
        .unwrap();

    // When the reconciler runs
    let report = archgate_reconciler::handler::handle(&env.pipeline, POLICY, hours_later(1))
        .await
        .unwrap();

    // Then the bad item is reported, and the other release moves on
    assert_eq!(report.unreadable.len(), 1, "{report:?}");
    assert_eq!(report.unreadable[0].item, "myapp#myapp-9.9");
    assert_eq!(
        env.release(TAG).await.unwrap().unwrap().release.phase(),
        Phase::CandidateReady
    );

    // And the ledger listing skips it with the reason
    let listing = env.pipeline.releases(100).await.unwrap();
    assert_eq!(listing.releases.len(), 1);
    assert_eq!(listing.unreadable.len(), 1);
}

#[tokio::test]
async fn provisioning_again_finds_every_resource_already_there() {
    for region in ["us-east-1", "eu-west-1"] {
        // Given an installation provisioned in the region (in us-east-1, S3 answers a second
        // CreateBucket of one's own bucket with success)
        let env = installation_in(ManifestMode::Native, region).await;
        assert!(env
            .provisioned
            .iter()
            .all(|r| r.state == archgate_cli::provision::Provisioned::Created));

        // When it is provisioned again
        let again = archgate_cli::provision::provision(&env.sdk, &env.config)
            .await
            .unwrap();

        // Then every resource is reported as already there
        assert_eq!(again.len(), env.provisioned.len(), "{region}");
        for resource in &again {
            assert_eq!(
                resource.state,
                archgate_cli::provision::Provisioned::Existed,
                "{region}: {resource}"
            );
        }
    }
}

#[tokio::test]
async fn the_whole_flow_works_outside_us_east_1() {
    for region in ["eu-west-1", "ap-southeast-2"] {
        // Given an installation provisioned in the region (a bucket with its location
        // constraint, ARNs and events of that region)
        let env = installation_in(ManifestMode::Native, region).await;
        assert_eq!(env.region(), region);

        // When a release goes through upload, builds, scans and retention
        publish(&env, TAG).await;
        let published = events(&env).await;

        // Then it is published with its events, in that region
        let done = of_type(&published, "Release Published");
        assert_eq!(done.len(), 1, "{region}: {published:?}");
        assert_eq!(
            done[0]["tags"],
            serde_json::json!([TAG, "latest"]),
            "{region}"
        );
        let location = env
            .s3
            .get_bucket_location()
            .bucket(&env.config.source_bucket)
            .send()
            .await
            .unwrap();
        assert_eq!(
            location.location_constraint().map(|c| c.as_str()),
            Some(region)
        );
        let report = archgate_reconciler::handler::handle(&env.pipeline, POLICY, hours_later(1))
            .await
            .unwrap();
        assert!(report.failed.is_empty(), "{region}: {report:?}");
        let retention = retention_of(&env);
        let run = archgate::retention::run(&retention, Default::default()).await;
        assert!(run.repositories[0].error.is_none(), "{region}: {run:?}");
        assert!(resolve(&env, TAG).await.is_some(), "{region}");
    }
}

/// The retention function on the installation, a week and a day from now.
fn retention_of(
    env: &local::LocalEnv,
) -> archgate::wiring::AwsRetention<archgate::ports::ShiftedClock> {
    env.clients.retention_at(
        env.retention_config(&[]),
        archgate::ports::ShiftedClock {
            offset_ms: 8 * 24 * 3_600_000,
        },
    )
}

/// Makes BatchGetImage report a per-image failure (KmsError) for one digest, as ECR does for
/// an image it cannot read right now; the emulator never does.
#[derive(Debug, Clone)]
struct UnreadableImage(String);

impl aws_sdk_ecr::config::Intercept for UnreadableImage {
    fn name(&self) -> &'static str {
        "unreadable-image"
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextMut<'_>,
        _components: &aws_sdk_ecr::config::RuntimeComponents,
        _cfg: &mut aws_sdk_ecr::config::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
        use aws_sdk_ecr::types::{ImageFailure, ImageFailureCode, ImageIdentifier};
        let Some(Ok(output)) = context.output_or_error_mut() else {
            return Ok(());
        };
        let Some(output) = output.downcast_mut::<BatchGetImageOutput>() else {
            return Ok(());
        };
        let images = output.images.take().unwrap_or_default();
        let (failed, kept): (Vec<_>, Vec<_>) = images.into_iter().partition(|image| {
            image.image_id().and_then(|id| id.image_digest()) == Some(self.0.as_str())
        });
        output.images = Some(kept);
        for _ in failed {
            output.failures.get_or_insert_with(Vec::new).push(
                ImageFailure::builder()
                    .image_id(ImageIdentifier::builder().image_digest(&self.0).build())
                    .failure_code(ImageFailureCode::KmsError)
                    .failure_reason("the key of this image cannot be used right now")
                    .build(),
            );
        }
        Ok(())
    }
}

#[tokio::test]
async fn retention_deletes_nothing_while_an_index_that_may_reference_images_cannot_be_read() {
    // Given a published release built by buildx with provenance (each arch pushed an index
    // whose platform manifest is untagged: the release's index lists untagged children), and
    // an old orphan
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;
    let mut platforms = Vec::new();
    for arch in Arch::ALL {
        let (event, pushed) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::IndexWithAttestation)
            .await
            .unwrap();
        platforms.push(pushed.unwrap().platform_digest);
        env.build_completed(event).await;
    }
    for platform in &platforms {
        let scan = env
            .scan_image(platform.as_str(), &[], "COMPLETE", &[])
            .await
            .unwrap();
        env.scan_gate(scan).await;
    }
    let release = env.release(TAG).await.unwrap().unwrap().release;
    assert_eq!(release.phase(), Phase::Published);
    let index = release.candidate.clone().unwrap().digest;
    // and whose arch tags were pushed over since: only the release's index lists its
    // platform manifests now
    for arch in Arch::ALL {
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": archgate::domain::Digest::of(format!("elsewhere {arch}").as_bytes()).to_string(),
                       "size": 2},
            "layers": []
        }))
        .unwrap();
        env.clients
            .ecr
            .put_image()
            .repository_name(&env.config.repository)
            .image_tag(format!("{TAG}-{arch}"))
            .image_manifest(String::from_utf8(manifest.clone()).unwrap())
            .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
            .image_digest(archgate::domain::Digest::of(&manifest).as_str())
            .send()
            .await
            .unwrap();
    }
    for child in &release.candidate.clone().unwrap().children {
        assert!(
            resolve_digest(&env, &child.digest).await,
            "{}",
            child.digest
        );
    }
    let orphan = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": archgate::domain::Digest::of(b"orphan").to_string(), "size": 2},
        "layers": []
    }))
    .unwrap();
    env.clients
        .ecr
        .put_image()
        .repository_name(&env.config.repository)
        .image_manifest(String::from_utf8(orphan.clone()).unwrap())
        .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
        .image_digest(archgate::domain::Digest::of(&orphan).as_str())
        .send()
        .await
        .unwrap();

    // and a hand-made index listing the same images, which the ledger does not hold (the
    // release's own index needs no read: the ledger holds it exactly as pushed)
    let children = release.candidate.clone().unwrap().children;
    let bundle = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": archgate::domain::oci::OCI_INDEX,
        "manifests": children.iter().map(|c| serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": c.digest.to_string(), "size": 2})).collect::<Vec<_>>(),
    }))
    .unwrap();
    env.clients
        .ecr
        .put_image()
        .repository_name(&env.config.repository)
        .image_tag("bundle")
        .image_manifest(String::from_utf8(bundle.clone()).unwrap())
        .image_manifest_media_type(archgate::domain::oci::OCI_INDEX)
        .image_digest(archgate::domain::Digest::of(&bundle).as_str())
        .send()
        .await
        .unwrap();
    assert_ne!(archgate::domain::Digest::of(&bundle), index);

    // When retention runs a week later and that index cannot be read
    let mut retention = retention_of(&env);
    retention.inventory = archgate::aws::EcrRegistry::new(aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::config::Builder::from(&env.sdk)
            .interceptor(UnreadableImage(
                archgate::domain::Digest::of(&bundle).to_string(),
            ))
            .build(),
    ));
    let run = archgate::retention::run(&retention, Default::default()).await;

    // Then nothing is deleted, and the report says why
    let report = &run.repositories[0];
    assert!(report.deleted.is_empty(), "{report:?}");
    assert_eq!(report.unreadable.len(), 1, "{report:?}");
    assert!(report
        .refused
        .as_deref()
        .unwrap_or_default()
        .contains("could not be read"));
    for child in &release.candidate.clone().unwrap().children {
        assert!(
            resolve_digest(&env, &child.digest).await,
            "{}",
            child.digest
        );
    }

    // And once the index reads again, the orphan goes and the children stay
    let run = archgate::retention::run(&retention_of(&env), Default::default()).await;
    let report = &run.repositories[0];
    assert_eq!(
        report.deleted,
        vec![archgate::domain::Digest::of(&orphan)],
        "{report:?}"
    );
    for child in &release.candidate.unwrap().children {
        assert!(
            resolve_digest(&env, &child.digest).await,
            "{}",
            child.digest
        );
    }
}

/// Whether the repository holds an image with this digest.
async fn resolve_digest(env: &local::LocalEnv, digest: &archgate::domain::Digest) -> bool {
    env.clients
        .ecr
        .describe_images()
        .repository_name(&env.config.repository)
        .send()
        .await
        .unwrap()
        .image_details()
        .iter()
        .any(|d| d.image_digest() == Some(digest.as_str()))
}

#[tokio::test]
async fn an_inspector_finding_on_a_published_image_is_judged_again_and_announced() {
    // Given a release published while its critical finding was allowlisted
    let env = installation(ManifestMode::Native).await;
    let allowing = local::config_with(
        ManifestMode::Native,
        &[(
            "ARCHGATE_GATE_ALLOWLIST",
            r#"[{"id": "CVE-2024-3094", "expires": "2099-12-31", "reason": "accepted for now"}]"#,
        )],
    );
    let lenient = env.clients.pipeline(&allowing);
    candidate_ready(&env, TAG).await;
    for (arch, findings) in [(Arch::Amd64, &[CRITICAL][..]), (Arch::Arm64, &[][..])] {
        let scan = env
            .scan_arch_image(TAG, arch, "COMPLETE", findings)
            .await
            .unwrap();
        archgate_testkit::routing::dispatch(&lenient, scan).await;
    }
    let release = env.release(TAG).await.unwrap().unwrap().release;
    assert_eq!(release.phase(), Phase::Published);
    events(&env).await;

    // When the allowlist entry is withdrawn and Inspector reports the finding again
    let amd64 = release.candidate.unwrap().children[0].digest.clone();
    let mut finding = sample("inspector2-finding.json");
    finding["time"] = serde_json::json!(time_now());
    finding["region"] = serde_json::json!(env.region());
    let image = &mut finding["detail"]["resources"][0]["details"]["awsEcrContainerImage"];
    image["imageHash"] = serde_json::json!(amd64.as_str());
    image["imageTags"] = serde_json::json!([format!("{TAG}-amd64")]);
    let answer = env.scan_gate(finding).await;

    // Then the image is judged on its current findings: the release stays published and the
    // finding is announced
    assert_eq!(status(&answer), "applied", "{answer}");
    let published = events(&env).await;
    let vulnerable = of_type(&published, "Release Vulnerable");
    assert_eq!(vulnerable.len(), 1, "{published:?}");
    assert_eq!(
        vulnerable[0]["scans"]["amd64"]["worst-findings"][0]["id"],
        CRITICAL.id
    );
    assert_eq!(
        env.release(TAG).await.unwrap().unwrap().release.phase(),
        Phase::Published
    );
}

fn time_now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}
