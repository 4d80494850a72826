//! Reading the repository back: what is in it and whether the candidate index is whole.

use archgate::domain::oci::{self, RawManifest, ACCEPTED_MEDIA_TYPES};
use archgate::domain::Digest;
use aws_sdk_ecr::types::ImageIdentifier;

#[derive(Debug, Clone)]
pub struct ImageRow {
    pub digest: String,
    pub tags: Vec<String>,
    pub media_type: String,
    pub pushed_at: Option<i64>,
}

pub async fn repository_contents(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
) -> Result<Vec<ImageRow>, aws_sdk_ecr::Error> {
    let mut rows = Vec::new();
    let mut pages = ecr
        .describe_images()
        .repository_name(repository)
        .max_results(1000)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for image in page?.image_details() {
            rows.push(ImageRow {
                digest: image.image_digest().unwrap_or_default().to_owned(),
                tags: image.image_tags().to_vec(),
                media_type: image
                    .image_manifest_media_type()
                    .unwrap_or_default()
                    .to_owned(),
                pushed_at: image.image_pushed_at().map(|t| t.secs()),
            });
        }
    }
    rows.sort_by(|a, b| {
        a.tags
            .first()
            .cmp(&b.tags.first())
            .then(a.digest.cmp(&b.digest))
    });
    Ok(rows)
}

/// The children an index in the registry references, by platform, or why it is not whole.
pub async fn index_children(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    tag: &str,
) -> Result<Vec<(String, Digest)>, String> {
    let output = ecr
        .batch_get_image()
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .set_accepted_media_types(Some(
            ACCEPTED_MEDIA_TYPES
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
        ))
        .send()
        .await
        .map_err(|e| format!("BatchGetImage {tag}: {}", aws_sdk_ecr::Error::from(e)))?;
    let image = output
        .images()
        .first()
        .ok_or_else(|| format!("{tag} is not in {repository}"))?;
    let raw = RawManifest {
        media_type: image.image_manifest_media_type().map(str::to_owned),
        bytes: image
            .image_manifest()
            .unwrap_or_default()
            .as_bytes()
            .to_vec(),
    };
    let mut children = Vec::new();
    for arch in archgate::domain::Arch::ALL {
        let child = oci::platform_image(arch, &raw).map_err(|e| e.to_string())?;
        // Every child must itself resolve in the repository, or the index is broken.
        let found = ecr
            .batch_get_image()
            .repository_name(repository)
            .image_ids(
                ImageIdentifier::builder()
                    .image_digest(child.digest.as_str())
                    .build(),
            )
            .set_accepted_media_types(Some(
                ACCEPTED_MEDIA_TYPES
                    .iter()
                    .map(|m| (*m).to_owned())
                    .collect(),
            ))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "BatchGetImage {}: {}",
                    child.digest,
                    aws_sdk_ecr::Error::from(e)
                )
            })?;
        if found.images().is_empty() {
            return Err(format!(
                "{tag} references {} ({arch}), which is not in {repository}",
                child.digest
            ));
        }
        children.push((format!("linux/{}", arch.as_str()), child.digest));
    }
    Ok(children)
}

/// The digest a tag names in the repository, if it names one.
pub async fn resolve(ecr: &aws_sdk_ecr::Client, repository: &str, tag: &str) -> Option<String> {
    let output = ecr
        .describe_images()
        .repository_name(repository)
        .image_ids(ImageIdentifier::builder().image_tag(tag).build())
        .send()
        .await
        .ok()?;
    output
        .image_details()
        .first()
        .and_then(|d| d.image_digest())
        .map(str::to_owned)
}
