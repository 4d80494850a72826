//! Deliberate cross-repository effects, for proving that the checker catches one: the world
//! commits one, once, as soon as a release is published and another repository exists.

use super::{short, World};
use crate::scenario::REPOSITORIES;
use archgate::domain::oci::RawManifest;
use archgate::domain::Phase;
use archgate::ports::MovingTagHolder;

/// What the saboteur does to another repository, in a published release's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    /// Puts the release's index into the other repository under the release's tag.
    ReleaseTagInAnother,
    /// Moves the other repository's moving tag to the release's index.
    MovingTagInAnother,
    /// Records the release as the holder of the other repository's moving tag in the ledger.
    MovingTagItemInAnother,
}

impl World {
    /// Commits the sabotage, once, when there is a published release and another repository.
    pub(super) fn sabotage(&mut self) {
        let Some(sabotage) = self.sabotage else {
            return;
        };
        let published = self.known.clone().into_iter().find(|r| {
            r.phase() == Phase::Published
                && r.candidate.as_ref().is_some_and(|c| c.manifest.is_some())
        });
        let Some(release) = published else {
            return;
        };
        let other = REPOSITORIES
            .iter()
            .map(|r| r.name)
            .find(|name| *name != release.key.repository && self.svc.registry.has_repository(name));
        let (Some(other), Some(candidate)) = (other, release.candidate.as_ref()) else {
            return;
        };
        self.sabotage = None;
        let manifest = candidate.manifest.clone().unwrap_or_default();
        let raw = RawManifest {
            media_type: candidate.media_type.clone(),
            bytes: manifest.clone().into_bytes(),
        };
        let moving = crate::scenario::MOVING_TAG;
        match sabotage {
            Sabotage::ReleaseTagInAnother => {
                self.svc
                    .registry
                    .push(other, Some(release.key.tag.as_str()), raw);
            }
            Sabotage::MovingTagInAnother => {
                self.svc.registry.push(other, Some(moving), raw);
            }
            Sabotage::MovingTagItemInAnother => self.svc.ledger.put_moving_tag(
                other,
                moving,
                MovingTagHolder {
                    release: release.key.tag.clone(),
                    uploaded_at: release.upload_order().0,
                    digest: candidate.digest.clone(),
                    manifest,
                    media_type: candidate.media_type.clone(),
                },
            ),
        }
        self.note(format!(
            "sabotage: {sabotage:?} puts {} ({}) into {other}",
            release.key,
            short(&candidate.digest)
        ));
    }
}
