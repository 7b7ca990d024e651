//! `cadre daemon` end to end: the real daemon process (killed, stopped and
//! restarted on the same store) against a real `cadre sim serve`, driven by
//! the real clients (`cadre submit|status|watch|cancel|jobs|apply`) and by
//! raw HTTP.

#![expect(
    clippy::unwrap_used,
    reason = "process and socket helpers outside #[test] fns fail loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cadre_e2e::{
    FileCase, Fixture, HAIKU, RENAME, ScenarioSpec, SimRequest, SimRole, models_file, read_file,
    rename_module, write_file,
};
use cadre_store::Store;
use cadre_types::{EventKind, JobId, JobReport, JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

// ------------------------------------------------------------------ helpers

/// How long the tests wait for anything before failing.
const PATIENCE: Duration = Duration::from_secs(120);

/// A `cadre daemon` child process; killed on drop.
struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
    host_port: String,
    stderr_log: PathBuf,
}

impl Daemon {
    /// Starts `cadre daemon ARGS` (on `127.0.0.1:0` unless ARGS has
    /// `--listen`) and waits for its `cadre daemon listening on URL` line.
    fn start(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        static STARTED: AtomicUsize = AtomicUsize::new(0);
        let n = STARTED.fetch_add(1, Ordering::SeqCst);
        let stderr_log = f.tmp.path().join(format!("daemon-{n}.stderr.log"));
        let mut full = vec!["daemon"];
        if !args.contains(&"--listen") {
            full.extend(["--listen", "127.0.0.1:0"]);
        }
        full.extend(args);
        let mut env = env.to_vec();
        env.push(("CADRE_LOG", "info"));
        let mut cmd = f.command(&full, &env);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(std::fs::File::create(&stderr_log).unwrap()));
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            for _ in lines {}
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        let Some(url) = line.trim().strip_prefix("cadre daemon listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the daemon did not announce its address (first line {line:?})\n--- stderr ---\n{}",
                std::fs::read_to_string(&stderr_log).unwrap_or_default()
            );
        };
        let url = url.trim_end_matches('/').to_owned();
        let host_port = url.trim_start_matches("http://").to_owned();
        Daemon {
            child,
            url,
            host_port,
            stderr_log,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up.
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn sigterm(&self) {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (panics after `limit`).
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > limit {
                let _ = self.child.kill();
                panic!(
                    "the daemon did not exit within {limit:?}\n--- stderr ---\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn get(&self, path: &str) -> Reply {
        http(&self.host_port, "GET", path, &[], None)
    }

    fn post(&self, path: &str, body: &Value) -> Reply {
        http(
            &self.host_port,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
    }

    /// `GET /v1/jobs/{job}` as a report (panics unless 200).
    fn report(&self, job: &str) -> JobReport {
        let reply = self.get(&format!("/v1/jobs/{job}"));
        assert_eq!(reply.status, 200, "{reply:#?}\n{}", self.stderr());
        serde_json::from_value(reply.json).unwrap()
    }

    /// Waits until the job is terminal; returns its report.
    fn wait_terminal(&self, job: &str) -> JobReport {
        let started = Instant::now();
        loop {
            let report = self.report(job);
            if report.status.is_terminal() {
                return report;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "job {job} did not finish: {report:#?}\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: String,
    json: Value,
}

impl Reply {
    /// Asserts the API's one error shape with this status and type; returns the message.
    fn expect_error(&self, status: u16, kind: &str) -> String {
        assert_eq!(self.status, status, "{self:#?}");
        assert_eq!(self.json["error"]["type"], kind, "{self:#?}");
        assert_eq!(self.json.as_object().map(|o| o.len()), Some(1), "{self:#?}");
        let message = self.json["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{self:#?}");
        message.to_owned()
    }
}

/// A minimal HTTP/1.1 request over a fresh connection (`Connection: close`).
fn http(
    host_port: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut stream = TcpStream::connect(host_port).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body.unwrap_or_default());
    // The server may answer (413) and close before reading a large body.
    let _ = stream.write_all(&bytes);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("{method} {path}: no response head in {raw:?}"));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line: {head}"));
    let rest = &raw[split + 4..];
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body_bytes = if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    let body = String::from_utf8_lossy(&body_bytes).into_owned();
    let json = serde_json::from_str(&body).unwrap_or(Value::Null);
    Reply { status, body, json }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]).into_owned();
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16).unwrap_or(0);
        rest = &rest[eol + 2..];
        if size == 0 || rest.len() < size {
            break;
        }
        out.extend_from_slice(&rest[..size]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
    out
}

/// `cadre submit RENAME --workspace WS ARGS` against the daemon; returns the job id.
fn submit(f: &Fixture, d: &Daemon, ws: &Path, args: &[&str]) -> String {
    let ws = ws.to_string_lossy().into_owned();
    let mut full = vec!["submit", RENAME, "--workspace", &ws];
    full.extend(args);
    let out = f.cadre_env(&full, &[("CADRE_SERVER", &d.url)]);
    out.expect_code(0);
    let id = out.stdout.trim().to_owned();
    assert!(id.parse::<JobId>().is_ok(), "not a job id\n{}", out.dump());
    id
}

/// Accepted subtask paths of the job.
fn accepted(report: &JobReport) -> BTreeSet<String> {
    report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Accepted)
        .map(|s| s.path.clone())
        .collect()
}

/// Polls until the job has at least `n` accepted subtasks; returns them.
fn wait_accepted(d: &Daemon, job: &str, n: usize) -> BTreeSet<String> {
    let started = Instant::now();
    loop {
        let report = d.report(job);
        assert!(
            !report.status.is_terminal(),
            "the job finished before it could be interrupted; the scenario is too fast: {report:#?}"
        );
        let done = accepted(&report);
        if done.len() >= n {
            return done;
        }
        assert!(started.elapsed() < PATIENCE, "{report:#?}");
        std::thread::sleep(Duration::from_millis(15));
    }
}

/// Every request body the simulator answered in full more than once.
fn repeated_finished_requests(log: &[SimRequest]) -> Vec<(String, Vec<u64>)> {
    let mut answered: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in log.iter().filter(|r| r.status == 200 && r.complete) {
        answered
            .entry(r.body_sha256.as_str())
            .or_default()
            .push(r.seq);
    }
    answered
        .into_iter()
        .filter(|(_, seqs)| seqs.len() > 1)
        .map(|(sha, seqs)| (sha.to_owned(), seqs))
        .collect()
}

/// The store, read directly.
fn with_store<T>(db: &Path, f: impl AsyncFnOnce(&Store) -> T) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = Store::open(db).await.unwrap();
        let out = f(&store).await;
        store.close().await;
        out
    })
}

