//! The `archgate` binary and the CLI's library, as an operator uses them: one test binary, one
//! module per command family.

mod demo;
mod dlq;
mod emulator;
mod evaluate;
mod exit_status;
mod keys_and_expiry;
mod lifecycle;
mod local_loop;
mod platform;
mod replay;
mod repositories;
mod verify;
mod watch;

use archgate::domain::{Arch, ManifestMode};
use archgate_cli::local::{default_config, sample_build_context, LocalEnv};
use archgate_testkit::builder::ImageShape;
use serde_json::Value;
use std::process::Command;

/// Where the command tests run: not us-east-1, where S3 and others behave differently.
const REGION: &str = "eu-west-1";

/// A fresh installation (native manifests) on a private emulator in [`REGION`].
async fn installation() -> LocalEnv {
    LocalEnv::start_in(default_config(ManifestMode::Native), REGION)
        .await
        .expect("the local AWS emulator is required")
}

/// What a command printed, stdout then stderr.
fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `archgate` as an operator of `env` runs it: the installation's settings, its endpoint and
/// its region (which is not us-east-1 when the tests run elsewhere).
fn operator(env: &LocalEnv) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_archgate"));
    command
        .envs(env.config.to_env())
        .env("AWS_ENDPOINT_URL", &env.endpoint)
        .env("AWS_REGION", env.region())
        .env("AWS_ACCESS_KEY_ID", "archgate-local")
        .env("AWS_SECRET_ACCESS_KEY", "archgate-local");
    command
}

/// Upload, both builds and both scans, through the handlers; the last scan-gate answer.
async fn release(env: &LocalEnv, tag: &str) -> Value {
    let answer = env
        .start_builds(
            env.upload(&format!("releases/{tag}.zip"), sample_build_context(tag))
                .await
                .unwrap(),
        )
        .await;
    assert_eq!(answer["status"], "applied", "{answer}");
    for arch in Arch::ALL {
        let (event, _) = env
            .finish_arch_build(tag, arch, "SUCCEEDED", ImageShape::Manifest)
            .await
            .unwrap();
        env.build_completed(event).await;
    }
    let mut last = Value::Null;
    for arch in Arch::ALL {
        let scan = env
            .scan_arch_image(tag, arch, "COMPLETE", &[])
            .await
            .unwrap();
        last = env.scan_gate(scan).await;
    }
    last
}
