//! The effects a release asks for, their claims and their results.

use super::{BuildRole, Candidate};
use crate::domain::attestation::Attestation;
use crate::domain::Millis;
use serde::{Deserialize, Serialize};
use std::fmt;

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
    #[serde(rename = "Release Expired")]
    Expired,
    #[serde(rename = "Release Stalled")]
    Stalled,
}

impl EventKind {
    pub fn detail_type(self) -> &'static str {
        match self {
            EventKind::Started => "Release Started",
            EventKind::Failed => "Release Failed",
            EventKind::CandidateReady => "Release Candidate Ready",
            EventKind::Blocked => "Release Blocked",
            EventKind::Published => "Release Published",
            EventKind::Expired => "Release Expired",
            EventKind::Stalled => "Release Stalled",
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            EventKind::Started => "started",
            EventKind::Failed => "failed",
            EventKind::CandidateReady => "candidate-ready",
            EventKind::Blocked => "blocked",
            EventKind::Published => "published",
            EventKind::Expired => "expired",
            EventKind::Stalled => "stalled",
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
    /// The provenance and verdict Statements, signed (KMS Sign) and recorded before promotion.
    Attest,
    /// The recorded attestations as referrers of the index (layer upload, PutImage by
    /// digest), then PutImage of the index under the release tag and the moving tags.
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
            Effect::Attest => f.write_str("sign the provenance and the verdict"),
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
    /// KMS Sign with the release signing key (unsigned envelopes without a key).
    Signing,
}

impl Effect {
    pub fn service(self) -> Service {
        match self {
            Effect::StartBuild(_) | Effect::StopBuild(_) => Service::CodeBuild,
            Effect::AssembleCandidate | Effect::ResolveCandidate | Effect::Promote => {
                Service::Registry
            }
            Effect::Emit(_) | Effect::Announce(_) => Service::Events,
            Effect::Attest => Service::Signing,
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
    Attested { attestations: Vec<Attestation> },
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
            EffectResult::Attested { .. } => Effect::Attest,
            EffectResult::Promoted { .. } => Effect::Promote,
            EffectResult::Emitted { kind } => Effect::Emit(*kind),
            EffectResult::Announced { seq } => Effect::Announce(*seq),
        }
    }

    pub(super) fn satisfies(&self, effect: Effect) -> bool {
        match (self, effect) {
            (EffectResult::CandidatePublished { .. }, Effect::ResolveCandidate) => true,
            _ => self.effect() == effect,
        }
    }
}
