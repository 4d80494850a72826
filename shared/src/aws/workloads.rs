//! ECS and Lambda, read only: every image that an active task definition revision, the task
//! definitions of a service's deployments, a running task or a function packaged as an image
//! names. Any failed call, and any answer archgate cannot read, fails the whole listing:
//! retention must not believe an image unused because a read went wrong.

use super::classify;
use crate::domain::Digest;
use crate::error::AdapterError;
use crate::operation::{
    ECS_DESCRIBE_SERVICES, ECS_DESCRIBE_TASKS, ECS_DESCRIBE_TASK_DEFINITION, ECS_LIST_CLUSTERS,
    ECS_LIST_SERVICES, ECS_LIST_TASKS, ECS_LIST_TASK_DEFINITIONS, LAMBDA_GET_FUNCTION,
    LAMBDA_LIST_FUNCTIONS,
};
use crate::ports::{ImageUse, Workloads};
use aws_sdk_ecs::types::{DesiredStatus, Failure, TaskDefinitionStatus};
use aws_sdk_lambda::types::{FunctionVersion, PackageType};
use futures_util::future::try_join;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// Describe calls in flight at once: fast on an account with many clusters and functions,
/// far below the services' request rates.
const CONCURRENCY: usize = 8;
/// DescribeServices' limit per call.
const SERVICES_PER_CALL: usize = 10;
/// DescribeTasks' limit per call.
const TASKS_PER_CALL: usize = 100;
/// The largest page each ECS listing allows.
const ECS_PAGE: i32 = 100;
/// The largest page ListFunctions allows.
const LAMBDA_PAGE: i32 = 50;

#[derive(Clone, Debug)]
pub struct AwsWorkloads {
    ecs: aws_sdk_ecs::Client,
    lambda: aws_sdk_lambda::Client,
}

/// One describe call's worth of a cluster's services or running tasks.
enum Batch {
    Services(String, Vec<String>),
    Tasks(String, Vec<String>),
}

/// What a batch described: each service with the task definitions it runs, or the images of
/// running tasks.
enum Described {
    Services(Vec<(String, BTreeSet<String>)>),
    Tasks(Vec<ImageUse>),
}

/// A Lambda function version packaged as an image.
struct ImageFunction {
    name: String,
    version: String,
    arn: String,
}

impl AwsWorkloads {
    pub fn new(ecs: aws_sdk_ecs::Client, lambda: aws_sdk_lambda::Client) -> Self {
        AwsWorkloads { ecs, lambda }
    }

    async fn ecs_uses(&self) -> Result<Vec<ImageUse>, AdapterError> {
        let (active, clusters) = try_join(self.active_task_definitions(), self.clusters()).await?;
        let listings: Vec<_> = clusters
            .into_iter()
            .map(|cluster| self.cluster_contents(cluster))
            .collect();
        let listed = bounded(listings).await?;
        let mut batches = Vec::new();
        for (cluster, services, tasks) in listed {
            for batch in services.chunks(SERVICES_PER_CALL) {
                batches.push(Batch::Services(cluster.clone(), batch.to_vec()));
            }
            for batch in tasks.chunks(TASKS_PER_CALL) {
                batches.push(Batch::Tasks(cluster.clone(), batch.to_vec()));
            }
        }
        let describes: Vec<_> = batches
            .into_iter()
            .map(|batch| self.describe(batch))
            .collect();
        let described = bounded(describes).await?;

        let mut uses = Vec::new();
        let mut services = Vec::new();
        for batch in described {
            match batch {
                Described::Services(found) => services.extend(found),
                Described::Tasks(found) => uses.extend(found),
            }
        }
        // A service may run a revision that was deregistered since: describe it too.
        let definitions: BTreeSet<&String> = active
            .iter()
            .chain(services.iter().flat_map(|(_, d)| d))
            .collect();
        let reads: Vec<_> = definitions
            .into_iter()
            .map(|arn| self.task_definition_images(arn.clone()))
            .collect();
        let images: BTreeMap<String, Vec<String>> = bounded(reads).await?.into_iter().collect();
        let named = |definition: &str, user: String| {
            images[definition].iter().map(move |image| ImageUse {
                image: image.clone(),
                resolved: None,
                user: user.clone(),
            })
        };
        for arn in &active {
            uses.extend(named(arn, format!("ecs task definition {arn}")));
        }
        for (service, definitions) in &services {
            for definition in definitions {
                uses.extend(named(definition, format!("ecs service {service}")));
            }
        }
        Ok(uses)
    }

