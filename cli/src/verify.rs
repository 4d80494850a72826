//! `archgate release verify <tag>`: what `<tag>` names now, the attestations that refer to
//! it, their signatures and subjects, and what they say. Reads only the registry (and the
//! key): a verification does not trust archgate's ledger.

use archgate::domain::attestation::referrer::DSSE_ENVELOPE;
use archgate::domain::attestation::statement::{
    BUILDER_ID, PROVENANCE_V1, VERIFICATION_SUMMARY_V1, VERIFIER_ID,
};
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

/// A referrer of the index that is not archgate's, and why it is not.
#[derive(Clone, Debug, PartialEq)]
pub struct Other {
    pub referrer: Digest,
    pub why: String,
}

/// What `<tag>` names and what its attestations say.
#[derive(Clone, Debug)]
pub struct Verification {
    pub tag: String,
    pub index: Digest,
    /// The release the attestations were made for.
    pub release: String,
    pub attestations: Vec<Verified>,
    /// Every other referrer of the index (teams attach their own SBOMs and scans).
    pub others: Vec<Other>,
}

/// What a referrer of the index is.
enum Seen {
    /// archgate's: its statement names archgate's builder or verifier and, with a key, its
    /// signature verifies with it.
    Archgate(Verified),
    /// It names archgate's builder or verifier, but no signature verifies with the key.
    Forged {
        kind: AttestationKind,
        other: Other,
    },
    Other(Other),
}

