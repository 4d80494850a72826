//! `archgate reconcile`: one pass of the reconciler, run from a terminal and printed.

use super::configured;
use crate::error::CliError;
use archgate::config::ReconcilePolicy;
use archgate::pipeline::{Pipeline, PipelineError};
use archgate::ports::Ports;
use archgate::reconcile::{reconcile_all, ReconcileReport};

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Config(#[from] archgate::config::ConfigError),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Runs one pass (changing nothing with `dry_run`), prints it and returns it: the releases
/// that could not be reconciled are in its `failed`.
pub async fn pass<P: Ports>(
    pipeline: &Pipeline<P>,
    dry_run: bool,
    json: bool,
) -> Result<ReconcileReport, ReconcileError> {
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

/// The command: one pass on the configured installation; exit 1 when a release could not be
/// reconciled.
pub async fn run(dry_run: bool, json: bool) -> Result<(), CliError> {
    let (config, clients) = configured().await?;
    let report = pass(&clients.pipeline(&config), dry_run, json).await?;
    match report.failed.len() {
        0 => Ok(()),
        failed => Err(CliError::Incomplete(format!(
            "{failed} release(s) could not be reconciled"
        ))),
    }
}
