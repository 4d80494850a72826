//! Surveys one repository: the inventory (manifests read only where they can reference
//! others, in concurrent batches), the ledger's releases, the images workloads use; then the
//! release plan and the image plan.

use super::{needs_reading, Rules, READ_CONCURRENCY};
use crate::domain::retention::{
    images_in_use, plan_releases, plan_with, read_links, Fate, ImageRecord, ImageUse, KeepReason,
    ManifestLinks, Plan, ReleaseKeep, ReleasePlan, Seeds,
};
use crate::domain::{BuildRole, Digest, Millis, Release};
use crate::error::AdapterError;
use crate::ports::{
    FetchedManifest, ImageSummary, Ledger, RepositoryInventory, Stored, BATCH_LIMIT, LIST_PAGE,
};
use futures_util::future;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, HashMap, HashSet};

/// One repository as retention saw it, and what it plans to do.
#[derive(Debug, Clone)]
pub struct Survey {
    pub images: Vec<ImageRecord>,
    /// Every release of the repository with its fate.
    pub releases: ReleasePlan,
    pub plan: Plan,
    pub unreadable_records: Vec<(String, String)>,
    /// AWS requests the survey took.
    pub requests: usize,
    /// Manifests read with BatchGetImage (the ledger holds its releases' indexes).
    pub manifests_read: usize,
    /// The ledger records of the releases, by tag (for the tombstones).
    pub(super) stored: HashMap<String, Stored>,
    pub(super) in_flight: HashSet<Digest>,
    pub(super) in_use: BTreeMap<Digest, String>,
    pub(super) rules: Rules,
    pub(super) now: Millis,
}

impl Survey {
    /// Tags of expiring releases on images that stay and keep another tag (a child shared
    /// with a kept release): removed, so a spent name resolves to nothing. A tag that is its
    /// image's last stays: removing it would delete an image that is still needed.
    pub fn tags_to_remove(&self) -> Vec<String> {
        let released: HashSet<&String> = self
            .releases
            .expiring()
            .flat_map(|r| r.tags.iter())
            .collect();
        let deleted: HashSet<&Digest> = self.plan.delete.iter().map(|d| &d.digest).collect();
        let mut tags: Vec<String> = Vec::new();
        for image in self.images.iter().filter(|i| !deleted.contains(&i.digest)) {
            let (spent, others): (Vec<&String>, Vec<&String>) =
                image.tags.iter().partition(|t| released.contains(t));
            if !spent.is_empty() && !others.is_empty() {
                tags.extend(spent.into_iter().cloned());
            }
        }
        tags.sort();
        tags.dedup();
        tags
    }

    /// The images kept because workloads use them, with the first user of each.
    pub fn in_use_list(&self) -> Vec<(Digest, String)> {
        self.in_use
            .iter()
            .map(|(d, u)| (d.clone(), u.clone()))
            .collect()
    }

    /// The image plan for the release plan as it stands (after tombstones that could not be
    /// written turned releases back into kept ones).
    pub(super) fn replan(&mut self) {
        let seeds = seeds(&self.releases, &self.in_flight, &self.in_use);
        self.plan = plan_with(&self.images, &seeds, &self.rules.images, self.now);
    }
}

/// Inventories and plans one repository with the untagged cleanup alone: no release expires
/// and no workload is consulted.
pub async fn plan_repository<I: RepositoryInventory, L: Ledger>(
    inventory: &I,
    ledger: &L,
    repository: &str,
    policy: &crate::domain::retention::RetentionPolicy,
    now: Millis,
) -> Result<Survey, AdapterError> {
    let rules = Rules {
        images: policy.clone(),
        releases: Default::default(),
    };
    survey_repository(inventory, ledger, repository, &rules, &[], now).await
}

