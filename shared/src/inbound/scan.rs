//! ECR "ECR Image Scan" and "Inspector2 Scan": a scan of an image ended.

use super::{foreign, other_event, parse, required, MalformedEvent};
use crate::config::Config;
use crate::domain::digest::truncate_for_message;
use crate::domain::gate::{ScanStatus, Severity, SeverityCounts};
use crate::domain::release::Scanner;
use crate::domain::scan::{ScanObservation, ScanResult};
use crate::domain::tag::ReleaseTag;
use crate::domain::{Arch, Digest, IgnoreReason, ReleaseKey};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};

/// The most `<tag>-<arch>` tags of one scanned image that are followed to their releases.
pub const MAX_SCAN_TAGS: usize = 100;

pub const ECR_SOURCE: &str = "aws.ecr";
pub const ECR_IMAGE_SCAN: &str = "ECR Image Scan";
pub const INSPECTOR_SOURCE: &str = "aws.inspector2";
pub const INSPECTOR_SCAN: &str = "Inspector2 Scan";

/// `detail` of an "ECR Image Scan" (basic scanning) or "Inspector2 Scan" (enhanced scanning)
/// event. Counts stay raw JSON so a non-numeric count gets its own message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageScan {
    #[serde(default)]
    pub scan_status: Option<String>,
    #[serde(default)]
    pub repository_name: Option<String>,
    #[serde(default)]
    pub finding_severity_counts: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub image_tags: Option<Vec<String>>,
}

pub type ScanEvent = EventBridgeEvent<ImageScan>;

pub fn parse_scan_event(value: serde_json::Value) -> Result<ScanEvent, MalformedEvent> {
    parse(value, "ECR Image Scan / Inspector2 Scan")
}

/// A scan event whose content is wrong (not merely someone else's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    pub field: String,
    pub problem: String,
}

/// Why a scan event gives no observation: it is not archgate's to judge (ignored), or its
/// content is wrong (an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoObservation {
    Ignored(IgnoreReason),
    Invalid(InvalidField),
}

impl From<IgnoreReason> for NoObservation {
    fn from(reason: IgnoreReason) -> Self {
        NoObservation::Ignored(reason)
    }
}

impl From<InvalidField> for NoObservation {
    fn from(invalid: InvalidField) -> Self {
        NoObservation::Invalid(invalid)
    }
}

/// Reads a scan event: the observation, or why there is none.
pub fn scan_observation(
    event: &ScanEvent,
    config: &Config,
) -> Result<ScanObservation, NoObservation> {
    if let Some(ignored) = foreign(event, config) {
        return Err(ignored.into());
    }
    let inspector = match (event.source.as_str(), event.detail_type.as_str()) {
        (ECR_SOURCE, ECR_IMAGE_SCAN) => false,
        (INSPECTOR_SOURCE, INSPECTOR_SCAN) => true,
        _ => return Err(other_event(event, "a scan").into()),
    };
    let detail = &event.detail;
    let named = required(detail.repository_name.as_deref(), "detail.repository-name")?;
    // Inspector names the repository by ARN; names may contain `/`.
    let repository = match named.split_once(":repository/") {
        Some((prefix, name)) if prefix.starts_with("arn:") => name,
        _ => named,
    };
    let repositories = config.repositories();
    if !repositories.owns(repository) {
        return Err(IgnoreReason::ForeignRepository {
            repository: truncate_for_message(repository),
            expected: repositories.to_string(),
        }
        .into());
    }
    let status_text = required(detail.scan_status.as_deref(), "detail.scan-status")?;
    let status = match (inspector, status_text) {
        (false, "COMPLETE") | (true, "INITIAL_SCAN_COMPLETE") => ScanStatus::Complete,
        (_, "FAILED") => ScanStatus::Failed,
        (_, "UNSUPPORTED_IMAGE") => ScanStatus::Unsupported,
        (_, other) => {
            return Err(IgnoreReason::NotAScanResult {
                status: truncate_for_message(other),
            }
            .into())
        }
    };
    let digest_text = required(detail.image_digest.as_deref(), "detail.image-digest")?;
    let digest = Digest::parse(digest_text).map_err(|e| InvalidField {
        field: "detail.image-digest".into(),
        problem: e.to_string(),
    })?;
    let mut counts = SeverityCounts::new();
    for (name, value) in detail.finding_severity_counts.iter().flatten() {
        let Some(severity) = Severity::parse(name) else {
            // TOTAL (Inspector) and UNTRIAGED are not severities the policy limits.
            continue;
        };
        let count = value.as_u64().ok_or_else(|| InvalidField {
            field: format!("detail.finding-severity-counts.{name}"),
            problem: format!(
                "{} is not a count (a whole number, 0 or more)",
                truncate_for_message(&value.to_string())
            ),
        })?;
        counts.insert(severity, count);
    }
    let tags = detail.image_tags.clone().unwrap_or_default();
    // A release needs one tag per image; byte-identical builds of several releases give it a
    // few. The work (one ledger read per release named) is bounded on hostile input.
    let located = located_by_tags(repository, &tags);
    let scanned_at = event.time.map(|t| t.timestamp_millis()).unwrap_or_default();
    Ok(ScanObservation {
        repository: repository.to_owned(),
        located,
        digest,
        result: ScanResult::Reported { status, counts },
        scanned_at,
        scanner: if inspector {
            Scanner::Inspector
        } else {
            Scanner::Basic
        },
    })
}

/// The release arch tags among an image's tags, as releases of `repository` (at most
/// [`MAX_SCAN_TAGS`]).
pub(super) fn located_by_tags(repository: &str, tags: &[String]) -> Vec<(ReleaseKey, Arch)> {
    let mut located: Vec<(ReleaseKey, Arch)> = Vec::new();
    for tag in tags.iter().take(MAX_SCAN_TAGS) {
        let found = Arch::ALL.into_iter().find_map(|arch| {
            let stem = tag.strip_suffix(&format!("-{arch}"))?;
            let release = ReleaseTag::parse(stem).ok()?;
            Some((ReleaseKey::new(repository, release), arch))
        });
        if let Some(found) = found {
            if !located.contains(&found) {
                located.push(found);
            }
        }
    }
    located
}
