//! Hostile and malformed events through every handler: each gives a typed error or an
//! explicit `ignored`, none panics, none acts (no AWS call but a ledger read).

use archgate_integration_tests::*;
use serde_json::{json, Value};

fn deep(levels: usize) -> Value {
    let mut value = json!("bottom");
    for _ in 0..levels {
        value = json!({ "nested": value });
    }
    value
}

/// A build's environment as archgate's StartBuild gives it, with this attempt and upload.
fn build_environment(attempt: Value, upload: Value) -> Value {
    json!([
        {"name": "IMAGE_REPO_NAME", "type": "PLAINTEXT", "value": "myapp"},
        {"name": "ARCHGATE_RELEASE_TAG", "type": "PLAINTEXT", "value": "myapp-1.4.2"},
        {"name": "IMAGE_ARCH", "type": "PLAINTEXT", "value": "amd64"},
        {"name": "ARCHGATE_RELEASE_ATTEMPT", "type": "PLAINTEXT", "value": attempt},
        {"name": "ARCHGATE_RELEASE_UPLOAD", "type": "PLAINTEXT", "value": upload},
    ])
}

/// Variations of a valid sample: each replaces one field with something hostile.
fn corpus() -> Vec<(String, Value)> {
    let huge = "x".repeat(1 << 20);
    let mut cases: Vec<(String, Value)> = vec![
        ("null".into(), Value::Null),
        ("a number".into(), json!(42)),
        ("a string".into(), json!("Object Created")),
        ("an empty object".into(), json!({})),
        ("an array".into(), json!([sample("s3-object-created.json")])),
        (
            "deep nesting".into(),
            json!({"source": "aws.s3", "detail-type": "Object Created", "detail": deep(64)}),
        ),
    ];
    let mutations: Vec<(&str, &str, Vec<&str>, Value)> = vec![
        (
            "s3-object-created.json",
            "key with path tricks",
            vec!["detail", "object", "key"],
            json!("releases/../../etc/passwd.zip"),
        ),
        (
            "s3-object-created.json",
            "key with unicode",
            vec!["detail", "object", "key"],
            json!("releases/ｍｙａｐｐ\u{202e}piz.exe.zip"),
        ),
        (
            "s3-object-created.json",
            "huge key",
            vec!["detail", "object", "key"],
            json!(huge.clone()),
        ),
        (
            "s3-object-created.json",
            "key of wrong type",
            vec!["detail", "object", "key"],
            json!(["releases/a.zip"]),
        ),
        (
            "s3-object-created.json",
            "negative size",
            vec!["detail", "object", "size"],
            json!(-1),
        ),
        (
            "s3-object-created.json",
            "bucket of another account",
            vec!["detail", "bucket", "name"],
            json!("archgate-source-999999999999"),
        ),
        (
            "s3-object-created.json",
            "null detail",
            vec!["detail"],
            Value::Null,
        ),
        (
            "codebuild-amd64-succeeded.json",
            "build id of another project",
            vec!["detail", "build-id"],
            json!("arn:aws:codebuild:us-east-1:999999999999:build/evil:1"),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "huge build id",
            vec!["detail", "build-id"],
            json!(huge.clone()),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "status of wrong type",
            vec!["detail", "build-status"],
            json!(7),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "environment of wrong type",
            vec![
                "detail",
                "additional-information",
                "environment",
                "environment-variables",
            ],
            json!("IMAGE_REPO_NAME=myapp"),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "deeply nested phases",
            vec!["detail", "additional-information", "phases"],
            deep(100),
        ),
        (
            "ecr-scan-findings.json",
            "digest not sha256",
            vec!["detail", "image-digest"],
            json!("sha512:abcd"),
        ),
        (
            "ecr-scan-findings.json",
            "counts of wrong type",
            vec!["detail", "finding-severity-counts"],
            json!([1, 2]),
        ),
        (
            "ecr-scan-findings.json",
            "count too large",
            vec!["detail", "finding-severity-counts", "CRITICAL"],
            json!(1e300),
        ),
        (
            "ecr-scan-findings.json",
            "tag with path tricks",
            vec!["detail", "image-tags"],
            json!(["../myapp-1.4.2-amd64", "myapp-1.4.2-amd64/.."]),
        ),
        (
            "s3-object-created.json",
            "sequencer that is not hexadecimal",
            vec!["detail", "object", "sequencer"],
            json!("0067D3F9AE2B5C1D04; DROP TABLE"),
        ),
        (
            "s3-object-created.json",
            "huge sequencer",
            vec!["detail", "object", "sequencer"],
            json!("F".repeat(1 << 16)),
        ),
        (
            "s3-object-created.json",
            "time that is not a time",
            vec!["time"],
            json!("yesterday"),
        ),
        (
            "s3-object-created.json",
            "time of wrong type",
            vec!["time"],
            json!(1_741_945_262),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "exported digest that is not a digest",
            vec![
                "detail",
                "additional-information",
                "exported-environment-variables",
            ],
            json!([{"name": "IMAGE_DIGEST", "value": "sha256:../../etc/passwd"}]),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "exported variables of wrong type",
            vec![
                "detail",
                "additional-information",
                "exported-environment-variables",
            ],
            json!({"IMAGE_DIGEST": 1}),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "ten thousand exported variables",
            vec![
                "detail",
                "additional-information",
                "exported-environment-variables",
            ],
            json!((0..10_000)
                .map(|n| json!({"name": format!("V{n}"), "value": "x"}))
                .collect::<Vec<_>>()),
        ),
        (
            "ecr-scan-findings.json",
            "ten thousand tags naming releases",
            vec!["detail", "image-tags"],
            json!((0..10_000)
                .map(|n| format!("never-{n}-amd64"))
                .collect::<Vec<_>>()),
        ),
        (
            "inspector2-finding.json",
            "image hash not sha256",
            vec!["detail", "resources"],
            json!([{"type": "AWS_ECR_CONTAINER_IMAGE", "details": {"awsEcrContainerImage": {"repositoryName": "myapp", "imageHash": "md5:0000", "imageTags": ["myapp-1.4.2-amd64"]}}}]),
        ),
        (
            "inspector2-finding.json",
            "resources of wrong type",
            vec!["detail", "resources"],
            json!({"type": "AWS_ECR_CONTAINER_IMAGE"}),
        ),
        (
            "inspector2-finding.json",
            "an EC2 instance, not an image",
            vec!["detail", "resources"],
            json!([{"type": "AWS_EC2_INSTANCE", "id": "i-0123456789abcdef0"}]),
        ),
        (
            "inspector2-finding.json",
            "ten thousand image tags",
            vec!["detail", "resources"],
            json!([{"type": "AWS_ECR_CONTAINER_IMAGE", "details": {"awsEcrContainerImage": {"repositoryName": "myapp",
                "imageHash": "sha256:d5af8c065c7e0378e6597d66714854c55e7bd6cfb54182c1bcc8ed35d0d27b00",
                "imageTags": (0..10_000).map(|n| format!("never-{n}-arm64")).collect::<Vec<_>>()}}}]),
        ),
        (
            "inspector2-finding.json",
            "another repository",
            vec!["detail", "resources"],
            json!([{"type": "AWS_ECR_CONTAINER_IMAGE", "details": {"awsEcrContainerImage": {"repositoryName": "evil",
                "imageHash": "sha256:d5af8c065c7e0378e6597d66714854c55e7bd6cfb54182c1bcc8ed35d0d27b00"}}}]),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "an attempt that is not a number",
            vec![
                "detail",
                "additional-information",
                "environment",
                "environment-variables",
            ],
            build_environment(json!("-1; DROP TABLE"), json!("v1")),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "an attempt beyond any release's",
            vec![
                "detail",
                "additional-information",
                "environment",
                "environment-variables",
            ],
            build_environment(json!("99999999999999999999"), json!("v1")),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "an attempt of wrong type",
            vec![
                "detail",
                "additional-information",
                "environment",
                "environment-variables",
            ],
            build_environment(json!(7), json!("v1")),
        ),
        (
            "codebuild-amd64-succeeded.json",
            "a huge upload",
            vec![
                "detail",
                "additional-information",
                "environment",
                "environment-variables",
            ],
            build_environment(json!("1"), json!(huge.clone())),
        ),
        (
            "inspector2-scan.json",
            "repository ARN of another account",
            vec!["detail", "repository-name"],
            json!("arn:aws:ecr:eu-west-1:999999999999:repository/evil"),
        ),
    ];
    for (file, name, path, value) in mutations {
        let mut event = sample(file);
        let mut target = &mut event;
        for key in &path[..path.len() - 1] {
            target = &mut target[*key];
        }
        target[path[path.len() - 1]] = value;
        cases.push((format!("{file}: {name}"), event));
    }
    cases
}

