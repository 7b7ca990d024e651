//! The HTTP server: shared state, router, handlers and the server handle.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::agents::{self, Answer, AnswerMeta, Ctx, World};
use crate::api_error::ApiError;
use crate::batch::{Batch, BatchStore, paginate};
use crate::cache::{self, CachePlan, PromptCache};
use crate::clock::{Clock, SystemClock};
use crate::faults::{FaultBook, FaultKind, FaultSpec, FaultTarget, Firing};
use crate::ids::{SplitMix, hash64, make_id, rfc3339, sha256_hex};
use crate::limiter::{Take, TokenBucket};
use crate::log::{LoggedRequest, SimStats};
use crate::models::{ModelSpec, ModelTable};
use crate::request::{ParsedRequest, Purpose, parse_request};
use crate::response::{UsageNums, message_json, per_event_delay, sse, sse_events};
use crate::scenario::{OutcomeKind, Scenario};
use crate::{Error, Result, Role};

/// Body size caps from the API docs.
const MESSAGES_LIMIT: usize = 32 * 1024 * 1024;
const BATCH_LIMIT: usize = 256 * 1024 * 1024;
/// How long a dropped connection waits after its partial body before aborting.
const FLUSH_BEFORE_DROP: Duration = Duration::from_millis(25);
/// Nominal limits reported when `[limits]` is unlimited.
const NOMINAL_RPM: u64 = 4000;

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct SimState {
    inner: Arc<Shared>,
}

struct Shared {
    scenario: Scenario,
    models: ModelTable,
    clock: Arc<dyn Clock>,
    clock_origin: Duration,
    wall_origin: SystemTime,
    secret: String,
    seq: AtomicU64,
    ids: AtomicU64,
    log: Mutex<Vec<LoggedRequest>>,
    world: Mutex<World>,
    cache: Mutex<PromptCache>,
    faults: Mutex<FaultBook>,
    limiter: Option<Mutex<TokenBucket>>,
    batches: Mutex<BatchStore>,
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
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How a successful answer reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Normal,
    Drop,
    Malformed,
    StreamError,
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

    fn now_ms(&self) -> u64 {
        let elapsed = self
            .inner
            .clock
            .now()
            .saturating_sub(self.inner.clock_origin);
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    }

    fn wall(&self, ms: u64) -> String {
        rfc3339(self.inner.wall_origin + Duration::from_millis(ms))
    }

