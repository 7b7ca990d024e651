//! The fault suite (issue 6): the real `cadre` binary against a real
//! `cadre sim serve` that misbehaves on purpose. For every fault the job ends
//! with every subtask in a terminal state and its reason recorded, every
//! attempt's cost recorded (and equal to what its recorded calls cost), the
//! workspace and everything outside it untouched until `apply`, exit code 0
//! or 2, and no panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use cadre_e2e::{
    CmdOutput, FaultKind, FaultSpec, FileCase, Fixture, HAIKU, RENAME, ScenarioSpec, SimRequest,
    SimRequestExt, SimRole, assert_all_terminal, assert_no_panic, models_file, parse_report,
    read_file, rename_module, snapshot, subtask, write_file,
};
use cadre_types::{JobReport, JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

/// The workspace every transport/model-output fault runs on; faults target
/// `app/views.py`.
fn cases() -> Vec<FileCase> {
    vec![
        models_file(),
        rename_module("app/views.py", "show"),
        rename_module("app/service.py", "lookup"),
    ]
}

const TARGET: &str = "app/views.py";

/// Files of the fixture's temp dir outside the workspace that cadre may write
/// (the store) or the harness writes (the sim's dir, spawned output).
fn outside_snapshot(f: &Fixture) -> BTreeMap<String, Vec<u8>> {
    snapshot(f.tmp.path())
        .into_iter()
        .filter(|(k, _)| {
            !(k.starts_with("ws/")
                || k.starts_with("sim/")
                || k.starts_with("cadre.db")
                || k.starts_with("spawned-"))
        })
        .collect()
}

/// What a fault test checks before the job (`Before::take`) and after it
/// (`Before::check`): the generic invariants of issue 6.
struct Before {
    ws: BTreeMap<String, Vec<u8>>,
    outside: BTreeMap<String, Vec<u8>>,
    canary_dir: tempfile::TempDir,
    canary: BTreeMap<String, Vec<u8>>,
}

impl Before {
    fn take(f: &Fixture) -> Before {
        let canary_dir = tempfile::Builder::new()
            .prefix("cadre-e2e-canary-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        write_file(canary_dir.path(), "keep.py", "UserId = 1\n");
        Before {
            ws: snapshot(&f.ws),
            outside: outside_snapshot(f),
            canary: snapshot(canary_dir.path()),
            canary_dir,
        }
    }

    /// Exit 0 or 2, no panic (cadre or sim), every subtask terminal with a
    /// reason, every attempt finished with its cost equal to its recorded
    /// calls' cost, a failed attempt has a kind and a message, the report's
    /// costs add up, the workspace and everything outside it untouched.
    fn check(&self, f: &Fixture, out: &CmdOutput, report: &JobReport) {
        assert!(
            matches!(out.code, Some(0) | Some(2)),
            "exit code must be 0 or 2\n{}",
            out.dump()
        );
        assert_no_panic(out);
        assert!(
            !f.sim.stderr().contains("panicked"),
            "the simulator panicked:\n{}",
            f.sim.stderr()
        );
        assert_all_terminal(report);
        for s in &report.subtasks {
            assert!(!s.reason.trim().is_empty(), "no reason recorded: {s:#?}");
        }
        let attempts = f.attempt_costs(&report.job_id);
        for a in &attempts {
            assert_ne!(a.outcome, "running", "attempt left running: {a:#?}");
            assert!(
                (a.cost_usd - a.calls_cost_usd).abs() < 1e-9,
                "the attempt's cost differs from its recorded calls: {a:#?}"
            );
            if a.calls > 0 && a.tokens > 0 {
                assert!(a.cost_usd > 0.0, "a paid call cost nothing: {a:#?}");
            }
            if a.outcome == "failed" {
                assert!(
                    a.failure.is_some() && a.error.as_deref().is_some_and(|e| !e.is_empty()),
                    "a failed attempt lacks its reason: {a:#?}"
                );
            }
        }
        let total: f64 = attempts.iter().map(|a| a.cost_usd).sum();
        assert!(
            (report.cost.total_usd - total).abs() < 1e-9,
            "report total {} != sum of attempt costs {total}",
            report.cost.total_usd
        );
        // Per file (duplicate plan entries share a path): the report's
        // subtask costs add up to what that file's attempts cost.
        let mut by_path: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for s in &report.subtasks {
            by_path.entry(s.path.as_str()).or_default().0 += s.cost_usd;
        }
        for a in attempts.iter().filter(|a| a.role == "worker") {
            let path = a.path.as_deref().unwrap_or_default();
            by_path.entry(path).or_default().1 += a.cost_usd;
        }
        for (path, (reported, recorded)) in by_path {
            assert!(
                (reported - recorded).abs() < 1e-9,
                "{path}: report cost {reported} != its attempts' {recorded}"
            );
        }
        // Every answer the provider sent in full (and so billed) is in the ledger.
        let answered = f
            .sim
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/messages" && r.status == 200 && r.complete)
            .count();
        let recorded: usize = attempts.iter().map(|a| a.calls).sum();
        assert_eq!(
            recorded, answered,
            "calls recorded in the store vs answers the provider completed"
        );
        assert_eq!(
            snapshot(&f.ws),
            self.ws,
            "the workspace changed before apply"
        );
        assert_eq!(
            outside_snapshot(f),
            self.outside,
            "files outside the workspace changed"
        );
        assert_eq!(snapshot(self.canary_dir.path()), self.canary);
    }
}

/// Runs the job with `global` flags and checks the invariants.
fn run_checked(f: &Fixture, global: &[&str]) -> JobReport {
    let before = Before::take(f);
    let (out, report) = f.run_json(global, &[]);
    before.check(f, &out, &report);
    report
}

fn worker_log(f: &Fixture, path: &str) -> Vec<SimRequest> {
    f.sim.worker_requests_for(path)
}

/// `apply` writes exactly the accepted files, with their expected content.
fn apply_and_check(f: &Fixture, report: &JobReport) {
    f.cadre(&["apply", &report.job_id.to_string()])
        .expect_code(0);
    for case in &f.cases {
        let s = subtask(report, &case.path);
        let want = if s.status == SubtaskStatus::Accepted {
            case.expected()
        } else {
            case.original.clone()
        };
        assert_eq!(read_file(&f.ws, &case.path), want, "{}", case.path);
    }
}

/// A fault on worker requests for TARGET.
fn fault(kind: FaultKind) -> FaultSpec {
    FaultSpec::new(kind).role(SimRole::Worker).path(TARGET)
}

// ------------------------------------------------------------------ transport

#[test]
fn rate_limit_429_with_retry_after_is_waited_out() {
    let spec =
        ScenarioSpec::new(&cases()).fault(fault(FaultKind::RateLimit).times(2).retry_after_secs(1));
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let s = subtask(&report, TARGET);
    assert_eq!(
        (s.status, s.attempts),
        (SubtaskStatus::Accepted, 1),
        "{s:#?}"
    );
    let statuses: Vec<u16> = worker_log(&f, TARGET).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
    let backoff = f
        .events(&report.job_id)
        .into_iter()
        .any(|(kind, _)| kind == "backoff");
    assert!(backoff, "the pushback is recorded as an event");
    apply_and_check(&f, &report);
}

#[test]
fn overloaded_529_burst_on_every_worker_is_ridden_out() {
    let spec = ScenarioSpec::new(&cases()).fault(
        FaultSpec::new(FaultKind::Overloaded)
            .role(SimRole::Worker)
            .times(5)
            .retry_after_secs(1),
    );
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    for s in &report.subtasks {
        assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    }
    let burst = f.sim.requests().iter().filter(|r| r.status == 529).count();
    assert_eq!(burst, 5);
}

#[test]
fn server_error_500_beyond_the_retry_budget_fails_one_attempt_then_escalates() {
    // max_retries = 2: three 500s exhaust the haiku attempt; sonnet then succeeds.
    let spec = ScenarioSpec::new(&cases()).fault(fault(FaultKind::ServerError).times(3));
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let s = subtask(&report, TARGET);
    assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    let attempts: Vec<(String, String, Option<String>)> = f
        .attempt_costs(&report.job_id)
        .into_iter()
        .filter(|a| a.path.as_deref() == Some(TARGET))
        .map(|a| (a.tier, a.outcome, a.failure))
        .collect();
    assert_eq!(
        attempts,
        vec![
            (
                "haiku".into(),
                "failed".into(),
                Some("provider_error".into())
            ),
            ("sonnet".into(), "passed".into(), None),
        ]
    );
    let statuses: Vec<u16> = worker_log(&f, TARGET).iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 500, 200]);
    apply_and_check(&f, &report);
}

