//! The smallest Lambda function on the same runtime and profile as archgate's: echoes its
//! event. `tools/lambda-budgets.sh` measures its start beside the real functions, so their
//! figures can be read against what the runtime itself costs on the same machine.

use lambda_runtime::{run, service_fn, Error, LambdaEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(
        |event: LambdaEvent<serde_json::Value>| async move { Ok::<_, Error>(event.payload) },
    ))
    .await
}
