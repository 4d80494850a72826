//! The two in-toto Statements archgate makes about a release: SLSA Provenance v1 (where the
//! index came from) and a SLSA Verification Summary (what the scan gate decided, and why).
//! Built from the recorded release alone, so the same record always gives the same bytes.

use crate::domain::gate::{Policy, Verdict};
use crate::domain::release::{BuildRecord, BuildRole, ManifestMode, Release};
use crate::domain::{rfc3339, Arch, Digest};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
pub const PROVENANCE_V1: &str = "https://slsa.dev/provenance/v1";
pub const VERIFICATION_SUMMARY_V1: &str = "https://slsa.dev/verification_summary/v1";
/// How archgate builds: one native CodeBuild build per architecture, then one index.
pub const BUILD_TYPE: &str = "urn:archgate:build-type:codebuild-multiarch:v1";
pub const BUILDER_ID: &str = "urn:archgate:builder:codebuild";
pub const VERIFIER_ID: &str = "urn:archgate:scan-gate";
pub const POLICY_URI: &str = "urn:archgate:gate-policy";
/// The VSA extension field (a URI-named field, as SLSA allows) with the gate's details.
pub const GATE_FIELD: &str = "urn:archgate:gate:v1";

/// The buildspecs the template's CodeBuild projects carry (a test keeps them equal).
const ARCH_BUILDSPEC: &[u8] = include_bytes!("../../../../buildspecs/arch.yml");
const MANIFEST_BUILDSPEC: &[u8] = include_bytes!("../../../../buildspecs/manifest.yml");

/// What the release record does not hold and the statements name.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub policy: &'a Policy,
    /// The version of the repository's policy `policy` is (0: the environment's values).
    pub policy_version: u64,
    pub amd64_project: &'a str,
    pub arm64_project: &'a str,
    pub manifest_project: Option<&'a str>,
    /// For build ARNs; the bare build id when unknown.
    pub region: Option<&'a str>,
    pub account_id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("release {0} has no candidate index to attest")]
    NoCandidate(String),
    #[error("release {release}: the {arch} image has no verdict to attest")]
    NoVerdict { release: String, arch: Arch },
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn digest_set(digest: &Digest) -> Value {
    json!({ "sha256": digest.hex() })
}

/// The subjects of both statements: the index under its release tag, then each child.
fn subjects(release: &Release) -> Result<Vec<Value>, StatementError> {
    let candidate = release
        .candidate
        .as_ref()
        .ok_or_else(|| StatementError::NoCandidate(release.key.to_string()))?;
    let mut subjects = vec![json!({
        "name": format!("{}:{}", release.key.repository, release.key.tag),
        "digest": digest_set(&candidate.digest),
    })];
    for child in &candidate.children {
        subjects.push(json!({
            "name": format!("{}:{}@linux/{}", release.key.repository, release.key.tag, child.arch),
            "digest": digest_set(&child.digest),
        }));
    }
    Ok(subjects)
}

fn build_uri(context: &Context<'_>, build_id: &str) -> String {
    match (context.region, context.account_id) {
        (Some(region), Some(account)) => {
            format!("arn:aws:codebuild:{region}:{account}:build/{build_id}")
        }
        _ => build_id.to_owned(),
    }
}

fn build_byproduct(
    context: &Context<'_>,
    role: BuildRole,
    project: &str,
    build: &BuildRecord,
) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert("project".into(), json!(project));
    if let Some(at) = build.started_at {
        annotations.insert("startedOn".into(), json!(rfc3339(at)));
    }
    if let Some(at) = build.finished_at {
        annotations.insert("finishedOn".into(), json!(rfc3339(at)));
    }
    if let Some(image) = &build.builder_image {
        annotations.insert("builderImage".into(), json!(image));
    }
    let mut byproduct = json!({
        "name": format!("build/{role}"),
        "uri": build_uri(context, build.build_id.as_deref().unwrap_or_default()),
        "annotations": annotations,
    });
    if let Some(digest) = &build.image_digest {
        byproduct["digest"] = digest_set(digest);
    }
    byproduct
}

