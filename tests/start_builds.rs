//! start-builds against the emulator: an upload creates the release, starts both arch builds
//! once, records them and announces the release.

use archgate::domain::{BuildRole, Phase};
use archgate_integration_tests::*;
use serde_json::json;

#[tokio::test]
async fn an_upload_creates_the_release_and_starts_both_arch_builds() {
    // Given a provisioned installation and an uploaded build context
    let env = installation(ManifestMode::Native).await;
    let event = upload(&env, KEY).await;
    calls(&env);

    // When start-builds handles the S3 event
    let answer = env.start_builds(event).await;

    // Then both builds start, the release is recorded with their ids, and it is announced
    assert_eq!(status(&answer), "applied", "{answer}");
    let tally = calls(&env);
    assert_eq!(count(&tally, "CodeBuild.StartBuild"), 2, "{tally:?}");
    let total: usize = tally.values().sum();
    // (two StartBuilds, the release created and recorded, the event, and the repository's
    // policy: its own moving tags are reserved names)
    assert!(
        total <= 6,
        "start-builds budget is 6 AWS calls, made {total}: {tally:?}"
    );
    let stored = env
        .release(TAG)
        .await
        .unwrap()
        .expect("release in the ledger");
    assert_eq!(stored.release.phase(), Phase::Building);
    for role in [BuildRole::Amd64, BuildRole::Arm64] {
        let id = stored
            .release
            .build(role)
            .build_id
            .clone()
            .expect("build id recorded");
        assert!(id.starts_with(&format!("archgate-build-{role}:")), "{id}");
    }
    assert!(
        stored.release.source.version_id.is_some(),
        "the object version is recorded"
    );
    assert!(stored.release.pending.is_empty(), "no claim left behind");
    assert_eq!(release_events(&env).await, vec!["Release Started"]);
}

#[tokio::test]
async fn a_second_delivery_of_the_same_upload_starts_nothing() {
    // Given a release already started from an upload
    let env = installation(ManifestMode::Native).await;
    let event = upload(&env, KEY).await;
    env.start_builds(event.clone()).await;
    let before = env.release(TAG).await.unwrap().unwrap();
    release_events(&env).await;
    calls(&env);

    // When the same event is delivered again
    let answer = env.start_builds(event).await;

    // Then it is ignored as a duplicate: no build, no event, no change
    assert_eq!(status(&answer), "ignored", "{answer}");
    assert!(
        answer["reason"].as_str().unwrap().contains("duplicate"),
        "{answer}"
    );
    let tally = calls(&env);
    assert_eq!(count(&tally, "CodeBuild.StartBuild"), 0, "{tally:?}");
    assert_eq!(env.release(TAG).await.unwrap().unwrap(), before);
    assert!(release_events(&env).await.is_empty());
}

#[tokio::test]
async fn a_new_version_while_the_release_is_building_is_refused_and_announced() {
    // Given a release started from one version of the file
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;
    release_events(&env).await;
    calls(&env);

    // When the same key is uploaded again (a new object version) while it builds
    let second = upload(&env, KEY).await;
    let version = second["detail"]["object"]["version-id"].clone();
    let answer = env.start_builds(second).await;

    // Then nothing starts: the refusal is recorded and announced with the rule and attempt
    assert_eq!(status(&answer), "applied", "{answer}");
    assert_eq!(count(&calls(&env), "CodeBuild.StartBuild"), 0);
    let events = env.release_events().await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let detail = &events[0]["detail"];
    assert_eq!(events[0]["detail-type"], "Release Rejected");
    assert_eq!(detail["rule"], "in-flight", "{detail}");
    assert_eq!(detail["attempt"], 1, "{detail}");
    assert_eq!(detail["source"]["key"], KEY);
    assert_eq!(detail["source"]["version-id"], version);
    assert!(
        detail["reason"]
            .as_str()
            .unwrap()
            .contains("attempt 1 is still building"),
        "{detail}"
    );
    let release = env.release(TAG).await.unwrap().unwrap().release;
    assert_eq!(release.attempt, 1);
    assert_eq!(release.notices.len(), 1);
}

#[tokio::test]
async fn uploads_outside_the_contract_are_ignored_with_a_reason_and_no_effect() {
    // Given an installation and the real-shaped samples of uploads archgate must not build
    let env = installation(ManifestMode::Native).await;
    let cases = [
        (
            "s3-object-created-other-bucket.json",
            "not the source bucket",
        ),
        (
            "s3-object-created-other-prefix.json",
            "not under the prefix",
        ),
        ("s3-object-created-not-zip.json", "not a .zip"),
        ("s3-object-created-empty-stem.json", "no usable tag"),
    ];
    for (file, expected) in cases {
        calls(&env);
        // When start-builds handles it
        let answer = env.start_builds(sample(file)).await;
        // Then it is ignored with the reason, and no AWS call was made
        assert_eq!(status(&answer), "ignored", "{file}: {answer}");
        let reason = answer["reason"].as_str().unwrap();
        assert!(reason.contains(expected), "{file}: {reason}");
        assert!(calls(&env).is_empty(), "{file} made AWS calls");
    }
}

