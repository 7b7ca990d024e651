//! The dispatcher: claims jobs from the store's queue under leases and runs
//! them, at most `max_jobs` at a time.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cadre_core::{Engine, JobLease};
use cadre_store::{JobRecord, QueueWakeups};
use cadre_types::JobId;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Result;
use crate::assist::Assists;
use crate::security::may_run;
use crate::state::AppState;

/// How often the queue is polled when nothing wakes the dispatcher (jobs
/// submitted through another daemon, leases expiring), on a store without
/// wake-ups (SQLite).
const POLL: Duration = Duration::from_millis(500);

/// The poll on a store whose queue wakes the daemon (PostgreSQL's
/// `LISTEN/NOTIFY`): it only catches what no notification announces (an
/// expired lease, a missed notification), so many daemons do not storm the
/// database.
const SLOW_POLL: Duration = Duration::from_secs(2);

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// How one job's run ended, as the dispatcher needs to know.
#[derive(Debug)]
struct Finished {
    job: JobId,
    /// The lease went to someone else; it must not be released.
    lost_lease: bool,
}

/// Runs until the state's shutdown token fires, then stops every running
/// job, waits up to the grace period and releases the leases it holds.
pub(crate) async fn run(state: AppState) -> Result<()> {
    let options = state.options().clone();
    let shutdown = state.shutdown_token();
    let max_jobs = options.max_jobs as usize;
    // Each running job's task; reaped in the select loop so the set stays
    // bounded by `max_jobs`.
    let mut running: JoinSet<Finished> = JoinSet::new();
    // Each running job's stop token, by task id (to release the lease of a
    // task that panicked) and by job.
    let mut jobs: HashMap<tokio::task::Id, (JobId, CancellationToken)> = HashMap::new();
    // Submissions through other daemons and released leases wake this one
    // (PostgreSQL); without wake-ups the poll is frequent.
    let mut wakeups = match state.store().queue_wakeups().await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for queue notifications; polling instead");
            None
        }
    };
    let live = wakeups.as_ref().is_some_and(QueueWakeups::is_live);
    let mut poll = tokio::time::interval(if live { SLOW_POLL } else { POLL });
    poll.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Subtasks are claimed under this daemon's name (cadre_core's claims):
    // other daemons' jobs get the room its own leave, and every claim it
    // holds is renewed as often as a job's lease.
    state
        .engine()
        .claim_subtasks_as(state.owner(), options.lease_secs);
    let mut assists = Assists::default();
    let every = (Duration::from_secs(options.lease_secs) / 3).max(Duration::from_millis(100));
    let mut renew = tokio::time::interval_at(Instant::now() + every, every);
    renew.set_missed_tick_behavior(MissedTickBehavior::Delay);

    loop {
        while running.len() < max_jobs && !shutdown.is_cancelled() {
            let claimed_at = Instant::now().into_std();
            match claim(&state).await {
                Ok(Some(job)) => {
                    let stop = CancellationToken::new();
                    let id = job.id;
                    let lease = JobLease::new(
                        id,
                        state.owner(),
                        job.claim_count,
                        Duration::from_secs(options.lease_secs),
                        claimed_at,
                    );
                    let span = tracing::info_span!("job", job.id = %id, owner = state.owner());
                    let handle = running.spawn(
                        drive(state.clone(), lease, options.lease_secs, stop.clone())
                            .instrument(span),
                    );
                    jobs.insert(handle.id(), (id, stop));
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming a job failed; retrying at the next poll");
                    break;
                }
            }
        }
        if !shutdown.is_cancelled() {
            assists
                .fill(&state, max_jobs.saturating_sub(running.len()))
                .await;
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                reap(&state, &mut jobs, done).await;
            }
            () = assists.reap_next() => {}
            _ = renew.tick() => {
                if let Err(e) = state.engine().renew_claims().await {
                    tracing::warn!(error = %e, "renewing subtask claims failed; retrying");
                }
            }
            _ = poll.tick() => {}
            () = state.woken() => {}
            () = next_wakeup(&mut wakeups) => {}
        }
    }

    tracing::info!(
        running = running.len(),
        assisting = assists.len(),
        "stopping running jobs"
    );
    for (_, stop) in jobs.values() {
        stop.cancel();
    }
    assists.cancel_all();
    let grace_ends = Instant::now() + options.shutdown_grace;
    let deadline = tokio::time::sleep(options.shutdown_grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            done = running.join_next_with_id() => match done {
                Some(done) => reap(&state, &mut jobs, done).await,
                None => break,
            },
            () = &mut deadline => {
                tracing::warn!(
                    running = running.len(),
                    "jobs still running after the grace period; abandoning them (they resume on restart)"
                );
                running.abort_all();
                while let Some(done) = running.join_next_with_id().await {
                    reap(&state, &mut jobs, done).await;
                }
                break;
            }
        }
    }
    assists.stop(grace_ends).await;
    Ok(())
}

/// The next queue notification; never when there are none.
async fn next_wakeup(wakeups: &mut Option<QueueWakeups>) {
    match wakeups {
        Some(w) => drop(w.next().await),
        None => std::future::pending().await,
    }
}

