//! `spawn_app()`: a real server on a free loopback port with its own SQLite
//! file, run in a thread of its own (an actix `System`), stoppable gracefully
//! and restartable on the same data.

use std::sync::Arc;
use std::thread::JoinHandle;

use parley::app::Application;
use parley::config::Settings;
use serde_json::Value;
use tempfile::TempDir;

pub struct TestApp {
    pub port: u16,
    /// `server.internal_listen`'s port, when the app has one.
    pub internal_port: Option<u16>,
    pub http: reqwest::Client,
    /// Kept alive for the life of the app (and across restarts).
    pub dir: Arc<TempDir>,
    pub settings: Settings,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    /// A node run as its own process (cluster tests): killed when dropped.
    process: Option<std::process::Child>,
}

/// Why a node process did not become ready.
enum NotReady {
    Exited(String),
    Late(std::time::Duration),
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::Exited(status) => write!(f, "it exited: {status}"),
            NotReady::Late(t) => write!(f, "not ready within {t:?}, killed"),
        }
    }
}

pub struct TestUser {
    pub token: String,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Test defaults: port 0, a temp database, two workers, admin "root".
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut settings = Settings::from_sources("", &[]).expect("default settings");
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    settings.server.node_id = "test-node".into();
    settings.server.workers = 2;
    settings.storage.sqlite_path = dir.path().join("parley.db");
    settings
        .auth
        .admins
        .insert(parley::domain::Username::parse("root").unwrap());
    // Most tests' scenes predate SPEC v2 consent and create groups of
    // strangers to test delivery, not membership: they run with anyone
    // adding anyone (a real setting, `limits.group_consent = false`).
    // Consent itself, the default, is tested in invitations.rs.
    settings.limits.group_consent = false;
    tweak(&mut settings);
    start(settings, dir).await
}

