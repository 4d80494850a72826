//! `archgate gate check <tag>`: the verdict on a release now (current findings, current
//! policy), changing nothing.

use super::configured;
use crate::error::CliError;
use crate::status::describe_verdict;

pub async fn check(tag: &str, repository: Option<&str>) -> Result<(), CliError> {
    let key = super::release_key(tag, repository)?;
    let (config, clients) = configured().await?;
    let pipeline = clients.pipeline(&config);
    let stored = pipeline
        .release(&key)
        .await?
        .ok_or_else(|| CliError::NotFound(key.to_string()))?;
    if let Some(expiry) = &stored.release.expired {
        // Its images are gone: there is nothing left to judge, and no AWS error to show.
        return Err(CliError::Expired(format!(
            "{key} expired by retention at {} ({}): its images are gone, nothing to judge",
            archgate::domain::rfc3339(expiry.at),
            expiry.rule
        )));
    }
    let verdicts = pipeline.current_verdicts(&stored.release).await?;
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
