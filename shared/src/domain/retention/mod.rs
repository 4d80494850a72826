//! The retention planner: which images of a repository may go, which must stay and why.
//!
//! Pure: an inventory of the repository and the digests of releases still in flight in, a
//! plan out. The plan never deletes a tagged image, nor anything a kept image reaches through
//! index children or referrers, and it orders deletions so an index goes before its children
//! (ECR refuses to delete a child an index still references).

mod in_use;
mod links;
mod plan;
mod releases;

pub use in_use::{images_in_use, parse_reference, ImageRef, ImageUse};
pub use links::{cosign_subject, mentioned_digests, read_links};
pub use plan::{plan, plan_with, Seeds};
pub use releases::{
    plan_releases, Fate, ReleaseKeep, ReleasePlan, ReleasePolicy, ReleaseVerdict, TagPattern,
};

use super::digest::Digest;
use super::Millis;
use serde::Serialize;
use std::collections::BTreeMap;

/// What a manifest says about other images, as far as retention cares.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ManifestLinks {
    /// Not read: a single-platform image that cannot be an index or a referrer.
    NotRead,
    /// An image index / manifest list and the digests of its entries.
    Index { children: Vec<Digest> },
    /// A manifest that was read; `subject` is its OCI 1.1 subject, when it has one.
    Manifest { subject: Option<Digest> },
    /// The manifest did not parse. It is kept, and so is every digest its bytes mention.
    Unparseable {
        reason: String,
        mentioned: Vec<Digest>,
    },
    /// The manifest could not be read at all (a per-image failure of BatchGetImage): it may
    /// reference anything, so the run deletes nothing (fail closed).
    Unreadable { reason: String },
}

/// One image of the inventory (DescribeImages, plus BatchGetImage where needed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageRecord {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub pushed_at: Millis,
    pub media_type: Option<String>,
    pub size_bytes: Option<u64>,
    pub links: ManifestLinks,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RetentionPolicy {
    /// Untagged images younger than this are kept.
    pub untagged_age_ms: Millis,
    /// A plan that would delete more than this share of the repository deletes nothing.
    pub max_delete_share: f64,
    /// Also delete untagged referrers whose subject is gone.
    pub delete_orphan_referrers: bool,
    /// Override the safety valve.
    pub force: bool,
}

/// Why an image stays.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "reason", content = "of", rename_all = "snake_case")]
pub enum KeepReason {
    /// A workload uses it (directly or through an index); the user is named.
    InUse(String),
    /// An image of this kept release (ledger record or own tags).
    Release(String),
    Tagged,
    Young,
    InFlight,
    /// A child of this kept index.
    ChildOf(Digest),
    /// A referrer (signature, attestation, SBOM) of this kept image.
    ReferrerOf(Digest),
    /// Its manifest did not parse (fail safe).
    Unparseable,
    /// Mentioned by a manifest that did not parse (fail safe).
    MentionedBy(Digest),
    /// The plan was refused by the safety valve.
    SafetyValve,
    /// Its manifest could not be read.
    Unreadable,
    /// This manifest could not be read and may reference it (fail closed).
    MayBeReferencedBy(Digest),
}

impl KeepReason {
    /// The reason's name, as reports count kept images by it (`tagged`, `child_of`, …).
    pub fn name(&self) -> &'static str {
        match self {
            KeepReason::InUse(_) => "in_use",
            KeepReason::Release(_) => "release",
            KeepReason::Tagged => "tagged",
            KeepReason::Young => "young",
            KeepReason::InFlight => "in_flight",
            KeepReason::ChildOf(_) => "child_of",
            KeepReason::ReferrerOf(_) => "referrer_of",
            KeepReason::Unparseable => "unparseable",
            KeepReason::MentionedBy(_) => "mentioned_by",
            KeepReason::SafetyValve => "safety_valve",
            KeepReason::Unreadable => "unreadable",
            KeepReason::MayBeReferencedBy(_) => "may_be_referenced_by",
        }
    }

    /// The image this reason points at, if any.
    pub fn of(&self) -> Option<&Digest> {
        match self {
            KeepReason::ChildOf(d)
            | KeepReason::ReferrerOf(d)
            | KeepReason::MentionedBy(d)
            | KeepReason::MayBeReferencedBy(d) => Some(d),
            _ => None,
        }
    }
}

impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.name().replace('_', " ");
        match self {
            KeepReason::InUse(user) => return write!(f, "in use by {user}"),
            KeepReason::Release(tag) => return write!(f, "image of kept release {tag}"),
            _ => {}
        }
        match self.of() {
            Some(digest) => write!(f, "{name} {digest}"),
            None => f.write_str(&name),
        }
    }
}

/// Why an image may go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    /// Untagged, old enough, and nothing kept reaches it.
    Untagged,
    /// A referrer whose subject is gone.
    OrphanReferrer,
    /// Held by an expiring release, and nothing kept reaches it.
    ReleaseExpired,
}

impl std::fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeleteReason::Untagged => "untagged",
            DeleteReason::OrphanReferrer => "orphan referrer",
            DeleteReason::ReleaseExpired => "release expired",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Deletion {
    pub digest: Digest,
    pub size_bytes: Option<u64>,
    pub why: DeleteReason,
    /// Deletions of one wave may run together; a wave starts when the one before it ended
    /// (an index's wave comes before its children's, a referrer's before its subject's).
    pub wave: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Plan {
    /// In deletion order: every index before its children.
    pub delete: Vec<Deletion>,
    /// Every kept image with its (first-found) reason.
    pub keep: BTreeMap<Digest, KeepReason>,
    /// Manifests that did not parse, with the reason.
    pub unparseable: Vec<(Digest, String)>,
    /// Manifests that could not be read, with the reason: while there is one, nothing is
    /// deleted.
    pub unreadable: Vec<(Digest, String)>,
    /// Set when the safety valve refused the plan: nothing is deleted.
    pub refused: Option<String>,
    pub bytes_reclaimed: u64,
}

impl Plan {
    /// How many images each kind of reason keeps, by the reason's name.
    pub fn kept_by_reason(&self) -> BTreeMap<&'static str, usize> {
        let mut kept = BTreeMap::new();
        for reason in self.keep.values() {
            *kept.entry(reason.name()).or_default() += 1;
        }
        kept
    }
}
