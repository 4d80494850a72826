//! One fact applied to one release, in attempts: read, plan ([`decide`] plus the results this
//! delivery already obtained), claim, perform, record. A conflicting write ends an attempt;
//! the next one reads again.

use super::{EffectError, Outcome, Pipeline, PipelineError};
use crate::domain::release::Claim;
use crate::domain::{
    decide, Decision, Effect, EffectResult, Fact, IgnoreReason, Millis, Release, ReleaseKey,
};
use crate::ports::{Clock, Ledger, Ports, Stored};
use crate::write::{self, FirstRead, Reads};
use std::collections::VecDeque;
use tracing::{info, warn};

/// What one delivery has done so far, across its attempts.
struct Progress {
    /// Marks the claims this delivery writes, so it can tell them from others'.
    invocation: String,
    /// Results of the effects performed, replayed onto every fresh read.
    performed: Vec<EffectResult>,
    /// The effects performed, in order, for the outcome.
    effects_done: Vec<Effect>,
}

impl Progress {
    fn new() -> Self {
        Progress {
            invocation: invocation_id(),
            performed: Vec::new(),
            effects_done: Vec::new(),
        }
    }

    /// Whether this delivery wrote the claim.
    fn wrote(&self, claim: &Claim) -> bool {
        claim.by.as_deref() == Some(self.invocation.as_str())
    }

    fn holds(&self, release: &Release) -> bool {
        release.pending.iter().any(|c| self.wrote(c))
    }

    fn performed(&self, effect: Effect) -> bool {
        self.performed.iter().any(|r| r.effect() == effect)
    }
}

/// What an attempt found to do on its read.
struct Plan {
    /// The release as it will be recorded, claims included.
    state: Release,
    /// The effects to claim and perform.
    todo: VecDeque<Effect>,
    /// Claims this delivery already holds durably (its write went through, the retry of that
    /// write then conflicted with it): still its own to perform.
    ours: Vec<Effect>,
}

/// How an attempt ended: with the answer, or with a conflicting write (read again).
enum Attempt {
    Done(Outcome),
    Conflict,
}

/// The release as an attempt is changing it.
struct Working {
    state: Release,
    /// The version the next write expects.
    version: Option<u64>,
    /// Whether the ledger already holds the claim on the promotion.
    promotion_on_record: bool,
}

impl<P: Ports> Pipeline<P> {
    pub async fn apply(&self, key: &ReleaseKey, fact: Fact) -> Result<Outcome, PipelineError> {
        self.apply_read(key, fact, None).await
    }

    /// [`Pipeline::apply`] to a release the caller has just read (saving the first read).
    pub async fn apply_to(&self, read: Stored, fact: Fact) -> Result<Outcome, PipelineError> {
        let key = read.release.key.clone();
        self.apply_read(&key, fact, Some(read)).await
    }

    async fn apply_read(
        &self,
        key: &ReleaseKey,
        fact: Fact,
        read: Option<Stored>,
    ) -> Result<Outcome, PipelineError> {
        let mut progress = Progress::new();
        let first = match (&fact, read) {
            (_, Some(read)) => FirstRead::Given(Box::new(read)),
            // A new upload is created with a conditional put: no read needed the first time.
            (Fact::SourceUploaded { .. }, None) => FirstRead::New,
            _ => FirstRead::Load,
        };
        let mut reads = Reads::new(&self.ledger, key, first);
        loop {
            let now = self.clock.now_millis();
            let Some(fresh) = reads.next().await? else {
                return Err(PipelineError::Contention {
                    release: key.to_string(),
                });
            };
            let plan = match self.plan(key, &fact, fresh.stored.as_ref(), &progress, now) {
                Ok(plan) => plan,
                Err(ignored) => return Ok(ignored),
            };
            match self
                .attempt(key, fresh.stored.as_ref(), plan, &mut progress, now)
                .await?
            {
                Attempt::Done(outcome) => return Ok(outcome),
                Attempt::Conflict => continue,
            }
        }
    }

