//! build-completed against the emulator: fan-in of the two arch builds, exactly one candidate
//! index, failure paths, and events that are not archgate's.

use archgate::domain::oci::OCI_INDEX;
use archgate::domain::{Arch, BuildRole, Phase};
use archgate_integration_tests::*;
use serde_json::{json, Value};

/// An installation with one release whose builds have been started.
async fn started(mode: ManifestMode) -> archgate_cli::local::LocalEnv {
    let env = installation(mode).await;
    let answer = env.start_builds(upload(&env, KEY).await).await;
    assert_eq!(status(&answer), "applied", "{answer}");
    release_events(&env).await;
    calls(&env);
    env
}

async fn finish(
    env: &archgate_cli::local::LocalEnv,
    arch: Arch,
    status: &str,
    shape: ImageShape,
) -> Value {
    env.finish_arch_build(TAG, arch, status, shape)
        .await
        .expect("local build")
        .0
}

async fn candidate_manifest(env: &archgate_cli::local::LocalEnv) -> Value {
    let out = env
        .clients
        .ecr
        .batch_get_image()
        .repository_name(&env.config.repository)
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag(format!("{TAG}-candidate"))
                .build(),
        )
        .accepted_media_types(OCI_INDEX)
        .send()
        .await
        .expect("BatchGetImage");
    let image = out.images().first().expect("the candidate index exists");
    assert_eq!(image.image_manifest_media_type(), Some(OCI_INDEX));
    serde_json::from_str(image.image_manifest().unwrap()).unwrap()
}

async fn both_orders(first: Arch) {
    // Given a started release whose builds both pushed their images
    let env = started(ManifestMode::Native).await;
    let a = finish(&env, first, "SUCCEEDED", ImageShape::Manifest).await;
    let b = finish(&env, first.sibling(), "SUCCEEDED", ImageShape::Manifest).await;
    calls(&env);

    // When the first completion arrives, only the result is recorded
    let answer = env.build_completed(a).await;
    assert_eq!(answer["phase"], "building", "{answer}");
    assert_eq!(calls(&env).values().sum::<usize>(), 2, "GetItem + PutItem");

    // When the second completion arrives, the candidate index is published
    let answer = env.build_completed(b).await;
    assert_eq!(answer["phase"], "candidate_ready", "{answer}");
    let tally = calls(&env);
    // The native manifest step: one BatchGetImage, one PutImage, one PutEvents.
    let manifest_step = count(&tally, "ECR.BatchGetImage")
        + count(&tally, "ECR.PutImage")
        + count(&tally, "EventBridge.PutEvents");
    assert_eq!(manifest_step, 3, "{tally:?}");

    // Then the index references exactly both per-arch images, by the digest of their bytes
    let stored = env.release(TAG).await.unwrap().unwrap();
    let candidate = stored
        .release
        .candidate
        .clone()
        .expect("candidate recorded");
    let index = candidate_manifest(&env).await;
    let platforms: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = candidate
        .children
        .iter()
        .map(|c| (c.arch.as_str().to_owned(), c.digest.to_string()))
        .collect();
    assert_eq!(platforms, expected);
    // As the arm64 build reported its image (`linux/arm64`: its config names no variant).
    assert_eq!(
        index["manifests"][1]["platform"],
        serde_json::json!({"architecture": "arm64", "os": "linux"})
    );
    assert_eq!(release_events(&env).await, vec!["Release Candidate Ready"]);
}

#[tokio::test]
async fn amd64_first_then_arm64_publishes_the_candidate_index() {
    both_orders(Arch::Amd64).await;
}

#[tokio::test]
async fn arm64_first_then_amd64_publishes_the_candidate_index() {
    both_orders(Arch::Arm64).await;
}

