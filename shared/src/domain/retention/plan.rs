//! The plan: what is kept and why, what is deleted and in which order.

use super::{
    cosign_subject, DeleteReason, Deletion, ImageRecord, KeepReason, ManifestLinks, Plan,
    RetentionPolicy,
};
use crate::domain::digest::Digest;
use crate::domain::Millis;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

/// What keeps images beyond the inventory itself, and what release-level retention lets go.
#[derive(Clone, Debug, Default)]
pub struct Seeds {
    /// Digests of releases not yet final.
    pub in_flight: HashSet<Digest>,
    /// Images kept whatever else holds: in use by a workload, held by a kept release.
    pub pinned: HashMap<Digest, KeepReason>,
    /// Tags of expiring releases: they keep nothing.
    pub released_tags: HashSet<String>,
    /// Images of expiring releases: not kept for being young.
    pub expiring: HashSet<Digest>,
}

/// Plans one repository. `in_flight` holds the digests of releases not yet final.
///
/// Kept: tagged images, untagged images younger than the retention age (or pushed "in the
/// future"), images of releases in flight, manifests that did not parse, and the closure of
/// these through index children, referrers of kept subjects and digests mentioned by
/// unparseable manifests. Untagged referrers whose subject is not in the repository are kept
/// as well unless the policy deletes orphan referrers. Everything else is deleted, every index
/// before its children and every referrer before its subject; ties go by digest.
pub fn plan(
    images: &[ImageRecord],
    in_flight: &HashSet<Digest>,
    policy: &RetentionPolicy,
    now: Millis,
) -> Plan {
    let seeds = Seeds {
        in_flight: in_flight.clone(),
        ..Seeds::default()
    };
    plan_with(images, &seeds, policy, now)
}

