//! AWS adapters: the ports implemented with the AWS SDK. SDK types stop here; what leaves
//! this module is the library's own types and [`AdapterError`].

mod calls;
mod codebuild;
mod dynamodb;
mod ecr;
mod eventbridge;
mod http;
mod kms;
mod workloads;

pub use calls::{tally, CallLog, CallTally};
pub use codebuild::CodeBuildBuilds;
pub use dynamodb::{DynamoLedger, LEDGER_KEY, MAX_POINTER_RELEASES};
pub use ecr::EcrRegistry;
pub use eventbridge::EventBridgePublisher;
pub use http::{
    check_bundle, http_client, http_client_trusting, read_bundle, AMAZON_TRUST_SERVICES,
};
pub use kms::{key_problem, public_key, KmsSigner};
pub use workloads::AwsWorkloads;

use crate::error::AdapterError;
use crate::operation::Operation;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// Loads the SDK configuration the standard way (the operator's commands): region,
/// credentials and `AWS_ENDPOINT_URL` from the environment, profiles, SSO or a role.
pub async fn sdk_config() -> Result<aws_config::SdkConfig, crate::config::ConfigError> {
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client()?)
        .load()
        .await)
}

/// The SDK configuration of a function on Lambda: the region and the execution role's
/// credentials, which Lambda puts in the environment (`AWS_REGION`, `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), and `AWS_ENDPOINT_URL` when it is set.
///
/// Why not [`sdk_config`]: the default chain also reads profile files and asks web identity
/// (an STS client), IMDS and the container endpoint, none of which a function ever uses; the
/// code reachable from it is a large part of each package. Retries, timeouts and the
/// identity cache are the clients' own defaults, as with the default chain.
pub fn lambda_sdk_config() -> Result<aws_config::SdkConfig, crate::config::ConfigError> {
    let variable = |name: &'static str| {
        std::env::var(name)
            .ok()
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    };
    let region = variable("AWS_REGION")
        .or_else(|| variable("AWS_DEFAULT_REGION"))
        .ok_or(crate::config::ConfigError::Missing {
            variable: "AWS_REGION",
        })?;
    let credentials = aws_config::environment::EnvironmentVariableCredentialsProvider::new();
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region))
        .credentials_provider(aws_sdk_dynamodb::config::SharedCredentialsProvider::new(
            credentials,
        ))
        .http_client(http_client()?);
    if let Some(endpoint) = variable("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(endpoint);
    }
    Ok(builder.build())
}

/// SDK clients for every service archgate's functions use, sharing one SDK configuration.
/// Production clients count nothing; tests and benchmarks ask for a call log, which grows
/// with every call until it is taken.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub codebuild: aws_sdk_codebuild::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub kms: aws_sdk_kms::Client,
    pub calls: Option<CallLog>,
    /// For the clients only retention needs (ECS, Lambda), built when it asks: the other
    /// functions neither build nor link them.
    sdk: aws_config::SdkConfig,
}

/// Builds a client from the shared configuration, with the call log when there is one.
macro_rules! client {
    ($sdk:ident, $calls:expr, $sdk_config:expr) => {{
        let mut builder = $sdk::config::Builder::from($sdk_config);
        if let Some(calls) = $calls {
            builder = builder.interceptor(calls.clone());
        }
        $sdk::Client::from_conf(builder.build())
    }};
}

impl Clients {
    /// The clients a function runs with: no call log.
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self::build(sdk, None)
    }

    /// Clients whose calls are all counted in `calls` (tests, benchmarks, the demo).
    pub fn with_call_log(sdk: &aws_config::SdkConfig, calls: CallLog) -> Self {
        Self::build(sdk, Some(calls))
    }

    /// ECS, read only (the images workloads use).
    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        client!(aws_sdk_ecs, &self.calls, &self.sdk)
    }

    /// Lambda, read only (the images functions use).
    pub fn lambda(&self) -> aws_sdk_lambda::Client {
        client!(aws_sdk_lambda, &self.calls, &self.sdk)
    }

    fn build(sdk: &aws_config::SdkConfig, calls: Option<CallLog>) -> Self {
        Clients {
            dynamodb: client!(aws_sdk_dynamodb, &calls, sdk),
            codebuild: client!(aws_sdk_codebuild, &calls, sdk),
            ecr: client!(aws_sdk_ecr, &calls, sdk),
            eventbridge: client!(aws_sdk_eventbridge, &calls, sdk),
            kms: client!(aws_sdk_kms, &calls, sdk),
            calls,
            sdk: sdk.clone(),
        }
    }
}

/// The clients the retention function calls, and only those: it never calls CodeBuild or KMS,
/// so it does not build their clients at every cold start.
pub struct RetentionClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub ecs: aws_sdk_ecs::Client,
    pub lambda: aws_sdk_lambda::Client,
}

impl RetentionClients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        let calls: Option<CallLog> = None;
        RetentionClients {
            dynamodb: client!(aws_sdk_dynamodb, &calls, sdk),
            ecr: client!(aws_sdk_ecr, &calls, sdk),
            eventbridge: client!(aws_sdk_eventbridge, &calls, sdk),
            ecs: client!(aws_sdk_ecs, &calls, sdk),
            lambda: client!(aws_sdk_lambda, &calls, sdk),
        }
    }
}

pub(crate) const THROTTLING_CODES: [&str; 8] = [
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "ProvisionedThroughputExceededException",
    "TooManyRequestsException",
    "RequestThrottled",
    "SlowDown",
];

/// Sorts an SDK error into what the caller can do about it. The SDK has already retried
/// throttling and transient errors by the time we see them.
pub(crate) fn classify<E, R>(call: Operation, error: SdkError<E, R>) -> AdapterError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let (service, operation) = (call.service, call.name);
    let code = error.code().map(str::to_owned);
    let is_service_error = matches!(error, SdkError::ServiceError(_));
    // A request that could not even be built will not build on a retry either.
    let construction_failed = matches!(error, SdkError::ConstructionFailure(_));
    let source: crate::error::BoxError = Box::new(error);
    if construction_failed {
        return AdapterError::Rejected {
            service,
            operation,
            code: "ConstructionFailure".to_owned(),
            source,
        };
    }
    match code {
        Some(code) if THROTTLING_CODES.contains(&code.as_str()) => AdapterError::Throttled {
            service,
            operation,
            source,
        },
        Some(code) if is_service_error && !is_server_fault(&code) => AdapterError::Rejected {
            service,
            operation,
            code,
            source,
        },
        _ => AdapterError::Transient {
            service,
            operation,
            source,
        },
    }
}

pub(crate) fn is_server_fault(code: &str) -> bool {
    matches!(
        code,
        "InternalServerError"
            | "InternalFailure"
            | "ServiceUnavailable"
            | "ServerException"
            | "InternalServerException"
    )
}
