//! One run of one job: what its stages share (the workspace, the options,
//! the budget, the call gates, the stop and halt tokens), and the context
//! every worker and reviewer call of a planned job reads (the shared prompt
//! prefix and the files the read-only tools may see).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cadre_config::Config;
use cadre_store::{JobRecord, Store};
use cadre_types::{Complexity, JobId, SubtaskId, SubtaskStatus};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::batcher::Batcher;
use crate::budget::Budget;
use crate::engine::{Engine, JobOptions};
use crate::estimate::FileEstimate;
use crate::index::{WorkspaceIndex, file_filter, index_workspace};
use crate::pricing::estimate_tokens;
use crate::prompts::{shared_prefix, worker_prefix_text};
use crate::slots::CallGates;
use crate::{Error, Result};

/// Everything one run of one job shares across its stages and worker tasks.
#[derive(Debug)]
pub(crate) struct JobRun {
    pub engine: Engine,
    pub job_id: JobId,
    pub root: PathBuf,
    pub options: JobOptions,
    pub budget: Budget,
    pub gates: CallGates,
    /// Stop: leave the job resumable (Ctrl-C, shutdown, a lost lease).
    pub stop: CancellationToken,
    /// Fired by `stop` or by a user's cancel: no new model call is sent once
    /// it fires (a child of `stop`).
    pub halt: CancellationToken,
    /// Batch mode's round collector (only for jobs submitted with `batch`).
    pub batcher: Option<Batcher>,
    /// Review money held back per admitted file, until its review call
    /// (or until it will not be reviewed).
    review_holds: Mutex<ReviewHolds>,
    /// Whether the expected cost was reported (once per run).
    pub estimate_reported: AtomicBool,
    /// The requests the job's ledger holds answers to.
    pub ledger: LedgerKeys,
}

impl JobRun {
    /// The run of `job` under `stop`, with what the job has spent so far.
    /// The run stops with `stop` but never cancels it: a stage that fails
    /// stops this run's own child token.
    pub async fn start(engine: &Engine, job: &JobRecord, stop: CancellationToken) -> Result<Self> {
        let stop = stop.child_token();
        let config = engine.config();
        let options = JobOptions::from_stored(&job.options)?;
        let mut spent = 0.0;
        let ledger = LedgerKeys::default();
        engine
            .store()
            .for_each_call(job.id, |call| {
                spent += call.cost_usd;
                ledger.insert(&call.request_sha256);
            })
            .await?;
        let batcher = options.batch.then(|| {
            Batcher::start(
                engine.store().clone(),
                Duration::from_millis(config.limits.batch_window_ms),
                Duration::from_secs(config.limits.batch_poll_max_secs),
                stop.clone(),
            )
        });
        Ok(Self {
            engine: engine.clone(),
            job_id: job.id,
            root: crate::checkout::job_root(engine, job).await?,
            budget: Budget::new(job.budget_usd, spent),
            gates: CallGates::new(config),
            halt: stop.child_token(),
            stop,
            batcher,
            options,
            review_holds: Mutex::new(ReviewHolds::default()),
            estimate_reported: AtomicBool::new(false),
            ledger,
        })
    }

    /// Admits a file to the fan-out when its expected cost fits the
    /// budget: holds its review (and, first, the review's fixed part
    /// `review_base`) back and promises its expected work. A file sent back
    /// keeps the review money it holds.
    pub fn admit(&self, id: SubtaskId, estimate: &FileEstimate, review_base: f64) -> bool {
        if self.budget.cap().is_none() {
            return true;
        }
        let Ok(mut holds) = self.review_holds.lock() else {
            return false;
        };
        if holds.base.is_none() {
            if !self.budget.hold(review_base) {
                return false;
            }
            holds.base = Some(review_base);
        }
        let review = if holds.files.contains_key(&id) {
            0.0
        } else {
            estimate.review_usd
        };
        if !self.budget.admit(estimate.work_usd, review) {
            return false;
        }
        holds.files.entry(id).or_insert(review);
        true
    }

    /// Returns the review money held for `ids` (their review call is about
    /// to be sent, or they will not be reviewed). The fixed part goes with
    /// the last file's.
    pub fn release_reviews(&self, ids: impl IntoIterator<Item = SubtaskId>) {
        let Ok(mut holds) = self.review_holds.lock() else {
            return;
        };
        let mut amount: f64 = ids
            .into_iter()
            .filter_map(|id| holds.files.remove(&id))
            .sum();
        if holds.files.is_empty() {
            amount += holds.base.take().unwrap_or(0.0);
        }
        self.budget.release(amount);
    }