/// The SLSA Provenance v1 Statement of a release's index.
pub fn provenance(release: &Release, context: &Context<'_>) -> Result<Vec<u8>, StatementError> {
    let source = &release.source;
    let mut source_uri = format!("s3://{}/{}", source.bucket, source.key);
    if let Some(version) = &source.version_id {
        source_uri.push_str(&format!("?versionId={version}"));
    }
    let mut source_annotations = serde_json::Map::new();
    if let Some(etag) = &source.etag {
        source_annotations.insert("etag".into(), json!(etag));
    }
    if let Some(version) = &source.version_id {
        source_annotations.insert("versionId".into(), json!(version));
    }
    let mut dependencies = vec![
        json!({ "uri": source_uri, "annotations": source_annotations }),
        json!({ "uri": "buildspecs/arch.yml", "digest": { "sha256": sha256_hex(ARCH_BUILDSPEC) } }),
    ];
    let mut builds = vec![
        build_byproduct(
            context,
            BuildRole::Amd64,
            context.amd64_project,
            &release.amd64,
        ),
        build_byproduct(
            context,
            BuildRole::Arm64,
            context.arm64_project,
            &release.arm64,
        ),
    ];
    if release.manifest_mode == ManifestMode::Codebuild {
        dependencies.push(json!({
            "uri": "buildspecs/manifest.yml",
            "digest": { "sha256": sha256_hex(MANIFEST_BUILDSPEC) },
        }));
        builds.push(build_byproduct(
            context,
            BuildRole::Manifest,
            context.manifest_project.unwrap_or_default(),
            &release.manifest,
        ));
    }
    let builder_images: Vec<Value> = [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest]
        .into_iter()
        .filter_map(|role| {
            let image = release.build(role).builder_image.as_ref()?;
            Some(json!({ "uri": image, "name": format!("builder/{role}") }))
        })
        .collect();
    let started = [release.amd64.started_at, release.arm64.started_at]
        .into_iter()
        .flatten()
        .min()
        .or(release.attempt_started_at)
        .unwrap_or(release.created_at);
    let finished = [BuildRole::Amd64, BuildRole::Arm64, BuildRole::Manifest]
        .into_iter()
        .filter_map(|role| release.build(role).finished_at)
        .max();
    let mut metadata = json!({
        "invocationId": format!("{}#attempt-{}", release.key, release.attempt),
        "startedOn": rfc3339(started),
    });
    if let Some(finished) = finished {
        metadata["finishedOn"] = json!(rfc3339(finished));
    }
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects(release)?,
        "predicateType": PROVENANCE_V1,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "source": {
                        "bucket": source.bucket,
                        "key": source.key,
                        "versionId": source.version_id,
                        "etag": source.etag,
                    },
                    "repository": release.key.repository,
                    "release": release.key.tag.as_str(),
                    "attempt": release.attempt,
                    "manifestMode": release.manifest_mode,
                },
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": { "id": BUILDER_ID, "builderDependencies": builder_images },
                "metadata": metadata,
                "byproducts": builds,
            },
        },
    });
    Ok(serde_json::to_vec(&statement).expect("a statement serialises"))
}

/// The gate's policy as a canonical document (its digest names it in the summary).
pub fn policy_document(policy: &Policy) -> Value {
    let limits: serde_json::Map<String, Value> = policy
        .max
        .iter()
        .map(|(severity, limit)| (severity.as_str().to_owned(), json!(limit)))
        .collect();
    json!({
        "maxFindings": limits,
        "onScanFailure": policy.on_scan_failure,
        "allowlist": policy.allowlist,
    })
}

/// PASSED when every child's current verdict passes, FAILED otherwise.
pub fn gate_result(release: &Release) -> &'static str {
    match release.gate() {
        crate::domain::release::GateState::Passed => "PASSED",
        _ => "FAILED",
    }
}

/// The SLSA Verification Summary of the scan gate's decision on a release.
pub fn verdict(release: &Release, context: &Context<'_>) -> Result<Vec<u8>, StatementError> {
    let candidate = release
        .candidate
        .as_ref()
        .ok_or_else(|| StatementError::NoCandidate(release.key.to_string()))?;
    let policy = policy_document(context.policy);
    let policy_bytes = serde_json::to_vec(&policy).expect("a policy serialises");
    let mut images = Vec::new();
    let mut verified_at = None;
    for child in &candidate.children {
        let record = release
            .verdict_for(child.arch, &child.digest)
            .ok_or_else(|| StatementError::NoVerdict {
                release: release.key.to_string(),
                arch: child.arch,
            })?;
        verified_at = verified_at.max(Some(record.evaluated_at));
        let mut image = json!({
            "platform": format!("linux/{}", child.arch),
            "digest": child.digest,
            "scanner": record.scanner.map(|s| s.as_str()),
            "scannedOn": rfc3339(record.scanned_at),
            "evaluatedOn": rfc3339(record.evaluated_at),
        });
        // Which version of the repository's policy judged this image (verdicts recorded
        // before policies had versions name none).
        if let Some(version) = record.policy_version {
            image["policyVersion"] = json!(version);
        }
        match &record.verdict {
            Verdict::Pass {
                counts,
                allowlisted,
            } => {
                let accepted: Vec<Value> = allowlisted
                    .iter()
                    .map(
                        |id| match context.policy.allowlist.iter().find(|e| &e.id == id) {
                            Some(entry) => json!(entry),
                            None => json!({ "id": id }),
                        },
                    )
                    .collect();
                image["verdict"] = json!("pass");
                image["counts"] = json!(counts);
                image["accepted"] = json!(accepted);
            }
            Verdict::Block {
                rule,
                counts,
                worst,
            } => {
                image["verdict"] = json!("block");
                image["rule"] = json!(rule);
                image["counts"] = json!(counts);
                image["worst"] = json!(worst);
            }
        }
        images.push(image);
    }
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": subjects(release)?,
        "predicateType": VERIFICATION_SUMMARY_V1,
        "predicate": {
            "verifier": { "id": VERIFIER_ID },
            "timeVerified": rfc3339(verified_at.unwrap_or(release.updated_at)),
            "resourceUri": format!("{}@{}", release.key.repository, candidate.digest),
            "policy": { "uri": POLICY_URI, "digest": { "sha256": sha256_hex(&policy_bytes) } },
            "verificationResult": gate_result(release),
            "verifiedLevels": [],
            "slsaVersion": "1.0",
            GATE_FIELD: {
                "repository": release.key.repository,
                "policy": policy,
                "policyVersion": context.policy_version,
                "images": images,
            },
        },
    });
    Ok(serde_json::to_vec(&statement).expect("a statement serialises"))
}
