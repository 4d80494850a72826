//! The ten rules of DESIGN.md's "release lifecycle across releases and time", and that every
//! effect the ledger records happened (once), checked against the services' state and the
//! world's ground truth after every step; the rules that speak of "eventually" are checked
//! once the world is quiet.

use crate::scenario::{MOVING_TAG, REPOSITORY};
use crate::world::{short, World};
use archgate::build_variables::RELEASE_TAG;
use archgate::domain::release_event::event_key;
use archgate::domain::{Arch, BuildRole, Digest, Millis, Phase, Release};
use archgate::memory::registry::RegistryEvent;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// A rule broken: which, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub message: String,
}

pub const RULES: [&str; 12] = [
    "1 published-immutable",
    "2 own-images",
    "3 reserved-names",
    "4 attempts",
    "5 blocked-rests",
    "6 moving-forward",
    "7 findings-are-news",
    "8 retention-fails-closed",
    "9 one-bad-record",
    "10 bounded-records",
    "effects-once",
    "liveness",
];

fn violation(rule: &'static str, message: String) -> Result<(), Violation> {
    Err(Violation { rule, message })
}

/// Far below DynamoDB's 400 KB, whatever arrives.
pub const ITEM_BUDGET: usize = 32 * 1024;

#[derive(Debug, Default)]
pub struct Checker {
    parsed: BTreeMap<String, (u64, Option<Rc<Release>>)>,
    /// Release tag → the index it was published with.
    published: BTreeMap<String, Digest>,
    /// (tag, attempt) seen blocked.
    blocked: BTreeSet<(String, u32)>,
    /// The upload order of the release `latest` last moved to.
    latest: Option<(Millis, String)>,
    events_seen: usize,
    event_counts: BTreeMap<String, usize>,
    keys_by_kind: BTreeMap<(String, u32, String), BTreeSet<String>>,
    builds_seen: BTreeSet<String>,
    /// Release tag → the source key its builds came from.
    tag_sources: BTreeMap<String, String>,
    /// Tags that ever had a release record (a record the TTL removed leaves no trace).
    ever: BTreeSet<String>,
    /// When the ledger last forgot a tag's record.
    forgotten_at: BTreeMap<String, Millis>,
    /// Items written since the last check.
    changed: BTreeSet<String>,
}

impl Checker {
    /// The releases as last read (the ones that parse).
    pub fn releases(&self) -> Vec<Rc<Release>> {
        self.parsed
            .values()
            .filter_map(|(_, r)| r.clone())
            .collect()
    }

    fn refresh(&mut self, world: &World) -> BTreeMap<String, Option<i64>> {
        self.changed.clear();
        let versions = world.svc.ledger.versions();
        let mut expiry = BTreeMap::new();
        // A record the TTL removed: the ledger forgot that release, and so does the checker
        // (a later upload of the name starts over at attempt 1). A published one is never
        // forgotten: rule 1 checks that it stays.
        let forgotten: Vec<String> = self
            .parsed
            .iter()
            .filter(|(id, _)| !versions.contains_key(*id))
            .filter_map(|(_, (_, r))| r.as_ref().map(|r| r.key.tag.to_string()))
            .collect();
        for tag in forgotten {
            self.forgotten_at.insert(tag.clone(), world.now());
            self.keys_by_kind.retain(|(t, _, _), _| *t != tag);
            self.blocked.retain(|(t, _)| *t != tag);
            self.tag_sources.remove(&tag);
        }
        self.parsed.retain(|id, _| versions.contains_key(id));
        for (id, (version, expires)) in versions {
            expiry.insert(id.clone(), expires);
            let stale = self
                .parsed
                .get(&id)
                .is_none_or(|(seen, _)| *seen != version);
            if stale {
                let release = world.svc.ledger.peek(&id).map(Rc::new);
                self.changed.insert(id.clone());
                if let Some(release) = &release {
                    self.ever.insert(release.key.tag.to_string());
                }
                self.parsed.insert(id, (version, release));
            }
        }
        expiry
    }

