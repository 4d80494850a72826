//! The AWS adapters against canned SDK responses, for the answers the local emulator never
//! gives.
//!
//! The end-to-end tests run the adapters against moto's server, whose CodeBuild always
//! reports `SUCCEEDED`, drops environment overrides (BatchGetBuilds returns no environment
//! variables) and never throttles. The tests here cover exactly that gap: failed builds and
//! their overrides, the shape of the StartBuild and PutEvents requests, throttling and other
//! service errors, partial PutEvents failures, ECR's "already exists" answers and its
//! integrity check, and DynamoDB's conditional-write and capacity errors.
//!
//! Every client is built by `aws_smithy_mocks::mock_client!` with the SDK's retries off, so
//! each test sees what the adapter is left with once the SDK has given up, and runs in
//! microseconds. One test turns retries on (with a millisecond backoff) to show that
//! throttling which outlasts them still arrives as `Throttled`.

use archgate::aws::{CodeBuildBuilds, DynamoLedger, EcrRegistry, EventBridgePublisher};
use archgate::domain::oci::{RawManifest, OCI_INDEX, OCI_MANIFEST};
use archgate::domain::release::EventKind;
use archgate::domain::release_event::release_event;
use archgate::domain::{
    BuildStatus, Digest, ManifestMode, Millis, Release, ReleaseKey, ReleaseTag, SourceObject,
};
use archgate::error::AdapterError;
use archgate::ports::{
    BuildDetails, BuildRequest, Builds, EventPublisher, Ledger, Registry, SaveError,
};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use aws_smithy_runtime_api::http::{Response as HttpResponse, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use std::time::Duration;

const T0: Millis = 1_700_000_000_000;
const BUILD_ID: &str = "archgate-amd64:4f6c1a2e-0b7d-4c55-9a51-2b8f0e6d9c10";
const REPOSITORY: &str = "myapp";
const BUS: &str = "archgate-bus";
const TABLE: &str = "archgate-releases";

// ---------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------

/// The metadata the SDK's deserializer attaches to a service error: its code and message.
fn error_meta(code: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code(code)
        .message(format!("{code} (canned)"))
        .build()
}

fn codebuild(rules: &[&Rule]) -> CodeBuildBuilds {
    codebuild_with_retries(rules, RetryConfig::disabled())
}

fn codebuild_with_retries(rules: &[&Rule], retries: RetryConfig) -> CodeBuildBuilds {
    let client = mock_client!(aws_sdk_codebuild, RuleMode::Sequential, rules, |config| {
        config.retry_config(retries.clone())
    });
    CodeBuildBuilds::new(client)
}

fn ecr(rules: &[&Rule]) -> EcrRegistry {
    EcrRegistry::new(mock_client!(
        aws_sdk_ecr,
        RuleMode::Sequential,
        rules,
        |config| config.retry_config(RetryConfig::disabled())
    ))
}

fn eventbridge(rules: &[&Rule]) -> EventBridgePublisher {
    let client = mock_client!(aws_sdk_eventbridge, RuleMode::Sequential, rules, |config| {
        config.retry_config(RetryConfig::disabled())
    });
    EventBridgePublisher::new(client, BUS)
}

fn dynamodb(rules: &[&Rule]) -> DynamoLedger {
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, rules, |config| {
        config.retry_config(RetryConfig::disabled())
    });
    DynamoLedger::new(client, TABLE)
}

fn release() -> Release {
    Release::new(
        ReleaseKey::new(REPOSITORY, ReleaseTag::parse("myapp-1.4.2").unwrap()),
        SourceObject {
            bucket: "archgate-sources".to_owned(),
            key: "releases/myapp-1.4.2.zip".to_owned(),
            version_id: Some("v1".to_owned()),
            etag: Some("\"etag-v1\"".to_owned()),
            size: Some(4096),
            uploaded_at: None,
            sequencer: None,
        },
        ManifestMode::Native,
        T0,
    )
}

