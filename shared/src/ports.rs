//! The ports the pipeline needs from the outside world. Adapters in [`crate::aws`] implement
//! them with the AWS SDK; the domain and the pipeline see only these library types.
//! [`Ports`] bundles one adapter per port, so code generic over the ports names one type.

use crate::domain::attestation::Blob;
use crate::domain::gate::{Finding, ScanStatus, SeverityCounts};
use crate::domain::oci::RawManifest;
use crate::domain::policy::{PolicyRead, PolicyRecord};
use crate::domain::release_event::ReleaseEvent;
use crate::domain::repository::{Ensured, RepositorySettings, TagMutability};
use crate::domain::{Arch, BuildStatus, Digest, Millis, Release, ReleaseKey, ReleaseTag};
use crate::error::AdapterError;
use std::future::Future;

/// A release as stored, with the version its next conditional write must expect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub release: Release,
    pub version: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Someone else wrote first: re-read and decide again.
    #[error("release changed since it was read (expected version {expected:?})")]
    Conflict { expected: Option<u64> },
    #[error(transparent)]
    Adapter(#[from] AdapterError),
}

/// A ledger item that holds a release but does not parse (written by another version, or
/// damaged): skipped by every reader, reported, and mined for the digests it mentions so
/// retention still keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRecord {
    /// The item's partition key.
    pub id: String,
    pub reason: String,
    pub mentioned: Vec<Digest>,
}

/// The releases of the ledger, newest first, and the items that did not parse.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub releases: Vec<Stored>,
    pub unreadable: Vec<UnreadableRecord>,
}

/// Which release holds a moving tag, with what it needs to put the tag back on it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MovingTagHolder {
    pub release: ReleaseTag,
    /// [`Release::upload_order`]'s time: the newest upload wins the tag.
    pub uploaded_at: Millis,
    pub digest: Digest,
    /// The release's index, exactly as pushed.
    pub manifest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl MovingTagHolder {
    /// Newest upload first; the tag breaks ties so the order is total.
    pub fn is_newer_than(&self, other: &MovingTagHolder) -> bool {
        (self.uploaded_at, self.release.as_str()) > (other.uploaded_at, other.release.as_str())
    }
}

/// The answer to a request for a moving tag's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MovingTagLock {
    /// Another invocation moves the tag right now.
    Busy,
    Acquired {
        /// The release the tag names, as last recorded.
        holder: Option<Box<MovingTagHolder>>,
        /// What an earlier lock holder was moving the tag to when its lease ran out (it died
        /// mid-way): the registry may name it already.
        unfinished: Option<Box<MovingTagHolder>>,
    },
}

pub trait Ledger: Send + Sync {
    fn load(
        &self,
        key: &ReleaseKey,
    ) -> impl Future<Output = Result<Option<Stored>, AdapterError>> + Send;

