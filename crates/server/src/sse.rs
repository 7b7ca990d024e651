//! `GET /v1/jobs/{id}/events`: a job's durable event log as server-sent events.
//!
//! Each event is `id: SEQ`, `event: KIND`, `data: JSON` (the whole
//! [`JobEvent`]). The stream reads the store, not memory, so resuming with
//! `Last-Event-ID: SEQ` (or `?after=SEQ`) replays exactly the events after
//! `SEQ`, even across daemon restarts. The engine's live broadcast is only a
//! wake-up signal; a poll covers events written by another process. The
//! stream ends once the job is terminal and every event up to its terminal
//! status change has been sent, or when the daemon shuts down.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use cadre_store::Store;
use cadre_types::{EventKind, JobEvent, JobId};
use futures::Stream;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events fetched from the store per query.
const PAGE: u32 = 256;
/// Longest wait for new events when nothing wakes the stream.
const POLL: Duration = Duration::from_millis(1000);
/// After seeing the job terminal with no terminal event sent, how long to
/// wait for that event before ending anyway (a crash between the status
/// change and its event leaves no such event).
const SETTLE: Duration = Duration::from_millis(200);

struct Cursor {
    store: Store,
    job: JobId,
    after: i64,
    buffer: VecDeque<JobEvent>,
    live: broadcast::Receiver<JobEvent>,
    shutdown: CancellationToken,
    /// A job-status event with a terminal status was sent.
    terminal_sent: bool,
    /// The job was seen terminal once with nothing left to send.
    settling: bool,
}

fn is_terminal_status(event: &JobEvent) -> bool {
    event.kind == EventKind::JobStatus
        && event
            .data
            .get("status")
            .and_then(|s| s.as_str())
            .and_then(|s| s.parse::<cadre_types::JobStatus>().ok())
            .is_some_and(|s| s.is_terminal())
}

fn to_sse(event: &JobEvent) -> Event {
    let data = serde_json::to_string(event).unwrap_or_else(|_| "{}".to_owned());
    Event::default()
        .id(event.seq.to_string())
        .event(event.kind.as_str())
        .data(data)
}

impl Cursor {
    /// The next event to send, or `None` when the stream is over.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.after = event.seq;
                self.terminal_sent |= is_terminal_status(&event);
                return Some(to_sse(&event));
            }
            if self.shutdown.is_cancelled() {
                return None;
            }
            match self.store.list_events(self.job, self.after, PAGE).await {
                Ok(page) if !page.is_empty() => {
                    self.buffer.extend(page);
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    // The client reconnects with Last-Event-ID and loses nothing.
                    tracing::warn!(job.id = %self.job, error = %e, "reading events failed; ending the stream");
                    return None;
                }
            }
            if self.terminal_sent {
                return None;
            }
            let wait = match self.store.get_job_brief(self.job).await {
                Ok(Some(job)) if job.status.is_terminal() => {
                    if self.settling {
                        return None;
                    }
                    self.settling = true;
                    SETTLE
                }
                Ok(Some(_)) => POLL,
                Ok(None) => return None,
                Err(e) => {
                    tracing::warn!(job.id = %self.job, error = %e, "reading the job failed; ending the stream");
                    return None;
                }
            };
            let deadline = tokio::time::sleep(wait);
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    () = self.shutdown.cancelled() => return None,
                    () = &mut deadline => break,
                    received = self.live.recv() => match received {
                        Ok(event) if event.job_id == self.job => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        // The engine is gone; fall back to polling.
                        Err(broadcast::error::RecvError::Closed) => {
                            (&mut deadline).await;
                            break;
                        }
                    },
                }
            }
        }
    }
}

/// The SSE response for `job`'s events after `after`.
pub(crate) fn events(
    store: Store,
    job: JobId,
    after: i64,
    live: broadcast::Receiver<JobEvent>,
    shutdown: CancellationToken,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let cursor = Cursor {
        store,
        job,
        after,
        buffer: VecDeque::new(),
        live,
        shutdown,
        terminal_sent: false,
        settling: false,
    };
    let stream = futures::stream::unfold(cursor, |mut cursor| async move {
        let event = cursor.next().await?;
        Some((Ok(event), cursor))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
