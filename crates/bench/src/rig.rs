//! The benchmark rig: a generated workspace and its scenario, the simulator
//! on its own runtime, and an engine over a temporary SQLite store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cadre_config::{Config, ConfigSources};
use cadre_core::{Engine, JobOptions, Providers};
use cadre_sim::{FileSpec, ModelOverride, Scenario, SelectorSpec, SimServer, SkillSpec};
use cadre_store::Store;
use cadre_types::{EventKind, JobId, JobReport};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::measure::{
    CpuSnapshot, ENGINE_THREADS, SIM_THREADS, TIMINGS, TimingTotals, peak_rss_kib,
};

/// The key the in-process simulator accepts; it never leaves this process.
pub const SIM_KEY: &str = "sim-bench-key";

/// The model ids of the default tiers (haiku, sonnet, opus).
pub const MODELS: [&str; 3] = ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-7"];

/// The job's instruction in every benchmark.
pub const INSTRUCTION: &str = "Rename `UserId` to `AccountId` in every handler module";

/// A generated workload: `files` Python modules, each with one correct edit.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Number of files (and subtasks).
    pub files: usize,
    /// Plan notes (long notes make the shared prefix cacheable).
    pub notes: String,
    /// Constant latency of every simulated model, milliseconds.
    pub latency_ms: u64,
    /// The simulator's `requests_per_minute` (0 = unlimited).
    pub requests_per_minute: u32,
}

impl Workload {
    /// `files` files, short notes, instant models, no rate limit.
    pub fn new(files: usize) -> Workload {
        Workload {
            files,
            notes: "Rename the class UserId to AccountId; change nothing else.".to_owned(),
            latency_ms: 0,
            requests_per_minute: 0,
        }
    }
}

/// Workspace-relative path of file `i` (100 files per package directory).
pub fn file_path(i: usize) -> String {
    format!("pkg{:03}/handler_{i:05}.py", i / 100)
}

/// Original content of file `i`: a small, valid Python module.
pub fn file_content(i: usize) -> String {
    format!(
        "from app.models import UserId\n\n\ndef handler_{i}(uid: UserId) -> int:\n    \"\"\"Handle request {i}.\"\"\"\n    return uid.value + {i}\n"
    )
}

/// The instruction of the plan's one selector (every handler module).
pub const SELECTOR_INSTRUCTION: &str = "Rename UserId to AccountId in the handler's signature.";

/// The planner's instruction for file `i` (an explicit entry's, as a peer
/// without selectors states it).
pub fn subtask_instruction(i: usize) -> String {
    format!("Rename UserId to AccountId in handler_{i}'s signature.")
}

/// The one correct edit of file `i`.
pub fn file_edit(i: usize) -> (String, String) {
    (
        format!("def handler_{i}(uid: UserId)"),
        format!("def handler_{i}(uid: AccountId)"),
    )
}