    /// The rules that hold after every step.
    pub fn check(&mut self, world: &World) -> Result<(), Violation> {
        let expiry = self.refresh(world);
        self.check_events(world)?;
        let releases = self.releases();
        world.svc.registry.inspect(REPOSITORY, |repo| {
            self.check_releases(world, repo, &releases, &expiry)
        })?;
        self.check_registry_log(world, &releases)?;
        self.check_builds(world)
    }

    fn check_releases(
        &mut self,
        world: &World,
        repo: &archgate::memory::registry::Repository,
        releases: &[Rc<Release>],
        expiry: &BTreeMap<String, Option<i64>>,
    ) -> Result<(), Violation> {
        for release in releases {
            let tag = release.key.tag.to_string();
            let phase = release.phase();
            // 3: a reserved name never becomes a release.
            if release.reserved.is_none()
                && release
                    .key
                    .tag
                    .reserved(&world.config.moving_tags)
                    .is_some()
            {
                violation(
                    "3 reserved-names",
                    format!("{tag} is a reserved name but has a release record (phase {phase})"),
                )?;
            }
            // 1: published means the tag names the index, and the record is kept forever.
            if phase == Phase::Published {
                let index = release.candidate.as_ref().map(|c| c.digest.clone());
                let Some(index) = index else {
                    return violation(
                        "1 published-immutable",
                        format!("{tag} is published without an index"),
                    );
                };
                if let Some(first) = self.published.get(&tag) {
                    if *first != index {
                        violation(
                            "1 published-immutable",
                            format!(
                                "{tag} was published as {} and is now recorded as {}",
                                short(first),
                                short(&index)
                            ),
                        )?;
                    }
                } else {
                    self.published.insert(tag.clone(), index.clone());
                }
                if expiry.get(&release.key.id()).copied().flatten().is_some() {
                    violation(
                        "1 published-immutable",
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
                        "2 own-images",
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
                self.blocked.insert((tag.clone(), release.attempt));
            }
            if phase == Phase::Failed && self.blocked.contains(&(tag.clone(), release.attempt)) {
                violation(
                    "5 blocked-rests",
                    format!(
                        "{tag} attempt {} was blocked and is now failed: {}",
                        release.attempt,
                        release.failure_reason().unwrap_or_default()
                    ),
                )?;
            }
            // 8: nothing a release that is not over needs is gone.
            if !matches!(phase, Phase::Failed | Phase::Rejected) {
                if let Some(candidate) = &release.candidate {
                    for digest in std::iter::once(&candidate.digest)
                        .chain(candidate.children.iter().map(|c| &c.digest))
                    {
                        if !repo.images.contains_key(digest) {
                            violation(
                                "8 retention-fails-closed",
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
                        if !repo.images.contains_key(&digest) {
                            violation("8 retention-fails-closed", format!("{tag} ({phase}) waits for the image its {role} build pushed, {}, and the registry no longer has it", short(&digest)))?;
                        }
                    }
                }
            }
            // 10: digests shared by releases are recorded for each.
            if let Some(candidate) = &release.candidate {
                for child in &candidate.children {
                    let entry = format!("{}#{}", release.key.id(), child.arch);
                    if !world.svc.ledger.pointer(&child.digest).contains(&entry) {
                        violation(
                            "10 bounded-records",
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
                        "effects-once",
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
                            "effects-once",
                            format!("{tag} records build {id}, which CodeBuild never started"),
                        )?;
                    }
                }
            }
        }
        // 1: every release ever published still is, with its tag on its index.
        for (tag, index) in &self.published {
            let id = format!("{REPOSITORY}#{tag}");
            match self.parsed.get(&id) {
                Some((_, Some(r))) if r.phase() == Phase::Published => {}
                Some((_, other)) => violation(
                    "1 published-immutable",
                    format!(
                        "published {tag} is now {:?}",
                        other.as_ref().map(|r| r.phase())
                    ),
                )?,
                None => violation(
                    "1 published-immutable",
                    format!("the record of published {tag} is gone"),
                )?,
            }
            if repo.tags.get(tag) != Some(index) {
                violation(
                    "1 published-immutable",
                    format!(
                        "tag {tag} names {:?}, not its published index {}",
                        repo.tags.get(tag).map(short),
                        short(index)
                    ),
                )?;
            }
        }
        // 8: a kept index never loses a child.
        if let Some((index, child)) = dangling(repo).first() {
            violation(
                "8 retention-fails-closed",
                format!(
                    "the tagged index {} lists {}, which is gone",
                    short(index),
                    short(child)
                ),
            )?;
        }
        // 10: bounded records.
        let largest = world.svc.ledger.largest_item();
        if largest > ITEM_BUDGET {
            violation(
                "10 bounded-records",
                format!("a ledger item reached {largest} bytes"),
            )?;
        }
        Ok(())
    }

    fn check_registry_log(
        &mut self,
        world: &World,
        releases: &[Rc<Release>],
    ) -> Result<(), Violation> {
        for event in world.svc.registry.take_log() {
            match event {
                RegistryEvent::TagMoved { tag, to, from, .. } => {
                    if let Some(index) = self.published.get(&tag) {
                        if *index != to {
                            violation(
                                "1 published-immutable",
                                format!(
                                    "tag {tag} of a published release moved from {:?} to {}",
                                    from.as_ref().map(short),
                                    short(&to)
                                ),
                            )?;
                        }
                    }
                    if tag == MOVING_TAG {
                        // The index names its release (its ref.name annotation is the candidate
                        // tag); the ledger may not have recorded the candidate yet.
                        let named = world.svc.registry.inspect(REPOSITORY, |repo| {
                            let image = repo.images.get(&to)?;
                            let doc: serde_json::Value =
                                serde_json::from_slice(&image.manifest.bytes).ok()?;
                            doc["annotations"]["org.opencontainers.image.ref.name"]
                                .as_str()
                                .and_then(|n| n.strip_suffix("-candidate"))
                                .map(str::to_owned)
                        });
                        let holder = releases
                            .iter()
                            .find(|r| Some(r.key.tag.as_str()) == named.as_deref());
                        let Some(holder) = holder else {
                            return violation(
                                "6 moving-forward",
                                format!(
                                    "{MOVING_TAG} moved to {} ({named:?}), the index of no release",
                                    short(&to)
                                ),
                            );
                        };
                        let order = holder.upload_order();
                        let order = (order.0, order.1.to_owned());
                        if let Some(last) = &self.latest {
                            if order < *last {
                                violation("6 moving-forward", format!("{MOVING_TAG} moved back from {} (uploaded at {}) to {} (uploaded at {})", last.1, last.0, order.1, order.0))?;
                            }
                        }
                        self.latest = Some(order);
                    }
                }
                RegistryEvent::DeleteRefused { digest, reason, .. } => {
                    violation(
                        "8 retention-fails-closed",
                        format!(
                            "retention tried to delete {}, which an index references ({reason})",
                            short(&digest)
                        ),
                    )?;
                }
                RegistryEvent::Deleted { digest, tags, .. } => {
                    if !tags.is_empty() {
                        violation(
                            "8 retention-fails-closed",
                            format!(
                                "retention deleted the tagged image {} ({tags:?})",
                                short(&digest)
                            ),
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    fn check_events(&mut self, world: &World) -> Result<(), Violation> {
        let published = world.svc.events.published_since(self.events_seen);
        self.events_seen += published.len();
        for event in &published {
            let detail = &event.detail;
            let kind = event.detail_type.as_str();
            if !kind.starts_with("Release ") || kind == "Release Reconciled" {
                continue;
            }
            let Some(attempt) = detail["attempt"].as_u64() else {
                return violation(
                    "4 attempts",
                    format!("a {kind} event carries no attempt: {detail}"),
                );
            };
            for field in ["repository", "tag", "event-key"] {
                if !detail[field].is_string() {
                    violation(
                        "effects-once",
                        format!("a {kind} event has no {field}: {detail}"),
                    )?;
                }
            }
            if kind == "Release Rejected"
                && !(detail["source"]["key"].is_string() && detail["reason"].is_string())
            {
                violation(
                    "3 reserved-names",
                    format!("a Release Rejected event lacks its source key or reason: {detail}"),
                )?;
            }
            if kind == "Release Vulnerable" && !detail["scans"].is_object() {
                violation(
                    "7 findings-are-news",
                    format!("a Release Vulnerable event lacks its findings: {detail}"),
                )?;
            }
            let key = detail["event-key"].as_str().unwrap_or_default().to_owned();
            *self.event_counts.entry(key.clone()).or_default() += 1;
            if !matches!(kind, "Release Rejected" | "Release Vulnerable") {
                let tag = detail["tag"].as_str().unwrap_or_default().to_owned();
                let keys = self
                    .keys_by_kind
                    .entry((tag.clone(), attempt as u32, kind.to_owned()))
                    .or_default();
                keys.insert(key);
                if keys.len() > 1 {
                    violation(
                        "effects-once",
                        format!(
                            "{tag} attempt {attempt} announced {kind} under {} event keys",
                            keys.len()
                        ),
                    )?;
                }
            }
        }
        if world.svc.chaos.injected() == 0 {
            if let Some((key, n)) = self.event_counts.iter().find(|(_, n)| **n > 1) {
                violation(
                    "effects-once",
                    format!("event {key} was published {n} times with no fault injected"),
                )?;
            }
        }
        Ok(())
    }

    fn check_builds(&mut self, world: &World) -> Result<(), Violation> {
        for build in world.svc.builds.started_since(self.builds_seen.len()) {
            if !self.builds_seen.insert(build.id.clone()) {
                continue;
            }
            let env = |name: &str| {
                build
                    .request
                    .environment
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let tag = env(RELEASE_TAG);
            if archgate::domain::ReleaseTag::parse(&tag)
                .map(|t| t.reserved(&world.config.moving_tags).is_some())
                .unwrap_or(true)
            {
                violation(
                    "3 reserved-names",
                    format!("a build was started for the reserved name {tag}"),
                )?;
            }
            let key = build
                .request
                .source_location
                .split_once('/')
                .map(|(_, k)| k.to_owned())
                .unwrap_or_default();
            let holder = self
                .tag_sources
                .entry(tag.clone())
                .or_insert_with(|| key.clone());
            if *holder != key {
                violation(
                    "3 reserved-names",
                    format!("{tag} was built from {holder} and then from {key}"),
                )?;
            }
        }
        Ok(())
    }

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
                    "liveness",
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
        let tagged: Vec<String> = world
            .svc
            .registry
            .inspect(REPOSITORY, |repo| repo.tags.keys().cloned().collect());
        for release in &releases {
            if !matches!(release.phase(), Phase::Published | Phase::Rejected)
                && tagged.iter().any(|t| t == release.key.tag.as_str())
            {
                violation(
                    "1 published-immutable",
                    format!(
                        "the tag {} is in the registry, and its release is {} (attempt {})",
                        release.key.tag,
                        release.phase(),
                        release.attempt
                    ),
                )?;
            }
        }
        if let Some(broken) = world.broken.first() {
            violation(
                "liveness",
                format!("a valid event failed for good: {broken}"),
            )?;
        }
        // 6: the moving tag names the newest published upload.
        let newest = releases
            .iter()
            .filter(|r| r.phase() == Phase::Published)
            .max_by(|a, b| a.upload_order().cmp(&b.upload_order()));
        if let Some(newest) = newest {
            let repo = world.svc.registry.repository(REPOSITORY);
            let index = newest.candidate.as_ref().map(|c| c.digest.clone());
            if repo.tags.get(MOVING_TAG) != index.as_ref() {
                let holder = releases
                    .iter()
                    .find(|r| r.candidate.as_ref().map(|c| &c.digest) == repo.tags.get(MOVING_TAG))
                    .map(|r| r.key.tag.to_string());
                let orders: Vec<String> = releases
                    .iter()
                    .filter(|r| r.phase() == Phase::Published)
                    .map(|r| format!("{} {:?}", r.key.tag, r.upload_order()))
                    .collect();
                violation("6 moving-forward", format!("{MOVING_TAG} names {holder:?}, the newest published upload is {} (published: {orders:?})", newest.key.tag))?;
            }
            let holds: Vec<&Rc<Release>> = releases
                .iter()
                .filter(|r| {
                    r.published
                        .as_ref()
                        .is_some_and(|p| p.tags.iter().any(|t| t == MOVING_TAG))
                })
                .collect();
            if !holds.iter().any(|r| r.key == newest.key) {
                violation(
                    "6 moving-forward",
                    format!(
                        "the Release Published of {} does not say it received {MOVING_TAG}",
                        newest.key.tag
                    ),
                )?;
            }
        }
        // 3, 4: every upload that reached archgate is accounted for: it started an attempt, or
        // it is older than the attempt that superseded it, or it was refused and announced.
        for upload in world.uploads.iter().filter(|u| u.delivered) {
            let tag =
                archgate::domain::ReleaseTag::from_object_key(&upload.key, crate::scenario::PREFIX)
                    .expect("scenario keys make tags");
            // Uploads of a release the TTL removed since are the ledger's to forget.
            if self
                .forgotten_at
                .get(tag.as_str())
                .is_some_and(|at| *at > upload.at)
            {
                continue;
            }
            let release = releases.iter().find(|r| r.key.tag == tag);
            let refused = events.iter().any(|e| {
                e.detail_type == "Release Rejected"
                    && e.detail["source"]["key"] == upload.key.as_str()
                    && e.detail["source"]["version-id"] == upload.version.as_str()
            });
            let Some(release) = release else {
                // A record the TTL removed (a failed or refused release, months later).
                if !refused && !self.ever.contains(&tag.to_string()) {
                    violation(
                        "4 attempts",
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
                    "3 reserved-names",
                    format!(
                        "the upload of reserved name {} {} was not announced as Release Rejected",
                        upload.key, upload.version
                    ),
                )?;
            }
            if release.source.key != upload.key && !refused {
                violation("3 reserved-names", format!("{} {} sanitises to {tag}, held by {}, and was not announced as Release Rejected", upload.key, upload.version, release.source.key))?;
            }
            if !(started || superseded || refused) {
                violation("4 attempts", format!("upload {} {} of {tag} ({}, attempt {}) started nothing and was not refused", upload.key, upload.version, release.phase(), release.attempt))?;
            }
        }
        // 7: findings after publication were announced.
        for (tag, digest) in &world.vulnerable_delivered {
            let announced = events.iter().any(|e| {
                e.detail_type == "Release Vulnerable"
                    && e.detail["tag"] == tag.as_str()
                    && e.detail["scans"]
                        .as_object()
                        .is_some_and(|s| s.values().any(|v| v["digest"] == digest.as_str()))
            });
            let still = releases
                .iter()
                .any(|r| r.key.tag.as_str() == tag && r.phase() == Phase::Published);
            if !announced {
                let seen: Vec<String> = events
                    .iter()
                    .filter(|e| e.detail_type == "Release Vulnerable")
                    .map(|e| e.detail.to_string())
                    .collect();
                violation("7 findings-are-news", format!("a blocking scan of {} of published {tag} was delivered and never announced (announced: {seen:?})", short(digest)))?;
            }
            if !still {
                violation(
                    "7 findings-are-news",
                    format!("{tag} is no longer published after a finding"),
                )?;
            }
        }
        // 5: a blocked release that was fixed and re-evaluated got published.
        for label in &world.fixed {
            let tag = label.rsplit(' ').next().unwrap_or_default();
            if !releases
                .iter()
                .any(|r| r.key.tag.as_str() == tag && r.phase() == Phase::Published)
            {
                violation(
                    "5 blocked-rests",
                    format!("{tag} was re-evaluated to published and is not"),
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
                    "9 one-bad-record",
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
                        "9 one-bad-record",
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
                        "9 one-bad-record",
                        format!("retention failed on a bad record: {error}"),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Every image a tagged index in the repository lists that is gone (a release that no longer
/// pulls).
fn dangling(repo: &archgate::memory::registry::Repository) -> Vec<(Digest, Digest)> {
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
