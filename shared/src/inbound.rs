//! Untrusted EventBridge events → facts. Every event is checked against the configuration;
//! anything that is not archgate's gives an explicit [`Ignored`] reason, never a panic.

use crate::config::Config;
use crate::domain::digest::truncate_for_message;
use crate::domain::release::{BuildRole, BuildStatus, Ignored, ManifestMode};
use crate::domain::tag::ReleaseTag;
use crate::domain::{Fact, ReleaseKey, SourceObject};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};

pub const S3_SOURCE: &str = "aws.s3";
pub const S3_OBJECT_CREATED: &str = "Object Created";
pub const CODEBUILD_SOURCE: &str = "aws.codebuild";
pub const CODEBUILD_STATE_CHANGE: &str = "CodeBuild Build State Change";

/// Upper bound on any string taken from an event before it is used (keys are ≤ 1024 bytes
/// in S3; anything longer is not a real event).
const MAX_FIELD_LEN: usize = 2048;

#[derive(Debug, thiserror::Error)]
#[error("event is not a well-formed {expected} event")]
pub struct MalformedEvent {
    pub expected: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// `detail` of an S3 "Object Created" event (EventBridge notifications).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct S3ObjectCreated {
    #[serde(default)]
    pub bucket: Option<S3Bucket>,
    #[serde(default)]
    pub object: Option<S3Object>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Bucket {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct S3Object {
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub etag: Option<String>,
    #[serde(default)]
    pub version_id: Option<String>,
    #[serde(default)]
    pub sequencer: Option<String>,
}

pub type S3Event = EventBridgeEvent<S3ObjectCreated>;

pub fn parse_s3_event(value: serde_json::Value) -> Result<S3Event, MalformedEvent> {
    serde_json::from_value(value).map_err(|source| MalformedEvent {
        expected: "S3 Object Created",
        source,
    })
}

/// Events of another account or region than the deployment's are not archgate's to act on.
pub fn foreign<T>(event: &EventBridgeEvent<T>, config: &Config) -> Option<Ignored>
where
    T: Serialize + serde::de::DeserializeOwned,
{
    let mismatch = |expected: &Option<String>, got: &Option<String>| match (expected, got) {
        (Some(expected), Some(got)) => expected != got,
        (Some(_), None) => true,
        (None, _) => false,
    };
    if mismatch(&config.account_id, &event.account) {
        return Some(Ignored(format!(
            "event from account `{}`, not this deployment's",
            truncate_for_message(event.account.as_deref().unwrap_or("<missing>"))
        )));
    }
    if mismatch(&config.region, &event.region) {
        return Some(Ignored(format!(
            "event from region `{}`, not this deployment's",
            truncate_for_message(event.region.as_deref().unwrap_or("<missing>"))
        )));
    }
    None
}

/// The release an upload starts, or why it starts none.
pub fn upload_fact(event: &S3Event, config: &Config) -> Result<(ReleaseKey, Fact), Ignored> {
    if let Some(ignored) = foreign(event, config) {
        return Err(ignored);
    }
    if event.source != S3_SOURCE || event.detail_type != S3_OBJECT_CREATED {
        return Err(Ignored(format!(
            "not an S3 Object Created event (source `{}`, detail-type `{}`)",
            truncate_for_message(&event.source),
            truncate_for_message(&event.detail_type)
        )));
    }
    let detail = &event.detail;
    let bucket = required(
        detail.bucket.as_ref().and_then(|b| b.name.as_deref()),
        "detail.bucket.name",
    )?;
    if bucket != config.source_bucket {
        return Err(Ignored(format!(
            "bucket `{}` is not the source bucket `{}`",
            truncate_for_message(bucket),
            config.source_bucket
        )));
    }
    let object = detail.object.as_ref();
    let key = required(object.and_then(|o| o.key.as_deref()), "detail.object.key")?;
    let tag = ReleaseTag::from_object_key(key, &config.source_prefix)
        .map_err(|e| Ignored(e.to_string()))?;
    let sequencer = optional(
        object.and_then(|o| o.sequencer.as_deref()),
        "detail.object.sequencer",
    )?;
    if let Some(sequencer) = &sequencer {
        if !sequencer.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Ignored(format!(
                "detail.object.sequencer `{}` is not hexadecimal",
                truncate_for_message(sequencer)
            )));
        }
    }
    let source = SourceObject {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version_id: optional(
            object.and_then(|o| o.version_id.as_deref()),
            "detail.object.version-id",
        )?,
        etag: optional(object.and_then(|o| o.etag.as_deref()), "detail.object.etag")?,
        size: object.and_then(|o| o.size),
        uploaded_at: event.time.map(|t| t.timestamp_millis()),
        sequencer,
    };
    let key = ReleaseKey::new(config.repository.clone(), tag);
    // A reserved name starts nothing; the refusal is recorded and announced.
    let fact = match key.tag.reserved(&config.moving_tags) {
        Some(reason) => Fact::SourceRefused { source, reason },
        None => Fact::SourceUploaded {
            source,
            manifest_mode: config.manifest_mode,
        },
    };
    Ok((key, fact))
}

