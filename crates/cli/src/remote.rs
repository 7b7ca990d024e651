//! The daemon from the command line: `cadre daemon` (start one) and the HTTP
//! clients `submit`, `status`, `watch`, `cancel`, `jobs --server` and
//! `apply --server`.
//!
//! The daemon is found through `--server URL` or `CADRE_SERVER`, else the
//! configured `daemon.listen` address; a bearer token comes from
//! `CADRE_TOKEN`. `watch` follows the job's server-sent events and, when the
//! connection drops (a restarted daemon, a flaky network), reconnects with
//! `Last-Event-ID`, so it prints every event exactly once.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cadre_core::{ApplyOutcome, Providers};
use cadre_server::{AppState, DaemonOptions, Token};
use cadre_types::{JobEvent, JobReport, JobStatus};
use clap::Args;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::cli::Session;
use crate::output;

/// Environment variable naming the daemon's URL.
const SERVER_ENV: &str = "CADRE_SERVER";
/// Environment variable holding the bearer token (daemon and clients).
const TOKEN_ENV: &str = "CADRE_TOKEN";
/// Reconnection attempts `watch` makes in a row before giving up.
const WATCH_RETRIES: u32 = 30;
/// Longest pause between reconnection attempts.
const WATCH_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Timeout of one ordinary API request (event streams have none).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `cadre daemon` flags.
#[derive(Debug, Args)]
pub(crate) struct DaemonArgs {
    /// Listen address (default: daemon.listen, 127.0.0.1:7878). A non-loopback
    /// address requires CADRE_TOKEN. Port 0 picks a free port (printed).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// A folder whose workspaces the daemon may touch (repeatable; replaces
    /// daemon.allowed_roots). Without any, every submission is refused.
    #[arg(long = "allow-root", value_name = "DIR")]
    allow_root: Vec<PathBuf>,
    /// Jobs run at once (default: daemon.max_jobs).
    #[arg(long, value_name = "N")]
    max_jobs: Option<u32>,
}

/// Where the daemon is: `--server URL` or `CADRE_SERVER`.
#[derive(Debug, Args)]
pub(crate) struct ServerArg {
    /// The daemon's URL, e.g. http://127.0.0.1:7878 (default: daemon.listen).
    #[arg(long = "server", env = SERVER_ENV, value_name = "URL")]
    pub(crate) server: Option<String>,
}

/// `cadre submit` flags.
#[derive(Debug, Args)]
pub(crate) struct SubmitArgs {
    /// What to do, in one sentence.
    instruction: String,
    /// The workspace root (a path on the daemon's machine, inside one of its allowed roots).
    #[arg(long)]
    workspace: PathBuf,
    /// Queue priority; higher runs first.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i64,
    /// Send worker rounds as message batches (cheaper, slower).
    #[arg(long)]
    batch: bool,
    /// Cost cap in USD.
    #[arg(long, value_name = "USD")]
    budget: Option<f64>,
    /// Only files matching these globs (repeatable).
    #[arg(long = "files", value_name = "GLOB")]
    files: Vec<String>,
    /// Integration check run on the combined change (e.g. "cargo check").
    #[arg(long)]
    check: Option<String>,
    /// Per-file check; {file} is replaced by the candidate file.
    #[arg(long = "file-check")]
    file_check: Option<String>,
    #[command(flatten)]
    server: ServerArg,
}

