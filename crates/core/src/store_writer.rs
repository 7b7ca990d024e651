//! Group commit of the fan-out's bookkeeping: status changes with their
//! events, attempt rows, the model-call ledger. Every caller hands its
//! writes (one group, written in order) to one writer task and waits for
//! them to be committed; the task commits whatever groups are waiting in one
//! SQLite transaction, so at high concurrency a commit carries the writes of
//! many subtasks instead of one statement.
//!
//! The writer task is started by the first write, on that write's runtime.
//! Its owner is the engine: it ends when the engine's last clone drops (its
//! channel closes); it is bounded by its channel and by [`MAX_GROUPS`] per
//! commit. A write that finds no writer (its runtime is gone) is committed
//! by the caller itself.

use std::sync::Mutex;

use cadre_store::{
    AttemptWrite, AttemptWritten, ClaimFence, LeaseFence, NewAttempt, NewCall, NewEvent, Store,
};
use cadre_types::JobId;
use tokio::sync::{mpsc, oneshot};

use crate::claims::SubtaskClaims;
use crate::lease::Leases;
use crate::{Error, Result};

/// Groups waiting for the writer before callers wait to hand theirs over.
const QUEUE: usize = 1024;

/// At most this many groups go into one transaction, so one commit holds
/// SQLite's write lock for a bounded time.
const MAX_GROUPS: usize = 512;

/// One caller's writes and where their outcome goes.
struct Pending {
    writes: Vec<AttemptWrite>,
    /// The lease the group is written under (crate::lease): checked in the
    /// commit's transaction.
    fence: Option<LeaseFence>,
    /// The subtask claim the group is written under (crate::claims).
    claim: Option<ClaimFence>,
    reply: oneshot::Sender<cadre_store::Result<Vec<AttemptWritten>>>,
}

/// The handle on the writer task (started on first use).
#[derive(Debug)]
pub(crate) struct StoreWriter {
    store: Store,
    queue: Mutex<Option<mpsc::Sender<Pending>>>,
    /// The leases of the jobs being run (crate::lease).
    leases: Leases,
    /// The subtask claims held (crate::claims).
    claims: SubtaskClaims,
}

impl StoreWriter {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            queue: Mutex::new(None),
            leases: Leases::default(),
            claims: SubtaskClaims::default(),
        }
    }

    /// The leases the writes of leased jobs are fenced on.
    pub(crate) fn leases(&self) -> &Leases {
        &self.leases
    }

    /// The subtask claims the writes for claimed subtasks are fenced on.
    pub(crate) fn claims(&self) -> &SubtaskClaims {
        &self.claims
    }

    /// Commits `writes` in order and returns what each did. The commit may
    /// carry other callers' groups; a group that fails is retried alone, so
    /// one caller's failure is never another's.
    ///
    /// # Errors
    /// The store's error for this group, or [`Error::Stopped`] when the
    /// writer went away with the group (its runtime is shutting down).
    pub async fn write(&self, writes: Vec<AttemptWrite>) -> Result<Vec<AttemptWritten>> {
        let lease = self.leases.for_group(&writes);
        let claim = self.claims.fence_for(&writes);
        self.write_leased(lease, claim, writes).await
    }

    /// [`StoreWriter::write`] for `job`'s writes when they do not name their
    /// job (a status change without an event), so they are fenced on its lease.
    pub async fn write_for(
        &self,
        job: JobId,
        writes: Vec<AttemptWrite>,
    ) -> Result<Vec<AttemptWritten>> {
        let lease = self.leases.get(job);
        let claim = self.claims.fence_for(&writes);
        self.write_leased(lease, claim, writes).await
    }

    /// The group under `lease` (none for a job run without one): refused
    /// with the lease-lost error, storing nothing, once the lease is lost,
    /// which marks it lost.
    async fn write_leased(
        &self,
        lease: Option<std::sync::Arc<crate::lease::JobLease>>,
        claim: Option<ClaimFence>,
        writes: Vec<AttemptWrite>,
    ) -> Result<Vec<AttemptWritten>> {
        let Some(lease) = lease else {
            return self.commit(None, claim, writes).await;
        };
        let fence = lease.fence()?.clone();
        let done = self.commit(Some(fence), claim, writes).await;
        lease.note(&done);
        done
    }

    async fn commit(
        &self,
        fence: Option<LeaseFence>,
        claim: Option<ClaimFence>,
        writes: Vec<AttemptWrite>,
    ) -> Result<Vec<AttemptWritten>> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            writes,
            fence,
            claim,
            reply,
        };
        let pending = match self.sender() {
            Some(queue) => match queue.send(pending).await {
                Ok(()) => {
                    return match answer.await {
                        Ok(done) => Ok(done?),
                        Err(_) => Err(Error::Stopped),
                    };
                }
                Err(mpsc::error::SendError(pending)) => {
                    self.forget_writer();
                    pending
                }
            },
            None => pending,
        };
        Ok(write_alone(&self.store, &pending).await?)
    }

    /// [`Store::append_event`] through the writer.
    pub async fn append_event(&self, event: NewEvent) -> Result<i64> {
        match self.write(vec![AttemptWrite::Event(event)]).await?.first() {
            Some(AttemptWritten::Event(seq)) => Ok(*seq),
            other => Err(unexpected("an event", other)),
        }
    }

    /// [`Store::start_attempt`] through the writer.
    pub async fn start_attempt(&self, attempt: NewAttempt) -> Result<()> {
        self.write(vec![AttemptWrite::StartAttempt(attempt)])
            .await
            .map(drop)
    }

    /// [`Store::record_call`] through the writer: the call's ledger sequence number.
    pub async fn record_call(&self, call: NewCall) -> Result<i64> {
        match self.write(vec![AttemptWrite::Call(call)]).await?.first() {
            Some(AttemptWritten::Call(seq)) => Ok(*seq),
            other => Err(unexpected("a model call", other)),
        }
    }

    /// The writer's queue, starting the writer on this runtime when there
    /// is none; `None` outside a runtime.
    fn sender(&self) -> Option<mpsc::Sender<Pending>> {
        let mut queue = self.queue.lock().ok()?;
        if let Some(sender) = queue.as_ref().filter(|s| !s.is_closed()) {
            return Some(sender.clone());
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (sender, receiver) = mpsc::channel(QUEUE);
        runtime.spawn(run_writer(self.store.clone(), receiver));
        *queue = Some(sender.clone());
        Some(sender)
    }

    fn forget_writer(&self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
    }
}

