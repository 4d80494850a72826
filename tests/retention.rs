//! Retention cleanup against the emulator: a repository with multi-arch indexes (with and
//! without attestations), cosign signatures, OCI referrers, old and young orphans and an
//! in-flight release loses exactly its unreferenced old untagged images.

use archgate::aws::{DynamoLedger, EcrRegistry, EventBridgePublisher};
use archgate::domain::oci::{OCI_INDEX, OCI_MANIFEST};
use archgate::domain::release::{Candidate, CandidateChild};
use archgate::domain::retention::{KeepReason, RetentionPolicy};
use archgate::domain::{Arch, Digest, ManifestMode, Release, ReleaseKey, ReleaseTag, SourceObject};
use archgate::ports::{Clock, Ledger, SystemClock};
use archgate::retention::{apply_plan, plan_repository, Targets};
use archgate_integration_tests::*;
use serde_json::json;
use std::collections::BTreeSet;
use std::time::Duration;

struct Repo<'a> {
    ecr: &'a aws_sdk_ecr::Client,
    name: String,
}

impl Repo<'_> {
    async fn put(&self, body: serde_json::Value, media_type: &str, tag: Option<&str>) -> Digest {
        let bytes = serde_json::to_vec(&body).unwrap();
        let digest = Digest::of(&bytes);
        self.ecr
            .put_image()
            .repository_name(&self.name)
            .image_manifest(String::from_utf8(bytes).unwrap())
            .image_manifest_media_type(media_type)
            .image_digest(digest.as_str())
            .set_image_tag(tag.map(str::to_owned))
            .send()
            .await
            .unwrap_or_else(|e| panic!("PutImage: {:?}", aws_sdk_ecr::Error::from(e)));
        digest
    }

    /// A single-platform image manifest, unique by `seed`.
    async fn image(&self, seed: &str, tag: Option<&str>) -> Digest {
        let config = Digest::of(seed.as_bytes());
        self.put(
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config.as_str(), "size": 10},
                   "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": Digest::of(format!("{seed}-layer").as_bytes()).as_str(), "size": 100}]}),
            OCI_MANIFEST,
            tag,
        )
        .await
    }

    async fn index(&self, children: &[(Digest, &str)], tag: Option<&str>) -> Digest {
        let manifests: Vec<serde_json::Value> = children
            .iter()
            .map(|(digest, arch)| {
                if *arch == "attestation" {
                    json!({"mediaType": OCI_MANIFEST, "digest": digest.as_str(), "size": 100,
                           "platform": {"architecture": "unknown", "os": "unknown"},
                           "annotations": {"vnd.docker.reference.type": "attestation-manifest"}})
                } else {
                    json!({"mediaType": OCI_MANIFEST, "digest": digest.as_str(), "size": 100,
                           "platform": {"architecture": arch, "os": "linux"}})
                }
            })
            .collect();
        self.put(
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
            OCI_INDEX,
            tag,
        )
        .await
    }

    /// An OCI 1.1 referrer (e.g. an SBOM) of `subject`.
    async fn referrer(&self, subject: &Digest, seed: &str) -> Digest {
        self.put(
            json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/spdx+json",
                   "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": Digest::of(b"{}").as_str(), "size": 2},
                   "layers": [{"mediaType": "application/spdx+json", "digest": Digest::of(seed.as_bytes()).as_str(), "size": 10}],
                   "subject": {"mediaType": OCI_INDEX, "digest": subject.as_str(), "size": 100}}),
            OCI_MANIFEST,
            None,
        )
        .await
    }
}

