//! `[limits] requests_per_minute`: a token bucket.

/// A token bucket of `capacity` requests refilled at `capacity` per minute.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    capacity: f64,
    tokens: f64,
    last_ms: u64,
}

/// Result of a take.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Take {
    /// Allowed; this many whole tokens remain.
    Allowed { remaining: u64 },
    /// Refused; retry after this many seconds (at least 1).
    Limited { retry_after_secs: u64 },
}

impl TokenBucket {
    pub(crate) fn new(requests_per_minute: u32, now_ms: u64) -> Self {
        let capacity = f64::from(requests_per_minute);
        Self {
            capacity,
            tokens: capacity,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: u64) {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.tokens = (self.tokens + elapsed * self.capacity / 60_000.0).min(self.capacity);
        self.last_ms = now_ms.max(self.last_ms);
    }

    pub(crate) fn take(&mut self, now_ms: u64) -> Take {
        self.refill(now_ms);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Take::Allowed {
                remaining: self.tokens.floor() as u64,
            }
        } else {
            let missing = 1.0 - self.tokens;
            let secs = (missing * 60.0 / self.capacity - 1e-9).ceil().max(1.0);
            Take::Limited {
                retry_after_secs: secs as u64,
            }
        }
    }

    /// Whole tokens available now, and milliseconds until the bucket is full.
    pub(crate) fn peek(&mut self, now_ms: u64) -> (u64, u64) {
        self.refill(now_ms);
        let to_full = ((self.capacity - self.tokens) * 60_000.0 / self.capacity).ceil();
        (self.tokens.floor() as u64, to_full.max(0.0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refuses_when_empty_and_refills_over_time() {
        let mut b = TokenBucket::new(2, 0);
        assert_eq!(b.take(0), Take::Allowed { remaining: 1 });
        assert_eq!(b.take(0), Take::Allowed { remaining: 0 });
        assert_eq!(
            b.take(0),
            Take::Limited {
                retry_after_secs: 30
            }
        );
        assert_eq!(
            b.take(10_000),
            Take::Limited {
                retry_after_secs: 20
            }
        );
        assert_eq!(b.take(30_000), Take::Allowed { remaining: 0 });
    }
}