#[test]
fn connection_dropped_mid_body_is_retried() {
    let spec = ScenarioSpec::new(&cases()).fault(fault(FaultKind::DropConnection).times(1));
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let s = subtask(&report, TARGET);
    assert_eq!(
        (s.status, s.attempts),
        (SubtaskStatus::Accepted, 1),
        "{s:#?}"
    );
    let log = worker_log(&f, TARGET);
    assert_eq!(log.len(), 2, "{log:#?}");
    assert_eq!(log[0].fault.as_deref(), Some("drop_connection"));
    assert!(!log[0].complete);
    apply_and_check(&f, &report);
}

#[test]
fn a_response_slower_than_the_timeout_is_abandoned_and_retried() {
    let spec = ScenarioSpec::new(&cases()).fault(fault(FaultKind::Slow).times(1).delay_ms(2500));
    let f = Fixture::new(&spec);
    let before = Before::take(&f);
    let (out, report) = f.run_json(&["-c", "providers.anthropic.timeout_secs=1"], &[]);
    // The slow answer was cut off by the client: the fault fired once, and
    // (the connection being gone) the sim never logged the request; the
    // retry is the only logged worker request for the file.
    let faults: serde_json::Value = serde_json::from_str(&f.sim.get("/sim/faults")).unwrap();
    assert_eq!(faults["faults"][0]["applied"], 1, "{faults}");
    let log = worker_log(&f, TARGET);
    assert_eq!(
        log.iter()
            .map(|r| (r.status, r.complete))
            .collect::<Vec<_>>(),
        vec![(200, true)],
        "{log:#?}"
    );
    let attempts = f.attempt_costs(&report.job_id);
    let recorded: usize = attempts.iter().map(|a| a.calls).sum();
    let answered = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/messages" && r.status == 200 && r.complete)
        .count();
    assert_eq!(recorded, answered);
    assert!(matches!(out.code, Some(0) | Some(2)), "{}", out.dump());
    assert_no_panic(&out);
    assert_all_terminal(&report);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    let s = subtask(&report, TARGET);
    assert_eq!(
        (s.status, s.attempts),
        (SubtaskStatus::Accepted, 1),
        "{s:#?}"
    );
    assert_eq!(snapshot(&f.ws), before.ws);
    assert_eq!(outside_snapshot(&f), before.outside);
    apply_and_check(&f, &report);
}

