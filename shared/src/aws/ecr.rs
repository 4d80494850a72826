//! ECR: BatchGetImage by tag (every manifest and index media type), PutImage with the digest
//! archgate computed over the exact bytes.

use super::classify;
use crate::domain::oci::{RawManifest, ACCEPTED_MEDIA_TYPES};
use crate::domain::Digest;
use crate::error::AdapterError;
use crate::ports::{PutOutcome, Registry};
use aws_sdk_ecr::error::SdkError;
use aws_sdk_ecr::operation::put_image::PutImageError;
use aws_sdk_ecr::types::{ImageFailureCode, ImageIdentifier};

#[derive(Clone, Debug)]
pub struct EcrRegistry {
    client: aws_sdk_ecr::Client,
}

impl EcrRegistry {
    pub fn new(client: aws_sdk_ecr::Client) -> Self {
        EcrRegistry { client }
    }
}

fn unexpected(operation: &'static str, reason: String) -> AdapterError {
    AdapterError::Unexpected {
        service: "ECR",
        operation,
        reason,
    }
}

impl Registry for EcrRegistry {
    async fn manifests_by_tag(
        &self,
        repository: &str,
        tags: &[String],
    ) -> Result<Vec<Option<RawManifest>>, AdapterError> {
        let ids = tags
            .iter()
            .map(|t| ImageIdentifier::builder().image_tag(t).build())
            .collect();
        let output = self
            .client
            .batch_get_image()
            .repository_name(repository)
            .set_image_ids(Some(ids))
            .set_accepted_media_types(Some(
                ACCEPTED_MEDIA_TYPES
                    .iter()
                    .map(|m| (*m).to_owned())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| classify("ECR", "BatchGetImage", e))?;
        for failure in output.failures() {
            let not_found = matches!(
                failure.failure_code(),
                Some(ImageFailureCode::ImageNotFound)
                    | Some(ImageFailureCode::ImageTagDoesNotMatchDigest)
            );
            if !not_found {
                return Err(unexpected(
                    "BatchGetImage",
                    format!(
                        "{:?}: {}",
                        failure.failure_code(),
                        failure.failure_reason().unwrap_or_default()
                    ),
                ));
            }
        }
        let mut found = vec![None; tags.len()];
        for image in output.images() {
            let Some(tag) = image.image_id().and_then(|id| id.image_tag()) else {
                continue;
            };
            let Some(slot) = tags.iter().position(|t| t == tag) else {
                continue;
            };
            let manifest = image.image_manifest().ok_or_else(|| {
                unexpected("BatchGetImage", format!("image {tag} without a manifest"))
            })?;
            let raw = RawManifest {
                media_type: image.image_manifest_media_type().map(str::to_owned),
                bytes: manifest.as_bytes().to_vec(),
            };
            // ECR reports the digest it stored; the bytes must hash to it or they are not
            // what was pushed.
            if let Some(reported) = image.image_id().and_then(|id| id.image_digest()) {
                let computed = Digest::of(&raw.bytes);
                if computed.as_str() != reported {
                    return Err(unexpected(
                        "BatchGetImage",
                        format!("image {tag}: manifest bytes hash to {computed}, ECR reports {reported}"),
                    ));
                }
            }
            found[slot] = Some(raw);
        }
        Ok(found)
    }

    async fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        manifest: &RawManifest,
        digest: &Digest,
    ) -> Result<PutOutcome, AdapterError> {
        let body = std::str::from_utf8(&manifest.bytes)
            .map_err(|e| unexpected("PutImage", format!("manifest is not UTF-8: {e}")))?;
        let result = self
            .client
            .put_image()
            .repository_name(repository)
            .image_tag(tag)
            .image_manifest(body)
            .set_image_manifest_media_type(manifest.media_type.clone())
            .image_digest(digest.as_str())
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Created),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutImageError::ImageAlreadyExistsException(_)) =>
            {
                Ok(PutOutcome::AlreadyExists)
            }
            Err(e) => Err(classify("ECR", "PutImage", e)),
        }
    }
}
