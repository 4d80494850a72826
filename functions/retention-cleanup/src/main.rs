use archgate::aws::{sdk_config, DynamoLedger, EcrRegistry, EventBridgePublisher};
use archgate::cleanup::RetentionConfig;
use archgate::ports::SystemClock;
use archgate::telemetry;
use archgate_retention_cleanup::handler::{handle, Retention};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = RetentionConfig::from_env()
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let sdk = sdk_config().await;
    let retention = Retention {
        inventory: EcrRegistry::new(aws_sdk_ecr::Client::new(&sdk)),
        ledger: DynamoLedger::new(aws_sdk_dynamodb::Client::new(&sdk), &config.ledger_table),
        events: EventBridgePublisher::new(
            aws_sdk_eventbridge::Client::new(&sdk),
            &config.event_bus,
        ),
        clock: SystemClock,
        config,
    };
    let retention = &retention;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            handle(retention, event.payload).await
        },
    ))
    .await
}
