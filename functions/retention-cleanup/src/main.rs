use archgate::aws::{lambda_sdk_config, RetentionClients};
use archgate::config::RetentionConfig;
use archgate::telemetry;
use archgate_retention_cleanup::handler::handle_until;
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = RetentionConfig::from_env()
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let sdk = lambda_sdk_config()
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let retention = RetentionClients::new(&sdk).retention(config);
    let retention = &retention;
    run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            // The run stops between repositories before the invocation's time is up.
            let deadline = i64::try_from(event.context.deadline).ok();
            handle_until(retention, event.payload, deadline).await
        },
    ))
    .await
}
