//! `archgate release watch`: a release's state changes as they happen, until it ends.

use archgate::domain::Arch;
use archgate_cli::local::sample_build_context;
use archgate_testkit::builder::ImageShape;
use std::process::Stdio;

const TAG: &str = "myapp-3.1.0";

#[tokio::test]
async fn watching_a_release_prints_each_state_until_it_is_published() {
    // Given a provisioned emulator and a watcher started before the upload
    let env = crate::installation().await;
    let watcher = crate::operator(&env)
        .args([
            "release",
            "watch",
            TAG,
            "--every",
            "1",
            "--timeout-minutes",
            "2",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("archgate runs");

    // When the release is uploaded, built and scanned clean, a step a second
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    env.start_builds(
        env.upload(&format!("releases/{TAG}.zip"), sample_build_context(TAG))
            .await
            .unwrap(),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for arch in Arch::ALL {
        let (event, _) = env
            .finish_arch_build(TAG, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        env.build_completed(event).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for arch in Arch::ALL {
        let scan = env
            .scan_arch_image(TAG, arch, "COMPLETE", &[])
            .await
            .unwrap();
        env.scan_gate(scan).await;
    }

    // Then the watcher printed the wait, the states in order, and ended with success
    let output = tokio::task::spawn_blocking(move || watcher.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].contains("not recorded yet"), "{stdout}");
    let building = lines
        .iter()
        .position(|l| l.contains(" building, attempt 1"));
    let published = lines
        .iter()
        .position(|l| l.contains(" published, attempt 1"));
    assert!(
        matches!((building, published), (Some(b), Some(p)) if b < p),
        "{stdout}"
    );
    assert_eq!(published, Some(lines.len() - 1), "{stdout}");
}
