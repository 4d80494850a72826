//! The demo's closing summary: every step, the repository, the published index, the
//! release events and the ledger.

use super::{short, DemoReport, BLOCKED_TAG, DEMO_TAG};
use crate::local::{millis, LocalEnv};
use crate::report;

pub(super) async fn print_report(env: &LocalEnv, report: &DemoReport) {
    println!();
    println!(
        "archgate demo — releases {DEMO_TAG} and {BLOCKED_TAG} on {}",
        report.endpoint
    );
    println!();
    println!("{:<52} {:>10} {:>6}  outcome", "step", "time", "calls");
    for step in &report.steps {
        println!(
            "{:<52} {:>10} {:>6}  {}{}",
            step.name,
            millis(step.duration),
            step.calls.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            if step.ok { "" } else { "FAILED " },
            step.outcome
        );
    }
    println!();
    println!("repository {}:", env.config.repository);
    match report::repository_contents(&env.clients.ecr, &env.config.repository).await {
        Ok(rows) => {
            // As wide as the longest list of tags, so images with several keep the columns.
            let tags: Vec<String> = rows.iter().map(|row| row.tags.join(",")).collect();
            let width = tags.iter().map(|t| t.chars().count()).max().unwrap_or(0);
            for (row, tags) in rows.iter().zip(&tags) {
                println!(
                    "  {tags:<width$} {}  {}",
                    short(&row.digest),
                    row.media_type
                );
            }
        }
        Err(e) => println!("  (could not list: {e})"),
    }
    println!();
    if !report.candidate_children.is_empty() {
        println!("{DEMO_TAG} (and latest) is an OCI image index of:");
        for (platform, digest) in &report.candidate_children {
            println!("  {platform:<14} {digest}");
        }
    }
    if let Some(reason) = &report.blocked_reason {
        println!("{BLOCKED_TAG} is blocked: {reason}");
    }
    println!("release events: {}", report.release_events.join(", "));
    for tag in [DEMO_TAG, BLOCKED_TAG] {
        if let Ok(Some(stored)) = env.release(tag).await {
            println!(
                "ledger: {} is {} (version {})",
                stored.release.key,
                stored.release.phase(),
                stored.version
            );
        }
    }
    for problem in &report.problems {
        println!("PROBLEM: {problem}");
    }
    println!(
        "{}",
        if report.succeeded() {
            "demo succeeded"
        } else {
            "demo FAILED"
        }
    );
}
