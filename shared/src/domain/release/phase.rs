//! The phase of a release, derived from what is recorded.

use serde::{Deserialize, Serialize};
use std::fmt;

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
    /// Retention expired it: its images are gone (or going). The record stays as a tombstone.
    Expired,
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
            Phase::Expired => "expired",
        }
    }

    /// Published, Failed, Rejected and Expired wait for nothing; Blocked can still be published by a
    /// re-evaluation. (A failed or blocked release can start a new attempt.)
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Phase::Published | Phase::Failed | Phase::Rejected | Phase::Expired
        )
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