fn build_request() -> BuildRequest {
    BuildRequest {
        project: "archgate-amd64".to_owned(),
        source_location: "archgate-sources/releases/myapp-1.4.2.zip".to_owned(),
        source_version: Some("v1".to_owned()),
        environment: vec![
            ("IMAGE_REPO_NAME".to_owned(), REPOSITORY.to_owned()),
            ("ARCHGATE_RELEASE_TAG".to_owned(), "myapp-1.4.2".to_owned()),
            ("IMAGE_ARCH".to_owned(), "amd64".to_owned()),
        ],
        idempotency_token: "myapp#myapp-1.4.2/v1/amd64".to_owned(),
    }
}

/// A per-arch image manifest, byte for byte as a registry would store it.
const AMD64_MANIFEST: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1469},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":3370706}]}"#;

fn index_manifest() -> RawManifest {
    RawManifest {
        media_type: Some(OCI_INDEX.to_owned()),
        bytes: br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#
            .to_vec(),
    }
}

// ---------------------------------------------------------------------------------------
// CodeBuild: BatchGetBuilds
// ---------------------------------------------------------------------------------------

mod codebuild_details {
    use super::*;
    use aws_sdk_codebuild::operation::batch_get_builds::BatchGetBuildsOutput;
    use aws_sdk_codebuild::types::{
        Build, ComputeType, EnvironmentType, EnvironmentVariable, EnvironmentVariableType,
        ProjectEnvironment, StatusType,
    };
    use aws_sdk_codebuild::Client;

    fn variable(name: &str, value: &str, kind: EnvironmentVariableType) -> EnvironmentVariable {
        EnvironmentVariable::builder()
            .name(name)
            .value(value)
            .r#type(kind)
            .build()
            .unwrap()
    }

    fn failed_build(status: StatusType) -> Build {
        let environment = ProjectEnvironment::builder()
            .r#type(EnvironmentType::LinuxContainer)
            .image("aws/codebuild/amazonlinux-x86_64-standard:5.0")
            .compute_type(ComputeType::BuildGeneral1Small)
            .environment_variables(variable(
                "IMAGE_REPO_NAME",
                REPOSITORY,
                EnvironmentVariableType::Plaintext,
            ))
            .environment_variables(variable(
                "ARCHGATE_RELEASE_TAG",
                "myapp-1.4.2",
                EnvironmentVariableType::Plaintext,
            ))
            .environment_variables(variable(
                "IMAGE_ARCH",
                "amd64",
                EnvironmentVariableType::Plaintext,
            ))
            .environment_variables(variable(
                "REGISTRY_PASSWORD",
                "/archgate/registry-password",
                EnvironmentVariableType::ParameterStore,
            ))
            .build()
            .unwrap();
        Build::builder()
            .id(BUILD_ID)
            .project_name("archgate-amd64")
            .build_status(status)
            .build_complete(true)
            .environment(environment)
            .build()
    }

    #[tokio::test]
    async fn a_failed_build_maps_to_its_status_and_only_its_plaintext_variables() {
        for (status, expected) in [
            (StatusType::Failed, BuildStatus::Failed),
            (StatusType::Fault, BuildStatus::Fault),
            (StatusType::Stopped, BuildStatus::Stopped),
            (StatusType::TimedOut, BuildStatus::TimedOut),
        ] {
            // Given: BatchGetBuilds reports the build finished with `status`, its overrides
            // and a Parameter Store variable.
            let answer = status.clone();
            let rule = mock!(Client::batch_get_builds)
                .match_requests(|req| req.ids() == [BUILD_ID])
                .then_output(move || {
                    BatchGetBuildsOutput::builder()
                        .builds(failed_build(answer.clone()))
                        .build()
                });
            let builds = codebuild(&[&rule]);

            // When
            let details = builds.details(BUILD_ID).await.unwrap();

            // Then: the status CodeBuild reported, and no Parameter Store reference among
            // the variables.
            assert_eq!(
                details,
                Some(BuildDetails {
                    build_id: BUILD_ID.to_owned(),
                    project: "archgate-amd64".to_owned(),
                    status: Some(expected),
                    environment: vec![
                        ("IMAGE_REPO_NAME".to_owned(), REPOSITORY.to_owned()),
                        ("ARCHGATE_RELEASE_TAG".to_owned(), "myapp-1.4.2".to_owned()),
                        ("IMAGE_ARCH".to_owned(), "amd64".to_owned()),
                    ],
                    exported: Vec::new(),
                    image: details.as_ref().and_then(|d| d.image.clone()),
                }),
                "status {status:?}"
            );
            assert_eq!(rule.num_calls(), 1);
        }
    }

