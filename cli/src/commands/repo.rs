//! `archgate repo list|show|set|unset`: each repository's own policy (gate limits and
//! allowlist, moving tags, release retention), stored with the ledger and versioned; the
//! environment gives every value a repository does not set.

use super::{configured, owned, repositories};
use crate::error::CliError;
use archgate::aws::{DynamoLedger, EcrRegistry};
use archgate::config::policy::{self, RepositoryPolicy, Source, SETTINGS};
use archgate::config::{Config, ConfigError};
use archgate::domain::policy::{PolicyRead, PolicyRecord};
use archgate::domain::repository::tag_mutability;
use archgate::domain::rfc3339;
use archgate::error::AdapterError;
use archgate::ports::{Ledger, Registry, SaveError};
use std::collections::{BTreeMap, BTreeSet};

/// How many times a change is read, merged and written again when another change of the same
/// repository's policy lands in between.
const ATTEMPTS: usize = 4;

/// `repo list`: every repository archgate manages (those with a release in the ledger, the
/// default one, those with a stored policy and those retention names), each with its count of
/// releases and its policy's version.
pub async fn list() -> Result<(), CliError> {
    let (config, clients) = configured().await?;
    let ledger = DynamoLedger::new(clients.dynamodb.clone(), &config.ledger_table);
    let listing = ledger.list(usize::MAX).await?;
    let policies: BTreeMap<String, PolicyRead> = ledger.policies().await?.into_iter().collect();
    let mut releases: BTreeMap<String, usize> = BTreeMap::new();
    releases.insert(config.repository.clone(), 0);
    for stored in &listing.releases {
        *releases
            .entry(stored.release.key.repository.clone())
            .or_default() += 1;
    }
    let named_by_retention: BTreeSet<String> = super::retention_entries()
        .into_iter()
        .filter(|entry| !entry.ends_with("/*"))
        .collect();
    let names: BTreeSet<&String> = releases
        .keys()
        .chain(policies.keys())
        .chain(&named_by_retention)
        .collect();
    println!("{:<40} {:>8}  POLICY", "REPOSITORY", "RELEASES");
    for name in names {
        let policy = match policies.get(name) {
            None | Some(PolicyRead::Unset) => "environment (version 0)".to_owned(),
            Some(PolicyRead::Found(record)) => format!("version {}", record.version),
            Some(PolicyRead::Unreadable { reason, .. }) => format!("UNREADABLE: {reason}"),
        };
        let count = releases.get(name).copied().unwrap_or(0);
        println!("{name:<40} {count:>8}  {policy}");
    }
    Ok(())
}

/// `repo show <repository>`: the effective policy, and where each value comes from.
pub async fn show(repository: &str, json: bool) -> Result<(), CliError> {
    owned(&repositories()?, repository)?;
    let (config, clients) = configured().await?;
    let ledger = DynamoLedger::new(clients.dynamodb.clone(), &config.ledger_table);
    let read = ledger.policy(repository).await?;
    let record = match &read {
        PolicyRead::Found(record) => Some(record.clone()),
        _ => None,
    };
    // An item that cannot be applied is shown as such (exit 2): nothing judges by it.
    let effective = policy::effective(&config, repository, read)?;
    let values = record
        .as_ref()
        .map(|r| r.values.clone())
        .unwrap_or_default();
    let sources = policy::sources(&values, |name| std::env::var(name).ok());
    let defaults = policy::defaults(&config);
    let value_of = |name: &str| {
        values
            .get(name)
            .or_else(|| defaults.get(name))
            .cloned()
            .unwrap_or_default()
    };
    if json {
        let settings: Vec<serde_json::Value> = SETTINGS
            .iter()
            .map(|name| {
                serde_json::json!({
                    "name": name,
                    "value": value_of(name),
                    "source": sources[name].to_string(),
                })
            })
            .collect();
        let shown = serde_json::json!({
            "repository": repository,
            "version": effective.version,
            "updated_at": record.as_ref().map(|r| rfc3339(r.updated_at)),
            "settings": settings,
        });
        println!("{shown:#}");
        return Ok(());
    }
    match &record {
        Some(record) => println!(
            "{repository}: policy version {} (set {})",
            record.version,
            rfc3339(record.updated_at)
        ),
        None => println!("{repository}: policy version 0 (the environment's values)"),
    }
    for name in SETTINGS {
        let value = value_of(name);
        let shown = if value.is_empty() { "(none)" } else { &value };
        let source = match sources[name] {
            Source::Repository => format!("repository (version {})", effective.version),
            other => other.to_string(),
        };
        println!("  {name:<26} {shown:<24} {source}");
    }
    Ok(())
}

