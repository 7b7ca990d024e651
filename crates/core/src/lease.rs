//! The lease a daemon runs a job under, as the engine sees it: every write
//! the run makes for the job is fenced on it (see `cadre_store`'s `fence`
//! module), so a daemon frozen past its lease and thawed after another
//! daemon took the job writes nothing more for it.
//!
//! The dispatcher claims the job, builds its [`JobLease`] and hands it to
//! [`Engine::run_leased_job`]; it renews the local deadline after each
//! heartbeat and stops the run when the lease is lost. The engine keeps the
//! leases of the jobs it runs in a registry ([`Leases`]), by job: the store
//! writer attaches a lease's fence to every group written for its job, and
//! job status changes and the job's result carry it too. A write whose fence
//! fails marks the lease lost, which the dispatcher sees at once.
//!
//! A local deadline guard refuses writes once the last renewal plus one
//! lease has passed (a thawed daemon's tasks fail before their first round
//! trip); it is a cheap extra, the store's check is the fence. A foreground
//! `cadre run` has no lease and nothing here applies to it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cadre_store::{AttemptWrite, LeaseFence};
use cadre_types::{JobId, JobReport, JobStatus};
use tokio_util::sync::CancellationToken;

use crate::engine::Engine;
use crate::{Error, Result};

/// One claim of one job by one daemon.
#[derive(Debug)]
pub struct JobLease {
    fence: LeaseFence,
    lease: Duration,
    /// The last renewal's send time plus one lease: no write is made after.
    valid_until: Mutex<Instant>,
    /// Fired once the lease is known lost.
    lost: CancellationToken,
}

impl JobLease {
    /// The lease `owner` claimed on `job` (its `claim_count` after the
    /// claim is `claim`) for `lease`, with the claim sent at `claimed_at`.
    pub fn new(
        job: JobId,
        owner: &str,
        claim: u32,
        lease: Duration,
        claimed_at: Instant,
    ) -> Arc<Self> {
        Arc::new(Self {
            fence: LeaseFence {
                job,
                owner: owner.to_owned(),
                claim,
            },
            lease,
            valid_until: Mutex::new(claimed_at + lease),
            lost: CancellationToken::new(),
        })
    }

    /// A heartbeat sent at `sent_at` renewed the lease.
    pub fn renewed(&self, sent_at: Instant) {
        if let Ok(mut until) = self.valid_until.lock() {
            *until = (*until).max(sent_at + self.lease);
        }
    }

    /// The lease is gone (a heartbeat or a fenced write found it taken or
    /// expired): no write is made under it any more.
    pub fn mark_lost(&self) {
        self.lost.cancel();
    }

    /// Whether the lease is known lost.
    pub fn is_lost(&self) -> bool {
        self.lost.is_cancelled()
    }

    /// Resolves once the lease is known lost.
    pub async fn lost(&self) {
        self.lost.cancelled().await;
    }

    /// The job.
    pub fn job(&self) -> JobId {
        self.fence.job
    }

    /// The fence for a write now, or [`cadre_store::Error::LeaseLost`] when
    /// the lease is known lost or its local deadline has passed (it is then
    /// marked lost).
    pub(crate) fn fence(&self) -> Result<&LeaseFence> {
        let past_deadline = self
            .valid_until
            .lock()
            .map_or(true, |until| Instant::now() >= *until);
        if past_deadline {
            self.mark_lost();
        }
        if self.is_lost() {
            return Err(self.lost_error());
        }
        Ok(&self.fence)
    }

    /// The error a write under this lease fails with once it is lost.
    pub(crate) fn lost_error(&self) -> Error {
        Error::Store(cadre_store::Error::LeaseLost {
            job: self.fence.job.to_string(),
            owner: self.fence.owner.clone(),
        })
    }

    /// Marks the lease lost when `result` says a fenced write found it so.
    pub(crate) fn note<T>(&self, result: &Result<T>) {
        if is_lease_lost(result) {
            self.mark_lost();
        }
    }
}

/// Whether `result` is a write refused because its lease is lost.
pub(crate) fn is_lease_lost<T>(result: &Result<T>) -> bool {
    matches!(
        result,
        Err(Error::Store(cadre_store::Error::LeaseLost { .. }))
    )
}

/// The leases of the jobs an engine runs, by job.
#[derive(Debug, Default)]
pub(crate) struct Leases(Mutex<HashMap<JobId, Arc<JobLease>>>);

impl Leases {
    /// The lease `job` runs under, if any.
    pub fn get(&self, job: JobId) -> Option<Arc<JobLease>> {
        self.0.lock().ok()?.get(&job).cloned()
    }

