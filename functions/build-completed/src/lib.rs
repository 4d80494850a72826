//! build-completed: a per-arch (or manifest) build reached a final status.
pub mod handler;
