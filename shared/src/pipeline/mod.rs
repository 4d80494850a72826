//! Applies one fact to one release: read, [`decide`], claim, perform the effects, record.
//!
//! The claim is written before any effect runs, so a concurrent invocation leaves the effect
//! alone; the results are recorded after the effects ran, so the ledger never claims an effect
//! that did not happen. A conflicting write means someone else moved the release: read again,
//! decide again, and re-apply the results already obtained (they are facts like any other).

mod effects;
mod error;
mod gate;
mod outcome;
mod promote;
mod scans;

pub use effects::{build_request, idempotency_token};
pub use error::{EffectError, PipelineError};
pub use outcome::Outcome;
pub use scans::{Rejudge, Rejudged};

use crate::config::Config;
use crate::domain::gate::Verdict;
use crate::domain::release::Service;
use crate::domain::{
    decide, Arch, Decision, Digest, Effect, EffectResult, Fact, IgnoreReason, Millis, Release,
    ReleaseKey,
};
use crate::error::AdapterError;
use crate::ports::{
    BuildDetails, Builds, Clock, EventPublisher, Ledger, Listing, Registry, SaveError, Stored,
};
use std::collections::VecDeque;
use tracing::{info, warn};

/// Conflicting writes before giving up (the invocation is then retried by Lambda).
const MAX_ATTEMPTS: usize = 8;

/// The pipeline with its ports. One instance per process, built outside the handler.
#[derive(Clone)]
pub struct Pipeline<L, B, R, E, C> {
    pub(crate) config: Config,
    pub(crate) ledger: L,
    pub(crate) builds: B,
    pub(crate) registry: R,
    pub(crate) events: E,
    pub(crate) clock: C,
    /// The services this function's role may use: effects on others are left to the
    /// functions that can (or the reconciler), never claimed here.
    performs: &'static [Service],
}

/// Every service: build-completed, the reconciler, the CLI and tests.
pub const EVERY_SERVICE: &[Service] = &[Service::CodeBuild, Service::Registry, Service::Events];

