//! Retention: survey a repository (inventory, ledger, workloads), plan releases and images
//! with the pure planners, expire and delete what the plans allow, report. [`run`] is the
//! retention-cleanup function's whole job on the ports; `archgate retention` uses the steps
//! one by one.

mod apply;
mod run;
mod survey;

pub use apply::{apply_plan, apply_plan_with_progress, ExpiredRelease, Targets};
pub use run::{run, Request, Retention, RunReport};
pub use survey::{plan_repository, plan_survey, survey_repository, Planned, Survey};

use crate::domain::oci::{DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::domain::retention::{ReleasePolicy, RetentionPolicy};
use crate::domain::Digest;
use crate::error::AdapterError;
use crate::ports::{EventPublisher, RepositoryInventory};
use serde::Serialize;
use std::collections::BTreeMap;

/// BatchGetImage calls in flight at once per repository.
pub const READ_CONCURRENCY: usize = 8;
/// BatchDeleteImage calls in flight at once per repository (within one wave).
pub const DELETE_CONCURRENCY: usize = 4;

/// Both policies of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    pub images: RetentionPolicy,
    pub releases: ReleasePolicy,
}

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
    /// Releases this run expired, with the rule of each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub releases_expired: Vec<ExpiredRelease>,
    /// Releases expired and kept, by rule.
    pub releases_expired_by_rule: BTreeMap<&'static str, usize>,
    pub releases_kept_by_rule: BTreeMap<&'static str, usize>,
    /// Why no release expired this run, when the release plan was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub releases_refused: Option<String>,
    /// Images kept because workloads use them, with the first user of each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub in_use: Vec<(Digest, String)>,
    /// Tags of expired releases removed from images that stay (shared with kept releases).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untagged: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub untag_failed: Vec<(String, String)>,
    pub aws_calls: usize,
    /// Manifests read from the registry (those of archgate's releases come from the ledger).
    pub manifests_read: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RepositoryReport {
    /// The report of a survey before anything is applied.
    pub fn of(repository: &str, survey: &Survey, dry_run: bool) -> Self {
        let plan = &survey.plan;
        RepositoryReport {
            repository: repository.to_owned(),
            dry_run,
            images: survey.images.len(),
            unparseable: plan.unparseable.clone(),
            unreadable: plan.unreadable.clone(),
            unreadable_records: survey.unreadable_records.clone(),
            refused: plan.refused.clone(),
            aws_calls: survey.requests,
            manifests_read: survey.manifests_read,
            kept_by_reason: plan.kept_by_reason(),
            releases_expired_by_rule: survey.releases.expired_by_rule(),
            releases_kept_by_rule: survey.releases.kept_by_rule(),
            releases_refused: survey.releases.refused.clone(),
            in_use: survey.in_use_list(),
            ..RepositoryReport::default()
        }
    }
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
