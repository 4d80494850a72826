//! Applies one fact to one release: read, [`decide`], claim, perform the effects, record.
//!
//! The claim is written before any effect runs, so a concurrent invocation leaves the effect
//! alone; the results are recorded after the effects ran, so the ledger never claims an effect
//! that did not happen. A conflicting write means someone else moved the release: read again,
//! decide again, and re-apply the results already obtained (they are facts like any other).

use crate::build_variables::{arch_digest, IMAGE_ARCH, IMAGE_REPO_NAME, IMAGE_TAG, RELEASE_TAG};
use crate::config::Config;
use crate::domain::oci::{self, RawManifest};
use crate::domain::release::{Candidate, CandidateChild, Service, CLAIM_LEASE_MS};
use crate::domain::release_event::{notice_event, release_event};
use crate::domain::IgnoreReason;
use crate::domain::{
    decide, Arch, BuildRole, Decision, Digest, Effect, EffectResult, Fact, Phase, Release,
    ReleaseKey,
};
use crate::error::AdapterError;
use crate::ports::{
    BuildRequest, Builds, Clock, EventPublisher, Ledger, MovingTagHolder, MovingTagLock, Registry,
    SaveError, Stored,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use std::collections::VecDeque;
use tracing::{info, warn};

/// Conflicting writes before giving up (the invocation is then retried by Lambda).
const MAX_ATTEMPTS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Outcome {
    Applied {
        release: String,
        phase: Phase,
        effects: Vec<String>,
    },
    /// Answered as `{"status": "ignored", "kind": ..., "reason": ...}`.
    Ignored {
        #[serde(flatten)]
        reason: IgnoreReason,
    },
}

impl Outcome {
    pub fn ignored(reason: IgnoreReason) -> Self {
        Outcome::Ignored { reason }
    }
}

impl Outcome {
    /// One outcome for several releases: the single one as it is, else `applied` when any
    /// applied (listing each), else the ignored reasons joined.
    pub fn combine(mut outcomes: Vec<Outcome>) -> Outcome {
        if outcomes.len() == 1 {
            return outcomes.remove(0);
        }
        let applied: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Applied { .. }))
            .collect();
        match applied.first() {
            Some(Outcome::Applied { phase, .. }) => Outcome::Applied {
                release: applied
                    .iter()
                    .filter_map(|o| match o {
                        Outcome::Applied { release, .. } => Some(release.as_str()),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
                phase: *phase,
                effects: applied
                    .iter()
                    .flat_map(|o| match o {
                        Outcome::Applied { effects, .. } => effects.clone(),
                        _ => Vec::new(),
                    })
                    .collect(),
            },
            _ => Outcome::ignored(IgnoreReason::Several(
                outcomes
                    .into_iter()
                    .filter_map(|o| match o {
                        Outcome::Ignored { reason } => Some(reason),
                        Outcome::Applied { .. } => None,
                    })
                    .collect(),
            )),
        }
    }
}

impl From<IgnoreReason> for Outcome {
    fn from(reason: IgnoreReason) -> Self {
        Outcome::ignored(reason)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EffectError {
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    #[error(transparent)]
    Oci(#[from] oci::OciError),
    #[error("image {repository}:{tag} is not in the registry")]
    ImageMissing { repository: String, tag: String },
    #[error("no CodeBuild project is configured for the {0} build")]
    NoProject(BuildRole),
    #[error("{role} build has no recorded build id to stop")]
    NoBuildId { role: BuildRole },
    #[error("release has no candidate index to promote")]
    NoCandidate,
    #[error("the candidate index read back hashes to {found}, not the recorded {recorded}")]
    CandidateChanged { recorded: Digest, found: Digest },
    #[error(
        "repository {repository} has immutable tags, so the moving tag `{tag}` cannot move to the new release; \
         remove `{tag}` from ARCHGATE_MOVING_TAGS or make the repository's tags mutable"
    )]
    ImmutableMovingTag {
        repository: String,
        tag: String,
        #[source]
        source: AdapterError,
    },
    #[error("tag `{tag}` already names another image in repository {repository}, whose tags are immutable")]
    ReleaseTagTaken {
        repository: String,
        tag: String,
        #[source]
        source: AdapterError,
    },
    #[error(
        "the moving tag `{tag}` of repository {repository} is being moved by another invocation"
    )]
    MovingTagBusy { repository: String, tag: String },
    #[error("the lock on the moving tag `{tag}` of repository {repository} ran out before the move was recorded")]
    MovingTagLockLost { repository: String, tag: String },
    #[error("notice {0} is no longer recorded")]
    NoNotice(u32),
}

