//! Retention: inventory a repository, plan with the pure planner, delete what the plan
//! allows, report. [`run`] is the retention-cleanup function's whole job on the ports;
//! `archgate retention` uses the steps one by one.

mod run;

pub use run::{run, Request, Retention, RunReport};

use crate::domain::oci::{DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::domain::retention::{
    plan, read_links, ImageRecord, ManifestLinks, Plan, RetentionPolicy,
};
use crate::domain::{BuildRole, Digest, Millis};
use crate::error::AdapterError;
use crate::ports::{
    EventPublisher, FetchedManifest, Ledger, RepositoryInventory, BATCH_LIMIT, LIST_PAGE,
};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};

/// Config types of image configurations: a manifest with one of these is an image, not an
/// artifact that could refer to another image.
const IMAGE_CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// What one repository's run did, for the `Retention Report` event and the CLI.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct RepositoryReport {
    pub repository: String,
    pub dry_run: bool,
    pub images: usize,
    pub deleted: Vec<Digest>,
    pub kept_by_reason: BTreeMap<&'static str, usize>,
    pub failed: Vec<(Digest, String)>,
    pub unparseable: Vec<(Digest, String)>,
    /// Manifests that could not be read: the run deleted nothing.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<(Digest, String)>,
    /// Ledger items that do not parse (skipped; the digests they mention are kept).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unreadable_records: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    pub bytes_reclaimed: u64,
    pub aws_calls: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Whether an image must be read: an index, or an untagged manifest that may be a referrer.
fn needs_reading(media_type: Option<&str>, artifact_type: Option<&str>, tagged: bool) -> bool {
    match media_type {
        Some(OCI_INDEX) | Some(DOCKER_MANIFEST_LIST) => true,
        Some(OCI_MANIFEST) | Some("application/vnd.oci.artifact.manifest.v1+json") => {
            !tagged && !artifact_type.is_some_and(|t| IMAGE_CONFIG_TYPES.contains(&t))
        }
        _ => false,
    }
}

/// What the ledger says retention must keep in `repository`: the images of releases that
/// are not final (waiting for builds or scans, or blocked: a blocked release can still be
/// published), and every digest that an item which does not parse mentions (fail safe).
/// Also returns the earliest start of an attempt whose builds have not all reported the
/// image they pushed: until they do, every image pushed since may be one of them.
async fn in_flight<L: Ledger>(
    ledger: &L,
    repository: &str,
) -> Result<(HashSet<Digest>, Option<Millis>, Vec<(String, String)>), AdapterError> {
    let listing = ledger.list(usize::MAX).await?;
    let mut digests = HashSet::new();
    let mut unreported_since: Option<Millis> = None;
    for stored in listing.releases {
        let release = stored.release;
        if release.key.repository != repository
            || !(release.phase().is_in_flight() || release.phase() == crate::domain::Phase::Blocked)
        {
            continue;
        }
        if let Some(candidate) = &release.candidate {
            digests.insert(candidate.digest.clone());
            digests.extend(candidate.children.iter().map(|c| c.digest.clone()));
        }
        for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
            digests.extend(release.build(role).image_digest.clone());
        }
        let unreported = release.candidate.is_none()
            && [BuildRole::Amd64, BuildRole::Arm64]
                .iter()
                .any(|role| release.build(*role).image_digest.is_none());
        if unreported {
            let started = release.started_at();
            unreported_since = Some(unreported_since.map_or(started, |s| s.min(started)));
        }
    }
    let mut skipped = Vec::new();
    for item in listing.unreadable {
        tracing::error!(item = %item.id, reason = %item.reason, "ledger item does not parse; its digests are kept");
        digests.extend(item.mentioned);
        skipped.push((item.id, item.reason));
    }
    Ok((digests, unreported_since, skipped))
}

/// One repository as retention saw it: the inventory, the plan, the ledger items it could not
/// read, and how many AWS requests the survey took.
#[derive(Debug, Clone)]
pub struct Survey {
    pub images: Vec<ImageRecord>,
    pub plan: Plan,
    pub unreadable_records: Vec<(String, String)>,
    pub requests: usize,
}