/// Inventories and plans one repository: releases by `rules.releases`, images by
/// `rules.images`, never an image that `uses` name.
pub async fn survey_repository<I: RepositoryInventory, L: Ledger>(
    inventory: &I,
    ledger: &L,
    repository: &str,
    rules: &Rules,
    uses: &[ImageUse],
    now: Millis,
) -> Result<Survey, AdapterError> {
    let listed = inventory.list_images(repository).await?;
    // The ledger after the listing: every release started before it was listed is known.
    // Meanwhile the untagged manifests that may reference others are read; the tagged
    // indexes wait for the ledger, which holds its releases' indexes exactly as pushed
    // (bytes that hash to the digest are that image: no read needed).
    let (untagged, tagged): (Vec<&ImageSummary>, Vec<&ImageSummary>) = listed
        .iter()
        .filter(|i| {
            needs_reading(
                i.media_type.as_deref(),
                i.artifact_media_type.as_deref(),
                !i.tags.is_empty(),
            )
        })
        .partition(|i| i.tags.is_empty());
    let untagged: Vec<Digest> = untagged.iter().map(|i| i.digest.clone()).collect();
    let (view, fetched) = future::join(
        LedgerView::read(ledger, repository),
        read_manifests(inventory, repository, &untagged),
    )
    .await;
    let view = view?;
    let mut fetched = fetched?;
    let mut links: HashMap<Digest, ManifestLinks> = view.known_indexes();
    let tagged: Vec<Digest> = tagged
        .iter()
        .filter(|i| !links.contains_key(&i.digest))
        .map(|i| i.digest.clone())
        .collect();
    fetched.extend(read_manifests(inventory, repository, &tagged).await?);
    let to_read = untagged.len() + tagged.len();
    for (digest, fetched) in fetched {
        let link = match fetched {
            FetchedManifest::Found(raw) => read_links(raw.media_type.as_deref(), &raw.bytes),
            // Not readable: it may reference anything (fail closed).
            FetchedManifest::NotFound(reason) | FetchedManifest::Unreadable(reason) => {
                ManifestLinks::Unreadable { reason }
            }
        };
        links.insert(digest, link);
    }
    let images: Vec<ImageRecord> = listed
        .into_iter()
        .map(|i| ImageRecord {
            links: links.remove(&i.digest).unwrap_or(ManifestLinks::NotRead),
            digest: i.digest,
            tags: i.tags,
            pushed_at: i.pushed_at,
            media_type: i.media_type,
            size_bytes: i.size_bytes,
        })
        .collect();
    let mut in_flight = view.in_flight();
    if let Some(since) = view.unreported_since() {
        // A build that has not said which image it pushed may have pushed any image since its
        // attempt started.
        in_flight.extend(
            images
                .iter()
                .filter(|r| r.pushed_at >= since)
                .map(|r| r.digest.clone()),
        );
    }
    let releases: Vec<&Release> = view.releases.iter().map(|s| &s.release).collect();
    let planned = plan_survey(repository, &images, &releases, &in_flight, uses, rules, now);
    let requests = images.len().div_ceil(LIST_PAGE).max(1)
        + untagged.len().div_ceil(BATCH_LIMIT)
        + tagged.len().div_ceil(BATCH_LIMIT)
        + 1;
    Ok(Survey {
        images,
        releases: planned.releases,
        plan: planned.images,
        manifests_read: to_read,
        unreadable_records: view.unreadable,
        requests,
        stored: view
            .releases
            .into_iter()
            .map(|s| (s.release.key.tag.as_str().to_owned(), s))
            .collect(),
        in_flight,
        in_use: planned.in_use,
        rules: rules.clone(),
        now,
    })
}

/// Reads manifests in batches, a few batches at a time: well inside ECR's request rate, and
/// the SDK's standard retry absorbs a throttled batch.
async fn read_manifests<I: RepositoryInventory>(
    inventory: &I,
    repository: &str,
    digests: &[Digest],
) -> Result<Vec<(Digest, FetchedManifest)>, AdapterError> {
    let batches: Vec<Vec<(Digest, FetchedManifest)>> = stream::iter(digests.chunks(BATCH_LIMIT))
        .map(|batch| inventory.manifests_by_digest(repository, batch))
        .buffer_unordered(READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(batches.into_iter().flatten().collect())
}

/// Both plans of one repository and the images in use, as [`plan_survey`] makes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub releases: ReleasePlan,
    pub images: Plan,
    /// Images workloads use (through indexes too), with the first user of each.
    pub in_use: BTreeMap<Digest, String>,
}

/// The pure part of a survey: the release plan, then the image plan that removes what the
/// expiring releases alone hold and keeps what kept releases and workloads use. A refused
/// image plan expires no release either (a tombstone without its deletions would be a lie
/// until the next run).
pub fn plan_survey(
    repository: &str,
    images: &[ImageRecord],
    releases: &[&Release],
    in_flight: &HashSet<Digest>,
    uses: &[ImageUse],
    rules: &Rules,
    now: Millis,
) -> Planned {
    let in_use = images_in_use(repository, uses, images);
    let mut release_plan = plan_releases(releases, images, &in_use, &rules.releases, now);
    let seeds = seeds(&release_plan, in_flight, &in_use);
    let plan = plan_with(images, &seeds, &rules.images, now);
    if plan.refused.is_some() {
        for release in release_plan.releases.iter_mut().filter(|r| r.expires_now()) {
            release.fate = Fate::Keep(ReleaseKeep::Refused);
        }
    }
    Planned {
        releases: release_plan,
        images: plan,
        in_use,
    }
}