impl EffectError {
    pub fn error_type(&self) -> &'static str {
        match self {
            EffectError::Adapter(e) => e.error_type(),
            EffectError::Oci(_) => "Archgate.InvalidImage",
            EffectError::ImageMissing { .. } => "Archgate.ImageMissing",
            EffectError::ImmutableMovingTag { .. } => "Archgate.ImmutableMovingTag",
            EffectError::ReleaseTagTaken { .. } => "Archgate.ReleaseTagTaken",
            EffectError::CandidateChanged { .. } => "Archgate.CandidateChanged",
            EffectError::MovingTagBusy { .. } | EffectError::MovingTagLockLost { .. } => {
                "Archgate.Contention"
            }
            EffectError::NoNotice(_) => "Archgate.Misconfigured",
            EffectError::NoProject(_)
            | EffectError::NoBuildId { .. }
            | EffectError::NoCandidate => "Archgate.Misconfigured",
        }
    }

    pub fn is_retryable(&self) -> bool {
        match self {
            EffectError::Adapter(e) => e.is_retryable(),
            // The build said it pushed; the registry may lag or the push may be replayed.
            EffectError::ImageMissing { .. } => true,
            EffectError::MovingTagBusy { .. } | EffectError::MovingTagLockLost { .. } => true,
            _ => false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("ledger access for {release} failed")]
    Ledger {
        release: String,
        #[source]
        source: AdapterError,
    },
    #[error("could not {effect} for {release}")]
    Effect {
        release: String,
        effect: Effect,
        #[source]
        source: EffectError,
    },
    /// Reading what CodeBuild or the registry says about a release failed.
    #[error("could not read the state of {release} from AWS")]
    Read {
        release: String,
        #[source]
        source: AdapterError,
    },
    #[error("release {release} changed under {MAX_ATTEMPTS} consecutive attempts")]
    Contention { release: String },
}

impl PipelineError {
    pub fn is_retryable(&self) -> bool {
        match self {
            PipelineError::Ledger { source, .. } | PipelineError::Read { source, .. } => {
                source.is_retryable()
            }
            PipelineError::Effect { source, .. } => source.is_retryable(),
            PipelineError::Contention { .. } => true,
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            PipelineError::Ledger { source, .. } | PipelineError::Read { source, .. } => {
                source.error_type()
            }
            PipelineError::Effect { source, .. } => source.error_type(),
            PipelineError::Contention { .. } => "Archgate.Contention",
        }
    }
}

/// The pipeline with its ports. One instance per process, built outside the handler.
#[derive(Clone)]
pub struct Pipeline<L, B, R, E, C> {
    pub config: Config,
    pub ledger: L,
    pub builds: B,
    pub registry: R,
    pub events: E,
    pub clock: C,
    /// The services this function's role may use: effects on others are left to the
    /// functions that can (or the reconciler), never claimed here.
    pub performs: &'static [Service],
}

/// Every service: build-completed, the reconciler, the CLI and tests.
pub const EVERY_SERVICE: &[Service] = &[Service::CodeBuild, Service::Registry, Service::Events];

impl<L, B, R, E, C> Pipeline<L, B, R, E, C> {
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

