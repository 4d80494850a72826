//! `archgate demo`: one whole release on the embedded emulator (or `AWS_ENDPOINT_URL`).

use crate::error::CliError;

pub async fn run() -> Result<(), CliError> {
    let report = crate::demo::run().await?;
    if report.succeeded() {
        return Ok(());
    }
    let failed_steps = report.steps.iter().filter(|s| !s.ok).count();
    Err(CliError::Incomplete(format!(
        "the demo failed: {failed_steps} failed step(s), {} problem(s)",
        report.problems.len()
    )))
}
