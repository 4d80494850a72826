//! archgate's functions against the local AWS emulator: one test binary, one module per
//! concern (one link of the AWS SDK instead of one per file).

mod attempts_and_rest;
mod attestation;
mod build_completed;
mod codebuild_mode;
mod concurrency;
mod crash_safety;
mod hostile;
mod iam;
mod lifecycle;
mod package;
mod policies;
mod reconciler;
mod release_retention;
mod repositories;
mod retention;
mod retention_function;
mod scan_gate;
mod start_builds;
mod template;
mod upgrade;
