//! The simulated world: archgate's real handlers, reconciler, retention and CLI commands on the
//! in-memory services, the outside world around them (S3 uploads, CodeBuild builds that push
//! images, ECR scans, people pushing and rescanning), and a seeded scheduler that interleaves
//! invocations at every AWS call, delivers events late, twice or never, and moves the clock.

mod builds;
mod sabotage;
mod scans;
mod scheduler;
mod tasks;
mod trouble;

use crate::rng::Rng;
use crate::scenario::*;
use archgate::config::sample_lookup;
use archgate::config::ReconcilePolicy;
use archgate::config::RetentionConfig;
use archgate::domain::release::Service;
use archgate::domain::{Arch, Digest, Millis, Release, ReleaseKey};
use archgate::ports::Clock;
use archgate::reconcile::ReconcileReport;
use archgate::retention::RunReport;
use archgate::Config;
use archgate_testkit::memory::{Chaos, ManualClock, MemoryServices, MemoryWorkloads};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

pub use sabotage::Sabotage;

/// The reconciler's schedule in the template.
pub const RECONCILE_EVERY: Millis = 10 * MINUTE;

/// Something the outside world does at a time.
#[derive(Debug, Clone)]
pub enum Job {
    Upload(usize),
    /// An event EventBridge delivers to its function.
    Deliver {
        event: Value,
        label: String,
        tries: u32,
        note: Note,
    },
    /// A build pushes its image (if it gets that far).
    Push(String),
    /// A build ends and CodeBuild sends its state change.
    Finish(String),
    /// ECR scans an image of a repository (scan on push, or a rescan with new findings).
    Scan {
        repository: String,
        digest: Digest,
        rescan: bool,
    },
    /// Somebody pushes under a release's arch tag, many times, one push at a time.
    Flood(usize),
    /// One of those pushes, under this tag of a repository; the rest follow.
    ForeignPush {
        repository: String,
        tag: String,
        left: usize,
    },
    /// A ledger item written by another version.
    Damage,
    /// The findings of a blocked release are fixed (a rescan, an allowlist change) and an
    /// operator runs `archgate release evaluate`.
    Fix(ReleaseKey),
    /// A lasting fault begins (or, `on: false`, is fixed).
    Outage {
        kind: OutageKind,
        on: bool,
    },
    /// An operator changes a repository's policy (`archgate repo set`): a new version, with
    /// limits on severities the world's images never carry, so each verdict stays what the
    /// checker expects while the versions move under the releases.
    PolicyChange,
    /// Someone deletes a per-arch image of a repository by hand.
    Vanish {
        repository: String,
        digest: Digest,
    },
}

/// What a delivery stands for in the ground truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    None,
    Upload(usize),
    /// A blocking scan of a published release's image.
    Vulnerable {
        key: ReleaseKey,
        digest: Digest,
    },
}

struct Scheduled {
    at: Millis,
    job: Job,
}

/// What an invocation returned.
pub enum Done {
    Answer(Value),
    /// A pass and the step it started at.
    Reconciled(usize, Result<ReconcileReport, String>),
    Retained(usize, RunReport),
    Evaluated(ReleaseKey, Result<archgate::domain::Phase, String>),
}

type TaskFuture = Pin<Box<dyn Future<Output = Done>>>;

struct Task {
    label: String,
    /// What the function's role may do (its `PERFORMS`).
    performs: &'static [Service],
    started: Millis,
    /// The delivery to retry if the invocation dies or fails retryably.
    retry: Option<(Value, String, u32, Note)>,
    future: TaskFuture,
}

/// An upload as the world made it.
#[derive(Debug, Clone)]
pub struct Upload {
    pub key: String,
    pub version: String,
    pub sequencer: u64,
    pub at: Millis,
    pub content: Content,
    /// Its event reached start-builds at least once.
    pub delivered: bool,
}

/// A build as the world runs it.
#[derive(Debug, Clone)]
pub struct BuildRun {
    pub id: String,
    /// The repository it pushes to (`IMAGE_REPO_NAME`).
    pub repository: String,
    pub tag: String,
    pub arch: Arch,
    pub content: Content,
    pub pushed: Option<Digest>,
}

/// How many policy changes a schedule makes.
const POLICY_CHANGES: usize = 3;

