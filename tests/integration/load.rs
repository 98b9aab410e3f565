//! `parley load` against a real server: each scenario runs briefly and the
//! report's own checks (no loss, no duplicate, money conserved...) hold.
//! The tool is the library's `parley_load::run`, exactly what the binary
//! calls; figures of speed are not asserted here (BENCHMARKS.md has them).

use clap::Parser;
use parley_load::{LoadError, Report, Scenario};

use crate::helpers::spawn_app_with;

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

/// Runs `parley load` with these whitespace-separated arguments.
async fn run(args: &str) -> Result<Report, LoadError> {
    let cli = Cli::try_parse_from(std::iter::once("load").chain(args.split_whitespace()))
        .unwrap_or_else(|e| panic!("arguments {args:?}: {e}"));
    parley_load::run(cli.scenario).await
}

fn figure(r: &Report, name: &str) -> f64 {
    r.value(name)
        .unwrap_or_else(|| panic!("no figure {name:?} in {}", r.table()))
}

#[tokio::test]
async fn chat_delivers_every_acked_message_once_and_writes_both_reports() {
    // The default, consent: the load tool's rooms are invitations its
    // members accept.
    let app = spawn_app_with(|s| s.limits.group_consent = true).await;
    let out = tempfile::tempdir().expect("temp dir");
    let target = app.url("");
    let out_dir = out.path().to_string_lossy().to_string();
    let report = run(&format!("chat --target {target} --conversations 2 --members 5 --senders 2 --rate 40 --duration 2 --drain 10 --out {out_dir} --quiet"))
    .await
    .expect("chat run");
    assert!(report.passed(), "{}", report.table());
    let acked = figure(&report, "messages acked");
    assert!(acked >= 60.0, "40/s for 2 s: {}", report.table());
    assert_eq!(figure(&report, "messages sent"), acked);
    assert_eq!(
        figure(&report, "deliveries"),
        acked * 5.0,
        "every member got every message"
    );
    assert_eq!(
        figure(
            &report,
            "lost (acked, not delivered to a connected session)"
        ),
        0.0
    );
    let latency = report.latency.as_ref().expect("latency");
    assert_eq!(latency.count as f64, acked * 5.0);
    assert!(
        latency.p50_ms > 0.0
            && latency.p50_ms <= latency.p99_ms
            && latency.p99_ms <= latency.max_ms
    );
    assert!(!report.timeline.is_empty());

    let files: Vec<_> = std::fs::read_dir(out.path())
        .expect("reports")
        .flatten()
        .map(|e| e.path())
        .collect();
    let json = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("json report");
    let parsed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).expect("read")).expect("json");
    assert_eq!(parsed["scenario"], "chat");
    assert_eq!(parsed["parameters"]["rate"], 40);
    assert!(parsed["timeline"].as_array().is_some_and(|t| !t.is_empty()));
    let html = files
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "html"))
        .expect("html report");
    let page = std::fs::read_to_string(html).expect("read");
    assert!(
        page.contains("<svg") && page.contains("polyline"),
        "plots are inline SVG"
    );
    for fetches in ["<script", " src=", " href=", "@import", "url("] {
        assert!(
            !page.contains(fetches),
            "the page fetches nothing: found {fetches}"
        );
    }
}

#[tokio::test]
async fn saturate_keeps_a_window_in_flight_without_loss() {
    // Saturation runs against a server without the per-session frame limit
    // (README, Load testing): each sender goes as fast as it is acked.
    // Three seconds: the sustained figure needs a full second of sending
    // after the ramp-up one, which two seconds gave only when the ticker
    // kept pace (a loaded CI machine missed it once).
    let app = spawn_app_with(|s| s.limits.frames_per_sec = 0).await;
    let target = app.url("");
    let report = run(&format!("saturate --target {target} --conversations 2 --members 4 --senders 2 --window 8 --duration 3 --no-report --quiet"))
    .await
    .expect("saturate run");
    assert!(report.passed(), "{}", report.table());
    let acked = figure(&report, "messages acked");
    assert!(acked > 100.0, "{}", report.table());
    assert_eq!(figure(&report, "deliveries"), acked * 4.0);
    assert!(figure(&report, "sustained deliveries/s (ramp-up second excluded)") > 0.0);
}

