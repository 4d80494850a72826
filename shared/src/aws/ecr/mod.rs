//! ECR: BatchGetImage by tag (every manifest and index media type), PutImage with the digest
//! archgate computed over the exact bytes.

mod inventory;

use super::classify;
use crate::domain::attestation::Blob;
use crate::domain::gate::{Finding, ScanStatus, Severity, SeverityCounts};
use crate::domain::oci::{RawManifest, ACCEPTED_MEDIA_TYPES};
use crate::domain::repository::{Ensured, RepositorySettings, TagMutability};
use crate::domain::Digest;
use crate::error::AdapterError;
use crate::operation::{
    ECR_BATCH_CHECK_LAYER_AVAILABILITY, ECR_BATCH_GET_IMAGE, ECR_COMPLETE_LAYER_UPLOAD,
    ECR_CREATE_REPOSITORY, ECR_DESCRIBE_IMAGE_SCAN_FINDINGS, ECR_INITIATE_LAYER_UPLOAD,
    ECR_PUT_IMAGE, ECR_PUT_IMAGE_TAG_MUTABILITY, ECR_UPLOAD_LAYER_PART,
};
use crate::ports::{Registry, ScanFindings};
use aws_sdk_ecr::error::SdkError;
use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
use aws_sdk_ecr::operation::complete_layer_upload::CompleteLayerUploadError;
use aws_sdk_ecr::operation::create_repository::CreateRepositoryError;
use aws_sdk_ecr::operation::describe_image_scan_findings::DescribeImageScanFindingsError;
use aws_sdk_ecr::operation::put_image::PutImageError;
use aws_sdk_ecr::types::LayerAvailability;
use aws_sdk_ecr::types::ScanStatus as EcrScanStatus;
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageFailureCode, ImageIdentifier,
    ImageScanningConfiguration, ImageTagMutability, ImageTagMutabilityExclusionFilter,
    ImageTagMutabilityExclusionFilterType,
};

/// Pages of findings read for one image before giving up (1,000 findings a page).
const MAX_FINDING_PAGES: usize = 100;

#[derive(Clone, Debug)]
pub struct EcrRegistry {
    client: aws_sdk_ecr::Client,
}

