//! CodeBuild "Build State Change" → `BuildChanged` fact → the release pipeline.

use archgate::domain::IgnoreReason;
use archgate::handler_error::HandlerError;
use archgate::inbound::{
    build_change, build_fact, build_variables, needs_build_record, parse_codebuild_event,
    BuildRecord,
};
use archgate::pipeline::{Outcome, Pipeline};
use archgate::ports::Ports;
use tracing::info;

pub async fn handle<P: Ports>(
    pipeline: &Pipeline<P>,
    event: serde_json::Value,
) -> Result<Outcome, HandlerError> {
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
    let record = if needs_build_record(&change) {
        match pipeline.build_details(&change.build_id).await {
            Ok(Some(details)) => BuildRecord::Read(details),
            Ok(None) => BuildRecord::Unknown,
            Err(source) => {
                return Err(HandlerError::BuildLookup {
                    build_id: change.build_id.clone(),
                    source,
                })
            }
        }
    } else {
        BuildRecord::NotRead
    };
    let variables = match build_variables(&change, record, pipeline.config()) {
        Ok(variables) => variables,
        Err(reason) => return Ok(ignore(reason)),
    };
    let (key, fact) = match build_fact(
        &change,
        &variables.environment,
        &variables.exported,
        pipeline.config(),
    ) {
        Ok(found) => found,
        Err(reason) => return Ok(ignore(reason)),
    };
    Ok(pipeline.apply(&key, fact).await?)
}
