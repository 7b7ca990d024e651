//! End-to-end test support for cadre: the tests in `tests/tests/*.rs` drive the
//! real `cadre` binary against a real `cadre sim serve` process over loopback,
//! with real temporary workspaces and a temporary SQLite store.
//!
//! This crate owns the harness every test file shares, so the fakes live in one
//! place: locating the binary ([`cadre_bin`]), running it with a clean
//! environment and a watchdog ([`Fixture::cadre`]), the simulator process
//! ([`Sim`]), scenario and workspace builders ([`FileCase`], [`ScenarioSpec`])
//! and read-only views of the store ([`Fixture::attempts`], [`Fixture::events`]).
//!
//! Key design decision: everything is observed from the outside, the way a user
//! or operator would: exit codes, `--json` output, files on disk, the
//! simulator's request log (`GET /sim/requests`) and the SQLite file. Nothing
//! here links the pipeline or the simulator, so the tests cannot share a bug
//! with the code under test. The environment of every child process is built
//! from scratch (`env_clear`), so no `CADRE_*` variable of the developer's shell
//! leaks in, and the tests never mutate their own process environment.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cadre_store::Store;
use cadre_types::{JobId, JobReport, SubtaskReport, SubtaskStatus};

/// Model ids of the default tiers haiku / sonnet / opus.
pub const HAIKU: &str = "claude-haiku-4-5";
/// The default middle tier's model.
pub const SONNET: &str = "claude-sonnet-4-6";
/// The default top tier's model (also planner and reviewer).
pub const OPUS: &str = "claude-opus-4-7";

/// How long any single `cadre` command may take before the watchdog kills it.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// The instruction every rename test uses.
pub const RENAME: &str = "Rename `UserId` to `AccountId` across the app package";

// ------------------------------------------------------------------ binary

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `cadre` binary: `$CARGO_TARGET_DIR/debug/cadre`, else
/// `<workspace>/target/debug/cadre`, else next to this test executable's
/// target directory. Panics when none exists.
pub fn cadre_bin() -> PathBuf {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
        candidates.push(dir.join("debug").join("cadre"));
    }
    candidates.push(workspace_root().join("target").join("debug").join("cadre"));
    // target/debug/deps/<test exe> -> target/debug/cadre
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.join("cadre"));
    }
    let Some(found) = candidates.iter().find(|c| c.is_file()) else {
        panic!(
            "the cadre binary was not found (looked at {candidates:?}): run `cargo build -p cadre-cli` first"
        )
    };
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| warn_if_stale(found));
    found.clone()
}

/// Says so (in the test's captured output) when a source file of the
/// workspace is newer than the binary: the tests would exercise old code.
fn warn_if_stale(binary: &Path) {
    fn newest(dir: &Path, newest_seen: &mut Option<(std::time::SystemTime, PathBuf)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                newest(&path, newest_seen);
            } else if path
                .extension()
                .is_some_and(|e| e == "rs" || e == "toml" || e == "sql")
                && let Ok(modified) = meta.modified()
                && newest_seen.as_ref().is_none_or(|(t, _)| modified > *t)
            {
                *newest_seen = Some((modified, path));
            }
        }
    }
    let Ok(built) = std::fs::metadata(binary).and_then(|m| m.modified()) else {
        return;
    };
    let mut newest_seen = None;
    for dir in ["crates", "config", "migrations"] {
        newest(&workspace_root().join(dir), &mut newest_seen);
    }
    if let Some((modified, path)) = newest_seen
        && modified > built
    {
        eprintln!(
            "warning: {} is older than {}; rebuild it with `cargo build -p cadre-cli` or these tests run old code",
            binary.display(),
            path.display()
        );
    }
}

// ------------------------------------------------------------------ processes

/// What a finished command did.
#[derive(Clone, Debug)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub command: String,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CmdOutput {
    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "$ {}\nexit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// Panics unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n{}",
            self.dump()
        );
        self
    }
}

