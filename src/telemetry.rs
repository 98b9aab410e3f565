//! Logging: `RUST_LOG` levels (default `info`), pretty or JSON lines. Handlers
//! run inside spans carrying `trace_id`, so every line on a traced path shows it.

use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

mod malformed;

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// As `init`, with the level used when `RUST_LOG` is not set.
pub fn init_with_default(format: LogFormat, default_directive: &str) {
    let _ = install(format, default_directive, None);
}

/// Flushes and stops the OTLP exporter (at shutdown).
pub struct OtlpGuard(Option<SdkTracerProvider>);

impl OtlpGuard {
    pub fn shutdown(mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = p.shutdown() {
                eprintln!("parley: OTLP exporter did not shut down cleanly: {e}");
            }
        }
    }
}

/// The subscriber for `parley serve`: logs, and spans exported over OTLP
/// (HTTP, JSON) when `otlp_endpoint` is set.
pub fn init_with_otlp(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<OtlpGuard> {
    install(format, "info", otlp_endpoint)
}

fn install(
    format: LogFormat,
    default_directive: &str,
    otlp_endpoint: Option<&str>,
) -> anyhow::Result<OtlpGuard> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    // actix-http's dispatcher errors always reach `MalformedRequests`, which
    // counts them whatever RUST_LOG says and writes its own rate-limited line.
    let dispatcher = format!("{}=error", malformed::DISPATCHER);
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_directive))
        .add_directive(dispatcher.parse()?);
    let fmt = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_target(false)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_target(false).boxed(),
    }
    .with_filter(malformed::KeepOut);
    let provider = match otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::{Protocol, WithExportConfig};
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
                .build()
                .map_err(|e| anyhow::anyhow!("invalid setting telemetry.otlp_endpoint: {e}"))?;
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name("parley")
                            .build(),
                    )
                    .build(),
            )
        }
        None => None,
    };
    OTLP_ON.store(provider.is_some(), std::sync::atomic::Ordering::Relaxed);
    let otel = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer().with_tracer(p.tracer("parley"))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(malformed::MalformedRequests::start())
        .with(otel)
        .with(fmt)
        .try_init();
    Ok(OtlpGuard(provider))
}

/// Whether spans are exported (checked before any per-span OTLP work).
static OTLP_ON: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether spans are being exported over OTLP.
pub fn exporting() -> bool {
    OTLP_ON.load(std::sync::atomic::Ordering::Relaxed)
}

/// Makes `span` a child of our trace id in OpenTelemetry, so exported spans
/// carry the same trace id as frames, logs and `/admin/traces`.
pub fn link_span(span: &tracing::Span, trace: crate::domain::TraceId) {
    if !OTLP_ON.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceState};
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let Ok(trace_id) = opentelemetry::trace::TraceId::from_hex(&trace.to_string()) else {
        return;
    };
    let parent = SpanContext::new(
        trace_id,
        SpanId::from_bytes((rand::random::<u64>() | 1).to_be_bytes()),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
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
    describe_histogram!(
        "parley_store_checkpoint_seconds",
        Unit::Seconds,
        "SQLite WAL checkpoint passes (every 250 ms, off the writer's path), by duration."
    );
    describe_gauge!(
        "parley_store_wal_pages",
        "Pages in the SQLite WAL at the last checkpoint."
    );
    describe_gauge!(
        "process_resident_memory_bytes",
        Unit::Bytes,
        "Resident memory of the server process."
    );
    describe_gauge!("process_threads", "Threads of the server process.");
    describe_gauge!(
        "process_open_fds",
        "Open file descriptors of the server process."
    );
    describe_gauge!(
        "parley_process_cpu_seconds",
        Unit::Seconds,
        "CPU time (user and system) the server process has used; only grows."
    );
    describe_gauge!(
        "parley_redis_up",
        "1 while Redis answers this node's heartbeat, 0 while it does not (cluster mode)."
    );
    describe_counter!(
        "parley_cluster_events_dropped_total",
        "Cluster events a conversation actor could not take (overloaded or restarting); the conversation catches up within a second."
    );
    describe_counter!(
        "parley_messages_fetched_total",
        "Messages a conversation actor read from the store to close a gap in its deliveries (cluster: the channel lost them)."
    );
    describe_counter!(
        "parley_cluster_events_total",
        "Events from the cluster channel handed to conversation actors (own: published by this node)."
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
        "parley_rate_limited_total",
        "Requests refused by an abuse limit: frame (over a session's frames per second), session_closed (closed for sustained abuse), login (throttled failed logins), connection (upgrade over the node's cap)."
    );
    describe_counter!(
        "parley_http_malformed_total",
        "HTTP requests actix-http refused as malformed, and connections it dropped on an error (logged at most once per 10 s)."
    );
    describe_counter!(
        "parley_http_slow_bodies_total",
        "Requests whose body did not arrive within limits.http_body_timeout_ms: answered 408, connection closed."
    );
    describe_counter!(
        "parley_http_requests_total",
        "HTTP requests by route pattern and status."
    );
    describe_counter!("parley_frames_in_total", "Client frames received, by type.");
    describe_counter!(
        "parley_frames_out_total",
        "Frames written to client sockets, by type."
    );
    describe_counter!(
        "parley_frames_out_total",
        "Frames written to client sockets, by type."
    );
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

/// Handles of the metrics recorded for every message and frame, looked up
/// once instead of on every call (a labelled lookup hashes every time).
pub struct Hot {
    pub messages_committed: metrics::Counter,
    pub delivery_seconds: metrics::Histogram,
    frames_in: Vec<(&'static str, metrics::Counter)>,
    frames_out: Vec<(&'static str, metrics::Counter)>,
}

impl Hot {
    pub fn frame_in(&self, kind: &str) {
        if let Some((_, c)) = self.frames_in.iter().find(|(k, _)| *k == kind) {
            c.increment(1);
        }
    }

    /// Counts a frame written to a socket, by the `type` its JSON starts
    /// with (every server frame begins `{"type":"...`).
    pub fn frame_out(&self, text: &str) {
        let kind = text
            .strip_prefix(r#"{"type":""#)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or("");
        if let Some((_, c)) = self.frames_out.iter().find(|(k, _)| *k == kind) {
            c.increment(1);
        }
    }
}

const FRAMES_OUT: [&str; 17] = [
    "hello",
    "ack",
    "message",
    "created",
    "invited",
    "member_joined",
    "left",
    "member_left",
    "history",
    "conversations",
    "read",
    "typing",
    "presence",
    "conversation_added",
    "payment",
    "pong",
    "error",
];

/// The hot-path metric handles (after the recorder is installed).
pub fn hot() -> &'static Hot {
    static HOT: std::sync::OnceLock<Hot> = std::sync::OnceLock::new();
    HOT.get_or_init(|| {
        metrics();
        let kinds = [
            "send",
            "create",
            "invite",
            "leave",
            "history",
            "conversations",
            "read",
            "typing",
            "pay",
            "ping",
        ];
        Hot {
            messages_committed: metrics::counter!("parley_messages_committed_total"),
            delivery_seconds: metrics::histogram!("parley_delivery_seconds"),
            frames_in: kinds
                .iter()
                .map(|k| {
                    (
                        *k,
                        metrics::counter!("parley_frames_in_total", "type" => *k),
                    )
                })
                .collect(),
            frames_out: FRAMES_OUT
                .iter()
                .map(|k| {
                    (
                        *k,
                        metrics::counter!("parley_frames_out_total", "type" => *k),
                    )
                })
                .collect(),
        }
    })
}
