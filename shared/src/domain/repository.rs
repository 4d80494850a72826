//! How archgate creates an ECR repository it releases into for the first time: scan on push,
//! encryption at rest, and release tags immutable in ECR itself where ECR can say so.

use super::tag::{CACHE_REFS, INTERNAL_SUFFIXES};

/// ECR takes at most this many tag-mutability exclusion filters per repository.
pub const MAX_EXCLUSION_FILTERS: usize = 5;

/// What a repository's tags may do once pushed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TagMutability {
    /// Every tag may move (the tags archgate must move do not fit ECR's exclusion filters).
    Mutable,
    /// Every tag is immutable except those matching these wildcard filters: a release tag
    /// can never be pushed over, while the tags archgate moves (its internal tags, the
    /// build cache refs, the moving tags) still move.
    ImmutableExcept(Vec<String>),
}

/// The settings a repository is created with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepositorySettings {
    /// The KMS key the repository encrypts with; AES256 without one.
    pub kms_key: Option<String>,
    pub tag_mutability: TagMutability,
}

impl RepositorySettings {
    pub fn new(kms_key: Option<String>, moving_tags: &[String]) -> Self {
        RepositorySettings {
            kms_key,
            tag_mutability: tag_mutability(moving_tags),
        }
    }
}

/// Immutable release tags when the tags archgate moves fit ECR's exclusion filters
/// (`*-amd64`, `*-arm64`, `*-candidate`, `buildcache-*` and each moving tag), mutable otherwise.
pub fn tag_mutability(moving_tags: &[String]) -> TagMutability {
    let cache_prefix = CACHE_REFS[0]
        .rsplit_once('-')
        .map_or(CACHE_REFS[0], |(prefix, _)| prefix);
    let mut filters: Vec<String> = INTERNAL_SUFFIXES
        .iter()
        .map(|suffix| format!("*{suffix}"))
        .collect();
    filters.push(format!("{cache_prefix}-*"));
    for tag in moving_tags {
        if !filters.contains(tag) {
            filters.push(tag.clone());
        }
    }
    if filters.len() <= MAX_EXCLUSION_FILTERS {
        TagMutability::ImmutableExcept(filters)
    } else {
        TagMutability::Mutable
    }
}

/// Whether the repository was there already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ensured {
    Created,
    Existed,
}
