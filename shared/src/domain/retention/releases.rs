//! Release-level retention: which releases of a repository expire, by which rule, and which
//! stay, by which. Pure: the ledger's releases, the inventory, the images workloads use and
//! the policy in; a verdict per release out. The image planner then removes what expiring
//! releases alone hold ([`super::plan_with`]).

use super::{cosign_subject, ImageRecord, ManifestLinks};
use crate::domain::digest::Digest;
use crate::domain::release::{BuildRole, ExpiryRule, Phase, Release};
use crate::domain::Millis;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

const DAY_MS: Millis = 24 * 3600 * 1000;

/// A tag pattern: `*` matches any run of characters, everything else itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TagPattern(String);

impl TagPattern {
    pub fn new(pattern: impl Into<String>) -> Self {
        TagPattern(pattern.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `tag` matches. Greedy-free: the first piece anchors at the start, the last at
    /// the end, the middle ones are found left to right.
    pub fn matches(&self, tag: &str) -> bool {
        let pieces: Vec<&str> = self.0.split('*').collect();
        if pieces.len() == 1 {
            return tag == self.0;
        }
        let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
        if tag.len() < first.len() + last.len() || !tag.starts_with(first) || !tag.ends_with(last) {
            return false;
        }
        let mut rest = &tag[first.len()..tag.len() - last.len()];
        for piece in &pieces[1..pieces.len() - 1] {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
        true
    }
}

/// The release-level policy of a repository. Nothing set: no release expires (the untagged
/// cleanup alone runs, as before release-level retention existed).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReleasePolicy {
    /// Keep the newest `N` published releases, by publication time.
    pub keep_releases: Option<u32>,
    /// Keep published releases younger than this many days.
    pub keep_days: Option<u32>,
    /// Keep releases whose tag matches one of these.
    pub protect: Vec<TagPattern>,
    /// Expire blocked and failed attempts that started more than this many days ago.
    pub attempt_days: Option<u32>,
    /// A plan expiring more than this share of the repository's releases expires none.
    pub max_expire_share: f64,
    /// Override the safety valve.
    pub force: bool,
}

impl ReleasePolicy {
    /// Whether published releases can expire at all.
    pub fn expires_published(&self) -> bool {
        self.keep_releases.is_some() || self.keep_days.is_some()
    }
}

/// Why a release stays, by the first rule that keeps it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum ReleaseKeep {
    /// Waiting for builds, the index or scans.
    InFlight,
    /// Effects outstanding (claims, events to announce, a queued upload): a later run decides.
    Busy,
    /// A workload uses one of its images.
    InUse { user: String, digest: Digest },
    /// Its index carries a tag that is not the release's own (a moving tag, a hand-made tag).
    NamedBy { tag: String },
    /// Its tag matches a protected pattern.
    Protected { pattern: String },
    /// Among the newest `keep` published releases (1 is the newest).
    Newest { rank: u32, keep: u32 },
    /// Published less than `days` days ago.
    Young { days: u32 },
    /// A blocked or failed attempt that started less than `days` days ago.
    RecentAttempt { days: u32 },
    /// The policy expires no release in this phase.
    NoRule,
    /// The safety valve refused the release plan.
    SafetyValve,
    /// The image plan was refused (safety valve, unreadable manifest): nothing goes this run.
    Refused,
}

impl ReleaseKeep {
    /// The rule's stable name, as reports count releases by it.
    pub fn name(&self) -> &'static str {
        match self {
            ReleaseKeep::InFlight => "in_flight",
            ReleaseKeep::Busy => "busy",
            ReleaseKeep::InUse { .. } => "in_use",
            ReleaseKeep::NamedBy { .. } => "named_by",
            ReleaseKeep::Protected { .. } => "protected",
            ReleaseKeep::Newest { .. } => "newest",
            ReleaseKeep::Young { .. } => "young",
            ReleaseKeep::RecentAttempt { .. } => "recent_attempt",
            ReleaseKeep::NoRule => "no_rule",
            ReleaseKeep::SafetyValve => "safety_valve",
            ReleaseKeep::Refused => "refused",
        }
    }
}

