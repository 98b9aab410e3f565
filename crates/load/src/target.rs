//! The server under load: its address (loopback unless allowed otherwise),
//! HTTP calls for set-up, and WebSocket connections spread over source
//! addresses 127.0.0.x, so that one machine can open more connections to
//! one port than one source address has ephemeral ports.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::error::LoadError;
use super::CommonArgs;

pub type Ws = WebSocketStream<TcpStream>;

/// How long one set-up request or connection attempt may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Target {
    pub base: String,
    host: String,
    addr: SocketAddr,
    sources: Vec<IpAddr>,
    next_source: AtomicUsize,
    http: reqwest::Client,
}

impl Target {
    pub async fn new(args: &CommonArgs) -> Result<Target, LoadError> {
        let url = reqwest::Url::parse(&args.target)
            .map_err(|e| LoadError::Argument(format!("--target {:?}: {e}", args.target)))?;
        if url.scheme() != "http" {
            return Err(LoadError::Argument(format!(
                "--target {:?}: only http:// targets are supported",
                args.target
            )));
        }
        let host = url
            .host_str()
            .ok_or_else(|| LoadError::Argument(format!("--target {:?} has no host", args.target)))?
            .to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| LoadError::Connect {
                what: host.clone(),
                detail: e.to_string(),
            })?
            .collect();
        let addr = *addrs.first().ok_or_else(|| LoadError::Connect {
            what: host.clone(),
            detail: "the name has no address".into(),
        })?;
        if !args.allow_remote && addrs.iter().any(|a| !a.ip().is_loopback()) {
            return Err(LoadError::NotLoopback(args.target.clone()));
        }
        // Other source addresses exist only on loopback; elsewhere the
        // kernel picks the one address that routes.
        let sources = match addr.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => (1..=args.source_ips.max(1))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
                .collect(),
            _ => Vec::new(),
        };
        let http = reqwest::Client::builder()
            .timeout(SETUP_TIMEOUT)
            .build()
            .map_err(|e| LoadError::Setup(e.to_string()))?;
        Ok(Target {
            base: url.as_str().trim_end_matches('/').to_string(),
            host,
            addr,
            sources,
            next_source: AtomicUsize::new(0),
            http,
        })
    }

    /// Opens a session for `token` and waits for its `hello`.
    pub async fn connect(&self, token: &str) -> Result<Ws, LoadError> {
        let attempt = async {
            let socket = match self.addr {
                SocketAddr::V4(_) => TcpSocket::new_v4(),
                SocketAddr::V6(_) => TcpSocket::new_v6(),
            }
            .map_err(|e| LoadError::WebSocket(format!("socket: {e}")))?;
            if !self.sources.is_empty() {
                let i = self.next_source.fetch_add(1, Ordering::Relaxed) % self.sources.len();
                socket
                    .bind(SocketAddr::new(self.sources[i], 0))
                    .map_err(|e| LoadError::WebSocket(format!("bind {}: {e}", self.sources[i])))?;
            }
            let stream = socket
                .connect(self.addr)
                .await
                .map_err(|e| LoadError::Connect {
                    what: self.addr.to_string(),
                    detail: e.to_string(),
                })?;
            let _ = stream.set_nodelay(true);
            let mut request = format!("ws://{}:{}/ws", self.host, self.addr.port())
                .into_client_request()
                .map_err(|e| LoadError::WebSocket(e.to_string()))?;
            let bearer = format!("Bearer {token}").parse().map_err(|_| {
                LoadError::Setup("a token the server issued is not a valid header".into())
            })?;
            request.headers_mut().insert("authorization", bearer);
            let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
                .await
                .map_err(|e| LoadError::WebSocket(format!("upgrade: {e}")))?;
            match ws.next().await {
                Some(Ok(Message::Text(t))) if super::scan::kind(&t) == Some("hello") => Ok(ws),
                other => Err(LoadError::WebSocket(format!(
                    "expected hello, got {other:?}"
                ))),
            }
        };
        tokio::time::timeout(SETUP_TIMEOUT, attempt)
            .await
            .map_err(|_| LoadError::WebSocket("no hello within 30 s".into()))?
    }

    /// Sends `request`; a 429 (the server's HTTP write limits, during
    /// set-up) is sent again after its `Retry-After`, at most
    /// `LIMITED_TRIES` times, so a large set-up from one address waits
    /// instead of failing.
    async fn call(
        &self,
        what: &str,
        mut request: reqwest::RequestBuilder,
    ) -> Result<(u16, Value), LoadError> {
        let mut tries = 0;
        let res = loop {
            let again = request.try_clone();
            let res = request_send(&self.base, what, request).await?;
            tries += 1;
            let wait = (res.status().as_u16() == 429)
                .then(|| retry_after(&res))
                .flatten();
            match (wait, again) {
                (Some(wait), Some(next)) if tries < LIMITED_TRIES => {
                    tokio::time::sleep(wait).await;
                    request = next;
                }
                _ => break res,
            }
        };
        let status = res.status().as_u16();
        let body = res.text().await.unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        ))
    }

    fn expect(what: &str, ok: &[u16], (status, body): (u16, Value)) -> Result<Value, LoadError> {
        if ok.contains(&status) {
            Ok(body)
        } else {
            Err(LoadError::Http {
                what: what.into(),
                status,
                body: body.to_string(),
            })
        }
    }

    /// Registers `name` (an account left by an earlier run with the same
    /// prefix is fine) and logs in; returns the token.
    pub async fn account(&self, name: &str, password: &str) -> Result<String, LoadError> {
        let creds = json!({"username": name, "password": password});
        let url = format!("{}/api/register", self.base);
        let reply = self
            .call("register", self.http.post(url).json(&creds))
            .await?;
        Self::expect(&format!("register {name}"), &[201, 409], reply)?;
        self.login(name, password).await
    }

    pub async fn login(&self, name: &str, password: &str) -> Result<String, LoadError> {
        let creds = json!({"username": name, "password": password});
        let url = format!("{}/api/login", self.base);
        let reply = self.call("login", self.http.post(url).json(&creds)).await?;
        let body = Self::expect(&format!("login {name}"), &[200], reply)?;
        body["token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| LoadError::Setup(format!("login {name}: no token in {body}")))
    }

    /// A group of `members` created by the token's owner: its id and who
    /// is a member now (with consent, those not the creator's contacts are
    /// only invited: see `accept`).
    pub async fn group(
        &self,
        token: &str,
        name: &str,
        members: &[String],
    ) -> Result<(String, Vec<String>), LoadError> {
        let url = format!("{}/api/conversations", self.base);
        let req = self
            .http
            .post(url)
            .bearer_auth(token)
            .json(&json!({"name": name, "members": members}));
        let body = Self::expect(
            "create conversation",
            &[201],
            self.call("create", req).await?,
        )?;
        let id = body["conversationId"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| LoadError::Setup(format!("no conversationId in {body}")))?;
        let joined = body["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        Ok((id, joined))
    }

    /// The token's owner accepts their invitation to the group `id`.
    pub async fn accept(&self, token: &str, id: &str) -> Result<(), LoadError> {
        let req = self
            .http
            .post(format!("{}/api/invitations/{id}/accept", self.base))
            .bearer_auth(token);
        Self::expect("accept invitation", &[204], self.call("accept", req).await?).map(|_| ())
    }

    pub async fn get(&self, path: &str, token: &str) -> Result<Value, LoadError> {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token);
        Self::expect(path, &[200], self.call(path, req).await?)
    }

    /// POST with the answer's status, for callers that count refusals.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: Value,
    ) -> Result<(u16, Value), LoadError> {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(token)
            .json(&body);
        self.call(path, req).await
    }

    /// One sample of the server's `/metrics`: the value of each named
    /// series (labels summed).
    pub async fn metric(&self, names: &[&str]) -> Result<Vec<Option<f64>>, LoadError> {
        let req = self.http.get(format!("{}/metrics", self.base));
        let (status, body) = self.call("/metrics", req).await?;
        let text = match (status, body) {
            (200, Value::String(t)) => t,
            (status, body) => {
                return Err(LoadError::Http {
                    what: "/metrics".into(),
                    status,
                    body: body.to_string(),
                })
            }
        };
        Ok(names
            .iter()
            .map(|n| super::scan::metric_sum(&text, n))
            .collect())
    }

    /// The server's resident memory (bytes) and CPU time so far (seconds),
    /// from its `/metrics` (a Parley server on Linux exports both).
    pub async fn server_stats(&self) -> Result<(f64, f64), LoadError> {
        const RSS: &str = "process_resident_memory_bytes";
        const CPU: &str = "parley_process_cpu_seconds";
        match self.metric(&[RSS, CPU]).await?[..] {
            [Some(rss), Some(cpu)] => Ok((rss, cpu)),
            _ => Err(LoadError::Setup(format!(
                "the server's /metrics has no {RSS} or {CPU} (a Parley server on Linux exports both)"
            ))),
        }
    }
}

/// A close frame as the reports name it: "1008 slow consumer".
pub fn close_reason(frame: Option<tokio_tungstenite::tungstenite::protocol::CloseFrame>) -> String {
    frame
        .map(|c| format!("{} {}", u16::from(c.code), c.reason))
        .unwrap_or_else(|| "close".into())
}

/// Retries of one request refused with 429 before its answer is taken.
const LIMITED_TRIES: u32 = 60;

async fn request_send(
    base: &str,
    what: &str,
    request: reqwest::RequestBuilder,
) -> Result<reqwest::Response, LoadError> {
    request.send().await.map_err(|e| LoadError::Connect {
        what: format!("{base} ({what})"),
        detail: e.to_string(),
    })
}

/// A 429's `Retry-After` in seconds, at most 10 s.
fn retry_after(res: &reqwest::Response) -> Option<std::time::Duration> {
    let secs: u64 = res
        .headers()
        .get("retry-after")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    Some(std::time::Duration::from_secs(secs.clamp(1, 10)))
}
