//! A real headless Chromium driven over the W3C WebDriver protocol: a
//! `chromedriver` process per test on a free loopback port, one browser
//! session per simulated user. The protocol is plain JSON over HTTP, so a
//! few calls cover what the tests need (navigate, find, click, type, run a
//! script, screenshot, read the console).
//!
//! Screenshots are test artifacts: they are written to
//! `target/tmp/browser-artifacts/<test>-<label>.png` and kept after the run.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

/// The W3C WebDriver key of an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long a wait for something on a page may take.
const PAGE_WAIT: Duration = Duration::from_secs(20);

pub struct Chromedriver {
    port: u16,
    child: Child,
    http: reqwest::Client,
}

/// Where the browser and its driver are, or why they are not. Under `CI`
/// a missing one fails the test with what to install; elsewhere the test is
/// skipped with the reason printed.
fn binaries() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join(name))
                .find(|p| p.is_file())
        })
    };
    match (find("chromium"), find("chromedriver")) {
        (Some(browser), Some(driver)) => Some((browser, driver)),
        _ => {
            let why = "chromium and chromedriver are not installed \
                       (Debian: apt-get install chromium chromium-driver)";
            if std::env::var_os("CI").is_some() {
                panic!("{why}");
            }
            eprintln!("skipping: {why}");
            None
        }
    }
}

