//! The scheduler: each step polls a task, fires a due job or moves the clock (and periodic runs).

use super::{is_trouble, short, Done, Job, World, RECONCILE_EVERY};
use crate::scenario::*;
use archgate::domain::release::Service;
use archgate::domain::{Digest, Millis};
use archgate::retention::{Request, Retention};
use archgate_testkit::memory::Memory;

/// What retention-cleanup's role allows of a release's effects: its announcements.
const RETENTION_PERFORMS: &[Service] = &[Service::Events];

impl World {
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
            self.polled = None;
            self.run_job(job);
        } else {
            // Time passes to the next job. The reconciler runs on the template's schedule
            // whenever a release is not at rest (its passes are what ends a stuck one); with
            // every release at rest it has nothing to do, and the clock may jump.
            let next = self
                .jobs
                .iter()
                .filter(|j| trouble || !is_trouble(&j.job))
                .map(|j| j.at)
                .min();
            let to = match next {
                Some(next) if self.unsettled() => next.min(self.next_reconcile),
                Some(next) => next,
                None if self.unsettled() => self.next_reconcile,
                None => now + HOUR,
            };
            self.polled = None;
            self.advance_to(to.max(now));
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
            Job::Scan {
                repository,
                digest,
                rescan,
            } => self.scan(&repository, &digest, rescan),
            Job::Flood(pushes) => self.flood(pushes),
            Job::ForeignPush {
                repository,
                tag,
                left,
            } => self.foreign_push(repository, tag, left),
            Job::Damage => self.damage(),
            Job::Fix(key) => self.fix(&key),
            Job::Outage { kind, on } => self.outage(kind, on),
            Job::Vanish { repository, digest } => self.vanish(&repository, &digest),
            Job::PolicyChange => self.change_policy(),
        }
    }

    fn spawn_reconciler(&mut self) {
        let pipeline = self.svc.pipeline(&self.config);
        let policy = self.policy;
        let now = self.now();
        let step = self.step;
        self.spawn(
            "reconciler".to_owned(),
            archgate::pipeline::EVERY_SERVICE,
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
            // Someone pushes an index of their own (tag `bundle`) listing untagged images of
            // the repository, and its reads fail during this run: only failing closed keeps
            // what it lists. (archgate's own indexes are not read: the ledger holds them.)
            let repository = self.rng.pick(&REPOSITORIES).name;
            let repo = self.svc.registry.repository(repository);
            let listed: Vec<Digest> = repo
                .images
                .iter()
                .filter(|(d, i)| {
                    repo.tags_of(d).is_empty()
                        && i.manifest.media_type.as_deref()
                            != Some(archgate::domain::oci::OCI_INDEX)
                })
                .map(|(d, _)| d.clone())
                .take(2)
                .collect();
            if !listed.is_empty() {
                let bytes = serde_json::to_vec(&serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": archgate::domain::oci::OCI_INDEX,
                    "manifests": listed.iter().map(|d| serde_json::json!({
                        "mediaType": archgate::domain::oci::OCI_MANIFEST,
                        "digest": d.to_string(), "size": 2})).collect::<Vec<_>>(),
                }))
                .expect("an index serialises");
                let digest = self.svc.registry.push(
                    repository,
                    Some("bundle"),
                    archgate::domain::oci::RawManifest {
                        media_type: Some(archgate::domain::oci::OCI_INDEX.to_owned()),
                        bytes,
                    },
                );
                self.note(format!(
                    "someone pushes bundle {} into {repository} listing {}; its reads fail during this retention run",
                    short(&digest),
                    listed.iter().map(short).collect::<Vec<_>>().join(", ")
                ));
                self.svc.registry.break_reads(&digest);
            }
        }
        if self.scenario.uploads_during_retention && self.faults_closed_at.is_none() {
            self.upload_during_retention();
        }
        let retention: Retention<Memory> = Retention {
            config: self.retention.clone(),
            inventory: self.svc.registry.clone(),
            workloads: self.workloads.clone(),
            ledger: self.svc.ledger.clone(),
            events: self.svc.events.clone(),
            clock: self.svc.clock.clone(),
        };
        let step = self.step;
        self.spawn(
            super::RETENTION_TASK.to_owned(),
            RETENTION_PERFORMS,
            None,
            Box::pin(async move {
                Done::Retained(
                    step,
                    archgate::retention::run(&retention, Request::default()).await,
                )
            }),
        );
    }
}