fn describe(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

fn drain<R: Read + Send + 'static>(reader: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut r) = reader {
            let _ = r.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `cmd` to completion with piped output; kills it and panics after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> CmdOutput {
    let command = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out.join().unwrap_or_default();
                let stderr = err.join().unwrap_or_default();
                panic!(
                    "{command} did not finish within {timeout:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {command}: {e}"),
        }
    };
    CmdOutput {
        command,
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A `Command` with an empty environment plus `PATH` (so `sh`, `git` and
/// `grep` resolve) and `HOME`.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    cmd.env(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    cmd.env("HOME", home);
    cmd.env("LANG", "C.UTF-8");
    cmd
}

// ------------------------------------------------------------------ simulator

/// A `cadre sim serve` child process on a free loopback port; killed on drop.
#[derive(Debug)]
pub struct Sim {
    child: Child,
    base_url: String,
    host_port: String,
    stderr_log: PathBuf,
}

/// One entry of the simulator's request log (`GET /sim/requests`), as the
/// simulator writes it.
pub use cadre_sim::LoggedRequest as SimRequest;
/// The role the simulator inferred for a request.
pub use cadre_sim::Role as SimRole;

/// What the tests ask of a logged request.
pub trait SimRequestExt {
    /// A worker `POST /v1/messages` that was answered in full with 200.
    fn is_finished_worker_call(&self) -> bool;
    /// True for a worker request about `path`.
    fn is_worker_for(&self, path: &str) -> bool;
}

impl SimRequestExt for SimRequest {
    fn is_finished_worker_call(&self) -> bool {
        self.role == Some(SimRole::Worker) && self.status == 200 && self.complete
    }

    fn is_worker_for(&self, path: &str) -> bool {
        self.role == Some(SimRole::Worker) && self.subtask_path.as_deref() == Some(path)
    }
}

impl Sim {
    /// Writes `scenario_toml` to `dir/scenario.toml`, starts `cadre sim serve`
    /// on `127.0.0.1:0` and waits for its `cadre sim listening on URL` line.
    pub fn start(scenario_toml: &str, dir: &Path) -> Sim {
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let scenario = dir.join("scenario.toml");
        std::fs::write(&scenario, scenario_toml)
            .unwrap_or_else(|e| panic!("writing {}: {e}", scenario.display()));
        let stderr_log = dir.join("sim.stderr.log");
        let stderr_file = std::fs::File::create(&stderr_log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stderr_log.display()));
        let mut cmd = clean_command(cadre_bin(), dir);
        cmd.args(["sim", "serve", "--scenario"])
            .arg(&scenario)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file));
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", describe(&cmd)));
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel::<String>();
        // Reads the first line, then keeps draining so the sim never blocks on stdout.
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut lines = BufReader::new(stdout).lines();
            let first = lines
                .next()
                .and_then(std::result::Result::ok)
                .unwrap_or_default();
            let _ = tx.send(first);
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let prefix = "cadre sim listening on ";
        let Some(url) = line.trim().strip_prefix(prefix).map(str::to_owned) else {
            let _ = child.kill();
            let _ = child.wait();
            let err = std::fs::read_to_string(&stderr_log).unwrap_or_default();
            panic!(
                "`cadre sim serve` did not announce its address (first stdout line {line:?})\n--- sim stderr ---\n{err}"
            );
        };
        let host_port = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        Sim {
            child,
            base_url: url.trim_end_matches('/').to_owned(),
            host_port,
            stderr_log,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `GET path` on the simulator; returns the body (panics unless 200).
    pub fn get(&self, path: &str) -> String {
        let (status, body) = http_get(&self.host_port, path);
        assert_eq!(
            status, 200,
            "GET {path} on the sim answered {status}: {body}"
        );
        body
    }

    /// The request log, in arrival order.
    pub fn requests(&self) -> Vec<SimRequest> {
        let body = self.get("/sim/requests");
        let value: serde_json::Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("GET /sim/requests is not JSON ({e}): {body}"));
        let list = match value {
            serde_json::Value::Array(_) => value,
            serde_json::Value::Object(mut map) => map.remove("requests").unwrap_or_default(),
            _ => serde_json::Value::Null,
        };
        let mut requests: Vec<SimRequest> = serde_json::from_value(list)
            .unwrap_or_else(|e| panic!("GET /sim/requests: unexpected shape ({e}): {body}"));
        requests.sort_by_key(|r| r.seq);
        requests
    }

    /// Worker requests about `path`.
    pub fn worker_requests_for(&self, path: &str) -> Vec<SimRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.is_worker_for(path))
            .collect()
    }

    /// The simulator's stderr so far (for failure messages).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET (the harness stays synchronous and dependency-light).
