//! Where the change goes and what survives a crash: committing to a git
//! branch, and resuming a SIGKILLed run without repeating finished model calls.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use cadre_e2e::{
    FaultKind, FaultSpec, FileCase, Fixture, HAIKU, RENAME, ScenarioSpec, SimRequestExt, SimRole,
    assert_all_terminal, git, models_file, parse_report, read_file, rename_module,
};
use cadre_types::{JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

#[test]
fn branch_apply_commits_to_a_new_branch_and_leaves_the_working_tree_alone() {
    let cases = vec![
        models_file(),
        rename_module("app/views.py", "show"),
        rename_module("app/service.py", "lookup"),
    ];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    git(&f.ws, &f.home, &["init", "--quiet"]);
    git(&f.ws, &f.home, &["add", "-A"]);
    git(&f.ws, &f.home, &["commit", "--quiet", "-m", "initial"]);
    let head = git(&f.ws, &f.home, &["rev-parse", "HEAD"]);

    let (out, report) = f.run_json(&[], &["--branch", "cadre/rename"]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    assert_all_terminal(&report);

    // The user's checkout is as it was.
    assert_eq!(
        git(&f.ws, &f.home, &["status", "--porcelain"]),
        "",
        "the working tree changed"
    );
    assert_eq!(
        git(&f.ws, &f.home, &["rev-parse", "--abbrev-ref", "HEAD"]).trim(),
        "main"
    );
    assert_eq!(git(&f.ws, &f.home, &["rev-parse", "HEAD"]), head);
    for case in &cases {
        assert_eq!(
            read_file(&f.ws, &case.path),
            case.original,
            "{} changed in the working tree",
            case.path
        );
    }
    // One commit on top of HEAD holding exactly the change.
    assert_eq!(git(&f.ws, &f.home, &["rev-parse", "cadre/rename^"]), head);
    for case in &cases {
        let committed = git(
            &f.ws,
            &f.home,
            &["show", &format!("cadre/rename:{}", case.path)],
        );
        assert_eq!(committed, case.expected(), "{} on the branch", case.path);
    }
    let changed = git(
        &f.ws,
        &f.home,
        &["diff", "--name-only", "HEAD", "cadre/rename"],
    );
    assert_eq!(changed, "app/models.py\napp/service.py\napp/views.py\n");
    let subject = git(
        &f.ws,
        &f.home,
        &["log", "-1", "--format=%s%n%b", "cadre/rename"],
    );
    assert!(subject.starts_with("cadre: "), "{subject}");
    assert!(
        subject.contains(&report.job_id.to_string()),
        "the commit names the job: {subject}"
    );
    // The temporary worktree is gone.
    assert_eq!(
        git(&f.ws, &f.home, &["worktree", "list", "--porcelain"])
            .matches("worktree ")
            .count(),
        1
    );
    // A second apply to the same branch is refused, not silently merged.
    let again = f.cadre(&[
        "apply",
        &report.job_id.to_string(),
        "--branch",
        "cadre/rename",
    ]);
    assert_ne!(again.code, Some(0), "{}", again.dump());
}

fn crash_cases() -> Vec<FileCase> {
    let mut cases = vec![models_file()];
    for i in 1..=7 {
        cases.push(rename_module(
            &format!("app/mod{i}.py"),
            &format!("handler_{i}"),
        ));
    }
    // One escalation, so the resumed cascade has history to respect.
    cases[5] = cases[5].clone().script(HAIKU, &["syntax"]);
    cases
}

/// Accepted subtask paths of a job, via `cadre show --json` (None before the plan exists).
fn accepted(f: &Fixture, job: &str) -> Option<BTreeSet<String>> {
    let out = f.cadre(&["show", job, "--json"]);
    if out.code != Some(0) {
        return None;
    }
    let report: cadre_types::JobReport = serde_json::from_str(&out.stdout).ok()?;
    Some(
        report
            .subtasks
            .iter()
            .filter(|s| s.status == SubtaskStatus::Accepted)
            .map(|s| s.path.clone())
            .collect(),
    )
}

#[test]
fn a_killed_run_resumes_without_repeating_finished_model_calls() {
    let spec = ScenarioSpec::new(&crash_cases()).latency(300, 30);
    // One call in flight at a time makes the kill point exact: right after a
    // subtask is accepted, the next call has just been sent and needs >= 300 ms.
    let serial = ["-c", "limits.max_concurrency=1"];

    // The reference: the same scenario, uninterrupted.
    let reference = Fixture::new(&spec);
    let (out, reference_report) = reference.run_json(&serial, &[]);
    out.expect_code(0);
    let reference_diff = reference.diff(&reference_report.job_id);
    assert_eq!(reference_report.files_changed, 8);

    let f = Fixture::new(&spec);
    let ws = f.ws_arg();
    let mut args: Vec<&str> = serial.to_vec();
    args.extend(["run", RENAME, "--workspace", &ws]);
    let mut cmd = f.command(&args, &[]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();

    let started = Instant::now();
    let mut job = None;
    let done_before_kill = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never got far enough to be killed"
        );
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "cadre run finished ({status}) before it could be killed; the scenario is too fast"
            );
        }
        if job.is_none() {
            let jobs = f.cadre(&["jobs", "--json"]);
            job = serde_json::from_str::<serde_json::Value>(&jobs.stdout)
                .ok()
                .and_then(|v| {
                    v.get(0)
                        .and_then(|j| j["job_id"].as_str().map(str::to_owned))
                });
        }
        if let Some(job) = &job
            && let Some(done) = accepted(&f, job)
            && done.len() >= 3
        {
            child.kill().unwrap();
            child.wait().unwrap();
            break done;
        }
        std::thread::sleep(Duration::from_millis(15));
    };
    let job = job.unwrap();
    let log_at_kill = f.sim.requests();
    let finished_workers = log_at_kill
        .iter()
        .filter(|r| r.is_finished_worker_call())
        .count();
    assert!(finished_workers >= 3, "{log_at_kill:#?}");
    let last_seq_at_kill = log_at_kill.iter().map(|r| r.seq).max().unwrap_or(0);

    let listed = f.newest_job();
    assert_eq!(listed["job_id"], job.as_str());
    let status = listed["status"].as_str().unwrap_or_default().to_owned();
    assert!(
        !["completed", "needs_human", "failed", "cancelled"].contains(&status.as_str()),
        "killed job is {status}"
    );

    let resumed = f.cadre(&["resume", &job, "--json"]);
    resumed.expect_code(0);
    let report = parse_report(&resumed);
    assert_eq!(report.status, JobStatus::Completed, "{}", resumed.dump());
    assert_all_terminal(&report);
    assert!(
        report
            .subtasks
            .iter()
            .all(|s| s.status == SubtaskStatus::Accepted),
        "{report:#?}"
    );
    assert_eq!(
        f.diff(&report.job_id),
        reference_diff,
        "the resumed job's patch differs from an uninterrupted run's"
    );

    // No finished model call was made twice: each request body answered in full at most once.
    let log = f.sim.requests();
    let mut answered: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for r in log.iter().filter(|r| r.status == 200 && r.complete) {
        answered
            .entry(r.body_sha256.as_str())
            .or_default()
            .push(r.seq);
    }
    let repeated: Vec<(&&str, &Vec<u64>)> =
        answered.iter().filter(|(_, seqs)| seqs.len() > 1).collect();
    assert!(
        repeated.is_empty(),
        "finished calls were repeated after resume: {repeated:?}\n{log:#?}"
    );
    // Files accepted before the crash were not touched again, and the plan was not redone.
    for r in log.iter().filter(|r| r.seq > last_seq_at_kill) {
        if let Some(path) = &r.subtask_path {
            assert!(
                !done_before_kill.contains(path),
                "{path} was accepted before the crash but redone: {r:#?}"
            );
        }
        assert_ne!(
            r.role,
            Some(SimRole::Planner),
            "the plan was requested again: {r:#?}"
        );
    }

    f.cadre(&["apply", &job]).expect_code(0);
    for case in crash_cases() {
        assert_eq!(read_file(&f.ws, &case.path), case.expected());
    }
}

