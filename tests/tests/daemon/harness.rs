//! The daemon as a child process ([`Daemon`]) and the helpers the tests
//! share: many workspaces submitted at once and the wait for the queue to
//! drain, submitting through `cadre submit`, waiting for acceptances,
//! reading the store, and the crash-test workspace.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cadre_e2e::{
    FileCase, Fixture, HAIKU, RENAME, SimRequest, models_file, rename_module, write_file,
};
use cadre_store::Store;
use cadre_types::{EventKind, JobId, JobReport, JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use crate::http::{Reply, http};

/// How long the tests wait for anything before failing.
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

/// A `cadre daemon` child process; killed on drop.
pub(crate) struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    pub(crate) host_port: String,
    stderr_log: PathBuf,
}

impl Daemon {
    /// Starts `cadre daemon ARGS` (on `127.0.0.1:0` unless ARGS has
    /// `--listen`) and waits for its `cadre daemon listening on URL` line.
    pub(crate) fn start(f: &Fixture, args: &[&str], env: &[(&str, &str)]) -> Daemon {
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

    pub(crate) fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// SIGKILL: no chance to clean up.
    pub(crate) fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    pub(crate) fn sigterm(&self) {
        self.signal("TERM");
    }

    /// Sends `kill -NAME` (`STOP`, `CONT`, `TERM`) to the daemon.
    pub(crate) fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit (panics after `limit`).
    pub(crate) fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
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

    pub(crate) fn get(&self, path: &str) -> Reply {
        http(&self.host_port, "GET", path, &[], None)
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> Reply {
        http(
            &self.host_port,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Some(body.to_string().as_bytes()),
        )
    }

    /// `GET /v1/jobs/{job}` as a report (panics unless 200).
    pub(crate) fn report(&self, job: &str) -> JobReport {
        let reply = self.get(&format!("/v1/jobs/{job}"));
        assert_eq!(reply.status, 200, "{reply:#?}\n{}", self.stderr());
        serde_json::from_value(reply.json).unwrap()
    }

    /// Waits until the job is terminal; returns its report.
    pub(crate) fn wait_terminal(&self, job: &str) -> JobReport {
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

/// `cadre submit RENAME --workspace WS ARGS` against the daemon; returns the job id.
pub(crate) fn submit(f: &Fixture, d: &Daemon, ws: &Path, args: &[&str]) -> String {
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
pub(crate) fn accepted(report: &JobReport) -> BTreeSet<String> {
    report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Accepted)
        .map(|s| s.path.clone())
        .collect()
}

/// Polls until the job has at least `n` accepted subtasks; returns them.
pub(crate) fn wait_accepted(d: &Daemon, job: &str, n: usize) -> BTreeSet<String> {
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
pub(crate) fn repeated_finished_requests(log: &[SimRequest]) -> Vec<(String, Vec<u64>)> {
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
pub(crate) fn with_store<T>(db: &Path, f: impl AsyncFnOnce(&Store) -> T) -> T {
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
pub(crate) fn end_seq(db: &Path, job: &str) -> i64 {
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
pub(crate) fn crash_cases() -> Vec<FileCase> {
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

/// One workspace per entry of `files` under `<tmp>/root/ws-NNN`, each
/// holding its own files; returns the root (for `--allow-root`) and the
/// workspaces in order.
pub(crate) fn workspaces(f: &Fixture, files: &[Vec<FileCase>]) -> (String, Vec<PathBuf>) {
    let root = f.tmp.path().join("root");
    let workspaces = files
        .iter()
        .enumerate()
        .map(|(i, cases)| {
            let ws = root.join(format!("ws-{i:03}"));
            for case in cases {
                write_file(&ws, &case.path, &case.original);
            }
            ws
        })
        .collect();
    (root.to_string_lossy().into_owned(), workspaces)
}

/// Submits one job per workspace over `POST /v1/jobs` from `clients`
/// concurrent clients (each over its own connections), job `i` to daemon
/// `i % daemons.len()`. Returns `(workspace index, job id)` of every job.
pub(crate) fn submit_concurrently(
    daemons: &[Daemon],
    workspaces: &[PathBuf],
    clients: usize,
) -> Vec<(usize, JobId)> {
    let per_client = workspaces.len().div_ceil(clients.max(1));
    let ids: Vec<(usize, JobId)> = std::thread::scope(|scope| {
        #[expect(
            clippy::needless_collect,
            reason = "every client must be started before any is joined"
        )]
        let handles: Vec<_> = workspaces
            .chunks(per_client.max(1))
            .enumerate()
            .map(|(client, chunk)| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .map(|(k, ws)| {
                            let i = client * per_client + k;
                            let d = &daemons[i % daemons.len()];
                            let body = json!({"instruction": RENAME, "workspace": ws});
                            let reply = d.post("/v1/jobs", &body);
                            assert_eq!(reply.status, 201, "{reply:#?}");
                            let id = reply.json["job_id"].as_str().unwrap().parse().unwrap();
                            (i, id)
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
    assert_eq!(ids.len(), workspaces.len());
    ids
}

/// Waits until the daemon lists `jobs` jobs, all terminal (panics after
/// `patience`, with the stderr of every daemon).
pub(crate) fn wait_drained(daemons: &[Daemon], jobs: usize, patience: Duration) {
    let started = Instant::now();
    loop {
        let page = daemons[0].get("/v1/jobs?limit=200");
        assert_eq!(page.status, 200, "{page:#?}");
        let rows = page.json["data"].as_array().unwrap();
        assert_eq!(rows.len(), jobs);
        let finished = rows.iter().all(|r| {
            r["status"]
                .as_str()
                .and_then(|s| s.parse::<JobStatus>().ok())
                .is_some_and(|s| s.is_terminal())
        });
        if finished {
            return;
        }
        assert!(
            started.elapsed() < patience,
            "the queue did not drain\n{}",
            daemons
                .iter()
                .map(Daemon::stderr)
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
