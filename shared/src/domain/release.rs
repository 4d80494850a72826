//! The release state machine: the one decision point of archgate (DESIGN.md, "One decision
//! point").
//!
//! A [`Release`] is what the ledger records. [`decide`] takes the recorded release and one
//! incoming [`Fact`] and returns the next release plus the [`Effect`]s this invocation must
//! perform. The phase is never stored independently: it is derived from what is recorded
//! (builds, candidate), so a record cannot contradict itself.
//!
//! Effects are claimed before they are performed: a decision that requests an effect writes a
//! claim into `pending`, and a concurrent invocation that sees a fresh claim leaves the effect
//! alone. A claim older than the lease is taken over, so an invocation that died mid-way is
//! repaired by the next delivery. The effect's result comes back as [`Fact::Completed`], which
//! records it and clears the claim. Every effect is idempotent on the AWS side, so a repeat
//! after a takeover is harmless.

use super::digest::Digest;
use super::gate::Verdict;
use super::notice::{Notice, NoticeKind, PastAttempt, RejectReason, MAX_HISTORY, MAX_NOTICES};
use super::tag::ReleaseTag;
use super::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;

/// How long a claimed effect belongs to the invocation that claimed it. Longer than a
/// handler's timeout, so a live invocation never loses its claim.
pub const CLAIM_LEASE_MS: Millis = 5 * 60 * 1000;

/// The timeline is for people; bound it so a storm of duplicates cannot grow the item.
pub const MAX_TIMELINE: usize = 64;

/// Releases of which no attempt was published are kept for audit this long after their last
/// change; a published release is kept forever.
pub const UNPUBLISHED_RETENTION_SECONDS: i64 = 180 * 24 * 3600;

/// Scans of an arch image kept before its build reported which image it pushed.
pub const MAX_EARLY_SCANS: usize = 2;

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

    /// OCI platform fields: (architecture, variant).
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
}

impl BuildRecord {
    fn final_status(&self) -> Option<BuildStatus> {
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
}

impl ScanRecord {
    fn recency(&self) -> (Millis, Millis) {
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

/// The release events archgate emits; each is emitted once per release.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "Release Started")]
    Started,
    #[serde(rename = "Release Failed")]
    Failed,
    #[serde(rename = "Release Candidate Ready")]
    CandidateReady,
    #[serde(rename = "Release Blocked")]
    Blocked,
    #[serde(rename = "Release Published")]
    Published,
}

impl EventKind {
    pub fn detail_type(self) -> &'static str {
        match self {
            EventKind::Started => "Release Started",
            EventKind::Failed => "Release Failed",
            EventKind::CandidateReady => "Release Candidate Ready",
            EventKind::Blocked => "Release Blocked",
            EventKind::Published => "Release Published",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Failed => "failed",
            EventKind::CandidateReady => "candidate-ready",
            EventKind::Blocked => "blocked",
            EventKind::Published => "published",
        }
    }
}

/// Something archgate does to the outside world on a release's behalf. Each is idempotent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "effect", content = "target", rename_all = "snake_case")]
pub enum Effect {
    /// StartBuild of an arch project (or the manifest project) with an idempotency token.
    StartBuild(BuildRole),
    /// StopBuild of a build that can no longer contribute to the release.
    StopBuild(BuildRole),
    /// Native mode: read both per-arch manifests and PutImage the candidate index.
    AssembleCandidate,
    /// Codebuild mode: the manifest build pushed the candidate; read its digest.
    ResolveCandidate,
    /// PutImage of the candidate index under the release tag and the moving tags.
    Promote,
    /// PutEvents of a release event.
    Emit(EventKind),
    /// PutEvents of the notice with this sequence number (`Release Rejected`,
    /// `Release Vulnerable`).
    Announce(u32),
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Effect::StartBuild(role) => write!(f, "start {role} build"),
            Effect::StopBuild(role) => write!(f, "stop {role} build"),
            Effect::AssembleCandidate => f.write_str("assemble candidate index"),
            Effect::ResolveCandidate => f.write_str("resolve candidate index"),
            Effect::Promote => f.write_str("promote the index to its release tags"),
            Effect::Emit(kind) => write!(f, "emit {}", kind.detail_type()),
            Effect::Announce(seq) => write!(f, "announce notice {seq}"),
        }
    }
}

/// The AWS service an effect acts on: what a function's IAM role must allow for it to
/// perform that effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// StartBuild, StopBuild.
    CodeBuild,
    /// BatchGetImage, PutImage (and the ledger's digest pointers and moving-tag locks).
    Registry,
    /// PutEvents on the release event bus.
    Events,
}