    fn next_id(&self, prefix: &str) -> String {
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

    fn begin(&self, method: &str, path: &str) -> LoggedRequest {
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
    fn reply(&self, rec: LoggedRequest, result: Result<Response, ApiError>) -> Response {
        let resp = match result {
            Ok(resp) => resp,
            Err(e) => self.error_response(&e, &rec.request_id),
        };
        self.finish(rec, resp)
    }

    /// Stamps the standard headers, records the request and returns the response.
    fn finish(&self, mut rec: LoggedRequest, mut resp: Response) -> Response {
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

    fn mark_complete(&self, seq: u64) {
        let mut log = lock(&self.inner.log);
        if let Some(entry) = log.iter_mut().rev().find(|r| r.seq == seq) {
            entry.complete = true;
        }
    }

    fn latency(&self, model: &ModelSpec, body_sha: &str) -> Duration {
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

    fn take_rate_limit(&self) -> Result<(), ApiError> {
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
    fn fire_fault(
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
    fn compute(
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

    fn commit(&self, plan: &CachePlan) {
        let now = self.now_ms();
        lock(&self.inner.cache).commit(plan, now);
    }

    fn error_response(&self, e: &ApiError, request_id: &str) -> Response {
        let mut resp = json_response(e.status, Bytes::from(e.body(request_id).to_string()));
        if let Some(secs) = e.retry_after_secs
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }

    async fn handle_messages(
        &self,
        rec: &mut LoggedRequest,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let bytes = read_body(body, MESSAGES_LIMIT).await?;
        rec.body_sha256 = sha256_hex(&bytes);
        check_auth(headers)?;
        let value = parse_json(&bytes)?;
        let (req, model) = parse_request(
            &value,
            &self.inner.models,
            Purpose::Messages,
            &self.inner.secret,
        )?;
        rec.model = Some(req.model.clone());
        rec.stream = req.stream;
        let (role, paths) = agents::peek(&req);
        rec.role = Some(role);
        if role == Role::Worker {
            rec.subtask_path = paths.first().cloned();
        }
        self.take_rate_limit()?;
        let target = FaultTarget {
            role,
            model: &req.model,
            paths: &paths,
        };
        let firing = self.fire_fault(headers, &rec.body_sha256, &target)?;
        let mut extra_delay = Duration::ZERO;
        let mut forced = None;
        let mut delivery = Delivery::Normal;
        if let Some(f) = firing {
            rec.fault = Some(f.kind.as_str().to_string());
            match f.kind {
                FaultKind::RateLimit => {
                    return Err(ApiError::rate_limited(
                        "This request would exceed the rate limit for your organization (injected \
                         by cadre-sim). Please retry after the time in the retry-after header.",
                        f.retry_after_secs.unwrap_or(1),
                    ));
                }
                FaultKind::Overloaded => return Err(ApiError::overloaded(f.retry_after_secs)),
                FaultKind::ServerError => return Err(ApiError::internal()),
                FaultKind::StreamError if !req.stream => {
                    return Err(ApiError::overloaded(f.retry_after_secs));
                }
                FaultKind::StreamError => delivery = Delivery::StreamError,
                FaultKind::Slow => extra_delay = Duration::from_millis(f.delay_ms),
                FaultKind::DropConnection => delivery = Delivery::Drop,
                FaultKind::MalformedJson => delivery = Delivery::Malformed,
                other => forced = other.as_outcome(),
            }
        }

        let (answer, plan) = self.compute(&req, model, &rec.body_sha256, forced);
        record_answer(rec, &answer.meta, &plan, answer.output_tokens);
        let latency = self.latency(model, &rec.body_sha256) + extra_delay;
        let msg_id = self.next_id("msg_");
        let usage = UsageNums::new(&plan, &answer);

        if !req.stream {
            tokio::time::sleep(latency).await;
            self.commit(&plan);
            let message = message_json(&msg_id, &req.model, &answer, &usage, "standard");
            let full = Bytes::from(message.to_string());
            return Ok(match delivery {
                Delivery::Normal | Delivery::StreamError => {
                    rec.complete = true;
                    json_response(StatusCode::OK, full)
                }
                Delivery::Malformed => {
                    let cut = full.slice(..full.len() * 3 / 5);
                    json_response(StatusCode::OK, cut)
                }
                Delivery::Drop => {
                    let half = full.slice(..full.len() / 2);
                    let stream = EventStream {
                        events: VecDeque::from([half]),
                        delay: Duration::ZERO,
                        fail_after: Some(1),
                        sent: 0,
                        done: false,
                        complete_on_end: false,
                        sim: self.clone(),
                        seq: rec.seq,
                    };
                    let mut resp = Response::new(Body::from_stream(stream.into_stream()));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    resp
                }
            });
        }

        // Streaming: time to first event is half the latency, the rest is
        // spread over the events. The cache entry is readable from here on.
        tokio::time::sleep(latency / 2).await;
        self.commit(&plan);
        let mut events: VecDeque<Bytes> = sse_events(&msg_id, &req.model, &answer, &usage).into();
        let delay = per_event_delay(latency / 2, events.len());
        let mut fail_after = None;
        let mut complete_on_end = false;
        match delivery {
            Delivery::Normal => complete_on_end = true,
            Delivery::Drop => fail_after = Some(events.len() / 2),
            Delivery::Malformed => {
                if let Some(first) = events.front_mut() {
                    *first = Bytes::from_static(
                        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\n\n",
                    );
                }
            }
            Delivery::StreamError => {
                let keep = events.len() / 2;
                events.truncate(keep.max(1));
                events.push_back(sse(
                    "error",
                    &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                ));
            }
        }
        let stream = EventStream {
            events,
            delay,
            fail_after,
            sent: 0,
            done: false,
            complete_on_end,
            sim: self.clone(),
            seq: rec.seq,
        };
        let mut resp = Response::new(Body::from_stream(stream.into_stream()));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(resp)
    }

    async fn handle_count_tokens(
        &self,
        rec: &mut LoggedRequest,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let bytes = read_body(body, MESSAGES_LIMIT).await?;
        rec.body_sha256 = sha256_hex(&bytes);
        check_auth(headers)?;
        let value = parse_json(&bytes)?;
        let (req, _model) = parse_request(
            &value,
            &self.inner.models,
            Purpose::CountTokens,
            &self.inner.secret,
        )?;
        rec.model = Some(req.model.clone());
        let tokens = req.input_tokens();
        rec.input_tokens = tokens;
        rec.complete = true;
        Ok(json_value(StatusCode::OK, &json!({"input_tokens": tokens})))
    }

    async fn handle_create_batch(
        &self,
        rec: &mut LoggedRequest,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let bytes = read_body(body, BATCH_LIMIT).await?;
        rec.body_sha256 = sha256_hex(&bytes);
        check_auth(headers)?;
        let value = parse_json(&bytes)?;
        let obj = value
            .as_object()
            .ok_or_else(|| ApiError::invalid("The request body must be a JSON object"))?;
        for key in obj.keys() {
            if key != "requests" {
                return Err(ApiError::invalid(format!(
                    "{key}: Extra inputs are not permitted"
                )));
            }
        }
        let requests = match obj.get("requests") {
            Some(Value::Array(r)) => r,
            Some(_) => return Err(ApiError::invalid("requests: Input should be a valid list")),
            None => return Err(ApiError::invalid("requests: Field required")),
        };
        if requests.is_empty() {
            return Err(ApiError::invalid(
                "requests: List should have at least 1 item after validation, not 0",
            ));
        }
        if requests.len() > 100_000 {
            return Err(ApiError::invalid(
                "requests: a batch holds at most 100,000 requests",
            ));
        }
        let mut seen = HashSet::new();
        for (i, r) in requests.iter().enumerate() {
            let custom_id = r.get("custom_id").and_then(Value::as_str).ok_or_else(|| {
                ApiError::invalid(format!("requests.{i}.custom_id: Field required"))
            })?;
            let valid = !custom_id.is_empty()
                && custom_id.len() <= 64
                && custom_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(ApiError::invalid(format!(
                    "requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                )));
            }
            if !seen.insert(custom_id) {
                return Err(ApiError::invalid(format!(
                    "requests: custom_id values must be unique within a batch; {custom_id:?} is repeated"
                )));
            }
            if !r.get("params").is_some_and(Value::is_object) {
                return Err(ApiError::invalid(format!(
                    "requests.{i}.params: Field required"
                )));
            }
        }

        let batch_id = self.next_id("msgbatch_");
        let mut items = Vec::with_capacity(requests.len());
        for r in requests {
            let custom_id = r
                .get("custom_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let params = r.get("params").cloned().unwrap_or(Value::Null);
            let mut item = self.begin("BATCH", "/v1/messages/batches");
            item.batch_id = Some(batch_id.clone());
            item.custom_id = Some(custom_id.clone());
            item.body_sha256 = sha256_hex(params.to_string().as_bytes());
            let result = match parse_request(
                &params,
                &self.inner.models,
                Purpose::Batch,
                &self.inner.secret,
            ) {
                Ok((req, model)) => {
                    item.model = Some(req.model.clone());
                    let (role, paths) = agents::peek(&req);
                    item.role = Some(role);
                    if role == Role::Worker {
                        item.subtask_path = paths.first().cloned();
                    }
                    let (answer, plan) = self.compute(&req, model, &item.body_sha256, None);
                    self.commit(&plan);
                    record_answer(&mut item, &answer.meta, &plan, answer.output_tokens);
                    item.status = 200;
                    item.complete = true;
                    let usage = UsageNums::new(&plan, &answer);
                    let msg_id = self.next_id("msg_");
                    json!({"type": "succeeded", "message": message_json(&msg_id, &req.model, &answer, &usage, "batch")})
                }
                Err(e) => {
                    item.status = e.status.as_u16();
                    json!({"type": "errored", "error": e.body(&item.request_id)})
                }
            };
            lock(&self.inner.log).push(item);
            items.push((custom_id, result));
        }
        let now = self.now_ms();
        let batch = Batch::new(
            batch_id,
            self.inner.scenario.seed,
            now,
            self.inner.scenario.batch.processing_delay_ms,
            items,
        );
        let body = batch.json(now, &|ms| self.wall(ms), &base_url(headers), false);
        lock(&self.inner.batches).insert(batch);
        rec.complete = true;
        Ok(json_value(StatusCode::OK, &body))
    }

    fn batch_json(&self, id: &str, headers: &HeaderMap) -> Result<Value, ApiError> {
        let now = self.now_ms();
        let batches = lock(&self.inner.batches);
        let batch = batches.get(id).ok_or_else(|| batch_not_found(id))?;
        Ok(batch.json(now, &|ms| self.wall(ms), &base_url(headers), false))
    }
}

/// Fills the log entry from an answer and its cache plan.
fn record_answer(rec: &mut LoggedRequest, meta: &AnswerMeta, plan: &CachePlan, output_tokens: u64) {
    rec.role = meta.role.or(rec.role);
    if meta.subtask_path.is_some() {
        rec.subtask_path.clone_from(&meta.subtask_path);
    }
    rec.attempt = meta.attempt;
    rec.model_attempt = meta.model_attempt;
    rec.turn = meta.turn;
    rec.outcome.clone_from(&meta.outcome);
    rec.input_tokens = plan.input;
    rec.cache_read_input_tokens = plan.read;
    rec.cache_creation_input_tokens = plan.creation();
    rec.output_tokens = output_tokens;
}

/// Streams SSE events with pacing, an optional mid-stream abort, and marks the
/// log entry complete once the last event went out.
struct EventStream {
    events: VecDeque<Bytes>,
    delay: Duration,
    fail_after: Option<usize>,
    sent: usize,
    done: bool,
    complete_on_end: bool,
    sim: SimState,
    seq: u64,
}

impl EventStream {
    fn into_stream(self) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures::stream::unfold(self, |mut st| async move {
            if st.done {
                return None;
            }
            if st.fail_after.is_some_and(|n| st.sent >= n) {
                // Give the server a moment to flush what was sent, so the
                // client sees the status, headers and a partial body first.
                tokio::time::sleep(FLUSH_BEFORE_DROP).await;
                st.done = true;
                return Some((Err(dropped()), st));
            }
            match st.events.pop_front() {
                Some(event) => {
                    if st.sent > 0 && !st.delay.is_zero() {
                        tokio::time::sleep(st.delay).await;
                    }
                    st.sent += 1;
                    Some((Ok(event), st))
                }
                None => {
                    if st.complete_on_end {
                        st.sim.mark_complete(st.seq);
                    }
                    None
                }
            }
        })
    }
}

fn dropped() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "cadre-sim: connection dropped (injected fault)",
    )
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn json_value(status: StatusCode, value: &Value) -> Response {
    json_response(status, Bytes::from(value.to_string()))
}

async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::too_large(format!(
            "Request exceeds the maximum allowed number of bytes ({limit})."
        ))
    })
}

fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid(format!(
            "There was an error parsing the body of your request: invalid JSON ({e})"
        ))
    })
}

/// `x-api-key` (any non-empty value) or `Authorization: Bearer ...`, then
/// `anthropic-version`. The key's value is never logged.
fn check_auth(headers: &HeaderMap) -> Result<(), ApiError> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let has_key = get("x-api-key").is_some_and(|k| !k.is_empty());
    let has_bearer = get("authorization").is_some_and(|a| {
        a.strip_prefix("Bearer ")
            .is_some_and(|t| !t.trim().is_empty())
    });
    if !has_key && !has_bearer {
        return Err(ApiError::authentication("x-api-key header is required"));
    }
    if get("anthropic-version").is_none_or(str::is_empty) {
        return Err(ApiError::invalid("anthropic-version: header is required"));
    }
    Ok(())
}

fn base_url(headers: &HeaderMap) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}"),
        None => "http://127.0.0.1".to_string(),
    }
}

