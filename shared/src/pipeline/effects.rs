//! Performing the effects a decision claimed: builds, the candidate index, announcements.

use super::{EffectError, Pipeline};
use crate::build_variables::{
    arch_digest, IMAGE_ARCH, IMAGE_REPO_NAME, IMAGE_TAG, RELEASE_ATTEMPT, RELEASE_TAG,
    RELEASE_UPLOAD,
};
use crate::config::Config;
use crate::domain::oci::{self, RawManifest};
use crate::domain::release::{Candidate, CandidateChild};
use crate::domain::release_event::{notice_event, release_event};
use crate::domain::repository::RepositorySettings;
use crate::domain::{Arch, BuildRole, Digest, Effect, EffectResult, Release};
use crate::ports::{BuildRequest, Builds, EventPublisher, Ledger, Ports, Registry};
use sha2::{Digest as _, Sha256};

impl<P: Ports> Pipeline<P> {
    /// A repository of the namespace exists before its first build pushes to it: created
    /// with archgate's settings on its first release (once per process; a concurrent first
    /// release finds it). The default repository is the template's.
    async fn ensure_repository(&self, repository: &str) -> Result<(), EffectError> {
        let ensured = || self.ensured.lock().unwrap_or_else(|p| p.into_inner());
        if repository == self.config.repository || ensured().contains(repository) {
            return Ok(());
        }
        let policy = self.policy_of(repository).await?;
        let settings =
            RepositorySettings::new(self.config.repository_kms_key.clone(), &policy.moving_tags);
        let found = self
            .registry
            .ensure_repository(repository, &settings)
            .await?;
        tracing::info!(%repository, ?found, "repository ready for its first build");
        ensured().insert(repository.to_owned());
        Ok(())
    }

    pub(super) async fn perform(
        &self,
        release: &Release,
        effect: Effect,
    ) -> Result<EffectResult, EffectError> {
        match effect {
            Effect::StartBuild(role) => {
                let request = build_request(&self.config, release, role)?;
                self.ensure_repository(&release.key.repository).await?;
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
            // The registry effects' futures are large; on the heap they keep every caller's
            // future (and the stack of the thread polling it) small.
            Effect::AssembleCandidate => Box::pin(self.assemble_candidate(release)).await,
            Effect::ResolveCandidate => Box::pin(self.resolve_candidate(release)).await,
            Effect::Attest => Box::pin(self.attest(release)).await,
            Effect::Promote => Box::pin(self.promote(release)).await,
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
            let mut image = oci::platform_image(*arch, &raw)?;
            // The platform as the build reported the image's config (the registry API cannot
            // read config blobs); without a report, only the architecture it was built for.
            if let Some(platform) = &release.build(BuildRole::arch(*arch)).image_platform {
                image.platform = platform.clone();
            }
            images.push(image);
        }
        let candidate_tag = release.key.tag.candidate_tag();
        let source = &release.source;
        let annotations = oci::IndexAnnotations {
            created: crate::domain::rfc3339(source.uploaded_at.unwrap_or(release.created_at)),
            source: format!("s3://{}/{}", source.bucket, source.key),
            revision: source.revision().to_owned(),
            version: release.key.tag.to_string(),
        };
        let index = oci::build_index(&annotations, &images);
        let raw = RawManifest {
            media_type: Some(oci::OCI_INDEX.to_owned()),
            bytes: index.bytes,
        };
        self.registry
            .put_image(
                repository,
                Some(candidate_tag.as_str()),
                &raw,
                &index.digest,
            )
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
        (RELEASE_ATTEMPT.to_owned(), release.attempt.to_string()),
        (
            RELEASE_UPLOAD.to_owned(),
            release.source.revision().to_owned(),
        ),
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
