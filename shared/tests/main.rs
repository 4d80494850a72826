//! The library's specifications, properties and adapters: one test binary, one module per
//! concern.

mod adapters;
mod attestation;
mod release_retention;
mod retention;
mod samples;
mod state_machine;
mod workloads;
