//! Subtask claims as the engine sees them: in a cluster the subtask is the
//! unit of distribution (see `cadre_store`'s `claims` module for the rows).
//!
//! A daemon's engine claims every subtask it runs under its daemon's name
//! ([`Engine::claim_subtasks_as`]); the dispatcher renews the claims its
//! tasks hold every third of a lease ([`Engine::renew_claims`]), so a claim
//! whose task stopped (a run that lost its job's lease, a frozen daemon)
//! expires. The store writer fences every write for a claimed
//! subtask on the claim ([`SubtaskClaims::fence_for`]): a write whose claim
//! was given back fails with [`cadre_store::Error::ClaimLost`] and stores
//! nothing, and the subtask's task stops driving it.
//!
//! The job's owner runs its fan-out as usual, claiming the files it starts;
//! other daemons claim pending files of the job too (the `assist` module).
//! When its own queue is empty, the owner waits for the files others run,
//! gives back claims that expired and runs what came back
//! ([`claims_elsewhere`]). A foreground `cadre run` claims nothing and
//! nothing here applies to it.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cadre_store::{AttemptWrite, ClaimFence, SubtaskRecord};
use cadre_types::{AttemptId, EventKind, SubtaskId, SubtaskStatus};
use serde_json::json;

use crate::Result;
use crate::engine::Engine;
use crate::fanout::NOT_STARTED_BUDGET;
use crate::run::JobRun;

/// How often a job's owner looks again at files other daemons run.
const WAIT_FOR_OTHERS: Duration = Duration::from_millis(250);

/// Who claims subtasks for an engine, and for how long a claim holds
/// without renewal.
#[derive(Debug, Clone)]
pub(crate) struct ClaimIdentity {
    pub owner: String,
    pub lease_secs: u64,
}

/// The claims an engine holds, for fencing its writes.
#[derive(Debug, Default)]
pub(crate) struct SubtaskClaims {
    identity: OnceLock<ClaimIdentity>,
    held: Mutex<Held>,
}

#[derive(Debug, Default)]
struct Held {
    subtasks: HashSet<SubtaskId>,
    /// Attempts started for held subtasks (their ends and calls name only
    /// the attempt).
    attempts: HashMap<AttemptId, SubtaskId>,
}

impl SubtaskClaims {
    /// Who this engine claims as, when it claims at all.
    pub fn identity(&self) -> Option<&ClaimIdentity> {
        self.identity.get()
    }

    /// Notes that this engine holds the claim on `id` until the guard drops.
    pub fn hold(&self, id: SubtaskId) -> HeldClaim<'_> {
        if let Ok(mut held) = self.held.lock() {
            held.subtasks.insert(id);
        }
        HeldClaim { claims: self, id }
    }

    /// The claim the writes of `group` are made under: the held subtasks
    /// they touch (attempts the group starts for a held subtask are noted,
    /// so their ends and calls are fenced too). `None` when they touch none.
    pub fn fence_for(&self, group: &[AttemptWrite]) -> Option<ClaimFence> {
        let identity = self.identity.get()?;
        let mut held = self.held.lock().ok()?;
        if held.subtasks.is_empty() {
            return None;
        }
        let mut subtasks = Vec::new();
        for write in group {
            let touched = match write {
                AttemptWrite::Event(e) => e.subtask_id,
                AttemptWrite::Transition { id, .. } => Some(*id),
                AttemptWrite::StartAttempt(a) => {
                    if let Some(s) = a.subtask_id.filter(|s| held.subtasks.contains(s)) {
                        held.attempts.insert(a.id, s);
                    }
                    a.subtask_id
                }
                AttemptWrite::FinishAttempt { id, .. } => held.attempts.get(id).copied(),
                AttemptWrite::Call(c) => held.attempts.get(&c.attempt_id).copied(),
            };
            if let Some(s) = touched.filter(|s| held.subtasks.contains(s))
                && !subtasks.contains(&s)
            {
                subtasks.push(s);
            }
        }
        (!subtasks.is_empty()).then(|| ClaimFence {
            owner: identity.owner.clone(),
            subtasks,
        })
    }
}

/// A claim held while its subtask's task runs.
pub(crate) struct HeldClaim<'a> {
    claims: &'a SubtaskClaims,
    id: SubtaskId,
}

