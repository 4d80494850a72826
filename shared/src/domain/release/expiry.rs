//! A release that retention expired: when, by which rule, from which phase. The record stays
//! as a tombstone: a published release's name is never built again.

use super::{Phase, Release};
use crate::domain::ignore::IgnoreReason;
use crate::domain::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The retention rule that expired a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum ExpiryRule {
    /// A published release outside the newest `keep_releases` and older than `keep_days`
    /// (each when set), not protected, named by no moving tag and used by no workload.
    Superseded {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_releases: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        keep_days: Option<u32>,
    },
    /// A blocked or failed attempt that ended more than `days` ago.
    StaleAttempt { days: u32 },
}

impl ExpiryRule {
    /// The rule's stable name, as reports count releases by it.
    pub fn name(&self) -> &'static str {
        match self {
            ExpiryRule::Superseded { .. } => "superseded",
            ExpiryRule::StaleAttempt { .. } => "stale_attempt",
        }
    }

    /// Whether the rule applies to a release in `phase`.
    pub fn applies_to(&self, phase: Phase) -> bool {
        match self {
            ExpiryRule::Superseded { .. } => phase == Phase::Published,
            ExpiryRule::StaleAttempt { .. } => matches!(phase, Phase::Blocked | Phase::Failed),
        }
    }
}

impl fmt::Display for ExpiryRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpiryRule::Superseded {
                keep_releases,
                keep_days,
            } => {
                let mut clauses = Vec::new();
                if let Some(n) = keep_releases {
                    clauses.push(format!("not among the newest {n} published releases"));
                }
                if let Some(days) = keep_days {
                    clauses.push(format!("published more than {days} days ago"));
                }
                if clauses.is_empty() {
                    clauses.push("superseded".to_owned());
                }
                f.write_str(&clauses.join(" and "))
            }
            ExpiryRule::StaleAttempt { days } => {
                write!(f, "a blocked or failed attempt older than {days} days")
            }
        }
    }
}

/// When and why a release expired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    pub at: Millis,
    pub rule: ExpiryRule,
    /// The phase the release was in: only an expired *published* release keeps its name.
    pub phase: Phase,
}

impl Release {
    /// Records that retention expires this release. Only a release at rest with nothing left
    /// to do expires: published, blocked or failed, every event announced, no claim
    /// outstanding, no upload queued.
    pub(super) fn expire(&mut self, rule: &ExpiryRule, now: Millis) -> Result<(), IgnoreReason> {
        let key = self.key.clone();
        let phase = self.phase();
        if phase == Phase::Expired {
            return Err(IgnoreReason::AlreadyExpired { key });
        }
        if !rule.applies_to(phase) {
            return Err(IgnoreReason::NotExpirable { key, phase });
        }
        if self.queued.is_some() || !self.pending.is_empty() || !self.required_effects().is_empty()
        {
            return Err(IgnoreReason::ReleaseBusy { key });
        }
        self.note(now, format!("expired by retention: {rule}"));
        self.expired = Some(Expiry {
            at: now,
            rule: rule.clone(),
            phase,
        });
        Ok(())
    }

    /// Whether the name is spent: a published release expired, so no upload builds it again.
    pub fn is_tombstone(&self) -> bool {
        self.expired
            .as_ref()
            .is_some_and(|e| e.phase == Phase::Published)
    }
}
