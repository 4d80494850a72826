//! `archgate retention plan|apply`: release-level expiry and the cleanup of untagged
//! images, which never breaks a multi-arch image nor touches one in use, from a terminal.

use crate::error::CliError;
use archgate::aws::{AwsWorkloads, EcrRegistry, EventBridgePublisher};
use archgate::config::policy::PolicyError;
use archgate::config::{
    ReleaseRules, EVENT_BUS, RETENTION_ATTEMPT_DAYS, RETENTION_KEEP_DAYS, RETENTION_KEEP_RELEASES,
    RETENTION_PROTECT,
};
use archgate::domain::policy::PolicyRead;
use archgate::domain::retention::{Fate, RetentionPolicy};
use archgate::error::chain;
use archgate::ports::Ledger;
use archgate::ports::{Clock, SystemClock, Workloads};
use archgate::retention::{
    apply_plan_with_progress, publish_report, survey_repository, Rules, Survey, Targets,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;

/// What to survey and how much of it may go.
#[derive(Debug, Clone)]
pub struct Options {
    pub repository: String,
    /// Untagged images younger than this stay, in milliseconds.
    pub older_than_ms: i64,
    /// The most of the repository a run may delete (0 < share ≤ 1).
    pub max_delete_share: f64,
    /// Print the plan as JSON (`plan` only).
    pub json: bool,
    /// List every image, not a summary.
    pub all: bool,
    /// The release-level rules given on the command line.
    pub releases: ReleaseFlags,
}

/// The release-level rules' flags, as given.
#[derive(Debug, Clone, Default)]
pub struct ReleaseFlags {
    pub keep_releases: Option<String>,
    pub keep_days: Option<String>,
    pub protect: Option<String>,
    pub attempt_days: Option<String>,
}

/// The release rules: each flag, else the repository's policy, else its environment variable
/// (the deployed function's configuration, or the local session's), as the scheduled run
/// applies them.
pub fn release_rules(
    flags: &ReleaseFlags,
    repository: &BTreeMap<String, String>,
) -> Result<ReleaseRules, CliError> {
    ReleaseRules::from_lookup(|name| {
        let flag = match name {
            RETENTION_KEEP_RELEASES => &flags.keep_releases,
            RETENTION_KEEP_DAYS => &flags.keep_days,
            RETENTION_PROTECT => &flags.protect,
            RETENTION_ATTEMPT_DAYS => &flags.attempt_days,
            _ => &None,
        };
        flag.clone()
            .or_else(|| repository.get(name.strip_prefix("ARCHGATE_")?).cloned())
            .or_else(|| std::env::var(name).ok())
    })
    .map_err(|e| CliError::InvalidArgument(e.to_string()))
}

/// Refuses, before any call, a repository that is not archgate's: the default one, one under
/// the namespace, or one `ARCHGATE_RETENTION_REPOSITORIES` names (a name, or under a
/// `prefix/*` pattern).
fn retained(repository: &str) -> Result<(), CliError> {
    let repositories = super::repositories()?;
    if !repository.is_empty() && repositories.owns(repository) {
        return Ok(());
    }
    let named = super::retention_entries()
        .iter()
        .any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => repository.starts_with(prefix),
            None => entry == repository,
        });
    if named {
        return Ok(());
    }
    Err(CliError::InvalidArgument(format!(
        "{repository} is not one of archgate's repositories (ARCHGATE_REPOSITORY, under \
         ARCHGATE_REPOSITORY_PREFIX, or named by ARCHGATE_RETENTION_REPOSITORIES)"
    )))
}

/// Deletions listed by default before "… and N more".
const LISTED: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Show what a cleanup would delete, and why each kept image stays.
    Plan,
    /// Delete what the plan allows; `force` overrides the safety valve's share.
    Apply { force: bool },
}

/// `7d` / `36h` → milliseconds; zero and negative ages are refused.
pub fn parse_age(value: &str) -> Result<i64, String> {
    let (number, unit_ms) = match value.trim() {
        v if v.ends_with('d') => (&v[..v.len() - 1], 24 * 3600 * 1000),
        v if v.ends_with('h') => (&v[..v.len() - 1], 3600 * 1000),
        v => (v, 24 * 3600 * 1000),
    };
    match number.parse::<i64>() {
        Ok(n) if n > 0 => Ok(n * unit_ms),
        Ok(_) => Err("the age must be positive".to_owned()),
        Err(_) => Err(format!("{value:?} is not an age like 7d or 36h")),
    }
}

