//! What a model call waits for before it is sent: a slot of the engine's
//! fair share (`limits.max_concurrency`, divided between running jobs), the
//! tier's own limit, the cache warm gate (the first call per tier goes alone
//! so the rest read its cache) and the 429/529 pause.
//!
//! In memory these count one engine's calls. When the store is shared
//! (PostgreSQL: several daemons), `limits.max_concurrency`, the per-tier
//! limits and the pauses count every daemon's calls too ([`shared`]): the
//! in-process semaphores stay the fast path, and a call that passes them
//! also leases a slot in the store.

mod shared;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use cadre_config::Config;
use cadre_llm::{EncodedRequest, MessageRequest, ModelProvider, ModelReply};
use cadre_store::{Backend, Store};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, SemaphorePermit, watch};
use tokio_util::sync::CancellationToken;

/// The engine's model-call slots, shared fairly by the jobs it runs: each
/// running job holds at most total / running, so a huge job cannot starve a
/// small one, while a job running alone gets them all.
#[derive(Debug)]
pub(crate) struct FairSlots {
    total: usize,
    slots: Arc<Semaphore>,
    /// Jobs currently running: the divisor of the fair share.
    running_jobs: AtomicUsize,
    /// Signalled whenever a slot is returned, so capped jobs re-check.
    returned: Notify,
    /// The slots every daemon of a shared store counts; `None` alone.
    shared: Option<shared::SharedSlots>,
    /// The 429/529 pauses per tier (shared through a shared store).
    pauses: shared::TierPauses,
}

pub(crate) use shared::HeldSlots;

/// A held model-call slot; returning it wakes jobs waiting for their share.
pub(crate) struct SlotGuard<'a> {
    _permit: OwnedSemaphorePermit,
    in_flight: &'a InFlight,
    returned: &'a Notify,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.in_flight.remove();
        self.returned.notify_waiters();
    }
}

/// One job's model calls in flight (its use of the engine's slots), and a
/// signal each time one more starts.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    grew: Notify,
}

impl InFlight {
    /// The calls in flight now.
    pub fn get(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until at least `calls` are in flight (at once when they are).
    pub async fn reached(&self, calls: usize) {
        loop {
            // Created before the check, so a call that starts between the
            // check and the wait still wakes it.
            let grew = self.grew.notified();
            if self.get() >= calls {
                return;
            }
            grew.await;
        }
    }

    fn add(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.grew.notify_waiters();
    }

    fn remove(&self) {
        self.count.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a job as running while it is alive.
pub(crate) struct RunningJob<'a>(&'a AtomicUsize);

impl Drop for RunningJob<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FairSlots {
    /// Slots counted in memory only (one engine, nothing shared).
    #[cfg(test)]
    pub fn new(total: u32) -> Self {
        Self::with(total, None, shared::TierPauses::new(None))
    }

    /// The engine's slots over `store`: counted across daemons when the
    /// store is shared (PostgreSQL), in memory otherwise.
    pub fn for_store(config: &Config, store: &Store) -> Self {
        match store.backend() {
            Backend::Postgres => Self::with(
                config.limits.max_concurrency,
                Some(shared::SharedSlots::new(config, store.clone())),
                shared::TierPauses::new(Some(store.clone())),
            ),
            Backend::Sqlite => Self::with(
                config.limits.max_concurrency,
                None,
                shared::TierPauses::new(None),
            ),
        }
    }

    fn with(total: u32, shared: Option<shared::SharedSlots>, pauses: shared::TierPauses) -> Self {
        let total = total.max(1) as usize;
        Self {
            total,
            slots: Arc::new(Semaphore::new(total)),
            running_jobs: AtomicUsize::new(0),
            returned: Notify::new(),
            shared,
            pauses,
        }
    }

    /// With a shared store, leases the cluster-wide slots of a call of
    /// `tier` (after the in-process ones); nothing to hold otherwise.
    /// `None` when `halt` fires first.
    pub async fn acquire_shared(&self, tier: &str, halt: &CancellationToken) -> Option<HeldSlots> {
        match &self.shared {
            Some(shared) => shared.acquire(tier, halt).await,
            None => Some(HeldSlots::default()),
        }
    }

    /// The provider's push-back per tier.
    pub fn pauses(&self) -> &shared::TierPauses {
        &self.pauses
    }

    /// Counts a job as running until the guard drops.
    pub fn job_running(&self) -> RunningJob<'_> {
        self.running_jobs.fetch_add(1, Ordering::SeqCst);
        RunningJob(&self.running_jobs)
    }

    /// Waits for a slot within the job's fair share (`in_flight` counts the
    /// job's held slots); `None` when `halt` fires first.
    pub async fn acquire<'a>(
        &'a self,
        in_flight: &'a InFlight,
        halt: &CancellationToken,
    ) -> Option<SlotGuard<'a>> {
        loop {
            let running = self.running_jobs.load(Ordering::SeqCst).max(1);
            let share = (self.total / running).max(1);
            if in_flight.get() < share {
                let permit = tokio::select! {
                    p = self.slots.clone().acquire_owned() => p.ok()?,
                    _ = halt.cancelled() => return None,
                };
                in_flight.add();
                return Some(SlotGuard {
                    _permit: permit,
                    in_flight,
                    returned: &self.returned,
                });
            }
            // Over its share: wait for a slot to come back (or the share to grow).
            tokio::select! {
                _ = self.returned.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = halt.cancelled() => return None,
            }
        }
    }
}

