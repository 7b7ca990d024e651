//! The dashboard's read-only views: the listing filtered by status, the
//! progress of a page of jobs, and the cost timeline from the ledger.

use cadre_store::{JobProgressRow, NewCall, Store, SubtaskUpdate};
use cadre_types::{AttemptOutcome, Complexity, JobId, JobStatus, Role, SubtaskId, SubtaskStatus};

use super::common::{add_job, add_subtasks, finish, new_attempt, new_subtask, temp_store};

/// Records a finished attempt and its one ledger call.
async fn call(
    store: &Store,
    job: JobId,
    subtask: Option<SubtaskId>,
    role: Role,
    tier: &str,
    cost: f64,
) -> cadre_store::Result<()> {
    let attempt = new_attempt(job, subtask, role, tier);
    store.start_attempt(&attempt).await?;
    store
        .finish_attempt(attempt.id, &finish(AttemptOutcome::Passed, cost))
        .await?;
    store
        .record_call(&NewCall {
            job_id: job,
            attempt_id: attempt.id,
            turn: 0,
            request_sha256: attempt.request_sha256.clone(),
            role,
            tier: tier.into(),
            model: attempt.model.clone(),
            response_json: "{}".into(),
            input_tokens: 10,
            output_tokens: 5,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: cost,
            latency_ms: 1,
            batch: false,
        })
        .await?;
    Ok(())
}

store_test! {
    #[tokio::test]
    async fn listing_filters_by_status_in_sql_and_pages_by_cursor(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let mut running = Vec::new();
        for i in 0..5 {
            let status = if i % 2 == 0 {
                JobStatus::Running
            } else {
                JobStatus::Completed
            };
            let id = add_job(&store, status, 0).await;
            if status == JobStatus::Running {
                running.push(id);
            }
        }
        running.reverse(); // newest first
        let page = store
            .list_jobs_by_status(&[JobStatus::Running], None, 2)
            .await
            .unwrap();
        assert_eq!(page.iter().map(|j| j.id).collect::<Vec<_>>(), running[..2]);
        assert!(page.iter().all(|j| j.plan.is_none() && j.patch.is_none()));
        let rest = store
            .list_jobs_by_status(&[JobStatus::Running], Some(page[1].id), 2)
            .await
            .unwrap();
        assert_eq!(rest.iter().map(|j| j.id).collect::<Vec<_>>(), running[2..]);
        let both = store
            .list_jobs_by_status(&[JobStatus::Running, JobStatus::Completed], None, 10)
            .await
            .unwrap();
        assert_eq!(both.len(), 5);
        assert!(
            store
                .list_jobs_by_status(&[JobStatus::Failed], None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        // No statuses: every job, like list_jobs.
        assert_eq!(
            store
                .list_jobs_by_status(&[], None, 10)
                .await
                .unwrap()
                .len(),
            5
        );
    }
}

store_test! {
    #[tokio::test]
    async fn progress_counts_files_by_state_and_sums_every_call(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let idle = add_job(&store, JobStatus::Queued, 0).await;
        let subs = add_subtasks(&store, job, 4).await;
        for (sub, to) in subs.iter().zip([
            SubtaskStatus::Accepted,
            SubtaskStatus::Accepted,
            SubtaskStatus::NeedsHuman,
            SubtaskStatus::Running,
        ]) {
            assert!(
                store
                    .transition_subtask(
                        sub.id,
                        &[SubtaskStatus::Pending],
                        to,
                        &SubtaskUpdate::default()
                    )
                    .await
                    .unwrap()
            );
        }
        call(&store, job, None, Role::Planner, "opus", 0.5)
            .await
            .unwrap();
        call(&store, job, Some(subs[0].id), Role::Worker, "haiku", 0.25)
            .await
            .unwrap();
        call(&store, job, None, Role::Reviewer, "sonnet", 0.125)
            .await
            .unwrap();

        let progress = store
            .job_progress(&[job, idle, JobId::new()])
            .await
            .unwrap();
        assert_eq!(progress.len(), 2, "an unknown job has no row");
        assert_eq!(
            progress[&job],
            JobProgressRow {
                files: 4,
                accepted: 2,
                needs_human: 1,
                in_flight: 1,
                cost_usd: 0.875,
            }
        );
        assert_eq!(progress[&idle], JobProgressRow::default());
        assert!(store.job_progress(&[]).await.unwrap().is_empty());
    }
}

store_test! {
    #[tokio::test]
    async fn cost_timeline_has_every_role_by_tier(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let other = add_job(&store, JobStatus::Running, 0).await;
        let sub = new_subtask(job, 0, Complexity::Mechanical, "rust");
        store
            .insert_subtasks(std::slice::from_ref(&sub))
            .await
            .unwrap();
        call(&store, job, None, Role::Planner, "opus", 0.5)
            .await
            .unwrap();
        call(&store, job, Some(sub.id), Role::Worker, "haiku", 0.25)
            .await
            .unwrap();
        call(&store, job, Some(sub.id), Role::Worker, "haiku", 0.25)
            .await
            .unwrap();
        call(&store, job, None, Role::Reviewer, "sonnet", 0.125)
            .await
            .unwrap();
        call(&store, other, None, Role::Planner, "opus", 9.0)
            .await
            .unwrap();

        let rows = store.call_cost_timeline(job).await.unwrap();
        // The calls may straddle a second boundary: sum per (role, tier).
        let total = |role: Role| -> (u32, f64) {
            rows.iter()
                .filter(|r| r.role == role)
                .fold((0, 0.0), |(n, c), r| (n + r.calls, c + r.cost_usd))
        };
        assert_eq!(total(Role::Planner), (1, 0.5));
        assert_eq!(total(Role::Worker), (2, 0.5));
        assert_eq!(total(Role::Reviewer), (1, 0.125));
        assert!(rows.windows(2).all(|w| w[0].at <= w[1].at), "{rows:?}");
        assert!(rows.iter().all(|r| r.at > 0));
    }
}
