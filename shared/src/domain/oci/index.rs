//! Building the candidate OCI image index from the per-arch images ECR returned.
//!
//! The child digest is the sha256 of the exact manifest bytes the registry returned and the
//! size is their length, so the index references precisely what was pushed. The output bytes
//! are deterministic: the same children always give the same index and the same digest, which
//! makes a repeated PutImage a no-op.

use super::{Descriptor, Platform, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};
use crate::domain::digest::Digest;
use crate::domain::release::Arch;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const REFERENCE_TYPE: &str = "vnd.docker.reference.type";
const REFERENCE_DIGEST: &str = "vnd.docker.reference.digest";
const ATTESTATION: &str = "attestation-manifest";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OciError {
    #[error("{arch} image is not JSON: {reason}")]
    NotJson { arch: Arch, reason: String },
    #[error("{arch} image has media type `{media_type}`, which is neither an image manifest nor an index")]
    UnsupportedMediaType { arch: Arch, media_type: String },
    #[error("{arch} image is an index without a linux/{arch} manifest")]
    NoPlatformManifest { arch: Arch },
    #[error("{arch} image index entry is malformed: {reason}")]
    MalformedEntry { arch: Arch, reason: String },
}

/// The platform an image's config names (`os`, `architecture`, `variant`), as the build that
/// pushed it reported it (`IMAGE_PLATFORM`, `os/architecture[/variant]`). The registry API
/// cannot read config blobs, so the build's report is where the index's platform comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImagePlatform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl ImagePlatform {
    /// What archgate may say of an `arch` image whose build reported nothing: its os and
    /// architecture, which the build was started for, and no variant.
    pub fn of_arch(arch: Arch) -> ImagePlatform {
        ImagePlatform {
            os: "linux".to_owned(),
            architecture: arch.as_str().to_owned(),
            variant: None,
        }
    }

    /// Reads a build's report of the `arch` image it pushed: `linux/<arch>` or
    /// `linux/<arch>/<variant>` (a short lower-case variant). Anything else — another os or
    /// architecture than the build was started for, a malformed text — is refused with why.
    pub fn parse(arch: Arch, text: &str) -> Result<ImagePlatform, String> {
        let mut parts = text.split('/');
        let (os, architecture, variant) = (parts.next(), parts.next(), parts.next());
        if parts.next().is_some() {
            return Err("more than os/architecture/variant".to_owned());
        }
        if os != Some("linux") {
            return Err("the os is not linux".to_owned());
        }
        if architecture != Some(arch.as_str()) {
            return Err(format!("the architecture is not {arch}"));
        }
        let variant = match variant {
            None => None,
            Some(v)
                if (1..=8).contains(&v.len())
                    && v.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) =>
            {
                Some(v.to_owned())
            }
            Some(_) => return Err("the variant is not 1-8 lower-case letters or digits".into()),
        };
        Ok(ImagePlatform {
            os: "linux".to_owned(),
            architecture: arch.as_str().to_owned(),
            variant,
        })
    }
}

/// A manifest as the registry returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawManifest {
    /// The media type the registry reported, if it did.
    pub media_type: Option<String>,
    pub bytes: Vec<u8>,
}

/// One platform's entry for the candidate index, plus the attestations that describe it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformImage {
    pub arch: Arch,
    /// What the index says the image is; [`ImagePlatform::of_arch`] unless its build said.
    pub platform: ImagePlatform,
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// Attestation descriptors (buildx provenance/SBOM), kept verbatim.
    pub attestations: Vec<Value>,
}

