//! `./dev test` runs the simulation: a bounded number of seeded schedules of the whole system,
//! every lifecycle rule of DESIGN.md checked after every step. A failure prints the shrunk
//! trace and the command that replays it.

use archgate_sim::{run_and_shrink, Options};

/// Schedules per `./dev test`; `./dev simulate --seeds N` runs as many as asked.
const SCHEDULES: u64 = 2_000;

/// Runs every `SHARDS`-th schedule from `shard` on; the shards are separate tests so the
/// test harness runs them on separate threads (each schedule is single-threaded).
fn run_shard(shard: u64) {
    const SHARDS: u64 = 2;
    let first: u64 = std::env::var("ARCHGATE_SIM_FIRST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for seed in (first + shard..first + SCHEDULES).step_by(SHARDS as usize) {
        if let Err(failure) = run_and_shrink(Options::new(seed)) {
            panic!("seed {seed}:\n{failure}");
        }
    }
}

#[test]
fn every_rule_holds_on_every_schedule_even_seeds() {
    run_shard(0);
}

#[test]
fn every_rule_holds_on_every_schedule_odd_seeds() {
    run_shard(1);
}