impl std::fmt::Display for ReleaseKeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReleaseKeep::InFlight => f.write_str("in flight"),
            ReleaseKeep::Busy => f.write_str("work under way; decided in a later run"),
            ReleaseKeep::InUse { user, digest } => write!(f, "in use by {user} ({digest})"),
            ReleaseKeep::NamedBy { tag } => write!(f, "named by tag `{tag}`"),
            ReleaseKeep::Protected { pattern } => write!(f, "protected by `{pattern}`"),
            ReleaseKeep::Newest { rank, keep } => {
                write!(f, "newest {rank} of the {keep} kept")
            }
            ReleaseKeep::Young { days } => write!(f, "published less than {days} days ago"),
            ReleaseKeep::RecentAttempt { days } => {
                write!(f, "attempt started less than {days} days ago")
            }
            ReleaseKeep::NoRule => f.write_str("no rule expires it"),
            ReleaseKeep::SafetyValve => f.write_str("safety valve"),
            ReleaseKeep::Refused => f.write_str("the image plan was refused"),
        }
    }
}

/// What becomes of one release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "fate", rename_all = "snake_case")]
pub enum Fate {
    Keep(ReleaseKeep),
    /// Expires by `rule`; `already` when the ledger holds the tombstone from an earlier run
    /// (its images are removed again if any are left).
    Expire {
        rule: ExpiryRule,
        already: bool,
    },
}

/// One release's verdict, with what it holds in the repository.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReleaseVerdict {
    pub tag: String,
    pub phase: Phase,
    pub attempt: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_at: Option<Millis>,
    pub fate: Fate,
    /// Its images in the repository (index, children, pushed images, images under its tags).
    pub digests: Vec<Digest>,
    /// Its tags in the repository: the release tag, the internal tags, cosign-style tags of
    /// its images.
    pub tags: Vec<String>,
}

impl ReleaseVerdict {
    pub fn expires(&self) -> bool {
        matches!(self.fate, Fate::Expire { .. })
    }

    /// Expires in this run, as opposed to an earlier one.
    pub fn expires_now(&self) -> bool {
        matches!(self.fate, Fate::Expire { already: false, .. })
    }
}

/// Every release of a repository with its fate, newest publication first.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ReleasePlan {
    pub releases: Vec<ReleaseVerdict>,
    /// Set when the safety valve refused the plan: no release expires this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl ReleasePlan {
    pub fn expiring(&self) -> impl Iterator<Item = &ReleaseVerdict> {
        self.releases.iter().filter(|r| r.expires())
    }

    /// Releases kept, by the name of the rule that keeps each.
    pub fn kept_by_rule(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for release in &self.releases {
            if let Fate::Keep(keep) = &release.fate {
                *counts.entry(keep.name()).or_default() += 1;
            }
        }
        counts
    }

    /// Releases expiring in this run, by the name of the rule that expires each.
    pub fn expired_by_rule(&self) -> BTreeMap<&'static str, usize> {
        let mut counts = BTreeMap::new();
        for release in &self.releases {
            if let Fate::Expire {
                rule,
                already: false,
            } = &release.fate
            {
                *counts.entry(rule.name()).or_default() += 1;
            }
        }
        counts
    }

    /// Keeps, this run, the expiring releases `confirmed` does not confirm (a tombstone that
    /// could not be written, a release that changed since the survey).
    pub fn expire_only(&mut self, confirmed: impl Fn(&str) -> bool) {
        for release in &mut self.releases {
            if release.expires() && !confirmed(&release.tag) {
                release.fate = Fate::Keep(ReleaseKeep::Busy);
            }
        }
    }
}

