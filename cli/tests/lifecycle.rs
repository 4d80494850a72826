//! `archgate reconcile` and what `archgate release status` / `release list` tell about a
//! release's life: attempts, refused uploads, findings after publication, the moving tags it
//! holds, records that do not parse.

use archgate::domain::Arch;
use archgate_cli::local::{sample_build_context, LocalEnv, LocalFinding};
use archgate_testkit::builder::ImageShape;
use std::process::Output;

const TAG: &str = "myapp-3.0";
const KEY: &str = "releases/myapp-3.0.zip";

fn archgate(env: &LocalEnv, args: &[&str]) -> (bool, String) {
    let output: Output = crate::operator(env)
        .args(args)
        .output()
        .expect("archgate runs");
    (output.status.success(), crate::text(&output))
}

async fn build(env: &LocalEnv, status: &str) {
    for arch in Arch::ALL {
        let (event, _) = env
            .finish_arch_build(TAG, arch, status, ImageShape::Manifest)
            .await
            .unwrap();
        env.build_completed(event).await;
    }
}

#[tokio::test]
async fn status_tells_attempts_refusals_findings_and_moving_tags_and_reconcile_runs_a_pass() {
    // Given a release whose first attempt failed, whose second was published, which refused
    // an upload from another folder and got a finding after publication
    let env = crate::installation().await;
    let upload = |key: &'static str| {
        let env = &env;
        async move {
            env.start_builds(env.upload(key, sample_build_context(TAG)).await.unwrap())
                .await
        }
    };
    upload(KEY).await;
    build(&env, "FAILED").await;
    upload(KEY).await;
    upload("releases/team/myapp-3.0.zip").await;
    build(&env, "SUCCEEDED").await;
    for arch in Arch::ALL {
        let scan = env
            .scan_arch_image(TAG, arch, "COMPLETE", &[])
            .await
            .unwrap();
        env.scan_gate(scan).await;
    }
    let critical = LocalFinding {
        id: "CVE-2024-3094",
        severity: "CRITICAL",
        package: "xz-utils",
    };
    let rescan = env
        .scan_arch_image(TAG, Arch::Arm64, "COMPLETE", &[critical])
        .await
        .unwrap();
    env.scan_gate(rescan).await;

    // When its status is asked
    let (ok, status) = archgate(&env, &["release", "status", TAG]);

    // Then it tells the whole story
    assert!(ok, "{status}");
    assert!(status.contains("published, attempt 2"), "{status}");
    assert!(status.contains("attempt  1  failed"), "{status}");
    assert!(
        status.contains("refused") && status.contains("releases/team/myapp-3.0.zip"),
        "{status}"
    );
    assert!(status.contains("vulnerable"), "{status}");
    assert!(status.contains("moving   latest (now)"), "{status}");

    // And a dry-run reconciler pass changes nothing and says so; a real pass finds nothing
    let (ok, dry) = archgate(&env, &["reconcile", "--dry-run"]);
    assert!(ok, "{dry}");
    let (ok, pass) = archgate(&env, &["reconcile"]);
    assert!(ok, "{pass}");
    assert!(pass.contains("nothing to reconcile"), "{pass}");

    // And a record that does not parse is listed with the reason, not fatal
    env.clients
        .dynamodb
        .put_item()
        .table_name(&env.config.ledger_table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("myapp#from-the-future".into()),
        )
        .item(
            "version",
            aws_sdk_dynamodb::types::AttributeValue::N("1".into()),
        )
        .item(
            "doc",
            aws_sdk_dynamodb::types::AttributeValue::S(r#"{"schema": 9}"#.into()),
        )
        .send()
        .await
        .unwrap();
    // And a name refused from the start is listed as rejected with attempt 0, as its
    // `Release Rejected` event says (it was listed as attempt 1)
    let refused = env
        .start_builds(
            env.upload("releases/latest.zip", sample_build_context("latest"))
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(refused["phase"], "rejected", "{refused}");
    let (ok, list) = archgate(&env, &["release", "list"]);
    assert!(ok, "{list}");
    let line = list
        .lines()
        .find(|l| l.starts_with("myapp:latest "))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(
        line.contains("rejected") && line.contains("attempt 0"),
        "{list}"
    );
    assert!(
        list.contains("myapp:myapp-3.0") && list.contains("attempt 2"),
        "{list}"
    );
    assert!(
        list.contains("myapp#from-the-future") && list.contains("unreadable"),
        "{list}"
    );
    let (ok, pass) = archgate(&env, &["reconcile"]);
    assert!(ok, "{pass}");
    assert!(pass.contains("skipped: does not parse"), "{pass}");
}