fn http_get(host_port: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(host_port)
        .unwrap_or_else(|e| panic!("connecting to the sim at {host_port}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host_port}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("GET {path}: reading the answer: {e}"));
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("GET {path}: no header end"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("GET {path}: bad status line in {head:?}"));
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&rest[..eol]).into_owned();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        rest = &rest[eol + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
    out
}

// ------------------------------------------------------------------ scenarios

/// One workspace file the plan changes: its original content, the correct
/// edits, how the planner classifies it and what the models do on it.
#[derive(Clone, Debug)]
pub struct FileCase {
    /// Workspace-relative path.
    pub path: String,
    /// Content before the job.
    pub original: String,
    /// The correct change: exact search/replace pairs, each `old` unique.
    pub edits: Vec<(String, String)>,
    /// mechanical | generative | reasoning.
    pub complexity: String,
    /// low | high.
    pub error_cost: String,
    /// The subtask instruction.
    pub instruction: String,
    /// Scripted outcomes per model id.
    pub script: BTreeMap<String, Vec<String>>,
}

impl FileCase {
    /// A mechanical, low-cost change.
    pub fn new(path: &str, original: &str, edits: &[(&str, &str)]) -> FileCase {
        let case = FileCase {
            path: path.to_owned(),
            original: original.to_owned(),
            edits: edits
                .iter()
                .map(|(o, n)| ((*o).to_owned(), (*n).to_owned()))
                .collect(),
            complexity: "mechanical".to_owned(),
            error_cost: "low".to_owned(),
            instruction: format!("Rename UserId to AccountId in {path}."),
            script: BTreeMap::new(),
        };
        // Fail early on a badly written case rather than deep inside a run.
        let _ = case.expected();
        case
    }

    /// Sets the complexity class.
    pub fn complexity(mut self, complexity: &str) -> FileCase {
        self.complexity = complexity.to_owned();
        self
    }

    /// Sets the error cost.
    pub fn error_cost(mut self, error_cost: &str) -> FileCase {
        self.error_cost = error_cost.to_owned();
        self
    }

    /// Scripts `model`'s successive attempts on this file.
    pub fn script(mut self, model: &str, outcomes: &[&str]) -> FileCase {
        self.script.insert(
            model.to_owned(),
            outcomes.iter().map(|s| (*s).to_owned()).collect(),
        );
        self
    }

    /// The content after the correct change.
    pub fn expected(&self) -> String {
        let mut text = self.original.clone();
        for (old, new) in &self.edits {
            assert_eq!(
                text.matches(old.as_str()).count(),
                1,
                "{}: edit old text {old:?} must occur exactly once",
                self.path
            );
            text = text.replacen(old.as_str(), new, 1);
        }
        text
    }
}

/// A small Python module that mentions `UserId` twice, with the two edits
/// that rename it (so a `partial` answer leaves one `UserId` behind).
pub fn rename_module(path: &str, function: &str) -> FileCase {
    let original = format!(
        "from app.models import UserId\n\n\ndef {function}(uid: UserId) -> int:\n    \"\"\"Return the numeric id.\"\"\"\n    return uid.value\n"
    );
    FileCase::new(
        path,
        &original,
        &[
            (
                "from app.models import UserId",
                "from app.models import AccountId",
            ),
            (
                &format!("def {function}(uid: UserId)"),
                &format!("def {function}(uid: AccountId)"),
            ),
        ],
    )
}

/// `app/models.py`, which defines `UserId`.
pub fn models_file() -> FileCase {
    FileCase::new(
        "app/models.py",
        "class UserId:\n    def __init__(self, value: int) -> None:\n        self.value = value\n\n    def __repr__(self) -> str:\n        return f\"UserId({self.value})\"\n",
        &[
            ("class UserId:", "class AccountId:"),
            ("return f\"UserId(", "return f\"AccountId("),
        ],
    )
}

/// A subtask the planner lists without a `[[files]]` entry of its own choosing.
#[derive(Clone, Debug)]
struct ExtraSubtask {
    path: String,
    complexity: String,
    /// When set, a `[[files]]` entry whose correct change is this whole content.
    content: Option<String>,
}

/// Builds a scenario TOML: the plan lists every case (and any extra subtask)
/// in order; every model has skill 1.0 so only scripted outcomes fail.
#[derive(Clone, Debug)]
pub struct ScenarioSpec {
    seed: u64,
    notes: String,
    cases: Vec<FileCase>,
    extra: Vec<ExtraSubtask>,
    force_revise: BTreeMap<String, u32>,
    latency_base: u64,
    latency_jitter: u64,
    raw: String,
}

/// TOML basic string (JSON string escapes are valid TOML escapes).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|e| panic!("quoting {s:?}: {e}"))
}

impl ScenarioSpec {
    /// A scenario over `cases` with near-instant models.
    pub fn new(cases: &[FileCase]) -> ScenarioSpec {
        ScenarioSpec {
            seed: 7,
            notes: "Rename the class UserId to AccountId; change nothing else.".to_owned(),
            cases: cases.to_vec(),
            extra: Vec::new(),
            force_revise: BTreeMap::new(),
            latency_base: 2,
            latency_jitter: 3,
            raw: String::new(),
        }
    }

    /// Replaces the plan notes (long notes make the shared prefix cacheable).
    pub fn notes(mut self, notes: &str) -> ScenarioSpec {
        self.notes = notes.to_owned();
        self
    }

    /// Adds a planned subtask for `path` (sent verbatim: hostile paths welcome)
    /// whose "correct" change is to write `content`.
    pub fn extra_subtask(mut self, path: &str, content: &str) -> ScenarioSpec {
        self.extra.push(ExtraSubtask {
            path: path.to_owned(),
            complexity: "mechanical".to_owned(),
            content: Some(content.to_owned()),
        });
        self
    }

    /// The first `n` reviews of `path` say "revise".
    pub fn force_revise(mut self, path: &str, n: u32) -> ScenarioSpec {
        self.force_revise.insert(path.to_owned(), n);
        self
    }

    /// Model latency: uniform `base..=base+jitter` milliseconds.
    pub fn latency(mut self, base: u64, jitter: u64) -> ScenarioSpec {
        self.latency_base = base;
        self.latency_jitter = jitter;
        self
    }

    /// Appends raw TOML (faults, limits).
    pub fn raw(mut self, toml: &str) -> ScenarioSpec {
        self.raw.push_str(toml);
        self.raw.push('\n');
        self
    }

    /// The scenario file.
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "seed = {}\n", self.seed);
        let _ = writeln!(out, "[plan]\nnotes = {}\n", q(&self.notes));
        for case in &self.cases {
            let _ = writeln!(
                out,
                "[[plan.subtasks]]\npath = {}\ninstruction = {}\ncomplexity = {}\nerror_cost = {}\n",
                q(&case.path),
                q(&case.instruction),
                q(&case.complexity),
                q(&case.error_cost)
            );
        }
        for extra in &self.extra {
            let _ = writeln!(
                out,
                "[[plan.subtasks]]\npath = {}\ninstruction = \"Rename UserId to AccountId here too.\"\ncomplexity = {}\nerror_cost = \"low\"\n",
                q(&extra.path),
                q(&extra.complexity)
            );
        }
        for case in &self.cases {
            let edits: Vec<String> = case
                .edits
                .iter()
                .map(|(o, n)| format!("{{ old = {}, new = {} }}", q(o), q(n)))
                .collect();
            let _ = writeln!(
                out,
                "[[files]]\npath = {}\nedits = [{}]",
                q(&case.path),
                edits.join(", ")
            );
            if !case.script.is_empty() {
                let entries: Vec<String> = case
                    .script
                    .iter()
                    .map(|(model, kinds)| {
                        let kinds: Vec<String> = kinds.iter().map(|k| q(k)).collect();
                        format!("{} = [{}]", q(model), kinds.join(", "))
                    })
                    .collect();
                let _ = writeln!(out, "script = {{ {} }}", entries.join(", "));
            }
            out.push('\n');
        }
        for extra in &self.extra {
            if let Some(content) = &extra.content {
                let _ = writeln!(
                    out,
                    "[[files]]\npath = {}\ncontent = {}\n",
                    q(&extra.path),
                    q(content)
                );
            }
        }
        if !self.force_revise.is_empty() {
            let entries: Vec<String> = self
                .force_revise
                .iter()
                .map(|(p, n)| format!("{} = {n}", q(p)))
                .collect();
            let _ = writeln!(
                out,
                "[reviewer]\nforce_revise = {{ {} }}\n",
                entries.join(", ")
            );
        }
        for model in [HAIKU, SONNET, OPUS] {
            let _ = writeln!(
                out,
                "[models.{}]\nskill = {{ mechanical = 1.0, generative = 1.0, reasoning = 1.0 }}\nlatency_ms = {{ base = {}, jitter = {} }}\n",
                q(model),
                self.latency_base,
                self.latency_jitter
            );
        }
        out.push_str(&self.raw);
        out
    }
}

