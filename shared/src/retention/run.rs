//! One retention run: every configured repository (or the ones a request names), a few at a
//! time; one repository's failure does not stop the others.

use super::{apply_plan, plan_repository, publish_report, resolve_repositories, RepositoryReport};
use crate::config::RetentionConfig;
use crate::error::chain;
use crate::ports::{Clock, EventPublisher, Ledger, RepositoryInventory, Workloads};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// Everything a run needs, built once per process: the configuration and the ports.
pub struct Retention<I, W, L, E, C> {
    pub config: RetentionConfig,
    pub inventory: I,
    pub workloads: W,
    pub ledger: L,
    pub events: E,
    pub clock: C,
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
pub async fn run<I, W, L, E, C>(retention: &Retention<I, W, L, E, C>, request: Request) -> RunReport
where
    I: RepositoryInventory,
    W: Workloads,
    L: Ledger,
    E: EventPublisher,
    C: Clock,
{
    let patterns = request
        .repositories
        .clone()
        .unwrap_or_else(|| retention.config.repositories.clone());
    let policy = retention.config.policy(request.force);
    let now = retention.clock.now_millis();
    let resolved = resolve_repositories(&retention.inventory, &patterns).await;
    let failed = |repository: String, error: String| RepositoryReport {
        repository,
        dry_run: request.dry_run,
        error: Some(error),
        ..RepositoryReport::default()
    };
    let mut reports = stream::iter(resolved)
        .map(|entry| {
            let policy = policy.clone();
            async move {
                let repository = match entry {
                    Ok(name) => name,
                    Err((pattern, error)) => return failed(pattern, chain(&error)),
                };
                let inventory = &retention.inventory;
                let result = async {
                    let survey =
                        plan_repository(inventory, &retention.ledger, &repository, &policy, now)
                            .await?;
                    apply_plan(inventory, &repository, &survey, request.dry_run).await
                }
                .await;
                let report = result.unwrap_or_else(|error| {
                    warn!(%repository, error = %chain(&error), "repository failed; the others go on");
                    failed(repository.clone(), chain(&error))
                });
                if let Err(error) = publish_report(&retention.events, &report).await {
                    warn!(%repository, error = %chain(&error), "could not publish the retention report");
                }
                info!(%repository, deleted = report.deleted.len(), failed = report.failed.len(), refused = report.refused.is_some(), "retention done");
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
