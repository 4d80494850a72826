//! One retention run: every configured repository (or the ones a request names), a few at a
//! time; one repository's failure does not stop the others.

use super::{
    apply_plan, publish_report, resolve_repositories, survey_repository, RepositoryReport, Rules,
    Targets,
};
use crate::config::policy::{self, PolicyError};
use crate::config::RetentionConfig;
use crate::domain::Millis;
use crate::error::{chain, AdapterError};
use crate::ports::{Clock, Ledger, Ports, Workloads};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use tracing::{info, warn};

/// Everything a run needs, built once per process: the configuration and the ports.
pub struct Retention<P: Ports> {
    pub config: RetentionConfig,
    pub inventory: P::Inventory,
    pub workloads: P::Workloads,
    pub ledger: P::Ledger,
    pub events: P::Events,
    pub clock: P::Clock,
}

/// What an invocation asks for; a Scheduled Event is the default: every repository archgate
/// manages, for real, resuming where the last scheduled run stopped.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default)]
    pub repositories: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub force: bool,
    /// When the invocation must be done (the Lambda's deadline): no repository starts that
    /// could not finish before it. Not part of the event.
    #[serde(skip)]
    pub deadline: Option<Millis>,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub dry_run: bool,
    pub repositories: Vec<RepositoryReport>,
    /// Repositories left for the next run, which starts with the first of them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_started: Vec<String>,
}

/// The least time kept in hand before starting another repository: at least this, and twice
/// the longest repository of the run so far.
const RESERVE_MS: Millis = 30_000;

