//! KMS Sign in memory, with the property exactly-once depends on: like ECDSA, every
//! signature of the same message differs, so only what was recorded can be pushed twice.

use super::chaos::Chaos;
use crate::error::AdapterError;
use crate::ports::Signer;
use sha2::{Digest as _, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Clone)]
pub struct MemorySigner {
    key: String,
    chaos: Chaos,
    signed: Arc<AtomicU64>,
}

impl MemorySigner {
    pub fn new(chaos: Chaos, key: &str) -> Self {
        MemorySigner {
            key: key.to_owned(),
            chaos,
            signed: Arc::default(),
        }
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

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, AdapterError> {
        let fault = self.chaos.enter("KMS", "Sign", "KMS.Sign").await?;
        let nonce = self.signed.fetch_add(1, Ordering::SeqCst);
        let mut hasher = Sha256::new();
        hasher.update(self.key.as_bytes());
        hasher.update(nonce.to_be_bytes());
        hasher.update(message);
        let signature = hasher.finalize().to_vec();
        self.chaos.leave(fault, "KMS", "Sign", signature).await
    }
}
