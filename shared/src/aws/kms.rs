//! KMS: Sign of release attestations with an ECDSA P-256 key, GetPublicKey to verify them.
//! The private key never leaves KMS. Messages up to KMS's 4 KiB are sent as they are (RAW);
//! a larger one as its SHA-256 digest (DIGEST), which gives the same signature.

use super::classify;
use crate::error::AdapterError;
use crate::ports::Signer;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use sha2::{Digest as _, Sha256};

/// The largest message KMS Sign takes as it is.
const MAX_RAW_MESSAGE: usize = 4096;

/// Signs with `key` when one is configured; leaves envelopes unsigned otherwise.
#[derive(Clone, Debug)]
pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key: Option<String>,
}

impl KmsSigner {
    pub fn new(client: aws_sdk_kms::Client, key: Option<String>) -> Self {
        KmsSigner { client, key }
    }
}

impl Signer for KmsSigner {
    fn key_id(&self) -> Option<&str> {
        self.key.as_deref()
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AdapterError> {
        let Some(key) = &self.key else {
            return Ok(Vec::new());
        };
        let (message, message_type) = if message.len() <= MAX_RAW_MESSAGE {
            (message.to_vec(), MessageType::Raw)
        } else {
            (Sha256::digest(message).to_vec(), MessageType::Digest)
        };
        let output = self
            .client
            .sign()
            .key_id(key)
            .message(Blob::new(message))
            .message_type(message_type)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| classify("KMS", "Sign", e))?;
        output
            .signature()
            .map(|s| s.as_ref().to_vec())
            .ok_or_else(|| AdapterError::Unexpected {
                service: "KMS",
                operation: "Sign",
                reason: "no signature in the answer".to_owned(),
            })
    }
}

/// The key's public key, DER-encoded SubjectPublicKeyInfo (GetPublicKey).
pub async fn public_key(client: &aws_sdk_kms::Client, key: &str) -> Result<Vec<u8>, AdapterError> {
    let output = client
        .get_public_key()
        .key_id(key)
        .send()
        .await
        .map_err(|e| classify("KMS", "GetPublicKey", e))?;
    output
        .public_key()
        .map(|k| k.as_ref().to_vec())
        .ok_or_else(|| AdapterError::Unexpected {
            service: "KMS",
            operation: "GetPublicKey",
            reason: "no public key in the answer".to_owned(),
        })
}
