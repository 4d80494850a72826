//! Scheduled Event, or `{"repositories": [...], "dry_run": true, "force": false}` → one
//! cleanup per repository, with bounded concurrency; one repository's failure does not stop
//! the others.

use archgate::cleanup::{
    apply_plan, plan_repository, publish_report, resolve_repositories, RepositoryReport,
    RetentionConfig,
};
use archgate::error::chain;
use archgate::ports::{Clock, EventPublisher, Ledger, RepositoryInventory};
use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// Everything a run needs, built once per process: the configuration and the ports.
pub struct Retention<I, L, E, C> {
    pub config: RetentionConfig,
    pub inventory: I,
    pub ledger: L,
    pub events: E,
    pub clock: C,
}

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

#[derive(Debug, thiserror::Error)]
#[error("retention event is neither a Scheduled Event nor a {{\"repositories\", \"dry_run\", \"force\"}} request")]
pub struct BadRequest(#[source] pub serde_json::Error);

impl From<BadRequest> for lambda_runtime::Diagnostic {
    fn from(error: BadRequest) -> Self {
        let message = chain(&error);
        tracing::error!(%message, "invocation failed");
        lambda_runtime::Diagnostic {
            error_type: "Archgate.MalformedEvent".to_owned(),
            error_message: message,
        }
    }
}

/// Reads the event: a schedule runs the configured repositories for real.
pub fn request_of(event: serde_json::Value) -> Result<Request, BadRequest> {
    let scheduled = event.get("source").and_then(|s| s.as_str()) == Some("aws.events")
        && event.get("detail-type").and_then(|s| s.as_str()) == Some("Scheduled Event");
    if scheduled {
        return Ok(Request::default());
    }
    serde_json::from_value(event).map_err(BadRequest)
}

pub async fn handle<I, L, E, C>(
    retention: &Retention<I, L, E, C>,
    event: serde_json::Value,
) -> Result<RunReport, BadRequest>
where
    I: RepositoryInventory,
    L: Ledger,
    E: EventPublisher,
    C: Clock,
{
    let request = request_of(event)?;
    Ok(run(retention, request).await)
}

pub async fn run<I, L, E, C>(retention: &Retention<I, L, E, C>, request: Request) -> RunReport
where
    I: RepositoryInventory,
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
    let reports = stream::iter(resolved)
        .map(|entry| {
            let policy = policy.clone();
            async move {
                let repository = match entry {
                    Ok(name) => name,
                    Err((pattern, error)) => {
                        return RepositoryReport {
                            repository: pattern,
                            dry_run: request.dry_run,
                            error: Some(chain(&error)),
                            ..RepositoryReport::default()
                        }
                    }
                };
                let inventory = &retention.inventory;
                let result = async {
                    let survey = plan_repository(inventory, &retention.ledger, &repository, &policy, now).await?;
                    apply_plan(inventory, &repository, &survey, request.dry_run).await
                }
                .await;
                let report = match result {
                    Ok(report) => report,
                    Err(error) => {
                        warn!(%repository, error = %chain(&error), "repository failed; the others go on");
                        RepositoryReport {
                            repository: repository.clone(),
                            dry_run: request.dry_run,
                            error: Some(chain(&error)),
                            ..RepositoryReport::default()
                        }
                    }
                };
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
    let mut reports = reports;
    reports.sort_by(|a, b| a.repository.cmp(&b.repository));
    RunReport {
        dry_run: request.dry_run,
        repositories: reports,
    }
}
