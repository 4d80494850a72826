//! Logging's levels: what [`archgate::telemetry`] makes of Lambda's log level and of
//! `RUST_LOG` directives.

use archgate::telemetry::{default_filter, filter_of};
use tracing::Level;

#[test]
fn lambdas_levels_and_rust_log_directives_are_read() {
    // Given the values Lambda's logging controls and operators set
    let debug = filter_of("DEBUG").unwrap();
    let fatal = filter_of("FATAL").unwrap();
    let directives = filter_of("archgate=debug,warn").unwrap();

    // Then each filters as it says
    assert!(debug.would_enable("archgate::pipeline", &Level::DEBUG));
    assert!(!debug.would_enable("archgate::pipeline", &Level::TRACE));
    assert!(fatal.would_enable("x", &Level::ERROR) && !fatal.would_enable("x", &Level::WARN));
    assert!(directives.would_enable("archgate::pipeline", &Level::DEBUG));
    assert!(!directives.would_enable("aws_smithy_runtime", &Level::INFO));
    assert!(default_filter().would_enable("x", &Level::INFO));
    assert!(filter_of("archgate=loud").is_err());
}
