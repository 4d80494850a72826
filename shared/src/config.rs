//! One configuration for every function and the CLI, read from the environment once at
//! start-up. Endpoint, region and credentials come the SDK's standard way (`AWS_ENDPOINT_URL`,
//! `AWS_REGION`, the role), never from here.

use crate::domain::gate::{AllowEntry, OnScanFailure, Policy, Severity};
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
pub const GATE_ALLOWLIST: &str = "ARCHGATE_GATE_ALLOWLIST";
pub const GATE_ON_SCAN_FAILURE: &str = "ARCHGATE_GATE_ON_SCAN_FAILURE";
pub const MOVING_TAGS: &str = "ARCHGATE_MOVING_TAGS";
/// The deployment's account and region; events from elsewhere are ignored (optional).
pub const ACCOUNT_ID: &str = "ARCHGATE_ACCOUNT_ID";
pub const REGION: &str = "ARCHGATE_REGION";
/// The gate's per-severity limits, one variable each.
pub const GATE_MAX: [&str; 6] = [
    "ARCHGATE_GATE_MAX_CRITICAL",
    "ARCHGATE_GATE_MAX_HIGH",
    "ARCHGATE_GATE_MAX_MEDIUM",
    "ARCHGATE_GATE_MAX_LOW",
    "ARCHGATE_GATE_MAX_INFORMATIONAL",
    "ARCHGATE_GATE_MAX_UNDEFINED",
];

/// The variables [`Config::from_env`] requires (or, for the manifest project, may require).
/// The gate's variables ([`GATE_MAX`], [`GATE_ALLOWLIST`], [`GATE_ON_SCAN_FAILURE`],
/// [`MOVING_TAGS`]) are optional with documented defaults.
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
    /// The scan gate's policy (default: CRITICAL 0, the rest unlimited, fail closed).
    pub gate: Policy,
    /// Tags that follow the newest published release (e.g. `latest`).
    pub moving_tags: Vec<String>,
    /// When set, events of other accounts are ignored.
    pub account_id: Option<String>,
    /// When set, events of other regions are ignored.
    pub region: Option<String>,
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
        let gate = gate_policy(&lookup)?;
        let moving_tags = moving_tags(lookup(MOVING_TAGS).unwrap_or_default())?;
        let account_id = match required(ACCOUNT_ID) {
            Ok(account) if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) => {
                Some(account)
            }
            Ok(account) => {
                return Err(ConfigError::Invalid {
                    variable: ACCOUNT_ID,
                    value: account,
                    reason: "an AWS account id is 12 digits".to_owned(),
                })
            }
            Err(_) => None,
        };
        let region = match required(REGION) {
            Ok(region)
                if !region.is_empty()
                    && region
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
            {
                Some(region)
            }
            Ok(region) => {
                return Err(ConfigError::Invalid {
                    variable: REGION,
                    value: region,
                    reason: "a region looks like eu-west-1".to_owned(),
                })
            }
            Err(_) => None,
        };
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
            gate,
            moving_tags,
            account_id,
            region,
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
        for (severity, variable) in Severity::ALL.into_iter().zip(GATE_MAX) {
            let limit = self.gate.max.get(&severity).copied().flatten();
            vars.push((
                variable,
                limit.map_or_else(|| "unlimited".to_owned(), |l| l.to_string()),
            ));
        }
        vars.push((
            GATE_ALLOWLIST,
            serde_json::to_string(&self.gate.allowlist).expect("allowlist serialises"),
        ));
        vars.push((
            GATE_ON_SCAN_FAILURE,
            match self.gate.on_scan_failure {
                OnScanFailure::Block => "block".to_owned(),
                OnScanFailure::Pass => "pass".to_owned(),
            },
        ));
        vars.push((MOVING_TAGS, self.moving_tags.join(",")));
        if let Some(account) = &self.account_id {
            vars.push((ACCOUNT_ID, account.clone()));
        }
        if let Some(region) = &self.region {
            vars.push((REGION, region.clone()));
        }
        vars
    }
}

fn gate_policy(lookup: &impl Fn(&str) -> Option<String>) -> Result<Policy, ConfigError> {
    let mut policy = Policy::default();
    for (severity, variable) in Severity::ALL.into_iter().zip(GATE_MAX) {
        let Some(value) = lookup(variable).map(|v| v.trim().to_owned()) else {
            continue;
        };
        let limit = match value.as_str() {
            "" | "unlimited" => None,
            number => Some(number.parse::<u64>().map_err(|_| ConfigError::Invalid {
                variable,
                value: value.clone(),
                reason: "expected a count (0 or more) or `unlimited`".to_owned(),
            })?),
        };
        policy.max.insert(severity, limit);
    }
    policy.on_scan_failure = match lookup(GATE_ON_SCAN_FAILURE)
        .map(|v| v.trim().to_owned())
        .as_deref()
    {
        None | Some("") | Some("block") => OnScanFailure::Block,
        Some("pass") => OnScanFailure::Pass,
        Some(other) => {
            return Err(ConfigError::Invalid {
                variable: GATE_ON_SCAN_FAILURE,
                value: other.to_owned(),
                reason: "expected `block` or `pass`".to_owned(),
            })
        }
    };
    if let Some(value) = lookup(GATE_ALLOWLIST)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    {
        policy.allowlist = allowlist(&value)?;
    }
    Ok(policy)
}