fn batch_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("message_batch: no batch with id {id}"))
}

fn list_params(
    q: &HashMap<String, String>,
) -> Result<(usize, Option<String>, Option<String>), ApiError> {
    let limit = match q.get("limit") {
        None => 20,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "limit: Input should be an integer between 1 and 1000",
                ));
            }
        },
    };
    Ok((
        limit,
        q.get("after_id").cloned(),
        q.get("before_id").cloned(),
    ))
}

fn model_json(m: &ModelSpec) -> Value {
    let effort = |level: &str| json!({"supported": m.effort_levels.iter().any(|l| l == level)});
    let thinking_on = m.thinking != crate::ThinkingMode::None;
    json!({
        "type": "model",
        "id": m.id,
        "display_name": m.display_name,
        "created_at": m.created_at,
        "lifecycle": "active",
        "max_input_tokens": m.context_window,
        "max_tokens": m.max_output_tokens,
        "capabilities": {
            "batch": {"supported": true},
            "citations": {"supported": true},
            "code_execution": {"supported": false},
            "context_management": {"supported": false},
            "effort": {
                "supported": m.supports_effort(),
                "low": effort("low"),
                "medium": effort("medium"),
                "high": effort("high"),
                "xhigh": effort("xhigh"),
                "max": effort("max"),
            },
            "image_input": {"supported": true},
            "pdf_input": {"supported": true},
            "server_tools": {"supported": false, "code_execution": {"supported": false}, "web_search": {"supported": false}},
            "structured_outputs": {"supported": true},
            "thinking": {
                "supported": thinking_on,
                "types": {
                    "adaptive": {"supported": m.thinking.accepts_adaptive()},
                    "between_tools": {"supported": thinking_on},
                    "disabled": {"supported": true},
                    "enabled": {"supported": m.thinking.accepts_budget()},
                },
            },
        },
    })
}

