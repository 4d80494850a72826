//! The reconciler's timing, read from its environment.

use super::{ConfigError, RECONCILE_DEADLINE_HOURS, RECONCILE_STALE_MINUTES};
use crate::domain::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcilePolicy {
    /// A release untouched for this long is re-read.
    pub stale_after_ms: Millis,
    /// A release whose current attempt started longer ago than this and still waits for
    /// builds or scans fails.
    pub deadline_ms: Millis,
}

impl ReconcilePolicy {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let number = |variable: &'static str, default: i64| match lookup(variable)
            .map(|v| v.trim().to_owned())
        {
            None => Ok(default),
            Some(value) => match value.parse::<i64>() {
                Ok(n) if n > 0 && n <= 100_000 => Ok(n),
                _ => Err(ConfigError::Invalid {
                    variable,
                    value,
                    reason: "expected a whole number from 1 to 100000".to_owned(),
                }),
            },
        };
        Ok(ReconcilePolicy {
            stale_after_ms: number(RECONCILE_STALE_MINUTES, 15)? * 60_000,
            deadline_ms: number(RECONCILE_DEADLINE_HOURS, 6)? * 3_600_000,
        })
    }
}