/// Writes the workspace under `root`.
pub fn write_workspace(root: &Path, files: usize) -> Result<()> {
    for i in 0..files {
        let path = root.join(file_path(i));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&path, file_content(i))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The scenario: the planner names every file with one selector (the
/// handler modules that mention `UserId`; mechanical, low cost) at the
/// simulator's built-in output-token rate, each file's correct edit, every
/// model at skill 1.0 with constant latency.
pub fn scenario(w: &Workload) -> Result<Scenario> {
    let mut builder = Scenario::builder()
        .seed(7)
        .notes(w.notes.clone())
        .selector(SelectorSpec {
            id: "handlers".to_owned(),
            paths: vec!["pkg*/handler_*.py".to_owned()],
            literal: Some("UserId".to_owned()),
            instruction: SELECTOR_INSTRUCTION.to_owned(),
            complexity: "mechanical".to_owned(),
            error_cost: "low".to_owned(),
            ..SelectorSpec::default()
        })
        .files((0..w.files).map(|i| FileSpec::with_edits(file_path(i), [file_edit(i)])))
        .requests_per_minute(w.requests_per_minute);
    for m in MODELS {
        builder = builder.model(
            m,
            ModelOverride::default()
                .skill(SkillSpec::uniform(1.0))
                .latency(w.latency_ms, 0),
        );
    }
    builder
        .build()
        .map_err(|e| anyhow!("the benchmark scenario: {e}"))
}

/// A multi-thread runtime of two workers whose threads are named `name`.
pub fn runtime(name: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        // Blocking-pool threads live long enough to be counted by CpuSnapshot.
        .thread_keep_alive(Duration::from_secs(3600))
        .enable_all()
        .build()
        .with_context(|| format!("building the {name} runtime"))
}

/// The simulator serving on loopback from its own runtime, so its CPU time is
/// accounted apart from the engine's.
#[derive(Debug)]
pub struct SimHost {
    rt: tokio::runtime::Runtime,
    server: Option<SimServer>,
    base_url: String,
}

impl SimHost {
    /// Starts a simulator for `scenario` on `127.0.0.1:0`.
    pub fn start(scenario: Scenario) -> Result<SimHost> {
        let rt = runtime(SIM_THREADS)?;
        let server = rt.block_on(async {
            let listener = cadre_sim::bind("127.0.0.1:0")
                .await
                .context("binding the simulator")?;
            SimServer::start(scenario, listener)
                .await
                .map_err(|e| anyhow!("starting the simulator: {e}"))
        })?;
        let base_url = server.base_url();
        Ok(SimHost {
            rt,
            server: Some(server),
            base_url,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The simulator's request log.
    pub fn requests(&self) -> Vec<cadre_sim::LoggedRequest> {
        self.server
            .as_ref()
            .map(SimServer::request_log)
            .unwrap_or_default()
    }

    /// Stops the server and its runtime.
    pub fn stop(mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.shutdown());
        }
    }
}

/// Loads the built-in configuration with `-c` style overrides.
pub fn config(overrides: &[String]) -> Result<Config> {
    let sources = ConfigSources::from_vars(None, Vec::new(), overrides.to_vec());
    Ok(cadre_config::load(&sources)
        .map_err(|e| anyhow!("configuration: {e}"))?
        .config)
}

/// `-c` overrides that set the global and every per-tier concurrency to `c`.
pub fn concurrency_overrides(c: u32) -> Vec<String> {
    let mut out = vec![format!("limits.max_concurrency={c}")];
    for tier in ["haiku", "sonnet", "opus"] {
        out.push(format!("limits.per_tier_concurrency.{tier}={c}"));
    }
    out
}

/// CPU and timing totals at the start and the end of the fan-out phase.
#[derive(Clone, Debug, Default)]
pub struct PhaseSample {
    /// At the first `attempt_started`.
    pub cpu_start: CpuSnapshot,
    /// At the `expected`-th `attempt_finished`.
    pub cpu_end: CpuSnapshot,
    /// Timing-layer totals at the first `attempt_started`.
    pub timings_start: TimingTotals,
    /// Timing-layer totals at the `expected`-th `attempt_finished`.
    pub timings_end: TimingTotals,
    /// Peak RSS (`VmHWM`, KiB) at the first `attempt_started`: indexing and
    /// planning.
    pub peak_rss_start_kib: Option<u64>,
    /// Peak RSS at the `expected`-th `attempt_finished`: through the fan-out.
    pub peak_rss_end_kib: Option<u64>,
}

/// When each worker attempt started and finished, from the engine's live events.
#[derive(Clone, Debug, Default)]
pub struct AttemptTimes {
    /// Offsets of `attempt_started` events from the job's start.
    pub started: Vec<Duration>,
    /// Offsets of `attempt_finished` events from the job's start.
    pub finished: Vec<Duration>,
    /// Events the recorder missed because it lagged (should be 0).
    pub lagged: u64,
    /// Samples bracketing the fan-out phase (when the expected number of
    /// attempts finished).
    pub phase: Option<PhaseSample>,
}

impl AttemptTimes {
    /// First `attempt_started` to last `attempt_finished`.
    pub fn fan_out(&self) -> Option<Duration> {
        let first = self.started.iter().min()?;
        let last = self.finished.iter().max()?;
        Some(last.saturating_sub(*first))
    }
}

/// Records attempt events from a broadcast subscription until stopped.
#[derive(Debug)]
struct Recorder {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<AttemptTimes>,
}

impl Recorder {
    /// Samples CPU and timings at the first `attempt_started` and at the
    /// `expected`-th `attempt_finished`.
    fn start(
        mut rx: broadcast::Receiver<cadre_types::JobEvent>,
        t0: Instant,
        expected: usize,
    ) -> Recorder {
        let stop = CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let mut times = AttemptTimes::default();
            let mut start: Option<(CpuSnapshot, TimingTotals, Option<u64>)> = None;
            let mut note = |times: &mut AttemptTimes, kind: EventKind| {
                let at = t0.elapsed();
                match kind {
                    EventKind::AttemptStarted => {
                        if times.started.is_empty() {
                            start = Some((CpuSnapshot::take(), TIMINGS.totals(), peak_rss_kib()));
                        }
                        times.started.push(at);
                    }
                    EventKind::AttemptFinished => {
                        times.finished.push(at);
                        if times.finished.len() == expected
                            && let Some((cpu_start, timings_start, peak_rss_start_kib)) =
                                start.take()
                        {
                            times.phase = Some(PhaseSample {
                                cpu_start,
                                cpu_end: CpuSnapshot::take(),
                                timings_start,
                                timings_end: TIMINGS.totals(),
                                peak_rss_start_kib,
                                peak_rss_end_kib: peak_rss_kib(),
                            });
                        }
                    }
                    _ => {}
                }
            };
            loop {
                tokio::select! {
                    biased;
                    received = rx.recv() => match received {
                        Ok(event) => note(&mut times, event.kind),
                        Err(RecvError::Lagged(n)) => times.lagged += n,
                        Err(RecvError::Closed) => break,
                    },
                    _ = token.cancelled() => break,
                }
            }
            while let Ok(event) = rx.try_recv() {
                note(&mut times, event.kind);
            }
            times
        });
        Recorder { stop, task }
    }

    async fn finish(self) -> AttemptTimes {
        self.stop.cancel();
        self.task.await.unwrap_or_default()
    }
}

/// One finished job.
#[derive(Debug)]
pub struct JobRun {
    /// The report `run_job` returned.
    pub report: JobReport,
    /// `run_job` wall time (plan, fan-out, review, report).
    pub wall: Duration,
    /// Attempt event times.
    pub times: AttemptTimes,
}

/// An engine over a fresh store in `dir`, talking to `base_url`.
pub async fn engine(dir: &Path, config: Config, base_url: &str) -> Result<Engine> {
    let store = Store::open(&dir.join("cadre.db"))
        .await
        .context("opening the store")?;
    let config = Arc::new(config);
    let providers = Providers::from_config(&config, &|_| None, Some((base_url, SIM_KEY)))?;
    Ok(Engine::new(config, store, providers))
}

/// Creates and runs one job over `workspace` (whose plan has `expected`
/// subtasks) to its end.
pub async fn run_job(engine: &Engine, workspace: &Path, expected: usize) -> Result<JobRun> {
    let job: JobId = engine
        .create_job(INSTRUCTION, workspace, &JobOptions::default(), None, 0)
        .await?;
    let t0 = Instant::now();
    let recorder = Recorder::start(engine.subscribe(), t0, expected);
    let result = engine.run_job(job, CancellationToken::new()).await;
    let wall = t0.elapsed();
    let times = recorder.finish().await;
    let report = result?;
    Ok(JobRun {
        report,
        wall,
        times,
    })
}

/// Everything one benchmark job needs on disk, removed on drop.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// A temp dir holding `ws/` with the workload's files.
    pub fn new(files: usize) -> Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix("cadre-bench-")
            .tempdir()
            .context("creating a temp dir")?;
        write_workspace(&dir.path().join("ws"), files)?;
        Ok(Scratch { dir })
    }

    /// Keeps the temp dir on disk and returns its path.
    pub fn keep(self) -> PathBuf {
        self.dir.keep()
    }

    /// The temp dir (the store goes here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// A job run in this process, with what it left behind.
