//! `cadre watch JOB`: a job's events from the daemon, printed as they come,
//! until the job ends; exits like `cadre run` (0 completed, 2 needs_human,
//! 1 otherwise).
//!
//! It follows the job's server-sent events and, when the connection drops (a
//! restarted daemon, a flaky network), reconnects with `Last-Event-ID`, so it
//! prints every event exactly once.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, bail};
use cadre_llm::SseFrameParser;
use cadre_types::JobEvent;

use crate::args::{Cli, ServerArg};
use crate::client::{CallError, DaemonClient};
use crate::output;

/// Reconnection attempts `watch` makes in a row before giving up.
const WATCH_RETRIES: u32 = 30;
/// Longest pause between reconnection attempts.
const WATCH_MAX_BACKOFF: Duration = Duration::from_secs(5);

/// `cadre watch JOB`: prints events until the job ends, reconnecting with
/// `Last-Event-ID` when the connection drops; exits with the job's code.
pub(super) async fn run(cli: &Cli, server: &ServerArg, job: &str, json: bool) -> Result<ExitCode> {
    let client = DaemonClient::connect(cli, server)?;
    let mut last_id: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let outcome = match follow(&client, job, &mut last_id, json).await {
            Ok(()) => client.report(job).await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(report) if report.status.is_terminal() => {
                if !json {
                    print!("{}", output::render_report(&report));
                }
                return Ok(output::job_exit_code(report.status));
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
    client: &DaemonClient,
    job: &str,
    last_id: &mut Option<String>,
    json: bool,
) -> Result<(), CallError> {
    let mut response = client.events(job, last_id.as_deref()).await?;
    let mut parser = SseFrameParser::new();
    loop {
        let chunk = response.chunk().await.map_err(stream_broke)?;
        let Some(chunk) = chunk else { return Ok(()) };
        for frame in parser.push(&chunk).map_err(stream_broke)? {
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

/// A stream cut or garbled mid-way: worth reconnecting.
fn stream_broke(e: impl std::fmt::Display) -> CallError {
    CallError::Transport(format!("the event stream broke: {e}"))
}