impl Drop for HeldClaim<'_> {
    fn drop(&mut self) {
        if let Ok(mut held) = self.claims.held.lock() {
            held.subtasks.remove(&self.id);
            let id = self.id;
            held.attempts.retain(|_, s| *s != id);
        }
    }
}

impl Engine {
    /// Makes this engine claim every subtask it runs as `owner`, each claim
    /// holding `lease_secs` past its last renewal
    /// ([`cadre_store::Store::renew_subtask_claims`], the caller's job), so
    /// daemons sharing one store run the subtasks of each other's jobs.
    /// Set once, before the first job runs; later calls are ignored.
    pub fn claim_subtasks_as(&self, owner: &str, lease_secs: u64) {
        let _ = self.writer().claims().identity.set(ClaimIdentity {
            owner: owner.to_owned(),
            lease_secs,
        });
    }

    /// Renews the claims this engine holds (those its tasks run now), so
    /// they hold one more lease; a claim a stopped task left is not
    /// renewed and expires. Returns how many were renewed. The caller
    /// (the daemon's dispatcher) calls it every third of a lease.
    pub async fn renew_claims(&self) -> Result<u64> {
        let Some(identity) = self.claim_identity() else {
            return Ok(0);
        };
        let ids: Vec<SubtaskId> = match self.writer().claims().held.lock() {
            Ok(held) => held.subtasks.iter().copied().collect(),
            Err(_) => return Ok(0),
        };
        if ids.is_empty() {
            return Ok(0);
        }
        Ok(self
            .store()
            .renew_subtask_claims(&identity.owner, &ids, identity.lease_secs)
            .await?)
    }

    /// Who this engine claims subtasks as, if it claims them.
    pub(crate) fn claim_identity(&self) -> Option<&ClaimIdentity> {
        self.writer().claims().identity()
    }
}

/// What the job's owner does once its own queue is empty.
pub(crate) enum Elsewhere {
    /// These files are pending again (given back by another daemon, or
    /// their claim expired): run them.
    Pending(Vec<SubtaskRecord>),
    /// Other daemons still run some of the job's files: look again soon.
    Wait,
    /// Every file of the fan-out is settled.
    Done,
}

/// The owner's look at the files other daemons run: expired claims are
/// given back first (their running attempts marked interrupted), with a
/// note saying so.
pub(crate) async fn claims_elsewhere(run: &JobRun) -> Result<Elsewhere> {
    let store = run.store();
    let reset = store.reset_expired_claims(run.job_id).await?;
    if !reset.is_empty() {
        tracing::warn!(job = %run.job_id, files = reset.len(), "claims expired; running those files here");
        run.engine
            .emit(
                run.job_id,
                None,
                EventKind::Note,
                format!(
                    "{} file(s) went back to pending: the daemon running them stopped renewing its claims",
                    reset.len()
                ),
                json!({"subtasks": reset.iter().map(ToString::to_string).collect::<Vec<_>>()}),
            )
            .await?;
    }
    let (pending, elsewhere) = store.claim_counts(run.job_id, NOT_STARTED_BUDGET).await?;
    if pending > 0 {
        let pending = store
            .list_subtasks_brief(run.job_id)
            .await?
            .into_iter()
            .filter(|s| {
                s.status == SubtaskStatus::Pending && !s.reason.starts_with(NOT_STARTED_BUDGET)
            })
            .collect();
        return Ok(Elsewhere::Pending(pending));
    }
    if elsewhere > 0 {
        return Ok(Elsewhere::Wait);
    }
    Ok(Elsewhere::Done)
}

/// Waits [`WAIT_FOR_OTHERS`] or until the run stops.
pub(crate) async fn pause(run: &JobRun) {
    tokio::select! {
        () = tokio::time::sleep(WAIT_FOR_OTHERS) => {}
        () = run.stop.cancelled() => {}
    }
}

/// Raises the run's spent to what the store records for the job (other
/// daemons spend on it too), at most once a second.
pub(crate) async fn sync_spent(run: &JobRun, last: &mut Option<std::time::Instant>) -> Result<()> {
    if run.budget.cap().is_none() || last.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
        return Ok(());
    }
    *last = Some(std::time::Instant::now());
    run.budget
        .observe_spent(run.store().job_spent_usd(run.job_id).await?);
    Ok(())
}
