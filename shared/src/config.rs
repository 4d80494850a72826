//! One configuration for every function and the CLI, read from the environment once at
//! start-up. Endpoint, region and credentials come the SDK's standard way (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, the role), never from here.

use crate::domain::ManifestMode;
use std::collections::HashMap;

pub const SOURCE_BUCKET: &str = "ARCHGATE_SOURCE_BUCKET";
pub const SOURCE_PREFIX: &str = "ARCHGATE_SOURCE_PREFIX";
pub const REPOSITORY: &str = "ARCHGATE_REPOSITORY";
pub const AMD64_PROJECT: &str = "ARCHGATE_AMD64_PROJECT";
pub const ARM64_PROJECT: &str = "ARCHGATE_ARM64_PROJECT";
pub const MANIFEST_MODE: &str = "ARCHGATE_MANIFEST_MODE";
pub const MANIFEST_PROJECT: &str = "ARCHGATE_MANIFEST_PROJECT";
pub const LEDGER_TABLE: &str = "ARCHGATE_LEDGER_TABLE";
pub const EVENT_BUS: &str = "ARCHGATE_EVENT_BUS";

/// Every variable [`Config::from_env`] reads, for checks that keep deployments in step.
pub const VARIABLES: [&str; 9] = [
    SOURCE_BUCKET,
    SOURCE_PREFIX,
    REPOSITORY,
    AMD64_PROJECT,
    ARM64_PROJECT,
    MANIFEST_MODE,
    MANIFEST_PROJECT,
    LEDGER_TABLE,
    EVENT_BUS,
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub source_bucket: String,
    /// Keys must start with this (may be empty: the whole bucket).
    pub source_prefix: String,
    pub repository: String,
    pub amd64_project: String,
    pub arm64_project: String,
    pub manifest_mode: ManifestMode,
    /// Required in codebuild mode; named in native mode only if set.
    pub manifest_project: Option<String>,
    pub ledger_table: String,
    pub event_bus: String,
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

        let source_bucket = check(SOURCE_BUCKET, required(SOURCE_BUCKET)?, bucket_name)?;
        let source_prefix = lookup(SOURCE_PREFIX).ok_or(ConfigError::Missing {
            variable: SOURCE_PREFIX,
        })?;
        let source_prefix = check(SOURCE_PREFIX, source_prefix, key_prefix)?;
        let repository = check(REPOSITORY, required(REPOSITORY)?, repository_name)?;
        let amd64_project = check(AMD64_PROJECT, required(AMD64_PROJECT)?, project_name)?;
        let arm64_project = check(ARM64_PROJECT, required(ARM64_PROJECT)?, project_name)?;
        let manifest_mode = match required(MANIFEST_MODE)?.as_str() {
            "native" => ManifestMode::Native,
            "codebuild" => ManifestMode::Codebuild,
            other => {
                return Err(ConfigError::Invalid {
                    variable: MANIFEST_MODE,
                    value: other.to_owned(),
                    reason: "expected `native` or `codebuild`".to_owned(),
                })
            }
        };
        let manifest_project = match (manifest_mode, required(MANIFEST_PROJECT)) {
            (_, Ok(value)) => Some(check(MANIFEST_PROJECT, value, project_name)?),
            (ManifestMode::Codebuild, Err(_)) => {
                return Err(ConfigError::Missing {
                    variable: MANIFEST_PROJECT,
                })
            }
            (ManifestMode::Native, Err(_)) => None,
        };
        if amd64_project == arm64_project
            || manifest_project.as_ref() == Some(&amd64_project)
            || manifest_project.as_ref() == Some(&arm64_project)
        {
            return Err(ConfigError::Invalid {
                variable: ARM64_PROJECT,
                value: arm64_project,
                reason: "the amd64, arm64 and manifest projects must be distinct".to_owned(),
            });
        }
        let ledger_table = check(LEDGER_TABLE, required(LEDGER_TABLE)?, table_name)?;
        let event_bus = check(EVENT_BUS, required(EVENT_BUS)?, event_bus_name)?;
        Ok(Config {
            source_bucket,
            source_prefix,
            repository,
            amd64_project,
            arm64_project,
            manifest_mode,
            manifest_project,
            ledger_table,
            event_bus,
        })
    }

    /// The project that builds a role, if archgate runs one for it.
    pub fn project_for(&self, role: crate::domain::BuildRole) -> Option<&str> {
        use crate::domain::BuildRole;
        match role {
            BuildRole::Amd64 => Some(&self.amd64_project),
            BuildRole::Arm64 => Some(&self.arm64_project),
            BuildRole::Manifest => self.manifest_project.as_deref(),
        }
    }

    /// The role of a project archgate runs, by name.
    pub fn role_of_project(&self, project: &str) -> Option<crate::domain::BuildRole> {
        use crate::domain::BuildRole;
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
        if let Some(project) = &self.manifest_project {
            vars.push((MANIFEST_PROJECT, project.clone()));
        }
        vars
    }
}

