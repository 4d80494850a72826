//! AWS adapters: the ports implemented with the AWS SDK. SDK types stop here; what leaves
//! this module is the library's own types and [`AdapterError`].

mod calls;
mod codebuild;
mod dynamodb;
mod ecr;
mod eventbridge;

pub use calls::{CallLog, CallTally};
pub use codebuild::CodeBuildBuilds;
pub use dynamodb::{DynamoLedger, LEDGER_KEY, MAX_POINTER_RELEASES};
pub use ecr::{EcrRegistry, BATCH_LIMIT, DESCRIBE_PAGE};
pub use eventbridge::EventBridgePublisher;

use crate::config::Config;
use crate::error::AdapterError;
use crate::pipeline::Pipeline;
use crate::ports::SystemClock;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// The pipeline wired to AWS.
pub type AwsPipeline =
    Pipeline<DynamoLedger, CodeBuildBuilds, EcrRegistry, EventBridgePublisher, SystemClock>;

/// Loads the SDK configuration the standard way: region, credentials and `AWS_ENDPOINT_URL`
/// from the environment or the execution role.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// SDK clients for every service archgate's functions use, sharing one SDK configuration and
/// one call log.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub codebuild: aws_sdk_codebuild::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    pub calls: CallLog,
}

impl Clients {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self::with_call_log(sdk, CallLog::default())
    }

    /// Clients whose calls are all counted in `calls`.
    pub fn with_call_log(sdk: &aws_config::SdkConfig, calls: CallLog) -> Self {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                aws_sdk_dynamodb::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            codebuild: aws_sdk_codebuild::Client::from_conf(
                aws_sdk_codebuild::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            ecr: aws_sdk_ecr::Client::from_conf(
                aws_sdk_ecr::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(
                aws_sdk_eventbridge::config::Builder::from(sdk)
                    .interceptor(calls.clone())
                    .build(),
            ),
            calls,
        }
    }

    pub fn pipeline(&self, config: &Config) -> AwsPipeline {
        Pipeline {
            config: config.clone(),
            ledger: DynamoLedger::new(self.dynamodb.clone(), &config.ledger_table),
            builds: CodeBuildBuilds::new(self.codebuild.clone()),
            registry: EcrRegistry::new(self.ecr.clone()),
            events: EventBridgePublisher::new(self.eventbridge.clone(), &config.event_bus),
            clock: SystemClock,
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
pub(crate) fn classify<E, R>(
    service: &'static str,
    operation: &'static str,
    error: SdkError<E, R>,
) -> AdapterError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
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
