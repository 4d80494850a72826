//! `archgate gate check <tag>`: the verdict on a release now (current findings, current
//! policy), changing nothing.

use super::configured;
use crate::error::CliError;
use crate::status::describe_verdict;
use archgate::aws::{DynamoLedger, EcrRegistry};
use archgate::domain::{ReleaseKey, ReleaseTag};
use archgate::gatekeeper::{current_verdicts, date_of};
use archgate::ports::{Clock, Ledger, SystemClock};

pub async fn check(tag: &str) -> Result<(), CliError> {
    let (config, clients) = configured().await?;
    let key = ReleaseKey::new(config.repository.clone(), ReleaseTag::parse(tag)?);
    let ledger = DynamoLedger::new(clients.dynamodb.clone(), &config.ledger_table);
    let stored = ledger
        .load(&key)
        .await?
        .ok_or_else(|| CliError::NotFound(key.to_string()))?;
    let registry = EcrRegistry::new(clients.ecr.clone());
    let today = date_of(SystemClock.now_millis());
    let verdicts = current_verdicts(&config.gate, &registry, &stored.release, &today).await?;
    let mut passes = !verdicts.is_empty();
    for (arch, digest, verdict) in &verdicts {
        passes &= verdict.as_ref().is_some_and(|(v, _)| v.passes());
        println!(
            "{}",
            describe_verdict(*arch, digest, verdict.as_ref().map(|(v, _)| v))
        );
    }
    if verdicts.is_empty() {
        println!(
            "{} has no candidate index yet: nothing to judge",
            stored.release.key
        );
    }
    println!("gate: {}", if passes { "pass" } else { "not passing" });
    if passes {
        Ok(())
    } else {
        Err(CliError::Refused(format!("{key} does not pass the gate")))
    }
}