#[tokio::test]
async fn no_hostile_event_panics_or_acts() {
    let env = installation(ManifestMode::Native).await;
    let handlers: [&str; 3] = ["start-builds", "build-completed", "scan-gate"];
    for (name, event) in corpus() {
        for handler in handlers {
            env.calls.take();
            let answer = match handler {
                "start-builds" => {
                    archgate_start_builds::handler::handle(&env.pipeline, event.clone())
                        .await
                        .map(|o| serde_json::to_value(o).unwrap())
                }
                "build-completed" => {
                    archgate_build_completed::handler::handle(&env.pipeline, event.clone())
                        .await
                        .map(|o| serde_json::to_value(o).unwrap())
                }
                _ => archgate_scan_gate::handler::handle(&env.pipeline, event.clone())
                    .await
                    .map(|o| serde_json::to_value(o).unwrap()),
            };
            match &answer {
                Ok(value) => assert_eq!(
                    status(value),
                    "ignored",
                    "{handler} acted on {name}: {value}"
                ),
                Err(error) => assert!(!error.is_retryable(), "{handler}: {name}: {error}"),
            }
            let calls = env.calls.take();
            assert!(
                calls
                    .iter()
                    .all(|c| c == "DynamoDB.GetItem" || c == "CodeBuild.BatchGetBuilds"),
                "{handler} made calls for {name}: {calls:?}"
            );
            // Reads stay bounded whatever the event names (the digest pointer, and one read
            // per release an image's tags name, at most MAX_SCAN_TAGS).
            assert!(
                calls.len() <= archgate::inbound::MAX_SCAN_TAGS + 2,
                "{handler} read {} times for {name}",
                calls.len()
            );
        }
    }
    // And nothing was recorded
    let listed = env.pipeline.releases(10).await.unwrap();
    assert!(listed.releases.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn names_that_read_as_another_images_signature_start_nothing() {
    // Given uploads named like another image's signature, attestation, SBOM or referrers
    // tag, in every case and with any suffix
    let env = installation_in(ManifestMode::Native, "ap-southeast-2").await;
    let hex = "0123456789abcdef".repeat(4);
    let names = [
        format!("sha256-{hex}"),
        format!("sha256-{hex}.sig"),
        format!("sha256-{hex}.att"),
        format!("SHA256-{}.sbom", hex.to_uppercase()),
        format!("sha256-{hex}-1.0"),
    ];
    for name in &names {
        let key = format!("releases/{name}.zip");
        calls(&env);

        // When each is delivered to start-builds, twice
        let event = upload(&env, &key).await;
        for _ in 0..2 {
            let answer = env.start_builds(event.clone()).await;
            assert_ne!(status(&answer), "error", "{name}: {answer}");
        }

        // Then no build starts, the record only refuses, and it is announced once
        let tally = calls(&env);
        assert_eq!(
            count(&tally, "CodeBuild.StartBuild"),
            0,
            "{name}: {tally:?}"
        );
        let release = env
            .release(name)
            .await
            .unwrap()
            .expect("a refusal record")
            .release;
        assert_eq!(release.phase(), archgate::domain::Phase::Rejected, "{name}");
        assert_eq!(
            release.build(archgate::domain::BuildRole::Amd64).build_id,
            None
        );
    }
    let events = env.release_events().await.unwrap();
    let rejected: Vec<&Value> = events
        .iter()
        .filter(|e| e["detail-type"] == "Release Rejected")
        .collect();
    assert_eq!(rejected.len(), names.len(), "{events:?}");
    assert!(rejected
        .iter()
        .all(|e| e["detail"]["rule"] == "referrer-tag"));
}

#[test]
fn the_retention_function_rejects_requests_it_does_not_understand() {
    for event in [
        json!(null),
        json!([1]),
        json!({"repositories": [1, 2]}),
        json!({"dry_run": "yes"}),
        json!({"force": true, "unknown": 1}),
    ] {
        assert!(
            archgate_retention_cleanup::handler::request_of(event.clone()).is_err(),
            "{event}"
        );
    }
}

#[tokio::test]
async fn ledger_items_no_version_of_archgate_wrote_are_survived_by_every_reader() {
    // Given a release and items shaped like records but with hostile values, and items that
    // are not records at all
    let env = installation(ManifestMode::Native).await;
    env.start_builds(upload(&env, KEY).await).await;
    let hostile = [
        json!({"key": {"repository": "myapp", "tag": "h1"},
               "source": {"bucket": "b", "key": "releases/h1.zip", "sequencer": "F".repeat(5000)},
               "manifest_mode": "native", "amd64": {}, "arm64": {},
               "created_at": i64::MIN, "updated_at": i64::MAX, "attempt": u32::MAX,
               "next_notice": u32::MAX,
               "pending": [{"effect": {"effect": "promote"}, "claimed_at": i64::MIN}],
               "timeline": []}),
        json!({"key": {"repository": "myapp", "tag": "h2"},
               "source": {"bucket": "b", "key": "releases/h2.zip"},
               "manifest_mode": "codebuild", "amd64": {"status": "FAILED"}, "arm64": {},
               "created_at": 0, "updated_at": 0, "attempt": 0,
               "history": (0..2000).map(|n| json!({"attempt": n, "revision": "r", "outcome": "failed",
                                                   "started_at": 0, "ended_at": 0})).collect::<Vec<_>>(),
               "queued": {"bucket": "b", "key": "releases/h2.zip", "version_id": "v9"},
               "timeline": []}),
        json!({"key": {"repository": "myapp", "tag": "elsewhere"},
               "source": {"bucket": "b", "key": "k"}, "manifest_mode": "native",
               "amd64": {}, "arm64": {}, "created_at": 0, "updated_at": 0, "timeline": []}),
        json!("not a record"),
        json!({"schema": 9}),
    ];
    for (n, doc) in hostile.iter().enumerate() {
        let tag = ["h1", "h2", "h3", "h4", "h5"][n];
        env.clients
            .dynamodb
            .put_item()
            .table_name(&env.config.ledger_table)
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("myapp#{tag}")),
            )
            .item(
                "version",
                aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
            )
            .item(
                "doc",
                aws_sdk_dynamodb::types::AttributeValue::S(doc.to_string()),
            )
            .send()
            .await
            .unwrap();
    }

    // When the reconciler, the listing and the status read them
    let report = archgate_reconciler::handler::handle(
        &env.pipeline,
        archgate::config::ReconcilePolicy {
            stale_after_ms: 1,
            deadline_ms: 1,
        },
        archgate::ports::Clock::now_millis(&archgate::ports::SystemClock) + 3_600_000,
    )
    .await
    .unwrap();
    let listing = env.pipeline.releases(100).await.unwrap();
    for stored in &listing.releases {
        archgate_cli::status::print_status(&stored.release, stored.version, &[]);
    }

    // Then none panics; what does not parse (or names another item) is reported, and the
    // real release is still there
    assert!(listing.unreadable.len() >= 3, "{listing:?}");
    assert!(report.unreadable.len() >= 3, "{report:?}");
    assert!(listing
        .releases
        .iter()
        .any(|s| s.release.key.tag.as_str() == TAG));
}
