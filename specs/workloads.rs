//! The workloads adapter (ECS and Lambda, read only) against moto's server, and against
//! canned answers for what moto never says.
//!
//! Where moto falls short of the real services:
//! - moto's RunTask starts a task with only the first container of its task definition and
//!   never reports a container's `imageDigest`, so a running task's resolved digest is checked
//!   with canned answers.
//! - moto's Lambda reports as `ResolvedImageUri` the sha256 of the `ImageUri` string unless
//!   its server runs with `MOTO_LAMBDA_STUB_ECR=false`, which this test sets so the digest is
//!   the one moto's ECR stored for the tag.
//! - moto's Lambda refuses an execution role its IAM does not hold, so the test creates one
//!   with a raw IAM Query API call (archgate has no IAM client).
//! - moto's published Lambda versions share the code of `$LATEST`, so a version left on an
//!   older image by UpdateFunctionCode cannot be shown; the test publishes once and leaves
//!   the code alone.
//! - moto answers every listing (ListTaskDefinitions, ListClusters, ListServices, ListTasks,
//!   ListFunctions) in one page and DescribeServices and DescribeTasks with no failures for
//!   items that exist, so paging and per-item failures are checked with canned answers.

use archgate::aws::{AwsWorkloads, CallLog, Clients};
use archgate::domain::Digest;
use archgate::error::AdapterError;
use archgate::ports::{ImageUse, Workloads};
use archgate_testkit::emulator::{self, Emulator, ACCOUNT};

const REGION: &str = "eu-west-1";
const REGISTRY: &str = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";

/// A digest an image reference pins.
const PINNED: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// An emulator whose Lambda resolves an image's tag in its own ECR instead of inventing a
/// digest. Fails the test, with the reason, when the emulator cannot start.
fn emulator() -> Emulator {
    Emulator::start_with(&[("MOTO_LAMBDA_STUB_ECR", "false")])
        .unwrap_or_else(|e| panic!("the local AWS emulator is required for this test: {e}"))
}

async fn clients(emulator: &Emulator) -> Clients {
    let sdk = emulator::sdk_config_in(emulator.endpoint(), REGION).await;
    Clients::with_call_log(&sdk, CallLog::default())
}

fn used(image: &str, resolved: Option<&Digest>, user: &str) -> ImageUse {
    ImageUse {
        image: image.to_owned(),
        resolved: resolved.cloned(),
        user: user.to_owned(),
    }
}

/// An image manifest as a registry stores it, and its digest.
fn manifest() -> (String, Digest) {
    let body = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1469},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":3370706}]}"#;
    (body.to_owned(), Digest::of(body.as_bytes()))
}

