//! Applies one fact to one release: read, [`decide`], claim, perform the effects, record.
//!
//! The claim is written before any effect runs, so a concurrent invocation leaves the effect
//! alone; the results are recorded after the effects ran, so the ledger never claims an effect
//! that did not happen. A conflicting write means someone else moved the release: read again,
//! decide again, and re-apply the results already obtained (they are facts like any other).

mod apply;
mod attest;
mod effects;
mod error;
mod gate;
mod outcome;
mod promote;
mod scans;

use apply::invocation_id;
pub use effects::{build_request, idempotency_token};
pub use error::{EffectError, PipelineError};
pub use outcome::Outcome;
pub use scans::{Rejudge, Rejudged};

use crate::config::Config;
use crate::domain::gate::Verdict;
use crate::domain::release::Service;
use crate::domain::{Arch, Digest, Effect, Millis, Release, ReleaseKey};
use crate::error::AdapterError;
use crate::ports::{
    BuildDetails, Builds, Clock, EventPublisher, Ledger, Listing, Registry, Signer, Stored,
    Unsigned,
};
use std::collections::VecDeque;

/// Conflicting writes before giving up (the invocation is then retried by Lambda).
const MAX_ATTEMPTS: usize = 8;

/// The pipeline with its ports. One instance per process, built outside the handler.
#[derive(Clone)]
pub struct Pipeline<L, B, R, E, C, S = Unsigned> {
    pub(crate) config: Config,
    pub(crate) ledger: L,
    pub(crate) builds: B,
    pub(crate) registry: R,
    pub(crate) events: E,
    pub(crate) clock: C,
    /// Signs the release attestations (or leaves them unsigned).
    pub(crate) signer: S,
    /// The services this function's role may use: effects on others are left to the
    /// functions that can (or the reconciler), never claimed here.
    performs: &'static [Service],
}

/// Every service: build-completed, the reconciler, the CLI and tests.
pub const EVERY_SERVICE: &[Service] = &[
    Service::CodeBuild,
    Service::Registry,
    Service::Events,
    Service::Signing,
];

impl<L, B, R, E, C> Pipeline<L, B, R, E, C> {
    /// The pipeline on its ports, performing effects on every service; attestations unsigned
    /// until [`Pipeline::signing_with`].
    pub fn new(config: Config, ledger: L, builds: B, registry: R, events: E, clock: C) -> Self {
        Pipeline {
            config,
            ledger,
            builds,
            registry,
            events,
            clock,
            signer: Unsigned,
            performs: EVERY_SERVICE,
        }
    }
}

impl<L, B, R, E, C, S> Pipeline<L, B, R, E, C, S> {
    /// The same pipeline signing its attestations with `signer`.
    pub fn signing_with<T>(self, signer: T) -> Pipeline<L, B, R, E, C, T> {
        Pipeline {
            config: self.config,
            ledger: self.ledger,
            builds: self.builds,
            registry: self.registry,
            events: self.events,
            clock: self.clock,
            signer,
            performs: self.performs,
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
            state.leave_to_others(before, *effect);
            false
        });
    }
}

impl<L, B, R, E, C, S> Pipeline<L, B, R, E, C, S>
where
    L: Ledger,
    B: Builds,
    R: Registry,
    E: EventPublisher,
    C: Clock,
    S: Signer,
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
}
