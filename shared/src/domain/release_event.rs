//! The release events archgate publishes (source `archgate`).

use super::digest::Digest;
use super::gate::{Finding, SeverityCounts, Verdict};
use super::ignore::IgnoreReason;
use super::notice::{Notice, NoticeKind};
use super::release::{BuildRole, EventKind, Release, ScanRecord, SourceObject};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

pub const EVENT_SOURCE: &str = "archgate";

/// The `detail` of a release event. `event-key` is deterministic per release, upload and kind,
/// so consumers can drop the duplicates that at-least-once delivery brings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReleaseEventDetail {
    pub event_key: String,
    pub repository: String,
    pub tag: String,
    /// Which attempt of the release (1 for the first upload). A `Release Rejected` carries
    /// the attempt of the release that holds the name, 0 when none ever started.
    pub attempt: u32,
    pub state: String,
    pub source: SourceRef,
    pub builds: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub image_digests: BTreeMap<String, Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index_digest: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The gate's current verdict per arch (once scans are in).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub scans: BTreeMap<String, ScanSummary>,
    /// The tags a published release received (its tag and the moving tags it took).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// `Release Rejected`: the rule that refused the upload (`reason` says it in words).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    /// `Release Failed` by the deadline and `Release Stalled`: the last error of the owed
    /// effect that kept failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<LastError>,
}

