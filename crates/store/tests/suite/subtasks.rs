//! Subtask rows: round trips, atomic inserts, compare-and-set transitions under contention.

use cadre_store::{Error, SubtaskRecord, SubtaskUpdate};
use cadre_types::{Complexity, JobId, JobStatus, SubtaskId, SubtaskStatus};
use tokio::task::JoinSet;

use super::common::{add_job, new_subtask, temp_store};

store_test! {
    #[tokio::test]
    async fn subtasks_round_trip_in_ordinal_order(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let other = add_job(&store, JobStatus::Running, 0).await;
        let mut third = new_subtask(job, 2, Complexity::Reasoning, "python");
        third.original_content = None;
        third.status = SubtaskStatus::Skipped;
        let batch = vec![
            third,
            new_subtask(job, 0, Complexity::Mechanical, "rust"),
            new_subtask(job, 1, Complexity::Generative, "rust"),
        ];
        store.insert_subtasks(&batch).await.unwrap();
        store
            .insert_subtasks(&[new_subtask(other, 0, Complexity::Mechanical, "go")])
            .await
            .unwrap();
        store.insert_subtasks(&[]).await.unwrap();

        let listed = store.list_subtasks(job).await.unwrap();
        let expected: Vec<SubtaskRecord> = [&batch[1], &batch[2], &batch[0]]
            .into_iter()
            .zip(&listed)
            .map(|(s, got)| SubtaskRecord {
                id: s.id,
                job_id: s.job_id,
                ordinal: s.ordinal,
                path: s.path.clone(),
                instruction: s.instruction.clone(),
                complexity: s.complexity,
                error_cost: s.error_cost,
                language: s.language.clone(),
                status: s.status,
                start_tier: s.start_tier.clone(),
                route_reason: s.route_reason.clone(),
                original_sha256: s.original_sha256.clone(),
                original_content: s.original_content.clone(),
                current_tier: s.start_tier.clone(),
                attempts: 0,
                reason: s.route_reason.clone(),
                accepted_content: None,
                updated_at: got.updated_at,
            })
            .collect();
        assert_eq!(listed, expected);

        assert_eq!(
            store.get_subtask(batch[0].id).await.unwrap().as_ref(),
            Some(&expected[2])
        );
        assert_eq!(store.get_subtask(SubtaskId::new()).await.unwrap(), None);
        assert!(store.list_subtasks(JobId::new()).await.unwrap().is_empty());
    }
}

store_test! {
    #[tokio::test]
    async fn insert_subtasks_is_all_or_nothing(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let first = new_subtask(job, 0, Complexity::Mechanical, "rust");
        // The second row references a job that does not exist: the foreign key fails it.
        let orphan = new_subtask(JobId::new(), 1, Complexity::Mechanical, "rust");
        let err = store.insert_subtasks(&[first, orphan]).await.unwrap_err();
        assert!(matches!(err, Error::Database(_)), "{err}");
        assert!(store.list_subtasks(job).await.unwrap().is_empty());
    }
}

store_test! {
    #[tokio::test]
    async fn subtask_writer_stores_all_at_commit_or_nothing_when_dropped(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let mut rows: Vec<_> = (0..3)
            .map(|i| new_subtask(job, i, Complexity::Mechanical, "rust"))
            .collect();
        rows[1].original_content = Some("h\u{e9}llo \u{1f980}".to_owned());
        rows[2].original_content = None;

        let mut writer = store.begin_subtasks().await.unwrap();
        for row in &rows {
            writer.insert(row).await.unwrap();
        }
        drop(writer);
        assert!(store.list_subtasks(job).await.unwrap().is_empty());

        let mut writer = store.begin_subtasks().await.unwrap();
        for row in &rows {
            writer.insert(row).await.unwrap();
        }
        writer.commit().await.unwrap();
        let listed = store.list_subtasks(job).await.unwrap();
        assert_eq!(
            listed.iter().map(|s| s.id).collect::<Vec<_>>(),
            rows.iter().map(|s| s.id).collect::<Vec<_>>()
        );
        assert_eq!(listed[0].original_content, rows[0].original_content);
        // Lengths in characters (what token estimates count), none for no contents.
        let chars = store.subtask_content_chars(job).await.unwrap();
        let first = rows[0].original_content.as_deref().unwrap().chars().count() as u64;
        assert_eq!(
            chars,
            [(rows[0].id, first), (rows[1].id, 7)].into_iter().collect()
        );
        // The brief listing is the same rows without the contents.
        let brief = store.list_subtasks_brief(job).await.unwrap();
        assert_eq!(
            brief,
            listed
                .into_iter()
                .map(|s| SubtaskRecord {
                    original_content: None,
                    accepted_content: None,
                    ..s
                })
                .collect::<Vec<_>>()
        );
    }
}

