//! The job queue: claims, leases, heartbeats, crash recovery, concurrent claimers.

use std::collections::HashSet;

use cadre_types::{JobId, JobStatus};
use tokio::task::JoinSet;

use super::common::{add_job, temp_store};

const NOW: i64 = 1_000_000;

store_test! {
    #[tokio::test]
    async fn claim_takes_highest_priority_then_oldest(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let low = add_job(&store, JobStatus::Queued, 0).await;
        let high_old = add_job(&store, JobStatus::Queued, 5).await;
        let high_new = add_job(&store, JobStatus::Queued, 5).await;

        let mut order = Vec::new();
        while let Some(job) = store.claim_job("runner-a", 60, NOW).await.unwrap() {
            assert_eq!(job.lease_owner.as_deref(), Some("runner-a"));
            assert_eq!(job.lease_expires_at, Some(NOW + 60));
            assert_eq!(job.claim_count, 1);
            assert_eq!(
                job.status,
                JobStatus::Queued,
                "claiming leaves the status to the caller"
            );
            order.push(job.id);
        }
        assert_eq!(order, vec![high_old, high_new, low]);

        let stored = store.get_job(low).await.unwrap().unwrap();
        assert_eq!(stored.lease_owner.as_deref(), Some("runner-a"));
    }
}

store_test! {
    #[tokio::test]
    async fn claim_never_takes_foreground_or_finished_jobs(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        // A `cadre run` job works without a lease; a finished job is done.
        add_job(&store, JobStatus::Running, 9).await;
        add_job(&store, JobStatus::Completed, 9).await;
        add_job(&store, JobStatus::Cancelled, 9).await;
        assert_eq!(store.claim_job("daemon", 60, NOW).await.unwrap(), None);
        assert_eq!(
            store
                .claim_job("daemon", 60, NOW + 1_000_000)
                .await
                .unwrap(),
            None
        );
    }
}

store_test! {
    #[tokio::test]
    async fn expired_lease_is_reclaimed_and_the_old_owner_loses_it(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let id = add_job(&store, JobStatus::Queued, 0).await;

        let a = store.claim_job("a", 30, NOW).await.unwrap().unwrap();
        assert_eq!(a.id, id);
        assert!(
            store
                .transition_job(id, &[JobStatus::Queued], JobStatus::Running, "started")
                .await
                .unwrap()
        );

        // Held: nobody else gets it.
        assert_eq!(store.claim_job("b", 30, NOW + 10).await.unwrap(), None);
        // Heartbeat extends to NOW + 20 + 30.
        assert!(store.heartbeat_job(id, "a", 30, NOW + 20).await.unwrap());
        assert_eq!(store.claim_job("b", 30, NOW + 49).await.unwrap(), None);
        // A stranger cannot heartbeat it.
        assert!(!store.heartbeat_job(id, "b", 30, NOW + 49).await.unwrap());

        // Expired: b takes it over, in its working state, for crash recovery.
        let b = store.claim_job("b", 30, NOW + 50).await.unwrap().unwrap();
        assert_eq!(b.id, id);
        assert_eq!(b.status, JobStatus::Running);
        assert_eq!(b.lease_owner.as_deref(), Some("b"));
        assert_eq!(b.lease_expires_at, Some(NOW + 80));
        assert_eq!(b.claim_count, 2);

        // a finds out it lost the job; b keeps it.
        assert!(!store.heartbeat_job(id, "a", 30, NOW + 51).await.unwrap());
        assert!(store.heartbeat_job(id, "b", 30, NOW + 51).await.unwrap());
        // a's release is a no-op.
        store.release_job(id, "a").await.unwrap();
        let held = store.get_job(id).await.unwrap().unwrap();
        assert_eq!(held.lease_owner.as_deref(), Some("b"));
        assert_eq!(held.lease_expires_at, Some(NOW + 81));
    }
}

store_test! {
    #[tokio::test]
    async fn released_jobs_are_claimable_unless_finished(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let id = add_job(&store, JobStatus::Queued, 0).await;

        store.claim_job("a", 300, NOW).await.unwrap().unwrap();
        store
            .transition_job(id, &[JobStatus::Queued], JobStatus::Planning, "planning")
            .await
            .unwrap();
        // Shutting down mid-job: release, and another runner resumes it at once.
        store.release_job(id, "a").await.unwrap();
        let released = store.get_job(id).await.unwrap().unwrap();
        assert_eq!(
            (released.lease_owner, released.lease_expires_at),
            (None, None)
        );
        assert!(!store.heartbeat_job(id, "a", 300, NOW).await.unwrap());

        let b = store.claim_job("b", 300, NOW + 1).await.unwrap().unwrap();
        assert_eq!((b.id, b.status), (id, JobStatus::Planning));

        // Finished and released: never claimed again.
        store
            .transition_job(id, &[JobStatus::Planning], JobStatus::Completed, "done")
            .await
            .unwrap();
        store.release_job(id, "b").await.unwrap();
        assert_eq!(store.claim_job("c", 300, NOW + 2).await.unwrap(), None);
    }
}

store_test! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_claimers_claim_every_job_exactly_once(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let mut ids = HashSet::new();
        for i in 0..20 {
            ids.insert(add_job(&store, JobStatus::Queued, i % 3).await);
        }

        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
        let mut claimers = JoinSet::new();
        for n in 0..8 {
            let store = store.clone();
            let barrier = barrier.clone();
            claimers.spawn(async move {
                barrier.wait().await;
                let owner = format!("runner-{n}");
                let mut mine = Vec::new();
                while let Some(job) = store.claim_job(&owner, 600, NOW).await.unwrap() {
                    assert_eq!(job.lease_owner.as_deref(), Some(owner.as_str()));
                    mine.push(job.id);
                }
                (owner, mine)
            });
        }

        let mut claimed: Vec<JobId> = Vec::new();
        while let Some(result) = claimers.join_next().await {
            let (owner, mine) = result.unwrap();
            for id in &mine {
                let job = store.get_job(*id).await.unwrap().unwrap();
                assert_eq!(job.lease_owner.as_deref(), Some(owner.as_str()));
                assert_eq!(job.claim_count, 1);
            }
            claimed.extend(mine);
        }
        assert_eq!(claimed.len(), 20, "every job claimed once, none twice");
        let unique: HashSet<JobId> = claimed.into_iter().collect();
        assert_eq!(unique, ids);
    }
}