// ------------------------------------------------------------------ handlers

async fn messages(State(sim): State<SimState>, headers: HeaderMap, body: Body) -> Response {
    let mut rec = sim.begin("POST", "/v1/messages");
    let result = sim.handle_messages(&mut rec, &headers, body).await;
    sim.reply(rec, result)
}

async fn count_tokens(State(sim): State<SimState>, headers: HeaderMap, body: Body) -> Response {
    let mut rec = sim.begin("POST", "/v1/messages/count_tokens");
    let result = sim.handle_count_tokens(&mut rec, &headers, body).await;
    sim.reply(rec, result)
}

async fn create_batch(State(sim): State<SimState>, headers: HeaderMap, body: Body) -> Response {
    let mut rec = sim.begin("POST", "/v1/messages/batches");
    let result = sim.handle_create_batch(&mut rec, &headers, body).await;
    sim.reply(rec, result)
}

/// Runs a simple (bodiless) `/v1` handler with auth, logging and headers.
fn simple(
    sim: &SimState,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    f: impl FnOnce() -> Result<Value, ApiError>,
) -> Response {
    let mut rec = sim.begin(method, path);
    rec.body_sha256 = sha256_hex(b"");
    let result = check_auth(headers).and_then(|()| f()).map(|v| {
        rec.complete = true;
        json_value(StatusCode::OK, &v)
    });
    sim.reply(rec, result)
}

