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
    let env = installation("native").await;
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
        }
    }
    // And nothing was recorded
    let listed = archgate::ports::Ledger::list(&env.pipeline.ledger, 10)
        .await
        .unwrap();
    assert!(listed.releases.is_empty(), "{listed:?}");
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