store_test! {
    #[tokio::test]
    async fn transition_subtask_is_compare_and_set_with_progress(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let sub = new_subtask(job, 0, Complexity::Generative, "rust");
        store
            .insert_subtasks(std::slice::from_ref(&sub))
            .await
            .unwrap();
        let before = store.get_subtask(sub.id).await.unwrap().unwrap();

        // Wrong `from`: nothing changes, not even the progress fields.
        let update = SubtaskUpdate {
            current_tier: Some("opus".into()),
            attempts: Some(9),
            reason: Some("x".into()),
            accepted_content: Some(Some("y".into())),
        };
        assert!(
            !store
                .transition_subtask(
                    sub.id,
                    &[SubtaskStatus::Running],
                    SubtaskStatus::Accepted,
                    &update
                )
                .await
                .unwrap()
        );
        assert!(
            !store
                .transition_subtask(sub.id, &[], SubtaskStatus::Running, &update)
                .await
                .unwrap()
        );
        assert_eq!(store.get_subtask(sub.id).await.unwrap().unwrap(), before);

        // pending -> running with attempt 1 at sonnet.
        let start = SubtaskUpdate {
            current_tier: Some("sonnet".into()),
            attempts: Some(1),
            ..SubtaskUpdate::default()
        };
        assert!(
            store
                .transition_subtask(
                    sub.id,
                    &[SubtaskStatus::Pending],
                    SubtaskStatus::Running,
                    &start
                )
                .await
                .unwrap()
        );
        let running = store.get_subtask(sub.id).await.unwrap().unwrap();
        assert_eq!(running.status, SubtaskStatus::Running);
        assert_eq!(running.current_tier, "sonnet");
        assert_eq!(running.attempts, 1);
        assert_eq!(
            running.reason, before.reason,
            "None leaves the reason alone"
        );
        assert_eq!(running.accepted_content, None);

        // running -> accepted with content.
        let accept = SubtaskUpdate {
            reason: Some("passed at sonnet".into()),
            accepted_content: Some(Some("fn new() {}\n".into())),
            ..SubtaskUpdate::default()
        };
        assert!(
            store
                .transition_subtask(
                    sub.id,
                    &[SubtaskStatus::Running],
                    SubtaskStatus::Accepted,
                    &accept
                )
                .await
                .unwrap()
        );
        let accepted = store.get_subtask(sub.id).await.unwrap().unwrap();
        assert_eq!(accepted.status, SubtaskStatus::Accepted);
        assert_eq!(accepted.accepted_content.as_deref(), Some("fn new() {}\n"));
        assert_eq!(accepted.current_tier, "sonnet");
        assert_eq!(accepted.attempts, 1);

        // Review sends it back: accepted -> pending, content cleared with Some(None).
        let back = SubtaskUpdate {
            reason: Some("reviewer: missed a call site".into()),
            accepted_content: Some(None),
            ..SubtaskUpdate::default()
        };
        assert!(
            store
                .transition_subtask(
                    sub.id,
                    &[SubtaskStatus::Accepted],
                    SubtaskStatus::Pending,
                    &back
                )
                .await
                .unwrap()
        );
        let pending = store.get_subtask(sub.id).await.unwrap().unwrap();
        assert_eq!(pending.status, SubtaskStatus::Pending);
        assert_eq!(pending.accepted_content, None);
        assert_eq!(pending.reason, "reviewer: missed a call site");
    }
}

store_test! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_transitions_have_exactly_one_winner(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let sub = new_subtask(job, 0, Complexity::Mechanical, "rust");
        store
            .insert_subtasks(std::slice::from_ref(&sub))
            .await
            .unwrap();

        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
        let mut racers = JoinSet::new();
        for n in 0..16u32 {
            let store = store.clone();
            let barrier = barrier.clone();
            racers.spawn(async move {
                barrier.wait().await;
                let update = SubtaskUpdate {
                    current_tier: Some(format!("tier-{n}")),
                    attempts: Some(n),
                    ..SubtaskUpdate::default()
                };
                let won = store
                    .transition_subtask(
                        sub.id,
                        &[SubtaskStatus::Pending],
                        SubtaskStatus::Running,
                        &update,
                    )
                    .await
                    .unwrap();
                (n, won)
            });
        }
        let mut winners = Vec::new();
        while let Some(result) = racers.join_next().await {
            let (n, won) = result.unwrap();
            if won {
                winners.push(n);
            }
        }
        assert_eq!(winners.len(), 1, "winners: {winners:?}");
        let row = store.get_subtask(sub.id).await.unwrap().unwrap();
        assert_eq!(row.status, SubtaskStatus::Running);
        // Only the winner's progress fields were written.
        assert_eq!(row.current_tier, format!("tier-{}", winners[0]));
        assert_eq!(row.attempts, winners[0]);
    }
}

store_test! {
    #[tokio::test]
    async fn subtasks_are_read_with_their_directives_by_ids_in_chunks(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        // More files than one statement binds, so the read goes in chunks.
        let subs: Vec<_> = (0..450)
            .map(|i| new_subtask(job, i, Complexity::Mechanical, "python"))
            .collect();
        let mut writer = store.begin_subtasks().await.unwrap();
        for (i, s) in subs.iter().enumerate() {
            writer.insert(s).await.unwrap();
            if i % 2 == 0 {
                let rule = cadre_store::SubtaskDirective {
                    rule: Some(format!("id: r{i}\nlanguage: python\nrule:\n  pattern: A\nfix: B\n")),
                    ..cadre_store::SubtaskDirective::default()
                };
                writer.set_directive(s.id, &rule).await.unwrap();
            }
        }
        writer.commit().await.unwrap();

        let mut ids: Vec<SubtaskId> = subs.iter().map(|s| s.id).step_by(3).collect();
        ids.push(SubtaskId::new());
        let read = store.get_subtasks_with_directives(&ids).await.unwrap();
        assert_eq!(read.len(), ids.len() - 1, "the unknown id is left out");
        for (sub, directive) in read {
            let one = store.get_subtask_with_directive(sub.id).await.unwrap();
            assert_eq!(one, Some((sub.clone(), directive.clone())));
            let i = subs.iter().position(|s| s.id == sub.id).unwrap();
            assert_eq!(i % 3, 0);
            assert_eq!(sub.original_content, subs[i].original_content);
            assert_eq!(directive.rule.is_some(), i % 2 == 0);
        }
        assert!(store.get_subtasks_with_directives(&[]).await.unwrap().is_empty());
    }
}
