//! The library's specifications, properties and adapter tests (`archgate`, the `shared`
//! crate). They live in this crate, compiled without optimisation, rather than in the
//! library's own package, whose code is compiled at `opt-level = 2` for the simulation.

mod adapters;
mod attestation;
mod release_retention;
mod retention;
mod samples;
mod state_machine;
mod workloads;
