//! The job queue: a hundred concurrent submissions, a small job behind a
//! huge one, and cancelling a running job.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use cadre_e2e::{
    FileCase, Fixture, ScenarioSpec, SimRequest, SimRole, read_file, rename_module, write_file,
};
use cadre_store::Store;
use cadre_types::{EventKind, JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;
use serde_json::json;

use crate::harness::{
    Daemon, PATIENCE, end_seq, submit, submit_concurrently, wait_accepted, wait_drained,
    with_store, workspaces,
};

#[test]
fn a_hundred_concurrent_submissions_all_complete_correctly() {
    let case = rename_module("app/svc.py", "lookup");
    let f = Fixture::new(&ScenarioSpec::new(std::slice::from_ref(&case)).latency(0, 0));
    let (root_arg, workspaces) = workspaces(&f, &vec![vec![case.clone()]; 100]);
    let d = Daemon::start(&f, &["--allow-root", &root_arg, "--max-jobs", "8"], &[]);

    let started = Instant::now();
    // Twenty clients at once, five submissions each, over separate connections.
    let ids = submit_concurrently(std::slice::from_ref(&d), &workspaces, 20);
    let submitted = started.elapsed();
    wait_drained(std::slice::from_ref(&d), 100, PATIENCE * 2);
    let all_done = started.elapsed();
    eprintln!(
        "100 jobs: submitted in {} ms, all finished after {} ms",
        submitted.as_millis(),
        all_done.as_millis()
    );

    let mut diffs = BTreeSet::new();
    for (i, id) in &ids {
        let ws = &workspaces[*i];
        let id = &id.to_string();
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
