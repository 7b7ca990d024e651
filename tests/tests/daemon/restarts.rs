//! A daemon killed or stopped mid-job: the restarted daemon on the same
//! store finishes the job without repeating a finished model call, and a
//! watcher follows it across the restart.

use std::process::Stdio;
use std::time::{Duration, Instant};

use cadre_e2e::{Fixture, ScenarioSpec, SimRole, read_file};
use cadre_store::Store;
use cadre_types::{JobId, JobReport, JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;
use serde_json::Value;

use crate::harness::{
    Daemon, PATIENCE, crash_cases, repeated_finished_requests, submit, wait_accepted, with_store,
};

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
    // Claimed by the first daemon, then once by the second. When this
    // fails, the daemons' logs say which of them lost its lease and why.
    assert_eq!(
        record.claim_count,
        2,
        "--- first daemon ---\n{}\n--- second daemon ---\n{}",
        first.stderr(),
        second.stderr()
    );
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
