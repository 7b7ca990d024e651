//! The simulator as a child process: `cadre sim serve` on a free loopback
//! port ([`Sim`]), its request log read over a minimal HTTP client, and what
//! the tests ask of a logged request ([`SimRequestExt`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::binary::cadre_bin;
use crate::process::{clean_command, describe};

/// A `cadre sim serve` child process on a free loopback port; killed on drop.
#[derive(Debug)]
pub struct Sim {
    child: Child,
    base_url: String,
    host_port: String,
    stderr_log: PathBuf,
}

/// One entry of the simulator's request log (`GET /sim/requests`), as the
/// simulator writes it.
pub use cadre_sim::LoggedRequest as SimRequest;
/// The role the simulator inferred for a request.
pub use cadre_sim::Role as SimRole;

/// What the tests ask of a logged request.
pub trait SimRequestExt {
    /// A worker `POST /v1/messages` that was answered in full with 200.
    fn is_finished_worker_call(&self) -> bool;
    /// True for a worker request about `path`.
    fn is_worker_for(&self, path: &str) -> bool;
}

impl SimRequestExt for SimRequest {
    fn is_finished_worker_call(&self) -> bool {
        self.role == Some(SimRole::Worker) && self.status == 200 && self.complete
    }

    fn is_worker_for(&self, path: &str) -> bool {
        self.role == Some(SimRole::Worker) && self.subtask_path.as_deref() == Some(path)
    }
}

impl Sim {
    /// Writes `scenario_toml` to `dir/scenario.toml`, starts `cadre sim serve`
    /// on `127.0.0.1:0` and waits for its `cadre sim listening on URL` line.
    pub fn start(scenario_toml: &str, dir: &Path) -> Sim {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let scenario = dir.join("scenario.toml");
        std::fs::write(&scenario, scenario_toml)
            .unwrap_or_else(|e| panic!("writing {}: {e}", scenario.display()));
        let stderr_log = dir.join("sim.stderr.log");
        let stderr_file = std::fs::File::create(&stderr_log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stderr_log.display()));
        let mut cmd = clean_command(cadre_bin(), dir);
        cmd.args(["sim", "serve", "--scenario"])
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", describe(&cmd)));
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel::<String>();
        // Reads the first line, then keeps draining so the sim never blocks on stdout.
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut lines = BufReader::new(stdout).lines();
            let first = lines
                .next()
                .and_then(std::result::Result::ok)
                .unwrap_or_default();
            let _ = tx.send(first);
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let prefix = "cadre sim listening on ";
        let Some(url) = line.trim().strip_prefix(prefix).map(str::to_owned) else {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(&stderr_log).unwrap_or_default();
            panic!(
                "`cadre sim serve` did not announce its address (first stdout line {line:?})\n--- sim stderr ---\n{err}"
            );
        };
        let host_port = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Sim {
            child,
            base_url: url.trim_end_matches('/').to_owned(),
            host_port,
            stderr_log,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET path` on the simulator; returns the body (panics unless 200).
    pub fn get(&self, path: &str) -> String {
        let (status, body) = http_get(&self.host_port, path);
        assert_eq!(
            status, 200,
            "GET {path} on the sim answered {status}: {body}"
        );
        body
    }

    /// The request log, in arrival order.
    pub fn requests(&self) -> Vec<SimRequest> {
        let body = self.get("/sim/requests");
        let value: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET /sim/requests is not JSON ({e}): {body}"));
        let list = match value {
            serde_json::Value::Array(_) => value,
            serde_json::Value::Object(mut map) => map.remove("requests").unwrap_or_default(),
            _ => serde_json::Value::Null,
        };
        let mut requests: Vec<SimRequest> = serde_json::from_value(list)
            .unwrap_or_else(|e| panic!("GET /sim/requests: unexpected shape ({e}): {body}"));
        requests.sort_by_key(|r| r.seq);
        requests
    }

    /// Worker requests about `path`.
    pub fn worker_requests_for(&self, path: &str) -> Vec<SimRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_worker_for(path))
            .collect()
    }

    /// The simulator's stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET (the harness stays synchronous and dependency-light).
fn http_get(host_port: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(host_port)
        .unwrap_or_else(|e| panic!("connecting to the sim at {host_port}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("GET {path}: reading the answer: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no header end"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("GET {path}: bad status line in {head:?}"));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..eol]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        rest = &rest[eol + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
    out
}

impl Sim {
    /// Polls the request log until `pred` holds for some request; panics
    /// after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&SimRequest) -> bool,
    ) -> SimRequest {
        let started = Instant::now();
        loop {
            if let Some(found) = self.requests().into_iter().find(|r| pred(r)) {
                return found;
            }
            assert!(
                started.elapsed() < timeout,
                "the simulator never saw {what} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n"),
            b"Wikipedia"
        );
        assert_eq!(dechunk(b"0\r\n\r\n"), b"");
    }
}