    /// Indexes the run's workspace (its `--files` globs, counting `terms`)
    /// off the async threads; a failure names the indexing.
    pub async fn index(&self, terms: &[String]) -> Result<WorkspaceIndex> {
        let root = self.root.clone();
        let globs = self.options.files.clone();
        let terms = terms.to_vec();
        let max_bytes = self.config().limits.max_file_bytes;
        let indexed = tokio::task::spawn_blocking(move || {
            let filter = file_filter(&globs)?;
            index_workspace(&root, filter.as_ref(), max_bytes, &terms)
        })
        .await
        .map_err(|source| Error::Task {
            task: "indexing",
            source,
        })?;
        let at = || format!("indexing the workspace {}", self.root.display());
        indexed.map_err(|e| match e {
            Error::Io { context, source } => Error::Io {
                context: format!("{}: {context}", at()),
                source,
            },
            Error::InvalidInput(message) => Error::InvalidInput(format!("{}: {message}", at())),
            other => other,
        })
    }

    pub fn config(&self) -> &Config {
        self.engine.config()
    }

    pub fn store(&self) -> &Store {
        self.engine.store()
    }

    /// True when a user's cancel (not a stop) halted the run.
    pub fn cancelled_by_user(&self) -> bool {
        self.halt.is_cancelled() && !self.stop.is_cancelled()
    }
}

/// The request hashes of the calls in a job's ledger (the first 64 bits of
/// each), loaded when the run starts and kept as it records calls, so a
/// call whose request was never answered skips the ledger lookup. A key
/// that matches only says the ledger may hold the answer: the lookup
/// decides. Only this run writes the job's ledger while it runs (the lease).
#[derive(Debug, Default)]
pub(crate) struct LedgerKeys(Mutex<HashSet<u64>>);

impl LedgerKeys {
    fn key(sha256_hex: &str) -> Option<u64> {
        sha256_hex
            .get(..16)
            .and_then(|head| u64::from_str_radix(head, 16).ok())
    }

    /// Notes that the ledger holds an answer to the request `sha256_hex`.
    pub fn insert(&self, sha256_hex: &str) {
        if let (Some(key), Ok(mut keys)) = (Self::key(sha256_hex), self.0.lock()) {
            keys.insert(key);
        }
    }

    /// False only when the ledger surely holds no answer to the request.
    pub fn may_hold(&self, sha256_hex: &str) -> bool {
        match (Self::key(sha256_hex), self.0.lock()) {
            (Some(key), Ok(keys)) => keys.contains(&key),
            _ => true,
        }
    }
}

/// Review money held back: per admitted file, and the review call's fixed part.
#[derive(Debug, Default)]
struct ReviewHolds {
    files: HashMap<SubtaskId, f64>,
    base: Option<f64>,
}

/// What every worker and reviewer call of a planned job reads.
#[derive(Debug)]
pub(crate) struct PlannedContext {
    /// The job's shared prompt prefix (instruction, notes, the subtask list).
    pub prefix: String,
    /// Per tier: whether the prefix reaches the model's cacheable minimum.
    pub cache_prefix: BTreeMap<String, bool>,
    /// Files the worker's read-only tools may see.
    pub files: Arc<[String]>,
}

impl PlannedContext {
    /// Builds the context of a planned job. `files` are the readable files
    /// when planning has just indexed the workspace; otherwise (a resumed
    /// job) it is indexed here, and a workspace that cannot be indexed is an
    /// error, never an empty list.
    pub async fn load(run: &JobRun, job: &JobRecord, files: Option<Vec<String>>) -> Result<Self> {
        let prefix = job_prefix(run.store(), job).await?;
        let cache_prefix = cacheable_by_tier(run.config(), &prefix);
        let files = match files {
            Some(files) => files,
            None => run
                .index(&[])
                .await?
                .files
                .into_iter()
                .map(|f| f.path)
                .collect(),
        };
        Ok(Self {
            prefix,
            cache_prefix,
            files: files.into(),
        })
    }
}

/// The shared prefix of a planned job, from its plan's notes and its
/// routed subtasks.
pub(crate) async fn job_prefix(store: &Store, job: &JobRecord) -> Result<String> {
    let subtasks = store.list_subtasks_brief(job.id).await?;
    let entries: Vec<(String, Complexity)> = subtasks
        .iter()
        .filter(|s| s.status != SubtaskStatus::Skipped)
        .map(|s| (s.path.clone(), s.complexity))
        .collect();
    let notes = job
        .plan
        .as_ref()
        .and_then(|p| p.get("notes"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    Ok(shared_prefix(&job.instruction, notes, &entries))
}

fn cacheable_by_tier(config: &Config, prefix: &str) -> BTreeMap<String, bool> {
    let prefix_tokens = estimate_tokens(&worker_prefix_text(prefix));
    config
        .tiers
        .order
        .iter()
        .map(|tier| {
            let min = config
                .models
                .get(tier)
                .map_or(u64::MAX, |m| m.min_cacheable_tokens);
            (tier.clone(), prefix_tokens >= min)
        })
        .collect()
}