#[test]
fn malformed_json_body_fails_the_attempt_with_a_reason_and_escalates() {
    let spec = ScenarioSpec::new(&cases()).fault(fault(FaultKind::MalformedJson).times(1));
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let s = subtask(&report, TARGET);
    assert_eq!(s.status, SubtaskStatus::Accepted, "{s:#?}");
    let log = worker_log(&f, TARGET);
    assert_eq!(log[0].fault.as_deref(), Some("malformed_json"));
    let first = f
        .attempt_costs(&report.job_id)
        .into_iter()
        .find(|a| a.path.as_deref() == Some(TARGET))
        .unwrap();
    // Either the client retried the request (one attempt, two requests) or
    // the attempt failed with the transport's reason and the cascade moved on.
    if s.attempts == 1 {
        assert_eq!(log.len(), 2, "{log:#?}");
    } else {
        assert_eq!(
            (first.outcome.as_str(), first.failure.as_deref()),
            ("failed", Some("provider_error")),
            "{first:#?}"
        );
        assert_eq!(
            first.calls, 0,
            "a broken body is not a recorded answer: {first:#?}"
        );
    }
    apply_and_check(&f, &report);
}

// ------------------------------------------------------------------ model output

/// A model-output fault on the first haiku answer for TARGET: that attempt
/// fails with `failure` (its call recorded and paid), sonnet fixes it.
fn model_output_fault(kind: FaultKind, failure: &str, reason_mentions: &str) {
    let spec = ScenarioSpec::new(&cases()).fault(fault(kind).model(HAIKU).times(1));
    let f = Fixture::new(&spec);
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let s = subtask(&report, TARGET);
    assert_eq!(
        (
            s.status,
            s.start_tier.as_str(),
            s.final_tier.as_str(),
            s.attempts
        ),
        (SubtaskStatus::Accepted, "haiku", "sonnet", 2),
        "{s:#?}"
    );
    let first = f
        .attempt_costs(&report.job_id)
        .into_iter()
        .find(|a| a.path.as_deref() == Some(TARGET))
        .unwrap_or_else(|| panic!("no attempt at {TARGET}"));
    assert_eq!(
        (
            first.tier.as_str(),
            first.outcome.as_str(),
            first.failure.as_deref()
        ),
        ("haiku", "failed", Some(failure)),
        "{first:#?}"
    );
    assert_eq!(
        first.calls, 1,
        "the malformed answer was paid for: {first:#?}"
    );
    assert!(first.cost_usd > 0.0, "{first:#?}");
    let error = first.error.clone().unwrap_or_default().to_lowercase();
    assert!(
        error.contains(reason_mentions),
        "the reason should mention {reason_mentions:?}: {first:#?}"
    );
    // Sonnet was told what went wrong.
    let log = worker_log(&f, TARGET);
    assert_eq!(log.last().and_then(|r| r.attempt), Some(2), "{log:#?}");
    apply_and_check(&f, &report);
}

