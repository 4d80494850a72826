//! The retention-cleanup function against the emulator: schedule and payload, many
//! repositories with one failing, reports.

use archgate::ports::ShiftedClock;
use archgate::wiring::AwsRetention;
use archgate_integration_tests::*;
use archgate_retention_cleanup::handler::handle;
use serde_json::json;

async fn retention(
    env: &archgate_cli::local::LocalEnv,
    repositories: &str,
) -> AwsRetention<ShiftedClock> {
    let config = env.retention_config(&[
        (archgate::config::RETENTION_REPOSITORIES, repositories),
        // Two of three images are stale in these small repositories.
        (archgate::config::RETENTION_MAX_DELETE_SHARE, "0.9"),
    ]);
    // Eight days on: every image pushed by the test is past the 7-day age.
    env.clients.retention_at(
        config,
        ShiftedClock {
            offset_ms: 8 * 24 * 3600 * 1000,
        },
    )
}

#[tokio::test]
async fn an_unknown_repository_fails_alone_and_the_others_are_cleaned() {
    // Given two repositories matched by a pattern, one plain name that does not exist, and a
    // tagged release plus orphans in each real repository
    let env = installation(ManifestMode::Native).await;
    for name in ["team/api", "team/web"] {
        env.clients
            .ecr
            .create_repository()
            .repository_name(name)
            .send()
            .await
            .unwrap();
        let tagged = serde_json::to_string(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": archgate::domain::Digest::of(name.as_bytes()).as_str(), "size": 1}, "layers": []})).unwrap();
        for (body, tag) in [
            (tagged.clone(), Some("v1")),
            (tagged.replace("\"size\":1", "\"size\":2"), None),
            (tagged.replace("\"size\":1", "\"size\":3"), None),
        ] {
            env.clients
                .ecr
                .put_image()
                .repository_name(name)
                .image_manifest(&body)
                .image_manifest_media_type("application/vnd.oci.image.manifest.v1+json")
                .image_digest(archgate::domain::Digest::of(body.as_bytes()).as_str())
                .set_image_tag(tag.map(str::to_owned))
                .send()
                .await
                .unwrap();
        }
    }
    let retention = retention(&env, "team/*, does-not-exist").await;
    env.release_events().await.unwrap();

    // When a dry run is asked for, then an actual run
    let dry = handle(&retention, json!({"dry_run": true})).await.unwrap();
    let real = handle(
        &retention,
        json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}),
    )
    .await
    .unwrap();

    // Then the missing repository reports its error and the others are cleaned
    for report in [&dry, &real] {
        let names: Vec<&str> = report
            .repositories
            .iter()
            .map(|r| r.repository.as_str())
            .collect();
        assert_eq!(names, ["does-not-exist", "team/api", "team/web"]);
        assert!(
            report.repositories[0]
                .error
                .as_deref()
                .unwrap()
                .contains("DescribeImages"),
            "{:?}",
            report.repositories[0]
        );
    }
    for (dry_report, real_report) in dry.repositories[1..].iter().zip(&real.repositories[1..]) {
        assert_eq!(dry_report.deleted.len(), 2, "a dry run lists what would go");
        assert_eq!(real_report.deleted.len(), 2);
        assert_eq!(real_report.kept_by_reason.get("tagged"), Some(&1));
        assert!(real_report.aws_calls >= 2, "{real_report:?}");
        let left = env
            .clients
            .ecr
            .describe_images()
            .repository_name(&real_report.repository)
            .send()
            .await
            .unwrap();
        assert_eq!(
            left.image_details().len(),
            1,
            "only the tagged image is left"
        );
    }
    // And each repository's run was reported
    let reports = env
        .release_events()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e["detail-type"] == "Retention Report")
        .count();
    assert_eq!(reports, 6);
}

#[tokio::test]
async fn an_event_that_is_neither_schedule_nor_request_is_a_typed_error() {
    let env = installation(ManifestMode::Native).await;
    let retention = retention(&env, "myapp").await;
    let err = handle(&retention, json!({"repositories": "not-a-list"}))
        .await
        .unwrap_err();
    let diagnostic = lambda_runtime::Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "Archgate.MalformedEvent");
    assert!(handle(&retention, json!({"dry_run": true, "surprise": 1}))
        .await
        .is_err());
}