    async fn perform(
        &self,
        release: &Release,
        effect: Effect,
    ) -> Result<EffectResult, EffectError> {
        match effect {
            Effect::StartBuild(role) => {
                let request = build_request(&self.config, release, role)?;
                let build_id = self.builds.start(&request).await?;
                Ok(EffectResult::BuildStarted { role, build_id })
            }
            Effect::StopBuild(role) => {
                let build_id = release
                    .build(role)
                    .build_id
                    .as_deref()
                    .ok_or(EffectError::NoBuildId { role })?;
                self.builds.stop(build_id).await?;
                Ok(EffectResult::BuildStopped { role })
            }
            Effect::AssembleCandidate => self.assemble_candidate(release).await,
            Effect::ResolveCandidate => self.resolve_candidate(release).await,
            Effect::Promote => self.promote(release).await,
            Effect::Emit(kind) => {
                self.events.publish(&release_event(release, kind)).await?;
                Ok(EffectResult::Emitted { kind })
            }
            Effect::Announce(seq) => {
                let notice = release
                    .notices
                    .iter()
                    .find(|n| n.seq == seq)
                    .ok_or(EffectError::NoNotice(seq))?;
                self.events.publish(&notice_event(release, notice)).await?;
                Ok(EffectResult::Announced { seq })
            }
        }
    }

    /// Native manifest step: one BatchGetImage of the two images the builds pushed (by the
    /// digests they reported, so a later push under their tags changes nothing), one PutImage
    /// of the index.
    async fn assemble_candidate(&self, release: &Release) -> Result<EffectResult, EffectError> {
        let repository = &release.key.repository;
        let pushed: Option<Vec<Digest>> = Arch::ALL
            .iter()
            .map(|a| release.build(BuildRole::arch(*a)).image_digest.clone())
            .collect();
        let (tags, fetched) = match pushed {
            Some(digests) => (
                digests.iter().map(Digest::to_string).collect::<Vec<_>>(),
                self.registry.images_by_digest(repository, &digests).await?,
            ),
            // Builds that did not report their image (a buildspec without IMAGE_DIGEST): the
            // arch tags name them.
            None => {
                let tags: Vec<String> = Arch::ALL
                    .iter()
                    .map(|a| release.key.tag.arch_tag(*a))
                    .collect();
                let fetched = self.registry.manifests_by_tag(repository, &tags).await?;
                (tags, fetched)
            }
        };
        let mut images = Vec::with_capacity(2);
        for ((arch, tag), raw) in Arch::ALL.iter().zip(&tags).zip(fetched) {
            let raw = raw.ok_or_else(|| EffectError::ImageMissing {
                repository: repository.clone(),
                tag: tag.clone(),
            })?;
            images.push(oci::platform_image(*arch, &raw)?);
        }
        let candidate_tag = release.key.tag.candidate_tag();
        let index = oci::build_index(&candidate_tag, &images);
        let raw = RawManifest {
            media_type: Some(oci::OCI_INDEX.to_owned()),
            bytes: index.bytes,
        };
        self.registry
            .put_manifest(repository, &candidate_tag, &raw, &index.digest)
            .await?;
        let links: Vec<(Digest, Arch)> =
            images.iter().map(|i| (i.digest.clone(), i.arch)).collect();
        self.ledger.link_digests(&release.key, &links).await?;
        Ok(EffectResult::CandidatePublished {
            candidate: Candidate {
                tag: candidate_tag,
                digest: index.digest,
                children: images
                    .into_iter()
                    .map(|i| CandidateChild {
                        arch: i.arch,
                        digest: i.digest,
                    })
                    .collect(),
                manifest: String::from_utf8(raw.bytes).ok(),
                media_type: raw.media_type,
            },
        })
    }

    /// Codebuild mode: the manifest build pushed `<tag>-candidate`; read what it pushed (by
    /// the digest it reported, else by the tag).
    async fn resolve_candidate(&self, release: &Release) -> Result<EffectResult, EffectError> {
        let repository = &release.key.repository;
        let candidate_tag = release.key.tag.candidate_tag();
        let fetched = match &release.manifest.image_digest {
            Some(digest) => {
                self.registry
                    .images_by_digest(repository, std::slice::from_ref(digest))
                    .await?
            }
            None => {
                self.registry
                    .manifests_by_tag(repository, std::slice::from_ref(&candidate_tag))
                    .await?
            }
        };
        let raw =
            fetched
                .into_iter()
                .next()
                .flatten()
                .ok_or_else(|| EffectError::ImageMissing {
                    repository: repository.clone(),
                    tag: candidate_tag.clone(),
                })?;
        let mut children = Vec::new();
        for arch in Arch::ALL {
            let image = oci::platform_image(arch, &raw)?;
            children.push(CandidateChild {
                arch,
                digest: image.digest,
            });
        }
        let links: Vec<(Digest, Arch)> = children
            .iter()
            .map(|c| (c.digest.clone(), c.arch))
            .collect();
        self.ledger.link_digests(&release.key, &links).await?;
        Ok(EffectResult::CandidatePublished {
            candidate: Candidate {
                tag: candidate_tag,
                digest: Digest::of(&raw.bytes),
                children,
                manifest: String::from_utf8(raw.bytes.clone()).ok(),
                media_type: raw.media_type.clone(),
            },
        })
    }

