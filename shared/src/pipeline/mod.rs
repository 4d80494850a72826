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

use crate::config::policy::{self, RepositoryPolicy};
use crate::config::Config;
use crate::domain::gate::Verdict;
use crate::domain::release::Service;
use crate::domain::release_event::ReleaseEvent;
use crate::domain::{Arch, Digest, Effect, Fact, Millis, Release, ReleaseKey};
use crate::error::AdapterError;
use crate::ports::{BuildDetails, Builds, Clock, EventPublisher, Ledger, Listing, Ports, Stored};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};

/// The pipeline with its ports. One instance per process, built outside the handler.
pub struct Pipeline<P: Ports> {
    pub(crate) config: Config,
    pub(crate) ledger: P::Ledger,
    pub(crate) builds: P::Builds,
    pub(crate) registry: P::Registry,
    pub(crate) events: P::Events,
    pub(crate) clock: P::Clock,
    /// Signs the release attestations (a signer without a key leaves them unsigned).
    pub(crate) signer: P::Signer,
    /// The services this function's role may use: effects on others are left to the
    /// functions that can (or the reconciler), never claimed here.
    performs: &'static [Service],
    /// The namespace's repositories this process has made sure exist (each once).
    ensured: Arc<Mutex<HashSet<String>>>,
    /// A repository's policy as this invocation read it: the effects a judged scan leads to
    /// (attestation, promotion) apply the policy that judged it, without reading it again.
    read_policy: Option<(String, Arc<RepositoryPolicy>)>,
}

impl<P: Ports> Clone for Pipeline<P> {
    fn clone(&self) -> Self {
        Pipeline {
            config: self.config.clone(),
            ledger: self.ledger.clone(),
            builds: self.builds.clone(),
            registry: self.registry.clone(),
            events: self.events.clone(),
            clock: self.clock.clone(),
            signer: self.signer.clone(),
            performs: self.performs,
            ensured: Arc::clone(&self.ensured),
            read_policy: self.read_policy.clone(),
        }
    }
}

/// Every service: build-completed, the reconciler, the CLI and tests.
pub const EVERY_SERVICE: &[Service] = &[
    Service::CodeBuild,
    Service::Registry,
    Service::Events,
    Service::Signing,
];

/// One adapter per port, for [`Pipeline::new`].
pub struct Adapters<P: Ports> {
    pub ledger: P::Ledger,
    pub builds: P::Builds,
    pub registry: P::Registry,
    pub events: P::Events,
    pub clock: P::Clock,
    pub signer: P::Signer,
}

impl<P: Ports> Pipeline<P> {
    /// The pipeline on its ports, performing effects on every service.
    pub fn new(config: Config, adapters: Adapters<P>) -> Self {
        Pipeline {
            config,
            ledger: adapters.ledger,
            builds: adapters.builds,
            registry: adapters.registry,
            events: adapters.events,
            clock: adapters.clock,
            signer: adapters.signer,
            performs: EVERY_SERVICE,
            ensured: Arc::default(),
            read_policy: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
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

impl<P: Ports> Pipeline<P> {
    /// Publishes a release event that no release's effects carry (the `Release Rejected` of
    /// an upload whose key names no repository of archgate's: there is no release to record
    /// it on). At least once, like every event: its key lets consumers drop repeats.
    pub async fn announce(&self, event: &ReleaseEvent) -> Result<(), PipelineError> {
        self.events
            .publish(event)
            .await
            .map_err(|source| PipelineError::Announce {
                detail_type: event.detail_type(),
                key: event.detail.source.key.clone(),
                source,
            })
    }

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

    /// The policy of a repository now: the environment's values overlaid with what the
    /// repository sets in the ledger (read fresh, so a change applies to what is judged after
    /// it).
    pub async fn policy_of(&self, repository: &str) -> Result<RepositoryPolicy, EffectError> {
        if let Some((read_for, policy)) = &self.read_policy {
            if read_for == repository {
                return Ok(RepositoryPolicy::clone(policy));
            }
        }
        let read = self.ledger.policy(repository).await?;
        Ok(policy::effective(&self.config, repository, read)?)
    }

    /// This pipeline, applying `policy` (just read) to `repository` for the rest of the
    /// invocation.
    pub(crate) fn applying(&self, repository: &str, policy: &RepositoryPolicy) -> Self {
        Pipeline {
            read_policy: Some((repository.to_owned(), Arc::new(policy.clone()))),
            ..self.clone()
        }
    }

    /// An upload named like one of its repository's moving tags starts nothing. The
    /// environment's moving tags are refused on arrival (every repository keeps them
    /// reserved); a repository's own are known once its policy is read, here.
    pub async fn screen_upload(&self, key: &ReleaseKey, fact: Fact) -> Result<Fact, PipelineError> {
        let Fact::SourceUploaded { source, .. } = &fact else {
            return Ok(fact);
        };
        let policy =
            self.policy_of(&key.repository)
                .await
                .map_err(|source| PipelineError::Policy {
                    repository: key.repository.clone(),
                    source,
                })?;
        Ok(match key.tag.reserved(&policy.moving_tags) {
            Some(reason) => Fact::SourceRefused {
                source: source.clone(),
                reason,
            },
            None => fact,
        })
    }

    /// The verdicts on a release's candidate images as their current findings give them
    /// under its repository's current policy; `None` for an image not scanned yet.
    pub async fn current_verdicts(
        &self,
        release: &Release,
    ) -> Result<Vec<(Arch, Digest, Option<(Verdict, Option<Millis>)>)>, EffectError> {
        let today = crate::domain::gate::date_of(self.now());
        let policy = self.policy_of(&release.key.repository).await?;
        Ok(gate::current_verdicts(&policy.gate, &self.registry, release, &today).await?)
    }

    /// What CodeBuild says of a build; `None` when it does not know it.
    pub async fn build_details(
        &self,
        build_id: &str,
    ) -> Result<Option<BuildDetails>, AdapterError> {
        self.builds.details(build_id).await
    }
}
