//! The executor: invocations run as tasks, polled, retried or dead-lettered, results recorded.

use super::{Done, Job, Note, Service, Task, TaskFuture, World};
use crate::scenario::MINUTE;
use archgate::domain::Millis;
use serde_json::{json, Value};
use std::task::{Context, Poll, Waker};

/// How long a Lambda invocation may run before it is killed (and its event retried).
const TIMEOUT: Millis = 60_000;
/// Lambda's asynchronous retries of a failed invocation (the template's EventInvokeConfig)
/// before the event goes to the dead-letter queue.
const LAMBDA_RETRIES: u32 = 2;

impl World {
    /// EventBridge: the event reaches its function once, twice, or (for best-effort
    /// sources) never, after a delay.
    pub(super) fn deliver(&mut self, event: Value, label: String, best_effort: bool, note: Note) {
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
        let prompt = std::mem::take(&mut self.prompt_delivery);
        for _ in 0..copies {
            let at = now
                + if prompt {
                    0
                } else {
                    self.rng.between(0, 90_000)
                };
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

    pub(super) fn spawn(
        &mut self,
        label: String,
        performs: &'static [Service],
        retry: Option<(Value, String, u32, Note)>,
        future: TaskFuture,
    ) {
        self.note(format!("start {label}"));
        let started = self.now();
        self.tasks.push(Task {
            label,
            performs,
            started,
            retry,
            future,
        });
    }

    pub(super) fn spawn_delivery(&mut self, event: Value, label: String, tries: u32, note: Note) {
        match &note {
            Note::Upload(n) => self.uploads[*n].delivered = true,
            Note::Vulnerable { key, digest } => {
                self.vulnerable_delivered
                    .insert((key.clone(), digest.clone()));
            }
            Note::None => {}
        }
        let pipeline = self.svc.pipeline(&self.config);
        let performs = archgate_testkit::routing::route(&event).map_or(&[][..], |r| r.performs());
        let future = Box::pin({
            let event = event.clone();
            async move { Done::Answer(archgate_testkit::routing::dispatch(&pipeline, event).await) }
        });
        self.spawn(
            label.clone(),
            performs,
            Some((event, label, tries, note)),
            future,
        );
    }

    pub(super) fn poll(&mut self, at: usize) {
        let mut cx = Context::from_waker(Waker::noop());
        self.polled = Some((self.tasks[at].label.clone(), self.tasks[at].performs));
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
                    // Lambda retries every failed invocation; a failure that retrying cannot
                    // mend and that no fault of the world explains is a defect.
                    let injected = answer["error_message"]
                        .as_str()
                        .is_some_and(|m| m.contains("injected"));
                    if answer["retryable"] != json!(true) && !injected {
                        self.broken.push(format!("{}: {answer}", task.label));
                    } else if let Some((event, label, tries, note)) = task.retry {
                        self.retry(event, label, tries, note);
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
            Done::Evaluated(key, result) => {
                self.note(format!("{} → {result:?}", task.label));
                if result == Ok(archgate::domain::Phase::Published) {
                    self.fixed.insert(key);
                }
            }
        }
    }
}
