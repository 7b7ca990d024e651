//! A minimal W3C WebDriver client over `reqwest`, enough for the dashboard
//! tests: sessions on a `chromedriver` child process, navigation, elements,
//! clicks, typing, scripts, alerts, screenshots and the browser console log.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key W3C WebDriver uses for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium and its driver, when both are installed.
pub(crate) struct Browsers {
    chromium: PathBuf,
    chromedriver: PathBuf,
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|p| p.is_file())
}

impl Browsers {
    /// Finds `chromium` and `chromedriver` (or `CADRE_CHROMIUM` and
    /// `CADRE_CHROMEDRIVER`). Without them: `None` with a message on a
    /// developer machine, a panic under CI (where `.ci/run` installs them).
    pub(crate) fn find(test: &str) -> Option<Browsers> {
        let chromium = std::env::var_os("CADRE_CHROMIUM")
            .map(PathBuf::from)
            .or_else(|| which("chromium"));
        let chromedriver = std::env::var_os("CADRE_CHROMEDRIVER")
            .map(PathBuf::from)
            .or_else(|| which("chromedriver"));
        match (chromium, chromedriver) {
            (Some(chromium), Some(chromedriver)) => Some(Browsers {
                chromium,
                chromedriver,
            }),
            _ if std::env::var_os("CI").is_some() => panic!(
                "{test}: chromium and chromedriver are required under CI \
                 (apt-get install chromium chromium-driver)"
            ),
            _ => {
                eprintln!(
                    "SKIPPED {test}: chromium and chromedriver are not installed \
                     (apt-get install chromium chromium-driver, or set CADRE_CHROMIUM \
                     and CADRE_CHROMEDRIVER); CI runs this test"
                );
                None
            }
        }
    }
}

/// A chromedriver process with one headless Chromium session; both end on drop.
pub(crate) struct Driver {
    child: Child,
    client: reqwest::Client,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free port and opens a session in a fresh profile.
    pub(crate) async fn start(browsers: &Browsers, width: u32, height: u32) -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Its own process group, so that drop ends the Chromium it starts too.
        let child = Command::new(&browsers.chromedriver)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let client = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = client.get(format!("{base}/status")).send().await;
            if let Ok(reply) = ready
                && let Ok(body) = reply.json::<Value>().await
                && body["value"]["ready"] == true
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": browsers.chromium, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let mut driver = Driver {
            child,
            client,
            base,
            session: String::new(),
            _profile: profile,
        };
        let value = driver.call("POST", "/session", Some(caps)).await;
        driver.session = value["sessionId"].as_str().unwrap().to_owned();
        driver
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = if path == "/session" {
            format!("{}{path}", self.base)
        } else {
            format!("{}/session/{}{path}", self.base, self.session)
        };
        let request = match method {
            "GET" => self.client.get(url),
            "DELETE" => self.client.delete(url),
            _ => self
                .client
                .post(url)
                .json(&body.unwrap_or_else(|| json!({}))),
        };
        let reply = request.send().await.unwrap();
        let status = reply.status();
        let body: Value = reply.json().await.unwrap();
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {body}"
        );
        body["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    pub(crate) async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub(crate) async fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// The element `css` selects (panics when there is none).
    pub(crate) async fn find(&self, css: &str) -> String {
        let value = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        value[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {value}"))
            .to_owned()
    }

    pub(crate) async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/click"), None)
            .await;
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call("POST", &format!("/element/{id}/clear"), None)
            .await;
        self.call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// The text of the first element `css` selects, or `None`.
    pub(crate) async fn text(&self, css: &str) -> Option<String> {
        self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        )
        .await
        .as_str()
        .map(str::to_owned)
    }

    /// Accepts the open `confirm()`; returns its text.
    pub(crate) async fn accept_alert(&self) -> String {
        let started = Instant::now();
        loop {
            let reply = self
                .client
                .get(format!("{}/session/{}/alert/text", self.base, self.session))
                .send()
                .await
                .unwrap();
            if reply.status().is_success() {
                let text = reply.json::<Value>().await.unwrap()["value"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                self.call("POST", "/alert/accept", None).await;
                return text;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no dialog opened"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to `limit`) until `script` returns a truthy value; returns it.
    pub(crate) async fn wait(
        &self,
        what: &str,
        limit: Duration,
        script: &str,
        args: Value,
    ) -> Value {
        let started = Instant::now();
        loop {
            let value = self.js(script, args.clone()).await;
            if !(value.is_null() || value == false || value == "" || value == 0) {
                return value;
            }
            if started.elapsed() > limit {
                let body = self.text("body").await.unwrap_or_default();
                panic!("timed out waiting for {what}; the page says:\n{body}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG screenshot of the page to `path`.
    pub(crate) async fn screenshot(&self, path: &Path) {
        let value = self.call("GET", "/screenshot", None).await;
        let png = decode_base64(value.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// The browser console entries since the last call: (level, message).
    pub(crate) async fn console(&self) -> Vec<(String, String)> {
        let value = self
            .call("POST", "/se/log", Some(json!({"type": "browser"})))
            .await;
        value
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
}

impl Driver {
    /// Ends the session (and its Chromium) cleanly.
    pub(crate) async fn quit(self) {
        self.call("DELETE", "", None).await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // Ends chromedriver and every Chromium process it started (its
        // process group), even when the test failed before `quit`.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}
