//! ECR in memory, with the semantics archgate depends on: images by digest with any number of
//! tags; PutImage of the same content under a tag it has is `ImageAlreadyExists` (success),
//! under a tag another image has moves the tag (mutable) or is refused (immutable);
//! BatchDeleteImage refuses an image an index lists (`ImageReferencedByManifestList`) and
//! reports per-image failures; BatchGetImage can fail per image (the simulation injects
//! that); scan findings per image as DescribeImageScanFindings reports them.

mod inventory;

use super::chaos::Chaos;
use archgate::domain::attestation::{Blob, ReferrerManifest};
use archgate::domain::oci::RawManifest;
use archgate::domain::repository::{Ensured, RepositorySettings, TagMutability};
use archgate::domain::retention::{read_links, ManifestLinks};
use archgate::domain::{Digest, Millis};
use archgate::error::AdapterError;
use archgate::operation::{
    ECR_BATCH_CHECK_LAYER_AVAILABILITY, ECR_BATCH_GET_IMAGE, ECR_COMPLETE_LAYER_UPLOAD,
    ECR_CREATE_REPOSITORY, ECR_DESCRIBE_IMAGE_SCAN_FINDINGS, ECR_INITIATE_LAYER_UPLOAD,
    ECR_PUT_IMAGE, ECR_PUT_IMAGE_TAG_MUTABILITY, ECR_UPLOAD_LAYER_PART,
};
use archgate::ports::{
    Clock, DeleteResult, FetchedManifest, ImageSummary, Registry, RepositoryInventory, ScanFindings,
};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub manifest: RawManifest,
    pub pushed_at: Millis,
    pub artifact_media_type: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Repository {
    pub immutable: bool,
    /// With `immutable`, the wildcard filters of the tags that still move
    /// (IMMUTABLE_WITH_EXCLUSION).
    pub exclusions: Vec<String>,
    pub images: BTreeMap<Digest, StoredImage>,
    pub tags: BTreeMap<String, Digest>,
    pub scans: BTreeMap<Digest, ScanFindings>,
    /// The images each index lists, read once when the index arrives.
    children: BTreeMap<Digest, Vec<Digest>>,
    /// Uploaded blobs (layers, configs). ECR keeps them apart from the images naming them.
    pub blobs: BTreeSet<Digest>,
}

impl Repository {
    pub fn tags_of(&self, digest: &Digest) -> Vec<String> {
        self.tags
            .iter()
            .filter(|(_, d)| *d == digest)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// The images an index in the repository lists, by digest.
    pub fn children_of(&self, digest: &Digest) -> Vec<Digest> {
        self.children.get(digest).cloned().unwrap_or_default()
    }

    /// Every index with the images it lists.
    pub fn indexes(&self) -> impl Iterator<Item = (&Digest, &Vec<Digest>)> {
        self.children.iter()
    }

    fn referenced_by_an_index(&self, digest: &Digest) -> bool {
        self.children
            .iter()
            .any(|(index, children)| index != digest && children.contains(digest))
    }

    fn insert(&mut self, digest: &Digest, image: StoredImage) {
        if self.images.contains_key(digest) {
            return;
        }
        if let ManifestLinks::Index { children } =
            read_links(image.manifest.media_type.as_deref(), &image.manifest.bytes)
        {
            self.children.insert(digest.clone(), children);
        }
        self.images.insert(digest.clone(), image);
    }

    fn remove(&mut self, digest: &Digest) {
        self.images.remove(digest);
        self.children.remove(digest);
        self.scans.remove(digest);
    }
}

/// Something the registry saw happen, for the simulation's checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryEvent {
    TagMoved {
        repository: String,
        tag: String,
        from: Option<Digest>,
        to: Digest,
        at: Millis,
    },
    Deleted {
        repository: String,
        digest: Digest,
        tags: Vec<String>,
    },
    DeleteRefused {
        repository: String,
        digest: Digest,
        reason: String,
    },
    /// A tag removed from an image that keeps other tags.
    Untagged {
        repository: String,
        tag: String,
        digest: Digest,
    },
}

/// ECR's per-image answer for an image it does not hold.
const NOT_FOUND: &str = "ImageNotFound: Requested image not found";

#[derive(Debug, Default)]
struct State {
    repositories: BTreeMap<String, Repository>,
    /// Reads of these digests fail (per-image failure), as long as they are listed here.
    unreadable: BTreeSet<Digest>,
    log: Vec<RegistryEvent>,
}

#[derive(Clone)]
pub struct MemoryRegistry<C> {
    state: Arc<Mutex<State>>,
    chaos: Chaos,
    clock: C,
}

