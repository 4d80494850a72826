//! The in-memory registry as retention sees it: listing, reads by digest, deletes that
//! ECR would refuse (an image an index lists), repositories by prefix.

use super::*;

impl<C: Clock> RepositoryInventory for MemoryRegistry<C> {
    async fn list_images(&self, repository: &str) -> Result<Vec<ImageSummary>, AdapterError> {
        let fault = self
            .chaos
            .enter("ECR", "DescribeImages", "ECR.DescribeImages")
            .await?;
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
        self.chaos
            .leave(fault, "ECR", "DescribeImages", images)
            .await
    }

    async fn manifests_by_digest(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, FetchedManifest)>, AdapterError> {
        let mut fetched = Vec::with_capacity(digests.len());
        for batch in digests.chunks(crate::ports::BATCH_LIMIT) {
            let fault = self
                .chaos
                .enter("ECR", "BatchGetImage", "ECR.BatchGetImage")
                .await?;
            let read = self.read(repository, batch)?;
            fetched.extend(
                self.chaos
                    .leave(fault, "ECR", "BatchGetImage", read)
                    .await?,
            );
        }
        Ok(fetched)
    }

    async fn delete_images(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<DeleteResult, AdapterError> {
        let mut result = DeleteResult::default();
        for batch in digests.chunks(crate::ports::BATCH_LIMIT) {
            let fault = self
                .chaos
                .enter("ECR", "BatchDeleteImage", "ECR.BatchDeleteImage")
                .await?;
            let mut answer = DeleteResult::default();
            {
                let mut state = self.lock();
                let State {
                    repositories, log, ..
                } = &mut *state;
                let repo = repositories
                    .get_mut(repository)
                    .ok_or_else(|| not_found("BatchDeleteImage", repository))?;
                for digest in batch {
                    if !repo.images.contains_key(digest) {
                        answer.failed.push((
                            digest.clone(),
                            "ImageNotFound: Requested image not found".to_owned(),
                        ));
                    } else if repo.referenced_by_an_index(digest) {
                        let reason = "ImageReferencedByManifestList: the image is referenced by an image index".to_owned();
                        log.push(RegistryEvent::DeleteRefused {
                            repository: repository.to_owned(),
                            digest: digest.clone(),
                            reason: reason.clone(),
                        });
                        answer.failed.push((digest.clone(), reason));
                    } else {
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
                        answer.deleted.push(digest.clone());
                    }
                }
            }
            let answer = self
                .chaos
                .leave(fault, "ECR", "BatchDeleteImage", answer)
                .await?;
            result.deleted.extend(answer.deleted);
            result.failed.extend(answer.failed);
        }
        Ok(result)
    }

    async fn untag(
        &self,
        repository: &str,
        tags: &[String],
    ) -> Result<Vec<(String, String)>, AdapterError> {
        let mut failed = Vec::new();
        for batch in tags.chunks(crate::ports::BATCH_LIMIT) {
            let fault = self
                .chaos
                .enter("ECR", "BatchDeleteImage", "ECR.BatchDeleteImage")
                .await?;
            let mut answer = Vec::new();
            {
                let mut state = self.lock();
                let State {
                    repositories, log, ..
                } = &mut *state;
                let repo = repositories
                    .get_mut(repository)
                    .ok_or_else(|| not_found("BatchDeleteImage", repository))?;
                for tag in batch {
                    let Some(digest) = repo.tags.get(tag).cloned() else {
                        answer.push((
                            tag.clone(),
                            "ImageNotFound: Requested image not found".to_owned(),
                        ));
                        continue;
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
                        let reason = "ImageReferencedByManifestList: the image is referenced by an image index".to_owned();
                        log.push(RegistryEvent::DeleteRefused {
                            repository: repository.to_owned(),
                            digest: digest.clone(),
                            reason: reason.clone(),
                        });
                        answer.push((tag.clone(), reason));
                    } else {
                        repo.tags.remove(tag);
                        repo.remove(&digest);
                        log.push(RegistryEvent::Deleted {
                            repository: repository.to_owned(),
                            digest,
                            tags: vec![tag.clone()],
                        });
                    }
                }
            }
            let answer = self
                .chaos
                .leave(fault, "ECR", "BatchDeleteImage", answer)
                .await?;
            failed.extend(answer);
        }
        Ok(failed)
    }

    async fn repositories(&self, prefix: &str) -> Result<Vec<String>, AdapterError> {
        let fault = self
            .chaos
            .enter("ECR", "DescribeRepositories", "ECR.DescribeRepositories")
            .await?;
        let names: Vec<String> = self
            .lock()
            .repositories
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect();
        self.chaos
            .leave(fault, "ECR", "DescribeRepositories", names)
            .await
    }
}
