//! Retention's configuration: which repositories, how old an untagged image must be, the
//! safety valve, how many repositories at a time.

use super::{repository_name, ConfigError, Problems, EVENT_BUS, LEDGER_TABLE};
use crate::domain::retention::{ReleasePolicy, RetentionPolicy, TagPattern};
use crate::domain::Millis;

use super::variables::{
    RETENTION_ATTEMPT_DAYS, RETENTION_CONCURRENCY, RETENTION_KEEP_DAYS, RETENTION_KEEP_RELEASES,
    RETENTION_MAX_DELETE_SHARE, RETENTION_PROTECT, RETENTION_REPOSITORIES, RETENTION_UNTAGGED_DAYS,
};

const DAY_MS: Millis = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct RetentionConfig {
    /// Names, or `prefix/*` patterns resolved with DescribeRepositories.
    pub repositories: Vec<String>,
    pub untagged_days: u32,
    pub max_delete_share: f64,
    pub concurrency: usize,
    pub releases: ReleaseRules,
    pub ledger_table: String,
    pub event_bus: String,
}

/// The release-level rules; nothing set (the default) expires no release.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseRules {
    /// Keep the newest N published releases (release-level expiry by count when set).
    pub keep_releases: Option<u32>,
    /// Keep published releases younger than D days (release-level expiry by age when set).
    pub keep_days: Option<u32>,
    /// Releases whose tag matches one of these never expire.
    pub protect: Vec<TagPattern>,
    /// Blocked and failed attempts expire this many days after they started (when set).
    pub attempt_days: Option<u32>,
}

impl ReleaseRules {
    /// Reads the four variables, every problem collected.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Problems::default();
        let rules = Self::collect(&lookup, &mut problems);
        match rules {
            Some(rules) => {
                problems.finish()?;
                Ok(rules)
            }
            None => Err(problems.into_error()),
        }
    }

    pub(super) fn collect(
        lookup: &impl Fn(&str) -> Option<String>,
        problems: &mut Problems,
    ) -> Option<Self> {
        let keep_releases = problems.take(optional_count(
            lookup,
            RETENTION_KEEP_RELEASES,
            100_000,
            "releases",
        ));
        let keep_days = problems.take(optional_count(lookup, RETENTION_KEEP_DAYS, 36_500, "days"));
        let attempt_days = problems.take(optional_count(
            lookup,
            RETENTION_ATTEMPT_DAYS,
            36_500,
            "days",
        ));
        let protect_value = lookup(RETENTION_PROTECT).unwrap_or_default();
        let protect =
            problems.take(
                tag_patterns(&protect_value).map_err(|reason| ConfigError::Invalid {
                    variable: RETENTION_PROTECT,
                    value: protect_value.clone(),
                    reason,
                }),
            );
        Some(ReleaseRules {
            keep_releases: keep_releases?,
            keep_days: keep_days?,
            protect: protect?,
            attempt_days: attempt_days?,
        })
    }

    /// The variables that give these rules back (an unset rule as an empty value).
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let count = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
        vec![
            (RETENTION_KEEP_RELEASES, count(self.keep_releases)),
            (RETENTION_KEEP_DAYS, count(self.keep_days)),
            (
                RETENTION_PROTECT,
                self.protect
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            (RETENTION_ATTEMPT_DAYS, count(self.attempt_days)),
        ]
    }

    /// The release-level policy with the safety valve's share.
    pub fn policy(&self, max_expire_share: f64, force: bool) -> ReleasePolicy {
        ReleasePolicy {
            keep_releases: self.keep_releases,
            keep_days: self.keep_days,
            protect: self.protect.clone(),
            attempt_days: self.attempt_days,
            max_expire_share,
            force,
        }
    }
}

/// An optional whole number in `1..=max`: unset or empty is `None`.
fn optional_count(
    lookup: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    max: u32,
    unit: &str,
) -> Result<Option<u32>, ConfigError> {
    let Some(value) = lookup(variable).map(|v| v.trim().to_owned()) else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    match value.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(ConfigError::Invalid {
            variable,
            value,
            reason: format!("expected a whole number of {unit} from 1 to {max}, or nothing"),
        }),
    }
}