#[test]
fn a_run_killed_while_planning_is_planned_again_on_resume() {
    let cases = vec![models_file(), rename_module("app/mod1.py", "handler_1")];
    // The first planner call takes 4 s: long enough to kill the run mid-plan.
    let slow_plan = FaultSpec::new(FaultKind::Slow)
        .role(SimRole::Planner)
        .times(1)
        .delay_ms(4000);
    let f = Fixture::new(&ScenarioSpec::new(&cases).fault(slow_plan));
    let ws = f.ws_arg();
    let mut cmd = f.command(&["run", RENAME, "--workspace", &ws], &[]);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    let job = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the job never showed up as planning"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "cadre run finished before it could be killed mid-plan"
        );
        let listed = f.cadre(&["jobs", "--json"]);
        let planning = serde_json::from_str::<serde_json::Value>(&listed.stdout)
            .ok()
            .and_then(|v| {
                let j = v.get(0)?;
                (j["status"] == "planning").then(|| j["job_id"].as_str().map(str::to_owned))?
            });
        if let Some(job) = planning {
            break job;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The planner call is in flight (it takes 4 s): kill the run.
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(f.newest_job()["status"], "planning", "killed mid-plan");

    let resumed = f.cadre(&["resume", &job, "--json"]);
    resumed.expect_code(0);
    let report = parse_report(&resumed);
    assert_eq!(report.status, JobStatus::Completed, "{}", resumed.dump());
    assert_all_terminal(&report);
    for case in &cases {
        assert_eq!(
            read_file(&f.ws, &case.path),
            case.original,
            "{}: resume without --apply leaves the workspace alone",
            case.path
        );
    }
    assert!(
        report
            .subtasks
            .iter()
            .all(|s| s.status == SubtaskStatus::Accepted),
        "{report:#?}"
    );
    let planners_answered = f
        .sim
        .requests()
        .iter()
        .filter(|r| r.role == Some(SimRole::Planner) && r.status == 200 && r.complete)
        .count();
    assert_eq!(planners_answered, 1, "the plan was made once, on resume");
}
