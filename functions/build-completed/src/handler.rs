//! CodeBuild "Build State Change" → `BuildChanged` fact → the release pipeline.

use archgate::build_variables::{IDENTITY, IMAGE_DIGEST};
use archgate::domain::IgnoreReason;
use archgate::handler_error::HandlerError;
use archgate::inbound::{build_change, build_fact, parse_codebuild_event};
use archgate::pipeline::{Outcome, Pipeline};
use archgate::ports::{Builds, Clock, EventPublisher, Ledger, Registry, Signer};
use tracing::info;

pub async fn handle<L, B, R, E, C, S>(
    pipeline: &Pipeline<L, B, R, E, C, S>,
    event: serde_json::Value,
) -> Result<Outcome, HandlerError>
where
    L: Ledger,
    B: Builds,
    R: Registry,
    E: EventPublisher,
    C: Clock,
    S: Signer,
{
    let event = parse_codebuild_event(event)?;
    let event_id = event.id.clone().unwrap_or_default();
    let ignore = |reason: IgnoreReason| {
        info!(%event_id, %reason, "ignored");
        Outcome::from(reason)
    };
    let change = match build_change(&event, pipeline.config()) {
        Ok(change) => change,
        Err(reason) => return Ok(ignore(reason)),
    };
    // The variables that name a release; when the event lacks them, CodeBuild is asked.
    let carries_identity = IDENTITY
        .iter()
        .all(|name| change.environment.iter().any(|(n, _)| n == name));
    // A succeeded arch or manifest build reports the image it pushed as an exported variable;
    // when the event lacks it, CodeBuild has it.
    let reports_image = change.status != archgate::domain::BuildStatus::Succeeded
        || change.exported.iter().any(|(n, _)| n == IMAGE_DIGEST);
    let (environment, exported) = if carries_identity && reports_image {
        (change.environment.clone(), change.exported.clone())
    } else {
        let details = pipeline
            .build_details(&change.build_id)
            .await
            .map_err(|source| HandlerError::BuildLookup {
                build_id: change.build_id.clone(),
                source,
            })?;
        match details {
            Some(details)
                if pipeline.config().role_of_project(&details.project) == Some(change.role) =>
            {
                // What the event carried stands; CodeBuild fills in what it lacked.
                let environment = if carries_identity {
                    change.environment.clone()
                } else {
                    details.environment
                };
                let exported = if reports_image || details.exported.is_empty() {
                    change.exported.clone()
                } else {
                    details.exported
                };
                (environment, exported)
            }
            Some(details) => {
                return Ok(ignore(IgnoreReason::ProjectDisagrees {
                    build_id: change.build_id.clone(),
                    project: details.project,
                }))
            }
            None if carries_identity => (change.environment.clone(), change.exported.clone()),
            None => {
                return Ok(ignore(IgnoreReason::UnknownBuild {
                    build_id: change.build_id.clone(),
                }))
            }
        }
    };
    let (key, fact) = match build_fact(&change, &environment, &exported, pipeline.config()) {
        Ok(found) => found,
        Err(reason) => return Ok(ignore(reason)),
    };
    Ok(pipeline.apply(&key, fact).await?)
}