/// Verifies what `tag` names in `repository` now, from the registry alone: exactly one
/// provenance and one gate verdict of archgate's refer to the index, and every other
/// referrer is listed as not archgate's. An attestation is archgate's when its statement
/// names archgate's builder or verifier and, when a key is given, a signature verifies with
/// it (without a key signatures are not checked, and the caller says so). A tag that names
/// another release's index passes only when no release of that name exists in the registry
/// (a moving tag such as `latest`: the attestations say which release it follows).
pub async fn verify<I: RepositoryInventory>(
    inventory: &I,
    repository: &str,
    tag: &str,
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
    let mut of_index = Vec::new();
    // Whether archgate attested a release named `tag` anywhere in the repository.
    let mut tag_is_a_release = false;
    for (digest, manifest) in fetched {
        let FetchedManifest::Found(raw) = manifest else {
            continue;
        };
        if digest == index {
            index_bytes = Some(raw);
            continue;
        }
        let subject: Option<Value> = serde_json::from_slice::<Value>(&raw.bytes)
            .ok()
            .map(|doc| doc["subject"]["digest"].clone());
        if subject.as_ref().and_then(Value::as_str) == Some(index.as_str()) {
            of_index.push((digest, raw.bytes));
        } else if subject.is_some_and(|s| s.is_string()) && !tag_is_a_release {
            tag_is_a_release = archgate_release(&raw.bytes, key).as_deref() == Some(tag);
        }
    }
    if of_index.is_empty() {
        return Err(VerifyError::NoAttestations {
            tag: tag.to_owned(),
            index,
        });
    }
    let children = index_bytes
        .as_ref()
        .map(|raw| {
            archgate::domain::oci::linux_children(&raw.bytes)
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let index_size = index_bytes.as_ref().map(|raw| raw.bytes.len() as u64);
    let mut verified = Vec::new();
    let mut forged = Vec::new();
    let mut others = Vec::new();
    for (digest, bytes) in of_index {
        match see(&digest, &bytes, key)? {
            Seen::Archgate(attestation) => {
                check(
                    &attestation,
                    &digest,
                    &bytes,
                    &index,
                    index_size,
                    &children,
                    tag,
                )?;
                verified.push(attestation);
            }
            Seen::Forged { kind, other } => {
                forged.push((kind, other.referrer.clone()));
                others.push(other);
            }
            Seen::Other(other) => others.push(other),
        }
    }
    for kind in AttestationKind::ALL {
        let count = verified.iter().filter(|v| v.kind == kind).count();
        match count {
            // One that claims to be archgate's but does not verify is the reason to give.
            0 => {
                if let Some((_, referrer)) = forged.iter().find(|(k, _)| *k == kind) {
                    return Err(VerifyError::BadSignature {
                        referrer: referrer.clone(),
                        key: key.and_then(|k| k.name.clone()),
                    });
                }
                return Err(VerifyError::Missing {
                    kind,
                    index: index.clone(),
                });
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
    if release != tag && tag_is_a_release {
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
    others.sort_by(|a, b| a.referrer.as_str().cmp(b.referrer.as_str()));
    Ok(Verification {
        tag: tag.to_owned(),
        index,
        release,
        attestations: verified,
        others,
    })
}

/// The in-toto statement a referrer carries in a DSSE envelope, with the envelope; or why it
/// carries none.
fn statement_of(bytes: &[u8]) -> Result<(Envelope, Value), String> {
    let manifest = ReferrerManifest::parse(bytes).ok_or_else(|| {
        let doc: Value = serde_json::from_slice(bytes).unwrap_or_default();
        format!(
            "a {} referrer, not a DSSE envelope",
            doc["artifactType"].as_str().unwrap_or("untyped")
        )
    })?;
    let envelope = Envelope::parse(&manifest.embedded_envelope()?)?;
    if envelope.payload_type != dsse::IN_TOTO_PAYLOAD {
        return Err(format!("an envelope of {}", envelope.payload_type));
    }
    let payload = envelope
        .payload_bytes()
        .ok_or("an envelope whose payload is not base64")?;
    let statement = serde_json::from_slice(&payload)
        .map_err(|_| "an envelope whose statement is not JSON".to_owned())?;
    Ok((envelope, statement))
}

/// Which of archgate's attestations a statement is by what it names: provenance by
/// archgate's builder, a verdict by archgate's gate.
fn archgate_kind(statement: &Value) -> Option<AttestationKind> {
    let predicate = &statement["predicate"];
    match statement["predicateType"].as_str()? {
        PROVENANCE_V1 if predicate["runDetails"]["builder"]["id"] == BUILDER_ID => {
            Some(AttestationKind::Provenance)
        }
        VERIFICATION_SUMMARY_V1 if predicate["verifier"]["id"] == VERIFIER_ID => {
            Some(AttestationKind::Verdict)
        }
        _ => None,
    }
}

/// The key id of the first signature of the envelope that verifies with `key`.
fn signed_with(envelope: &Envelope, key: &Key) -> Option<String> {
    let message = envelope.signed_message()?;
    envelope
        .signatures
        .iter()
        .find(|s| {
            dsse::decode_signature(&s.sig)
                .and_then(|der| Signature::from_der(&der).ok())
                .is_some_and(|sig| key.verifying.verify(&message, &sig).is_ok())
        })
        .map(|s| s.keyid.clone())
}

/// The release an archgate provenance names, when the referrer is one (and, with a key, its
/// signature verifies).
fn archgate_release(bytes: &[u8], key: Option<&Key>) -> Option<String> {
    let (envelope, statement) = statement_of(bytes).ok()?;
    if archgate_kind(&statement)? != AttestationKind::Provenance {
        return None;
    }
    if let Some(key) = key {
        signed_with(&envelope, key)?;
    }
    statement["predicate"]["buildDefinition"]["externalParameters"]["release"]
        .as_str()
        .map(str::to_owned)
}

/// Sorts a referrer of the index: archgate's, one that claims to be and does not verify, or
/// another tool's.
fn see(referrer: &Digest, bytes: &[u8], key: Option<&Key>) -> Result<Seen, VerifyError> {
    let other = |why: String| Other {
        referrer: referrer.clone(),
        why,
    };
    let (envelope, statement) = match statement_of(bytes) {
        Ok(found) => found,
        Err(why) => return Ok(Seen::Other(other(why))),
    };
    let Some(kind) = archgate_kind(&statement) else {
        return Ok(Seen::Other(other(format!(
            "{} by {}",
            statement["predicateType"].as_str().unwrap_or("a statement"),
            statement["predicate"]["runDetails"]["builder"]["id"]
                .as_str()
                .or(statement["predicate"]["verifier"]["id"].as_str())
                .or(statement["predicate"]["scanner"]["uri"].as_str())
                .unwrap_or("another tool")
        ))));
    };
    let signed_by = match key {
        Some(key) => match signed_with(&envelope, key) {
            Some(keyid) => Some(keyid),
            None if envelope.signatures.is_empty() => {
                return Err(VerifyError::Unsigned {
                    referrer: referrer.clone(),
                })
            }
            None => {
                return Ok(Seen::Forged {
                    kind,
                    other: other(format!(
                        "names archgate's {kind} but no signature verifies with the key"
                    )),
                })
            }
        },
        None => None,
    };
    Ok(Seen::Archgate(Verified {
        kind,
        referrer: referrer.clone(),
        signed_by,
        statement,
    }))
}

/// What archgate's own attestation must say of the index `tag` names: its manifest announces
/// its statement's predicate, its subject is the index (size, media type), and it names every
/// platform manifest the index lists.
fn check(
    attestation: &Verified,
    referrer: &Digest,
    bytes: &[u8],
    index: &Digest,
    index_size: Option<u64>,
    children: &[String],
    tag: &str,
) -> Result<(), VerifyError> {
    let malformed = |reason: String| VerifyError::Malformed {
        referrer: referrer.clone(),
        reason,
    };
    let manifest = ReferrerManifest::parse(bytes).expect("seen as an envelope referrer");
    let subject = manifest.subject.as_ref().expect("a referrer of the index");
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
    if manifest.predicate_type() != Some(attestation.kind.predicate_type()) {
        return Err(malformed(
            "its statement's predicate type is not the one its manifest announces".into(),
        ));
    }
    // The statement's first subject is the index, the others its platform manifests.
    let subjects: Vec<&str> = attestation.statement["subject"]
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
    Ok(())
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
                let gate = &predicate[archgate::domain::attestation::statement::GATE_FIELD];
                lines.push(format!(
                    "    gate {} at {} (policy sha256:{}{})",
                    predicate["verificationResult"].as_str().unwrap_or("?"),
                    predicate["timeVerified"].as_str().unwrap_or("?"),
                    predicate["policy"]["digest"]["sha256"]
                        .as_str()
                        .unwrap_or("?"),
                    // Attestations made before policies had versions name none.
                    gate["policyVersion"]
                        .as_u64()
                        .map(|v| format!(", version {v}"))
                        .unwrap_or_default(),
                ));
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
    for other in &verification.others {
        lines.push(format!(
            "  not archgate's: {} ({})",
            other.referrer, other.why
        ));
    }
    lines
}