/// Reads a per-arch image: a single-platform manifest is used as is; an index (as buildx
/// produces with provenance on) contributes its linux/<arch> manifest and its attestations.
pub fn platform_image(arch: Arch, raw: &RawManifest) -> Result<PlatformImage, OciError> {
    let doc: Value = serde_json::from_slice(&raw.bytes).map_err(|e| OciError::NotJson {
        arch,
        reason: e.to_string(),
    })?;
    let media_type = raw
        .media_type
        .clone()
        .filter(|m| !m.is_empty())
        .or_else(|| {
            doc.get("mediaType")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| DOCKER_MANIFEST.to_owned());
    match media_type.as_str() {
        OCI_MANIFEST | DOCKER_MANIFEST => Ok(PlatformImage {
            arch,
            platform: ImagePlatform::of_arch(arch),
            media_type,
            digest: Digest::of(&raw.bytes),
            size: raw.bytes.len() as u64,
            attestations: Vec::new(),
        }),
        OCI_INDEX | DOCKER_MANIFEST_LIST => from_index(arch, &doc),
        _ => Err(OciError::UnsupportedMediaType { arch, media_type }),
    }
}

fn from_index(arch: Arch, doc: &Value) -> Result<PlatformImage, OciError> {
    let malformed = |reason: &str| OciError::MalformedEntry {
        arch,
        reason: reason.to_owned(),
    };
    let entries = doc
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `manifests` array"))?;
    let architecture = arch.as_str();
    let platform_entry = entries
        .iter()
        .find(|entry| {
            let platform = entry.get("platform");
            let field = |name| platform.and_then(|p| p.get(name)).and_then(Value::as_str);
            field("os") == Some("linux")
                && field("architecture") == Some(architecture)
                && !is_attestation(entry)
        })
        .ok_or(OciError::NoPlatformManifest { arch })?;
    let digest = platform_entry
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| malformed("entry without a digest"))
        .and_then(|d| Digest::parse(d).map_err(|e| malformed(&e.to_string())))?;
    let size = platform_entry
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| malformed("entry without a size"))?;
    let media_type = platform_entry
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(OCI_MANIFEST)
        .to_owned();
    let attestations = entries
        .iter()
        .filter(|entry| {
            is_attestation(entry)
                && entry
                    .get("annotations")
                    .and_then(|a| a.get(REFERENCE_DIGEST))
                    .and_then(Value::as_str)
                    == Some(digest.as_str())
        })
        .cloned()
        .collect();
    Ok(PlatformImage {
        arch,
        platform: ImagePlatform::of_arch(arch),
        media_type,
        digest,
        size,
        attestations,
    })
}

/// The digests of an index's linux image entries (not its attestation entries, whose
/// platform is `unknown/unknown`); none when the bytes are not an index of descriptors.
pub fn linux_children(index: &[u8]) -> Vec<Digest> {
    #[derive(Deserialize)]
    struct Entries {
        #[serde(default)]
        manifests: Vec<Descriptor>,
    }
    serde_json::from_slice::<Entries>(index)
        .map(|entries| {
            entries
                .manifests
                .into_iter()
                .filter(|d| d.platform.as_ref().is_some_and(|p| p.os == "linux"))
                .map(|d| d.digest)
                .collect()
        })
        .unwrap_or_default()
}

fn is_attestation(entry: &Value) -> bool {
    entry
        .get("annotations")
        .and_then(|a| a.get(REFERENCE_TYPE))
        .and_then(Value::as_str)
        == Some(ATTESTATION)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Index<'a> {
    schema_version: u8,
    media_type: &'static str,
    manifests: Vec<Value>,
    annotations: &'a IndexAnnotations,
}

/// What the index says about itself: true of the published index under every tag that
/// names it (no tag name: `org.opencontainers.image.ref.name` belongs to an image layout's
/// `index.json`, and the index is published under several tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexAnnotations {
    /// When the source was uploaded (RFC 3339).
    #[serde(rename = "org.opencontainers.image.created")]
    pub created: String,
    /// The uploaded source object (`s3://bucket/key`).
    #[serde(rename = "org.opencontainers.image.source")]
    pub source: String,
    /// The source object's version id (or ETag in an unversioned bucket).
    #[serde(rename = "org.opencontainers.image.revision")]
    pub revision: String,
    /// The release tag.
    #[serde(rename = "org.opencontainers.image.version")]
    pub version: String,
}

/// The annotation naming the release an index was assembled for.
pub const VERSION_ANNOTATION: &str = "org.opencontainers.image.version";

/// The candidate index: platform entries in arch order, then their attestations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltIndex {
    pub bytes: Vec<u8>,
    pub digest: Digest,
}

pub fn build_index(annotations: &IndexAnnotations, images: &[PlatformImage]) -> BuiltIndex {
    let mut sorted: Vec<&PlatformImage> = images.iter().collect();
    sorted.sort_by_key(|image| image.arch);
    let mut manifests: Vec<Value> = sorted
        .iter()
        .map(|image| {
            serde_json::to_value(Descriptor {
                platform: Some(Platform {
                    architecture: image.platform.architecture.clone(),
                    os: image.platform.os.clone(),
                    variant: image.platform.variant.clone(),
                }),
                ..Descriptor::of_digest(&image.media_type, image.digest.clone(), image.size)
            })
            .expect("descriptor serialises")
        })
        .collect();
    manifests.extend(
        sorted
            .iter()
            .flat_map(|image| image.attestations.iter().cloned()),
    );
    let index = Index {
        schema_version: 2,
        media_type: OCI_INDEX,
        manifests,
        annotations,
    };
    let bytes = serde_json::to_vec(&index).expect("index serialises");
    BuiltIndex {
        digest: Digest::of(&bytes),
        bytes,
    }
}
