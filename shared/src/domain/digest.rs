//! Content digests as ECR and OCI spell them: `sha256:<64 lowercase hex>`.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a sha256 digest (expected sha256:<64 lowercase hex digits>)")]
pub struct InvalidDigest {
    pub value: String,
}

impl Digest {
    /// The digest of exactly these bytes.
    pub fn of(bytes: &[u8]) -> Self {
        Digest(format!("sha256:{}", hex::encode(Sha256::digest(bytes))))
    }

    pub fn parse(value: &str) -> Result<Self, InvalidDigest> {
        let valid = value.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if valid {
            Ok(Digest(value.to_owned()))
        } else {
            Err(InvalidDigest {
                value: truncate_for_message(value),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part, as cosign-style tags and short displays use it.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Digest {
    type Error = InvalidDigest;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Digest::parse(&value)
    }
}

impl From<Digest> for String {
    fn from(value: Digest) -> Self {
        value.0
    }
}

/// Untrusted values end up in error messages; keep those messages bounded.
pub(crate) fn truncate_for_message(value: &str) -> String {
    const LIMIT: usize = 100;
    if value.chars().count() <= LIMIT {
        value.to_owned()
    } else {
        let head: String = value.chars().take(LIMIT).collect();
        format!("{head}…")
    }
}
