//! Signed provenance and gate verdict against the emulator (eu-west-1): a published release's
//! index carries exactly two OCI referrers, `release verify` passes on it and fails, with the
//! reason, when the tag moves, an envelope is altered or another key is used; the signature
//! also verifies with an independent implementation (Python's `cryptography`).

use archgate::aws::{public_key, EcrRegistry};
use archgate::domain::attestation::dsse::pae;
use archgate::domain::attestation::{
    referrer, AttestationKind, Descriptor, Envelope, ReferrerManifest,
};
use archgate::domain::oci::{RawManifest, OCI_INDEX, OCI_MANIFEST};
use archgate::domain::{Arch, Digest, Phase};
use archgate::ports::{FetchedManifest, Registry, RepositoryInventory};
use archgate_cli::local::LocalEnv;
use archgate_cli::verify::{verify, Key, VerifyError};
use archgate_integration_tests::*;
use archgate_testkit::emulator::Emulator;
use p256::pkcs8::EncodePublicKey;
use std::time::Instant;

const REGION: &str = "eu-west-1";

/// Both scans pass: the release is attested and published. Returns the promoting scan's
/// handler time and its AWS calls.
async fn publish(
    env: &LocalEnv,
    tag: &str,
) -> (
    std::time::Duration,
    std::collections::BTreeMap<String, usize>,
) {
    candidate_ready(env, tag).await;
    let amd = env
        .scan_arch_image(tag, Arch::Amd64, "COMPLETE", &[])
        .await
        .unwrap();
    let arm = env
        .scan_arch_image(tag, Arch::Arm64, "COMPLETE", &[])
        .await
        .unwrap();
    env.scan_gate(amd).await;
    calls(env);
    let started = Instant::now();
    let answer = env.scan_gate(arm).await;
    let took = started.elapsed();
    assert_eq!(answer["phase"], "published", "{answer}");
    (took, calls(env))
}

fn inventory(env: &LocalEnv) -> EcrRegistry {
    EcrRegistry::new(env.clients.ecr.clone())
}

async fn signing_key(env: &LocalEnv) -> Key {
    let name = env
        .config
        .signing_key
        .clone()
        .expect("the local installation signs");
    let der = public_key(&env.clients.kms, &name).await.unwrap();
    Key::from_der(&der, Some(name)).unwrap()
}

/// The referrers of `index` in the repository, by digest.
async fn referrers_of(env: &LocalEnv, index: &Digest) -> Vec<(Digest, ReferrerManifest)> {
    let repository = &env.config.repository;
    let inventory = inventory(env);
    let untagged: Vec<Digest> = inventory
        .list_images(repository)
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.tags.is_empty())
        .map(|i| i.digest)
        .collect();
    let fetched = inventory
        .manifests_by_digest(repository, &untagged)
        .await
        .unwrap();
    fetched
        .into_iter()
        .filter_map(|(digest, fetched)| match fetched {
            FetchedManifest::Found(raw) => Some((digest, ReferrerManifest::parse(&raw.bytes)?)),
            FetchedManifest::NotFound(_) | FetchedManifest::Unreadable(_) => None,
        })
        .filter(|(_, m)| m.subject.as_ref().is_some_and(|s| &s.digest == index))
        .collect()
}

async fn index_of(env: &LocalEnv, tag: &str) -> Digest {
    env.release(tag)
        .await
        .unwrap()
        .unwrap()
        .release
        .candidate
        .unwrap()
        .digest
}