/// `detail` of a "CodeBuild Build State Change" event. Only what archgate reads is typed;
/// the rest (phases with their float-or-integer durations, logs, …) is left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct CodeBuildStateChange {
    #[serde(default)]
    pub build_status: Option<String>,
    #[serde(default)]
    pub project_name: Option<String>,
    #[serde(default)]
    pub build_id: Option<String>,
    #[serde(default)]
    pub current_phase: Option<String>,
    #[serde(default)]
    pub additional_information: Option<AdditionalInformation>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct AdditionalInformation {
    #[serde(default)]
    pub environment: Option<BuildEnvironment>,
    /// The buildspec's `exported-variables` (`IMAGE_DIGEST`), in a final state change.
    #[serde(default)]
    pub exported_environment_variables: Option<Vec<EnvironmentVariable>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct BuildEnvironment {
    #[serde(default)]
    pub environment_variables: Option<Vec<EnvironmentVariable>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentVariable {
    pub name: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

pub type CodeBuildEvent = EventBridgeEvent<CodeBuildStateChange>;

pub fn parse_codebuild_event(value: serde_json::Value) -> Result<CodeBuildEvent, MalformedEvent> {
    serde_json::from_value(value).map_err(|source| MalformedEvent {
        expected: "CodeBuild Build State Change",
        source,
    })
}

/// A final build status of one of archgate's projects, before the release is identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildChange {
    pub role: BuildRole,
    pub build_id: String,
    pub status: BuildStatus,
    /// Plain-text environment variables from the event; empty when the event carried none.
    pub environment: Vec<(String, String)>,
    /// Exported variables from the event; empty when the event carried none.
    pub exported: Vec<(String, String)>,
}

/// The variable the buildspecs export with the digest they pushed.
pub const IMAGE_DIGEST: &str = "IMAGE_DIGEST";

pub fn build_change(event: &CodeBuildEvent, config: &Config) -> Result<BuildChange, Ignored> {
    if let Some(ignored) = foreign(event, config) {
        return Err(ignored);
    }
    if event.source != CODEBUILD_SOURCE || event.detail_type != CODEBUILD_STATE_CHANGE {
        return Err(Ignored(format!(
            "not a CodeBuild Build State Change event (source `{}`, detail-type `{}`)",
            truncate_for_message(&event.source),
            truncate_for_message(&event.detail_type)
        )));
    }
    let detail = &event.detail;
    let project = required(detail.project_name.as_deref(), "detail.project-name")?;
    let role = config.role_of_project(project).ok_or_else(|| {
        Ignored(format!(
            "project `{}` is not one of archgate's",
            truncate_for_message(project)
        ))
    })?;
    if role == BuildRole::Manifest && config.manifest_mode == ManifestMode::Native {
        return Err(Ignored(format!(
            "manifest project `{project}` is not used in native manifest mode"
        )));
    }
    let build_id = build_id_of(required(detail.build_id.as_deref(), "detail.build-id")?);
    if !build_id.starts_with(&format!("{project}:")) {
        return Err(Ignored(format!(
            "build `{}` does not belong to project `{project}`",
            truncate_for_message(build_id)
        )));
    }
    let status_text = required(detail.build_status.as_deref(), "detail.build-status")?;
    let status = BuildStatus::parse(status_text).ok_or_else(|| {
        Ignored(format!(
            "unknown build status `{}`",
            truncate_for_message(status_text)
        ))
    })?;
    if !status.is_final() {
        return Err(Ignored(format!(
            "{role} build {} is {}: not a final status",
            truncate_for_message(build_id),
            status.as_str()
        )));
    }
    let plain = |vars: Option<&Vec<EnvironmentVariable>>| -> Vec<(String, String)> {
        vars.map(|vars| {
            vars.iter()
                .filter(|v| v.kind.as_deref().is_none_or(|k| k == "PLAINTEXT"))
                .filter_map(|v| Some((v.name.clone(), v.value.clone()?)))
                .collect()
        })
        .unwrap_or_default()
    };
    let information = detail.additional_information.as_ref();
    Ok(BuildChange {
        role,
        build_id: build_id.to_owned(),
        status,
        environment: plain(
            information
                .and_then(|a| a.environment.as_ref())
                .and_then(|e| e.environment_variables.as_ref()),
        ),
        exported: plain(information.and_then(|a| a.exported_environment_variables.as_ref())),
    })
}

/// The digest a build exported as `IMAGE_DIGEST`, when it is a valid sha256 digest. A
/// malformed one is not trusted: the release then reads its images by tag.
pub fn exported_digest(
    build_id: &str,
    exported: &[(String, String)],
) -> Option<crate::domain::Digest> {
    let (_, value) = exported.iter().find(|(name, _)| name == IMAGE_DIGEST)?;
    match crate::domain::Digest::parse(value.trim()) {
        Ok(digest) => Some(digest),
        Err(error) => {
            tracing::warn!(build = %truncate_for_message(build_id), %error, "exported IMAGE_DIGEST is not a digest; ignored");
            None
        }
    }
}

/// Whether a build's environment names a release of this repository: the key and the fact.
/// `exported` are the build's exported variables (the event's, or CodeBuild's).
pub fn build_fact(
    change: &BuildChange,
    environment: &[(String, String)],
    exported: &[(String, String)],
    config: &Config,
) -> Result<(ReleaseKey, Fact), Ignored> {
    let var = |name: &str| {
        environment
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(repository), Some(tag)) = (var("IMAGE_REPO_NAME"), var("ARCHGATE_RELEASE_TAG"))
    else {
        return Err(Ignored(format!(
            "build {} carries no archgate release (IMAGE_REPO_NAME / ARCHGATE_RELEASE_TAG): not started by archgate",
            truncate_for_message(&change.build_id)
        )));
    };
    if repository != config.repository {
        return Err(Ignored(format!(
            "build {} is for repository `{}`, not `{}`",
            truncate_for_message(&change.build_id),
            truncate_for_message(repository),
            config.repository
        )));
    }
    let tag = ReleaseTag::parse(tag).map_err(|e| {
        Ignored(format!(
            "build {}: {e}",
            truncate_for_message(&change.build_id)
        ))
    })?;
    let expected_arch = match change.role {
        BuildRole::Amd64 => Some("amd64"),
        BuildRole::Arm64 => Some("arm64"),
        BuildRole::Manifest => None,
    };
    if let Some(expected) = expected_arch {
        if var("IMAGE_ARCH").is_some_and(|arch| arch != expected) {
            return Err(Ignored(format!(
                "build {} of the {expected} project says IMAGE_ARCH={}",
                truncate_for_message(&change.build_id),
                truncate_for_message(var("IMAGE_ARCH").unwrap_or_default())
            )));
        }
    }
    Ok((
        ReleaseKey::new(repository, tag),
        Fact::BuildChanged {
            role: change.role,
            build_id: change.build_id.clone(),
            status: change.status,
            image_digest: exported_digest(&change.build_id, exported),
        },
    ))
}

/// Events carry the build ARN (`arn:aws:codebuild:<region>:<account>:build/<project>:<uuid>`);
/// StartBuild and BatchGetBuilds speak of the id (`<project>:<uuid>`). archgate records ids.
pub fn build_id_of(value: &str) -> &str {
    match value.split_once(":build/") {
        Some((prefix, id)) if prefix.starts_with("arn:") => id,
        _ => value,
    }
}

fn required<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, Ignored> {
    match value {
        Some("") => Err(Ignored(format!("{field} is empty"))),
        Some(v) if v.len() > MAX_FIELD_LEN => Err(Ignored(format!(
            "{field} is implausibly long ({} bytes)",
            v.len()
        ))),
        Some(v) => Ok(v),
        None => Err(Ignored(format!("{field} is missing"))),
    }
}

fn optional(value: Option<&str>, field: &str) -> Result<Option<String>, Ignored> {
    match value {
        None | Some("") => Ok(None),
        Some(v) => required(Some(v), field).map(|v| Some(v.to_owned())),
    }
}

/// The most `<tag>-<arch>` tags of one scanned image that are followed to their releases.
pub const MAX_SCAN_TAGS: usize = 100;

pub const ECR_SOURCE: &str = "aws.ecr";
pub const ECR_IMAGE_SCAN: &str = "ECR Image Scan";
pub const INSPECTOR_SOURCE: &str = "aws.inspector2";
pub const INSPECTOR_SCAN: &str = "Inspector2 Scan";

/// `detail` of an "ECR Image Scan" (basic scanning) or "Inspector2 Scan" (enhanced scanning)
/// event. Counts stay raw JSON so a non-numeric count gets its own message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageScan {
    #[serde(default)]
    pub scan_status: Option<String>,
    #[serde(default)]
    pub repository_name: Option<String>,
    #[serde(default)]
    pub finding_severity_counts: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub image_digest: Option<String>,
    #[serde(default)]
    pub image_tags: Option<Vec<String>>,
}

pub type ScanEvent = EventBridgeEvent<ImageScan>;

pub fn parse_scan_event(value: serde_json::Value) -> Result<ScanEvent, MalformedEvent> {
    serde_json::from_value(value).map_err(|source| MalformedEvent {
        expected: "ECR Image Scan / Inspector2 Scan",
        source,
    })
}

/// A scan event whose content is wrong (not merely someone else's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidField {
    pub field: String,
    pub problem: String,
}

