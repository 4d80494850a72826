//! CodeBuild "Build State Change": a final status of one of archgate's builds.

use super::{foreign, other_event, parse, required, MalformedEvent};
use crate::build_variables::{
    exported_digest, exported_platform, IDENTITY, IMAGE_ARCH, IMAGE_DIGEST, IMAGE_REPO_NAME,
    RELEASE_ATTEMPT, RELEASE_TAG, RELEASE_UPLOAD,
};
use crate::config::Config;
use crate::domain::digest::truncate_for_message;
use crate::domain::release::{BuildOrigin, BuildRole, BuildStatus, ManifestMode};
use crate::domain::tag::ReleaseTag;
use crate::domain::{Arch, Fact, IgnoreReason, ReleaseKey};
use crate::ports::BuildDetails;
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

/// CodeBuild's own record of a build, as far as the event needed it.
pub enum BuildRecord {
    /// The event carried everything: CodeBuild was not asked.
    NotRead,
    /// CodeBuild does not know the build.
    Unknown,
    Read(BuildDetails),
}

/// The variables a build's fact is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildVariables {
    pub environment: Vec<(String, String)>,
    pub exported: Vec<(String, String)>,
}

/// Whether the event lacks what the fact needs, so CodeBuild's record of the build is read:
/// the variables that name a release, or the image a succeeded build pushed (arch and
/// manifest builds export it).
pub fn needs_build_record(change: &BuildChange) -> bool {
    !(carries_identity(change) && reports_image(change))
}

fn carries_identity(change: &BuildChange) -> bool {
    IDENTITY
        .iter()
        .all(|name| change.environment.iter().any(|(n, _)| n == name))
}

fn reports_image(change: &BuildChange) -> bool {
    change.status != BuildStatus::Succeeded
        || change.exported.iter().any(|(n, _)| n == IMAGE_DIGEST)
}

/// The event's variables, completed from CodeBuild's record of the build where the event
/// lacked them: what the event carried stands. A record of another project than the event's
/// role, or no record of a build the event does not identify, is not archgate's build.
pub fn build_variables(
    change: &BuildChange,
    record: BuildRecord,
    config: &Config,
) -> Result<BuildVariables, IgnoreReason> {
    let from_event = || BuildVariables {
        environment: change.environment.clone(),
        exported: change.exported.clone(),
    };
    match record {
        BuildRecord::NotRead => Ok(from_event()),
        BuildRecord::Read(details)
            if config.role_of_project(&details.project) == Some(change.role) =>
        {
            let environment = if carries_identity(change) {
                change.environment.clone()
            } else {
                details.environment
            };
            let exported = if reports_image(change) || details.exported.is_empty() {
                change.exported.clone()
            } else {
                details.exported
            };
            Ok(BuildVariables {
                environment,
                exported,
            })
        }
        BuildRecord::Read(details) => Err(IgnoreReason::ProjectDisagrees {
            build_id: change.build_id.clone(),
            project: details.project,
        }),
        BuildRecord::Unknown if carries_identity(change) => Ok(from_event()),
        BuildRecord::Unknown => Err(IgnoreReason::UnknownBuild {
            build_id: change.build_id.clone(),
        }),
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
    let repositories = config.repositories();
    if !repositories.owns(repository) {
        return Err(IgnoreReason::BuildOfForeignRepository {
            build_id: build_id(),
            repository: truncate_for_message(repository),
            expected: repositories.to_string(),
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
