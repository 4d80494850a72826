//! Routes EventBridge events to the functions' handlers exactly as template.yaml's rules do:
//! `archgate replay`, the local loop, the demo and the simulation deliver events through it.

use archgate::inbound::{
    CODEBUILD_SOURCE, CODEBUILD_STATE_CHANGE, ECR_IMAGE_SCAN, ECR_SOURCE, INSPECTOR_FINDING,
    INSPECTOR_SCAN, INSPECTOR_SOURCE, S3_OBJECT_CREATED, S3_SOURCE,
};
use archgate::pipeline::Pipeline;
use archgate::ports::Ports;
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