pub async fn run(options: Options, mode: Mode) -> Result<(), CliError> {
    if !(options.max_delete_share > 0.0 && options.max_delete_share <= 1.0) {
        return Err(CliError::InvalidArgument(
            "--max-delete-share must be above 0 and at most 1".to_owned(),
        ));
    }
    retained(&options.repository)?;
    // Only the ledger is needed: the rest of the release configuration may be absent here.
    let (ledger, clients) = super::ledger().await?;
    let inventory = EcrRegistry::new(clients.ecr.clone());
    let force = matches!(mode, Mode::Apply { force: true });
    // The repository's own release rules, as the scheduled run reads them; one that cannot be
    // read plans nothing (fail closed).
    let policy = match ledger.policy(&options.repository).await? {
        PolicyRead::Unset => BTreeMap::new(),
        PolicyRead::Found(record) => record.values,
        PolicyRead::Unreadable { reason, .. } => {
            return Err(PolicyError::Unreadable {
                repository: options.repository.clone(),
                reason,
            }
            .into())
        }
    };
    let releases = release_rules(&options.releases, &policy)?;
    let rules = Rules {
        images: RetentionPolicy {
            untagged_age_ms: options.older_than_ms,
            max_delete_share: options.max_delete_share,
            delete_orphan_referrers: false,
            force,
        },
        releases: releases.policy(options.max_delete_share, force),
    };
    let uses = AwsWorkloads::new(clients.ecs(), clients.lambda())
        .images_in_use()
        .await?;
    let survey = survey_repository(
        &inventory,
        &ledger,
        &options.repository,
        &rules,
        &uses,
        SystemClock.now_millis(),
    )
    .await?;
    if options.json && mode == Mode::Plan {
        let both = serde_json::json!({"releases": &survey.releases, "images": &survey.plan});
        println!(
            "{}",
            serde_json::to_string_pretty(&both).unwrap_or_default()
        );
        return Ok(());
    }
    print_plan(&options.repository, &survey, options.all);
    if mode == Mode::Plan {
        return Ok(());
    }
    // A refused plan deletes nothing; `apply` then says no, as the plan line above explains.
    if let Some(refused) = &survey.plan.refused {
        return Err(CliError::Refused(format!(
            "the plan was refused: {refused}"
        )));
    }
    // A refused release plan expires nothing; the images the image plan frees still go,
    // and the run ends refused (exit 1), as a refused image plan does.
    let releases_refused = survey
        .releases
        .refused
        .as_ref()
        .map(|refused| CliError::Refused(format!("the release plan was refused: {refused}")));
    if survey.plan.delete.is_empty() && survey.releases.expiring().next().is_none() {
        return releases_refused.map_or(Ok(()), Err);
    }
    let events = std::env::var(EVENT_BUS)
        .ok()
        .map(|bus| EventBridgePublisher::new(clients.eventbridge.clone(), &bus));
    let targets = Targets {
        inventory: &inventory,
        ledger: &ledger,
        events: events.as_ref(),
    };

    let progress = ProgressBar::with_draw_target(
        Some(survey.plan.delete.len() as u64),
        ProgressDrawTarget::stdout(),
    )
    .with_style(
        ProgressStyle::with_template("  [{bar:30}] {pos}/{len}")
            .expect("the template is valid")
            .progress_chars("#."),
    );
    let report =
        apply_plan_with_progress(&targets, &options.repository, &survey, false, |done, _| {
            progress.set_position(done as u64)
        })
        .await;
    progress.finish();
    let report = report?;
    for (digest, reason) in &report.failed {
        println!("  failed  {digest}: {reason} (left for the next run)");
    }
    for expired in &report.releases_expired {
        println!(
            "  expired {}  {} ({} images deleted)",
            expired.tag, expired.reason, expired.images
        );
    }
    if let Some(events) = &events {
        // The deletions are done: a report that could not be sent is worth a warning only.
        if let Err(e) = publish_report(events, &report).await {
            eprintln!(
                "archgate: could not publish the retention report: {}",
                chain(&e)
            );
        }
    }
    if events.is_none() && !report.releases_expired.is_empty() {
        println!("  (no ARCHGATE_EVENT_BUS: the reconciler announces the Release Expired events)");
    }
    println!(
        "expired {} releases, deleted {} images, failed {}, reclaimed {} bytes",
        report.releases_expired.len(),
        report.deleted.len(),
        report.failed.len(),
        report.bytes_reclaimed
    );
    match report.failed.len() {
        0 => releases_refused.map_or(Ok(()), Err),
        failed => Err(CliError::Incomplete(format!(
            "{failed} image(s) could not be deleted"
        ))),
    }
}

