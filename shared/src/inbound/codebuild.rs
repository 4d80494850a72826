//! CodeBuild "Build State Change": a final status of one of archgate's builds.

use super::{foreign, other_event, parse, required, MalformedEvent};
use crate::build_variables::{
    IMAGE_ARCH, IMAGE_DIGEST, IMAGE_PLATFORM, IMAGE_REPO_NAME, RELEASE_ATTEMPT, RELEASE_TAG,
    RELEASE_UPLOAD,
};
use crate::config::Config;
use crate::domain::digest::truncate_for_message;
use crate::domain::oci::ImagePlatform;
use crate::domain::release::{BuildOrigin, BuildRole, BuildStatus, ManifestMode};
use crate::domain::tag::ReleaseTag;
use crate::domain::{Arch, Digest, Fact, IgnoreReason, ReleaseKey};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::{Deserialize, Serialize};

pub const CODEBUILD_SOURCE: &str = "aws.codebuild";
pub const CODEBUILD_STATE_CHANGE: &str = "CodeBuild Build State Change";

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
    /// The build image (`aws/codebuild/amazonlinux2-aarch64-standard:3.0`).
    #[serde(default)]
    pub image: Option<String>,
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
    parse(value, "CodeBuild Build State Change")
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
    /// The image the build ran on, when the event said.
    pub builder_image: Option<String>,
}

pub fn build_change(event: &CodeBuildEvent, config: &Config) -> Result<BuildChange, IgnoreReason> {
    if let Some(ignored) = foreign(event, config) {
        return Err(ignored);
    }
    if event.source != CODEBUILD_SOURCE || event.detail_type != CODEBUILD_STATE_CHANGE {
        return Err(other_event(event, "a CodeBuild Build State Change"));
    }
    let detail = &event.detail;
    let project = required(detail.project_name.as_deref(), "detail.project-name")?;
    let role = config
        .role_of_project(project)
        .ok_or_else(|| IgnoreReason::ForeignProject {
            project: truncate_for_message(project),
        })?;
    if role == BuildRole::Manifest && config.manifest_mode == ManifestMode::Native {
        return Err(IgnoreReason::NativeManifestProject {
            project: project.to_owned(),
        });
    }
    let build_id = build_id_of(required(detail.build_id.as_deref(), "detail.build-id")?);
    if !build_id.starts_with(&format!("{project}:")) {
        return Err(IgnoreReason::BuildOfAnotherProject {
            build_id: truncate_for_message(build_id),
            project: project.to_owned(),
        });
    }
    let status_text = required(detail.build_status.as_deref(), "detail.build-status")?;
    let status =
        BuildStatus::parse(status_text).ok_or_else(|| IgnoreReason::UnknownBuildStatus {
            status: truncate_for_message(status_text),
        })?;
    if !status.is_final() {
        return Err(IgnoreReason::NotFinal {
            role,
            build_id: truncate_for_message(build_id),
            status,
        });
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
        builder_image: information
            .and_then(|a| a.environment.as_ref())
            .and_then(|e| e.image.as_deref())
            .map(truncate_for_message),
    })
}

/// The digest a build exported as `IMAGE_DIGEST`, when it is a valid sha256 digest. A
/// malformed one is not trusted: the release then reads its images by tag.
pub fn exported_digest(build_id: &str, exported: &[(String, String)]) -> Option<Digest> {
    let (_, value) = exported.iter().find(|(name, _)| name == IMAGE_DIGEST)?;
    match Digest::parse(value.trim()) {
        Ok(digest) => Some(digest),
        Err(error) => {
            tracing::warn!(build = %truncate_for_message(build_id), %error, "exported IMAGE_DIGEST is not a digest; ignored");
            None
        }
    }
}