// ------------------------------------------------------------------ fixture

/// One test's world: a temp dir holding the workspace (`ws/`), `HOME`, the
/// SQLite store and the scenario, plus the running simulator.
#[derive(Debug)]
pub struct Fixture {
    /// Owns everything on disk; removed on drop.
    pub tmp: tempfile::TempDir,
    /// The workspace root.
    pub ws: PathBuf,
    /// `HOME` of every child process.
    pub home: PathBuf,
    /// `CADRE_DB`.
    pub db: PathBuf,
    /// The simulator.
    pub sim: Sim,
    /// The cases the workspace was built from.
    pub cases: Vec<FileCase>,
}

/// A recorded worker attempt, as the store holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptView {
    /// Subtask path.
    pub path: String,
    /// Tier name.
    pub tier: String,
    /// Model id.
    pub model: String,
    /// passed | failed | interrupted | ...
    pub outcome: String,
    /// The failure kind, if failed.
    pub failure: Option<String>,
    /// The failure message.
    pub error: Option<String>,
}

/// Writes `content` to `root/rel`, creating parent directories.
pub fn write_file(root: &Path, rel: &str, content: impl AsRef<[u8]>) {
    let target = root.join(rel);
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("creating {}: {e}", parent.display()));
    }
    std::fs::write(&target, content)
        .unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
}

