//! The peer figure: the same fan-out through the plainest alternative a
//! user would write -- an asyncio loop with a semaphore over the official
//! Anthropic Python SDK (`crates/bench/python/peer_fanout.py`) -- against
//! the same simulator, side by side with cadre at the same N, C and latency.
//! The loop sends the very worker requests cadre sends (built with cadre's
//! own prompt functions) and only checks that each answer calls a tool;
//! cadre validates, records and escalates every call.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, anyhow, bail};
use cadre_core::pricing::estimate_tokens;
use cadre_core::prompts::{shared_prefix, worker_prefix_text, worker_request, worker_user_message};
use cadre_core::route::call_settings;
use cadre_types::{Complexity, ErrorCost, Role};
use serde::Deserialize;

use super::fanout::{ideal_makespan_ms, run_fanout};
use super::{BenchResult, Figure, Sizes};
use crate::rig::{
    self, INSTRUCTION, SimHost, Workload, file_content, file_path, scenario, subtask_instruction,
};

/// The tier the benchmark's mechanical subtasks start at.
const WORKER_TIER: &str = "haiku";

/// What the Python loop prints.
#[derive(Debug, Deserialize)]
struct PeerRun {
    makespan_ms: f64,
    cpu_s: f64,
    calls: usize,
    ok: usize,
}

/// cadre and the asyncio + SDK loop, alternately, at each concurrency.
pub fn peer(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let mut figures = Vec::new();
    let mut notes = Vec::new();
    let python = match python() {
        Ok(python) => python,
        Err(e) => {
            notes.push(format!("not run: {e}"));
            return Ok(result(figures, notes));
        }
    };
    let script = script();
    let n = sizes.peer_files;
    let latency = sizes.fanout_latency_ms;
    for &c in &sizes.peer_concurrency {
        let setting = format!("N={n}, {latency} ms, C={c}");
        eprintln!("peer: asyncio + anthropic SDK, {n} calls, {latency} ms, concurrency {c}");
        let loop_run = run_peer(&python, &script, n, c, latency)?;
        if loop_run.calls != n || loop_run.ok != n {
            notes.push(format!(
                "C={c}: the loop got {} answers with a tool call for {n} requests",
                loop_run.ok
            ));
        }
        eprintln!("peer: cadre, {n} subtasks, {latency} ms, concurrency {c}");
        let cadre = run_fanout(rt, n, c, latency)?;
        let ideal = ideal_makespan_ms(n, c, latency);
        figures.push(Figure::new(
            &setting,
            "cadre efficiency (ideal/actual)",
            cadre.efficiency,
            "ratio",
        ));
        figures.push(Figure::new(
            &setting,
            "asyncio + SDK efficiency (ideal/actual)",
            ideal / loop_run.makespan_ms,
            "ratio",
        ));
        if let Some(cpu) = cadre.cpu {
            figures.push(Figure::new(
                &setting,
                "cadre CPU ms per subtask (engine + SQLite)",
                cpu.engine_ms + cpu.sqlite_ms,
                "ms",
            ));
        }
        figures.push(Figure::new(
            &setting,
            "asyncio + SDK client CPU ms per call",
            loop_run.cpu_s * 1000.0 / n as f64,
            "ms",
        ));
    }
    Ok(result(figures, notes))
}

fn result(figures: Vec<Figure>, notes: Vec<String>) -> BenchResult {
    BenchResult {
        name: "peer".to_owned(),
        title: "cadre vs an asyncio loop with a semaphore over the official Python SDK, same requests and simulator; efficiency and client CPU per call".to_owned(),
        figures,
        notes,
    }
}

/// One run of the Python loop against a fresh simulator.
fn run_peer(python: &Path, script: &Path, n: usize, c: u32, latency_ms: u64) -> Result<PeerRun> {
    let mut w = Workload::new(n);
    w.latency_ms = latency_ms;
    let sim = SimHost::start(scenario(&w)?)?;
    let requests = worker_requests(&w)?;
    let output = Command::new(python)
        .arg(script)
        .arg(sim.base_url())
        .arg(requests.path())
        .arg(c.to_string())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    sim.stop();
    if !output.status.success() {
        bail!(
            "the asyncio loop failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "reading the loop's answer: {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The first worker request of every subtask of `w`, as cadre builds it,
/// one JSON body per line.
fn worker_requests(w: &Workload) -> Result<tempfile::NamedTempFile> {
    let config = rig::config(&[])?;
    let model = config
        .models
        .get(WORKER_TIER)
        .ok_or_else(|| anyhow!("no model for tier {WORKER_TIER}"))?;
    let settings = call_settings(
        &config,
        Role::Worker,
        WORKER_TIER,
        Some(Complexity::Mechanical),
        None,
    )?;
    let entries: Vec<(String, Complexity)> = (0..w.files)
        .map(|i| (file_path(i), Complexity::Mechanical))
        .collect();
    let prefix = shared_prefix(INSTRUCTION, &w.notes, &entries);
    let cache = estimate_tokens(&worker_prefix_text(&prefix)) >= model.min_cacheable_tokens;
    let mut file = tempfile::NamedTempFile::new().context("creating the requests file")?;
    for i in 0..w.files {
        let user = worker_user_message(
            &file_path(i),
            Complexity::Mechanical,
            ErrorCost::Low,
            &subtask_instruction(i),
            &file_content(i),
            &[],
        );
        let request = worker_request(&model.model, &settings, &prefix, cache, user);
        serde_json::to_writer(&mut file, &request)?;
        file.write_all(b"\n")?;
    }
    file.flush()?;
    Ok(file)
}

/// The interpreter with the SDK: `CADRE_PYTHON`, else the workspace's `.venv`.
fn python() -> Result<PathBuf> {
    let candidate = match std::env::var_os("CADRE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join(".venv/bin/python"),
    };
    if !candidate.exists() {
        bail!(
            "no Python with the anthropic SDK at {}: set CADRE_PYTHON or run \
             `python3 -m venv .venv && .venv/bin/pip install -r tests/python/requirements.txt`",
            candidate.display()
        );
    }
    Ok(candidate)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("python/peer_fanout.py")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
