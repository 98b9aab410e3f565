//! `parley load`: the load-test tool. It is a client of a running server
//! (by default `http://127.0.0.1:8080`): it creates its own accounts and
//! conversations, runs one scenario, shows a progress line, prints a summary
//! table and writes a JSON and an HTML report. Every run is bounded in time
//! and in count, targets loopback unless told otherwise, and stops cleanly
//! on Ctrl-C (the report then says `interrupted`).
//!
//! Scenarios: `idle`, `chat`, `saturate`, `chaos` (chat with injected
//! faults) and `payments`. See README.md ("Load testing").

mod chat;
mod error;
mod histogram;
mod html;
mod idle;
mod payments;
mod recorder;
mod report;
mod scan;
mod setup;
mod target;

use std::path::PathBuf;
use std::time::Duration;

pub use error::LoadError;
pub use report::Report;

/// Longest measured phase a run accepts.
const MAX_SECS: u64 = 3600;

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Scenario {
    /// N sessions connected and idle: the server's memory per session and idle CPU.
    Idle(IdleArgs),
    /// R conversations of M members, S senders each, at a fixed total rate: latency, loss, duplicates.
    Chat(ChatArgs),
    /// Each sender keeps at most K unacknowledged messages in flight: the maximum delivery rate.
    Saturate(SaturateArgs),
    /// Chat load while faults are injected through /admin/faults: loss and duplicates must be zero.
    Chaos(ChaosArgs),
    /// N payers paying each other at a fixed total rate: outcomes, latency, money conserved.
    Payments(PaymentArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Allow a target outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    pub allow_remote: bool,
    /// Spread client sockets over source addresses 127.0.0.1 ..= 127.0.0.N (loopback targets).
    #[arg(long, default_value_t = 16)]
    pub source_ips: u8,
    /// Prefix of the account names this run creates (default: a random one per run).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Password of the accounts this run creates.
    #[arg(long, default_value = "load-test-password")]
    pub password: String,
    /// Registrations, logins and connections under way at once during set-up.
    #[arg(long, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// Directory for the JSON and HTML reports.
    #[arg(long, default_value = "parley-load-reports")]
    pub out: PathBuf,
    /// Write no report files.
    #[arg(long)]
    pub no_report: bool,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(clap::Args, Debug, Clone)]
pub struct RoomArgs {
    /// Conversations (groups) to create.
    #[arg(long, default_value_t = 10)]
    pub conversations: usize,
    /// Members of each conversation, each with one session.
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Members of each conversation that send.
    #[arg(long, default_value_t = 5)]
    pub senders: usize,
    /// Bytes of message text (at least 28: it carries the scheduled send time and the sender's tag).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Seconds of sending.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds to wait after sending for acks and deliveries still under way.
    #[arg(long, default_value_t = 10)]
    pub drain: u64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ChatArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub rooms: RoomArgs,
    /// Messages per second, all senders together (deliveries: times members).
    #[arg(long, default_value_t = 200)]
    pub rate: u32,
}

#[derive(clap::Args, Debug, Clone)]
pub struct SaturateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub rooms: RoomArgs,
    /// Messages each sender keeps in flight: sent and not yet delivered back
    /// to its own session (which also means not yet acknowledged).
    #[arg(long, default_value_t = 32)]
    pub window: usize,
    /// Members per conversation (besides the senders) whose sessions never
    /// read: the server should close them as slow consumers, not buffer for them.
    #[arg(long, default_value_t = 0)]
    pub stalled: usize,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ChaosArgs {
    #[command(flatten)]
    pub chat: ChatArgs,
    /// An admin account of the server, made on its host (`parley admin
    /// create-user NAME`, the name listed in auth.admins).
    #[arg(long, default_value = "admin")]
    pub admin_user: String,
    #[arg(long, default_value = "load-test-password")]
    pub admin_password: String,
    /// Milliseconds between injected faults.
    #[arg(long, default_value_t = 1000)]
    pub fault_every_ms: u64,
    /// Fault target: `conversation` (any one), `directory`, `session`, or `conversation:<id>`.
    #[arg(long, default_value = "conversation")]
    pub fault_target: String,
    /// Fault kind: panic, stop or delay.
    #[arg(long, default_value = "panic")]
    pub fault_kind: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Sessions to open.
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,
    /// Members of each conversation.
    #[arg(long, default_value_t = 100)]
    pub members: usize,
    /// Sessions per account (the server allows session.sessions_per_user).
    #[arg(long, default_value_t = 1)]
    pub sessions_per_user: usize,
    /// Seconds the sessions stay idle while the server's CPU is measured.
    #[arg(long, default_value_t = 30)]
    pub duration: u64,
    /// Seconds to wait after the last connection before measuring memory.
    #[arg(long, default_value_t = 3)]
    pub settle: u64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct PaymentArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Accounts that pay each other.
    #[arg(long, default_value_t = 100)]
    pub payers: usize,
    /// Payments per second, all payers together.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Seconds of paying.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Minor units per payment.
    #[arg(long, default_value_t = 1)]
    pub amount: i64,
    /// Seconds to wait after paying for payments still pending.
    #[arg(long, default_value_t = 30)]
    pub drain: u64,
}

impl Scenario {
    fn common(&self) -> &CommonArgs {
        match self {
            Scenario::Idle(a) => &a.common,
            Scenario::Chat(a) => &a.common,
            Scenario::Saturate(a) => &a.common,
            Scenario::Chaos(a) => &a.chat.common,
            Scenario::Payments(a) => &a.common,
        }
    }
}

/// Runs one scenario to its end (or Ctrl-C), prints the summary, writes the
/// reports; the report says whether the run met its own checks.
pub async fn run(scenario: Scenario) -> Result<Report, LoadError> {
    let common = scenario.common().clone();
    check_bounds(&scenario)?;
    let target = target::Target::new(&common).await?;
    let stop = stop_on_ctrl_c();
    let report = match &scenario {
        Scenario::Idle(a) => idle::run(&target, a, stop).await?,
        Scenario::Chat(a) => chat::run_chat(&target, a, stop).await?,
        Scenario::Saturate(a) => chat::run_saturate(&target, a, stop).await?,
        Scenario::Chaos(a) => chat::run_chaos(&target, a, stop).await?,
        Scenario::Payments(a) => payments::run(&target, a, stop).await?,
    };
    println!("{}", report.table());
    if !common.no_report {
        let (json, html) = report.write(&common.out)?;
        println!("reports: {} and {}", json.display(), html.display());
    }
    Ok(report)
}

fn check_bounds(s: &Scenario) -> Result<(), LoadError> {
    let bad = |m: String| Err(LoadError::Argument(m));
    if !(1..=1024).contains(&s.common().setup_concurrency) {
        return bad("--setup-concurrency must be 1..=1024".into());
    }
    let seconds = |d: u64, name: &str| -> Result<(), LoadError> {
        if d == 0 || d > MAX_SECS {
            return bad(format!("--{name} must be 1..={MAX_SECS} seconds"));
        }
        Ok(())
    };
    let rooms = |r: &RoomArgs| -> Result<(), LoadError> {
        seconds(r.duration, "duration")?;
        if r.drain > MAX_SECS {
            return bad(format!("--drain must be at most {MAX_SECS} seconds"));
        }
        if r.conversations == 0 || r.members == 0 || r.senders == 0 || r.senders > r.members {
            return bad(
                "need at least one conversation, one member and 1..=members senders".into(),
            );
        }
        let sessions = r.conversations.saturating_mul(r.members);
        if sessions > sessions_allowed() {
            return bad(format!(
                "{} sessions exceed what this process may open ({}; see ulimit -n)",
                r.conversations * r.members,
                sessions_allowed()
            ));
        }
        if !(28..=4096).contains(&r.size) {
            return bad("--size must be 28..=4096 bytes".into());
        }
        Ok(())
    };
    match s {
        Scenario::Chat(a) => {
            rooms(&a.rooms)?;
            if a.rate == 0 {
                return bad("--rate must be at least 1".into());
            }
        }
        Scenario::Saturate(a) => {
            rooms(&a.rooms)?;
            if !(1..=10_000).contains(&a.window) {
                return bad("--window must be 1..=10000".into());
            }
            if a.stalled.saturating_add(a.rooms.senders) > a.rooms.members {
                return bad("--stalled plus --senders must not exceed --members".into());
            }
        }
        Scenario::Chaos(a) => {
            rooms(&a.chat.rooms)?;
            if a.chat.rate == 0 {
                return bad("--rate must be at least 1".into());
            }
            if a.fault_every_ms < 10 {
                return bad("--fault-every-ms must be at least 10".into());
            }
        }
        Scenario::Idle(a) => {
            seconds(a.duration, "duration")?;
            if a.settle > MAX_SECS {
                return bad(format!("--settle must be at most {MAX_SECS} seconds"));
            }
            if a.sessions == 0 || a.members == 0 || a.sessions_per_user == 0 {
                return bad(
                    "--sessions, --members and --sessions-per-user must be positive".into(),
                );
            }
            if a.sessions > sessions_allowed() {
                return bad(format!(
                    "{} sessions exceed what this process may open ({}; see ulimit -n)",
                    a.sessions,
                    sessions_allowed()
                ));
            }
        }
        Scenario::Payments(a) => {
            seconds(a.duration, "duration")?;
            if a.drain > MAX_SECS {
                return bad(format!("--drain must be at most {MAX_SECS} seconds"));
            }
            if a.payers < 2 || a.rate == 0 || a.amount <= 0 {
                return bad("need at least 2 payers, a positive --rate and --amount".into());
            }
            if a.payers > sessions_allowed() {
                return bad("more payers than this process may open sockets".into());
            }
        }
    }
    Ok(())
}

/// Sockets this process may open, leaving room for files and HTTP.
fn sessions_allowed() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    if !ok {
        return 1000;
    }
    (limit.rlim_cur as usize).saturating_sub(200)
}

