//! The retry policy of the official SDKs, plus a separate overload budget.
//!
//! Decision order (reference 5.3): `x-should-retry` first; then 408, 409,
//! 429 and every 5xx; then connection errors and timeouts. Delay:
//! `retry-after-ms`, else `retry-after` (seconds or an HTTP date) when
//! `0 < v <= 60 s`, else `min(base * 2^n, cap) * (1 - 0.25 * rand)`.
//!
//! 429 and 529 (and overload `error` events in a stream) draw from their own,
//! longer budget (`overload_max_retries`, backoff capped at
//! `overload_max_backoff`, and a server `retry-after` honoured up to
//! `max(60 s, overload_max_backoff)`); everything else draws from
//! `max_retries`. The two budgets are counted independently. Timeouts are
//! retried unless [`RetryPolicy::retry_timeouts`] is off (local servers).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

use crate::error::{Error, Result, header_str};

/// How many times, and how patiently, to retry.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Retries for 408/409/5xx (not 529)/connection errors/timeouts (SDK default 2).
    pub max_retries: u32,
    /// Separate retries for 429 and 529.
    pub overload_max_retries: u32,
    /// Cap on one backoff sleep in the overload budget.
    pub overload_max_backoff: Duration,
    /// First backoff step (SDK: 0.5 s); doubles per retry.
    pub initial_backoff: Duration,
    /// Cap on one backoff sleep in the normal budget (SDK: 8 s).
    pub max_backoff: Duration,
    /// Whether a timed-out request is sent again. A local server keeps
    /// generating the abandoned answer, so a retry only queues behind it.
    pub retry_timeouts: bool,
}

impl Default for RetryPolicy {
    /// SDK defaults plus the config defaults for the overload budget:
    /// 2 retries, 8 overload retries capped at 60 s, backoff 0.5 s -> 8 s.
    fn default() -> Self {
        Self::new(2, 8, Duration::from_secs(60))
    }
}

impl RetryPolicy {
    /// A policy with the SDK's backoff curve (0.5 s doubling, capped at 8 s).
    pub fn new(
        max_retries: u32,
        overload_max_retries: u32,
        overload_max_backoff: Duration,
    ) -> Self {
        Self {
            max_retries,
            overload_max_retries,
            overload_max_backoff,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(8),
            retry_timeouts: true,
        }
    }

    /// Never retry.
    pub fn none() -> Self {
        Self::new(0, 0, Duration::ZERO)
    }

    /// Exponential backoff for the `n`th retry (0-based) with the SDK jitter
    /// (scaled down by up to 25%), capped at `cap`.
    fn backoff(&self, n: u32, cap: Duration, jitter: f64) -> Duration {
        let base = self.initial_backoff.as_secs_f64() * 2f64.powi(n.min(62) as i32);
        let capped = base.min(cap.as_secs_f64()).max(0.0);
        Duration::from_secs_f64(capped * (1.0 - 0.25 * jitter.clamp(0.0, 1.0)))
    }
}

/// Told the delay of each 429/529 the retry loop backs off from (the
/// server's retry-after when it sent one), as it happens.
pub type OverloadObserver = Arc<dyn Fn(Duration) + Send + Sync>;

tokio::task_local! {
    static OVERLOAD_OBSERVER: OverloadObserver;
}

/// Runs `work` (a provider call) telling `observer` of every 429/529 its
/// retry loop backs off from, so the caller can share the push-back (e.g.
/// pause the tier for other processes) while the call still retries.
pub async fn observing_overload<F: Future>(observer: OverloadObserver, work: F) -> F::Output {
    OVERLOAD_OBSERVER.scope(observer, work).await
}

/// Which budget a retryable error draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Budget {
    Normal,
    Overload,
}

/// Whether the client retries `err`, and from which budget.
pub(crate) fn classify(err: &Error, policy: &RetryPolicy) -> Option<Budget> {
    if !err.is_retryable() || (!policy.retry_timeouts && matches!(err, Error::Timeout { .. })) {
        return None;
    }
    match err {
        // Never nest: an exhausted error is final.
        Error::RetriesExhausted { .. } => None,
        e if e.is_overload() => Some(Budget::Overload),
        _ => Some(Budget::Normal),
    }
}

/// Counters reported in `ModelReply`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RetryStats {
    /// All retries.
    pub(crate) retries: u32,
    /// Retries drawn from the overload budget.
    pub(crate) overload_retries: u32,
}

/// Runs `attempt(n)` (n = retries so far, sent as `x-stainless-retry-count`)
/// until it succeeds, fails with a non-retryable error, or a budget runs out
/// (then [`Error::RetriesExhausted`]).
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    operation: &str,
    mut attempt: F,
) -> Result<(T, RetryStats)>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut stats = RetryStats::default();
    loop {
        let err = match attempt(stats.retries).await {
            Ok(value) => return Ok((value, stats)),
            Err(err) => err,
        };
        let Some(budget) = classify(&err, policy) else {
            tracing::debug!(
                operation,
                attempt = stats.retries + 1,
                status = err.status(),
                request_id = err.request_id(),
                error = %err,
                "request failed, not retryable"
            );
            return Err(err);
        };
        let normal_taken = stats.retries - stats.overload_retries;
        let (taken, max, cap, honour_cap) = match budget {
            Budget::Normal => (
                normal_taken,
                policy.max_retries,
                policy.max_backoff,
                Duration::from_secs(60),
            ),
            Budget::Overload => (
                stats.overload_retries,
                policy.overload_max_retries,
                policy.overload_max_backoff,
                policy.overload_max_backoff.max(Duration::from_secs(60)),
            ),
        };
        if taken >= max {
            tracing::warn!(
                operation,
                attempts = stats.retries + 1,
                status = err.status(),
                request_id = err.request_id(),
                error = %err,
                "retry budget exhausted"
            );
            return Err(Error::RetriesExhausted {
                attempts: stats.retries + 1,
                last: Box::new(err),
            });
        }
        let delay = match err
            .retry_after()
            .filter(|d| !d.is_zero() && *d <= honour_cap)
        {
            Some(server) => server,
            None => policy.backoff(taken, cap, rand::random::<f64>()),
        };
        tracing::warn!(
            operation,
            attempt = stats.retries + 1,
            status = err.status(),
            request_id = err.request_id(),
            overload = budget == Budget::Overload,
            delay_ms = delay.as_millis() as u64,
            error = %err,
            "request failed, retrying"
        );
        stats.retries += 1;
        if budget == Budget::Overload {
            stats.overload_retries += 1;
            let _ = OVERLOAD_OBSERVER.try_with(|observer| observer(delay));
        }
        tokio::time::sleep(delay).await;
    }
}

