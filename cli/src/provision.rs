//! `archgate local provision`: every resource the configuration names, created idempotently
//! on the configured endpoint (the emulator, or a sandbox account).

use archgate::aws::LEDGER_KEY;
use archgate::Config;
use aws_config::SdkConfig;
use aws_sdk_codebuild::types::{
    ArtifactsType, ComputeType, EnvironmentType, ProjectArtifacts, ProjectEnvironment,
    ProjectSource, SourceType,
};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};
use aws_sdk_ecr::types::ImageScanningConfiguration;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration,
    VersioningConfiguration,
};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioned {
    Created,
    Existed,
}

#[derive(Debug, Clone)]
pub struct ProvisionedResource {
    pub kind: &'static str,
    pub name: String,
    pub state: Provisioned,
}

impl fmt::Display for ProvisionedResource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            Provisioned::Created => "created",
            Provisioned::Existed => "already there",
        };
        write!(f, "{:<16} {:<40} {state}", self.kind, self.name)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("could not provision {kind} {name}")]
pub struct ProvisionError {
    pub kind: &'static str,
    pub name: String,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
    /// The resource exists but does not fit archgate (the configuration names the wrong
    /// thing), as opposed to AWS failing.
    pub unfit: bool,
}

/// The service role local projects name; CodeBuild requires one.
const LOCAL_SERVICE_ROLE: &str = "arn:aws:iam::123456789012:role/archgate-codebuild";

fn outcome<T, E>(
    kind: &'static str,
    name: &str,
    result: Result<T, E>,
    already: &[&str],
) -> Result<ProvisionedResource, ProvisionError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let state = match result {
        Ok(_) => Provisioned::Created,
        Err(e) if e.code().is_some_and(|c| already.contains(&c)) => Provisioned::Existed,
        Err(e) => {
            return Err(ProvisionError {
                kind,
                name: name.to_owned(),
                source: Box::new(e),
                unfit: false,
            })
        }
    };
    Ok(ProvisionedResource {
        kind,
        name: name.to_owned(),
        state,
    })
}

/// The attestations' signing key: an alias is created with a new ECDSA P-256 key behind it
/// unless it exists; a key id or ARN must exist. An existing key must be one the functions
/// sign with (an enabled ECC_NIST_P256 SIGN_VERIFY key): any other is refused, with why.
async fn signing_key(sdk: &SdkConfig, key: &str) -> Result<ProvisionedResource, ProvisionError> {
    let kms = aws_sdk_kms::Client::new(sdk);
    let kind = "kms signing key";
    let existing = kms.describe_key().key_id(key).send().await;
    match existing {
        Ok(found) => {
            let problem = match found.key_metadata() {
                Some(metadata) => archgate::aws::key_problem(metadata),
                None => Some("KMS describes no key metadata".to_owned()),
            };
            if let Some(problem) = problem {
                return Err(ProvisionError {
                    kind,
                    name: key.to_owned(),
                    source: format!("it cannot sign releases: {problem}").into(),
                    unfit: true,
                });
            }
            Ok(ProvisionedResource {
                kind,
                name: key.to_owned(),
                state: Provisioned::Existed,
            })
        }
        Err(_) if key.starts_with("alias/") => {
            let created = kms
                .create_key()
                .key_spec(aws_sdk_kms::types::KeySpec::EccNistP256)
                .key_usage(aws_sdk_kms::types::KeyUsageType::SignVerify)
                .description("archgate release attestations")
                .send()
                .await
                .map_err(failed(kind, key))?;
            let id = created
                .key_metadata()
                .map(|m| m.key_id().to_owned())
                .unwrap_or_default();
            let aliased = kms
                .create_alias()
                .alias_name(key)
                .target_key_id(id)
                .send()
                .await;
            outcome(kind, key, aliased, &["AlreadyExistsException"])
        }
        Err(e) => Err(failed(kind, key)(e)),
    }
}

fn failed<E: std::error::Error + Send + Sync + 'static>(
    kind: &'static str,
    name: &str,
) -> impl FnOnce(E) -> ProvisionError {
    let name = name.to_owned();
    move |e| ProvisionError {
        kind,
        name,
        source: Box::new(e),
        unfit: false,
    }
}

