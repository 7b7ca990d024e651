//! Job rows: round trips, compare-and-set transitions, results, cancellation, pagination.

use cadre_store::{Error, JobRecord};
use cadre_types::{JobId, JobStatus, SubtaskId};
use serde_json::json;

use super::common::{add_job, add_subtasks, new_job, temp_store};

store_test! {
    #[tokio::test]
    async fn job_round_trips(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = new_job(JobStatus::Queued, 3);
        store.create_job(&job).await.unwrap();

        let got = store.get_job(job.id).await.unwrap().unwrap();
        assert!(got.created_at > 0);
        let expected = JobRecord {
            id: job.id,
            instruction: job.instruction.clone(),
            workspace: job.workspace.clone(),
            options: job.options.clone(),
            priority: 3,
            budget_usd: Some(2.5),
            status: JobStatus::Queued,
            reason: String::new(),
            plan: None,
            patch: None,
            files_changed: 0,
            lines_added: 0,
            lines_removed: 0,
            wall_ms: 0,
            cancel_requested: false,
            lease_owner: None,
            lease_expires_at: None,
            claim_count: 0,
            created_at: got.created_at,
            updated_at: got.created_at,
            finished_at: None,
            applied_at: None,
        };
        assert_eq!(got, expected);
        assert_eq!(store.get_job(JobId::new()).await.unwrap(), None);
    }
}

store_test! {
    #[tokio::test]
    async fn duplicate_job_id_is_rejected(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = new_job(JobStatus::Queued, 0);
        store.create_job(&job).await.unwrap();
        let err = store.create_job(&job).await.unwrap_err();
        assert!(matches!(err, Error::Database(_)), "{err}");
    }
}

store_test! {
    #[tokio::test]
    async fn job_created_terminal_is_finished(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let id = add_job(&store, JobStatus::Failed, 0).await;
        let got = store.get_job(id).await.unwrap().unwrap();
        assert_eq!(got.finished_at, Some(got.created_at));
    }
}

store_test! {
    #[tokio::test]
    async fn transition_job_is_compare_and_set(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let id = add_job(&store, JobStatus::Queued, 0).await;
        let before = store.get_job(id).await.unwrap().unwrap();

        // Wrong `from`: nothing changes.
        let changed = store
            .transition_job(
                id,
                &[JobStatus::Running, JobStatus::Planning],
                JobStatus::Reviewing,
                "nope",
            )
            .await
            .unwrap();
        assert!(!changed);
        assert_eq!(store.get_job(id).await.unwrap().unwrap(), before);

        // Empty `from` and unknown id: nothing changes either.
        assert!(
            !store
                .transition_job(id, &[], JobStatus::Planning, "x")
                .await
                .unwrap()
        );
        assert!(
            !store
                .transition_job(JobId::new(), &[JobStatus::Queued], JobStatus::Planning, "x")
                .await
                .unwrap()
        );

        // Right `from` (among several): moves, records the reason, not finished.
        assert!(
            store
                .transition_job(
                    id,
                    &[JobStatus::Failed, JobStatus::Queued],
                    JobStatus::Planning,
                    "claimed"
                )
                .await
                .unwrap()
        );
        let planning = store.get_job(id).await.unwrap().unwrap();
        assert_eq!(planning.status, JobStatus::Planning);
        assert_eq!(planning.reason, "claimed");
        assert_eq!(planning.finished_at, None);

        // The old `from` no longer matches.
        assert!(
            !store
                .transition_job(id, &[JobStatus::Queued], JobStatus::Planning, "again")
                .await
                .unwrap()
        );

        // Terminal: finished_at is set.
        assert!(
            store
                .transition_job(
                    id,
                    &[JobStatus::Planning],
                    JobStatus::NeedsHuman,
                    "budget exhausted"
                )
                .await
                .unwrap()
        );
        let stuck = store.get_job(id).await.unwrap().unwrap();
        assert_eq!(stuck.status, JobStatus::NeedsHuman);
        assert_eq!(stuck.reason, "budget exhausted");
        assert!(stuck.finished_at.is_some());

        // Resumed: no longer finished.
        assert!(
            store
                .transition_job(id, &[JobStatus::NeedsHuman], JobStatus::Running, "resumed")
                .await
                .unwrap()
        );
        assert_eq!(store.get_job(id).await.unwrap().unwrap().finished_at, None);
    }
}

