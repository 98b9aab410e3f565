//! Logging: `RUST_LOG` levels (default `info`), pretty or JSON lines. Handlers
//! run inside spans carrying `trace_id`, so every line on a traced path shows it.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// As `init`, with the level used when `RUST_LOG` is not set.
pub fn init_with_default(format: LogFormat, default_directive: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_directive));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