    /// The lease the writes of `group` are made under: that of the job the
    /// group names (its events, attempts and calls carry the job).
    pub fn for_group(&self, group: &[AttemptWrite]) -> Option<Arc<JobLease>> {
        let job = group.iter().find_map(|w| match w {
            AttemptWrite::Event(e) => Some(e.job_id),
            AttemptWrite::Transition { event: Some(e), .. } => Some(e.job_id),
            AttemptWrite::StartAttempt(a) => Some(a.job_id),
            AttemptWrite::Call(c) => Some(c.job_id),
            _ => None,
        })?;
        self.get(job)
    }

    /// Registers `lease` until the guard drops.
    fn hold(&self, lease: Arc<JobLease>) -> LeaseGuard<'_> {
        if let Ok(mut leases) = self.0.lock() {
            leases.insert(lease.job(), lease.clone());
        }
        LeaseGuard {
            leases: self,
            lease,
        }
    }
}

/// Removes a job's lease from the registry when its run ends (unless a
/// later claim of the job registered its own lease since).
struct LeaseGuard<'a> {
    leases: &'a Leases,
    lease: Arc<JobLease>,
}

impl Drop for LeaseGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut leases) = self.leases.0.lock()
            && leases
                .get(&self.lease.job())
                .is_some_and(|held| Arc::ptr_eq(held, &self.lease))
        {
            leases.remove(&self.lease.job());
        }
    }
}

impl Engine {
    /// [`Engine::run_job`] under `lease`: every write for the job is fenced
    /// on it. When the lease is lost the run stops writing (its writes fail
    /// with [`cadre_store::Error::LeaseLost`] and the lease is marked lost);
    /// the caller must stop the run (cancel `stop`) when it sees that.
    pub async fn run_leased_job(
        &self,
        lease: Arc<JobLease>,
        stop: CancellationToken,
    ) -> Result<JobReport> {
        let job = lease.job();
        let _held = self.writer().leases().hold(lease);
        self.run_job(job, stop).await
    }

    /// The lease `job` runs under, if any.
    pub(crate) fn lease_of(&self, job: JobId) -> Option<Arc<JobLease>> {
        self.writer().leases().get(job)
    }

    /// Whether `job` runs under a lease that is lost.
    pub(crate) fn lease_lost(&self, job: JobId) -> bool {
        self.lease_of(job).is_some_and(|l| l.is_lost())
    }

    /// The fence for a write for `job` now: `None` without a lease; the
    /// lease-lost error when the lease is known lost or past its deadline.
    pub(crate) fn fence_of(&self, job: JobId) -> Result<Option<LeaseFence>> {
        match self.lease_of(job) {
            Some(lease) => lease.fence().cloned().map(Some),
            None => Ok(None),
        }
    }

    /// [`cadre_store::Store::transition_job`], fenced when `job` runs under
    /// a lease.
    pub(crate) async fn transition_job(
        &self,
        job: JobId,
        from: &[JobStatus],
        to: JobStatus,
        reason: &str,
    ) -> Result<bool> {
        let Some(lease) = self.lease_of(job) else {
            return Ok(self.store().transition_job(job, from, to, reason).await?);
        };
        let fence = lease.fence()?;
        let changed = self
            .store()
            .transition_job_fenced(job, from, to, reason, fence)
            .await
            .map_err(Error::Store);
        lease.note(&changed);
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_refuses_writes_past_its_deadline_and_once_lost() {
        let job = JobId::new();
        let lease = JobLease::new(job, "d1", 1, Duration::from_secs(60), Instant::now());
        assert_eq!(lease.fence().unwrap().claim, 1);
        lease.mark_lost();
        assert!(is_lease_lost(&lease.fence().map(drop)));

        let past = Instant::now() - Duration::from_secs(61);
        let lease = JobLease::new(job, "d1", 1, Duration::from_secs(60), past);
        assert!(is_lease_lost(&lease.fence().map(drop)));
        assert!(lease.is_lost(), "the guard marks it lost");

        let lease = JobLease::new(job, "d1", 1, Duration::from_secs(60), past);
        lease.renewed(Instant::now());
        assert!(lease.fence().is_ok(), "renewed");
    }

    #[test]
    fn the_registry_finds_a_groups_lease_by_its_job() {
        let leases = Leases::default();
        let job = JobId::new();
        let lease = JobLease::new(job, "d1", 1, Duration::from_secs(60), Instant::now());
        let event = cadre_store::NewEvent {
            job_id: job,
            subtask_id: None,
            kind: cadre_types::EventKind::Note,
            message: String::new(),
            data: serde_json::Value::Null,
        };
        {
            let _held = leases.hold(lease);
            assert!(
                leases
                    .for_group(&[AttemptWrite::Event(event.clone())])
                    .is_some()
            );
        }
        assert!(leases.for_group(&[AttemptWrite::Event(event)]).is_none());
    }
}
