//! build-completed: a per-arch (or manifest) build reached a final status.
pub mod handler;

/// build-completed's role allows every effect: builds, the index, promotion, events.
pub const PERFORMS: &[archgate::domain::release::Service] = archgate::pipeline::EVERY_SERVICE;