/// `repo set <repository> NAME=VALUE…`: checked exactly as the environment would be, every
/// problem named at once and nothing written while there is one; a new version otherwise.
pub async fn set(repository: &str, assignments: &[String]) -> Result<(), CliError> {
    owned(&repositories()?, repository)?;
    let assigned = policy::parse_assignments(assignments)?;
    change(repository, |values| {
        values.extend(assigned.iter().map(|(k, v)| (k.clone(), v.clone())));
        assigned.contains_key("MOVING_TAGS")
    })
    .await
}

/// `repo unset <repository> NAME…`: the repository takes the environment's value again.
pub async fn unset(repository: &str, names: &[String]) -> Result<(), CliError> {
    owned(&repositories()?, repository)?;
    let unknown: Vec<ConfigError> = names
        .iter()
        .filter(|name| !SETTINGS.contains(&name.as_str()))
        .map(|name| ConfigError::UnknownSetting { name: name.clone() })
        .collect();
    if !unknown.is_empty() {
        return Err(match unknown.len() {
            1 => unknown.into_iter().next().expect("one"),
            _ => ConfigError::Several(unknown),
        }
        .into());
    }
    change(repository, |values| {
        for name in names {
            values.remove(name);
        }
        names.iter().any(|n| n == "MOVING_TAGS")
    })
    .await
}

/// Reads the stored values, applies `edit` (which says whether the moving tags changed),
/// checks the result and writes it as the next version, again on a concurrent change.
async fn change(
    repository: &str,
    edit: impl Fn(&mut BTreeMap<String, String>) -> bool,
) -> Result<(), CliError> {
    let (config, clients) = configured().await?;
    let ledger = DynamoLedger::new(clients.dynamodb.clone(), &config.ledger_table);
    for _ in 0..ATTEMPTS {
        let (mut values, current) = match ledger.policy(repository).await? {
            PolicyRead::Unset => (BTreeMap::new(), None),
            PolicyRead::Found(record) => (record.values, Some(record.version)),
            // A damaged item is replaced only by an explicit, complete change: its old
            // values are unknown, so the new item holds only what is set now.
            PolicyRead::Unreadable { reason, version } => {
                eprintln!("archgate: the stored policy of {repository} does not parse ({reason}); it is replaced");
                (BTreeMap::new(), version)
            }
        };
        let moving_tags_changed = edit(&mut values);
        let version = current.unwrap_or(0) + 1;
        let effective = policy::resolve(&policy::defaults(&config), &values, version)?;
        // A moving tag must not be a release's name in the repository: moving it would move
        // that release's tag (published releases are immutable).
        if moving_tags_changed {
            for tag in &effective.moving_tags {
                let Ok(tag) = archgate::domain::ReleaseTag::parse(tag) else {
                    continue;
                };
                let key = archgate::domain::ReleaseKey::new(repository, tag);
                if ledger.load(&key).await?.is_some() {
                    return Err(CliError::InvalidArgument(format!(
                        "MOVING_TAGS names {}, a release of {repository}: a moving tag cannot be a release's name",
                        key.tag
                    )));
                }
            }
        }
        let record = PolicyRecord {
            repository: repository.to_owned(),
            version,
            values,
            updated_at: time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
        };
        match ledger.save_policy(&record, current).await {
            Ok(()) => {
                println!("{repository}: policy version {version}");
                for (name, value) in &record.values {
                    println!("  {name}={value}");
                }
                if moving_tags_changed {
                    follow_moving_tags(&config, &clients.ecr, repository, &effective).await?;
                }
                return Ok(());
            }
            Err(SaveError::Conflict { .. }) => continue,
            Err(SaveError::Adapter(error)) => return Err(error.into()),
        }
    }
    Err(CliError::Incomplete(format!(
        "the policy of {repository} changed under {ATTEMPTS} attempts; nothing was written, run the command again"
    )))
}

/// A repository archgate created keeps its moving tags out of ECR's tag immutability: when
/// they change, so do its exclusion filters (the default repository is the template's).
async fn follow_moving_tags(
    config: &Config,
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    policy: &RepositoryPolicy,
) -> Result<(), CliError> {
    if repository == config.repository {
        return Ok(());
    }
    let mutability = tag_mutability(&policy.moving_tags);
    match EcrRegistry::new(ecr.clone())
        .set_tag_mutability(repository, &mutability)
        .await
    {
        Ok(()) => {
            println!("  {repository}'s tag immutability: {mutability:?}");
            Ok(())
        }
        // Not created yet: its first release creates it with these moving tags.
        Err(AdapterError::Rejected { code, .. }) if code == "RepositoryNotFoundException" => Ok(()),
        Err(error) => Err(error.into()),
    }
}
