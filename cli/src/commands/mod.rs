//! What each `archgate` subcommand does at the terminal: read the configuration, call the
//! library, print the answer, and say how it went. `main.rs` parses and dispatches.

pub mod demo;
pub mod gate;
pub mod local;
pub mod reconcile;
pub mod release;
pub mod replay;
pub mod retention;

use crate::error::CliError;
use archgate::aws::{sdk_config, Clients};
use archgate::Config;

/// The configuration in the environment and clients for the configured endpoint.
async fn configured() -> Result<(Config, Clients), CliError> {
    let config = Config::from_env()?;
    Ok((config, Clients::new(&sdk_config().await?)))
}