async fn start(mut settings: Settings, dir: Arc<TempDir>) -> TestApp {
    parley::telemetry::init_with_default(settings.log_format, "warn");
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let for_thread = settings.clone();
    let thread = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let app = match Application::build(for_thread).await {
                Ok(app) => app,
                Err(e) => {
                    let _ = port_tx.send(Err(format!("{e:#}")));
                    return Err(e);
                }
            };
            let _ = port_tx.send(Ok((app.port(), app.internal_port())));
            app.run_until(async {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    let (port, internal_port) = tokio::task::spawn_blocking(move || port_rx.recv())
        .await
        .expect("join")
        .expect("the app thread died before binding")
        .unwrap_or_else(|e| panic!("the app failed to start: {e}"));
    // The secret the server generated and keeps beside its database, so
    // tests can mint tokens it accepts (expired ones, say); a restart keeps
    // using the same file.
    if settings.auth.secret_from_data_dir {
        let path = parley::auth::secret_path(&settings.storage.sqlite_path);
        settings.auth.token_secret =
            parley::auth::data_dir_secret(&path).expect("the server's token secret");
        settings.auth.secret_from_data_dir = false;
    }
    TestApp {
        port,
        internal_port,
        http: reqwest::Client::new(),
        dir,
        settings,
        stop: Some(stop_tx),
        thread: Some(thread),
        process: None,
    }
}

/// A cluster node: the real `parley` binary as its own process (its own
/// trace recorder, metrics and node name), on a free loopback port, sharing
/// `redis_url` under `prefix` with the other nodes. `extra` adds
/// `PARLEY__...` settings. Returns once `/readyz` answers 200.
pub async fn spawn_node(
    redis_url: &str,
    prefix: &str,
    node: &str,
    extra: &[(&str, &str)],
) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let mut env: Vec<(String, String)> = [
        ("PARLEY__STORAGE__BACKEND", "redis"),
        ("PARLEY__STORAGE__REDIS_URL", redis_url),
        ("PARLEY__STORAGE__REDIS_PREFIX", prefix),
        ("PARLEY__SERVER__NODE_ID", node),
        ("PARLEY__SERVER__WORKERS", "2"),
        ("PARLEY__AUTH__ADMINS", "root"),
        // As in `spawn_app_with`: the scenes add members directly.
        ("PARLEY__LIMITS__GROUP_CONSENT", "false"),
        // Every node must accept every node's tokens.
        (
            "PARLEY__AUTH__TOKEN_SECRET",
            "cluster-test-secret-of-at-least-32-bytes",
        ),
        // Tests wait for recovery: probe Redis again soon.
        ("PARLEY__BREAKER_REDIS__WAIT_OPEN_MS", "200"),
        ("PARLEY__BREAKER_REDIS__MAX_WAIT_MS", "1000"),
        ("PARLEY__BREAKER_REDIS__MINIMUM_CALLS", "3"),
        ("PARLEY__STORAGE__REDIS_TIMEOUT_MS", "1000"),
        ("PARLEY__STORAGE__REDIS_NODE_TTL_SECS", "3"),
        ("PARLEY__TELEMETRY__LOG_FORMAT", "pretty"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut settings = Settings::from_sources("", &[]).expect("default settings");
    settings.server.node_id = node.into();
    // What the node runs with, as far as `TestApp::admin` needs to reach
    // its data (the node itself reads the environment above).
    settings.storage.backend = parley::config::StorageBackend::Redis;
    settings.storage.redis_url = redis_url.into();
    settings.storage.redis_prefix = prefix.into();
    settings
        .auth
        .admins
        .insert(parley::domain::Username::parse("root").unwrap());
    // The port `free_port` gave can be taken before the node binds it (by
    // another test's outgoing connection: the same range): a node that exits
    // before it is ready is started again on a new port, at most three times.
    for attempt in 1..=3 {
        let port = super::free_port();
        let log = dir.path().join("node.log");
        let stdout = std::fs::File::create(&log).expect("node log");
        let stderr = stdout.try_clone().expect("node log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .envs(env.clone())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            // Its log and its last words, kept with the node's temp dir (for
            // a failing test, read them with `TestApp::log`).
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("spawning the parley binary");
        let mut app = TestApp {
            port,
            internal_port: None,
            http: reqwest::Client::new(),
            dir: dir.clone(),
            settings: settings.clone(),
            stop: None,
            thread: None,
            process: Some(child),
        };
        match app.ready(std::time::Duration::from_secs(30)).await {
            Ok(()) => return app,
            Err(NotReady::Exited(status)) if attempt < 3 => {
                eprintln!(
                    "node {node} exited before it was ready ({status}), starting it again: {}",
                    app.log()
                );
            }
            Err(e) => panic!("node {node} never became ready ({e}): {}", app.log()),
        }
    }
    unreachable!("the loop returns or panics")
}

impl TestApp {
    /// Waits until a node process answers `/readyz`; the error says why not
    /// (it exited, or the time ran out, when it is killed).
    async fn ready(&mut self, timeout: std::time::Duration) -> Result<(), NotReady> {
        let deadline = tokio::time::Instant::now() + timeout;
        let url = self.url("/readyz");
        loop {
            // Exited first: another server that took the port could answer.
            if let Some(child) = self.process.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.process = None;
                    return Err(NotReady::Exited(status.to_string()));
                }
            }
            if let Ok(res) = self.http.get(&url).send().await {
                if res.status().is_success() {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                self.kill();
                return Err(NotReady::Late(timeout));
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// What a node process logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// SIGKILL (a node process): it disappears at once, as in a crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// Graceful shutdown, as on SIGTERM; returns what `run_until` returned.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop_inner().await
    }

    async fn stop_inner(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take() {
            Some(t) => tokio::task::spawn_blocking(move || t.join())
                .await
                .expect("join")
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the app thread panicked"))),
            None => Ok(()),
        }
    }

    /// Waits (bounded) for the server to end by itself; returns its result.
    pub async fn join(mut self, timeout: std::time::Duration) -> anyhow::Result<()> {
        let thread = self.thread.take().expect("running");
        let joined =
            tokio::time::timeout(timeout, tokio::task::spawn_blocking(move || thread.join()))
                .await
                .expect("the server did not end by itself")
                .expect("join");
        joined.unwrap_or_else(|_| Err(anyhow::anyhow!("the app thread panicked")))
    }

    /// Stops gracefully, keeping the data for a later start (meanwhile a
    /// test may work on the database directly).
    pub async fn stop_keeping_data(mut self) -> (Settings, Arc<TempDir>) {
        self.stop_inner().await.expect("clean shutdown");
        (self.settings.clone(), self.dir.clone())
    }

    /// Starts on data kept by `stop_keeping_data`.
    pub async fn start_again(settings: Settings, dir: Arc<TempDir>) -> TestApp {
        start(settings, dir).await
    }

    /// Stops gracefully and starts again on the same database (a new port).
    pub async fn restart(mut self) -> TestApp {
        self.stop_inner().await.expect("clean shutdown");
        let settings = self.settings.clone();
        let dir = self.dir.clone();
        start(settings, dir).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(self.url(path)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.expect("request")).await
    }

    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: &'static str,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.expect("request")).await
    }

    async fn read(res: reqwest::Response) -> (u16, Value) {
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, value)
    }

    /// Registers and logs in `name` (password "password123").
    /// Registers `name` and logs in; a name in `auth.admins` (registration
    /// refuses those) is made on the host instead (`admin`).
    pub async fn user(&self, name: &str) -> TestUser {
        let listed = parley::domain::Username::parse(name)
            .is_ok_and(|u| self.settings.auth.admins.contains(&u));
        if listed {
            return self.admin(name).await;
        }
        let (status, body) = self
            .post_credentials("/api/register", name, "password123")
            .await;
        assert_eq!(status, 201, "register {name}: {body}");
        self.login(name).await
    }

    /// An admin as an operator makes one: `parley admin create-user NAME`
    /// against this app's data (a second writer beside the running server),
    /// the password on standard input; then a login.
    pub async fn admin(&self, name: &str) -> TestUser {
        let out = self
            .host_admin(&["create-user", name], "password123\n")
            .await;
        assert!(
            out.status.success(),
            "parley admin create-user {name}: {out:?}"
        );
        self.login(name).await
    }

    /// Runs `parley admin ARGS` against this app's store, `stdin` its input.
    pub async fn host_admin(&self, args: &[&str], stdin: &str) -> std::process::Output {
        let storage = &self.settings.storage;
        let backend = match storage.backend {
            parley::config::StorageBackend::Sqlite => "sqlite",
            parley::config::StorageBackend::Redis => "redis",
        };
        let admins: Vec<String> = self
            .settings
            .auth
            .admins
            .iter()
            .map(|u| u.to_string())
            .collect();
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"));
        cmd.arg("admin")
            .args(args)
            .env("PARLEY__STORAGE__BACKEND", backend)
            .env("PARLEY__STORAGE__SQLITE_PATH", &storage.sqlite_path)
            .env("PARLEY__STORAGE__REDIS_URL", &storage.redis_url)
            .env("PARLEY__STORAGE__REDIS_PREFIX", &storage.redis_prefix)
            .env("PARLEY__AUTH__ADMINS", admins.join(","))
            // The tool signs no tokens; a Redis config must still name a
            // secret to be valid (the nodes' is theirs).
            .env("PARLEY__AUTH__ALLOW_DEV_SECRET", "true")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawning parley admin");
        if let Some(mut input) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            input.write_all(stdin.as_bytes()).await.expect("stdin");
        }
        tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("parley admin within 60 s")
            .expect("parley admin ran")
    }

    pub async fn login(&self, name: &str) -> TestUser {
        let (status, body) = self
            .post_credentials("/api/login", name, "password123")
            .await;
        assert_eq!(status, 200, "login {name}: {body}");
        TestUser {
            token: body["token"].as_str().expect("token").to_string(),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // A test that panicked still stops its server.
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if std::thread::panicking() && self.process.is_some() {
            // A failing cluster test shows what its nodes said.
            eprintln!(
                "---- log of node {} ----\n{}",
                self.settings.server.node_id,
                self.log()
            );
        }
        self.kill();
    }
}