async fn register(clients: &Clients, family: &str, images: &[String]) -> String {
    use aws_sdk_ecs::types::ContainerDefinition;
    let containers = images
        .iter()
        .enumerate()
        .map(|(i, image)| {
            ContainerDefinition::builder()
                .name(format!("c{i}"))
                .image(image)
                .memory(128)
                .build()
        })
        .collect();
    clients
        .ecs()
        .register_task_definition()
        .family(family)
        .set_container_definitions(Some(containers))
        .send()
        .await
        .unwrap()
        .task_definition()
        .and_then(|d| d.task_definition_arn())
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn every_workload_names_its_images_with_its_user() {
    let moto = emulator();
    let clients = clients(&moto).await;
    let myapp = format!("{REGISTRY}/myapp:v1");
    let pinned = format!("{REGISTRY}/myapp@{PINNED}");

    // Given a task definition naming an image by tag (twice: two containers, one entry), one
    // naming an image by digest
    let api = register(&clients, "api", &[myapp.clone(), myapp.clone()]).await;
    let pinned_definition = register(&clients, "pinned", std::slice::from_ref(&pinned)).await;
    // And a service running a revision that was deregistered once a newer one was registered
    let old = format!("{REGISTRY}/web:old");
    let new = format!("{REGISTRY}/web:new");
    let web_1 = register(&clients, "web", std::slice::from_ref(&old)).await;
    clients
        .ecs()
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    let service = clients
        .ecs()
        .create_service()
        .cluster("prod")
        .service_name("web")
        .task_definition(&web_1)
        .desired_count(1)
        .send()
        .await
        .unwrap()
        .service()
        .and_then(|s| s.service_arn())
        .unwrap()
        .to_owned();
    let web_2 = register(&clients, "web", std::slice::from_ref(&new)).await;
    clients
        .ecs()
        .deregister_task_definition()
        .task_definition(&web_1)
        .send()
        .await
        .unwrap();
    // And a running task
    let task = clients
        .ecs()
        .run_task()
        .cluster("prod")
        .task_definition(&api)
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .task_arn()
        .unwrap()
        .to_owned();

    // And a function packaged as an image, with a published version, whose tag the registry
    // resolves; and a function packaged as a zip
    let (body, digest) = manifest();
    clients
        .ecr
        .create_repository()
        .repository_name("fn")
        .send()
        .await
        .unwrap();
    clients
        .ecr
        .put_image()
        .repository_name("fn")
        .image_tag("v1")
        .image_manifest(body)
        .image_digest(digest.as_str())
        .send()
        .await
        .unwrap();
    let role = emulator::create_lambda_role(moto.endpoint(), "archgate-workload")
        .expect("the emulator creates the function's role");
    let function = format!("{REGISTRY}/fn:v1");
    clients
        .lambda()
        .create_function()
        .function_name("api-handler")
        .role(&role)
        .package_type(aws_sdk_lambda::types::PackageType::Image)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .image_uri(&function)
                .build(),
        )
        .publish(true)
        .send()
        .await
        .unwrap();
    clients
        .lambda()
        .create_function()
        .function_name("zipped")
        .role(&role)
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                // An empty zip archive: its end-of-central-directory record alone.
                .zip_file(aws_smithy_types::Blob::new(
                    [b"PK\x05\x06".as_slice(), &[0; 18]].concat(),
                ))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let calls = clients.calls.clone().unwrap();
    calls.take();

    // When the workloads are read
    let workloads = AwsWorkloads::new(clients.ecs(), clients.lambda());
    let uses = workloads.images_in_use().await.unwrap();

    // Then each names its images, once, in order; the deregistered revision only through the
    // service; the zip function not at all
    let lambda = format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:api-handler");
    let mut expected = vec![
        used(&myapp, None, &format!("ecs task definition {api}")),
        used(&myapp, None, &format!("ecs task {task}")),
        used(
            &pinned,
            None,
            &format!("ecs task definition {pinned_definition}"),
        ),
        used(&new, None, &format!("ecs task definition {web_2}")),
        used(&old, None, &format!("ecs service {service}")),
        used(
            &function,
            Some(&digest),
            &format!("lambda function {lambda}:$LATEST"),
        ),
        used(
            &function,
            Some(&digest),
            &format!("lambda function {lambda}:1"),
        ),
    ];
    expected.sort_by(|a, b| {
        let key = |u: &ImageUse| {
            (
                u.image.clone(),
                u.resolved.clone().map(|d| d.to_string()),
                u.user.clone(),
            )
        };
        key(a).cmp(&key(b))
    });
    assert_eq!(uses, expected);
    // And every task definition was described once, though the task and the service name
    // theirs again
    let tally = calls.take_tally();
    assert_eq!(
        tally.get("ECS.DescribeTaskDefinition"),
        Some(&4),
        "{tally:?}"
    );
    assert_eq!(tally.get("Lambda.GetFunction"), Some(&2), "{tally:?}");
}

/// Canned answers: what moto never says.
mod canned {
    use super::*;
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput;
    use aws_sdk_ecs::operation::list_clusters::ListClustersOutput;
    use aws_sdk_ecs::operation::list_services::ListServicesOutput;
    use aws_sdk_ecs::operation::list_task_definitions::ListTaskDefinitionsOutput;
    use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
    use aws_sdk_ecs::types::{Container, Failure, Task};
    use aws_sdk_lambda::operation::list_functions::{ListFunctionsError, ListFunctionsOutput};
    use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;
    use aws_smithy_types::retry::RetryConfig;

    const CLUSTER: &str = "arn:aws:ecs:eu-west-1:123456789012:cluster/prod";
    const TASK: &str = "arn:aws:ecs:eu-west-1:123456789012:task/prod/0c3f";

    fn workloads(ecs: &[&Rule], lambda: &[&Rule]) -> AwsWorkloads {
        AwsWorkloads::new(
            mock_client!(aws_sdk_ecs, RuleMode::MatchAny, ecs, |config| config
                .retry_config(RetryConfig::disabled())),
            mock_client!(aws_sdk_lambda, RuleMode::MatchAny, lambda, |config| config
                .retry_config(RetryConfig::disabled())),
        )
    }

    /// An account with no task definitions, and one cluster over two pages of the listing.
    fn one_cluster() -> Vec<Rule> {
        vec![
            mock!(aws_sdk_ecs::Client::list_task_definitions)
                .then_output(|| ListTaskDefinitionsOutput::builder().build()),
            mock!(aws_sdk_ecs::Client::list_clusters)
                .match_requests(|r| r.next_token().is_none())
                .then_output(|| ListClustersOutput::builder().next_token("2").build()),
            mock!(aws_sdk_ecs::Client::list_clusters)
                .match_requests(|r| r.next_token() == Some("2"))
                .then_output(|| ListClustersOutput::builder().cluster_arns(CLUSTER).build()),
        ]
    }

