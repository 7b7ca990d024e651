//! The limits every daemon of a shared store counts together (see
//! `docs/cluster.md`): model-call slots leased in the store's `call_slots`
//! table, on top of the in-process semaphores, and the tier pauses of its
//! `tier_pauses` table.
//!
//! A slot is claimed with compare-and-set, held while one model call is in
//! flight and released when the call ends. Releases and lease renewals go
//! through one keeper task per engine: its owner is the [`SharedSlots`] (it
//! stops when they drop), it is bounded by one renewal statement per third of
//! a lease plus one statement per released slot, and a release it never gets
//! to (the channel is full, the process dies) just expires with the lease.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cadre_config::Config;
use cadre_store::{Store, TierPause};
use tokio::sync::{Notify, OnceCell, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};

/// The scope of `limits.max_concurrency` in `call_slots`.
const ALL: &str = "all";

/// Waits between two claims of a busy scope: doubles from the first to the last.
const CLAIM_WAIT: (Duration, Duration) = (Duration::from_millis(5), Duration::from_millis(100));

/// How long a read of the shared pauses is trusted.
const PAUSES_TTL: Duration = Duration::from_millis(250);

/// The current unix time in milliseconds.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A name unique to this engine, for the slot leases and pauses it writes.
fn holder_name() -> String {
    static ENGINES: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "pid{}-{nanos:x}-{}",
        std::process::id(),
        ENGINES.fetch_add(1, Ordering::Relaxed)
    )
}

/// The engine's slot leases in a shared store.
#[derive(Debug)]
pub(crate) struct SharedSlots {
    store: Store,
    holder: String,
    lease_ms: i64,
    /// `(scope, limit)`: `all` and each tier with its own limit.
    limits: BTreeMap<String, u32>,
    /// One claimer per scope at a time in this engine; the others wait here
    /// instead of querying the store.
    claiming: BTreeMap<String, tokio::sync::Mutex<()>>,
    /// The scopes' rows exist (made once, on first use).
    rows: OnceCell<()>,
    /// Signalled when the keeper has released a slot.
    freed: Arc<Notify>,
    /// Releases for the keeper (started on first use).
    keeper: OnceLock<mpsc::Sender<(String, i64)>>,
    /// Stops the keeper when the engine goes.
    stop_keeper: Mutex<Option<DropGuard>>,
}

/// Slots held in the store for one model call; released when dropped.
#[derive(Debug, Default)]
pub(crate) struct HeldSlots {
    held: Vec<(String, i64)>,
    keeper: Option<mpsc::Sender<(String, i64)>>,
}

impl Drop for HeldSlots {
    fn drop(&mut self) {
        let Some(keeper) = &self.keeper else { return };
        for slot in self.held.drain(..) {
            // A release that cannot be queued expires with its lease.
            if keeper.try_send(slot).is_err() {
                tracing::debug!("a call slot is left to expire");
            }
        }
    }
}

impl SharedSlots {
    pub fn new(config: &Config, store: Store) -> Self {
        let mut limits = BTreeMap::from([(ALL.to_owned(), config.limits.max_concurrency.max(1))]);
        for (tier, limit) in &config.limits.per_tier_concurrency {
            limits.insert(format!("tier:{tier}"), (*limit).max(1));
        }
        let claiming = limits
            .keys()
            .map(|scope| (scope.clone(), tokio::sync::Mutex::new(())))
            .collect();
        let lease_secs = config.daemon.lease_secs.max(1);
        Self {
            store,
            holder: holder_name(),
            lease_ms: i64::try_from(lease_secs.saturating_mul(1000)).unwrap_or(i64::MAX),
            limits,
            claiming,
            rows: OnceCell::new(),
            freed: Arc::new(Notify::new()),
            keeper: OnceLock::new(),
            stop_keeper: Mutex::new(None),
        }
    }

    /// Claims the cluster-wide slot of every call and, when the tier has its
    /// own limit, one of the tier's. `None` when `halt` fires first.
    pub async fn acquire(&self, tier: &str, halt: &CancellationToken) -> Option<HeldSlots> {
        let keeper = self.keeper();
        if self
            .rows
            .get_or_try_init(|| self.make_rows())
            .await
            .is_err()
        {
            tracing::warn!("cannot make the shared call slots; claiming anyway");
        }
        let mut held = HeldSlots {
            held: Vec::with_capacity(2),
            keeper: Some(keeper),
        };
        let tier_scope = format!("tier:{tier}");
        for scope in [ALL, tier_scope.as_str()] {
            let Some(limit) = self.limits.get(scope) else {
                continue;
            };
            let slot = self.claim(scope, *limit, halt).await?;
            held.held.push((scope.to_owned(), slot));
        }
        Some(held)
    }

    async fn make_rows(&self) -> cadre_store::Result<()> {
        for (scope, limit) in &self.limits {
            self.store.ensure_call_slots(scope, *limit).await?;
        }
        Ok(())
    }

