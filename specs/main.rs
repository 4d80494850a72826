//! The library's specifications, properties and adapter tests (`archgate`, the `shared`
//! crate): one test binary, one module per concern. They are a package of their own so that
//! they compile unoptimised, and beside the functions' tests, while the library itself is
//! compiled at `opt-level = 2` for the simulation.

mod adapters;
mod attestation;
mod release_retention;
mod retention;
mod samples;
mod state_machine;
mod workloads;