/// Plans, applies and reports every repository of the request, each under its own release
/// rules; a scheduled run covers the configured repositories and every one with a release in
/// the ledger, starting where the last one stopped.
pub async fn run<P: Ports>(retention: &Retention<P>, request: Request) -> RunReport {
    // Only a scheduled run (every repository, for real) moves where the next one starts.
    let scheduled = request.repositories.is_none() && !request.dry_run;
    let failed = |repository: String, error: String| RepositoryReport {
        repository,
        dry_run: request.dry_run,
        error: Some(error),
        ..RepositoryReport::default()
    };
    let patterns = match request.repositories.clone() {
        Some(named) => named,
        None => managed(retention).await,
    };
    let images = retention.config.policy(request.force);
    let now = retention.clock.now_millis();
    // One read of the account's workloads for every repository. Unreadable, nothing is
    // deleted anywhere: any image may be in use (fail closed).
    let uses = match retention.workloads.images_in_use().await {
        Ok(uses) => uses,
        Err(error) => {
            let reason = format!(
                "the images workloads use could not be read ({}); nothing is deleted this run",
                chain(&error)
            );
            warn!(%reason, "retention fails closed");
            let mut reports = Vec::new();
            for repository in patterns {
                let report = failed(repository, reason.clone());
                if let Err(error) = publish_report(&retention.events, &report).await {
                    warn!(error = %chain(&error), "could not publish the retention report");
                }
                reports.push(report);
            }
            return RunReport {
                dry_run: request.dry_run,
                repositories: reports,
                not_started: Vec::new(),
            };
        }
    };
    let mut resolved = resolve_repositories(&retention.inventory, &patterns).await;
    resolved.sort_by(|a, b| entry_name(a).cmp(entry_name(b)));
    resolved.dedup_by(|a, b| entry_name(a) == entry_name(b));
    // A scheduled run starts where the last one stopped, and goes round.
    let resume = match scheduled {
        true => retention.ledger.retention_resume().await.unwrap_or_else(|error| {
            warn!(error = %chain(&error), "where the last run stopped could not be read; starting from the first repository");
            None
        }),
        false => None,
    };
    if let Some(first) = &resume {
        let at = resolved.partition_point(|e| entry_name(e) < first.as_str());
        resolved.rotate_left(at);
    }
    let order: Vec<String> = resolved.iter().map(|e| entry_name(e).to_owned()).collect();
    let targets = Targets {
        inventory: &retention.inventory,
        ledger: &retention.ledger,
        events: Some(&retention.events),
    };
    let longest = Mutex::new(0);
    let mut reports = stream::iter(resolved)
        .map(|entry| {
            let (images, uses, targets, longest) = (&images, &uses, &targets, &longest);
            async move {
                let repository = match entry {
                    Ok(name) => name,
                    Err((pattern, error)) => return Some(failed(pattern, chain(&error))),
                };
                let started = retention.clock.now_millis();
                if let Some(deadline) = request.deadline {
                    let reserve = RESERVE_MS.max(2 * *longest.lock().unwrap_or_else(|p| p.into_inner()));
                    if started + reserve > deadline {
                        return None;
                    }
                }
                let result = async {
                    let (releases, version) = policy::release_rules(
                        &retention.config.releases,
                        &repository,
                        retention.ledger.policy(&repository).await?,
                    )?;
                    let rules = Rules {
                        images: images.clone(),
                        releases: releases.policy(retention.config.max_delete_share, request.force),
                    };
                    info!(%repository, policy_version = version, "retention under the repository's policy");
                    let survey = survey_repository(
                        &retention.inventory,
                        &retention.ledger,
                        &repository,
                        &rules,
                        uses,
                        now,
                    )
                    .await?;
                    Ok::<_, RunError>(apply_plan(targets, &repository, &survey, request.dry_run).await?)
                }
                .await;
                let report = result.unwrap_or_else(|error| {
                    warn!(%repository, error = %chain(&error), "repository failed; nothing of it was deleted after the failure, the others go on");
                    failed(repository.clone(), chain(&error))
                });
                if let Err(error) = publish_report(&retention.events, &report).await {
                    warn!(%repository, error = %chain(&error), "could not publish the retention report");
                }
                info!(%repository, deleted = report.deleted.len(), failed = report.failed.len(), releases_expired = report.releases_expired.len(), refused = report.refused.is_some(), "retention done");
                let took = retention.clock.now_millis() - started;
                let mut longest = longest.lock().unwrap_or_else(|p| p.into_inner());
                *longest = (*longest).max(took);
                Some(report)
            }
        })
        .buffered(retention.config.concurrency)
        .collect::<Vec<_>>()
        .await;
    // The repositories not started are a suffix of the run's order (each starts only after
    // the ones before it did): the next scheduled run begins with the first of them.
    let done = reports.iter().take_while(|r| r.is_some()).count();
    let not_started: Vec<String> = order[done..].to_vec();
    if scheduled {
        let next = not_started.first().map(String::as_str);
        if next != resume.as_deref() {
            if let Err(error) = retention.ledger.set_retention_resume(next).await {
                warn!(error = %chain(&error), "where the next run starts could not be recorded; it starts from the first repository");
            }
        }
        if let Some(next) = next {
            warn!(%next, left = not_started.len(), "the run's time is up; the next run starts here");
        }
    }
    let mut reports: Vec<RepositoryReport> = reports.drain(..).flatten().collect();
    reports.sort_by(|a, b| a.repository.cmp(&b.repository));
    RunReport {
        dry_run: request.dry_run,
        repositories: reports,
        not_started,
    }
}

/// A resolved entry's repository (or the pattern that failed to resolve).
fn entry_name(entry: &Result<String, (String, AdapterError)>) -> &str {
    match entry {
        Ok(name) => name,
        Err((pattern, _)) => pattern,
    }
}

/// The repositories a scheduled run covers: the configured ones and every one with a release
/// in the ledger (a ledger that cannot be read leaves the configured ones).
async fn managed<P: Ports>(retention: &Retention<P>) -> Vec<String> {
    let mut repositories = retention.config.repositories.clone();
    match retention.ledger.list(usize::MAX).await {
        Ok(listing) => {
            for stored in listing.releases {
                let repository = stored.release.key.repository;
                if !repositories.contains(&repository) {
                    repositories.push(repository);
                }
            }
        }
        Err(error) => {
            warn!(error = %chain(&error), "the ledger's repositories could not be read; this run covers the configured ones")
        }
    }
    repositories
}

/// Why one repository's run failed.
#[derive(Debug, thiserror::Error)]
enum RunError {
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    /// Its policy cannot be applied: nothing is deleted in it (fail closed).
    #[error("nothing is deleted in this repository: {0}")]
    Policy(#[from] PolicyError),
}
