//! The reconciler: EventBridge delivers AWS service events best-effort, so a lost CodeBuild
//! completion or scan event must not leave a release stuck. Releases waiting for builds or
//! scans that have not moved for a while are re-read from the truth (BatchGetBuilds, the scan
//! findings) and the facts go through the same state machine; releases past their deadline
//! fail. Any release with an effect nobody holds (a crash, a lost answer) is nudged, final or
//! not. Blocked releases rest: the deadline never fails them.

use crate::build_variables::{exported_digest, exported_platform};
use crate::config::ReconcilePolicy;
use crate::domain::release::{BuildOrigin, GateState};
use crate::domain::{BuildRole, Fact, Millis, Release};
use crate::pipeline::{Outcome, Pipeline, PipelineError, Rejudge};
use crate::ports::{Builds, EventPublisher, Ledger, Ports};
use serde::Serialize;

/// What the reconciler did (or, in a dry run, would do) with one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Reconciled {
    pub release: String,
    pub attempt: u32,
    pub phase_before: String,
    pub phase_after: String,
    pub facts: Vec<String>,
    pub outcomes: Vec<Outcome>,
}

impl Reconciled {
    pub fn changed(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Applied { .. }))
    }
}

/// A ledger item the pass could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Skipped {
    pub item: String,
    pub reason: String,
}

/// One pass over the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReconcileReport {
    pub dry_run: bool,
    pub reconciled: Vec<Reconciled>,
    /// Items that do not parse: skipped, every other release goes on.
    pub unreadable: Vec<Skipped>,
    /// Releases whose reconciliation failed this pass (retried next pass).
    pub failed: Vec<Skipped>,
}

/// The facts the truth holds about one release that its record lacks, read from CodeBuild and
/// the registry. Empty when there is nothing to do; `None` when the release needs no look.
pub async fn observe<P: Ports>(
    pipeline: &Pipeline<P>,
    release: &Release,
    policy: ReconcilePolicy,
    now: Millis,
) -> Result<Option<Vec<Fact>>, PipelineError> {
    let phase = release.phase();
    let stale =
        phase.is_in_flight() && now.saturating_sub(release.updated_at) >= policy.stale_after_ms;
    let stranded = release.has_unclaimed_work(now);
    // The deadline is checked whether or not the release moved lately: a failed retry of
    // an owed effect updates the record every time.
    let overdue = release.overdue(now, policy.deadline_ms);
    if !stale && !stranded && overdue.is_none() {
        return Ok(None);
    }
    let key = &release.key;
    let read_error = |source| PipelineError::Read {
        release: key.to_string(),
        source,
    };
    // Effects nobody holds are taken over first: a promotion left by a dead invocation
    // completes before any deadline is considered.
    let mut facts: Vec<Fact> = vec![Fact::Nudge];
    if stale {
        // Builds that never reported a final status: ask CodeBuild.
        for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
            let build = release.build(role);
            let (Some(build_id), None) = (&build.build_id, build.status.filter(|s| s.is_final()))
            else {
                continue;
            };
            let details = pipeline
                .builds
                .details(build_id)
                .await
                .map_err(read_error)?;
            let Some(details) = details else { continue };
            if let Some(status) = details.status {
                if status.is_final() {
                    facts.push(Fact::BuildChanged {
                        role,
                        build_id: build_id.clone(),
                        status,
                        image_digest: exported_digest(build_id, &details.exported),
                        image_platform: exported_platform(build_id, role, &details.exported),
                        builder_image: details.image.clone(),
                        // The build is the one the release recorded: its own attempt's.
                        origin: Some(BuildOrigin {
                            attempt: release.attempt,
                            upload: Some(release.source.revision().to_owned()),
                        }),
                    });
                }
            }
        }
        // A candidate whose scans never reported: read the findings.
        if release.candidate.is_some() && release.gate() == GateState::Waiting {
            let rejudged = pipeline
                .rejudge(release, Rejudge::Missing)
                .await
                .map_err(|source| PipelineError::Judge {
                    repository: release.key.repository.clone(),
                    source,
                })?;
            facts.extend(
                rejudged
                    .into_iter()
                    .filter_map(|r| r.record)
                    .map(Fact::ScanEvaluated),
            );
        }
    }
    // Last, after what the truth says: a release the news did not bring to rest ends Failed
    // (or, its gate passed, is announced as stalled) once past its deadline.
    if let Some(overdue) = overdue {
        facts.push(Fact::Abandoned {
            reason: overdue.reason,
        });
    }
    Ok(Some(facts))
}

