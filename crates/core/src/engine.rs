//! The engine: the handle every caller holds (CLI, daemon, benchmarks). It
//! creates jobs, runs a job's stages in order (plan, route, fan-out with
//! validate and cascade, integrate, review, finish; see each stage's module),
//! cancels and reports. It holds no stage logic itself: the stages are
//! functions over a [`JobRun`](crate::run::JobRun) that hand typed values to
//! each other.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadre_config::Config;
use cadre_store::{JobRecord, NewJob, Store};
use cadre_types::{EventKind, JobEvent, JobId, JobReport, JobStatus, SubtaskStatus};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::fanout::fan_out;
use crate::index::file_filter;
use crate::integrate::integrate;
use crate::plan::plan;
use crate::providers::Providers;
use crate::report::ReportBuilder;
use crate::review::{Approvals, review};
use crate::run::{JobRun, PlannedContext};
use crate::slots::FairSlots;
use crate::store_writer::StoreWriter;
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
    /// Stop before the fan-out, without spending on workers, when the
    /// plan's expected cost is above the budget.
    pub require_budget_fit: bool,
    /// ast-grep YAML rules (`--rule FILE.yml`, the files' contents): the
    /// codemod tier runs them first on mechanical subtasks of their language.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Run on a checkout of this repository's commit instead of a path
    /// (see the `checkout` module); `rev` is a resolved commit id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<crate::checkout::GitSource>,
}

impl JobOptions {
    /// The options as the store holds them.
    pub(crate) fn from_stored(options: &Value) -> Result<Self> {
        Self::deserialize(options)
            .map_err(|e| Error::InvalidInput(format!("stored job options: {e}")))
    }
}

/// The canonical path of a local workspace, which must be a directory.
fn canonical_workspace(workspace: &Path) -> Result<String> {
    let root = workspace
        .canonicalize()
        .map_err(|e| Error::io(format!("workspace {}", workspace.display()), e))?;
    if !root.is_dir() {
        return Err(Error::InvalidInput(format!(
            "workspace {} is not a directory",
            root.display()
        )));
    }
    Ok(root.to_string_lossy().into_owned())
}

/// How often a running job looks for a cancel requested through the store
/// (by another process, or a daemon's API).
const CANCEL_POLL: Duration = Duration::from_millis(200);

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
    /// Model-call slots shared fairly by every job this engine runs.
    slots: FairSlots,
    /// Group commit of the running subtasks' bookkeeping.
    writer: StoreWriter,
}

