//! Applies a survey. Tombstones first: once a release's ledger record says it expired, no
//! upload, evaluation or promotion can revive it while its images go. Then the deletions,
//! wave by wave (an index's wave before its children's, a referrer's before its subject's),
//! the batches of one wave concurrently. Then one `Release Expired` per release.

use super::{RepositoryReport, Survey, DELETE_CONCURRENCY};
use crate::domain::release::{EffectResult, EventKind, ExpiryRule};
use crate::domain::release_event::release_event;
use crate::domain::retention::Fate;
use crate::domain::{decide, Decision, Digest, Effect, Fact, Millis, Phase, ReleaseKey};
use crate::error::{chain, AdapterError};
use crate::ports::{
    DeleteResult, EventPublisher, Ledger, RepositoryInventory, Stored, BATCH_LIMIT,
};
use crate::write::{self, FirstRead, Reads};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use tracing::{info, warn};

/// A release this run expired.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ExpiredRelease {
    pub tag: String,
    pub rule: &'static str,
    pub reason: String,
    /// Its images that were deleted (shared ones stay with the releases that keep them).
    pub images: usize,
}

/// The ports an apply writes to. Without an event bus (a CLI run without one), the `Release
/// Expired` events stay claimed in the ledger and the reconciler announces them once the
/// claims' lease has run out.
pub struct Targets<'a, I, L, E> {
    pub inventory: &'a I,
    pub ledger: &'a L,
    pub events: Option<&'a E>,
}

/// Deletes what the plan allows (unless `dry_run`), expires the releases it expires, and
/// builds the report.
pub async fn apply_plan<I, L, E>(
    targets: &Targets<'_, I, L, E>,
    repository: &str,
    survey: &Survey,
    dry_run: bool,
) -> Result<RepositoryReport, AdapterError>
where
    I: RepositoryInventory,
    L: Ledger,
    E: EventPublisher,
{
    apply_plan_with_progress(targets, repository, survey, dry_run, |_, _| {}).await
}

