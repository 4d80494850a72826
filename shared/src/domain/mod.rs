//! Pure domain logic: no I/O, no SDK types. Everything here is deterministic given its inputs.

pub mod attestation;
pub mod digest;
pub mod gate;
pub mod ignore;
pub mod notice;
pub mod oci;
pub mod policy;
pub mod release;
pub mod release_event;
pub mod repository;
pub mod retention;
pub mod scan;
pub mod tag;

pub use digest::Digest;
pub use ignore::IgnoreReason;
pub use release::{
    decide, Arch, BuildOrigin, BuildRole, BuildStatus, Decision, Effect, EffectResult, Fact,
    ManifestMode, Phase, Release, ReleaseKey, SourceObject,
};
pub use tag::ReleaseTag;

/// Milliseconds since the Unix epoch. The domain keeps time as a plain number so the state
/// machine stays a pure function of its inputs.
pub type Millis = i64;

/// `at` as an RFC 3339 UTC timestamp, for people (`2026-12-01T21:13:12Z`); the raw number when
/// it is out of range.
pub fn rfc3339(at: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.replace_millisecond(0)
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{at} ms since the epoch"))
}