impl EcrRegistry {
    /// One BatchGetImage (at most [`crate::ports::BATCH_LIMIT`] ids), accepting every
    /// manifest media type archgate reads.
    async fn batch_get_image(
        &self,
        repository: &str,
        ids: Vec<ImageIdentifier>,
    ) -> Result<BatchGetImageOutput, AdapterError> {
        self.client
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
            .map_err(|e| classify(ECR_BATCH_GET_IMAGE, e))
    }

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
    async fn ensure_repository(
        &self,
        repository: &str,
        settings: &RepositorySettings,
    ) -> Result<Ensured, AdapterError> {
        let encryption = match &settings.kms_key {
            Some(key) => EncryptionConfiguration::builder()
                .encryption_type(EncryptionType::Kms)
                .kms_key(key),
            None => EncryptionConfiguration::builder().encryption_type(EncryptionType::Aes256),
        }
        .build()
        .map_err(|e| unexpected("CreateRepository", e.to_string()))?;
        let mut create = self
            .client
            .create_repository()
            .repository_name(repository)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(true)
                    .build(),
            )
            .encryption_configuration(encryption);
        let (mutability, filters) = mutability_of(&settings.tag_mutability, "CreateRepository")?;
        create = create
            .image_tag_mutability(mutability)
            .set_image_tag_mutability_exclusion_filters(filters);
        match create.send().await {
            Ok(_) => Ok(Ensured::Created),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    CreateRepositoryError::RepositoryAlreadyExistsException(_)
                ) =>
            {
                Ok(Ensured::Existed)
            }
            Err(e) => Err(classify(ECR_CREATE_REPOSITORY, e)),
        }
    }

    async fn set_tag_mutability(
        &self,
        repository: &str,
        mutability: &TagMutability,
    ) -> Result<(), AdapterError> {
        let (mutability, filters) = mutability_of(mutability, "PutImageTagMutability")?;
        self.client
            .put_image_tag_mutability()
            .repository_name(repository)
            .image_tag_mutability(mutability)
            .set_image_tag_mutability_exclusion_filters(filters)
            .send()
            .await
            .map_err(|e| classify(ECR_PUT_IMAGE_TAG_MUTABILITY, e))?;
        Ok(())
    }

    async fn manifests_by_tag(
        &self,
        repository: &str,
        tags: &[String],
    ) -> Result<Vec<Option<RawManifest>>, AdapterError> {
        let ids = tags
            .iter()
            .map(|t| ImageIdentifier::builder().image_tag(t).build())
            .collect();
        let output = self.batch_get_image(repository, ids).await?;
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

    async fn images_by_digest(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<Vec<Option<RawManifest>>, AdapterError> {
        use crate::ports::{FetchedManifest, RepositoryInventory};
        let fetched = self.manifests_by_digest(repository, digests).await?;
        let mut found = Vec::with_capacity(fetched.len());
        for (digest, result) in fetched {
            found.push(match result {
                FetchedManifest::Found(raw) => {
                    let computed = Digest::of(&raw.bytes);
                    if computed != digest {
                        return Err(unexpected(
                            "BatchGetImage",
                            format!("image {digest}: manifest bytes hash to {computed}"),
                        ));
                    }
                    Some(raw)
                }
                FetchedManifest::NotFound(_) => None,
                FetchedManifest::Unreadable(reason) => {
                    return Err(unexpected(
                        "BatchGetImage",
                        format!("image {digest}: {reason}"),
                    ))
                }
            });
        }
        Ok(found)
    }

    async fn scan_findings(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<ScanFindings>, AdapterError> {
        let mut result = ScanFindings {
            status: None,
            counts: SeverityCounts::new(),
            findings: Vec::new(),
            completed_at: None,
        };
        let mut pages = self
            .client
            .describe_image_scan_findings()
            .repository_name(repository)
            .image_id(
                ImageIdentifier::builder()
                    .image_digest(digest.as_str())
                    .build(),
            )
            .max_results(1000)
            .into_paginator()
            .send();
        // Bounded: a runaway listing must not hold the invocation until its timeout.
        let mut read = 0;
        while let Some(page) = pages.next().await {
            read += 1;
            if read > MAX_FINDING_PAGES {
                return Err(unexpected(
                    "DescribeImageScanFindings",
                    format!("more than {MAX_FINDING_PAGES} pages of findings for {digest}"),
                ));
            }
            let page = match page {
                Ok(page) => page,
                Err(SdkError::ServiceError(e))
                    if matches!(
                        e.err(),
                        DescribeImageScanFindingsError::ScanNotFoundException(_)
                    ) =>
                {
                    return Ok(None)
                }
                Err(SdkError::ServiceError(e))
                    if matches!(
                        e.err(),
                        DescribeImageScanFindingsError::ImageNotFoundException(_)
                    ) =>
                {
                    return Err(AdapterError::NotFound {
                        service: "ECR",
                        operation: "DescribeImageScanFindings",
                        what: format!("image {digest} in repository {repository}"),
                    })
                }
                Err(e) => return Err(classify(ECR_DESCRIBE_IMAGE_SCAN_FINDINGS, e)),
            };
            result.status =
                page.image_scan_status()
                    .and_then(|s| s.status())
                    .and_then(|s| match s {
                        EcrScanStatus::Complete | EcrScanStatus::Active => {
                            Some(ScanStatus::Complete)
                        }
                        EcrScanStatus::Failed => Some(ScanStatus::Failed),
                        EcrScanStatus::UnsupportedImage => Some(ScanStatus::Unsupported),
                        _ => None,
                    });
            if let Some(findings) = page.image_scan_findings() {
                result.completed_at = findings
                    .image_scan_completed_at()
                    .and_then(|t| t.to_millis().ok());
                for (severity, count) in findings.finding_severity_counts().into_iter().flatten() {
                    if let Some(severity) = Severity::parse(severity.as_str()) {
                        result.counts.insert(severity, (*count).max(0) as u64);
                    }
                }
                for finding in findings.findings() {
                    let attribute = |key: &str| {
                        finding
                            .attributes()
                            .iter()
                            .find(|a| a.key() == key)
                            .and_then(|a| a.value())
                            .map(str::to_owned)
                    };
                    result.findings.push(Finding {
                        id: finding.name().unwrap_or("unnamed").to_owned(),
                        severity: severity_of(finding.severity().map(|s| s.as_str())),
                        package: attribute("package_name"),
                        fixed_in: None,
                    });
                }
                for finding in findings.enhanced_findings() {
                    let details = finding.package_vulnerability_details();
                    let package = details.and_then(|d| d.vulnerable_packages().first());
                    result.findings.push(Finding {
                        id: details
                            .and_then(|d| d.vulnerability_id())
                            .or(finding.title())
                            .unwrap_or("unnamed")
                            .to_owned(),
                        severity: severity_of(finding.severity()),
                        package: package.and_then(|p| p.name()).map(str::to_owned),
                        fixed_in: package
                            .and_then(|p| p.fixed_in_version())
                            .map(str::to_owned),
                    });
                }
            }
        }
        Ok(Some(result))
    }

    async fn upload_blobs(&self, repository: &str, blobs: &[Blob]) -> Result<(), AdapterError> {
        if blobs.is_empty() {
            return Ok(());
        }
        let checked = self
            .client
            .batch_check_layer_availability()
            .repository_name(repository)
            .set_layer_digests(Some(blobs.iter().map(|b| b.digest.to_string()).collect()))
            .send()
            .await
            .map_err(|e| classify(ECR_BATCH_CHECK_LAYER_AVAILABILITY, e))?;
        let available: Vec<&str> = checked
            .layers()
            .iter()
            .filter(|l| l.layer_availability() == Some(&LayerAvailability::Available))
            .filter_map(|l| l.layer_digest())
            .collect();
        for blob in blobs
            .iter()
            .filter(|b| !available.contains(&b.digest.as_str()))
        {
            self.upload_blob(repository, blob).await?;
        }
        Ok(())
    }

    async fn put_image(
        &self,
        repository: &str,
        tag: Option<&str>,
        manifest: &RawManifest,
        digest: &Digest,
    ) -> Result<(), AdapterError> {
        let body = std::str::from_utf8(&manifest.bytes)
            .map_err(|e| unexpected("PutImage", format!("manifest is not UTF-8: {e}")))?;
        let result = self
            .client
            .put_image()
            .repository_name(repository)
            .set_image_tag(tag.map(str::to_owned))
            .image_manifest(body)
            .set_image_manifest_media_type(manifest.media_type.clone())
            .image_digest(digest.as_str())
            .send()
            .await;
        let taken = |source: crate::error::BoxError| AdapterError::TagTaken {
            service: "ECR",
            operation: "PutImage",
            tag: tag.unwrap_or_default().to_owned(),
            source,
        };
        match result {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutImageError::ImageTagAlreadyExistsException(_)) =>
            {
                Err(taken(e.into_err().into()))
            }
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutImageError::ImageAlreadyExistsException(_)) =>
            {
                if tag.is_none() {
                    // Content-addressed: the same digest is already there.
                    return Ok(());
                }
                // The answer names the image the tag already has. Only the same digest is
                // "already done"; another digest under the tag is a tag conflict (some
                // registries report an immutable tag this way).
                let message = e.err().meta().message().unwrap_or_default().to_owned();
                let other = message
                    .match_indices("sha256:")
                    .map(|(at, _)| &message[at..(at + 71).min(message.len())])
                    .find(|named| *named != digest.as_str());
                match other {
                    None => Ok(()),
                    Some(_) => Err(taken(message.into())),
                }
            }
            Err(e) => Err(classify(ECR_PUT_IMAGE, e)),
        }
    }
}