/// `ARCHGATE_GATE_ALLOWLIST`: a JSON array of `{"id", "expires": "YYYY-MM-DD", "reason"}`, or
/// the path of a file holding one.
fn allowlist(value: &str) -> Result<Vec<AllowEntry>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        variable: GATE_ALLOWLIST,
        value: value.chars().take(100).collect(),
        reason,
    };
    let text = if value.starts_with('[') {
        value.to_owned()
    } else {
        std::fs::read_to_string(value)
            .map_err(|e| invalid(format!("not a JSON array, and not a readable file: {e}")))?
    };
    let entries: Vec<serde_json::Value> =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not a JSON array: {e}")))?;
    let mut allowlist = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(serde_json::Value::as_str)
                .map(str::trim)
        };
        let named = field("id").unwrap_or("?");
        let entry_error = |problem: &str| invalid(format!("entry {index} ({named}): {problem}"));
        let id = field("id")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| entry_error("`id` is missing"))?;
        let expires =
            field("expires").ok_or_else(|| entry_error("`expires` (YYYY-MM-DD) is missing"))?;
        if !is_iso_date(expires) {
            return Err(entry_error(&format!(
                "`expires` {expires:?} is not a YYYY-MM-DD date"
            )));
        }
        let reason = field("reason")
            .filter(|v| !v.is_empty())
            .ok_or_else(|| entry_error("`reason` is missing: say why the finding is accepted"))?;
        allowlist.push(AllowEntry {
            id: id.to_owned(),
            expires: expires.to_owned(),
            reason: reason.to_owned(),
        });
    }
    Ok(allowlist)
}

fn is_iso_date(value: &str) -> bool {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    value.len() == 10 && time::Date::parse(value, &format).is_ok()
}

fn moving_tags(value: String) -> Result<Vec<String>, ConfigError> {
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
    fn the_gate_defaults_to_no_critical_and_fail_closed() {
        let config = Config::from_map(&base()).unwrap();
        assert_eq!(config.gate, Policy::default());
        assert!(config.moving_tags.is_empty());
    }

    #[test]
    fn gate_variables_are_read_and_checked() {
        let mut vars = base();
        vars.insert("ARCHGATE_GATE_MAX_HIGH".into(), "3".into());
        vars.insert(GATE_ON_SCAN_FAILURE.into(), "pass".into());
        vars.insert(MOVING_TAGS.into(), "latest, stable,latest".into());
        vars.insert(
            GATE_ALLOWLIST.into(),
            r#"[{"id": "CVE-2024-1", "expires": "2026-12-31", "reason": "not reachable"}]"#.into(),
        );
        let config = Config::from_map(&vars).unwrap();
        assert_eq!(config.gate.max[&Severity::High], Some(3));
        assert_eq!(config.gate.on_scan_failure, OnScanFailure::Pass);
        assert_eq!(config.moving_tags, ["latest", "stable"]);
        assert_eq!(config.gate.allowlist[0].id, "CVE-2024-1");
        let round_trip: HashMap<String, String> = config
            .to_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(Config::from_map(&round_trip).unwrap(), config);
    }

    #[test]
    fn a_bad_allowlist_entry_is_named() {
        for (entry, expected) in [
            (
                r#"[{"id": "CVE-1", "expires": "2026-02-30", "reason": "x"}]"#,
                "entry 0 (CVE-1): `expires`",
            ),
            (
                r#"[{"id": "CVE-1", "expires": "2026-01-01", "reason": "x"}, {"id": "CVE-2", "expires": "soon", "reason": "x"}]"#,
                "entry 1 (CVE-2)",
            ),
            (
                r#"[{"id": "CVE-3", "expires": "2026-01-01"}]"#,
                "`reason` is missing",
            ),
            (r#"{"id": "CVE-3"}"#, "not a readable file"),
            ("[1,", "not a JSON array"),
        ] {
            let mut vars = base();
            vars.insert(GATE_ALLOWLIST.into(), entry.into());
            let err = Config::from_map(&vars).unwrap_err().to_string();
            assert!(
                err.starts_with(GATE_ALLOWLIST) && err.contains(expected),
                "{err}"
            );
        }
    }

    #[test]
    fn bad_gate_values_name_their_variable() {
        for (variable, value) in [
            ("ARCHGATE_GATE_MAX_CRITICAL", "-1"),
            ("ARCHGATE_GATE_MAX_LOW", "many"),
            (GATE_ON_SCAN_FAILURE, "maybe"),
            (MOVING_TAGS, "latest,-bad"),
        ] {
            let mut vars = base();
            vars.insert(variable.into(), value.into());
            let err = Config::from_map(&vars).unwrap_err().to_string();
            assert!(err.starts_with(variable), "{err}");
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