/// Lets the first call of a tier go alone so the rest read its cache.
#[derive(Debug)]
pub(crate) struct WarmGate {
    claimed: AtomicBool,
    done: watch::Sender<bool>,
}

impl WarmGate {
    fn new() -> Self {
        Self {
            claimed: AtomicBool::new(false),
            done: watch::channel(false).0,
        }
    }

    /// Returns the guard of the warming call when the caller is the first;
    /// otherwise waits until the warming call is done.
    pub async fn enter(&self) -> WarmGuard<'_> {
        if *self.done.borrow() {
            return WarmGuard(None);
        }
        if !self.claimed.swap(true, Ordering::SeqCst) {
            return WarmGuard(Some(self));
        }
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|done| *done).await;
        WarmGuard(None)
    }

    fn open(&self) {
        self.done.send_replace(true);
    }
}

/// Held by the call that warms its tier's cache: opens the gate at the
/// call's first streamed event, and when the call ends, even if it fails or
/// is dropped. Empty (opens nothing) for every other call.
#[derive(Default)]
pub(crate) struct WarmGuard<'a>(Option<&'a WarmGate>);

impl WarmGuard<'_> {
    /// Sends `request` (as `encoded`, its JSON already written, when the
    /// caller has it); when this guard warms a gate, the call streams and
    /// the gate opens at its first event.
    pub async fn send(
        &self,
        provider: &dyn ModelProvider,
        request: &MessageRequest,
        encoded: Option<&EncodedRequest>,
    ) -> cadre_llm::Result<ModelReply> {
        let open = || {
            if let Some(gate) = self.0 {
                gate.open();
            }
        };
        let first_event: Option<cadre_llm::FirstEvent<'_>> = self.0.map(|_| &open as _);
        match (encoded, first_event) {
            (Some(encoded), first_event) => {
                provider.send_encoded(request, encoded, first_event).await
            }
            (None, Some(first_event)) => {
                provider
                    .send_telling_first_event(request, first_event)
                    .await
            }
            (None, None) => provider.send(request).await,
        }
    }
}

impl Drop for WarmGuard<'_> {
    fn drop(&mut self) {
        if let Some(gate) = self.0 {
            gate.open();
        }
    }
}

/// One job's gates: its held slots, the per-tier limits and the warm gates
/// (the provider's push-back pause is the engine's, [`FairSlots::pauses`]).
#[derive(Debug)]
pub(crate) struct CallGates {
    /// Model calls this job has in flight (its use of the engine's slots).
    pub in_flight: InFlight,
    tier_limits: BTreeMap<String, Semaphore>,
    warm: BTreeMap<String, WarmGate>,
}

impl CallGates {
    pub fn new(config: &Config) -> Self {
        let mut tier_limits = BTreeMap::new();
        let mut warm = BTreeMap::new();
        for tier in &config.tiers.order {
            let limit = config.limits.tier_concurrency(tier);
            tier_limits.insert(tier.clone(), Semaphore::new(limit.max(1) as usize));
            warm.insert(tier.clone(), WarmGate::new());
        }
        Self {
            in_flight: InFlight::default(),
            tier_limits,
            warm,
        }
    }