    /// Claims a slot of `scope`, waiting (with growing pauses, or until this
    /// engine frees one) while the cluster holds them all.
    async fn claim(&self, scope: &str, limit: u32, halt: &CancellationToken) -> Option<i64> {
        let _turn = match self.claiming.get(scope) {
            Some(lock) => Some(tokio::select! {
                turn = lock.lock() => turn,
                () = halt.cancelled() => return None,
            }),
            None => None,
        };
        let mut wait = CLAIM_WAIT.0;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            match self
                .store
                .claim_call_slot(scope, limit, &self.holder, now_ms(), self.lease_ms)
                .await
            {
                Ok(Some(slot)) => return Some(slot),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, scope, "claiming a call slot failed; retrying")
                }
            }
            tokio::select! {
                () = &mut freed => {}
                () = tokio::time::sleep(wait) => {}
                () = halt.cancelled() => return None,
            }
            wait = (wait * 2).min(CLAIM_WAIT.1);
        }
    }

    /// The keeper's queue, starting the keeper on first use.
    fn keeper(&self) -> mpsc::Sender<(String, i64)> {
        self.keeper
            .get_or_init(|| {
                let capacity = self.limits.values().map(|l| *l as usize).sum::<usize>() * 2;
                let (tx, rx) = mpsc::channel(capacity.max(16));
                let stop = CancellationToken::new();
                if let Ok(mut guard) = self.stop_keeper.lock() {
                    *guard = Some(stop.clone().drop_guard());
                }
                tokio::spawn(keep(
                    self.store.clone(),
                    self.holder.clone(),
                    self.lease_ms,
                    rx,
                    self.freed.clone(),
                    stop,
                ));
                tx
            })
            .clone()
    }
}

/// Releases the slots the engine's calls are done with and renews the
/// leases of those still held, until `stop` fires or every sender is gone.
async fn keep(
    store: Store,
    holder: String,
    lease_ms: i64,
    mut releases: mpsc::Receiver<(String, i64)>,
    freed: Arc<Notify>,
    stop: CancellationToken,
) {
    let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(1000))
        .max(Duration::from_millis(100));
    let mut renew = tokio::time::interval_at(Instant::now() + every, every);
    renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            release = releases.recv() => {
                let Some((scope, slot)) = release else { break };
                if let Err(e) = store.release_call_slot(&scope, slot, &holder).await {
                    tracing::warn!(error = %e, scope, "releasing a call slot failed; it expires on its own");
                }
                freed.notify_waiters();
            }
            _ = renew.tick() => {
                if let Err(e) = store.renew_call_slots(&holder, now_ms(), lease_ms).await {
                    tracing::warn!(error = %e, "renewing the call slots failed; retrying");
                }
            }
        }
    }
}

/// Provider push-back per tier: a pause set by a 429/529 holds every new
/// call of the tier until the provider's retry-after. Kept in memory and,
/// with a shared store, in its `tier_pauses` table (read at most every
/// [`PAUSES_TTL`]), so a pause seen by one daemon holds every daemon.
#[derive(Debug)]
pub(crate) struct TierPauses {
    local: Mutex<BTreeMap<String, Instant>>,
    shared: Option<SharedPauses>,
}

#[derive(Debug)]
struct SharedPauses {
    store: Store,
    set_by: String,
    /// When the table was last read, and the pauses it held.
    cache: tokio::sync::Mutex<(Option<Instant>, BTreeMap<String, Instant>)>,
}

impl TierPauses {
    /// Pauses in memory; with `store`, shared through it too.
    pub fn new(store: Option<Store>) -> Self {
        Self {
            local: Mutex::new(BTreeMap::new()),
            shared: store.map(|store| SharedPauses {
                store,
                set_by: holder_name(),
                cache: tokio::sync::Mutex::new((None, BTreeMap::new())),
            }),
        }
    }

    /// When calls of `tier` may start again, if it is paused.
    pub async fn until(&self, tier: &str) -> Option<Instant> {
        let now = Instant::now();
        let local = self
            .local
            .lock()
            .ok()
            .and_then(|p| p.get(tier).copied())
            .filter(|until| *until > now);
        let shared = match &self.shared {
            Some(shared) => shared.until(tier).await.filter(|until| *until > now),
            None => None,
        };
        local.max(shared)
    }

    /// Pauses `tier` for `wait` (a longer pause in force stays).
    pub async fn pause(&self, tier: &str, wait: Duration, reason: &str) {
        let until = Instant::now() + wait;
        if let Ok(mut local) = self.local.lock() {
            let entry = local.entry(tier.to_owned()).or_insert(until);
            *entry = (*entry).max(until);
        }
        if let Some(shared) = &self.shared {
            let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
            let pause = TierPause {
                tier: tier.to_owned(),
                until_ms: now_ms().saturating_add(wait_ms),
                reason: reason.to_owned(),
                set_by: shared.set_by.clone(),
            };
            if let Err(e) = shared.store.pause_tier(&pause).await {
                tracing::warn!(error = %e, tier, "cannot share the tier's pause; it holds this daemon only");
            }
        }
    }
}

