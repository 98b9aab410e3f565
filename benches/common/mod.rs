//! What the benchmarks share: an in-process server on a loopback port and
//! account set-up over real HTTP.

#![allow(dead_code)]

use std::thread::JoinHandle;

use parley::app::Application;
use parley::config::Settings;
use serde_json::{json, Value};

pub struct Server {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// Starts the server (release build, SQLite in a temp dir) with `tweak`
/// applied to the defaults.
pub fn start(tweak: impl FnOnce(&mut Settings)) -> Server {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = Settings::from_sources("", &[]).expect("settings");
    settings.server.listen = "127.0.0.1:0".parse().expect("addr");
    settings.storage.sqlite_path = dir.path().join("bench.db");
    // A benchmark's few sessions send as fast as the server goes: the
    // per-session frame limit (an abuse guard) is off, as for `parley load`.
    settings.limits.frames_per_sec = 0;
    tweak(&mut settings);
    let (port_tx, port_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let app = Application::build(settings).await?;
            port_tx.send(app.port()).expect("port");
            app.run_until(async {
                let _ = stop_rx.await;
            })
            .await
        })
    });
    let port = port_rx.recv().expect("server port");
    Server {
        port,
        stop: Some(stop_tx),
        thread: Some(thread),
        _dir: dir,
    }
}

impl Server {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Registers `name` and returns its token.
pub async fn token(http: &reqwest::Client, base: &str, name: &str) -> String {
    let creds = json!({"username": name, "password": "password123"});
    let res = http
        .post(format!("{base}/api/register"))
        .json(&creds)
        .send()
        .await
        .expect("register");
    assert_eq!(res.status().as_u16(), 201, "register {name}");
    let res: Value = http
        .post(format!("{base}/api/login"))
        .json(&creds)
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login body");
    res["token"].as_str().expect("token").to_string()
}

/// Creates a group of `members` (the token's owner included) and returns its id.
pub async fn group(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    name: &str,
    members: &[String],
) -> String {
    let conv: Value = http
        .post(format!("{base}/api/conversations"))
        .bearer_auth(token)
        .json(&json!({"name": name, "members": members}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("conversation");
    conv["conversationId"].as_str().expect("id").to_string()
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A session for `token` on the server at `port`.
pub async fn connect(port: u16, token: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = format!("ws://127.0.0.1:{port}/ws")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    tokio_tungstenite::connect_async(req)
        .await
        .expect("connect")
        .0
}

/// The load generator's runtime: two threads, beside the server's own.
pub fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}