    /// Waits for the tier's limit; `None` for a tier without one.
    pub async fn tier_permit(&self, tier: &str) -> Option<SemaphorePermit<'_>> {
        match self.tier_limits.get(tier) {
            Some(limit) => limit.acquire().await.ok(),
            None => None,
        }
    }

    /// The tier's warm gate.
    pub fn warm_gate(&self, tier: &str) -> Option<&WarmGate> {
        self.warm.get(tier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_job_alone_gets_every_slot_and_two_jobs_share_them() {
        let slots = FairSlots::new(4);
        let halt = CancellationToken::new();
        let (a, b) = (InFlight::default(), InFlight::default());
        let _ja = slots.job_running();
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(slots.acquire(&a, &halt).await.unwrap());
        }
        assert_eq!(a.get(), 4);
        drop(held);
        let _jb = slots.job_running();
        let _a1 = slots.acquire(&a, &halt).await.unwrap();
        let _a2 = slots.acquire(&a, &halt).await.unwrap();
        // Job a is at its share (4 / 2); its next call waits until halted.
        halt.cancel();
        assert!(slots.acquire(&a, &halt).await.is_none());
        let fresh = CancellationToken::new();
        let _b1 = slots.acquire(&b, &fresh).await.unwrap();
        assert_eq!(b.get(), 1);
    }

    #[tokio::test]
    async fn a_wait_for_calls_in_flight_ends_when_the_last_of_them_starts() {
        let slots = FairSlots::new(4);
        let halt = CancellationToken::new();
        let calls = InFlight::default();
        let _job = slots.job_running();
        let first = slots.acquire(&calls, &halt).await.unwrap();
        let waiting = calls.reached(3);
        tokio::pin!(waiting);
        let second = slots.acquire(&calls, &halt).await.unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), &mut waiting)
                .await
                .is_err(),
            "two calls in flight are not three"
        );
        let third = slots.acquire(&calls, &halt).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), &mut waiting)
            .await
            .expect("the third call ends the wait");
        drop((first, second, third));
        assert_eq!(calls.get(), 0);
        // Already reached: no wait.
        calls.reached(0).await;
    }

    #[tokio::test]
    async fn the_warm_gate_lets_one_call_through_then_everyone() {
        let gate = WarmGate::new();
        let first = gate.enter().await;
        assert!(first.0.is_some());
        let waiter = tokio::time::timeout(Duration::from_millis(50), gate.enter()).await;
        assert!(waiter.is_err(), "a second call must wait for the first");
        drop(first);
        let after = gate.enter().await;
        assert!(after.0.is_none());
    }

    /// Starts answering (tells the first event), then finishes only when
    /// `finish` is notified.
    #[derive(Debug, Default)]
    struct SlowStream {
        finish: Notify,
    }

    #[async_trait::async_trait]
    impl ModelProvider for SlowStream {
        async fn send(&self, _request: &MessageRequest) -> cadre_llm::Result<ModelReply> {
            unreachable!("the warming call streams")
        }

        async fn send_telling_first_event(
            &self,
            _request: &MessageRequest,
            first_event: cadre_llm::FirstEvent<'_>,
        ) -> cadre_llm::Result<ModelReply> {
            first_event();
            self.finish.notified().await;
            Err(cadre_llm::Error::InvalidConfig {
                message: "finished".into(),
            })
        }

        fn name(&self) -> &str {
            "slow-stream"
        }
    }

    #[tokio::test]
    async fn the_warm_gate_opens_at_the_first_event_not_at_the_end() {
        let gate = WarmGate::new();
        let provider = SlowStream::default();
        let request = MessageRequest {
            model: "m".into(),
            max_tokens: 1,
            system: Vec::new(),
            tools: Vec::new(),
            tool_choice: None,
            messages: Vec::new(),
            thinking: None,
            output_config: None,
            stream: None,
        };
        let warming = gate.enter().await;
        let call = warming.send(&provider, &request, None);
        tokio::pin!(call);
        // The warming call is still answering when the next call passes.
        let next = tokio::select! {
            _ = &mut call => panic!("the warming call ended before it was told to"),
            guard = gate.enter() => guard,
        };
        assert!(next.0.is_none());
        provider.finish.notify_one();
        assert!(call.await.is_err());
    }
}
