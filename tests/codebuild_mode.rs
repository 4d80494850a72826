//! Codebuild manifest mode against the emulator: the manifest project assembles the index and
//! its own completion brings the release to candidate-ready.

use archgate::domain::oci::OCI_INDEX;
use archgate::domain::{Arch, Digest, Phase};
use archgate_integration_tests::*;
use archgate_testkit::builder::{state_change_event, EventTemplate};

#[tokio::test]
async fn the_manifest_build_publishes_the_candidate() {
    // Given a release in codebuild mode whose two arch builds succeeded
    let env = installation(ManifestMode::Codebuild).await;
    env.start_builds(upload(&env, KEY).await).await;
    let mut pushed = Vec::new();
    for arch in Arch::ALL {
        let (event, image) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        pushed.push(image.unwrap());
        env.build_completed(event).await;
    }
    release_events(&env).await;

    // Then the manifest project was started (once) and the release is assembling
    let stored = env.release(TAG).await.unwrap().unwrap();
    assert_eq!(stored.release.phase(), Phase::Assembling);
    let manifest_build = stored
        .release
        .manifest
        .build_id
        .clone()
        .expect("manifest build started");

    // When the manifest build pushes the index (as `imagetools create` does) and completes
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": pushed.iter().zip(Arch::ALL).map(|(p, arch)| {
            let (architecture, variant) = arch.oci_platform();
            let mut platform = serde_json::json!({"architecture": architecture, "os": "linux"});
            if let Some(v) = variant { platform["variant"] = serde_json::json!(v); }
            serde_json::json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "digest": p.digest.as_str(), "size": 100, "platform": platform})
        }).collect::<Vec<_>>()
    }))
    .unwrap();
    env.clients
        .ecr
        .put_image()
        .repository_name("myapp")
        .image_tag(format!("{TAG}-candidate"))
        .image_manifest(String::from_utf8(index.clone()).unwrap())
        .image_manifest_media_type(OCI_INDEX)
        .image_digest(Digest::of(&index).as_str())
        .send()
        .await
        .unwrap();
    let event = state_change_event(
        EventTemplate::Manifest,
        "archgate-manifest",
        &manifest_build,
        "SUCCEEDED",
        &[
            ("IMAGE_REPO_NAME".into(), "myapp".into()),
            ("ARCHGATE_RELEASE_TAG".into(), TAG.into()),
        ],
    );
    let answer = env.build_completed(event.clone()).await;

    // Then the candidate is the index the manifest build pushed
    assert_eq!(answer["phase"], "candidate_ready", "{answer}");
    let stored = env.release(TAG).await.unwrap().unwrap();
    let candidate = stored.release.candidate.unwrap();
    assert_eq!(candidate.digest, Digest::of(&index));
    assert_eq!(candidate.children.len(), 2);
    assert_eq!(release_events(&env).await, vec!["Release Candidate Ready"]);

    // And a redelivery changes nothing
    let answer = env.build_completed(event).await;
    assert_eq!(status(&answer), "ignored", "{answer}");
}

#[tokio::test]
async fn a_failed_manifest_build_fails_the_release() {
    let env = installation(ManifestMode::Codebuild).await;
    env.start_builds(upload(&env, KEY).await).await;
    for arch in Arch::ALL {
        let (event, _) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        env.build_completed(event).await;
    }
    release_events(&env).await;
    let manifest_build = env
        .release(TAG)
        .await
        .unwrap()
        .unwrap()
        .release
        .manifest
        .build_id
        .unwrap();
    let event = state_change_event(
        EventTemplate::Manifest,
        "archgate-manifest",
        &manifest_build,
        "FAILED",
        &[
            ("IMAGE_REPO_NAME".into(), "myapp".into()),
            ("ARCHGATE_RELEASE_TAG".into(), TAG.into()),
        ],
    );
    let answer = env.build_completed(event).await;
    assert_eq!(answer["phase"], "failed", "{answer}");
    assert_eq!(release_events(&env).await, vec!["Release Failed"]);
}
