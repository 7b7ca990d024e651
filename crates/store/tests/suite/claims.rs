//! Subtask claims: each pending subtask goes to one daemon, writes for a
//! claimed subtask land only while the claim holds, and an expired claim is
//! given back with its running attempts interrupted.

use std::time::Duration;

use cadre_store::{AttemptWrite, ClaimFence, Error, NewEvent, SubtaskUpdate};
use cadre_types::{AttemptOutcome, Complexity, EventKind, JobStatus, Role, SubtaskStatus};

use super::common::{add_job, add_subtasks, new_attempt, new_subtask, temp_store};

store_test! {
    #[tokio::test]
    async fn each_pending_subtask_is_claimed_by_one_daemon(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let subs = add_subtasks(&store, job, 6).await;
        // One file was left for the budget: nobody claims it.
        let left = SubtaskUpdate {
            reason: Some("not started: budget".into()),
            ..SubtaskUpdate::default()
        };
        let pending = [SubtaskStatus::Pending];
        store
            .transition_subtask(subs[2].id, &pending, SubtaskStatus::Pending, &left)
            .await
            .unwrap();

        let ids: Vec<_> = subs[..2].iter().map(|s| s.id).collect();
        let sorted = |mut ids: Vec<cadre_types::SubtaskId>| {
            ids.sort_unstable();
            ids
        };
        let mine = store.claim_subtasks("a", &ids, 60).await.unwrap();
        assert_eq!(sorted(mine), sorted(ids));
        // A helper takes the last files first; the one left is skipped.
        let theirs = store
            .claim_pending_subtasks(job, "b", 2, 60, "not started")
            .await
            .unwrap();
        assert_eq!(sorted(theirs), sorted(vec![subs[5].id, subs[4].id]));
        let rest = store
            .claim_pending_subtasks(job, "c", 10, 60, "not started")
            .await
            .unwrap();
        assert_eq!(rest, vec![subs[3].id]);
        // Nothing is claimed twice.
        let all: Vec<_> = subs.iter().map(|s| s.id).collect();
        assert!(store.claim_subtasks("a", &all[3..], 60).await.unwrap().is_empty());
        assert_eq!(store.claim_counts(job, "not started").await.unwrap(), (0, 5));
        let by = store.subtasks_by_claimer(job).await.unwrap();
        assert_eq!(by.get("a"), Some(&2));
        assert_eq!(by.get("b"), Some(&2));
        assert_eq!(by.get("c"), Some(&1));
        assert_eq!(
            store.jobs_to_assist("z", "not started", 10).await.unwrap(),
            Vec::<cadre_types::JobId>::new(),
            "a job nobody holds the lease of is not assisted"
        );

        // A file given back is pending again, unclaimed, and claimable.
        assert_eq!(store.release_subtask_claims("b", &[subs[5].id]).await.unwrap(), 1);
        assert_eq!(store.release_subtask_claims("b", &[subs[3].id]).await.unwrap(), 0);
        assert_eq!(store.claim_counts(job, "not started").await.unwrap(), (1, 4));
        assert_eq!(store.renew_subtask_claims("b", &all, 60).await.unwrap(), 1);
    }
}

fn is_claim_lost<T: std::fmt::Debug>(result: &Result<T, Error>) -> bool {
    matches!(result, Err(Error::ClaimLost { .. }))
}