    /// Decides on a fresh read what to reach and what to perform, or why this delivery has
    /// nothing to do.
    fn plan(
        &self,
        key: &ReleaseKey,
        fact: &Fact,
        stored: Option<&Stored>,
        progress: &Progress,
        now: Millis,
    ) -> Result<Plan, Outcome> {
        let (mut state, mut todo): (Release, VecDeque<Effect>) =
            match decide(stored.map(|s| &s.release), key, fact, now) {
                Decision::Apply { next, effects } => (*next, effects.into()),
                Decision::Ignore(reason) => match stored {
                    // Ignored now, but this delivery has work in flight on the release.
                    Some(s) if !progress.performed.is_empty() || progress.holds(&s.release) => {
                        (s.release.clone(), VecDeque::new())
                    }
                    _ => {
                        info!(release = %key, reason = %reason, "ignored");
                        return Err(reason.into());
                    }
                },
            };
        let ours: Vec<Effect> = stored
            .iter()
            .flat_map(|s| s.release.pending.iter())
            .filter(|c| progress.wrote(c))
            .map(|c| c.effect)
            .filter(|e| !todo.contains(e) && !progress.performed(*e))
            .collect();
        for result in &progress.performed {
            if let Decision::Apply { next, effects } =
                decide(Some(&state), key, &Fact::Completed(result.clone()), now)
            {
                state = *next;
                todo.extend(effects);
            }
        }
        todo.retain(|effect| !progress.performed(*effect));
        self.defer_others(stored.map(|s| &s.release), &mut state, &mut todo);
        if todo.is_empty()
            && ours.is_empty()
            && progress.performed.is_empty()
            && stored.map(|s| &s.release) == Some(&state)
        {
            let reason = IgnoreReason::NothingForThisFunction { key: key.clone() };
            info!(release = %key, %reason, "ignored");
            return Err(Outcome::ignored(reason));
        }
        for claim in state
            .pending
            .iter_mut()
            .filter(|c| todo.contains(&c.effect) && c.by.is_none())
        {
            claim.by = Some(progress.invocation.clone());
        }
        Ok(Plan { state, todo, ours })
    }

    /// Claims, performs and records one plan.
    async fn attempt(
        &self,
        key: &ReleaseKey,
        stored: Option<&Stored>,
        plan: Plan,
        progress: &mut Progress,
        now: Millis,
    ) -> Result<Attempt, PipelineError> {
        let Plan {
            state,
            mut todo,
            ours,
        } = plan;
        let mut work = Working {
            state,
            version: stored.map(|s| s.version),
            promotion_on_record: stored.is_some_and(|s| {
                s.release
                    .pending
                    .iter()
                    .any(|c| c.effect == Effect::Promote)
            }),
        };
        if !ours.is_empty() && todo.is_empty() {
            // Already durable: perform them without claiming again.
            todo.extend(ours);
        } else if !todo.is_empty() {
            let Some(version) = self.save(key, &work.state, work.version).await? else {
                return Ok(Attempt::Conflict);
            };
            work.version = Some(version);
            work.promotion_on_record |= work
                .state
                .pending
                .iter()
                .any(|c| c.effect == Effect::Promote);
        }
        let Some(mut failed) = self
            .perform_all(key, &mut work, todo, progress, now)
            .await?
        else {
            return Ok(Attempt::Conflict);
        };
        if !failed.is_empty() {
            // Record what did happen and give back the claims on what did not, so the retry
            // of this event can act at once. Best effort: if this write fails too, the claims
            // lapse with their lease.
            let unclaimed: Vec<Effect> = failed.iter().map(|(e, _)| *e).collect();
            work.state.release_claims(&unclaimed);
            // What keeps failing is on record: status shows it, and the deadline's event
            // carries it.
            for (effect, error) in &failed {
                work.state.record_failure(
                    *effect,
                    error.error_type(),
                    &crate::error::chain(error),
                    now,
                );
            }
            if let Err(save) = self.ledger.save(&work.state, work.version).await {
                warn!(release = %key, error = %save, "could not release claims after a failed effect");
            }
            let (effect, source) = failed.remove(0);
            return Err(PipelineError::Effect {
                release: key.to_string(),
                effect,
                source,
            });
        }
        let unchanged = stored.map(|s| &s.release) == Some(&work.state);
        if !unchanged && self.save(key, &work.state, work.version).await?.is_none() {
            return Ok(Attempt::Conflict);
        }
        Ok(Attempt::Done(
            self.applied(&work.state, &progress.effects_done),
        ))
    }

