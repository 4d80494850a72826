//! `archgate replay FILE...`: routes EventBridge events to their handlers exactly as
//! template.yaml's rules do, against the configured endpoint.

use archgate::inbound::{
    CODEBUILD_SOURCE, CODEBUILD_STATE_CHANGE, ECR_IMAGE_SCAN, ECR_SOURCE, INSPECTOR_FINDING,
    INSPECTOR_SCAN, INSPECTOR_SOURCE, S3_OBJECT_CREATED, S3_SOURCE,
};
use archgate::pipeline::Pipeline;
use archgate::ports::Ports;
use archgate::wiring::AwsPipeline;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    StartBuilds,
    BuildCompleted,
    ScanGate,
}

impl Route {
    /// The services the function's role allows (its `PERFORMS`).
    pub fn performs(self) -> &'static [archgate::domain::release::Service] {
        match self {
            Route::StartBuilds => archgate_start_builds::PERFORMS,
            Route::BuildCompleted => archgate_build_completed::PERFORMS,
            Route::ScanGate => archgate_scan_gate::PERFORMS,
        }
    }

    pub fn function(self) -> &'static str {
        match self {
            Route::StartBuilds => "start-builds",
            Route::BuildCompleted => "build-completed",
            Route::ScanGate => "scan-gate",
        }
    }
}

/// The function whose rule matches the event's source and detail-type.
pub fn route(event: &Value) -> Option<Route> {
    let field = |name| event.get(name).and_then(Value::as_str);
    match (field("source"), field("detail-type")) {
        (Some(S3_SOURCE), Some(S3_OBJECT_CREATED)) => Some(Route::StartBuilds),
        (Some(CODEBUILD_SOURCE), Some(CODEBUILD_STATE_CHANGE)) => Some(Route::BuildCompleted),
        (Some(ECR_SOURCE), Some(ECR_IMAGE_SCAN))
        | (Some(INSPECTOR_SOURCE), Some(INSPECTOR_SCAN))
        | (Some(INSPECTOR_SOURCE), Some(INSPECTOR_FINDING)) => Some(Route::ScanGate),
        _ => None,
    }
}

/// Runs one event through its handler; the result is the handler's JSON answer, or its
/// error as Lambda would report it (with `retryable`).
pub async fn dispatch<P: Ports>(pipeline: &Pipeline<P>, event: Value) -> Value {
    let Some(route) = route(&event) else {
        let field = |name| {
            event
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or("<missing>")
        };
        return json!({"function": null, "status": "unrouted",
                      "reason": format!("no handler takes source `{}` with detail-type `{}`", field("source"), field("detail-type"))});
    };
    // Each function acts with what its role allows, as deployed.
    let pipeline = pipeline.clone().performing(route.performs());
    // On the heap: a handler's future is large, and callers (the demo, tests) hold many.
    let result = match route {
        Route::StartBuilds => {
            Box::pin(archgate_start_builds::handler::handle(&pipeline, event)).await
        }
        Route::BuildCompleted => {
            Box::pin(archgate_build_completed::handler::handle(&pipeline, event)).await
        }
        Route::ScanGate => Box::pin(archgate_scan_gate::handler::handle(&pipeline, event)).await,
    };
    let mut answer = match result {
        Ok(outcome) => serde_json::to_value(outcome).unwrap_or(Value::Null),
        Err(error) => {
            json!({"status": "error", "error_type": error.error_type(), "error_message": error.chain(),
                              "retryable": error.is_retryable()})
        }
    };
    answer["function"] = json!(route.function());
    answer
}

/// One event file: its event, or the answer that says why it cannot be replayed (a file
/// that is not JSON is reported, not crashed on).
pub fn read_event(path: &std::path::Path) -> Result<Value, Value> {
    let answer = |error: Value| {
        let mut error = error;
        error["file"] = json!(path.display().to_string());
        error
    };
    let bytes = std::fs::read(path).map_err(|e| {
        answer(json!({"status": "error", "error_message": format!("cannot read: {e}")}))
    })?;
    serde_json::from_slice::<Value>(&bytes).map_err(|e| {
        answer(json!({"status": "error", "error_type": "Archgate.MalformedEvent", "error_message": format!("not JSON: {e}")}))
    })
}

/// When an event happened, by its `time` (RFC 3339); `None` without one.
pub fn event_time(event: &Value) -> Option<time::OffsetDateTime> {
    let text = event.get("time")?.as_str()?;
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// Events with a time first, earliest first; then the others.
fn delivery_order(event: &Value) -> (bool, Option<time::OffsetDateTime>) {
    let time = event_time(event);
    (time.is_none(), time)
}

/// Replays event files in the order their events happened (by `time`; events without one
/// keep their place after those with one), as EventBridge would have delivered them, each
/// answer naming its file. Files that cannot be read are answered first.
pub async fn replay_files(pipeline: &AwsPipeline, paths: &[std::path::PathBuf]) -> Vec<Value> {
    let mut answers = Vec::new();
    let mut events = Vec::new();
    for path in paths {
        match read_event(path) {
            Ok(event) => events.push((path, event)),
            Err(answer) => answers.push(answer),
        }
    }
    // Stable: events of one time, and events without one, keep the order they were given.
    events.sort_by_key(|(_, event)| delivery_order(event));
    for (path, event) in events {
        let mut answer = dispatch(pipeline, event).await;
        answer["file"] = json!(path.display().to_string());
        answers.push(answer);
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_replayed_in_the_order_they_happened() {
        // Given a completion, an upload a few minutes earlier and an event without a time
        let completion = json!({"time": "2025-03-14T09:44:35Z"});
        let upload = json!({"time": "2025-03-14T09:41:02Z"});
        let timeless = json!({"detail-type": "Scheduled Event"});
        let odd = json!({"time": "yesterday"});
        let mut events = [&timeless, &completion, &odd, &upload];
        // When they are put in delivery order
        events.sort_by_key(|event| delivery_order(event));
        // Then the upload comes first, and the events without a readable time last, as given
        assert_eq!(events, [&upload, &completion, &timeless, &odd]);
    }
}