#[tokio::test]
async fn missing_fields_are_ignored_and_malformed_events_are_typed_errors() {
    let env = installation(ManifestMode::Native).await;
    let mut missing_key = sample("s3-object-created.json");
    missing_key["detail"]["object"]
        .as_object_mut()
        .unwrap()
        .remove("key");
    let answer = env.start_builds(missing_key).await;
    assert_eq!(status(&answer), "ignored");
    assert!(answer["reason"]
        .as_str()
        .unwrap()
        .contains("detail.object.key is missing"));

    let mut wrong_type = sample("s3-object-created.json");
    wrong_type["detail"]["object"]["size"] = json!("big");
    let answer = env.start_builds(wrong_type).await;
    assert_eq!(status(&answer), "error", "{answer}");
    assert_eq!(answer["error_type"], "Archgate.MalformedEvent");
    assert_eq!(answer["retryable"], false);
    assert!(calls(&env).is_empty());
}

#[tokio::test]
async fn a_multipart_upload_starts_a_release_named_after_its_file() {
    // Given the real-shaped multipart sample pointed at this installation's bucket
    let env = installation(ManifestMode::Native).await;
    let mut event = sample("s3-object-created-multipart.json");
    event["detail"]["bucket"]["name"] = json!(env.config.source_bucket);
    assert!(event["detail"]["object"]["etag"]
        .as_str()
        .unwrap()
        .ends_with("-12"));

    // When start-builds handles it
    let answer = env.start_builds(event).await;

    // Then the release is named after the file stem
    assert_eq!(status(&answer), "applied", "{answer}");
    assert!(env.release("webapp-2.0.0").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_under_the_namespace_starts_a_release_of_its_own_repository() {
    // Given a deployment in eu-west-1 whose uploads may name repositories under `apps/`
    let env = installation_with_namespace("apps/", "eu-west-1").await;
    let event = upload(&env, "releases/apps/web/web-1.4.2.zip").await;
    calls(&env);

    // When start-builds handles the upload
    let answer = env.start_builds(event).await;

    // Then the release is apps/web's, and its repository was created for its first build
    assert_eq!(status(&answer), "applied", "{answer}");
    let tally = calls(&env);
    assert_eq!(count(&tally, "ECR.CreateRepository"), 1, "{tally:?}");
    assert_eq!(count(&tally, "CodeBuild.StartBuild"), 2, "{tally:?}");
    let key = archgate::domain::ReleaseKey::new(
        "apps/web",
        archgate::domain::ReleaseTag::parse("web-1.4.2").unwrap(),
    );
    let stored = env.pipeline.release(&key).await.unwrap().expect("recorded");
    assert_eq!(stored.release.phase(), Phase::Building);
    assert!(
        env.release("web-1.4.2").await.unwrap().is_none(),
        "not the default repository's"
    );
    let described = env
        .clients
        .ecr
        .describe_repositories()
        .repository_names("apps/web")
        .send()
        .await
        .expect("the repository exists");
    assert!(described.repositories()[0]
        .image_scanning_configuration()
        .is_some_and(|c| c.scan_on_push()));

    // And the next release of that repository finds it made already: no second CreateRepository
    let event = upload(&env, "releases/apps/web/web-1.4.3.zip").await;
    calls(&env);
    assert_eq!(status(&env.start_builds(event).await), "applied");
    assert_eq!(count(&calls(&env), "ECR.CreateRepository"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_naming_a_repository_outside_the_namespace_is_rejected_and_starts_nothing() {
    // Given a deployment whose uploads may name repositories under `apps/`
    let env = installation_with_namespace("apps/", "eu-west-1").await;
    let event = upload(&env, "releases/teams/web/web-1.4.2.zip").await;
    calls(&env);

    // When start-builds handles an upload under `teams/`
    let answer = env.start_builds(event.clone()).await;

    // Then it is ignored with the rule, announced as rejected, and nothing else happened
    assert_eq!(status(&answer), "ignored", "{answer}");
    assert_eq!(answer["kind"], "refused_repository", "{answer}");
    let tally = calls(&env);
    assert_eq!(count(&tally, "EventBridge.PutEvents"), 1, "{tally:?}");
    let touched: usize = tally
        .iter()
        .filter(|(call, _)| !call.starts_with("EventBridge."))
        .map(|(_, n)| n)
        .sum();
    assert_eq!(touched, 0, "only the announcement: {tally:?}");
    assert_eq!(release_events(&env).await, vec!["Release Rejected"]);
    let listing = env.pipeline.releases(10).await.unwrap();
    assert!(listing.releases.is_empty(), "no ledger item: {listing:?}");
}
