//! One configuration for every function and the CLI, read from the environment once at
//! start-up. Endpoint, region and credentials come the SDK's standard way (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, the role), never from here.

mod allowlist;
mod gate;
mod names;
pub mod policy;
mod reconcile;
mod retention;
mod sample;
mod variables;

pub use names::repository_name;
pub use reconcile::ReconcilePolicy;
pub use retention::{ReleaseRules, RetentionConfig};
pub use sample::{sample_lookup, SAMPLE};
pub use variables::*;

use crate::domain::gate::Policy;
use crate::domain::repository::Repositories;
use crate::domain::{BuildRole, ManifestMode};
use names::{bucket_name, event_bus_name, key_prefix, project_name, table_name};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub source_bucket: String,
    /// Keys must start with this (may be empty: the whole bucket).
    pub source_prefix: String,
    /// The default repository: every upload's without a namespace, and a key's without a
    /// folder with one.
    pub repository: String,
    /// The namespace of repositories a key may name (`ARCHGATE_REPOSITORY_PREFIX`).
    pub repository_prefix: Option<String>,
    /// The KMS key the namespace's new repositories are encrypted with
    /// (`ARCHGATE_REPOSITORY_KMS_KEY`); AES256 when `None`.
    pub repository_kms_key: Option<String>,
    pub amd64_project: String,
    pub arm64_project: String,
    pub manifest_mode: ManifestMode,
    /// Required in codebuild mode; named in native mode only if set.
    pub manifest_project: Option<String>,
    pub ledger_table: String,
    pub event_bus: String,
    /// The scan gate's policy (default: CRITICAL 0, the rest unlimited, fail closed).
    pub gate: Policy,
    /// Tags that follow the newest published release (e.g. `latest`).
    pub moving_tags: Vec<String>,
    /// The release-level retention rules (the defaults of each repository's policy).
    pub releases: ReleaseRules,
    /// When set, events of other accounts are ignored.
    pub account_id: Option<String>,
    /// When set, events of other regions are ignored.
    pub region: Option<String>,
    /// The KMS key that signs release attestations (`ARCHGATE_SIGNING_KEY`); unsigned when
    /// `None`.
    pub signing_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{variable} is not set")]
    Missing { variable: &'static str },
    #[error("{variable}={value:?} is invalid: {reason}")]
    Invalid {
        variable: &'static str,
        value: String,
        reason: String,
    },
    /// More than one problem, each on its own line.
    #[error("{} configuration problems:{}", .0.len(), .0.iter().map(|p| format!("\n  - {p}")).collect::<String>())]
    Several(Vec<ConfigError>),
    #[error("{name} is not a repository setting (one of {})", policy::SETTINGS.join(", "))]
    UnknownSetting { name: String },
}

/// The problems found while reading a configuration.
#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<ConfigError>);

impl Problems {
    /// The value, or `None` with its problem kept.
    pub(crate) fn take<T>(&mut self, result: Result<T, ConfigError>) -> Option<T> {
        result.map_err(|problem| self.0.push(problem)).ok()
    }

    /// One problem as itself, several as [`ConfigError::Several`].
    pub(crate) fn into_error(mut self) -> ConfigError {
        match self.0.len() {
            1 => self.0.remove(0),
            _ => ConfigError::Several(self.0),
        }
    }