async fn list_batches(
    State(sim): State<SimState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    simple(&sim, "GET", "/v1/messages/batches", &headers, || {
        let (limit, after, before) = list_params(&q)?;
        let now = sim.now_ms();
        let base = base_url(&headers);
        let batches = lock(&sim.inner.batches);
        let items: Vec<(String, Value)> = batches
            .newest_first()
            .into_iter()
            .map(|b| (b.id.clone(), b.json(now, &|ms| sim.wall(ms), &base, false)))
            .collect();
        Ok(paginate(items, limit, after.as_deref(), before.as_deref()))
    })
}

async fn get_batch(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/messages/batches/{id}");
    simple(&sim, "GET", &path, &headers, || {
        sim.batch_json(&id, &headers)
    })
}

async fn cancel_batch(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/messages/batches/{id}/cancel");
    simple(&sim, "POST", &path, &headers, || {
        let now = sim.now_ms();
        let mut batches = lock(&sim.inner.batches);
        let batch = batches.get_mut(&id).ok_or_else(|| batch_not_found(&id))?;
        if !batch.cancel(now) {
            return Err(ApiError::invalid(format!(
                "Message batch {id} has already ended and can no longer be canceled."
            )));
        }
        Ok(batch.json(now, &|ms| sim.wall(ms), &base_url(&headers), true))
    })
}