impl TierPauses {
    /// Runs `work` (a call of `tier`), pausing the tier (for every daemon,
    /// with a shared store) each time the provider pushes back and the call
    /// waits to retry, for as long as the provider asked.
    pub async fn sharing<F: Future>(&self, tier: &str, work: F) -> F::Output {
        let (seen, mut waits) = watch::channel(None::<Duration>);
        let observer: cadre_llm::OverloadObserver = Arc::new(move |wait| {
            seen.send_replace(Some(wait));
        });
        let work = cadre_llm::observing_overload(observer, work);
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                Ok(()) = waits.changed() => {
                    let wait = *waits.borrow_and_update();
                    if let Some(wait) = wait {
                        self.pause(tier, wait, "the provider pushed back (429/529)").await;
                    }
                }
            }
        }
    }
}

impl SharedPauses {
    /// The shared pause of `tier`, from a read at most [`PAUSES_TTL`] old.
    async fn until(&self, tier: &str) -> Option<Instant> {
        let mut cache = self.cache.lock().await;
        let fresh = cache.0.is_some_and(|read| read.elapsed() < PAUSES_TTL);
        if !fresh {
            match self.store.tier_pauses(now_ms()).await {
                Ok(pauses) => {
                    let (now, now_ms) = (Instant::now(), now_ms());
                    cache.1 = pauses
                        .into_iter()
                        .map(|p| {
                            let left =
                                u64::try_from(p.until_ms.saturating_sub(now_ms)).unwrap_or(0);
                            (p.tier, now + Duration::from_millis(left))
                        })
                        .collect();
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the shared tier pauses"),
            }
            cache.0 = Some(Instant::now());
        }
        cache.1.get(tier).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_concurrency: u32, haiku: u32) -> Config {
        let mut config = Config::default_embedded().unwrap();
        config.limits.max_concurrency = max_concurrency;
        config.limits.per_tier_concurrency = BTreeMap::from([("haiku".to_owned(), haiku)]);
        config
    }

    /// Waits until the store shows `n` slots of `scope` held.
    async fn held(store: &Store, scope: &str, n: i64) {
        for _ in 0..200 {
            if store.held_call_slots(scope, now_ms()).await.unwrap() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{scope} never had {n} slots held");
    }

    #[tokio::test]
    async fn two_engines_on_one_store_share_the_limits() {
        let store = Store::open_in_memory().await.unwrap();
        // Two daemons' engines: three calls in flight in all, one of haiku.
        let (a, b) = (
            SharedSlots::new(&config(3, 1), store.clone()),
            SharedSlots::new(&config(3, 1), store.clone()),
        );
        let halt = CancellationToken::new();
        let a1 = a.acquire("haiku", &halt).await.unwrap();
        let b1 = b.acquire("sonnet", &halt).await.unwrap();
        held(&store, "all", 2).await;
        held(&store, "tier:haiku", 1).await;
        // b's haiku call waits for a's, though b has no haiku call itself.
        let waiting = tokio::time::timeout(Duration::from_millis(100), b.acquire("haiku", &halt));
        assert!(waiting.await.is_err(), "the tier's one slot is a's");
        let a2 = a.acquire("sonnet", &halt).await.unwrap();
        held(&store, "all", 3).await;
        let full = tokio::time::timeout(Duration::from_millis(100), b.acquire("sonnet", &halt));
        assert!(full.await.is_err(), "three calls in flight in all");
        // a's haiku call ends: b's waiting haiku call gets both its slots.
        let b_haiku = tokio::spawn({
            let halt = halt.clone();
            async move { b.acquire("haiku", &halt).await.map(|h| (h, b)) }
        });
        drop(a1);
        let (b2, b) = tokio::time::timeout(Duration::from_secs(5), b_haiku)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(b2.held.len(), 2);
        held(&store, "tier:haiku", 1).await;
        // A halted claim gives up.
        let stop = CancellationToken::new();
        stop.cancel();
        assert!(b.acquire("sonnet", &stop).await.is_none());
        drop((a2, b1, b2));
        held(&store, "all", 0).await;
    }

    #[tokio::test]
    async fn a_pause_one_engine_sees_holds_the_others() {
        let store = Store::open_in_memory().await.unwrap();
        let (a, b, alone) = (
            TierPauses::new(Some(store.clone())),
            TierPauses::new(Some(store.clone())),
            TierPauses::new(None),
        );
        assert_eq!(b.until("haiku").await, None);
        // b read the table just now: its cache is trusted for a moment.
        a.pause("haiku", Duration::from_secs(30), "429").await;
        tokio::time::sleep(PAUSES_TTL).await;
        let until = b.until("haiku").await.expect("b sees a's pause");
        let left = until - Instant::now();
        assert!(
            left > Duration::from_secs(25) && left <= Duration::from_secs(30),
            "{left:?}"
        );
        assert_eq!(b.until("sonnet").await, None);
        assert_eq!(
            alone.until("haiku").await,
            None,
            "nothing shared without a store"
        );
        let stored = store.tier_pauses(now_ms()).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].reason, "429");
    }
}
