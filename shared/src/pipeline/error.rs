//! What can go wrong performing an effect, and applying a fact.

use crate::config::policy::PolicyError;
use crate::domain::oci;
use crate::domain::{BuildRole, Digest, Effect};
use crate::error::AdapterError;
use crate::write::{ReadFailed, WRITE_ATTEMPTS};

#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    #[error(transparent)]
    Oci(#[from] oci::OciError),
    #[error("cannot attest the release: {0}")]
    Statement(#[from] crate::domain::attestation::StatementError),
    #[error("image {repository}:{tag} is not in the registry")]
    ImageMissing { repository: String, tag: String },
    #[error("no CodeBuild project is configured for the {0} build")]
    NoProject(BuildRole),
    #[error("{role} build has no recorded build id to stop")]
    NoBuildId { role: BuildRole },
    #[error("release has no candidate index to promote")]
    NoCandidate,
    #[error("the candidate index read back hashes to {found}, not the recorded {recorded}")]
    CandidateChanged { recorded: Digest, found: Digest },
    #[error(
        "repository {repository} has immutable tags, so the moving tag `{tag}` cannot move to the new release; \
         remove `{tag}` from ARCHGATE_MOVING_TAGS or make the repository's tags mutable"
    )]
    ImmutableMovingTag {
        repository: String,
        tag: String,
        #[source]
        source: Box<AdapterError>,
    },
    #[error("tag `{tag}` already names another image in repository {repository}, whose tags are immutable")]
    ReleaseTagTaken {
        repository: String,
        tag: String,
        #[source]
        source: Box<AdapterError>,
    },
    #[error(
        "the moving tag `{tag}` of repository {repository} is being moved by another invocation"
    )]
    MovingTagBusy { repository: String, tag: String },
    #[error("the lock on the moving tag `{tag}` of repository {repository} ran out before the move was recorded")]
    MovingTagLockLost { repository: String, tag: String },
    #[error("notice {0} is no longer recorded")]
    NoNotice(u32),
    /// The repository's policy cannot be applied: nothing is judged, promoted or refused by
    /// defaults it was not given (an operator fixes it with `archgate repo set`).
    #[error(transparent)]
    Policy(Box<PolicyError>),
}

impl From<PolicyError> for EffectError {
    fn from(error: PolicyError) -> Self {
        EffectError::Policy(Box::new(error))
    }
}

impl EffectError {
    pub fn error_type(&self) -> &'static str {
        match self {
            EffectError::Adapter(e) => e.error_type(),
            EffectError::Oci(_) => "Archgate.InvalidImage",
            EffectError::Statement(_) => "Archgate.NotAttestable",
            EffectError::ImageMissing { .. } => "Archgate.ImageMissing",
            EffectError::ImmutableMovingTag { .. } => "Archgate.ImmutableMovingTag",
            EffectError::ReleaseTagTaken { .. } => "Archgate.ReleaseTagTaken",
            EffectError::CandidateChanged { .. } => "Archgate.CandidateChanged",
            EffectError::MovingTagBusy { .. } | EffectError::MovingTagLockLost { .. } => {
                "Archgate.Contention"
            }
            EffectError::NoNotice(_) => "Archgate.Misconfigured",
            EffectError::Policy(_) => "Archgate.PolicyUnreadable",
            EffectError::NoProject(_)
            | EffectError::NoBuildId { .. }
            | EffectError::NoCandidate => "Archgate.Misconfigured",
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            EffectError::Adapter(e) => e.is_retryable(),
            // The build said it pushed; the registry may lag or the push may be replayed.
            EffectError::ImageMissing { .. } => true,
            EffectError::MovingTagBusy { .. } | EffectError::MovingTagLockLost { .. } => true,
            _ => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("ledger access for {release} failed")]
    Ledger {
        release: String,
        #[source]
        source: AdapterError,
    },
    #[error("could not {effect} for {release}")]
    Effect {
        release: String,
        effect: Effect,
        #[source]
        source: EffectError,
    },
    /// Reading what CodeBuild or the registry says about a release failed.
    #[error("could not read the state of {release} from AWS")]
    Read {
        release: String,
        #[source]
        source: AdapterError,
    },
    /// Finding the releases that hold a scanned image, or reading its findings, failed.
    #[error("could not read the scan findings of {digest}")]
    Findings {
        digest: String,
        #[source]
        source: AdapterError,
    },
    /// Reading the policy of the repository an upload names failed.
    #[error("could not read the policy of repository {repository}")]
    Policy {
        repository: String,
        #[source]
        source: EffectError,
    },
    /// Judging scans under their repository's policy failed: the policy or the findings
    /// could not be read.
    #[error("could not judge scans of repository {repository}")]
    Judge {
        repository: String,
        #[source]
        source: EffectError,
    },
    #[error("release {release} changed under {WRITE_ATTEMPTS} consecutive attempts")]
    Contention { release: String },
    /// Announcing an upload that starts no release (`Release Rejected` of a refused key).
    #[error("could not announce {detail_type} of {key}")]
    Announce {
        detail_type: &'static str,
        key: String,
        #[source]
        source: AdapterError,
    },
}

impl From<ReadFailed> for PipelineError {
    fn from(failed: ReadFailed) -> Self {
        PipelineError::Ledger {
            release: failed.key.to_string(),
            source: failed.source,
        }
    }
}

impl PipelineError {
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Ledger { source, .. }
            | PipelineError::Read { source, .. }
            | PipelineError::Findings { source, .. }
            | PipelineError::Announce { source, .. } => source.is_retryable(),
            PipelineError::Effect { source, .. }
            | PipelineError::Policy { source, .. }
            | PipelineError::Judge { source, .. } => source.is_retryable(),
            PipelineError::Contention { .. } => true,
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            PipelineError::Ledger { source, .. }
            | PipelineError::Read { source, .. }
            | PipelineError::Findings { source, .. }
            | PipelineError::Announce { source, .. } => source.error_type(),
            PipelineError::Effect { source, .. }
            | PipelineError::Policy { source, .. }
            | PipelineError::Judge { source, .. } => source.error_type(),
            PipelineError::Contention { .. } => "Archgate.Contention",
        }
    }
}
