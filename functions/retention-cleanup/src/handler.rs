//! Scheduled Event, or `{"repositories": [...], "dry_run": true, "force": false}` → one
//! retention run ([`archgate::retention::run`]).

use archgate::error::chain;
use archgate::inbound::is_scheduled;
use archgate::ports::Ports;
use archgate::retention::{run, Request, Retention, RunReport};

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
    if is_scheduled(&event) {
        return Ok(Request::default());
    }
    serde_json::from_value(event).map_err(BadRequest)
}

pub async fn handle<P: Ports>(
    retention: &Retention<P>,
    event: serde_json::Value,
) -> Result<RunReport, BadRequest> {
    handle_until(retention, event, None).await
}

/// [`handle`] within the invocation's time: no repository starts that could not finish
/// before `deadline` (milliseconds since the epoch); the next scheduled run starts with it.
pub async fn handle_until<P: Ports>(
    retention: &Retention<P>,
    event: serde_json::Value,
    deadline: Option<archgate::domain::Millis>,
) -> Result<RunReport, BadRequest> {
    let request = Request {
        deadline,
        ..request_of(event)?
    };
    Ok(run(retention, request).await)
}
