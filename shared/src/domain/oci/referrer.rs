//! OCI 1.1 referrers: an attestation is an image manifest whose `subject` is the release's
//! index, whose one layer is the DSSE envelope and whose config is the empty descriptor.

use super::{Descriptor, OCI_MANIFEST};
use crate::domain::digest::Digest;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The media type of a DSSE envelope: the referrer's `artifactType` and its layer's type.
pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// The annotation that names the in-toto predicate inside (as Docker's and cosign's
/// attestation manifests do), so a reader can pick an attestation without fetching it.
pub const PREDICATE_TYPE_ANNOTATION: &str = "in-toto.io/predicate-type";
/// The OCI empty descriptor: the config of an artifact that has none.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_CONFIG: &[u8] = b"{}";

/// A blob a referrer manifest names, to upload before the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub digest: Digest,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn of(bytes: Vec<u8>) -> Self {
        Blob {
            digest: Digest::of(&bytes),
            bytes,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReferrerManifest {
    pub schema_version: u8,
    pub media_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// A referrer ready to push: its blobs (config first), then the manifest by digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Referrer {
    pub blobs: Vec<Blob>,
    pub manifest: Vec<u8>,
    pub digest: Digest,
}

/// The referrer of `subject` that carries `envelope` (an in-toto Statement of
/// `predicate_type`). Same inputs, same bytes: a repeated push is the same image.
pub fn referrer(envelope: &[u8], predicate_type: &str, subject: Descriptor) -> Referrer {
    let annotations: std::collections::BTreeMap<String, String> = [(
        PREDICATE_TYPE_ANNOTATION.to_owned(),
        predicate_type.to_owned(),
    )]
    .into();
    let mut config = Descriptor::of(EMPTY_CONFIG_MEDIA_TYPE, EMPTY_CONFIG);
    config.data = Some("e30=".to_owned());
    let mut layer = Descriptor::of(DSSE_ENVELOPE, envelope);
    layer.annotations = Some(annotations.clone());
    // The envelope embedded too (the descriptor's `data`, for small content): a verifier
    // reads it with the manifest, without a blob download.
    layer.data = Some(STANDARD.encode(envelope));
    let manifest = ReferrerManifest {
        schema_version: 2,
        media_type: OCI_MANIFEST.to_owned(),
        artifact_type: Some(DSSE_ENVELOPE.to_owned()),
        config,
        layers: vec![layer],
        subject: Some(subject),
        annotations: Some(annotations),
    };
    let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
    Referrer {
        blobs: vec![Blob::of(EMPTY_CONFIG.to_vec()), Blob::of(envelope.to_vec())],
        digest: Digest::of(&bytes),
        manifest: bytes,
    }
}

impl ReferrerManifest {
    /// A manifest that is an attestation of archgate's kind: DSSE artifact, one layer.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let manifest: ReferrerManifest = serde_json::from_slice(bytes).ok()?;
        (manifest.artifact_type.as_deref() == Some(DSSE_ENVELOPE) && manifest.layers.len() == 1)
            .then_some(manifest)
    }

    /// The envelope embedded in the layer descriptor, when it hashes to the layer's digest.
    pub fn embedded_envelope(&self) -> Result<Vec<u8>, String> {
        let layer = &self.layers[0];
        let data = layer
            .data
            .as_deref()
            .ok_or("the layer descriptor embeds no envelope")?;
        let bytes = STANDARD
            .decode(data)
            .map_err(|e| format!("the embedded envelope is not base64: {e}"))?;
        if Digest::of(&bytes) != layer.digest {
            return Err(format!(
                "the embedded envelope does not hash to the layer digest {}",
                layer.digest
            ));
        }
        Ok(bytes)
    }

    pub fn predicate_type(&self) -> Option<&str> {
        self.annotations
            .as_ref()?
            .get(PREDICATE_TYPE_ANNOTATION)
            .map(String::as_str)
    }
}