#[tokio::test]
async fn a_published_release_carries_its_signed_provenance_and_verdict() {
    // Given an installation that signs with a KMS key (ECC_NIST_P256)
    let env = installation_in(ManifestMode::Native, REGION).await;

    // When a release passes its gate
    let (took, promoting) = publish(&env, TAG).await;
    let index = index_of(&env, TAG).await;

    // Then its index has exactly two referrers: the provenance and the verdict
    let referrers = referrers_of(&env, &index).await;
    let mut kinds: Vec<String> = referrers
        .iter()
        .filter_map(|(_, m)| m.predicate_type().map(str::to_owned))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "https://slsa.dev/provenance/v1".to_owned(),
            "https://slsa.dev/verification_summary/v1".to_owned()
        ]
    );
    for (_, manifest) in &referrers {
        assert_eq!(manifest.media_type, OCI_MANIFEST);
        assert_eq!(manifest.subject.as_ref().unwrap().media_type, OCI_INDEX);
    }

    // And `release verify` passes, naming the source, the builds and the verdict
    let key = signing_key(&env).await;
    let verified = verify(&inventory(&env), &env.config.repository, TAG, Some(&key))
        .await
        .unwrap();
    assert_eq!(verified.index, index);
    assert_eq!(verified.release, TAG);
    let described = archgate_cli::verify::describe(&verified).join("\n");
    assert!(described.contains("source s3://"), "{described}");
    assert!(described.contains("build/amd64"), "{described}");
    assert!(described.contains("gate PASSED"), "{described}");
    // `latest` names the same index: it verifies as the release it follows
    let latest = verify(
        &inventory(&env),
        &env.config.repository,
        "latest",
        Some(&key),
    )
    .await
    .unwrap();
    assert_eq!(latest.release, TAG);

    // And the index says when, from what and which release, not that it is a candidate
    let raw = inventory(&env)
        .images_by_digest(&env.config.repository, std::slice::from_ref(&index))
        .await
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&raw.bytes).unwrap();
    let annotations = doc["annotations"].as_object().unwrap();
    assert!(!annotations.contains_key("org.opencontainers.image.ref.name"));
    assert_eq!(annotations["org.opencontainers.image.version"], TAG);
    assert!(annotations["org.opencontainers.image.source"]
        .as_str()
        .unwrap()
        .starts_with("s3://"));

    // And the promoting delivery's calls: the key described once, two KMS Sign, one
    // BatchCheckLayerAvailability, three blobs uploaded (empty config, two envelopes), two
    // referrers put by digest
    eprintln!("promotion: {took:?} of handler time, calls {promoting:?}");
    assert_eq!(count(&promoting, "KMS.DescribeKey"), 1, "{promoting:?}");
    assert_eq!(count(&promoting, "KMS.Sign"), 2, "{promoting:?}");
    assert_eq!(count(&promoting, "ECR.BatchCheckLayerAvailability"), 1);
    assert_eq!(count(&promoting, "ECR.InitiateLayerUpload"), 3);
    assert_eq!(count(&promoting, "ECR.CompleteLayerUpload"), 3);

    // When a second release is promoted, the empty config is already there
    let (_, second) = publish(&env, "myapp-1.4.3").await;
    assert_eq!(count(&second, "ECR.InitiateLayerUpload"), 2, "{second:?}");
}

#[tokio::test]
async fn verification_fails_with_the_reason_when_the_tag_moves_or_an_envelope_changes() {
    // Given two published releases
    let env = installation_in(ManifestMode::Native, REGION).await;
    publish(&env, TAG).await;
    publish(&env, "myapp-1.4.3").await;
    let key = signing_key(&env).await;
    let repository = env.config.repository.clone();
    let registry = inventory(&env);
    let index = index_of(&env, TAG).await;
    let other = index_of(&env, "myapp-1.4.3").await;

    // When the tag is moved to another release's index
    let raw = registry
        .images_by_digest(&repository, std::slice::from_ref(&other))
        .await
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    registry
        .put_image(&repository, Some(TAG), &raw, &other)
        .await
        .unwrap();
    // Then it fails: the attestations are the other release's
    let moved = verify(&inventory(&env), &repository, TAG, Some(&key)).await;
    assert!(
        matches!(&moved, Err(VerifyError::OtherRelease { named, .. }) if named == "myapp-1.4.3"),
        "{moved:?}"
    );

    // When the tag is moved to an index nobody attested
    let stray = RawManifest {
        media_type: Some(OCI_INDEX.to_owned()),
        bytes: br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#.to_vec(),
    };
    let stray_digest = Digest::of(&stray.bytes);
    registry
        .put_image(&repository, Some(TAG), &stray, &stray_digest)
        .await
        .unwrap();
    let unattested = verify(&inventory(&env), &repository, TAG, Some(&key)).await;
    assert!(
        matches!(unattested, Err(VerifyError::NoAttestations { .. })),
        "{unattested:?}"
    );
    let message = unattested.unwrap_err().to_string();
    assert!(
        message.contains("no attestation refers to the index"),
        "{message}"
    );

    // When the tag is back on its index but its provenance envelope is altered (the payload
    // changed, the signature kept) and pushed in place of the original
    let original = registry
        .images_by_digest(&repository, std::slice::from_ref(&index))
        .await
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    registry
        .put_image(&repository, Some(TAG), &original, &index)
        .await
        .unwrap();
    let (provenance_digest, provenance) = referrers_of(&env, &index)
        .await
        .into_iter()
        .find(|(_, m)| m.predicate_type() == Some(AttestationKind::Provenance.predicate_type()))
        .unwrap();
    let mut envelope = Envelope::parse(&provenance.embedded_envelope().unwrap()).unwrap();
    let payload = String::from_utf8(envelope.payload_bytes().unwrap())
        .unwrap()
        .replace("releases/", "elsewhere/");
    let signatures = envelope.signatures.clone();
    envelope = Envelope::unsigned(payload.as_bytes());
    envelope.signatures = signatures;
    let altered = referrer(
        &envelope.to_bytes(),
        AttestationKind::Provenance.predicate_type(),
        Descriptor::of(OCI_INDEX, &original.bytes),
    );
    registry
        .upload_blobs(&repository, &altered.blobs)
        .await
        .unwrap();
    let removed = inventory(&env)
        .delete_images(&repository, &[provenance_digest])
        .await
        .unwrap();
    assert_eq!(removed.deleted.len(), 1);
    registry
        .put_image(
            &repository,
            None,
            &RawManifest {
                media_type: Some(OCI_MANIFEST.to_owned()),
                bytes: altered.manifest.clone(),
            },
            &altered.digest,
        )
        .await
        .unwrap();
    // Then it fails: no signature verifies
    let tampered = verify(&inventory(&env), &repository, TAG, Some(&key)).await;
    assert!(
        matches!(&tampered, Err(VerifyError::BadSignature { referrer, .. }) if *referrer == altered.digest),
        "{tampered:?}"
    );
}

