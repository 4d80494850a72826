//! The ten rules of DESIGN.md's "release lifecycle across releases and time", and that every
//! effect the ledger records happened (once), checked against the services' state and the
//! world's ground truth after every step; the rules that speak of "eventually" are checked
//! once the world is quiet.

mod logs;
mod quiet;
mod releases;
mod rest;

use crate::scenario::REPOSITORY;
use crate::world::World;
use archgate::domain::{Digest, Millis, Release};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// A rule broken: which, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: Rule,
    pub message: String,
}

/// The rules checked after every step: DESIGN.md's numbered lifecycle rules, then two of the
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
    /// Release tag → the step its tombstone (an expired published release) was first seen.
    tombstones: BTreeMap<String, usize>,
    /// Retention reports already checked.
    retention_reports_seen: usize,
    /// A claim written since the last check by a function whose role cannot perform it.
    misclaimed: Option<String>,
    /// (tag, attempt) → since when its gate passed and it has owed its signing or promotion.
    owed_since: BTreeMap<(String, u32), Millis>,
    /// Release id → since when it has not been at rest.
    unsettled_since: BTreeMap<String, Millis>,
    /// Release id → (ledger version, index, the referrers its recorded attestations make).
    recorded_referrers: BTreeMap<String, (u64, Digest, BTreeSet<Digest>)>,
    /// Referrer manifest → the image it refers to.
    referrer_subjects: BTreeMap<Digest, Option<Digest>>,
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
        if let Some(message) = self.misclaimed.take() {
            violation(Rule::ComesToRest, message)?;
        }
        self.check_events(world)?;
        let releases = self.releases();
        world.svc.registry.inspect(REPOSITORY, |repo| {
            self.check_releases(world, repo, &releases, &expiry)
        })?;
        self.check_registry_log(world, &releases)?;
        self.check_builds(world)?;
        self.check_rest(world, &releases)
    }
}
