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
use cadre_types::JobEvent;
use reqwest::Method;

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
    client: &DaemonClient,
    job: &str,
    last_id: &mut Option<String>,
    json: bool,
) -> Result<(), CallError> {
    let mut request = client
        .request(Method::GET, &format!("/v1/jobs/{job}/events"))
        .header("accept", "text/event-stream");
    if let Some(id) = last_id.as_deref() {
        request = request.header("last-event-id", id);
    }
    let mut response = client.send(request).await?;
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
}
