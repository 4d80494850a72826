//! ECR "ECR Image Scan" / "Inspector2 Scan" / "Inspector2 Finding" → a verdict on that
//! per-arch image → the release pipeline, which promotes the index when every child passes,
//! records the block, or (after publication) announces the finding.

use archgate::handler_error::HandlerError;
use archgate::inbound::{
    finding_observation, parse_finding_event, parse_scan_event, scan_observation, NoObservation,
    INSPECTOR_FINDING,
};
use archgate::pipeline::{Outcome, Pipeline};
use archgate::ports::Ports;
use tracing::info;

pub async fn handle<P: Ports>(
    pipeline: &Pipeline<P>,
    event: serde_json::Value,
) -> Result<Outcome, HandlerError> {
    // Inspector's continuous rescans report each finding as it appears, changes or closes.
    let observed = if event.get("detail-type").and_then(|t| t.as_str()) == Some(INSPECTOR_FINDING) {
        let event = parse_finding_event(event)?;
        (
            event.id.clone(),
            finding_observation(&event, pipeline.config()),
        )
    } else {
        let event = parse_scan_event(event)?;
        (
            event.id.clone(),
            scan_observation(&event, pipeline.config()),
        )
    };
    let scan = match observed {
        (_, Ok(scan)) => scan,
        (event_id, Err(NoObservation::Ignored(reason))) => {
            info!(event_id = event_id.as_deref().unwrap_or_default(), %reason, "ignored");
            return Ok(reason.into());
        }
        (_, Err(NoObservation::Invalid(invalid))) => return Err(invalid.into()),
    };
    pipeline.judge_scan(&scan).await.map_err(Into::into)
}