async fn delete_batch(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/messages/batches/{id}");
    simple(&sim, "DELETE", &path, &headers, || {
        let now = sim.now_ms();
        let mut batches = lock(&sim.inner.batches);
        let batch = batches.get(&id).ok_or_else(|| batch_not_found(&id))?;
        if !batch.ended(now) {
            return Err(ApiError::invalid(format!(
                "Message batch {id} cannot be deleted while it is still processing; cancel it first."
            )));
        }
        batches.remove(&id);
        Ok(json!({"id": id, "type": "message_batch_deleted"}))
    })
}

async fn batch_results(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut rec = sim.begin("GET", &format!("/v1/messages/batches/{id}/results"));
    rec.body_sha256 = sha256_hex(b"");
    let result = check_auth(&headers).and_then(|()| {
        let now = sim.now_ms();
        let batches = lock(&sim.inner.batches);
        let batch = batches.get(&id).ok_or_else(|| batch_not_found(&id))?;
        if !batch.ended(now) {
            return Err(ApiError::invalid(format!(
                "Message batch {id} has not ended yet; results are available once processing_status is `ended`."
            )));
        }
        Ok(batch.results_jsonl())
    });
    let result = result.map(|jsonl| {
        rec.complete = true;
        let mut resp = Response::new(Body::from(jsonl));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-jsonl"),
        );
        resp
    });
    sim.reply(rec, result)
}

async fn list_models(
    State(sim): State<SimState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    simple(&sim, "GET", "/v1/models", &headers, || {
        let (limit, after, before) = list_params(&q)?;
        let items = sim
            .inner
            .models
            .all()
            .iter()
            .map(|m| (m.id.clone(), model_json(m)))
            .collect();
        Ok(paginate(items, limit, after.as_deref(), before.as_deref()))
    })
}

async fn get_model(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/models/{id}");
    simple(&sim, "GET", &path, &headers, || {
        sim.inner
            .models
            .get(&id)
            .map(model_json)
            .ok_or_else(|| ApiError::not_found(format!("model: {id}")))
    })
}

async fn sim_requests(State(sim): State<SimState>) -> Response {
    json_value(StatusCode::OK, &json!({"requests": sim.request_log()}))
}

async fn sim_stats(State(sim): State<SimState>) -> Response {
    match serde_json::to_value(sim.stats()) {
        Ok(v) => json_value(StatusCode::OK, &v),
        Err(_) => sim.error_response(&ApiError::internal(), ""),
    }
}

