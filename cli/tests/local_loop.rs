//! `archgate local …`: a release driven by hand on the local emulator with the commands an
//! operator types, each a separate process reading `.archgate/local.env`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TAG: &str = "myapp-5.0.0";

/// Runs archgate in `dir` with none of the caller's AWS or archgate settings (but the
/// emulator's Python), as on a fresh machine.
fn archgate(dir: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_archgate"));
    command.args(args).current_dir(dir);
    for (name, _) in std::env::vars() {
        let archgate = name.starts_with("ARCHGATE_") && name != "ARCHGATE_EMULATOR_PYTHON";
        if archgate || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command.output().expect("archgate runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Stops the emulator however the test ends.
struct Installation(PathBuf);

impl Drop for Installation {
    fn drop(&mut self) {
        archgate(&self.0, &["local", "down"]);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_release_driven_by_hand_on_the_local_emulator_is_published() {
    // Given a working directory with a build context and `archgate local up` run in it
    let dir = std::env::temp_dir().join(format!("archgate-local-loop-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("context")).unwrap();
    std::fs::write(dir.join("context/Dockerfile"), "FROM scratch\n").unwrap();
    let installation = Installation(dir.clone());
    let up = archgate(&dir, &["local", "up"]);
    assert!(up.status.success(), "{}", text(&up));
    assert!(dir.join(".archgate/local.env").is_file());
    assert!(
        archgate(&dir, &["local", "up"]).status.success(),
        "a second up is a no-op"
    );

    // When the release is uploaded, built and scanned clean by hand
    let upload = archgate(&dir, &["local", "upload", "context", "--name", TAG]);
    assert!(upload.status.success(), "{}", text(&upload));
    assert!(text(&upload).contains("\"applied\""), "{}", text(&upload));
    let build = archgate(&dir, &["local", "build", TAG]);
    assert!(build.status.success(), "{}", text(&build));
    let scan = archgate(&dir, &["local", "scan", TAG]);
    assert!(scan.status.success(), "{}", text(&scan));

    // Then the other commands find it through .archgate/local.env, with nothing set by hand
    let status = archgate(&dir, &["release", "status", TAG]);
    assert!(status.status.success(), "{}", text(&status));
    assert!(text(&status).contains("published"), "{}", text(&status));
    let list = archgate(&dir, &["release", "list"]);
    assert!(text(&list).contains(TAG), "{}", text(&list));
    let sam = archgate(&dir, &["local", "env", "--format", "sam"]);
    let parameters: serde_json::Value = serde_json::from_slice(&sam.stdout).unwrap();
    assert!(parameters["Parameters"]["AWS_ENDPOINT_URL"]
        .as_str()
        .is_some_and(|url| url.starts_with("http://127.0.0.1:")));

    // And `local down` stops the emulator
    let pid = std::fs::read_to_string(dir.join(".archgate/emulator.pid")).unwrap();
    let down = archgate(&dir, &["local", "down"]);
    assert!(down.status.success(), "{}", text(&down));
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(!archgate_cli::commands::local::alive(
        pid.trim().parse().unwrap()
    ));
    drop(installation);
}

#[test]
fn without_a_local_installation_the_commands_say_how_to_get_one() {
    let dir = std::env::temp_dir().join(format!("archgate-local-none-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let build = archgate(&dir, &["local", "build", TAG]);
    assert!(!build.status.success());
    assert!(
        text(&build).contains("archgate local up"),
        "{}",
        text(&build)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
