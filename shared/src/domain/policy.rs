//! A repository's own policy as the ledger stores it: the settings it overrides (by their
//! variable names without `ARCHGATE_`) and the version each change gets. The environment gives
//! every value a repository does not set; [`crate::config::policy`] resolves the two.

use super::Millis;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One repository's settings as last written by `archgate repo set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    pub repository: String,
    /// 1 for the first change, one more for each after it; 0 is "nothing set" (the
    /// environment's values alone) and is never stored.
    pub version: u64,
    /// `NAME` (without `ARCHGATE_`) → value, as the environment variable would hold it.
    pub values: BTreeMap<String, String>,
    pub updated_at: Millis,
}

/// What the ledger holds for a repository's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyRead {
    /// Nothing set: the environment's values apply (version 0).
    Unset,
    Found(PolicyRecord),
    /// An item that does not parse: whoever needs the policy fails closed.
    Unreadable {
        reason: String,
        /// The item's version, when that much reads: a replacement's write expects it.
        version: Option<u64>,
    },
}