async fn add_fault(State(sim): State<SimState>, body: Body) -> Response {
    let result = async {
        let bytes = read_body(body, MESSAGES_LIMIT).await?;
        let spec: FaultSpec = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid(format!("invalid fault table: {e}")))?;
        let mut book = lock(&sim.inner.faults);
        book.add(spec);
        Ok::<usize, ApiError>(book.snapshot().len())
    }
    .await;
    match result {
        Ok(n) => json_value(StatusCode::OK, &json!({"faults": n})),
        Err(e) => sim.error_response(&e, ""),
    }
}

async fn list_faults(State(sim): State<SimState>) -> Response {
    let faults = lock(&sim.inner.faults).snapshot();
    json_value(StatusCode::OK, &json!({"faults": faults}))
}

async fn clear_faults(State(sim): State<SimState>) -> Response {
    sim.clear_faults();
    json_value(StatusCode::OK, &json!({"faults": 0}))
}

async fn not_found(State(sim): State<SimState>, method: Method, uri: Uri) -> Response {
    let rec = sim.begin(method.as_str(), uri.path());
    let e = ApiError::not_found(format!("Not found: {method} {}", uri.path()));
    sim.reply(rec, Err(e))
}

async fn method_not_allowed(State(sim): State<SimState>, method: Method, uri: Uri) -> Response {
    let rec = sim.begin(method.as_str(), uri.path());
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("Method {method} is not allowed on {}", uri.path()),
    );
    sim.reply(rec, Err(e))
}

/// The sim's routes: the Anthropic API under `/v1` and the control API under `/sim`.
pub fn router(state: SimState) -> Router {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/messages/batches", post(create_batch).get(list_batches))
        .route(
            "/v1/messages/batches/{id}",
            get(get_batch).delete(delete_batch),
        )
        .route("/v1/messages/batches/{id}/cancel", post(cancel_batch))
        .route("/v1/messages/batches/{id}/results", get(batch_results))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(get_model))
        .route("/sim/requests", get(sim_requests))
        .route("/sim/stats", get(sim_stats))
        .route(
            "/sim/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves `scenario` on `listener` until `shutdown` resolves, then shuts
/// down gracefully (in-flight requests finish). This is what `cadre sim serve`
/// runs.
pub async fn serve_until(
    scenario: Scenario,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = router(SimState::new(scenario));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}

/// A running sim server. Dropping it cancels the server; prefer
/// [`SimServer::shutdown`], which also waits for it to stop.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    state: SimState,
    guard: DropGuard,
    task: JoinHandle<Result<()>>,
}

impl SimServer {
    /// Starts serving `scenario` on `listener` (bind `127.0.0.1:0` for tests).
    pub async fn start(scenario: Scenario, listener: TcpListener) -> Result<SimServer> {
        Self::start_with_clock(scenario, listener, Arc::new(SystemClock::new())).await
    }

    /// Like [`SimServer::start`], reading time from `clock`.
    pub async fn start_with_clock(
        scenario: Scenario,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> Result<SimServer> {
        let addr = listener.local_addr().map_err(Error::Serve)?;
        let state = SimState::with_clock(scenario, clock);
        let token = CancellationToken::new();
        let stop = token.clone();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .map_err(Error::Serve)
        });
        Ok(SimServer {
            addr,
            state,
            guard: token.drop_guard(),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, to use as `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state (log, stats, faults).
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Every request received so far.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.state.request_log()
    }

    /// Aggregate counts over the request log.
    pub fn stats(&self) -> SimStats {
        self.state.stats()
    }

    /// Adds a fault at runtime.
    pub fn add_fault(&self, spec: FaultSpec) {
        self.state.add_fault(spec);
    }

    /// Stops accepting connections, lets in-flight requests finish and waits
    /// for the server task. Errors are logged.
    pub async fn shutdown(self) {
        if let Err(e) = self.shutdown_checked().await {
            tracing::warn!(error = %e, "cadre-sim server stopped with an error");
        }
    }

    /// Like [`SimServer::shutdown`], returning the server's error if any.
    pub async fn shutdown_checked(self) -> Result<()> {
        self.guard.disarm().cancel();
        self.task.await?
    }
}
