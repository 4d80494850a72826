//! The ECR repositories archgate releases into, which repository an upload's key names, and
//! how archgate creates one for its first release: scan on push, encryption at rest, and
//! release tags immutable in ECR itself where ECR can say so.

use super::digest::truncate_for_message;
use super::tag::{CACHE_REFS, INTERNAL_SUFFIXES};
use std::fmt;

/// ECR's rule for repository names: `(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*`,
/// 2-256 characters.
pub fn check_repository_name(value: &str) -> Result<(), &'static str> {
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && !bytes
                .windows(2)
                .any(|w| matches!(w[0], b'.' | b'_' | b'-') && matches!(w[1], b'.' | b'_' | b'-'))
    };
    if (2..=256).contains(&value.len()) && value.split('/').all(component_ok) {
        Ok(())
    } else {
        Err("an ECR repository name is 2-256 lowercase letters, digits and single `.`, `_`, `-` separators, with `/` between components")
    }
}

/// A namespace's rule: one or more repository-name components, each followed by `/`
/// (`apps/`, `teams/payments/`).
pub fn check_namespace(value: &str) -> Result<(), &'static str> {
    match value.strip_suffix('/') {
        Some(components) if check_repository_name(&format!("{components}/x")).is_ok() => Ok(()),
        _ => Err("a repository namespace is one or more repository-name components, each followed by `/` (e.g. `apps/`)"),
    }
}

/// The repositories archgate releases into: the default one and, with a namespace
/// (`ARCHGATE_REPOSITORY_PREFIX`), every valid repository name under it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Repositories {
    pub default: String,
    pub namespace: Option<String>,
}

/// Why an upload's key names no repository of archgate's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryRefusal {
    #[error("its folder `{folder}` is not an ECR repository name: {rule}")]
    NotARepositoryName { folder: String, rule: &'static str },
    #[error("its folder `{folder}` is not under the namespace `{namespace}`")]
    OutsideNamespace { folder: String, namespace: String },
}

impl RepositoryRefusal {
    /// The folder the key named (bounded for messages).
    pub fn folder(&self) -> &str {
        match self {
            RepositoryRefusal::NotARepositoryName { folder, .. }
            | RepositoryRefusal::OutsideNamespace { folder, .. } => folder,
        }
    }

    /// The rule the key broke, as `Release Rejected` names it.
    pub fn rule(&self) -> &'static str {
        match self {
            RepositoryRefusal::NotARepositoryName { .. } => "not-a-repository-name",
            RepositoryRefusal::OutsideNamespace { .. } => "outside-namespace",
        }
    }
}

impl Repositories {
    /// Whether `repository` is one of archgate's.
    pub fn owns(&self, repository: &str) -> bool {
        repository == self.default
            || self.namespace.as_deref().is_some_and(|namespace| {
                repository.len() > namespace.len()
                    && repository.starts_with(namespace)
                    && check_repository_name(repository).is_ok()
            })
    }

    /// The repository an upload names by its key's path below the source prefix (`rest`,
    /// e.g. `apps/web/web-1.4.2.zip`). Without a namespace, folders mean nothing and every
    /// key is the default repository's; with one, the folder is the repository, and a key
    /// without a folder is the default repository's. A folder that is not a valid name under
    /// the namespace is refused, never mapped to another repository.
    pub fn of_key<'a>(&'a self, rest: &'a str) -> Result<&'a str, RepositoryRefusal> {
        let Some(namespace) = &self.namespace else {
            return Ok(&self.default);
        };
        let Some((folder, _file)) = rest.rsplit_once('/') else {
            return Ok(&self.default);
        };
        check_repository_name(folder).map_err(|rule| RepositoryRefusal::NotARepositoryName {
            folder: truncate_for_message(folder),
            rule,
        })?;
        if self.owns(folder) {
            Ok(folder)
        } else {
            Err(RepositoryRefusal::OutsideNamespace {
                folder: truncate_for_message(folder),
                namespace: namespace.clone(),
            })
        }
    }
}

impl fmt::Display for Repositories {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} or a repository under {namespace}", self.default),
            None => f.write_str(&self.default),
        }
    }
}

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