impl Chromedriver {
    /// None (after printing why) when Chromium is not installed and `CI` is unset.
    pub async fn start() -> Option<Chromedriver> {
        let (_, binary) = binaries()?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .expect("http client");
        // A port free when picked can be taken before chromedriver binds it
        // (other tests start servers too): a driver that exits is started
        // again on another port.
        let mut why = String::new();
        for _ in 0..3 {
            let port = super::free_port();
            let log = std::env::temp_dir().join(format!("chromedriver-{port}.log"));
            // A process group of its own: the browsers it starts are in it
            // too, so dropping the driver kills them even when a test
            // panicked before it could end its sessions.
            let child = Command::new(&binary)
                .process_group(0)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .arg(format!("--log-path={}", log.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning chromedriver");
            let mut driver = Chromedriver {
                port,
                child,
                http: http.clone(),
            };
            match driver.ready(Duration::from_secs(30)).await {
                Ok(()) => return Some(driver),
                Err(e) => {
                    why = format!("{e}; its log: {}", log.display());
                    drop(driver);
                }
            }
        }
        panic!("chromedriver did not start three times: {why}");
    }

    /// Waits for `/status` to say ready; an error if the process exits or
    /// the time runs out.
    async fn ready(&mut self, timeout: Duration) -> Result<(), String> {
        let status = format!("http://127.0.0.1:{}/status", self.port);
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(exit)) = self.child.try_wait() {
                return Err(format!("chromedriver exited ({exit})"));
            }
            let answer = self
                .http
                .get(&status)
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            if let Ok(res) = answer {
                let body: Value = res.json().await.unwrap_or_default();
                if body["value"]["ready"] == true {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("chromedriver did not answer within {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A new browser window of `width`×`height` CSS pixels; `name` prefixes
    /// its screenshots.
    pub async fn browser(&self, name: &str, width: u32, height: u32) -> Browser {
        let (chromium, _) = binaries().expect("chromium was found when the driver started");
        let mut options = json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                // Tests run as root in a container: Chromium's sandbox needs a user namespace.
                "--no-sandbox",
                "--disable-dev-shm-usage",
                "--disable-gpu",
                "--no-first-run",
                format!("--window-size={width},{height}"),
            ],
        });
        if width < 500 {
            // A desktop window is never narrower than 500 px: phone sizes
            // are emulated (viewport, touch, mobile user agent).
            options["mobileEmulation"] = json!({"deviceMetrics": {
                "width": width, "height": height, "pixelRatio": 1.0, "touch": true, "mobile": true,
            }});
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let url = format!("http://127.0.0.1:{}/session", self.port);
        let res: Value = self
            .http
            .post(&url)
            .json(&caps)
            .send()
            .await
            .expect("new WebDriver session")
            .json()
            .await
            .expect("new session answer");
        let id = res["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver refused a session: {res}"));
        Browser {
            http: self.http.clone(),
            base: format!("{url}/{id}"),
            name: name.to_string(),
        }
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: the driver and every browser it started.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's process group; no memory is touched.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
    }
}

pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`
    base: String,
    name: String,
}

impl Browser {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path}: {e}"))
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {path} answer: {e}"));
        res["value"].clone()
    }

    /// Like `call`, but a WebDriver error (no such element, not
    /// interactable, …) is returned instead of panicking, for retries.
    async fn try_call(&self, path: &str, body: Value) -> Result<Value, String> {
        let v = self.call(reqwest::Method::POST, path, Some(body)).await;
        match v.get("error").and_then(Value::as_str) {
            Some(e) => Err(format!("{e}: {}", v["message"])),
            None => Ok(v),
        }
    }

    /// Performs the actions of one WebDriver input source (a pointer, the
    /// keyboard).
    async fn perform(&self, source: Value) -> Result<Value, String> {
        self.try_call("/actions", json!({ "actions": [source] }))
            .await
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page.
    pub async fn script(&self, script: &str, args: Value) -> Value {
        let v = self
            .call(
                reqwest::Method::POST,
                "/execute/sync",
                Some(json!({ "script": script, "args": args })),
            )
            .await;
        if let Some(e) = v.get("error") {
            panic!("script failed ({e}): {}\n{script}", v["message"]);
        }
        v
    }

    /// Polls `script` until it returns something other than null, false or
    /// an empty string, and returns that.
    pub async fn wait_js(&self, what: &str, script: &str) -> Value {
        super::wait_for(what, PAGE_WAIT, || async {
            let v = self.script(script, json!([])).await;
            let empty = v.is_null() || v == false || v == "";
            (!empty).then_some(v)
        })
        .await
    }

    /// Waits until an element matches `css`, and returns its text.
    pub async fn wait_text(&self, what: &str, css: &str) -> Value {
        // A JSON string is a JavaScript string literal, whatever quotes `css` holds.
        let script = format!(
            "const n = document.querySelector({}); return n ? n.textContent : null;",
            json!(css)
        );
        self.wait_js(what, &script).await
    }

    /// Waits until `css` matches a displayed element, and returns its reference.
    async fn displayed(&self, css: &str) -> String {
        let what = format!("{css} to be displayed on {}", self.name);
        super::wait_for(&what, PAGE_WAIT, || async {
            let found = self
                .try_call("/element", json!({"using": "css selector", "value": css}))
                .await
                .ok()?;
            let id = found[ELEMENT].as_str()?.to_string();
            let shown = self
                .call(
                    reqwest::Method::GET,
                    &format!("/element/{id}/displayed"),
                    None,
                )
                .await;
            (shown == true).then_some(id)
        })
        .await
    }

    /// A real click (the browser dispatches mouse events at the element's
    /// centre), retried while the element is not yet interactable.
    pub async fn click(&self, css: &str) {
        let what = format!("a click on {css} on {}", self.name);
        super::wait_for(&what, PAGE_WAIT, || async {
            let id = self.displayed(css).await;
            self.try_call(&format!("/element/{id}/click"), json!({}))
                .await
                .ok()
                .map(|_| ())
        })
        .await;
    }

    /// Moves the mouse to `dx`, `dy` CSS pixels from the centre of the
    /// element matching `css` (real pointer events: hover, pointermove).
    pub async fn hover(&self, css: &str, dx: i64, dy: i64) {
        let id = self.displayed(css).await;
        let moved = self
            .perform(json!({
                "type": "pointer",
                "id": "mouse",
                "parameters": {"pointerType": "mouse"},
                "actions": [{"type": "pointerMove", "origin": {ELEMENT: id}, "x": dx, "y": dy, "duration": 0}],
            }))
            .await;
        assert!(moved.is_ok(), "hovering over {css}: {moved:?}");
    }

    /// Presses and releases one key (a WebDriver key code such as
    /// `"\u{E012}"`, ArrowLeft) on whatever has focus.
    pub async fn press(&self, key: &str) {
        let pressed = self
            .perform(json!({
                "type": "key",
                "id": "keyboard",
                "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}],
            }))
            .await;
        assert!(pressed.is_ok(), "pressing {key:?}: {pressed:?}");
    }

    /// Clears the field and types `text` key by key (real input events).
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.displayed(css).await;
        let clear = self
            .try_call(&format!("/element/{id}/clear"), json!({}))
            .await;
        assert!(clear.is_ok(), "clearing {css}: {clear:?}");
        let typed = self
            .try_call(&format!("/element/{id}/value"), json!({ "text": text }))
            .await;
        assert!(typed.is_ok(), "typing into {css}: {typed:?}");
    }

    /// Sends `keys` to `css` (focusing it) without clearing anything: the
    /// keyboard on elements that are not fields. WebDriver names special
    /// keys by code point: `ENTER` is "\u{E007}".
    pub async fn press_on(&self, css: &str, keys: &str) {
        let id = self.displayed(css).await;
        let sent = self
            .try_call(&format!("/element/{id}/value"), json!({ "text": keys }))
            .await;
        assert!(sent.is_ok(), "keys to {css}: {sent:?}");
    }

    /// The text of the first element matching `css`, once it is displayed.
    pub async fn text(&self, css: &str) -> String {
        let id = self.displayed(css).await;
        self.call(reqwest::Method::GET, &format!("/element/{id}/text"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Saves a PNG of the viewport as `<browser name>-<label>.png` in the
    /// artifacts directory, and returns its path.
    pub async fn screenshot(&self, label: &str) -> PathBuf {
        let b64 = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("screenshot is base64");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).expect("artifacts dir");
        let path = dir.join(format!("{}-{label}.png", self.name));
        std::fs::write(&path, png).expect("writing screenshot");
        path
    }

    /// Console messages at level SEVERE since the last call (script
    /// errors, CSP violations, failed loads).
    pub async fn console_errors(&self) -> Vec<String> {
        let logs = self
            .call(
                reqwest::Method::POST,
                "/se/log",
                Some(json!({"type": "browser"})),
            )
            .await;
        // Anything but a list means the log could not be read: that must
        // not pass as "no errors".
        let entries = logs
            .as_array()
            .unwrap_or_else(|| panic!("reading the console of {}: {logs}", self.name));
        entries
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Ends the session (closing its Chromium).
    pub async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

fn artifacts_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts")
}
