//! `archgate demo` run as a user runs it: the binary, on its own embedded emulator.

use std::process::Command;

#[test]
fn the_demo_ends_with_a_candidate_index_referencing_both_arch_images() {
    // Given no endpoint configured, so the demo starts its own emulator
    // When `archgate demo` runs
    let output = Command::new(env!("CARGO_BIN_EXE_archgate"))
        .arg("demo")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .expect("archgate runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    // Then it succeeds and shows the index with both platforms, the timeline and the events
    assert!(output.status.success(), "demo failed:\n{stdout}\n{stderr}");
    for expected in [
        "myapp-1.4.2-candidate is an OCI image index of:",
        "linux/amd64",
        "linux/arm64",
        "start-builds (S3 Object Created)",
        "build-completed (arm64 SUCCEEDED)",
        "release events: Release Started, Release Candidate Ready",
        "is candidate_ready",
        "demo succeeded",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}
