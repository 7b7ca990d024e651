//! Assisting: a daemon runs pending subtasks of a job another daemon of the
//! cluster owns. The owner holds the job's lease and runs its job-level
//! steps (planning, the integration check, review, the finish) and its own
//! share of the fan-out; an assisting daemon claims pending files of the
//! job (`crate::claims`), runs their cascade in its own checkout of the
//! job's base, and writes the attempts to the shared store, fenced on its
//! claims. The owner's fan-out waits for those files before it moves on.
//!
//! Budget: each daemon admits files against the job's cap with what the
//! store records as spent (refreshed each second) and its own promises, so
//! the cap can be passed by at most the expected cost of the files other
//! daemons have in flight (`docs/cluster.md`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use cadre_types::{JobId, JobStatus, SubtaskStatus};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::engine::{CancelWatcher, Engine};
use crate::fanout::{Admission, NOT_STARTED_BUDGET, ReadAhead, SubtaskTask, note_subtask_end};
use crate::run::{JobRun, PlannedContext};
use crate::{Error, Result};

impl Engine {
    /// Running jobs other daemons own that have pending files this engine
    /// could claim, by priority then age, at most `limit`. Empty for an
    /// engine that does not claim subtasks.
    pub async fn jobs_to_assist(&self, limit: usize) -> Result<Vec<JobId>> {
        let Some(identity) = self.claim_identity() else {
            return Ok(Vec::new());
        };
        Ok(self
            .store()
            .jobs_to_assist(&identity.owner, NOT_STARTED_BUDGET, limit)
            .await?)
    }

    /// Runs pending subtasks of `job_id`, a job another daemon of the
    /// cluster owns, under this engine's claims, until none is left to
    /// claim (or the budget admits none), or `stop` fires. Returns how many
    /// subtasks it ran. A file it claimed but cannot afford goes back to
    /// `pending` for the owner.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an engine that does not claim subtasks
    /// ([`Engine::claim_subtasks_as`]); the first error of a subtask's task
    /// (the others are stopped and left to their claims' expiry).
    pub async fn assist_job(&self, job_id: JobId, stop: CancellationToken) -> Result<usize> {
        let Some(identity) = self.claim_identity().cloned() else {
            return Err(Error::InvalidInput(
                "only an engine that claims subtasks can run another daemon's files".to_owned(),
            ));
        };
        let job = self.load_job(job_id).await?;
        if job.status != JobStatus::Running || job.plan.is_none() {
            return Ok(0);
        }
        let run = Arc::new(JobRun::start(self, &job, stop).await?);
        // The owner reports the job's expected cost.
        run.estimate_reported.store(true, Ordering::SeqCst);
        let _watcher = CancelWatcher::start(self.store().clone(), job_id, run.halt.clone());
        let planned = Arc::new(PlannedContext::load(&run, &job, None).await?);
        drop(job);
        let pending: Vec<_> = self
            .store()
            .list_subtasks_brief(job_id)
            .await?
            .into_iter()
            .filter(|s| s.status == SubtaskStatus::Pending)
            .collect();
        let admission = Admission::prepare(&run, &planned, &pending).await?;
        drop(pending);
        let limit = self.config().limits.max_concurrency.max(1) as usize * 2;
        let mut set: JoinSet<Result<()>> = JoinSet::new();
        let (mut ran, mut drained, mut synced) = (0, false, None);
        let mut first_error = None;
        loop {
            while !drained
                && set.len() < limit
                && !run.stop.is_cancelled()
                && !run.halt.is_cancelled()
            {
                crate::claims::sync_spent(&run, &mut synced).await?;
                let claimed = self
                    .store()
                    .claim_pending_subtasks(
                        job_id,
                        &identity.owner,
                        limit - set.len(),
                        identity.lease_secs,
                        NOT_STARTED_BUDGET,
                    )
                    .await?;
                drained = claimed.is_empty();
                let mut unaffordable = Vec::new();
                let mut starting = Vec::with_capacity(claimed.len());
                for id in claimed {
                    let estimate = admission.estimate(id);
                    if run.admit(id, &estimate, admission.review_base) {
                        starting.push((id, estimate));
                    } else {
                        unaffordable.push(id);
                    }
                }
                // Read together, after the claim.
                let mut loaded = ReadAhead::default().take(&run, &starting, &[]).await?;
                for (id, estimate) in starting {
                    let task = SubtaskTask {
                        id,
                        estimate,
                        has_history: None,
                        claimed: true,
                        loaded: loaded.remove(&id),
                    };
                    set.spawn(task.run(run.clone(), planned.clone()));
                    ran += 1;
                }
                if !unaffordable.is_empty() {
                    self.store()
                        .release_subtask_claims(&identity.owner, &unaffordable)
                        .await?;
                    drained = true;
                }
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            note_subtask_end(&run, joined, &mut first_error);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(ran),
        }
    }
}
