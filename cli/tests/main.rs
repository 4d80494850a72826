//! The `archgate` binary and the CLI's library, as an operator uses them: one test binary, one
//! module per command family.

mod demo;
mod dlq;
mod evaluate;
mod exit_status;
mod keys_and_expiry;
mod lifecycle;
mod local_loop;
mod platform;
mod replay;
mod verify;
mod watch;

use archgate_cli::local::{default_config, LocalEnv};
use std::process::Command;

/// Where the command tests run: not us-east-1, where S3 and others behave differently.
const REGION: &str = "eu-west-1";

/// A fresh installation (native manifests) on a private emulator in [`REGION`].
async fn installation() -> LocalEnv {
    LocalEnv::start_in(default_config("native"), REGION)
        .await
        .expect("the local AWS emulator is required")
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
