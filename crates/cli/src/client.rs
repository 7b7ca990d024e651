//! The daemon's HTTP client, shared by `cadre submit`, `status`, `watch`,
//! `cancel`, `jobs --server` and `apply --server`: one typed method per
//! endpoint, reading and writing the server's own [`cadre_types::api`] types.
//!
//! The daemon is found through `--server URL` or `CADRE_SERVER`, else the
//! configured `daemon.listen` address; a bearer token comes from
//! `CADRE_TOKEN` and is never printed.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use cadre_core::ApplyOutcome;
use cadre_types::JobReport;
use cadre_types::api::{
    ApplyRequest, CancelResponse, ErrorBody, ErrorType, JobListQuery, JobPage, SubmitRequest,
    SubmitResponse,
};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;

use crate::args::{Cli, SERVER_ENV, ServerArg, TOKEN_ENV};
use crate::session::load_config;

/// Timeout of one ordinary API request (event streams have none).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request to the daemon failed: the daemon answered with an error
/// (not worth retrying), or it could not be reached (worth retrying).
#[derive(Debug)]
pub(crate) enum CallError {
    /// The daemon answered `status`; `kind` is `None` when the body was not
    /// the API's error shape (a proxy's page, say), and `message` is then
    /// the start of the body.
    Api {
        status: StatusCode,
        kind: Option<ErrorType>,
        message: String,
    },
    /// No answer, a cut answer, or one that does not parse.
    Transport(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Api {
                status,
                kind,
                message,
            } => {
                let kind = kind.as_ref().map_or("unknown", ErrorType::as_str);
                write!(f, "the daemon answered {status} ({kind}): {message}")
            }
            CallError::Transport(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for CallError {}

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

    /// The client of `server`, else of `default_listen` (a URL or `host:port`).
    pub(crate) fn new(server: Option<&str>, default_listen: &str) -> Result<DaemonClient> {
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

    /// `POST /v1/jobs`: queue a job.
    pub(crate) async fn submit(
        &self,
        request: &SubmitRequest,
    ) -> Result<SubmitResponse, CallError> {
        self.call(self.request(Method::POST, "/v1/jobs").json(request))
            .await
    }

    /// `GET /v1/jobs`: one page of jobs, newest first.
    pub(crate) async fn jobs(&self, query: &JobListQuery) -> Result<JobPage, CallError> {
        self.call(self.request(Method::GET, "/v1/jobs").query(query))
            .await
    }

    /// `GET /v1/jobs/{job}`: the job's report.
    pub(crate) async fn report(&self, job: &str) -> Result<JobReport, CallError> {
        self.call(self.request(Method::GET, &format!("/v1/jobs/{job}")))
            .await
    }

    /// `POST /v1/jobs/{job}/cancel`.
    pub(crate) async fn cancel(&self, job: &str) -> Result<CancelResponse, CallError> {
        self.call(self.request(Method::POST, &format!("/v1/jobs/{job}/cancel")))
            .await
    }

    /// `POST /v1/jobs/{job}/apply`.
    pub(crate) async fn apply(
        &self,
        job: &str,
        request: &ApplyRequest,
    ) -> Result<ApplyOutcome, CallError> {
        self.call(
            self.request(Method::POST, &format!("/v1/jobs/{job}/apply"))
                .json(request),
        )
        .await
    }

    /// `GET /v1/jobs/{job}/events`: the open event stream (no timeout),
    /// resuming after `last_event_id` when given.
    pub(crate) async fn events(
        &self,
        job: &str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, CallError> {
        let mut request = self
            .request(Method::GET, &format!("/v1/jobs/{job}/events"))
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        self.send(request).await
    }

    /// A request to `path` (which starts with `/`), with the token if any.
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`; an answer other than 2xx is a [`CallError::Api`].
    async fn send(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, CallError> {
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
                kind: Some(body.error.kind),
                message: body.error.message,
            },
            Err(_) => CallError::Api {
                status,
                kind: None,
                message: text.chars().take(500).collect(),
            },
        })
    }

    /// One ordinary request (with the request timeout) and its JSON answer.
    async fn call<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, CallError> {
        let response = self.send(request.timeout(REQUEST_TIMEOUT)).await?;
        let text = response.text().await.map_err(|e| {
            CallError::Transport(format!("reading the answer from {}: {e}", self.base))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| CallError::Transport(format!("unexpected answer from {}: {e}", self.base)))
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

    #[test]
    fn api_errors_name_their_type_or_unknown() {
        let typed = CallError::Api {
            status: StatusCode::NOT_FOUND,
            kind: Some(ErrorType::NotFound),
            message: "job x not found".to_owned(),
        };
        assert_eq!(
            typed.to_string(),
            "the daemon answered 404 Not Found (not_found): job x not found"
        );
        let untyped = CallError::Api {
            status: StatusCode::BAD_GATEWAY,
            kind: None,
            message: "<html>".to_owned(),
        };
        assert_eq!(
            untyped.to_string(),
            "the daemon answered 502 Bad Gateway (unknown): <html>"
        );
    }
}
