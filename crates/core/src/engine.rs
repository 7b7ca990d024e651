//! The job runner: plan, route, fan out, validate, escalate, integrate,
//! review, finish. See the crate docs for the resume design.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cadre_config::{Config, ProviderKind};
use cadre_llm::types::{
    ContentBlock, Message, MessageRequest, MessageResponse, MessageRole, Usage,
};
use cadre_llm::{
    AnthropicClient, AnthropicSettings, ApiKey, ModelProvider, OpenAiClient, OpenAiSettings,
    RetryPolicy, resolve_base_url,
};
use cadre_store::{
    AttemptFinish, AttemptRecord, JobRecord, NewAttempt, NewCall, NewEvent, NewJob, NewSubtask,
    Store, SubtaskRecord, SubtaskUpdate,
};
use cadre_types::{
    AttemptId, AttemptOutcome, Complexity, ErrorCost, EventKind, FailureKind, JobEvent, JobId,
    JobReport, JobStatus, Plan, Role, SubtaskId, SubtaskStatus, Verdict, WorkerChange,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore, broadcast, oneshot, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::batcher::{BatchItem, Batcher, poll_results};
use crate::checks::{blame, run_check, shell_quote};
use crate::diff::{patch, unified_diff};
use crate::edit::apply_change;
use crate::index::{WorkspaceIndex, file_filter, index_workspace, instruction_terms};
use crate::learn::learned_start;
use crate::paths::validate_in_workspace;
use crate::pricing::{estimate_tokens, price_usage, tokens_for_chars, worst_case_usd};
use crate::prompts::{
    Feedback, WorkerTurn, parse_plan, parse_review, parse_worker_turn, planner_request,
    reviewer_request, shared_prefix, worker_prefix_text, worker_request, worker_user_message,
};
use crate::report::{ReportBuilder, changed_lines};
use crate::routing::{Router, call_settings, context_floor, tier_index};
use crate::stage::{Applier, ApplyOutcome, FileChange, Staging, sha256_hex};
use crate::syntax::{check_no_new_errors, language_name};
use crate::{Error, Result};

/// Per-job options given on the command line or in a submission.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobOptions {
    /// Only files matching these globs are indexed and may be changed.
    pub files: Vec<String>,
    /// Integration check run in the staged tree (`cargo check`, `pytest -q`...).
    pub check: Option<String>,
    /// Per-file check; `{file}` is replaced by the candidate file's path.
    pub file_check: Option<String>,
    /// Send worker rounds as message batches.
    pub batch: bool,
}

/// The model provider for each tier.
#[derive(Clone, Debug, Default)]
pub struct Providers {
    by_tier: BTreeMap<String, Arc<dyn ModelProvider>>,
}

impl Providers {
    /// Providers keyed by tier name.
    pub fn new(by_tier: BTreeMap<String, Arc<dyn ModelProvider>>) -> Self {
        Self { by_tier }
    }

    /// Builds one client per provider from config; `env` looks up
    /// environment variables (API keys, base-URL overrides).
    /// `override_base` points every provider at one server with one key
    /// (the demo and tests use it for the simulator).
    pub fn from_config(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
        override_base: Option<(&str, &str)>,
    ) -> Result<Self> {
        let mut clients: BTreeMap<String, Arc<dyn ModelProvider>> = BTreeMap::new();
        let mut by_tier = BTreeMap::new();
        for tier in &config.tiers.order {
            let model = config
                .models
                .get(tier)
                .ok_or_else(|| Error::Config(format!("tier {tier:?} has no model")))?;
            if let Some(client) = clients.get(&model.provider) {
                by_tier.insert(tier.clone(), client.clone());
                continue;
            }
            let provider = config.providers.get(&model.provider).ok_or_else(|| {
                Error::Config(format!(
                    "model {} names unknown provider {:?}",
                    model.model, model.provider
                ))
            })?;
            let retry = RetryPolicy::new(
                provider.max_retries,
                provider.overload_max_retries,
                Duration::from_secs_f64(provider.overload_max_backoff_secs.max(0.0)),
            );
            let (base_url, key) = match override_base {
                Some((url, key)) => (url.to_owned(), Some(ApiKey::new(key))),
                None => (
                    resolve_base_url(&provider.base_url, env(&provider.base_url_env)),
                    env(&provider.api_key_env)
                        .filter(|k| !k.is_empty())
                        .map(ApiKey::new),
                ),
            };
            let client: Arc<dyn ModelProvider> = match provider.kind {
                ProviderKind::Anthropic => {
                    let key = key.ok_or_else(|| {
                        Error::Config(format!(
                            "tier {tier} uses provider {:?}, which needs an API key in ${}",
                            model.provider, provider.api_key_env
                        ))
                    })?;
                    let mut settings = AnthropicSettings::new(base_url, key);
                    settings.timeout = Duration::from_secs(provider.timeout_secs);
                    settings.connect_timeout = Duration::from_secs(provider.connect_timeout_secs);
                    settings.retry = retry;
                    Arc::new(AnthropicClient::new(settings)?)
                }
                ProviderKind::Openai => {
                    let mut settings = OpenAiSettings::new(base_url, key);
                    settings.timeout = Duration::from_secs(provider.timeout_secs);
                    settings.connect_timeout = Duration::from_secs(provider.connect_timeout_secs);
                    settings.retry = retry;
                    Arc::new(OpenAiClient::new(settings)?)
                }
            };
            clients.insert(model.provider.clone(), client.clone());
            by_tier.insert(tier.clone(), client);
        }
        Ok(Self { by_tier })
    }

    fn for_tier(&self, tier: &str) -> Result<Arc<dyn ModelProvider>> {
        self.by_tier
            .get(tier)
            .cloned()
            .ok_or_else(|| Error::Config(format!("no provider for tier {tier:?}")))
    }
}

/// A subtask's route as `cadre plan` shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlannedRoute {
    /// The file.
    pub path: String,
    /// As planned.
    pub complexity: Complexity,
    /// After path rules.
    pub error_cost: ErrorCost,
    /// Where it starts (empty when skipped).
    pub start_tier: String,
    /// `pending` or `skipped`.
    pub status: SubtaskStatus,
    /// The routing reason or the skip reason.
    pub reason: String,
    /// Estimated cost of one attempt at the start tier.
    pub estimated_usd: f64,
}

/// The output of `cadre plan`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanPreview {
    /// The job holding the plan (run it with `cadre resume`).
    pub job_id: JobId,
    /// The planner's notes.
    pub notes: String,
    /// One entry per planned subtask.
    pub routes: Vec<PlannedRoute>,
    /// What the planner call cost.
    pub planner_usd: f64,
    /// Planner + one attempt per subtask at its start tier + review.
    pub estimated_total_usd: f64,
    /// The job's budget, if any.
    pub budget_usd: Option<f64>,
    /// True when the estimate exceeds the budget.
    pub over_budget: bool,
}

/// The orchestrator. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Engine {
    inner: Arc<EngineInner>,
}

#[derive(Debug)]
struct EngineInner {
    config: Arc<Config>,
    store: Store,
    providers: Providers,
    /// Live events for progress displays; lagging receivers just miss some.
    events: broadcast::Sender<JobEvent>,
    /// Model-call slots shared by every job this engine runs
    /// (`limits.max_concurrency`). Each running job may hold at most its fair
    /// share of them (total / running jobs), so a huge job cannot starve a
    /// small one, while a job running alone gets them all.
    slots: Arc<Semaphore>,
    /// Jobs currently in `run_job`: the divisor of the fair share.
    running_jobs: AtomicUsize,
    /// Signalled whenever a slot is returned, so capped jobs re-check.
    slot_returned: Notify,
}

/// A held model-call slot; returning it wakes jobs waiting for their share.
struct SlotGuard<'a> {
    _permit: tokio::sync::OwnedSemaphorePermit,
    in_flight: &'a AtomicUsize,
    returned: &'a Notify,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.returned.notify_waiters();
    }
}

/// Counts a job as running while it is alive.
struct RunningJob<'a>(&'a AtomicUsize);

impl Drop for RunningJob<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Why a model call produced no response.
#[derive(Debug)]
enum CallFailure {
    /// The budget could not cover the call's worst case; nothing was sent.
    Budget(String),
    /// The provider failed after its retries.
    Provider(String),
    /// The run is stopping; nothing was sent.
    Stopped,
}

/// One finished (or replayed) model call.
#[derive(Debug)]
struct CallDone {
    response: MessageResponse,
    usage: Usage,
    cost_usd: f64,
    latency_ms: u64,
}

/// Gate that lets the first call of a tier go alone so the rest read its cache.
#[derive(Debug)]
struct WarmGate {
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

    /// Returns true when the caller is the warmer and must call `finish`.
    async fn enter(&self) -> bool {
        if *self.done.borrow() {
            return false;
        }
        if !self.claimed.swap(true, Ordering::SeqCst) {
            return true;
        }
        let mut rx = self.done.subscribe();
        let _ = rx.wait_for(|done| *done).await;
        false
    }

    fn finish(&self) {
        self.done.send_replace(true);
    }
}

/// Opens the warm gate even if the warming call fails or is dropped.
struct WarmGuard<'a>(Option<&'a WarmGate>);

impl Drop for WarmGuard<'_> {
    fn drop(&mut self) {
        if let Some(gate) = self.0 {
            gate.finish();
        }
    }
}

/// Budget bookkeeping: spent plus reserved never exceeds the cap.
#[derive(Debug)]
struct Budget {
    cap: Option<f64>,
    /// (spent, reserved)
    state: Mutex<(f64, f64)>,
    exhausted: AtomicBool,
}

impl Budget {
    /// Reserves `amount`. On failure: why, and whether other calls were in
    /// flight (they may settle below their worst case, so it is worth waiting).
    fn reserve(&self, amount: f64) -> std::result::Result<(), (String, bool)> {
        let Some(cap) = self.cap else { return Ok(()) };
        let Ok(mut state) = self.state.lock() else {
            return Err(("budget lock poisoned".to_owned(), false));
        };
        if state.0 + state.1 + amount > cap + 1e-12 {
            let message = format!(
                "budget ${cap:.4} exhausted: spent ${:.4}, next call could cost ${amount:.4}",
                state.0.abs()
            );
            return Err((message, state.1 > 1e-12));
        }
        state.1 += amount;
        Ok(())
    }

    fn settle(&self, reserved: f64, actual: f64) {
        if let Ok(mut state) = self.state.lock() {
            if self.cap.is_some() {
                state.1 = (state.1 - reserved).max(0.0);
            }
            state.0 += actual;
        }
    }
}

/// Everything one run of one job shares across its worker tasks.
#[derive(Debug)]
struct JobCtx {
    engine: Engine,
    job_id: JobId,
    root: PathBuf,
    options: JobOptions,
    /// Files a worker's read-only tools may see.
    files: Vec<String>,
    prefix: String,
    cache_prefix: BTreeMap<String, bool>,
    budget: Budget,
    /// Model calls this job has in flight (its use of the engine's slots).
    in_flight: AtomicUsize,
    /// Bounds model calls in flight per tier.
    tier_limits: BTreeMap<String, Arc<Semaphore>>,
    warm: BTreeMap<String, WarmGate>,
    /// Set when the provider says 429/529: no new call starts before it.
    pause_until: Mutex<Option<tokio::time::Instant>>,
    /// Stop: leave the job resumable.
    stop: CancellationToken,
    /// Fired by `stop` or when a user's cancel is noticed: no new model call
    /// is sent once it fires (a child of `stop`).
    halt: CancellationToken,
    /// Batch mode's round collector (only for jobs submitted with `batch`).
    batcher: Option<Batcher>,
}

