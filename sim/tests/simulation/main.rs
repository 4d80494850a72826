//! `./dev test` runs the simulation: a bounded number of seeded schedules of the whole system,
//! every lifecycle rule of DESIGN.md checked after every step. A failure prints the shrunk
//! trace and the command that replays it. The checker's own tests (a rule that bites when the
//! world breaks it on purpose) are modules of this binary.

mod isolation;

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

/// What a schedule did, step by step (or how it failed).
fn trace_of(seed: u64) -> Vec<String> {
    match archgate_sim::run(Options::new(seed)) {
        Ok(summary) => summary.trace,
        Err(failure) => vec![failure.to_string()],
    }
}

#[test]
fn a_seed_is_one_schedule_run_after_run() {
    // Given the first 200 seeds, each run twice in one process
    for seed in 0..200 {
        // When the two runs' traces are compared
        let (first, second) = (trace_of(seed), trace_of(seed));
        // Then they are the same line for line: a failing seed replays as it failed
        if let Some((at, (a, b))) = first
            .iter()
            .zip(&second)
            .enumerate()
            .find(|(_, (a, b))| a != b)
        {
            panic!("seed {seed} took another course at line {at}:\n  {a}\n  {b}");
        }
        assert_eq!(
            first.len(),
            second.len(),
            "seed {seed}: traces of other lengths"
        );
    }
}