    fn no_services() -> Rule {
        mock!(aws_sdk_ecs::Client::list_services)
            .then_output(|| ListServicesOutput::builder().build())
    }

    fn no_tasks() -> Rule {
        mock!(aws_sdk_ecs::Client::list_tasks).then_output(|| ListTasksOutput::builder().build())
    }

    fn no_functions() -> Rule {
        mock!(aws_sdk_lambda::Client::list_functions)
            .then_output(|| ListFunctionsOutput::builder().build())
    }

    #[tokio::test]
    async fn a_running_task_reports_the_digest_its_image_resolved_to() {
        // Given a running task, listed on a second page, whose container pulled a tag
        let resolved = Digest::of(b"the image the task pulled");
        let digest = resolved.as_str().to_owned();
        let mut ecs = one_cluster();
        ecs.push(no_services());
        ecs.push(
            mock!(aws_sdk_ecs::Client::list_tasks)
                .match_requests(|r| r.next_token().is_none())
                .then_output(|| ListTasksOutput::builder().next_token("2").build()),
        );
        ecs.push(
            mock!(aws_sdk_ecs::Client::list_tasks)
                .match_requests(|r| r.next_token() == Some("2"))
                .then_output(|| ListTasksOutput::builder().task_arns(TASK).build()),
        );
        ecs.push(
            mock!(aws_sdk_ecs::Client::describe_tasks)
                .match_requests(|r| r.cluster() == Some(CLUSTER) && r.tasks() == [TASK])
                .then_output(move || {
                    DescribeTasksOutput::builder()
                        .tasks(
                            Task::builder()
                                .task_arn(TASK)
                                .containers(
                                    Container::builder()
                                        .image("myapp:v1")
                                        .image_digest(&digest)
                                        .build(),
                                )
                                .build(),
                        )
                        .build()
                }),
        );
        let functions = no_functions();
        let rules: Vec<&Rule> = ecs.iter().collect();

        // When the workloads are read
        let uses = workloads(&rules, &[&functions])
            .images_in_use()
            .await
            .unwrap();

        // Then the task's image carries the digest it runs
        assert_eq!(
            uses,
            [used(
                "myapp:v1",
                Some(&resolved),
                &format!("ecs task {TASK}")
            )]
        );
    }

    #[tokio::test]
    async fn a_service_the_describe_could_not_read_fails_the_whole_listing() {
        // Given a service that DescribeServices reports as a failure
        let service = "arn:aws:ecs:eu-west-1:123456789012:service/prod/web";
        let mut ecs = one_cluster();
        ecs.push(
            mock!(aws_sdk_ecs::Client::list_services)
                .then_output(move || ListServicesOutput::builder().service_arns(service).build()),
        );
        ecs.push(no_tasks());
        ecs.push(
            mock!(aws_sdk_ecs::Client::describe_services).then_output(move || {
                DescribeServicesOutput::builder()
                    .failures(Failure::builder().arn(service).reason("MISSING").build())
                    .build()
            }),
        );
        let functions = no_functions();
        let rules: Vec<&Rule> = ecs.iter().collect();

        // When the workloads are read
        let error = workloads(&rules, &[&functions])
            .images_in_use()
            .await
            .unwrap_err();

        // Then nothing is listed: retention must not take the service for idle
        assert!(
            matches!(
                &error,
                AdapterError::Unexpected {
                    service: "ECS",
                    operation: "DescribeServices",
                    reason,
                } if reason.contains("MISSING")
            ),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_throttled_function_listing_is_an_error_not_an_empty_list() {
        // Given ECS answers and Lambda throttles ListFunctions beyond the SDK's retries
        let mut ecs = one_cluster();
        ecs.push(no_services());
        ecs.push(no_tasks());
        let throttled = mock!(aws_sdk_lambda::Client::list_functions).then_error(|| {
            ListFunctionsError::generic(
                ErrorMetadata::builder()
                    .code("TooManyRequestsException")
                    .message("Rate exceeded")
                    .build(),
            )
        });
        let rules: Vec<&Rule> = ecs.iter().collect();

        // When the workloads are read
        let error = workloads(&rules, &[&throttled])
            .images_in_use()
            .await
            .unwrap_err();

        // Then the caller learns it may try again
        assert!(
            matches!(
                error,
                AdapterError::Throttled {
                    service: "Lambda",
                    operation: "ListFunctions",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(error.is_retryable());
    }
}
