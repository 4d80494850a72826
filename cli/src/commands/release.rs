//! `archgate release …`: the releases in the ledger, and judging one again.

use super::configured;
use crate::error::CliError;
use crate::status::{describe_verdict, format_time, print_status};
use archgate::config::{MOVING_TAGS, REPOSITORY};
use archgate::domain::{ReleaseKey, ReleaseTag};
use archgate::ports::Ledger;
use archgate::Config;

/// `release status <tag>`: the release as the ledger records it, with the moving tags it holds.
pub async fn status(tag: &str, json: bool) -> Result<(), CliError> {
    // The ledger, the repository and the moving tags: nothing of the builds.
    let (ledger, _) = super::ledger().await?;
    let repository = super::required(REPOSITORY)?;
    let moving_tags = Config::moving_tags_from(std::env::var(MOVING_TAGS).unwrap_or_default())?;
    let key = ReleaseKey::new(repository.clone(), ReleaseTag::parse(tag)?);
    let Some(stored) = ledger.load(&key).await? else {
        return Err(CliError::NotFound(key.to_string()));
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&stored.release).unwrap_or_default()
        );
        return Ok(());
    }
    let mut moving = Vec::new();
    for tag in &moving_tags {
        let holder = ledger.moving_tag(&repository, tag).await?;
        if holder.is_some_and(|h| h.release == key.tag) {
            moving.push(tag.clone());
        }
    }
    print_status(&stored.release, stored.version, &moving);
    Ok(())
}

/// `release list`: recent releases with their state.
pub async fn list(limit: usize) -> Result<(), CliError> {
    let (ledger, _) = super::ledger().await?;
    let listing = ledger.list(limit).await?;
    for stored in &listing.releases {
        let r = &stored.release;
        println!(
            "{:<40} {:<16} attempt {:<3} {}",
            r.key.to_string(),
            r.phase().as_str(),
            r.attempt,
            format_time(r.updated_at)
        );
    }
    // One bad item stops nothing: it is listed with the reason.
    for item in &listing.unreadable {
        println!("{:<40} {:<16} {}", item.id, "unreadable", item.reason);
    }
    Ok(())
}

/// `release evaluate <tag>`: the current findings under the current policy, fed to the
/// release as a scan event would be.
pub async fn evaluate(tag: &str) -> Result<(), CliError> {
    let (config, clients) = configured().await?;
    let pipeline = clients.pipeline(&config);
    let key = ReleaseKey::new(config.repository.clone(), ReleaseTag::parse(tag)?);
    let evaluation = crate::evaluate::evaluate(&pipeline, &key).await?;
    for (arch, digest, verdict) in &evaluation.verdicts {
        println!("{}", describe_verdict(*arch, digest, verdict.as_ref()));
    }
    for outcome in &evaluation.outcomes {
        println!("  → {}", serde_json::to_string(outcome).unwrap_or_default());
    }
    println!("{} is {}", evaluation.release, evaluation.phase);
    Ok(())
}
