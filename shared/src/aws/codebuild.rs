//! CodeBuild: StartBuild with overrides and an idempotency token, StopBuild, BatchGetBuilds.

use super::classify;
use crate::domain::BuildStatus;
use crate::error::AdapterError;
use crate::operation::{CODEBUILD_BATCH_GET_BUILDS, CODEBUILD_START_BUILD, CODEBUILD_STOP_BUILD};
use crate::ports::{BuildDetails, BuildRequest, Builds};
use aws_sdk_codebuild::types::{EnvironmentVariable, EnvironmentVariableType, SourceType};

#[derive(Clone, Debug)]
pub struct CodeBuildBuilds {
    client: aws_sdk_codebuild::Client,
}

impl CodeBuildBuilds {
    pub fn new(client: aws_sdk_codebuild::Client) -> Self {
        CodeBuildBuilds { client }
    }
}

impl Builds for CodeBuildBuilds {
    async fn start(&self, request: &BuildRequest) -> Result<String, AdapterError> {
        let mut variables = Vec::with_capacity(request.environment.len());
        for (name, value) in &request.environment {
            variables.push(
                EnvironmentVariable::builder()
                    .name(name)
                    .value(value)
                    .r#type(EnvironmentVariableType::Plaintext)
                    .build()
                    .map_err(|e| AdapterError::Unexpected {
                        service: "CodeBuild",
                        operation: "StartBuild",
                        reason: e.to_string(),
                    })?,
            );
        }
        let output = self
            .client
            .start_build()
            .project_name(&request.project)
            .source_type_override(SourceType::S3)
            .source_location_override(&request.source_location)
            .set_source_version(request.source_version.clone())
            .set_environment_variables_override(Some(variables))
            .idempotency_token(&request.idempotency_token)
            .send()
            .await
            .map_err(|e| classify(CODEBUILD_START_BUILD, e))?;
        output
            .build_value
            .and_then(|b| b.id)
            .ok_or_else(|| AdapterError::Unexpected {
                service: "CodeBuild",
                operation: "StartBuild",
                reason: "no build id in the response".into(),
            })
    }

    async fn stop(&self, build_id: &str) -> Result<(), AdapterError> {
        self.client
            .stop_build()
            .id(build_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| classify(CODEBUILD_STOP_BUILD, e))
    }

    async fn details(&self, build_id: &str) -> Result<Option<BuildDetails>, AdapterError> {
        let output = self
            .client
            .batch_get_builds()
            .ids(build_id)
            .send()
            .await
            .map_err(|e| classify(CODEBUILD_BATCH_GET_BUILDS, e))?;
        Ok(output.builds().first().map(|build| BuildDetails {
            build_id: build.id().unwrap_or(build_id).to_owned(),
            project: build.project_name().unwrap_or_default().to_owned(),
            status: build
                .build_status()
                .and_then(|s| BuildStatus::parse(s.as_str())),
            environment: build
                .environment()
                .map(|env| {
                    env.environment_variables()
                        .iter()
                        .filter(|v| {
                            v.r#type()
                                .is_none_or(|t| *t == EnvironmentVariableType::Plaintext)
                        })
                        .map(|v| (v.name().to_owned(), v.value().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            exported: build
                .exported_environment_variables()
                .iter()
                .filter_map(|v| Some((v.name()?.to_owned(), v.value()?.to_owned())))
                .collect(),
            image: build
                .environment()
                .map(|env| env.image().to_owned())
                .filter(|image| !image.is_empty()),
        }))
    }
}