/// A finished attempt as the cascade sees it.
#[derive(Clone, Debug)]
struct AttemptSummary {
    tier: String,
    outcome: AttemptOutcome,
    failure: Option<FailureKind>,
    error: Option<String>,
    /// Result content hash (or change hash when it did not apply).
    fingerprint: Option<String>,
    change: Option<WorkerChange>,
}

/// What the stored `change` JSON of a worker attempt holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredChange {
    change: WorkerChange,
    fingerprint: String,
}

impl AttemptSummary {
    fn from_record(a: &AttemptRecord) -> Self {
        let stored: Option<StoredChange> = a
            .change
            .clone()
            .and_then(|v| serde_json::from_value(v).ok());
        Self {
            tier: a.tier.clone(),
            outcome: a.outcome,
            failure: a.failure,
            error: a.error.clone(),
            fingerprint: stored.as_ref().map(|s| s.fingerprint.clone()),
            change: stored.map(|s| s.change),
        }
    }
}

/// Every job state a run can leave for a terminal one.
const LIVE_JOB_STATES: &[JobStatus] = &[
    JobStatus::Queued,
    JobStatus::Planning,
    JobStatus::Running,
    JobStatus::Integrating,
    JobStatus::Reviewing,
];

/// Most files one reviewer call covers.
const REVIEW_CHUNK_FILES: usize = 100;

/// How one attempt ended, as the subtask driver sees it.
#[derive(Debug)]
enum AttemptRun {
    /// A model answered and the answer was validated (passed or failed).
    Done(AttemptSummary),
    /// The run is stopping; the attempt is recorded as interrupted.
    Stopped,
    /// The budget cannot cover the next call; nothing was sent.
    OverBudget(String),
}

/// The cascade's next move for a subtask.
#[derive(Debug, PartialEq)]
enum Step {
    Accept(usize),
    Attempt { tier: String },
    NeedsHuman(String),
}

