//! Pure domain logic: no I/O, no SDK types. Everything here is deterministic given its inputs.

pub mod digest;
pub mod gate;
pub mod ignore;
pub mod notice;
pub mod oci;
pub mod release;
pub mod release_event;
pub mod retention;
pub mod tag;

pub use digest::Digest;
pub use ignore::IgnoreReason;
pub use release::{
    decide, Arch, BuildRole, BuildStatus, Decision, Effect, EffectResult, Fact, ManifestMode,
    Phase, Release, ReleaseKey, SourceObject,
};
pub use tag::ReleaseTag;

/// Milliseconds since the Unix epoch. The domain keeps time as a plain number so the state
/// machine stays a pure function of its inputs.
pub type Millis = i64;