/// [`plan`] with every seed: images in use and of kept releases are pinned; the tags of
/// expiring releases keep nothing and their images go whatever their age, unless something
/// kept reaches them.
pub fn plan_with(
    images: &[ImageRecord],
    seeds: &Seeds,
    policy: &RetentionPolicy,
    now: Millis,
) -> Plan {
    let graph = Graph::build(images);
    let nodes = graph.digests.len();

    // Seeds. An inventory lists each digest once; should one repeat, any of its records can
    // keep it, and the strongest seed reason wins (`Tagged` < `Young` < `InFlight` <
    // `Unparseable` in the declaration order of `KeepReason`).
    let mut reasons: Vec<Option<KeepReason>> = vec![None; nodes];
    let mut unparseable = Vec::new();
    let mut unreadable = Vec::new();
    for &(node, record) in &graph.records {
        if let ManifestLinks::Unparseable { reason, .. } = &record.links {
            unparseable.push((record.digest.clone(), reason.clone()));
        }
        if let ManifestLinks::Unreadable { reason } = &record.links {
            unreadable.push((record.digest.clone(), reason.clone()));
        }
        if let Some(seed) = seed_reason(record, seeds, policy, now) {
            let slot = &mut reasons[node as usize];
            if slot.as_ref().is_none_or(|held| seed < *held) {
                *slot = Some(seed);
            }
        }
    }
    let mut worklist: VecDeque<u32> = (0..nodes as u32)
        .filter(|&node| reasons[node as usize].is_some())
        .collect();
    graph.close(&mut reasons, &mut worklist);

    // Untagged referrers of a subject the repository does not hold: the subject may come back
    // (a restore, a push in progress), so they stay unless the policy says otherwise.
    if !policy.delete_orphan_referrers {
        for (node, reason) in reasons.iter_mut().enumerate() {
            if let (None, Some(subject)) = (&reason, graph.absent_subject[node]) {
                *reason = Some(KeepReason::ReferrerOf(subject.clone()));
                worklist.push_back(node as u32);
            }
        }
        graph.close(&mut reasons, &mut worklist);
    }

    // An unreadable manifest may reference any image: nothing it could reference, which is
    // everything, is deleted this run.
    if let Some((first, _)) = unreadable.first() {
        for reason in reasons.iter_mut().filter(|r| r.is_none()) {
            *reason = Some(KeepReason::MayBeReferencedBy(first.clone()));
        }
    }
    let doomed: Vec<bool> = reasons.iter().map(Option::is_none).collect();
    let (order, waves) = graph.deletion_order(&doomed);

    // Written so that a share that is not a number refuses rather than allows.
    let within_share = order.len() as f64 <= policy.max_delete_share * nodes as f64;
    let refused = (!order.is_empty() && !within_share)
        .then(|| {
            format!(
                "safety valve: the plan would delete {} of {} images ({:.1}%), more than the \
                 allowed {:.1}% (max_delete_share {}); nothing is deleted unless forced",
                order.len(),
                nodes,
                100.0 * order.len() as f64 / nodes as f64,
                100.0 * policy.max_delete_share,
                policy.max_delete_share,
            )
        })
        .filter(|_| !policy.force);

    let mut delete = Vec::new();
    let mut bytes_reclaimed = 0u64;
    if refused.is_some() {
        for &node in &order {
            reasons[node as usize] = Some(KeepReason::SafetyValve);
        }
    } else {
        delete.reserve_exact(order.len());
        for &node in &order {
            let record = graph.record(node);
            let size_bytes = record.size_bytes;
            bytes_reclaimed = bytes_reclaimed.saturating_add(size_bytes.unwrap_or(0));
            let why = if graph.absent_subject[node as usize].is_some() {
                DeleteReason::OrphanReferrer
            } else if seeds.expiring.contains(&record.digest) {
                DeleteReason::ReleaseExpired
            } else {
                DeleteReason::Untagged
            };
            delete.push(Deletion {
                digest: record.digest.clone(),
                size_bytes,
                why,
                wave: waves[node as usize],
            });
        }
    }

    // Node ids follow digest order, so the map is built from a sorted sequence.
    let keep: BTreeMap<Digest, KeepReason> = reasons
        .into_iter()
        .enumerate()
        .filter_map(|(node, reason)| Some((graph.digests[node].clone(), reason?)))
        .collect();

    let refused = refused.or_else(|| {
        unreadable.first().map(|(digest, reason)| {
            format!(
                "fail closed: manifest {digest} could not be read ({reason}) and may reference \
                 any image; nothing is deleted this run"
            )
        })
    });
    Plan {
        delete,
        keep,
        unparseable,
        unreadable,
        refused,
        bytes_reclaimed,
    }
}

/// Why an image stays on its own merits, before any reference is followed.
fn seed_reason(
    record: &ImageRecord,
    seeds: &Seeds,
    policy: &RetentionPolicy,
    now: Millis,
) -> Option<KeepReason> {
    let tagged = record
        .tags
        .iter()
        .any(|tag| !seeds.released_tags.contains(tag));
    if let Some(pinned) = seeds.pinned.get(&record.digest) {
        Some(pinned.clone())
    } else if tagged {
        Some(KeepReason::Tagged)
    } else if !seeds.expiring.contains(&record.digest)
        && (record.pushed_at > now || now.saturating_sub(record.pushed_at) < policy.untagged_age_ms)
    {
        Some(KeepReason::Young)
    } else if seeds.in_flight.contains(&record.digest) {
        Some(KeepReason::InFlight)
    } else if matches!(record.links, ManifestLinks::Unparseable { .. }) {
        Some(KeepReason::Unparseable)
    } else if matches!(record.links, ManifestLinks::Unreadable { .. }) {
        Some(KeepReason::Unreadable)
    } else {
        None
    }
}

/// How a kept image keeps another.
#[derive(Clone, Copy)]
enum Link {
    /// The kept image is an index listing the other.
    Child,
    /// The other is a referrer of the kept image.
    Referrer,
    /// The kept image did not parse and its bytes mention the other.
    Mentioned,
}