fn bucket_name(value: &str) -> Result<(), String> {
    let ok_chars = value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ends_ok = value
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && value
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if (3..=63).contains(&value.len()) && ok_chars && ends_ok {
        Ok(())
    } else {
        Err("an S3 bucket name is 3-63 lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit".into())
    }
}

fn key_prefix(value: &str) -> Result<(), String> {
    if value.len() > 512 || value.starts_with('/') || value.chars().any(char::is_control) {
        Err("a key prefix has no leading `/`, no control characters and at most 512 bytes".into())
    } else {
        Ok(())
    }
}

/// ECR: `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`, 2-256 characters.
pub fn repository_name(value: &str) -> Result<(), String> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && !bytes
                .windows(2)
                .any(|w| matches!(w[0], b'.' | b'_' | b'-') && matches!(w[1], b'.' | b'_' | b'-'))
    };
    if (2..=256).contains(&value.len()) && value.split('/').all(component_ok) {
        Ok(())
    } else {
        Err("an ECR repository name is 2-256 lowercase letters, digits and single `.`, `_`, `-` separators, with `/` between components".into())
    }
}

fn project_name(value: &str) -> Result<(), String> {
    let bytes = value.as_bytes();
    if (2..=255).contains(&bytes.len())
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
    {
        Ok(())
    } else {
        Err("a CodeBuild project name is 2-255 letters, digits, `-` and `_`, starting with a letter or digit".into())
    }
}

fn table_name(value: &str) -> Result<(), String> {
    if (3..=255).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        Ok(())
    } else {
        Err("a DynamoDB table name is 3-255 letters, digits, `_`, `.` and `-`".into())
    }
}

fn event_bus_name(value: &str) -> Result<(), String> {
    let name_ok = (1..=256).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'-' | b'_'));
    if name_ok || value.starts_with("arn:aws") {
        Ok(())
    } else {
        Err("an event bus is a name of letters, digits, `/`, `.`, `-` and `_`, or an ARN".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> HashMap<String, String> {
        [
            (SOURCE_BUCKET, "archgate-source"),
            (SOURCE_PREFIX, "releases/"),
            (REPOSITORY, "team/myapp"),
            (AMD64_PROJECT, "archgate-build-amd64"),
            (ARM64_PROJECT, "archgate-build-arm64"),
            (MANIFEST_MODE, "native"),
            (LEDGER_TABLE, "archgate-ledger"),
            (EVENT_BUS, "archgate"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn a_complete_environment_gives_a_config() {
        let config = Config::from_map(&base()).unwrap();
        assert_eq!(config.manifest_mode, ManifestMode::Native);
        assert_eq!(config.manifest_project, None);
        assert_eq!(
            Config::from_map(
                &config
                    .to_env()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect()
            )
            .unwrap(),
            config
        );
    }

    #[test]
    fn every_required_variable_is_named_when_missing() {
        for variable in VARIABLES.into_iter().filter(|v| *v != MANIFEST_PROJECT) {
            let mut vars = base();
            vars.remove(variable);
            let err = Config::from_map(&vars).unwrap_err();
            assert_eq!(err, ConfigError::Missing { variable }, "{variable}");
            assert!(err.to_string().contains(variable));
        }
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            (SOURCE_BUCKET, "Bad_Bucket"),
            (REPOSITORY, "MyApp"),
            (REPOSITORY, "a//b"),
            (AMD64_PROJECT, "-x"),
            (MANIFEST_MODE, "buildx"),
            (LEDGER_TABLE, "t"),
            (EVENT_BUS, "bus with spaces"),
        ];
        for (variable, value) in cases {
            let mut vars = base();
            vars.insert(variable.to_owned(), value.to_owned());
            let err = Config::from_map(&vars).unwrap_err();
            assert!(err.to_string().starts_with(variable), "{err}");
        }
    }

    #[test]
    fn codebuild_mode_needs_the_manifest_project() {
        let mut vars = base();
        vars.insert(MANIFEST_MODE.into(), "codebuild".into());
        assert_eq!(
            Config::from_map(&vars).unwrap_err(),
            ConfigError::Missing {
                variable: MANIFEST_PROJECT
            }
        );
        vars.insert(MANIFEST_PROJECT.into(), "archgate-manifest".into());
        assert_eq!(
            Config::from_map(&vars).unwrap().manifest_project.as_deref(),
            Some("archgate-manifest")
        );
    }
}
