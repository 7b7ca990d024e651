//! Several daemons on one PostgreSQL store: they share the queue (each job
//! runs and completes exactly once, no finished model call is sent twice),
//! the files of one large job (each daemon runs a share, each in its own
//! checkout of a git job, and the job ends well under one daemon's time)
//! and the provider's rate limit (kept to within 10%, nothing lost); a
//! daemon killed mid-job is replaced by another once its lease expires, one
//! frozen past its lease finds it taken and writes nothing more, and the
//! files of a killed or frozen helper go back to the job's owner.
//! Skipped, with the reason printed, when PostgreSQL is unreachable (unless
//! `CI=true`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use cadre_e2e::{
    FileCase, Fixture, RENAME, ScenarioSpec, SimRequest, SimRequestExt, bare_remote, rename_module,
};
use cadre_store::scratch::ScratchPostgres;
use cadre_store::{Store, StoreLocation};
use cadre_types::{AttemptOutcome, EventKind, JobEvent, JobId, JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

use crate::harness::{
    Daemon, PATIENCE, crash_cases, repeated_finished_requests, submit_concurrently, wait_accepted,
    wait_drained, workspaces,
};

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

/// Daemon flags for the takeover tests: workspaces under `root`, one call
/// at a time (so a stop lands mid-job) and two-second leases.
fn one_call_short_lease(root: &str) -> [&str; 6] {
    [
        "--allow-root",
        root,
        "-c",
        "limits.max_concurrency=1",
        "-c",
        "daemon.lease_secs=2",
    ]
}

/// Polls until a daemon holds `job`'s lease; returns its name.
fn wait_lease_owner(url: &str, job: JobId) -> String {
    let started = Instant::now();
    loop {
        let record = with_pg_store(url, async |s: &Store| {
            s.get_job(job).await.unwrap().unwrap()
        });
        if let Some(name) = record.lease_owner {
            return name;
        }
        assert!(started.elapsed() < PATIENCE, "never claimed: {record:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
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
    let one_each: Vec<Vec<FileCase>> = cases.iter().map(|c| vec![c.clone()]).collect();
    let (root_arg, workspaces) = workspaces(&f, &one_each);
    let env = [("CADRE_DB", pg.url())];
    let flags = ["--allow-root", root_arg.as_str(), "--max-jobs", "4"];
    let daemons: Vec<Daemon> = (0..3).map(|_| Daemon::start(&f, &flags, &env)).collect();

    // Six clients at once, each submitting ten jobs to the daemons in turn;
    // every daemon lists every job (one shared store).
    let started = Instant::now();
    let ids = submit_concurrently(&daemons, &workspaces, 6);
    wait_drained(&daemons[2..], 60, PATIENCE * 2);
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
    let flags = one_call_short_lease(ws.as_str());
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

#[test]
fn three_daemons_share_a_rate_limit_and_keep_to_it_losing_nothing() {
    let Some(pg) = scratch("three daemons against one rate limit") else {
        return;
    };
    // Fifty workspaces of twenty files: about 1150 requests, the first 600
    // let through at once (the bucket starts full), the rest at 600/min:
    // more than the cluster could send in the time the limit allows, even
    // on a loaded machine.
    let files: Vec<FileCase> = (0..20)
        .map(|i| rename_module(&format!("app/m{i:02}.py"), &format!("handler_{i}")))
        .collect();
    let f = Fixture::new(
        &ScenarioSpec::new(&files)
            .latency(20, 10)
            .requests_per_minute(RATE_PER_MINUTE),
    );
    let (root_arg, workspaces) = workspaces(&f, &vec![files.clone(); 50]);
    let env = [("CADRE_DB", pg.url())];
    let flags = [
        "--allow-root",
        root_arg.as_str(),
        "--max-jobs",
        "4",
        "-c",
        "limits.max_concurrency=16",
        // 48 callers share 10 requests a second: a call can be refused more
        // than the default 8 times in a row, and a review that gives up
        // fails its job (a known gap: the shared pause does not reset a
        // waiting call's retry schedule).
        "-c",
        "providers.anthropic.overload_max_retries=40",
    ];
    let daemons: Vec<Daemon> = (0..3).map(|_| Daemon::start(&f, &flags, &env)).collect();
    let started = Instant::now();
    let ids = submit_concurrently(&daemons, &workspaces, 4);
    wait_drained(&daemons, ids.len(), PATIENCE * 2);
    eprintln!(
        "{} jobs of {} files on 3 daemons at {RATE_PER_MINUTE}/min: all finished after {} ms",
        ids.len(),
        files.len(),
        started.elapsed().as_millis()
    );

    // Nothing lost: each job completed once, each file accepted once.
    let jobs: Vec<JobId> = ids.iter().map(|(_, id)| *id).collect();
    let events = events_of(pg.url(), &jobs);
    for (i, id) in &ids {
        let report = daemons[0].report(&id.to_string());
        assert_eq!(report.status, JobStatus::Completed, "job {i}: {report:#?}");
        assert_eq!(report.files_changed as usize, files.len(), "job {i}");
        let (accepted, endings) = acceptances_and_endings(&events[id]);
        assert_eq!(endings, 1, "job {i} ended once");
        assert_eq!(accepted.len(), files.len(), "job {i}: {accepted:?}");
        assert!(accepted.values().all(|n| *n == 1), "job {i}: {accepted:?}");
    }

    // The rate: from the first refusal (the bucket is empty from then on)
    // to the last (demand still exceeded the limit), the answered requests
    // came at the limit, within 10%.
    let log: Vec<SimRequest> = f
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path == "/v1/messages")
        .collect();
    let limited: Vec<u64> = log
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.at_ms)
        .collect();
    let (Some(first), Some(last)) = (limited.first(), limited.last()) else {
        panic!(
            "the cluster never reached the limit: {} requests",
            log.len()
        );
    };
    let window_ms = last - first;
    assert!(
        window_ms >= 10_000,
        "the limit held for only {window_ms} ms; the workload is too small to measure a rate"
    );
    let answered = log
        .iter()
        .filter(|r| r.status == 200 && (*first..=*last).contains(&r.at_ms))
        .count();
    let per_minute = answered as f64 * 60_000.0 / window_ms as f64;
    eprintln!(
        "{answered} answers in {window_ms} ms at the limit: {per_minute:.0}/min; \
         {} requests refused (429) of {}",
        limited.len(),
        log.len()
    );
    let target = f64::from(RATE_PER_MINUTE);
    assert!(
        (per_minute - target).abs() <= target * 0.1,
        "{per_minute:.0}/min is not within 10% of {target}/min"
    );
    // The refusals paused the tier for every daemon through the store.
    let pauses = with_pg_store(pg.url(), async |s: &Store| s.tier_pauses(0).await.unwrap());
    assert!(!pauses.is_empty(), "no pause was shared");
    drop(daemons);
    block_on(pg.drop_now()).unwrap();
}

/// The simulator's limit in the rate-limit test.
const RATE_PER_MINUTE: u32 = 600;

/// Some attempts were interrupted (a stopped daemon's calls in flight), and
/// none of them got an answer in the ledger after `calls_at` nor an event
/// naming it after `events_at`: the thawed daemon wrote nothing for them.
fn assert_nothing_written_for_interrupted(
    attempts: &[cadre_store::AttemptRecord],
    calls: &[cadre_store::CallRecord],
    events: &[JobEvent],
    calls_at: i64,
    events_at: i64,
) {
    let interrupted: Vec<String> = attempts
        .iter()
        .filter(|a| a.outcome == AttemptOutcome::Interrupted)
        .map(|a| a.id.to_string())
        .collect();
    assert!(
        !interrupted.is_empty(),
        "the stop landed between calls: {attempts:#?}"
    );
    for attempt in &interrupted {
        assert!(
            !calls
                .iter()
                .any(|c| c.seq > calls_at && c.attempt_id.to_string() == *attempt),
            "an answer was recorded for {attempt} after the thaw"
        );
        let late: Vec<&JobEvent> = events
            .iter()
            .filter(|e| e.seq > events_at && e.data.to_string().contains(attempt.as_str()))
            .collect();
        assert!(late.is_empty(), "written after the thaw: {late:#?}");
    }
}

#[test]
fn a_daemon_frozen_past_its_lease_finds_it_taken_and_writes_nothing_more() {
    let Some(pg) = scratch("a frozen daemon on PostgreSQL") else {
        return;
    };
    let cases = crash_cases();
    let f = Fixture::new(&ScenarioSpec::new(&cases).latency(300, 30));
    let ws = f.ws_arg();
    let env = [("CADRE_DB", pg.url())];
    let flags = one_call_short_lease(ws.as_str());
    let frozen = Daemon::start(&f, &flags, &env);
    let job = crate::harness::submit(&f, &frozen, &f.ws, &[]);
    let other = Daemon::start(&f, &flags, &env);
    wait_accepted(&frozen, &job, 2);
    frozen.signal("STOP");
    let id: JobId = job.parse().unwrap();
    // The other daemon takes the job once the lease expires.
    let taken_at = Instant::now();
    loop {
        let record = with_pg_store(pg.url(), async |s: &Store| {
            s.get_job(id).await.unwrap().unwrap()
        });
        if record.claim_count == 2 {
            break;
        }
        assert!(
            taken_at.elapsed() < PATIENCE,
            "never taken over: {record:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Thaw the frozen daemon while the other still runs the job.
    std::thread::sleep(Duration::from_millis(500));
    let seq_at_thaw = events_of(pg.url(), &[id])[&id].last().map_or(0, |e| e.seq);
    let calls_at_thaw = with_pg_store(pg.url(), async |s: &Store| {
        s.list_calls(id).await.unwrap().iter().map(|c| c.seq).max()
    })
    .unwrap_or(0);
    frozen.signal("CONT");

    let report = other.wait_terminal(&job);
    assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
    assert_eq!(crate::harness::accepted(&report).len(), cases.len());
    let thawed = frozen.stderr();
    assert!(thawed.contains("lost the lease on the job"), "{thawed}");
    // Each subtask accepted once, the job ended once, taken over once.
    let events = &events_of(pg.url(), &[id])[&id];
    let (acceptances, endings) = acceptances_and_endings(events);
    assert_eq!(endings, 1);
    assert!(acceptances.values().all(|n| *n == 1), "{acceptances:?}");
    let (record, attempts, calls) = with_pg_store(pg.url(), async |s: &Store| {
        (
            s.get_job(id).await.unwrap().unwrap(),
            s.list_attempts(id).await.unwrap(),
            s.list_calls(id).await.unwrap(),
        )
    });
    assert_eq!(record.claim_count, 2, "{record:#?}");
    // The frozen daemon's calls in flight were marked interrupted by the
    // daemon that took over; thawed, it wrote nothing for them: they are
    // still interrupted, no answer of theirs entered the ledger after the
    // thaw, and no event after the thaw names them.
    assert_nothing_written_for_interrupted(&attempts, &calls, events, calls_at_thaw, seq_at_thaw);
    drop((frozen, other));
    block_on(pg.drop_now()).unwrap();
}

/// Runs `job` of `files` on `daemons` (on `url`), submitted to the first;
/// returns its wall time and how many of its files each daemon ran.
fn run_shared_job(
    f: &Fixture,
    daemons: &[Daemon],
    url: &str,
    ws: &std::path::Path,
    files: usize,
) -> (Duration, JobId, BTreeMap<String, u64>) {
    let started = Instant::now();
    let job = crate::harness::submit(f, &daemons[0], ws, &["--file-check", "sleep 0.2"]);
    let report = daemons[0].wait_terminal(&job);
    let wall = started.elapsed();
    assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
    assert_eq!(report.files_changed as usize, files, "{report:#?}");
    let id: JobId = job.parse().unwrap();
    let by_claimer = with_pg_store(url, async |s: &Store| {
        s.subtasks_by_claimer(id).await.unwrap()
    });
    (wall, id, by_claimer)
}

#[test]
fn three_daemons_share_the_files_of_one_large_job() {
    let Some(alone) = scratch("one daemon on a 300-file job") else {
        return;
    };
    let Some(shared) = scratch("three daemons on a 300-file job") else {
        return;
    };
    // 300 files, each with a 200 ms per-file check; two calls in flight
    // per daemon (four files), so the checks, not the machine, set the pace.
    let files: Vec<FileCase> = (0..300)
        .map(|i| rename_module(&format!("app/m{i:03}.py"), &format!("handler_{i}")))
        .collect();
    let f = Fixture::new(&ScenarioSpec::new(&files).latency(20, 10));
    let (root_arg, ws) = workspaces(&f, &[files.clone(), files.clone()]);
    let flags = [
        "--allow-root",
        root_arg.as_str(),
        "-c",
        "limits.max_concurrency=2",
    ];

    let one = Daemon::start(&f, &flags, &[("CADRE_DB", alone.url())]);
    let (wall_alone, _, by_claimer) = run_shared_job(&f, &[one], alone.url(), &ws[0], files.len());
    assert_eq!(by_claimer.values().sum::<u64>(), 300, "{by_claimer:?}");
    assert_eq!(by_claimer.len(), 1, "{by_claimer:?}");

    let answered_before = f.sim.requests().len();
    let env = [("CADRE_DB", shared.url())];
    let daemons: Vec<Daemon> = (0..3).map(|_| Daemon::start(&f, &flags, &env)).collect();
    let (wall_shared, id, by_claimer) =
        run_shared_job(&f, &daemons, shared.url(), &ws[1], files.len());
    eprintln!(
        "300 files with a 200 ms check: one daemon {} ms, three daemons {} ms ({:.2}x); files run per daemon: {by_claimer:?}",
        wall_alone.as_millis(),
        wall_shared.as_millis(),
        wall_alone.as_secs_f64() / wall_shared.as_secs_f64()
    );
    // Every daemon ran a share of the files (at least 20% each).
    assert_eq!(by_claimer.values().sum::<u64>(), 300, "{by_claimer:?}");
    assert_eq!(by_claimer.len(), 3, "{by_claimer:?}");
    assert!(by_claimer.values().all(|n| *n >= 60), "{by_claimer:?}");
    assert!(
        wall_shared.as_secs_f64() < wall_alone.as_secs_f64() * 0.7,
        "three daemons took {wall_shared:?}, one took {wall_alone:?}"
    );
    // Each file accepted once, the job ended once, and no answered request
    // was sent twice.
    let events = &events_of(shared.url(), &[id])[&id];
    let (acceptances, endings) = acceptances_and_endings(events);
    assert_eq!(endings, 1);
    assert_eq!(acceptances.len(), 300);
    assert!(acceptances.values().all(|n| *n == 1), "{acceptances:?}");
    let repeats = repeated_finished_requests(&f.sim.requests()[answered_before..]);
    assert!(repeats.is_empty(), "answered twice: {repeats:?}");
    drop(daemons);
    block_on(alone.drop_now()).unwrap();
    block_on(shared.drop_now()).unwrap();
}

/// Polls until `job` has a daemon not in `known` running its files
/// (claimed at least `n`); returns that daemon's name.
fn wait_new_claimer(url: &str, job: JobId, known: &[String], n: u64) -> String {
    let started = Instant::now();
    loop {
        let by = with_pg_store(url, async |s: &Store| {
            s.subtasks_by_claimer(job).await.unwrap()
        });
        if let Some((name, _)) = by
            .iter()
            .find(|(name, count)| !known.contains(name) && **count >= n)
        {
            return name.clone();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no new daemon took files: {by:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn files_of_a_killed_or_frozen_helper_go_back_to_the_owner_and_nothing_is_written_twice_for_them() {
    let Some(pg) = scratch("helpers killed and frozen mid-job") else {
        return;
    };
    let files: Vec<FileCase> = (0..60)
        .map(|i| rename_module(&format!("app/h{i:02}.py"), &format!("handler_{i}")))
        .collect();
    let f = Fixture::new(&ScenarioSpec::new(&files).latency(100, 20));
    let (root_arg, ws) = workspaces(&f, std::slice::from_ref(&files));
    let env = [("CADRE_DB", pg.url())];
    let flags = one_call_short_lease(root_arg.as_str());
    // The owner claims the job; two helpers join and take files of it.
    let owner = Daemon::start(&f, &flags, &env);
    let job = crate::harness::submit(&f, &owner, &ws[0], &["--file-check", "sleep 0.5"]);
    let id: JobId = job.parse().unwrap();
    let owner_name = wait_lease_owner(pg.url(), id);
    let mut killed = Daemon::start(&f, &flags, &env);
    let killed_name = wait_new_claimer(pg.url(), id, std::slice::from_ref(&owner_name), 2);
    let frozen = Daemon::start(&f, &flags, &env);
    let frozen_name = wait_new_claimer(pg.url(), id, &[owner_name.clone(), killed_name.clone()], 2);
    killed.kill9();
    frozen.signal("STOP");

    // The owner gives both helpers' running files back once their claims
    // expire (a file given back loses its claimer, so each helper's count
    // drops; stopped, neither can claim more), and runs them.
    let claimed_by = |name: &str| {
        let by = with_pg_store(pg.url(), async |s: &Store| {
            s.subtasks_by_claimer(id).await.unwrap()
        });
        by.get(name).copied().unwrap_or(0)
    };
    let at_stop = (claimed_by(&killed_name), claimed_by(&frozen_name));
    let stopped_at = Instant::now();
    while claimed_by(&killed_name) == at_stop.0 || claimed_by(&frozen_name) == at_stop.1 {
        assert!(
            stopped_at.elapsed() < PATIENCE,
            "the helpers' files were never given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let notes = events_of(pg.url(), &[id])[&id]
        .iter()
        .filter(|e| e.kind == EventKind::Note && e.message.contains("stopped renewing its claims"))
        .count();
    assert!(
        notes > 0,
        "the owner said nothing about the files it took back"
    );
    let seq_at_thaw = events_of(pg.url(), &[id])[&id].last().map_or(0, |e| e.seq);
    let calls_at_thaw = with_pg_store(pg.url(), async |s: &Store| {
        s.list_calls(id).await.unwrap().iter().map(|c| c.seq).max()
    })
    .unwrap_or(0);
    frozen.signal("CONT");

    let report = owner.wait_terminal(&job);
    assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
    assert_eq!(crate::harness::accepted(&report).len(), files.len());
    let events = &events_of(pg.url(), &[id])[&id];
    let (acceptances, endings) = acceptances_and_endings(events);
    assert_eq!(endings, 1);
    assert_eq!(acceptances.len(), files.len());
    assert!(acceptances.values().all(|n| *n == 1), "{acceptances:?}");
    // An answer a helper received but never recorded (the kernel took it
    // while the helper was frozen or just before the kill) is lost with
    // it, and its file's call is sent again by the owner: at most one such
    // call per helper (one call in flight each), and only for a file the
    // owner took back from them. Every other answered request went out once.
    let taken_back: BTreeSet<String> = events
        .iter()
        .filter(|e| e.kind == EventKind::Note && e.message.contains("stopped renewing its claims"))
        .flat_map(|e| e.data["subtasks"].as_array().cloned().unwrap_or_default())
        .filter_map(|id| id.as_str().map(str::to_owned))
        .filter_map(|id| {
            report
                .subtasks
                .iter()
                .find(|s| s.subtask_id.to_string() == id)
                .map(|s| s.path.clone())
        })
        .collect();
    let log = f.sim.requests();
    let repeats = repeated_finished_requests(&log);
    assert!(repeats.len() <= 2, "answered twice: {repeats:?}");
    for (_, seqs) in &repeats {
        let first = log.iter().find(|r| r.seq == seqs[0]).unwrap();
        let path = first.subtask_path.clone().unwrap_or_default();
        assert!(
            taken_back.contains(&path),
            "answered twice for a file no helper lost ({taken_back:?}): {first:?}"
        );
    }
    // The helpers' files in flight were interrupted; the thawed helper
    // recorded no answer and no event for them.
    let (attempts, calls) = with_pg_store(pg.url(), async |s: &Store| {
        (
            s.list_attempts(id).await.unwrap(),
            s.list_calls(id).await.unwrap(),
        )
    });
    assert_nothing_written_for_interrupted(&attempts, &calls, events, calls_at_thaw, seq_at_thaw);
    let by = with_pg_store(pg.url(), async |s: &Store| {
        s.subtasks_by_claimer(id).await.unwrap()
    });
    eprintln!(
        "files run per daemon after the kill and the freeze: {by:?} (owner {owner_name}, killed {killed_name}, frozen {frozen_name})"
    );
    assert_eq!(by.values().sum::<u64>(), files.len() as u64, "{by:?}");
    drop((owner, frozen));
    block_on(pg.drop_now()).unwrap();
}

#[test]
fn daemons_run_the_files_of_a_git_job_in_their_own_checkouts() {
    let Some(pg) = scratch("a git job shared by two daemons") else {
        return;
    };
    let files: Vec<FileCase> = (0..40)
        .map(|i| rename_module(&format!("app/g{i:02}.py"), &format!("handler_{i}")))
        .collect();
    let f = Fixture::new(&ScenarioSpec::new(&files).latency(20, 10));
    let (remotes, url, base) = bare_remote(&f);
    // Each daemon has its own clone cache; the per-file check notes where
    // it ran.
    let checks_log = f.tmp.path().join("checks.log");
    let check = format!("pwd >> {}; sleep 0.2", checks_log.display());
    let env = [("CADRE_DB", pg.url())];
    let remotes_arg = remotes.to_string_lossy().into_owned();
    let daemons: Vec<Daemon> = (0..2)
        .map(|n| {
            let checkouts = format!(
                "daemon.checkouts_dir={}",
                f.tmp.path().join(format!("checkouts-{n}")).display()
            );
            let flags = [
                "--allow-root",
                remotes_arg.as_str(),
                "-c",
                &checkouts,
                "-c",
                "limits.max_concurrency=2",
            ];
            Daemon::start(&f, &flags, &env)
        })
        .collect();
    let server = [("CADRE_SERVER", daemons[0].url.as_str())];
    let out = f.cadre_env(
        &[
            "submit",
            RENAME,
            "--repo",
            &url,
            "--rev",
            &base,
            "--file-check",
            &check,
        ],
        &server,
    );
    out.expect_code(0);
    let job = out.stdout.trim().to_owned();
    let report = daemons[0].wait_terminal(&job);
    assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
    assert_eq!(report.files_changed as usize, files.len(), "{report:#?}");
    let id: JobId = job.parse().unwrap();
    let by = with_pg_store(pg.url(), async |s: &Store| {
        s.subtasks_by_claimer(id).await.unwrap()
    });
    assert_eq!(by.len(), 2, "both daemons ran files: {by:?}");
    // Every check ran in a daemon's own worktree of the job, both daemons'
    // worktrees were used, and none ran in the submitter's tree.
    let log = std::fs::read_to_string(&checks_log).unwrap();
    let mut used = BTreeSet::new();
    for dir in log.lines() {
        let n = (0..2)
            .find(|n| {
                dir.starts_with(
                    f.tmp
                        .path()
                        .join(format!("checkouts-{n}"))
                        .to_string_lossy()
                        .as_ref(),
                )
            })
            .unwrap_or_else(|| panic!("a check ran outside the daemons' checkouts: {dir}"));
        used.insert(n);
    }
    assert_eq!(used.len(), 2, "{log}");
    drop(daemons);
    block_on(pg.drop_now()).unwrap();
}

#[test]
fn the_owner_continues_the_cascade_a_stopped_helper_began() {
    let Some(pg) = scratch("a helper stopped mid-cascade") else {
        return;
    };
    // The helper takes the last file first: it fails at haiku and escalates.
    let mut files: Vec<FileCase> = (0..10)
        .map(|i| rename_module(&format!("app/a{i}.py"), &format!("handler_{i}")))
        .collect();
    let escalating = rename_module("app/zz.py", "zz").script(cadre_e2e::HAIKU, &["syntax"]);
    files.push(escalating.clone());
    let f = Fixture::new(&ScenarioSpec::new(&files).latency(300, 10));
    let (root_arg, ws) = workspaces(&f, std::slice::from_ref(&files));
    let env = [("CADRE_DB", pg.url())];
    let flags = one_call_short_lease(root_arg.as_str());
    let owner = Daemon::start(&f, &flags, &env);
    let job = crate::harness::submit(&f, &owner, &ws[0], &[]);
    let id: JobId = job.parse().unwrap();
    wait_lease_owner(pg.url(), id);
    let helper = Daemon::start(&f, &flags, &env);
    // Once the helper's haiku call for the file is answered (and fails
    // validation), its sonnet call goes out; the helper is stopped during it.
    let started = Instant::now();
    while !f.sim.requests().iter().any(|r| {
        r.is_worker_for(&escalating.path) && r.model.as_deref() == Some("claude-haiku-4-5")
    }) {
        assert!(
            started.elapsed() < PATIENCE,
            "the helper never ran {}",
            escalating.path
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(150));
    helper.sigterm();

    let report = owner.wait_terminal(&job);
    assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
    let file = report
        .subtasks
        .iter()
        .find(|s| s.path == escalating.path)
        .unwrap();
    assert_eq!(file.status, SubtaskStatus::Accepted, "{file:#?}");
    // The owner went on from the helper's failed haiku attempt: no request
    // was answered twice and haiku saw the file once.
    let log = f.sim.requests();
    let repeats = repeated_finished_requests(&log);
    assert!(repeats.is_empty(), "answered twice: {repeats:?}");
    let haiku = log
        .iter()
        .filter(|r| {
            r.is_worker_for(&escalating.path)
                && r.model.as_deref() == Some("claude-haiku-4-5")
                && r.status == 200
                && r.complete
        })
        .count();
    assert_eq!(haiku, 1, "{log:#?}");
    drop((owner, helper));
    block_on(pg.drop_now()).unwrap();
}