/// The last error of an owed effect that kept failing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LastError {
    /// What was owed, in words (`sign the provenance and the verdict`).
    pub effect: String,
    pub error_type: String,
    pub error: String,
    /// When it first failed (RFC 3339), and how often it was tried since.
    pub since: String,
    pub tries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ScanSummary {
    pub digest: Digest,
    pub verdict: &'static str,
    pub counts: SeverityCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub worst_findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowlisted: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct SourceRef {
    pub bucket: String,
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

impl From<&SourceObject> for SourceRef {
    fn from(source: &SourceObject) -> Self {
        SourceRef {
            bucket: source.bucket.clone(),
            key: source.key.clone(),
            version_id: source.version_id.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseEvent {
    pub detail_type: &'static str,
    pub detail: ReleaseEventDetail,
}

impl ReleaseEvent {
    pub fn detail_type(&self) -> &'static str {
        self.detail_type
    }
}

pub const RELEASE_REJECTED: &str = "Release Rejected";
pub const RELEASE_VULNERABLE: &str = "Release Vulnerable";

fn keyed(slug: &str, parts: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("{slug}-{}", &hex::encode(hash.finalize())[..32])
}

pub fn event_key(release: &Release, kind: EventKind) -> String {
    keyed(
        kind.slug(),
        &[
            release.key.repository.as_str(),
            release.key.tag.as_str(),
            release.source.revision(),
            kind.slug(),
        ],
    )
}

/// `Release Rejected` of an upload whose key names no repository of archgate's
/// ([`IgnoreReason::RefusedRepository`]; `None` for any other reason): no release holds it
/// (nothing is recorded: there is no repository of archgate's to record it in), so the event
/// says what the key asked for and the rule it broke. Its key is the upload's.
pub fn rejection_event(reason: &IgnoreReason) -> Option<ReleaseEvent> {
    let IgnoreReason::RefusedRepository {
        refusal,
        tag,
        upload,
        ..
    } = reason
    else {
        return None;
    };
    let (repository, rule) = (refusal.folder(), refusal.rule());
    Some(ReleaseEvent {
        detail_type: RELEASE_REJECTED,
        detail: ReleaseEventDetail {
            event_key: keyed(
                "rejected",
                &[repository, tag.as_str(), upload.revision(), rule],
            ),
            repository: repository.to_owned(),
            tag: tag.to_string(),
            attempt: 0,
            state: "rejected".to_owned(),
            source: SourceRef::from(&**upload),
            builds: BTreeMap::new(),
            image_digests: BTreeMap::new(),
            index_digest: None,
            candidate_tag: None,
            reason: Some(reason.to_string()),
            scans: BTreeMap::new(),
            tags: Vec::new(),
            rule: Some(rule),
            last_error: None,
        },
    })
}

/// The event announcing a notice: `Release Rejected` or `Release Vulnerable`. Its key is the
/// notice's identity, so a repeated announcement is recognisably the same news.
pub fn notice_event(release: &Release, notice: &Notice) -> ReleaseEvent {
    let mut event = release_event(release, EventKind::Started);
    let detail = &mut event.detail;
    detail.tags = Vec::new();
    let identity = notice.identity();
    let key = |slug| {
        keyed(
            slug,
            &[
                release.key.repository.as_str(),
                release.key.tag.as_str(),
                &identity,
            ],
        )
    };
    match &notice.kind {
        NoticeKind::Rejected { source, reason } => {
            event.detail_type = RELEASE_REJECTED;
            detail.event_key = key("rejected");
            detail.attempt = release.attempt_started();
            detail.source = SourceRef::from(source);
            detail.reason = Some(reason.to_string());
            detail.rule = Some(reason.slug());
            detail.scans = BTreeMap::new();
            if release.reserved.is_some() {
                detail.builds = BTreeMap::new();
            }
        }
        NoticeKind::Vulnerable { scan } => {
            event.detail_type = RELEASE_VULNERABLE;
            detail.event_key = key("vulnerable");
            let summary = scan_summary(scan);
            detail.reason = summary
                .rule
                .as_ref()
                .map(|rule| format!("{} image {}: {rule}", scan.arch, scan.digest));
            detail.scans = BTreeMap::from([(scan.arch.as_str().to_owned(), summary)]);
        }
    }
    event
}

fn scan_summary(record: &ScanRecord) -> ScanSummary {
    match &record.verdict {
        Verdict::Pass {
            counts,
            allowlisted,
        } => ScanSummary {
            digest: record.digest.clone(),
            verdict: "pass",
            counts: counts.clone(),
            rule: None,
            worst_findings: Vec::new(),
            allowlisted: allowlisted.clone(),
        },
        Verdict::Block {
            rule,
            counts,
            worst,
        } => ScanSummary {
            digest: record.digest.clone(),
            verdict: "block",
            counts: counts.clone(),
            rule: Some(rule.clone()),
            worst_findings: worst.clone(),
            allowlisted: Vec::new(),
        },
    }
}

pub fn release_event(release: &Release, kind: EventKind) -> ReleaseEvent {
    let builds = [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest]
        .into_iter()
        .filter_map(|role| {
            release
                .build(role)
                .build_id
                .clone()
                .map(|id| (role.as_str().to_owned(), id))
        })
        .collect();
    let image_digests = release
        .candidate
        .iter()
        .flat_map(|c| c.children.iter())
        .map(|child| (child.arch.as_str().to_owned(), child.digest.clone()))
        .collect();
    let reason = match kind {
        EventKind::Failed => release.failure_reason(),
        EventKind::Blocked => Some(release.blocked_reason()),
        EventKind::Expired => release.expired.as_ref().map(|e| e.rule.to_string()),
        EventKind::Stalled => release.stalled.as_ref().map(|s| s.reason.clone()),
        _ => None,
    };
    let last_error = match kind {
        EventKind::Failed | EventKind::Stalled => release.worst_trouble().map(|t| LastError {
            effect: t.effect.to_string(),
            error_type: t.error_type.clone(),
            error: t.error.clone(),
            since: super::rfc3339(t.since),
            tries: t.tries,
        }),
        _ => None,
    };
    let scans = release
        .candidate
        .iter()
        .flat_map(|c| c.children.iter())
        .filter_map(|child| release.verdict_for(child.arch, &child.digest))
        .map(|record| (record.arch.as_str().to_owned(), scan_summary(record)))
        .collect();
    ReleaseEvent {
        detail_type: kind.detail_type(),
        detail: ReleaseEventDetail {
            event_key: event_key(release, kind),
            repository: release.key.repository.clone(),
            tag: release.key.tag.to_string(),
            attempt: release.attempt,
            state: release.phase().as_str().to_owned(),
            source: SourceRef::from(&release.source),
            builds,
            image_digests,
            index_digest: release.candidate.as_ref().map(|c| c.digest.clone()),
            candidate_tag: release.candidate.as_ref().map(|c| c.tag.clone()),
            reason,
            scans,
            tags: release
                .published
                .as_ref()
                .map(|p| p.tags.clone())
                .unwrap_or_default(),
            rule: None,
            last_error,
        },
    }
}