    async fn active_task_definitions(&self) -> Result<Vec<String>, AdapterError> {
        let mut arns = Vec::new();
        let mut pages = self
            .ecs
            .list_task_definitions()
            .status(TaskDefinitionStatus::Active)
            .max_results(ECS_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(ECS_LIST_TASK_DEFINITIONS, e))?;
            arns.extend(page.task_definition_arns().iter().cloned());
        }
        Ok(arns)
    }

    async fn clusters(&self) -> Result<Vec<String>, AdapterError> {
        let mut arns = Vec::new();
        let mut pages = self
            .ecs
            .list_clusters()
            .max_results(ECS_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(ECS_LIST_CLUSTERS, e))?;
            arns.extend(page.cluster_arns().iter().cloned());
        }
        Ok(arns)
    }

    async fn services(&self, cluster: &str) -> Result<Vec<String>, AdapterError> {
        let mut arns = Vec::new();
        let mut pages = self
            .ecs
            .list_services()
            .cluster(cluster)
            .max_results(ECS_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(ECS_LIST_SERVICES, e))?;
            arns.extend(page.service_arns().iter().cloned());
        }
        Ok(arns)
    }

    async fn running_tasks(&self, cluster: &str) -> Result<Vec<String>, AdapterError> {
        let mut arns = Vec::new();
        let mut pages = self
            .ecs
            .list_tasks()
            .cluster(cluster)
            .desired_status(DesiredStatus::Running)
            .max_results(ECS_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(ECS_LIST_TASKS, e))?;
            arns.extend(page.task_arns().iter().cloned());
        }
        Ok(arns)
    }

    /// A cluster's services and running tasks.
    async fn cluster_contents(
        &self,
        cluster: String,
    ) -> Result<(String, Vec<String>, Vec<String>), AdapterError> {
        let services = self.services(&cluster).await?;
        let tasks = self.running_tasks(&cluster).await?;
        Ok((cluster, services, tasks))
    }

    async fn describe(&self, batch: Batch) -> Result<Described, AdapterError> {
        match batch {
            Batch::Services(cluster, arns) => {
                let output = self
                    .ecs
                    .describe_services()
                    .cluster(cluster)
                    .set_services(Some(arns))
                    .send()
                    .await
                    .map_err(|e| classify(ECS_DESCRIBE_SERVICES, e))?;
                refuse_failures("DescribeServices", output.failures())?;
                let mut found = Vec::new();
                for service in output.services() {
                    let arn = service.service_arn().ok_or_else(|| {
                        unexpected(
                            "ECS",
                            "DescribeServices",
                            "a service without an ARN".to_owned(),
                        )
                    })?;
                    // The service's own task definition, every deployment's (an old one still
                    // runs until the new one is done) and, under an external or CodeDeploy
                    // controller, every task set's.
                    let definitions = service
                        .task_definition()
                        .into_iter()
                        .chain(
                            service
                                .deployments()
                                .iter()
                                .filter_map(|d| d.task_definition()),
                        )
                        .chain(
                            service
                                .task_sets()
                                .iter()
                                .filter_map(|s| s.task_definition()),
                        )
                        .map(str::to_owned)
                        .collect();
                    found.push((arn.to_owned(), definitions));
                }
                Ok(Described::Services(found))
            }
            Batch::Tasks(cluster, arns) => {
                let output = self
                    .ecs
                    .describe_tasks()
                    .cluster(cluster)
                    .set_tasks(Some(arns))
                    .send()
                    .await
                    .map_err(|e| classify(ECS_DESCRIBE_TASKS, e))?;
                refuse_failures("DescribeTasks", output.failures())?;
                let mut uses = Vec::new();
                for task in output.tasks() {
                    let arn = task.task_arn().ok_or_else(|| {
                        unexpected("ECS", "DescribeTasks", "a task without an ARN".to_owned())
                    })?;
                    for container in task.containers() {
                        let image = container.image().ok_or_else(|| {
                            unexpected(
                                "ECS",
                                "DescribeTasks",
                                format!("a container of task {arn} names no image"),
                            )
                        })?;
                        let resolved = container
                            .image_digest()
                            .map(|d| digest("ECS", "DescribeTasks", d))
                            .transpose()?;
                        uses.push(ImageUse {
                            image: image.to_owned(),
                            resolved,
                            user: format!("ecs task {arn}"),
                        });
                    }
                }
                Ok(Described::Tasks(uses))
            }
        }
    }

    /// A task definition revision and the images its containers name.
    async fn task_definition_images(
        &self,
        arn: String,
    ) -> Result<(String, Vec<String>), AdapterError> {
        let output = self
            .ecs
            .describe_task_definition()
            .task_definition(&arn)
            .send()
            .await
            .map_err(|e| classify(ECS_DESCRIBE_TASK_DEFINITION, e))?;
        let definition = output.task_definition().ok_or_else(|| {
            unexpected(
                "ECS",
                "DescribeTaskDefinition",
                format!("no task definition for {arn}"),
            )
        })?;
        let images = definition
            .container_definitions()
            .iter()
            .map(|container| {
                container.image().map(str::to_owned).ok_or_else(|| {
                    unexpected(
                        "ECS",
                        "DescribeTaskDefinition",
                        format!("a container of {arn} names no image"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok((arn, images))
    }

    async fn lambda_uses(&self) -> Result<Vec<ImageUse>, AdapterError> {
        // Every version, not only $LATEST: an alias or a caller may invoke a published version,
        // and Lambda needs its image to (re)deploy it.
        let mut functions = Vec::new();
        let mut pages = self
            .lambda
            .list_functions()
            .function_version(FunctionVersion::All)
            .max_items(LAMBDA_PAGE)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify(LAMBDA_LIST_FUNCTIONS, e))?;
            for function in page.functions() {
                if function.package_type() != Some(&PackageType::Image) {
                    continue;
                }
                let (Some(name), Some(version), Some(arn)) = (
                    function.function_name(),
                    function.version(),
                    function.function_arn(),
                ) else {
                    return Err(unexpected(
                        "Lambda",
                        "ListFunctions",
                        format!(
                            "a function without a name, version or ARN: {:?}",
                            function.function_arn()
                        ),
                    ));
                };
                functions.push(ImageFunction {
                    name: name.to_owned(),
                    version: version.to_owned(),
                    arn: arn.to_owned(),
                });
            }
        }
        let reads: Vec<_> = functions
            .into_iter()
            .map(|function| self.function_image(function))
            .collect();
        bounded(reads).await
    }

    async fn function_image(&self, function: ImageFunction) -> Result<ImageUse, AdapterError> {
        let output = self
            .lambda
            .get_function()
            .function_name(&function.name)
            .qualifier(&function.version)
            .send()
            .await
            .map_err(|e| classify(LAMBDA_GET_FUNCTION, e))?;
        let code = output.code();
        let image = code.and_then(|c| c.image_uri()).ok_or_else(|| {
            unexpected(
                "Lambda",
                "GetFunction",
                format!("function {} names no image", function.arn),
            )
        })?;
        // `<repository>@sha256:…`: the digest the function runs, whatever tag it was given.
        let resolved = code
            .and_then(|c| c.resolved_image_uri())
            .map(|uri| {
                let (_, at) = uri.rsplit_once('@').ok_or_else(|| {
                    unexpected(
                        "Lambda",
                        "GetFunction",
                        format!("resolved image {uri} has no digest"),
                    )
                })?;
                digest("Lambda", "GetFunction", at)
            })
            .transpose()?;
        Ok(ImageUse {
            image: image.to_owned(),
            resolved,
            user: format!("lambda function {}", function.arn),
        })
    }
}

impl Workloads for AwsWorkloads {
    async fn images_in_use(&self) -> Result<Vec<ImageUse>, AdapterError> {
        let (mut uses, functions) = try_join(self.ecs_uses(), self.lambda_uses()).await?;
        uses.extend(functions);
        uses.sort_by(|a, b| order(a).cmp(&order(b)));
        uses.dedup();
        Ok(uses)
    }
}

/// Runs `calls` at most [`CONCURRENCY`] at a time; the first error ends them all. The futures
/// are built before they are polled: a stream that built them in a closure would hold a
/// borrowing closure across awaits, which the `Send` bound of the port cannot see through.
async fn bounded<T, F>(calls: Vec<F>) -> Result<Vec<T>, AdapterError>
where
    F: Future<Output = Result<T, AdapterError>>,
{
    stream::iter(calls)
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await
}

fn order(use_: &ImageUse) -> (&str, Option<&str>, &str) {
    (
        &use_.image,
        use_.resolved.as_ref().map(Digest::as_str),
        &use_.user,
    )
}

/// A per-item failure in a describe answer: the item may name an image, so the listing is
/// not complete.
fn refuse_failures(operation: &'static str, failures: &[Failure]) -> Result<(), AdapterError> {
    match failures.first() {
        None => Ok(()),
        Some(failure) => Err(unexpected(
            "ECS",
            operation,
            format!(
                "{} of the items failed, first {}: {} {}",
                failures.len(),
                failure.arn().unwrap_or("?"),
                failure.reason().unwrap_or("no reason"),
                failure.detail().unwrap_or_default()
            ),
        )),
    }
}

fn digest(
    service: &'static str,
    operation: &'static str,
    value: &str,
) -> Result<Digest, AdapterError> {
    Digest::parse(value).map_err(|e| unexpected(service, operation, e.to_string()))
}

fn unexpected(service: &'static str, operation: &'static str, reason: String) -> AdapterError {
    AdapterError::Unexpected {
        service,
        operation,
        reason,
    }
}
