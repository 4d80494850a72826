//! What each `archgate` subcommand does at the terminal: read the configuration, call the
//! library, print the answer, and say how it went. `main.rs` parses and dispatches.

pub mod demo;
pub mod dlq;
pub mod gate;
pub mod local;
pub mod reconcile;
pub mod release;
pub mod replay;
pub mod retention;

use crate::error::CliError;
use archgate::aws::{sdk_config, Clients, DynamoLedger};
use archgate::config::{ConfigError, LEDGER_TABLE};
use archgate::Config;

/// The configuration in the environment and clients for the configured endpoint.
async fn configured() -> Result<(Config, Clients), CliError> {
    let config = Config::from_env()?;
    Ok((config, Clients::new(&sdk_config().await?)))
}

/// One variable a command needs, whatever else the environment holds.
fn required(variable: &'static str) -> Result<String, ConfigError> {
    std::env::var(variable)
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| !value.is_empty())
        .ok_or(ConfigError::Missing { variable })
}

/// The ledger alone, for the commands that only read it (`ARCHGATE_LEDGER_TABLE`).
async fn ledger() -> Result<(DynamoLedger, Clients), CliError> {
    let table = required(LEDGER_TABLE)?;
    let clients = Clients::new(&sdk_config().await?);
    Ok((DynamoLedger::new(clients.dynamodb.clone(), &table), clients))
}