store_test! {
    #[tokio::test]
    async fn writes_land_only_while_the_claim_holds_and_expired_claims_are_given_back(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let subs = add_subtasks(&store, job, 3).await;
        // "a" holds a live claim on the first; "b" a claim that expires at
        // once on the second; the third runs unclaimed (a foreground run).
        store.claim_subtasks("a", &[subs[0].id], 60).await.unwrap();
        store.claim_subtasks("b", &[subs[1].id], 0).await.unwrap();
        store
            .transition_subtask(
                subs[2].id,
                &[SubtaskStatus::Pending],
                SubtaskStatus::Running,
                &SubtaskUpdate::default(),
            )
            .await
            .unwrap();
        let attempts: Vec<_> = subs
            .iter()
            .map(|s| new_attempt(job, Some(s.id), Role::Worker, "haiku"))
            .collect();
        let note = |sub| NewEvent {
            job_id: job,
            subtask_id: Some(sub),
            kind: EventKind::Note,
            message: "answered".into(),
            data: serde_json::json!({}),
        };
        for (owner, i) in [("a", 0), ("b", 1)] {
            let fence = ClaimFence {
                owner: owner.into(),
                subtasks: vec![subs[i].id],
            };
            let group = [AttemptWrite::StartAttempt(attempts[i].clone())];
            store
                .write_claimed_attempt_groups(&[], &[&fence], &[&group])
                .await
                .unwrap();
        }
        store.start_attempt(&attempts[2]).await.unwrap();
        // A claim in someone else's name does not hold.
        let wrong = ClaimFence {
            owner: "b".into(),
            subtasks: vec![subs[0].id],
        };
        let refused = store
            .write_claimed_attempt_groups(&[], &[&wrong], &[&[AttemptWrite::Event(note(subs[0].id))]])
            .await;
        assert!(is_claim_lost(&refused), "{refused:?}");

        // "b"'s claim expires: it is given back, its attempt interrupted.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(store.reset_expired_claims(job).await.unwrap(), vec![subs[1].id]);
        let given_back = store.get_subtask(subs[1].id).await.unwrap().unwrap();
        assert_eq!(given_back.status, SubtaskStatus::Pending);
        let attempt = store.get_attempt(attempts[1].id).await.unwrap().unwrap();
        assert_eq!(attempt.outcome, AttemptOutcome::Interrupted);
        // "b", thawed, writes nothing more for it.
        let late = ClaimFence {
            owner: "b".into(),
            subtasks: vec![subs[1].id],
        };
        let events_before = store.list_events(job, 0, 100).await.unwrap().len();
        let refused = store
            .write_claimed_attempt_groups(&[], &[&late], &[&[AttemptWrite::Event(note(subs[1].id))]])
            .await;
        assert!(is_claim_lost(&refused), "{refused:?}");
        assert_eq!(store.list_events(job, 0, 100).await.unwrap().len(), events_before);
        assert_eq!(store.renew_subtask_claims("b", &[subs[1].id], 60).await.unwrap(), 0);

        // A resume keeps what runs under a live claim and readies the rest.
        assert_eq!(store.release_running(job, true, "resumed").await.unwrap(), 1);
        let status = |i: usize| {
            let store = store.clone();
            let id = subs[i].id;
            async move { store.get_subtask(id).await.unwrap().unwrap().status }
        };
        assert_eq!(status(0).await, SubtaskStatus::Running);
        assert_eq!(status(2).await, SubtaskStatus::Pending);
        let live = store.get_attempt(attempts[0].id).await.unwrap().unwrap();
        assert_eq!(live.outcome, AttemptOutcome::Running);
        // Without claims (a foreground resume) nothing is kept.
        assert_eq!(store.release_running(job, false, "resumed").await.unwrap(), 1);
        assert_eq!(status(0).await, SubtaskStatus::Pending);
    }
}

store_test! {
    #[tokio::test]
    async fn idle_daemons_are_woken_when_a_running_job_has_files_to_share(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let mut wakeups = store.queue_wakeups().await.unwrap();
        if backend == cadre_store::Backend::Sqlite {
            // One machine: the daemon polls.
            assert!(!wakeups.is_live());
            return;
        }
        let job = add_job(&store, JobStatus::Planning, 0).await;
        // The channel is the database's: other tests' jobs may wake it too.
        let woken = async |wakeups: &mut cadre_store::QueueWakeups, wait: Duration| {
            let hint = async {
                while wakeups.next().await != Some(job.to_string()) {}
            };
            tokio::time::timeout(wait, hint).await.is_ok()
        };
        let long = Duration::from_secs(2);
        let sub = new_subtask(job, 0, Complexity::Mechanical, "rust");
        store.insert_subtasks(std::slice::from_ref(&sub)).await.unwrap();
        // Planned: the job runs and its files can be shared.
        store
            .transition_job(job, &[JobStatus::Planning], JobStatus::Running, "")
            .await
            .unwrap();
        assert!(woken(&mut wakeups, long).await, "no wake-up for a running job");
        // A claim wakes no one; a file given back does.
        store.claim_subtasks("a", &[sub.id], 60).await.unwrap();
        let short = Duration::from_millis(500);
        assert!(!woken(&mut wakeups, short).await, "a claim woke a daemon");
        store.release_subtask_claims("a", &[sub.id]).await.unwrap();
        assert!(woken(&mut wakeups, long).await, "no wake-up for a file given back");
    }
}