#[derive(Debug)]
pub struct Finished {
    /// The run.
    pub run: JobRun,
    /// The simulator's request log.
    pub log: Vec<cadre_sim::LoggedRequest>,
    /// The workspace and the store (`cadre.db`), kept for inspection.
    pub scratch: Scratch,
}

/// Runs one job of `workload` in this process: simulator on its runtime,
/// engine on `engine_rt` (named [`ENGINE_THREADS`]). Fails unless every
/// subtask was accepted.
pub fn run_in_process(
    engine_rt: &tokio::runtime::Runtime,
    workload: &Workload,
    overrides: &[String],
) -> Result<Finished> {
    let scratch = Scratch::new(workload.files)?;
    let sim = SimHost::start(scenario(workload)?)?;
    let config = config(overrides)?;
    let job = run_on_workers(
        engine_rt,
        scratch.dir().to_path_buf(),
        config,
        sim.base_url().to_owned(),
        workload.files,
    );
    let run = job?;
    let log = sim.requests();
    sim.stop();
    check_complete(&run.report, workload.files)?;
    Ok(Finished { run, log, scratch })
}

/// Opens an engine over `dir/cadre.db` and runs one job over `dir/ws` as a
/// task of `rt`, so that all of the engine's work (the fan-out loop
/// included) runs on the runtime's named worker threads, not on the caller's.
pub fn run_on_workers(
    rt: &tokio::runtime::Runtime,
    dir: PathBuf,
    config: Config,
    base_url: String,
    files: usize,
) -> Result<JobRun> {
    rt.block_on(async move {
        let task = tokio::spawn(async move {
            let engine = engine(&dir, config, &base_url).await?;
            let run = run_job(&engine, &dir.join("ws"), files).await;
            engine.store().close().await;
            run
        });
        task.await
            .map_err(|e| anyhow!("the job task failed: {e}"))?
    })
}

