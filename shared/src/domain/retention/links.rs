//! What a manifest links to (index children, referrer subject), read from its exact bytes.

use super::ManifestLinks;
use crate::domain::digest::Digest;
use crate::domain::oci::{DOCKER_MANIFEST_LIST, OCI_INDEX};
use serde_json::Value;
use std::collections::HashSet;

/// Cosign-style tags name the image they sign or attest: `sha256-<hex>.sig|.att|.sbom`.
pub fn cosign_subject(tag: &str) -> Option<Digest> {
    let rest = tag.strip_prefix("sha256-")?;
    let hex = rest
        .strip_suffix(".sig")
        .or_else(|| rest.strip_suffix(".att"))
        .or_else(|| rest.strip_suffix(".sbom"))?;
    Digest::parse(&format!("sha256:{hex}")).ok()
}

/// Reads what a manifest links to from its exact bytes. Never fails: a manifest that does not
/// parse is `Unparseable`, with every digest its bytes mention.
///
/// An index is recognised by the reported media type, by its own `mediaType` field or by a
/// `manifests` array, whichever says so; anything else is read as a manifest, whose OCI 1.1
/// `subject` makes it a referrer. A subject or an index entry without a valid digest makes
/// the whole manifest unparseable: retention cannot tell what it points at.
pub fn read_links(media_type: Option<&str>, bytes: &[u8]) -> ManifestLinks {
    match links_of(media_type, bytes) {
        Ok(links) => links,
        Err(reason) => ManifestLinks::Unparseable {
            reason,
            mentioned: mentioned_digests(bytes),
        },
    }
}

fn links_of(media_type: Option<&str>, bytes: &[u8]) -> Result<ManifestLinks, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(fields) = &doc else {
        return Err("not a JSON object".to_owned());
    };
    let declared = fields.get("mediaType").and_then(Value::as_str);
    let manifests = fields.get("manifests").filter(|m| !m.is_null());
    let is_index = [media_type, declared]
        .into_iter()
        .flatten()
        .any(|m| matches!(essence(m), OCI_INDEX | DOCKER_MANIFEST_LIST))
        || manifests.is_some();
    if is_index {
        let entries = manifests
            .and_then(Value::as_array)
            .ok_or("an index without a `manifests` array")?;
        let mut children: Vec<Digest> = Vec::with_capacity(entries.len());
        for (at, entry) in entries.iter().enumerate() {
            let digest = entry
                .get("digest")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("index entry {at} has no digest"))?;
            let digest = Digest::parse(digest).map_err(|e| format!("index entry {at}: {e}"))?;
            if !children.contains(&digest) {
                children.push(digest);
            }
        }
        return Ok(ManifestLinks::Index { children });
    }
    // An OCI or Docker image manifest, an OCI 1.1 artifact manifest
    // (`application/vnd.oci.artifact.manifest.v1+json`) or any other single manifest: the only
    // link retention follows out of it is its subject.
    let subject = match fields.get("subject") {
        None | Some(Value::Null) => None,
        Some(subject) => {
            let digest = subject
                .get("digest")
                .and_then(Value::as_str)
                .ok_or("a subject without a digest")?;
            Some(Digest::parse(digest).map_err(|e| format!("subject: {e}"))?)
        }
    };
    Ok(ManifestLinks::Manifest { subject })
}

/// The media type without parameters (`…+json; charset=utf-8`).
fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or_default().trim()
}

/// Every `sha256:<64 lowercase hex>` in `bytes`, first occurrence first, each once.
pub fn mentioned_digests(bytes: &[u8]) -> Vec<Digest> {
    const PREFIX: &[u8] = b"sha256:";
    const LEN: usize = PREFIX.len() + 64;
    let mut found: Vec<Digest> = Vec::new();
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut at = 0;
    while at + LEN <= bytes.len() {
        let candidate = &bytes[at..at + LEN];
        let is_digest = candidate.starts_with(PREFIX)
            && candidate[PREFIX.len()..]
                .iter()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !is_digest {
            at += 1;
            continue;
        }
        // A match cannot overlap the next one: `s` is not a hex digit.
        at += LEN;
        if seen.insert(candidate) {
            let text = std::str::from_utf8(candidate).expect("checked ASCII");
            found.push(Digest::parse(text).expect("checked digest syntax"));
        }
    }
    found
}
