//! The one way a release is written: read, decide, write conditionally; a conflicting write
//! (someone else moved the release since the read) reads again and decides again, at most
//! [`WRITE_ATTEMPTS`] times. The pipeline and retention both write releases through
//! [`Reads`] and
//! [`save`].

use crate::domain::ReleaseKey;
use crate::error::AdapterError;
use crate::ports::{Ledger, SaveError, Stored};

/// Conflicting writes of one release before the writer gives up (the pipeline's invocation
/// is then retried by Lambda; retention leaves the release for a later run).
pub const WRITE_ATTEMPTS: usize = 8;

/// Where the first attempt's read comes from.
pub enum FirstRead {
    /// The caller has just read the release.
    Given(Box<Stored>),
    /// The release is new: its first write is a conditional put that fails if it exists.
    New,
    /// Read it from the ledger.
    Load,
}

/// What one attempt decides on.
pub struct Fresh {
    pub stored: Option<Stored>,
    /// Whether `stored` was read from the ledger for this attempt (after a conflict, or for
    /// [`FirstRead::Load`]), not given by the caller.
    pub loaded: bool,
}

/// Reading the release failed.
#[derive(Debug)]
pub struct ReadFailed {
    pub key: ReleaseKey,
    pub source: AdapterError,
}

impl From<ReadFailed> for AdapterError {
    fn from(failed: ReadFailed) -> Self {
        failed.source
    }
}

/// The reads one write of a release decides on: the first as the caller has it, then a fresh
/// one after each conflicting write, [`WRITE_ATTEMPTS`] in all. The writer's loop:
///
/// ```text
/// let mut reads = Reads::new(ledger, key, first);
/// while let Some(fresh) = reads.next().await? {
///     decide on fresh.stored; write::save(...) conditionally; done unless it conflicted
/// }
/// // attempts spent: the release kept changing under the writer
/// ```
///
/// (A cursor, not a function taking the attempt as an async closure: the handlers' futures
/// must be `Send`, which the compiler cannot yet prove through an async closure's borrows.)
pub struct Reads<'a, L> {
    ledger: &'a L,
    key: &'a ReleaseKey,
    first: Option<FirstRead>,
    left: usize,
}

impl<'a, L: Ledger> Reads<'a, L> {
    pub fn new(ledger: &'a L, key: &'a ReleaseKey, first: FirstRead) -> Self {
        Reads {
            ledger,
            key,
            first: Some(first),
            left: WRITE_ATTEMPTS,
        }
    }

    /// The next read to decide on, or `None` once the attempts are spent. A caller that
    /// decides at a time reads its clock before this (so nothing recorded after the read
    /// looks newer than the decision).
    pub async fn next(&mut self) -> Result<Option<Fresh>, ReadFailed> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let fresh = match self.first.take() {
            Some(FirstRead::Given(stored)) => Fresh {
                stored: Some(*stored),
                loaded: false,
            },
            Some(FirstRead::New) => Fresh {
                stored: None,
                loaded: false,
            },
            Some(FirstRead::Load) | None => Fresh {
                stored: self
                    .ledger
                    .load(self.key)
                    .await
                    .map_err(|source| ReadFailed {
                        key: self.key.clone(),
                        source,
                    })?,
                loaded: true,
            },
        };
        Ok(Some(fresh))
    }
}

/// One conditional write: the new version, or `None` when someone else wrote first.
pub async fn save<L: Ledger>(
    ledger: &L,
    release: &crate::domain::Release,
    expected: Option<u64>,
) -> Result<Option<u64>, AdapterError> {
    match ledger.save(release, expected).await {
        Ok(version) => Ok(Some(version)),
        Err(SaveError::Conflict { .. }) => Ok(None),
        Err(SaveError::Adapter(source)) => Err(source),
    }
}
