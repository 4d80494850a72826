//! `archgate-sim` (`./dev simulate`): runs seeded schedules of the whole system and checks
//! every lifecycle rule after every step.

use archgate_sim::{run_and_shrink, Options};
use clap::Parser;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "archgate-sim", version)]
struct Args {
    /// How many schedules to run (seeds `--first` onwards).
    #[arg(long, default_value_t = 1000)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Run only this seed and print its trace.
    #[arg(long)]
    seed: Option<u64>,
    /// At most this many uploads per schedule.
    #[arg(long, default_value_t = Options::new(0).uploads)]
    uploads: usize,
    /// At most this many steps per schedule before the world settles.
    #[arg(long, default_value_t = Options::new(0).steps)]
    steps: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let options = |seed| Options {
        uploads: args.uploads,
        steps: args.steps,
        ..Options::new(seed)
    };
    if let Some(seed) = args.seed {
        return match archgate_sim::run(options(seed)) {
            Ok(summary) => {
                for line in &summary.trace {
                    println!("{line}");
                }
                println!(
                    "seed {seed}: every rule held after each of {} steps ({} uploads, {} releases, {} published, {} expired, {} events, {} AWS calls, {} faults injected, largest ledger item {} bytes)",
                    summary.steps, summary.uploads, summary.releases, summary.published, summary.expired, summary.events, summary.aws_calls, summary.faults, summary.largest_item
                );
                ExitCode::SUCCESS
            }
            Err(failure) => {
                eprintln!("{failure}");
                ExitCode::FAILURE
            }
        };
    }
    let started = Instant::now();
    let mut totals = archgate_sim::Summary::default();
    for seed in args.first..args.first + args.seeds {
        match run_and_shrink(options(seed)) {
            Ok(summary) => {
                totals.steps += summary.steps;
                totals.uploads += summary.uploads;
                totals.releases += summary.releases;
                totals.published += summary.published;
                totals.expired += summary.expired;
                totals.events += summary.events;
                totals.aws_calls += summary.aws_calls;
                totals.faults += summary.faults;
                totals.largest_item = totals.largest_item.max(summary.largest_item);
            }
            Err(failure) => {
                eprintln!("seed {seed} fails.\n{failure}");
                return ExitCode::FAILURE;
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{} schedules, every rule held after every step: {} steps, {} uploads, {} releases ({} published, {} expired), {} events, {} AWS calls ({} faults injected); largest ledger item {} bytes; {:.1} s, {:.0} schedules/s",
        args.seeds,
        totals.steps,
        totals.uploads,
        totals.releases,
        totals.published,
        totals.expired,
        totals.events,
        totals.aws_calls,
        totals.faults,
        totals.largest_item,
        elapsed.as_secs_f64(),
        args.seeds as f64 / elapsed.as_secs_f64()
    );
    ExitCode::SUCCESS
}