    #[tokio::test]
    async fn an_unknown_build_has_no_details() {
        // Given: CodeBuild knows no such build.
        let rule = mock!(Client::batch_get_builds).then_output(|| {
            BatchGetBuildsOutput::builder()
                .builds_not_found(BUILD_ID)
                .build()
        });
        let builds = codebuild(&[&rule]);

        // When
        let details = builds.details(BUILD_ID).await.unwrap();

        // Then
        assert_eq!(details, None);
    }
}

// ---------------------------------------------------------------------------------------
// CodeBuild: StartBuild
// ---------------------------------------------------------------------------------------

mod codebuild_start {
    use super::*;
    use aws_sdk_codebuild::operation::start_build::{StartBuildError, StartBuildOutput};
    use aws_sdk_codebuild::types::error::ResourceNotFoundException;
    use aws_sdk_codebuild::types::{Build, EnvironmentVariableType, SourceType};
    use aws_sdk_codebuild::Client;

    fn started() -> StartBuildOutput {
        StartBuildOutput::builder()
            .build_value(Build::builder().id(BUILD_ID).build())
            .build()
    }

    fn throttled() -> StartBuildError {
        StartBuildError::generic(error_meta("ThrottlingException"))
    }

    fn assert_throttled(error: &AdapterError) {
        assert!(
            matches!(
                error,
                AdapterError::Throttled {
                    service: "CodeBuild",
                    operation: "StartBuild",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.is_retryable());
    }

    #[tokio::test]
    async fn start_sends_the_s3_source_the_plaintext_overrides_and_the_idempotency_token() {
        // Given: CodeBuild accepts exactly the request archgate means to send.
        let rule = mock!(Client::start_build)
            .match_requests(|req| {
                let overrides: Vec<_> = req
                    .environment_variables_override()
                    .iter()
                    .map(|v| (v.name(), v.value(), v.r#type()))
                    .collect();
                let plaintext = Some(&EnvironmentVariableType::Plaintext);
                req.project_name() == Some("archgate-amd64")
                    && req.source_type_override() == Some(&SourceType::S3)
                    && req.source_location_override()
                        == Some("archgate-sources/releases/myapp-1.4.2.zip")
                    && req.source_version() == Some("v1")
                    && overrides
                        == [
                            ("IMAGE_REPO_NAME", REPOSITORY, plaintext),
                            ("ARCHGATE_RELEASE_TAG", "myapp-1.4.2", plaintext),
                            ("IMAGE_ARCH", "amd64", plaintext),
                        ]
                    && req.idempotency_token() == Some("myapp#myapp-1.4.2/v1/amd64")
            })
            .then_output(started);
        let builds = codebuild(&[&rule]);

        // When
        let build_id = builds.start(&build_request()).await.unwrap();

        // Then
        assert_eq!(build_id, BUILD_ID);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn start_without_a_source_version_sends_none() {
        // Given: an unversioned source object.
        let rule = mock!(Client::start_build)
            .match_requests(|req| req.source_version().is_none())
            .then_output(started);
        let builds = codebuild(&[&rule]);
        let request = BuildRequest {
            source_version: None,
            ..build_request()
        };

        // When
        let build_id = builds.start(&request).await.unwrap();

        // Then: CodeBuild builds the object's current version.
        assert_eq!(build_id, BUILD_ID);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn start_answered_without_a_build_is_unexpected() {
        // Given: a StartBuild answer that carries no build.
        let rule = mock!(Client::start_build).then_output(|| StartBuildOutput::builder().build());
        let builds = codebuild(&[&rule]);

        // When
        let error = builds.start(&build_request()).await.unwrap_err();

        // Then
        assert!(
            matches!(
                error,
                AdapterError::Unexpected {
                    service: "CodeBuild",
                    operation: "StartBuild",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn start_throttled_is_throttled_and_retryable() {
        // Given: CodeBuild throttles StartBuild (the SDK's retries are off).
        let rule = mock!(Client::start_build).then_error(throttled);
        let builds = codebuild(&[&rule]);

        // When
        let error = builds.start(&build_request()).await.unwrap_err();

        // Then
        assert_throttled(&error);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn start_throttled_on_the_wire_is_throttled_and_retryable() {
        // Given: the throttling answer as CodeBuild sends it, through the SDK's deserializer.
        let rule = mock!(Client::start_build).then_http_response(|| {
            let mut response = HttpResponse::new(
                StatusCode::try_from(400).unwrap(),
                SdkBody::from(r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
            );
            response
                .headers_mut()
                .insert("content-type", "application/x-amz-json-1.1");
            response
        });
        let builds = codebuild(&[&rule]);

        // When
        let error = builds.start(&build_request()).await.unwrap_err();

        // Then
        assert_throttled(&error);
    }

    #[tokio::test]
    async fn throttling_that_outlasts_the_sdk_retries_is_throttled() {
        // Given: the SDK retries three times in all, and CodeBuild throttles every attempt.
        let rule = mock!(Client::start_build)
            .sequence()
            .error(throttled)
            .times(3)
            .build();
        let retries = RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(Duration::from_millis(1))
            .with_max_backoff(Duration::from_millis(5));
        let builds = codebuild_with_retries(&[&rule], retries);

        // When
        let error = builds.start(&build_request()).await.unwrap_err();

        // Then: the SDK used its attempts, and what is left for the invocation is Throttled.
        assert_eq!(rule.num_calls(), 3);
        assert_throttled(&error);
    }

    #[tokio::test]
    async fn start_of_a_missing_project_is_rejected_and_not_retryable() {
        // Given: the project does not exist.
        let rule = mock!(Client::start_build).then_error(|| {
            StartBuildError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("Project cannot be found: archgate-amd64")
                    .meta(error_meta("ResourceNotFoundException"))
                    .build(),
            )
        });
        let builds = codebuild(&[&rule]);

        // When
        let error = builds.start(&build_request()).await.unwrap_err();

        // Then
        match &error {
            AdapterError::Rejected {
                service: "CodeBuild",
                operation: "StartBuild",
                code,
                ..
            } => assert_eq!(code, "ResourceNotFoundException"),
            other => panic!("expected Rejected, got {other:?}"),
        }
        assert!(!error.is_retryable());
    }
}

// ---------------------------------------------------------------------------------------
// EventBridge: PutEvents
// ---------------------------------------------------------------------------------------

mod eventbridge_publish {
    use super::*;
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use aws_sdk_eventbridge::Client;

    #[tokio::test]
    async fn a_throttled_entry_is_transient_and_retryable() {
        // Given: PutEvents answers 200 but reports the one entry as throttled.
        let event = release_event(&release(), EventKind::Started);
        let event_key = event.detail.event_key.clone();
        let rule = mock!(Client::put_events)
            .match_requests(move |req| {
                let [entry] = req.entries() else {
                    return false;
                };
                let detail: serde_json::Value =
                    serde_json::from_str(entry.detail().unwrap_or_default()).unwrap_or_default();
                entry.source() == Some("archgate")
                    && entry.detail_type() == Some("Release Started")
                    && entry.event_bus_name() == Some(BUS)
                    && detail["event-key"] == event_key.as_str()
                    && detail["repository"] == REPOSITORY
            })
            .then_output(|| {
                PutEventsOutput::builder()
                    .failed_entry_count(1)
                    .entries(
                        PutEventsResultEntry::builder()
                            .error_code("ThrottlingException")
                            .error_message("Rate exceeded")
                            .build(),
                    )
                    .build()
            });
        let publisher = eventbridge(&[&rule]);

        // When
        let error = publisher.publish(&event).await.unwrap_err();

        // Then: the invocation is retried, and the entry's error is kept as the source.
        assert!(
            matches!(
                error,
                AdapterError::Transient {
                    service: "EventBridge",
                    operation: "PutEvents",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.is_retryable());
        let source = std::error::Error::source(&error).map(ToString::to_string);
        assert!(
            source
                .as_deref()
                .is_some_and(|s| s.contains("ThrottlingException")),
            "{source:?}"
        );
        assert_eq!(rule.num_calls(), 1);
    }
}

// ---------------------------------------------------------------------------------------
// ECR: PutImage and BatchGetImage
// ---------------------------------------------------------------------------------------

mod ecr_registry {
    use super::*;
    use aws_sdk_ecr::operation::batch_get_image::BatchGetImageOutput;
    use aws_sdk_ecr::operation::put_image::PutImageError;
    use aws_sdk_ecr::types::error::{ImageAlreadyExistsException, ImageTagAlreadyExistsException};
    use aws_sdk_ecr::types::{Image, ImageFailure, ImageFailureCode, ImageIdentifier};
    use aws_sdk_ecr::Client;

    fn image(tag: &str, digest: &str, manifest: &str) -> Image {
        Image::builder()
            .registry_id("123456789012")
            .repository_name(REPOSITORY)
            .image_id(
                ImageIdentifier::builder()
                    .image_tag(tag)
                    .image_digest(digest)
                    .build(),
            )
            .image_manifest(manifest)
            .image_manifest_media_type(OCI_MANIFEST)
            .build()
    }

    fn tags() -> Vec<String> {
        vec![
            "myapp-1.4.2-amd64".to_owned(),
            "myapp-1.4.2-arm64".to_owned(),
        ]
    }

    #[tokio::test]
    async fn putting_an_identical_manifest_again_is_already_exists() {
        // Given: the index is already in the repository under this tag.
        let manifest = index_manifest();
        let digest = Digest::of(&manifest.bytes);
        let expected_digest = digest.to_string();
        let expected_body = String::from_utf8(manifest.bytes.clone()).unwrap();
        let rule = mock!(Client::put_image)
            .match_requests(move |req| {
                req.repository_name() == Some(REPOSITORY)
                    && req.image_tag() == Some("myapp-1.4.2-candidate")
                    && req.image_manifest() == Some(expected_body.as_str())
                    && req.image_manifest_media_type() == Some(OCI_INDEX)
                    && req.image_digest() == Some(expected_digest.as_str())
            })
            .then_error(|| {
                PutImageError::ImageAlreadyExistsException(
                    ImageAlreadyExistsException::builder()
                        .message("Image with digest and tag already exists")
                        .meta(error_meta("ImageAlreadyExistsException"))
                        .build(),
                )
            });
        let registry = ecr(&[&rule]);

        // When
        let outcome = registry
            .put_image(
                REPOSITORY,
                Some("myapp-1.4.2-candidate"),
                &manifest,
                &digest,
            )
            .await;

        // Then: as good as a first write.
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn moving_an_immutable_tag_is_a_taken_tag() {
        // Given: the repository's tags are immutable and the tag already names other content.
        let rule = mock!(Client::put_image).then_error(|| {
            PutImageError::ImageTagAlreadyExistsException(
                ImageTagAlreadyExistsException::builder()
                    .message("The image tag 'myapp-1.4.2' already exists")
                    .meta(error_meta("ImageTagAlreadyExistsException"))
                    .build(),
            )
        });
        let registry = ecr(&[&rule]);
        let manifest = index_manifest();
        let digest = Digest::of(&manifest.bytes);

        // When
        let error = registry
            .put_image(REPOSITORY, Some("myapp-1.4.2"), &manifest, &digest)
            .await
            .unwrap_err();

        // Then
        match &error {
            AdapterError::TagTaken {
                service: "ECR",
                operation: "PutImage",
                tag,
                ..
            } => assert_eq!(tag, "myapp-1.4.2"),
            other => panic!("expected TagTaken, got {other:?}"),
        }
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn manifest_bytes_that_do_not_hash_to_the_reported_digest_are_unexpected() {
        // Given: ECR reports a digest that is not the sha256 of the manifest it returns.
        let wrong = Digest::of(b"some other manifest").to_string();
        let rule = mock!(Client::batch_get_image).then_output(move || {
            BatchGetImageOutput::builder()
                .images(image("myapp-1.4.2-amd64", &wrong, AMD64_MANIFEST))
                .build()
        });
        let registry = ecr(&[&rule]);

        // When
        let error = registry
            .manifests_by_tag(REPOSITORY, &tags()[..1])
            .await
            .unwrap_err();

        // Then
        match &error {
            AdapterError::Unexpected {
                service: "ECR",
                operation: "BatchGetImage",
                reason,
            } => assert!(reason.contains("myapp-1.4.2-amd64"), "{reason}"),
            other => panic!("expected Unexpected, got {other:?}"),
        }
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn a_tag_ecr_does_not_find_is_none_in_its_slot() {
        // Given: the amd64 image exists, the arm64 tag does not.
        let digest = Digest::of(AMD64_MANIFEST.as_bytes()).to_string();
        let rule = mock!(Client::batch_get_image)
            .match_requests(|req| {
                let requested: Vec<_> = req.image_ids().iter().map(|id| id.image_tag()).collect();
                req.repository_name() == Some(REPOSITORY)
                    && requested == [Some("myapp-1.4.2-amd64"), Some("myapp-1.4.2-arm64")]
                    && req.accepted_media_types().contains(&OCI_INDEX.to_owned())
                    && req
                        .accepted_media_types()
                        .contains(&OCI_MANIFEST.to_owned())
            })
            .then_output(move || {
                BatchGetImageOutput::builder()
                    .images(image("myapp-1.4.2-amd64", &digest, AMD64_MANIFEST))
                    .failures(
                        ImageFailure::builder()
                            .image_id(
                                ImageIdentifier::builder()
                                    .image_tag("myapp-1.4.2-arm64")
                                    .build(),
                            )
                            .failure_code(ImageFailureCode::ImageNotFound)
                            .failure_reason("Requested image not found")
                            .build(),
                    )
                    .build()
            });
        let registry = ecr(&[&rule]);

        // When
        let found = registry
            .manifests_by_tag(REPOSITORY, &tags())
            .await
            .unwrap();

        // Then: slots follow the requested tags.
        assert_eq!(
            found,
            vec![
                Some(RawManifest {
                    media_type: Some(OCI_MANIFEST.to_owned()),
                    bytes: AMD64_MANIFEST.as_bytes().to_vec(),
                }),
                None,
            ]
        );
        assert_eq!(rule.num_calls(), 1);
    }
}

mod ecr_repositories {
    //! Repositories on first use. moto cannot emulate IMMUTABLE_WITH_EXCLUSION's filters,
    //! so the request's shape is checked here; creating and finding one is on the emulator
    //! (tests/repositories.rs).
    use super::*;
    use archgate::domain::repository::{
        tag_mutability, Ensured, RepositorySettings, TagMutability,
    };
    use aws_sdk_ecr::operation::create_repository::{
        CreateRepositoryError, CreateRepositoryOutput,
    };
    use aws_sdk_ecr::types::error::RepositoryAlreadyExistsException;
    use aws_sdk_ecr::types::{
        EncryptionType, ImageTagMutability, ImageTagMutabilityExclusionFilterType,
    };
    use aws_sdk_ecr::Client;

    fn moving(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| (*t).to_owned()).collect()
    }

    #[test]
    fn release_tags_are_immutable_when_the_moving_tags_fit_five_filters() {
        // Given one moving tag, when the repository's tag policy is chosen, then every tag is
        // immutable but the internal tags, the cache refs and the moving tag
        assert_eq!(
            tag_mutability(&moving(&["latest"])),
            TagMutability::ImmutableExcept(moving(&[
                "*-amd64",
                "*-arm64",
                "*-candidate",
                "buildcache-*",
                "latest"
            ]))
        );
        // And with none, four filters do
        assert!(matches!(tag_mutability(&[]), TagMutability::ImmutableExcept(f) if f.len() == 4));
        // And with two moving tags six filters would be needed: ECR takes five, so mutable
        assert_eq!(
            tag_mutability(&moving(&["latest", "stable"])),
            TagMutability::Mutable
        );
    }

    #[tokio::test]
    async fn a_new_repository_is_scanned_on_push_encrypted_and_pins_release_tags() {
        // Given ECR creates what it is asked for
        let rule = mock!(Client::create_repository)
            .match_requests(|req| {
                let filters: Vec<(Option<&ImageTagMutabilityExclusionFilterType>, &str)> = req
                    .image_tag_mutability_exclusion_filters()
                    .iter()
                    .map(|f| (Some(f.filter_type()), f.filter()))
                    .collect();
                req.repository_name() == Some("apps/web")
                    && req
                        .image_scanning_configuration()
                        .is_some_and(|c| c.scan_on_push())
                    && req.encryption_configuration().is_some_and(|e| {
                        e.encryption_type() == &EncryptionType::Kms
                            && e.kms_key() == Some("alias/archgate-images")
                    })
                    && req.image_tag_mutability()
                        == Some(&ImageTagMutability::ImmutableWithExclusion)
                    && filters.len() == 5
                    && filters
                        .iter()
                        .all(|(t, _)| *t == Some(&ImageTagMutabilityExclusionFilterType::Wildcard))
                    && filters.iter().any(|(_, f)| *f == "latest")
            })
            .then_output(|| CreateRepositoryOutput::builder().build());
        let registry = ecr(&[&rule]);
        let settings = RepositorySettings::new(
            Some("alias/archgate-images".to_owned()),
            &moving(&["latest"]),
        );

        // When archgate makes sure the repository exists
        let ensured = registry.ensure_repository("apps/web", &settings).await;

        // Then it asked for the settings, once, and created it
        assert_eq!(ensured.unwrap(), Ensured::Created);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn the_in_memory_registry_pins_release_tags_and_moves_the_excluded_ones() {
        // Given a repository created with release tags immutable and `latest` moving
        use archgate_testkit::memory::{Chaos, ManualClock, MemoryRegistry};
        let registry = MemoryRegistry::new(Chaos::default(), ManualClock::at(T0));
        let settings = RepositorySettings::new(None, &moving(&["latest"]));
        let created = registry.ensure_repository("apps/web", &settings).await;
        assert_eq!(created.unwrap(), Ensured::Created);
        let one = RawManifest {
            media_type: Some(OCI_MANIFEST.to_owned()),
            bytes: br#"{"schemaVersion":2,"layers":[1]}"#.to_vec(),
        };
        let two = RawManifest {
            media_type: Some(OCI_MANIFEST.to_owned()),
            bytes: br#"{"schemaVersion":2,"layers":[2]}"#.to_vec(),
        };
        let put = |tag: &'static str, manifest: &RawManifest| {
            let (registry, manifest) = (registry.clone(), manifest.clone());
            async move {
                let digest = Digest::of(&manifest.bytes);
                registry
                    .put_image("apps/web", Some(tag), &manifest, &digest)
                    .await
            }
        };
        for tag in ["web-1.0", "web-1.0-amd64", "latest", "buildcache-amd64"] {
            put(tag, &one).await.unwrap();
        }

        // When other content is pushed under each tag
        // Then the release tag stays where it is, and the excluded tags move
        assert!(matches!(
            put("web-1.0", &two).await,
            Err(AdapterError::TagTaken { .. })
        ));
        for tag in ["web-1.0-amd64", "latest", "buildcache-amd64"] {
            assert!(put(tag, &two).await.is_ok(), "{tag} moves");
        }
        // And a second first release finds the repository
        let again = registry.ensure_repository("apps/web", &settings).await;
        assert_eq!(again.unwrap(), Ensured::Existed);
    }

    #[tokio::test]
    async fn changed_moving_tags_change_the_exclusion_filters_of_the_repository() {
        // Given ECR takes a repository's tag mutability
        use aws_sdk_ecr::operation::put_image_tag_mutability::PutImageTagMutabilityOutput;
        let rule = mock!(Client::put_image_tag_mutability)
            .match_requests(|req| {
                let filters: Vec<&str> = req
                    .image_tag_mutability_exclusion_filters()
                    .iter()
                    .map(|f| f.filter())
                    .collect();
                req.repository_name() == Some("apps/web")
                    && req.image_tag_mutability()
                        == Some(&ImageTagMutability::ImmutableWithExclusion)
                    && filters
                        == [
                            "*-amd64",
                            "*-arm64",
                            "*-candidate",
                            "buildcache-*",
                            "stable",
                        ]
            })
            .then_output(|| PutImageTagMutabilityOutput::builder().build());
        let registry = ecr(&[&rule]);

        // When the repository's moving tag becomes `stable` (`repo set … MOVING_TAGS=stable`)
        let set = registry
            .set_tag_mutability("apps/web", &tag_mutability(&moving(&["stable"])))
            .await;

        // Then ECR is asked to exclude it, with the internal tags and the cache refs
        assert!(set.is_ok(), "{set:?}");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_repository_that_exists_is_found_not_failed() {
        // Given the repository exists (another first release created it a moment ago)
        let rule = mock!(Client::create_repository).then_error(|| {
            CreateRepositoryError::RepositoryAlreadyExistsException(
                RepositoryAlreadyExistsException::builder()
                    .message("The repository with name 'apps/web' already exists")
                    .meta(error_meta("RepositoryAlreadyExistsException"))
                    .build(),
            )
        });
        let registry = ecr(&[&rule]);

        // When archgate makes sure it exists, then it is there, and nothing failed
        let ensured = registry
            .ensure_repository("apps/web", &RepositorySettings::new(None, &[]))
            .await;
        assert_eq!(ensured.unwrap(), Ensured::Existed);
    }
}

// ---------------------------------------------------------------------------------------
// DynamoDB: the ledger's conditional PutItem
// ---------------------------------------------------------------------------------------

mod dynamodb_save {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::error::{
        ConditionalCheckFailedException, ProvisionedThroughputExceededException,
    };
    use aws_sdk_dynamodb::types::AttributeValue;
    use aws_sdk_dynamodb::Client;

    fn condition_failed() -> PutItemError {
        PutItemError::ConditionalCheckFailedException(
            ConditionalCheckFailedException::builder()
                .message("The conditional request failed")
                .meta(error_meta("ConditionalCheckFailedException"))
                .build(),
        )
    }

    #[tokio::test]
    async fn creating_a_release_someone_else_created_is_a_conflict() {
        // Given: the item already exists, so the must-not-exist condition fails.
        let rule = mock!(Client::put_item)
            .match_requests(|req| {
                let names = req.expression_attribute_names();
                req.table_name() == Some(TABLE)
                    && req.condition_expression() == Some("attribute_not_exists(#pk)")
                    && names.and_then(|n| n.get("#pk")).map(String::as_str) == Some("pk")
                    && req.item().and_then(|i| i.get("version"))
                        == Some(&AttributeValue::N("1".to_owned()))
            })
            .then_error(condition_failed);
        let ledger = dynamodb(&[&rule]);

        // When
        let error = ledger.save(&release(), None).await.unwrap_err();

        // Then
        assert!(
            matches!(error, SaveError::Conflict { expected: None }),
            "{error:?}"
        );
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn updating_a_release_someone_else_updated_is_a_conflict() {
        // Given: the stored version moved on from 3.
        let rule = mock!(Client::put_item)
            .match_requests(|req| {
                let values = req.expression_attribute_values();
                req.condition_expression() == Some("#v = :expected")
                    && values.and_then(|v| v.get(":expected"))
                        == Some(&AttributeValue::N("3".to_owned()))
                    && req.item().and_then(|i| i.get("version"))
                        == Some(&AttributeValue::N("4".to_owned()))
            })
            .then_error(condition_failed);
        let ledger = dynamodb(&[&rule]);

        // When
        let error = ledger.save(&release(), Some(3)).await.unwrap_err();

        // Then
        assert!(
            matches!(error, SaveError::Conflict { expected: Some(3) }),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn exceeding_provisioned_throughput_is_throttled() {
        // Given: the table is out of write capacity (the SDK's retries are off).
        let rule = mock!(Client::put_item).then_error(|| {
            PutItemError::ProvisionedThroughputExceededException(
                ProvisionedThroughputExceededException::builder()
                    .message("The level of configured provisioned throughput was exceeded")
                    .meta(error_meta("ProvisionedThroughputExceededException"))
                    .build(),
            )
        });
        let ledger = dynamodb(&[&rule]);

        // When
        let error = ledger.save(&release(), Some(3)).await.unwrap_err();

        // Then
        match &error {
            SaveError::Adapter(
                adapter @ AdapterError::Throttled {
                    service: "DynamoDB",
                    operation: "PutItem",
                    ..
                },
            ) => assert!(adapter.is_retryable()),
            other => panic!("expected a throttled adapter error, got {other:?}"),
        }
    }
}
