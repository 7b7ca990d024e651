//! The daemon's HTTP client, shared by `cadre submit`, `status`, `watch`,
//! `cancel`, `jobs --server` and `apply --server`.
//!
//! The daemon is found through `--server URL` or `CADRE_SERVER`, else the
//! configured `daemon.listen` address; a bearer token comes from
//! `CADRE_TOKEN` and is never printed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cadre_types::JobReport;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use crate::args::{Cli, ServerArg};
use crate::session::load_config;

/// Environment variable naming the daemon's URL.
pub(crate) const SERVER_ENV: &str = "CADRE_SERVER";
/// Environment variable holding the bearer token (daemon and clients).
pub(crate) const TOKEN_ENV: &str = "CADRE_TOKEN";
/// Timeout of one ordinary API request (event streams have none).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request to the daemon failed: the daemon answered with an error
/// (not worth retrying), or it could not be reached (worth retrying).
#[derive(Debug)]
pub(crate) enum CallError {
    Api {
        status: StatusCode,
        kind: String,
        message: String,
    },
    Transport(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Api {
                status,
                kind,
                message,
            } => write!(f, "the daemon answered {status} ({kind}): {message}"),
            CallError::Transport(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for CallError {}

/// The API's error body.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Debug, Deserialize)]
struct ErrorDetail {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// A client of one daemon.
#[derive(Debug, Clone)]
pub(crate) struct DaemonClient {
    base: String,
    http: reqwest::Client,
    /// Never printed.
    token: Option<Arc<str>>,
}

impl DaemonClient {
    /// The client of the daemon `server` names, else of the configured
    /// `daemon.listen` address (the configuration is loaded either way, so
    /// a broken configuration is reported the same with or without `--server`).
    pub(crate) fn connect(cli: &Cli, server: &ServerArg) -> Result<DaemonClient> {
        let listen = load_config(cli)?.config.daemon.listen;
        DaemonClient::new(server.server.as_deref(), &listen)
    }

    fn new(server: Option<&str>, default_listen: &str) -> Result<DaemonClient> {
        let raw = server
            .map(str::to_owned)
            .unwrap_or_else(|| default_listen.to_owned());
        let raw = raw.trim().trim_end_matches('/');
        if raw.is_empty() {
            bail!("no daemon address: pass --server URL or set {SERVER_ENV}");
        }
        let base = if raw.contains("://") {
            raw.to_owned()
        } else {
            format!("http://{raw}")
        };
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        let token = std::env::var(TOKEN_ENV)
            .ok()
            .filter(|t| !t.is_empty())
            .map(Arc::from);
        Ok(DaemonClient { base, http, token })
    }

    /// A request to `path` (which starts with `/`), with the token if any.
    pub(crate) fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`; an answer other than 2xx is a [`CallError::Api`].
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CallError> {
        let response = request.send().await.map_err(|e| {
            CallError::Transport(format!("cannot reach the daemon at {}: {e}", self.base))
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => CallError::Api {
                status,
                kind: body.error.kind,
                message: body.error.message,
            },
            Err(_) => CallError::Api {
                status,
                kind: "unknown".to_owned(),
                message: text.chars().take(500).collect(),
            },
        })
    }

    /// One JSON request and its JSON answer.
    pub(crate) async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<T, CallError> {
        let mut request = self.request(method, path).timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = self.send(request).await?;
        let text = response.text().await.map_err(|e| {
            CallError::Transport(format!("reading the answer from {}: {e}", self.base))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| CallError::Transport(format!("unexpected answer from {}: {e}", self.base)))
    }

    /// `GET /v1/jobs/{job}`: the job's report.
    pub(crate) async fn report(&self, job: &str) -> Result<JobReport, CallError> {
        self.call(Method::GET, &format!("/v1/jobs/{job}"), None)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_get_a_scheme() {
        let r = DaemonClient::new(Some("127.0.0.1:7878/"), "unused").unwrap();
        assert_eq!(r.base, "http://127.0.0.1:7878");
        let r = DaemonClient::new(None, "127.0.0.1:9").unwrap();
        assert_eq!(r.base, "http://127.0.0.1:9");
        let r = DaemonClient::new(Some("https://cadre.example"), "x").unwrap();
        assert_eq!(r.base, "https://cadre.example");
    }
}
