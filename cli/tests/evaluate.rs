//! `archgate gate check` and `archgate release evaluate`: the verdict now, and acting on it
//! after the policy changed.

use archgate::domain::{Arch, Phase};
use archgate_cli::local::{sample_build_context, LocalEnv, LocalFinding};
use archgate_testkit::builder::ImageShape;
use std::process::Output;

const TAG: &str = "myapp-2.0.0";
const CRITICAL: LocalFinding = LocalFinding {
    id: "CVE-2024-3094",
    severity: "CRITICAL",
    package: "xz-utils",
};

fn archgate(env: &LocalEnv, args: &[&str], extra: &[(&str, &str)]) -> Output {
    crate::operator(env)
        .args(args)
        .envs(extra.iter().copied())
        .output()
        .expect("archgate runs")
}

#[tokio::test]
async fn an_allowlist_change_and_a_re_evaluation_publish_a_blocked_release() {
    // Given a release blocked by a critical finding on its amd64 image
    let env = crate::installation().await;
    env.start_builds(
        env.upload(&format!("releases/{TAG}.zip"), sample_build_context(TAG))
            .await
            .unwrap(),
    )
    .await;
    for arch in Arch::ALL {
        let (event, _) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        env.build_completed(event).await;
    }
    for (arch, findings) in [(Arch::Amd64, vec![CRITICAL]), (Arch::Arm64, vec![])] {
        let scan = env
            .scan_arch_image(TAG, arch, "COMPLETE", &findings)
            .await
            .unwrap();
        env.scan_gate(scan).await;
    }
    assert_eq!(
        env.release(TAG).await.unwrap().unwrap().release.phase(),
        Phase::Blocked
    );

    // When the gate is checked under the current policy, it still blocks and changes nothing
    let check = archgate(&env, &["gate", "check", TAG], &[]);
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("BLOCK") && stdout.contains("CVE-2024-3094 xz-utils"),
        "{stdout}"
    );
    assert_eq!(
        env.release(TAG).await.unwrap().unwrap().release.phase(),
        Phase::Blocked
    );

    // When the finding is allowlisted and the release evaluated again
    let allowlist = r#"[{"id": "CVE-2024-3094", "expires": "2999-01-01", "reason": "backdoor not in the shipped binary"}]"#;
    let evaluate = archgate(
        &env,
        &["release", "evaluate", TAG],
        &[("ARCHGATE_GATE_ALLOWLIST", allowlist)],
    );
    let stdout = String::from_utf8_lossy(&evaluate.stdout);

    // Then it is promoted through the same state machine
    assert!(
        evaluate.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&evaluate.stderr)
    );
    assert!(stdout.contains("allowlisted CVE-2024-3094"), "{stdout}");
    assert!(stdout.contains("is published"), "{stdout}");
    let release = env.release(TAG).await.unwrap().unwrap().release;
    assert_eq!(release.phase(), Phase::Published);
    assert_eq!(
        release.published.unwrap().tags,
        vec![TAG.to_owned(), "latest".to_owned()]
    );

    // And the status shows the verdicts and tags
    let status = archgate(&env, &["release", "status", TAG], &[]);
    let stdout = String::from_utf8_lossy(&status.stdout);
    assert!(stdout.contains("tags     myapp-2.0.0, latest"), "{stdout}");
}