pub struct World {
    pub rng: Rng,
    pub scenario: Scenario,
    pub svc: MemoryServices,
    pub config: Config,
    pub retention: RetentionConfig,
    pub policy: ReconcilePolicy,
    /// The account's ECS and Lambda workloads, and the images they use (user, digest).
    pub workloads: MemoryWorkloads,
    /// (user, repository, digest).
    pub uses: Vec<(String, String, Digest)>,
    jobs: Vec<Scheduled>,
    tasks: Vec<Task>,
    pub uploads: Vec<Upload>,
    sequencers: BTreeMap<String, u64>,
    pub builds: BTreeMap<String, BuildRun>,
    /// (repository, image) of every image a build pushed: what a repository's own builds
    /// put there.
    pub pushed: BTreeSet<(String, Digest)>,
    /// When each image of each repository was scanned (ECR's findings changed): a release's
    /// scan record must come from its own repository's scans.
    pub scanned: BTreeMap<(String, Digest), BTreeSet<Millis>>,
    /// The latest version of each repository's policy an operator wrote (`archgate repo set`);
    /// a repository absent here has none (version 0).
    pub policy_versions: BTreeMap<String, u64>,
    /// Blocking scans of published releases' images that reached scan-gate.
    pub vulnerable_delivered: BTreeSet<(ReleaseKey, Digest)>,
    /// Releases whose findings were fixed and re-evaluated successfully.
    pub fixed: BTreeSet<ReleaseKey>,
    /// Reports with the step their run started at.
    pub reconcile_reports: Vec<(usize, ReconcileReport)>,
    pub retention_reports: Vec<(usize, RunReport)>,
    /// Events in the dead-letter queue, redriven by an operator every day.
    dead_letters: Vec<(Value, String, Note)>,
    pub dead_lettered: usize,
    /// Valid events whose invocation failed with a non-retryable error.
    pub broken: Vec<String>,
    /// The step a damaged item was written at.
    pub damaged: Option<usize>,
    /// The image the damaged item mentions (retention keeps it, fail safe).
    pub damaged_mentions: Option<Digest>,
    next_reconcile: Millis,
    next_day: Millis,
    pub trace: Vec<String>,
    pub step: usize,
    /// The ledger's releases as the last check read them: what the world acts on.
    pub known: Vec<Rc<Release>>,
    foreign: u64,
    /// Images someone deleted by hand (not retention's doing), by repository.
    pub vanished: BTreeSet<(String, Digest)>,
    /// Build events delivered so far: ((repository, release tag), source version, event, label).
    build_events: Vec<((String, String), String, Value, String)>,
    /// The task polled in this step, and what its role may do: it wrote whatever changed.
    pub polled: Option<(String, &'static [Service])>,
    /// When the world stopped making trouble (the fault window closed).
    pub faults_closed_at: Option<Millis>,
    /// The next delivery reaches its function at once (no EventBridge delay).
    prompt_delivery: bool,
    /// A deliberate cross-repository effect the world commits once (tests of the checker).
    pub sabotage: Option<Sabotage>,
}

/// Retention covers the default repository and every one under the namespace.
const RETAINED: &str = "app,apps/*";

/// The sample configuration, on the simulation's bucket, repository and namespace.
const OVERRIDES: [(&str, &str); 7] = [
    (archgate::config::SOURCE_BUCKET, BUCKET),
    (archgate::config::SOURCE_PREFIX, PREFIX),
    (archgate::config::REPOSITORY, REPOSITORY),
    (archgate::config::REPOSITORY_PREFIX, NAMESPACE),
    (archgate::config::MOVING_TAGS, MOVING_TAG),
    (archgate::config::RETENTION_REPOSITORIES, RETAINED),
    (archgate::config::RETENTION_MAX_DELETE_SHARE, "1"),
];

pub fn config() -> Config {
    Config::from_lookup(sample_lookup(&OVERRIDES)).expect("the simulation's configuration is valid")
}

impl World {
    pub fn new(seed: u64, max_uploads: usize) -> World {
        let mut rng = Rng::new(seed);
        let scenario = Scenario::draw(&mut rng, max_uploads);
        let chaos = Chaos::seeded(rng.next_u64(), scenario.faults);
        let clock = ManualClock::at(T0);
        let svc = MemoryServices::new(chaos, clock);
        svc.registry.create_repository(REPOSITORY, false);
        let config = config();
        let mut retention = RetentionConfig::from_lookup(sample_lookup(&OVERRIDES))
            .expect("the simulation's retention configuration is valid");
        retention.releases = scenario.release_rules.clone();
        let workloads = MemoryWorkloads::new(svc.chaos.clone());
        let policy = ReconcilePolicy {
            stale_after_ms: 15 * MINUTE,
            deadline_ms: 6 * HOUR,
        };
        let mut world = World {
            rng,
            scenario,
            svc,
            config,
            retention,
            policy,
            workloads,
            uses: Vec::new(),
            jobs: Vec::new(),
            tasks: Vec::new(),
            uploads: Vec::new(),
            sequencers: BTreeMap::new(),
            builds: BTreeMap::new(),
            pushed: BTreeSet::new(),
            scanned: BTreeMap::new(),
            vulnerable_delivered: BTreeSet::new(),
            policy_versions: BTreeMap::new(),
            fixed: BTreeSet::new(),
            reconcile_reports: Vec::new(),
            retention_reports: Vec::new(),
            dead_letters: Vec::new(),
            dead_lettered: 0,
            broken: Vec::new(),
            damaged: None,
            damaged_mentions: None,
            next_reconcile: T0 + RECONCILE_EVERY,
            next_day: T0 + DAY,
            trace: Vec::new(),
            step: 0,
            known: Vec::new(),
            foreign: 0,
            vanished: BTreeSet::new(),
            build_events: Vec::new(),
            polled: None,
            faults_closed_at: None,
            prompt_delivery: false,
            sabotage: None,
        };
        world.svc.builds.set_late_stops(world.scenario.late_stops);
        for outage in world.scenario.outages.clone() {
            world.schedule(
                outage.from,
                Job::Outage {
                    kind: outage.kind,
                    on: true,
                },
            );
            world.schedule(
                outage.until,
                Job::Outage {
                    kind: outage.kind,
                    on: false,
                },
            );
        }
        for (n, upload) in world.scenario.uploads.clone().iter().enumerate() {
            world.schedule(upload.at, Job::Upload(n));
        }
        let last = world.scenario.uploads.last().map_or(T0, |u| u.at);
        if let Some((at, pushes)) = world.scenario.flood {
            world.schedule(at, Job::Flood(pushes));
        }
        if let Some(at) = world.scenario.damaged_item_at {
            world.schedule(at, Job::Damage);
        }
        // Operators change repositories' policies while releases are under way.
        for _ in 0..POLICY_CHANGES {
            let at = world.rng.between(T0, last.max(T0 + 1));
            world.schedule(at, Job::PolicyChange);
        }
        // Months pass: re-uploads of keys long after (the 180-day ledger TTL included).
        let mut at = last;
        for gap in world.scenario.months.clone() {
            at += gap;
            if world.rng.chance(30) {
                // Right as a daily retention run starts (it may expire what this rebuilds).
                at = at - (at - T0) % DAY + DAY + world.rng.between(0, MINUTE);
            }
            let key = ordinary_key(&mut world.rng);
            let content = *world.rng.pick(&CONTENTS);
            let n = world.scenario.uploads.len();
            world
                .scenario
                .uploads
                .push(PlannedUpload { at, key, content });
            world.schedule(at, Job::Upload(n));
        }
        world
    }

