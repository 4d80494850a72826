//! The ledger's item shapes: partition keys, digest-pointer entries, and a release item
//! decoded into the record it stores.

use crate::domain::{Arch, Digest, Release, ReleaseKey, ReleaseTag};
use crate::error::AdapterError;
use crate::ports::Stored;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

/// The partition key attribute (`repository#tag`).
pub const LEDGER_KEY: &str = "pk";
/// Partition-key prefix of the items that map a per-arch image digest to its releases.
pub const DIGEST_POINTER: &str = "digest#";
/// Partition-key prefix of the repositories' policy items (`policy:<repository>`; no release
/// key holds `:`).
pub const POLICY: &str = "policy:";
/// The partition key of the item that says where the next retention run starts.
pub const RETENTION_RESUME: &str = "retention:resume";
/// Partition-key prefix of the moving-tag items.
pub const MOVING_TAG: &str = "tag#";
/// A digest pointer names at most this many releases (byte-identical builds of more
/// releases than this find their scans through the reconciler instead).
pub const MAX_POINTER_RELEASES: usize = 256;

/// What kind of item a partition key names. Release keys are `repository#tag` (neither may
/// hold `#` or `:`), so the shapes cannot collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    Release,
    DigestPointer,
    MovingTag,
    Policy,
    /// An item of archgate's own bookkeeping (where retention resumes).
    Marker,
}

pub fn item_kind(pk: &str) -> ItemKind {
    if pk.starts_with(POLICY) {
        ItemKind::Policy
    } else if pk == RETENTION_RESUME {
        ItemKind::Marker
    } else if pk.starts_with(DIGEST_POINTER) && pk.contains(':') {
        ItemKind::DigestPointer
    } else if pk.starts_with(MOVING_TAG) && pk.matches('#').count() == 2 {
        ItemKind::MovingTag
    } else {
        ItemKind::Release
    }
}

/// The partition key of a moving tag's item.
pub fn moving_tag_id(repository: &str, tag: &str) -> String {
    format!("{MOVING_TAG}{repository}#{tag}")
}

/// The partition key of a repository's policy item.
pub fn policy_id(repository: &str) -> String {
    format!("{POLICY}{repository}")
}

/// The partition key of a repository's pointer for a digest: the default repository's keeps
/// the key pointers always had (`digest#<digest>`: an installation's items stay what they
/// were), any other repository's is its own (`digest#<repository>@<digest>`), so pointers are
/// per repository and each is capped on its own.
pub fn pointer_id(default: Option<&str>, repository: &str, digest: &Digest) -> String {
    match default {
        Some(default) if default != repository => {
            format!("{DIGEST_POINTER}{repository}@{digest}")
        }
        _ => format!("{DIGEST_POINTER}{digest}"),
    }
}

/// A pointer entry: `repository#tag#arch`.
pub(super) fn pointer_entry(key: &ReleaseKey, arch: Arch) -> String {
    format!("{}#{}", key.id(), arch.as_str())
}

pub(super) fn parse_pointer_entry(entry: &str) -> Option<(ReleaseKey, Arch)> {
    let (release, arch) = entry.rsplit_once('#')?;
    let (repository, tag) = release.rsplit_once('#')?;
    Some((
        ReleaseKey::new(repository, ReleaseTag::parse(tag).ok()?),
        Arch::parse(arch)?,
    ))
}

pub(super) fn unexpected(operation: &'static str, reason: String) -> AdapterError {
    AdapterError::Unexpected {
        service: "DynamoDB",
        operation,
        reason,
    }
}

pub(super) fn decode(
    item: &HashMap<String, AttributeValue>,
    operation: &'static str,
) -> Result<Stored, AdapterError> {
    let doc = item
        .get("doc")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| unexpected(operation, "ledger item without a `doc` string".into()))?;
    let version = item
        .get("version")
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| unexpected(operation, "ledger item without a numeric `version`".into()))?;
    let release: Release = serde_json::from_str(doc)
        .map_err(|e| unexpected(operation, format!("ledger item does not parse: {e}")))?;
    let pk = item.get(LEDGER_KEY).and_then(|v| v.as_s().ok());
    if pk.is_some_and(|pk| *pk != release.key.id()) {
        return Err(unexpected(
            operation,
            format!(
                "ledger item {} holds the release {}",
                truncate(pk.map(String::as_str).unwrap_or_default()),
                truncate(&release.key.id())
            ),
        ));
    }
    Ok(Stored { release, version })
}

pub(super) fn truncate(text: &str) -> String {
    crate::domain::digest::truncate_for_message(text)
}
