//! The state every handler shares ([`SimState`]) and the bookkeeping around
//! one request: ids, the clock, the request log and the standard response
//! headers, the rate limiter, fault firing, and computing an answer with its
//! prompt-cache plan.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;

use super::http::json_response;
use crate::agents::{self, Answer, AnswerMeta, Ctx, PathIndex, World};
use crate::api_error::ApiError;
use crate::batch::BatchStore;
use crate::cache::{self, CachePlan, PromptCache};
use crate::chat::GenerationSlot;
use crate::clock::{Clock, SystemClock};
use crate::faults::{FaultBook, FaultKind, FaultSpec, FaultTarget, Firing};
use crate::ids::{SplitMix, hash64, make_id, rfc3339};
use crate::limiter::{Take, TokenBucket};
use crate::log::{LoggedRequest, SimStats};
use crate::models::{ModelSpec, ModelTable};
use crate::request::ParsedRequest;
use crate::scenario::{OutcomeKind, Scenario};

/// Nominal limits reported when `[limits]` is unlimited.
const NOMINAL_RPM: u64 = 4000;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct SimState {
    pub(super) inner: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) scenario: Scenario,
    /// The scenario's paths, indexed once (the scenario never changes).
    pub(super) paths: PathIndex,
    pub(super) models: ModelTable,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) clock_origin: Duration,
    pub(super) wall_origin: SystemTime,
    pub(super) secret: String,
    pub(super) seq: AtomicU64,
    pub(super) ids: AtomicU64,
    pub(super) log: Mutex<Vec<LoggedRequest>>,
    pub(super) world: Mutex<World>,
    pub(super) cache: Mutex<PromptCache>,
    pub(super) faults: Mutex<FaultBook>,
    pub(super) limiter: Option<Mutex<TokenBucket>>,
    pub(super) batches: Mutex<BatchStore>,
    /// The chat endpoint's one generation slot (quirk `keeps_generating`).
    pub(super) chat_slot: GenerationSlot,
}

