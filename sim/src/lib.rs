//! The deterministic simulation of archgate (DESIGN.md, "The release lifecycle across
//! releases and time").
//!
//! One schedule: a seed draws a scenario (uploads with colliding names, new versions,
//! shared contents, faults, floods, damaged records, months passing); the real handlers,
//! reconciler, retention and `archgate release evaluate` run on the in-memory services under
//! a seeded scheduler that interleaves their invocations at every AWS call, delivers events
//! late, twice or never, crashes processes between effects and fails reads; after every step
//! every rule is checked. A failing seed is shrunk (fewer uploads, fewer steps) to the smallest
//! schedule that still fails, and its trace printed with the command that replays it.

pub mod rng;
pub mod rules;
pub mod scenario;
pub mod world;

use rules::{Checker, Violation};
use world::World;

/// The size of one schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub seed: u64,
    /// At most this many uploads.
    pub uploads: usize,
    /// At most this many steps before the world is left to settle.
    pub steps: usize,
    /// A deliberate cross-repository effect the world commits once (the checker's own tests).
    pub sabotage: Option<world::Sabotage>,
}

impl Options {
    pub fn new(seed: u64) -> Self {
        Options {
            seed,
            uploads: 8,
            steps: 1_500,
            sabotage: None,
        }
    }
}

/// What one schedule did.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub steps: usize,
    pub uploads: usize,
    pub releases: usize,
    pub published: usize,
    /// Releases retention expired (published ones and stale attempts).
    pub expired: usize,
    pub events: usize,
    pub aws_calls: u64,
    pub faults: u64,
    pub largest_item: usize,
    /// What happened, one line per action.
    pub trace: Vec<String>,
}

/// A rule broken by a schedule, with what led there.
#[derive(Debug, Clone)]
pub struct Failure {
    pub options: Options,
    pub violation: Violation,
    pub trace: Vec<String>,
}

impl Failure {
    pub fn replay_command(&self) -> String {
        format!(
            "./dev simulate --seed {} --uploads {} --steps {}",
            self.options.seed, self.options.uploads, self.options.steps
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "rule {} broken: {}",
            self.violation.rule, self.violation.message
        )?;
        writeln!(f, "replay: {}", self.replay_command())?;
        writeln!(f, "trace ({} lines):", self.trace.len())?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Steps the world may take to settle once the schedule is over.
const SETTLE_STEPS: usize = 20_000;

/// Runs one schedule.
pub fn run(options: Options) -> Result<Summary, Failure> {
    let mut world = World::new(options.seed, options.uploads);
    world.sabotage = options.sabotage;
    let mut checker = Checker::default();
    let fail = |world: &mut World, checker: &Checker, violation: Violation| {
        let mut trace = std::mem::take(&mut world.trace);
        for repository in scenario::REPOSITORIES.iter().map(|r| r.name) {
            trace.push(format!(
                "tags of {repository} at the violation: {:?}",
                world.svc.registry.inspect(repository, |r| r
                    .tags
                    .iter()
                    .map(|(t, d)| format!("{t}={}", world::short(d)))
                    .collect::<Vec<_>>())
            ));
        }
        trace.push("ledger at the violation:".to_owned());
        for r in checker.releases() {
            trace.push(format!(
                "  {} {} attempt {} candidate {:?} published {:?} scans {:?} notices {} pending {:?}",
                r.key,
                r.phase(),
                r.attempt,
                r.candidate.as_ref().map(|c| world::short(&c.digest)),
                r.published.as_ref().map(|p| p.tags.clone()),
                r.scans.iter().map(|s| format!("{}:{}:{}", s.arch, world::short(&s.digest), s.verdict.passes())).collect::<Vec<_>>(),
                r.notices.len(),
                r.pending.iter().map(|c| c.effect).collect::<Vec<_>>()
            ));
        }
        Failure {
            options,
            violation,
            trace,
        }
    };
    while world.step < options.steps {
        world.step += 1;
        world.act(true);
        world.react(true);
        if let Err(v) = check(&mut world, &mut checker) {
            return Err(fail(&mut world, &checker, v));
        }
        if world.done() {
            break;
        }
    }
    // The world stops making trouble; what is under way finishes, time passes, the
    // reconciler and retention run until everything rests.
    world.close_faults();
    let deadline = world.step + SETTLE_STEPS;
    let mut quiet_since = None;
    while world.step < deadline {
        world.step += 1;
        world.act(false);
        world.react(false);
        if let Err(v) = check(&mut world, &mut checker) {
            return Err(fail(&mut world, &checker, v));
        }
        // Quiet: nothing delivered or built any more and every release rests. It must stay
        // so past the stale threshold, the claim lease and the deadline.
        if world.pending_work() == 0 && !world.unsettled() {
            let since = *quiet_since.get_or_insert(world.now());
            if world.in_flight() == 0 && world.now() - since > 7 * scenario::HOUR {
                break;
            }
        } else {
            quiet_since = None;
        }
    }
    if let Err(v) = checker.check_quiet(&world) {
        return Err(fail(&mut world, &checker, v));
    }
    let releases = checker.releases();
    Ok(Summary {
        steps: world.step,
        uploads: world.uploads.iter().filter(|u| u.delivered).count(),
        releases: releases.len(),
        published: releases
            .iter()
            .filter(|r| r.phase() == archgate::domain::Phase::Published)
            .count(),
        expired: releases
            .iter()
            .filter(|r| r.phase() == archgate::domain::Phase::Expired)
            .count(),
        events: world.svc.events.len(),
        aws_calls: world.svc.chaos.calls(),
        faults: world.svc.chaos.injected(),
        largest_item: world.svc.ledger.largest_item(),
        trace: std::mem::take(&mut world.trace),
    })
}

/// Checks every rule after a step; the world then acts on the releases as read.
fn check(world: &mut World, checker: &mut Checker) -> Result<(), Violation> {
    let result = checker.check(world);
    world.known = checker.releases();
    result
}

/// Runs a schedule and, when it fails, the smallest one (fewer uploads, fewer steps) from
/// the same seed that still fails.
pub fn run_and_shrink(options: Options) -> Result<Summary, Failure> {
    let failure = match run(options) {
        Ok(summary) => return Ok(summary),
        Err(failure) => failure,
    };
    let mut smallest = failure;
    // Fewer uploads first: each is a whole release's worth of events.
    for uploads in 1..smallest.options.uploads {
        if let Err(f) = run(Options {
            uploads,
            ..smallest.options
        }) {
            smallest = f;
            break;
        }
    }
    // Then the fewest steps, by bisection.
    let (mut low, mut high) = (1, smallest.options.steps);
    while low < high {
        let mid = (low + high) / 2;
        match run(Options {
            steps: mid,
            ..smallest.options
        }) {
            Err(f) => {
                high = mid;
                smallest = f;
            }
            Ok(_) => low = mid + 1,
        }
    }
    Err(smallest)
}