/// A completed (or failed) scan of one of archgate's per-arch images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanObservation {
    pub repository: String,
    /// The releases and arches named by the image's `<tag>-<arch>` tags (byte-identical
    /// builds of several releases are one image with several tags); empty for an untagged
    /// image, which is then looked up by digest.
    pub located: Vec<(ReleaseKey, crate::domain::Arch)>,
    pub digest: crate::domain::Digest,
    pub result: ScanResult,
    /// The event's time, in milliseconds since the epoch.
    pub scanned_at: i64,
}

/// What a scan event says about the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanResult {
    /// A scan ended (ECR Image Scan, Inspector2 Scan): its status and counts.
    Reported {
        status: crate::domain::gate::ScanStatus,
        counts: crate::domain::gate::SeverityCounts,
    },
    /// One of the image's findings was created, updated or closed (Inspector2 Finding, from
    /// continuous rescans): the image's current findings are read afresh.
    FindingChanged,
}

/// Reads a scan event: `Ok(Err(ignored))` for scans that are not archgate's to judge,
/// `Err` for a scan event whose fields are wrong.
pub fn scan_observation(
    event: &ScanEvent,
    config: &Config,
) -> Result<Result<ScanObservation, Ignored>, InvalidField> {
    if let Some(ignored) = foreign(event, config) {
        return Ok(Err(ignored));
    }
    use crate::domain::gate::{ScanStatus, Severity, SeverityCounts};
    let inspector = match (event.source.as_str(), event.detail_type.as_str()) {
        (ECR_SOURCE, ECR_IMAGE_SCAN) => false,
        (INSPECTOR_SOURCE, INSPECTOR_SCAN) => true,
        (source, detail_type) => {
            return Ok(Err(Ignored(format!(
                "not a scan event (source `{}`, detail-type `{}`)",
                truncate_for_message(source),
                truncate_for_message(detail_type)
            ))))
        }
    };
    let detail = &event.detail;
    macro_rules! need {
        ($value:expr, $field:expr) => {
            match required($value, $field) {
                Ok(v) => v,
                Err(ignored) => return Ok(Err(ignored)),
            }
        };
    }
    let named = need!(detail.repository_name.as_deref(), "detail.repository-name");
    // Inspector names the repository by ARN; names may contain `/`.
    let repository = match named.split_once(":repository/") {
        Some((prefix, name)) if prefix.starts_with("arn:") => name,
        _ => named,
    };
    if repository != config.repository {
        return Ok(Err(Ignored(format!(
            "repository `{}` is not archgate's repository `{}`",
            truncate_for_message(repository),
            config.repository
        ))));
    }
    let status_text = need!(detail.scan_status.as_deref(), "detail.scan-status");
    let status = match (inspector, status_text) {
        (false, "COMPLETE") | (true, "INITIAL_SCAN_COMPLETE") => ScanStatus::Complete,
        (_, "FAILED") => ScanStatus::Failed,
        (_, "UNSUPPORTED_IMAGE") => ScanStatus::Unsupported,
        (_, other) => {
            return Ok(Err(Ignored(format!(
                "scan status `{}` is not a result the gate judges",
                truncate_for_message(other)
            ))))
        }
    };
    let digest_text = need!(detail.image_digest.as_deref(), "detail.image-digest");
    let digest = crate::domain::Digest::parse(digest_text).map_err(|e| InvalidField {
        field: "detail.image-digest".into(),
        problem: e.to_string(),
    })?;
    let mut counts = SeverityCounts::new();
    for (name, value) in detail.finding_severity_counts.iter().flatten() {
        let Some(severity) = Severity::parse(name) else {
            // TOTAL (Inspector) and UNTRIAGED are not severities the policy limits.
            continue;
        };
        let count = value.as_u64().ok_or_else(|| InvalidField {
            field: format!("detail.finding-severity-counts.{name}"),
            problem: format!(
                "{} is not a count (a whole number, 0 or more)",
                truncate_for_message(&value.to_string())
            ),
        })?;
        counts.insert(severity, count);
    }
    let tags = detail.image_tags.clone().unwrap_or_default();
    // A release needs one tag per image; byte-identical builds of several releases give it a
    // few. The work (one ledger read per release named) is bounded on hostile input.
    let located = located_by_tags(repository, &tags);
    let scanned_at = event.time.map(|t| t.timestamp_millis()).unwrap_or_default();
    Ok(Ok(ScanObservation {
        repository: repository.to_owned(),
        located,
        digest,
        result: ScanResult::Reported { status, counts },
        scanned_at,
    }))
}