    /// PutImage of the candidate index under the release tag, then each moving tag. Identical
    /// content under a tag it already has is success, so a repeat is harmless.
    async fn promote(&self, release: &Release) -> Result<EffectResult, EffectError> {
        let repository = &release.key.repository;
        let candidate = release.candidate.as_ref().ok_or(EffectError::NoCandidate)?;
        let raw = match &candidate.manifest {
            Some(manifest) => RawManifest {
                media_type: candidate.media_type.clone(),
                bytes: manifest.as_bytes().to_vec(),
            },
            None => self
                .registry
                .manifests_by_tag(repository, std::slice::from_ref(&candidate.tag))
                .await?
                .pop()
                .flatten()
                .ok_or_else(|| EffectError::ImageMissing {
                    repository: repository.clone(),
                    tag: candidate.tag.clone(),
                })?,
        };
        let found = Digest::of(&raw.bytes);
        if found != candidate.digest {
            return Err(EffectError::CandidateChanged {
                recorded: candidate.digest.clone(),
                found,
            });
        }
        let release_tag = release.key.tag.to_string();
        match self
            .registry
            .put_manifest(repository, &release_tag, &raw, &candidate.digest)
            .await
        {
            Ok(_) => {}
            Err(source) if is_immutable_tag_conflict(&source) => {
                return Err(EffectError::ReleaseTagTaken {
                    repository: repository.clone(),
                    tag: release_tag,
                    source,
                })
            }
            Err(e) => return Err(e.into()),
        }
        let me = MovingTagHolder {
            release: release.key.tag.clone(),
            uploaded_at: release.upload_order().0,
            digest: candidate.digest.clone(),
            manifest: String::from_utf8_lossy(&raw.bytes).into_owned(),
            media_type: raw.media_type.clone(),
        };
        let mut tags = vec![release_tag];
        for moving in &self.config.moving_tags {
            if self.move_tag(repository, moving, &me).await? {
                tags.push(moving.clone());
            }
        }
        Ok(EffectResult::Promoted { tags })
    }

    /// Moves a moving tag forward only: under the tag's lock in the ledger, the tag goes to
    /// the newest upload among the release it names, a move a dead predecessor left
    /// unfinished, and `me`. Returns whether `me` holds the tag afterwards.
    async fn move_tag(
        &self,
        repository: &str,
        tag: &str,
        me: &MovingTagHolder,
    ) -> Result<bool, EffectError> {
        let holder = invocation_id();
        // Another promotion holds the lock for the moment of its PutImage: wait a little
        // (about 6 s in all) before giving up for a retry.
        let mut backoff = 50;
        let (current, unfinished) = loop {
            let now = self.clock.now_millis();
            let lock = self
                .ledger
                .lock_moving_tag(repository, tag, &holder, me, now, now + CLAIM_LEASE_MS)
                .await?;
            match lock {
                MovingTagLock::Acquired { holder, unfinished } => break (holder, unfinished),
                MovingTagLock::Busy if backoff <= 3_200 => {
                    self.clock.pause(backoff).await;
                    backoff *= 2;
                }
                MovingTagLock::Busy => {
                    return Err(EffectError::MovingTagBusy {
                        repository: repository.to_owned(),
                        tag: tag.to_owned(),
                    })
                }
            }
        };
        let mut target = me;
        for other in [current.as_deref(), unfinished.as_deref()]
            .into_iter()
            .flatten()
        {
            if other.is_newer_than(target) {
                target = other;
            }
        }
        // The registry already names the target unless a move was left unfinished or the
        // target is new.
        let settled = unfinished.is_none() && current.as_deref() == Some(target);
        match self
            .move_tag_locked(repository, tag, &holder, settled, target)
            .await
        {
            Ok(()) => Ok(target.release == me.release),
            Err(error) => {
                // The move may or may not have happened: the lock lapses at once with its
                // intent kept, so whoever takes it next finishes the move. Best effort: else
                // the lock lapses with its lease.
                let now = self.clock.now_millis();
                if let Err(abandon) = self
                    .ledger
                    .abandon_moving_tag(repository, tag, &holder, now)
                    .await
                {
                    warn!(%tag, error = %abandon, "could not give back the moving tag's lock");
                }
                Err(error)
            }
        }
    }

