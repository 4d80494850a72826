//! The ten rules of DESIGN.md's "release lifecycle across releases and time", and that every
//! effect the ledger records happened (once), checked against the services' state and the
//! world's ground truth after every step; the rules that speak of "eventually" are checked
//! once the world is quiet.

mod isolation;
mod logs;
mod quiet;
mod releases;
mod rest;

use crate::scenario::REPOSITORIES;
use crate::world::World;
use archgate::domain::{Digest, Millis, Release, ReleaseKey};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// A rule broken: which, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub message: String,
}

/// The rules checked after every step: DESIGN.md's numbered lifecycle rules, then the
/// independence of repositories ("Many repositories, one deployment"), then two of the
/// simulation's own (every effect performed once, every release moving once faults end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    PublishedImmutable,
    OwnImages,
    ReservedNames,
    Attempts,
    BlockedRests,
    MovingForward,
    FindingsAreNews,
    RetentionFailsClosed,
    OneBadRecord,
    BoundedRecords,
    OwnBuilds,
    ComesToRest,
    Isolation,
    EffectsOnce,
    Liveness,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rule::PublishedImmutable => "1 published-immutable",
            Rule::OwnImages => "2 own-images",
            Rule::ReservedNames => "3 reserved-names",
            Rule::Attempts => "4 attempts",
            Rule::BlockedRests => "5 blocked-rests",
            Rule::MovingForward => "6 moving-forward",
            Rule::FindingsAreNews => "7 findings-are-news",
            Rule::RetentionFailsClosed => "8 retention-fails-closed",
            Rule::OneBadRecord => "9 one-bad-record",
            Rule::BoundedRecords => "10 bounded-records",
            Rule::OwnBuilds => "11 own-builds",
            Rule::ComesToRest => "12 comes-to-rest",
            Rule::Isolation => "isolation",
            Rule::EffectsOnce => "effects-once",
            Rule::Liveness => "liveness",
        })
    }
}

fn violation(rule: Rule, message: String) -> Result<(), Violation> {
    Err(Violation { rule, message })
}

/// Far below DynamoDB's 400 KB, whatever arrives.
pub const ITEM_BUDGET: usize = 32 * 1024;

#[derive(Debug, Default)]
pub struct Checker {
    parsed: BTreeMap<String, (u64, Option<Rc<Release>>)>,
    /// Release → the index it was published with.
    published: BTreeMap<ReleaseKey, Digest>,
    /// (release, attempt) seen blocked.
    blocked: BTreeSet<(ReleaseKey, u32)>,
    /// (repository, moving tag) → the upload order of the release it last moved to.
    latest: BTreeMap<(String, String), (Millis, String)>,
    events_seen: usize,
    event_counts: BTreeMap<String, usize>,
    /// (repository, tag, attempt, event kind) → the event keys it was announced under.
    keys_by_kind: BTreeMap<(String, String, u32, String), BTreeSet<String>>,
    builds_seen: BTreeSet<String>,
    /// (repository, release tag) → the source key its builds came from.
    tag_sources: BTreeMap<(String, String), String>,
    /// Releases that ever had a record (a record the TTL removed leaves no trace).
    ever: BTreeSet<ReleaseKey>,
    /// When the ledger last forgot a release's record.
    forgotten_at: BTreeMap<ReleaseKey, Millis>,
    /// Items written since the last check.
    changed: BTreeSet<String>,
    /// Release → the step its tombstone (an expired published release) was first seen.
    tombstones: BTreeMap<ReleaseKey, usize>,
    /// Retention reports already checked.
    retention_reports_seen: usize,
    /// A claim written since the last check by a function whose role cannot perform it.
    misclaimed: Option<String>,
    /// (release, attempt) → since when its gate passed and it has owed its signing or promotion.
    owed_since: BTreeMap<(ReleaseKey, u32), Millis>,
    /// Release id → since when it has not been at rest.
    unsettled_since: BTreeMap<String, Millis>,
    /// Release id → (ledger version, index, the referrers its recorded attestations make).
    recorded_referrers: BTreeMap<String, (u64, Digest, BTreeSet<Digest>)>,
    /// Referrer manifest → the image it refers to.
    referrer_subjects: BTreeMap<Digest, Option<Digest>>,
    /// Index → what its annotations say of it (an image's bytes never change).
    index_origins: BTreeMap<Digest, Option<isolation::Origin>>,
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
        let forgotten: Vec<ReleaseKey> = self
            .parsed
            .iter()
            .filter(|(id, _)| !versions.contains_key(*id))
            .filter_map(|(_, (_, r))| r.as_ref().map(|r| r.key.clone()))
            .collect();
        for key in forgotten {
            let name = (key.repository.clone(), key.tag.to_string());
            self.forgotten_at.insert(key.clone(), world.now());
            self.keys_by_kind
                .retain(|(r, t, _, _), _| (r, t) != (&name.0, &name.1));
            self.blocked.retain(|(k, _)| *k != key);
            self.tag_sources.remove(&name);
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
                if let (Some(after), Some((function, performs))) = (&release, &world.polled) {
                    let before = self.parsed.get(&id).and_then(|(_, r)| r.clone());
                    for claim in &after.pending {
                        let old = before.as_ref().is_some_and(|b| {
                            b.pending.iter().any(|c| {
                                c.effect == claim.effect && c.claimed_at == claim.claimed_at
                            })
                        });
                        if !old && !performs.contains(&claim.effect.service()) {
                            self.misclaimed.get_or_insert(format!(
                                "{function} claimed `{}` of {}, which its role cannot perform",
                                claim.effect, after.key
                            ));
                        }
                    }
                }
                self.changed.insert(id.clone());
                if let Some(release) = &release {
                    self.ever.insert(release.key.clone());
                }
                self.parsed.insert(id, (version, release));
            }
        }
        expiry
    }

    /// The rules that hold after every step.
    pub fn check(&mut self, world: &World) -> Result<(), Violation> {
        let expiry = self.refresh(world);
        if let Some(message) = self.misclaimed.take() {
            violation(Rule::ComesToRest, message)?;
        }
        let releases = self.releases();
        // Isolation first: a cross-repository effect would otherwise show as another rule's
        // breach (a tag moved, an index of no release).
        let log = world.svc.registry.take_log();
        self.check_isolation(world, &releases, &log)?;
        self.check_events(world)?;
        let runs = self.retention_reports_seen;
        self.retention_reports_seen = world.retention_reports.len();
        for repository in REPOSITORIES.iter().map(|r| r.name) {
            let own: Vec<Rc<Release>> = releases
                .iter()
                .filter(|r| r.key.repository == repository)
                .cloned()
                .collect();
            world.svc.registry.inspect(repository, |repo| {
                self.check_releases(world, repository, repo, &own, &expiry, runs)
            })?;
        }
        // 10: bounded records.
        let largest = world.svc.ledger.largest_item();
        if largest > ITEM_BUDGET {
            violation(
                Rule::BoundedRecords,
                format!("a ledger item reached {largest} bytes"),
            )?;
        }
        self.check_registry_log(world, &releases, log)?;
        self.check_builds(world)?;
        self.check_rest(world, &releases)
    }
}
