//! The simulated world: archgate's real handlers, reconciler, retention and CLI commands on the
//! in-memory services, the outside world around them (S3 uploads, CodeBuild builds that push
//! images, ECR scans, people pushing and rescanning), and a seeded scheduler that interleaves
//! invocations at every AWS call, delivers events late, twice or never, and moves the clock.

use crate::rng::Rng;
use crate::rules::Checker;
use crate::scenario::*;
use archgate::build_variables::{IMAGE_ARCH, IMAGE_DIGEST, RELEASE_TAG};
use archgate::config::sample_lookup;
use archgate::config::RetentionConfig;
use archgate::domain::gate::{ScanStatus, Severity, SeverityCounts};
use archgate::domain::{Arch, BuildStatus, Digest, Millis, ReleaseKey, ReleaseTag};
use archgate::memory::{Chaos, ManualClock, MemoryServices};
use archgate::ports::{Clock, ScanFindings};
use archgate::reconcile::{ReconcilePolicy, ReconcileReport};
use archgate::retention::{Request, Retention, RunReport};
use archgate::Config;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

const S3_TEMPLATE: &str = include_str!("../../events/s3-object-created.json");
const SCAN_TEMPLATE: &str = include_str!("../../events/ecr-scan-findings.json");
const FINDING_TEMPLATE: &str = include_str!("../../events/inspector2-finding.json");

/// How long a Lambda invocation may run before it is killed (and its event retried).
const TIMEOUT: Millis = 60_000;
const RECONCILE_EVERY: Millis = 10 * MINUTE;
/// Lambda's asynchronous retries of a failed invocation (the template's EventInvokeConfig)
/// before the event goes to the dead-letter queue.
const LAMBDA_RETRIES: u32 = 2;

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
    /// ECR scans an image (scan on push, or a rescan with new findings).
    Scan {
        digest: Digest,
        rescan: bool,
    },
    /// Somebody pushes under a release's arch tag, many times, one push at a time.
    Flood(usize),
    /// One of those pushes, under this tag; the rest follow.
    ForeignPush {
        tag: String,
        left: usize,
    },
    /// A ledger item written by another version.
    Damage,
    /// The findings of a blocked release are fixed (a rescan, an allowlist change) and an
    /// operator runs `archgate release evaluate`.
    Fix(String),
}

/// What a delivery stands for in the ground truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    None,
    Upload(usize),
    /// A blocking scan of a published release's image.
    Vulnerable {
        tag: String,
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
    Evaluated(Result<archgate::domain::Phase, String>),
}

type TaskFuture = Pin<Box<dyn Future<Output = Done>>>;

struct Task {
    label: String,
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
    pub tag: String,
    pub arch: Arch,
    pub content: Content,
    pub pushed: Option<Digest>,
}

pub struct World {
    pub rng: Rng,
    pub scenario: Scenario,
    pub svc: MemoryServices,
    pub config: Config,
    pub retention: RetentionConfig,
    pub policy: ReconcilePolicy,
    jobs: Vec<Scheduled>,
    tasks: Vec<Task>,
    pub uploads: Vec<Upload>,
    sequencers: BTreeMap<String, u64>,
    pub builds: BTreeMap<String, BuildRun>,
    /// Blocking scans of published releases' images that reached scan-gate.
    pub vulnerable_delivered: BTreeSet<(String, Digest)>,
    /// Releases whose findings were fixed and re-evaluated successfully.
    pub fixed: BTreeSet<String>,
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
    next_reconcile: Millis,
    next_day: Millis,
    pub trace: Vec<String>,
    pub step: usize,
    pub checker: Checker,
    foreign: u64,
}

/// The sample configuration, on the simulation's bucket and repository.
const OVERRIDES: [(&str, &str); 6] = [
    (archgate::config::SOURCE_BUCKET, BUCKET),
    (archgate::config::SOURCE_PREFIX, PREFIX),
    (archgate::config::REPOSITORY, REPOSITORY),
    (archgate::config::MOVING_TAGS, MOVING_TAG),
    (archgate::config::RETENTION_REPOSITORIES, REPOSITORY),
    (archgate::config::RETENTION_MAX_DELETE_SHARE, "1"),
];

