//! scan-gate: a per-arch image's scan finished; judge it and promote or block the release.
pub mod handler;
