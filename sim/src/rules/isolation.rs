//! Isolation ("Many repositories, one deployment"): nothing done for a release of one
//! repository touches another. Each check traces an effect to the repository it was done for
//! by what cannot lie about it: an index's source annotation (the upload it was assembled
//! for), a build's `IMAGE_REPO_NAME`, the images each repository's own builds pushed, the
//! times each repository's images were scanned.

use super::{violation, Checker, Rule, Violation};
use crate::scenario::{repositories, repository_of, REPOSITORIES};
use crate::world::{short, World};
use archgate::build_variables::IMAGE_REPO_NAME;
use archgate::domain::oci::{OCI_INDEX, VERSION_ANNOTATION};
use archgate::domain::{BuildRole, Digest, Millis, Release};
use archgate_testkit::memory::registry::RegistryEvent;
use std::collections::BTreeSet;
use std::rc::Rc;

/// What an archgate index says of itself: the repository its upload's key names (`None`:
/// a key that names none of archgate's) and the release tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub repository: Option<String>,
    pub release: String,
}

/// The origin an index's annotations give (`None` for anything that is not archgate's index).
fn origin(bytes: &[u8]) -> Option<Origin> {
    let doc: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let annotations = &doc["annotations"];
    let source = annotations["org.opencontainers.image.source"].as_str()?;
    let (_bucket, key) = source.strip_prefix("s3://")?.split_once('/')?;
    Some(Origin {
        repository: repository_of(key).ok(),
        release: annotations[VERSION_ANNOTATION].as_str()?.to_owned(),
    })
}