/// The platform an arch build exported as `IMAGE_PLATFORM`, when it names the build's own
/// architecture on linux. Anything else is not trusted: the index then declares only the
/// architecture the build was started for.
pub fn exported_platform(
    build_id: &str,
    role: BuildRole,
    exported: &[(String, String)],
) -> Option<ImagePlatform> {
    let arch = match role {
        BuildRole::Amd64 => Arch::Amd64,
        BuildRole::Arm64 => Arch::Arm64,
        BuildRole::Manifest => return None,
    };
    let (_, value) = exported.iter().find(|(name, _)| name == IMAGE_PLATFORM)?;
    match ImagePlatform::parse(arch, value.trim()) {
        Ok(platform) => Some(platform),
        Err(problem) => {
            tracing::warn!(build = %truncate_for_message(build_id), value = %truncate_for_message(value), %problem, "exported IMAGE_PLATFORM is not this build's platform; ignored");
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
) -> Result<(ReleaseKey, Fact), IgnoreReason> {
    let var = |name: &str| {
        environment
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let build_id = || truncate_for_message(&change.build_id);
    let (Some(repository), Some(tag)) = (var(IMAGE_REPO_NAME), var(RELEASE_TAG)) else {
        return Err(IgnoreReason::NoArchgateRelease {
            build_id: build_id(),
        });
    };
    if repository != config.repository {
        return Err(IgnoreReason::BuildOfForeignRepository {
            build_id: build_id(),
            repository: truncate_for_message(repository),
            expected: config.repository.clone(),
        });
    }
    let tag = ReleaseTag::parse(tag).map_err(|e| IgnoreReason::BadReleaseTag {
        build_id: build_id(),
        problem: e.to_string(),
    })?;
    let expected_arch = match change.role {
        BuildRole::Amd64 => Some(Arch::Amd64),
        BuildRole::Arm64 => Some(Arch::Arm64),
        BuildRole::Manifest => None,
    };
    if let (Some(expected), Some(said)) = (expected_arch, var(IMAGE_ARCH)) {
        if said != expected.as_str() {
            return Err(IgnoreReason::ArchMismatch {
                build_id: build_id(),
                expected,
                said: truncate_for_message(said),
            });
        }
    }
    let origin = build_origin(&change.build_id, environment)?;
    Ok((
        ReleaseKey::new(repository, tag),
        Fact::BuildChanged {
            role: change.role,
            build_id: change.build_id.clone(),
            status: change.status,
            image_digest: exported_digest(&change.build_id, exported),
            image_platform: exported_platform(&change.build_id, change.role, exported),
            builder_image: change.builder_image.clone(),
            origin,
        },
    ))
}

/// The release attempt a build's environment names (`ARCHGATE_RELEASE_ATTEMPT`, with the
/// upload in `ARCHGATE_RELEASE_UPLOAD`): `None` when it names none (a build started before
/// builds carried it); a value that is not an attempt number is not trusted at all.
pub fn build_origin(
    build_id: &str,
    environment: &[(String, String)],
) -> Result<Option<BuildOrigin>, IgnoreReason> {
    let var = |name: &str| {
        environment
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let Some(value) = var(RELEASE_ATTEMPT) else {
        return Ok(None);
    };
    match value.trim().parse::<u32>() {
        Ok(attempt) if attempt > 0 => Ok(Some(BuildOrigin {
            attempt,
            upload: var(RELEASE_UPLOAD).map(truncate_for_message),
        })),
        _ => Err(IgnoreReason::BadBuildAttempt {
            build_id: truncate_for_message(build_id),
            variable: RELEASE_ATTEMPT,
            value: truncate_for_message(value),
        }),
    }
}
/// Events carry the build ARN (`arn:aws:codebuild:<region>:<account>:build/<project>:<uuid>`);
/// StartBuild and BatchGetBuilds speak of the id (`<project>:<uuid>`). archgate records ids.
pub fn build_id_of(value: &str) -> &str {
    match value.split_once(":build/") {
        Some((prefix, id)) if prefix.starts_with("arn:") => id,
        _ => value,
    }
}
