use archgate::aws::{lambda_sdk_config, Clients};
use archgate::config::ReconcilePolicy;
use archgate::{telemetry, Config};
use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config =
        Config::from_env().inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let sdk = lambda_sdk_config()
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let policy = ReconcilePolicy::from_lookup(|name| std::env::var(name).ok())
        .inspect_err(|error| tracing::error!(%error, "invalid configuration"))?;
    let pipeline = Clients::new(&sdk).pipeline(&config);
    let pipeline = &pipeline;
    run(service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            archgate_reconciler::handler::handle(pipeline, policy, pipeline.now()).await
        },
    ))
    .await
}