/// Decides the next move from the attempt history alone (DESIGN section 3).
fn next_step(config: &Config, start_tier: &str, history: &[AttemptSummary]) -> Result<Step> {
    let finished: Vec<(usize, &AttemptSummary)> = history
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a.outcome, AttemptOutcome::Passed | AttemptOutcome::Failed))
        .collect();
    if let Some((i, last)) = finished.last()
        && last.outcome == AttemptOutcome::Passed
    {
        return Ok(Step::Accept(*i));
    }
    let order = &config.tiers.order;
    let mut current = tier_index(config, start_tier)?;
    for (_, a) in &finished {
        current = current.max(tier_index(config, &a.tier)?);
    }
    let at_current: Vec<&&AttemptSummary> = finished
        .iter()
        .map(|(_, a)| a)
        .filter(|a| tier_index(config, &a.tier).ok() == Some(current))
        .collect();
    let circular = at_current
        .last()
        .is_some_and(|a| a.failure == Some(FailureKind::CircularFix));
    if circular || at_current.len() as u32 >= config.attempts_for_tier(&order[current]) {
        current += 1;
    }
    match order.get(current) {
        Some(tier) => Ok(Step::Attempt { tier: tier.clone() }),
        None => {
            let last = finished
                .last()
                .map(|(_, a)| {
                    format!(
                        "{} at {}: {}",
                        a.failure.map_or("failed", |f| f.as_str()),
                        a.tier,
                        a.error.clone().unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            Ok(Step::NeedsHuman(format!("every tier failed; last: {last}")))
        }
    }
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn request_sha(request: &MessageRequest) -> String {
    sha256_hex(&serde_json::to_vec(request).unwrap_or_default())
}

fn echo_content(content: &[ContentBlock]) -> Vec<ContentBlock> {
    content
        .iter()
        .filter(|b| !matches!(b, ContentBlock::Unknown))
        .cloned()
        .collect()
}

impl Engine {
    /// An engine over a store and providers.
    pub fn new(config: Arc<Config>, store: Store, providers: Providers) -> Self {
        let (events, _) = broadcast::channel(4096);
        let slots = Arc::new(Semaphore::new(config.limits.max_concurrency.max(1) as usize));
        Self {
            inner: Arc::new(EngineInner {
                config,
                store,
                providers,
                events,
                slots,
                running_jobs: AtomicUsize::new(0),
                slot_returned: Notify::new(),
            }),
        }
    }

    /// Waits for a model-call slot within the job's fair share; `None` when
    /// the run stops first.
    async fn acquire_slot<'a>(&'a self, ctx: &'a JobCtx) -> Option<SlotGuard<'a>> {
        let total = self.inner.config.limits.max_concurrency.max(1) as usize;
        loop {
            let running = self.inner.running_jobs.load(Ordering::SeqCst).max(1);
            let share = (total / running).max(1);
            if ctx.in_flight.load(Ordering::SeqCst) < share {
                let permit = tokio::select! {
                    p = self.inner.slots.clone().acquire_owned() => p.ok()?,
                    _ = ctx.halt.cancelled() => return None,
                };
                ctx.in_flight.fetch_add(1, Ordering::SeqCst);
                return Some(SlotGuard {
                    _permit: permit,
                    in_flight: &ctx.in_flight,
                    returned: &self.inner.slot_returned,
                });
            }
            // Over its share: wait for a slot to come back (or the share to grow).
            tokio::select! {
                _ = self.inner.slot_returned.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                _ = ctx.halt.cancelled() => return None,
            }
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Live events of every job this engine runs.
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        self.inner.events.subscribe()
    }

    async fn emit(
        &self,
        job: JobId,
        subtask: Option<SubtaskId>,
        kind: EventKind,
        message: String,
        data: Value,
    ) -> Result<()> {
        let event = NewEvent {
            job_id: job,
            subtask_id: subtask,
            kind,
            message: message.clone(),
            data: data.clone(),
        };
        let seq = self.inner.store.append_event(&event).await?;
        let _ = self.inner.events.send(JobEvent {
            seq,
            job_id: job,
            subtask_id: subtask,
            kind,
            message,
            data,
            at: now_unix(),
        });
        Ok(())
    }

    /// Records a new queued job and returns its id.
    pub async fn create_job(
        &self,
        instruction: &str,
        workspace: &Path,
        options: &JobOptions,
        budget_usd: Option<f64>,
        priority: i64,
    ) -> Result<JobId> {
        if instruction.trim().is_empty() {
            return Err(Error::InvalidInput("the instruction is empty".to_owned()));
        }
        let root = workspace
            .canonicalize()
            .map_err(|e| Error::InvalidInput(format!("workspace {}: {e}", workspace.display())))?;
        if !root.is_dir() {
            return Err(Error::InvalidInput(format!(
                "workspace {} is not a directory",
                root.display()
            )));
        }
        file_filter(&options.files)?;
        let budget = budget_usd.or_else(|| {
            let d = self.inner.config.budget.default_usd;
            (d > 0.0).then_some(d)
        });
        if let Some(b) = budget
            && !(b.is_finite() && b > 0.0)
        {
            return Err(Error::InvalidInput(format!(
                "budget must be a positive number of USD, got {b}"
            )));
        }
        let id = JobId::new();
        let options_json =
            serde_json::to_value(options).map_err(|e| Error::InvalidInput(e.to_string()))?;
        self.inner
            .store
            .create_job(&NewJob {
                id,
                instruction: instruction.to_owned(),
                workspace: root.to_string_lossy().into_owned(),
                options: options_json,
                priority,
                budget_usd: budget,
                status: JobStatus::Queued,
            })
            .await?;
        self.emit(
            id,
            None,
            EventKind::JobStatus,
            "job queued".to_owned(),
            json!({"status": "queued"}),
        )
        .await?;
        Ok(id)
    }

    async fn load_job(&self, id: JobId) -> Result<JobRecord> {
        self.inner
            .store
            .get_job(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// The job without its plan, for everything that does not read it (a
    /// 10,000-file plan is megabytes of parsed JSON).
    async fn load_job_brief(&self, id: JobId) -> Result<JobRecord> {
        self.inner
            .store
            .get_job_brief(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    async fn set_job_status(
        &self,
        job: JobId,
        from: &[JobStatus],
        to: JobStatus,
        reason: &str,
    ) -> Result<bool> {
        let changed = self
            .inner
            .store
            .transition_job(job, from, to, reason)
            .await?;
        if changed {
            let message = if reason.is_empty() {
                format!("job {to}")
            } else {
                format!("job {to}: {reason}")
            };
            self.emit(
                job,
                None,
                EventKind::JobStatus,
                message,
                json!({"status": to.as_str(), "reason": reason}),
            )
            .await?;
        }
        Ok(changed)
    }

    async fn set_subtask_status(
        &self,
        job: JobId,
        sub: &SubtaskRecord,
        from: &[SubtaskStatus],
        to: SubtaskStatus,
        update: SubtaskUpdate,
    ) -> Result<bool> {
        let reason = update.reason.clone().unwrap_or_default();
        let changed = self
            .inner
            .store
            .transition_subtask(sub.id, from, to, &update)
            .await?;
        if changed {
            self.emit(
                job,
                Some(sub.id),
                EventKind::SubtaskStatus,
                format!("{}: {to} {reason}", sub.path).trim_end().to_owned(),
                json!({"path": sub.path, "status": to.as_str(), "tier": update.current_tier, "reason": reason}),
            )
            .await?;
        }
        Ok(changed)
    }

    fn job_options(job: &JobRecord) -> Result<JobOptions> {
        serde_json::from_value(job.options.clone())
            .map_err(|e| Error::InvalidInput(format!("stored job options: {e}")))
    }

    /// The shared state of one run of `job`. `files` is the workspace's
    /// readable files when the caller has just indexed it; otherwise the
    /// workspace is indexed here.
    async fn job_ctx(
        &self,
        job: &JobRecord,
        stop: CancellationToken,
        files: Option<Vec<String>>,
    ) -> Result<Arc<JobCtx>> {
        let config = &self.inner.config;
        let options = Self::job_options(job)?;
        let options_batch = options.batch;
        let root = PathBuf::from(&job.workspace);
        let subtasks = self.inner.store.list_subtasks_brief(job.id).await?;
        let prefix_entries: Vec<(String, Complexity)> = subtasks
            .iter()
            .filter(|s| s.status != SubtaskStatus::Skipped)
            .map(|s| (s.path.clone(), s.complexity))
            .collect();
        let notes = job
            .plan
            .as_ref()
            .and_then(|p| p.get("notes"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let prefix = shared_prefix(&job.instruction, &notes, &prefix_entries);
        let prefix_tokens = estimate_tokens(&worker_prefix_text(&prefix));
        let mut cache_prefix = BTreeMap::new();
        let mut tier_limits = BTreeMap::new();
        let mut warm = BTreeMap::new();
        for tier in &config.tiers.order {
            let min = config
                .models
                .get(tier)
                .map_or(u64::MAX, |m| m.min_cacheable_tokens);
            cache_prefix.insert(tier.clone(), prefix_tokens >= min);
            let limit = config
                .limits
                .per_tier_concurrency
                .get(tier)
                .copied()
                .unwrap_or(config.limits.max_concurrency);
            tier_limits.insert(
                tier.clone(),
                Arc::new(Semaphore::new(limit.max(1) as usize)),
            );
            warm.insert(tier.clone(), WarmGate::new());
        }
        let spent: f64 = self
            .inner
            .store
            .list_calls(job.id)
            .await?
            .iter()
            .map(|c| c.cost_usd)
            .sum();
        let files = match files {
            Some(files) => files,
            None => {
                let filter = file_filter(&options.files)?;
                index_workspace(&root, filter.as_ref(), config.limits.max_file_bytes, &[])
                    .map(|i| i.files.into_iter().map(|f| f.path).collect())
                    .unwrap_or_default()
            }
        };
        Ok(Arc::new(JobCtx {
            engine: self.clone(),
            job_id: job.id,
            root,
            options,
            files,
            prefix,
            cache_prefix,
            budget: Budget {
                cap: job.budget_usd,
                state: Mutex::new((spent, 0.0)),
                exhausted: AtomicBool::new(false),
            },
            in_flight: AtomicUsize::new(0),
            tier_limits,
            warm,
            pause_until: Mutex::new(None),
            batcher: options_batch.then(|| {
                Batcher::start(
                    self.inner.store.clone(),
                    Duration::from_millis(config.limits.batch_window_ms),
                    Duration::from_secs(config.limits.batch_poll_max_secs),
                    stop.clone(),
                )
            }),
            halt: stop.child_token(),
            stop,
        }))
    }

    /// Sends one model call, unless the job's ledger already holds a finished
    /// call with the same request, which is then replayed instead.
    #[allow(clippy::too_many_arguments)]
    async fn call_model(
        &self,
        ctx: &JobCtx,
        attempt: AttemptId,
        turn: u32,
        role: Role,
        tier: &str,
        request: &MessageRequest,
        warm: bool,
    ) -> std::result::Result<CallDone, CallFailure> {
        let store = &self.inner.store;
        let sha = request_sha(request);
        match store.find_call(ctx.job_id, &sha).await {
            Ok(Some(previous)) => {
                if let Ok(response) =
                    serde_json::from_value::<MessageResponse>(previous.response.unwrap_or_default())
                {
                    return Ok(CallDone {
                        response,
                        usage: Usage::default(),
                        cost_usd: 0.0,
                        latency_ms: 0,
                    });
                }
            }
            Ok(None) => {}
            Err(e) => return Err(CallFailure::Provider(format!("store: {e}"))),
        }
        if ctx.halt.is_cancelled() {
            return Err(CallFailure::Stopped);
        }
        let config = &self.inner.config;
        let model = config
            .models
            .get(tier)
            .ok_or_else(|| CallFailure::Provider(format!("no model for tier {tier}")))?;
        let prompt = estimate_tokens(&serde_json::to_string(&request.system).unwrap_or_default())
            + estimate_tokens(&serde_json::to_string(&request.tools).unwrap_or_default())
            + estimate_tokens(&serde_json::to_string(&request.messages).unwrap_or_default());
        let provider = self
            .inner
            .providers
            .for_tier(tier)
            .map_err(|e| CallFailure::Provider(e.to_string()))?;
        let batcher = match &ctx.batcher {
            Some(b) if role == Role::Worker && provider.supports_batches() => Some(b),
            _ => None,
        };
        let worst = worst_case_usd(
            model,
            prompt,
            u64::from(request.max_tokens),
            batcher.is_some(),
        );
        loop {
            match ctx.budget.reserve(worst) {
                Ok(()) => break,
                Err((message, false)) => {
                    ctx.budget.exhausted.store(true, Ordering::SeqCst);
                    return Err(CallFailure::Budget(message));
                }
                Err((_, true)) => {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                        _ = ctx.halt.cancelled() => return Err(CallFailure::Stopped),
                    }
                }
            }
        }
        if let Some(batcher) = batcher {
            let (reply, answer) = oneshot::channel();
            let started = Instant::now();
            let item = BatchItem {
                attempt,
                provider: provider.clone(),
                provider_name: model.provider.clone(),
                request: request.clone(),
                reply,
            };
            if let Err(message) = batcher.submit(item).await {
                ctx.budget.settle(worst, 0.0);
                return Err(CallFailure::Provider(message));
            }
            let answer = tokio::select! {
                a = answer => a.unwrap_or_else(|_| Err("the batching task stopped".to_owned())),
                _ = ctx.halt.cancelled() => { ctx.budget.settle(worst, 0.0); return Err(CallFailure::Stopped) }
            };
            return match answer {
                Ok(message) => {
                    let latency_ms = started.elapsed().as_millis() as u64;
                    self.record_success(
                        ctx, attempt, turn, role, tier, sha, message, latency_ms, true, worst,
                    )
                    .await
                }
                // The batching task shares the stop token: an answer lost because
                // the run is stopping is an interruption, not a provider failure.
                Err(_) if ctx.halt.is_cancelled() => {
                    ctx.budget.settle(worst, 0.0);
                    Err(CallFailure::Stopped)
                }
                Err(message) => {
                    ctx.budget.settle(worst, 0.0);
                    Err(CallFailure::Provider(message))
                }
            };
        }
        let Some(_slot) = self.acquire_slot(ctx).await else {
            ctx.budget.settle(worst, 0.0);
            return Err(CallFailure::Stopped);
        };
        let _tier = match ctx.tier_limits.get(tier) {
            Some(s) => Some(s.acquire().await.map_err(|_| CallFailure::Stopped)?),
            None => None,
        };
        let gate = if warm { ctx.warm.get(tier) } else { None };
        let _warm_guard = match gate {
            Some(g) if g.enter().await => WarmGuard(Some(g)),
            _ => WarmGuard(None),
        };
        let pause = ctx.pause_until.lock().ok().and_then(|p| *p);
        if let Some(until) = pause {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {}
                _ = ctx.halt.cancelled() => { ctx.budget.settle(worst, 0.0); return Err(CallFailure::Stopped) }
            }
        }
        let started = Instant::now();
        let result = tokio::select! {
            r = provider.send(request) => r,
            _ = ctx.halt.cancelled() => { ctx.budget.settle(worst, 0.0); return Err(CallFailure::Stopped) }
        };
        let latency_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(reply) => {
                if reply.overload_retries > 0 {
                    let _ = self
                        .emit(
                            ctx.job_id,
                            None,
                            EventKind::Backoff,
                            format!(
                                "{tier}: provider pushed back {} time(s) before answering",
                                reply.overload_retries
                            ),
                            json!({"tier": tier, "overload_retries": reply.overload_retries}),
                        )
                        .await;
                }
                self.record_success(
                    ctx,
                    attempt,
                    turn,
                    role,
                    tier,
                    sha,
                    reply.message,
                    latency_ms,
                    false,
                    worst,
                )
                .await
            }
            Err(e) => {
                ctx.budget.settle(worst, 0.0);
                if e.is_overload() {
                    let wait = e.retry_after().unwrap_or(Duration::from_secs(2));
                    if let Ok(mut p) = ctx.pause_until.lock() {
                        *p = Some(tokio::time::Instant::now() + wait);
                    }
                    let _ = self
                        .emit(
                            ctx.job_id,
                            None,
                            EventKind::Backoff,
                            format!(
                                "{tier}: provider overloaded; pausing dispatch {}ms",
                                wait.as_millis()
                            ),
                            json!({"tier": tier, "pause_ms": wait.as_millis() as u64}),
                        )
                        .await;
                }
                Err(CallFailure::Provider(e.to_string()))
            }
        }
    }

    /// Prices a finished call, settles its reservation and commits it to the
    /// ledger before anything acts on it.
    #[allow(clippy::too_many_arguments)]
    async fn record_success(
        &self,
        ctx: &JobCtx,
        attempt: AttemptId,
        turn: u32,
        role: Role,
        tier: &str,
        sha: String,
        message: MessageResponse,
        latency_ms: u64,
        batch: bool,
        reserved: f64,
    ) -> std::result::Result<CallDone, CallFailure> {
        let model = self
            .inner
            .config
            .models
            .get(tier)
            .ok_or_else(|| CallFailure::Provider(format!("no model for tier {tier}")))?;
        let usage = message.usage;
        let cost = price_usage(model, &usage, batch);
        ctx.budget.settle(reserved, cost);
        let record = NewCall {
            job_id: ctx.job_id,
            attempt_id: attempt,
            turn,
            request_sha256: sha,
            role,
            tier: tier.to_owned(),
            model: model.model.clone(),
            response_json: serde_json::to_string(&message).unwrap_or_else(|_| "null".to_owned()),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cache_read_tokens: usage.cache_read_input_tokens,
            cache_write_tokens: usage.cache_creation_input_tokens,
            cost_usd: cost,
            latency_ms,
            batch,
        };
        self.inner
            .store
            .record_call(&record)
            .await
            .map_err(|e| CallFailure::Provider(format!("store: {e}")))?;
        Ok(CallDone {
            response: message,
            usage,
            cost_usd: cost,
            latency_ms,
        })
    }

    /// After a restart: attempts that went out in a Message Batch and were
    /// interrupted before their answer was recorded get it from that batch
    /// (polled to its end), so the resumed run replays them from the ledger
    /// instead of sending them again.
    async fn recover_batches(&self, job_id: JobId) -> Result<()> {
        let store = &self.inner.store;
        let config = &self.inner.config;
        let recorded: std::collections::HashSet<String> = store
            .list_calls(job_id)
            .await?
            .into_iter()
            .map(|c| c.request_sha256)
            .collect();
        let mut by_batch: BTreeMap<String, Vec<AttemptRecord>> = BTreeMap::new();
        for a in store.list_attempts_brief(job_id).await? {
            if a.role == Role::Worker
                && a.outcome == AttemptOutcome::Interrupted
                && !recorded.contains(&a.request_sha256)
                && let Some(batch) = a.batch_id.clone()
            {
                by_batch.entry(batch).or_default().push(a);
            }
        }
        for (batch_id, attempts) in by_batch {
            let Some(tier) = attempts.first().map(|a| a.tier.clone()) else {
                continue;
            };
            let (Ok(provider), Some(model)) = (
                self.inner.providers.for_tier(&tier),
                config.models.get(&tier),
            ) else {
                continue;
            };
            let poll_max = Duration::from_secs(config.limits.batch_poll_max_secs);
            let outcome = match provider.get_batch(&batch_id).await {
                Ok(batch) => poll_results(provider.as_ref(), batch, poll_max).await,
                Err(e) => Err(e.to_string()),
            };
            let lines = match outcome {
                Ok(lines) => lines,
                Err(message) => {
                    self.emit(
                        job_id,
                        None,
                        EventKind::Note,
                        format!("batch {batch_id} could not be recovered: {message}"),
                        json!({}),
                    )
                    .await?;
                    continue;
                }
            };
            let mut recovered = 0;
            for (custom_id, answer) in lines {
                let (Some(a), Ok(message)) = (
                    attempts.iter().find(|a| a.id.to_string() == custom_id),
                    answer,
                ) else {
                    continue;
                };
                let usage = message.usage;
                store
                    .record_call(&NewCall {
                        job_id,
                        attempt_id: a.id,
                        turn: 0,
                        request_sha256: a.request_sha256.clone(),
                        role: Role::Worker,
                        tier: tier.clone(),
                        model: model.model.clone(),
                        response_json: serde_json::to_string(&message)
                            .unwrap_or_else(|_| "null".to_owned()),
                        input_tokens: usage.input_tokens,
                        output_tokens: usage.output_tokens,
                        cache_read_tokens: usage.cache_read_input_tokens,
                        cache_write_tokens: usage.cache_creation_input_tokens,
                        cost_usd: price_usage(model, &usage, true),
                        latency_ms: 0,
                        batch: true,
                    })
                    .await?;
                recovered += 1;
            }
            self.emit(
                job_id,
                None,
                EventKind::Note,
                format!("recovered {recovered} answer(s) from batch {batch_id} instead of sending them again"),
                json!({"batch_id": batch_id, "recovered": recovered}),
            )
            .await?;
        }
        Ok(())
    }

    /// Runs (or resumes) a job to a terminal state, or until `stop` fires,
    /// which leaves it resumable.
    pub async fn run_job(&self, job_id: JobId, stop: CancellationToken) -> Result<JobReport> {
        let started = Instant::now();
        self.inner.running_jobs.fetch_add(1, Ordering::SeqCst);
        let _running = RunningJob(&self.inner.running_jobs);
        let job = self.load_job_brief(job_id).await?;
        if job.status.is_terminal() {
            return self.report(job_id).await;
        }
        let interrupted = self
            .inner
            .store
            .interrupt_running_attempts(job_id, "the previous run stopped")
            .await?;
        self.recover_batches(job_id).await?;
        if interrupted > 0 {
            self.emit(
                job_id,
                None,
                EventKind::Note,
                format!("resuming: {interrupted} attempt(s) were interrupted"),
                json!({}),
            )
            .await?;
        }
        for sub in self.inner.store.list_subtasks_brief(job_id).await? {
            if sub.status == SubtaskStatus::Running {
                self.inner
                    .store
                    .transition_subtask(
                        sub.id,
                        &[SubtaskStatus::Running],
                        SubtaskStatus::Pending,
                        &SubtaskUpdate::default(),
                    )
                    .await?;
            }
        }
        let result = self.run_phases(job_id, stop.clone()).await;
        let wall = started.elapsed().as_millis() as u64;
        match result {
            Ok(()) if stop.is_cancelled() => {
                self.write_result(job_id, wall).await?;
                self.report(job_id).await
            }
            Ok(()) => {
                self.finish(job_id, wall).await?;
                self.report(job_id).await
            }
            Err(e) => {
                let reason = e.to_string();
                let over_budget = matches!(e, Error::BudgetExhausted(_));
                let status = if over_budget {
                    JobStatus::NeedsHuman
                } else {
                    JobStatus::Failed
                };
                self.set_job_status(job_id, LIVE_JOB_STATES, status, &reason)
                    .await?;
                for sub in self.inner.store.list_subtasks_brief(job_id).await? {
                    if !sub.status.is_terminal() {
                        self.set_subtask_status(
                            job_id,
                            &sub,
                            &[SubtaskStatus::Pending, SubtaskStatus::Running],
                            SubtaskStatus::NeedsHuman,
                            SubtaskUpdate {
                                reason: Some(if over_budget {
                                    reason.clone()
                                } else {
                                    format!("job failed: {reason}")
                                }),
                                ..SubtaskUpdate::default()
                            },
                        )
                        .await?;
                    }
                }
                self.write_result(job_id, wall).await?;
                if over_budget {
                    return self.report(job_id).await;
                }
                Err(e)
            }
        }
    }

    async fn run_phases(&self, job_id: JobId, stop: CancellationToken) -> Result<()> {
        let job = self.load_job(job_id).await?;
        if job.plan.is_none()
            || self
                .inner
                .store
                .list_subtasks_brief(job_id)
                .await?
                .is_empty()
        {
            self.plan_phase(&job).await?;
        }
        let job = self.load_job(job_id).await?;
        self.set_job_status(
            job_id,
            &[
                JobStatus::Queued,
                JobStatus::Planning,
                JobStatus::Integrating,
                JobStatus::Reviewing,
            ],
            JobStatus::Running,
            "",
        )
        .await?;
        let ctx = self.job_ctx(&job, stop.clone(), None).await?;
        let config = self.inner.config.clone();
        let mut integration_rounds = 0;
        let mut review_rounds = 0;
        // Approved subtasks, with the attempt count their approved content came from.
        let mut approved: HashMap<SubtaskId, u32> = HashMap::new();
        loop {
            self.fan_out(ctx.clone()).await?;
            if stop.is_cancelled() || self.cancel_requested(job_id).await? {
                return Ok(());
            }
            if let Some(check) = ctx.options.check.clone() {
                self.set_job_status(job_id, &[JobStatus::Running], JobStatus::Integrating, "")
                    .await?;
                let final_round = integration_rounds >= config.limits.integration_rounds;
                let sent_back = self.integrate(&ctx, &check, final_round).await?;
                if sent_back > 0 {
                    integration_rounds += 1;
                    self.set_job_status(job_id, &[JobStatus::Integrating], JobStatus::Running, "")
                        .await?;
                    continue;
                }
            }
            let unreviewed = self.unreviewed(job_id, &approved).await?;
            if unreviewed.is_empty() {
                return Ok(());
            }
            if review_rounds >= config.limits.review_rounds {
                for sub in unreviewed {
                    self.withdraw_to_human(
                        job_id,
                        &sub,
                        format!(
                            "review rounds ({}) exhausted before approval",
                            config.limits.review_rounds
                        ),
                    )
                    .await?;
                }
                return Ok(());
            }
            self.set_job_status(
                job_id,
                &[JobStatus::Running, JobStatus::Integrating],
                JobStatus::Reviewing,
                "",
            )
            .await?;
            review_rounds += 1;
            let sent_back = self.review(&ctx, &unreviewed, &mut approved).await?;
            self.set_job_status(job_id, &[JobStatus::Reviewing], JobStatus::Running, "")
                .await?;
            if sent_back == 0 && self.unreviewed(job_id, &approved).await?.is_empty() {
                return Ok(());
            }
        }
    }

    async fn cancel_requested(&self, job_id: JobId) -> Result<bool> {
        Ok(self.inner.store.is_cancel_requested(job_id).await?)
    }

    async fn unreviewed(
        &self,
        job_id: JobId,
        approved: &HashMap<SubtaskId, u32>,
    ) -> Result<Vec<SubtaskRecord>> {
        Ok(self
            .inner
            .store
            .list_subtasks_brief(job_id)
            .await?
            .into_iter()
            .filter(|s| s.status == SubtaskStatus::Accepted)
            .filter(|s| approved.get(&s.id) != Some(&s.attempts))
            .collect())
    }

    /// Indexes, plans (one planner call), validates every path, routes and
    /// stores the subtasks. Leaves the job in `planning`.
    async fn plan_phase(&self, job: &JobRecord) -> Result<()> {
        let config = self.inner.config.clone();
        let store = &self.inner.store;
        self.set_job_status(job.id, &[JobStatus::Queued], JobStatus::Planning, "")
            .await?;
        let options = Self::job_options(job)?;
        let root = PathBuf::from(&job.workspace);
        let filter = file_filter(&options.files)?;
        let terms = instruction_terms(&job.instruction);
        let index = index_workspace(&root, filter.as_ref(), config.limits.max_file_bytes, &terms)?;
        if !index.skipped.is_empty() {
            let listed: Vec<String> = index
                .skipped
                .iter()
                .take(20)
                .map(|s| format!("{} ({})", s.path, s.reason))
                .collect();
            self.emit(
                job.id,
                None,
                EventKind::FileSkipped,
                format!(
                    "{} file(s) not sent to models: {}",
                    index.skipped.len(),
                    listed.join(", ")
                ),
                json!({"count": index.skipped.len()}),
            )
            .await?;
        }
        let plan = match &job.plan {
            Some(p) => {
                Plan::deserialize(p).map_err(|e| Error::Planning(format!("stored plan: {e}")))?
            }
            None => {
                let plan = self.call_planner(job, &index).await?;
                store.set_job_plan(job.id, &plan).await?;
                plan
            }
        };
        if !store.list_subtasks_brief(job.id).await?.is_empty() {
            return Ok(());
        }
        let router = Router::new(&config)?;
        // Adaptive routing learns start tiers from the store's own history.
        let history = if config.routing.adaptive {
            Some(store.attempt_stats(None).await?)
        } else {
            None
        };
        let prefix_entries: Vec<(String, Complexity)> = plan
            .subtasks
            .iter()
            .map(|s| (s.path.clone(), s.complexity))
            .collect();
        let prefix_tokens = estimate_tokens(&worker_prefix_text(&shared_prefix(
            &job.instruction,
            &plan.notes,
            &prefix_entries,
        )));
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        // Each file is read just before its row is written and dropped after,
        // so planning holds one file's contents, not the workspace's; the rows
        // become visible together at the commit. Events wait for the commit:
        // the transaction holds the store's write lock.
        let mut writer = store.begin_subtasks().await?;
        let mut rejected: Vec<(String, String)> = Vec::new();
        let mut rows = Vec::new();
        for (ordinal, planned) in plan.subtasks.iter().enumerate() {
            let mut row = NewSubtask {
                id: SubtaskId::new(),
                job_id: job.id,
                ordinal: ordinal as i64,
                path: planned.path.chars().take(500).collect(),
                instruction: planned.instruction.clone(),
                complexity: planned.complexity,
                error_cost: planned.error_cost,
                language: language_name(&planned.path).to_owned(),
                status: SubtaskStatus::Skipped,
                start_tier: String::new(),
                route_reason: String::new(),
                original_sha256: String::new(),
                original_content: None,
            };
            let skip = match validate_in_workspace(&root, &planned.path) {
                Err(e) => {
                    rejected.push((e.to_string(), row.path.clone()));
                    Some(e.to_string())
                }
                Ok(rel) => {
                    row.path = rel.as_str().to_owned();
                    if let Some(first) = seen.get(rel.as_str()) {
                        Some(format!("duplicate of subtask {first} for the same file"))
                    } else if let Some(skipped) = index.skipped(rel.as_str()) {
                        Some(format!("file skipped: {}", skipped.reason))
                    } else if filter.as_ref().is_some_and(|f| !f.is_match(rel.as_str())) {
                        Some("outside the --files patterns".to_owned())
                    } else if index.file(rel.as_str()).is_none() {
                        Some(
                            "not a file of the workspace (missing, ignored or not a regular file)"
                                .to_owned(),
                        )
                    } else {
                        seen.insert(rel.as_str().to_owned(), ordinal);
                        None
                    }
                }
            };
            if let Some(reason) = skip {
                row.route_reason = reason;
                writer.insert(&row).await?;
                rows.push(row);
                continue;
            }
            let content = std::fs::read_to_string(root.join(&row.path))
                .map_err(|e| Error::Io(format!("reading {}: {e}", row.path)))?;
            let prompt_tokens = prefix_tokens
                + estimate_tokens(&content) * 2
                + estimate_tokens(&planned.instruction);
            match router.route(
                &config,
                &row.path,
                planned.complexity,
                planned.error_cost,
                prompt_tokens,
            ) {
                Ok(mut decision) => {
                    if let Some(stats) = &history {
                        let language = language_name(&row.path);
                        if let Some(learned) = learned_start(
                            &config,
                            stats,
                            planned.complexity,
                            decision.error_cost,
                            language,
                        ) {
                            let floor = context_floor(&config, prompt_tokens);
                            let index = tier_index(&config, &learned.tier)?.max(floor);
                            decision.start_tier = config.tiers.order[index].clone();
                            decision.reason =
                                format!("{}; learned: {}", decision.reason, learned.reason);
                        }
                    }
                    row.status = SubtaskStatus::Pending;
                    row.error_cost = decision.error_cost;
                    row.start_tier = decision.start_tier;
                    row.route_reason = decision.reason;
                    row.original_sha256 = sha256_hex(content.as_bytes());
                    row.original_content = Some(content);
                }
                Err(e) => row.route_reason = e.to_string(),
            }
            writer.insert(&row).await?;
            // Kept for the events after the commit: what they say, no more.
            row.original_content = None;
            row.instruction = String::new();
            row.original_sha256 = String::new();
            rows.push(row);
        }
        writer.commit().await?;
        for (message, path) in rejected {
            self.emit(
                job.id,
                None,
                EventKind::PathRejected,
                message,
                json!({"path": path}),
            )
            .await?;
        }
        for row in &rows {
            let (kind, message) = if row.status == SubtaskStatus::Skipped {
                (
                    EventKind::SubtaskStatus,
                    format!("{}: skipped: {}", row.path, row.route_reason),
                )
            } else {
                (EventKind::Routed, row.route_reason.clone())
            };
            self.emit(
                job.id,
                Some(row.id),
                kind,
                message,
                json!({"path": row.path, "start_tier": row.start_tier, "status": row.status.as_str(),
                       "complexity": row.complexity.as_str(), "error_cost": row.error_cost.as_str()}),
            )
            .await?;
        }
        Ok(())
    }

    async fn call_planner(&self, job: &JobRecord, index: &WorkspaceIndex) -> Result<Plan> {
        let config = &self.inner.config;
        let tier = config.roles.planner.tier.clone();
        let model = config
            .models
            .get(&tier)
            .ok_or_else(|| Error::Config(format!("planner tier {tier:?} has no model")))?;
        let settings = call_settings(config, Role::Planner, &tier, None, Some("submit_plan"))?;
        let mut request = planner_request(
            &model.model,
            &settings,
            &job.instruction,
            &index.render_map(400),
        );
        let files = index.files.iter().map(|f| f.path.clone()).collect();
        let ctx = self
            .job_ctx(job, CancellationToken::new(), Some(files))
            .await?;
        let mut last_problem = String::new();
        for ordinal in 1..=2u32 {
            let attempt = self
                .start_attempt(
                    job.id,
                    None,
                    Role::Planner,
                    &tier,
                    &model.model,
                    settings.effort.clone(),
                    ordinal,
                    &request,
                )
                .await?;
            let done = self
                .call_model(&ctx, attempt, 0, Role::Planner, &tier, &request, false)
                .await;
            let (outcome, problem, plan, usage) = match done {
                Ok(done) => match parse_plan(&done.response) {
                    Ok(plan) => (AttemptOutcome::Passed, None, Some(plan), Some(done)),
                    Err(p) => (
                        AttemptOutcome::Failed,
                        Some((p.kind, p.message)),
                        None,
                        Some(done),
                    ),
                },
                Err(CallFailure::Budget(m)) => {
                    self.finish_attempt(
                        attempt,
                        AttemptOutcome::Interrupted,
                        Some((FailureKind::ProviderError, m.clone())),
                        None,
                        None,
                    )
                    .await?;
                    return Err(Error::BudgetExhausted(format!("planning not started: {m}")));
                }
                Err(CallFailure::Provider(m)) => (
                    AttemptOutcome::Failed,
                    Some((FailureKind::ProviderError, m)),
                    None,
                    None,
                ),
                Err(CallFailure::Stopped) => (
                    AttemptOutcome::Interrupted,
                    Some((FailureKind::ProviderError, "stopped".into())),
                    None,
                    None,
                ),
            };
            self.finish_attempt(attempt, outcome, problem.clone(), None, usage.as_ref())
                .await?;
            if let Some(plan) = plan {
                return Ok(plan);
            }
            let (kind, message) = problem.unwrap_or((FailureKind::MalformedOutput, String::new()));
            last_problem = format!("{kind}: {message}");
            if kind == FailureKind::ProviderError {
                break;
            }
            if let Some(done) = usage {
                request.messages.push(Message {
                    role: MessageRole::Assistant,
                    content: echo_content(&done.response.content),
                });
                let mut blocks: Vec<ContentBlock> = done
                    .response
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::ToolUse { id, .. } => Some(ContentBlock::ToolResult {
                            tool_use_id: id.clone(),
                            content: message.clone(),
                            is_error: true,
                        }),
                        _ => None,
                    })
                    .collect();
                if blocks.is_empty() {
                    blocks.push(ContentBlock::text(format!(
                        "Your answer was not usable: {message}. Call submit_plan."
                    )));
                }
                request.messages.push(Message {
                    role: MessageRole::User,
                    content: blocks,
                });
            }
        }
        Err(Error::Planning(last_problem))
    }

    #[allow(clippy::too_many_arguments)]
    async fn start_attempt(
        &self,
        job: JobId,
        subtask: Option<SubtaskId>,
        role: Role,
        tier: &str,
        model: &str,
        effort: Option<String>,
        ordinal: u32,
        request: &MessageRequest,
    ) -> Result<AttemptId> {
        let id = AttemptId::new();
        self.inner
            .store
            .start_attempt(&NewAttempt {
                id,
                job_id: job,
                subtask_id: subtask,
                role,
                tier: tier.to_owned(),
                model: model.to_owned(),
                effort,
                ordinal,
                request_sha256: request_sha(request),
                batch_id: None,
            })
            .await?;
        Ok(id)
    }

    async fn finish_attempt(
        &self,
        id: AttemptId,
        outcome: AttemptOutcome,
        problem: Option<(FailureKind, String)>,
        change: Option<&StoredChange>,
        done: Option<&CallDone>,
    ) -> Result<()> {
        let usage = done.map(|d| d.usage).unwrap_or_default();
        self.inner
            .store
            .finish_attempt(
                id,
                &AttemptFinish {
                    outcome,
                    failure: problem.as_ref().map(|p| p.0),
                    error: problem.map(|p| p.1),
                    response: None,
                    change: change.and_then(|c| serde_json::to_value(c).ok()),
                    input_tokens: usage.input_tokens,
                    output_tokens: usage.output_tokens,
                    cache_read_tokens: usage.cache_read_input_tokens,
                    cache_write_tokens: usage.cache_creation_input_tokens,
                    cost_usd: done.map_or(0.0, |d| d.cost_usd),
                    latency_ms: done.map_or(0, |d| d.latency_ms),
                },
            )
            .await?;
        Ok(())
    }

    /// Runs every pending subtask to a terminal state on a bounded pool.
    async fn fan_out(&self, ctx: Arc<JobCtx>) -> Result<()> {
        let store = &self.inner.store;
        // Only ids wait in the queue; a subtask's contents are loaded when its
        // task starts, so memory follows the subtasks in flight, not the job.
        let pending: Vec<SubtaskId> = store
            .list_subtasks_brief(ctx.job_id)
            .await?
            .iter()
            .filter(|s| s.status == SubtaskStatus::Pending)
            .map(|s| s.id)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        // Histories (with their changes, for circular-fix detection) are
        // loaded per subtask as its task starts, and only where one exists.
        let with_history = store.subtasks_with_attempts(ctx.job_id).await?;
        // Twice as many subtasks in flight as call slots, so a slot never idles
        // while its subtask is validating or writing to the store.
        let limit = self.inner.config.limits.max_concurrency.max(1) as usize * 2;
        let mut queue = pending.into_iter();
        let mut set: JoinSet<Result<()>> = JoinSet::new();
        let mut first_error = None;
        loop {
            while set.len() < limit && !ctx.stop.is_cancelled() {
                let Some(id) = queue.next() else { break };
                let has_history = with_history.contains(&id);
                let ctx = ctx.clone();
                set.spawn(async move {
                    let engine = ctx.engine.clone();
                    let store = &engine.inner.store;
                    let history = if has_history {
                        store
                            .list_subtask_attempts(id)
                            .await?
                            .iter()
                            .filter(|a| a.role == Role::Worker)
                            .map(AttemptSummary::from_record)
                            .collect()
                    } else {
                        Vec::new()
                    };
                    match store.get_subtask(id).await? {
                        Some(full) => engine.drive_subtask(ctx, full, history).await,
                        None => Err(Error::NotFound(format!("subtask {id}"))),
                    }
                });
            }
            let Some(joined) = set.join_next().await else {
                break;
            };
            let outcome = joined
                .map_err(|e| Error::Io(format!("worker task failed: {e}")))
                .and_then(|r| r);
            if let Err(e) = outcome
                && first_error.is_none()
            {
                first_error = Some(e);
                ctx.stop.cancel();
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Drives one subtask through the cascade until it is accepted, needs a
    /// human, or the run stops.
    async fn drive_subtask(
        self,
        ctx: Arc<JobCtx>,
        sub: SubtaskRecord,
        mut history: Vec<AttemptSummary>,
    ) -> Result<()> {
        let job = ctx.job_id;
        if !self
            .set_subtask_status(
                job,
                &sub,
                &[SubtaskStatus::Pending],
                SubtaskStatus::Running,
                SubtaskUpdate::default(),
            )
            .await?
        {
            return Ok(());
        }
        let original = sub.original_content.clone().unwrap_or_default();
        let config = self.inner.config.clone();
        let mut last_tier: Option<String> = history.last().map(|a| a.tier.clone());
        loop {
            if ctx.stop.is_cancelled() {
                self.inner
                    .store
                    .transition_subtask(
                        sub.id,
                        &[SubtaskStatus::Running],
                        SubtaskStatus::Pending,
                        &SubtaskUpdate::default(),
                    )
                    .await?;
                return Ok(());
            }
            if ctx.halt.is_cancelled() && !ctx.stop.is_cancelled()
                || self.cancel_requested(job).await?
            {
                // Stop every other subtask's next call too.
                ctx.halt.cancel();
                let update = SubtaskUpdate {
                    reason: Some("job cancelled".to_owned()),
                    ..SubtaskUpdate::default()
                };
                self.set_subtask_status(
                    job,
                    &sub,
                    &[SubtaskStatus::Running],
                    SubtaskStatus::Cancelled,
                    update,
                )
                .await?;
                return Ok(());
            }
            match next_step(&config, &sub.start_tier, &history)? {
                Step::Accept(i) => {
                    let attempt = &history[i];
                    let content = match &attempt.change {
                        Some(change) => apply_change(&original, change)
                            .map_err(|e| Error::Io(format!("re-applying accepted change: {e}")))?,
                        None => original.clone(),
                    };
                    let update = SubtaskUpdate {
                        current_tier: Some(attempt.tier.clone()),
                        attempts: Some(history.len() as u32),
                        reason: Some(format!("accepted at {}", attempt.tier)),
                        accepted_content: Some(Some(content)),
                    };
                    self.set_subtask_status(
                        job,
                        &sub,
                        &[SubtaskStatus::Running],
                        SubtaskStatus::Accepted,
                        update,
                    )
                    .await?;
                    return Ok(());
                }
                Step::NeedsHuman(reason) => {
                    return self.hand_to_human(job, &sub, history.len(), reason).await;
                }
                Step::Attempt { tier } => {
                    if let Some(prev) = &last_tier
                        && *prev != tier
                    {
                        self.emit(
                            job,
                            Some(sub.id),
                            EventKind::Escalated,
                            format!("{}: {prev} -> {tier}", sub.path),
                            json!({"path": sub.path, "from": prev, "to": tier}),
                        )
                        .await?;
                    }
                    last_tier = Some(tier.clone());
                    let feedback: Vec<Feedback> = history
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.outcome == AttemptOutcome::Failed)
                        .map(|(i, a)| Feedback {
                            attempt: i as u32 + 1,
                            kind: a.failure.unwrap_or(FailureKind::NoUsableEdit),
                            message: a.error.clone().unwrap_or_default(),
                        })
                        .collect();
                    let feedback = &feedback[feedback.len().saturating_sub(4)..];
                    let ordinal = history.len() as u32 + 1;
                    match self
                        .run_attempt(&ctx, &sub, &original, &tier, ordinal, feedback, &history)
                        .await?
                    {
                        AttemptRun::Done(summary) => history.push(summary),
                        AttemptRun::Stopped => continue,
                        AttemptRun::OverBudget(reason) => {
                            return self.hand_to_human(job, &sub, history.len(), reason).await;
                        }
                    }
                }
            }
        }
    }

    /// Ends a running subtask as `needs_human` with why.
    async fn hand_to_human(
        &self,
        job: JobId,
        sub: &SubtaskRecord,
        attempts: usize,
        reason: String,
    ) -> Result<()> {
        let update = SubtaskUpdate {
            attempts: Some(attempts as u32),
            reason: Some(reason),
            ..SubtaskUpdate::default()
        };
        self.set_subtask_status(
            job,
            sub,
            &[SubtaskStatus::Running],
            SubtaskStatus::NeedsHuman,
            update,
        )
        .await?;
        Ok(())
    }

    /// Takes back an accepted change that a later check could not clear: the
    /// subtask needs a human and its change is dropped, so it is never applied.
    async fn withdraw_to_human(
        &self,
        job: JobId,
        sub: &SubtaskRecord,
        reason: String,
    ) -> Result<()> {
        let update = SubtaskUpdate {
            reason: Some(reason),
            accepted_content: Some(None),
            ..SubtaskUpdate::default()
        };
        self.set_subtask_status(
            job,
            sub,
            &[SubtaskStatus::Accepted],
            SubtaskStatus::NeedsHuman,
            update,
        )
        .await?;
        Ok(())
    }

    /// One attempt: the worker conversation (with read-only tool turns),
    /// then validation.
    #[allow(clippy::too_many_arguments)]
    async fn run_attempt(
        &self,
        ctx: &JobCtx,
        sub: &SubtaskRecord,
        original: &str,
        tier: &str,
        ordinal: u32,
        feedback: &[Feedback],
        history: &[AttemptSummary],
    ) -> Result<AttemptRun> {
        let config = &self.inner.config;
        let model = config
            .models
            .get(tier)
            .ok_or_else(|| Error::Config(format!("tier {tier:?} has no model")))?;
        let settings = call_settings(config, Role::Worker, tier, Some(sub.complexity), None)?;
        let user = worker_user_message(
            &sub.path,
            sub.complexity,
            sub.error_cost,
            &sub.instruction,
            original,
            feedback,
        );
        let cache = ctx.cache_prefix.get(tier).copied().unwrap_or(false);
        let mut request = worker_request(&model.model, &settings, &ctx.prefix, cache, user);
        let attempt = self
            .start_attempt(
                ctx.job_id,
                Some(sub.id),
                Role::Worker,
                tier,
                &model.model,
                settings.effort.clone(),
                ordinal,
                &request,
            )
            .await?;
        self.emit(
            ctx.job_id,
            Some(sub.id),
            EventKind::AttemptStarted,
            format!("{}: attempt {ordinal} at {tier}", sub.path),
            json!({"path": sub.path, "tier": tier, "attempt": ordinal}),
        )
        .await?;
        let mut total = CallDone {
            response: MessageResponse {
                id: String::new(),
                model: String::new(),
                content: vec![],
                stop_reason: None,
                usage: Usage::default(),
            },
            usage: Usage::default(),
            cost_usd: 0.0,
            latency_ms: 0,
        };
        let max_turns = config.limits.worker_tool_turns;
        let mut change = None;
        let mut problem: Option<(FailureKind, String)> = None;
        for turn in 0..=max_turns {
            let done = match self
                .call_model(ctx, attempt, turn, Role::Worker, tier, &request, turn == 0)
                .await
            {
                Ok(done) => done,
                Err(CallFailure::Stopped) => {
                    self.finish_attempt(
                        attempt,
                        AttemptOutcome::Interrupted,
                        Some((FailureKind::ProviderError, "run stopped".into())),
                        None,
                        Some(&total),
                    )
                    .await?;
                    return Ok(AttemptRun::Stopped);
                }
                Err(CallFailure::Budget(message)) => {
                    self.emit(
                        ctx.job_id,
                        Some(sub.id),
                        EventKind::BudgetExhausted,
                        format!("{}: {message}", sub.path),
                        json!({"path": sub.path}),
                    )
                    .await?;
                    self.finish_attempt(
                        attempt,
                        AttemptOutcome::Interrupted,
                        Some((FailureKind::ProviderError, message.clone())),
                        None,
                        Some(&total),
                    )
                    .await?;
                    return Ok(AttemptRun::OverBudget(message));
                }
                Err(CallFailure::Provider(message)) => {
                    problem = Some((FailureKind::ProviderError, message));
                    break;
                }
            };
            total.usage.input_tokens += done.usage.input_tokens;
            total.usage.output_tokens += done.usage.output_tokens;
            total.usage.cache_read_input_tokens += done.usage.cache_read_input_tokens;
            total.usage.cache_creation_input_tokens += done.usage.cache_creation_input_tokens;
            total.cost_usd += done.cost_usd;
            total.latency_ms += done.latency_ms;
            match parse_worker_turn(&done.response) {
                Ok(WorkerTurn::Change(c)) => {
                    change = Some(c);
                    break;
                }
                Ok(WorkerTurn::Look(calls)) => {
                    if turn == max_turns {
                        problem = Some((
                            FailureKind::NoUsableEdit,
                            format!("used all {max_turns} look-around turns without editing"),
                        ));
                        break;
                    }
                    let results = calls
                        .iter()
                        .map(|(id, name, input)| self.answer_look(ctx, id, name, input))
                        .collect();
                    request.messages.push(Message {
                        role: MessageRole::Assistant,
                        content: echo_content(&done.response.content),
                    });
                    request.messages.push(Message {
                        role: MessageRole::User,
                        content: results,
                    });
                }
                Err(p) => {
                    problem = Some((p.kind, p.message));
                    break;
                }
            }
        }
        let mut stored = None;
        if let Some(change) = change {
            let fingerprint_of_change =
                sha256_hex(&serde_json::to_vec(&change).unwrap_or_default());
            match apply_change(original, &change) {
                Err(rejection) => {
                    let circular = history
                        .iter()
                        .any(|a| a.fingerprint.as_deref() == Some(&fingerprint_of_change));
                    problem = Some(if circular {
                        (
                            FailureKind::CircularFix,
                            format!("repeats an earlier failed edit: {rejection}"),
                        )
                    } else {
                        (FailureKind::EditMismatch, rejection.to_string())
                    });
                    stored = Some(StoredChange {
                        change,
                        fingerprint: fingerprint_of_change,
                    });
                }
                Ok(content) => {
                    let fingerprint = sha256_hex(content.as_bytes());
                    if content == original {
                        problem = Some((
                            FailureKind::CircularFix,
                            "the change leaves the file as it was (a revert or no-op)".into(),
                        ));
                    } else if history.iter().any(|a| {
                        // Content that only the reviewer or the integration check turned
                        // down may go back to them (their rounds are bounded); any other
                        // repeat is a model going round in circles.
                        a.fingerprint.as_deref() == Some(&fingerprint)
                            && !matches!(
                                a.failure,
                                Some(FailureKind::ReviewRejected | FailureKind::IntegrationBlamed)
                            )
                    }) {
                        problem = Some((
                            FailureKind::CircularFix,
                            "the change reproduces an earlier attempt's content".into(),
                        ));
                    } else if let Err(message) = check_no_new_errors(&sub.path, original, &content)
                    {
                        problem = Some((FailureKind::SyntaxError, message));
                    } else if let Some(cmd) = &ctx.options.file_check
                        && let Err(message) = self.file_check(ctx, cmd, &sub.path, &content).await?
                    {
                        problem = Some((FailureKind::FileCheckFailed, message));
                    }
                    stored = Some(StoredChange {
                        change,
                        fingerprint,
                    });
                }
            }
        }
        let outcome = if problem.is_none() {
            AttemptOutcome::Passed
        } else {
            AttemptOutcome::Failed
        };
        let total_done = Some(&total);
        self.finish_attempt(
            attempt,
            outcome,
            problem.clone(),
            stored.as_ref(),
            total_done,
        )
        .await?;
        let message = match &problem {
            None => format!("{}: attempt {ordinal} at {tier} passed", sub.path),
            Some((kind, m)) => format!(
                "{}: attempt {ordinal} at {tier} failed ({kind}): {}",
                sub.path,
                m.chars().take(200).collect::<String>()
            ),
        };
        self.emit(
            ctx.job_id,
            Some(sub.id),
            EventKind::AttemptFinished,
            message,
            json!({"path": sub.path, "tier": tier, "attempt": ordinal, "outcome": outcome.as_str(),
                   "failure": problem.as_ref().map(|p| p.0.as_str()), "cost_usd": total.cost_usd}),
        )
        .await?;
        Ok(AttemptRun::Done(AttemptSummary {
            tier: tier.to_owned(),
            outcome,
            failure: problem.as_ref().map(|p| p.0),
            error: problem.map(|p| p.1),
            fingerprint: stored.as_ref().map(|s| s.fingerprint.clone()),
            change: stored.map(|s| s.change),
        }))
    }

    /// Answers a worker's read-only tool call.
    fn answer_look(&self, ctx: &JobCtx, id: &str, name: &str, input: &Value) -> ContentBlock {
        let result = match name {
            "read_file" => match input.get("path").and_then(Value::as_str) {
                None => Err("read_file needs a string `path`".to_owned()),
                Some(path) => match validate_in_workspace(&ctx.root, path) {
                    Err(e) => Err(e.to_string()),
                    Ok(rel) if !ctx.files.iter().any(|f| f == rel.as_str()) => {
                        Err(format!("{rel} is not a readable file of the workspace"))
                    }
                    Ok(rel) => std::fs::read_to_string(rel.join_to(&ctx.root))
                        .map_err(|e| format!("{rel}: {e}")),
                },
            },
            _ => match input.get("pattern").and_then(Value::as_str) {
                None | Some("") => Err("grep needs a non-empty string `pattern`".to_owned()),
                Some(pattern) => {
                    let mut out = String::new();
                    let mut hits = 0;
                    for rel in &ctx.files {
                        let Ok(text) = std::fs::read_to_string(ctx.root.join(rel)) else {
                            continue;
                        };
                        for (n, line) in text.lines().enumerate() {
                            if line.contains(pattern) && hits < 100 {
                                hits += 1;
                                out.push_str(&format!(
                                    "{rel}:{}: {}\n",
                                    n + 1,
                                    line.chars().take(200).collect::<String>()
                                ));
                            }
                        }
                    }
                    Ok(if out.is_empty() {
                        "no matches".to_owned()
                    } else {
                        out
                    })
                }
            },
        };
        let (content, is_error) = match result {
            Ok(text) => (text, false),
            Err(text) => (text, true),
        };
        ContentBlock::ToolResult {
            tool_use_id: id.to_owned(),
            content,
            is_error,
        }
    }

    /// Runs the per-file check on a candidate written to a scratch copy of
    /// its path. `Ok(Err(output))` when the check fails.
    async fn file_check(
        &self,
        ctx: &JobCtx,
        command: &str,
        path: &str,
        content: &str,
    ) -> Result<std::result::Result<(), String>> {
        let scratch = tempfile::tempdir().map_err(|e| Error::Io(format!("temp dir: {e}")))?;
        let candidate = scratch.path().join(path);
        if let Some(parent) = candidate.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Io(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&candidate, content)
            .map_err(|e| Error::Io(format!("{}: {e}", candidate.display())))?;
        let command = command.replace("{file}", &shell_quote(&candidate.to_string_lossy()));
        let timeout = Duration::from_secs(self.inner.config.limits.check_timeout_secs);
        let out = run_check(&command, &ctx.root, timeout).await?;
        Ok(if out.success {
            Ok(())
        } else {
            Err(format!("per-file check failed: {}", out.output.trim()))
        })
    }

    /// Stages every accepted change and runs the integration check; blamed
    /// files go back to the cascade. Returns how many were sent back.
    /// On the final round, blamed files need a human instead of going back.
    async fn integrate(&self, ctx: &JobCtx, command: &str, final_round: bool) -> Result<usize> {
        let store = &self.inner.store;
        let accepted: Vec<SubtaskRecord> = store
            .list_subtasks_brief(ctx.job_id)
            .await?
            .into_iter()
            .filter(|s| s.status == SubtaskStatus::Accepted)
            .collect();
        if accepted.is_empty() {
            return Ok(0);
        }
        let root = ctx.root.clone();
        let files = ctx.files.clone();
        let staging = tokio::task::spawn_blocking(move || Staging::prepare(&root, &files))
            .await
            .map_err(|e| Error::Io(format!("staging task: {e}")))??;
        // One accepted file's contents at a time.
        for sub in &accepted {
            if let Some(full) = store.get_subtask(sub.id).await? {
                staging.write(
                    &full.path,
                    full.accepted_content.as_deref().unwrap_or_default(),
                )?;
            }
        }
        let timeout = Duration::from_secs(self.inner.config.limits.check_timeout_secs);
        let out = run_check(command, staging.dir(), timeout).await?;
        drop(staging);
        self.emit(
            ctx.job_id,
            None,
            EventKind::IntegrationCheck,
            format!(
                "integration check {}",
                if out.success { "passed" } else { "failed" }
            ),
            json!({"success": out.success, "exit_code": out.exit_code, "output": out.output}),
        )
        .await?;
        if out.success {
            return Ok(0);
        }
        let paths: Vec<String> = accepted.iter().map(|s| s.path.clone()).collect();
        let blamed = blame(&out.output, &paths);
        if blamed.is_empty() {
            for sub in &accepted {
                self.withdraw_to_human(
                    ctx.job_id,
                    sub,
                    "the integration check failed and its output names no changed file".to_owned(),
                )
                .await?;
            }
            return Ok(0);
        }
        let message = format!("integration check failed:\n{}", out.output);
        for sub in accepted.iter().filter(|s| blamed.contains(&s.path)) {
            if final_round {
                self.withdraw_to_human(
                    ctx.job_id,
                    sub,
                    format!(
                        "integration rounds ({}) exhausted; the check still blames this file",
                        self.inner.config.limits.integration_rounds
                    ),
                )
                .await?;
            } else {
                self.send_back(ctx.job_id, sub, FailureKind::IntegrationBlamed, &message)
                    .await?;
            }
        }
        Ok(if final_round { 0 } else { blamed.len() })
    }

    /// Rejects a subtask's accepted attempt and returns it to `pending`.
    async fn send_back(
        &self,
        job: JobId,
        sub: &SubtaskRecord,
        kind: FailureKind,
        message: &str,
    ) -> Result<()> {
        let store = &self.inner.store;
        let attempts = store.list_subtask_attempts(sub.id).await?;
        if let Some(last) = attempts
            .iter()
            .rfind(|a| a.outcome == AttemptOutcome::Passed)
        {
            store.reject_attempt(last.id, kind, message).await?;
        }
        self.set_subtask_status(
            job,
            sub,
            &[SubtaskStatus::Accepted],
            SubtaskStatus::Pending,
            SubtaskUpdate {
                reason: Some(format!("sent back: {kind}")),
                accepted_content: Some(None),
                ..SubtaskUpdate::default()
            },
        )
        .await?;
        Ok(())
    }

    /// One review round over `subtasks`; revised files go back to the cascade.
    async fn review(
        &self,
        ctx: &JobCtx,
        subtasks: &[SubtaskRecord],
        approved: &mut HashMap<SubtaskId, u32>,
    ) -> Result<usize> {
        let config = &self.inner.config;
        let tier = config.roles.reviewer.tier.clone();
        let model = config
            .models
            .get(&tier)
            .ok_or_else(|| Error::Config(format!("reviewer tier {tier:?} has no model")))?;
        let settings = call_settings(config, Role::Reviewer, &tier, None, Some("submit_review"))?;
        // Diffs are computed one file at a time (full contents are loaded per
        // file, not for the whole job). A reviewer call covers at most ~200 KB
        // of diff and REVIEW_CHUNK_FILES files, so its prompt and verdicts fit.
        let mut chunks: Vec<Vec<(&SubtaskRecord, String)>> = vec![vec![]];
        let mut size = 0;
        for sub in subtasks {
            let Some(full) = self.inner.store.get_subtask(sub.id).await? else {
                continue;
            };
            let old = full.original_content.as_deref().unwrap_or_default();
            let new = full.accepted_content.as_deref().unwrap_or_default();
            let diff = unified_diff(&full.path, old, new);
            let at_limit = chunks.last().is_some_and(|c| c.len() >= REVIEW_CHUNK_FILES);
            if (size + diff.len() > 200_000 || at_limit) && !chunks.last().is_none_or(Vec::is_empty)
            {
                chunks.push(vec![]);
                size = 0;
            }
            size += diff.len();
            if let Some(chunk) = chunks.last_mut() {
                chunk.push((sub, diff));
            }
        }
        let mut sent_back = 0;
        for chunk in chunks.into_iter().filter(|c| !c.is_empty()) {
            let diffs: Vec<(String, String)> = chunk
                .iter()
                .map(|(s, d)| (s.path.clone(), d.clone()))
                .collect();
            let chunk: Vec<&SubtaskRecord> = chunk.into_iter().map(|(s, _)| s).collect();
            let request = reviewer_request(&model.model, &settings, &ctx.prefix, &diffs);
            let attempt = self
                .start_attempt(
                    ctx.job_id,
                    None,
                    Role::Reviewer,
                    &tier,
                    &model.model,
                    settings.effort.clone(),
                    1,
                    &request,
                )
                .await?;
            let verdicts = match self
                .call_model(ctx, attempt, 0, Role::Reviewer, &tier, &request, false)
                .await
            {
                Ok(done) => match parse_review(&done.response) {
                    Ok(v) => {
                        self.finish_attempt(
                            attempt,
                            AttemptOutcome::Passed,
                            None,
                            None,
                            Some(&done),
                        )
                        .await?;
                        v
                    }
                    Err(p) => {
                        self.finish_attempt(
                            attempt,
                            AttemptOutcome::Failed,
                            Some((p.kind, p.message.clone())),
                            None,
                            Some(&done),
                        )
                        .await?;
                        return Err(Error::Review(format!(
                            "the reviewer's answer was unusable: {}",
                            p.message
                        )));
                    }
                },
                Err(CallFailure::Stopped) => {
                    self.finish_attempt(attempt, AttemptOutcome::Interrupted, None, None, None)
                        .await?;
                    return Ok(sent_back);
                }
                Err(CallFailure::Budget(m)) | Err(CallFailure::Provider(m)) => {
                    self.finish_attempt(
                        attempt,
                        AttemptOutcome::Failed,
                        Some((FailureKind::ProviderError, m.clone())),
                        None,
                        None,
                    )
                    .await?;
                    if ctx.budget.exhausted.load(Ordering::SeqCst) {
                        for sub in &chunk {
                            self.withdraw_to_human(ctx.job_id, sub, format!("not reviewed: {m}"))
                                .await?;
                        }
                        continue;
                    }
                    return Err(Error::Review(format!("review failed: {m}")));
                }
            };
            for sub in chunk {
                let verdict = verdicts.iter().find(|v| v.path == sub.path);
                let (decision, comment) = match verdict {
                    Some(v) => (v.verdict, v.comment.clone()),
                    None => (
                        Verdict::Approve,
                        "no verdict given; treated as approved".to_owned(),
                    ),
                };
                self.emit(
                    ctx.job_id,
                    Some(sub.id),
                    EventKind::ReviewVerdict,
                    format!(
                        "{}: {} {}",
                        sub.path,
                        if decision == Verdict::Approve {
                            "approve"
                        } else {
                            "revise"
                        },
                        comment
                    )
                    .trim_end()
                    .to_owned(),
                    json!({"path": sub.path, "verdict": decision, "comment": comment}),
                )
                .await?;
                match decision {
                    Verdict::Approve => {
                        approved.insert(sub.id, sub.attempts);
                    }
                    Verdict::Revise => {
                        self.send_back(
                            ctx.job_id,
                            sub,
                            FailureKind::ReviewRejected,
                            &format!("reviewer: {comment}"),
                        )
                        .await?;
                        sent_back += 1;
                    }
                }
            }
        }
        Ok(sent_back)
    }

    /// Stores the job's patch and adds `wall_ms` to its wall time. The
    /// report is not stored: [`Engine::report`] recomputes it from the store.
    async fn write_result(&self, job_id: JobId, wall_ms: u64) -> Result<()> {
        let store = &self.inner.store;
        let job = self.load_job_brief(job_id).await?;
        let accepted: Vec<SubtaskId> = store
            .list_subtasks_brief(job_id)
            .await?
            .iter()
            .filter(|s| s.status == SubtaskStatus::Accepted)
            .map(|s| s.id)
            .collect();
        // One file's contents and diff at a time; SQLite joins the diffs
        // into the job's patch at the commit.
        let mut result = store.begin_result(job_id).await?;
        for id in accepted {
            let Some(full) = store.get_subtask(id).await? else {
                continue;
            };
            let diff = patch(&[(
                full.path,
                full.original_content.unwrap_or_default(),
                full.accepted_content.unwrap_or_default(),
            )]);
            if !diff.is_empty() {
                let (added, removed) = changed_lines(&diff);
                result.add_diff(id, diff, added, removed).await?;
            }
        }
        result.commit(job.wall_ms + wall_ms).await?;
        Ok(())
    }

    async fn finish(&self, job_id: JobId, wall_ms: u64) -> Result<()> {
        let cancelled = self.cancel_requested(job_id).await?;
        let unfinished: Vec<SubtaskRecord> = self
            .inner
            .store
            .list_subtasks_brief(job_id)
            .await?
            .into_iter()
            .filter(|s| !s.status.is_terminal())
            .collect();
        for sub in &unfinished {
            let (to, reason) = if cancelled {
                (SubtaskStatus::Cancelled, "job cancelled".to_owned())
            } else {
                (
                    SubtaskStatus::NeedsHuman,
                    "budget exhausted before this subtask finished".to_owned(),
                )
            };
            self.set_subtask_status(
                job_id,
                sub,
                &[SubtaskStatus::Pending, SubtaskStatus::Running],
                to,
                SubtaskUpdate {
                    reason: Some(reason),
                    ..SubtaskUpdate::default()
                },
            )
            .await?;
        }
        drop(unfinished);
        // Collected from a borrow: an in-place `into_iter` collect would keep
        // the whole listing's buffer alive behind the (short) list of paths.
        let unfinished: Vec<String> = self
            .inner
            .store
            .list_subtasks_brief(job_id)
            .await?
            .iter()
            .filter(|s| {
                matches!(
                    s.status,
                    SubtaskStatus::NeedsHuman | SubtaskStatus::Cancelled
                )
            })
            .map(|s| s.path.clone())
            .collect();
        let (status, reason) = if cancelled {
            (JobStatus::Cancelled, "cancelled by a user".to_owned())
        } else if unfinished.is_empty() {
            (JobStatus::Completed, String::new())
        } else {
            (
                JobStatus::NeedsHuman,
                format!(
                    "{} subtask(s) need a human: {}",
                    unfinished.len(),
                    unfinished.join(", ")
                ),
            )
        };
        // The patch is stored before the terminal event, so a watcher that sees
        // the job end can fetch it at once.
        self.write_result(job_id, wall_ms).await?;
        self.set_job_status(job_id, LIVE_JOB_STATES, status, &reason)
            .await?;
        Ok(())
    }

    /// Writes a finished job's accepted changes: in place, or as a commit on
    /// a new branch. Files changed since the job read them are left alone
    /// and reported.
    pub async fn apply(&self, job_id: JobId, branch: Option<String>) -> Result<ApplyOutcome> {
        let job = self.load_job_brief(job_id).await?;
        if !matches!(job.status, JobStatus::Completed | JobStatus::NeedsHuman) {
            return Err(Error::InvalidInput(format!(
                "job {job_id} is {}; only completed or needs_human jobs can be applied",
                job.status
            )));
        }
        let store = &self.inner.store;
        let accepted: Vec<SubtaskId> = store
            .list_subtasks_brief(job_id)
            .await?
            .iter()
            .filter(|s| s.status == SubtaskStatus::Accepted)
            .map(|s| s.id)
            .collect();
        let root = PathBuf::from(&job.workspace);
        let message = format!(
            "cadre: {}\n\ncadre job {job_id}",
            job.instruction.lines().next().unwrap_or_default()
        );
        // The writer owns the files on a blocking thread and takes the
        // changes through a short channel: one file's contents at a time.
        let (changes, mut incoming) = tokio::sync::mpsc::channel::<FileChange>(4);
        let writer = tokio::task::spawn_blocking(move || {
            let mut applier = match branch {
                Some(name) => Applier::to_branch(&root, &name)?,
                None => Applier::in_place(&root),
            };
            while let Some(change) = incoming.blocking_recv() {
                applier.add(&change)?;
            }
            applier.finish(&message)
        });
        for id in accepted {
            let Some(sub) = store.get_subtask(id).await? else {
                continue;
            };
            let Some(content) = sub.accepted_content else {
                continue;
            };
            if Some(&content) == sub.original_content.as_ref() {
                continue;
            }
            let change = FileChange {
                path: sub.path,
                original_sha256: sub.original_sha256,
                content,
            };
            // A closed channel means the writer stopped; its error follows.
            if changes.send(change).await.is_err() {
                break;
            }
        }
        drop(changes);
        let outcome = writer
            .await
            .map_err(|e| Error::Io(format!("apply task: {e}")))??;
        self.emit(
            job_id,
            None,
            EventKind::Applied,
            format!(
                "applied {} file(s){}; {} left alone",
                outcome.written.len(),
                outcome
                    .branch
                    .as_ref()
                    .map(|b| format!(" to branch {b}"))
                    .unwrap_or_default(),
                outcome.conflicts.len()
            ),
            serde_json::to_value(&outcome).unwrap_or(Value::Null),
        )
        .await?;
        self.inner
            .store
            .mark_job_applied(job_id, now_unix())
            .await?;
        Ok(outcome)
    }

    /// Requests cancellation. A queued job ends `cancelled` at once; a
    /// running one stops dispatching at its next step and ends `cancelled`
    /// with every subtask terminal. Returns false when the job had already ended.
    pub async fn cancel(&self, job_id: JobId) -> Result<bool> {
        let job = self.load_job_brief(job_id).await?;
        if job.status.is_terminal() {
            return Ok(false);
        }
        self.inner.store.request_cancel(job_id).await?;
        if self
            .set_job_status(
                job_id,
                &[JobStatus::Queued],
                JobStatus::Cancelled,
                "cancelled by a user",
            )
            .await?
        {
            for sub in self.inner.store.list_subtasks_brief(job_id).await? {
                if !sub.status.is_terminal() {
                    let update = SubtaskUpdate {
                        reason: Some("job cancelled".to_owned()),
                        ..SubtaskUpdate::default()
                    };
                    self.set_subtask_status(
                        job_id,
                        &sub,
                        &[SubtaskStatus::Pending, SubtaskStatus::Running],
                        SubtaskStatus::Cancelled,
                        update,
                    )
                    .await?;
                }
            }
            self.write_result(job_id, 0).await?;
        }
        Ok(true)
    }

    /// The job's report, recomputed from the store.
    pub async fn report(&self, job_id: JobId) -> Result<JobReport> {
        let store = &self.inner.store;
        let job = self.load_job_brief(job_id).await?;
        // Fed as the store yields rows: calls, then attempts, then subtasks.
        let mut report = ReportBuilder::new(&self.inner.config, job.budget_usd);
        store.for_each_call(job_id, |c| report.add_call(&c)).await?;
        store
            .for_each_attempt_brief(job_id, |a| report.add_attempt(&a))
            .await?;
        store
            .for_each_subtask_brief(job_id, |s| report.add_subtask(&s))
            .await?;
        Ok(report.finish(&job))
    }

    /// Plans a job without running workers: one planner call, path
    /// validation, routing, and a cost estimate. The job stays queued with
    /// its plan, so `run_job` continues from it.
    pub async fn plan_job(&self, job_id: JobId) -> Result<PlanPreview> {
        let job = self.load_job(job_id).await?;
        if job.plan.is_none() {
            self.plan_phase(&job).await?;
            self.set_job_status(
                job_id,
                &[JobStatus::Planning],
                JobStatus::Queued,
                "planned; run it with `cadre resume`",
            )
            .await?;
        }
        let job = self.load_job(job_id).await?;
        let config = &self.inner.config;
        let subtasks = self.inner.store.list_subtasks_brief(job_id).await?;
        let content_chars = self.inner.store.subtask_content_chars(job_id).await?;
        let ctx = self.job_ctx(&job, CancellationToken::new(), None).await?;
        let prefix_tokens = estimate_tokens(&worker_prefix_text(&ctx.prefix));
        let mut routes = Vec::new();
        let mut estimate = 0.0;
        let mut review_tokens = 0;
        for s in &subtasks {
            let mut usd = 0.0;
            if s.status != SubtaskStatus::Skipped
                && let Some(model) = config.models.get(&s.start_tier)
            {
                let file_tokens = tokens_for_chars(content_chars.get(&s.id).copied().unwrap_or(0));
                let usage = Usage {
                    input_tokens: file_tokens + estimate_tokens(&s.instruction) + 50,
                    cache_read_input_tokens: prefix_tokens,
                    output_tokens: file_tokens / 3 + 200,
                    ..Usage::default()
                };
                usd = price_usage(model, &usage, false);
                review_tokens += file_tokens / 2;
            }
            estimate += usd;
            routes.push(PlannedRoute {
                path: s.path.clone(),
                complexity: s.complexity,
                error_cost: s.error_cost,
                start_tier: s.start_tier.clone(),
                status: s.status,
                reason: s.route_reason.clone(),
                estimated_usd: usd,
            });
        }
        if let Some(model) = config.models.get(&config.roles.reviewer.tier) {
            estimate += price_usage(
                model,
                &Usage {
                    input_tokens: review_tokens + prefix_tokens,
                    output_tokens: 500,
                    ..Usage::default()
                },
                false,
            );
        }
        let planner_usd: f64 = self
            .inner
            .store
            .list_calls(job_id)
            .await?
            .iter()
            .filter(|c| c.role == Role::Planner)
            .map(|c| c.cost_usd)
            .sum();
        let total = planner_usd + estimate;
        let notes = job
            .plan
            .as_ref()
            .and_then(|p| p.get("notes"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(PlanPreview {
            job_id,
            notes,
            routes,
            planner_usd,
            estimated_total_usd: total,
            budget_usd: job.budget_usd,
            over_budget: job.budget_usd.is_some_and(|b| total > b),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(
        tier: &str,
        outcome: AttemptOutcome,
        failure: Option<FailureKind>,
    ) -> AttemptSummary {
        AttemptSummary {
            tier: tier.into(),
            outcome,
            failure,
            error: Some("e".into()),
            fingerprint: None,
            change: None,
        }
    }

    #[test]
    fn cascade_follows_the_default_table() {
        let c = Config::default_embedded().unwrap();
        let f = |t: &str| summary(t, AttemptOutcome::Failed, Some(FailureKind::SyntaxError));
        assert_eq!(
            next_step(&c, "haiku", &[]).unwrap(),
            Step::Attempt {
                tier: "haiku".into()
            }
        );
        assert_eq!(
            next_step(&c, "haiku", &[f("haiku")]).unwrap(),
            Step::Attempt {
                tier: "sonnet".into()
            }
        );
        assert_eq!(
            next_step(&c, "haiku", &[f("haiku"), f("sonnet")]).unwrap(),
            Step::Attempt {
                tier: "sonnet".into()
            }
        );
        assert_eq!(
            next_step(&c, "haiku", &[f("haiku"), f("sonnet"), f("sonnet")]).unwrap(),
            Step::Attempt {
                tier: "opus".into()
            }
        );
        assert!(matches!(
            next_step(
                &c,
                "haiku",
                &[f("haiku"), f("sonnet"), f("sonnet"), f("opus")]
            )
            .unwrap(),
            Step::NeedsHuman(_)
        ));
        let circular = summary(
            "sonnet",
            AttemptOutcome::Failed,
            Some(FailureKind::CircularFix),
        );
        assert_eq!(
            next_step(&c, "sonnet", &[circular]).unwrap(),
            Step::Attempt {
                tier: "opus".into()
            }
        );
        let passed = summary("sonnet", AttemptOutcome::Passed, None);
        assert_eq!(
            next_step(&c, "sonnet", &[f("sonnet"), passed]).unwrap(),
            Step::Accept(1)
        );
        let interrupted = summary("haiku", AttemptOutcome::Interrupted, None);
        assert_eq!(
            next_step(&c, "haiku", &[interrupted]).unwrap(),
            Step::Attempt {
                tier: "haiku".into()
            }
        );
        // Never de-escalate: a start above the history's tiers wins.
        assert_eq!(
            next_step(&c, "opus", &[]).unwrap(),
            Step::Attempt {
                tier: "opus".into()
            }
        );
    }
}
