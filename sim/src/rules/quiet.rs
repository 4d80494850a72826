//! The rules checked once the world is quiet: liveness, and what must eventually have happened.

use super::{violation, Checker, Rule, Violation};
use crate::scenario::{repository_of, REPOSITORIES};
use crate::world::{short, World};
use archgate::domain::{Phase, Release, ReleaseKey};
use std::rc::Rc;

impl Checker {
    /// The rules about what must have happened once the world is quiet.
    pub fn check_quiet(&mut self, world: &World) -> Result<(), Violation> {
        self.check(world)?;
        let releases = self.releases();
        let events = world.svc.events.published();
        // Liveness: every release rests, nothing is owed.
        for release in &releases {
            let phase = release.phase();
            if phase.is_in_flight()
                || !release.pending.is_empty()
                || !release.required_effects().is_empty()
                || release.queued.is_some()
            {
                violation(
                    Rule::Liveness,
                    format!(
                        "{} is {phase} (attempt {}) with claims {:?}, owing {:?}, queued {:?}",
                        release.key,
                        release.attempt,
                        release.pending.iter().map(|c| c.effect).collect::<Vec<_>>(),
                        release.required_effects(),
                        release.queued.as_ref().map(|q| q.revision())
                    ),
                )?;
            }
        }
        // 1: a release tag names an index only once its release is published.
        for release in &releases {
            let tagged = world.svc.registry.inspect(&release.key.repository, |repo| {
                repo.tags.contains_key(release.key.tag.as_str())
            });
            // An expired release's tag goes with the retention run that expired it, or the
            // next one (per-run check in `releases.rs`); the world may rest between the two.
            if !matches!(
                release.phase(),
                Phase::Published | Phase::Rejected | Phase::Expired
            ) && tagged
            {
                violation(
                    Rule::PublishedImmutable,
                    format!(
                        "the tag {} is in the registry, and its release is {} (attempt {})",
                        release.key,
                        release.phase(),
                        release.attempt
                    ),
                )?;
            }
        }
        if let Some(broken) = world.broken.first() {
            violation(
                Rule::Liveness,
                format!("a valid event failed for good: {broken}"),
            )?;
        }
        // 6: each repository's moving tags name its newest published upload.
        for plan in &REPOSITORIES {
            let own: Vec<&Rc<Release>> = releases
                .iter()
                .filter(|r| r.key.repository == plan.name)
                .collect();
            for moving in plan.moving_tags {
                check_moving_tag(world, plan.name, moving, &own)?;
            }
        }
        // 3, 4: every upload that reached archgate is accounted for: it started an attempt, or
        // it is older than the attempt that superseded it, or it was refused and announced.
        for upload in world.uploads.iter().filter(|u| u.delivered) {
            let tag =
                archgate::domain::ReleaseTag::from_object_key(&upload.key, crate::scenario::PREFIX)
                    .expect("scenario keys make tags");
            let refusal = |rule: Option<&str>| {
                events.iter().any(|e| {
                    e.detail_type == "Release Rejected"
                        && e.detail["source"]["key"] == upload.key.as_str()
                        && e.detail["source"]["version-id"] == upload.version.as_str()
                        && rule.is_none_or(|rule| e.detail["rule"] == rule)
                })
            };
            let key = match repository_of(&upload.key) {
                Ok(repository) => ReleaseKey::new(repository, tag.clone()),
                // A key that names no repository of archgate's is refused, with the rule it broke.
                Err(why) => {
                    if !refusal(Some(why.rule())) {
                        violation(
                            Rule::Isolation,
                            format!(
                                "upload {} {} names no repository of archgate's ({why}) and was not announced as Release Rejected ({})",
                                upload.key, upload.version, why.rule()
                            ),
                        )?;
                    }
                    continue;
                }
            };
            // Uploads of a release the TTL removed since are the ledger's to forget.
            if self
                .forgotten_at
                .get(&key)
                .is_some_and(|at| *at > upload.at)
            {
                continue;
            }
            let release = releases.iter().find(|r| r.key == key);
            let refused = refusal(None);
            let Some(release) = release else {
                // A record the TTL removed (a failed or refused release, months later).
                if !refused && !self.ever.contains(&key) {
                    violation(
                        Rule::Attempts,
                        format!("upload {} {} left no trace", upload.key, upload.version),
                    )?;
                }
                continue;
            };
            let started = release.source.version_id.as_deref() == Some(&upload.version)
                || release.history.iter().any(|a| a.revision == upload.version);
            let superseded = release.source.key == upload.key
                && release
                    .source
                    .sequencer
                    .as_deref()
                    .and_then(|s| u64::from_str_radix(s, 16).ok())
                    .is_some_and(|s| s > upload.sequencer);
            if tag.reserved(&world.config.moving_tags).is_some() && !refused {
                violation(
                    Rule::ReservedNames,
                    format!(
                        "the upload of reserved name {} {} was not announced as Release Rejected",
                        upload.key, upload.version
                    ),
                )?;
            }
            if release.source.key != upload.key && !refused {
                violation(Rule::ReservedNames, format!("{} {} sanitises to {tag}, held by {}, and was not announced as Release Rejected", upload.key, upload.version, release.source.key))?;
            }
            if !(started || superseded || refused) {
                violation(Rule::Attempts, format!("upload {} {} of {key} ({}, attempt {}) started nothing and was not refused", upload.key, upload.version, release.phase(), release.attempt))?;
            }
        }
        // 7: findings after publication were announced.
        for (key, digest) in &world.vulnerable_delivered {
            // Retention expired the release since (it expires only a release with nothing
            // left to announce); a finding delivered after that concerns images it removed.
            if releases.iter().any(|r| r.key == *key && r.is_tombstone()) {
                continue;
            }
            let announced = events.iter().any(|e| {
                e.detail_type == "Release Vulnerable"
                    && e.detail["repository"] == key.repository.as_str()
                    && e.detail["tag"] == key.tag.as_str()
                    && e.detail["scans"]
                        .as_object()
                        .is_some_and(|s| s.values().any(|v| v["digest"] == digest.as_str()))
            });
            let still = releases
                .iter()
                .any(|r| r.key == *key && r.phase() == Phase::Published);
            if !announced {
                let seen: Vec<String> = events
                    .iter()
                    .filter(|e| e.detail_type == "Release Vulnerable")
                    .map(|e| e.detail.to_string())
                    .collect();
                violation(Rule::FindingsAreNews, format!("a blocking scan of {} of published {key} was delivered and never announced (announced: {seen:?})", short(digest)))?;
            }
            if !still {
                violation(
                    Rule::FindingsAreNews,
                    format!("{key} is no longer published after a finding"),
                )?;
            }
        }
        // 5: a blocked release that was fixed and re-evaluated got published.
        for key in &world.fixed {
            if !releases
                .iter()
                .any(|r| r.key == *key && (r.phase() == Phase::Published || r.is_tombstone()))
            {
                violation(
                    Rule::BlockedRests,
                    format!("{key} was re-evaluated to published and is not"),
                )?;
            }
        }
        // 9: the damaged record was skipped and reported, and stopped nothing else.
        if let Some(damaged) = world.damaged {
            // Every pass that read the ledger after the damage reported it, and went on.
            let after = |step: &usize| *step > damaged;
            if let Some((_, pass)) = world
                .reconcile_reports
                .iter()
                .find(|(s, r)| after(s) && r.unreadable.is_empty())
            {
                violation(
                    Rule::OneBadRecord,
                    format!(
                        "a reconciler pass did not report the item that does not parse: {pass:?}"
                    ),
                )?;
            }
            for report in world
                .retention_reports
                .iter()
                .filter(|(s, _)| after(s))
                .flat_map(|(_, r)| r.repositories.iter())
            {
                if report.error.is_none() && report.unreadable_records.is_empty() {
                    violation(
                        Rule::OneBadRecord,
                        "a retention run did not report the item that does not parse".to_owned(),
                    )?;
                }
            }
        }
        for report in world
            .retention_reports
            .iter()
            .flat_map(|(_, r)| r.repositories.iter())
        {
            if let Some(error) = &report.error {
                if error.contains("does not parse") {
                    violation(
                        Rule::OneBadRecord,
                        format!("retention failed on a bad record: {error}"),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// 6: a repository's moving tag names the newest published upload among its own releases,
/// and that release's `Release Published` says it received the tag.
fn check_moving_tag(
    world: &World,
    repository: &str,
    moving: &str,
    releases: &[&Rc<Release>],
) -> Result<(), Violation> {
    let published = || releases.iter().filter(|r| r.phase() == Phase::Published);
    let Some(newest) = published().max_by(|a, b| a.upload_order().cmp(&b.upload_order())) else {
        return Ok(());
    };
    let named = world
        .svc
        .registry
        .inspect(repository, |repo| repo.tags.get(moving).cloned());
    let index = newest.candidate.as_ref().map(|c| c.digest.clone());
    if named != index {
        let holder = releases
            .iter()
            .find(|r| r.candidate.as_ref().map(|c| &c.digest) == named.as_ref())
            .map(|r| r.key.to_string());
        let orders: Vec<String> = published()
            .map(|r| format!("{} {:?}", r.key, r.upload_order()))
            .collect();
        violation(Rule::MovingForward, format!("{moving} of {repository} names {holder:?}, the newest published upload is {} (published: {orders:?})", newest.key))?;
    }
    let received = |r: &&&Rc<Release>| {
        r.published
            .as_ref()
            .is_some_and(|p| p.tags.iter().any(|t| t == moving))
    };
    if !releases
        .iter()
        .filter(received)
        .any(|r| r.key == newest.key)
    {
        violation(
            Rule::MovingForward,
            format!(
                "the Release Published of {} does not say it received {moving}",
                newest.key
            ),
        )?;
    }
    Ok(())
}
