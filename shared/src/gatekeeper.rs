//! Judging per-arch scans against the policy: counts first, findings only when the counts
//! alone would block (the allowlist can only lower counts, and a block names the worst
//! findings). Shared by scan-gate and `archgate release evaluate` / `archgate gate check`.

use crate::domain::gate::{Policy, ScanReport, ScanStatus, SeverityCounts, Verdict};
use crate::domain::{Arch, Digest, Release};
use crate::error::AdapterError;
use crate::ports::Registry;

/// `YYYY-MM-DD` of a time in milliseconds since the epoch (UTC).
pub fn date_of(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .map(|t| t.date().to_string())
        .unwrap_or_else(|_| "1970-01-01".to_owned())
}

/// The verdict on one image's scan, reading its findings when the counts alone block.
pub async fn judge<R: Registry>(
    policy: &Policy,
    registry: &R,
    repository: &str,
    digest: &Digest,
    status: ScanStatus,
    counts: SeverityCounts,
    today: &str,
) -> Result<Verdict, AdapterError> {
    let report = ScanReport {
        status,
        counts,
        findings: None,
    };
    let verdict = policy.evaluate(&report, today);
    if verdict.passes() || status != ScanStatus::Complete {
        return Ok(verdict);
    }
    match registry.scan_findings(repository, digest).await? {
        Some(found) if !found.findings.is_empty() => Ok(policy.evaluate(
            &ScanReport {
                findings: Some(found.findings),
                ..report
            },
            today,
        )),
        _ => Ok(verdict),
    }
}

/// The gate's view of a release now: one verdict per per-arch image of its candidate, read
/// fresh from the registry. `None` for an image that has no finished scan yet.
pub async fn current_verdicts<R: Registry>(
    policy: &Policy,
    registry: &R,
    release: &Release,
    today: &str,
) -> Result<Vec<(Arch, Digest, Option<(Verdict, Option<i64>)>)>, AdapterError> {
    let Some(candidate) = &release.candidate else {
        return Ok(Vec::new());
    };
    let mut verdicts = Vec::new();
    for child in &candidate.children {
        let scan = registry
            .scan_findings(&release.key.repository, &child.digest)
            .await?;
        let verdict = match scan {
            Some(found) => match found.status {
                Some(status) => {
                    let report = ScanReport {
                        status,
                        counts: found.counts,
                        findings: (status == ScanStatus::Complete && !found.findings.is_empty())
                            .then_some(found.findings),
                    };
                    Some((policy.evaluate(&report, today), found.completed_at))
                }
                None => None,
            },
            None => None,
        };
        verdicts.push((child.arch, child.digest.clone(), verdict));
    }
    Ok(verdicts)
}