pub async fn provision(
    sdk: &SdkConfig,
    config: &Config,
) -> Result<Vec<ProvisionedResource>, ProvisionError> {
    let mut done = Vec::new();

    let s3 = archgate_testkit::emulator::s3_client(sdk);
    let bucket = &config.source_bucket;
    // Outside us-east-1, S3 wants the bucket's region as its location constraint.
    let region = sdk.region().map(|r| r.as_ref().to_owned());
    let location = region.filter(|r| r != "us-east-1").map(|r| {
        CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(r.as_str()))
            .build()
    });
    // In us-east-1, S3 answers CreateBucket for a bucket its caller owns with success: ask
    // first, so a second run says "already there".
    if s3.head_bucket().bucket(bucket).send().await.is_ok() {
        done.push(ProvisionedResource {
            kind: "s3 bucket",
            name: bucket.clone(),
            state: Provisioned::Existed,
        });
    } else {
        let created = s3
            .create_bucket()
            .bucket(bucket)
            .set_create_bucket_configuration(location)
            .send()
            .await;
        done.push(outcome(
            "s3 bucket",
            bucket,
            created,
            &["BucketAlreadyOwnedByYou", "BucketAlreadyExists"],
        )?);
    }
    s3.put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .map_err(failed("s3 bucket", bucket))?;

    let ecr = aws_sdk_ecr::Client::new(sdk);
    let created = ecr
        .create_repository()
        .repository_name(&config.repository)
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(true)
                .build(),
        )
        .send()
        .await;
    done.push(outcome(
        "ecr repository",
        &config.repository,
        created,
        &["RepositoryAlreadyExistsException"],
    )?);

    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let table = &config.ledger_table;
    let created = dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name(LEDGER_KEY)
                .key_type(KeyType::Hash)
                .build()
                .map_err(failed("ledger table", table))?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(LEDGER_KEY)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(failed("ledger table", table))?,
        )
        .send()
        .await;
    let table_state = outcome("ledger table", table, created, &["ResourceInUseException"])?;
    if table_state.state == Provisioned::Created {
        dynamodb
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .map_err(failed("ledger table", table))?,
            )
            .send()
            .await
            .map_err(failed("ledger table", table))?;
    }
    done.push(table_state);

    let codebuild = aws_sdk_codebuild::Client::new(sdk);
    let mut projects = vec![
        (
            config.amd64_project.clone(),
            EnvironmentType::LinuxContainer,
            "aws/codebuild/amazonlinux2-x86_64-standard:5.0",
        ),
        (
            config.arm64_project.clone(),
            EnvironmentType::ArmContainer,
            "aws/codebuild/amazonlinux2-aarch64-standard:3.0",
        ),
    ];
    if let Some(manifest) = &config.manifest_project {
        projects.push((
            manifest.clone(),
            EnvironmentType::LinuxContainer,
            "aws/codebuild/amazonlinux2-x86_64-standard:5.0",
        ));
    }
    for (name, environment_type, image) in projects {
        let source = ProjectSource::builder()
            .r#type(SourceType::S3)
            .location(format!("{bucket}/{}", config.source_prefix))
            .build()
            .map_err(failed("codebuild project", &name))?;
        let environment = ProjectEnvironment::builder()
            .r#type(environment_type)
            .image(image)
            .compute_type(ComputeType::BuildGeneral1Medium)
            .privileged_mode(true)
            .build()
            .map_err(failed("codebuild project", &name))?;
        let created = codebuild
            .create_project()
            .name(&name)
            .source(source)
            .artifacts(
                ProjectArtifacts::builder()
                    .r#type(ArtifactsType::NoArtifacts)
                    .build()
                    .map_err(failed("codebuild project", &name))?,
            )
            .environment(environment)
            .service_role(LOCAL_SERVICE_ROLE)
            .send()
            .await;
        done.push(outcome(
            "codebuild project",
            &name,
            created,
            &["ResourceAlreadyExistsException"],
        )?);
    }

    let events = aws_sdk_eventbridge::Client::new(sdk);
    if config.event_bus != "default" {
        let created = events
            .create_event_bus()
            .name(&config.event_bus)
            .send()
            .await;
        done.push(outcome(
            "event bus",
            &config.event_bus,
            created,
            &["ResourceAlreadyExistsException"],
        )?);
    }
    if let Some(key) = &config.signing_key {
        done.push(signing_key(sdk, key).await?);
    }
    Ok(done)
}
