//! Reading the repository back: what is in it and whether the candidate index is whole.

use archgate::aws::EcrRegistry;
use archgate::domain::oci::{self, RawManifest};
use archgate::domain::{Arch, Digest};
use archgate::error::chain;
use archgate::ports::Registry;
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
    // The tag is resolved to a digest first: asked by tag, the emulator's BatchGetImage
    // names the tag the image got last, which the registry adapter's lookup by tag does not
    // take for the one asked for once the index also carries its release tags.
    let index = resolve(ecr, repository, tag)
        .await
        .and_then(|d| Digest::parse(&d).ok())
        .ok_or_else(|| format!("{tag} is not in {repository}"))?;
    let registry = EcrRegistry::new(ecr.clone());
    let raw = fetch(&registry, repository, &[index])
        .await?
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| format!("{tag} is not in {repository}"))?;
    let mut children = Vec::new();
    for arch in Arch::ALL {
        let child = oci::platform_image(arch, &raw).map_err(|e| e.to_string())?;
        children.push((arch, child.digest));
    }
    // Every child must itself resolve in the repository, or the index is broken.
    let digests: Vec<Digest> = children.iter().map(|(_, d)| d.clone()).collect();
    let found = fetch(&registry, repository, &digests).await?;
    for ((arch, digest), image) in children.iter().zip(&found) {
        if image.is_none() {
            return Err(format!(
                "{tag} references {digest} ({arch}), which is not in {repository}"
            ));
        }
    }
    Ok(children
        .into_iter()
        .map(|(arch, digest)| (format!("linux/{}", arch.as_str()), digest))
        .collect())
}

async fn fetch(
    registry: &EcrRegistry,
    repository: &str,
    digests: &[Digest],
) -> Result<Vec<Option<RawManifest>>, String> {
    registry
        .images_by_digest(repository, digests)
        .await
        .map_err(|e| chain(&e))
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
