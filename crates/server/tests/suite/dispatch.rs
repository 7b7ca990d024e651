//! The whole daemon (`cadre_server::run`) running real jobs against the
//! in-process simulator: completion, priorities, fair share, cancel, lease
//! loss, shutdown and resume.

use std::time::Duration;

use cadre_types::{AttemptOutcome, EventKind, JobId, JobStatus, Role, SubtaskStatus};
use pretty_assertions::assert_eq;
use serde_json::json;

use super::common::{Served, World, cases};

fn terminal(status: &str) -> bool {
    ["completed", "needs_human", "failed", "cancelled"].contains(&status)
}

/// The store sequence number of the event that ended `job`.
async fn end_seq(world: &World, job: &str) -> i64 {
    let events = world
        .store
        .list_events(job.parse().unwrap(), 0, 100_000)
        .await
        .unwrap();
    events
        .iter()
        .rev()
        .find(|e| e.kind == EventKind::JobStatus && e.data["status"].as_str().is_some_and(terminal))
        .map(|e| e.seq)
        .unwrap_or_else(|| panic!("job {job} has no terminal event: {events:#?}"))
}

/// Waits (bounded) until `check` holds for the job's record.
async fn wait_for(world: &World, job: &str, check: impl Fn(&cadre_store::JobRecord) -> bool) {
    let id: JobId = job.parse().unwrap();
    for _ in 0..1200 {
        let record = world.store.get_job(id).await.unwrap().unwrap();
        if check(&record) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("job {job} never reached the expected state");
}

async fn worker_attempts_started(world: &World, job: &str) -> usize {
    world
        .store
        .list_events(job.parse().unwrap(), 0, 100_000)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == EventKind::AttemptStarted)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_refuses_a_public_address_without_a_token() {
    let world = World::new().await;
    let listener = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let err = cadre_server::run(listener, world.state(world.options()), async {})
        .await
        .unwrap_err();
    assert!(matches!(err, cadre_server::Error::Bind { .. }), "{err}");
    assert!(err.to_string().contains("CADRE_TOKEN"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_job_runs_to_completion_and_streams_every_event() {
    let files = cases("app", 3);
    let world = World::new().await.with_sim(&files, 5).await;
    let ws = world.workspace("ws", &files);
    let served = Served::daemon(world.state(world.options())).await;
    let api = &served.api;

    let id = api.submit(&ws, json!({})).await;
    let events = api.events(&id, None).await;
    let last = events.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), &last.data["data"]["status"]),
        ("job_status", &json!("completed"))
    );
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == "attempt_finished")
            .count(),
        events
            .iter()
            .filter(|e| e.kind == "attempt_started")
            .count()
    );

    let report = api.get(&format!("/v1/jobs/{id}")).await.json;
    assert_eq!(report["status"], "completed");
    assert_eq!(report["files_changed"], 3);
    let diff = api.get(&format!("/v1/jobs/{id}/diff")).await;
    assert_eq!(
        diff.header("content-type").as_deref(),
        Some("text/x-diff; charset=utf-8")
    );
    assert!(
        diff.text.contains("+from app.models import AccountId"),
        "{}",
        diff.text
    );
    // The lease is given back once the runner task ends (just after the
    // terminal event, so wait for it, bounded).
    let mut record = None;
    for _ in 0..100 {
        let r = world
            .store
            .get_job(id.parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        if r.lease_owner.is_none() {
            record = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let record = record.expect("the lease was never released");
    assert_eq!((record.lease_owner, record.claim_count), (None, 1));

    let applied = api.post(&format!("/v1/jobs/{id}/apply"), "{}").await;
    assert_eq!(applied.status, 200, "{applied:#?}");
    assert_eq!(applied.json["written"].as_array().unwrap().len(), 3);
    for c in &files {
        assert_eq!(
            std::fs::read_to_string(ws.join(&c.path)).unwrap(),
            c.expected()
        );
    }
    served.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_jobs_are_claimed_first() {
    let files = cases("app", 2);
    let world = World::new().await.with_sim(&files, 150).await;
    let ws = world.workspace("ws", &files);
    let mut options = world.options();
    options.max_jobs = 1;
    let served = Served::daemon(world.state(options)).await;
    let api = &served.api;

    let first = api.submit(&ws, json!({})).await;
    wait_for(&world, &first, |j| j.lease_owner.is_some()).await;
    let low = api.submit(&ws, json!({"priority": 0})).await;
    let high = api.submit(&ws, json!({"priority": 10})).await;
    for job in [&first, &low, &high] {
        assert_eq!(api.wait_terminal(job).await["status"], "completed");
    }
    let (a, b, c) = (
        end_seq(&world, &first).await,
        end_seq(&world, &high).await,
        end_seq(&world, &low).await,
    );
    assert!(a < b && b < c, "finish order first={a} high={b} low={c}");
    served.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_job_behind_a_huge_one_finishes_first() {
    let big = cases("big", 24);
    let small = cases("small", 1);
    let all: Vec<_> = big.iter().chain(&small).cloned().collect();
    let mut world = World::new().await.with_sim(&all, 100).await;
    world.config.limits.max_concurrency = 4;
    let big_ws = world.workspace("big-ws", &big);
    let small_ws = world.workspace("small-ws", &small);
    let mut options = world.options();
    options.max_jobs = 2;
    let served = Served::daemon(world.state(options)).await;
    let api = &served.api;

    let huge = api.submit(&big_ws, json!({})).await;
    wait_for(&world, &huge, |j| j.status == JobStatus::Running).await;
    let little = api.submit(&small_ws, json!({})).await;
    assert_eq!(api.wait_terminal(&little).await["status"], "completed");
    assert_eq!(api.wait_terminal(&huge).await["status"], "completed");
    assert!(end_seq(&world, &little).await < end_seq(&world, &huge).await);
    served.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_dispatch_and_leaves_every_subtask_terminal() {
    let files = cases("app", 12);
    let mut world = World::new().await.with_sim(&files, 150).await;
    world.config.limits.max_concurrency = 2;
    let ws = world.workspace("ws", &files);
    let served = Served::daemon(world.state(world.options())).await;
    let api = &served.api;

    let id = api.submit(&ws, json!({})).await;
    let started = {
        let mut n = 0;
        for _ in 0..1200 {
            n = worker_attempts_started(&world, &id).await;
            if n >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        n
    };
    assert!(started >= 2);
    let reply = api.post(&format!("/v1/jobs/{id}/cancel"), "").await;
    assert_eq!(reply.json["cancel_requested"], true, "{reply:#?}");
    let report = api.wait_terminal(&id).await;
    assert_eq!(report["status"], "cancelled");
    let subtasks = world
        .store
        .list_subtasks(id.parse().unwrap())
        .await
        .unwrap();
    assert!(
        subtasks.iter().all(|s| s.status.is_terminal()),
        "{subtasks:#?}"
    );
    assert!(
        subtasks
            .iter()
            .any(|s| s.status == SubtaskStatus::Cancelled),
        "{subtasks:#?}"
    );
    // Dispatch stopped: far fewer attempts than files.
    let attempts = worker_attempts_started(&world, &id).await;
    assert!(attempts < files.len(), "{attempts} attempts after cancel");
    served.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_interrupts_running_jobs_and_a_restart_resumes_them() {
    let files = cases("app", 6);
    let mut world = World::new().await.with_sim(&files, 300).await;
    world.config.limits.max_concurrency = 1;
    let ws = world.workspace("ws", &files);
    let served = Served::daemon(world.state(world.options())).await;
    let id = served.api.submit(&ws, json!({})).await;
    for _ in 0..1200 {
        if worker_attempts_started(&world, &id).await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    served.stop().await.unwrap();

    let job_id: JobId = id.parse().unwrap();
    let record = world.store.get_job(job_id).await.unwrap().unwrap();
    assert!(!record.status.is_terminal(), "{record:#?}");
    assert_eq!(record.lease_owner, None, "the lease was released");
    let attempts = world.store.list_attempts(job_id).await.unwrap();
    assert!(
        attempts
            .iter()
            .any(|a| a.outcome == AttemptOutcome::Interrupted),
        "the in-flight call was recorded as interrupted: {attempts:#?}"
    );
    assert!(
        attempts
            .iter()
            .all(|a| a.outcome != AttemptOutcome::Running)
    );

    // A new daemon on the same store picks it up at once and finishes it.
    let served = Served::daemon(world.state(world.options())).await;
    let report = served.api.wait_terminal(&id).await;
    assert_eq!(report["status"], "completed", "{report:#}");
    let record = world.store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(record.claim_count, 2);
    served.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_loses_its_lease_stops_the_job() {
    let files = cases("app", 8);
    let mut world = World::new().await.with_sim(&files, 300).await;
    world.config.limits.max_concurrency = 1;
    let ws = world.workspace("ws", &files);
    let mut options = world.options();
    options.max_jobs = 1;
    options.lease_secs = 1;
    let served = Served::daemon(world.state(options)).await;
    let id = served.api.submit(&ws, json!({})).await;
    let job_id: JobId = id.parse().unwrap();
    wait_for(&world, &id, |j| j.status == JobStatus::Running).await;

    // Another runner takes the job over, as after an expired lease: its
    // claim is made a few seconds ahead, when the daemon's one-second lease
    // has run out (one statement, so the daemon cannot claim in between).
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let taken = world
        .store
        .claim_job("thief", 3600, now + 5)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.id, job_id);
    // The files the lost run holds: those running at the takeover (the
    // daemon may go on to run other files of the job as a helper of the
    // new owner, cadre_core's claims, but not these).
    let held: Vec<_> = world
        .store
        .list_subtasks_brief(job_id)
        .await
        .unwrap()
        .into_iter()
        .filter(|s| s.status == SubtaskStatus::Running)
        .map(|s| s.id)
        .collect();

    // The daemon notices (at its next heartbeat, or when a write of the run
    // finds the lease taken) and stops running the job: an attempt in
    // flight ends interrupted, none is left running. The takeover may also
    // land before the first worker attempt starts (right after planning);
    // then the fence refuses that start and no attempt is in flight.
    let mut stopped = false;
    for _ in 0..400 {
        let attempts = world.store.list_attempts(job_id).await.unwrap();
        let workers: Vec<_> = attempts.iter().filter(|a| a.role == Role::Worker).collect();
        if attempts
            .iter()
            .all(|a| a.outcome != AttemptOutcome::Running)
            && (workers.is_empty()
                || workers
                    .iter()
                    .any(|a| a.outcome == AttemptOutcome::Interrupted))
        {
            stopped = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let attempts = world.store.list_attempts(job_id).await.unwrap();
    assert!(
        stopped,
        "the daemon kept running a job it lost: {attempts:#?}"
    );
    // And it writes nothing more for what the lost run held: over more
    // than three model latencies (300 ms each, one call at a time) the
    // attempts on its files (and the planner's) keep their outcome and no
    // attempt is added for its files. (Attempts on other files may be the
    // daemon's work as a helper, started since the takeover.)
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let later = world.store.list_attempts(job_id).await.unwrap();
    for before in attempts
        .iter()
        .filter(|a| a.subtask_id.is_none_or(|s| held.contains(&s)))
    {
        let now = later.iter().find(|a| a.id == before.id).unwrap();
        assert_eq!(now.outcome, before.outcome, "{now:#?}");
    }
    for added in later
        .iter()
        .filter(|a| attempts.iter().all(|b| b.id != a.id))
    {
        assert!(
            added.subtask_id.is_some_and(|s| !held.contains(&s)),
            "the daemon wrote for a file its lost run held: {added:#?}"
        );
    }
    let record = world.store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(record.lease_owner.as_deref(), Some("thief"));
    assert!(!record.status.is_terminal());
    served.stop().await.unwrap();
    // The daemon did not release someone else's lease on the way out.
    let record = world.store.get_job(job_id).await.unwrap().unwrap();
    assert_eq!(record.lease_owner.as_deref(), Some("thief"));
}
