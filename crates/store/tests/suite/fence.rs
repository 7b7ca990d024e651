//! Lease fences: writes made under a job's lease land only while it holds.

use std::time::{SystemTime, UNIX_EPOCH};

use cadre_store::{AttemptWrite, Error, LeaseFence, NewCall, NewEvent, Store, SubtaskUpdate};
use cadre_types::{Complexity, EventKind, JobId, JobStatus, Role, SubtaskStatus};

use super::common::{add_job, new_attempt, new_subtask, temp_store};

#[expect(clippy::unwrap_used, reason = "a fixture panics when the store fails")]
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// A queued job claimed by `owner` for a minute: its fence.
#[expect(clippy::unwrap_used, reason = "a fixture panics when the store fails")]
async fn claimed(store: &Store, owner: &str) -> LeaseFence {
    let job = add_job(store, JobStatus::Queued, 0).await;
    let record = store.claim_job(owner, 60, now()).await.unwrap().unwrap();
    assert_eq!(record.id, job);
    LeaseFence {
        job,
        owner: owner.to_owned(),
        claim: record.claim_count,
    }
}

/// Lets the job's lease run out and has `owner` claim it.
#[expect(clippy::unwrap_used, reason = "a fixture panics when the store fails")]
async fn taken_over(store: &Store, fence: &LeaseFence, owner: &str) -> LeaseFence {
    // The lease is renewed as if a minute had passed since an old claim,
    // so it is expired now.
    assert!(
        store
            .heartbeat_job(fence.job, &fence.owner, 60, now() - 61)
            .await
            .unwrap()
    );
    let record = store.claim_job(owner, 60, now()).await.unwrap().unwrap();
    assert_eq!(record.id, fence.job);
    LeaseFence {
        job: fence.job,
        owner: owner.to_owned(),
        claim: record.claim_count,
    }
}

/// A subtask's bookkeeping group: running, an attempt, its answer, an event.
fn group(job: JobId, sub: cadre_types::SubtaskId, n: u64) -> Vec<AttemptWrite> {
    let attempt = new_attempt(job, Some(sub), Role::Worker, "haiku");
    let event = |message: &str| NewEvent {
        job_id: job,
        subtask_id: Some(sub),
        kind: EventKind::Note,
        message: message.to_owned(),
        data: serde_json::json!({}),
    };
    vec![
        AttemptWrite::Transition {
            id: sub,
            from: vec![SubtaskStatus::Pending, SubtaskStatus::Running],
            to: SubtaskStatus::Accepted,
            update: SubtaskUpdate::default(),
            event: Some(event("accepted")),
        },
        AttemptWrite::StartAttempt(attempt.clone()),
        AttemptWrite::Call(NewCall {
            job_id: job,
            attempt_id: attempt.id,
            turn: 0,
            request_sha256: format!("{n:064}"),
            role: Role::Worker,
            tier: "haiku".into(),
            model: "claude-haiku".into(),
            response_json: "{}".into(),
            input_tokens: n,
            output_tokens: 1,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: 0.1,
            latency_ms: 3,
            batch: false,
        }),
        AttemptWrite::Event(event("answered")),
    ]
}

fn is_lease_lost<T: std::fmt::Debug>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::LeaseLost { .. }))
}

store_test! {
    #[tokio::test]
    async fn a_fenced_group_commits_only_while_its_lease_holds(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let fence = claimed(&store, "daemon-a").await;
        let job = fence.job;
        let subs = [
            new_subtask(job, 0, Complexity::Mechanical, "rust"),
            new_subtask(job, 1, Complexity::Mechanical, "rust"),
        ];
        store.insert_subtasks(&subs).await.unwrap();
        assert!(store.holds_lease(&fence).await.unwrap());

        // Held: the group is written.
        let first = group(job, subs[0].id, 1);
        store
            .write_fenced_attempt_groups(&[&fence], &[&first])
            .await
            .unwrap();
        let events = store.list_events(job, 0, 100).await.unwrap().len();
        assert_eq!(events, 2);

        // Another runner took the job after the lease ran out: the same
        // owner's next group is refused whole, and with it any group it was
        // batched with.
        let theirs = taken_over(&store, &fence, "daemon-b").await;
        assert!(!store.holds_lease(&fence).await.unwrap());
        let late = group(job, subs[1].id, 2);
        let refused = store.write_fenced_attempt_groups(&[&fence], &[&late]).await;
        assert!(is_lease_lost(&refused), "{refused:?}");
        let other = add_job(&store, JobStatus::Running, 0).await;
        let other_sub = new_subtask(other, 0, Complexity::Mechanical, "rust");
        store.insert_subtasks(std::slice::from_ref(&other_sub)).await.unwrap();
        let bystander = group(other, other_sub.id, 3);
        let refused = store
            .write_fenced_attempt_groups(&[&fence], &[&bystander, &late])
            .await;
        assert!(is_lease_lost(&refused), "{refused:?}");

        // Nothing of the refused groups is stored.
        assert_eq!(store.list_events(job, 0, 100).await.unwrap().len(), events);
        assert_eq!(store.list_events(other, 0, 100).await.unwrap().len(), 0);
        assert_eq!(store.list_calls(job).await.unwrap().len(), 1);
        assert_eq!(store.list_attempts(job).await.unwrap().len(), 1);
        assert_eq!(store.list_calls(other).await.unwrap().len(), 0);
        let late_sub = store.get_subtask(subs[1].id).await.unwrap().unwrap();
        assert_eq!(late_sub.status, SubtaskStatus::Pending);

        // The new owner's fence holds.
        store
            .write_fenced_attempt_groups(&[&theirs], &[&late])
            .await
            .unwrap();
        assert_eq!(store.list_calls(job).await.unwrap().len(), 2);
    }
}