/// Adjacency lists in one allocation: the targets of node `n` are
/// `targets[offsets[n]..offsets[n + 1]]`.
struct Adjacency<T> {
    offsets: Vec<u32>,
    targets: Vec<T>,
}

impl<T: Copy> Adjacency<T> {
    /// Counting sort of `(from, target)` pairs by `from`; the order within one node is kept.
    fn build(nodes: usize, edges: &[(u32, T)]) -> Self {
        let mut offsets = vec![0u32; nodes + 1];
        for &(from, _) in edges {
            offsets[from as usize + 1] += 1;
        }
        for node in 0..nodes {
            offsets[node + 1] += offsets[node];
        }
        let mut next = offsets.clone();
        let mut slots: Vec<Option<T>> = vec![None; edges.len()];
        for &(from, target) in edges {
            slots[next[from as usize] as usize] = Some(target);
            next[from as usize] += 1;
        }
        Adjacency {
            offsets,
            targets: slots
                .into_iter()
                .map(|t| t.expect("every slot filled"))
                .collect(),
        }
    }

    fn of(&self, node: u32) -> &[T] {
        let node = node as usize;
        &self.targets[self.offsets[node] as usize..self.offsets[node + 1] as usize]
    }
}

/// The reference graph of one inventory. Node ids are positions in digest order.
struct Graph<'a> {
    digests: Vec<&'a Digest>,
    /// Every record with its node, in digest order.
    records: Vec<(u32, &'a ImageRecord)>,
    /// Position in `records` of each node's first record.
    first_record: Vec<u32>,
    /// kept node → nodes it keeps, and how.
    keeps: Adjacency<(u32, Link)>,
    /// deleted node → deleted nodes that must go after it (its children, its subject).
    precedes: Adjacency<u32>,
    /// The subject of an untagged referrer, when the inventory does not hold it.
    absent_subject: Vec<Option<&'a Digest>>,
}

impl<'a> Graph<'a> {
    fn build(images: &'a [ImageRecord]) -> Self {
        let mut sorted: Vec<&ImageRecord> = images.iter().collect();
        sorted.sort_by(|a, b| a.digest.cmp(&b.digest));

        let mut digests: Vec<&Digest> = Vec::with_capacity(sorted.len());
        let mut first_record = Vec::with_capacity(sorted.len());
        let mut records = Vec::with_capacity(sorted.len());
        for (at, record) in sorted.into_iter().enumerate() {
            if digests.last() != Some(&&record.digest) {
                digests.push(&record.digest);
                first_record.push(at as u32);
            }
            records.push(((digests.len() - 1) as u32, record));
        }
        let node_of: HashMap<&str, u32> = digests
            .iter()
            .enumerate()
            .map(|(node, digest)| (digest.as_str(), node as u32))
            .collect();
        let lookup = |digest: &Digest| node_of.get(digest.as_str()).copied();

        let mut keeps = Vec::new();
        let mut precedes = Vec::new();
        let mut absent_subject = vec![None; digests.len()];
        for &(node, record) in &records {
            match &record.links {
                ManifestLinks::NotRead => {}
                ManifestLinks::Index { children } => {
                    for child in children.iter().filter_map(lookup) {
                        if child != node {
                            keeps.push((node, (child, Link::Child)));
                            precedes.push((node, child));
                        }
                    }
                }
                ManifestLinks::Manifest { subject: None } => {}
                ManifestLinks::Manifest {
                    subject: Some(subject),
                } => match lookup(subject) {
                    Some(subject) if subject != node => {
                        keeps.push((subject, (node, Link::Referrer)));
                        precedes.push((node, subject));
                    }
                    Some(_) => {}
                    None if record.tags.is_empty() => absent_subject[node as usize] = Some(subject),
                    None => {}
                },
                ManifestLinks::Unparseable { mentioned, .. } => {
                    for other in mentioned.iter().filter_map(lookup) {
                        if other != node {
                            keeps.push((node, (other, Link::Mentioned)));
                        }
                    }
                }
                ManifestLinks::Unreadable { .. } => {}
            }
            for subject in record.tags.iter().filter_map(|tag| cosign_subject(tag)) {
                if let Some(subject) = lookup(&subject).filter(|&s| s != node) {
                    keeps.push((subject, (node, Link::Referrer)));
                    precedes.push((node, subject));
                }
            }
        }
        // A digest listed twice, one record tagged: the node is tagged, not an orphan.
        for &(node, record) in &records {
            if !record.tags.is_empty() {
                absent_subject[node as usize] = None;
            }
        }

        let nodes = digests.len();
        Graph {
            keeps: Adjacency::build(nodes, &keeps),
            precedes: Adjacency::build(nodes, &precedes),
            digests,
            records,
            first_record,
            absent_subject,
        }
    }