/// Reads `root/rel` as text.
pub fn read_file(root: &Path, rel: &str) -> String {
    let target = root.join(rel);
    std::fs::read_to_string(&target).unwrap_or_else(|e| panic!("reading {}: {e}", target.display()))
}

/// Every regular file under `dir` (relative path -> bytes), symlinks not followed.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let rel = path
                .strip_prefix(base)
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if meta.is_dir() {
                walk(base, &path, out);
            } else if meta.file_type().is_symlink() {
                let target = std::fs::read_link(&path)
                    .map(|t| t.to_string_lossy().into_owned())
                    .unwrap_or_default();
                out.insert(rel, format!("symlink -> {target}").into_bytes());
            } else {
                out.insert(rel, std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
}

impl Fixture {
    /// A workspace holding every case's original, and a simulator serving `scenario`.
    pub fn new(scenario: &ScenarioSpec) -> Fixture {
        Self::with_files(scenario, &[])
    }

    /// Like [`Fixture::new`], with extra workspace files (path, bytes).
    pub fn with_files(scenario: &ScenarioSpec, extra_files: &[(&str, &[u8])]) -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("cadre-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let ws = tmp.path().join("ws");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&ws).unwrap_or_else(|e| panic!("creating {}: {e}", ws.display()));
        std::fs::create_dir_all(&home)
            .unwrap_or_else(|e| panic!("creating {}: {e}", home.display()));
        for case in &scenario.cases {
            write_file(&ws, &case.path, &case.original);
        }
        for (rel, bytes) in extra_files {
            write_file(&ws, rel, bytes);
        }
        let sim = Sim::start(&scenario.to_toml(), &tmp.path().join("sim"));
        let db = tmp.path().join("cadre.db");
        Fixture {
            ws,
            home,
            db,
            sim,
            cases: scenario.cases.clone(),
            tmp,
        }
    }

    /// The workspace path as a string argument.
    pub fn ws_arg(&self) -> String {
        self.ws.to_string_lossy().into_owned()
    }

    /// The case for `path`.
    pub fn case(&self, path: &str) -> &FileCase {
        self.cases
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("no case for {path}"))
    }

    /// A `cadre` command with the clean environment: `CADRE_DB`,
    /// `ANTHROPIC_BASE_URL` (the sim), `ANTHROPIC_API_KEY`, `HOME`, `PATH`.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = clean_command(cadre_bin(), &self.home);
        cmd.env("CADRE_DB", &self.db)
            .env("ANTHROPIC_BASE_URL", self.sim.base_url())
            .env("ANTHROPIC_API_KEY", "test-key")
            .current_dir(self.tmp.path())
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `cadre args` to completion.
    pub fn cadre(&self, args: &[&str]) -> CmdOutput {
        self.cadre_env(args, &[])
    }

    /// Runs `cadre args` with extra environment variables.
    pub fn cadre_env(&self, args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
        run_with_timeout(self.command(args, env), COMMAND_TIMEOUT)
    }

    /// `cadre [global...] run RENAME --workspace WS --json [extra...]`; parses the report.
    pub fn run_json(&self, global: &[&str], extra: &[&str]) -> (CmdOutput, JobReport) {
        let ws = self.ws_arg();
        let mut args: Vec<&str> = global.to_vec();
        args.extend(["run", RENAME, "--workspace", &ws, "--json"]);
        args.extend(extra);
        let out = self.cadre(&args);
        let report = parse_report(&out);
        (out, report)
    }

    /// `cadre diff JOB` (must succeed).
    pub fn diff(&self, job: &JobId) -> String {
        let out = self.cadre(&["diff", &job.to_string()]);
        out.expect_code(0);
        out.stdout
    }

    /// The first (newest) job of `cadre jobs --json`.
    pub fn newest_job(&self) -> serde_json::Value {
        let out = self.cadre(&["jobs", "--json"]);
        out.expect_code(0);
        let jobs: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("cadre jobs --json is not JSON ({e})\n{}", out.dump()));
        jobs.get(0)
            .cloned()
            .unwrap_or_else(|| panic!("no jobs listed\n{}", out.dump()))
    }

    /// Worker attempts of `job` in the store, in start order.
    pub fn attempts(&self, job: &JobId) -> Vec<AttemptView> {
        let db = self.db.clone();
        let job = *job;
        runtime().block_on(async move {
            let store = Store::open(&db)
                .await
                .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
            let subtasks = store
                .list_subtasks(job)
                .await
                .unwrap_or_else(|e| panic!("list_subtasks: {e}"));
            let attempts = store
                .list_attempts(job)
                .await
                .unwrap_or_else(|e| panic!("list_attempts: {e}"));
            store.close().await;
            attempts
                .into_iter()
                .filter(|a| a.role == cadre_types::Role::Worker)
                .map(|a| AttemptView {
                    path: subtasks
                        .iter()
                        .find(|s| Some(s.id) == a.subtask_id)
                        .map(|s| s.path.clone())
                        .unwrap_or_default(),
                    tier: a.tier,
                    model: a.model,
                    outcome: a.outcome.as_str().to_owned(),
                    failure: a.failure.map(|f| f.as_str().to_owned()),
                    error: a.error,
                })
                .collect()
        })
    }

    /// Worker attempts at `path`.
    pub fn attempts_for(&self, job: &JobId, path: &str) -> Vec<AttemptView> {
        self.attempts(job)
            .into_iter()
            .filter(|a| a.path == path)
            .collect()
    }

    /// The job's events as (kind, message), oldest first.
    pub fn events(&self, job: &JobId) -> Vec<(String, String)> {
        let db = self.db.clone();
        let job = *job;
        runtime().block_on(async move {
            let store = Store::open(&db)
                .await
                .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
            let events = store
                .list_events(job, 0, 100_000)
                .await
                .unwrap_or_else(|e| panic!("list_events: {e}"));
            store.close().await;
            events
                .into_iter()
                .map(|e| (e.kind.as_str().to_owned(), e.message))
                .collect()
        })
    }
}

