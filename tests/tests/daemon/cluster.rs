//! Several daemons on one PostgreSQL store: they share the queue (each job
//! runs and completes exactly once, no finished model call is sent twice),
//! and a daemon killed mid-job is replaced by another once its lease expires.
//! Skipped, with the reason printed, when PostgreSQL is unreachable (unless
//! `CI=true`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cadre_e2e::{FileCase, Fixture, RENAME, ScenarioSpec, rename_module, write_file};
use cadre_store::scratch::ScratchPostgres;
use cadre_store::{Store, StoreLocation};
use cadre_types::{EventKind, JobEvent, JobId, JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;
use serde_json::json;

use crate::harness::{Daemon, PATIENCE, crash_cases, repeated_finished_requests, wait_accepted};
use crate::http::http;

/// A scratch schema on the test server, or `None` (skip).
fn scratch(what: &str) -> Option<ScratchPostgres> {
    block_on(ScratchPostgres::create_or_skip(what)).unwrap()
}

fn block_on<T>(f: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The store at `url`, read directly.
fn with_pg_store<T>(url: &str, f: impl AsyncFnOnce(&Store) -> T) -> T {
    block_on(async {
        let store = Store::connect(&StoreLocation::parse(url)).await.unwrap();
        let out = f(&store).await;
        store.close().await;
        out
    })
}

/// Every event of each job.
fn events_of(url: &str, jobs: &[JobId]) -> BTreeMap<JobId, Vec<JobEvent>> {
    with_pg_store(url, async |s: &Store| {
        let mut out = BTreeMap::new();
        for job in jobs {
            out.insert(*job, s.list_events(*job, 0, 100_000).await.unwrap());
        }
        out
    })
}

/// How many times each of the job's subtasks was moved to `accepted`, by
/// subtask id, and how many terminal job-status events the job has.
fn acceptances_and_endings(events: &[JobEvent]) -> (BTreeMap<String, usize>, usize) {
    let mut accepted = BTreeMap::new();
    let mut endings = 0;
    for e in events {
        let status = e.data["status"].as_str().unwrap_or_default();
        match e.kind {
            EventKind::SubtaskStatus if status == SubtaskStatus::Accepted.as_str() => {
                let id = e.subtask_id.map(|s| s.to_string()).unwrap_or_default();
                *accepted.entry(id).or_insert(0) += 1;
            }
            EventKind::JobStatus if status.parse::<JobStatus>().is_ok_and(|s| s.is_terminal()) => {
                endings += 1;
            }
            _ => {}
        }
    }
    (accepted, endings)
}

#[test]
fn three_daemons_share_one_postgres_queue_and_run_every_job_once() {
    let Some(pg) = scratch("three daemons on one PostgreSQL") else {
        return;
    };
    // Sixty workspaces, one file each; the scenario knows every file, so
    // each job's requests differ and a request answered twice is a repeat.
    let cases: Vec<FileCase> = (0..60)
        .map(|i| rename_module(&format!("app/svc{i:02}.py"), &format!("lookup_{i}")))
        .collect();
    let f = Fixture::new(&ScenarioSpec::new(&cases).latency(20, 10));
    let root = f.tmp.path().join("root");
    let workspaces: Vec<PathBuf> = cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let ws = root.join(format!("ws-{i:02}"));
            write_file(&ws, &case.path, &case.original);
            ws
        })
        .collect();
    let root_arg = root.to_string_lossy().into_owned();
    let env = [("CADRE_DB", pg.url())];
    let flags = ["--allow-root", root_arg.as_str(), "--max-jobs", "4"];
    let daemons: Vec<Daemon> = (0..3).map(|_| Daemon::start(&f, &flags, &env)).collect();

    // Six clients at once, each submitting ten jobs to the daemons in turn.
    let started = Instant::now();
    let ids: Vec<(usize, JobId)> = std::thread::scope(|scope| {
        #[expect(
            clippy::needless_collect,
            reason = "every client must be started before any is joined"
        )]
        let handles: Vec<_> = (0..6)
            .map(|client| {
                let daemons = &daemons;
                let workspaces = &workspaces;
                scope.spawn(move || {
                    (0..10)
                        .map(|k| {
                            let i = client * 10 + k;
                            let d = &daemons[i % daemons.len()];
                            let body = json!({"instruction": RENAME, "workspace": workspaces[i]});
                            let reply = http(
                                &d.host_port,
                                "POST",
                                "/v1/jobs",
                                &[("Content-Type", "application/json")],
                                Some(body.to_string().as_bytes()),
                            );
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
    assert_eq!(ids.len(), 60);

    // Every daemon lists every job (one shared store); wait for all to end.
    loop {
        let page = daemons[2].get("/v1/jobs?limit=200");
        assert_eq!(page.status, 200, "{page:#?}");
        let rows = page.json["data"].as_array().unwrap();
        assert_eq!(rows.len(), 60);
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
            daemons
                .iter()
                .map(Daemon::stderr)
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "60 jobs on 3 daemons: all finished after {} ms",
        started.elapsed().as_millis()
    );

    let jobs: Vec<JobId> = ids.iter().map(|(_, id)| *id).collect();
    let events = events_of(pg.url(), &jobs);
    for (i, id) in &ids {
        let report = daemons[0].report(&id.to_string());
        assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
        assert_eq!(report.files_changed, 1, "job {i}");
        let (accepted, endings) = acceptances_and_endings(&events[id]);
        assert_eq!(endings, 1, "job {i} ended once: {:#?}", events[id]);
        assert_eq!(accepted.len(), 1, "job {i}: its one file: {accepted:?}");
        assert!(
            accepted.values().all(|n| *n == 1),
            "job {i}: each subtask accepted exactly once: {accepted:?}"
        );
    }
    let claims = with_pg_store(pg.url(), async |s: &Store| {
        let mut claims = Vec::new();
        for id in &jobs {
            claims.push(s.get_job(*id).await.unwrap().unwrap().claim_count);
        }
        claims
    });
    assert!(
        claims.iter().all(|c| *c == 1),
        "claimed once each: {claims:?}"
    );
    // The work was shared: each daemon claimed some of the jobs.
    let claimed_by: Vec<usize> = daemons
        .iter()
        .map(|d| d.stderr().matches("claimed job").count())
        .collect();
    assert_eq!(claimed_by.iter().sum::<usize>(), 60, "{claimed_by:?}");
    assert!(claimed_by.iter().all(|n| *n > 0), "{claimed_by:?}");
    let repeats = repeated_finished_requests(&f.sim.requests());
    assert!(repeats.is_empty(), "answered twice: {repeats:?}");
    drop(daemons);
    block_on(pg.drop_now()).unwrap();
}

#[test]
fn a_daemon_killed_mid_job_is_replaced_by_another_after_its_lease() {
    let Some(pg) = scratch("a killed daemon on PostgreSQL") else {
        return;
    };
    let cases = crash_cases();
    let f = Fixture::new(&ScenarioSpec::new(&cases).latency(300, 30));
    let ws = f.ws_arg();
    let env = [("CADRE_DB", pg.url())];
    // One call at a time, so the kill lands mid-job; short leases.
    let flags = [
        "--allow-root",
        ws.as_str(),
        "-c",
        "limits.max_concurrency=1",
        "-c",
        "daemon.lease_secs=2",
    ];
    let mut first = Daemon::start(&f, &flags, &env);
    let job = crate::harness::submit(&f, &first, &f.ws, &[]);
    // The second daemon is up before the kill; the job is the first's.
    let second = Daemon::start(&f, &flags, &env);
    let done_before_kill = wait_accepted(&first, &job, 3);
    first.kill9();
    let id: JobId = job.parse().unwrap();
    let record = with_pg_store(pg.url(), async |s: &Store| {
        s.get_job(id).await.unwrap().unwrap()
    });
    assert!(!record.status.is_terminal(), "{record:#?}");
    assert_eq!(record.claim_count, 1, "{record:#?}");

    let report = second.wait_terminal(&job);
    assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
    let accepted: BTreeSet<String> = crate::harness::accepted(&report);
    assert!(accepted.is_superset(&done_before_kill));
    assert_eq!(accepted.len(), cases.len(), "{report:#?}");
    let record = with_pg_store(pg.url(), async |s: &Store| {
        s.get_job(id).await.unwrap().unwrap()
    });
    assert_eq!(record.claim_count, 2, "taken over once: {record:#?}");
    assert_eq!(record.lease_owner, None);
    assert!(
        second.stderr().contains("claimed job"),
        "{}",
        second.stderr()
    );
    let events = events_of(pg.url(), &[id]);
    let (acceptances, endings) = acceptances_and_endings(&events[&id]);
    assert_eq!(endings, 1);
    assert!(
        acceptances.values().all(|n| *n == 1),
        "each subtask accepted exactly once: {acceptances:?}"
    );
    let repeats = repeated_finished_requests(&f.sim.requests());
    assert!(repeats.is_empty(), "answered twice: {repeats:?}");
    drop(second);
    block_on(pg.drop_now()).unwrap();
}
