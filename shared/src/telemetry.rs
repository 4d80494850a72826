//! Logging: JSON when Lambda's advanced logging controls say so (`AWS_LAMBDA_LOG_FORMAT=JSON`),
//! at the level `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` gives (INFO otherwise), as
//! `lambda_runtime`'s default subscriber does.
//!
//! Why not that subscriber: its `EnvFilter` links a regular-expression engine into every
//! package for span and field filters nobody sets on Lambda. `Targets` reads the same
//! `level` and `target=level,…` directives without one.

use lambda_runtime::tracing::subscriber::filter::{LevelFilter, Targets};
use lambda_runtime::tracing::subscriber::{fmt, prelude::*, registry};

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").or_else(|_| std::env::var("RUST_LOG"));
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let filter = level
        .as_deref()
        .map(filter_of)
        .unwrap_or(Ok(default_filter()));
    let (filter, unreadable) = match filter {
        Ok(filter) => (filter, None),
        Err(value) => (default_filter(), Some(value)),
    };
    let layer = fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    if json {
        registry().with(layer.json().with_filter(filter)).init();
    } else {
        registry().with(layer.with_filter(filter)).init();
    }
    if let Some(value) = unreadable {
        tracing::warn!(%value, "log level not understood; logging at INFO");
    }
}

/// INFO and above for every target: the filter when no level is set, or the one set is not
/// understood.
pub fn default_filter() -> Targets {
    Targets::new().with_default(LevelFilter::INFO)
}

/// The filter a level or directives give: `DEBUG`, `warn`, `archgate=debug,info`…; Lambda's
/// `FATAL` is ERROR here. The value back when it is neither.
pub fn filter_of(value: &str) -> Result<Targets, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("fatal") {
        return Ok(Targets::new().with_default(LevelFilter::ERROR));
    }
    value.parse::<Targets>().map_err(|_| value.to_owned())
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