pub fn config() -> Config {
    Config::from_lookup(sample_lookup(&OVERRIDES)).expect("the simulation's configuration is valid")
}

fn rfc3339(millis: Millis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
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
        let retention = RetentionConfig::from_lookup(sample_lookup(&OVERRIDES))
            .expect("the simulation's retention configuration is valid");
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
            jobs: Vec::new(),
            tasks: Vec::new(),
            uploads: Vec::new(),
            sequencers: BTreeMap::new(),
            builds: BTreeMap::new(),
            vulnerable_delivered: BTreeSet::new(),
            fixed: BTreeSet::new(),
            reconcile_reports: Vec::new(),
            retention_reports: Vec::new(),
            dead_letters: Vec::new(),
            dead_lettered: 0,
            broken: Vec::new(),
            damaged: None,
            next_reconcile: T0 + RECONCILE_EVERY,
            next_day: T0 + DAY,
            trace: Vec::new(),
            step: 0,
            checker: Checker::default(),
            foreign: 0,
        };
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
        // Months pass: re-uploads of keys long after (the 180-day ledger TTL included).
        let mut at = last;
        for gap in world.scenario.months.clone() {
            at += gap;
            let key = world.rng.pick(&ORDINARY).to_string();
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

    /// EventBridge: the event reaches its function once, twice, or (for best-effort
    /// sources) never, after a delay.
    fn deliver(&mut self, event: Value, label: String, best_effort: bool, note: Note) {
        let now = self.now();
        if best_effort && self.rng.chance(self.scenario.lost_percent) {
            self.note(format!("lost: {label}"));
            return;
        }
        let copies = if self.rng.chance(self.scenario.duplicate_percent) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let at = now + self.rng.between(0, 90_000);
            self.schedule(
                at,
                Job::Deliver {
                    event: event.clone(),
                    label: label.clone(),
                    tries: 0,
                    note: note.clone(),
                },
            );
        }
    }

    fn spawn(
        &mut self,
        label: String,
        retry: Option<(Value, String, u32, Note)>,
        future: TaskFuture,
    ) {
        self.note(format!("start {label}"));
        let started = self.now();
        self.tasks.push(Task {
            label,
            started,
            retry,
            future,
        });
    }

    fn spawn_delivery(&mut self, event: Value, label: String, tries: u32, note: Note) {
        match &note {
            Note::Upload(n) => self.uploads[*n].delivered = true,
            Note::Vulnerable { tag, digest } => {
                self.vulnerable_delivered
                    .insert((tag.clone(), digest.clone()));
            }
            Note::None => {}
        }
        let pipeline = self.svc.pipeline(&self.config);
        let future = Box::pin({
            let event = event.clone();
            async move { Done::Answer(archgate_cli::replay::dispatch(&pipeline, event).await) }
        });
        self.spawn(label.clone(), Some((event, label, tries, note)), future);
    }

    fn spawn_reconciler(&mut self) {
        let pipeline = self.svc.pipeline(&self.config);
        let policy = self.policy;
        let now = self.now();
        let step = self.step;
        self.spawn(
            "reconciler".to_owned(),
            None,
            Box::pin(async move {
                Done::Reconciled(
                    step,
                    archgate_reconciler::handler::handle(&pipeline, policy, now)
                        .await
                        .map_err(|e| e.chain()),
                )
            }),
        );
    }

    fn spawn_retention(&mut self) {
        if self.scenario.unreadable_reads && self.rng.chance(50) {
            // A per-image read failure on a release's index for this run.
            let repo = self.svc.registry.repository(REPOSITORY);
            let indexes: Vec<Digest> = repo
                .images
                .iter()
                .filter(|(_, i)| {
                    i.manifest.media_type.as_deref() == Some(archgate::domain::oci::OCI_INDEX)
                })
                .map(|(d, _)| d.clone())
                .collect();
            if !indexes.is_empty() {
                let digest = self.rng.pick(&indexes).clone();
                self.note(format!(
                    "reads of {} fail during this retention run",
                    short(&digest)
                ));
                self.svc.registry.break_reads(&digest);
            }
        }
        let retention = Retention {
            config: self.retention.clone(),
            inventory: self.svc.registry.clone(),
            ledger: self.svc.ledger.clone(),
            events: self.svc.events.clone(),
            clock: self.svc.clock.clone(),
        };
        let step = self.step;
        self.spawn(
            "retention-cleanup".to_owned(),
            None,
            Box::pin(async move {
                Done::Retained(
                    step,
                    archgate::retention::run(&retention, Request::default()).await,
                )
            }),
        );
    }

    /// One step of the schedule: poll an invocation, fire a due job, or move the clock.
    pub fn act(&mut self, trouble: bool) {
        let now = self.now();
        let due: Vec<usize> = (0..self.jobs.len())
            .filter(|&i| self.jobs[i].at <= now)
            .filter(|&i| trouble || !is_trouble(&self.jobs[i].job))
            .collect();
        if !self.tasks.is_empty() && (due.is_empty() || self.rng.chance(65)) {
            if self.rng.chance(3) {
                let by = self.rng.between(1, 3_000);
                self.svc.clock.advance(by);
            }
            let at = self.rng.below(self.tasks.len() as u64) as usize;
            self.poll(at);
        } else if !due.is_empty() {
            // Due jobs run in any order: this is where deliveries are reordered.
            let pick = due[self.rng.below(due.len() as u64) as usize];
            let job = self.jobs.swap_remove(pick).job;
            self.run_job(job);
        } else if let Some(next) = self
            .jobs
            .iter()
            .filter(|j| trouble || !is_trouble(&j.job))
            .map(|j| j.at)
            .min()
        {
            self.advance_to(next.max(now));
        } else {
            // Nothing left: time passes, the schedules run (an hour at a time: the reconciler
            // has nothing to do that waiting less would change).
            self.advance_to(now + if trouble { RECONCILE_EVERY } else { HOUR });
        }
    }

    fn advance_to(&mut self, to: Millis) {
        let now = self.now();
        if to > now {
            self.svc.clock.set(to);
        }
        let now = self.now();
        if now >= self.next_day {
            self.next_day = now - (now - T0) % DAY + DAY;
            // DynamoDB deletes expired items within days, not at once.
            let lag = self.rng.between(0, 2 * DAY);
            let gone = self.svc.ledger.sweep_expired((now - lag) / 1000);
            if !gone.is_empty() {
                self.note(format!("TTL deleted {}", gone.join(", ")));
            }
            self.spawn_retention();
            // The operator redrives the dead-letter queue (the alarm fired).
            for (event, label, note) in std::mem::take(&mut self.dead_letters) {
                self.note(format!("redrive {label}"));
                let at = self.now() + self.rng.between(0, MINUTE);
                self.schedule(
                    at,
                    Job::Deliver {
                        event,
                        label,
                        tries: 0,
                        note,
                    },
                );
            }
        }
        if now >= self.next_reconcile {
            self.next_reconcile = now + RECONCILE_EVERY;
            self.spawn_reconciler();
        }
    }

    fn poll(&mut self, at: usize) {
        let mut cx = Context::from_waker(Waker::noop());
        let poll = self.tasks[at].future.as_mut().poll(&mut cx);
        let crashed = self.svc.chaos.take_crash();
        let timed_out = self.now() - self.tasks[at].started > TIMEOUT;
        match poll {
            Poll::Pending if !crashed && !timed_out => {}
            Poll::Pending => {
                let task = self.tasks.swap_remove(at);
                let why = if crashed { "crashed" } else { "timed out" };
                self.note(format!("{} {why}", task.label));
                if let Some((event, label, tries, note)) = task.retry {
                    self.retry(event, label, tries, note);
                }
            }
            Poll::Ready(done) => {
                let task = self.tasks.swap_remove(at);
                self.finished(task, done);
            }
        }
    }

    fn retry(&mut self, event: Value, label: String, tries: u32, note: Note) {
        if tries >= LAMBDA_RETRIES {
            self.note(format!("{label}: to the dead-letter queue"));
            self.dead_lettered += 1;
            self.dead_letters.push((event, label, note));
            return;
        }
        let at = self.now() + self.rng.between(MINUTE, 3 * MINUTE);
        self.schedule(
            at,
            Job::Deliver {
                event,
                label,
                tries: tries + 1,
                note,
            },
        );
    }

    fn finished(&mut self, task: Task, done: Done) {
        match done {
            Done::Answer(answer) => {
                let status = answer["status"].as_str().unwrap_or("?").to_owned();
                let detail = answer["reason"]
                    .as_str()
                    .or(answer["error_message"].as_str())
                    .map(|r| r.chars().take(140).collect::<String>())
                    .unwrap_or_else(|| answer["phase"].as_str().unwrap_or_default().to_owned());
                self.note(format!("{} → {status} {detail}", task.label));
                if status == "error" {
                    if answer["retryable"] == json!(true) {
                        if let Some((event, label, tries, note)) = task.retry {
                            self.retry(event, label, tries, note);
                        }
                    } else {
                        self.broken.push(format!("{}: {answer}", task.label));
                    }
                }
            }
            Done::Reconciled(step, report) => {
                match &report {
                    Ok(r) => {
                        let changed: Vec<String> = r
                            .reconciled
                            .iter()
                            .filter(|x| x.changed())
                            .map(|x| format!("{} {}→{}", x.release, x.phase_before, x.phase_after))
                            .collect();
                        self.note(format!(
                            "reconciler → {} changed{}{}",
                            changed.len(),
                            if changed.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", changed.join(", "))
                            },
                            if r.unreadable.is_empty() {
                                String::new()
                            } else {
                                format!(", {} unreadable skipped", r.unreadable.len())
                            }
                        ));
                    }
                    Err(e) => self.note(format!("reconciler → error {e}")),
                }
                if let Ok(report) = report {
                    self.reconcile_reports.push((step, report));
                }
            }
            Done::Retained(step, report) => {
                self.svc.registry.heal();
                for r in &report.repositories {
                    self.note(format!(
                        "retention → deleted {}, kept {:?}{}{}",
                        r.deleted.len(),
                        r.kept_by_reason,
                        r.refused
                            .as_ref()
                            .map(|x| format!(
                                ", refused: {}",
                                x.chars().take(80).collect::<String>()
                            ))
                            .unwrap_or_default(),
                        r.error
                            .as_ref()
                            .map(|x| format!(", error: {x}"))
                            .unwrap_or_default()
                    ));
                }
                self.retention_reports.push((step, report));
            }
            Done::Evaluated(result) => {
                self.note(format!("{} → {result:?}", task.label));
                if let Ok(phase) = result {
                    if phase == archgate::domain::Phase::Published {
                        self.fixed.insert(task.label.clone());
                    }
                }
            }
        }
    }

    fn run_job(&mut self, job: Job) {
        match job {
            Job::Upload(n) => self.upload(n),
            Job::Deliver {
                event,
                label,
                tries,
                note,
            } => self.spawn_delivery(event, label, tries, note),
            Job::Push(id) => self.push(&id),
            Job::Finish(id) => self.finish(&id),
            Job::Scan { digest, rescan } => self.scan(&digest, rescan),
            Job::Flood(pushes) => self.flood(pushes),
            Job::ForeignPush { tag, left } => self.foreign_push(tag, left),
            Job::Damage => self.damage(),
            Job::Fix(tag) => self.fix(&tag),
        }
    }

    /// S3: a new version of the object, and its "Object Created" event.
    fn upload(&mut self, n: usize) {
        let planned = self.scenario.uploads[n].clone();
        let now = self.now();
        let sequencer = {
            let s = self.sequencers.entry(planned.key.clone()).or_insert(0);
            *s += 1 + (now as u64 % 7);
            *s
        };
        let version = format!("v{n}-{sequencer}");
        while self.uploads.len() <= n {
            self.uploads.push(Upload {
                key: String::new(),
                version: String::new(),
                sequencer: 0,
                at: 0,
                content: CONTENTS[0],
                delivered: false,
            });
        }
        self.uploads[n] = Upload {
            key: planned.key.clone(),
            version: version.clone(),
            sequencer,
            at: now,
            content: planned.content,
            delivered: false,
        };
        let mut event: Value = serde_json::from_str(S3_TEMPLATE).expect("sample is JSON");
        event["id"] = json!(format!("s3-{n}"));
        event["time"] = json!(rfc3339(now));
        let detail = &mut event["detail"];
        detail["bucket"]["name"] = json!(BUCKET);
        detail["object"]["key"] = json!(planned.key);
        detail["object"]["version-id"] = json!(version);
        detail["object"]["etag"] = json!(format!("etag-{}", planned.content.id));
        detail["object"]["sequencer"] = json!(format!("{sequencer:016X}"));
        let label = format!(
            "upload {} {version} (content {})",
            planned.key, planned.content.id
        );
        self.note(label.clone());
        // S3 → EventBridge → Lambda is retried, not lost: at least once.
        self.deliver(
            event,
            format!("start-builds {} {version}", planned.key),
            false,
            Note::Upload(n),
        );
    }

    /// CodeBuild picked up builds archgate started: the world plays them.
    fn discover_builds(&mut self) {
        for build in self.svc.builds.started_since(self.builds.len()) {
            if self.builds.contains_key(&build.id) {
                continue;
            }
            let env = |name: &str| {
                build
                    .request
                    .environment
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            let arch = Arch::parse(&env(IMAGE_ARCH)).unwrap_or(Arch::Amd64);
            let version = build.request.source_version.clone().unwrap_or_default();
            let content = self
                .uploads
                .iter()
                .find(|u| u.version == version)
                .map(|u| u.content)
                .unwrap_or(CONTENTS[0]);
            self.builds.insert(
                build.id.clone(),
                BuildRun {
                    id: build.id.clone(),
                    tag: env(RELEASE_TAG),
                    arch,
                    content,
                    pushed: None,
                },
            );
            let wait = if self.scenario.slow_builds {
                self.rng.between(30 * MINUTE, 3 * HOUR)
            } else {
                self.rng.between(MINUTE, 12 * MINUTE)
            };
            let at = self.now() + wait;
            self.schedule(at, Job::Push(build.id.clone()));
        }
    }

    fn push(&mut self, id: &str) {
        let Some(run) = self.builds.get(id).cloned() else {
            return;
        };
        let still_running = self
            .svc
            .builds
            .get(id)
            .is_some_and(|b| b.status == BuildStatus::InProgress);
        if still_running && run.content.fails_on != Some(run.arch) {
            let digest = self.svc.registry.push(
                REPOSITORY,
                Some(&format!("{}-{}", run.tag, run.arch)),
                image_manifest(run.content.id, run.arch),
            );
            self.note(format!(
                "build {} pushed {}-{} {}",
                short_id(id),
                run.tag,
                run.arch,
                short(&digest)
            ));
            if let Some(r) = self.builds.get_mut(id) {
                r.pushed = Some(digest.clone());
            }
            let at = self.now() + self.rng.between(30_000, 20 * MINUTE);
            self.schedule(
                at,
                Job::Scan {
                    digest,
                    rescan: false,
                },
            );
        }
        let at = self.now() + self.rng.between(10_000, 3 * MINUTE);
        self.schedule(at, Job::Finish(id.to_owned()));
    }

    fn finish(&mut self, id: &str) {
        let Some(run) = self.builds.get(id).cloned() else {
            return;
        };
        let status = match (&run.pushed, self.svc.builds.get(id).map(|b| b.status)) {
            (_, Some(BuildStatus::Stopped)) => BuildStatus::Stopped,
            (Some(_), _) => BuildStatus::Succeeded,
            (None, _) => BuildStatus::Failed,
        };
        let exported = run
            .pushed
            .iter()
            .map(|d| (IMAGE_DIGEST.to_owned(), d.to_string()))
            .collect::<Vec<_>>();
        self.svc.builds.finish(id, status, exported.clone());
        let build = self.svc.builds.get(id).expect("the build exists");
        let template = match run.arch {
            Arch::Amd64 => archgate_cli::builder::EventTemplate::Amd64,
            Arch::Arm64 => archgate_cli::builder::EventTemplate::Arm64,
        };
        let event = archgate_cli::builder::state_change_event(
            template,
            &build.request.project,
            id,
            build.status.as_str(),
            &build.request.environment,
        );
        // CodeBuild's event carries the exported variables, except when it does not.
        let event = if self.rng.chance(85) {
            archgate_cli::builder::with_exported(event, &exported)
        } else {
            event
        };
        let label = format!(
            "build-completed {} {} {}",
            short_id(id),
            run.tag,
            build.status.as_str()
        );
        self.deliver(event, label, true, Note::None);
    }

    /// ECR scans an image: findings as its content carries them (or, for a rescan, a new
    /// critical finding), then the scan event with the image's tags at that moment.
    fn scan(&mut self, digest: &Digest, rescan: bool) {
        let now = self.now();
        let Some(tags) = self.svc.registry.inspect(REPOSITORY, |repo| {
            repo.images
                .contains_key(digest)
                .then(|| repo.tags_of(digest))
        }) else {
            return;
        };
        let vulnerable = rescan
            || self.builds.values().any(|b| {
                b.pushed.as_ref() == Some(digest) && b.content.vulnerable_on == Some(b.arch)
            });
        let mut counts = SeverityCounts::new();
        if vulnerable {
            counts.insert(Severity::Critical, 1);
        }
        counts.insert(Severity::High, 2);
        self.svc.registry.set_scan(
            REPOSITORY,
            digest,
            ScanFindings {
                status: Some(ScanStatus::Complete),
                counts: counts.clone(),
                findings: Vec::new(),
                completed_at: Some(now),
            },
        );
        // A rescan reaches archgate as ECR's scan event (basic scanning) or as Inspector's
        // finding event (enhanced scanning's continuous rescans).
        let event = if rescan && self.rng.chance(50) {
            let mut event: Value = serde_json::from_str(FINDING_TEMPLATE).expect("sample is JSON");
            event["id"] = json!(format!("finding-{}-{now}", digest.hex()));
            event["time"] = json!(rfc3339(now));
            event["resources"] = json!([format!(
                "arn:aws:ecr:eu-west-1:123456789012:repository/{REPOSITORY}/{digest}"
            )]);
            let image = &mut event["detail"]["resources"][0]["details"]["awsEcrContainerImage"];
            image["repositoryName"] = json!(REPOSITORY);
            image["imageHash"] = json!(digest);
            image["imageTags"] = json!(tags);
            event
        } else {
            let mut event: Value = serde_json::from_str(SCAN_TEMPLATE).expect("sample is JSON");
            event["id"] = json!(format!("scan-{}-{now}", digest.hex()));
            event["time"] = json!(rfc3339(now));
            let detail = &mut event["detail"];
            detail["repository-name"] = json!(REPOSITORY);
            detail["image-digest"] = json!(digest);
            detail["image-tags"] = json!(tags);
            detail["finding-severity-counts"] = json!(counts
                .iter()
                .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
                .collect::<serde_json::Map<_, _>>());
            event
        };
        let note = match (rescan, self.published_holding(digest)) {
            (true, Some(tag)) => Note::Vulnerable {
                tag,
                digest: digest.clone(),
            },
            _ => Note::None,
        };
        let label = format!(
            "scan-gate {} {}{}",
            short(digest),
            if vulnerable { "CRITICAL" } else { "clean" },
            if rescan { " (rescan)" } else { "" }
        );
        self.deliver(event, label, true, note);
    }

    /// A published release whose index lists this image.
    fn published_holding(&self, digest: &Digest) -> Option<String> {
        self.checker.releases().into_iter().find_map(|r| {
            (r.phase() == archgate::domain::Phase::Published
                && r.candidate
                    .as_ref()
                    .is_some_and(|c| c.children.iter().any(|ch| &ch.digest == digest)))
            .then(|| r.key.tag.to_string())
        })
    }

    fn flood(&mut self, pushes: usize) {
        // Under the arch tag of a release that is still building (its scans are what grows).
        let building: Vec<String> = self
            .checker
            .releases()
            .iter()
            .filter(|r| r.phase() == archgate::domain::Phase::Building)
            .map(|r| r.key.tag.to_string())
            .collect();
        let Some(tag) = (!building.is_empty()).then(|| self.rng.pick(&building).clone()) else {
            // Nobody is building right now: try again a little later.
            let at = self.now() + self.rng.between(MINUTE, HOUR);
            self.schedule(at, Job::Flood(pushes));
            return;
        };
        self.note(format!(
            "someone starts pushing {pushes} images under {tag}-amd64"
        ));
        self.foreign_push(tag, pushes);
    }

    /// A push under somebody else's arch tag, scanned on push (before the next one moves the
    /// tag), and the next push a little later.
    fn foreign_push(&mut self, tag: String, left: usize) {
        if left == 0 {
            return;
        }
        self.foreign += 1;
        let digest = self.svc.registry.push(
            REPOSITORY,
            Some(&format!("{tag}-amd64")),
            foreign_manifest(self.foreign),
        );
        let now = self.now();
        let scan_at = now + self.rng.between(1_000, 8_000);
        self.schedule(
            scan_at,
            Job::Scan {
                digest,
                rescan: false,
            },
        );
        let next = now + self.rng.between(10_000, 30_000);
        self.schedule(
            next,
            Job::ForeignPush {
                tag,
                left: left - 1,
            },
        );
    }

    fn damage(&mut self) {
        // Another version's record, mentioning an image that retention must keep safe.
        let mention = self
            .svc
            .registry
            .repository(REPOSITORY)
            .images
            .keys()
            .next()
            .cloned()
            .unwrap_or_else(|| Digest::of(b"nothing"));
        let key = ReleaseKey::new(REPOSITORY, ReleaseTag::parse("app-9.9").expect("valid"));
        self.svc.ledger.put_raw(
            &key,
            &format!(
                r#"{{"schema": 7, "key": "{}", "images": ["{mention}"]}}"#,
                key.id()
            ),
        );
        self.damaged = Some(self.step);
        self.note("a newer version wrote app#app-9.9 in a shape this one cannot read".to_owned());
    }

    /// Blocked releases get better findings now and then (a fixed base image, an allowlist
    /// entry) and an operator re-evaluates them; published ones get rescanned.
    fn trouble(&mut self) {
        let releases = self.checker.releases();
        for release in releases {
            let tag = release.key.tag.to_string();
            match release.phase() {
                archgate::domain::Phase::Blocked if self.rng.chance(2) => {
                    let at = self.now() + self.rng.between(HOUR, 3 * DAY);
                    self.schedule(at, Job::Fix(tag));
                }
                archgate::domain::Phase::Published if self.rng.chance(1) => {
                    if let Some(candidate) = &release.candidate {
                        let child = self.rng.pick(&candidate.children).digest.clone();
                        let at = self.now() + self.rng.between(HOUR, 30 * DAY);
                        self.schedule(
                            at,
                            Job::Scan {
                                digest: child,
                                rescan: true,
                            },
                        );
                    }
                }
                _ => {}
            }
        }
    }

    fn fix(&mut self, tag: &str) {
        let Some(release) = self
            .checker
            .releases()
            .into_iter()
            .find(|r| r.key.tag.as_str() == tag)
        else {
            return;
        };
        if release.phase() != archgate::domain::Phase::Blocked {
            return;
        }
        let now = self.now();
        for child in release.candidate.iter().flat_map(|c| c.children.iter()) {
            self.svc.registry.set_scan(
                REPOSITORY,
                &child.digest,
                ScanFindings {
                    status: Some(ScanStatus::Complete),
                    counts: SeverityCounts::new(),
                    findings: Vec::new(),
                    completed_at: Some(now),
                },
            );
        }
        let pipeline = self.svc.pipeline(&self.config);
        let key = release.key.clone();
        self.spawn(
            format!("archgate release evaluate {tag}"),
            None,
            Box::pin(async move {
                Done::Evaluated(
                    archgate_cli::evaluate::evaluate(&pipeline, &key)
                        .await
                        .map(|e| e.phase)
                        .map_err(|e| archgate::error::chain(&e)),
                )
            }),
        );
    }

    /// After each step the world reacts: builds get played, trouble gets scheduled.
    pub fn react(&mut self, trouble: bool) {
        self.discover_builds();
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

    pub fn drop_trouble(&mut self) {
        self.jobs.retain(|j| !is_trouble(&j.job));
    }

    pub fn in_flight(&self) -> usize {
        self.tasks.len()
    }
}

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
    )
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
