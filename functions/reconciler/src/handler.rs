//! Scheduled Event → one reconciliation pass: every release waiting for builds or scans that
//! stopped moving is re-read from CodeBuild and ECR; effects nobody holds are taken over.

use archgate::config::ReconcilePolicy;
use archgate::handler_error::HandlerError;
use archgate::pipeline::Pipeline;
use archgate::ports::Ports;
use archgate::reconcile::{reconcile_all, ReconcileReport};

/// Runs one reconciliation pass at `now` (the event's content does not matter: any
/// invocation is a pass).
pub async fn handle<P: Ports>(
    pipeline: &Pipeline<P>,
    policy: ReconcilePolicy,
    now: i64,
) -> Result<ReconcileReport, HandlerError> {
    Ok(reconcile_all(pipeline, policy, now, false).await?)
}
