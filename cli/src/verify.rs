//! `archgate release verify <tag>`: what `<tag>` names now, the attestations that refer to
//! it, their signatures and subjects, and what they say. Reads only the registry (and the
//! key): a verification does not trust archgate's ledger.

use archgate::domain::attestation::referrer::DSSE_ENVELOPE;
use archgate::domain::attestation::statement::{PROVENANCE_V1, VERIFICATION_SUMMARY_V1};
use archgate::domain::attestation::{dsse, AttestationKind, Envelope, ReferrerManifest};
use archgate::domain::oci::{OCI_INDEX, OCI_MANIFEST};
use archgate::domain::Digest;
use archgate::error::AdapterError;
use archgate::ports::{FetchedManifest, RepositoryInventory, BATCH_LIMIT};
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde_json::Value;

/// Why a release does not verify.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("no image in {repository} is tagged {tag}")]
    TagMissing { repository: String, tag: String },
    #[error("no attestation refers to the index {index} that {tag} names")]
    NoAttestations { tag: String, index: Digest },
    #[error("the {kind} attestation of {index} is missing")]
    Missing {
        kind: AttestationKind,
        index: Digest,
    },
    #[error("{index} has {count} {kind} attestations; archgate attaches one")]
    Duplicate {
        kind: AttestationKind,
        index: Digest,
        count: usize,
    },
    #[error("attestation {referrer}: {reason}")]
    Malformed { referrer: Digest, reason: String },
    #[error("attestation {referrer}: no signature verifies with the key{}", .key.as_deref().map(|k| format!(" {k}")).unwrap_or_default())]
    BadSignature {
        referrer: Digest,
        key: Option<String>,
    },
    #[error("attestation {referrer} is unsigned, and a key was given to verify it with")]
    Unsigned { referrer: Digest },
    #[error("attestation {referrer} names {named} as its subject; {tag} names {index}")]
    WrongSubject {
        referrer: Digest,
        named: String,
        tag: String,
        index: Digest,
    },
    #[error("{tag} names the index of release {named}, not its own")]
    OtherRelease { tag: String, named: String },
    #[error("the gate's verdict on {index} is {result}")]
    NotPassed { index: Digest, result: String },
    #[error("the public key is not an ECDSA P-256 key: {0}")]
    Key(String),
    #[error(transparent)]
    Aws(#[from] AdapterError),
}

/// The public key to verify with, and the name the envelopes should give it.
#[derive(Clone, Debug)]
pub struct Key {
    pub verifying: VerifyingKey,
    pub name: Option<String>,
}

impl Key {
    pub fn from_der(der: &[u8], name: Option<String>) -> Result<Key, VerifyError> {
        let verifying =
            VerifyingKey::from_public_key_der(der).map_err(|e| key_error(Some(der), e))?;
        Ok(Key { verifying, name })
    }

    pub fn from_pem(pem: &str, name: Option<String>) -> Result<Key, VerifyError> {
        let verifying = VerifyingKey::from_public_key_pem(pem).map_err(|e| {
            let der = p256::pkcs8::der::pem::decode_vec(pem.as_bytes()).ok();
            key_error(der.as_ref().map(|(_, der)| der.as_slice()), e)
        })?;
        Ok(Key { verifying, name })
    }
}

/// Why a public key is not one to verify with, naming what it is when its DER says (the
/// decoder alone would name the curve it expected).
fn key_error(der: Option<&[u8]>, error: impl std::fmt::Display) -> VerifyError {
    use p256::pkcs8::spki::SubjectPublicKeyInfoRef;
    let what = der
        .and_then(|der| SubjectPublicKeyInfoRef::try_from(der).ok())
        .map(|spki| {
            let algorithm = spki.algorithm.oid.to_string();
            let parameters = spki.algorithm.parameters_oid().ok().map(|o| o.to_string());
            match (algorithm.as_str(), parameters.as_deref()) {
                ("1.2.840.10045.2.1", Some("1.3.132.0.10")) => {
                    "an ECDSA key on secp256k1 (KMS ECC_SECG_P256K1)".to_owned()
                }
                ("1.2.840.10045.2.1", Some("1.3.132.0.34")) => {
                    "an ECDSA key on P-384 (KMS ECC_NIST_P384)".to_owned()
                }
                ("1.2.840.10045.2.1", Some("1.3.132.0.35")) => {
                    "an ECDSA key on P-521 (KMS ECC_NIST_P521)".to_owned()
                }
                ("1.2.840.10045.2.1", curve) => {
                    format!("an EC key on curve {}", curve.unwrap_or("(unnamed)"))
                }
                ("1.2.840.113549.1.1.1", _) => "an RSA key".to_owned(),
                (other, _) => format!("a key of algorithm {other}"),
            }
        });
    VerifyError::Key(match what {
        Some(what) => format!("it is {what}; archgate signs with ECDSA P-256 (KMS ECC_NIST_P256)"),
        None => error.to_string(),
    })
}

/// One attestation that verified.
#[derive(Clone, Debug)]
pub struct Verified {
    pub kind: AttestationKind,
    pub referrer: Digest,
    pub signed_by: Option<String>,
    pub statement: Value,
}

