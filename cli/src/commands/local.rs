//! `archgate local …`: helpers for a local installation.

use crate::error::CliError;
use archgate::aws::sdk_config;
use archgate::Config;

/// `archgate local provision`: every resource the configuration names, one line each.
pub async fn provision() -> Result<(), CliError> {
    let config = Config::from_env()?;
    for resource in crate::provision::provision(&sdk_config().await?, &config).await? {
        println!("{resource}");
    }
    Ok(())
}
