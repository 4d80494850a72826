//! KMS: Sign of release attestations with an ECDSA P-256 key (DescribeKey first: only a key
//! whose signatures can be verified signs), GetPublicKey to verify them.
//! The private key never leaves KMS. Messages up to KMS's 4 KiB are sent as they are (RAW);
//! a larger one as its SHA-256 digest (DIGEST), which gives the same signature.

use super::classify;
use crate::error::AdapterError;
use crate::operation::{KMS_DESCRIBE_KEY, KMS_GET_PUBLIC_KEY, KMS_SIGN};
use crate::ports::Signer;
use aws_sdk_kms::error::SdkError;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{
    KeyMetadata, KeySpec, KeyState, KeyUsageType, MessageType, SigningAlgorithmSpec,
};
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

    async fn check(&self) -> Result<(), AdapterError> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let unusable = |reason: String| AdapterError::KeyUnusable {
            key: key.clone(),
            reason,
        };
        let output = match self.client.describe_key().key_id(key).send().await {
            Ok(output) => output,
            Err(SdkError::ServiceError(e)) if e.err().is_not_found_exception() => {
                return Err(unusable(
                    "KMS has no such key in this account and region".to_owned(),
                ))
            }
            Err(e) => return Err(classify(KMS_DESCRIBE_KEY, e)),
        };
        let metadata = output
            .key_metadata()
            .ok_or_else(|| AdapterError::Unexpected {
                service: "KMS",
                operation: "DescribeKey",
                reason: "no key metadata in the answer".to_owned(),
            })?;
        key_problem(metadata).map_or(Ok(()), |reason| Err(unusable(reason)))
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
            .map_err(|e| classify(KMS_SIGN, e))?;
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

/// Why a key cannot sign releases (`None`: it can): archgate signs with ECDSA P-256 and
/// SHA-256, which is what `archgate release verify` and in-toto tooling check, so only an
/// enabled ECC_NIST_P256 key for SIGN_VERIFY will do.
pub fn key_problem(metadata: &KeyMetadata) -> Option<String> {
    let spec = metadata.key_spec().map(|s| s.as_str().to_owned());
    if metadata.key_spec() != Some(&KeySpec::EccNistP256) {
        return Some(format!(
            "it is a {} key; archgate signs with ECC_NIST_P256 (ECDSA P-256, SHA-256)",
            spec.as_deref().unwrap_or("key of unknown kind")
        ));
    }
    if metadata.key_usage() != Some(&KeyUsageType::SignVerify) {
        return Some(format!(
            "its usage is {}, not SIGN_VERIFY",
            metadata.key_usage().map_or("unknown", |u| u.as_str())
        ));
    }
    match metadata.key_state() {
        Some(KeyState::Enabled) if metadata.enabled() => None,
        Some(KeyState::PendingDeletion) => Some(format!(
            "it is pending deletion{}",
            metadata
                .deletion_date()
                .map(|d| format!(" (on {d})"))
                .unwrap_or_default()
        )),
        state => Some(format!(
            "it is {}",
            state.map_or("not enabled".to_owned(), |s| format!(
                "in state {}",
                s.as_str()
            ))
        )),
    }
}

/// The key's public key, DER-encoded SubjectPublicKeyInfo (GetPublicKey).
pub async fn public_key(client: &aws_sdk_kms::Client, key: &str) -> Result<Vec<u8>, AdapterError> {
    let output = client
        .get_public_key()
        .key_id(key)
        .send()
        .await
        .map_err(|e| classify(KMS_GET_PUBLIC_KEY, e))?;
    output
        .public_key()
        .map(|k| k.as_ref().to_vec())
        .ok_or_else(|| AdapterError::Unexpected {
            service: "KMS",
            operation: "GetPublicKey",
            reason: "no public key in the answer".to_owned(),
        })
}
