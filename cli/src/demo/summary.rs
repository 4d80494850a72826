//! The demo's closing summary: every step, the repository, the published index, the
//! release events and the ledger.

use super::{short, DemoReport, BLOCKED_TAG, DEMO_TAG, OTHER_RELEASE};
use crate::local::{millis, LocalEnv};
use crate::report;

pub(super) async fn print_report(env: &LocalEnv, report: &DemoReport) {
    println!();
    println!(
        "archgate demo — releases {DEMO_TAG}, {BLOCKED_TAG} and {OTHER_RELEASE} on {}",
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
    for repository in [env.config.repository.as_str(), super::OTHER_REPOSITORY] {
        println!();
        println!("repository {repository}:");
        match report::repository_contents(&env.clients.ecr, repository).await {
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
    for tag in [DEMO_TAG, BLOCKED_TAG, OTHER_RELEASE] {
        if let Ok(Some(stored)) = env.release(tag).await {
            let policies: std::collections::BTreeSet<String> = stored
                .release
                .scans
                .iter()
                .map(|s| s.policy_version.map_or("?".to_owned(), |v| v.to_string()))
                .collect();
            println!(
                "ledger: {} is {} (version {}), judged under its repository's policy version {}",
                stored.release.key,
                stored.release.phase(),
                stored.version,
                policies.into_iter().collect::<Vec<_>>().join(", ")
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