/// Plans the releases of one repository. `releases` are the ledger's releases of this
/// repository; `in_use` maps each image a workload uses (directly or through an index) to
/// its first user.
pub fn plan_releases(
    releases: &[&Release],
    images: &[ImageRecord],
    in_use: &BTreeMap<Digest, String>,
    policy: &ReleasePolicy,
    now: Millis,
) -> ReleasePlan {
    let inventory = Inventory::new(images);

    // Newest published first: publication time, then upload order, then the tag.
    let mut published: Vec<&Release> = releases
        .iter()
        .copied()
        .filter(|r| r.phase() == Phase::Published)
        .collect();
    fn newness(r: &Release) -> (Millis, (Millis, &str)) {
        (r.published.as_ref().map_or(0, |p| p.at), r.upload_order())
    }
    published.sort_by(|a, b| newness(b).cmp(&newness(a)));
    let rank: HashMap<&str, u32> = published
        .iter()
        .enumerate()
        .map(|(at, r)| (r.key.tag.as_str(), at as u32 + 1))
        .collect();

    let mut verdicts: Vec<ReleaseVerdict> = releases
        .iter()
        .filter(|r| r.phase() != Phase::Rejected)
        .map(|release| {
            let (digests, tags) = inventory.holdings(release);
            let fate = fate(
                release,
                &digests,
                &tags,
                &inventory,
                in_use,
                policy,
                rank.get(release.key.tag.as_str()).copied(),
                now,
            );
            ReleaseVerdict {
                tag: release.key.tag.as_str().to_owned(),
                phase: release.phase(),
                attempt: release.attempt,
                published_at: release.published.as_ref().map(|p| p.at),
                fate,
                digests: digests.into_iter().collect(),
                tags: tags.into_iter().collect(),
            }
        })
        .collect();
    verdicts.sort_by(|a, b| {
        (b.published_at, &b.tag)
            .cmp(&(a.published_at, &a.tag))
            .then_with(|| a.tag.cmp(&b.tag))
    });

    // The safety valve counts the releases that could expire at all.
    let candidates = verdicts
        .iter()
        .filter(|v| matches!(v.phase, Phase::Published | Phase::Blocked | Phase::Failed))
        .count();
    let expiring = verdicts.iter().filter(|v| v.expires_now()).count();
    let within = expiring as f64 <= policy.max_expire_share * candidates as f64;
    let refused = (expiring > 0 && !within && !policy.force).then(|| {
        format!(
            "safety valve: the plan would expire {expiring} of {candidates} releases ({:.1}%), \
             more than the allowed {:.1}%; no release expires unless forced",
            100.0 * expiring as f64 / candidates as f64,
            100.0 * policy.max_expire_share,
        )
    });
    if refused.is_some() {
        for verdict in verdicts.iter_mut().filter(|v| v.expires_now()) {
            verdict.fate = Fate::Keep(ReleaseKeep::SafetyValve);
        }
    }
    ReleasePlan {
        releases: verdicts,
        refused,
    }
}

#[allow(clippy::too_many_arguments)] // one release's facts, each from a different source
fn fate(
    release: &Release,
    digests: &BTreeSet<Digest>,
    tags: &BTreeSet<String>,
    inventory: &Inventory,
    in_use: &BTreeMap<Digest, String>,
    policy: &ReleasePolicy,
    rank: Option<u32>,
    now: Millis,
) -> Fate {
    let phase = release.phase();
    if let Some(expiry) = &release.expired {
        if release.queued.is_some() {
            // An expired attempt about to be built again: its new builds may push
            // byte-identical images, so nothing of it goes until the new attempt is under way
            // (its old images are then orphans for the untagged cleanup).
            return Fate::Keep(ReleaseKeep::Busy);
        }
        return Fate::Expire {
            rule: expiry.rule.clone(),
            already: true,
        };
    }
    if phase.is_in_flight() {
        return Fate::Keep(ReleaseKeep::InFlight);
    }
    if release.queued.is_some()
        || !release.pending.is_empty()
        || !release.required_effects().is_empty()
    {
        return Fate::Keep(ReleaseKeep::Busy);
    }
    if let Some((digest, user)) = digests
        .iter()
        .find_map(|d| in_use.get(d).map(|user| (d, user)))
    {
        return Fate::Keep(ReleaseKeep::InUse {
            user: user.clone(),
            digest: digest.clone(),
        });
    }
    let index = release.candidate.as_ref().map(|c| &c.digest);
    if let Some(tag) = index
        .into_iter()
        .flat_map(|d| inventory.tags_of(d))
        .find(|t| !tags.contains(*t))
    {
        return Fate::Keep(ReleaseKeep::NamedBy { tag: tag.clone() });
    }
    let tag = release.key.tag.as_str();
    if let Some(pattern) = policy.protect.iter().find(|p| p.matches(tag)) {
        return Fate::Keep(ReleaseKeep::Protected {
            pattern: pattern.as_str().to_owned(),
        });
    }
    match phase {
        Phase::Published => {
            if !policy.expires_published() {
                return Fate::Keep(ReleaseKeep::NoRule);
            }
            if let (Some(keep), Some(rank)) = (policy.keep_releases, rank) {
                if rank <= keep {
                    return Fate::Keep(ReleaseKeep::Newest { rank, keep });
                }
            }
            if let Some(days) = policy.keep_days {
                let at = release.published.as_ref().map_or(now, |p| p.at);
                // A publication "in the future" (a skewed clock) is young.
                if at > now || now - at < Millis::from(days) * DAY_MS {
                    return Fate::Keep(ReleaseKeep::Young { days });
                }
            }
            Fate::Expire {
                rule: ExpiryRule::Superseded {
                    keep_releases: policy.keep_releases,
                    keep_days: policy.keep_days,
                },
                already: false,
            }
        }
        Phase::Blocked | Phase::Failed => match policy.attempt_days {
            None => Fate::Keep(ReleaseKeep::NoRule),
            Some(days) => {
                let started = release.started_at();
                if started > now || now - started < Millis::from(days) * DAY_MS {
                    Fate::Keep(ReleaseKeep::RecentAttempt { days })
                } else {
                    Fate::Expire {
                        rule: ExpiryRule::StaleAttempt { days },
                        already: false,
                    }
                }
            }
        },
        _ => Fate::Keep(ReleaseKeep::NoRule),
    }
}

