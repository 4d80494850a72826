//! Judging per-arch scans against the policy: counts first, findings only when the counts
//! alone would block (the allowlist can only lower counts, and a block names the worst
//! findings). Used by the pipeline's scan judging and its re-judging (reconciler, `archgate release
//! evaluate`, `archgate gate check`).

use crate::domain::gate::{Policy, ScanReport, ScanStatus, SeverityCounts, Verdict};
use crate::domain::{Arch, Digest, Release};
use crate::error::AdapterError;
use crate::ports::Registry;
use time::Date;

/// The verdict on one image's scan, reading its findings when the counts alone block.
pub async fn judge<R: Registry>(
    policy: &Policy,
    registry: &R,
    repository: &str,
    digest: &Digest,
    status: ScanStatus,
    counts: SeverityCounts,
    today: &Date,
) -> Result<Verdict, AdapterError> {
    let report = ScanReport {
        status,
        counts,
        findings: None,
    };
    let verdict = policy.evaluate(&report, *today);
    if verdict.passes() || status != ScanStatus::Complete {
        return Ok(verdict);
    }
    match registry.scan_findings(repository, digest).await? {
        Some(found) if !found.findings.is_empty() => Ok(policy.evaluate(
            &ScanReport {
                findings: Some(found.findings),
                ..report
            },
            *today,
        )),
        _ => Ok(verdict),
    }
}

/// The verdict on an image's current findings (its latest finished scan, read fresh), and
/// when that scan completed; `None` without a finished scan.
pub async fn judge_current<R: Registry>(
    policy: &Policy,
    registry: &R,
    repository: &str,
    digest: &Digest,
    today: &Date,
) -> Result<Option<(Verdict, Option<i64>)>, AdapterError> {
    let Some(found) = registry.scan_findings(repository, digest).await? else {
        return Ok(None);
    };
    let Some(status) = found.status else {
        return Ok(None);
    };
    let report = ScanReport {
        status,
        counts: found.counts,
        findings: (status == ScanStatus::Complete && !found.findings.is_empty())
            .then_some(found.findings),
    };
    Ok(Some((policy.evaluate(&report, *today), found.completed_at)))
}

/// The gate's view of a release now: one verdict per per-arch image of its candidate, read
/// fresh from the registry. `None` for an image that has no finished scan yet.
pub async fn current_verdicts<R: Registry>(
    policy: &Policy,
    registry: &R,
    release: &Release,
    today: &Date,
) -> Result<Vec<(Arch, Digest, Option<(Verdict, Option<i64>)>)>, AdapterError> {
    let Some(candidate) = &release.candidate else {
        return Ok(Vec::new());
    };
    let mut verdicts = Vec::new();
    for child in &candidate.children {
        // An image that is gone has no findings left to judge.
        let verdict = match judge_current(
            policy,
            registry,
            &release.key.repository,
            &child.digest,
            today,
        )
        .await
        {
            Err(AdapterError::NotFound { .. }) => None,
            verdict => verdict?,
        };
        verdicts.push((child.arch, child.digest.clone(), verdict));
    }
    Ok(verdicts)
}
