//! `archgate local …`: a release driven by hand on the local emulator with the commands an
//! operator types, each a separate process reading `.archgate/local.env`.

use crate::text;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TAG: &str = "myapp-5.0.0";

/// Runs archgate in `dir` with none of the caller's AWS or archgate settings (but the
/// emulator's Python), as on a fresh machine.
fn archgate(dir: &Path, args: &[&str]) -> Output {
    archgate_with(dir, args, &[])
}

fn archgate_with(dir: &Path, args: &[&str], variables: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_archgate"));
    command.args(args).current_dir(dir);
    for (name, _) in std::env::vars() {
        let archgate = name.starts_with("ARCHGATE_") && name != "ARCHGATE_EMULATOR_PYTHON";
        if archgate || name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command.envs(variables.iter().copied());
    command.output().expect("archgate runs")
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
    // Given a working directory with a build context and `archgate local up` run in it, in
    // eu-west-1 with the namespace apps/ (the only variables set, and only for `up`)
    let dir = std::env::temp_dir().join(format!("archgate-local-loop-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("context")).unwrap();
    std::fs::write(dir.join("context/Dockerfile"), "FROM scratch\n").unwrap();
    let installation = Installation(dir.clone());
    let up = archgate_with(
        &dir,
        &["local", "up"],
        &[
            ("AWS_REGION", "eu-west-1"),
            ("ARCHGATE_REPOSITORY_PREFIX", "apps/"),
        ],
    );
    assert!(up.status.success(), "{}", text(&up));
    let local_env = std::fs::read_to_string(dir.join(".archgate/local.env")).unwrap();
    assert!(local_env.contains("AWS_REGION=eu-west-1"), "{local_env}");
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
    let watch = archgate(
        &dir,
        &[
            "release",
            "watch",
            TAG,
            "--every",
            "1",
            "--timeout-minutes",
            "1",
        ],
    );
    assert!(watch.status.success(), "{}", text(&watch));
    assert!(
        text(&watch).contains(" published, attempt 1"),
        "{}",
        text(&watch)
    );
    // And a release of another repository is driven the same way, named <repository>:<tag>
    let upload = archgate(
        &dir,
        &[
            "local",
            "upload",
            "context",
            "--name",
            "web-1.0",
            "--repository",
            "apps/web",
        ],
    );
    assert!(text(&upload).contains("\"applied\""), "{}", text(&upload));
    for step in [&["local", "build"][..], &["local", "scan"][..]] {
        let mut args = step.to_vec();
        args.push("apps/web:web-1.0");
        let output = archgate(&dir, &args);
        assert!(output.status.success(), "{}", text(&output));
    }
    let status = archgate(&dir, &["release", "status", "apps/web:web-1.0"]);
    assert!(text(&status).contains("published"), "{}", text(&status));
    let plan = archgate(&dir, &["retention", "plan", "--repository", "myapp"]);
    assert!(plan.status.success(), "{}", text(&plan));
    assert!(text(&plan).contains("to keep"), "{}", text(&plan));
    let reconcile = archgate(&dir, &["reconcile"]);
    assert!(reconcile.status.success(), "{}", text(&reconcile));

    // And a failing build and a blocking finding end failed and blocked, with the reasons
    for (tag, build, scans) in [
        ("myapp-5.1.0", vec!["--fail", "arm64"], vec![]),
        (
            "myapp-5.2.0",
            vec![],
            vec![
                vec!["--arch", "amd64", "--finding", "CVE-2024-3094:CRITICAL"],
                vec!["--arch", "arm64"],
            ],
        ),
    ] {
        let upload = archgate(&dir, &["local", "upload", "context", "--name", tag]);
        assert!(upload.status.success(), "{}", text(&upload));
        let mut args = vec!["local", "build", tag];
        args.extend(build);
        let build = archgate(&dir, &args);
        assert!(build.status.success(), "{}", text(&build));
        for scan in scans {
            let mut args = vec!["local", "scan", tag];
            args.extend(scan);
            let scan = archgate(&dir, &args);
            assert!(scan.status.success(), "{}", text(&scan));
        }
    }
    let failed = archgate(&dir, &["release", "status", "myapp-5.1.0"]);
    assert!(
        text(&failed).contains(" failed, attempt 1"),
        "{}",
        text(&failed)
    );
    assert!(text(&failed).contains("arm64"), "{}", text(&failed));
    let watch = archgate(&dir, &["release", "watch", "myapp-5.1.0", "--every", "1"]);
    assert_eq!(watch.status.code(), Some(1), "{}", text(&watch));
    assert!(text(&watch).contains("failed: "), "{}", text(&watch));
    let blocked = archgate(&dir, &["release", "status", "myapp-5.2.0"]);
    assert!(
        text(&blocked).contains(" blocked, attempt 1"),
        "{}",
        text(&blocked)
    );
    assert!(text(&blocked).contains("CRITICAL"), "{}", text(&blocked));
    let watch = archgate(&dir, &["release", "watch", "myapp-5.2.0", "--every", "1"]);
    assert_eq!(watch.status.code(), Some(1), "{}", text(&watch));
    assert!(text(&watch).contains("CRITICAL"), "{}", text(&watch));

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
    let pid: u32 = pid.split_whitespace().next().unwrap().parse().unwrap();
    assert!(!archgate_cli::commands::local::alive(pid));
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

// Before the fix only the pid's existence was checked: `local down` killed whatever process
// had been given the recorded pid.
#[test]
fn a_stale_record_naming_another_process_is_cleaned_up_and_that_process_left_alone() {
    // Given a record left by an emulator that is gone, whose pid now names another program
    let dir = std::env::temp_dir().join(format!("archgate-local-stale-{}", std::process::id()));
    std::fs::create_dir_all(dir.join(".archgate")).unwrap();
    let mut other = Command::new("sleep").arg("30").spawn().unwrap();
    std::fs::write(
        dir.join(".archgate/emulator.pid"),
        format!("{} 12345\n", other.id()),
    )
    .unwrap();

    // When the installation is taken down
    let down = archgate(&dir, &["local", "down"]);

    // Then nothing is stopped, the operator is told why, the record is gone and the other
    // program still runs
    assert!(down.status.success(), "{}", text(&down));
    assert!(
        text(&down).contains("is not running") && text(&down).contains("nothing stopped"),
        "{}",
        text(&down)
    );
    assert!(!dir.join(".archgate/emulator.pid").exists());
    assert!(archgate_cli::commands::local::alive(other.id()));
    let _ = other.kill();
    let _ = other.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