impl<L, B, R, E, C> Pipeline<L, B, R, E, C> {
    /// The pipeline on its ports, performing effects on every service.
    pub fn new(config: Config, ledger: L, builds: B, registry: R, events: E, clock: C) -> Self {
        Pipeline {
            config,
            ledger,
            builds,
            registry,
            events,
            clock,
            performs: EVERY_SERVICE,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The same pipeline with another configuration (a re-evaluation under a new policy).
    pub fn with_config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The same pipeline for a function whose role allows only `services`.
    pub fn performing(mut self, services: &'static [Service]) -> Self {
        self.performs = services;
        self
    }

    /// Leaves the effects this function cannot perform unclaimed (or claimed by whoever held
    /// them in `before`), so a delivery never takes up work its role does not allow.
    fn defer_others(
        &self,
        before: Option<&Release>,
        state: &mut Release,
        todo: &mut VecDeque<Effect>,
    ) {
        todo.retain(|effect| {
            if self.performs.contains(&effect.service()) {
                return true;
            }
            state.pending.retain(|c| c.effect != *effect);
            if let Some(claim) = before.and_then(|b| b.pending.iter().find(|c| c.effect == *effect))
            {
                state.pending.push(claim.clone());
            }
            false
        });
    }
}

impl<L, B, R, E, C> Pipeline<L, B, R, E, C>
where
    L: Ledger,
    B: Builds,
    R: Registry,
    E: EventPublisher,
    C: Clock,
{
    /// The time by the pipeline's clock.
    pub fn now(&self) -> Millis {
        self.clock.now_millis()
    }

    /// The recorded release, if any.
    pub async fn release(&self, key: &ReleaseKey) -> Result<Option<Stored>, AdapterError> {
        self.ledger.load(key).await
    }

    /// Up to `limit` recorded releases, and the items that do not read as one.
    pub async fn releases(&self, limit: usize) -> Result<Listing, AdapterError> {
        self.ledger.list(limit).await
    }

    /// The releases whose builds or candidate hold the image `digest` (byte-identical builds
    /// of several releases are one image).
    pub async fn releases_holding(
        &self,
        digest: &Digest,
    ) -> Result<Vec<(ReleaseKey, Arch)>, AdapterError> {
        self.ledger.find_by_digest(digest).await
    }

    /// The verdicts on a release's candidate images as their current findings give them
    /// (a re-evaluation under this pipeline's policy); `None` for an image not scanned yet.
    pub async fn current_verdicts(
        &self,
        release: &Release,
    ) -> Result<Vec<(Arch, Digest, Option<(Verdict, Option<Millis>)>)>, AdapterError> {
        let today = crate::domain::gate::date_of(self.now());
        gate::current_verdicts(&self.config.gate, &self.registry, release, &today).await
    }

    /// What CodeBuild says of a build; `None` when it does not know it.
    pub async fn build_details(
        &self,
        build_id: &str,
    ) -> Result<Option<BuildDetails>, AdapterError> {
        self.builds.details(build_id).await
    }

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
        mut read: Option<Stored>,
    ) -> Result<Outcome, PipelineError> {
        let release_id = key.to_string();
        let ledger_error = |source| PipelineError::Ledger {
            release: release_id.clone(),
            source,
        };
        let mut performed: Vec<EffectResult> = Vec::new();
        let mut effects_done: Vec<Effect> = Vec::new();
        let invocation = invocation_id();
        'attempts: for attempt in 0..MAX_ATTEMPTS {
            let now = self.clock.now_millis();
            // A new upload is created with a conditional put: no read needed the first time.
            let stored = match (&fact, read.take()) {
                (_, Some(read)) => Some(read),
                (Fact::SourceUploaded { .. }, None) if attempt == 0 => None,
                _ => self.ledger.load(key).await.map_err(ledger_error)?,
            };
            let expected = stored.as_ref().map(|s| s.version);
            let (mut state, mut todo): (Release, VecDeque<Effect>) =
                match decide(stored.as_ref().map(|s| &s.release), key, &fact, now) {
                    Decision::Apply { next, effects } => (*next, effects.into()),
                    Decision::Ignore(reason) => match &stored {
                        Some(s)
                            if !performed.is_empty()
                                || s.release
                                    .pending
                                    .iter()
                                    .any(|c| c.by.as_deref() == Some(invocation.as_str())) =>
                        {
                            (s.release.clone(), VecDeque::new())
                        }
                        _ => {
                            info!(release = %key, reason = %reason, "ignored");
                            return Ok(reason.into());
                        }
                    },
                };
            // Claims this invocation wrote, whose answer it never saw (its write went through,
            // the retry of that write then conflicted with it): they are still ours to do.
            let ours: Vec<Effect> = stored
                .iter()
                .flat_map(|s| s.release.pending.iter())
                .filter(|c| c.by.as_deref() == Some(invocation.as_str()))
                .map(|c| c.effect)
                .filter(|e| !todo.contains(e))
                .collect();
            for result in &performed {
                if let Decision::Apply { next, effects } =
                    decide(Some(&state), key, &Fact::Completed(result.clone()), now)
                {
                    state = *next;
                    todo.extend(effects);
                }
            }
            todo.retain(|effect| !performed.iter().any(|r| r.effect() == *effect));
            self.defer_others(stored.as_ref().map(|s| &s.release), &mut state, &mut todo);
            if todo.is_empty()
                && ours.is_empty()
                && performed.is_empty()
                && stored.as_ref().map(|s| &s.release) == Some(&state)
            {
                let reason = IgnoreReason::NothingForThisFunction { key: key.clone() };
                info!(release = %key, %reason, "ignored");
                return Ok(Outcome::ignored(reason));
            }
            for claim in state
                .pending
                .iter_mut()
                .filter(|c| todo.contains(&c.effect) && c.by.is_none())
            {
                claim.by = Some(invocation.clone());
            }

            let mut version = expected;
            let ours: Vec<Effect> = ours
                .into_iter()
                .filter(|e| !performed.iter().any(|r| r.effect() == *e))
                .collect();
            let mut promotion_on_record = stored.as_ref().is_some_and(|s| {
                s.release
                    .pending
                    .iter()
                    .any(|c| c.effect == Effect::Promote)
            });
            if !ours.is_empty() && todo.is_empty() {
                // Already durable: perform them without claiming again.
                todo.extend(ours);
            } else if !todo.is_empty() {
                match self.ledger.save(&state, expected).await {
                    Ok(v) => version = Some(v),
                    Err(SaveError::Conflict { .. }) => continue,
                    Err(SaveError::Adapter(e)) => return Err(ledger_error(e)),
                }
                promotion_on_record |= state.pending.iter().any(|c| c.effect == Effect::Promote);
            }
            // Effects are independent of each other: one failing does not keep the others
            // from happening (an announcement owed to a refused upload goes out even while
            // the index cannot be assembled).
            let mut failed: Vec<(Effect, EffectError)> = Vec::new();
            while let Some(effect) = todo.pop_front() {
                if failed.iter().any(|(e, _)| *e == effect) {
                    continue;
                }
                // A promotion is on record before its first PutImage: once a tag has moved it
                // runs to the end, even if this invocation dies right after (a promotion that
                // follows another effect's result, like the index assembled while both scans
                // were already in, is claimed in memory only until this write).
                if effect == Effect::Promote && !promotion_on_record {
                    match self.ledger.save(&state, version).await {
                        Ok(v) => version = Some(v),
                        Err(SaveError::Conflict { .. }) => continue 'attempts,
                        Err(SaveError::Adapter(e)) => return Err(ledger_error(e)),
                    }
                    promotion_on_record = true;
                }
                let result = match self.perform(&state, effect).await {
                    Ok(result) => result,
                    Err(source) => {
                        warn!(release = %key, %effect, error = %source, "effect failed");
                        failed.push((effect, source));
                        continue;
                    }
                };
                info!(release = %key, %effect, "effect performed");
                effects_done.push(effect);
                performed.push(result.clone());
                if let Decision::Apply { next, effects } =
                    decide(Some(&state), key, &Fact::Completed(result), now)
                {
                    let before = std::mem::replace(&mut state, *next);
                    let mut effects: VecDeque<Effect> = effects.into();
                    self.defer_others(Some(&before), &mut state, &mut effects);
                    todo.extend(effects);
                }
            }
            if !failed.is_empty() {
                // Record what did happen and give back the claims on what did not, so the
                // retry of this event can act at once. Best effort: if this write fails too,
                // the claims lapse with their lease.
                let unclaimed: Vec<Effect> = failed.iter().map(|(e, _)| *e).collect();
                state.release_claims(&unclaimed);
                if let Err(save) = self.ledger.save(&state, version).await {
                    warn!(release = %key, error = %save, "could not release claims after a failed effect");
                }
                let (effect, source) = failed.remove(0);
                return Err(PipelineError::Effect {
                    release: release_id.clone(),
                    effect,
                    source,
                });
            }
            if stored.as_ref().map(|s| &s.release) == Some(&state) {
                return Ok(self.applied(&state, &effects_done));
            }
            match self.ledger.save(&state, version).await {
                Ok(_) => return Ok(self.applied(&state, &effects_done)),
                Err(SaveError::Conflict { .. }) => continue,
                Err(SaveError::Adapter(e)) => return Err(ledger_error(e)),
            }
        }
        Err(PipelineError::Contention {
            release: release_id,
        })
    }

    fn applied(&self, release: &Release, effects: &[Effect]) -> Outcome {
        info!(release = %release.key, phase = %release.phase(), "recorded");
        Outcome::Applied {
            release: release.key.to_string(),
            phase: release.phase(),
            effects: effects.iter().map(Effect::to_string).collect(),
        }
    }
}

fn invocation_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{}-{nanos:x}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
