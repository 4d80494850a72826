//! What each `archgate` subcommand does at the terminal: read the configuration, call the
//! library, print the answer, and say how it went. `main.rs` parses and dispatches.

pub mod demo;
pub mod dlq;
pub mod gate;
pub mod local;
pub mod reconcile;
pub mod release;
pub mod replay;
pub mod repo;
pub mod retention;

use crate::error::CliError;
use archgate::aws::{sdk_config, Clients, DynamoLedger};
use archgate::config::{
    ConfigError, LEDGER_TABLE, REPOSITORY, REPOSITORY_PREFIX, RETENTION_REPOSITORIES,
};
use archgate::domain::repository::{check_namespace, Repositories};
use archgate::domain::{ReleaseKey, ReleaseTag};
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

/// The release a command names: `<repository>:<tag>`, or `<tag>` of `--repository`, or of
/// the default repository (`ARCHGATE_REPOSITORY`). A repository that is not archgate's (the
/// default one, or one under `ARCHGATE_REPOSITORY_PREFIX`) is refused before any call.
fn release_key(reference: &str, repository: Option<&str>) -> Result<ReleaseKey, CliError> {
    let (named, tag) = match reference.rsplit_once(':') {
        Some((named, tag)) => (Some(named), tag),
        None => (None, reference),
    };
    let tag = ReleaseTag::parse(tag)?;
    let repositories = repositories()?;
    let default = Some(repositories.default.clone()).filter(|d| !d.is_empty());
    let repository = match (named, repository) {
        (Some(named), Some(flag)) if named != flag => {
            return Err(CliError::InvalidArgument(format!(
                "{reference} names repository {named}, --repository names {flag}"
            )))
        }
        (Some(named), _) => named.to_owned(),
        (None, Some(flag)) => flag.to_owned(),
        (None, None) => default.ok_or(ConfigError::Missing {
            variable: REPOSITORY,
        })?,
    };
    owned(&repositories, &repository)?;
    Ok(ReleaseKey::new(repository, tag))
}

/// The repositories archgate releases into, as the functions read them: the default
/// (`ARCHGATE_REPOSITORY`, may be unset here) and the namespace (a malformed one names
/// nothing).
pub(crate) fn repositories() -> Result<Repositories, CliError> {
    let namespace = required(REPOSITORY_PREFIX).ok();
    if let Some(value) = &namespace {
        check_namespace(value).map_err(|reason| ConfigError::Invalid {
            variable: REPOSITORY_PREFIX,
            value: value.clone(),
            reason: reason.to_owned(),
        })?;
    }
    Ok(Repositories {
        default: required(REPOSITORY).unwrap_or_default(),
        namespace,
    })
}

/// The entries of `ARCHGATE_RETENTION_REPOSITORIES` (names and `prefix/*` patterns), as given.
fn retention_entries() -> Vec<String> {
    std::env::var(RETENTION_REPOSITORIES)
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Refuses a repository that is not archgate's, before any call.
fn owned(repositories: &Repositories, repository: &str) -> Result<(), CliError> {
    if repository.is_empty() || !repositories.owns(repository) {
        return Err(CliError::InvalidArgument(format!(
            "{repository} is not one of archgate's repositories ({})",
            describe(repositories)
        )));
    }
    Ok(())
}

fn describe(repositories: &Repositories) -> String {
    match (repositories.default.as_str(), &repositories.namespace) {
        ("", Some(namespace)) => format!("those under {namespace}"),
        ("", None) => "none configured".to_owned(),
        _ => repositories.to_string(),
    }
}