/// Re-reads one release's truth and applies what it finds (or, in a dry run, only says what
/// it would apply). `None` when the release needs nothing.
pub async fn reconcile_release<P: Ports>(
    pipeline: &Pipeline<P>,
    release: &Release,
    policy: ReconcilePolicy,
    now: Millis,
    dry_run: bool,
) -> Result<Option<Reconciled>, PipelineError> {
    let Some(facts) = observe(pipeline, release, policy, now).await? else {
        return Ok(None);
    };
    let key = &release.key;
    let described: Vec<String> = facts.iter().map(describe).collect();
    let mut outcomes = Vec::new();
    if !dry_run {
        // Each fact goes in even when one before it fails: a release whose owed effect keeps
        // failing still meets its deadline.
        let mut first_error = None;
        for fact in facts {
            match pipeline.apply(key, fact).await {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        if let Some(error) = first_error {
            return Err(error);
        }
    }
    let after = if dry_run {
        release.phase().to_string()
    } else {
        pipeline
            .ledger
            .load(key)
            .await
            .map_err(|source| PipelineError::Ledger {
                release: key.to_string(),
                source,
            })?
            .map(|s| s.release.phase().to_string())
            .unwrap_or_default()
    };
    Ok(Some(Reconciled {
        release: key.to_string(),
        attempt: release.attempt,
        phase_before: release.phase().to_string(),
        phase_after: after,
        facts: described,
        outcomes,
    }))
}

fn describe(fact: &Fact) -> String {
    match fact {
        Fact::BuildChanged { role, status, .. } => format!("{role} build {}", status.as_str()),
        Fact::ScanEvaluated(scan) => format!(
            "{} scan {}",
            scan.arch,
            if scan.verdict.passes() {
                "passes"
            } else {
                "blocks"
            }
        ),
        Fact::Abandoned { reason } => format!("past the deadline: {reason}"),
        Fact::Nudge => "take over effects nobody holds".to_owned(),
        _ => "other".to_owned(),
    }
}

/// One pass over every release of the pipeline's repository: what changed, what was skipped.
/// One release's trouble (or one unreadable item) does not stop the others.
pub async fn reconcile_all<P: Ports>(
    pipeline: &Pipeline<P>,
    policy: ReconcilePolicy,
    now: Millis,
    dry_run: bool,
) -> Result<ReconcileReport, PipelineError> {
    let listing =
        pipeline
            .ledger
            .list(usize::MAX)
            .await
            .map_err(|source| PipelineError::Ledger {
                release: "(all)".to_owned(),
                source,
            })?;
    let mut report = ReconcileReport {
        dry_run,
        ..ReconcileReport::default()
    };
    for item in listing.unreadable {
        tracing::error!(item = %item.id, reason = %item.reason, "ledger item does not parse; skipped");
        report.unreadable.push(Skipped {
            item: item.id,
            reason: item.reason,
        });
    }
    let repositories = pipeline.config.repositories();
    for stored in listing.releases {
        if !repositories.owns(&stored.release.key.repository) {
            continue;
        }
        match reconcile_release(pipeline, &stored.release, policy, now, dry_run).await {
            Ok(Some(result)) => {
                if result.changed() {
                    let detail = serde_json::to_string(&result).unwrap_or_default();
                    if let Err(error) = pipeline
                        .events
                        .publish_detail("Release Reconciled", detail)
                        .await
                    {
                        tracing::warn!(release = %result.release, %error, "could not publish Release Reconciled");
                    }
                }
                report.reconciled.push(result);
            }
            Ok(None) => {}
            // Retried next pass.
            Err(error) => {
                tracing::warn!(release = %stored.release.key, error = %crate::error::chain(&error), "reconciliation failed");
                report.failed.push(Skipped {
                    item: stored.release.key.to_string(),
                    reason: crate::error::chain(&error),
                });
            }
        }
    }
    Ok(report)
}