/// Parses `cadre run|resume ... --json` stdout as the job report.
pub fn parse_report(out: &CmdOutput) -> JobReport {
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not a job report ({e})\n{}", out.dump()))
}

/// The report row for `path`.
pub fn subtask<'a>(report: &'a JobReport, path: &str) -> &'a SubtaskReport {
    report
        .subtasks
        .iter()
        .find(|s| s.path == path)
        .unwrap_or_else(|| {
            panic!(
                "no subtask for {path} in the report: {:#?}",
                report.subtasks
            )
        })
}

/// Every subtask of a finished job is in a terminal state.
pub fn assert_all_terminal(report: &JobReport) {
    for s in &report.subtasks {
        assert!(
            s.status.is_terminal(),
            "{} ended {} (not terminal): {s:#?}",
            s.path,
            s.status
        );
    }
    assert!(
        report.status.is_terminal(),
        "job ended {} (not terminal)",
        report.status
    );
}

/// The subtask was accepted at `tier` on its first attempt.
pub fn assert_accepted_first_try(report: &JobReport, path: &str, tier: &str) {
    let s = subtask(report, path);
    assert_eq!(s.status, SubtaskStatus::Accepted, "{path}: {s:#?}");
    assert_eq!(
        (s.start_tier.as_str(), s.final_tier.as_str(), s.attempts),
        (tier, tier, 1),
        "{path}: {s:#?}"
    );
}

