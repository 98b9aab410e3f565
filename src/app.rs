//! Building and running the server: bind, start the store and the actors,
//! serve, and shut down gracefully.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Arbiter;
use actix_web::dev::{Server, ServerHandle};
use actix_web::{web, App, HttpServer};
use actix_ws::CloseCode;
use anyhow::Context as _;

use crate::actors::conversations::ConversationRouter;
use crate::actors::directory::Directory;
use crate::actors::registry::SessionRegistry;
use crate::actors::Deps;
use crate::auth::Tokens;
use crate::config::Settings;
use crate::domain::TraceContext;
use crate::http::{self, AppState};
use crate::store::Store;

pub struct Application {
    port: u16,
    server: Server,
    handle: ServerHandle,
    deps: Deps,
    /// Threads the conversation actors run on.
    arbiters: Vec<Arbiter>,
}

impl Application {
    /// Binds the listener and starts everything; must run inside an actix
    /// `System`. With port 0 the OS picks a free port (tests).
    pub fn build(settings: Settings) -> anyhow::Result<Application> {
        if settings.auth.using_dev_secret {
            tracing::warn!("auth.token_secret is empty: using the development secret; set PARLEY__AUTH__TOKEN_SECRET in production");
        }
        let settings = Arc::new(settings);
        let store = Store::open_sqlite(&settings.storage.sqlite_path, &settings.storage)
            .with_context(|| {
                format!(
                    "opening the store at {}",
                    settings.storage.sqlite_path.display()
                )
            })?;
        let registry = SessionRegistry::default();
        let directory = Directory::start(
            registry.clone(),
            store.clone(),
            settings.session.sessions_per_user,
        );
        let arbiters: Vec<Arbiter> = (0..settings.server.workers)
            .map(|_| Arbiter::new())
            .collect();
        let conversations = ConversationRouter::new(
            settings.clone(),
            store.clone(),
            registry.clone(),
            arbiters.iter().map(|a| a.handle()).collect(),
        );
        let deps = Deps {
            settings: settings.clone(),
            store,
            registry,
            directory,
            conversations,
        };
        let state = web::Data::new(AppState {
            deps: deps.clone(),
            tokens: Tokens::new(settings.auth.token_secret.clone(), settings.auth.token_ttl),
        });
        let listener = TcpListener::bind(settings.server.listen)
            .with_context(|| format!("binding {}", settings.server.listen))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap_fn(http::traced)
                .configure(http::routes)
        })
        .workers(settings.server.workers)
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_grace.as_secs().max(1))
        // Small frames must not wait for Nagle's algorithm.
        .tcp_nodelay(true)
        .listen(listener)?
        .run();
        let handle = server.handle();
        tracing::info!(port, node = %settings.server.node_id, "parley serving");
        Ok(Application {
            port,
            server,
            handle,
            deps,
            arbiters,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully: stop
    /// accepting, close every session with 1001, flush the store.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Application {
            server,
            handle,
            deps,
            arbiters,
            ..
        } = self;
        let mut serving = actix_rt::spawn(server);
        tokio::select! {
            res = &mut serving => {
                res.context("the server task failed")?.context("the server failed")?;
                return Ok(());
            }
            () = shutdown => {}
        }
        tracing::info!("shutting down");
        handle.pause().await;
        let trace = TraceContext::random();
        for session in deps.registry.all_sessions() {
            session.close(CloseCode::Away, "server shutting down", trace);
        }
        let deadline = Instant::now() + deps.settings.server.shutdown_grace;
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        while deps.registry.total() > 0 && Instant::now() < deadline {
            tick.tick().await;
        }
        handle.stop(true).await;
        let _ = serving.await;
        deps.store.shutdown().await.context("flushing the store")?;
        for a in arbiters {
            a.stop();
        }
        tracing::info!("shut down cleanly");
        Ok(())
    }
}