#[test]
fn max_tokens_with_a_truncated_tool_call_is_an_attempt_failure() {
    model_output_fault(FaultKind::Truncated, "malformed_output", "max_tokens");
}

#[test]
fn tool_input_violating_the_schema_is_an_attempt_failure() {
    model_output_fault(FaultKind::Schema, "malformed_output", "edit");
}

#[test]
fn the_wrong_tool_is_an_attempt_failure() {
    model_output_fault(FaultKind::WrongTool, "no_usable_edit", "submit_plan");
}

#[test]
fn an_empty_response_is_an_attempt_failure() {
    model_output_fault(FaultKind::Empty, "no_usable_edit", "no");
}

// ------------------------------------------------------------------ hostile plans and files

#[test]
fn hostile_and_duplicate_plan_paths_are_skipped_with_reasons() {
    let outside = tempfile::Builder::new()
        .prefix("cadre-e2e-outside-")
        .tempdir()
        .unwrap();
    write_file(outside.path(), "evil.py", "SAFE = 1\n");
    let absolute = outside
        .path()
        .join("evil.py")
        .to_string_lossy()
        .into_owned();
    let pwned = "import os\nos.system('echo pwned')\n";
    let spec = ScenarioSpec::new(&cases())
        .extra_subtask("../escape.py", pwned)
        .extra_subtask(&absolute, pwned)
        .extra_subtask(".git/hooks/pre-commit", pwned)
        .extra_subtask("link/evil.py", pwned)
        // Duplicates of a planned file, literally and after normalisation.
        .planned(TARGET, "Again.")
        .planned("app/./views.py", "Again, spelled differently.");
    let f = Fixture::new(&spec);
    std::fs::create_dir_all(f.ws.join(".git/hooks")).unwrap();
    std::os::unix::fs::symlink(outside.path(), f.ws.join("link")).unwrap();
    let outside_before = snapshot(outside.path());
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let skipped: Vec<(&str, &str)> = report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Skipped)
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 6, "{skipped:#?}");
    for (rule, count) in [
        ("..", 1),
        ("absolute", 1),
        (".git", 1),
        ("symlink", 1),
        ("duplicate", 2),
    ] {
        let n = skipped.iter().filter(|(_, r)| r.contains(rule)).count();
        assert_eq!(n, count, "skips mentioning {rule:?}: {skipped:#?}");
    }
    for s in report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Skipped)
    {
        assert_eq!(s.attempts, 0, "{s:#?}");
    }
    // The planned file itself ran once, not three times.
    assert_eq!(worker_log(&f, TARGET).len(), 1);
    assert_eq!(snapshot(outside.path()), outside_before);
    apply_and_check(&f, &report);
    assert!(!f.ws.join(".git/hooks/pre-commit").exists());
    assert!(!f.ws.parent().unwrap().join("escape.py").exists());
}

