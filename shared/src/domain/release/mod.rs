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

use super::Millis;

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

mod aggregate;
mod decision;
mod effects;
mod expiry;
mod names;
mod parts;
mod phase;
mod record;
mod trouble;
mod work;

pub use aggregate::Release;
pub use decision::{decide, Decision, Fact};
pub use effects::{Claim, Effect, EffectResult, EventKind, Service};
pub use expiry::{Expiry, ExpiryRule};
pub use names::{
    Arch, BuildOrigin, BuildRole, BuildStatus, ManifestMode, ReleaseKey, SourceObject,
};
pub use parts::{
    BuildRecord, Candidate, CandidateChild, GateState, Publication, ScanRecord, Scanner,
    TimelineEntry,
};
pub use phase::Phase;
pub use trouble::{describe as describe_trouble, Overdue, Stall, Trouble};
