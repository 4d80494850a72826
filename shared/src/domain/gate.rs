//! The scan gate's policy: pure judgement of one per-arch image's scan.
//!
//! ECR cannot scan an image index, so the gate judges the per-arch children and the release's
//! index is promoted only when every child passes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use time::format_description::StaticFormatDescription;
use time::{Date, OffsetDateTime};

/// The date (UTC) of a time in milliseconds since the epoch: allowlist expiries are dates.
pub fn date_of(millis: i64) -> Date {
    OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .date()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Informational,
    Undefined,
}

impl Severity {
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Informational,
        Severity::Undefined,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Informational => "INFORMATIONAL",
            Severity::Undefined => "UNDEFINED",
        }
    }

    pub fn parse(value: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == value)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Findings per severity. A severity that is absent counts 0.
pub type SeverityCounts = BTreeMap<Severity, u64>;

/// One finding, as much as the gate reports of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The vulnerability id (a CVE id, usually).
    pub id: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_in: Option<String>,
}

/// How the allowlist writes its dates.
pub const DATE_FORMAT: StaticFormatDescription =
    time::macros::format_description!("[year]-[month]-[day]");

time::serde::format_description!(iso_date, Date, DATE_FORMAT);

/// A finding id that does not block until `expires` (inclusive).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllowEntry {
    pub id: String,
    /// Serialised as the allowlist variable writes it, so that a policy's variables read back.
    #[serde(with = "iso_date")]
    pub expires: Date,
    pub reason: String,
}

impl AllowEntry {
    pub fn is_active(&self, today: Date) -> bool {
        today <= self.expires
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnScanFailure {
    Block,
    Pass,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The most findings of a severity a release may carry; `None` is unlimited.
    pub max: BTreeMap<Severity, Option<u64>>,
    pub allowlist: Vec<AllowEntry>,
    pub on_scan_failure: OnScanFailure,
}

impl Default for Policy {
    /// CRITICAL 0, everything else unlimited, fail closed.
    fn default() -> Self {
        let mut max: BTreeMap<Severity, Option<u64>> =
            Severity::ALL.into_iter().map(|s| (s, None)).collect();
        max.insert(Severity::Critical, Some(0));
        Policy {
            max,
            allowlist: Vec::new(),
            on_scan_failure: OnScanFailure::Block,
        }
    }
}

/// How a scan ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    Complete,
    Failed,
    /// The image cannot be scanned (an unsupported OS, for example).
    Unsupported,
}

/// What the scan of one image found: the counts the scanner reported and, where they were
/// read, the findings themselves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanReport {
    pub status: ScanStatus,
    pub counts: SeverityCounts,
    /// `None` when the findings were not read (the counts alone decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings: Option<Vec<Finding>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass {
        counts: SeverityCounts,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allowlisted: Vec<String>,
    },
    Block {
        rule: String,
        counts: SeverityCounts,
        worst: Vec<Finding>,
    },
}

impl Verdict {
    pub fn passes(&self) -> bool {
        matches!(self, Verdict::Pass { .. })
    }
}

/// The worst findings a blocked verdict carries, at most.
pub const WORST_FINDINGS: usize = 10;

impl Policy {
    fn first_breach(&self, counts: &SeverityCounts) -> Option<(Severity, u64, u64)> {
        Severity::ALL.into_iter().find_map(|severity| {
            let limit = self.max.get(&severity).copied().flatten()?;
            let count = counts.get(&severity).copied().unwrap_or(0);
            (count > limit).then_some((severity, count, limit))
        })
    }

    /// Judges one scan. `today` decides which allowlist entries still apply.
    pub fn evaluate(&self, scan: &ScanReport, today: Date) -> Verdict {
        if scan.status != ScanStatus::Complete {
            let what = match scan.status {
                ScanStatus::Failed => "the scan failed",
                _ => "the image is not supported by the scanner",
            };
            return match self.on_scan_failure {
                OnScanFailure::Pass => Verdict::Pass {
                    counts: SeverityCounts::new(),
                    allowlisted: Vec::new(),
                },
                OnScanFailure::Block => Verdict::Block {
                    rule: format!(
                        "{what} and the gate fails closed (ARCHGATE_GATE_ON_SCAN_FAILURE=block)"
                    ),
                    counts: SeverityCounts::new(),
                    worst: Vec::new(),
                },
            };
        }
        let (counts, allowlisted, findings) = match &scan.findings {
            Some(findings) => {
                let mut counts = SeverityCounts::new();
                let mut allowlisted = Vec::new();
                let mut kept = Vec::new();
                for finding in findings {
                    let allowed = self
                        .allowlist
                        .iter()
                        .any(|e| e.id == finding.id && e.is_active(today));
                    if allowed {
                        if !allowlisted.contains(&finding.id) {
                            allowlisted.push(finding.id.clone());
                        }
                    } else {
                        *counts.entry(finding.severity).or_insert(0) += 1;
                        kept.push(finding.clone());
                    }
                }
                (counts, allowlisted, kept)
            }
            None => (scan.counts.clone(), Vec::new(), Vec::new()),
        };
        match self.first_breach(&counts) {
            None => Verdict::Pass {
                counts,
                allowlisted,
            },
            Some((severity, count, limit)) => {
                let mut worst: Vec<Finding> = findings;
                worst.sort_by(|a, b| a.severity.cmp(&b.severity).then(a.id.cmp(&b.id)));
                worst.dedup_by(|a, b| a.id == b.id && a.package == b.package);
                worst.truncate(WORST_FINDINGS);
                Verdict::Block {
                    rule: format!(
                        "{count} {severity} finding(s), the policy allows {limit} (ARCHGATE_GATE_MAX_{severity}={limit})"
                    ),
                    counts,
                    worst,
                }
            }
        }
    }
}
