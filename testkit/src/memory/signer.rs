//! KMS Sign in memory, with the property exactly-once depends on: like ECDSA, every
//! signature of the same message differs, so only what was recorded can be pushed twice.

use super::chaos::Chaos;
use archgate::error::AdapterError;
use archgate::operation::{KMS_DESCRIBE_KEY, KMS_SIGN};
use archgate::ports::Signer;
use sha2::{Digest as _, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct MemorySigner {
    key: String,
    chaos: Chaos,
    signed: Arc<AtomicU64>,
    /// Why the key cannot sign right now (disabled, pending deletion, the wrong kind).
    unusable: Arc<Mutex<Option<String>>>,
}

impl MemorySigner {
    pub fn new(chaos: Chaos, key: &str) -> Self {
        MemorySigner {
            key: key.to_owned(),
            chaos,
            signed: Arc::default(),
            unusable: Arc::default(),
        }
    }

    /// From now on the key cannot sign, for this reason (`None`: it can again).
    pub fn set_unusable(&self, reason: Option<&str>) {
        *self.unusable.lock().unwrap_or_else(|p| p.into_inner()) = reason.map(str::to_owned);
    }

    fn unusable(&self) -> Option<String> {
        self.unusable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Signatures made so far.
    pub fn signed(&self) -> u64 {
        self.signed.load(Ordering::SeqCst)
    }
}

impl Signer for MemorySigner {
    fn key_id(&self) -> Option<&str> {
        Some(&self.key)
    }

    async fn check(&self) -> Result<(), AdapterError> {
        let fault = self.chaos.enter(KMS_DESCRIBE_KEY).await?;
        if let Some(reason) = self.unusable() {
            return Err(AdapterError::KeyUnusable {
                key: self.key.clone(),
                reason: format!("injected: {reason}"),
            });
        }
        self.chaos.leave(fault, KMS_DESCRIBE_KEY, ()).await
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AdapterError> {
        let fault = self.chaos.enter(KMS_SIGN).await?;
        if let Some(reason) = self.unusable() {
            return Err(AdapterError::Rejected {
                service: "KMS",
                operation: "Sign",
                code: "KMSInvalidStateException".to_owned(),
                source: format!("injected: {reason}").into(),
            });
        }
        let nonce = self.signed.fetch_add(1, Ordering::SeqCst);
        let mut hasher = Sha256::new();
        hasher.update(self.key.as_bytes());
        hasher.update(nonce.to_be_bytes());
        hasher.update(message);
        let signature = hasher.finalize().to_vec();
        self.chaos.leave(fault, KMS_SIGN, signature).await
    }
}