/// The store sequence number of the event that ended `job`.
fn end_seq(db: &Path, job: &str) -> i64 {
    let id: JobId = job.parse().unwrap();
    let events = with_store(db, async |s: &Store| {
        s.list_events(id, 0, 100_000).await.unwrap()
    });
    events
        .iter()
        .rev()
        .find(|e| {
            e.kind == EventKind::JobStatus
                && e.data["status"]
                    .as_str()
                    .and_then(|s| s.parse::<JobStatus>().ok())
                    .is_some_and(|s| s.is_terminal())
        })
        .map(|e| e.seq)
        .unwrap_or_else(|| panic!("job {job} has no terminal event"))
}

/// Eight files, one of which escalates (so a resumed cascade has history).
fn crash_cases() -> Vec<FileCase> {
    let mut cases = vec![models_file()];
    for i in 1..=7 {
        cases.push(rename_module(
            &format!("app/mod{i}.py"),
            &format!("handler_{i}"),
        ));
    }
    cases[5] = cases[5].clone().script(HAIKU, &["syntax"]);
    cases
}

// ------------------------------------------------------------------ tests

#[test]
fn a_killed_daemon_restarts_and_finishes_the_job_without_repeating_finished_calls() {
    let cases = crash_cases();
    let f = Fixture::new(&ScenarioSpec::new(&cases).latency(300, 30));
    let ws = f.ws_arg();
    // One call in flight at a time: right after an acceptance the next call
    // has just been sent and needs >= 300 ms. Short leases so the restarted
    // daemon takes the orphaned job over quickly.
    let flags = [
        "--allow-root",
        ws.as_str(),
        "-c",
        "limits.max_concurrency=1",
        "-c",
        "daemon.lease_secs=2",
    ];
    let mut first = Daemon::start(&f, &flags, &[]);
    let job = submit(&f, &first, &f.ws, &[]);
    // A watcher follows the job across the crash (same address after restart).
    let watch_log = f.tmp.path().join("watch.out");
    let mut watcher = f
        .command(&["watch", &job, "--json", "--server", &first.url], &[])
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&watch_log).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::create(f.tmp.path().join("watch.err")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let done_before_kill = wait_accepted(&first, &job, 3);
    first.kill9();

    let log_at_kill = f.sim.requests();
    let last_seq_at_kill = log_at_kill.iter().map(|r| r.seq).max().unwrap_or(0);
    let record = with_store(&f.db, async |s: &Store| {
        s.get_job(job.parse().unwrap()).await.unwrap().unwrap()
    });
    assert!(!record.status.is_terminal(), "{record:#?}");
    assert!(
        record.lease_owner.is_some(),
        "a killed daemon cannot release its lease"
    );

    // A new daemon on the same store and address claims the job once the
    // lease expires and resumes it; the watcher reconnects with
    // Last-Event-ID and exits 0 when the job completes.
    let listen = first.host_port.clone();
    let mut restart_flags = flags.to_vec();
    restart_flags.extend(["--listen", listen.as_str()]);
    let second = Daemon::start(&f, &restart_flags, &[]);
    let started = Instant::now();
    let watch_status = loop {
        if let Some(status) = watcher.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > PATIENCE {
            let _ = watcher.kill();
            panic!(
                "cadre watch did not end
{}",
                second.stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let watch_err = std::fs::read_to_string(f.tmp.path().join("watch.err")).unwrap();
    assert_eq!(watch_status.code(), Some(0), "{watch_err}");
    assert!(watch_err.contains("reconnecting"), "{watch_err}");
    // Every event exactly once, in order, across both daemons.
    let watched: Vec<i64> = std::fs::read_to_string(&watch_log)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let stored: Vec<i64> = with_store(&f.db, async |s: &Store| {
        s.list_events(job.parse().unwrap(), 0, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect()
    });
    assert_eq!(watched, stored);
    let report = second.report(&job);
    assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
    assert!(
        report
            .subtasks
            .iter()
            .all(|s| s.status == SubtaskStatus::Accepted),
        "{report:#?}"
    );
    let record = with_store(&f.db, async |s: &Store| {
        s.get_job(job.parse().unwrap()).await.unwrap().unwrap()
    });
    assert_eq!(record.claim_count, 2);
    assert_eq!(record.lease_owner, None);

    let log = f.sim.requests();
    let repeated = repeated_finished_requests(&log);
    assert!(
        repeated.is_empty(),
        "finished calls were sent again after the restart: {repeated:?}\n{log:#?}"
    );
    for r in log.iter().filter(|r| r.seq > last_seq_at_kill) {
        if let Some(path) = &r.subtask_path {
            assert!(
                !done_before_kill.contains(path),
                "{path} was accepted before the crash but redone: {r:#?}"
            );
        }
        assert_ne!(r.role, Some(SimRole::Planner), "replanned: {r:#?}");
    }

    // The right patch: applying it through the daemon writes the expected files.
    let apply = f.cadre(&["apply", &job, "--server", &second.url, "--json"]);
    apply.expect_code(0);
    let outcome: Value = serde_json::from_str(&apply.stdout).unwrap();
    assert_eq!(
        outcome["written"].as_array().map(Vec::len),
        Some(cases.len())
    );
    for case in &cases {
        assert_eq!(
            read_file(&f.ws, &case.path),
            case.expected(),
            "{}",
            case.path
        );
    }
}

#[test]
fn a_hundred_concurrent_submissions_all_complete_correctly() {
    let case = rename_module("app/svc.py", "lookup");
    let f = Fixture::new(&ScenarioSpec::new(std::slice::from_ref(&case)).latency(0, 0));
    let root = f.tmp.path().join("root");
    let workspaces: Vec<PathBuf> = (0..100)
        .map(|i| {
            let ws = root.join(format!("ws-{i:03}"));
            write_file(&ws, &case.path, &case.original);
            ws
        })
        .collect();
    let root_arg = root.to_string_lossy().into_owned();
    let d = Daemon::start(&f, &["--allow-root", &root_arg, "--max-jobs", "8"], &[]);

    let started = Instant::now();
    // Twenty clients at once, five submissions each, over separate connections.
    let ids: Vec<(PathBuf, String)> = std::thread::scope(|scope| {
        #[expect(
            clippy::needless_collect,
            reason = "every client must be started before any is joined"
        )]
        let handles: Vec<_> = workspaces
            .chunks(5)
            .map(|chunk| {
                let host_port = d.host_port.clone();
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|ws| {
                            let body = json!({"instruction": RENAME, "workspace": ws});
                            let reply = http(
                                &host_port,
                                "POST",
                                "/v1/jobs",
                                &[("Content-Type", "application/json")],
                                Some(body.to_string().as_bytes()),
                            );
                            assert_eq!(reply.status, 201, "{reply:#?}");
                            (
                                ws.clone(),
                                reply.json["job_id"].as_str().unwrap().to_owned(),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(ids.len(), 100);
    let submitted = started.elapsed();

    // Wait for the queue to drain, watching the listing.
    loop {
        let page = d.get("/v1/jobs?limit=200");
        assert_eq!(page.status, 200, "{page:#?}");
        let rows = page.json["data"].as_array().unwrap();
        assert_eq!(rows.len(), 100);
        let finished = rows.iter().all(|r| {
            r["status"]
                .as_str()
                .and_then(|s| s.parse::<JobStatus>().ok())
                .is_some_and(|s| s.is_terminal())
        });
        if finished {
            break;
        }
        assert!(
            started.elapsed() < PATIENCE * 2,
            "the queue did not drain\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all_done = started.elapsed();
    eprintln!(
        "100 jobs: submitted in {} ms, all finished after {} ms",
        submitted.as_millis(),
        all_done.as_millis()
    );

    let mut diffs = BTreeSet::new();
    for (ws, id) in &ids {
        let report = d.report(id);
        assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
        assert_eq!(report.files_changed, 1);
        let diff = d.get(&format!("/v1/jobs/{id}/diff"));
        assert_eq!(diff.status, 200);
        diffs.insert(diff.body);
        let applied = d.post(&format!("/v1/jobs/{id}/apply"), &json!({}));
        assert_eq!(applied.status, 200, "{applied:#?}");
        assert_eq!(read_file(ws, &case.path), case.expected());
    }
    assert_eq!(diffs.len(), 1, "every job made the same change: {diffs:#?}");
    let diff = diffs.into_iter().next().unwrap_or_default();
    assert!(diff.contains("+from app.models import AccountId"), "{diff}");
}

#[test]
fn a_small_job_submitted_behind_a_huge_one_finishes_first() {
    let big: Vec<FileCase> = (0..30)
        .map(|i| rename_module(&format!("big/m{i:02}.py"), &format!("handler_{i}")))
        .collect();
    let small = rename_module("small/only.py", "only");
    let mut all = big.clone();
    all.push(small.clone());
    let f = Fixture::new(&ScenarioSpec::new(&all).latency(200, 0));
    // Each workspace holds only its own files; the shared plan's other
    // paths are skipped as "not a file of the workspace".
    let root = f.tmp.path().join("root");
    for case in &big {
        write_file(&root.join("big-ws"), &case.path, &case.original);
    }
    write_file(&root.join("small-ws"), &small.path, &small.original);
    let root_arg = root.to_string_lossy().into_owned();
    let d = Daemon::start(
        &f,
        &[
            "--allow-root",
            &root_arg,
            "--max-jobs",
            "2",
            "-c",
            "limits.max_concurrency=4",
        ],
        &[],
    );
    let huge = submit(&f, &d, &root.join("big-ws"), &[]);
    let little = submit(&f, &d, &root.join("small-ws"), &[]);

    let little_report = d.wait_terminal(&little);
    let huge_report = d.wait_terminal(&huge);
    assert_eq!(
        little_report.status,
        JobStatus::Completed,
        "{little_report:#?}"
    );
    assert_eq!(huge_report.status, JobStatus::Completed, "{huge_report:#?}");
    assert_eq!(
        (little_report.files_changed, huge_report.files_changed),
        (1, 30)
    );
    let (little_end, huge_end) = (end_seq(&f.db, &little), end_seq(&f.db, &huge));
    assert!(
        little_end < huge_end,
        "the small job ended after the huge one ({little_end} > {huge_end})"
    );
    // And the huge job was running when the small one ended (real sharing,
    // not one after the other).
    let huge_started = with_store(&f.db, async |s: &Store| {
        let events = s
            .list_events(huge.parse().unwrap(), 0, 100_000)
            .await
            .unwrap();
        events
            .iter()
            .find(|e| e.kind == EventKind::AttemptStarted)
            .map(|e| e.seq)
            .unwrap()
    });
    assert!(huge_started < little_end);
}

#[test]
fn cancel_stops_dispatch_and_leaves_every_subtask_terminal() {
    let cases: Vec<FileCase> = (0..12)
        .map(|i| rename_module(&format!("app/m{i:02}.py"), &format!("handler_{i}")))
        .collect();
    let f = Fixture::new(&ScenarioSpec::new(&cases).latency(250, 0));
    let ws = f.ws_arg();
    let d = Daemon::start(
        &f,
        &[
            "--allow-root",
            &ws,
            "--max-jobs",
            "1",
            "-c",
            "limits.max_concurrency=2",
        ],
        &[],
    );
    let job = submit(&f, &d, &f.ws, &[]);
    wait_accepted(&d, &job, 2);

    let cancel = f.cadre_env(&["cancel", &job], &[("CADRE_SERVER", &d.url)]);
    cancel.expect_code(0);
    assert!(
        cancel.stdout.contains("cancel requested"),
        "{}",
        cancel.dump()
    );
    let log_at_cancel = f.sim.requests();
    let seq_at_cancel = log_at_cancel.iter().map(|r| r.seq).max().unwrap_or(0);

    // `cadre watch` ends with the job: exit 1 for cancelled.
    let watch = f.cadre_env(&["watch", &job], &[("CADRE_SERVER", &d.url)]);
    watch.expect_code(1);
    let report = d.report(&job);
    assert_eq!(report.status, JobStatus::Cancelled, "{report:#?}");
    for s in &report.subtasks {
        assert!(
            s.status.is_terminal(),
            "{} ended {}: {report:#?}",
            s.path,
            s.status
        );
    }
    assert!(
        report
            .subtasks
            .iter()
            .any(|s| s.status == SubtaskStatus::Cancelled),
        "{report:#?}"
    );
    // Dispatch stopped: at most the calls already in flight (two slots)
    // reached the provider after the cancel, and most files were never sent.
    let log = f.sim.requests();
    let after: Vec<&SimRequest> = log
        .iter()
        .filter(|r| r.seq > seq_at_cancel && r.role == Some(SimRole::Worker))
        .collect();
    assert!(after.len() <= 2, "{after:#?}");
    let sent: BTreeSet<&str> = log
        .iter()
        .filter_map(|r| r.subtask_path.as_deref())
        .collect();
    assert!(sent.len() < cases.len(), "{sent:?}");
    // Nothing more happens later.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(f.sim.requests().len(), log.len());
}

#[test]
fn sigterm_exits_cleanly_within_the_grace_period_and_the_job_resumes_on_restart() {
    let cases = crash_cases();
    let f = Fixture::new(&ScenarioSpec::new(&cases).latency(300, 30));
    let ws = f.ws_arg();
    let flags = [
        "--allow-root",
        ws.as_str(),
        "-c",
        "limits.max_concurrency=1",
        "-c",
        "daemon.shutdown_grace_secs=5",
    ];
    let mut first = Daemon::start(&f, &flags, &[]);
    let job = submit(&f, &first, &f.ws, &[]);
    wait_accepted(&first, &job, 2);
    first.sigterm();
    // The grace period bounds the exit; the margin covers process teardown
    // on a loaded machine.
    let status = first.wait_exit(Duration::from_secs(5 + 25));
    assert_eq!(status.code(), Some(0), "{}", first.stderr());

    let (record, attempts) = with_store(&f.db, async |s: &Store| {
        let id: JobId = job.parse().unwrap();
        (
            s.get_job(id).await.unwrap().unwrap(),
            s.list_attempts(id).await.unwrap(),
        )
    });
    assert!(!record.status.is_terminal(), "{record:#?}");
    assert_eq!(
        record.lease_owner, None,
        "the lease was released on the way out"
    );
    assert!(
        attempts
            .iter()
            .any(|a| a.outcome == cadre_types::AttemptOutcome::Interrupted),
        "the in-flight call was recorded as interrupted: {attempts:#?}"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome != cadre_types::AttemptOutcome::Running),
        "{attempts:#?}"
    );

    let second = Daemon::start(&f, &flags, &[]);
    let report = second.wait_terminal(&job);
    assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
    let repeated = repeated_finished_requests(&f.sim.requests());
    assert!(repeated.is_empty(), "{repeated:?}");
    let status = f.cadre_env(
        &["status", &job, "--json"],
        &[("CADRE_SERVER", &second.url)],
    );
    status.expect_code(0);
    let shown: JobReport = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(shown, report);
    f.cadre_env(&["apply", &job], &[("CADRE_SERVER", &second.url)])
        .expect_code(0);
    for case in &cases {
        assert_eq!(
            read_file(&f.ws, &case.path),
            case.expected(),
            "{}",
            case.path
        );
    }
}

#[test]
fn the_daemon_refuses_what_it_must() {
    let f = Fixture::new(&ScenarioSpec::new(&[rename_module("app/a.py", "a")]));
    let ws = f.ws_arg();

    // A public address without a token: refused before serving.
    let refused = f.cadre(&["daemon", "--listen", "0.0.0.0:0", "--allow-root", &ws]);
    assert_ne!(refused.code, Some(0), "{}", refused.dump());
    assert!(refused.stderr.contains("CADRE_TOKEN"), "{}", refused.dump());
    assert!(refused.stdout.is_empty(), "{}", refused.dump());

    // With a token, a public address is fine, and every request needs it.
    let token = "e2e-token-0123456789";
    let d = Daemon::start(
        &f,
        &[
            "--listen",
            "0.0.0.0:0",
            "--allow-root",
            &ws,
            "-c",
            "daemon.max_body_bytes=1024",
        ],
        &[("CADRE_TOKEN", token)],
    );
    let port = d.url.rsplit(':').next().unwrap().to_owned();
    let host_port = format!("127.0.0.1:{port}");
    let url = format!("http://{host_port}");
    let auth = format!("Bearer {token}");
    let authed = [("Authorization", auth.as_str())];
    let json_authed = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];

    assert_eq!(http(&host_port, "GET", "/healthz", &[], None).status, 200);
    http(&host_port, "GET", "/v1/jobs", &[], None).expect_error(401, "unauthorized");
    http(
        &host_port,
        "GET",
        "/v1/jobs",
        &[("Authorization", "Bearer nope")],
        None,
    )
    .expect_error(401, "unauthorized");
    assert_eq!(
        http(&host_port, "GET", "/v1/jobs", &authed, None).status,
        200
    );
    let no_token = f.cadre(&["jobs", "--server", &url]);
    assert_ne!(no_token.code, Some(0));
    assert!(no_token.stderr.contains("401"), "{}", no_token.dump());
    f.cadre_env(&["jobs", "--server", &url], &[("CADRE_TOKEN", token)])
        .expect_code(0);

    // A workspace outside the allowed roots: 403, over HTTP and from the client.
    let outside = f.home.to_string_lossy().into_owned();
    let body = json!({"instruction": RENAME, "workspace": outside}).to_string();
    let message = http(
        &host_port,
        "POST",
        "/v1/jobs",
        &json_authed,
        Some(body.as_bytes()),
    )
    .expect_error(403, "forbidden");
    assert!(message.contains("outside"), "{message}");
    let submit = f.cadre_env(
        &["submit", RENAME, "--workspace", &outside, "--server", &url],
        &[("CADRE_TOKEN", token)],
    );
    assert_ne!(submit.code, Some(0));
    assert!(submit.stderr.contains("403"), "{}", submit.dump());

    // Bad bodies: 400 saying what is wrong, 413 over the limit.
    let message = http(
        &host_port,
        "POST",
        "/v1/jobs",
        &json_authed,
        Some(b"{\"instruction\":"),
    )
    .expect_error(400, "invalid_request");
    assert!(message.contains("JSON"), "{message}");
    let body = json!({"instruction": RENAME, "workspace": ws, "priority": 1, "colour": "red"});
    let message = http(
        &host_port,
        "POST",
        "/v1/jobs",
        &json_authed,
        Some(body.to_string().as_bytes()),
    )
    .expect_error(400, "invalid_request");
    assert!(message.contains("unknown field `colour`"), "{message}");
    let huge = json!({"instruction": "x".repeat(4096), "workspace": ws}).to_string();
    let message = http(
        &host_port,
        "POST",
        "/v1/jobs",
        &json_authed,
        Some(huge.as_bytes()),
    )
    .expect_error(413, "payload_too_large");
    assert!(message.contains("1024"), "{message}");
    // Nothing was queued by any of that.
    let page = http(&host_port, "GET", "/v1/jobs", &authed, None);
    assert_eq!(page.json["data"], json!([]), "{page:#?}");

    // The token never reaches the log.
    drop(d);
    let logs: String = std::fs::read_dir(f.tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("daemon-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(!logs.is_empty());
    assert!(!logs.contains(token), "the token was logged");
}
