//! The library's specifications, properties and adapter tests (`archgate`, the `shared`
//! crate): one test binary, one module per concern. They are a package of their own so that
//! they compile unoptimised, and beside the functions' tests, while the library itself is
//! compiled at `opt-level = 2` for the simulation. The library keeps no unit tests of its own:
//! they would compile it a second time, in test mode, at that level.

mod adapters;
mod attestation;
mod aws_clients;
mod configuration;
mod digests;
mod ignore_reasons;
mod logging;
mod oci_index;
mod release_retention;
mod release_tags;
mod repositories;
mod retention;
mod retention_runs;
mod samples;
mod scan_gate;
mod state_machine;
mod workloads;