    pub(crate) fn finish(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.into_error())
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_map(vars: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| vars.get(name).cloned())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let required = |variable: &'static str| {
            lookup(variable)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing { variable })
        };
        let check =
            |variable: &'static str, value: String, rule: fn(&str) -> Result<(), String>| {
                rule(&value)
                    .map(|()| value.clone())
                    .map_err(|reason| ConfigError::Invalid {
                        variable,
                        value,
                        reason,
                    })
            };

        // Every problem is collected, so one start names them all.
        let mut problems = Problems::default();
        let source_bucket = problems
            .take(required(SOURCE_BUCKET).and_then(|v| check(SOURCE_BUCKET, v, bucket_name)));
        let source_prefix = problems.take(
            lookup(SOURCE_PREFIX)
                .ok_or(ConfigError::Missing {
                    variable: SOURCE_PREFIX,
                })
                .and_then(|v| check(SOURCE_PREFIX, v, key_prefix)),
        );
        let repository =
            problems.take(required(REPOSITORY).and_then(|v| check(REPOSITORY, v, repository_name)));
        let repository_prefix = problems.take(
            lookup(REPOSITORY_PREFIX)
                .filter(|v| !v.is_empty())
                .map(|v| check(REPOSITORY_PREFIX, v, names::repository_namespace))
                .transpose(),
        );
        let repository_kms_key = problems.take(
            lookup(REPOSITORY_KMS_KEY)
                .filter(|v| !v.is_empty())
                .map(|v| check(REPOSITORY_KMS_KEY, v, names::kms_key))
                .transpose(),
        );
        let amd64_project = problems
            .take(required(AMD64_PROJECT).and_then(|v| check(AMD64_PROJECT, v, project_name)));
        let arm64_project = problems
            .take(required(ARM64_PROJECT).and_then(|v| check(ARM64_PROJECT, v, project_name)));
        let manifest_mode =
            problems.take(
                required(MANIFEST_MODE).and_then(|mode| match mode.as_str() {
                    "native" => Ok(ManifestMode::Native),
                    "codebuild" => Ok(ManifestMode::Codebuild),
                    _ => Err(ConfigError::Invalid {
                        variable: MANIFEST_MODE,
                        value: mode,
                        reason: "expected `native` or `codebuild`".to_owned(),
                    }),
                }),
            );
        let manifest_project = match (manifest_mode, required(MANIFEST_PROJECT)) {
            (_, Ok(value)) => problems
                .take(check(MANIFEST_PROJECT, value, project_name))
                .map(Some),
            (Some(ManifestMode::Codebuild), Err(missing)) => problems.take(Err(missing)),
            (_, Err(_)) => Some(None),
        };
        if let (Some(amd64), Some(arm64), Some(manifest)) =
            (&amd64_project, &arm64_project, &manifest_project)
        {
            if amd64 == arm64
                || manifest.as_ref() == Some(amd64)
                || manifest.as_ref() == Some(arm64)
            {
                problems.0.push(ConfigError::Invalid {
                    variable: ARM64_PROJECT,
                    value: arm64.clone(),
                    reason: "the amd64, arm64 and manifest projects must be distinct".to_owned(),
                });
            }
        }
        let ledger_table =
            problems.take(required(LEDGER_TABLE).and_then(|v| check(LEDGER_TABLE, v, table_name)));
        let event_bus =
            problems.take(required(EVENT_BUS).and_then(|v| check(EVENT_BUS, v, event_bus_name)));
        let gate = gate::policy(&lookup, &mut problems);
        let moving_tags = problems.take(moving_tags(lookup(MOVING_TAGS).unwrap_or_default()));
        let releases = ReleaseRules::collect(&lookup, &mut problems);
        let account_id = problems.take(
            required(ACCOUNT_ID)
                .ok()
                .map(|account| check(ACCOUNT_ID, account, names::account_id))
                .transpose(),
        );
        let region = problems.take(
            required(REGION)
                .ok()
                .map(|name| check(REGION, name, names::region))
                .transpose(),
        );
        let signing_key = problems.take(
            required(SIGNING_KEY)
                .ok()
                .map(|key| check(SIGNING_KEY, key, names::kms_key))
                .transpose(),
        );
        // Every value is there exactly when no problem was found.
        let built = (|| {
            Some(Config {
                source_bucket: source_bucket?,
                source_prefix: source_prefix?,
                repository: repository?,
                repository_prefix: repository_prefix?,
                repository_kms_key: repository_kms_key?,
                amd64_project: amd64_project?,
                arm64_project: arm64_project?,
                manifest_mode: manifest_mode?,
                manifest_project: manifest_project?,
                ledger_table: ledger_table?,
                event_bus: event_bus?,
                gate: gate?,
                moving_tags: moving_tags?,
                releases: releases?,
                account_id: account_id?,
                region: region?,
                signing_key: signing_key?,
            })
        })();
        match built {
            Some(config) => {
                problems.finish()?;
                Ok(config)
            }
            None => Err(problems.into_error()),
        }
    }

    /// The repositories archgate releases into.
    pub fn repositories(&self) -> Repositories {
        Repositories {
            default: self.repository.clone(),
            namespace: self.repository_prefix.clone(),
        }
    }

    /// The project that builds a role, if archgate runs one for it.
    pub fn project_for(&self, role: BuildRole) -> Option<&str> {
        match role {
            BuildRole::Amd64 => Some(&self.amd64_project),
            BuildRole::Arm64 => Some(&self.arm64_project),
            BuildRole::Manifest => self.manifest_project.as_deref(),
        }
    }

    /// The role of a project archgate runs, by name.
    pub fn role_of_project(&self, project: &str) -> Option<BuildRole> {
        [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest]
            .into_iter()
            .find(|role| self.project_for(*role) == Some(project))
    }

    /// The variables as a map, for child processes and tests.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            (SOURCE_BUCKET, self.source_bucket.clone()),
            (SOURCE_PREFIX, self.source_prefix.clone()),
            (REPOSITORY, self.repository.clone()),
            (AMD64_PROJECT, self.amd64_project.clone()),
            (ARM64_PROJECT, self.arm64_project.clone()),
            (MANIFEST_MODE, self.manifest_mode.as_str().to_owned()),
            (LEDGER_TABLE, self.ledger_table.clone()),
            (EVENT_BUS, self.event_bus.clone()),
        ];
        if let Some(prefix) = &self.repository_prefix {
            vars.push((REPOSITORY_PREFIX, prefix.clone()));
        }
        if let Some(key) = &self.repository_kms_key {
            vars.push((REPOSITORY_KMS_KEY, key.clone()));
        }
        if let Some(project) = &self.manifest_project {
            vars.push((MANIFEST_PROJECT, project.clone()));
        }
        vars.extend(gate::to_env(&self.gate));
        vars.push((MOVING_TAGS, self.moving_tags.join(",")));
        vars.extend(self.releases.to_env());
        if let Some(account) = &self.account_id {
            vars.push((ACCOUNT_ID, account.clone()));
        }
        if let Some(region) = &self.region {
            vars.push((REGION, region.clone()));
        }
        if let Some(key) = &self.signing_key {
            vars.push((SIGNING_KEY, key.clone()));
        }
        vars
    }
}

impl Config {
    /// The moving tags of a value of `ARCHGATE_MOVING_TAGS`, checked as [`Config`] checks them.
    pub fn moving_tags_from(value: String) -> Result<Vec<String>, ConfigError> {
        moving_tags(value)
    }
}

pub(crate) fn moving_tags(value: String) -> Result<Vec<String>, ConfigError> {
    let mut tags: Vec<String> = Vec::new();
    for tag in value.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let valid = crate::domain::ReleaseTag::parse(tag).is_ok();
        if !valid {
            return Err(ConfigError::Invalid {
                variable: MOVING_TAGS,
                value: value.clone(),
                reason: format!("`{tag}` is not a valid image tag ([A-Za-z0-9_.-], starting with a letter or digit)"),
            });
        }
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    Ok(tags)
}
