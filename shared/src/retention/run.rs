//! One retention run: every configured repository (or the ones a request names), a few at a
//! time; one repository's failure does not stop the others.

use super::{
    apply_plan, publish_report, resolve_repositories, survey_repository, RepositoryReport, Rules,
    Targets,
};
use crate::config::RetentionConfig;
use crate::error::chain;
use crate::ports::{Clock, Ports, Workloads};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
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

/// What an invocation asks for; a Scheduled Event is the default: the configured
/// repositories, for real.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    #[serde(default)]
    pub repositories: Option<Vec<String>>,
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default)]
    pub force: bool,
}

#[derive(Debug, Serialize)]
pub struct RunReport {
    pub dry_run: bool,
    pub repositories: Vec<RepositoryReport>,
}

/// Plans, applies and reports every repository of the request.
pub async fn run<P: Ports>(retention: &Retention<P>, request: Request) -> RunReport {
    let patterns = request
        .repositories
        .clone()
        .unwrap_or_else(|| retention.config.repositories.clone());
    let rules = Rules {
        images: retention.config.policy(request.force),
        releases: retention.config.release_policy(request.force),
    };
    let now = retention.clock.now_millis();
    let failed = |repository: String, error: String| RepositoryReport {
        repository,
        dry_run: request.dry_run,
        error: Some(error),
        ..RepositoryReport::default()
    };
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
            };
        }
    };
    let resolved = resolve_repositories(&retention.inventory, &patterns).await;
    let targets = Targets {
        inventory: &retention.inventory,
        ledger: &retention.ledger,
        events: Some(&retention.events),
    };
    let mut reports = stream::iter(resolved)
        .map(|entry| {
            let (rules, uses, targets) = (&rules, &uses, &targets);
            async move {
                let repository = match entry {
                    Ok(name) => name,
                    Err((pattern, error)) => return failed(pattern, chain(&error)),
                };
                let result = async {
                    let survey = survey_repository(
                        &retention.inventory,
                        &retention.ledger,
                        &repository,
                        rules,
                        uses,
                        now,
                    )
                    .await?;
                    apply_plan(targets, &repository, &survey, request.dry_run).await
                }
                .await;
                let report = result.unwrap_or_else(|error| {
                    warn!(%repository, error = %chain(&error), "repository failed; the others go on");
                    failed(repository.clone(), chain(&error))
                });
                if let Err(error) = publish_report(&retention.events, &report).await {
                    warn!(%repository, error = %chain(&error), "could not publish the retention report");
                }
                info!(%repository, deleted = report.deleted.len(), failed = report.failed.len(), releases_expired = report.releases_expired.len(), refused = report.refused.is_some(), "retention done");
                report
            }
        })
        .buffer_unordered(retention.config.concurrency)
        .collect::<Vec<_>>()
        .await;
    reports.sort_by(|a, b| a.repository.cmp(&b.repository));
    RunReport {
        dry_run: request.dry_run,
        repositories: reports,
    }
}