/// Runs `git args` in `dir` with a clean environment; panics on failure.
pub fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let mut cmd = clean_command("git", home);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .args([
            "-c",
            "user.name=e2e",
            "-c",
            "user.email=e2e@localhost",
            "-c",
            "init.defaultBranch=main",
        ])
        .arg("-C")
        .arg(dir)
        .args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "git failed\n{}", out.dump());
    out.stdout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_are_reassembled() {
        assert_eq!(
            dechunk(b"4\r\nWiki\r\n5;x=1\r\npedia\r\n0\r\n\r\n"),
            b"Wikipedia"
        );
        assert_eq!(dechunk(b"0\r\n\r\n"), b"");
    }

    #[test]
    fn cases_compute_their_expected_content_and_scenarios_quote_safely() {
        let case = rename_module("app/a.py", "f").script(HAIKU, &["syntax"]);
        assert_eq!(
            case.expected(),
            case.original.replace("UserId", "AccountId")
        );
        let toml = ScenarioSpec::new(&[case])
            .extra_subtask("../x \"quoted\"\n", "a\tb")
            .to_toml();
        assert!(toml.contains(r#"path = "../x \"quoted\"\n""#), "{toml}");
        assert!(
            toml.contains(r#"script = { "claude-haiku-4-5" = ["syntax"] }"#),
            "{toml}"
        );
        assert!(toml.contains(r#"content = "a\tb""#), "{toml}");
    }
}

// ------------------------------------------------------------------ fault-suite helpers (issue 6)

/// One recorded attempt of any role, with its cost and the model calls the
/// store's ledger holds for it.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptCost {
    /// planner | worker | reviewer.
    pub role: String,
    /// The subtask's path (workers only).
    pub path: Option<String>,
    /// Tier name.
    pub tier: String,
    /// passed | failed | interrupted | running | ...
    pub outcome: String,
    /// The failure kind, if failed.
    pub failure: Option<String>,
    /// The failure message.
    pub error: Option<String>,
    /// The attempt's recorded cost.
    pub cost_usd: f64,
    /// Its recorded input + output + cache tokens.
    pub tokens: u64,
    /// Model calls recorded for it.
    pub calls: usize,
    /// The sum of those calls' costs.
    pub calls_cost_usd: f64,
}

impl Fixture {
    /// Every attempt of `job` (all roles) with its cost and its recorded calls.
    pub fn attempt_costs(&self, job: &JobId) -> Vec<AttemptCost> {
        let db = self.db.clone();
        let job = *job;
        runtime().block_on(async move {
            let store = Store::open(&db)
                .await
                .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
            let subtasks = store
                .list_subtasks(job)
                .await
                .unwrap_or_else(|e| panic!("list_subtasks: {e}"));
            let attempts = store
                .list_attempts(job)
                .await
                .unwrap_or_else(|e| panic!("list_attempts: {e}"));
            let calls = store
                .list_calls(job)
                .await
                .unwrap_or_else(|e| panic!("list_calls: {e}"));
            store.close().await;
            let orphans: Vec<_> = calls
                .iter()
                .filter(|c| !attempts.iter().any(|a| a.id == c.attempt_id))
                .collect();
            assert!(
                orphans.is_empty(),
                "model calls recorded for no attempt: {orphans:#?}"
            );
            attempts
                .iter()
                .map(|a| {
                    let mine: Vec<_> = calls.iter().filter(|c| c.attempt_id == a.id).collect();
                    AttemptCost {
                        role: a.role.as_str().to_owned(),
                        path: a.subtask_id.and_then(|id| {
                            subtasks.iter().find(|s| s.id == id).map(|s| s.path.clone())
                        }),
                        tier: a.tier.clone(),
                        outcome: a.outcome.as_str().to_owned(),
                        failure: a.failure.map(|f| f.as_str().to_owned()),
                        error: a.error.clone(),
                        cost_usd: a.cost_usd,
                        tokens: a.input_tokens
                            + a.output_tokens
                            + a.cache_read_tokens
                            + a.cache_write_tokens,
                        calls: mine.len(),
                        calls_cost_usd: mine.iter().map(|c| c.cost_usd).sum(),
                    }
                })
                .collect()
        })
    }

    /// Spawns `cadre args` (clean environment, output to files under the
    /// fixture's temp dir) without waiting; see [`Running`].
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let stdout_path = self.tmp.path().join(format!("spawned-{n}.stdout"));
        let stderr_path = self.tmp.path().join(format!("spawned-{n}.stderr"));
        let stdout = std::fs::File::create(&stdout_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stdout_path.display()));
        let stderr = std::fs::File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stderr_path.display()));
        let mut cmd = self.command(args, env);
        let command = describe(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
        Running {
            child,
            command,
            stdout_path,
            stderr_path,
            started: Instant::now(),
        }
    }
}