/// Comma-separated tag patterns: ECR's tag characters and `*`.
fn tag_patterns(value: &str) -> Result<Vec<TagPattern>, String> {
    let mut patterns = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '*');
        if entry.len() > 128 || !entry.chars().all(allowed) {
            return Err(format!(
                "`{entry}` is not a tag pattern (letters, digits, `.`, `_`, `-` and `*`, at most 128)"
            ));
        }
        patterns.push(TagPattern::new(entry));
    }
    Ok(patterns)
}

impl RetentionConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let invalid = |variable, value: &str, reason: &str| ConfigError::Invalid {
            variable,
            value: value.to_owned(),
            reason: reason.to_owned(),
        };
        let required = |variable: &'static str| {
            lookup(variable)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or(ConfigError::Missing { variable })
        };
        // Every problem is collected, so one start names them all.
        let mut problems = Problems::default();
        let repositories = problems.take(required(RETENTION_REPOSITORIES).and_then(|list| {
            let mut repositories = Vec::new();
            for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
                let name = entry.strip_suffix("/*").unwrap_or(entry);
                repository_name(name)
                    .map_err(|reason| invalid(RETENTION_REPOSITORIES, entry, &reason))?;
                repositories.push(entry.to_owned());
            }
            Ok(repositories)
        }));
        let untagged_days = problems.take(
            match lookup(RETENTION_UNTAGGED_DAYS).map(|v| v.trim().to_owned()) {
                None => Ok(7),
                Some(value) => match value.parse::<i64>() {
                    Ok(days) if days > 0 && days <= 36500 => Ok(days as u32),
                    Ok(_) => Err(invalid(
                        RETENTION_UNTAGGED_DAYS,
                        &value,
                        "the age must be at least 1 day",
                    )),
                    Err(_) => Err(invalid(
                        RETENTION_UNTAGGED_DAYS,
                        &value,
                        "expected a whole number of days",
                    )),
                },
            },
        );
        let max_delete_share = problems.take(
            match lookup(RETENTION_MAX_DELETE_SHARE).map(|v| v.trim().to_owned()) {
                None => Ok(0.5),
                Some(value) => match value.parse::<f64>() {
                    Ok(share) if share > 0.0 && share <= 1.0 => Ok(share),
                    _ => Err(invalid(
                        RETENTION_MAX_DELETE_SHARE,
                        &value,
                        "expected a share above 0 and at most 1, e.g. 0.5",
                    )),
                },
            },
        );
        let concurrency = problems.take(
            match lookup(RETENTION_CONCURRENCY).map(|v| v.trim().to_owned()) {
                None => Ok(4),
                Some(value) => match value.parse::<usize>() {
                    Ok(n) if (1..=32).contains(&n) => Ok(n),
                    _ => Err(invalid(RETENTION_CONCURRENCY, &value, "expected 1 to 32")),
                },
            },
        );
        let releases = ReleaseRules::collect(&lookup, &mut problems);
        let ledger_table = problems.take(required(LEDGER_TABLE));
        let event_bus = problems.take(required(EVENT_BUS));
        // Every value is there exactly when no problem was found.
        let built = (|| {
            Some(RetentionConfig {
                repositories: repositories?,
                untagged_days: untagged_days?,
                max_delete_share: max_delete_share?,
                concurrency: concurrency?,
                releases: releases?,
                ledger_table: ledger_table?,
                event_bus: event_bus?,
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

    pub fn policy(&self, force: bool) -> RetentionPolicy {
        RetentionPolicy {
            untagged_age_ms: i64::from(self.untagged_days) * DAY_MS,
            max_delete_share: self.max_delete_share,
            delete_orphan_referrers: false,
            force,
        }
    }

    /// The release-level policy; the safety valve's share is the image plan's.
    pub fn release_policy(&self, force: bool) -> ReleasePolicy {
        self.releases.policy(self.max_delete_share, force)
    }
}
