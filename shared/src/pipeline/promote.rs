//! Promotion: the release tag on the candidate index, then the moving tags, forward only.

use super::{invocation_id, EffectError, Pipeline};
use crate::domain::attestation::{Blob, Descriptor};
use crate::domain::oci::{self, RawManifest};
use crate::domain::release::CLAIM_LEASE_MS;
use crate::domain::{Digest, EffectResult, Release};
use crate::error::AdapterError;
use crate::ports::{Clock, Ledger, MovingTagHolder, MovingTagLock, Ports, Registry};
use tracing::warn;

impl<P: Ports> Pipeline<P> {
    /// PutImage of the candidate index under the release tag, then each moving tag. Identical
    /// content under a tag it already has is success, so a repeat is harmless.
    pub(super) async fn promote(&self, release: &Release) -> Result<EffectResult, EffectError> {
        let repository = &release.key.repository;
        let candidate = release.candidate.as_ref().ok_or(EffectError::NoCandidate)?;
        // Read first: an unreadable policy promotes nothing rather than half.
        let policy = self.policy_of(repository).await?;
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
        self.attach(release, &raw).await?;
        let release_tag = release.key.tag.to_string();
        match self
            .registry
            .put_image(
                repository,
                Some(release_tag.as_str()),
                &raw,
                &candidate.digest,
            )
            .await
        {
            Ok(_) => {}
            Err(source) if is_immutable_tag_conflict(&source) => {
                return Err(EffectError::ReleaseTagTaken {
                    repository: repository.clone(),
                    tag: release_tag,
                    source: Box::new(source),
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
        // A moving tag that is this release's own name would move its release tag later
        // (`repo set` refuses that, but a policy may change after the upload).
        for moving in policy
            .moving_tags
            .iter()
            .filter(|m| m.as_str() != release.key.tag.as_str())
        {
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
                .put_image(repository, Some(tag), &raw, &target.digest)
                .await
            {
                Ok(_) => {}
                Err(source) if is_immutable_tag_conflict(&source) => {
                    return Err(EffectError::ImmutableMovingTag {
                        repository: repository.to_owned(),
                        tag: tag.to_owned(),
                        source: Box::new(source),
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

impl<P: Ports> Pipeline<P> {
    /// The recorded attestations as referrers of the index, before any tag names it: a
    /// published tag always has them. The bytes are the recorded ones, so a repeat pushes
    /// the same images.
    async fn attach(&self, release: &Release, index: &RawManifest) -> Result<(), EffectError> {
        if release.attestations.is_empty() {
            return Ok(());
        }
        let repository = &release.key.repository;
        let subject = Descriptor::of(
            index.media_type.as_deref().unwrap_or(oci::OCI_INDEX),
            &index.bytes,
        );
        let referrers: Vec<_> = release
            .attestations
            .iter()
            .map(|a| a.referrer(subject.clone()))
            .collect();
        let mut blobs: Vec<Blob> = Vec::new();
        for blob in referrers.iter().flat_map(|r| r.blobs.iter()) {
            if !blobs.iter().any(|b| b.digest == blob.digest) {
                blobs.push(blob.clone());
            }
        }
        self.registry.upload_blobs(repository, &blobs).await?;
        for referrer in referrers {
            let manifest = RawManifest {
                media_type: Some(oci::OCI_MANIFEST.to_owned()),
                bytes: referrer.manifest,
            };
            self.registry
                .put_image(repository, None, &manifest, &referrer.digest)
                .await?;
        }
        Ok(())
    }
}

fn is_immutable_tag_conflict(error: &AdapterError) -> bool {
    matches!(error, AdapterError::TagTaken { .. })
}