#[tokio::test]
async fn chaos_panics_conversations_under_load_and_nothing_is_lost_or_doubled() {
    let app = spawn_app_with(|s| {
        s.faults_enabled = true;
        s.auth
            .admins
            .insert(parley::domain::Username::parse("chaosadmin").expect("name"));
    })
    .await;
    let target = app.url("");
    app.admin("chaosadmin").await;
    let report = run(&format!("chaos --target {target} --conversations 2 --members 4 --senders 2 --rate 50 --duration 3 --drain 10 --fault-every-ms 250 --admin-user chaosadmin --admin-password password123 --no-report --quiet"))
    .await
    .expect("chaos run");
    assert!(report.passed(), "{}", report.table());
    assert!(
        figure(&report, "faults injected") >= 5.0,
        "{}",
        report.table()
    );
    assert!(
        figure(&report, "actor restarts on the server") >= 1.0,
        "{}",
        report.table()
    );
    let acked = figure(&report, "messages acked");
    assert!(acked > 0.0);
    assert_eq!(figure(&report, "duplicated deliveries"), 0.0);
    assert_eq!(
        figure(
            &report,
            "lost (acked, not delivered to a connected session)"
        ),
        0.0
    );
}

#[tokio::test]
async fn chaos_says_what_the_server_needs_when_faults_are_off() {
    let app = spawn_app_with(|_| {}).await;
    let target = app.url("");
    // No such admin yet: the tool says how to make one.
    let err = run(&format!(
        "chaos --target {target} --admin-user root --admin-password password123 --no-report --quiet"
    ))
    .await
    .expect_err("no admin account");
    assert!(
        err.to_string().contains("parley admin create-user root"),
        "{err}"
    );
    app.admin("root").await;
    let err = run(&format!(
        "chaos --target {target} --admin-user root --admin-password password123 --no-report --quiet"
    ))
    .await
    .expect_err("faults are disabled");
    assert!(err.to_string().contains("faults.enabled"), "{err}");
}

#[tokio::test]
async fn payments_finish_and_the_payers_money_adds_up() {
    let app = spawn_app_with(|_| {}).await;
    let target = app.url("");
    let report = run(&format!("payments --target {target} --payers 4 --rate 10 --duration 2 --amount 3 --no-report --quiet"))
    .await
    .expect("payments run");
    assert!(report.passed(), "{}", report.table());
    let requested = figure(&report, "payments requested");
    assert!(requested >= 15.0, "{}", report.table());
    assert_eq!(figure(&report, "completed"), requested);
    assert_eq!(
        figure(&report, "payers' total balance before"),
        figure(&report, "payers' total balance after")
    );
}

#[tokio::test]
async fn idle_reports_memory_per_session_from_the_servers_metrics() {
    let app = spawn_app_with(|_| {}).await;
    let target = app.url("");
    let report = run(&format!("idle --target {target} --sessions 30 --members 5 --sessions-per-user 2 --duration 1 --settle 0 --no-report --quiet"))
    .await
    .expect("idle run");
    assert!(report.passed(), "{}", report.table());
    assert_eq!(figure(&report, "sessions"), 30.0);
    assert_eq!(figure(&report, "accounts"), 15.0);
    // Present (the server exports its memory and CPU); their size is for BENCHMARKS.md.
    figure(&report, "server memory per session");
    figure(&report, "server idle CPU");
    assert!(figure(&report, "idle window") >= 1.0);
}

#[tokio::test]
async fn targets_beyond_loopback_and_unbounded_runs_are_refused() {
    let err = run("chat --target http://10.1.2.3:8080 --quiet")
        .await
        .expect_err("not loopback");
    assert!(matches!(err, LoadError::NotLoopback(_)), "{err}");
    let err = run("chat --duration 0 --quiet")
        .await
        .expect_err("zero duration");
    assert!(err.to_string().contains("--duration"), "{err}");
    let err = run("saturate --window 0 --quiet")
        .await
        .expect_err("no window");
    assert!(err.to_string().contains("--window"), "{err}");
}