impl Effect {
    pub fn service(self) -> Service {
        match self {
            Effect::StartBuild(_) | Effect::StopBuild(_) => Service::CodeBuild,
            Effect::AssembleCandidate | Effect::ResolveCandidate | Effect::Promote => {
                Service::Registry
            }
            Effect::Emit(_) | Effect::Announce(_) => Service::Events,
        }
    }
}

/// An effect claimed by an invocation at `claimed_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub effect: Effect,
    pub claimed_at: Millis,
    /// The invocation that holds the claim, so it recognises its own claim when the answer
    /// to its write was lost and a retry of the write conflicts with itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// What happened when an effect was performed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum EffectResult {
    BuildStarted { role: BuildRole, build_id: String },
    BuildStopped { role: BuildRole },
    CandidatePublished { candidate: Candidate },
    Promoted { tags: Vec<String> },
    Emitted { kind: EventKind },
    Announced { seq: u32 },
}

impl EffectResult {
    pub fn effect(&self) -> Effect {
        match self {
            EffectResult::BuildStarted { role, .. } => Effect::StartBuild(*role),
            EffectResult::BuildStopped { role } => Effect::StopBuild(*role),
            EffectResult::CandidatePublished { .. } => Effect::AssembleCandidate,
            EffectResult::Promoted { .. } => Effect::Promote,
            EffectResult::Emitted { kind } => Effect::Emit(*kind),
            EffectResult::Announced { seq } => Effect::Announce(*seq),
        }
    }

    fn satisfies(&self, effect: Effect) -> bool {
        match (self, effect) {
            (EffectResult::CandidatePublished { .. }, Effect::ResolveCandidate) => true,
            _ => self.effect() == effect,
        }
    }
}

/// The phase of a release, derived from what is recorded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Building,
    Assembling,
    /// The index exists; the gate waits for the per-arch scans (or promotion is under way).
    CandidateReady,
    /// A per-arch image's scan is over policy: the release tag is not assigned.
    Blocked,
    /// The index carries the release tag (and the moving tags).
    Published,
    Failed,
    /// The name can never be a release (a reserved name): the record only holds the refused
    /// uploads and their announcements.
    Rejected,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Building => "building",
            Phase::Assembling => "assembling",
            Phase::CandidateReady => "candidate_ready",
            Phase::Blocked => "blocked",
            Phase::Published => "published",
            Phase::Failed => "failed",
            Phase::Rejected => "rejected",
        }
    }

    /// Published, Failed and Rejected wait for nothing; Blocked can still be published by a
    /// re-evaluation. (A failed or blocked release can start a new attempt.)
    pub fn is_final(self) -> bool {
        matches!(self, Phase::Published | Phase::Failed | Phase::Rejected)
    }

    /// Waiting for builds, the index or scans: what the reconciler's deadline applies to.
    pub fn is_in_flight(self) -> bool {
        matches!(
            self,
            Phase::Building | Phase::Assembling | Phase::CandidateReady
        )
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub at: Millis,
    pub what: String,
}

/// One release as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub key: ReleaseKey,
    pub source: SourceObject,
    pub manifest_mode: ManifestMode,
    pub amd64: BuildRecord,
    pub arm64: BuildRecord,
    #[serde(default)]
    pub manifest: BuildRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate: Option<Candidate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scans: Vec<ScanRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<Publication>,
    /// Set when the release missed its deadline (builds or scans that never finished).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emitted: Vec<EventKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<Claim>,
    pub created_at: Millis,
    pub updated_at: Millis,
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// 1 for the first upload; a new version of the same object key starts the next attempt
    /// of a failed or blocked release.
    #[serde(default = "first_attempt")]
    pub attempt: u32,
    /// When the current attempt started (`created_at` for the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt_started_at: Option<Millis>,
    /// Earlier attempts, newest last, at most [`MAX_HISTORY`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<PastAttempt>,
    /// A new upload waiting for the ended attempt to finish its effects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queued: Option<SourceObject>,
    /// Set when the name is reserved: no attempt ever starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserved: Option<RejectReason>,
    /// Refused uploads and findings after publication, at most [`MAX_NOTICES`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Notice>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub next_notice: u32,
}

