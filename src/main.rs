//! `parley [serve] [--config PATH] [--listen ADDR]`.

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
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// The configuration file (default: config.toml, when present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// The address to serve on, overriding server.listen.
    #[arg(long, global = true)]
    listen: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(a)) => a,
        None => cli.serve,
    };
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parley: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
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
    parley::telemetry::init(settings.log_format);
    actix_rt::System::new().block_on(async move {
        let app = Application::build(settings)?;
        app.run_until(shutdown_signal()).await
    })
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
