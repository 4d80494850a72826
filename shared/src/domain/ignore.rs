//! Why an event or a fact changes nothing. Every "ignored" answer of archgate names one of
//! these: the text is the log line and the handler's `reason`, the kind is the stable,
//! machine-readable name (`kind` in the handler's answer) that alarms and tests match on.

use super::digest::Digest;
use super::release::{Arch, BuildRole, BuildStatus, Effect, Phase, ReleaseKey};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// Untrusted values in these reasons are already bounded by the caller
/// (`truncate_for_message`), so a hostile event cannot blow up a log line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreReason {
    // The event is not archgate's.
    #[error("event from account `{account}`, not this deployment's")]
    ForeignAccount { account: String },
    #[error("event from region `{region}`, not this deployment's")]
    ForeignRegion { region: String },
    #[error("not {expected} event (source `{event_source}`, detail-type `{detail_type}`)")]
    OtherEvent {
        /// What the function takes, with its article ("an S3 Object Created").
        expected: &'static str,
        event_source: String,
        detail_type: String,
    },
    #[error("bucket `{bucket}` is not the source bucket `{expected}`")]
    ForeignBucket { bucket: String, expected: String },
    #[error("project `{project}` is not one of archgate's")]
    ForeignProject { project: String },
    #[error("manifest project `{project}` is not used in native manifest mode")]
    NativeManifestProject { project: String },
    #[error("build `{build_id}` does not belong to project `{project}`")]
    BuildOfAnotherProject { build_id: String, project: String },
    #[error("CodeBuild says build {build_id} belongs to project `{project}`, not the event's")]
    ProjectDisagrees { build_id: String, project: String },
    #[error("CodeBuild does not know build {build_id}")]
    UnknownBuild { build_id: String },
    #[error("build {build_id} carries no archgate release (IMAGE_REPO_NAME / ARCHGATE_RELEASE_TAG): not started by archgate")]
    NoArchgateRelease { build_id: String },
    #[error("build {build_id} is for repository `{repository}`, not `{expected}`")]
    BuildOfForeignRepository {
        build_id: String,
        repository: String,
        expected: String,
    },
    #[error("repository `{repository}` is not archgate's repository `{expected}`")]
    ForeignRepository {
        repository: String,
        expected: String,
    },
    #[error("image {digest} carries no archgate per-arch tag (<tag>-amd64 / <tag>-arm64) and no candidate index references it")]
    NoArchgateImage { digest: Digest },
    #[error("the finding is not about an ECR container image")]
    NotAContainerImage,

    // The event is malformed.
    #[error("{field} is missing")]
    MissingField { field: &'static str },
    #[error("{field} is empty")]
    EmptyField { field: &'static str },
    #[error("{field} is implausibly long ({length} bytes)")]
    LongField { field: &'static str, length: usize },
    #[error("{field} `{value}` is not hexadecimal")]
    NotHexadecimal { field: &'static str, value: String },
    #[error("{problem}")]
    BadObjectKey { problem: String },
    #[error("object key `{key}` is refused: {refusal}")]
    RefusedRepository {
        key: String,
        refusal: super::repository::RepositoryRefusal,
        /// The upload and the tag its file names: what its `Release Rejected` says.
        tag: super::tag::ReleaseTag,
        upload: Box<super::release::SourceObject>,
    },
    #[error("build {build_id}: {problem}")]
    BadReleaseTag { build_id: String, problem: String },
    #[error("build {build_id} of the {expected} project says IMAGE_ARCH={said}")]
    ArchMismatch {
        build_id: String,
        expected: Arch,
        said: String,
    },
    #[error("unknown build status `{status}`")]
    UnknownBuildStatus { status: String },
    #[error("scan status `{status}` is not a result the gate judges")]
    NotAScanResult { status: String },

    // The fact changes nothing for the release.
    #[error("no release {key} in the ledger: not started by archgate")]
    UnknownRelease { key: ReleaseKey },
    #[error("{role} build {build_id} is {}: not a final status", status.as_str())]
    NotFinal {
        role: BuildRole,
        build_id: String,
        status: BuildStatus,
    },
    #[error("release {key} is {phase}, not waiting for builds or scans")]
    NotInFlight { key: ReleaseKey, phase: Phase },
    #[error("upload version {revision} of {key} started attempt {attempt}, which has ended")]
    AttemptEnded {
        key: ReleaseKey,
        revision: String,
        attempt: u32,
    },
    #[error("upload version {revision} of {key} is older than version {current} of attempt {attempt}: a late delivery")]
    LateUpload {
        key: ReleaseKey,
        revision: String,
        current: String,
        attempt: u32,
    },
    #[error("a later upload of {key} (version {queued}) already waits to start the next attempt")]
    LaterUploadQueued { key: ReleaseKey, queued: String },
    #[error("{key} is a reserved name; build {build_id} is not archgate's")]
    BuildOfReservedName { key: ReleaseKey, build_id: String },
    #[error(
        "release {key} assembles its index natively; manifest build {build_id} is not its own"
    )]
    NativeManifestBuild { key: ReleaseKey, build_id: String },
    #[error("build {build_id} is not the {role} build archgate recorded for {key} ({recorded})")]
    OtherBuild {
        key: ReleaseKey,
        role: BuildRole,
        build_id: String,
        recorded: String,
    },
    #[error("{role} build {build_id} was started by attempt {attempt} of {key} (upload {upload}), not by its current attempt {current}")]
    BuildOfOtherAttempt {
        key: ReleaseKey,
        role: BuildRole,
        build_id: String,
        attempt: u32,
        upload: String,
        current: u32,
    },
    #[error("{role} build {build_id} names no attempt and is not the build recorded for {key}: a build without an attempt is taken only by the release that recorded it")]
    UnattributedBuild {
        key: ReleaseKey,
        role: BuildRole,
        build_id: String,
    },
    #[error("build {build_id} says {variable}={value}, not an attempt number")]
    BadBuildAttempt {
        build_id: String,
        variable: &'static str,
        value: String,
    },
    #[error("{role} build {build_id} already ended {}; ignoring a later {}", recorded.as_str(), status.as_str())]
    BuildAlreadyEnded {
        role: BuildRole,
        build_id: String,
        recorded: BuildStatus,
        status: BuildStatus,
    },
    #[error("release {key} failed; its scans no longer matter")]
    ReleaseFailed { key: ReleaseKey },
    #[error("release {key} expired; its images are gone and its scans no longer matter")]
    ReleaseExpired { key: ReleaseKey },
    #[error("release {key} is {phase}; the rule does not expire a release in that phase")]
    NotExpirable { key: ReleaseKey, phase: Phase },
    #[error("release {key} still has work under way (claims, events to announce or a queued upload); it expires in a later run")]
    ReleaseBusy { key: ReleaseKey },
    #[error("{key} is a reserved name: it has no images to scan")]
    ScanOfReservedName { key: ReleaseKey },
    #[error("{digest} is the image index of {key}; ECR scans only the per-arch images")]
    IndexScanned { key: ReleaseKey, digest: Digest },
    #[error("{digest} is not the {arch} image of {key}'s candidate")]
    NotTheCandidateImage {
        key: ReleaseKey,
        arch: Arch,
        digest: Digest,
    },
    #[error("{digest} is not the image the {arch} build of {key} pushed ({pushed})")]
    NotThePushedImage {
        key: ReleaseKey,
        arch: Arch,
        digest: Digest,
        pushed: Digest,
    },
    #[error("{digest} is not the {arch} image of published release {key}")]
    NotThePublishedImage {
        key: ReleaseKey,
        arch: Arch,
        digest: Digest,
    },
    #[error("release {key} is published; a passing scan of its {arch} image is not news")]
    PassingScanAfterPublication { key: ReleaseKey, arch: Arch },
    #[error("an older scan of {digest} ({arch}); a newer one is already recorded")]
    OlderScan { arch: Arch, digest: Digest },
    #[error("image {digest} has no finished scan to judge again")]
    NoFinishedScan { digest: Digest },
    #[error("image {digest} is no longer in the registry: nothing to judge")]
    ImageGone { digest: Digest },

    // A repeated delivery.
    #[error("duplicate delivery: release {key} was already started from this upload")]
    DuplicateUpload { key: ReleaseKey },
    #[error("duplicate delivery: this upload to {key} was already refused")]
    DuplicateRefusal { key: ReleaseKey },
    #[error("duplicate delivery: {role} build of {key} already recorded as {}", status.as_str())]
    DuplicateBuildStatus {
        key: ReleaseKey,
        role: BuildRole,
        status: BuildStatus,
    },
    #[error("duplicate delivery: the {arch} scan of {digest} is already recorded")]
    DuplicateScan { arch: Arch, digest: Digest },
    #[error("release {key} is already abandoned")]
    AlreadyAbandoned { key: ReleaseKey },
    #[error("release {key} has already expired")]
    AlreadyExpired { key: ReleaseKey },
    #[error("release {key} has nothing to take over")]
    NothingToTakeOver { key: ReleaseKey },
    #[error("{effect} already recorded")]
    AlreadyRecorded { effect: Effect },
    #[error("nothing for this function to do for {key}")]
    NothingForThisFunction { key: ReleaseKey },

    /// One event reached several releases and changed none of them.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Several(Vec<IgnoreReason>),
}

impl IgnoreReason {
    /// The stable name of the reason, for alarms, dashboards and tests.
    pub fn kind(&self) -> &'static str {
        use IgnoreReason::*;
        match self {
            ForeignAccount { .. } => "foreign_account",
            ForeignRegion { .. } => "foreign_region",
            OtherEvent { .. } => "other_event",
            ForeignBucket { .. } => "foreign_bucket",
            ForeignProject { .. } => "foreign_project",
            NativeManifestProject { .. } => "native_manifest_project",
            BuildOfAnotherProject { .. } => "build_of_another_project",
            ProjectDisagrees { .. } => "project_disagrees",
            UnknownBuild { .. } => "unknown_build",
            NoArchgateRelease { .. } => "no_archgate_release",
            BuildOfForeignRepository { .. } => "build_of_foreign_repository",
            ForeignRepository { .. } => "foreign_repository",
            NoArchgateImage { .. } => "no_archgate_image",
            NotAContainerImage => "not_a_container_image",
            MissingField { .. } => "missing_field",
            EmptyField { .. } => "empty_field",
            LongField { .. } => "long_field",
            NotHexadecimal { .. } => "not_hexadecimal",
            BadObjectKey { .. } => "bad_object_key",
            RefusedRepository { .. } => "refused_repository",
            BadReleaseTag { .. } => "bad_release_tag",
            ArchMismatch { .. } => "arch_mismatch",
            UnknownBuildStatus { .. } => "unknown_build_status",
            NotAScanResult { .. } => "not_a_scan_result",
            UnknownRelease { .. } => "unknown_release",
            NotFinal { .. } => "not_final",
            NotInFlight { .. } => "not_in_flight",
            AttemptEnded { .. } => "attempt_ended",
            LateUpload { .. } => "late_upload",
            LaterUploadQueued { .. } => "later_upload_queued",
            BuildOfReservedName { .. } => "build_of_reserved_name",
            NativeManifestBuild { .. } => "native_manifest_build",
            OtherBuild { .. } => "other_build",
            BuildOfOtherAttempt { .. } => "build_of_other_attempt",
            UnattributedBuild { .. } => "unattributed_build",
            BadBuildAttempt { .. } => "bad_build_attempt",
            BuildAlreadyEnded { .. } => "build_already_ended",
            ReleaseFailed { .. } => "release_failed",
            ReleaseExpired { .. } => "release_expired",
            NotExpirable { .. } => "not_expirable",
            ReleaseBusy { .. } => "release_busy",
            ScanOfReservedName { .. } => "scan_of_reserved_name",
            IndexScanned { .. } => "index_scanned",
            NotTheCandidateImage { .. } => "not_the_candidate_image",
            NotThePushedImage { .. } => "not_the_pushed_image",
            NotThePublishedImage { .. } => "not_the_published_image",
            PassingScanAfterPublication { .. } => "passing_scan_after_publication",
            OlderScan { .. } => "older_scan",
            NoFinishedScan { .. } => "no_finished_scan",
            ImageGone { .. } => "image_gone",
            DuplicateUpload { .. } => "duplicate_upload",
            DuplicateRefusal { .. } => "duplicate_refusal",
            DuplicateBuildStatus { .. } => "duplicate_build_status",
            DuplicateScan { .. } => "duplicate_scan",
            AlreadyAbandoned { .. } => "already_abandoned",
            AlreadyExpired { .. } => "already_expired",
            NothingToTakeOver { .. } => "nothing_to_take_over",
            AlreadyRecorded { .. } => "already_recorded",
            NothingForThisFunction { .. } => "nothing_for_this_function",
            Several(_) => "several",
        }
    }

    /// Whether the reason is a repeated delivery of something already recorded (normal
    /// under EventBridge's at-least-once delivery, never worth an alarm).
    pub fn is_duplicate(&self) -> bool {
        matches!(
            self,
            IgnoreReason::DuplicateUpload { .. }
                | IgnoreReason::DuplicateRefusal { .. }
                | IgnoreReason::DuplicateBuildStatus { .. }
                | IgnoreReason::DuplicateScan { .. }
                | IgnoreReason::AlreadyAbandoned { .. }
                | IgnoreReason::AlreadyExpired { .. }
                | IgnoreReason::AlreadyRecorded { .. }
        )
    }
}

/// `{"kind": "...", "reason": "..."}`: the handler's answer carries both.
impl Serialize for IgnoreReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut answer = serializer.serialize_struct("IgnoreReason", 2)?;
        answer.serialize_field("kind", self.kind())?;
        answer.serialize_field("reason", &self.to_string())?;
        answer.end()
    }
}