#[test]
fn binary_non_utf8_and_oversize_files_are_skipped_and_never_sent() {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(b"UserId\0\0");
    let latin1 = b"# caf\xe9 UserId\nfrom app.models import UserId\n".to_vec();
    let big = format!(
        "from app.models import UserId\n{}",
        "PADDING = 'UserId'  # filler line for size\n".repeat(80)
    );
    let spec = ScenarioSpec::new(&cases())
        .extra_subtask("assets/logo.png", "not a png\n")
        .extra_subtask("app/latin1.py", "from app.models import AccountId\n")
        .extra_subtask("app/big.py", "from app.models import AccountId\n");
    let f = Fixture::with_files(
        &spec,
        &[
            ("assets/logo.png", &png),
            ("app/latin1.py", &latin1),
            ("app/big.py", big.as_bytes()),
        ],
    );
    let report = run_checked(&f, &["-c", "limits.max_file_bytes=2000"]);
    assert_eq!(report.status, JobStatus::Completed);
    for (path, reason) in [
        ("assets/logo.png", "binary"),
        ("app/latin1.py", "utf-8"),
        ("app/big.py", "larger than 2000"),
    ] {
        let s = subtask(&report, path);
        assert_eq!(s.status, SubtaskStatus::Skipped, "{s:#?}");
        assert!(
            s.reason.to_lowercase().contains(&reason.to_lowercase()),
            "{path}: reason should mention {reason:?}: {s:#?}"
        );
        assert!(
            worker_log(&f, path).is_empty(),
            "{path} was sent to a model"
        );
    }
    apply_and_check(&f, &report);
    assert_eq!(std::fs::read(f.ws.join("assets/logo.png")).unwrap(), png);
    assert_eq!(std::fs::read(f.ws.join("app/latin1.py")).unwrap(), latin1);
    assert_eq!(read_file(&f.ws, "app/big.py"), big);
}

// ------------------------------------------------------------------ the workspace moves under the job