    /// Writes `release` if the stored version is still `expected` (`None`: the item must not
    /// exist yet). Returns the new version. Only a release of which no attempt was published
    /// expires (TTL); a published release's record is kept forever.
    fn save(
        &self,
        release: &Release,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<u64, SaveError>> + Send;

    /// Records, for each per-arch image digest, that this release (as that arch) holds it.
    /// A digest shared by several releases (byte-identical builds) is recorded for each.
    fn link_digests(
        &self,
        key: &ReleaseKey,
        links: &[(Digest, Arch)],
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// Every release and arch of `repository` whose candidate references this per-arch
    /// image digest (pointers are per repository: another repository's releases of the same
    /// bytes are neither found nor counted against this one's).
    fn find_by_digest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> impl Future<Output = Result<Vec<(ReleaseKey, Arch)>, AdapterError>> + Send;

    /// Releases, newest first, at most `limit`; items that do not parse are reported, not
    /// fatal.
    fn list(&self, limit: usize) -> impl Future<Output = Result<Listing, AdapterError>> + Send;

    /// Takes the lock on a moving tag of a repository for `holder` until `until`, unless
    /// another holder's lock is still live at `now`; records `intent` (where the tag is
    /// about to move) so a successor can finish the move if this holder dies.
    fn lock_moving_tag(
        &self,
        repository: &str,
        tag: &str,
        holder: &str,
        intent: &MovingTagHolder,
        now: Millis,
        until: Millis,
    ) -> impl Future<Output = Result<MovingTagLock, AdapterError>> + Send;

    /// Lets the lock lapse at once but keeps its intent: the move may or may not have
    /// happened, and the next holder finishes it.
    fn abandon_moving_tag(
        &self,
        repository: &str,
        tag: &str,
        holder: &str,
        now: Millis,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// What the ledger holds for a repository's own policy.
    fn policy(
        &self,
        repository: &str,
    ) -> impl Future<Output = Result<PolicyRead, AdapterError>> + Send;

    /// Writes a repository's policy if its stored version is still `expected` (`None`: none
    /// is stored yet).
    fn save_policy(
        &self,
        record: &PolicyRecord,
        expected: Option<u64>,
    ) -> impl Future<Output = Result<(), SaveError>> + Send;

    /// Every repository's stored policy, by repository.
    fn policies(
        &self,
    ) -> impl Future<Output = Result<Vec<(String, PolicyRead)>, AdapterError>> + Send;

    /// Where the next scheduled retention run starts: the first repository the last run
    /// could not reach in its time (`None`: it reached every one).
    fn retention_resume(&self)
        -> impl Future<Output = Result<Option<String>, AdapterError>> + Send;

    /// Records where the next scheduled retention run starts.
    fn set_retention_resume(
        &self,
        next: Option<&str>,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// Which release a moving tag of a repository names, as last recorded.
    fn moving_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<Option<MovingTagHolder>, AdapterError>> + Send;

    /// Records that the tag now names `current` and gives the lock back. `false` when the
    /// lock was no longer `holder`'s.
    fn unlock_moving_tag(
        &self,
        repository: &str,
        tag: &str,
        holder: &str,
        current: &MovingTagHolder,
    ) -> impl Future<Output = Result<bool, AdapterError>> + Send;
}

/// A StartBuild request: which project, which source, which environment overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildRequest {
    pub project: String,
    /// `bucket/key`, as CodeBuild's S3 source location wants it.
    pub source_location: String,
    pub source_version: Option<String>,
    pub environment: Vec<(String, String)>,
    pub idempotency_token: String,
}

impl BuildRequest {
    /// The value of one of the build's environment variables, if it is given.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.environment
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What BatchGetBuilds says about a build, when its event did not carry enough.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildDetails {
    pub build_id: String,
    pub project: String,
    /// `None` while CodeBuild reports none, or one archgate does not know.
    pub status: Option<BuildStatus>,
    pub environment: Vec<(String, String)>,
    /// The buildspec's `exported-variables` (`IMAGE_DIGEST`), once the build ended.
    pub exported: Vec<(String, String)>,
    /// The image the build runs on.
    pub image: Option<String>,
}

pub trait Builds: Send + Sync {
    fn start(
        &self,
        request: &BuildRequest,
    ) -> impl Future<Output = Result<String, AdapterError>> + Send;
    fn stop(&self, build_id: &str) -> impl Future<Output = Result<(), AdapterError>> + Send;
    fn details(
        &self,
        build_id: &str,
    ) -> impl Future<Output = Result<Option<BuildDetails>, AdapterError>> + Send;
}

/// What the registry says about the scan of one image (DescribeImageScanFindings, all pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanFindings {
    /// `None` while the scan is still pending or in progress.
    pub status: Option<ScanStatus>,
    pub counts: SeverityCounts,
    pub findings: Vec<Finding>,
    /// When the scan completed, in milliseconds since the epoch, if the registry says.
    pub completed_at: Option<i64>,
}

pub trait Registry: Send + Sync {
    /// BatchGetImage by tag, in one call; a tag that is missing gives `None` in its place.
    fn manifests_by_tag(
        &self,
        repository: &str,
        tags: &[String],
    ) -> impl Future<Output = Result<Vec<Option<RawManifest>>, AdapterError>> + Send;

    /// BatchGetImage by digest, in one call; an image that is missing gives `None`.
    fn images_by_digest(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> impl Future<Output = Result<Vec<Option<RawManifest>>, AdapterError>> + Send;

    /// The findings of an image's most recent scan; `None` when it has not been scanned.
    fn scan_findings(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<ScanFindings>, AdapterError>> + Send;

    /// PutImage by digest, under `tag` or with none (an OCI referrer, whose blobs must be
    /// uploaded first). A repeat of identical content is as good as a first write; a tag that
    /// names other content and cannot move is [`AdapterError::TagTaken`].
    fn put_image(
        &self,
        repository: &str,
        tag: Option<&str>,
        manifest: &RawManifest,
        digest: &Digest,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// Uploads the blobs the repository lacks: one BatchCheckLayerAvailability, then per
    /// missing blob InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload.
    /// Content-addressed: a repeat is harmless.
    fn upload_blobs(
        &self,
        repository: &str,
        blobs: &[Blob],
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// CreateRepository with `settings`, unless the repository exists: concurrent callers
    /// create it once, and each learns whether it was there.
    fn ensure_repository(
        &self,
        repository: &str,
        settings: &RepositorySettings,
    ) -> impl Future<Output = Result<Ensured, AdapterError>> + Send;

    /// PutImageTagMutability: which tags of an existing repository ECR keeps immutable (the
    /// moving tags of a repository's policy changed).
    fn set_tag_mutability(
        &self,
        repository: &str,
        mutability: &TagMutability,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
}

/// Signs release attestations (the DSSE pre-auth encoding), or leaves them unsigned.
pub trait Signer: Send + Sync {
    /// The key named in each signature (`keyid`); `None`: envelopes are left unsigned.
    fn key_id(&self) -> Option<&str>;

    /// Whether the key can make signatures `archgate release verify` checks: an enabled
    /// ECC_NIST_P256 key for SIGN_VERIFY. Anything else is [`AdapterError::KeyUnusable`] with
    /// the reason, never a signature nobody can verify.
    fn check(&self) -> impl Future<Output = Result<(), AdapterError>> + Send;

    /// An ECDSA P-256 SHA-256 signature of `message`, ASN.1 DER encoded.
    fn sign(&self, message: &[u8]) -> impl Future<Output = Result<Vec<u8>, AdapterError>> + Send;
}

pub trait EventPublisher: Send + Sync {
    /// A release event: its detail, as JSON, under its detail-type.
    fn publish(
        &self,
        event: &ReleaseEvent,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send {
        async move {
            let detail =
                serde_json::to_string(&event.detail).map_err(|e| AdapterError::Unexpected {
                    service: "EventBridge",
                    operation: "PutEvents",
                    reason: format!("event does not serialise: {e}"),
                })?;
            self.publish_detail(event.detail_type(), detail).await
        }
    }

    /// Any archgate event (source `archgate`) with this detail-type and JSON detail.
    fn publish_detail(
        &self,
        detail_type: &str,
        detail: String,
    ) -> impl Future<Output = Result<(), AdapterError>> + Send;
}

/// The clock, injectable so tests can move time (claims, leases).
pub trait Clock: Send + Sync {
    fn now_millis(&self) -> i64;

    /// Waits `millis` before trying again (a lock somebody else holds for a moment).
    fn pause(&self, millis: i64) -> impl Future<Output = ()> + Send {
        let duration = std::time::Duration::from_millis(millis.max(0) as u64);
        async move { tokio::time::sleep(duration).await }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> i64 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        now.as_millis() as i64
    }
}

/// The system clock moved by a fixed offset: "a week from now" for the demo's retention run.
#[derive(Debug, Clone, Copy, Default)]
pub struct ShiftedClock {
    pub offset_ms: i64,
}

impl Clock for ShiftedClock {
    fn now_millis(&self) -> i64 {
        SystemClock.now_millis() + self.offset_ms
    }
}

/// One image as DescribeImages lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSummary {
    pub digest: Digest,
    pub tags: Vec<String>,
    /// Milliseconds since the epoch.
    pub pushed_at: i64,
    pub media_type: Option<String>,
    pub artifact_media_type: Option<String>,
    pub size_bytes: Option<u64>,
}

/// What BatchGetImage returned for one digest: the manifest, or why not (with the
/// registry's code and reason, for people).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchedManifest {
    Found(RawManifest),
    /// The repository does not hold the image (ECR's `ImageNotFound`, or no answer at all
    /// for the digest).
    NotFound(String),
    /// Any other per-image failure: the image may exist, but cannot be read now.
    Unreadable(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteResult {
    pub deleted: Vec<Digest>,
    /// Per-image failures: digest, code and reason, as the registry reported them.
    pub failed: Vec<(Digest, String)>,
}

/// Images per page of an inventory listing (DescribeImages' largest page).
pub const LIST_PAGE: usize = 1000;
/// Images per batch read or delete (BatchGetImage's and BatchDeleteImage's limit).
pub const BATCH_LIMIT: usize = 100;

/// The registry as retention sees it. Batch methods make one call per batch the API allows
/// ([`LIST_PAGE`], [`BATCH_LIMIT`]).
pub trait RepositoryInventory: Send + Sync {
    fn list_images(
        &self,
        repository: &str,
    ) -> impl Future<Output = Result<Vec<ImageSummary>, AdapterError>> + Send;

    fn manifests_by_digest(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> impl Future<Output = Result<Vec<(Digest, FetchedManifest)>, AdapterError>> + Send;

    fn delete_images(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> impl Future<Output = Result<DeleteResult, AdapterError>> + Send;

    /// Removes tags, one BatchDeleteImage by tag per [`BATCH_LIMIT`]. Removing an image's last
    /// tag deletes the image, so callers untag only images that keep another tag. Returns the
    /// tags that could not be removed, with the reason.
    fn untag(
        &self,
        repository: &str,
        tags: &[String],
    ) -> impl Future<Output = Result<Vec<(String, String)>, AdapterError>> + Send;

    /// Repository names starting with `prefix` (DescribeRepositories, all pages).
    fn repositories(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<String>, AdapterError>> + Send;
}

pub use crate::domain::retention::ImageUse;

/// The account's workloads as retention sees them: read only.
pub trait Workloads: Send + Sync {
    /// Every image that an active ECS task definition revision, a running ECS task, the task
    /// definitions of an ECS service's deployments, or a Lambda function packaged as an image
    /// names. A failed read is an error: retention then expires no release (fail closed).
    fn images_in_use(&self) -> impl Future<Output = Result<Vec<ImageUse>, AdapterError>> + Send;
}

/// One implementation of every port: the AWS adapters ([`crate::wiring::Aws`]) or the
/// in-memory services (`archgate_testkit::memory::Memory`). The pipeline, retention, the reconciler
/// and the handlers are generic over a bundle, so a new port is added here, not to each of
/// their signatures.
pub trait Ports: 'static {
    type Ledger: Ledger + Clone;
    type Builds: Builds + Clone;
    type Registry: Registry + Clone;
    type Events: EventPublisher + Clone;
    type Clock: Clock + Clone;
    type Signer: Signer + Clone;
    /// The registry as retention reads and deletes it.
    type Inventory: RepositoryInventory;
    /// The account's workloads (what retention must keep).
    type Workloads: Workloads;
}
