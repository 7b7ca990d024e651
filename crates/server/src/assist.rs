//! Assisting other daemons' jobs: with room left after its own jobs, a
//! daemon claims pending files of jobs other daemons of the cluster own
//! ([`cadre_core::Engine::assist_job`]), so one large job spreads over the
//! cluster. Owned by the dispatcher: it fills free room after claiming
//! jobs, reaps finished sessions in its select loop, and stops them on
//! shutdown. Each session is one job; a session that ran nothing (its files
//! were taken, or the budget admits none here) keeps this daemon off that
//! job for [`QUIET`].

use std::collections::HashMap;
use std::time::Duration;

use cadre_types::JobId;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::security::may_run;
use crate::state::AppState;

/// How long a daemon leaves a job alone after a session that ran nothing.
const QUIET: Duration = Duration::from_secs(10);

/// The assist sessions a daemon runs.
#[derive(Default)]
pub(crate) struct Assists {
    sessions: JoinSet<cadre_core::Result<usize>>,
    /// Each session's job and stop token, by task.
    stops: HashMap<tokio::task::Id, (JobId, CancellationToken)>,
    /// Jobs left alone until then.
    quiet: HashMap<JobId, Instant>,
}

impl Assists {
    /// Sessions running.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Starts sessions on jobs other daemons own, up to `room` in all.
    pub async fn fill(&mut self, state: &AppState, room: usize) {
        if room <= self.sessions.len() {
            return;
        }
        let now = Instant::now();
        self.quiet.retain(|_, until| *until > now);
        let wanted = room - self.sessions.len();
        let candidates = match state
            .engine()
            .jobs_to_assist(wanted + self.stops.len() + self.quiet.len())
            .await
        {
            Ok(jobs) => jobs,
            Err(e) => {
                tracing::debug!(error = %e, "looking for jobs to assist failed");
                return;
            }
        };
        for job in candidates {
            if self.sessions.len() >= room {
                break;
            }
            if self.stops.values().any(|(j, _)| *j == job) || self.quiet.contains_key(&job) {
                continue;
            }
            let allowed = match state.store().get_job_brief(job).await {
                Ok(Some(record)) => may_run(&record, &state.options().allowed_roots),
                _ => false,
            };
            if !allowed {
                self.quiet.insert(job, now + QUIET);
                continue;
            }
            let stop = CancellationToken::new();
            let engine = state.engine().clone();
            let span = tracing::info_span!("assist", job.id = %job, owner = state.owner());
            let session = stop.clone();
            let handle = self
                .sessions
                .spawn(async move { engine.assist_job(job, session).await }.instrument(span));
            self.stops.insert(handle.id(), (job, stop));
        }
    }

    /// The next session to end, logged; never when none runs.
    pub async fn reap_next(&mut self) {
        let Some(done) = self.sessions.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (task, outcome) = match done {
            Ok((task, outcome)) => (task, outcome),
            Err(e) => {
                tracing::error!(error = %e, "an assist session panicked");
                (e.id(), Ok(0))
            }
        };
        let Some((job, _)) = self.stops.remove(&task) else {
            return;
        };
        match outcome {
            Ok(0) => {
                self.quiet.insert(job, Instant::now() + QUIET);
            }
            Ok(ran) => tracing::info!(job.id = %job, files = ran, "assisted job"),
            Err(e) => {
                tracing::warn!(job.id = %job, error = %e.chain(), "assisting the job failed");
                self.quiet.insert(job, Instant::now() + QUIET);
            }
        }
    }

    /// Asks every session to stop (each gives its running files back).
    pub fn cancel_all(&self) {
        for (_, stop) in self.stops.values() {
            stop.cancel();
        }
    }

    /// Stops every session and waits for them until `deadline`; those
    /// still running then are aborted (their claims expire and the jobs'
    /// owners run their files).
    pub async fn stop(&mut self, deadline: Instant) {
        self.cancel_all();
        while !self.sessions.is_empty() {
            tokio::select! {
                _ = self.sessions.join_next() => {}
                () = tokio::time::sleep_until(deadline) => {
                    self.sessions.abort_all();
                    while self.sessions.join_next().await.is_some() {}
                }
            }
        }
        self.stops.clear();
    }
}