store_test! {
    #[tokio::test]
    async fn a_fence_is_one_claim_not_just_its_owner(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        // The same daemon claims the job again after its lease ran out: the
        // writes of its first claim's run are refused.
        let first = claimed(&store, "daemon-a").await;
        let second = taken_over(&store, &first, "daemon-a").await;
        assert_eq!(second.claim, first.claim + 1);
        assert!(!store.holds_lease(&first).await.unwrap());
        assert!(store.holds_lease(&second).await.unwrap());

        let sub = new_subtask(second.job, 0, Complexity::Mechanical, "rust");
        store.insert_subtasks(std::slice::from_ref(&sub)).await.unwrap();
        let refused = store
            .write_fenced_attempt_groups(&[&first], &[&group(second.job, sub.id, 1)])
            .await;
        assert!(is_lease_lost(&refused), "{refused:?}");

        // A lease that ran out but that nobody claimed is still the owner's
        // (its next heartbeat renews it): its writes land.
        assert!(
            store
                .heartbeat_job(second.job, &second.owner, 60, now() - 61)
                .await
                .unwrap()
        );
        assert!(store.holds_lease(&second).await.unwrap());
        store
            .write_fenced_attempt_groups(&[&second], &[&group(second.job, sub.id, 2)])
            .await
            .unwrap();
        assert_eq!(store.list_calls(second.job).await.unwrap().len(), 1);
    }
}

store_test! {
    #[tokio::test]
    async fn job_status_and_result_are_fenced(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let fence = claimed(&store, "daemon-a").await;
        let job = fence.job;
        let sub = new_subtask(job, 0, Complexity::Mechanical, "rust");
        store.insert_subtasks(std::slice::from_ref(&sub)).await.unwrap();

        // Held: a change from the right state happens; from another state
        // it does not, and that is no lease error.
        let running = store
            .transition_job_fenced(job, &[JobStatus::Queued], JobStatus::Running, "", &fence)
            .await;
        assert!(running.unwrap());
        let stale = store
            .transition_job_fenced(job, &[JobStatus::Queued], JobStatus::Planning, "", &fence)
            .await;
        assert!(!stale.unwrap());
        let mut result = store
            .begin_fenced_result(job, Some(fence.clone()))
            .await
            .unwrap();
        result.add_diff(sub.id, "--- a\n+++ b\n".into(), 1, 0).await.unwrap();
        result.commit(5).await.unwrap();
        assert_eq!(store.get_job(job).await.unwrap().unwrap().files_changed, 1);

        // Lost: the change is refused and the status stays.
        taken_over(&store, &fence, "daemon-b").await;
        let refused = store
            .transition_job_fenced(job, &[JobStatus::Running], JobStatus::Completed, "", &fence)
            .await;
        assert!(is_lease_lost(&refused), "{refused:?}");
        let record = store.get_job(job).await.unwrap().unwrap();
        assert_eq!(record.status, JobStatus::Running);

        // And so is the result: the stored one stays as it was.
        let refused = store.begin_fenced_result(job, Some(fence.clone())).await;
        assert!(is_lease_lost(&refused), "{refused:?}");
        let record = store.get_job(job).await.unwrap().unwrap();
        assert_eq!((record.files_changed, record.wall_ms), (1, 5));
        assert!(record.patch.unwrap().contains("+++ b"));
    }
}
