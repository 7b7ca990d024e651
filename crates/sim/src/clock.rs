//! Injectable time source for cache TTLs, batch processing and rate limits.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A monotonic clock. The sim reads time only through this trait, so tests can
/// make cache entries expire or batches end without sleeping.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Time elapsed since the clock's own origin.
    fn now(&self) -> Duration;
}

/// The real clock. It reads [`tokio::time::Instant`], so it also follows
/// `tokio::time::pause()` / `advance()` in tests that use them.
#[derive(Debug)]
pub struct SystemClock {
    origin: tokio::time::Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that only moves when told to. Share it as `Arc<ManualClock>`
/// between the test and [`crate::SimServer::start_with_clock`].
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_millis(self.now_ms.load(Ordering::SeqCst))
    }
}
