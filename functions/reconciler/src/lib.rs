//! reconciler: on a schedule, re-reads releases that stopped moving so a lost event costs
//! minutes, not a stuck release.
pub mod handler;
