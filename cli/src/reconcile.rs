//! `archgate reconcile`: one pass of the reconciler, run from a terminal.

use archgate::pipeline::{Pipeline, PipelineError};
use archgate::ports::{Builds, Clock, EventPublisher, Ledger, Registry, Signer};
use archgate::reconcile::{reconcile_all, ReconcilePolicy, ReconcileReport};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Config(#[from] archgate::config::ConfigError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Runs one pass (changing nothing with `dry_run`), prints it and returns it: the releases
/// that could not be reconciled are in its `failed`.
pub async fn run<L, B, R, E, C, S>(
    pipeline: &Pipeline<L, B, R, E, C, S>,
    dry_run: bool,
    json: bool,
) -> Result<ReconcileReport, ReconcileError>
where
    L: Ledger,
    B: Builds,
    R: Registry,
    E: EventPublisher,
    C: Clock,
    S: Signer,
{
    let policy = ReconcilePolicy::from_lookup(|name| std::env::var(name).ok())?;
    let report = reconcile_all(pipeline, policy, pipeline.now(), dry_run).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        print!("{}", describe(&report));
    }
    Ok(report)
}

/// The report for people: one line per release looked at, then what was skipped.
pub fn describe(report: &ReconcileReport) -> String {
    let mut text = String::new();
    let verb = if report.dry_run {
        "would apply"
    } else {
        "applied"
    };
    for r in &report.reconciled {
        let facts = r.facts.join(", ");
        let changed = if report.dry_run {
            String::new()
        } else if r.changed() {
            format!(" → {}", r.phase_after)
        } else {
            " (nothing changed)".to_owned()
        };
        text.push_str(&format!(
            "{:<40} attempt {:<3} {:<16} {verb}: {facts}{changed}\n",
            r.release, r.attempt, r.phase_before
        ));
    }
    for item in &report.unreadable {
        text.push_str(&format!(
            "{:<40} skipped: does not parse: {}\n",
            item.item, item.reason
        ));
    }
    for item in &report.failed {
        text.push_str(&format!("{:<40} failed: {}\n", item.item, item.reason));
    }
    if report.reconciled.is_empty() && report.unreadable.is_empty() && report.failed.is_empty() {
        text.push_str("nothing to reconcile\n");
    }
    text
}
