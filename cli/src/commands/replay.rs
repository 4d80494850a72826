//! `archgate replay FILE...`: each event file through its handler, in the order the events
//! happened, one JSON answer a line.

use super::configured;
use crate::error::CliError;
use std::path::PathBuf;

pub async fn run(files: &[PathBuf]) -> Result<(), CliError> {
    let (config, clients) = configured().await?;
    let pipeline = clients.pipeline(&config);
    let mut failed = 0;
    for answer in crate::replay::replay_files(&pipeline, files).await {
        if answer["status"] == "error" {
            failed += 1;
        }
        println!("{answer}");
    }
    if failed == 0 {
        Ok(())
    } else {
        Err(CliError::Incomplete(format!(
            "{failed} of {} event file(s) failed",
            files.len()
        )))
    }
}
