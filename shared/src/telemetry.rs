//! Logging: `lambda_runtime`'s subscriber, which writes JSON when Lambda's advanced logging
//! controls say so (`AWS_LAMBDA_LOG_FORMAT=JSON`) and honours `AWS_LAMBDA_LOG_LEVEL` / `RUST_LOG`.

pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// For the CLI: human-readable logs on stderr, quiet unless `RUST_LOG` asks for more.
pub fn init_cli() {
    use lambda_runtime::tracing::subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
