//! The in-memory registry as retention sees it: listing, reads by digest, deletes that
//! ECR would refuse (an image an index lists), repositories by prefix.

use super::*;
use archgate::operation::{
    ECR_BATCH_DELETE_IMAGE, ECR_BATCH_GET_IMAGE, ECR_DESCRIBE_IMAGES, ECR_DESCRIBE_REPOSITORIES,
};

impl<C: Clock> RepositoryInventory for MemoryRegistry<C> {
    async fn list_images(&self, repository: &str) -> Result<Vec<ImageSummary>, AdapterError> {
        let fault = self.chaos.enter(ECR_DESCRIBE_IMAGES).await?;
        let images = {
            let state = self.lock();
            let repo = state
                .repositories
                .get(repository)
                .ok_or_else(|| not_found("DescribeImages", repository))?;
            repo.images
                .iter()
                .map(|(digest, image)| ImageSummary {
                    digest: digest.clone(),
                    tags: repo.tags_of(digest),
                    pushed_at: image.pushed_at,
                    media_type: image.manifest.media_type.clone(),
                    artifact_media_type: image.artifact_media_type.clone(),
                    size_bytes: Some(image.manifest.bytes.len() as u64),
                })
                .collect::<Vec<_>>()
        };
        self.chaos.leave(fault, ECR_DESCRIBE_IMAGES, images).await
    }

    async fn manifests_by_digest(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, FetchedManifest)>, AdapterError> {
        let mut fetched = Vec::with_capacity(digests.len());
        for batch in digests.chunks(archgate::ports::BATCH_LIMIT) {
            let fault = self.chaos.enter(ECR_BATCH_GET_IMAGE).await?;
            let read = self.read(repository, batch)?;
            fetched.extend(self.chaos.leave(fault, ECR_BATCH_GET_IMAGE, read).await?);
        }
        Ok(fetched)
    }

    async fn delete_images(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<DeleteResult, AdapterError> {
        let outcomes = self
            .batch_delete(repository, digests, |repo, log, digest| {
                if !repo.images.contains_key(digest) {
                    return Err(NOT_FOUND.to_owned());
                }
                if repo.referenced_by_an_index(digest) {
                    return Err(refuse_listed(log, repository, digest));
                }
                let tags = repo.tags_of(digest);
                for tag in &tags {
                    repo.tags.remove(tag);
                }
                repo.remove(digest);
                log.push(RegistryEvent::Deleted {
                    repository: repository.to_owned(),
                    digest: digest.clone(),
                    tags,
                });
                Ok(())
            })
            .await?;
        let mut result = DeleteResult::default();
        for (digest, outcome) in outcomes {
            match outcome {
                Ok(()) => result.deleted.push(digest),
                Err(reason) => result.failed.push((digest, reason)),
            }
        }
        Ok(result)
    }

    async fn untag(
        &self,
        repository: &str,
        tags: &[String],
    ) -> Result<Vec<(String, String)>, AdapterError> {
        let outcomes = self
            .batch_delete(repository, tags, |repo, log, tag| {
                let Some(digest) = repo.tags.get(tag).cloned() else {
                    return Err(NOT_FOUND.to_owned());
                };
                if repo.tags_of(&digest).len() > 1 {
                    repo.tags.remove(tag);
                    log.push(RegistryEvent::Untagged {
                        repository: repository.to_owned(),
                        tag: tag.clone(),
                        digest,
                    });
                } else if repo.referenced_by_an_index(&digest) {
                    // The last tag: ECR deletes the image, which an index still lists.
                    return Err(refuse_listed(log, repository, &digest));
                } else {
                    repo.tags.remove(tag);
                    repo.remove(&digest);
                    log.push(RegistryEvent::Deleted {
                        repository: repository.to_owned(),
                        digest,
                        tags: vec![tag.clone()],
                    });
                }
                Ok(())
            })
            .await?;
        Ok(outcomes
            .into_iter()
            .filter_map(|(tag, outcome)| outcome.err().map(|reason| (tag, reason)))
            .collect())
    }

    async fn repositories(&self, prefix: &str) -> Result<Vec<String>, AdapterError> {
        let fault = self.chaos.enter(ECR_DESCRIBE_REPOSITORIES).await?;
        let names: Vec<String> = self
            .lock()
            .repositories
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect();
        self.chaos
            .leave(fault, ECR_DESCRIBE_REPOSITORIES, names)
            .await
    }
}

impl<C: Clock> MemoryRegistry<C> {
    /// BatchDeleteImage of `items` (digests or tags), one call per [`BATCH_LIMIT`] through
    /// the fault plan: `each` applies one item to the repository, logging what happened, and
    /// says why it failed; the answer is each item's outcome, in order.
    async fn batch_delete<T: Clone>(
        &self,
        repository: &str,
        items: &[T],
        mut each: impl FnMut(&mut Repository, &mut Vec<RegistryEvent>, &T) -> Result<(), String> + Send,
    ) -> Result<Vec<(T, Result<(), String>)>, AdapterError> {
        let mut outcomes = Vec::with_capacity(items.len());
        for batch in items.chunks(archgate::ports::BATCH_LIMIT) {
            let fault = self.chaos.enter(ECR_BATCH_DELETE_IMAGE).await?;
            let answer: Vec<(T, Result<(), String>)> = {
                let mut state = self.lock();
                let State {
                    repositories, log, ..
                } = &mut *state;
                let repo = repositories
                    .get_mut(repository)
                    .ok_or_else(|| not_found("BatchDeleteImage", repository))?;
                batch
                    .iter()
                    .map(|item| (item.clone(), each(repo, log, item)))
                    .collect()
            };
            outcomes.extend(
                self.chaos
                    .leave(fault, ECR_BATCH_DELETE_IMAGE, answer)
                    .await?,
            );
        }
        Ok(outcomes)
    }
}

/// ECR refuses to delete an image an index still lists (`ImageReferencedByManifestList`):
/// logged for the simulation's checks; the reason is the per-image failure.
fn refuse_listed(log: &mut Vec<RegistryEvent>, repository: &str, digest: &Digest) -> String {
    let reason =
        "ImageReferencedByManifestList: the image is referenced by an image index".to_owned();
    log.push(RegistryEvent::DeleteRefused {
        repository: repository.to_owned(),
        digest: digest.clone(),
        reason: reason.clone(),
    });
    reason
}