/// A flag that turns true on the first Ctrl-C (a second one ends the
/// process the usual way).
fn stop_on_ctrl_c() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\nstopping: finishing in-flight work and writing the report (Ctrl-C again to quit now)");
            let _ = tx.send(true);
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(130);
            }
        }
    });
    rx
}

/// Sleeps until `at`, or returns early (true) when the run is stopped.
async fn stopped_before(
    stop: &mut tokio::sync::watch::Receiver<bool>,
    at: tokio::time::Instant,
) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep_until(at) => false,
        _ = stop.wait_for(|s| *s) => true,
    }
}

/// Joins every task, all within ten seconds from now. A task still running
/// then (stuck writing to a server that stopped reading, it never sees the
/// end of the run) is aborted and `stuck()` stands for its result; a task
/// that panicked gives the default.
async fn join_within<T: Default>(
    tasks: Vec<tokio::task::JoinHandle<T>>,
    stuck: impl Fn() -> T,
) -> Vec<T> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut results = Vec::with_capacity(tasks.len());
    for mut t in tasks {
        results.push(match tokio::time::timeout_at(deadline, &mut t).await {
            Ok(done) => done.unwrap_or_default(),
            Err(_) => {
                t.abort();
                stuck()
            }
        });
    }
    results
}

fn secs(d: u64) -> Duration {
    Duration::from_secs(d)
}
