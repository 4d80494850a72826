//! Signed proof of a release: where its index came from (SLSA Provenance v1) and why it passed
//! the scan gate (a SLSA Verification Summary), each an in-toto Statement in a DSSE envelope,
//! stored as an OCI 1.1 referrer of the published index.
//!
//! ECDSA signatures are randomised, so the envelopes are recorded on the release before any
//! is pushed: every promotion, repeated or racing, pushes the recorded bytes and so the same
//! two referrers.

pub mod dsse;
pub mod statement;

pub use dsse::Envelope;
// Referrers are OCI documents (`domain::oci`); attestations are what they carry.
pub use crate::domain::oci::referrer::{self, referrer, Blob, Referrer, ReferrerManifest};
pub use crate::domain::oci::Descriptor;
pub use statement::{Context, StatementError};

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttestationKind {
    Provenance,
    Verdict,
}

impl AttestationKind {
    pub const ALL: [AttestationKind; 2] = [AttestationKind::Provenance, AttestationKind::Verdict];

    pub fn predicate_type(self) -> &'static str {
        match self {
            AttestationKind::Provenance => statement::PROVENANCE_V1,
            AttestationKind::Verdict => statement::VERIFICATION_SUMMARY_V1,
        }
    }

    pub fn of_predicate(predicate_type: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.predicate_type() == predicate_type)
    }
}

impl fmt::Display for AttestationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttestationKind::Provenance => "provenance",
            AttestationKind::Verdict => "verdict",
        })
    }
}

/// One envelope as recorded on the release: pushed from exactly these bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub kind: AttestationKind,
    /// The DSSE envelope's JSON.
    pub envelope: String,
}

impl Attestation {
    /// The referrer of the index `subject` that carries this envelope.
    pub fn referrer(&self, subject: Descriptor) -> Referrer {
        referrer(
            self.envelope.as_bytes(),
            self.kind.predicate_type(),
            subject,
        )
    }

    /// The key that signed the envelope; `None` when unsigned.
    pub fn signed_by(&self) -> Option<String> {
        let envelope = Envelope::parse(self.envelope.as_bytes()).ok()?;
        envelope.signatures.first().map(|s| s.keyid.clone())
    }
}

/// The unsigned Statements of a release that passed the gate, provenance first.
pub fn statements(
    release: &crate::domain::Release,
    context: &Context<'_>,
) -> Result<Vec<(AttestationKind, Vec<u8>)>, StatementError> {
    Ok(vec![
        (
            AttestationKind::Provenance,
            statement::provenance(release, context)?,
        ),
        (
            AttestationKind::Verdict,
            statement::verdict(release, context)?,
        ),
    ])
}