#[test]
fn a_file_changed_or_deleted_mid_job_is_left_alone_by_apply() {
    // Serial calls, and a slow answer for TARGET: while it is in flight the
    // user edits TARGET and deletes app/service.py (already read by the plan).
    let spec = ScenarioSpec::new(&cases()).fault(fault(FaultKind::Slow).times(1).delay_ms(1500));
    let f = Fixture::new(&spec);
    let ws = f.ws_arg();
    let mut running = f.spawn(
        &[
            "-c",
            "limits.max_concurrency=1",
            "run",
            RENAME,
            "--workspace",
            &ws,
            "--json",
        ],
        &[],
    );
    f.sim.wait_for(
        "the answer before the slow call",
        Duration::from_secs(60),
        |r| r.is_worker_for("app/models.py") && r.status == 200,
    );
    // The sim logs a request when it answers, so the slow call for TARGET
    // (sent right after app/models.py's answer) is in flight now.
    assert!(!running.has_exited(), "the job ended before the slow call");
    let user_edit = format!(
        "{}# the user's edit, made mid-job\n",
        f.case(TARGET).original
    );
    write_file(&f.ws, TARGET, &user_edit);
    std::fs::remove_file(f.ws.join("app/service.py")).unwrap();
    let out = running.wait();
    assert!(matches!(out.code, Some(0) | Some(2)), "{}", out.dump());
    assert_no_panic(&out);
    let report = parse_report(&out);
    assert_all_terminal(&report);

    let applied = f.cadre(&["apply", &report.job_id.to_string(), "--json"]);
    assert_no_panic(&applied);
    applied.expect_code(3);
    let outcome: serde_json::Value = serde_json::from_str(&applied.stdout).unwrap();
    let conflicts: Vec<String> = outcome["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[0].as_str().unwrap().to_owned())
        .collect();
    let mut conflicts = conflicts;
    conflicts.sort();
    assert_eq!(
        conflicts,
        vec!["app/service.py".to_owned(), TARGET.to_owned()]
    );
    assert_eq!(
        read_file(&f.ws, TARGET),
        user_edit,
        "the user's edit is kept"
    );
    assert!(
        !f.ws.join("app/service.py").exists(),
        "a deleted file was recreated"
    );
    assert_eq!(
        read_file(&f.ws, "app/models.py"),
        f.case("app/models.py").expected()
    );
}

// ------------------------------------------------------------------ the store's disk

/// A tmpfs mount for the store, unmounted on drop. `None` when this process
/// may not mount (not root / no CAP_SYS_ADMIN): the caller skips.
struct TmpfsMount {
    dir: PathBuf,
}

impl TmpfsMount {
    fn new(under: &Path, size: &str) -> Option<TmpfsMount> {
        let dir = under.join("store-fs");
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(TmpfsMount { dir })
    }

    fn remount(&self, options: &str) -> bool {
        Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success())
    }

    fn used_bytes(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=used", "-B1"])
            .arg(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("df: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// A read-only remount of the store's filesystem is impossible while cadre
/// holds the database open for writing (the kernel answers EBUSY), so the
/// store losing its disk mid-job is exercised as the filesystem filling up
/// (tmpfs shrunk to its current use: every new block fails with ENOSPC),
/// and the read-only case at startup. Skipped when mounting is not allowed.
#[test]
fn the_store_disk_filling_up_mid_job_stops_cleanly_and_the_job_resumes() {
    // Now and then (once in three fresh-clone CI runs; never in 20 local
    // runs) the job's remaining writes still found room after the shrink and
    // it completed: the fault never took. Such a run tests nothing, so the
    // fault is injected again, up to three times; every assertion below holds
    // for the run where it took, and a cadre that ignored a full disk would
    // complete all three and fail.
    const TRIES: u32 = 3;
    let mut tries = 0;
    let (f, fs, db_arg, ws_before, out) = loop {
        tries += 1;
        let f = Fixture::new(
            &ScenarioSpec::new(&cases()).fault(fault(FaultKind::Slow).times(1).delay_ms(4000)),
        );
        let Some(fs) = TmpfsMount::new(f.tmp.path(), "64m") else {
            eprintln!("skipped: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)");
            return;
        };
        let db = fs.dir.join("cadre.db");
        let db_arg = db.to_string_lossy().into_owned();
        let ws = f.ws_arg();
        let ws_before = snapshot(&f.ws);
        let mut running = f.spawn(
            &[
                "-c",
                "limits.max_concurrency=1",
                "run",
                RENAME,
                "--workspace",
                &ws,
                "--json",
            ],
            &[("CADRE_DB", &db_arg)],
        );
        f.sim.wait_for(
            "the answer before the slow call",
            Duration::from_secs(60),
            |r| r.is_worker_for("app/models.py") && r.status == 200,
        );
        // The sim logs a request when it answers, so the slow call for TARGET
        // (sent right after app/models.py's answer) is in flight now.
        assert!(!running.has_exited(), "the job ended before the slow call");
        // Shrink the filesystem to what it holds now (retrying if it grew meanwhile).
        let mut full = false;
        for _ in 0..50 {
            if fs.remount(&format!("size={}", fs.used_bytes().max(4096))) {
                full = true;
                break;
            }
        }
        assert!(full, "could not shrink the tmpfs");
        let out = running.wait();
        assert_no_panic(&out);
        if out.code == Some(0) && tries < TRIES {
            eprintln!("try {tries}: the job's writes still found room; injecting the fault again");
            continue;
        }
        break (f, fs, db_arg, ws_before, out);
    };
    assert_ne!(
        out.code,
        Some(0),
        "a full store cannot complete the job ({tries} tries)\n{}",
        out.dump()
    );
    assert!(
        out.stderr.to_lowercase().contains("full") || out.stderr.contains("No space"),
        "the error should say the disk is full\n{}",
        out.dump()
    );
    assert_eq!(snapshot(&f.ws), ws_before, "the workspace changed");

    // Space comes back: the job resumes and completes with nothing lost.
    assert!(fs.remount("size=64m"));
    let jobs = f.cadre_env(&["jobs", "--json"], &[("CADRE_DB", &db_arg)]);
    jobs.expect_code(0);
    let job = serde_json::from_str::<serde_json::Value>(&jobs.stdout).unwrap()[0]["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let resumed = f.cadre_env(&["resume", &job, "--json"], &[("CADRE_DB", &db_arg)]);
    assert_no_panic(&resumed);
    let report = parse_report(&resumed);
    assert_all_terminal(&report);
    assert_eq!(report.status, JobStatus::Completed, "{}", resumed.dump());
    assert_eq!(snapshot(&f.ws), ws_before);
}

#[test]
fn a_read_only_store_is_a_clear_error_not_a_panic() {
    let f = Fixture::new(&ScenarioSpec::new(&cases()));
    let Some(fs) = TmpfsMount::new(f.tmp.path(), "16m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN)");
        return;
    };
    let db = fs.dir.join("cadre.db");
    let db_arg = db.to_string_lossy().into_owned();
    // A store that exists (schema applied), then the disk goes read-only.
    f.cadre_env(&["jobs"], &[("CADRE_DB", &db_arg)])
        .expect_code(0);
    assert!(fs.remount("ro"), "remounting read-only failed");
    let ws_before = snapshot(&f.ws);
    let out = f.cadre_env(
        &["run", RENAME, "--workspace", &f.ws_arg(), "--json"],
        &[("CADRE_DB", &db_arg)],
    );
    assert_no_panic(&out);
    assert_eq!(out.code, Some(1), "{}", out.dump());
    // Depending on whether the WAL index survived the last close, SQLite
    // refuses at open ("unable to open database file": it cannot create the
    // WAL index; cadre adds "opening the store at PATH") or at the first write
    // ("attempt to write a readonly database").
    assert!(
        out.stderr.contains("unable to open database file")
            || out.stderr.contains("attempt to write a readonly database"),
        "the error should say the store cannot be written\n{}",
        out.dump()
    );
    assert!(
        f.sim
            .requests()
            .iter()
            .all(|r| r.role != Some(SimRole::Worker)),
        "no model was asked to work without a store"
    );
    assert_eq!(snapshot(&f.ws), ws_before);
}