fn not_found(operation: &'static str, repository: &str) -> AdapterError {
    AdapterError::Rejected {
        service: "ECR",
        operation,
        code: "RepositoryNotFoundException".to_owned(),
        source: format!("repository {repository} does not exist").into(),
    }
}

impl<C: Clock> MemoryRegistry<C> {
    pub fn new(chaos: Chaos, clock: C) -> Self {
        MemoryRegistry {
            state: Arc::default(),
            chaos,
            clock,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn create_repository(&self, name: &str, immutable: bool) {
        self.lock()
            .repositories
            .entry(name.to_owned())
            .or_default()
            .immutable = immutable;
    }

    /// Whether a repository of that name exists.
    pub fn has_repository(&self, name: &str) -> bool {
        self.lock().repositories.contains_key(name)
    }

    /// A copy of a repository as it is now (for checks).
    pub fn repository(&self, name: &str) -> Repository {
        self.lock()
            .repositories
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    /// Reads a repository as it is now without copying it (for checks).
    pub fn inspect<T>(&self, name: &str, read: impl FnOnce(&Repository) -> T) -> T {
        let state = self.lock();
        match state.repositories.get(name) {
            Some(repo) => read(repo),
            None => read(&Repository::default()),
        }
    }

    /// What happened so far; drained.
    pub fn take_log(&self) -> Vec<RegistryEvent> {
        std::mem::take(&mut self.lock().log)
    }

    /// A push as `docker buildx --push` does it (no faults: the builder is not archgate).
    pub fn push(&self, repository: &str, tag: Option<&str>, manifest: RawManifest) -> Digest {
        let digest = Digest::of(&manifest.bytes);
        let now = self.clock.now_millis();
        let mut state = self.lock();
        let State {
            repositories, log, ..
        } = &mut *state;
        let repo = repositories.entry(repository.to_owned()).or_default();
        let is_index = matches!(
            manifest.media_type.as_deref(),
            Some(archgate::domain::oci::OCI_INDEX)
                | Some(archgate::domain::oci::DOCKER_MANIFEST_LIST)
        );
        repo.insert(
            &digest,
            StoredImage {
                manifest,
                pushed_at: now,
                // DescribeImages reports an image's config type; an index has none.
                artifact_media_type: (!is_index)
                    .then(|| "application/vnd.oci.image.config.v1+json".to_owned()),
            },
        );
        if let Some(tag) = tag {
            let from = repo.tags.insert(tag.to_owned(), digest.clone());
            if from.as_ref() != Some(&digest) {
                log.push(RegistryEvent::TagMoved {
                    repository: repository.to_owned(),
                    tag: tag.to_owned(),
                    from,
                    to: digest.clone(),
                    at: now,
                });
            }
        }
        digest
    }

    /// Someone deletes an image by hand (the console, `aws ecr batch-delete-image`): refused,
    /// as ECR refuses it, while an index lists it. Whether it went.
    pub fn delete_by_hand(&self, repository: &str, digest: &Digest) -> bool {
        let mut state = self.lock();
        let Some(repo) = state.repositories.get_mut(repository) else {
            return false;
        };
        if !repo.images.contains_key(digest) || repo.referenced_by_an_index(digest) {
            return false;
        }
        repo.remove(digest);
        repo.tags.retain(|_, d| d != digest);
        true
    }

    /// What the next DescribeImageScanFindings of an image reports.
    pub fn set_scan(&self, repository: &str, digest: &Digest, findings: ScanFindings) {
        self.lock()
            .repositories
            .entry(repository.to_owned())
            .or_default()
            .scans
            .insert(digest.clone(), findings);
    }

    /// Reads of `digest` fail per image until [`MemoryRegistry::heal`].
    pub fn break_reads(&self, digest: &Digest) {
        self.lock().unreadable.insert(digest.clone());
    }

    pub fn heal(&self) {
        self.lock().unreadable.clear();
    }

    fn read(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<Vec<(Digest, FetchedManifest)>, AdapterError> {
        let state = self.lock();
        let repo = state
            .repositories
            .get(repository)
            .ok_or_else(|| not_found("BatchGetImage", repository))?;
        Ok(digests
            .iter()
            .map(|digest| {
                let fetched = if state.unreadable.contains(digest) {
                    FetchedManifest::Unreadable(
                        "UpstreamUnavailable: the manifest could not be read".to_owned(),
                    )
                } else {
                    match repo.images.get(digest) {
                        Some(image) => FetchedManifest::Found(image.manifest.clone()),
                        None => FetchedManifest::NotFound(NOT_FOUND.to_owned()),
                    }
                };
                (digest.clone(), fetched)
            })
            .collect())
    }
}

impl Repository {
    /// Whether `tag` stays on the image it names (immutable, and no exclusion filter lets it
    /// move).
    fn pins(&self, tag: &str) -> bool {
        self.immutable && !self.exclusions.iter().any(|filter| wildcard(filter, tag))
    }
}

/// ECR's wildcard filters: `*` matches any run of characters, the rest matches itself.
fn wildcard(filter: &str, tag: &str) -> bool {
    let mut parts = filter.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = tag.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl<C: Clock> Registry for MemoryRegistry<C> {
    async fn set_tag_mutability(
        &self,
        repository: &str,
        mutability: &TagMutability,
    ) -> Result<(), AdapterError> {
        let fault = self.chaos.enter(ECR_PUT_IMAGE_TAG_MUTABILITY).await?;
        {
            let mut state = self.lock();
            let found = state
                .repositories
                .get_mut(repository)
                .ok_or_else(|| not_found("PutImageTagMutability", repository))?;
            (found.immutable, found.exclusions) = match mutability {
                TagMutability::Mutable => (false, Vec::new()),
                TagMutability::ImmutableExcept(filters) => (true, filters.clone()),
            };
        }
        self.chaos
            .leave(fault, ECR_PUT_IMAGE_TAG_MUTABILITY, ())
            .await
    }

    async fn ensure_repository(
        &self,
        repository: &str,
        settings: &RepositorySettings,
    ) -> Result<Ensured, AdapterError> {
        let fault = self.chaos.enter(ECR_CREATE_REPOSITORY).await?;
        let ensured = {
            let mut state = self.lock();
            if state.repositories.contains_key(repository) {
                Ensured::Existed
            } else {
                let (immutable, exclusions) = match &settings.tag_mutability {
                    TagMutability::Mutable => (false, Vec::new()),
                    TagMutability::ImmutableExcept(filters) => (true, filters.clone()),
                };
                state.repositories.insert(
                    repository.to_owned(),
                    Repository {
                        immutable,
                        exclusions,
                        ..Repository::default()
                    },
                );
                Ensured::Created
            }
        };
        self.chaos
            .leave(fault, ECR_CREATE_REPOSITORY, ensured)
            .await
    }

    async fn manifests_by_tag(
        &self,
        repository: &str,
        tags: &[String],
    ) -> Result<Vec<Option<RawManifest>>, AdapterError> {
        let fault = self.chaos.enter(ECR_BATCH_GET_IMAGE).await?;
        let found = {
            let state = self.lock();
            let repo = state
                .repositories
                .get(repository)
                .ok_or_else(|| not_found("BatchGetImage", repository))?;
            tags.iter()
                .map(|tag| {
                    let digest = repo.tags.get(tag)?;
                    if state.unreadable.contains(digest) {
                        return None;
                    }
                    repo.images.get(digest).map(|i| i.manifest.clone())
                })
                .collect::<Vec<_>>()
        };
        self.chaos.leave(fault, ECR_BATCH_GET_IMAGE, found).await
    }

    async fn images_by_digest(
        &self,
        repository: &str,
        digests: &[Digest],
    ) -> Result<Vec<Option<RawManifest>>, AdapterError> {
        let fault = self.chaos.enter(ECR_BATCH_GET_IMAGE).await?;
        let mut found = Vec::with_capacity(digests.len());
        for (digest, fetched) in self.read(repository, digests)? {
            found.push(match fetched {
                FetchedManifest::Found(raw) => Some(raw),
                FetchedManifest::NotFound(_) => None,
                FetchedManifest::Unreadable(reason) => {
                    return Err(AdapterError::Unexpected {
                        service: "ECR",
                        operation: "BatchGetImage",
                        reason: format!("image {digest}: {reason}"),
                    })
                }
            });
        }
        self.chaos.leave(fault, ECR_BATCH_GET_IMAGE, found).await
    }

    async fn scan_findings(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<ScanFindings>, AdapterError> {
        let fault = self.chaos.enter(ECR_DESCRIBE_IMAGE_SCAN_FINDINGS).await?;
        let found = {
            let state = self.lock();
            let repo = state
                .repositories
                .get(repository)
                .ok_or_else(|| not_found("DescribeImageScanFindings", repository))?;
            // ECR answers for images it has; a deleted image's findings went with it.
            if !repo.images.contains_key(digest) {
                return Err(AdapterError::NotFound {
                    service: "ECR",
                    operation: "DescribeImageScanFindings",
                    what: format!("image {digest} in repository {repository}"),
                });
            }
            repo.scans.get(digest).cloned()
        };
        self.chaos
            .leave(fault, ECR_DESCRIBE_IMAGE_SCAN_FINDINGS, found)
            .await
    }

    async fn upload_blobs(&self, repository: &str, blobs: &[Blob]) -> Result<(), AdapterError> {
        if blobs.is_empty() {
            return Ok(());
        }
        let fault = self.chaos.enter(ECR_BATCH_CHECK_LAYER_AVAILABILITY).await?;
        let missing: Vec<&Blob> = {
            let state = self.lock();
            let repo = state
                .repositories
                .get(repository)
                .ok_or_else(|| not_found("BatchCheckLayerAvailability", repository))?;
            blobs
                .iter()
                .filter(|b| !repo.blobs.contains(&b.digest))
                .collect()
        };
        let missing = self
            .chaos
            .leave(fault, ECR_BATCH_CHECK_LAYER_AVAILABILITY, missing)
            .await?;
        for blob in missing {
            for call in [ECR_INITIATE_LAYER_UPLOAD, ECR_UPLOAD_LAYER_PART] {
                let fault = self.chaos.enter(call).await?;
                self.chaos.leave(fault, call, ()).await?;
            }
            let fault = self.chaos.enter(ECR_COMPLETE_LAYER_UPLOAD).await?;
            if Digest::of(&blob.bytes) != blob.digest {
                return Err(AdapterError::Rejected {
                    service: "ECR",
                    operation: "CompleteLayerUpload",
                    code: "InvalidLayerException".to_owned(),
                    source: format!("the upload does not hash to {}", blob.digest).into(),
                });
            }
            if let Some(repo) = self.lock().repositories.get_mut(repository) {
                repo.blobs.insert(blob.digest.clone());
            }
            self.chaos
                .leave(fault, ECR_COMPLETE_LAYER_UPLOAD, ())
                .await?;
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
        let fault = self.chaos.enter(ECR_PUT_IMAGE).await?;
        if Digest::of(&manifest.bytes) != *digest {
            return Err(AdapterError::Rejected {
                service: "ECR",
                operation: "PutImage",
                code: "ImageDigestDoesNotMatchException".to_owned(),
                source: format!("the manifest does not hash to {digest}").into(),
            });
        }
        let now = self.clock.now_millis();
        {
            let mut state = self.lock();
            let State {
                repositories, log, ..
            } = &mut *state;
            let repo = repositories
                .get_mut(repository)
                .ok_or_else(|| not_found("PutImage", repository))?;
            // An image manifest's config and layers must be in the repository first.
            let parsed = ReferrerManifest::parse(&manifest.bytes);
            let named = parsed
                .iter()
                .flat_map(|m| std::iter::once(&m.config).chain(m.layers.iter()));
            if let Some(missing) = named.map(|d| &d.digest).find(|d| !repo.blobs.contains(*d)) {
                return Err(AdapterError::Rejected {
                    service: "ECR",
                    operation: "PutImage",
                    code: "LayersNotFoundException".to_owned(),
                    source: format!("blob {missing} was never uploaded").into(),
                });
            }
            // An index's manifests must be in the repository first (ECR answers
            // ReferencedImagesNotFoundException: an index is never put over a gone child).
            let listed = serde_json::from_slice::<serde_json::Value>(&manifest.bytes)
                .ok()
                .and_then(|doc| doc.get("manifests")?.as_array().cloned())
                .unwrap_or_default();
            let missing = listed
                .iter()
                .filter_map(|entry| entry.get("digest")?.as_str())
                .filter_map(|digest| Digest::parse(digest).ok())
                .find(|digest| !repo.images.contains_key(digest));
            if let Some(missing) = missing {
                return Err(AdapterError::Rejected {
                    service: "ECR",
                    operation: "PutImage",
                    code: "ReferencedImagesNotFoundException".to_owned(),
                    source: format!("the index lists {missing}, which is not in {repository}")
                        .into(),
                });
            }
            let image = StoredImage {
                manifest: manifest.clone(),
                pushed_at: now,
                artifact_media_type: parsed.and_then(|m| m.artifact_type),
            };
            match tag.map(|tag| (tag, repo.tags.get(tag))) {
                // Content-addressed: an untagged image is there once, however often pushed.
                None => repo.insert(digest, image),
                // A repeat of identical content is as good as a first write.
                Some((_, Some(current))) if current == digest => {}
                Some((tag, Some(current))) if repo.pins(tag) => {
                    return Err(AdapterError::TagTaken {
                        service: "ECR",
                        operation: "PutImage",
                        tag: tag.to_owned(),
                        source: format!("tag {tag} already names {current}").into(),
                    })
                }
                Some((tag, current)) => {
                    let from = current.cloned();
                    repo.insert(digest, image);
                    repo.tags.insert(tag.to_owned(), digest.clone());
                    log.push(RegistryEvent::TagMoved {
                        repository: repository.to_owned(),
                        tag: tag.to_owned(),
                        from,
                        to: digest.clone(),
                        at: now,
                    });
                }
            }
        }
        self.chaos.leave(fault, ECR_PUT_IMAGE, ()).await
    }
}
