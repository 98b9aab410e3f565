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

/// The process-wide Prometheus recorder (installed once; every server in
/// the process, tests included, reports to it) with every metric described.
pub fn metrics() -> &'static metrics_exporter_prometheus::PrometheusHandle {
    static HANDLE: std::sync::OnceLock<metrics_exporter_prometheus::PrometheusHandle> =
        std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ])
            .and_then(|b| {
                b.set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full("parley_store_batch_size".into()),
                    &[
                        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
                    ],
                )
            })
            .map(|b| b.build_recorder())
            .unwrap_or_else(|_| {
                metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder()
            });
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program):
        // then this handle renders only what was recorded here, which is nothing.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "parley_actor_restarts_total",
        "Supervised actor restarts, by actor kind and reason (panic, exit, escalation)."
    );
    describe_gauge!(
        "parley_sessions_connected",
        "WebSocket sessions connected to this node."
    );
    describe_counter!(
        "parley_messages_committed_total",
        "Chat messages committed to the store."
    );
    describe_histogram!(
        "parley_store_commit_seconds",
        Unit::Seconds,
        "Time to run and commit one group-commit batch."
    );
    describe_histogram!(
        "parley_delivery_seconds",
        Unit::Seconds,
        "Time from a message's acceptance by its conversation to its fan-out (commit included)."
    );
    describe_counter!(
        "parley_errors_total",
        "Error answers sent, by code and via (ws, http)."
    );
    describe_counter!(
        "parley_http_requests_total",
        "HTTP requests by route pattern and status."
    );
    describe_counter!("parley_frames_in_total", "Client frames received, by type.");
    describe_counter!(
        "parley_payments_total",
        "Payments that reached their end, by status."
    );
    describe_counter!(
        "parley_mailbox_rejections_total",
        "Messages refused because a bounded queue was full, by queue."
    );
    describe_gauge!(
        "parley_alerts_firing",
        "1 while an alert rule is firing, 0 otherwise, by rule."
    );
    describe_gauge!(
        "parley_breaker_state",
        "Circuit breaker state: 0 closed, 1 half_open, 2 open, 3 forced_open, 4 disabled."
    );
    describe_counter!(
        "parley_breaker_calls_total",
        "Calls through a circuit breaker by outcome (success, ignored, failure, timeout, rejected)."
    );
    describe_histogram!(
        "parley_store_batch_size",
        Unit::Count,
        "Writes per group-commit batch."
    );
}
