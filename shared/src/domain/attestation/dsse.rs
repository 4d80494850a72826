//! DSSE envelopes (Dead Simple Signing Envelope v1): the signature covers the pre-auth
//! encoding of the payload type and the payload, never the JSON around them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// The payload type of an in-toto Statement.
pub const IN_TOTO_PAYLOAD: &str = "application/vnd.in-toto+json";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub payload_type: String,
    /// Standard base64 of the payload bytes.
    pub payload: String,
    pub signatures: Vec<EnvelopeSignature>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// Standard base64 of the signature (ECDSA: ASN.1 DER, as cosign and in-toto write it).
    pub sig: String,
}

/// PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {} {} ",
        payload_type.len(),
        payload_type,
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// An envelope of `payload` with no signature yet.
    pub fn unsigned(payload: &[u8]) -> Self {
        Envelope {
            payload_type: IN_TOTO_PAYLOAD.to_owned(),
            payload: STANDARD.encode(payload),
            signatures: Vec::new(),
        }
    }

    pub fn add_signature(&mut self, keyid: &str, signature: &[u8]) {
        self.signatures.push(EnvelopeSignature {
            keyid: keyid.to_owned(),
            sig: STANDARD.encode(signature),
        });
    }

    /// The payload bytes; `None` when the payload is not base64.
    pub fn payload_bytes(&self) -> Option<Vec<u8>> {
        STANDARD.decode(&self.payload).ok()
    }

    /// What a signature covers: the pre-auth encoding of this envelope's payload.
    pub fn signed_message(&self) -> Option<Vec<u8>> {
        Some(pae(&self.payload_type, &self.payload_bytes()?))
    }

    /// The envelope as stored: compact JSON in field order, so the same envelope always
    /// gives the same bytes (and the same blob digest).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an envelope serialises")
    }

    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a DSSE envelope: {e}"))
    }
}

/// Decodes a signature's standard base64.
pub fn decode_signature(sig: &str) -> Option<Vec<u8>> {
    STANDARD.decode(sig).ok()
}
