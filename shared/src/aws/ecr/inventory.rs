//! The registry as retention sees it: list, read by digest, delete, find repositories.

use super::EcrRegistry;
use crate::aws::classify;
use crate::domain::oci::RawManifest;
use crate::domain::Digest;
use crate::error::AdapterError;
use crate::operation::{ECR_BATCH_DELETE_IMAGE, ECR_DESCRIBE_IMAGES, ECR_DESCRIBE_REPOSITORIES};
use crate::ports::{RepositoryInventory, BATCH_LIMIT, LIST_PAGE};
use aws_sdk_ecr::types::{ImageFailure, ImageFailureCode, ImageIdentifier};

impl RepositoryInventory for EcrRegistry {
    async fn list_images(
        &self,
        repository: &str,
    ) -> Result<Vec<crate::ports::ImageSummary>, AdapterError> {
        let mut images = Vec::new();
        let mut pages = self
            .client
            .describe_images()
            .repository_name(repository)
            .max_results(LIST_PAGE as i32)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(ECR_DESCRIBE_IMAGES, e))?;
            for detail in page.image_details() {
                let Some(digest) = detail.image_digest().and_then(|d| Digest::parse(d).ok()) else {
                    continue;
                };
                images.push(crate::ports::ImageSummary {
                    digest,
                    tags: detail.image_tags().to_vec(),
                    pushed_at: detail
                        .image_pushed_at()
                        .and_then(|t| t.to_millis().ok())
                        .unwrap_or(0),
                    media_type: detail.image_manifest_media_type().map(str::to_owned),
                    artifact_media_type: detail.artifact_media_type().map(str::to_owned),
                    size_bytes: detail.image_size_in_bytes().map(|s| s.max(0) as u64),
                });
            }
        }
        Ok(images)
    }

    async fn manifests_by_digest(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, crate::ports::FetchedManifest)>, AdapterError> {
        use crate::ports::FetchedManifest;
        let mut fetched = Vec::with_capacity(digests.len());
        for batch in digests.chunks(BATCH_LIMIT) {
            let ids = batch
                .iter()
                .map(|d| ImageIdentifier::builder().image_digest(d.as_str()).build())
                .collect();
            let output = self.batch_get_image(repository, ids).await?;
            for digest in batch {
                let image = output.images().iter().find(|i| {
                    i.image_id().and_then(|id| id.image_digest()) == Some(digest.as_str())
                });
                let result = match image.and_then(|i| i.image_manifest()) {
                    Some(manifest) => FetchedManifest::Found(RawManifest {
                        media_type: image
                            .and_then(|i| i.image_manifest_media_type())
                            .map(str::to_owned),
                        bytes: manifest.as_bytes().to_vec(),
                    }),
                    None => {
                        let failure = output.failures().iter().find(|f| {
                            f.image_id().and_then(|id| id.image_digest()) == Some(digest.as_str())
                        });
                        match failure {
                            None => FetchedManifest::NotFound("not returned".to_owned()),
                            Some(f)
                                if f.failure_code() == Some(&ImageFailureCode::ImageNotFound) =>
                            {
                                FetchedManifest::NotFound(failure_text(f))
                            }
                            Some(f) => FetchedManifest::Unreadable(failure_text(f)),
                        }
                    }
                };
                fetched.push((digest.clone(), result));
            }
        }
        Ok(fetched)
    }

    async fn delete_images(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<crate::ports::DeleteResult, AdapterError> {
        let ids: Vec<ImageIdentifier> = digests
            .iter()
            .map(|d| ImageIdentifier::builder().image_digest(d.as_str()).build())
            .collect();
        let failures = self.batch_delete(repository, &ids).await?;
        let mut result = crate::ports::DeleteResult::default();
        for (batch, failures) in digests.chunks(BATCH_LIMIT).zip(failures) {
            for failure in &failures {
                if let Some(digest) = failure
                    .image_id()
                    .and_then(|id| id.image_digest())
                    .and_then(|d| Digest::parse(d).ok())
                {
                    result.failed.push((digest, failure_text(failure)));
                }
            }
            // Every requested image without a failure is gone. (`imageIds` names deleted images
            // by tag; an untagged one may not be listed at all.)
            for digest in batch {
                let failed = result.failed.iter().any(|(d, _)| d == digest);
                if !failed && !result.deleted.contains(digest) {
                    result.deleted.push(digest.clone());
                }
            }
        }
        Ok(result)
    }

    async fn untag(
        &self,
        repository: &str,
        tags: &[String],
    ) -> Result<Vec<(String, String)>, AdapterError> {
        let ids: Vec<ImageIdentifier> = tags
            .iter()
            .map(|t| ImageIdentifier::builder().image_tag(t).build())
            .collect();
        Ok(self
            .batch_delete(repository, &ids)
            .await?
            .iter()
            .flatten()
            .map(|failure| {
                let tag = failure.image_id().and_then(|id| id.image_tag());
                (tag.unwrap_or("?").to_owned(), failure_text(failure))
            })
            .collect())
    }

    async fn repositories(&self, prefix: &str) -> Result<Vec<String>, AdapterError> {
        let mut names = Vec::new();
        let mut pages = self
            .client
            .describe_repositories()
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(ECR_DESCRIBE_REPOSITORIES, e))?;
            names.extend(
                page.repositories()
                    .iter()
                    .filter_map(|r| r.repository_name())
                    .filter(|n| n.starts_with(prefix))
                    .map(str::to_owned),
            );
        }
        names.sort();
        Ok(names)
    }
}

impl EcrRegistry {
    /// BatchDeleteImage of `ids`, one call per [`BATCH_LIMIT`]: each call's per-image
    /// failures, in the order of the batches.
    async fn batch_delete(
        &self,
        repository: &str,
        ids: &[ImageIdentifier],
    ) -> Result<Vec<Vec<ImageFailure>>, AdapterError> {
        let mut failures = Vec::new();
        for batch in ids.chunks(BATCH_LIMIT) {
            let output = self
                .client
                .batch_delete_image()
                .repository_name(repository)
                .set_image_ids(Some(batch.to_vec()))
                .send()
                .await
                .map_err(|e| classify(ECR_BATCH_DELETE_IMAGE, e))?;
            failures.push(output.failures().to_vec());
        }
        Ok(failures)
    }
}

/// A per-image failure as ECR reports it: `code: reason`.
fn failure_text(failure: &ImageFailure) -> String {
    format!(
        "{}: {}",
        failure
            .failure_code()
            .map(|c| c.as_str())
            .unwrap_or("Unknown"),
        failure.failure_reason().unwrap_or_default()
    )
}