impl Engine {
    /// An engine over a store and providers.
    pub fn new(config: Arc<Config>, store: Store, providers: Providers) -> Self {
        let (events, _) = broadcast::channel(4096);
        let slots = FairSlots::for_store(&config, &store);
        Self {
            inner: Arc::new(EngineInner {
                config,
                writer: StoreWriter::new(store.clone()),
                store,
                providers,
                events,
                slots,
            }),
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

    pub(crate) fn providers(&self) -> &Providers {
        &self.inner.providers
    }

    /// Where the running subtasks' bookkeeping is written (group commit).
    pub(crate) fn writer(&self) -> &StoreWriter {
        &self.inner.writer
    }

    pub(crate) fn slots(&self) -> &FairSlots {
        &self.inner.slots
    }

    pub(crate) fn live_events(&self) -> &broadcast::Sender<JobEvent> {
        &self.inner.events
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
        // A job on a git repository has no path here: each daemon checks
        // it out (crate::checkout); its workspace names the source.
        let workspace_text = match &options.git {
            Some(source) => crate::checkout::describe(source),
            None => canonical_workspace(workspace)?,
        };
        file_filter(&options.files)?;
        crate::codemod::check_rules(&options.rules)?;
        crate::codemod::check_codemod_tier(self.config(), &options.rules)?;
        let budget = budget_usd.or_else(|| {
            let d = self.config().budget.default_usd;
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
        self.store()
            .create_job(&NewJob {
                id,
                instruction: instruction.to_owned(),
                workspace: workspace_text,
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

    pub(crate) async fn load_job(&self, id: JobId) -> Result<JobRecord> {
        self.store()
            .get_job(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// The job without its plan, for everything that does not read it (a
    /// 10,000-file plan is megabytes of parsed JSON).
    pub(crate) async fn load_job_brief(&self, id: JobId) -> Result<JobRecord> {
        self.store()
            .get_job_brief(id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("job {id}")))
    }

    /// Runs (or resumes) a job to a terminal state, or until `stop` fires,
    /// which leaves it resumable. A store failure also leaves the job
    /// resumable (it is returned, never counted against a model).
    pub async fn run_job(&self, job_id: JobId, stop: CancellationToken) -> Result<JobReport> {
        let span = tracing::info_span!("job", job = %job_id);
        self.run_job_inner(job_id, stop).instrument(span).await
    }

    async fn run_job_inner(&self, job_id: JobId, stop: CancellationToken) -> Result<JobReport> {
        let started = Instant::now();
        let _running = self.slots().job_running();
        let job = self.load_job_brief(job_id).await?;
        if job.status.is_terminal() {
            return self.report(job_id).await;
        }
        self.prepare_resume(job_id).await?;
        let job = self.load_job(job_id).await?;
        let run = Arc::new(JobRun::start(self, &job, stop.clone()).await?);
        let _watcher = CancelWatcher::start(self.store().clone(), job_id, run.halt.clone());
        let result = self.run_stages(&run, job).await;
        let wall = started.elapsed().as_millis() as u64;
        match result {
            // The lease is lost (crate::lease): another runner has the job;
            // this run writes nothing more, its result included.
            _ if self.lease_lost(job_id) => {
                tracing::warn!("the job's lease is lost; the run stopped without writing more");
                Err(self
                    .lease_of(job_id)
                    .map_or(Error::Stopped, |lease| lease.lost_error()))
            }
            Ok(()) | Err(Error::Stopped) if stop.is_cancelled() => {
                self.write_result(job_id, wall).await?;
                self.report(job_id).await
            }
            Ok(()) => {
                let cancelled =
                    run.halt.is_cancelled() || self.store().is_cancel_requested(job_id).await?;
                self.finish(job_id, cancelled, wall).await?;
                self.report(job_id).await
            }
            // A user's cancel during planning: the job ends cancelled.
            Err(Error::Stopped) => {
                self.finish(job_id, true, wall).await?;
                self.report(job_id).await
            }
            Err(e @ Error::Store(_)) => {
                tracing::warn!(error = %e.chain(), "the store failed; the job is left resumable");
                Err(e)
            }
            Err(e) => {
                tracing::warn!(error = %e.chain(), "the job failed");
                self.end_failed(job_id, &e, wall).await?;
                if matches!(e, Error::BudgetExhausted(_)) {
                    return self.report(job_id).await;
                }
                Err(e)
            }
        }
    }

    /// The stages in order: plan (unless planned), then rounds of fan-out,
    /// integration check and review until every accepted file is approved,
    /// sent to a human, or the run stops.
    async fn run_stages(&self, run: &Arc<JobRun>, job: JobRecord) -> Result<()> {
        let job_id = job.id;
        let mut files = None;
        let job =
            if job.plan.is_none() || self.store().list_subtasks_brief(job_id).await?.is_empty() {
                files = Some(plan(run, &job).await?.files);
                self.load_job(job_id).await?
            } else {
                job
            };
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
        let planned = Arc::new(PlannedContext::load(run, &job, files).await?);
        drop(job);
        let limits = &self.config().limits;
        let mut integration_rounds = 0;
        let mut review_rounds = 0;
        let mut approved = Approvals::new();
        loop {
            fan_out(run, &planned).await?;
            if run.halt.is_cancelled() || self.store().is_cancel_requested(job_id).await? {
                return Ok(());
            }
            if let Some(check) = run.options.check.as_deref() {
                self.set_job_status(job_id, &[JobStatus::Running], JobStatus::Integrating, "")
                    .await?;
                let final_round = integration_rounds >= limits.integration_rounds;
                let outcome = integrate(run, &planned, check, final_round).await?;
                if outcome.sent_back > 0 {
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
            if review_rounds >= limits.review_rounds {
                for sub in unreviewed {
                    self.withdraw_to_human(
                        job_id,
                        &sub,
                        format!(
                            "review rounds ({}) exhausted before approval",
                            limits.review_rounds
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
            let outcome = review(run, &planned, &unreviewed, &mut approved).await?;
            self.set_job_status(job_id, &[JobStatus::Reviewing], JobStatus::Running, "")
                .await?;
            if outcome.sent_back == 0 && self.unreviewed(job_id, &approved).await?.is_empty() {
                return Ok(());
            }
        }
    }

    /// Accepted subtasks whose current content the reviewer has not approved.
    async fn unreviewed(
        &self,
        job_id: JobId,
        approved: &Approvals,
    ) -> Result<Vec<cadre_store::SubtaskRecord>> {
        Ok(self
            .store()
            .list_subtasks_brief(job_id)
            .await?
            .into_iter()
            .filter(|s| s.status == SubtaskStatus::Accepted)
            .filter(|s| approved.get(&s.id) != Some(&s.attempts))
            .collect())
    }

    /// Requests cancellation. A queued job ends `cancelled` at once; a
    /// running one stops dispatching at its next step and ends `cancelled`
    /// with every subtask terminal. Returns false when the job had already ended.
    pub async fn cancel(&self, job_id: JobId) -> Result<bool> {
        let job = self.load_job_brief(job_id).await?;
        if job.status.is_terminal() {
            return Ok(false);
        }
        self.store().request_cancel(job_id).await?;
        if self
            .set_job_status(
                job_id,
                &[JobStatus::Queued],
                JobStatus::Cancelled,
                "cancelled by a user",
            )
            .await?
        {
            self.end_unfinished(job_id, SubtaskStatus::Cancelled, "job cancelled")
                .await?;
            self.write_result(job_id, 0).await?;
        }
        Ok(true)
    }

    /// Raises a job's budget to `budget_usd`. A job that ended `needs_human`
    /// with files its budget did not cover goes back to `queued`, so running
    /// it again (`cadre resume`, or a daemon) works on those files. Returns
    /// the job's status afterwards.
    pub async fn raise_budget(&self, job_id: JobId, budget_usd: f64) -> Result<JobStatus> {
        if !(budget_usd.is_finite() && budget_usd > 0.0) {
            return Err(Error::InvalidInput(format!(
                "budget must be a positive number of USD, got {budget_usd}"
            )));
        }
        let job = self.load_job_brief(job_id).await?;
        if let Some(old) = job.budget_usd
            && budget_usd <= old
        {
            return Err(Error::InvalidInput(format!(
                "the budget can only be raised: job {job_id} has ${old:.4}, asked ${budget_usd:.4}"
            )));
        }
        if job.status.is_terminal() && job.status != JobStatus::NeedsHuman {
            return Err(Error::Conflict(format!(
                "job {job_id} is {}; only a live or needs_human job's budget can be raised",
                job.status
            )));
        }
        self.store().set_job_budget(job_id, budget_usd).await?;
        // Files the old budget stopped mid-cascade go back to the cascade.
        for sub in self.store().list_subtasks_brief(job_id).await? {
            if sub.status == SubtaskStatus::NeedsHuman && sub.reason.starts_with("budget $") {
                self.set_subtask_status(
                    job_id,
                    &sub,
                    &[SubtaskStatus::NeedsHuman],
                    SubtaskStatus::Pending,
                    cadre_store::SubtaskUpdate {
                        reason: Some(format!("budget raised to ${budget_usd:.4}")),
                        ..cadre_store::SubtaskUpdate::default()
                    },
                )
                .await?;
            }
        }
        let not_started = self
            .store()
            .list_subtasks_brief(job_id)
            .await?
            .iter()
            .any(|s| s.status == SubtaskStatus::Pending);
        let reason = format!("budget raised to ${budget_usd:.4}");
        if job.status == JobStatus::NeedsHuman && not_started {
            self.set_job_status(job_id, &[JobStatus::NeedsHuman], JobStatus::Queued, &reason)
                .await?;
        } else {
            self.emit(
                job_id,
                None,
                EventKind::Note,
                reason,
                json!({"budget_usd": budget_usd}),
            )
            .await?;
        }
        Ok(self.load_job_brief(job_id).await?.status)
    }

    /// The job's report, recomputed from the store.
    pub async fn report(&self, job_id: JobId) -> Result<JobReport> {
        let store = self.store();
        let job = self.load_job_brief(job_id).await?;
        // Fed as the store yields rows: calls, then attempts, then subtasks.
        let mut report = ReportBuilder::new(self.config(), job.budget_usd)
            .with_sizes(store.subtask_content_chars(job_id).await?);
        store.for_each_call(job_id, |c| report.add_call(&c)).await?;
        store
            .for_each_attempt_brief(job_id, |a| report.add_attempt(&a))
            .await?;
        store
            .for_each_subtask_brief(job_id, |s| report.add_subtask(&s))
            .await?;
        Ok(report.finish(&job))
    }
}

/// Watches the store for a cancel of a running job (requested by this
/// process's [`Engine::cancel`], another process, or a daemon's API) and
/// fires the run's halt token, so no new model call is sent, planning
/// included. Owned by the run: dropping it stops the watch.
pub(crate) struct CancelWatcher {
    task: tokio::task::JoinHandle<()>,
}

impl CancelWatcher {
    pub(crate) fn start(store: Store, job_id: JobId, halt: CancellationToken) -> Self {
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = halt.cancelled() => return,
                    _ = tokio::time::sleep(CANCEL_POLL) => {}
                }
                match store.is_cancel_requested(job_id).await {
                    Ok(true) => {
                        tracing::info!(job = %job_id, "cancel requested; halting the run");
                        halt.cancel();
                        return;
                    }
                    Ok(false) => {}
                    Err(e) => tracing::debug!(job = %job_id, error = %e, "cancel check failed"),
                }
            }
        });
        Self { task }
    }
}

impl Drop for CancelWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
