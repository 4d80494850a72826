//! The reconciler: EventBridge delivers AWS service events best-effort, so a lost CodeBuild
//! completion or scan event must not leave a release stuck. Releases that are not final and
//! have not moved for a while are re-read from the truth (BatchGetBuilds, the scan findings)
//! and the facts go through the same state machine; releases past their deadline fail.

use crate::domain::release::{GateState, ScanRecord};
use crate::domain::{BuildRole, BuildStatus, Fact, Millis, Release};
use crate::gatekeeper::{current_verdicts, date_of};
use crate::pipeline::{Outcome, Pipeline, PipelineError};
use crate::ports::{Builds, Clock, EventPublisher, Ledger, Registry};
use serde::Serialize;

pub const RECONCILE_STALE_MINUTES: &str = "ARCHGATE_RECONCILE_STALE_MINUTES";
pub const RECONCILE_DEADLINE_HOURS: &str = "ARCHGATE_RECONCILE_DEADLINE_HOURS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconcilePolicy {
    /// A release untouched for this long is re-read.
    pub stale_after_ms: Millis,
    /// A release older than this that is still not final fails.
    pub deadline_ms: Millis,
}

impl ReconcilePolicy {
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, crate::config::ConfigError> {
        let number = |variable: &'static str, default: i64| match lookup(variable)
            .map(|v| v.trim().to_owned())
        {
            None => Ok(default),
            Some(value) => match value.parse::<i64>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(crate::config::ConfigError::Invalid {
                    variable,
                    value,
                    reason: "expected a whole number above 0".to_owned(),
                }),
            },
        };
        Ok(ReconcilePolicy {
            stale_after_ms: number(RECONCILE_STALE_MINUTES, 15)? * 60_000,
            deadline_ms: number(RECONCILE_DEADLINE_HOURS, 6)? * 3_600_000,
        })
    }
}

/// What the reconciler did with one release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct Reconciled {
    pub release: String,
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

/// Re-reads one release's truth and applies what it finds. `None` when it is final or fresh.
pub async fn reconcile_release<L, B, R, E, C>(
    pipeline: &Pipeline<L, B, R, E, C>,
    release: &Release,
    policy: ReconcilePolicy,
    now: Millis,
) -> Result<Option<Reconciled>, PipelineError>
where
    L: Ledger,
    B: Builds,
    R: Registry,
    E: EventPublisher,
    C: Clock,
{
    let phase = release.phase();
    if phase.is_final() || now - release.updated_at < policy.stale_after_ms {
        return Ok(None);
    }
    let key = &release.key;
    let mut facts: Vec<Fact> = Vec::new();
    // Builds that never reported a final status: ask CodeBuild.
    for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
        let build = release.build(role);
        let (Some(build_id), None) = (&build.build_id, build.status.filter(|s| s.is_final()))
        else {
            continue;
        };
        let details =
            pipeline
                .builds
                .details(build_id)
                .await
                .map_err(|source| PipelineError::Read {
                    release: key.to_string(),
                    source,
                })?;
        if let Some(status) = details
            .and_then(|d| d.status)
            .and_then(|s| BuildStatus::parse(&s))
        {
            if status.is_final() {
                facts.push(Fact::BuildChanged {
                    role,
                    build_id: build_id.clone(),
                    status,
                });
            }
        }
    }
    // A candidate whose scans never reported: read the findings.
    if release.candidate.is_some() && release.gate() == GateState::Waiting {
        let verdicts = current_verdicts(
            &pipeline.config.gate,
            &pipeline.registry,
            release,
            &date_of(now),
        )
        .await
        .map_err(|source| PipelineError::Read {
            release: key.to_string(),
            source,
        })?;
        for (arch, digest, verdict) in verdicts {
            if release.verdict_for(arch, &digest).is_some() {
                continue;
            }
            if let Some((verdict, completed_at)) = verdict {
                facts.push(Fact::ScanEvaluated(ScanRecord {
                    arch,
                    digest,
                    verdict,
                    scanned_at: completed_at.unwrap_or(now),
                    evaluated_at: now,
                }));
            }
        }
    }
    if facts.is_empty() && now - release.created_at > policy.deadline_ms {
        let waiting = match (phase, release.gate()) {
            (crate::domain::Phase::Building, _) => "its builds never finished",
            (crate::domain::Phase::Assembling, _) => "its image index was never assembled",
            (_, GateState::Waiting) => "its per-arch images were never scanned",
            _ => "it never reached a final state",
        };
        facts.push(Fact::Abandoned {
            reason: format!(
                "no final state {} hours after the upload: {waiting}",
                policy.deadline_ms / 3_600_000
            ),
        });
    }
    // Effects whose claims outlived their lease are taken over either way.
    facts.push(Fact::Nudge);
    let mut outcomes = Vec::new();
    let mut described = Vec::new();
    for fact in facts {
        described.push(describe(&fact));
        outcomes.push(pipeline.apply(key, fact).await?);
    }
    let after = pipeline
        .ledger
        .load(key)
        .await
        .map_err(|source| PipelineError::Ledger {
            release: key.to_string(),
            source,
        })?
        .map(|s| s.release.phase().to_string())
        .unwrap_or_default();
    Ok(Some(Reconciled {
        release: key.to_string(),
        phase_before: phase.to_string(),
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
        Fact::Abandoned { reason } => format!("abandoned: {reason}"),
        Fact::Nudge => "take over expired claims".to_owned(),
        _ => "other".to_owned(),
    }
}

/// Reconciles every stale release in the ledger; returns what changed.
pub async fn reconcile_all<L, B, R, E, C>(
    pipeline: &Pipeline<L, B, R, E, C>,
    policy: ReconcilePolicy,
    now: Millis,
) -> Result<Vec<Reconciled>, PipelineError>
where
    L: Ledger,
    B: Builds,
    R: Registry,
    E: EventPublisher,
    C: Clock,
{
    let stored =
        pipeline
            .ledger
            .list(usize::MAX)
            .await
            .map_err(|source| PipelineError::Ledger {
                release: "(all)".to_owned(),
                source,
            })?;
    let mut reconciled = Vec::new();
    for stored in stored {
        if stored.release.key.repository != pipeline.config.repository {
            continue;
        }
        match reconcile_release(pipeline, &stored.release, policy, now).await {
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
                reconciled.push(result);
            }
            Ok(None) => {}
            // One release's trouble does not stop the others; it is retried next run.
            Err(error) => {
                tracing::warn!(release = %stored.release.key, %error, "reconciliation failed")
            }
        }
    }
    Ok(reconciled)
}