/// Runs the daemon until SIGINT/SIGTERM; exits 0 after a clean shutdown.
pub(crate) async fn daemon(ctx: &Session, args: &DaemonArgs) -> Result<ExitCode> {
    let config = &ctx.loaded.config;
    let token = match std::env::var(TOKEN_ENV) {
        Ok(secret) => Some(Token::new(&secret)?),
        Err(_) => None,
    };
    let mut options = DaemonOptions::from_config(&config.daemon);
    if !args.allow_root.is_empty() {
        options.allowed_roots.clone_from(&args.allow_root);
    }
    if let Some(n) = args.max_jobs {
        options.max_jobs = n;
    }
    options.token = token;
    let listen = args.listen.as_deref().unwrap_or(&config.daemon.listen);
    let addr: std::net::SocketAddr = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("resolving listen address {listen}"))?
        .next()
        .ok_or_else(|| anyhow!("listen address {listen} resolves to nothing"))?;
    // Refuse before binding, so a refused address is never even opened.
    cadre_server::check_bind(&addr, options.token.as_ref())?;
    let env = |name: &str| std::env::var(name).ok();
    let providers = Providers::from_config(config, &env, None)?;
    let no_roots = options.allowed_roots.is_empty();
    let state = AppState::new(config, ctx.store.clone(), providers, options)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    if no_roots {
        eprintln!(
            "warning: no --allow-root given (and daemon.allowed_roots is empty): every submission will be refused"
        );
    }
    println!("cadre daemon listening on http://{bound}");
    let _ = std::io::stdout().flush();
    let shutdown = async {
        let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        else {
            let _ = tokio::signal::ctrl_c().await;
            return;
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        eprintln!("shutting down: stopping running jobs (they resume on restart)");
    };
    cadre_server::run(listener, state, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Why a request to the daemon failed: the daemon answered with an error
/// (not worth retrying), or it could not be reached (worth retrying).
#[derive(Debug)]
enum CallError {
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
struct Remote {
    base: String,
    http: reqwest::Client,
    /// Never printed.
    token: Option<Arc<str>>,
}

impl Remote {
    fn new(server: Option<&str>, session_listen: &str) -> Result<Remote> {
        let raw = server
            .map(str::to_owned)
            .unwrap_or_else(|| session_listen.to_owned());
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
        Ok(Remote { base, http, token })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

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

    async fn call<T: serde::de::DeserializeOwned>(
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

    async fn report(&self, job: &str) -> Result<JobReport, CallError> {
        self.call(Method::GET, &format!("/v1/jobs/{job}"), None)
            .await
    }
}

fn remote(server: &ServerArg, ctx_listen: &str) -> Result<Remote> {
    Remote::new(server.server.as_deref(), ctx_listen)
}

/// The workspace as the daemon should see it: canonical when it exists here
/// (the usual case: the daemon runs on this machine), else as given if absolute.
fn workspace_path(path: &Path) -> Result<String> {
    match path.canonicalize() {
        Ok(p) => Ok(p.to_string_lossy().into_owned()),
        Err(_) if path.is_absolute() => Ok(path.to_string_lossy().into_owned()),
        Err(e) => bail!("workspace {}: {e}", path.display()),
    }
}

/// `cadre submit`: prints the new job's id.
pub(crate) async fn submit(args: &SubmitArgs, listen: &str) -> Result<ExitCode> {
    let remote = remote(&args.server, listen)?;
    let body = json!({
        "instruction": args.instruction,
        "workspace": workspace_path(&args.workspace)?,
        "files": args.files,
        "check": args.check,
        "file_check": args.file_check,
        "priority": args.priority,
        "batch": args.batch,
        "budget_usd": args.budget,
    });
    let answer: Value = remote.call(Method::POST, "/v1/jobs", Some(body)).await?;
    let id = answer["job_id"]
        .as_str()
        .ok_or_else(|| anyhow!("the daemon's answer has no job_id: {answer}"))?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// `cadre status JOB`: the job's report.
pub(crate) async fn status(
    server: &ServerArg,
    listen: &str,
    job: &str,
    json: bool,
) -> Result<ExitCode> {
    let remote = remote(server, listen)?;
    let report: Value = remote
        .call(Method::GET, &format!("/v1/jobs/{job}"), None)
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let report: JobReport = serde_json::from_value(report)
            .context("the daemon's report has an unexpected shape")?;
        print!("{}", output::render_report(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// `cadre cancel JOB`.
pub(crate) async fn cancel(server: &ServerArg, listen: &str, job: &str) -> Result<ExitCode> {
    let remote = remote(server, listen)?;
    let answer: Value = remote
        .call(Method::POST, &format!("/v1/jobs/{job}/cancel"), None)
        .await?;
    let status = answer["status"].as_str().unwrap_or("unknown");
    if answer["cancel_requested"] == true {
        println!("cancel requested for job {job} (status {status})");
    } else {
        println!("job {job} had already ended (status {status})");
    }
    Ok(ExitCode::SUCCESS)
}

/// `cadre jobs --server URL`.
pub(crate) async fn jobs(
    server: &ServerArg,
    listen: &str,
    limit: u32,
    json: bool,
) -> Result<ExitCode> {
    let remote = remote(server, listen)?;
    let page: Value = remote
        .call(
            Method::GET,
            &format!("/v1/jobs?limit={}", limit.clamp(1, 200)),
            None,
        )
        .await?;
    let rows = page["data"].as_array().cloned().unwrap_or_default();
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no jobs");
    }
    for row in &rows {
        let instruction = row["instruction"].as_str().unwrap_or_default();
        let short: String = instruction.chars().take(80).collect();
        println!(
            "{}  {:<12}  {}",
            row["job_id"].as_str().unwrap_or_default(),
            row["status"].as_str().unwrap_or_default(),
            short
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `cadre apply JOB --server URL`: exit 3 when some files were left alone.
pub(crate) async fn apply(
    server: &ServerArg,
    listen: &str,
    job: &str,
    branch: Option<&str>,
    json: bool,
) -> Result<ExitCode> {
    let remote = remote(server, listen)?;
    let outcome: ApplyOutcome = remote
        .call(
            Method::POST,
            &format!("/v1/jobs/{job}/apply"),
            Some(json!({"branch": branch})),
        )
        .await?;
    output::print_apply(&outcome, json)
}

/// One parsed server-sent event.
#[derive(Debug, Default)]
struct SseFrame {
    id: Option<String>,
    data: String,
}

/// Splits complete frames (ended by a blank line) off the front of `buffer`.
fn take_frames(buffer: &mut Vec<u8>) -> Vec<SseFrame> {
    let mut frames = Vec::new();
    loop {
        let text_end = buffer.windows(2).position(|w| w == b"\n\n");
        let Some(end) = text_end else { break };
        let block: Vec<u8> = buffer.drain(..end + 2).collect();
        let block = String::from_utf8_lossy(&block).replace('\r', "");
        let mut frame = SseFrame::default();
        let mut has_data = false;
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => frame.id = Some(value.to_owned()),
                "data" => {
                    if has_data {
                        frame.data.push('\n');
                    }
                    frame.data.push_str(value);
                    has_data = true;
                }
                _ => {}
            }
        }
        if has_data {
            frames.push(frame);
        }
    }
    frames
}

fn print_event(event: &JobEvent, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(event)?);
    } else {
        println!("[{}] {}", event.kind, event.message);
    }
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Follows one connection of the event stream until the server ends it.
/// Updates `last_id` as events arrive, so a reconnect resumes after them.
async fn follow(
    remote: &Remote,
    job: &str,
    last_id: &mut Option<String>,
    json: bool,
) -> Result<(), CallError> {
    let mut request = remote
        .request(Method::GET, &format!("/v1/jobs/{job}/events"))
        .header("accept", "text/event-stream");
    if let Some(id) = last_id.as_deref() {
        request = request.header("last-event-id", id);
    }
    let mut response = remote.send(request).await?;
    let mut buffer = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| CallError::Transport(format!("the event stream broke: {e}")))?;
        let Some(chunk) = chunk else { return Ok(()) };
        buffer.extend_from_slice(&chunk);
        for frame in take_frames(&mut buffer) {
            match serde_json::from_str::<JobEvent>(&frame.data) {
                Ok(event) => print_event(&event, json)
                    .map_err(|e| CallError::Transport(format!("printing: {e}")))?,
                Err(e) => tracing::warn!(error = %e, "skipping an event that does not parse"),
            }
            if frame.id.is_some() {
                *last_id = frame.id;
            }
        }
    }
}

/// The exit code for a finished job: 0 completed, 2 needs_human, 1 otherwise.
fn exit_for(status: JobStatus) -> ExitCode {
    match status {
        JobStatus::Completed => ExitCode::SUCCESS,
        JobStatus::NeedsHuman => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// `cadre watch JOB`: prints events until the job ends, reconnecting with
/// `Last-Event-ID` when the connection drops; exits with the job's code.
pub(crate) async fn watch(
    server: &ServerArg,
    listen: &str,
    job: &str,
    json: bool,
) -> Result<ExitCode> {
    let remote = remote(server, listen)?;
    let mut last_id: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let outcome = match follow(&remote, job, &mut last_id, json).await {
            Ok(()) => remote.report(job).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(report) if report.status.is_terminal() => {
                if !json {
                    print!("{}", output::render_report(&report));
                }
                return Ok(exit_for(report.status));
            }
            // The stream ended early (the daemon is shutting down): go again.
            Ok(_) => failures = 0,
            Err(e @ CallError::Api { .. }) => return Err(e.into()),
            Err(CallError::Transport(e)) => {
                failures += 1;
                if failures > WATCH_RETRIES {
                    bail!("giving up after {WATCH_RETRIES} reconnection attempts: {e}");
                }
                eprintln!("connection lost ({e}); reconnecting");
            }
        }
        let backoff = Duration::from_millis(250 * 2u64.pow(failures.min(5))).min(WATCH_MAX_BACKOFF);
        tokio::time::sleep(backoff).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_on_blank_lines_and_keep_their_id() {
        let mut buffer = b"id: 4\nevent: note\ndata: {\"a\":1}\n\n: keep-alive\n\nid: 5\ndata: x\ndata: y\n\nid: 6\nda".to_vec();
        let frames = take_frames(&mut buffer);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].id.as_deref(), Some("4"));
        assert_eq!(frames[0].data, "{\"a\":1}");
        assert_eq!(frames[1].data, "x\ny");
        assert_eq!(buffer, b"id: 6\nda");
    }

    #[test]
    fn server_urls_get_a_scheme() {
        let r = Remote::new(Some("127.0.0.1:7878/"), "unused").unwrap();
        assert_eq!(r.base, "http://127.0.0.1:7878");
        let r = Remote::new(None, "127.0.0.1:9").unwrap();
        assert_eq!(r.base, "http://127.0.0.1:9");
        let r = Remote::new(Some("https://cadre.example"), "x").unwrap();
        assert_eq!(r.base, "https://cadre.example");
    }

    #[test]
    fn exit_codes_follow_cadre_run() {
        assert_eq!(exit_for(JobStatus::Completed), ExitCode::SUCCESS);
        assert_eq!(exit_for(JobStatus::NeedsHuman), ExitCode::from(2));
        assert_eq!(exit_for(JobStatus::Cancelled), ExitCode::FAILURE);
        assert_eq!(exit_for(JobStatus::Failed), ExitCode::FAILURE);
    }
}
