//! A repository's effective policy: the environment's values (the deployment's defaults)
//! overlaid with what the repository sets in the ledger, each read and checked exactly as the
//! environment variable of the same name would be.

use super::gate;
use super::retention::ReleaseRules;
use super::{moving_tags, Config, ConfigError, Problems, MOVING_TAGS};
use crate::domain::gate::Policy;
use crate::domain::policy::{PolicyRead, PolicyRecord};
use std::collections::BTreeMap;

/// The settings a repository may override, by their variable names without `ARCHGATE_`.
pub const SETTINGS: [&str; 13] = [
    "GATE_MAX_CRITICAL",
    "GATE_MAX_HIGH",
    "GATE_MAX_MEDIUM",
    "GATE_MAX_LOW",
    "GATE_MAX_INFORMATIONAL",
    "GATE_MAX_UNDEFINED",
    "GATE_ALLOWLIST",
    "GATE_ON_SCAN_FAILURE",
    "MOVING_TAGS",
    "RETENTION_KEEP_RELEASES",
    "RETENTION_KEEP_DAYS",
    "RETENTION_PROTECT",
    "RETENTION_ATTEMPT_DAYS",
];

const PREFIX: &str = "ARCHGATE_";

/// One repository's policy as the gate, promotion and retention apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryPolicy {
    /// The stored version applied; 0 when the repository sets nothing.
    pub version: u64,
    pub gate: Policy,
    pub moving_tags: Vec<String>,
    pub releases: ReleaseRules,
}

/// Where a setting's effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The repository's policy in the ledger.
    Repository,
    /// The deployment's environment.
    Environment,
    /// archgate's built-in default (the variable is not set).
    BuiltIn,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Repository => "repository",
            Source::Environment => "environment",
            Source::BuiltIn => "default",
        })
    }
}

/// The deployment's defaults as settings: the environment's values, read back from what
/// [`Config`] parsed (so a configuration built in code is the default too).
pub fn defaults(config: &Config) -> BTreeMap<&'static str, String> {
    settings(
        gate::to_env(&config.gate)
            .into_iter()
            .chain([(MOVING_TAGS, config.moving_tags.join(","))])
            .chain(config.releases.to_env()),
    )
}

/// Variables as settings: the repository settings among them, by name without the prefix.
fn settings(
    variables: impl IntoIterator<Item = (&'static str, String)>,
) -> BTreeMap<&'static str, String> {
    variables
        .into_iter()
        .filter_map(|(variable, value)| Some((variable.strip_prefix(PREFIX)?, value)))
        .filter(|(name, _)| SETTINGS.contains(name))
        .collect()
}

/// The policy `defaults` overlaid with `values`, every problem named at once. A name that is
/// not a setting is a problem too.
pub fn resolve(
    defaults: &BTreeMap<&'static str, String>,
    values: &BTreeMap<String, String>,
    version: u64,
) -> Result<RepositoryPolicy, ConfigError> {
    let mut problems = Problems::default();
    for name in values.keys() {
        if !SETTINGS.contains(&name.as_str()) {
            problems
                .0
                .push(ConfigError::UnknownSetting { name: name.clone() });
        }
    }
    let lookup = |variable: &str| {
        let name = variable.strip_prefix(PREFIX)?;
        values
            .get(name)
            .cloned()
            .or_else(|| defaults.get(name).cloned())
    };
    let gate = gate::policy(&lookup, &mut problems);
    let moving_tags = problems.take(moving_tags(lookup(MOVING_TAGS).unwrap_or_default()));
    let releases = ReleaseRules::collect(&lookup, &mut problems);
    match (gate, moving_tags, releases) {
        (Some(gate), Some(moving_tags), Some(releases)) if problems.0.is_empty() => {
            Ok(RepositoryPolicy {
                version,
                gate,
                moving_tags,
                releases,
            })
        }
        _ => Err(problems.into_error()),
    }
}

/// Why a repository's policy cannot be applied: whoever needs it fails closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy of {repository} in the ledger does not parse: {reason}")]
    Unreadable { repository: String, reason: String },
    #[error("the policy of {repository} (version {version}) is invalid: {source}")]
    Invalid {
        repository: String,
        version: u64,
        source: ConfigError,
    },
}

/// The effective policy of a repository given what the ledger holds for it.
pub fn effective(
    config: &Config,
    repository: &str,
    read: PolicyRead,
) -> Result<RepositoryPolicy, PolicyError> {
    overlay(&defaults(config), repository, read)
}

/// A repository's release rules as retention applies them: `defaults` (retention's
/// environment) overlaid with what the repository sets, and the version applied.
pub fn release_rules(
    defaults: &ReleaseRules,
    repository: &str,
    read: PolicyRead,
) -> Result<(ReleaseRules, u64), PolicyError> {
    overlay(&settings(defaults.to_env()), repository, read)
        .map(|policy| (policy.releases, policy.version))
}

/// `defaults` overlaid with what the ledger holds for a repository (nothing: the defaults,
/// version 0); an item that cannot be read, or whose values do not pass, is an error.
fn overlay(
    defaults: &BTreeMap<&'static str, String>,
    repository: &str,
    read: PolicyRead,
) -> Result<RepositoryPolicy, PolicyError> {
    let (values, version) = match read {
        PolicyRead::Unset => (BTreeMap::new(), 0),
        PolicyRead::Found(PolicyRecord {
            values, version, ..
        }) => (values, version),
        PolicyRead::Unreadable { reason, .. } => {
            return Err(PolicyError::Unreadable {
                repository: repository.to_owned(),
                reason,
            })
        }
    };
    resolve(defaults, &values, version).map_err(|source| PolicyError::Invalid {
        repository: repository.to_owned(),
        version,
        source,
    })
}

/// Where each setting's value comes from, given the repository's values and the environment.
pub fn sources(
    values: &BTreeMap<String, String>,
    environment: impl Fn(&str) -> Option<String>,
) -> BTreeMap<&'static str, Source> {
    SETTINGS
        .into_iter()
        .map(|name| {
            let source = if values.contains_key(name) {
                Source::Repository
            } else if environment(&format!("{PREFIX}{name}")).is_some() {
                Source::Environment
            } else {
                Source::BuiltIn
            };
            (name, source)
        })
        .collect()
}

/// `NAME=VALUE` arguments as settings, every malformed one named at once.
pub fn parse_assignments(arguments: &[String]) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut values = BTreeMap::new();
    let mut problems = Problems::default();
    for argument in arguments {
        match argument.split_once('=') {
            Some((name, value)) => {
                let name = name.trim();
                let name = name.strip_prefix(PREFIX).unwrap_or(name);
                values.insert(name.to_owned(), value.trim().to_owned());
            }
            None => problems.0.push(ConfigError::UnknownSetting {
                name: format!("{argument} (expected NAME=VALUE)"),
            }),
        }
    }
    problems.finish()?;
    Ok(values)
}
