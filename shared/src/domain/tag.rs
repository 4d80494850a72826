//! Release tags: derived from the source object's file name, restricted to ECR's tag alphabet.

use super::digest::truncate_for_message;
use super::notice::RejectReason;
use serde::{Deserialize, Serialize};
use std::fmt;

/// ECR allows 128 characters per tag; the longest suffix archgate appends is `-candidate`.
pub const MAX_TAG_LEN: usize = 128;
const LONGEST_SUFFIX: &str = "-candidate";
pub const MAX_RELEASE_TAG_LEN: usize = MAX_TAG_LEN - LONGEST_SUFFIX.len();

/// The suffixes of a release's internal tags: `<tag>-amd64`, `<tag>-arm64`, `<tag>-candidate`.
pub const INTERNAL_SUFFIXES: [&str; 3] = ["-amd64", "-arm64", LONGEST_SUFFIX];

/// The build-cache refs `buildspecs/arch.yml` writes with `--cache-to` (`buildcache-<arch>`).
pub const CACHE_REFS: [&str; 2] = ["buildcache-amd64", "buildcache-arm64"];

/// A release tag: `[A-Za-z0-9_.-]`, starting with a letter or digit, at most
/// [`MAX_RELEASE_TAG_LEN`] characters so every derived tag (`<tag>-candidate`) fits ECR.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ReleaseTag(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("object key `{key}` is not under the prefix `{prefix}`")]
    OutsidePrefix { key: String, prefix: String },
    #[error("object key `{key}` is not a .zip file")]
    NotZip { key: String },
    #[error("object key `{key}` has a file name that leaves no usable tag after sanitising")]
    EmptyStem { key: String },
    #[error("object key `{key}` is refused: {reason}")]
    SuspiciousKey { key: String, reason: &'static str },
    #[error("`{value}` is not a valid release tag: {reason}")]
    Invalid { value: String, reason: &'static str },
}

impl ReleaseTag {
    /// Checks a tag that should already be valid (from the ledger, a build's environment, the CLI).
    pub fn parse(value: &str) -> Result<Self, TagError> {
        let invalid = |reason| TagError::Invalid {
            value: truncate_for_message(value),
            reason,
        };
        let first = value.chars().next().ok_or_else(|| invalid("it is empty"))?;
        if !first.is_ascii_alphanumeric() {
            return Err(invalid("it must start with a letter or digit"));
        }
        if value.len() > MAX_RELEASE_TAG_LEN {
            return Err(invalid("it is longer than 118 characters"));
        }
        if !value.chars().all(is_tag_char) {
            return Err(invalid("only A-Z, a-z, 0-9, `_`, `.` and `-` are allowed"));
        }
        Ok(ReleaseTag(value.to_owned()))
    }

    /// Derives the tag from an S3 key: `releases/myapp-1.4.2.zip` → `myapp-1.4.2`.
    ///
    /// Characters outside ECR's alphabet become `-`; leading characters that cannot start a tag
    /// are dropped; the result is cut to [`MAX_RELEASE_TAG_LEN`].
    pub fn from_object_key(key: &str, prefix: &str) -> Result<Self, TagError> {
        let rest = key
            .strip_prefix(prefix)
            .ok_or_else(|| TagError::OutsidePrefix {
                key: truncate_for_message(key),
                prefix: prefix.to_owned(),
            })?;
        // S3 keys have no path semantics, but builders and people read them as paths: a key
        // that would mean something else as a path, or that hides its text, starts nothing.
        let suspicious = |reason| TagError::SuspiciousKey {
            key: truncate_for_message(key),
            reason,
        };
        if rest
            .split('/')
            .any(|segment| matches!(segment, "" | "." | ".."))
        {
            return Err(suspicious("it has empty, `.` or `..` path segments"));
        }
        if key.chars().any(|c| {
            c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        }) {
            return Err(suspicious("it contains control or text-direction characters"));
        }
        let file_name = rest.rsplit('/').next().unwrap_or(rest);
        let stem = file_name
            .strip_suffix(".zip")
            .ok_or_else(|| TagError::NotZip {
                key: truncate_for_message(key),
            })?;
        let sanitised: String = stem
            .chars()
            .map(|c| if is_tag_char(c) { c } else { '-' })
            .skip_while(|c| !c.is_ascii_alphanumeric())
            .take(MAX_RELEASE_TAG_LEN)
            .collect();
        // A stem made only of replaced characters carries no name worth releasing.
        if sanitised.is_empty() || !sanitised.chars().any(|c| c.is_ascii_alphanumeric()) {
            return Err(TagError::EmptyStem {
                key: truncate_for_message(key),
            });
        }
        Ok(ReleaseTag(sanitised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn arch_tag(&self, arch: super::Arch) -> String {
        format!("{}-{}", self.0, arch.as_str())
    }

    pub fn candidate_tag(&self) -> String {
        format!("{}{LONGEST_SUFFIX}", self.0)
    }

    /// The tags archgate gives a release's own images besides the release tag.
    pub fn internal_tags(&self) -> [String; 3] {
        INTERNAL_SUFFIXES.map(|suffix| format!("{}{suffix}", self.0))
    }

    /// Why this tag can never be a release: it would enter the namespace of internal tags,
    /// moving tags or build-cache refs (DESIGN.md, "Reserved names").
    pub fn reserved(&self, moving_tags: &[String]) -> Option<RejectReason> {
        if let Some(suffix) = INTERNAL_SUFFIXES.iter().find(|s| self.0.ends_with(*s)) {
            return Some(RejectReason::InternalSuffix {
                suffix: (*suffix).to_owned(),
            });
        }
        if moving_tags.contains(&self.0) {
            return Some(RejectReason::MovingTag {
                tag: self.0.clone(),
            });
        }
        if names_another_image(&self.0) {
            return Some(RejectReason::ReferrerTag {
                shape: "sha256-<hex>".to_owned(),
            });
        }
        let own = self.internal_tags();
        CACHE_REFS
            .iter()
            .find(|r| **r == self.0 || own.iter().any(|t| t == *r))
            .map(|r| RejectReason::CacheRef {
                reference: (*r).to_owned(),
            })
    }
}

/// Whether a tag names another image by its digest, as signing tools (`sha256-<hex>.sig`,
/// `.att`, `.sbom`) and the OCI referrers fallback (`sha256-<hex>`) do, whatever follows the
/// digest. (A sha512 digest does not fit in a release tag.)
pub fn names_another_image(tag: &str) -> bool {
    const PREFIX: &str = "sha256-";
    let bytes = tag.as_bytes();
    bytes.len() >= PREFIX.len() + 64
        && bytes[..PREFIX.len()].eq_ignore_ascii_case(PREFIX.as_bytes())
        && bytes[PREFIX.len()..PREFIX.len() + 64]
            .iter()
            .all(u8::is_ascii_hexdigit)
}

fn is_tag_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

impl fmt::Display for ReleaseTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ReleaseTag {
    type Error = TagError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ReleaseTag::parse(&value)
    }
}

impl From<ReleaseTag> for String {
    fn from(value: ReleaseTag) -> Self {
        value.0
    }
}