impl Checker {
    /// The origin of an index, read once per digest (an image's bytes never change).
    fn origin_of(
        &mut self,
        digest: &Digest,
        bytes: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<Origin> {
        if let Some(known) = self.index_origins.get(digest) {
            return known.clone();
        }
        let bytes = bytes()?;
        let found = origin(&bytes);
        self.index_origins.insert(digest.clone(), found.clone());
        found
    }

    /// Whether an index of `repository` is another repository's (an error message if so).
    fn foreign_index(
        &mut self,
        repository: &str,
        digest: &Digest,
        bytes: impl FnOnce() -> Option<Vec<u8>>,
    ) -> Option<String> {
        let origin = self.origin_of(digest, bytes)?;
        (origin.repository.as_deref() != Some(repository)).then(|| {
            format!(
                "the index {} of release {} of {} is in {repository}",
                short(digest),
                origin.release,
                origin
                    .repository
                    .as_deref()
                    .unwrap_or("no repository of archgate's"),
            )
        })
    }

    pub(super) fn check_isolation(
        &mut self,
        world: &World,
        releases: &[Rc<Release>],
        log: &[RegistryEvent],
    ) -> Result<(), Violation> {
        self.check_tag_moves(world, log)?;
        self.check_indexes(world)?;
        for release in releases {
            self.check_release_record(world, release)?;
        }
        self.check_pointers(world)?;
        check_policy_versions(world, releases)?;
        self.check_moving_items(world)?;
        check_refused_keys(world, releases)
    }

    /// Every tag put in a repository names that repository's own index (or an image that is
    /// no archgate index: the builders' and other people's pushes).
    fn check_tag_moves(&mut self, world: &World, log: &[RegistryEvent]) -> Result<(), Violation> {
        for event in log {
            let RegistryEvent::TagMoved {
                repository,
                tag,
                to,
                ..
            } = event
            else {
                continue;
            };
            let bytes = || {
                world.svc.registry.inspect(repository, |repo| {
                    repo.images.get(to).map(|i| i.manifest.bytes.clone())
                })
            };
            if let Some(message) = self.foreign_index(repository, to, bytes) {
                violation(
                    Rule::Isolation,
                    format!("{tag} of {repository} moved: {message}"),
                )?;
            }
        }
        Ok(())
    }

    /// Every archgate index a repository holds is its own, and so is every index its
    /// attestations refer to.
    fn check_indexes(&mut self, world: &World) -> Result<(), Violation> {
        for plan in &REPOSITORIES {
            let repository = plan.name;
            let found = world.svc.registry.inspect(repository, |repo| {
                let mut found = None;
                for (digest, image) in &repo.images {
                    let is_index = image.manifest.media_type.as_deref() == Some(OCI_INDEX);
                    let subject = (!is_index)
                        .then(|| self.referrer_subjects.get(digest).cloned().flatten())
                        .flatten();
                    let message = match (is_index, subject) {
                        (true, _) => self.foreign_index(repository, digest, || {
                            Some(image.manifest.bytes.clone())
                        }),
                        // The subject's origin, when it was ever seen (indexes are read first).
                        (false, Some(subject)) => match self.index_origins.get(&subject) {
                            Some(Some(o)) if o.repository.as_deref() != Some(repository) => {
                                Some(format!(
                                    "the attestation {} of {}'s index {} is in {repository}",
                                    short(digest),
                                    o.release,
                                    short(&subject)
                                ))
                            }
                            _ => None,
                        },
                        (false, None) => None,
                    };
                    if message.is_some() {
                        found = message;
                        break;
                    }
                }
                found
            });
            if let Some(message) = found {
                violation(Rule::Isolation, message)?;
            }
        }
        Ok(())
    }

    /// A release's record names its own repository's things only: its upload, its builds,
    /// its index and images, its scans.
    fn check_release_record(&mut self, world: &World, release: &Release) -> Result<(), Violation> {
        let key = &release.key;
        let repository = key.repository.as_str();
        if !repositories().owns(repository) {
            violation(
                Rule::Isolation,
                format!("{key} is recorded for a repository that is not archgate's"),
            )?;
        }
        for source in std::iter::once(&release.source).chain(release.queued.iter()) {
            if repository_of(&source.key).ok().as_deref() != Some(repository) {
                violation(
                    Rule::Isolation,
                    format!(
                        "{key} records the upload {}, which names another repository",
                        source.key
                    ),
                )?;
            }
        }
        // What follows reads more; a record that did not change since it was checked still holds.
        if !self.changed.contains(&key.id()) {
            return Ok(());
        }
        for role in [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest] {
            let Some(id) = &release.build(role).build_id else {
                continue;
            };
            let Some(build) = world.svc.builds.get(id) else {
                continue;
            };
            let pushes_to = build.request.variable(IMAGE_REPO_NAME).unwrap_or_default();
            if pushes_to != repository {
                violation(
                    Rule::Isolation,
                    format!("{key} records its {role} build {id}, which pushes to {pushes_to}"),
                )?;
            }
        }
        if let Some(candidate) = &release.candidate {
            let recorded = candidate.manifest.as_ref().map(|m| m.as_bytes().to_vec());
            let bytes = || {
                recorded.or_else(|| {
                    world.svc.registry.inspect(repository, |repo| {
                        repo.images
                            .get(&candidate.digest)
                            .map(|i| i.manifest.bytes.clone())
                    })
                })
            };
            if let Some(message) = self.foreign_index(repository, &candidate.digest, bytes) {
                violation(
                    Rule::Isolation,
                    format!("{key} records a candidate: {message}"),
                )?;
            }
            for child in &candidate.children {
                if !world
                    .pushed
                    .contains(&(repository.to_owned(), child.digest.clone()))
                {
                    violation(
                        Rule::Isolation,
                        format!(
                            "{key}'s candidate lists {} {}, which no build pushed to {repository}",
                            child.arch,
                            short(&child.digest)
                        ),
                    )?;
                }
            }
        }
        for scan in &release.scans {
            let of = |repository: &str| {
                world
                    .scanned
                    .get(&(repository.to_owned(), scan.digest.clone()))
                    .is_some_and(|times| scanned_then(times, scan.scanned_at))
            };
            // Only a scan that another repository's image had, and its own did not, is
            // another's (other scan times come from the pipeline's own clock).
            if !of(repository) {
                if let Some(other) = REPOSITORIES.iter().map(|r| r.name).find(|r| of(r)) {
                    violation(
                        Rule::Isolation,
                        format!(
                            "{key} records the {} scan of {} at {}, which {other} had and {repository} did not",
                            scan.arch,
                            short(&scan.digest),
                            scan.scanned_at
                        ),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// A repository's digest pointer names only its own releases, and only for an image its
    /// builds pushed.
    fn check_pointers(&mut self, world: &World) -> Result<(), Violation> {
        for (pointer, digest, entries) in world.svc.ledger.pointers() {
            for entry in entries {
                let repository = entry.rsplitn(3, '#').nth(2).unwrap_or_default().to_owned();
                if repository != pointer {
                    violation(
                        Rule::Isolation,
                        format!(
                            "the digest pointer of {} in {pointer} names {entry}, a release of {repository}",
                            short(&digest)
                        ),
                    )?;
                }
                if !world.pushed.contains(&(repository.clone(), digest.clone())) {
                    violation(
                        Rule::Isolation,
                        format!(
                            "the digest pointer of {} names {entry}, and no build pushed it to {repository}",
                            short(&digest)
                        ),
                    )?;
                }
            }
        }
        Ok(())
    }

    /// A moving-tag item of a repository names (and moves to) that repository's releases only.
    fn check_moving_items(&mut self, world: &World) -> Result<(), Violation> {
        for ((repository, tag), holders) in world.svc.ledger.moving_tags() {
            for holder in holders {
                let bytes = || Some(holder.manifest.clone().into_bytes());
                if let Some(message) = self.foreign_index(&repository, &holder.digest, bytes) {
                    violation(
                        Rule::Isolation,
                        format!(
                            "the ledger's {tag} of {repository} names {}: {message}",
                            holder.release
                        ),
                    )?;
                }
            }
        }
        Ok(())
    }
}

/// Whether a scan record's time is one of these scans' (events carry whole seconds).
fn scanned_then(times: &BTreeSet<Millis>, at: Millis) -> bool {
    times.contains(&at) || times.range(at..at + 1000).next().is_some()
}

/// A key that names no repository of archgate's starts nothing and writes nothing: no release
/// records it, and no repository of its folder exists.
fn check_refused_keys(world: &World, releases: &[Rc<Release>]) -> Result<(), Violation> {
    for upload in world.uploads.iter().filter(|u| u.delivered) {
        let Err(refusal) = repository_of(&upload.key) else {
            continue;
        };
        let recorded = releases.iter().find(|r| {
            r.source.key == upload.key || r.queued.as_ref().is_some_and(|q| q.key == upload.key)
        });
        if let Some(release) = recorded {
            violation(
                Rule::Isolation,
                format!(
                    "{} records {}, which names no repository of archgate's",
                    release.key, upload.key
                ),
            )?;
        }
        if world.svc.registry.has_repository(refusal.folder()) {
            violation(
                Rule::Isolation,
                format!(
                    "{} was refused, and the repository {} exists",
                    upload.key,
                    refusal.folder()
                ),
            )?;
        }
    }
    Ok(())
}

/// Every verdict names a version of its own repository's policy: one an operator wrote for
/// that repository (or 0, the environment's values, before any).
fn check_policy_versions(world: &World, releases: &[Rc<Release>]) -> Result<(), Violation> {
    for release in releases {
        let written = world
            .policy_versions
            .get(&release.key.repository)
            .copied()
            .unwrap_or(0);
        for scan in &release.scans {
            match scan.policy_version {
                Some(version) if version <= written => {}
                named => violation(
                    Rule::Isolation,
                    format!(
                        "{} records a verdict under policy version {named:?}; {} has versions 0 to {written}",
                        release.key, release.key.repository
                    ),
                )?,
            }
        }
    }
    Ok(())
}