/// What `<tag>` names and what its attestations say.
#[derive(Clone, Debug)]
pub struct Verification {
    pub tag: String,
    pub index: Digest,
    /// The release the attestations were made for.
    pub release: String,
    pub attestations: Vec<Verified>,
}

/// Verifies what `tag` names in `repository` now. `moving` are the tags that follow the newest
/// release (they may name another release's index). Without a key, signatures are not checked
/// (and said so by the caller).
pub async fn verify<I: RepositoryInventory>(
    inventory: &I,
    repository: &str,
    tag: &str,
    moving: &[String],
    key: Option<&Key>,
) -> Result<Verification, VerifyError> {
    let images = inventory.list_images(repository).await?;
    let index = images
        .iter()
        .find(|i| i.tags.iter().any(|t| t == tag))
        .map(|i| i.digest.clone())
        .ok_or_else(|| VerifyError::TagMissing {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
        })?;
    // Referrers are untagged image manifests (ECR reports their artifactType).
    let candidates: Vec<Digest> = images
        .iter()
        .filter(|i| i.tags.is_empty())
        .filter(|i| {
            i.artifact_media_type.as_deref() == Some(DSSE_ENVELOPE)
                || i.media_type.as_deref().is_none_or(|m| m == OCI_MANIFEST)
        })
        .map(|i| i.digest.clone())
        .collect();
    let mut wanted = vec![index.clone()];
    wanted.extend(candidates);
    let mut fetched = Vec::new();
    for batch in wanted.chunks(BATCH_LIMIT) {
        fetched.extend(inventory.manifests_by_digest(repository, batch).await?);
    }
    let mut index_bytes = None;
    let mut referrers = Vec::new();
    for (digest, manifest) in fetched {
        let FetchedManifest::Found(raw) = manifest else {
            continue;
        };
        if digest == index {
            index_bytes = Some(raw);
            continue;
        }
        if let Some(parsed) = ReferrerManifest::parse(&raw.bytes) {
            if parsed.subject.as_ref().is_some_and(|s| s.digest == index) {
                referrers.push((digest, parsed));
            }
        }
    }
    if referrers.is_empty() {
        return Err(VerifyError::NoAttestations {
            tag: tag.to_owned(),
            index,
        });
    }
    let children = index_bytes
        .as_ref()
        .map(|raw| child_digests(&raw.bytes))
        .unwrap_or_default();
    let index_size = index_bytes.as_ref().map(|raw| raw.bytes.len() as u64);
    let mut verified = Vec::new();
    for (digest, manifest) in referrers {
        verified.push(verify_one(
            &digest, &manifest, &index, index_size, &children, tag, key,
        )?);
    }
    for kind in AttestationKind::ALL {
        let count = verified.iter().filter(|v| v.kind == kind).count();
        match count {
            0 => {
                return Err(VerifyError::Missing {
                    kind,
                    index: index.clone(),
                })
            }
            1 => {}
            count => {
                return Err(VerifyError::Duplicate {
                    kind,
                    index: index.clone(),
                    count,
                })
            }
        }
    }
    verified.sort_by_key(|v| v.kind);
    let release = verified[0].statement["predicate"]["buildDefinition"]["externalParameters"]
        ["release"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if release != tag && !moving.iter().any(|m| m == tag) {
        return Err(VerifyError::OtherRelease {
            tag: tag.to_owned(),
            named: release,
        });
    }
    let result = verified[1].statement["predicate"]["verificationResult"]
        .as_str()
        .unwrap_or_default();
    if result != "PASSED" {
        return Err(VerifyError::NotPassed {
            index,
            result: result.to_owned(),
        });
    }
    Ok(Verification {
        tag: tag.to_owned(),
        index,
        release,
        attestations: verified,
    })
}

fn child_digests(index: &[u8]) -> Vec<String> {
    let doc: Value = serde_json::from_slice(index).unwrap_or_default();
    doc["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["platform"]["os"] == "linux")
        .filter_map(|m| m["digest"].as_str())
        .map(str::to_owned)
        .collect()
}

fn verify_one(
    referrer: &Digest,
    manifest: &ReferrerManifest,
    index: &Digest,
    index_size: Option<u64>,
    children: &[String],
    tag: &str,
    key: Option<&Key>,
) -> Result<Verified, VerifyError> {
    let malformed = |reason: String| VerifyError::Malformed {
        referrer: referrer.clone(),
        reason,
    };
    let subject = manifest.subject.as_ref().expect("filtered on its subject");
    if index_size.is_some_and(|size| size != subject.size) {
        return Err(malformed(format!(
            "its subject's size {} is not the index's",
            subject.size
        )));
    }
    if subject.media_type != OCI_INDEX && !subject.media_type.contains("manifest.list") {
        return Err(malformed(format!(
            "its subject's media type {} is not an index's",
            subject.media_type
        )));
    }
    let kind = manifest
        .predicate_type()
        .and_then(AttestationKind::of_predicate)
        .ok_or_else(|| malformed("its predicate type is not archgate's".into()))?;
    let bytes = manifest.embedded_envelope().map_err(malformed)?;
    let envelope = Envelope::parse(&bytes).map_err(malformed)?;
    if envelope.payload_type != dsse::IN_TOTO_PAYLOAD {
        return Err(malformed(format!(
            "its payload type is {}",
            envelope.payload_type
        )));
    }
    let message = envelope
        .signed_message()
        .ok_or_else(|| malformed("its payload is not base64".into()))?;
    let signed_by = match key {
        Some(key) => {
            if envelope.signatures.is_empty() {
                return Err(VerifyError::Unsigned {
                    referrer: referrer.clone(),
                });
            }
            let good = envelope.signatures.iter().find(|s| {
                dsse::decode_signature(&s.sig)
                    .and_then(|der| Signature::from_der(&der).ok())
                    .is_some_and(|sig| key.verifying.verify(&message, &sig).is_ok())
            });
            let Some(good) = good else {
                return Err(VerifyError::BadSignature {
                    referrer: referrer.clone(),
                    key: key.name.clone(),
                });
            };
            Some(good.keyid.clone())
        }
        None => None,
    };
    let payload = envelope.payload_bytes().unwrap_or_default();
    let statement: Value = serde_json::from_slice(&payload)
        .map_err(|e| malformed(format!("its statement is not JSON: {e}")))?;
    let expected_predicate = match kind {
        AttestationKind::Provenance => PROVENANCE_V1,
        AttestationKind::Verdict => VERIFICATION_SUMMARY_V1,
    };
    if statement["predicateType"] != expected_predicate {
        return Err(malformed(
            "its statement's predicate type is not the one its manifest announces".into(),
        ));
    }
    // The statement's first subject is the index, the others its platform manifests.
    let subjects: Vec<&str> = statement["subject"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["digest"]["sha256"].as_str())
        .collect();
    let named = subjects.first().copied().unwrap_or_default();
    if named != index.hex() {
        return Err(VerifyError::WrongSubject {
            referrer: referrer.clone(),
            named: format!("sha256:{named}"),
            tag: tag.to_owned(),
            index: index.clone(),
        });
    }
    for child in children {
        if !subjects
            .iter()
            .any(|s| child.strip_prefix("sha256:") == Some(*s))
        {
            return Err(malformed(format!(
                "the index lists {child}, which the statement does not name"
            )));
        }
    }
    Ok(Verified {
        kind,
        referrer: referrer.clone(),
        signed_by,
        statement,
    })
}

/// The verification as people read it: source, builds, verdict.
pub fn describe(verification: &Verification) -> Vec<String> {
    let mut lines = vec![format!(
        "{} names {} (release {})",
        verification.tag, verification.index, verification.release
    )];
    for verified in &verification.attestations {
        let signed = verified
            .signed_by
            .as_deref()
            .map_or("signature not checked".to_owned(), |k| {
                format!("signed by {k}")
            });
        lines.push(format!(
            "  {} {} ({signed})",
            verified.kind, verified.referrer
        ));
        let predicate = &verified.statement["predicate"];
        match verified.kind {
            AttestationKind::Provenance => {
                let source = &predicate["buildDefinition"]["externalParameters"]["source"];
                lines.push(format!(
                    "    source s3://{}/{} version {} etag {}",
                    source["bucket"].as_str().unwrap_or("?"),
                    source["key"].as_str().unwrap_or("?"),
                    source["versionId"].as_str().unwrap_or("-"),
                    source["etag"].as_str().unwrap_or("-"),
                ));
                for build in predicate["runDetails"]["byproducts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let notes = &build["annotations"];
                    lines.push(format!(
                        "    {} {} on {} ({} → {})",
                        build["name"].as_str().unwrap_or("?"),
                        build["uri"].as_str().unwrap_or("?"),
                        notes["builderImage"].as_str().unwrap_or("?"),
                        notes["startedOn"].as_str().unwrap_or("?"),
                        notes["finishedOn"].as_str().unwrap_or("?"),
                    ));
                }
            }
            AttestationKind::Verdict => {
                lines.push(format!(
                    "    gate {} at {} (policy sha256:{})",
                    predicate["verificationResult"].as_str().unwrap_or("?"),
                    predicate["timeVerified"].as_str().unwrap_or("?"),
                    predicate["policy"]["digest"]["sha256"]
                        .as_str()
                        .unwrap_or("?"),
                ));
                let gate = &predicate[archgate::domain::attestation::statement::GATE_FIELD];
                for image in gate["images"].as_array().into_iter().flatten() {
                    let accepted: Vec<&str> = image["accepted"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|a| a["id"].as_str())
                        .collect();
                    lines.push(format!(
                        "    {} {} {} by {} scan, counts {}{}",
                        image["platform"].as_str().unwrap_or("?"),
                        image["digest"].as_str().unwrap_or("?"),
                        image["verdict"].as_str().unwrap_or("?"),
                        image["scanner"].as_str().unwrap_or("an unnamed"),
                        image["counts"],
                        if accepted.is_empty() {
                            String::new()
                        } else {
                            format!(", accepted {}", accepted.join(", "))
                        }
                    ));
                }
            }
        }
    }
    lines
}
