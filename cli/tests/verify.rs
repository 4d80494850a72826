//! `archgate release verify` on a release whose index also carries attestations other tools
//! attached: archgate's two are verified, the others listed as not archgate's.

use archgate::aws::EcrRegistry;
use archgate::config::{MOVING_TAGS, SIGNING_KEY};
use archgate::domain::attestation::{referrer, Descriptor, Envelope};
use archgate::domain::oci::{RawManifest, OCI_INDEX, OCI_MANIFEST};
use archgate::domain::Digest;
use archgate::ports::Registry;
use archgate_cli::local::LocalEnv;
use serde_json::{json, Value};

const TAG: &str = "myapp-6.0.0";

/// Upload, both builds and both scans (clean), through the handlers: published; its index.
async fn publish(env: &LocalEnv, tag: &str) -> Digest {
    let last = crate::release(env, tag).await;
    assert_eq!(last["phase"], "published", "{last}");
    let stored = env.release(tag).await.unwrap().unwrap();
    stored.release.candidate.unwrap().digest
}

/// Pushes an (unsigned) DSSE envelope holding `statement` as a referrer of `index`, as a
/// team's pipeline or another tool attaches its own attestations.
async fn attach(env: &LocalEnv, index: &Digest, statement: Value) {
    let registry = EcrRegistry::new(env.clients.ecr.clone());
    let repository = &env.config.repository;
    let index_bytes = registry
        .images_by_digest(repository, std::slice::from_ref(index))
        .await
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    let envelope = Envelope::unsigned(statement.to_string().as_bytes());
    let attached = referrer(
        &envelope.to_bytes(),
        statement["predicateType"].as_str().unwrap(),
        Descriptor::of(OCI_INDEX, &index_bytes.bytes),
    );
    registry
        .upload_blobs(repository, &attached.blobs)
        .await
        .unwrap();
    registry
        .put_image(
            repository,
            None,
            &RawManifest {
                media_type: Some(OCI_MANIFEST.to_owned()),
                bytes: attached.manifest.clone(),
            },
            &attached.digest,
        )
        .await
        .unwrap();
}

// Before the fix a team's DSSE SBOM referrer made verify fail ("its predicate type is not
// archgate's"), and `verify latest` failed unless ARCHGATE_MOVING_TAGS was set.
#[tokio::test]
async fn a_release_with_a_third_party_dsse_sbom_verifies_by_tag_and_by_latest() {
    // Given a published release (eu-west-1) whose index also carries a team's SPDX SBOM in a
    // DSSE envelope and another builder's SLSA provenance
    let env = crate::installation().await;
    let index = publish(&env, TAG).await;
    let subject = json!([{"name": "index", "digest": {"sha256": index.hex()}}]);
    attach(
        &env,
        &index,
        json!({"_type": "https://in-toto.io/Statement/v1", "subject": subject,
               "predicateType": "https://spdx.dev/Document", "predicate": {"spdxVersion": "SPDX-2.3"}}),
    )
    .await;
    attach(
        &env,
        &index,
        json!({"_type": "https://in-toto.io/Statement/v1", "subject": subject,
               "predicateType": "https://slsa.dev/provenance/v1",
               "predicate": {"runDetails": {"builder": {"id": "https://github.com/actions/runner"}}}}),
    )
    .await;

    for tag in [TAG, "latest"] {
        // When the operator verifies it by the release tag and by `latest`, with no
        // moving-tag variable set
        let output = crate::operator(&env)
            .args(["release", "verify", tag])
            .envs(env.config.signing_key.iter().map(|key| (SIGNING_KEY, key)))
            .env_remove(MOVING_TAGS)
            .output()
            .expect("archgate runs");
        let said = crate::text(&output);

        // Then it passes for that release, and lists both others as not archgate's
        assert_eq!(output.status.code(), Some(0), "{tag}: {said}");
        assert!(said.contains(TAG), "{tag}: {said}");
        assert_eq!(said.matches("not archgate's").count(), 2, "{tag}: {said}");
        assert!(
            said.contains("https://spdx.dev/Document")
                && said.contains("github.com/actions/runner"),
            "{tag}: {said}"
        );
    }
}