/// Inventories and plans one repository.
pub async fn plan_repository<I: RepositoryInventory, L: Ledger>(
    inventory: &I,
    ledger: &L,
    repository: &str,
    policy: &RetentionPolicy,
    now: Millis,
) -> Result<Survey, AdapterError> {
    let listed = inventory.list_images(repository).await?;
    let to_read: Vec<Digest> = listed
        .iter()
        .filter(|i| {
            needs_reading(
                i.media_type.as_deref(),
                i.artifact_media_type.as_deref(),
                !i.tags.is_empty(),
            )
        })
        .map(|i| i.digest.clone())
        .collect();
    let mut links: BTreeMap<Digest, ManifestLinks> = BTreeMap::new();
    if !to_read.is_empty() {
        for (digest, fetched) in inventory.manifests_by_digest(repository, &to_read).await? {
            let link = match fetched {
                FetchedManifest::Found(raw) => read_links(raw.media_type.as_deref(), &raw.bytes),
                // Not readable: it may reference anything (fail closed).
                FetchedManifest::Failed(reason) => ManifestLinks::Unreadable { reason },
            };
            links.insert(digest, link);
        }
    }
    let records: Vec<ImageRecord> = listed
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
    let (mut flying, unreported_since, unreadable_records) = in_flight(ledger, repository).await?;
    if let Some(since) = unreported_since {
        flying.extend(
            records
                .iter()
                .filter(|r| r.pushed_at >= since)
                .map(|r| r.digest.clone()),
        );
    }
    let plan = plan(&records, &flying, policy, now);
    let requests =
        records.len().div_ceil(LIST_PAGE).max(1) + to_read.len().div_ceil(BATCH_LIMIT) + 1;
    Ok(Survey {
        images: records,
        plan,
        unreadable_records,
        requests,
    })
}

/// Deletes what the plan allows (unless `dry_run`) and builds the report.
pub async fn apply_plan<I: RepositoryInventory>(
    inventory: &I,
    repository: &str,
    survey: &Survey,
    dry_run: bool,
) -> Result<RepositoryReport, AdapterError> {
    apply_plan_with_progress(inventory, repository, survey, dry_run, |_, _| {}).await
}

/// [`apply_plan`], calling `progress(done, total)` after each BatchDeleteImage.
pub async fn apply_plan_with_progress<I: RepositoryInventory>(
    inventory: &I,
    repository: &str,
    survey: &Survey,
    dry_run: bool,
    mut progress: impl FnMut(usize, usize),
) -> Result<RepositoryReport, AdapterError> {
    let plan = &survey.plan;
    let mut report = RepositoryReport {
        repository: repository.to_owned(),
        dry_run,
        images: survey.images.len(),
        unparseable: plan.unparseable.clone(),
        unreadable: plan.unreadable.clone(),
        unreadable_records: survey.unreadable_records.clone(),
        refused: plan.refused.clone(),
        aws_calls: survey.requests,
        kept_by_reason: plan.kept_by_reason(),
        ..RepositoryReport::default()
    };
    if dry_run || plan.refused.is_some() || plan.delete.is_empty() {
        report.deleted = if dry_run {
            plan.delete.iter().map(|d| d.digest.clone()).collect()
        } else {
            Vec::new()
        };
        report.bytes_reclaimed = if dry_run { plan.bytes_reclaimed } else { 0 };
        return Ok(report);
    }
    let ordered: Vec<Digest> = plan.delete.iter().map(|d| d.digest.clone()).collect();
    // One batch a call, in plan order: an index's batch goes before its children's.
    for batch in ordered.chunks(BATCH_LIMIT) {
        report.aws_calls += 1;
        let result = inventory.delete_images(repository, batch).await?;
        report.deleted.extend(result.deleted);
        report.failed.extend(result.failed);
        progress(report.deleted.len() + report.failed.len(), ordered.len());
    }
    let sizes: BTreeMap<&Digest, u64> = plan
        .delete
        .iter()
        .map(|d| (&d.digest, d.size_bytes.unwrap_or(0)))
        .collect();
    report.bytes_reclaimed = report.deleted.iter().filter_map(|d| sizes.get(d)).sum();
    Ok(report)
}

/// Publishes a repository's report as a `Retention Report` event.
pub async fn publish_report<E: EventPublisher>(
    events: &E,
    report: &RepositoryReport,
) -> Result<(), AdapterError> {
    let detail = serde_json::to_string(report).map_err(|e| AdapterError::Unexpected {
        service: "EventBridge",
        operation: "PutEvents",
        reason: format!("report does not serialise: {e}"),
    })?;
    events.publish_detail("Retention Report", detail).await
}

/// Expands `team/*` patterns into repository names; plain names pass as they are.
pub async fn resolve_repositories<I: RepositoryInventory>(
    inventory: &I,
    patterns: &[String],
) -> Vec<Result<String, (String, AdapterError)>> {
    let mut resolved = Vec::new();
    for pattern in patterns {
        match pattern.strip_suffix('*') {
            Some(prefix) => match inventory.repositories(prefix).await {
                Ok(names) => resolved.extend(names.into_iter().map(Ok)),
                Err(e) => resolved.push(Err((pattern.clone(), e))),
            },
            None => resolved.push(Ok(pattern.clone())),
        }
    }
    resolved
}
