//! scan-gate: a per-arch image's scan finished; judge it and promote or block the release.
pub mod handler;

use archgate::domain::release::Service;

/// What scan-gate's role allows: the registry (index, promotion), release events and the
/// attestations' signing key.
/// Builds a delivery finds owed are left to the functions that may start or stop them.
pub const PERFORMS: &[Service] = &[Service::Registry, Service::Events, Service::Signing];