/// What the image planner must keep and may let go, from the release plan: images in use and
/// of kept releases are pinned, the tags and images of expiring releases let go.
fn seeds(
    releases: &ReleasePlan,
    in_flight: &HashSet<Digest>,
    in_use: &BTreeMap<Digest, String>,
) -> Seeds {
    let mut seeds = Seeds {
        in_flight: in_flight.clone(),
        ..Seeds::default()
    };
    for (digest, user) in in_use {
        seeds
            .pinned
            .insert(digest.clone(), KeepReason::InUse(user.clone()));
    }
    for release in &releases.releases {
        if release.expires() {
            seeds.released_tags.extend(release.tags.iter().cloned());
            seeds.expiring.extend(release.digests.iter().cloned());
        } else {
            let reason = match &release.fate {
                Fate::Keep(ReleaseKeep::InFlight) => KeepReason::InFlight,
                _ => KeepReason::Release(release.tag.clone()),
            };
            for digest in &release.digests {
                seeds
                    .pinned
                    .entry(digest.clone())
                    .or_insert_with(|| reason.clone());
            }
        }
    }
    // An image of an expiring release that a kept one also holds stays (shared children).
    seeds.expiring.retain(|d| !seeds.pinned.contains_key(d));
    seeds
}

/// The ledger's releases of one repository, and the items that did not parse.
struct LedgerView {
    releases: Vec<Stored>,
    unreadable: Vec<(String, String)>,
    /// Digests mentioned by items that do not parse (fail safe: kept).
    mentioned: Vec<Digest>,
}

impl LedgerView {
    async fn read<L: Ledger>(ledger: &L, repository: &str) -> Result<Self, AdapterError> {
        let listing = ledger.list(usize::MAX).await?;
        let mut mentioned = Vec::new();
        let mut unreadable = Vec::new();
        for item in listing.unreadable {
            tracing::error!(item = %item.id, reason = %item.reason, "ledger item does not parse; its digests are kept");
            mentioned.extend(item.mentioned);
            unreadable.push((item.id, item.reason));
        }
        Ok(LedgerView {
            releases: listing
                .releases
                .into_iter()
                .filter(|s| s.release.key.repository == repository)
                .collect(),
            unreadable,
            mentioned,
        })
    }

    /// What the indexes of the ledger's releases link to, from the manifests recorded with
    /// them (only where the recorded bytes hash to the recorded digest).
    fn known_indexes(&self) -> HashMap<Digest, ManifestLinks> {
        self.releases
            .iter()
            .filter_map(|s| s.release.candidate.as_ref())
            .filter_map(|candidate| {
                let manifest = candidate.manifest.as_ref()?;
                (Digest::of(manifest.as_bytes()) == candidate.digest).then(|| {
                    (
                        candidate.digest.clone(),
                        read_links(candidate.media_type.as_deref(), manifest.as_bytes()),
                    )
                })
            })
            .collect()
    }

    /// The images of releases waiting for builds, the index or scans, and every digest an
    /// unparseable item mentions.
    fn in_flight(&self) -> HashSet<Digest> {
        let mut digests: HashSet<Digest> = self.mentioned.iter().cloned().collect();
        for stored in &self.releases {
            let release = &stored.release;
            if !release.phase().is_in_flight() {
                continue;
            }
            if let Some(candidate) = &release.candidate {
                digests.insert(candidate.digest.clone());
                digests.extend(candidate.children.iter().map(|c| c.digest.clone()));
            }
            for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
                digests.extend(release.build(role).image_digest.clone());
            }
        }
        digests
    }

    /// The earliest start of an attempt whose builds have not all reported the image they
    /// pushed: until they do, every image pushed since may be one of them.
    fn unreported_since(&self) -> Option<Millis> {
        self.releases
            .iter()
            .map(|s| &s.release)
            .filter(|r| r.phase().is_in_flight())
            .filter(|r| {
                r.candidate.is_none()
                    && [BuildRole::Amd64, BuildRole::Arm64]
                        .iter()
                        .any(|role| r.build(*role).image_digest.is_none())
            })
            .map(|r| r.started_at())
            .min()
    }
}