    /// Performs the effects in order, folding each result into the release. Effects are
    /// independent of each other: one failing does not keep the others from happening (an
    /// announcement owed to a refused upload goes out even while the index cannot be
    /// assembled). The failures, or `None` after a conflicting write.
    async fn perform_all(
        &self,
        key: &ReleaseKey,
        work: &mut Working,
        mut todo: VecDeque<Effect>,
        progress: &mut Progress,
        now: Millis,
    ) -> Result<Option<Vec<(Effect, EffectError)>>, PipelineError> {
        let mut failed: Vec<(Effect, EffectError)> = Vec::new();
        while let Some(effect) = todo.pop_front() {
            if failed.iter().any(|(e, _)| *e == effect) {
                continue;
            }
            // A promotion is on record before its first PutImage: once a tag has moved it
            // runs to the end, even if this invocation dies right after (a promotion that
            // follows another effect's result, like the index assembled while both scans
            // were already in, is claimed in memory only until this write).
            if effect == Effect::Promote && !work.promotion_on_record {
                let Some(version) = self.save(key, &work.state, work.version).await? else {
                    return Ok(None);
                };
                work.version = Some(version);
                work.promotion_on_record = true;
            }
            let result = match self.perform(&work.state, effect).await {
                Ok(result) => result,
                Err(source) => {
                    warn!(release = %key, %effect, error = %source, "effect failed");
                    failed.push((effect, source));
                    continue;
                }
            };
            info!(release = %key, %effect, "effect performed");
            progress.effects_done.push(effect);
            progress.performed.push(result.clone());
            if let Decision::Apply { next, effects } =
                decide(Some(&work.state), key, &Fact::Completed(result), now)
            {
                let before = std::mem::replace(&mut work.state, *next);
                let mut effects: VecDeque<Effect> = effects.into();
                self.defer_others(Some(&before), &mut work.state, &mut effects);
                todo.extend(effects);
            }
        }
        Ok(Some(failed))
    }

    /// One conditional write: the new version, or `None` when someone else wrote first.
    async fn save(
        &self,
        key: &ReleaseKey,
        state: &Release,
        expected: Option<u64>,
    ) -> Result<Option<u64>, PipelineError> {
        write::save(&self.ledger, state, expected)
            .await
            .map_err(|source| ledger_error(key, source))
    }

    fn applied(&self, release: &Release, effects: &[Effect]) -> Outcome {
        info!(release = %release.key, phase = %release.phase(), "recorded");
        Outcome::Applied {
            release: release.key.to_string(),
            phase: release.phase(),
            effects: effects.to_vec(),
        }
    }
}

fn ledger_error(key: &ReleaseKey, source: crate::error::AdapterError) -> PipelineError {
    PipelineError::Ledger {
        release: key.to_string(),
        source,
    }
}

/// Unique per delivery: the process, the time it started and a counter, each at a fixed
/// width (the ledger item's size then does not depend on which process wrote the claim, so a
/// simulated schedule is the same byte for byte whichever process runs it).
pub(super) fn invocation_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default();
    format!(
        "{:08x}-{nanos:016x}-{:016x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