    pub fn now(&self) -> Millis {
        self.svc.clock.now_millis()
    }

    fn schedule(&mut self, at: Millis, job: Job) {
        self.jobs.push(Scheduled { at, job });
    }

    pub fn note(&mut self, what: String) {
        let now = self.now();
        let elapsed = now - T0;
        self.trace.push(format!(
            "#{:<5} d{:03} {:02}:{:02}:{:02}.{:03}  {what}",
            self.step,
            elapsed / DAY,
            (elapsed % DAY) / HOUR,
            (elapsed % HOUR) / MINUTE,
            (elapsed % MINUTE) / 1000,
            elapsed % 1000
        ));
    }

    /// After each step the world reacts: builds get played, trouble gets scheduled.
    pub fn react(&mut self, trouble: bool) {
        self.discover_builds();
        self.sabotage();
        if trouble && self.step.is_multiple_of(50) {
            self.trouble();
        }
    }

    /// Nothing under way and nothing scheduled.
    pub fn done(&self) -> bool {
        self.tasks.is_empty() && self.jobs.is_empty()
    }

    /// Deliveries, builds and scans still to come (not the periodic runs).
    pub fn pending_work(&self) -> usize {
        self.dead_letters.len()
            + self.jobs.iter().filter(|j| !is_trouble(&j.job)).count()
            + self.tasks.iter().filter(|t| t.retry.is_some()).count()
    }

    /// The fault window closes: no more trouble, no random faults, every outage fixed.
    pub fn close_faults(&mut self) {
        self.jobs.retain(|j| !is_trouble(&j.job));
        self.svc.chaos.set_rates(Default::default());
        self.svc.chaos.end_outages();
        self.svc.signer.set_unusable(None);
        self.faults_closed_at = Some(self.now());
        self.note("the fault window closes".to_owned());
    }

    /// Whether some release is not at rest: in flight, owing an effect or with an upload
    /// queued (the reconciler has work on its schedule).
    pub fn unsettled(&self) -> bool {
        self.known.clone().iter().any(|r| !at_rest(r))
    }

    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }

    /// Whether a retention run is under way.
    pub fn retention_running(&self) -> bool {
        self.tasks.iter().any(|t| t.label == RETENTION_TASK)
    }
}

/// The label of retention runs.
pub const RETENTION_TASK: &str = "retention-cleanup";

/// Jobs that are the world's trouble rather than consequences of what happened: the drain
/// at the end stops them.
fn is_trouble(job: &Job) -> bool {
    matches!(
        job,
        Job::Upload(_)
            | Job::Flood(_)
            | Job::ForeignPush { .. }
            | Job::Damage
            | Job::Fix(_)
            | Job::Scan { rescan: true, .. }
            | Job::Outage { .. }
            | Job::Vanish { .. }
            | Job::PolicyChange
    )
}

/// A release at rest: published, blocked, failed, expired or refused, owing nothing, nothing
/// queued.
pub fn at_rest(release: &archgate::domain::Release) -> bool {
    !release.phase().is_in_flight()
        && release.pending.is_empty()
        && release.required_effects().is_empty()
        && release.queued.is_none()
}

pub fn short(digest: &Digest) -> String {
    digest.hex()[..10].to_owned()
}

fn short_id(id: &str) -> String {
    match id.split_once(':') {
        Some((project, uuid)) => format!(
            "{}:{}",
            project.trim_start_matches("archgate-build-"),
            &uuid[..8.min(uuid.len())]
        ),
        None => id.to_owned(),
    }
}
