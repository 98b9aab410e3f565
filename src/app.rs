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

use crate::actors::alerts::AlertsActor;
use crate::actors::breaker::BreakerActor;
use crate::actors::conversations::ConversationRouter;
use crate::actors::directory::Directory;
use crate::actors::registry::SessionRegistry;
use crate::actors::Deps;
use crate::auth::Tokens;
use crate::cluster::{ClusterHandle, ClusterLink};
use crate::config::{Settings, StorageBackend};
use crate::domain::TraceContext;
use crate::http::{self, AppState};
use crate::limits::{ConnectionSlots, LoginRules, LoginThrottle, WriteLimiter, WriteRate};
use crate::payments::saga::SagaDeps;
use crate::payments::{PaymentRouter, ProviderClient};
use crate::store::redis::RedisOptions;
use crate::store::Store;
use crate::supervision::faults::Faults;
use crate::supervision::policy::{Backoff, RestartType};
use crate::supervision::{install_panic_hook, ChildSpec, Supervisor};
use parley_provider::{self as provider, ProviderOptions, ProviderState};
use tokio::sync::watch;

pub struct Application {
    port: u16,
    /// `server.internal_listen`'s port, when set.
    internal_port: Option<u16>,
    server: Server,
    handle: ServerHandle,
    deps: Deps,
    /// Threads the conversation actors run on.
    arbiters: Vec<Arbiter>,
    /// Set when the root supervisor fails: the process must end non-zero.
    root_failed: watch::Receiver<Option<String>>,
    /// The in-process simulated provider, when no provider_url is set.
    provider: Option<ServerHandle>,
    /// Cluster mode: the link to the other nodes.
    cluster: Option<ClusterLink>,
}

