//! `parley [serve] [--config PATH] [--listen ADDR]`, `parley provider [flags]`,
//! `parley load <scenario> [flags]` and `parley admin <create-user|grant|revoke> NAME`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use parley::app::Application;
use parley::config::Settings;

#[derive(Parser)]
#[command(
    name = "parley",
    version,
    about = "A chat server built from supervised actors"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the chat server (the default).
    Serve(ServeArgs),
    /// Run the simulated payment provider.
    Provider(ProviderArgs),
    /// Admin rights, on the server's host (SPEC v2 "Admin rights").
    Admin {
        #[command(subcommand)]
        action: AdminAction,
        /// The configuration file (default: config.toml, when present).
        #[arg(long, global = true)]
        config: Option<PathBuf>,
    },
    /// Load-test a running server (scenarios: idle, chat, saturate, chaos, payments).
    Load {
        #[command(subcommand)]
        scenario: Box<parley_load::Scenario>,
        /// Worker threads of the tool (default: one per core).
        #[arg(long, global = true)]
        threads: Option<usize>,
    },
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create an account with admin rights; its password is the first line
    /// of standard input. The name must be in auth.admins to have them.
    CreateUser { name: String },
    /// Grant an existing account admin rights.
    Grant { name: String },
    /// Take an account's admin rights away.
    Revoke { name: String },
}

#[derive(clap::Args)]
struct ProviderArgs {
    /// Address to serve on (loopback unless you mean otherwise).
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: String,
    /// Added to every request.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Share of requests (0.0..=1.0) answered 503 without doing anything.
    #[arg(long, default_value_t = 0.0)]
    failure_rate: f64,
    /// Share of new charges (0.0..=1.0) declined.
    #[arg(long, default_value_t = 0.0)]
    decline_rate: f64,
    /// Outage windows in seconds since start, e.g. `--outage 30-60 --outage 120-130`.
    #[arg(long = "outage", value_parser = parse_window)]
    outages: Vec<(u64, u64)>,
    /// Idempotency keys kept at most; new keys beyond get 503.
    #[arg(long, default_value_t = 1_000_000)]
    max_keys: usize,
}

fn parse_window(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once('-').ok_or("expected START-END in seconds")?;
    let (a, b) = (
        a.trim().parse::<u64>().map_err(|e| e.to_string())?,
        b.trim().parse::<u64>().map_err(|e| e.to_string())?,
    );
    if a >= b {
        return Err("START must be before END".into());
    }
    Ok((a, b))
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// The configuration file (default: config.toml, when present).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The address to serve on, overriding server.listen.
    #[arg(long)]
    listen: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Serve(a)) => serve(a),
        Some(Command::Provider(p)) => provider(p),
        Some(Command::Load { scenario, threads }) => load(*scenario, threads),
        Some(Command::Admin { action, config }) => admin(action, config),
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parley: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn admin(action: AdminAction, config: Option<PathBuf>) -> anyhow::Result<()> {
    use parley::hostadmin::Action;
    let (path, must_exist) = match config {
        Some(p) => (p, true),
        None => (PathBuf::from("config.toml"), false),
    };
    let settings = Settings::load(&path, must_exist)?;
    let name = |n: &str| {
        parley::domain::Username::parse(n).map_err(|e| anyhow::anyhow!("username {n:?}: {e}"))
    };
    let action = match action {
        AdminAction::CreateUser { name: n } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .map_err(|e| anyhow::anyhow!("reading the password from standard input: {e}"))?;
            let password = password.trim_end_matches(['\r', '\n']).to_string();
            Action::CreateUser {
                name: name(&n)?,
                password,
            }
        }
        AdminAction::Grant { name: n } => Action::Grant(name(&n)?),
        AdminAction::Revoke { name: n } => Action::Revoke(name(&n)?),
    };
    let done = actix_rt::System::new().block_on(parley::hostadmin::run(&settings, action))?;
    println!("{done}");
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    keep_large_allocations_returnable();
    let (path, must_exist) = match args.config {
        Some(p) => (p, true),
        None => (PathBuf::from("config.toml"), false),
    };
    let mut settings = Settings::load(&path, must_exist)?;
    if let Some(listen) = args.listen {
        settings.server.listen = listen.parse().map_err(|_| {
            anyhow::anyhow!(
                "invalid setting --listen: {listen:?} is not an address like 127.0.0.1:8080"
            )
        })?;
    }
    let otlp =
        parley::telemetry::init_with_otlp(settings.log_format, settings.otlp_endpoint.as_deref())?;
    let result = actix_rt::System::new().block_on(async move {
        let app = Application::build(settings).await?;
        app.run_until(shutdown_signal()).await
    });
    // Exported spans still queued go out before the process ends.
    otlp.shutdown();
    result
}

fn provider(args: ProviderArgs) -> anyhow::Result<()> {
    for (name, rate) in [
        ("--failure-rate", args.failure_rate),
        ("--decline-rate", args.decline_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            anyhow::bail!("invalid {name}: {rate} is not between 0.0 and 1.0");
        }
    }
    parley::telemetry::init(parley::config::LogFormat::Pretty);
    let options = parley_provider::ProviderOptions {
        latency: std::time::Duration::from_millis(args.latency_ms),
        failure_rate: args.failure_rate,
        decline_rate: args.decline_rate,
        outages: args.outages,
        max_keys: args.max_keys,
    };
    let listener = std::net::TcpListener::bind(&args.listen)
        .map_err(|e| anyhow::anyhow!("binding {}: {e}", args.listen))?;
    actix_rt::System::new().block_on(async move {
        let state = std::sync::Arc::new(parley_provider::ProviderState::new(options));
        let running = parley_provider::serve(listener, state)?;
        tracing::info!(port = running.port, "simulated payment provider serving");
        shutdown_signal().await;
        running.handle.stop(true).await;
        Ok(())
    })
}

/// glibc serves a freed large block's size from its heap next time, raising
/// its mmap threshold to match (up to 32 MiB), and keeps that heap per
/// thread arena: argon2's 19 MiB blocks then stayed resident after every
/// burst of logins. A fixed threshold keeps blocks of 1 MiB and more
/// mapped, so freeing them returns the memory.
fn keep_large_allocations_returnable() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tuning; called before any
    // thread of ours exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Exit status 1 when the run failed its own checks (loss, duplicates...).
fn load(scenario: parley_load::Scenario, threads: Option<usize>) -> anyhow::Result<()> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        rt.worker_threads(n.max(1));
    }
    let report = rt
        .enable_all()
        .build()?
        .block_on(parley_load::run(scenario))?;
    if !report.passed() {
        anyhow::bail!("the run failed its checks (see the table above)");
    }
    Ok(())
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