#[tokio::test]
async fn another_key_does_not_verify_and_the_signature_is_standard_ecdsa() {
    // Given a published release
    let env = installation_in(ManifestMode::Native, REGION).await;
    publish(&env, TAG).await;
    let repository = env.config.repository.clone();
    let key = signing_key(&env).await;

    // When it is verified with another P-256 key
    let kms = &env.clients.kms;
    let other = kms
        .create_key()
        .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
        .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
        .send()
        .await
        .unwrap();
    let other_id = other.key_metadata().unwrap().key_id().to_owned();
    let other_key = Key::from_der(
        &public_key(kms, &other_id).await.unwrap(),
        Some(other_id.clone()),
    )
    .unwrap();
    let wrong = verify(&inventory(&env), &repository, TAG, Some(&other_key)).await;
    // Then it fails, naming the key
    let message = wrong.as_ref().unwrap_err().to_string();
    assert!(
        matches!(wrong, Err(VerifyError::BadSignature { .. })) && message.contains(&other_id),
        "{message}"
    );

    // When it is verified with the right key given as a PEM file (`--key`)
    let pem = key
        .verifying
        .to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .unwrap();
    let from_pem = Key::from_pem(&pem, Some("release.pem".into())).unwrap();
    // Then it passes
    verify(&inventory(&env), &repository, TAG, Some(&from_pem))
        .await
        .unwrap();

    // And each envelope's signature verifies with Python's `cryptography` over the DSSE
    // pre-auth encoding: standard ECDSA P-256 SHA-256, DER-encoded
    let index = index_of(&env, TAG).await;
    let dir = std::env::temp_dir().join(format!("archgate-attestation-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key_path = dir.join("key.pem");
    std::fs::write(&key_path, &pem).unwrap();
    for (n, (_, manifest)) in referrers_of(&env, &index).await.into_iter().enumerate() {
        let envelope = Envelope::parse(&manifest.embedded_envelope().unwrap()).unwrap();
        let message = pae(&envelope.payload_type, &envelope.payload_bytes().unwrap());
        // KMS Verify agrees (the emulator's KMS, the signing key)
        let signature =
            archgate::domain::attestation::dsse::decode_signature(&envelope.signatures[0].sig)
                .unwrap();
        let checked = env
            .clients
            .kms
            .verify()
            .key_id(env.config.signing_key.as_deref().unwrap())
            .message(aws_sdk_kms::primitives::Blob::new(message.clone()))
            .message_type(aws_sdk_kms::types::MessageType::Raw)
            .signature(aws_sdk_kms::primitives::Blob::new(signature))
            .signing_algorithm(aws_sdk_kms::types::SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .unwrap();
        assert!(
            checked.signature_valid(),
            "KMS Verify rejected the signature"
        );
        let envelope_path = dir.join(format!("envelope-{n}.json"));
        std::fs::write(&envelope_path, envelope.to_bytes()).unwrap();
        let python = Emulator::python().expect("the emulator's Python (it has cryptography)");
        let script = r#"
import base64, json, sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
key = serialization.load_pem_public_key(open(sys.argv[1], "rb").read())
envelope = json.load(open(sys.argv[2]))
payload = base64.b64decode(envelope["payload"])
kind = envelope["payloadType"].encode()
pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
for signature in envelope["signatures"]:
    key.verify(base64.b64decode(signature["sig"]), pae, ec.ECDSA(hashes.SHA256()))
print(len(envelope["signatures"]), "signature(s) verified over", len(pae), "bytes")
"#;
        let output = std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .arg(&key_path)
            .arg(&envelope_path)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "cryptography rejected the signature: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(
            said.starts_with("1 signature(s) verified")
                && said.contains(&message.len().to_string()),
            "{said}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn a_blocked_release_has_no_provenance_but_its_verdict_is_in_its_status() {
    // Given a release whose amd64 image has a CRITICAL finding
    let env = installation_in(ManifestMode::Native, REGION).await;
    candidate_ready(&env, TAG).await;
    let critical = LocalFinding {
        id: "CVE-2024-3094",
        severity: "CRITICAL",
        package: "xz-utils",
    };
    for (arch, findings) in [(Arch::Amd64, vec![critical]), (Arch::Arm64, vec![])] {
        let event = env
            .scan_arch_image(TAG, arch, "COMPLETE", &findings)
            .await
            .unwrap();
        env.scan_gate(event).await;
    }

    // Then it is blocked, nothing refers to its index, and nothing was signed
    let stored = env.release(TAG).await.unwrap().unwrap();
    assert_eq!(stored.release.phase(), Phase::Blocked);
    assert!(stored.release.attestations.is_empty());
    let index = index_of(&env, TAG).await;
    assert!(referrers_of(&env, &index).await.is_empty());

    // And `release status` gives the gate's verdict with its reason
    let lines = archgate_cli::status::status_lines(&stored.release, stored.version, &[]).join("\n");
    assert!(lines.contains("verdict  FAILED"), "{lines}");
    assert!(lines.contains("CRITICAL"), "{lines}");
    assert!(!lines.contains("attested"), "{lines}");
}

/// Pushes a DSSE envelope holding `statement` as a referrer of `index` (as cosign or a
/// team's pipeline attaches its own attestations).
async fn attach(env: &LocalEnv, index: &Digest, statement: serde_json::Value) -> Digest {
    let registry = inventory(env);
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
    attached.digest
}

// Before the fix every DSSE referrer of the index had to be archgate's: a team's SPDX SBOM or
// another builder's SLSA provenance failed verification ("its predicate type is not
// archgate's"), for the release tag and for `latest`.
#[tokio::test]
async fn attestations_other_tools_attach_are_listed_as_not_archgates_and_verify_still_passes() {
    // Given a published release whose index also carries a team's SBOM statement and another
    // builder's SLSA provenance
    let env = installation_in(ManifestMode::Native, REGION).await;
    publish(&env, TAG).await;
    let index = index_of(&env, TAG).await;
    let subject = serde_json::json!([{"name": "index", "digest": {"sha256": index.hex()}}]);
    let sbom = attach(
        &env,
        &index,
        serde_json::json!({"_type": "https://in-toto.io/Statement/v1", "subject": subject,
            "predicateType": "https://spdx.dev/Document", "predicate": {"spdxVersion": "SPDX-2.3"}}),
    )
    .await;
    let provenance = attach(
        &env,
        &index,
        serde_json::json!({"_type": "https://in-toto.io/Statement/v1", "subject": subject,
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {"runDetails": {"builder": {"id": "https://github.com/actions/runner"}}}}),
    )
    .await;
    let key = signing_key(&env).await;

    // When the release tag and `latest` are verified (no moving-tag configuration given)
    for tag in [TAG, "latest"] {
        let verified = verify(&inventory(&env), &env.config.repository, tag, Some(&key))
            .await
            .unwrap_or_else(|e| panic!("{tag}: {e}"));

        // Then archgate's two attestations verify and both others are listed as not archgate's
        assert_eq!(verified.release, TAG);
        assert_eq!(verified.attestations.len(), 2);
        let others: Vec<&Digest> = verified.others.iter().map(|o| &o.referrer).collect();
        assert!(
            others.contains(&&sbom) && others.contains(&&provenance),
            "{:?}",
            verified.others
        );
        let described = archgate_cli::verify::describe(&verified).join("\n");
        assert!(
            described.contains("not archgate's")
                && described.contains("https://spdx.dev/Document")
                && described.contains("github.com/actions/runner"),
            "{described}"
        );
    }
}