impl fmt::Debug for SimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimState")
            .field("seed", &self.inner.scenario.seed)
            .field("requests", &self.inner.seq.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SimState {
    /// State for `scenario` on the real clock.
    pub fn new(scenario: Scenario) -> Self {
        Self::with_clock(scenario, Arc::new(SystemClock::new()))
    }

    /// State for `scenario` on `clock` (e.g. an `Arc<ManualClock>` in tests).
    pub fn with_clock(scenario: Scenario, clock: Arc<dyn Clock>) -> Self {
        let models = ModelTable::new(&scenario.models);
        let clock_origin = clock.now();
        let limiter = (scenario.limits.requests_per_minute > 0)
            .then(|| Mutex::new(TokenBucket::new(scenario.limits.requests_per_minute, 0)));
        let inner = Shared {
            models,
            clock,
            clock_origin,
            wall_origin: SystemTime::now(),
            secret: format!("cadre-sim:{}", scenario.seed),
            seq: AtomicU64::new(0),
            ids: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            world: Mutex::new(World::new(&scenario)),
            cache: Mutex::new(PromptCache::default()),
            faults: Mutex::new(FaultBook::new(&scenario.faults)),
            limiter,
            batches: Mutex::new(BatchStore::default()),
            chat_slot: GenerationSlot::default(),
            paths: PathIndex::new(&scenario),
            scenario,
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Every request received so far, in arrival order.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        lock(&self.inner.log).clone()
    }

    /// Aggregate counts over the request log.
    pub fn stats(&self) -> SimStats {
        SimStats::from_log(&lock(&self.inner.log))
    }

    /// Adds a fault at runtime (same as `POST /sim/faults`).
    pub fn add_fault(&self, spec: FaultSpec) {
        lock(&self.inner.faults).add(spec);
    }

    /// Removes every fault, scenario ones included (same as `DELETE /sim/faults`).
    pub fn clear_faults(&self) {
        lock(&self.inner.faults).clear();
    }

    /// The scenario being served.
    pub fn scenario(&self) -> &Scenario {
        &self.inner.scenario
    }

    pub(super) fn now_ms(&self) -> u64 {
        let elapsed = self
            .inner
            .clock
            .now()
            .saturating_sub(self.inner.clock_origin);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn wall(&self, ms: u64) -> String {
        rfc3339(self.inner.wall_origin + Duration::from_millis(ms))
    }

    pub(super) fn next_id(&self, prefix: &str) -> String {
        let n = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        make_id(
            prefix,
            hash64(&[
                prefix.as_bytes(),
                &self.inner.scenario.seed.to_le_bytes(),
                &n.to_le_bytes(),
            ]),
        )
    }

    pub(super) fn begin(&self, method: &str, path: &str) -> LoggedRequest {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed) + 1;
        LoggedRequest {
            seq,
            method: method.to_string(),
            path: path.to_string(),
            request_id: self.next_id("req_"),
            at_ms: self.now_ms(),
            ..LoggedRequest::default()
        }
    }

    /// [`SimState::finish`] with a handler's result, its error rendered as
    /// the API's error body.
    pub(super) fn reply(&self, rec: LoggedRequest, result: Result<Response, ApiError>) -> Response {
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => self.error_response(&e, &rec.request_id),
        };
        self.finish(rec, resp)
    }

    /// Stamps the standard headers, records the request and returns the response.
    pub(super) fn finish(&self, mut rec: LoggedRequest, mut resp: Response) -> Response {
        rec.status = resp.status().as_u16();
        if rec.status != 200 {
            rec.complete = false;
        }
        let now = self.now_ms();
        let (limit, remaining, to_full) = match &self.inner.limiter {
            Some(l) => {
                let (remaining, to_full) = lock(l).peek(now);
                (
                    u64::from(self.inner.scenario.limits.requests_per_minute),
                    remaining,
                    to_full,
                )
            }
            None => (NOMINAL_RPM, NOMINAL_RPM - 1, 0),
        };
        let reset = self.wall(now + to_full);
        let now_wall = self.wall(now);
        let headers = resp.headers_mut();
        let mut put = |name: &'static str, value: String| {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        };
        put("request-id", rec.request_id.clone());
        put("anthropic-ratelimit-requests-limit", limit.to_string());
        put(
            "anthropic-ratelimit-requests-remaining",
            remaining.to_string(),
        );
        put("anthropic-ratelimit-requests-reset", reset);
        put("anthropic-ratelimit-input-tokens-limit", "2000000".into());
        put(
            "anthropic-ratelimit-input-tokens-remaining",
            "2000000".into(),
        );
        put("anthropic-ratelimit-input-tokens-reset", now_wall.clone());
        put("anthropic-ratelimit-output-tokens-limit", "400000".into());
        put(
            "anthropic-ratelimit-output-tokens-remaining",
            "400000".into(),
        );
        put("anthropic-ratelimit-output-tokens-reset", now_wall.clone());
        put("anthropic-ratelimit-tokens-limit", "2400000".into());
        put("anthropic-ratelimit-tokens-remaining", "2400000".into());
        put("anthropic-ratelimit-tokens-reset", now_wall);
        lock(&self.inner.log).push(rec);
        resp
    }

    pub(super) fn mark_complete(&self, seq: u64) {
        let mut log = lock(&self.inner.log);
        if let Some(entry) = log.iter_mut().rev().find(|r| r.seq == seq) {
            entry.complete = true;
        }
    }

    pub(super) fn latency(&self, model: &ModelSpec, body_sha: &str) -> Duration {
        let jitter = if model.latency_jitter_ms > 0 {
            let h = hash64(&[
                &self.inner.scenario.seed.to_le_bytes(),
                b"latency",
                model.id.as_bytes(),
                body_sha.as_bytes(),
            ]);
            SplitMix::new(h).below(model.latency_jitter_ms + 1)
        } else {
            0
        };
        Duration::from_millis(model.latency_base_ms + jitter)
    }

    pub(super) fn take_rate_limit(&self) -> Result<(), ApiError> {
        let Some(limiter) = &self.inner.limiter else {
            return Ok(());
        };
        match lock(limiter).take(self.now_ms()) {
            Take::Allowed { .. } => Ok(()),
            Take::Limited { retry_after_secs } => Err(ApiError::rate_limited(
                format!(
                    "This request would exceed your organization's rate limit of {} requests per \
                     minute. Retry after {retry_after_secs} s.",
                    self.inner.scenario.limits.requests_per_minute
                ),
                retry_after_secs,
            )),
        }
    }

    /// A header fault (`x-sim-fault`) first, then the configured faults.
    pub(super) fn fire_fault(
        &self,
        headers: &HeaderMap,
        body_sha: &str,
        target: &FaultTarget<'_>,
    ) -> Result<Option<Firing>, ApiError> {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        };
        if let Some(kind) = header("x-sim-fault") {
            let kind: FaultKind = kind
                .parse()
                .map_err(|e: String| ApiError::invalid(format!("x-sim-fault: {e}")))?;
            let number = |name: &str| -> Result<Option<u64>, ApiError> {
                header(name)
                    .map(|v| {
                        v.parse::<u64>()
                            .map_err(|_| ApiError::invalid(format!("{name}: expected an integer")))
                    })
                    .transpose()
            };
            let retry_after_secs = number("x-sim-fault-retry-after")?;
            let delay_ms = number("x-sim-fault-delay-ms")?.unwrap_or(0);
            let times = number("x-sim-fault-times")?.unwrap_or(1);
            let times = u32::try_from(times).unwrap_or(u32::MAX);
            if lock(&self.inner.faults).fire_header(kind, body_sha, times) {
                return Ok(Some(Firing {
                    kind,
                    retry_after_secs,
                    delay_ms,
                }));
            }
            return Ok(None);
        }
        Ok(lock(&self.inner.faults).fire(target))
    }

    /// The model's answer and the cache plan (lookup done, writes pending).
    pub(super) fn compute(
        &self,
        req: &ParsedRequest,
        model: &ModelSpec,
        body_sha: &str,
        forced: Option<OutcomeKind>,
    ) -> (Answer, CachePlan) {
        let answer = if req.max_tokens == 0 {
            // Cache pre-warming: no output at all.
            Answer {
                blocks: Vec::new(),
                stop_reason: "max_tokens",
                stop_sequence: None,
                output_tokens: 0,
                thinking_tokens: 0,
                meta: AnswerMeta {
                    role: Some(agents::classify(req)),
                    outcome: Some("prewarm".into()),
                    ..AnswerMeta::default()
                },
            }
        } else {
            let ctx = Ctx {
                scenario: &self.inner.scenario,
                paths: &self.inner.paths,
                secret: &self.inner.secret,
                body_sha,
            };
            let mut world = lock(&self.inner.world);
            agents::answer(&ctx, &mut world, req, model, forced)
        };
        let rendered = cache::render(req);
        let plan = lock(&self.inner.cache).plan(
            &model.id,
            &rendered,
            model.min_cacheable_tokens,
            self.now_ms(),
        );
        (answer, plan)
    }

    pub(super) fn commit(&self, plan: &CachePlan) {
        let now = self.now_ms();
        lock(&self.inner.cache).commit(plan, now);
    }

    pub(super) fn error_response(&self, e: &ApiError, request_id: &str) -> Response {
        let mut resp = json_response(e.status, Bytes::from(e.body(request_id).to_string()));
        if let Some(secs) = e.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// Fills the log entry from an answer and its cache plan.
pub(super) fn record_answer(
    rec: &mut LoggedRequest,
    meta: &AnswerMeta,
    plan: &CachePlan,
    output_tokens: u64,
) {
    rec.role = meta.role.or(rec.role);
    if meta.subtask_path.is_some() {
        rec.subtask_path.clone_from(&meta.subtask_path);
    }
    rec.attempt = meta.attempt;
    rec.model_attempt = meta.model_attempt;
    rec.turn = meta.turn;
    rec.outcome.clone_from(&meta.outcome);
    rec.feedback.clone_from(&meta.feedback);
    rec.input_tokens = plan.input;
    rec.cache_read_input_tokens = plan.read;
    rec.cache_creation_input_tokens = plan.creation();
    rec.output_tokens = output_tokens;
}
