//! What a release announces beyond its own lifecycle events: uploads it refused and findings
//! that arrived after it was published. Each notice is recorded in the release before it is
//! announced, so a lost answer or a crash repeats the announcement (same event key), never
//! drops it.

use super::release::{Phase, ScanRecord, SourceObject};
use super::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A release keeps at most this many notices: the unannounced ones and the newest announced.
pub const MAX_NOTICES: usize = 12;

/// Why an upload starts nothing. Each reason is a rule of the release lifecycle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum RejectReason {
    /// The tag ends in a suffix archgate gives its own internal tags.
    InternalSuffix { suffix: String },
    /// The tag is one of the configured moving tags.
    MovingTag { tag: String },
    /// The tag, or one of its internal tags, is a build-cache ref.
    CacheRef { reference: String },
    /// The tag is shaped like the tag of an image's signature, attestation or SBOM, or like
    /// the OCI referrers fallback tag (`sha256-<hex>` with or without `.sig`, `.att`,
    /// `.sbom`): retention and OCI tools read such a tag as belonging to another image.
    ReferrerTag { shape: String },
    /// Another source key already holds this tag.
    TakenBy { key: String },
    /// The release is published: a published release is final.
    Published { attempt: u32 },
    /// An attempt is still under way; only a failed or blocked release is built again.
    InFlight { attempt: u32, phase: Phase },
    /// Retention expired the published release: its name is spent.
    Expired { attempt: u32, at: Millis },
}

impl RejectReason {
    /// A short, stable name for the rule (event keys, metrics).
    pub fn slug(&self) -> &'static str {
        match self {
            RejectReason::InternalSuffix { .. } => "internal-suffix",
            RejectReason::MovingTag { .. } => "moving-tag",
            RejectReason::CacheRef { .. } => "cache-ref",
            RejectReason::ReferrerTag { .. } => "referrer-tag",
            RejectReason::TakenBy { .. } => "taken",
            RejectReason::Published { .. } => "published",
            RejectReason::InFlight { .. } => "in-flight",
            RejectReason::Expired { .. } => "expired",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::InternalSuffix { suffix } => write!(
                f,
                "the tag ends in `{suffix}`, a suffix reserved for archgate's internal tags"
            ),
            RejectReason::MovingTag { tag } => {
                write!(f, "the tag is the moving tag `{tag}`, which no release may take")
            }
            RejectReason::CacheRef { reference } => write!(
                f,
                "the tag would collide with the build-cache ref `{reference}`"
            ),
            RejectReason::ReferrerTag { shape } => write!(
                f,
                "the tag has the shape `{shape}`, which registries and signing tools read as the tag of another image's signature, attestation or referrers"
            ),
            RejectReason::TakenBy { key } => write!(
                f,
                "the tag is already held by the uploads of s3 key `{key}`; upload under another file name"
            ),
            RejectReason::Published { attempt } => write!(
                f,
                "the release was published by attempt {attempt} and a published release is final; upload under a new file name"
            ),
            RejectReason::InFlight { attempt, phase } => write!(
                f,
                "attempt {attempt} is still {phase}; only a failed or blocked release is built again"
            ),
            RejectReason::Expired { attempt, at } => write!(
                f,
                "the release was published by attempt {attempt} and expired by retention at {}; an expired release's name is never built again; upload under a new file name",
                crate::domain::rfc3339(*at)
            ),
        }
    }
}

/// One thing to announce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "notice", rename_all = "snake_case")]
pub enum NoticeKind {
    /// An upload that starts nothing (`Release Rejected`).
    Rejected {
        source: SourceObject,
        reason: RejectReason,
    },
    /// A scan of a published release's image that the policy would block (`Release Vulnerable`).
    Vulnerable { scan: ScanRecord },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Unique within the release; the announcement effect names it.
    pub seq: u32,
    pub at: Millis,
    #[serde(flatten)]
    pub kind: NoticeKind,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub announced: bool,
}

impl Notice {
    /// What makes two notices the same news: the same refused upload for the same rule, or
    /// the same scan of the same image.
    pub fn identity(&self) -> String {
        match &self.kind {
            NoticeKind::Rejected { source, reason } => {
                format!(
                    "rejected\0{}\0{}\0{}",
                    source.key,
                    source.revision(),
                    reason.slug()
                )
            }
            NoticeKind::Vulnerable { scan } => {
                format!(
                    "vulnerable\0{}\0{}\0{}",
                    scan.arch, scan.digest, scan.scanned_at
                )
            }
        }
    }
}

/// An earlier attempt of a release, kept for `release status` and to recognise late
/// deliveries of its upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastAttempt {
    pub attempt: u32,
    /// The upload's version (or ETag) that started it.
    pub revision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    /// `failed` or `blocked`.
    pub outcome: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub started_at: Millis,
    pub ended_at: Millis,
}

/// A release keeps this many earlier attempts.
pub const MAX_HISTORY: usize = 8;