/// The plan for people: the kept images counted by reason (each with `all`), the deletions
/// (the first few without `all`), what could not be read, then the totals.
fn print_plan(repository: &str, survey: &Survey, all: bool) {
    print_releases(survey, all);
    let plan = &survey.plan;
    println!("repository {repository}: {} images", survey.images.len());
    if all {
        for (digest, reason) in &plan.keep {
            println!("  keep    {digest}  {reason}");
        }
    } else {
        for (reason, count) in plan.kept_by_reason() {
            println!("  keep    {count:>6}  {}", reason.replace('_', " "));
        }
    }
    let listed = if all { plan.delete.len() } else { LISTED };
    for deletion in plan.delete.iter().take(listed) {
        println!(
            "  delete  {}  {} ({} bytes)",
            deletion.digest,
            deletion.why,
            deletion.size_bytes.unwrap_or(0)
        );
    }
    if plan.delete.len() > listed {
        println!(
            "  … and {} more to delete (--all lists every image)",
            plan.delete.len() - listed
        );
    }
    for (digest, reason) in &plan.unparseable {
        println!("  unparseable {digest}: {reason}");
    }
    for (digest, reason) in &plan.unreadable {
        println!("  unreadable {digest}: {reason}");
    }
    for (item, reason) in &survey.unreadable_records {
        println!("  ledger item {item} does not parse (its digests are kept): {reason}");
    }
    if let Some(refused) = &plan.refused {
        println!("refused: {refused}");
    }
    println!(
        "{} to delete, {} to keep, {} bytes to reclaim",
        plan.delete.len(),
        plan.keep.len(),
        plan.bytes_reclaimed
    );
}

/// The releases for people: each expiring one with its rule and what it frees; the kept ones
/// counted by rule (each with `all`).
fn print_releases(survey: &Survey, all: bool) {
    let releases = &survey.releases;
    if releases.releases.is_empty() {
        return;
    }
    println!("releases: {}", releases.releases.len());
    let deleting: std::collections::HashMap<_, _> = survey
        .plan
        .delete
        .iter()
        .map(|d| (&d.digest, d.size_bytes.unwrap_or(0)))
        .collect();
    for release in &releases.releases {
        match &release.fate {
            Fate::Expire { rule, already } => {
                let freed: Vec<u64> = release
                    .digests
                    .iter()
                    .filter_map(|d| deleting.get(d).copied())
                    .collect();
                println!(
                    "  expire  {:<40} {}{} — frees {} images, {} bytes",
                    release.tag,
                    rule,
                    if *already {
                        " (expired earlier; images left)"
                    } else {
                        ""
                    },
                    freed.len(),
                    freed.iter().sum::<u64>()
                );
            }
            Fate::Keep(keep) if all => println!("  keep    {:<40} {keep}", release.tag),
            Fate::Keep(_) => {}
        }
    }
    if !all {
        for (rule, count) in releases.kept_by_rule() {
            println!("  keep    {count:>6} releases  {}", rule.replace('_', " "));
        }
    }
    for (digest, user) in &survey.in_use_list() {
        println!("  in use  {digest}  by {user}");
    }
    if let Some(refused) = &releases.refused {
        println!("releases refused: {refused}");
    }
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_are_days_or_hours_and_positive() {
        assert_eq!(parse_age("7d"), Ok(7 * 24 * 3600 * 1000));
        assert_eq!(parse_age("36h"), Ok(36 * 3600 * 1000));
        assert_eq!(parse_age("2"), Ok(2 * 24 * 3600 * 1000));
        assert!(parse_age("0d").is_err());
        assert!(parse_age("-1h").is_err());
        assert!(parse_age("a week").is_err());
    }
}
