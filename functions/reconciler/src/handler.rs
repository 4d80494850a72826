//! Scheduled Event → one reconciliation pass: every release waiting for builds or scans that
//! stopped moving is re-read from CodeBuild and ECR; effects nobody holds are taken over.

use archgate::handler_error::HandlerError;
use archgate::pipeline::Pipeline;
use archgate::ports::{Builds, Clock, EventPublisher, Ledger, Registry, Signer};
use archgate::reconcile::{reconcile_all, ReconcilePolicy, ReconcileReport};

/// Runs one reconciliation pass at `now` (the event's content does not matter: any
/// invocation is a pass).
pub async fn handle<L, B, R, E, C, S>(
    pipeline: &Pipeline<L, B, R, E, C, S>,
    policy: ReconcilePolicy,
    now: i64,
) -> Result<ReconcileReport, HandlerError>
where
    L: Ledger,
    B: Builds,
    R: Registry,
    E: EventPublisher,
    C: Clock,
    S: Signer,
{
    Ok(reconcile_all(pipeline, policy, now, false).await?)
}