/// The inventory indexed by tag and digest.
struct Inventory<'a> {
    by_tag: HashMap<&'a str, &'a Digest>,
    tags: HashMap<&'a Digest, Vec<&'a String>>,
    /// Index digest → its children (as read).
    children: HashMap<&'a Digest, &'a [Digest]>,
    /// Subject → the cosign-style tags naming it, with the image each tags.
    cosign: HashMap<Digest, Vec<(&'a String, &'a Digest)>>,
    /// Subject → its OCI 1.1 referrers (signatures, SBOMs, attestations).
    referrers: HashMap<&'a Digest, Vec<&'a Digest>>,
    all: HashSet<&'a Digest>,
}

impl<'a> Inventory<'a> {
    fn new(images: &'a [ImageRecord]) -> Self {
        let mut inventory = Inventory {
            by_tag: HashMap::new(),
            tags: HashMap::new(),
            children: HashMap::new(),
            cosign: HashMap::new(),
            referrers: HashMap::new(),
            all: HashSet::new(),
        };
        for image in images {
            inventory.all.insert(&image.digest);
            for tag in &image.tags {
                inventory.by_tag.insert(tag, &image.digest);
                inventory.tags.entry(&image.digest).or_default().push(tag);
                if let Some(subject) = cosign_subject(tag) {
                    inventory
                        .cosign
                        .entry(subject)
                        .or_default()
                        .push((tag, &image.digest));
                }
            }
            match &image.links {
                ManifestLinks::Index { children } => {
                    inventory.children.insert(&image.digest, children);
                }
                ManifestLinks::Manifest {
                    subject: Some(subject),
                } => inventory
                    .referrers
                    .entry(subject)
                    .or_default()
                    .push(&image.digest),
                _ => {}
            }
        }
        inventory
    }

    fn tags_of(&self, digest: &Digest) -> impl Iterator<Item = &'a String> + '_ {
        self.tags.get(digest).into_iter().flatten().copied()
    }

    /// What a release holds in the repository: the images its ledger record names (index,
    /// children, the images its builds pushed) and those under its own tags, with the
    /// children of any index among them and the referrers of all of them; and its tags
    /// (release tag, internal tags, and the cosign-style tags of its images). Only what the
    /// inventory holds is listed.
    fn holdings(&self, release: &Release) -> (BTreeSet<Digest>, BTreeSet<String>) {
        let tag = &release.key.tag;
        let mut own_tags: Vec<String> = vec![tag.as_str().to_owned()];
        own_tags.extend(tag.internal_tags());
        let mut digests: BTreeSet<Digest> = BTreeSet::new();
        let mut tags: BTreeSet<String> = BTreeSet::new();
        for own in own_tags {
            if let Some(digest) = self.by_tag.get(own.as_str()) {
                digests.insert((*digest).clone());
                tags.insert(own);
            }
        }
        if let Some(candidate) = &release.candidate {
            digests.insert(candidate.digest.clone());
            digests.extend(candidate.children.iter().map(|c| c.digest.clone()));
        }
        for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
            digests.extend(release.build(role).image_digest.clone());
        }
        let indexes: Vec<Digest> = digests
            .iter()
            .filter(|d| self.children.contains_key(d))
            .cloned()
            .collect();
        for index in indexes {
            digests.extend(self.children[&index].iter().cloned());
        }
        digests.retain(|d| self.all.contains(d));
        // The referrers of its images, and theirs in turn (a signature of an SBOM).
        let mut worklist: Vec<Digest> = digests.iter().cloned().collect();
        while let Some(subject) = worklist.pop() {
            for (tag, digest) in self.cosign.get(&subject).into_iter().flatten() {
                tags.insert((*tag).to_owned());
                if digests.insert((*digest).clone()) {
                    worklist.push((*digest).clone());
                }
            }
            for referrer in self.referrers.get(&subject).into_iter().flatten() {
                if digests.insert((*referrer).clone()) {
                    worklist.push((*referrer).clone());
                }
            }
        }
        (digests, tags)
    }
}
