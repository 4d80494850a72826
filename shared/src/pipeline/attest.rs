//! Attestation: the release's provenance and the gate's verdict, each an in-toto Statement
//! in a DSSE envelope, signed once and recorded; the promotion pushes what was recorded.

use super::{EffectError, Pipeline};
use crate::domain::attestation::{self, Attestation, Context, Envelope};
use crate::domain::{EffectResult, Release};
use crate::ports::{Ports, Signer};

impl<P: Ports> Pipeline<P> {
    /// One DescribeKey, then one KMS Sign per Statement (none without a key).
    pub(super) async fn attest(&self, release: &Release) -> Result<EffectResult, EffectError> {
        let config = &self.config;
        // The policy the gate applies now; each image's verdict names the version that
        // judged it.
        let policy = self.policy_of(&release.key.repository).await?;
        let context = Context {
            policy: &policy.gate,
            policy_version: policy.version,
            amd64_project: &config.amd64_project,
            arm64_project: &config.arm64_project,
            manifest_project: config.manifest_project.as_deref(),
            region: config.region.as_deref(),
            account_id: config.account_id.as_deref(),
        };
        if self.signer.key_id().is_some() {
            // A key that cannot sign verifiably says why before anything is signed.
            self.signer.check().await?;
        }
        let mut attestations = Vec::new();
        for (kind, statement) in attestation::statements(release, &context)? {
            let mut envelope = Envelope::unsigned(&statement);
            if let Some(key) = self.signer.key_id() {
                let message = attestation::dsse::pae(&envelope.payload_type, &statement);
                let signature = self.signer.sign(&message).await?;
                envelope.add_signature(key, &signature);
            }
            attestations.push(Attestation {
                kind,
                envelope: String::from_utf8(envelope.to_bytes()).expect("JSON is UTF-8"),
            });
        }
        Ok(EffectResult::Attested { attestations })
    }
}
