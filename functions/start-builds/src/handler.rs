//! S3 "Object Created" → `SourceUploaded` fact → the release pipeline.

use archgate::domain::release_event::rejection_event;
use archgate::handler_error::HandlerError;
use archgate::inbound::{parse_s3_event, upload_fact};
use archgate::pipeline::{Outcome, Pipeline};
use archgate::ports::Ports;
use tracing::info;

pub async fn handle<P: Ports>(
    pipeline: &Pipeline<P>,
    event: serde_json::Value,
) -> Result<Outcome, HandlerError> {
    let event = parse_s3_event(event)?;
    let (key, fact) = match upload_fact(&event, pipeline.config()) {
        Ok(found) => found,
        Err(reason) => {
            info!(event_id = event.id.as_deref().unwrap_or_default(), %reason, "ignored");
            // A key that names no repository of archgate's starts nothing, and says so.
            if let Some(rejection) = rejection_event(&reason) {
                pipeline.announce(&rejection).await?;
            }
            return Ok(reason.into());
        }
    };
    let fact = pipeline.screen_upload(&key, fact).await?;
    Ok(pipeline.apply(&key, fact).await?)
}