store_test! {
    #[tokio::test]
    async fn plan_result_and_apply_are_stored(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let id = add_job(&store, JobStatus::Planning, 0).await;
        let plan = json!({"notes": "use tracing", "subtasks": [{"path": "src/a.rs"}]});
        store.set_job_plan(id, &plan).await.unwrap();
        let subs = add_subtasks(&store, id, 3).await;
        let diff_a = "diff --git a/a.rs b/a.rs\n@@ -1 +1 @@\n-a\n+b\n";
        let diff_c = "diff --git a/c.rs b/c.rs\n@@ -1 +1,2 @@\n-c\n+d\n+e\n";

        // A first result, then one that replaces it: the stale diff is gone.
        let mut result = store.begin_result(id).await.unwrap();
        result
            .add_diff(subs[1].id, "stale".to_owned(), 1, 0)
            .await
            .unwrap();
        result.commit(100).await.unwrap();
        assert_eq!(
            store.get_job(id).await.unwrap().unwrap().patch.as_deref(),
            Some("stale")
        );
        // A subtask of no job fails the result; the stored one stays.
        let mut result = store.begin_result(id).await.unwrap();
        result
            .add_diff(SubtaskId::new(), "x".to_owned(), 0, 0)
            .await
            .unwrap();
        assert!(matches!(
            result.commit(1).await.unwrap_err(),
            Error::NotFound {
                what: "subtask",
                ..
            }
        ));
        assert_eq!(
            store.get_job(id).await.unwrap().unwrap().patch.as_deref(),
            Some("stale")
        );
        let mut result = store.begin_result(id).await.unwrap();
        // Added out of order; the patch follows the plan order.
        result
            .add_diff(subs[2].id, diff_c.to_owned(), 2, 1)
            .await
            .unwrap();
        result
            .add_diff(subs[0].id, diff_a.to_owned(), 1, 1)
            .await
            .unwrap();
        result.commit(12_345).await.unwrap();
        store.mark_job_applied(id, 1_700_000_000).await.unwrap();

        let got = store.get_job(id).await.unwrap().unwrap();
        assert_eq!(got.plan, Some(plan));
        assert_eq!(got.patch, Some(format!("{diff_a}{diff_c}")));
        assert_eq!(
            (got.files_changed, got.lines_added, got.lines_removed),
            (2, 3, 2)
        );
        assert_eq!(got.wall_ms, 12_345);
        assert_eq!(got.applied_at, Some(1_700_000_000));

        assert_eq!(store.job_patch(id).await.unwrap(), got.patch);
        assert_eq!(store.job_patch(JobId::new()).await.unwrap(), None);
        // The brief read leaves the plan and the patch out and keeps the rest.
        let brief = store.get_job_brief(id).await.unwrap().unwrap();
        assert_eq!(
            brief,
            cadre_store::JobRecord {
                plan: None,
                patch: None,
                ..got.clone()
            }
        );
        assert_eq!(store.get_job_brief(JobId::new()).await.unwrap(), None);
        // A listing carries neither the documents nor the patch.
        let listed = store.list_jobs(None, 10).await.unwrap();
        assert_eq!(
            listed,
            vec![cadre_store::JobRecord {
                plan: None,
                patch: None,
                ..got
            }]
        );

        let missing = JobId::new();
        assert!(matches!(
            store.set_job_plan(missing, &json!({})).await.unwrap_err(),
            Error::NotFound { what: "job", .. }
        ));
        assert!(matches!(
            store
                .begin_result(missing)
                .await
                .unwrap()
                .commit(0)
                .await
                .unwrap_err(),
            Error::NotFound { what: "job", .. }
        ));
        // A job without diffs has an empty patch, not none.
        let empty = add_job(&store, JobStatus::Running, 0).await;
        store
            .begin_result(empty)
            .await
            .unwrap()
            .commit(0)
            .await
            .unwrap();
        assert_eq!(
            store
                .get_job(empty)
                .await
                .unwrap()
                .unwrap()
                .patch
                .as_deref(),
            Some("")
        );
        assert!(matches!(
            store.mark_job_applied(missing, 1).await.unwrap_err(),
            Error::NotFound { .. }
        ));
    }
}

store_test! {
    #[tokio::test]
    async fn cancel_is_requested_only_on_live_jobs(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let live = add_job(&store, JobStatus::Running, 0).await;
        let done = add_job(&store, JobStatus::Completed, 0).await;

        assert!(!store.is_cancel_requested(live).await.unwrap());
        assert!(store.request_cancel(live).await.unwrap());
        assert!(store.is_cancel_requested(live).await.unwrap());
        // Asking twice is fine.
        assert!(store.request_cancel(live).await.unwrap());

        assert!(!store.request_cancel(done).await.unwrap());
        assert!(!store.is_cancel_requested(done).await.unwrap());

        assert!(!store.request_cancel(JobId::new()).await.unwrap());
        assert!(matches!(
            store.is_cancel_requested(JobId::new()).await.unwrap_err(),
            Error::NotFound { .. }
        ));
    }
}

store_test! {
    #[tokio::test]
    async fn list_jobs_pages_newest_first_with_a_cursor(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let mut ids = Vec::new();
        for _ in 0..7 {
            ids.push(add_job(&store, JobStatus::Queued, 0).await);
        }

        let all = store.list_jobs(None, 100).await.unwrap();
        assert_eq!(all.len(), 7);
        // Newest first: (created_at, id) strictly decreasing; every job once.
        for pair in all.windows(2) {
            assert!((pair[0].created_at, pair[0].id) > (pair[1].created_at, pair[1].id));
        }
        let mut listed: Vec<JobId> = all.iter().map(|j| j.id).collect();
        listed.sort();
        ids.sort();
        assert_eq!(listed, ids);

        // Pages of 3 via the cursor reproduce the full listing.
        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let page = store.list_jobs(cursor, 3).await.unwrap();
            assert!(page.len() <= 3);
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            paged.extend(page);
        }
        assert_eq!(paged, all);

        assert_eq!(store.list_jobs(None, 2).await.unwrap(), all[..2].to_vec());
        assert!(
            store
                .list_jobs(Some(all[6].id), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .list_jobs(Some(JobId::new()), 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.list_jobs(None, 0).await.unwrap().is_empty());
    }
}

store_test! {
    #[tokio::test]
    async fn a_result_of_many_diffs_is_written_in_batches_and_joined_in_plan_order(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let id = add_job(&store, JobStatus::Running, 0).await;
        let subs = add_subtasks(&store, id, 300).await;
        let mut result = store.begin_result(id).await.unwrap();
        for (i, sub) in subs.iter().enumerate().rev() {
            result
                .add_diff(sub.id, format!("diff {i:03}\n"), 1, 0)
                .await
                .unwrap();
        }
        result.commit(7).await.unwrap();
        let got = store.get_job(id).await.unwrap().unwrap();
        let expected: String = (0..300).map(|i| format!("diff {i:03}\n")).collect();
        assert_eq!(got.patch, Some(expected));
        assert_eq!((got.files_changed, got.lines_added), (300, 300));
    }
}
