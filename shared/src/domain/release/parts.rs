//! What a release records about its builds, candidate, scans and publication.

use super::{Arch, BuildStatus};
use crate::domain::digest::Digest;
use crate::domain::gate::Verdict;
use crate::domain::oci::ImagePlatform;
use crate::domain::Millis;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<BuildStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Millis>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_requested: bool,
    /// The digest the build says it pushed (`IMAGE_DIGEST`, exported by the buildspec): the
    /// release is assembled from exactly this image, whatever its tag names by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<Digest>,
    /// The platform of that image as the build reported it (`IMAGE_PLATFORM`): what the
    /// index declares for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_platform: Option<ImagePlatform>,
    /// When archgate started the build.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Millis>,
    /// The CodeBuild image the build ran on, as its completion event said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub builder_image: Option<String>,
}

impl BuildRecord {
    pub(super) fn final_status(&self) -> Option<BuildStatus> {
        self.status.filter(|s| s.is_final())
    }
}

/// A child of the candidate index, as it was referenced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CandidateChild {
    pub arch: Arch,
    pub digest: Digest,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    pub tag: String,
    pub digest: Digest,
    pub children: Vec<CandidateChild>,
    /// The index exactly as pushed, so promotion re-tags it without reading it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

/// The gate's judgement of one per-arch image's scan.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRecord {
    pub arch: Arch,
    pub digest: Digest,
    pub verdict: Verdict,
    /// When the scan completed (the event's time).
    pub scanned_at: Millis,
    /// When the policy judged it; a re-evaluation of the same scan is newer.
    pub evaluated_at: Millis,
    /// Which scanner reported the scan, when the event said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner: Option<Scanner>,
    /// The version of the repository's policy that judged it (0: the environment's values
    /// alone); `None` for verdicts recorded before policies had versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<u64>,
}

/// The scanner behind a scan: ECR's basic scanning or Amazon Inspector (enhanced scanning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scanner {
    Basic,
    Inspector,
}

impl Scanner {
    pub fn as_str(self) -> &'static str {
        match self {
            Scanner::Basic => "basic",
            Scanner::Inspector => "inspector",
        }
    }
}

impl ScanRecord {
    pub(super) fn recency(&self) -> (Millis, Millis) {
        (self.scanned_at, self.evaluated_at)
    }
}

/// Where the gate stands for a release's candidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateState {
    /// Not every child has a current verdict yet.
    Waiting,
    Passed,
    Blocked,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub tags: Vec<String>,
    pub at: Millis,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Millis,
    pub what: String,
}
