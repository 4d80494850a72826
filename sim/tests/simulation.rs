//! `./dev test` runs the simulation: a bounded number of seeded schedules of the whole system,
//! every lifecycle rule of DESIGN.md checked after every step. A failure prints the shrunk
//! trace and the command that replays it.

use archgate_sim::{run_and_shrink, Options};

/// Schedules per `./dev test`; `./dev simulate --seeds N` runs as many as asked.
const SCHEDULES: u64 = 2_000;

#[test]
fn every_rule_holds_on_every_schedule() {
    let first: u64 = std::env::var("ARCHGATE_SIM_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in first..first + SCHEDULES {
        if let Err(failure) = run_and_shrink(Options::new(seed)) {
            panic!("seed {seed}:\n{failure}");
        }
    }
}
