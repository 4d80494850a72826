//! start-builds: an upload of a build context to the source bucket starts a release.
pub mod handler;

use archgate::domain::release::Service;

/// What start-builds' role allows: starting and stopping builds, publishing release events.
/// Index and promotion work a delivery finds owed is left to the functions that may do it.
pub const PERFORMS: &[Service] = &[Service::CodeBuild, Service::Events];
