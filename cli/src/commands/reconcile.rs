//! `archgate reconcile`: one reconciler pass, printed.

use super::configured;
use crate::error::CliError;

pub async fn run(dry_run: bool, json: bool) -> Result<(), CliError> {
    let (config, clients) = configured().await?;
    let report = crate::reconcile::run(&clients.pipeline(&config), dry_run, json).await?;
    match report.failed.len() {
        0 => Ok(()),
        failed => Err(CliError::Incomplete(format!(
            "{failed} release(s) could not be reconciled"
        ))),
    }
}