#[tokio::test]
async fn the_cleanup_deletes_exactly_the_unreferenced_old_untagged_images() {
    let env = installation(ManifestMode::Native).await;
    let repo = Repo {
        ecr: &env.clients.ecr,
        name: env.config.repository.clone(),
    };

    // Given — pushed first, so "old" under a 2-second age:
    // a tagged multi-arch index with untagged children
    let (a_amd, a_arm) = (
        repo.image("a-amd64", None).await,
        repo.image("a-arm64", None).await,
    );
    let release_a = repo
        .index(
            &[(a_amd.clone(), "amd64"), (a_arm.clone(), "arm64")],
            Some("app-1.0"),
        )
        .await;
    // a tagged index with attestation manifests
    let (b_amd, b_att) = (
        repo.image("b-amd64", None).await,
        repo.image("b-attestation", None).await,
    );
    let release_b = repo
        .index(
            &[(b_amd.clone(), "amd64"), (b_att.clone(), "attestation")],
            Some("app-1.1"),
        )
        .await;
    // a cosign signature of release A (tagged) and an untagged OCI referrer (SBOM) of release B
    let signature = repo
        .image(
            "a-signature",
            Some(&format!("sha256-{}.sig", release_a.hex())),
        )
        .await;
    let sbom = repo.referrer(&release_b, "b-sbom").await;
    // old orphans, and an old untagged index whose children nothing else references
    let orphans = [
        repo.image("orphan-1", None).await,
        repo.image("orphan-2", None).await,
    ];
    let (c_amd, c_arm) = (
        repo.image("c-amd64", None).await,
        repo.image("c-arm64", None).await,
    );
    let stale_index = repo
        .index(&[(c_amd.clone(), "amd64"), (c_arm.clone(), "arm64")], None)
        .await;
    // an in-flight release in the ledger whose candidate references untagged images
    let (f_amd, f_arm) = (
        repo.image("f-amd64", None).await,
        repo.image("f-arm64", None).await,
    );
    let flying_index = repo
        .index(&[(f_amd.clone(), "amd64"), (f_arm.clone(), "arm64")], None)
        .await;
    let ledger = DynamoLedger::new(env.clients.dynamodb.clone(), &env.config.ledger_table);
    let mut flying = Release::new(
        ReleaseKey::new(
            env.config.repository.clone(),
            ReleaseTag::parse("app-2.0").unwrap(),
        ),
        SourceObject {
            bucket: env.config.source_bucket.clone(),
            key: "releases/app-2.0.zip".into(),
            version_id: Some("v1".into()),
            etag: None,
            size: None,
            uploaded_at: None,
            sequencer: None,
        },
        ManifestMode::Native,
        SystemClock.now_millis(),
    );
    flying.candidate = Some(Candidate {
        tag: "app-2.0-candidate".into(),
        digest: flying_index.clone(),
        children: vec![
            CandidateChild {
                arch: Arch::Amd64,
                digest: f_amd.clone(),
            },
            CandidateChild {
                arch: Arch::Arm64,
                digest: f_arm.clone(),
            },
        ],
        manifest: None,
        media_type: None,
    });
    ledger.save(&flying, None).await.unwrap();
    // ... and young orphans, pushed after the age boundary
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let young = repo.image("young-orphan", None).await;

    // When the cleanup plans and applies with a 2-second retention age
    let policy = RetentionPolicy {
        untagged_age_ms: 2000,
        max_delete_share: 0.9,
        delete_orphan_referrers: false,
        force: false,
    };
    let inventory = EcrRegistry::new(env.clients.ecr.clone());
    let survey = plan_repository(
        &inventory,
        &ledger,
        &repo.name,
        &policy,
        SystemClock.now_millis(),
    )
    .await
    .unwrap();
    let report = apply_plan(
        &Targets {
            inventory: &inventory,
            ledger: &ledger,
            events: None::<&EventBridgePublisher>,
        },
        &repo.name,
        &survey,
        false,
    )
    .await
    .unwrap();
    let (images, plan) = (&survey.images, &survey.plan);

    // Then exactly the orphans and the stale index with its children are deleted
    let deleted: BTreeSet<Digest> = report.deleted.iter().cloned().collect();
    let expected: BTreeSet<Digest> = orphans
        .iter()
        .cloned()
        .chain([stale_index.clone(), c_amd.clone(), c_arm.clone()])
        .collect();
    assert_eq!(
        deleted,
        expected,
        "failed: {:?}, refused {:?}, orphan kept as {:?}, images {:?}",
        report.failed,
        plan.refused,
        plan.keep.get(&orphans[0]),
        images.iter().find(|i| i.digest == orphans[0])
    );
    assert!(report.failed.is_empty());
    // the stale index went before its children
    let order: Vec<&Digest> = plan.delete.iter().map(|d| &d.digest).collect();
    let position = |d: &Digest| order.iter().position(|o| *o == d).unwrap();
    assert!(position(&stale_index) < position(&c_amd) && position(&stale_index) < position(&c_arm));
    // every kept image carries its reason
    assert_eq!(plan.keep[&a_amd], KeepReason::ChildOf(release_a.clone()));
    assert_eq!(plan.keep[&b_att], KeepReason::ChildOf(release_b.clone()));
    assert_eq!(plan.keep[&sbom], KeepReason::ReferrerOf(release_b.clone()));
    assert_eq!(plan.keep[&signature], KeepReason::Tagged);
    assert_eq!(plan.keep[&young], KeepReason::Young);
    assert_eq!(plan.keep[&flying_index], KeepReason::InFlight);
    assert_eq!(plan.keep[&f_amd], KeepReason::InFlight);
    // and both multi-arch releases still resolve for both platforms
    for (tag, children) in [
        ("app-1.0", vec![a_amd, a_arm]),
        ("app-1.1", vec![b_amd, b_att]),
    ] {
        assert!(resolve(&env, tag).await.is_some(), "{tag}");
        for child in children {
            let found = env
                .clients
                .ecr
                .batch_get_image()
                .repository_name(&repo.name)
                .image_ids(
                    aws_sdk_ecr::types::ImageIdentifier::builder()
                        .image_digest(child.as_str())
                        .build(),
                )
                .send()
                .await
                .unwrap();
            assert_eq!(found.images().len(), 1, "{tag} lost {child}");
        }
    }
}