impl EcrRegistry {
    /// One blob in one part (attestations are a few kilobytes; ECR's parts go to 20 MiB).
    /// A blob that arrived meanwhile is as good as uploaded.
    async fn upload_blob(&self, repository: &str, blob: &Blob) -> Result<(), AdapterError> {
        let upload = self
            .client
            .initiate_layer_upload()
            .repository_name(repository)
            .send()
            .await
            .map_err(|e| classify(ECR_INITIATE_LAYER_UPLOAD, e))?;
        let upload_id = upload
            .upload_id()
            .ok_or_else(|| unexpected("InitiateLayerUpload", "no upload id".to_owned()))?;
        let last = (blob.bytes.len() as i64 - 1).max(0);
        self.client
            .upload_layer_part()
            .repository_name(repository)
            .upload_id(upload_id)
            .part_first_byte(0)
            .part_last_byte(last)
            .layer_part_blob(aws_smithy_types::Blob::new(blob.bytes.clone()))
            .send()
            .await
            .map_err(|e| classify(ECR_UPLOAD_LAYER_PART, e))?;
        match self
            .client
            .complete_layer_upload()
            .repository_name(repository)
            .upload_id(upload_id)
            .layer_digests(blob.digest.as_str())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    CompleteLayerUploadError::LayerAlreadyExistsException(_)
                ) =>
            {
                Ok(())
            }
            // The upload may have completed with its answer lost (a retry then finds no
            // upload): the blob is what counts.
            Err(e) => match self.available(repository, &blob.digest).await {
                Ok(true) => Ok(()),
                _ => Err(classify(ECR_COMPLETE_LAYER_UPLOAD, e)),
            },
        }
    }

    async fn available(&self, repository: &str, digest: &Digest) -> Result<bool, AdapterError> {
        let checked = self
            .client
            .batch_check_layer_availability()
            .repository_name(repository)
            .layer_digests(digest.as_str())
            .send()
            .await
            .map_err(|e| classify(ECR_BATCH_CHECK_LAYER_AVAILABILITY, e))?;
        Ok(checked
            .layers()
            .iter()
            .any(|l| l.layer_availability() == Some(&LayerAvailability::Available)))
    }
}

/// ECR's severities, including Inspector's `UNTRIAGED`, which archgate counts as UNDEFINED.
fn severity_of(value: Option<&str>) -> Severity {
    value
        .and_then(Severity::parse)
        .unwrap_or(Severity::Undefined)
}

/// ECR's mutability setting and exclusion filters for archgate's [`TagMutability`].
fn mutability_of(
    mutability: &TagMutability,
    operation: &'static str,
) -> Result<
    (
        ImageTagMutability,
        Option<Vec<ImageTagMutabilityExclusionFilter>>,
    ),
    AdapterError,
> {
    match mutability {
        TagMutability::Mutable => Ok((ImageTagMutability::Mutable, None)),
        TagMutability::ImmutableExcept(filters) => {
            let filters = filters
                .iter()
                .map(|filter| {
                    ImageTagMutabilityExclusionFilter::builder()
                        .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                        .filter(filter)
                        .build()
                        .map_err(|e| unexpected(operation, e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((ImageTagMutability::ImmutableWithExclusion, Some(filters)))
        }
    }
}