/// `retry-after-ms`, else `retry-after` (float seconds or an HTTP date), as
/// sent (range checks happen in the retry loop).
pub(crate) fn retry_after_from_headers(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) = header_str(headers, "retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    header_str(headers, "retry-after").and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// `"1.5"` -> 1.5 s; an HTTP date -> time until then (zero if past).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::try_from_secs_f64(secs).ok())
            .flatten();
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_follows_the_sdk_curve() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(0, p.max_backoff, 0.0), Duration::from_millis(500));
        assert_eq!(p.backoff(1, p.max_backoff, 0.0), Duration::from_secs(1));
        assert_eq!(p.backoff(5, p.max_backoff, 0.0), Duration::from_secs(8));
        assert_eq!(p.backoff(1, p.max_backoff, 1.0), Duration::from_millis(750));
        assert_eq!(
            p.backoff(40, Duration::from_secs(60), 0.0),
            Duration::from_secs(60)
        );
        assert_eq!(
            p.backoff(u32::MAX, Duration::from_secs(60), 0.0),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(
            parse_retry_after("1.5", now),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-3", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now),
            Some(Duration::from_secs(30))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_ms_wins() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("5"));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(
            retry_after_from_headers(&h),
            Some(Duration::from_millis(250))
        );
        h.remove("retry-after-ms");
        assert_eq!(retry_after_from_headers(&h), Some(Duration::from_secs(5)));
    }

    #[test]
    fn request_rejections_and_local_timeouts_are_not_retried() {
        let api = |message: &str| {
            Error::Api(crate::ApiError {
                status: 500,
                kind: crate::ApiErrorKind::Api,
                message: message.into(),
                request_id: None,
                retry_after: None,
                should_retry: None,
            })
        };
        let policy = RetryPolicy::default();
        let rejection = api(
            "[{'type': 'string_type', 'loc': ('body', 'messages', 2, 'content'), \
                             'msg': 'Input should be a valid string'}]",
        );
        assert_eq!(classify(&rejection, &policy), None);
        assert_eq!(classify(&api(""), &policy), Some(Budget::Normal));
        let timeout = Error::Timeout {
            message: "20 s".into(),
        };
        assert_eq!(classify(&timeout, &policy), Some(Budget::Normal));
        let local = RetryPolicy {
            retry_timeouts: false,
            ..policy
        };
        assert_eq!(classify(&timeout, &local), None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_observer_is_told_each_overload_retry_after_as_it_happens() {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let observer: OverloadObserver = {
            let seen = seen.clone();
            Arc::new(move |delay| seen.lock().unwrap().push(delay))
        };
        let policy = RetryPolicy::default();
        let work = run(&policy, "test", |n| async move {
            match n {
                0 => Err(Error::Api(crate::ApiError {
                    status: 429,
                    kind: crate::ApiErrorKind::RateLimit,
                    message: "slow down".into(),
                    request_id: None,
                    retry_after: Some(Duration::from_secs(3)),
                    should_retry: None,
                })),
                // Not an overload: the observer hears nothing of it.
                1 => Err(Error::Timeout {
                    message: "20 s".into(),
                }),
                _ => Ok(()),
            }
        });
        let (_, stats) = observing_overload(observer, work).await.unwrap();
        assert_eq!(stats.overload_retries, 1);
        assert_eq!(*seen.lock().unwrap(), vec![Duration::from_secs(3)]);
        // Outside the scope nobody is told.
        let outside = run(&policy, "test", |n| async move {
            if n == 0 {
                Err(Error::Api(crate::ApiError {
                    status: 529,
                    kind: crate::ApiErrorKind::Overloaded,
                    message: "busy".into(),
                    request_id: None,
                    retry_after: Some(Duration::from_secs(1)),
                    should_retry: None,
                }))
            } else {
                Ok(())
            }
        });
        outside.await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn out_of_range_retry_after_falls_back_to_backoff() {
        // 120 s is outside (0, 60]: the SDK ignores it and backs off instead.
        let policy = RetryPolicy::new(1, 0, Duration::ZERO);
        let start = tokio::time::Instant::now();
        let result: Result<((), RetryStats)> = run(&policy, "test", |n| async move {
            if n == 0 {
                Err(Error::Api(crate::ApiError {
                    status: 500,
                    kind: crate::ApiErrorKind::Api,
                    message: "boom".into(),
                    request_id: None,
                    retry_after: Some(Duration::from_secs(120)),
                    should_retry: None,
                }))
            } else {
                Ok(())
            }
        })
        .await;
        let (_, stats) = result.expect("second attempt succeeds");
        assert_eq!(
            stats,
            RetryStats {
                retries: 1,
                overload_retries: 0
            }
        );
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(375) && waited <= Duration::from_millis(500),
            "{waited:?}"
        );
    }
}