#[tokio::test]
async fn the_safety_valve_deletes_nothing_and_says_so() {
    let env = installation(ManifestMode::Native).await;
    let repo = Repo {
        ecr: &env.clients.ecr,
        name: env.config.repository.clone(),
    };
    repo.image("kept", Some("app-1.0")).await;
    for i in 0..3 {
        repo.image(&format!("orphan-{i}"), None).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ledger = DynamoLedger::new(env.clients.dynamodb.clone(), &env.config.ledger_table);
    let inventory = EcrRegistry::new(env.clients.ecr.clone());
    let mut policy = RetentionPolicy {
        untagged_age_ms: 1000,
        max_delete_share: 0.5,
        delete_orphan_referrers: false,
        force: false,
    };

    // When 3 of 4 images would go with a 50% valve
    let survey = plan_repository(
        &inventory,
        &ledger,
        &repo.name,
        &policy,
        SystemClock.now_millis(),
    )
    .await
    .unwrap();
    let report = apply_plan(
        &Targets {
            inventory: &inventory,
            ledger: &ledger,
            events: None::<&EventBridgePublisher>,
        },
        &repo.name,
        &survey,
        false,
    )
    .await
    .unwrap();

    // Then nothing is deleted and the report says why
    assert!(report.deleted.is_empty());
    assert!(
        report
            .refused
            .as_deref()
            .unwrap_or_default()
            .contains("50.0%"),
        "{:?}",
        report.refused
    );
    assert_eq!(inventory_size(&env).await, 4);

    // When forced, they go
    policy.force = true;
    let survey = plan_repository(
        &inventory,
        &ledger,
        &repo.name,
        &policy,
        SystemClock.now_millis(),
    )
    .await
    .unwrap();
    let report = apply_plan(
        &Targets {
            inventory: &inventory,
            ledger: &ledger,
            events: None::<&EventBridgePublisher>,
        },
        &repo.name,
        &survey,
        false,
    )
    .await
    .unwrap();
    assert_eq!(report.deleted.len(), 3);
    assert_eq!(inventory_size(&env).await, 1);
}

async fn inventory_size(env: &archgate_cli::local::LocalEnv) -> usize {
    env.clients
        .ecr
        .describe_images()
        .repository_name(&env.config.repository)
        .send()
        .await
        .unwrap()
        .image_details()
        .len()
}