    fn record(&self, node: u32) -> &'a ImageRecord {
        self.records[self.first_record[node as usize] as usize].1
    }

    /// Keeps everything the worklist's images reach, breadth first; an image keeps the first
    /// reason it was given. Iterative, so arbitrarily deep nesting is fine.
    fn close(&self, reasons: &mut [Option<KeepReason>], worklist: &mut VecDeque<u32>) {
        while let Some(node) = worklist.pop_front() {
            for &(other, link) in self.keeps.of(node) {
                let slot = &mut reasons[other as usize];
                if slot.is_some() {
                    continue;
                }
                let by = self.digests[node as usize].clone();
                *slot = Some(match link {
                    Link::Child => KeepReason::ChildOf(by),
                    Link::Referrer => KeepReason::ReferrerOf(by),
                    Link::Mentioned => KeepReason::MentionedBy(by),
                });
                worklist.push_back(other);
            }
        }
    }

    /// Kahn's algorithm over the doomed nodes: an index before its children, a referrer
    /// before its subject, the smallest digest first among those free to go. Also each
    /// node's wave: one more than the latest wave of the nodes that must go before it.
    fn deletion_order(&self, doomed: &[bool]) -> (Vec<u32>, Vec<u32>) {
        let mut waves = vec![0u32; doomed.len()];
        let mut waiting_on = vec![0u32; doomed.len()];
        let mut count = 0;
        for node in (0..doomed.len() as u32).filter(|&n| doomed[n as usize]) {
            count += 1;
            for &after in self.precedes.of(node) {
                if doomed[after as usize] {
                    waiting_on[after as usize] += 1;
                }
            }
        }
        let mut free: BinaryHeap<Reverse<u32>> = (0..doomed.len() as u32)
            .filter(|&n| doomed[n as usize] && waiting_on[n as usize] == 0)
            .map(Reverse)
            .collect();
        let mut order = Vec::with_capacity(count);
        while let Some(Reverse(node)) = free.pop() {
            order.push(node);
            for &after in self.precedes.of(node) {
                if doomed[after as usize] {
                    waves[after as usize] = waves[after as usize].max(waves[node as usize] + 1);
                    waiting_on[after as usize] -= 1;
                    if waiting_on[after as usize] == 0 {
                        free.push(Reverse(after));
                    }
                }
            }
        }
        if order.len() < count {
            // A reference cycle: content addressing rules it out for real manifests, so only
            // a hand-made inventory gets here. Its members follow in digest order.
            let placed: HashSet<u32> = order.iter().copied().collect();
            let rest: Vec<u32> = (0..doomed.len() as u32)
                .filter(|&n| doomed[n as usize] && !placed.contains(&n))
                .collect();
            // One at a time, after everything else.
            let last = order.iter().map(|&n| waves[n as usize]).max().unwrap_or(0);
            for (at, &node) in rest.iter().enumerate() {
                waves[node as usize] = last + 1 + at as u32;
            }
            order.extend(rest);
        }
        (order, waves)
    }
}