/// Claims the next job, skipping (and holding until its lease expires) any
/// job whose workspace is outside the allowed roots (e.g. queued under an
/// earlier configuration). A job on a git repository runs in this daemon's
/// own checkout, so only a repository on this machine is held to the roots.
async fn claim(state: &AppState) -> Result<Option<JobRecord>> {
    let options = state.options();
    loop {
        let Some(job) = state
            .store()
            .claim_job(state.owner(), options.lease_secs, now_unix())
            .await?
        else {
            return Ok(None);
        };
        if may_run(&job, &options.allowed_roots) {
            tracing::info!(job.id = %job.id, status = %job.status, claims = job.claim_count, "claimed job");
            return Ok(Some(job));
        }
        tracing::warn!(
            job.id = %job.id,
            workspace = %job.workspace,
            "not running a job whose workspace is outside the allowed roots"
        );
    }
}

/// Bookkeeping after a job task ends: releases the lease unless it was lost
/// or the task already released it.
async fn reap(
    state: &AppState,
    jobs: &mut HashMap<tokio::task::Id, (JobId, CancellationToken)>,
    done: Result<(tokio::task::Id, Finished), tokio::task::JoinError>,
) {
    match done {
        Ok((task, finished)) => {
            jobs.remove(&task);
            tracing::debug!(job.id = %finished.job, lost_lease = finished.lost_lease, "job task ended");
        }
        Err(e) => {
            let Some((job, _)) = jobs.remove(&e.id()) else {
                return;
            };
            if e.is_panic() {
                tracing::error!(job.id = %job, "job task panicked");
            }
            // Aborted at the end of the grace period, or panicked: hand the
            // job back to the queue.
            if let Err(err) = state.store().release_job(job, state.owner()).await {
                tracing::warn!(job.id = %job, error = %err, "releasing the lease failed; it expires on its own");
            }
        }
    }
}

/// Runs one claimed job while heartbeating its lease every third of the
/// lease. If the lease is lost (another daemon took the job after it
/// expired, heartbeats kept failing for a whole lease, or a write of the run
/// found it gone), the job is stopped; its writes are fenced on the lease
/// (`cadre_core::JobLease`), so from then on it writes nothing more.
async fn drive(
    state: AppState,
    job_lease: std::sync::Arc<JobLease>,
    lease_secs: u64,
    stop: CancellationToken,
) -> Finished {
    let job = job_lease.job();
    let engine: Engine = state.engine().clone();
    let store = state.store().clone();
    let owner = state.owner().to_owned();
    let lease = Duration::from_secs(lease_secs);
    let every = (lease / 3).max(Duration::from_millis(100));
    let mut beat = tokio::time::interval_at(Instant::now() + every, every);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last_renewed = Instant::now();
    let mut lost_lease = false;

    let run = engine.run_leased_job(job_lease.clone(), stop.clone());
    tokio::pin!(run);
    let result = loop {
        tokio::select! {
            result = &mut run => break result,
            () = job_lease.lost(), if !lost_lease => {
                tracing::warn!("lost the lease on the job (a write found it expired or taken); stopping it");
                lost_lease = true;
                stop.cancel();
            }
            _ = beat.tick(), if !lost_lease => {
                let sent_at = Instant::now();
                match store.heartbeat_job(job, &owner, lease_secs, now_unix()).await {
                    Ok(true) => {
                        last_renewed = sent_at;
                        job_lease.renewed(sent_at.into_std());
                    }
                    Ok(false) => {
                        tracing::warn!("lost the lease on the job; stopping it");
                        lost_lease = true;
                        job_lease.mark_lost();
                        stop.cancel();
                    }
                    Err(e) if last_renewed.elapsed() >= lease => {
                        tracing::warn!(error = %e, "could not renew the lease for a whole lease period; stopping the job");
                        lost_lease = true;
                        job_lease.mark_lost();
                        stop.cancel();
                    }
                    Err(e) => tracing::warn!(error = %e, "heartbeat failed; retrying"),
                }
            }
        }
    };
    // A write of the run may have found the lease lost as the run ended.
    lost_lease |= job_lease.is_lost();
    match &result {
        Ok(report) => {
            tracing::info!(status = %report.status, stopped = stop.is_cancelled(), "job run ended")
        }
        Err(e) => tracing::warn!(error = %e, "job run failed"),
    }
    if !lost_lease {
        // A job that ended, or was stopped on purpose, goes back to the queue
        // at once (a restarted daemon resumes it). One that failed without
        // reaching a terminal state (e.g. the store was unavailable) keeps its
        // lease until it expires, which spaces out the retries.
        let terminal = match store.get_job_brief(job).await {
            Ok(Some(record)) => record.status.is_terminal(),
            Ok(None) => true,
            Err(_) => false,
        };
        if terminal || stop.is_cancelled() {
            if let Err(e) = store.release_job(job, &owner).await {
                tracing::warn!(error = %e, "releasing the lease failed; it expires on its own");
            }
        } else {
            tracing::warn!(
                "the job stopped before a terminal state; it is retried when its lease expires"
            );
        }
    }
    Finished { job, lost_lease }
}