impl Application {
    /// Binds the listener and starts everything; must run inside an actix
    /// `System`. With port 0 the OS picks a free port (tests).
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        if settings.auth.using_dev_secret {
            tracing::warn!("auth.allow_dev_secret is on: tokens are signed with the published development secret; never in production");
        }
        if settings.auth.secret_from_data_dir {
            anyhow::ensure!(
                settings.storage.backend == StorageBackend::Sqlite,
                "auth.token_secret must be set for a cluster (storage.backend = \"redis\")"
            );
            let path = crate::auth::secret_path(&settings.storage.sqlite_path);
            settings.auth.token_secret = crate::auth::data_dir_secret(&path)
                .with_context(|| format!("the token secret in {}", path.display()))?;
            tracing::info!(path = %path.display(), "auth.token_secret is empty: signing tokens with this node's own secret");
        }
        anyhow::ensure!(
            settings.auth.token_secret.expose().len() >= 32,
            "auth.token_secret must be at least 32 bytes long"
        );
        let settings = Arc::new(settings);
        install_panic_hook();
        crate::telemetry::metrics();
        crate::traces::configure(
            &settings.server.node_id,
            crate::traces::Settings {
                sample_percent: settings.trace_sample_percent,
                recent_bytes: settings.trace_recent_bytes,
                keep_slow: settings.trace_keep_slow,
            },
        );
        // The tree: root -> one breaker per remote dependency, store_writer
        // (SQLite), directory, conversations (dynamic), sessions (dynamic),
        // alerts, payments (dynamic). The root's own failure ends the process.
        let sup = &settings.supervision;
        let (root, root_failed) = Supervisor::root("root", sup.root);
        let faults = Arc::new(Faults::new(settings.faults_enabled));
        let breakers: Vec<(&'static str, actix::Addr<BreakerActor>)> = settings
            .breakers
            .iter()
            // The redis breaker exists only where Redis is used.
            .filter(|b| b.name != "redis" || settings.storage.backend == StorageBackend::Redis)
            .map(|b| {
                let spec = ChildSpec::new(
                    format!("breaker:{}", b.name),
                    "breaker",
                    RestartType::Permanent,
                    4096,
                );
                let actor =
                    BreakerActor::new(b.name, b.config.clone(), b.call_timeout, faults.clone());
                (b.name, root.spawn(spec, actor, None))
            })
            .collect();
        let breaker = |name: &str| {
            breakers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, addr)| addr.clone())
                .with_context(|| format!("the {name} breaker is missing"))
        };
        let store = match settings.storage.backend {
            StorageBackend::Sqlite => {
                let writer_id = root.worker("store_writer", "store_writer");
                Store::open_sqlite(
                    &settings.storage.sqlite_path,
                    &settings.storage,
                    Some((root.clone(), writer_id)),
                )
                .with_context(|| {
                    format!(
                        "opening the store at {}",
                        settings.storage.sqlite_path.display()
                    )
                })?
            }
            StorageBackend::Redis => {
                let options =
                    RedisOptions::from_settings(&settings.storage, &settings.server.node_id);
                let store = Store::open_redis(options, Some(breaker("redis")?))
                    .await
                    .with_context(|| format!("connecting to {}", settings.storage.redis_url))?;
                // Presence left by an earlier run of a node with this name
                // goes before any session of this run can be recorded.
                if let Some(redis) = store.redis() {
                    redis
                        .leave_cluster()
                        .await
                        .context("clearing this node's earlier presence in redis")?;
                }
                store
            }
        };
        let registry = SessionRegistry::default();
        let directory = Directory::start(
            &root,
            registry.clone(),
            store.clone(),
            settings.session.sessions_per_user,
            faults.clone(),
        );
        let arbiters: Vec<Arbiter> = (0..settings.server.workers)
            .map(|_| Arbiter::new())
            .collect();
        let conversations = ConversationRouter::new(
            settings.clone(),
            store.clone(),
            registry.clone(),
            arbiters.iter().map(|a| a.handle()).collect(),
            root.supervisor("conversations", sup.conversations, true),
            faults.clone(),
            directory.clone(),
        );
        let sessions = root.supervisor("sessions", sup.sessions, true);
        // The payment provider: the configured one, or a simulated one in
        // process on a loopback port (calls still cross HTTP).
        let (provider_url, provider) = match &settings.payments.provider_url {
            Some(url) => (url.clone(), None),
            None => {
                let listener = TcpListener::bind("127.0.0.1:0")
                    .context("binding the in-process payment provider")?;
                let options = ProviderOptions {
                    max_keys: 1_000_000,
                    ..ProviderOptions::default()
                };
                let running = provider::serve(listener, Arc::new(ProviderState::new(options)))?;
                (
                    format!("http://127.0.0.1:{}", running.port),
                    Some(running.handle),
                )
            }
        };
        let provider_breaker = breaker("payment_provider")?;
        let saga = SagaDeps {
            store: store.clone(),
            cluster: ClusterHandle::of(&store),
            provider: ProviderClient::new(provider_url.clone(), provider_breaker),
            conversations: conversations.clone(),
            registry: registry.clone(),
            faults: faults.clone(),
            deadline: settings.payments.retry_deadline,
            retry: Backoff {
                base: settings.payments.retry_base,
                max: settings.payments.retry_max,
                jitter: settings.supervision.payments.backoff.jitter,
                // One step's tries end with the step (or its deadline).
                reset_after: Duration::MAX,
            },
            lease: settings.payments.saga_lease,
        };
        let webhook = settings.alert_webhook.clone().and_then(|url| {
            breakers
                .iter()
                .find(|(name, _)| *name == "webhook")
                .map(|(_, addr)| (url, addr.clone()))
        });
        let alerts = root.spawn(
            ChildSpec::new("alerts", "alerts", RestartType::Permanent, 64),
            AlertsActor::new(
                settings.alert_rules.clone(),
                webhook,
                settings.server.node_id.clone(),
            ),
            None,
        );
        let payments = PaymentRouter::new(
            root.supervisor("payments", sup.payments, true),
            saga,
            settings.payments.max_active,
        );
        let deps = Deps {
            settings: settings.clone(),
            cluster: ClusterHandle::of(&store),
            store,
            registry,
            directory,
            conversations,
            sessions,
            root,
            faults,
            breakers: Arc::new(breakers),
            payments: payments.clone(),
            alerts,
            origins: Arc::new(crate::traces::TraceOrigins::new(
                settings.auth.token_secret.expose(),
            )),
        };
        let cluster = deps
            .cluster
            .redis()
            .cloned()
            .map(|redis| crate::cluster::start(&deps, redis));
        // Every unfinished saga resumes from its log.
        actix_rt::spawn(async move {
            match payments.resume_all().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(n, "resumed unfinished payments"),
                Err(e) => tracing::error!(error = %e, "cannot list unfinished payments"),
            }
        });
        tracing::info!(provider = %provider_url, "payment provider");
        // Bound first: the split (`http/listeners.rs`) compares with the
        // address it actually got.
        let internal = match settings.server.internal_listen {
            Some(addr) => {
                Some(TcpListener::bind(addr).with_context(|| format!("binding internal {addr}"))?)
            }
            None => None,
        };
        let internal_addr = match &internal {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let state = web::Data::new(AppState {
            internal: internal_addr,
            deps: deps.clone(),
            tokens: Tokens::new(settings.auth.token_secret.clone(), settings.auth.token_ttl),
            logins: LoginThrottle::new(LoginRules {
                per_address: settings.limits.login_failures_per_address,
                per_account_address: settings.limits.login_failures_per_account_address,
                first_delay: settings.limits.login_first_delay,
                window: settings.limits.login_window,
                capacity: settings.limits.login_tracker_capacity,
            }),
            grants: Default::default(),
            connections: ConnectionSlots::new(settings.limits.max_connections),
            writes: WriteLimiter::new(
                WriteRate {
                    per_sec: settings.limits.http_writes_per_sec,
                    burst: settings.limits.http_write_burst,
                },
                WriteRate {
                    per_sec: settings.limits.http_address_writes_per_sec,
                    burst: settings.limits.http_address_write_burst,
                },
                settings.limits.http_write_tracker_capacity,
            ),
        });
        let listener = TcpListener::bind(settings.server.listen)
            .with_context(|| format!("binding {}", settings.server.listen))?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap_fn(http::traced)
                .wrap_fn(http::split)
                .configure(http::routes)
        })
        .workers(settings.server.workers)
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_grace.as_secs().max(1))
        // Small frames must not wait for Nagle's algorithm.
        .tcp_nodelay(true)
        .listen(listener)?;
        let server = match internal {
            Some(l) => server.listen(l)?,
            None => server,
        }
        .run();
        let handle = server.handle();
        tracing::info!(port, node = %settings.server.node_id, "parley serving");
        if let Some(addr) = internal_addr {
            tracing::info!(%addr, "/metrics and /admin served on the internal listener only");
        }
        Ok(Application {
            port,
            internal_port: internal_addr.map(|a| a.port()),
            server,
            handle,
            deps,
            arbiters,
            root_failed,
            provider,
            cluster,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn internal_port(&self) -> Option<u16> {
        self.internal_port
    }

    /// Serves until `shutdown` resolves, then shuts down gracefully: stop
    /// accepting, close every session with 1001, flush the store.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Application {
            server,
            handle,
            deps,
            arbiters,
            mut root_failed,
            provider,
            cluster,
            ..
        } = self;
        let mut serving = actix_rt::spawn(server);
        let root_failure = async move {
            match root_failed.wait_for(Option::is_some).await {
                Ok(cause) => cause.clone().unwrap_or_default(),
                // The tree is gone without a failure: never resolve.
                Err(_) => std::future::pending().await,
            }
        };
        let mut failure = None;
        tokio::select! {
            res = &mut serving => {
                res.context("the server task failed")?.context("the server failed")?;
                return Ok(());
            }
            () = shutdown => {}
            cause = root_failure => failure = Some(cause),
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
        if let Some(link) = cluster {
            link.stop().await;
        }
        deps.payments.close();
        deps.root.shutdown();
        if let Some(p) = provider {
            p.stop(true).await;
        }
        deps.store.shutdown().await.context("flushing the store")?;
        for a in arbiters {
            a.stop();
        }
        if let Some(cause) = failure {
            anyhow::bail!("the root supervisor failed: {cause}");
        }
        tracing::info!("shut down cleanly");
        Ok(())
    }
}