fn first_attempt() -> u32 {
    1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Release {
    pub fn new(key: ReleaseKey, source: SourceObject, mode: ManifestMode, now: Millis) -> Self {
        let mut release = Release {
            key,
            source,
            manifest_mode: mode,
            amd64: BuildRecord::default(),
            arm64: BuildRecord::default(),
            manifest: BuildRecord::default(),
            candidate: None,
            scans: Vec::new(),
            published: None,
            abandoned: None,
            emitted: Vec::new(),
            pending: Vec::new(),
            created_at: now,
            updated_at: now,
            timeline: Vec::new(),
            attempt: 1,
            attempt_started_at: None,
            history: Vec::new(),
            queued: None,
            reserved: None,
            notices: Vec::new(),
            next_notice: 0,
        };
        release.note(
            now,
            format!(
                "upload s3://{}/{} received",
                release.source.bucket, release.source.key
            ),
        );
        release
    }

    pub fn build(&self, role: BuildRole) -> &BuildRecord {
        match role {
            BuildRole::Amd64 => &self.amd64,
            BuildRole::Arm64 => &self.arm64,
            BuildRole::Manifest => &self.manifest,
        }
    }

    fn build_mut(&mut self, role: BuildRole) -> &mut BuildRecord {
        match role {
            BuildRole::Amd64 => &mut self.amd64,
            BuildRole::Arm64 => &mut self.arm64,
            BuildRole::Manifest => &mut self.manifest,
        }
    }

    /// The first failure, if any build failed: the role and its status.
    pub fn failure(&self) -> Option<(BuildRole, BuildStatus)> {
        [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest]
            .into_iter()
            .find_map(|role| {
                self.build(role)
                    .final_status()
                    .filter(|s| s.is_failure())
                    .map(|s| (role, s))
            })
    }

    pub fn failure_reason(&self) -> Option<String> {
        if let Some(reason) = &self.abandoned {
            return Some(reason.clone());
        }
        self.failure().map(|(role, status)| {
            let id = self
                .build(role)
                .build_id
                .as_deref()
                .unwrap_or("unknown build");
            format!("{role} build {id} ended {}", status.as_str())
        })
    }

    pub fn phase(&self) -> Phase {
        if self.reserved.is_some() {
            Phase::Rejected
        } else if self.failure().is_some() || (self.abandoned.is_some() && self.published.is_none())
        {
            Phase::Failed
        } else if self.published.is_some() {
            Phase::Published
        } else if self.candidate.is_some() {
            match self.gate() {
                GateState::Blocked => Phase::Blocked,
                _ => Phase::CandidateReady,
            }
        } else if self.both_arches_succeeded() {
            Phase::Assembling
        } else {
            Phase::Building
        }
    }

    /// The current verdict on an arch's image: the newest record for that digest.
    pub fn verdict_for(&self, arch: Arch, digest: &Digest) -> Option<&ScanRecord> {
        self.scans
            .iter()
            .filter(|s| s.arch == arch && &s.digest == digest)
            .max_by_key(|s| s.recency())
    }

    /// The gate over the candidate's children: blocked as soon as one child is, passed
    /// when every child has a passing verdict.
    pub fn gate(&self) -> GateState {
        let Some(candidate) = &self.candidate else {
            return GateState::Waiting;
        };
        let verdicts: Vec<Option<&ScanRecord>> = candidate
            .children
            .iter()
            .map(|child| self.verdict_for(child.arch, &child.digest))
            .collect();
        if verdicts.iter().flatten().any(|s| !s.verdict.passes()) {
            GateState::Blocked
        } else if verdicts.iter().all(Option::is_some) {
            GateState::Passed
        } else {
            GateState::Waiting
        }
    }

    /// The records of the blocking verdicts, for events and status.
    pub fn blocking_scans(&self) -> Vec<&ScanRecord> {
        let Some(candidate) = &self.candidate else {
            return Vec::new();
        };
        candidate
            .children
            .iter()
            .filter_map(|child| self.verdict_for(child.arch, &child.digest))
            .filter(|s| !s.verdict.passes())
            .collect()
    }

    /// Bounds the scans kept before the candidate exists: once a build reported its image,
    /// only that image's scans stay; before, the newest [`MAX_EARLY_SCANS`] per arch (pushes
    /// under the arch tag by others must not grow the record).
    fn keep_scans_of_pushed_images(&mut self) {
        if self.candidate.is_some() {
            return;
        }
        for arch in Arch::ALL {
            let pushed = self.build(BuildRole::arch(arch)).image_digest.clone();
            if let Some(pushed) = pushed {
                self.scans.retain(|s| s.arch != arch || s.digest == pushed);
                continue;
            }
            let mut early: Vec<(Millis, Millis)> = self
                .scans
                .iter()
                .filter(|s| s.arch == arch)
                .map(ScanRecord::recency)
                .collect();
            if early.len() > MAX_EARLY_SCANS {
                early.sort_unstable();
                let cut = early[early.len() - MAX_EARLY_SCANS];
                self.scans.retain(|s| s.arch != arch || s.recency() >= cut);
            }
        }
    }

    fn both_arches_succeeded(&self) -> bool {
        Arch::ALL
            .iter()
            .all(|a| self.build(BuildRole::arch(*a)).status == Some(BuildStatus::Succeeded))
    }

    /// Adds to the timeline, which keeps the newest [`MAX_TIMELINE`] entries.
    fn note(&mut self, at: Millis, what: String) {
        if self.timeline.len() >= MAX_TIMELINE {
            self.timeline.remove(0);
        }
        self.timeline.push(TimelineEntry { at, what });
    }

    /// When the ledger may forget this release (seconds since the epoch, DynamoDB's TTL):
    /// never once an attempt was published, else [`UNPUBLISHED_RETENTION_SECONDS`] after its
    /// last change.
    pub fn expires_at(&self) -> Option<i64> {
        self.published.is_none().then(|| {
            self.updated_at
                .div_euclid(1000)
                .saturating_add(UNPUBLISHED_RETENTION_SECONDS)
        })
    }

    /// When the current attempt started.
    pub fn started_at(&self) -> Millis {
        self.attempt_started_at.unwrap_or(self.created_at)
    }

    /// Orders releases by upload for the moving tags: S3's time of the upload (the attempt's
    /// start when the event carried none), then the tag, so the order is total.
    pub fn upload_order(&self) -> (Millis, &str) {
        (
            self.source.uploaded_at.unwrap_or_else(|| self.started_at()),
            self.key.tag.as_str(),
        )
    }

    /// Why the gate blocks the release, one clause per blocking child.
    pub fn blocked_reason(&self) -> String {
        self.blocking_scans()
            .iter()
            .filter_map(|s| match &s.verdict {
                Verdict::Block { rule, .. } => {
                    Some(format!("{} image {}: {rule}", s.arch, s.digest))
                }
                Verdict::Pass { .. } => None,
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Records a notice unless the same news is already recorded. Keeps the unannounced
    /// notices and the newest announced ones, at most [`MAX_NOTICES`] in all.
    fn add_notice(&mut self, kind: NoticeKind, now: Millis) -> bool {
        let notice = Notice {
            seq: self.next_notice,
            at: now,
            kind,
            announced: false,
        };
        let identity = notice.identity();
        if self.notices.iter().any(|n| n.identity() == identity) {
            return false;
        }
        self.note(
            now,
            match &notice.kind {
                NoticeKind::Rejected { source, reason } => format!(
                    "upload s3://{}/{} version {} refused: {reason}",
                    source.bucket,
                    source.key,
                    source.revision()
                ),
                NoticeKind::Vulnerable { scan } => format!(
                    "{} image {} is vulnerable after publication",
                    scan.arch, scan.digest
                ),
            },
        );
        self.next_notice = self.next_notice.saturating_add(1);
        self.notices.push(notice);
        while self.notices.len() > MAX_NOTICES {
            // The oldest announced notice goes first; only a storm of unannounced ones (the
            // event bus failing for long) drops one that was never announced.
            let at = self.notices.iter().position(|n| n.announced).unwrap_or(0);
            self.notices.remove(at);
        }
        true
    }

    /// Starts the queued upload as the next attempt once the ended attempt has nothing left
    /// to do: its events announced, its builds stopped, no claim outstanding.
    fn start_queued_attempt(&mut self, now: Millis) {
        let outcome = self.phase();
        if self.queued.is_none()
            || !matches!(outcome, Phase::Failed | Phase::Blocked)
            || !self.pending.is_empty()
            || !self.required_effects().is_empty()
        {
            return;
        }
        let Some(source) = self.queued.take() else {
            return;
        };
        let reason = match outcome {
            Phase::Failed => self.failure_reason(),
            _ => Some(self.blocked_reason()),
        };
        self.history.push(PastAttempt {
            attempt: self.attempt,
            revision: self.source.revision().to_owned(),
            sequencer: self.source.sequencer.clone(),
            outcome,
            reason,
            started_at: self.started_at(),
            ended_at: self.updated_at,
        });
        if self.history.len() > MAX_HISTORY {
            self.history.remove(0);
        }
        self.attempt = self.attempt.saturating_add(1);
        self.source = source;
        self.amd64 = BuildRecord::default();
        self.arm64 = BuildRecord::default();
        self.manifest = BuildRecord::default();
        self.candidate = None;
        self.scans.clear();
        self.published = None;
        self.abandoned = None;
        self.emitted.clear();
        self.attempt_started_at = Some(now);
        self.note(
            now,
            format!(
                "attempt {} started from upload s3://{}/{} version {}",
                self.attempt,
                self.source.bucket,
                self.source.key,
                self.source.revision()
            ),
        );
    }

    /// Whether an effect the release needs has no live claim at `now`: nobody is doing it, so
    /// the next delivery (or the reconciler's nudge) must.
    pub fn has_unclaimed_work(&self, now: Millis) -> bool {
        self.required_effects().into_iter().any(|effect| {
            self.pending
                .iter()
                .find(|c| c.effect == effect)
                .is_none_or(|c| now.saturating_sub(c.claimed_at) >= CLAIM_LEASE_MS)
        })
    }

    /// Gives back the claims on `effects` (they failed or were never tried), so the next
    /// delivery can take them at once instead of waiting out the lease. A promotion's claim
    /// stays, expired: its PutImage may have happened, so it runs to the end whatever
    /// verdict arrives meanwhile.
    pub fn release_claims(&mut self, effects: &[Effect]) {
        self.pending.retain_mut(|claim| {
            if !effects.contains(&claim.effect) {
                return true;
            }
            if claim.effect == Effect::Promote {
                claim.claimed_at = Millis::MIN / 2;
                claim.by = None;
                return true;
            }
            false
        });
    }

    /// Effects the recorded state still calls for and that no recorded result has satisfied.
    pub fn required_effects(&self) -> Vec<Effect> {
        let mut effects: Vec<Effect> = self
            .notices
            .iter()
            .filter(|n| !n.announced)
            .map(|n| Effect::Announce(n.seq))
            .collect();
        let phase = self.phase();
        if phase == Phase::Rejected {
            return effects;
        }
        for arch in Arch::ALL {
            let role = BuildRole::arch(arch);
            if phase != Phase::Failed && self.build(role).build_id.is_none() {
                effects.push(Effect::StartBuild(role));
            }
        }
        if Arch::ALL
            .iter()
            .all(|a| self.build(BuildRole::arch(*a)).build_id.is_some())
        {
            effects.push(Effect::Emit(EventKind::Started));
        }
        // A promotion once claimed runs to the end: its PutImage may already have happened, so
        // a blocking verdict that arrives meanwhile neither cancels it nor announces a block.
        let promoting = self.pending.iter().any(|c| c.effect == Effect::Promote);
        match phase {
            Phase::Building | Phase::Rejected => {}
            Phase::Blocked => {
                if promoting {
                    effects.push(Effect::Promote);
                }
            }
            Phase::CandidateReady => {
                if self.gate() == GateState::Passed {
                    effects.push(Effect::Promote);
                }
            }
            Phase::Published => effects.push(Effect::Emit(EventKind::Published)),
            Phase::Assembling => match self.manifest_mode {
                ManifestMode::Native => effects.push(Effect::AssembleCandidate),
                ManifestMode::Codebuild => match self.manifest.final_status() {
                    None if self.manifest.build_id.is_none() => {
                        effects.push(Effect::StartBuild(BuildRole::Manifest))
                    }
                    Some(BuildStatus::Succeeded) => effects.push(Effect::ResolveCandidate),
                    _ => {}
                },
            },
            Phase::Failed => {
                for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
                    let build = self.build(role);
                    if build.build_id.is_some()
                        && build.final_status().is_none()
                        && !build.stop_requested
                    {
                        effects.push(Effect::StopBuild(role));
                    }
                }
                effects.push(Effect::Emit(EventKind::Failed));
            }
        }
        if self.candidate.is_some() && phase != Phase::Failed {
            effects.push(Effect::Emit(EventKind::CandidateReady));
        }
        if phase == Phase::Blocked && !promoting {
            effects.push(Effect::Emit(EventKind::Blocked));
        }
        effects.retain(|e| match e {
            Effect::Emit(kind) => !self.emitted.contains(kind),
            _ => true,
        });
        effects
    }
}

/// An incoming fact about a release.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fact", rename_all = "snake_case")]
pub enum Fact {
    /// A source object was uploaded (S3 Object Created).
    SourceUploaded {
        source: SourceObject,
        manifest_mode: ManifestMode,
    },
    /// An upload whose name can never be a release (a reserved name): it starts nothing and
    /// is announced as `Release Rejected`.
    SourceRefused {
        source: SourceObject,
        reason: RejectReason,
    },
    /// A build reached a status (CodeBuild Build State Change).
    BuildChanged {
        role: BuildRole,
        build_id: String,
        status: BuildStatus,
        /// The image the build pushed (`IMAGE_DIGEST`), when it reported one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_digest: Option<Digest>,
    },
    /// The gate judged a scan of one per-arch image (ECR / Inspector scan, or a re-evaluation).
    ScanEvaluated(ScanRecord),
    /// The release missed its deadline: it ends Failed with this reason (unless already final).
    Abandoned { reason: String },
    /// Nothing new: only takes over effects whose claims outlived their lease.
    Nudge,
    /// An effect this invocation performed produced this result.
    Completed(EffectResult),
}

/// Why a fact changes nothing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ignored(pub String);

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to record and nothing to do.
    Ignore(Ignored),
    /// Record `next`; perform `effects` (already claimed in `next.pending`).
    Apply {
        next: Box<Release>,
        effects: Vec<Effect>,
    },
}

/// The release state machine. Pure: same inputs, same decision.
pub fn decide(current: Option<&Release>, key: &ReleaseKey, fact: &Fact, now: Millis) -> Decision {
    let mut release = match (current, fact) {
        (
            None,
            Fact::SourceUploaded {
                source,
                manifest_mode,
            },
        ) => Release::new(key.clone(), source.clone(), *manifest_mode, now),
        (None, Fact::SourceRefused { source, reason }) => {
            let mut release = Release::new(key.clone(), source.clone(), ManifestMode::Native, now);
            release.reserved = Some(reason.clone());
            release
        }
        (None, _) => {
            return Decision::Ignore(Ignored(format!(
                "no release {key} in the ledger: not started by archgate"
            )))
        }
        (Some(existing), _) => existing.clone(),
    };
    let before = release.clone();

    let recorded: Result<(), Ignored> = match fact {
        Fact::SourceUploaded { source, .. } => match current {
            None => Ok(()),
            Some(_) => record_upload(&mut release, source, now),
        },
        Fact::SourceRefused { source, reason } => {
            release.add_notice(
                NoticeKind::Rejected {
                    source: source.clone(),
                    reason: reason.clone(),
                },
                now,
            );
            Ok(())
        }
        Fact::BuildChanged {
            role,
            build_id,
            status,
            image_digest,
        } => record_build_status(
            &mut release,
            *role,
            build_id,
            *status,
            image_digest.as_ref(),
            now,
        ),
        Fact::ScanEvaluated(scan) => record_scan(&mut release, scan, now),
        Fact::Abandoned { reason } => {
            if !release.phase().is_in_flight() {
                // Blocked is a resting state: only releases waiting for builds or scans miss
                // a deadline.
                Err(Ignored(format!(
                    "release {key} is {}, not waiting for builds or scans",
                    release.phase()
                )))
            } else if release.required_effects().contains(&Effect::Promote) {
                // The gate passed: the promotion runs to the end (its PutImage may already
                // have happened), whatever the clock says.
                Err(Ignored(format!(
                    "release {key} passed the gate; its promotion is under way"
                )))
            } else {
                if release.abandoned.is_none() {
                    release.note(now, format!("abandoned: {reason}"));
                    release.abandoned = Some(reason.clone());
                }
                Ok(())
            }
        }
        Fact::Nudge => Ok(()),
        Fact::Completed(result) => {
            record_result(&mut release, result, now);
            Ok(())
        }
    };
    if let Err(reason) = recorded {
        // The fact itself changes nothing, but the delivery still takes up effects nobody
        // holds (claims given back after a failure, or expired): work is never lost.
        let mut recovering = before;
        let effects = claim_effects(&mut recovering, now);
        if effects.is_empty() || current.is_none() {
            return Decision::Ignore(reason);
        }
        recovering.updated_at = now;
        return Decision::Apply {
            next: Box::new(recovering),
            effects,
        };
    }

    release.start_queued_attempt(now);
    let effects = claim_effects(&mut release, now);
    if effects.is_empty() && release == before {
        let reason = match fact {
            Fact::SourceUploaded { .. } => {
                format!("duplicate delivery: release {key} was already started from this upload")
            }
            Fact::SourceRefused { .. } => {
                format!("duplicate delivery: this upload to {key} was already refused")
            }
            Fact::BuildChanged { role, status, .. } => {
                format!(
                    "duplicate delivery: {role} build of {key} already recorded as {}",
                    status.as_str()
                )
            }
            Fact::ScanEvaluated(scan) => format!(
                "duplicate delivery: the {} scan of {} is already recorded",
                scan.arch, scan.digest
            ),
            Fact::Abandoned { .. } => format!("release {key} is already abandoned"),
            Fact::Nudge => format!("release {key} has nothing to take over"),
            Fact::Completed(result) => format!("{} already recorded", result.effect()),
        };
        return Decision::Ignore(Ignored(reason));
    }
    release.updated_at = now;
    Decision::Apply {
        next: Box::new(release),
        effects,
    }
}

/// A new upload to an existing release: the next attempt of a failed or blocked release, or
/// a refusal (announced), or a late delivery of something already handled (ignored).
fn record_upload(release: &mut Release, source: &SourceObject, now: Millis) -> Result<(), Ignored> {
    let key = release.key.clone();
    if release.source.same_upload(source)
        || release
            .queued
            .as_ref()
            .is_some_and(|q| q.same_upload(source))
    {
        // The same upload again: nothing changes, the caller reports the duplicate.
        return Ok(());
    }
    let refuse = |release: &mut Release, reason: RejectReason| {
        release.add_notice(
            NoticeKind::Rejected {
                source: source.clone(),
                reason,
            },
            now,
        );
        Ok(())
    };
    if let Some(reason) = release.reserved.clone() {
        return refuse(release, reason);
    }
    if source.key != release.source.key {
        let holder = release.source.key.clone();
        return refuse(release, RejectReason::TakenBy { key: holder });
    }
    if let Some(past) = release
        .history
        .iter()
        .find(|a| a.revision == source.revision())
    {
        return Err(Ignored(format!(
            "upload version {} of {key} started attempt {}, which has ended",
            source.revision(),
            past.attempt
        )));
    }
    if source.is_later_than(&release.source) == Some(false) {
        return Err(Ignored(format!(
            "upload version {} of {key} is older than version {} of attempt {}: a late delivery",
            source.revision(),
            release.source.revision(),
            release.attempt
        )));
    }
    match release.phase() {
        Phase::Failed | Phase::Blocked => {
            if let Some(queued) = &release.queued {
                if source.is_later_than(queued) != Some(true) {
                    return Err(Ignored(format!(
                        "a later upload of {key} (version {}) already waits to start the next attempt",
                        queued.revision()
                    )));
                }
            }
            release.note(
                now,
                format!(
                    "upload version {} queued as attempt {}",
                    source.revision(),
                    release.attempt + 1
                ),
            );
            release.queued = Some(source.clone());
            Ok(())
        }
        Phase::Published => {
            let attempt = release.attempt;
            refuse(release, RejectReason::Published { attempt })
        }
        phase @ (Phase::Building | Phase::Assembling | Phase::CandidateReady) => {
            let attempt = release.attempt;
            refuse(release, RejectReason::InFlight { attempt, phase })
        }
        Phase::Rejected => Ok(()),
    }
}

fn record_build_status(
    release: &mut Release,
    role: BuildRole,
    build_id: &str,
    status: BuildStatus,
    image_digest: Option<&Digest>,
    now: Millis,
) -> Result<(), Ignored> {
    let key = release.key.clone();
    if release.phase() == Phase::Rejected {
        return Err(Ignored(format!(
            "{key} is a reserved name; build {build_id} is not archgate's"
        )));
    }
    if role == BuildRole::Manifest && release.manifest_mode == ManifestMode::Native {
        return Err(Ignored(format!(
            "release {key} assembles its index natively; manifest build {build_id} is not its own"
        )));
    }
    let build = release.build_mut(role);
    match &build.build_id {
        Some(recorded) if recorded != build_id => {
            return Err(Ignored(format!(
                "build {build_id} is not the {role} build archgate recorded for {key} ({recorded})"
            )))
        }
        // The completion can overtake the invocation that started the build.
        None => build.build_id = Some(build_id.to_owned()),
        Some(_) => {}
    }
    if !status.is_final() {
        return Err(Ignored(format!(
            "{role} build {build_id} is {}: not a final status",
            status.as_str()
        )));
    }
    if status == BuildStatus::Succeeded && build.image_digest.is_none() {
        build.image_digest = image_digest.cloned();
    }
    if let Some(recorded) = build.final_status() {
        if recorded != status {
            return Err(Ignored(format!(
                "{role} build {build_id} already ended {}; ignoring a later {}",
                recorded.as_str(),
                status.as_str()
            )));
        }
        release.keep_scans_of_pushed_images();
        return Ok(());
    }
    build.status = Some(status);
    build.finished_at = Some(now);
    release.keep_scans_of_pushed_images();
    release.note(
        now,
        format!("{role} build {} ", status.as_str())
            .trim_end()
            .to_owned(),
    );
    Ok(())
}

fn record_scan(release: &mut Release, scan: &ScanRecord, now: Millis) -> Result<(), Ignored> {
    let key = release.key.clone();
    match release.phase() {
        Phase::Failed => {
            return Err(Ignored(format!(
                "release {key} failed; its scans no longer matter"
            )))
        }
        Phase::Rejected => {
            return Err(Ignored(format!(
                "{key} is a reserved name: it has no images to scan"
            )))
        }
        Phase::Published => return record_scan_after_publication(release, scan, now),
        _ => {}
    }
    if let Some(candidate) = &release.candidate {
        if scan.digest == candidate.digest {
            return Err(Ignored(format!(
                "{} is the image index of {key}; ECR scans only the per-arch images",
                scan.digest
            )));
        }
        let child = candidate.children.iter().find(|c| c.arch == scan.arch);
        if child.is_some_and(|c| c.digest != scan.digest) {
            return Err(Ignored(format!(
                "{} is not the {} image of {key}'s candidate",
                scan.digest, scan.arch
            )));
        }
    } else if let Some(pushed) = &release.build(BuildRole::arch(scan.arch)).image_digest {
        if *pushed != scan.digest {
            return Err(Ignored(format!(
                "{} is not the image the {} build of {key} pushed ({pushed})",
                scan.digest, scan.arch
            )));
        }
    }
    if let Some(existing) = release.verdict_for(scan.arch, &scan.digest) {
        // The same scan delivered again judges the same: nothing to record.
        if existing.scanned_at == scan.scanned_at && existing.verdict == scan.verdict {
            return Ok(());
        }
        if existing.recency() > scan.recency() {
            return Err(Ignored(format!(
                "an older scan of {} ({}); a newer one is already recorded",
                scan.digest, scan.arch
            )));
        }
    }
    release
        .scans
        .retain(|s| !(s.arch == scan.arch && s.digest == scan.digest));
    release.scans.push(scan.clone());
    release
        .scans
        .sort_by(|a, b| a.arch.cmp(&b.arch).then(a.digest.cmp(&b.digest)));
    release.keep_scans_of_pushed_images();
    let verdict = if scan.verdict.passes() {
        "passes"
    } else {
        "is blocked"
    };
    release.note(
        now,
        format!("{} scan of {} {verdict}", scan.arch, scan.digest),
    );
    Ok(())
}

/// A scan of a published release's image: a blocking one is news, recorded and announced
/// (`Release Vulnerable`); the release stays published.
fn record_scan_after_publication(
    release: &mut Release,
    scan: &ScanRecord,
    now: Millis,
) -> Result<(), Ignored> {
    let key = release.key.clone();
    let is_child = release.candidate.as_ref().is_some_and(|c| {
        c.children
            .iter()
            .any(|child| child.arch == scan.arch && child.digest == scan.digest)
    });
    if !is_child {
        return Err(Ignored(format!(
            "{} is not the {} image of published release {key}",
            scan.digest, scan.arch
        )));
    }
    if scan.verdict.passes() {
        return Err(Ignored(format!(
            "release {key} is published; a passing scan of its {} image is not news",
            scan.arch
        )));
    }
    let newest_known = release
        .notices
        .iter()
        .filter_map(|n| match &n.kind {
            NoticeKind::Vulnerable { scan: known }
                if known.arch == scan.arch && known.digest == scan.digest =>
            {
                Some(known.scanned_at)
            }
            _ => None,
        })
        .chain(
            release
                .verdict_for(scan.arch, &scan.digest)
                .map(|r| r.scanned_at),
        )
        .max();
    if newest_known.is_some_and(|at| at > scan.scanned_at) {
        return Err(Ignored(format!(
            "an older scan of {} ({}); a newer one is already recorded",
            scan.digest, scan.arch
        )));
    }
    release.add_notice(NoticeKind::Vulnerable { scan: scan.clone() }, now);
    Ok(())
}

fn record_result(release: &mut Release, result: &EffectResult, now: Millis) {
    match result {
        EffectResult::BuildStarted { role, build_id } => {
            let build = release.build_mut(*role);
            if build.build_id.is_none() {
                build.build_id = Some(build_id.clone());
                release.note(now, format!("{role} build started: {build_id}"));
            }
        }
        EffectResult::BuildStopped { role } => {
            let build = release.build_mut(*role);
            if !build.stop_requested {
                build.stop_requested = true;
                release.note(now, format!("{role} build stop requested"));
            }
        }
        EffectResult::CandidatePublished { candidate } => {
            if release.candidate.is_none() {
                release.note(
                    now,
                    format!("candidate {} is {}", candidate.tag, candidate.digest),
                );
                release.candidate = Some(candidate.clone());
            }
        }
        EffectResult::Promoted { tags } => {
            if release.published.is_none() {
                release.note(now, format!("published as {}", tags.join(", ")));
                release.published = Some(Publication {
                    tags: tags.clone(),
                    at: now,
                });
            }
        }
        EffectResult::Emitted { kind } => {
            if !release.emitted.contains(kind) {
                release.emitted.push(*kind);
                release.emitted.sort();
                release.note(now, format!("{} emitted", kind.detail_type()));
            }
        }
        EffectResult::Announced { seq } => {
            if let Some(notice) = release.notices.iter_mut().find(|n| n.seq == *seq) {
                notice.announced = true;
            }
        }
    }
    release
        .pending
        .retain(|claim| !result.satisfies(claim.effect));
}

/// Brings `pending` in line with what the state requires and returns the effects this
/// decision newly claims (unclaimed, or claimed longer ago than the lease).
fn claim_effects(release: &mut Release, now: Millis) -> Vec<Effect> {
    let required = release.required_effects();
    release
        .pending
        .retain(|claim| required.contains(&claim.effect));
    let mut claimed = Vec::new();
    for effect in required {
        match release.pending.iter_mut().find(|c| c.effect == effect) {
            Some(claim) if now.saturating_sub(claim.claimed_at) < CLAIM_LEASE_MS => {}
            Some(claim) => {
                claim.claimed_at = now;
                claim.by = None;
                claimed.push(effect);
            }
            None => {
                release.pending.push(Claim {
                    effect,
                    claimed_at: now,
                    by: None,
                });
                claimed.push(effect);
            }
        }
    }
    claimed
}