    /// Under the lock: puts the tag on `target` (unless the registry names it already) and
    /// records it as the tag's holder, giving the lock back.
    async fn move_tag_locked(
        &self,
        repository: &str,
        tag: &str,
        holder: &str,
        settled: bool,
        target: &MovingTagHolder,
    ) -> Result<(), EffectError> {
        if !settled {
            let raw = RawManifest {
                media_type: target.media_type.clone(),
                bytes: target.manifest.as_bytes().to_vec(),
            };
            match self
                .registry
                .put_manifest(repository, tag, &raw, &target.digest)
                .await
            {
                Ok(_) => {}
                Err(source) if is_immutable_tag_conflict(&source) => {
                    return Err(EffectError::ImmutableMovingTag {
                        repository: repository.to_owned(),
                        tag: tag.to_owned(),
                        source,
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !self
            .ledger
            .unlock_moving_tag(repository, tag, holder, target)
            .await?
        {
            return Err(EffectError::MovingTagLockLost {
                repository: repository.to_owned(),
                tag: tag.to_owned(),
            });
        }
        Ok(())
    }
}

/// Unique enough to tell this invocation's claims from any other's.
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

fn is_immutable_tag_conflict(error: &AdapterError) -> bool {
    matches!(error, AdapterError::TagTaken { .. })
}

/// The StartBuild request for one of a release's builds.
pub fn build_request(
    config: &Config,
    release: &Release,
    role: BuildRole,
) -> Result<BuildRequest, EffectError> {
    let project = config
        .project_for(role)
        .ok_or(EffectError::NoProject(role))?
        .to_owned();
    let tag = &release.key.tag;
    let mut environment = vec![
        (IMAGE_REPO_NAME.to_owned(), release.key.repository.clone()),
        (RELEASE_TAG.to_owned(), tag.to_string()),
    ];
    match role {
        BuildRole::Amd64 | BuildRole::Arm64 => {
            let arch = if role == BuildRole::Amd64 {
                Arch::Amd64
            } else {
                Arch::Arm64
            };
            environment.push((IMAGE_TAG.to_owned(), tag.arch_tag(arch)));
            environment.push((IMAGE_ARCH.to_owned(), arch.as_str().to_owned()));
        }
        BuildRole::Manifest => {
            environment.push((IMAGE_TAG.to_owned(), tag.candidate_tag()));
            // The images the arch builds reported: the index is made of exactly these.
            for arch in Arch::ALL {
                if let Some(digest) = &release.build(BuildRole::arch(arch)).image_digest {
                    environment.push((arch_digest(arch).to_owned(), digest.to_string()));
                }
            }
        }
    }
    Ok(BuildRequest {
        project,
        source_location: format!("{}/{}", release.source.bucket, release.source.key),
        source_version: release.source.version_id.clone(),
        environment,
        idempotency_token: idempotency_token(release, role),
    })
}

/// Same release, same upload, same role: same token, so a repeated StartBuild is one build.
pub fn idempotency_token(release: &Release, role: BuildRole) -> String {
    let mut hash = Sha256::new();
    for part in [
        release.key.repository.as_str(),
        release.key.tag.as_str(),
        release.source.revision(),
        role.as_str(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    format!("archgate-{}", &hex::encode(hash.finalize())[..40])
}
