//! The OCI documents archgate reads and writes, written by hand in this one module: media
//! types, descriptors, the candidate index (index.rs) and the attestation referrers
//! (referrer.rs). `oci-spec`'s image types would fit the package budget but not archgate's
//! bytes: their annotations are hash maps, so the same index would serialise in another order
//! (and get another digest) in each process, and re-serialising the attestation entries buildx
//! wrote would change the children's bytes (README, "Lambda packages").

mod index;
pub mod referrer;

pub use index::*;
pub use referrer::{Blob, Referrer, ReferrerManifest};

use crate::domain::digest::Digest;
use serde::{Deserialize, Serialize};

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// Every media type archgate asks ECR for: single-platform manifests and indexes alike.
pub const ACCEPTED_MEDIA_TYPES: [&str; 4] = [
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
];

/// An OCI content descriptor: what an index entry, a manifest's config and layers and a
/// referrer's subject say of the content they name. Fields in the specification's order, the
/// optional ones left out when empty: the same content always gives the same bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// An index entry's platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

impl Descriptor {
    pub fn of(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor::of_digest(media_type, Digest::of(bytes), bytes.len() as u64)
    }

    /// The descriptor of content known by its digest and size.
    pub fn of_digest(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            platform: None,
            data: None,
            annotations: None,
        }
    }
}

/// An index entry's platform, in the specification's field order (architecture, os, variant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}
