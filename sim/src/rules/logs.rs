//! The rules checked on what happened since the last step: tag moves, deletions, events, builds.

use super::{violation, Checker, Rule, Violation};
use crate::scenario::moving_tags;
use crate::world::{short, World};
use archgate::build_variables::{IMAGE_REPO_NAME, RELEASE_TAG};
use archgate::domain::{Release, ReleaseKey, ReleaseTag};
use archgate_testkit::memory::registry::RegistryEvent;
use std::rc::Rc;

/// Whether the current attempt of `release` holds `digest` (its builds' images, its index).
fn holds(release: &Release, digest: &archgate::domain::Digest) -> bool {
    use archgate::domain::BuildRole;
    [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest]
        .iter()
        .any(|role| release.build(*role).image_digest.as_ref() == Some(digest))
        || release.candidate.as_ref().is_some_and(|c| {
            &c.digest == digest || c.children.iter().any(|ch| &ch.digest == digest)
        })
}

impl Checker {
    pub(super) fn check_registry_log(
        &mut self,
        world: &World,
        releases: &[Rc<Release>],
        log: Vec<RegistryEvent>,
    ) -> Result<(), Violation> {
        // The release of a repository a tag names (the tag as a release tag).
        let key_of = |repository: &str, tag: &str| {
            ReleaseTag::parse(tag)
                .ok()
                .map(|t| ReleaseKey::new(repository, t))
        };
        for event in log {
            match event {
                RegistryEvent::TagMoved {
                    repository,
                    tag,
                    to,
                    from,
                    ..
                } => {
                    let published = key_of(&repository, &tag).and_then(|k| self.published.get(&k));
                    if let Some(index) = published {
                        if *index != to {
                            violation(
                                Rule::PublishedImmutable,
                                format!(
                                    "tag {tag} of a published release moved from {:?} to {}",
                                    from.as_ref().map(short),
                                    short(&to)
                                ),
                            )?;
                        }
                    }
                    if moving_tags(&repository).contains(&tag.as_str()) {
                        // The index names its release (its version annotation is the release
                        // tag); the ledger may not have recorded the candidate yet.
                        let named = world.svc.registry.inspect(&repository, |repo| {
                            let image = repo.images.get(&to)?;
                            let doc: serde_json::Value =
                                serde_json::from_slice(&image.manifest.bytes).ok()?;
                            doc["annotations"][archgate::domain::oci::VERSION_ANNOTATION]
                                .as_str()
                                .map(str::to_owned)
                        });
                        let holder = releases.iter().find(|r| {
                            r.key.repository == repository
                                && Some(r.key.tag.as_str()) == named.as_deref()
                        });
                        let Some(holder) = holder else {
                            return violation(
                                Rule::MovingForward,
                                format!(
                                    "{tag} of {repository} moved to {} ({named:?}), the index of no release",
                                    short(&to)
                                ),
                            );
                        };
                        let order = holder.upload_order();
                        let order = (order.0, order.1.to_owned());
                        let last = self.latest.entry((repository.clone(), tag.clone()));
                        if let std::collections::btree_map::Entry::Occupied(last) = &last {
                            let last = last.get();
                            if order < *last {
                                violation(Rule::MovingForward, format!("{tag} of {repository} moved back from {} (uploaded at {}) to {} (uploaded at {})", last.1, last.0, order.1, order.0))?;
                            }
                        }
                        *last.or_default() = order;
                    }
                }
                RegistryEvent::Untagged {
                    repository,
                    tag,
                    digest,
                } => {
                    // Only a spent name of the repository leaves an image that stays.
                    let spent = releases.iter().any(|r| {
                        r.key.repository == repository
                            && r.phase() == archgate::domain::Phase::Expired
                            && (r.key.tag.as_str() == tag
                                || r.key.tag.internal_tags().contains(&tag)
                                || archgate::domain::retention::cosign_subject(&tag).is_some())
                    });
                    if !spent {
                        violation(
                            Rule::RetentionFailsClosed,
                            format!("retention removed the tag {tag} from {}", short(&digest)),
                        )?;
                    }
                }
                RegistryEvent::DeleteRefused { digest, reason, .. } => {
                    violation(
                        Rule::RetentionFailsClosed,
                        format!(
                            "retention tried to delete {}, which an index references ({reason})",
                            short(&digest)
                        ),
                    )?;
                }
                RegistryEvent::Deleted {
                    repository,
                    digest,
                    tags,
                } => {
                    // Only the tags of releases retention expired may go with an image.
                    // (or of an expired attempt the release has since replaced: the image is
                    // not the new attempt's).
                    let expired: Vec<&Rc<Release>> =
                        releases
                            .iter()
                            .filter(|r| r.key.repository == repository)
                            .filter(|r| {
                                r.phase() == archgate::domain::Phase::Expired
                                    || (r.history.last().is_some_and(|h| {
                                        h.outcome == archgate::domain::Phase::Expired
                                    }) && !holds(r, &digest))
                            })
                            .collect();
                    let owned = |tag: &String| {
                        expired.iter().any(|r| {
                            r.key.tag.as_str() == tag
                                || r.key.tag.internal_tags().contains(tag)
                                || archgate::domain::retention::cosign_subject(tag).is_some_and(
                                    |subject| {
                                        r.candidate.as_ref().is_some_and(|c| {
                                            c.digest == subject
                                                || c.children.iter().any(|ch| ch.digest == subject)
                                        })
                                    },
                                )
                        })
                    };
                    if !tags.iter().all(owned) {
                        violation(
                            Rule::RetentionFailsClosed,
                            format!(
                                "retention deleted the tagged image {} ({tags:?})",
                                short(&digest)
                            ),
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn check_events(&mut self, world: &World) -> Result<(), Violation> {
        let published = world.svc.events.published_since(self.events_seen);
        self.events_seen += published.len();
        for event in &published {
            let detail = &event.detail;
            let kind = event.detail_type.as_str();
            if !kind.starts_with("Release ") || kind == "Release Reconciled" {
                continue;
            }
            let Some(attempt) = detail["attempt"].as_u64() else {
                return violation(
                    Rule::Attempts,
                    format!("a {kind} event carries no attempt: {detail}"),
                );
            };
            for field in ["repository", "tag", "event-key"] {
                if !detail[field].is_string() {
                    violation(
                        Rule::EffectsOnce,
                        format!("a {kind} event has no {field}: {detail}"),
                    )?;
                }
            }
            if kind == "Release Rejected"
                && !(detail["source"]["key"].is_string() && detail["reason"].is_string())
            {
                violation(
                    Rule::ReservedNames,
                    format!("a Release Rejected event lacks its source key or reason: {detail}"),
                )?;
            }
            if kind == "Release Vulnerable" && !detail["scans"].is_object() {
                violation(
                    Rule::FindingsAreNews,
                    format!("a Release Vulnerable event lacks its findings: {detail}"),
                )?;
            }
            check_event_repository(kind, detail)?;
            // A key that names no repository of archgate's has no record to remember its
            // rejection by: each delivery announces it again, under the same event key.
            let unrecorded = detail["source"]["key"]
                .as_str()
                .is_some_and(|k| crate::scenario::repository_of(k).is_err());
            if unrecorded {
                continue;
            }
            let key = detail["event-key"].as_str().unwrap_or_default().to_owned();
            *self.event_counts.entry(key.clone()).or_default() += 1;
            if !matches!(kind, "Release Rejected" | "Release Vulnerable") {
                let tag = detail["tag"].as_str().unwrap_or_default().to_owned();
                let repository = detail["repository"].as_str().unwrap_or_default();
                let keys = self
                    .keys_by_kind
                    .entry((
                        repository.to_owned(),
                        tag.clone(),
                        attempt as u32,
                        kind.to_owned(),
                    ))
                    .or_default();
                keys.insert(key);
                if keys.len() > 1 {
                    violation(
                        Rule::EffectsOnce,
                        format!(
                            "{repository}:{tag} attempt {attempt} announced {kind} under {} event keys",
                            keys.len()
                        ),
                    )?;
                }
            }
        }
        if world.svc.chaos.injected() == 0 {
            if let Some((key, n)) = self.event_counts.iter().find(|(_, n)| **n > 1) {
                violation(
                    Rule::EffectsOnce,
                    format!("event {key} was published {n} times with no fault injected"),
                )?;
            }
        }
        Ok(())
    }

    pub(super) fn check_builds(&mut self, world: &World) -> Result<(), Violation> {
        for build in world.svc.builds.started_since(self.builds_seen.len()) {
            if !self.builds_seen.insert(build.id.clone()) {
                continue;
            }
            let env = |name: &str| build.request.variable(name).unwrap_or_default().to_owned();
            let tag = env(RELEASE_TAG);
            let repository = env(IMAGE_REPO_NAME);
            if archgate::domain::ReleaseTag::parse(&tag)
                .map(|t| t.reserved(&world.config.moving_tags).is_some())
                .unwrap_or(true)
            {
                violation(
                    Rule::ReservedNames,
                    format!("a build was started for the reserved name {tag}"),
                )?;
            }
            let key = build
                .request
                .source_location
                .split_once('/')
                .map(|(_, k)| k.to_owned())
                .unwrap_or_default();
            // Isolation: a build pushes to the repository its upload's key names.
            let named = crate::scenario::repository_of(&key);
            if named.as_deref().ok() != Some(repository.as_str()) {
                violation(
                    Rule::Isolation,
                    format!("a build of {key} ({named:?}) pushes to {repository}"),
                )?;
            }
            let holder = self
                .tag_sources
                .entry((repository.clone(), tag.clone()))
                .or_insert_with(|| key.clone());
            if *holder != key {
                violation(
                    Rule::ReservedNames,
                    format!("{repository}:{tag} was built from {holder} and then from {key}"),
                )?;
            }
        }
        Ok(())
    }
}

/// Isolation: a release event names the repository its upload's key names (a refused key's
/// rejection names the folder and the rule it broke).
fn check_event_repository(kind: &str, detail: &serde_json::Value) -> Result<(), Violation> {
    let Some(key) = detail["source"]["key"].as_str() else {
        return Ok(());
    };
    let repository = detail["repository"].as_str().unwrap_or_default();
    let agrees = match crate::scenario::repository_of(key) {
        Ok(named) => named == repository,
        Err(refusal) => {
            kind == "Release Rejected"
                && repository == refusal.folder()
                && detail["rule"] == refusal.rule()
        }
    };
    if agrees {
        Ok(())
    } else {
        violation(
            Rule::Isolation,
            format!("a {kind} event of {repository} is about the upload {key}: {detail}"),
        )
    }
}