/// A write answered with something else than its own outcome (a bug).
fn unexpected(what: &str, got: Option<&AttemptWritten>) -> Error {
    Error::Conflict(format!("the store writer answered {got:?} to {what}"))
}

/// The writer task: takes every group waiting (up to [`MAX_GROUPS`]),
/// commits them together and answers each caller; ends when the queue closes.
async fn run_writer(store: Store, mut receiver: mpsc::Receiver<Pending>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_GROUPS);
    while receiver.recv_many(&mut batch, MAX_GROUPS).await > 0 {
        let groups: Vec<&[AttemptWrite]> = batch.iter().map(|p| p.writes.as_slice()).collect();
        let fences: Vec<&LeaseFence> = batch.iter().filter_map(|p| p.fence.as_ref()).collect();
        let claims: Vec<&ClaimFence> = batch.iter().filter_map(|p| p.claim.as_ref()).collect();
        match store
            .write_claimed_attempt_groups(&fences, &claims, &groups)
            .await
        {
            Ok(done) => {
                for (pending, done) in batch.drain(..).zip(done) {
                    let _ = pending.reply.send(Ok(done));
                }
            }
            Err(e) if batch.len() == 1 => {
                if let Some(pending) = batch.pop() {
                    let _ = pending.reply.send(Err(e));
                }
            }
            Err(e) => {
                // Nothing was stored: each group on its own finds the one
                // that failed (or a passing busy spell).
                tracing::debug!(error = %e, groups = batch.len(), "a group commit failed; committing its groups one by one");
                for pending in batch.drain(..) {
                    let alone = write_alone(&store, &pending).await;
                    let _ = pending.reply.send(alone);
                }
            }
        }
    }
}

/// One group in a transaction of its own, under its fence and claim.
async fn write_alone(store: &Store, pending: &Pending) -> cadre_store::Result<Vec<AttemptWritten>> {
    let fences: Vec<&LeaseFence> = pending.fence.iter().collect();
    let claims: Vec<&ClaimFence> = pending.claim.iter().collect();
    store
        .write_claimed_attempt_groups(&fences, &claims, &[&pending.writes])
        .await
        .map(|mut done| done.pop().unwrap_or_default())
}
