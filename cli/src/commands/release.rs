//! `archgate release …`: the releases in the ledger, and judging one again.

use super::configured;
use crate::error::CliError;
use crate::status::{describe_verdict, print_status};
use crate::verify::{Key, VerifyError};
use archgate::config::{MOVING_TAGS, SIGNING_KEY};
use archgate::domain::rfc3339;
use archgate::domain::Phase;
use archgate::ports::Ledger;
use archgate::Config;
use std::time::{Duration, Instant};

/// `release status <tag>`: the release as the ledger records it, with the moving tags it holds.
pub async fn status(tag: &str, repository: Option<&str>, json: bool) -> Result<(), CliError> {
    // The ledger, the repository and the moving tags: nothing of the builds.
    let key = super::release_key(tag, repository)?;
    let (ledger, _) = super::ledger().await?;
    let repository = key.repository.clone();
    let moving_tags = Config::moving_tags_from(std::env::var(MOVING_TAGS).unwrap_or_default())?;
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

/// `release list`: recent releases of every repository (or of one) with their state.
pub async fn list(limit: usize, repository: Option<&str>) -> Result<(), CliError> {
    let (ledger, _) = super::ledger().await?;
    let listing = ledger.list(usize::MAX).await?;
    let releases = listing
        .releases
        .iter()
        .filter(|stored| repository.is_none_or(|r| stored.release.key.repository == r))
        .take(limit);
    for stored in releases {
        let r = &stored.release;
        println!(
            "{:<40} {:<16} attempt {:<3} {}",
            r.key.to_string(),
            r.phase().as_str(),
            r.attempt_started(),
            rfc3339(r.updated_at)
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
pub async fn evaluate(tag: &str, repository: Option<&str>) -> Result<(), CliError> {
    let key = super::release_key(tag, repository)?;
    let (config, clients) = configured().await?;
    let pipeline = clients.pipeline(&config);
    let evaluation = archgate::evaluate::evaluate(&pipeline, &key).await?;
    for (arch, digest, verdict) in &evaluation.verdicts {
        println!("{}", describe_verdict(*arch, digest, verdict.as_ref()));
    }
    for outcome in &evaluation.outcomes {
        println!("  → {}", serde_json::to_string(outcome).unwrap_or_default());
    }
    println!("{} is {}", evaluation.release, evaluation.phase);
    Ok(())
}

/// `release watch <tag>`: each change of the release's state, with the time the ledger
/// recorded it, and the last error of what it is owed while that keeps failing, until the
/// release ends (published, failed, rejected), rests blocked or is announced stalled.
/// Succeeds when it is published.
pub async fn watch(
    tag: &str,
    repository: Option<&str>,
    every: Duration,
    timeout: Duration,
) -> Result<(), CliError> {
    let key = super::release_key(tag, repository)?;
    let (ledger, _) = super::ledger().await?;
    let started = Instant::now();
    let mut seen: Option<(Phase, u32)> = None;
    let mut troubles_seen: Vec<String> = Vec::new();
    let mut waiting_said = false;
    loop {
        match ledger.load(&key).await? {
            None if !waiting_said => {
                println!("{key}: not recorded yet; waiting for its upload");
                waiting_said = true;
            }
            None => {}
            Some(stored) => {
                let release = &stored.release;
                let now = (release.phase(), release.attempt);
                if seen != Some(now) {
                    println!(
                        "{}  {key}  {}, attempt {}",
                        rfc3339(release.updated_at),
                        now.0,
                        now.1
                    );
                    print_why(release);
                    seen = Some(now);
                }
                // What it is owed and cannot get: said when it changes (effect and error),
                // not on every retry.
                let troubles = crate::status::trouble_lines(release);
                let said: Vec<String> = release
                    .troubles
                    .iter()
                    .map(|t| format!("{}\0{}", t.effect, t.error))
                    .chain(release.stalled.iter().map(|s| s.reason.clone()))
                    .collect();
                if said != troubles_seen {
                    for line in &troubles {
                        println!("    {line}");
                    }
                    troubles_seen = said;
                }
                match now.0 {
                    Phase::Published => return Ok(()),
                    phase if phase.is_final() || phase == Phase::Blocked => {
                        return Err(CliError::Refused(format!("{key} is {phase}")))
                    }
                    // Announced as stalled: it waits for someone to fix what keeps failing.
                    _ if release.stalled.is_some() => {
                        return Err(CliError::Refused(format!(
                            "{key} is stalled: {}",
                            release.stalled.as_ref().map_or("", |s| s.reason.as_str())
                        )))
                    }
                    _ => {}
                }
            }
        }
        if started.elapsed() >= timeout {
            let state = seen.map_or("not recorded".to_owned(), |(phase, _)| phase.to_string());
            return Err(CliError::Incomplete(format!(
                "{key} is still {state} after {}s",
                timeout.as_secs()
            )));
        }
        tokio::time::sleep(every).await;
    }
}

/// Why a release failed or is blocked, under its state line.
fn print_why(release: &archgate::domain::Release) {
    if let Some(reason) = release.failure_reason() {
        println!("    failed: {reason}");
    }
    if release.phase() == Phase::Blocked {
        for child in release.candidate.iter().flat_map(|c| &c.children) {
            let verdict = release
                .verdict_for(child.arch, &child.digest)
                .map(|r| &r.verdict);
            if verdict.is_some_and(|v| !v.passes()) {
                println!(
                    "    {}",
                    describe_verdict(child.arch, &child.digest, verdict)
                );
            }
        }
    }
}

/// `release verify <tag>`: the attestations of the index `<tag>` names, checked against the
/// registry as it is now. Exit 1, with the reason, on any mismatch.
pub async fn verify(
    tag: &str,
    repository: Option<&str>,
    key_file: Option<&std::path::Path>,
) -> Result<(), CliError> {
    let release = super::release_key(tag, repository)?;
    let repository = release.repository.clone();
    let tag = release.tag.as_str();
    let clients = archgate::aws::Clients::new(&archgate::aws::sdk_config().await?);
    let key = match (key_file, super::required(SIGNING_KEY).ok()) {
        (Some(path), _) => {
            let bytes = std::fs::read(path).map_err(|e| {
                CliError::InvalidArgument(format!("cannot read {}: {e}", path.display()))
            })?;
            // Not PEM at all is a wrong argument (exit 2), said plainly; a PEM key that is
            // not one to verify with is the release's refusal below, naming what it is.
            let pem = String::from_utf8(bytes)
                .ok()
                .filter(|pem| p256::pkcs8::der::pem::decode_vec(pem.as_bytes()).is_ok())
                .ok_or_else(|| {
                    CliError::InvalidArgument(format!(
                        "{} is not a PEM public key (a -----BEGIN PUBLIC KEY----- block, as `aws kms get-public-key` output turned into PEM)",
                        path.display()
                    ))
                })?;
            Some(Key::from_pem(&pem, Some(path.display().to_string())).map_err(refused(tag))?)
        }
        (None, Some(name)) => {
            let der = archgate::aws::public_key(&clients.kms, &name).await?;
            Some(Key::from_der(&der, Some(name)).map_err(refused(tag))?)
        }
        (None, None) => {
            println!("no key (ARCHGATE_SIGNING_KEY or --key): signatures are not checked");
            None
        }
    };
    let inventory = archgate::aws::EcrRegistry::new(clients.ecr.clone());
    match crate::verify::verify(&inventory, &repository, tag, key.as_ref()).await {
        Ok(verification) => {
            for line in crate::verify::describe(&verification) {
                println!("{line}");
            }
            println!("{tag}: verified");
            Ok(())
        }
        Err(VerifyError::Aws(e)) => Err(e.into()),
        Err(e) => Err(refused(tag)(e)),
    }
}

/// A verification that failed: said on standard output, exit 1.
fn refused(tag: &str) -> impl Fn(VerifyError) -> CliError + '_ {
    move |error| {
        let message = format!("{tag} does not verify: {error}");
        println!("{message}");
        CliError::Refused(message)
    }
}