/// A `cadre` command running in the background; killed on drop.
#[derive(Debug)]
pub struct Running {
    child: Child,
    command: String,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    started: Instant,
}

impl Running {
    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// True once the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGKILLs it and collects what it printed.
    pub fn kill(mut self) -> CmdOutput {
        let _ = self.child.kill();
        self.collect()
    }

    /// Waits for it to finish (panics after [`COMMAND_TIMEOUT`] in total).
    pub fn wait(mut self) -> CmdOutput {
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if self.started.elapsed() > COMMAND_TIMEOUT => {
                    let _ = self.child.kill();
                    let out = self.collect();
                    panic!("{} did not finish in time\n{}", out.command, out.dump());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("waiting for {}: {e}", self.command),
            }
        }
        self.collect()
    }

    fn collect(&mut self) -> CmdOutput {
        let status = self.child.wait().ok();
        CmdOutput {
            command: self.command.clone(),
            code: status.and_then(|s| s.code()),
            stdout: std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr_path).unwrap_or_default(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sim {
    /// Polls the request log until `pred` holds for some request; panics
    /// after `timeout`.
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&SimRequest) -> bool,
    ) -> SimRequest {
        let started = Instant::now();
        loop {
            if let Some(found) = self.requests().into_iter().find(|r| pred(r)) {
                return found;
            }
            assert!(
                started.elapsed() < timeout,
                "the simulator never saw {what} within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Panics when a command's stderr shows a Rust panic.
pub fn assert_no_panic(out: &CmdOutput) {
    assert!(
        !out.stderr.contains("panicked"),
        "the command panicked\n{}",
        out.dump()
    );
}