/// The release arch tags among an image's tags, as releases of `repository` (at most
/// [`MAX_SCAN_TAGS`]).
fn located_by_tags(repository: &str, tags: &[String]) -> Vec<(ReleaseKey, crate::domain::Arch)> {
    let mut located: Vec<(ReleaseKey, crate::domain::Arch)> = Vec::new();
    for tag in tags.iter().take(MAX_SCAN_TAGS) {
        let found = crate::domain::Arch::ALL.into_iter().find_map(|arch| {
            let stem = tag.strip_suffix(&format!("-{arch}"))?;
            let release = ReleaseTag::parse(stem).ok()?;
            Some((ReleaseKey::new(repository, release), arch))
        });
        if let Some(found) = found {
            if !located.contains(&found) {
                located.push(found);
            }
        }
    }
    located
}

pub const INSPECTOR_FINDING: &str = "Inspector2 Finding";

/// `detail` of an "Inspector2 Finding" event (enhanced scanning: a finding of an image was
/// created, updated or closed). Only what archgate reads is typed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InspectorFinding {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub resources: Option<Vec<FindingResource>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FindingResource {
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub details: Option<FindingResourceDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindingResourceDetails {
    #[serde(default)]
    pub aws_ecr_container_image: Option<EcrImageDetails>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EcrImageDetails {
    #[serde(default)]
    pub repository_name: Option<String>,
    #[serde(default)]
    pub image_hash: Option<String>,
    #[serde(default)]
    pub image_tags: Option<Vec<String>>,
}

pub type FindingEvent = EventBridgeEvent<InspectorFinding>;

pub fn parse_finding_event(value: serde_json::Value) -> Result<FindingEvent, MalformedEvent> {
    serde_json::from_value(value).map_err(|source| MalformedEvent {
        expected: "Inspector2 Finding",
        source,
    })
}

/// Reads an Inspector2 Finding event: the image of archgate's repository whose findings
/// changed, to be judged again; `Ok(Err(ignored))` when it is not archgate's.
pub fn finding_observation(
    event: &FindingEvent,
    config: &Config,
) -> Result<Result<ScanObservation, Ignored>, InvalidField> {
    if let Some(ignored) = foreign(event, config) {
        return Ok(Err(ignored));
    }
    if event.source != INSPECTOR_SOURCE || event.detail_type != INSPECTOR_FINDING {
        return Ok(Err(Ignored(format!(
            "not an Inspector2 Finding event (source `{}`, detail-type `{}`)",
            truncate_for_message(&event.source),
            truncate_for_message(&event.detail_type)
        ))));
    }
    let image = event
        .detail
        .resources
        .iter()
        .flatten()
        .filter(|r| r.kind.as_deref() == Some("AWS_ECR_CONTAINER_IMAGE"))
        .find_map(|r| r.details.as_ref()?.aws_ecr_container_image.as_ref());
    let Some(image) = image else {
        return Ok(Err(Ignored(
            "the finding is not about an ECR container image".to_owned(),
        )));
    };
    let repository = match required(image.repository_name.as_deref(), "repositoryName") {
        Ok(name) => name,
        Err(ignored) => return Ok(Err(ignored)),
    };
    if repository != config.repository {
        return Ok(Err(Ignored(format!(
            "repository `{}` is not archgate's repository `{}`",
            truncate_for_message(repository),
            config.repository
        ))));
    }
    let hash = match required(image.image_hash.as_deref(), "imageHash") {
        Ok(hash) => hash,
        Err(ignored) => return Ok(Err(ignored)),
    };
    let digest = crate::domain::Digest::parse(hash).map_err(|e| InvalidField {
        field: "detail.resources[].details.awsEcrContainerImage.imageHash".into(),
        problem: e.to_string(),
    })?;
    let tags = image.image_tags.clone().unwrap_or_default();
    Ok(Ok(ScanObservation {
        repository: repository.to_owned(),
        located: located_by_tags(repository, &tags),
        digest,
        result: ScanResult::FindingChanged,
        scanned_at: event.time.map(|t| t.timestamp_millis()).unwrap_or_default(),
    }))
}
