//! `archgate demo` run as a user runs it: the binary, on its own embedded emulator.

use std::process::Command;

#[test]
fn the_demo_publishes_one_release_for_both_arches_and_blocks_the_other() {
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
        "myapp-1.4.2 (and latest) is an OCI image index of:",
        "linux/amd64",
        "linux/arm64",
        "myapp-1.4.2: start-builds (S3 Object Created)",
        "myapp-1.4.2: build-completed (arm64 SUCCEEDED)",
        "myapp-1.4.2: scan-gate (arm64 scan)",
        "applied → published",
        "myapp-1.5.0 is blocked: amd64 image",
        "ARCHGATE_GATE_MAX_CRITICAL=0",
        "Release Published (myapp-1.4.2)",
        "Release Blocked (myapp-1.5.0)",
        "ledger: myapp:myapp-1.4.2 is published",
        "ledger: myapp:myapp-1.5.0 is blocked",
        "retention-cleanup (8 days later)",
        "deleted 3, kept",
        "Retention Report (myapp)",
        "demo succeeded",
    ] {
        assert!(
            stdout.contains(expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}