/// Fails unless every planned subtask was accepted.
pub fn check_complete(report: &JobReport, files: usize) -> Result<()> {
    let accepted = report
        .subtasks
        .iter()
        .filter(|s| s.status == cadre_types::SubtaskStatus::Accepted)
        .count();
    if accepted != files {
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for s in report
            .subtasks
            .iter()
            .filter(|s| s.status != cadre_types::SubtaskStatus::Accepted)
        {
            *reasons
                .entry(format!("{}: {}", s.status, s.reason))
                .or_default() += 1;
        }
        bail!(
            "job {} ended {} with {accepted}/{files} subtasks accepted: {reasons:?}",
            report.job_id,
            report.status
        );
    }
    Ok(())
}

/// The engine runtime's thread name, for child processes and tests.
pub fn engine_runtime() -> Result<tokio::runtime::Runtime> {
    runtime(ENGINE_THREADS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn generated_files_take_their_edit_exactly_once() {
        for i in [0, 7, 99, 100, 12_345] {
            let content = file_content(i);
            let (old, new) = file_edit(i);
            assert_eq!(content.matches(&old).count(), 1, "{i}");
            assert!(content.replacen(&old, &new, 1).contains("AccountId"));
        }
        assert_eq!(file_path(0), "pkg000/handler_00000.py");
        assert_eq!(file_path(12_345), "pkg123/handler_12345.py");
    }

    #[test]
    fn the_scenario_selects_every_file_and_parses_back() {
        let mut w = Workload::new(3);
        w.latency_ms = 200;
        w.requests_per_minute = 600;
        let s = scenario(&w).unwrap();
        let plan = s.plan.as_ref().unwrap();
        // One selector names every file; no explicit entries, no terse planner.
        assert!(plan.subtasks.is_empty());
        assert_eq!(plan.selectors.len(), 1);
        let literal = plan.selectors[0].literal.clone().unwrap_or_default();
        assert!((0..3).all(|i| file_content(i).contains(&literal)));
        assert!(
            s.models
                .values()
                .all(|m| m.output_tokens_per_char.is_none()),
            "{:?}",
            s.models
        );
        assert_eq!(s.files.len(), 3);
        assert_eq!(s.limits.requests_per_minute, 600);
        let text = s.to_toml_string().unwrap();
        let back = Scenario::from_toml_str(&text, Path::new(".")).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn concurrency_overrides_load() {
        let c = config(&concurrency_overrides(32)).unwrap();
        assert_eq!(c.limits.max_concurrency, 32);
        for tier in ["haiku", "sonnet", "opus"] {
            assert_eq!(c.limits.per_tier_concurrency.get(tier), Some(&32));
        }
    }
}
