//! Rules 1, 2, 3, 5, 8, 10 and recorded effects, checked on every release record every step,
//! one repository at a time.

use super::{violation, Checker, Rule, Violation};
use crate::world::{short, World};
use archgate::domain::attestation::{referrer, Descriptor, ReferrerManifest};
use archgate::domain::release_event::event_key;
use archgate::domain::{Arch, BuildRole, Digest, Phase, Release};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

impl Checker {
    /// The releases of `repository` against that repository's images; `runs` is the first
    /// retention report not yet checked.
    pub(super) fn check_releases(
        &mut self,
        world: &World,
        repository: &str,
        repo: &archgate_testkit::memory::registry::Repository,
        releases: &[Rc<Release>],
        expiry: &BTreeMap<String, Option<i64>>,
        runs: usize,
    ) -> Result<(), Violation> {
        let vanished = |digest: &Digest| {
            world
                .vanished
                .contains(&(repository.to_owned(), digest.clone()))
        };
        // The attestations in the registry, by the index they refer to.
        let mut referrers: BTreeMap<Digest, BTreeSet<Digest>> = BTreeMap::new();
        for (digest, image) in &repo.images {
            if image.artifact_media_type.as_deref() != Some(referrer::DSSE_ENVELOPE) {
                continue;
            }
            // An image's bytes never change: each referrer is parsed once.
            let subject = self
                .referrer_subjects
                .entry(digest.clone())
                .or_insert_with(|| {
                    ReferrerManifest::parse(&image.manifest.bytes)
                        .and_then(|m| m.subject)
                        .map(|s| s.digest)
                });
            if let Some(subject) = subject {
                referrers
                    .entry(subject.clone())
                    .or_default()
                    .insert(digest.clone());
            }
        }
        for release in releases {
            let key = &release.key;
            let tag = key.to_string();
            let phase = release.phase();
            // 2: an index carries only its release's recorded attestations (a repeated or
            // racing promotion pushes the recorded bytes, never a second signature), and a
            // published tag names an index that carries both.
            if let Some(index) = release
                .candidate
                .as_ref()
                .and_then(|c| repo.images.get(&c.digest).map(|i| (&c.digest, i)))
            {
                let subject = Descriptor::of(
                    index
                        .1
                        .manifest
                        .media_type
                        .as_deref()
                        .unwrap_or(archgate::domain::oci::OCI_INDEX),
                    &index.1.manifest.bytes,
                );
                // The referrers the recorded envelopes make, computed again only when the
                // record or its index changed (encoding and hashing them is most of a step).
                let version = self.parsed.get(&release.key.id()).map_or(0, |(v, _)| *v);
                let cached = self
                    .recorded_referrers
                    .get(&release.key.id())
                    .filter(|(v, d, _)| *v == version && d == index.0);
                let recorded: BTreeSet<Digest> = match cached {
                    Some((_, _, recorded)) => recorded.clone(),
                    None => {
                        let recorded: BTreeSet<Digest> = release
                            .attestations
                            .iter()
                            .map(|a| a.referrer(subject.clone()).digest)
                            .collect();
                        self.recorded_referrers.insert(
                            release.key.id(),
                            (version, index.0.clone(), recorded.clone()),
                        );
                        recorded
                    }
                };
                let attached = referrers.get(index.0).cloned().unwrap_or_default();
                if !attached.is_subset(&recorded) {
                    violation(
                        Rule::OwnImages,
                        format!(
                            "{tag}'s index {} carries attestations {:?}; the release recorded {:?}",
                            short(index.0),
                            attached.iter().map(short).collect::<Vec<_>>(),
                            recorded.iter().map(short).collect::<Vec<_>>()
                        ),
                    )?;
                }
                let kinds: BTreeSet<_> = release.attestations.iter().map(|a| a.kind).collect();
                if phase == Phase::Published
                    && repo.tags.get(key.tag.as_str()) == Some(index.0)
                    && (attached != recorded || kinds.len() != 2)
                {
                    violation(
                        Rule::OwnImages,
                        format!(
                            "published {tag} names {} with attestations {:?} (recorded {kinds:?})",
                            short(index.0),
                            attached.iter().map(short).collect::<Vec<_>>(),
                        ),
                    )?;
                }
            }
            // 3: a reserved name never becomes a release.
            if release.reserved.is_none()
                && release
                    .key
                    .tag
                    .reserved(&world.config.moving_tags)
                    .is_some()
            {
                violation(
                    Rule::ReservedNames,
                    format!("{tag} is a reserved name but has a release record (phase {phase})"),
                )?;
            }
            // 1: published means the tag names the index, and the record is kept forever.
            if phase == Phase::Published {
                let index = release.candidate.as_ref().map(|c| c.digest.clone());
                let Some(index) = index else {
                    return violation(
                        Rule::PublishedImmutable,
                        format!("{tag} is published without an index"),
                    );
                };
                if let Some(first) = self.published.get(key) {
                    if *first != index {
                        violation(
                            Rule::PublishedImmutable,
                            format!(
                                "{tag} was published as {} and is now recorded as {}",
                                short(first),
                                short(&index)
                            ),
                        )?;
                    }
                } else {
                    self.published.insert(key.clone(), index.clone());
                }
                if expiry.get(&release.key.id()).copied().flatten().is_some() {
                    violation(
                        Rule::PublishedImmutable,
                        format!("the record of published {tag} carries a TTL"),
                    )?;
                }
                // 2: the index lists exactly the images this attempt's builds pushed.
                let pushed: BTreeMap<Arch, Option<Digest>> = Arch::ALL
                    .iter()
                    .map(|arch| {
                        let id = release
                            .build(BuildRole::arch(*arch))
                            .build_id
                            .clone()
                            .unwrap_or_default();
                        (*arch, world.builds.get(&id).and_then(|b| b.pushed.clone()))
                    })
                    .collect();
                let listed: BTreeSet<Digest> = repo.children_of(&index).into_iter().collect();
                let expected: BTreeSet<Digest> = pushed.values().flatten().cloned().collect();
                if listed != expected || expected.len() != 2 {
                    violation(
                        Rule::OwnImages,
                        format!(
                            "{tag}'s index {} lists {:?}, its builds pushed {:?}",
                            short(&index),
                            listed.iter().map(short).collect::<Vec<_>>(),
                            pushed
                                .iter()
                                .map(|(a, d)| format!(
                                    "{a}={}",
                                    d.as_ref().map(short).unwrap_or_default()
                                ))
                                .collect::<Vec<_>>()
                        ),
                    )?;
                }
            }
            // 5: a blocked attempt never fails.
            if phase == Phase::Blocked {
                self.blocked.insert((key.clone(), release.attempt));
            }
            if phase == Phase::Failed && self.blocked.contains(&(key.clone(), release.attempt)) {
                violation(
                    Rule::BlockedRests,
                    format!(
                        "{tag} attempt {} was blocked and is now failed: {}",
                        release.attempt,
                        release.failure_reason().unwrap_or_default()
                    ),
                )?;
            }
            // 1: an expired published release stays expired: its name is never built again,
            // and its record never expires.
            if release.is_tombstone() {
                self.tombstones.entry(key.clone()).or_insert(world.step);
                if expiry.get(&release.key.id()).copied().flatten().is_some() {
                    violation(
                        Rule::PublishedImmutable,
                        format!("the tombstone of expired {tag} carries a TTL"),
                    )?;
                }
            } else if self.tombstones.contains_key(key) {
                violation(
                    Rule::PublishedImmutable,
                    format!(
                        "{tag} expired after publication and is now {phase} (attempt {})",
                        release.attempt
                    ),
                )?;
            }
            // 8: nothing a release that is not over needs is gone.
            if !matches!(phase, Phase::Failed | Phase::Rejected | Phase::Expired) {
                if let Some(candidate) = &release.candidate {
                    for digest in std::iter::once(&candidate.digest)
                        .chain(candidate.children.iter().map(|c| &c.digest))
                    {
                        if !repo.images.contains_key(digest) && !vanished(digest) {
                            violation(
                                Rule::RetentionFailsClosed,
                                format!(
                                    "{tag} ({phase}) needs {} and the registry no longer has it",
                                    short(digest)
                                ),
                            )?;
                        }
                    }
                }
            }
            // 8: nor the images its builds pushed while it waits for them.
            if phase.is_in_flight() || phase == Phase::Blocked {
                for role in [BuildRole::Amd64, BuildRole::Arm64] {
                    let id = release.build(role).build_id.clone().unwrap_or_default();
                    let pushed = world.builds.get(&id).and_then(|b| b.pushed.clone());
                    if let Some(digest) = pushed {
                        if !repo.images.contains_key(&digest) && !vanished(&digest) {
                            violation(Rule::RetentionFailsClosed, format!("{tag} ({phase}) waits for the image its {role} build pushed, {}, and the registry no longer has it", short(&digest)))?;
                        }
                    }
                }
            }
            // 10: digests shared by releases are recorded for each.
            if let Some(candidate) = &release.candidate {
                for child in &candidate.children {
                    let entry = format!("{}#{}", release.key.id(), child.arch);
                    if !world
                        .svc
                        .ledger
                        .pointer(&release.key.repository, &child.digest)
                        .contains(&entry)
                    {
                        violation(
                            Rule::BoundedRecords,
                            format!(
                                "the digest pointer of {} does not name {entry}",
                                short(&child.digest)
                            ),
                        )?;
                    }
                }
            }
            // Recorded effects happened (checked when the record changes).
            if !self.changed.contains(&release.key.id()) {
                continue;
            }
            for kind in &release.emitted {
                if !self.event_counts.contains_key(&event_key(release, *kind)) {
                    violation(
                        Rule::EffectsOnce,
                        format!(
                            "{tag} records {} emitted, and no such event was published",
                            kind.detail_type()
                        ),
                    )?;
                }
            }
            for role in [BuildRole::Amd64, BuildRole::Arm64] {
                if let Some(id) = &release.build(role).build_id {
                    if world.svc.builds.get(id).is_none() {
                        violation(
                            Rule::EffectsOnce,
                            format!("{tag} records build {id}, which CodeBuild never started"),
                        )?;
                    }
                }
            }
        }
        // 1: every release ever published still is, with its tag on its index; or retention
        // expired it, and its tag names nothing else.
        for (key, index) in self
            .published
            .iter()
            .filter(|(k, _)| k.repository == repository)
        {
            let (tag, id) = (key.tag.as_str(), key.id());
            match self.parsed.get(&id) {
                Some((_, Some(r))) if r.phase() == Phase::Published => {}
                Some((_, Some(r))) if r.is_tombstone() => {
                    if repo.tags.get(tag).is_some_and(|named| named != index) {
                        violation(
                            Rule::PublishedImmutable,
                            format!("the tag of expired {tag} names another index"),
                        )?;
                    }
                    continue;
                }
                Some((_, other)) => violation(
                    Rule::PublishedImmutable,
                    format!(
                        "published {tag} is now {:?}",
                        other.as_ref().map(|r| r.phase())
                    ),
                )?,
                None => violation(
                    Rule::PublishedImmutable,
                    format!("the record of published {tag} is gone"),
                )?,
            }
            if repo.tags.get(tag) != Some(index) {
                violation(
                    Rule::PublishedImmutable,
                    format!(
                        "tag {tag} names {:?}, not its published index {}",
                        repo.tags.get(tag).map(short),
                        short(index)
                    ),
                )?;
            }
        }
        // 8: an image a workload uses is never deleted (uses start while no retention run is
        // under way, so every run that could delete it saw the use).
        for (user, _, digest) in world.uses.iter().filter(|(_, r, _)| r == repository) {
            if !repo.images.contains_key(digest) {
                violation(
                    Rule::RetentionFailsClosed,
                    format!("{} is gone while {user} uses it", short(digest)),
                )?;
            }
        }
        // 8: a clean retention run leaves nothing of a release expired before it started:
        // its tag, its candidate tag and its index are gone (shared children stay with the
        // releases that keep them).
        for (started, report) in &world.retention_reports[runs..] {
            let clean = report.repositories.iter().all(|r| {
                r.error.is_none()
                    && r.refused.is_none()
                    && r.failed.is_empty()
                    && r.unreadable.is_empty()
            });
            if !clean {
                continue;
            }
            for (key, seen) in &self.tombstones {
                if seen >= started || key.repository != repository {
                    continue;
                }
                let tag = key.tag.as_str();
                let Some(index) = self.published.get(key) else {
                    continue;
                };
                // A ledger item that does not parse mentions it: kept, fail safe (rule 9).
                if world.damaged_mentions.as_ref() == Some(index) {
                    continue;
                }
                let candidate_tag = format!("{tag}-candidate");
                if repo.tags.contains_key(tag)
                    || repo.tags.contains_key(&candidate_tag)
                    || repo.images.contains_key(index)
                {
                    violation(
                        Rule::RetentionFailsClosed,
                        format!(
                            "{key} expired before the retention run of step {started}, which \
                             left its tag, candidate tag or index {}",
                            short(index)
                        ),
                    )?;
                }
            }
        }
        // 8: a kept index never loses a child.
        if let Some((index, child)) = dangling(repo).first() {
            violation(
                Rule::RetentionFailsClosed,
                format!(
                    "the tagged index {} lists {}, which is gone",
                    short(index),
                    short(child)
                ),
            )?;
        }
        Ok(())
    }
}

/// Every image a tagged index in the repository lists that is gone (a release that no longer
/// pulls).
fn dangling(repo: &archgate_testkit::memory::registry::Repository) -> Vec<(Digest, Digest)> {
    let tagged: BTreeSet<&Digest> = repo.tags.values().collect();
    let mut missing = Vec::new();
    for (digest, children) in repo.indexes() {
        if !tagged.contains(digest) {
            continue;
        }
        for child in children {
            if !repo.images.contains_key(child) {
                missing.push((digest.clone(), child.clone()));
            }
        }
    }
    missing
}