#[tokio::test]
async fn racing_completions_publish_one_index_and_one_event() {
    // Given several releases whose two builds finish at the same moment
    let env = installation(ManifestMode::Native).await;
    let tags: Vec<String> = (0..4).map(|i| format!("race-{i}")).collect();
    for tag in &tags {
        let answer = env
            .start_builds(upload(&env, &format!("releases/{tag}.zip")).await)
            .await;
        assert_eq!(status(&answer), "applied", "{answer}");
    }
    release_events(&env).await;
    for tag in &tags {
        let (a, _) = env
            .finish_arch_build(tag, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        let (b, _) = env
            .finish_arch_build(tag, Arch::Arm64, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        calls(&env);

        // When both completions (and a duplicate of each) are handled concurrently
        let (ra, rb, ra2, rb2) = tokio::join!(
            env.build_completed(a.clone()),
            env.build_completed(b.clone()),
            env.build_completed(a),
            env.build_completed(b)
        );
        for answer in [&ra, &rb, &ra2, &rb2] {
            assert_ne!(status(answer), "error", "{answer}");
        }

        // Then exactly one invocation published the index
        let tally = calls(&env);
        assert_eq!(count(&tally, "ECR.PutImage"), 1, "{tag}: {tally:?}");
        let stored = env.release(tag).await.unwrap().unwrap();
        assert_eq!(stored.release.phase(), Phase::CandidateReady, "{tag}");
        assert!(stored.release.pending.is_empty());
    }
    // And each release announced its candidate once
    let events = release_events(&env).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| *e == "Release Candidate Ready")
            .count(),
        tags.len(),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_failed_arch_fails_the_release_and_stops_its_sibling() {
    // Given a started release
    let env = started(ManifestMode::Native).await;
    let failed = finish(&env, Arch::Amd64, "FAILED", ImageShape::Manifest).await;

    // When the amd64 build fails
    let answer = env.build_completed(failed).await;

    // Then the release is Failed, the arm64 build is stopped and `Release Failed` is emitted
    assert_eq!(answer["phase"], "failed", "{answer}");
    let tally = calls(&env);
    assert_eq!(count(&tally, "CodeBuild.StopBuild"), 1, "{tally:?}");
    let stored = env.release(TAG).await.unwrap().unwrap();
    assert!(stored.release.arm64.stop_requested);
    assert!(stored
        .release
        .failure_reason()
        .unwrap()
        .contains("amd64 build"));
    assert_eq!(release_events(&env).await, vec!["Release Failed"]);

    // When the stopped sibling reports afterwards, it is recorded and nothing else happens
    let stopped = finish(&env, Arch::Arm64, "STOPPED", ImageShape::Manifest).await;
    let answer = env.build_completed(stopped).await;
    assert_eq!(status(&answer), "applied", "{answer}");
    let tally = calls(&env);
    assert_eq!(
        count(&tally, "CodeBuild.StopBuild")
            + count(&tally, "ECR.PutImage")
            + count(&tally, "EventBridge.PutEvents"),
        0
    );
    assert!(release_events(&env).await.is_empty());
}

#[tokio::test]
async fn every_failure_status_fails_the_release() {
    for status_text in ["FAULT", "STOPPED", "TIMED_OUT"] {
        let env = started(ManifestMode::Native).await;
        let event = finish(&env, Arch::Arm64, status_text, ImageShape::Manifest).await;
        let answer = env.build_completed(event).await;
        assert_eq!(answer["phase"], "failed", "{status_text}: {answer}");
        let stored = env.release(TAG).await.unwrap().unwrap();
        assert!(stored
            .release
            .failure_reason()
            .unwrap()
            .contains(status_text));
    }
}

#[tokio::test]
async fn a_buildx_index_with_attestations_contributes_its_platform_manifest() {
    // Given per-arch images pushed as buildx does with provenance: an index with an attestation
    let env = started(ManifestMode::Native).await;
    let a = finish(
        &env,
        Arch::Amd64,
        "SUCCEEDED",
        ImageShape::IndexWithAttestation,
    )
    .await;
    let b = finish(
        &env,
        Arch::Arm64,
        "SUCCEEDED",
        ImageShape::IndexWithAttestation,
    )
    .await;

    // When both completions are handled
    env.build_completed(a).await;
    let answer = env.build_completed(b).await;
    assert_eq!(answer["phase"], "candidate_ready", "{answer}");

    // Then the candidate references the platform manifests and keeps the attestations
    let index = candidate_manifest(&env).await;
    let manifests = index["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 4, "{index}");
    let attestations: Vec<&Value> = manifests
        .iter()
        .filter(|m| m["annotations"]["vnd.docker.reference.type"] == "attestation-manifest")
        .collect();
    assert_eq!(attestations.len(), 2);
    for attestation in attestations {
        let subject = attestation["annotations"]["vnd.docker.reference.digest"]
            .as_str()
            .unwrap();
        assert!(manifests
            .iter()
            .any(|m| m["digest"] == subject && m["platform"]["os"] == "linux"));
    }
}

#[tokio::test]
async fn a_success_without_an_image_is_a_retryable_error_that_a_retry_repairs() {
    // Given both builds report success but the arm64 push has not landed
    let env = started(ManifestMode::Native).await;
    let a = finish(&env, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest).await;
    env.build_completed(a).await;
    let release = env.release(TAG).await.unwrap().unwrap().release;
    let arm_build = release.build(BuildRole::Arm64).build_id.clone().unwrap();
    let event = archgate_testkit::builder::state_change_event(
        archgate_testkit::builder::EventTemplate::Arm64,
        "archgate-build-arm64",
        &arm_build,
        "SUCCEEDED",
        &[
            ("IMAGE_REPO_NAME".into(), "myapp".into()),
            ("ARCHGATE_RELEASE_TAG".into(), TAG.into()),
            ("IMAGE_ARCH".into(), "arm64".into()),
        ],
    );

    // When the completion is handled
    let answer = env.build_completed(event.clone()).await;

    // Then the invocation fails retryably, recording the result but holding no claim
    assert_eq!(status(&answer), "error", "{answer}");
    assert_eq!(answer["error_type"], "Archgate.ImageMissing");
    assert_eq!(answer["retryable"], true);
    let stored = env.release(TAG).await.unwrap().unwrap();
    assert_eq!(
        stored.release.arm64.status,
        Some(archgate::domain::BuildStatus::Succeeded)
    );
    assert!(
        stored.release.pending.is_empty(),
        "{:?}",
        stored.release.pending
    );

    // When the image lands and the event is retried, the candidate is published
    finish(&env, Arch::Arm64, "SUCCEEDED", ImageShape::Manifest).await;
    let answer = env.build_completed(event).await;
    assert_eq!(answer["phase"], "candidate_ready", "{answer}");
}

#[tokio::test]
async fn events_that_are_not_archgates_are_ignored_with_a_reason() {
    let env = started(ManifestMode::Native).await;
    let release = env.release(TAG).await.unwrap().unwrap().release;
    let amd_build = release.amd64.build_id.clone().unwrap();

    let mut unknown_release = finish(&env, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest).await;
    for var in unknown_release["detail"]["additional-information"]["environment"]
        ["environment-variables"]
        .as_array_mut()
        .unwrap()
    {
        if var["name"] == "ARCHGATE_RELEASE_TAG" {
            var["value"] = json!("never-started-1.0");
        }
    }
    let mut other_build = finish(&env, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest).await;
    other_build["detail"]["build-id"] = json!("arn:aws:codebuild:eu-west-1:123456789012:build/archgate-build-amd64:00000000-0000-0000-0000-000000000000");
    let mut other_repository = finish(&env, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest).await;
    for var in other_repository["detail"]["additional-information"]["environment"]
        ["environment-variables"]
        .as_array_mut()
        .unwrap()
    {
        if var["name"] == "IMAGE_REPO_NAME" {
            var["value"] = json!("someone/else");
        }
    }
    // A build of another attempt, one that names no attempt and is not the recorded build,
    // and one whose attempt is not a number.
    let with_var = |mut event: Value, name: &str, value: Option<&str>| {
        let vars = event["detail"]["additional-information"]["environment"]
            ["environment-variables"]
            .as_array_mut()
            .unwrap();
        vars.retain(|v| v["name"] != name);
        if let Some(value) = value {
            vars.push(json!({"name": name, "type": "PLAINTEXT", "value": value}));
        }
        event
    };
    let earlier_attempt = with_var(
        finish(&env, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest).await,
        "ARCHGATE_RELEASE_ATTEMPT",
        Some("7"),
    );
    let no_attempt = with_var(other_build.clone(), "ARCHGATE_RELEASE_ATTEMPT", None);
    let bad_attempt = with_var(
        finish(&env, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest).await,
        "ARCHGATE_RELEASE_ATTEMPT",
        Some("first"),
    );
    let mut unknown_status = finish(&env, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest).await;
    unknown_status["detail"]["build-status"] = json!("EXPLODED");
    let mut missing_status = finish(&env, Arch::Amd64, "SUCCEEDED", ImageShape::Manifest).await;
    missing_status["detail"]
        .as_object_mut()
        .unwrap()
        .remove("build-status");

    let cases = [
        (
            sample("codebuild-other-project.json"),
            "not one of archgate's",
        ),
        (
            sample("codebuild-amd64-in-progress.json"),
            "not a final status",
        ),
        (
            sample("codebuild-manifest-succeeded.json"),
            "not used in native manifest mode",
        ),
        (unknown_release, "not started by archgate"),
        (other_build, "is not the amd64 build archgate recorded"),
        (earlier_attempt, "was started by attempt 7"),
        (no_attempt, "names no attempt"),
        (bad_attempt, "not an attempt number"),
        (other_repository, "is for repository `someone/else`"),
        (unknown_status, "unknown build status `EXPLODED`"),
        (missing_status, "detail.build-status is missing"),
        (
            sample("s3-object-created.json"),
            "not a CodeBuild Build State Change",
        ),
    ];
    calls(&env);
    for (event, expected) in cases {
        let answer = archgate_build_completed::handler::handle(&env.pipeline, event)
            .await
            .expect("handled");
        let answer = serde_json::to_value(answer).unwrap();
        assert_eq!(status(&answer), "ignored", "{expected}: {answer}");
        assert!(
            answer["reason"].as_str().unwrap().contains(expected),
            "{expected}: {answer}"
        );
    }
    // Only the ledger was read; nothing was written, started, stopped, pushed or emitted
    let tally = calls(&env);
    assert!(tally.keys().all(|op| op == "DynamoDB.GetItem"), "{tally:?}");
    assert_eq!(env.release(TAG).await.unwrap().unwrap().release, release);
    assert!(!amd_build.is_empty());
}

#[tokio::test]
async fn an_event_without_environment_falls_back_to_batch_get_builds() {
    // Given a completion event that carries no environment variables
    let env = started(ManifestMode::Native).await;
    calls(&env);

    // When build-completed handles it
    let answer = env
        .build_completed(sample("codebuild-amd64-no-env.json"))
        .await;

    // Then CodeBuild is asked about the build; the emulator does not know it, so it is ignored
    let tally = calls(&env);
    assert_eq!(count(&tally, "CodeBuild.BatchGetBuilds"), 1, "{tally:?}");
    assert_eq!(status(&answer), "ignored", "{answer}");
}

#[tokio::test]
async fn a_malformed_event_is_a_typed_error() {
    let env = installation(ManifestMode::Native).await;
    let answer = env.build_completed(json!({"source": "aws.codebuild", "detail-type": "CodeBuild Build State Change", "detail": "not an object"})).await;
    assert_eq!(status(&answer), "error", "{answer}");
    assert_eq!(answer["error_type"], "Archgate.MalformedEvent");
}