/// [`apply_plan`], calling `progress(done, total)` after each BatchDeleteImage.
pub async fn apply_plan_with_progress<I, L, E>(
    targets: &Targets<'_, I, L, E>,
    repository: &str,
    survey: &Survey,
    dry_run: bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<RepositoryReport, AdapterError>
where
    I: RepositoryInventory,
    L: Ledger,
    E: EventPublisher,
{
    let mut report = RepositoryReport::of(repository, survey, dry_run);
    if dry_run || survey.plan.refused.is_some() {
        if dry_run {
            report.deleted = survey
                .plan
                .delete
                .iter()
                .map(|d| d.digest.clone())
                .collect();
            report.bytes_reclaimed = survey.plan.bytes_reclaimed;
            report.releases_expired = expired_releases(survey, &report.deleted);
            report.untagged = survey.tags_to_remove();
        }
        return Ok(report);
    }

    // 1. Tombstones. A release whose tombstone could not be written stays this run, and the
    //    image plan is made again without it. A release expired by an earlier run whose
    //    images are still there is read again: if a new attempt was queued or started since
    //    the survey (an expired attempt may be built again), nothing of it goes this run.
    // In the order the plan expires them: the announcements go out in that order, run after run.
    let mut tombstoned: Vec<Stored> = Vec::new();
    let mut confirmed: HashSet<String> = HashSet::new();
    for release in survey.releases.expiring() {
        let Fate::Expire { rule, already } = &release.fate else {
            continue;
        };
        let Some(stored) = survey.stored.get(&release.tag) else {
            continue;
        };
        if *already {
            let still = if release.digests.is_empty() {
                true
            } else {
                report.aws_calls += 1;
                targets
                    .ledger
                    .load(&stored.release.key)
                    .await?
                    .is_some_and(|now| {
                        now.release.phase() == Phase::Expired && now.release.queued.is_none()
                    })
            };
            if still {
                confirmed.insert(release.tag.clone());
            }
            continue;
        }
        let (written, calls) = tombstone(targets.ledger, stored, rule, survey.now).await?;
        report.aws_calls += calls;
        if let Some(written) = written {
            confirmed.insert(release.tag.clone());
            tombstoned.push(written);
        }
    }
    let replanned;
    let survey = if survey
        .releases
        .expiring()
        .any(|r| !confirmed.contains(&r.tag))
    {
        let mut again = survey.clone();
        again.releases.expire_only(|tag| confirmed.contains(tag));
        again.replan();
        report.kept_by_reason = again.plan.kept_by_reason();
        report.releases_kept_by_rule = again.releases.kept_by_rule();
        report.releases_expired_by_rule = again.releases.expired_by_rule();
        replanned = again;
        &replanned
    } else {
        survey
    };

    // 2. Deletions, wave by wave.
    let plan = &survey.plan;
    let mut waves: BTreeMap<u32, Vec<Digest>> = BTreeMap::new();
    for deletion in &plan.delete {
        waves
            .entry(deletion.wave)
            .or_default()
            .push(deletion.digest.clone());
    }
    let total = plan.delete.len();
    for digests in waves.values() {
        let results: Vec<Result<DeleteResult, AdapterError>> =
            stream::iter(digests.chunks(BATCH_LIMIT))
                .map(|batch| targets.inventory.delete_images(repository, batch))
                .buffer_unordered(DELETE_CONCURRENCY)
                .collect()
                .await;
        report.aws_calls += results.len();
        for result in results {
            let result = result?;
            report.deleted.extend(result.deleted);
            report.failed.extend(result.failed);
        }
        progress(report.deleted.len() + report.failed.len(), total);
    }
    let sizes: HashMap<&Digest, u64> = plan
        .delete
        .iter()
        .map(|d| (&d.digest, d.size_bytes.unwrap_or(0)))
        .collect();
    report.bytes_reclaimed = report.deleted.iter().filter_map(|d| sizes.get(d)).sum();
    report.releases_expired = expired_releases(survey, &report.deleted);

    // The spent names left on images that stay.
    let untag = survey.tags_to_remove();
    if !untag.is_empty() {
        report.aws_calls += untag.len().div_ceil(BATCH_LIMIT);
        let failed = targets.inventory.untag(repository, &untag).await?;
        report.untagged = untag
            .into_iter()
            .filter(|t| !failed.iter().any(|(f, _)| f == t))
            .collect();
        report.untag_failed = failed;
    }

    // 3. One `Release Expired` per release, recorded so it is announced once.
    if let Some(events) = targets.events {
        for stored in tombstoned {
            match announce(targets.ledger, events, stored, survey.now).await {
                Ok(calls) => report.aws_calls += calls,
                Err(error) => {
                    warn!(%repository, error = %chain(&error), "Release Expired not announced; the reconciler announces it later")
                }
            }
        }
    }
    Ok(report)
}

/// The releases expiring in this run, with the images of each that were deleted.
fn expired_releases(survey: &Survey, deleted: &[Digest]) -> Vec<ExpiredRelease> {
    let deleted: std::collections::HashSet<&Digest> = deleted.iter().collect();
    survey
        .releases
        .releases
        .iter()
        .filter_map(|release| match &release.fate {
            Fate::Expire {
                rule,
                already: false,
            } => Some(ExpiredRelease {
                tag: release.tag.clone(),
                rule: rule.name(),
                reason: rule.to_string(),
                images: release
                    .digests
                    .iter()
                    .filter(|d| deleted.contains(d))
                    .count(),
            }),
            _ => None,
        })
        .collect()
}

/// Writes a release's tombstone: the state machine decides on the stored record (it refuses a
/// release that is not at rest), the ledger's conditional write records it; a conflict reads
/// the record again and decides again. Returns the record written, if any, and the calls.
async fn tombstone<L: Ledger>(
    ledger: &L,
    stored: &Stored,
    rule: &ExpiryRule,
    now: Millis,
) -> Result<(Option<Stored>, usize), AdapterError> {
    let key = stored.release.key.clone();
    let fact = Fact::Expire { rule: rule.clone() };
    let mut calls = 0;
    let mut reads = Reads::new(ledger, &key, FirstRead::Given(Box::new(stored.clone())));
    while let Some(fresh) = reads.next().await? {
        calls += usize::from(fresh.loaded);
        let Some(stored) = fresh.stored else {
            break;
        };
        let next = match decide(Some(&stored.release), &key, &fact, now) {
            Decision::Apply { mut next, effects } if next.phase() == Phase::Expired => {
                // Retention announces the expiry itself; anything else is not its role's.
                for effect in effects {
                    if effect != Effect::Emit(EventKind::Expired) {
                        next.leave_to_others(Some(&stored.release), effect);
                    }
                }
                next
            }
            Decision::Apply { .. } => {
                info!(release = %key, "release has work under way; it expires in a later run");
                break;
            }
            Decision::Ignore(reason) => {
                info!(release = %key, %reason, "release not expired");
                break;
            }
        };
        calls += 1;
        if let Some(version) = write::save(ledger, &next, Some(stored.version)).await? {
            info!(release = %key, rule = rule.name(), "release expired");
            let written = Stored {
                release: *next,
                version,
            };
            return Ok((Some(written), calls));
        }
    }
    Ok((None, calls))
}

/// Publishes `Release Expired` and records it as emitted (its claim was written with the
/// tombstone). Returns the calls made.
async fn announce<L: Ledger, E: EventPublisher>(
    ledger: &L,
    events: &E,
    stored: Stored,
    now: Millis,
) -> Result<usize, AdapterError> {
    events
        .publish(&release_event(&stored.release, EventKind::Expired))
        .await?;
    let key: ReleaseKey = stored.release.key.clone();
    let fact = Fact::Completed(EffectResult::Emitted {
        kind: EventKind::Expired,
    });
    let mut calls = 1;
    let mut reads = Reads::new(ledger, &key, FirstRead::Given(Box::new(stored)));
    while let Some(fresh) = reads.next().await? {
        calls += usize::from(fresh.loaded);
        let Some(stored) = fresh.stored else {
            break;
        };
        let Decision::Apply { mut next, effects } = decide(Some(&stored.release), &key, &fact, now)
        else {
            break;
        };
        // Recording the announcement may start a queued attempt: its builds are for the
        // functions whose roles start builds (or the reconciler's next pass), never claimed
        // here, where nothing would perform them until the claims' lease ran out.
        for effect in effects {
            next.leave_to_others(Some(&stored.release), effect);
        }
        calls += 1;
        if write::save(ledger, &next, Some(stored.version))
            .await?
            .is_some()
        {
            break;
        }
    }
    Ok(calls)
}
