//! The names a release is known by: its key, its source object, its builds' roles and
//! architectures.

use crate::domain::tag::ReleaseTag;
use crate::domain::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn parse(value: &str) -> Option<Arch> {
        match value {
            "amd64" => Some(Arch::Amd64),
            "arm64" => Some(Arch::Arm64),
            _ => None,
        }
    }

    pub fn sibling(self) -> Arch {
        match self {
            Arch::Amd64 => Arch::Arm64,
            Arch::Arm64 => Arch::Amd64,
        }
    }

    /// The platform fields (architecture, variant) buildx writes for an image of this
    /// architecture in an index it pushes. archgate's own index says what each build
    /// reported instead (`ImagePlatform`).
    pub fn oci_platform(self) -> (&'static str, Option<&'static str>) {
        match self {
            Arch::Amd64 => ("amd64", None),
            Arch::Arm64 => ("arm64", Some("v8")),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which of a release's CodeBuild builds a build is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildRole {
    Amd64,
    Arm64,
    Manifest,
}

impl BuildRole {
    pub fn arch(arch: Arch) -> Self {
        match arch {
            Arch::Amd64 => BuildRole::Amd64,
            Arch::Arm64 => BuildRole::Arm64,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BuildRole::Amd64 => "amd64",
            BuildRole::Arm64 => "arm64",
            BuildRole::Manifest => "manifest",
        }
    }
}

impl fmt::Display for BuildRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestMode {
    Native,
    Codebuild,
}

impl ManifestMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ManifestMode::Native => "native",
            ManifestMode::Codebuild => "codebuild",
        }
    }
}

/// CodeBuild's build statuses. `InProgress` is the only non-final one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildStatus {
    InProgress,
    Succeeded,
    Failed,
    Fault,
    Stopped,
    TimedOut,
}

impl BuildStatus {
    pub fn parse(value: &str) -> Option<BuildStatus> {
        Some(match value {
            "IN_PROGRESS" => BuildStatus::InProgress,
            "SUCCEEDED" => BuildStatus::Succeeded,
            "FAILED" => BuildStatus::Failed,
            "FAULT" => BuildStatus::Fault,
            "STOPPED" => BuildStatus::Stopped,
            "TIMED_OUT" => BuildStatus::TimedOut,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::InProgress => "IN_PROGRESS",
            BuildStatus::Succeeded => "SUCCEEDED",
            BuildStatus::Failed => "FAILED",
            BuildStatus::Fault => "FAULT",
            BuildStatus::Stopped => "STOPPED",
            BuildStatus::TimedOut => "TIMED_OUT",
        }
    }

    pub fn is_final(self) -> bool {
        self != BuildStatus::InProgress
    }

    pub fn is_failure(self) -> bool {
        self.is_final() && self != BuildStatus::Succeeded
    }
}

/// The attempt that started a build, as the build's environment says (it reaches the build
/// with StartBuild and comes back in its state-change event): the attempt number and the
/// upload that started it, which tells attempts apart even after the ledger forgot a release
/// and its name started over at attempt 1.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildOrigin {
    pub attempt: u32,
    /// The upload's revision (version id or ETag); `None` when the build does not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
}

impl BuildOrigin {
    /// Whether the build was started by the release's current attempt.
    pub fn is_current(&self, attempt: u32, source: &SourceObject) -> bool {
        self.attempt == attempt
            && self
                .upload
                .as_deref()
                .is_none_or(|u| u == source.revision())
    }
}

/// The S3 object a release is built from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceObject {
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// When S3 created the object (the event's time): orders uploads across releases, so
    /// moving tags follow the newest upload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uploaded_at: Option<Millis>,
    /// S3's sequencer: orders the uploads of one object key, whatever order their events
    /// arrive in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
}

impl SourceObject {
    /// Two deliveries describe the same upload when bucket, key and version (or, in an
    /// unversioned bucket, the etag) agree.
    pub fn same_upload(&self, other: &SourceObject) -> bool {
        self.bucket == other.bucket
            && self.key == other.key
            && self.version_id == other.version_id
            && (self.version_id.is_some() || self.etag == other.etag)
    }

    /// What identifies this upload in idempotency tokens and event keys.
    pub fn revision(&self) -> &str {
        self.version_id
            .as_deref()
            .or(self.etag.as_deref())
            .unwrap_or("unversioned")
    }

    /// Whether this upload of the same key came after `other`, when S3 says so: by sequencer
    /// (hex strings of varying length, compared after zero-padding the shorter), else by
    /// upload time. `None` when neither tells.
    pub fn is_later_than(&self, other: &SourceObject) -> Option<bool> {
        if let (Some(mine), Some(theirs)) = (&self.sequencer, &other.sequencer) {
            let width = mine.len().max(theirs.len());
            let pad = |s: &str| format!("{:0<width$}", s.to_ascii_uppercase());
            return Some(pad(mine) > pad(theirs));
        }
        match (self.uploaded_at, other.uploaded_at) {
            (Some(mine), Some(theirs)) if mine != theirs => Some(mine > theirs),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReleaseKey {
    pub repository: String,
    pub tag: ReleaseTag,
}

impl ReleaseKey {
    pub fn new(repository: impl Into<String>, tag: ReleaseTag) -> Self {
        ReleaseKey {
            repository: repository.into(),
            tag,
        }
    }

    /// The ledger's partition key: `repository#tag`.
    pub fn id(&self) -> String {
        format!("{}#{}", self.repository, self.tag)
    }
}

impl fmt::Display for ReleaseKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.repository, self.tag)
    }
}
