//! Attempt rows: round trips, finish-once, interruption, statistics.

use cadre_store::{
    AttemptRecord, AttemptStatRow, AttemptWrite, AttemptWritten, Error, NewCall, NewEvent,
    SubtaskUpdate,
};
use cadre_types::{
    AttemptId, AttemptOutcome, Complexity, ErrorCost, EventKind, JobStatus, Role, SubtaskStatus,
};

use super::common::{add_job, add_subtasks, finish, new_attempt, new_subtask, temp_store};

store_test! {
    #[tokio::test]
    async fn attempts_round_trip_in_start_order(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let sub = new_subtask(job, 0, Complexity::Mechanical, "rust");
        store
            .insert_subtasks(std::slice::from_ref(&sub))
            .await
            .unwrap();

        let planner = new_attempt(job, None, Role::Planner, "opus");
        let mut worker = new_attempt(job, Some(sub.id), Role::Worker, "haiku");
        worker.effort = None;
        worker.batch_id = Some("msgbatch_01".into());
        worker.ordinal = 2;
        let reviewer = new_attempt(job, None, Role::Reviewer, "opus");
        for a in [&planner, &worker, &reviewer] {
            store.start_attempt(a).await.unwrap();
        }

        let started = store.get_attempt(worker.id).await.unwrap().unwrap();
        assert!(started.started_at > 0);
        let expected_running = AttemptRecord {
            id: worker.id,
            job_id: job,
            subtask_id: Some(sub.id),
            role: Role::Worker,
            tier: "haiku".into(),
            model: "claude-haiku".into(),
            effort: None,
            ordinal: 2,
            request_sha256: worker.request_sha256.clone(),
            batch_id: Some("msgbatch_01".into()),
            outcome: AttemptOutcome::Running,
            failure: None,
            error: None,
            response: None,
            change: None,
            input_tokens: 0,
            output_tokens: 0,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            cost_usd: 0.0,
            latency_ms: 0,
            started_at: started.started_at,
            finished_at: None,
        };
        assert_eq!(started, expected_running);

        let result = finish(AttemptOutcome::Failed, 0.0042);
        assert!(store.finish_attempt(worker.id, &result).await.unwrap());
        let finished = store.get_attempt(worker.id).await.unwrap().unwrap();
        assert!(finished.finished_at.is_some());
        let expected_finished = AttemptRecord {
            outcome: AttemptOutcome::Failed,
            failure: result.failure,
            error: result.error.clone(),
            response: result.response.clone(),
            change: result.change.clone(),
            input_tokens: 1200,
            output_tokens: 300,
            cache_read_tokens: 5000,
            cache_write_tokens: 40,
            cost_usd: 0.0042,
            latency_ms: 850,
            finished_at: finished.finished_at,
            ..expected_running
        };
        assert_eq!(finished, expected_finished);

        let ids: Vec<AttemptId> = store
            .list_attempts(job)
            .await
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(ids, vec![planner.id, worker.id, reviewer.id]);
        assert_eq!(store.get_attempt(AttemptId::new()).await.unwrap(), None);
    }
}

store_test! {
    #[tokio::test]
    async fn attempt_reads_by_subtask_and_without_documents(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let subs = add_subtasks(&store, job, 3).await;
        let planner = new_attempt(job, None, Role::Planner, "opus");
        let first = new_attempt(job, Some(subs[0].id), Role::Worker, "haiku");
        let second = new_attempt(job, Some(subs[0].id), Role::Worker, "sonnet");
        let other = new_attempt(job, Some(subs[1].id), Role::Worker, "haiku");
        for a in [&planner, &first, &second, &other] {
            store.start_attempt(a).await.unwrap();
            store
                .finish_attempt(a.id, &finish(AttemptOutcome::Failed, 0.01))
                .await
                .unwrap();
        }

        let on_first: Vec<AttemptId> = store
            .list_subtask_attempts(subs[0].id)
            .await
            .unwrap()
            .iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(on_first, vec![first.id, second.id]);
        assert!(
            store
                .list_subtask_attempts(subs[2].id)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.subtasks_with_attempts(job).await.unwrap(),
            [subs[0].id, subs[1].id].into_iter().collect()
        );

        let full = store.list_attempts(job).await.unwrap();
        assert!(
            full.iter()
                .all(|a| a.response.is_some() && a.change.is_some())
        );
        let brief = store.list_attempts_brief(job).await.unwrap();
        assert_eq!(
            brief,
            full.into_iter()
                .map(|a| AttemptRecord {
                    response: None,
                    change: None,
                    ..a
                })
                .collect::<Vec<_>>()
        );
    }
}

store_test! {
    #[tokio::test]
    async fn attempt_needs_an_existing_job(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let orphan = new_attempt(cadre_types::JobId::new(), None, Role::Planner, "opus");
        let err = store.start_attempt(&orphan).await.unwrap_err();
        assert!(matches!(err, Error::Database(_)), "{err}");
    }
}

store_test! {
    #[tokio::test]
    async fn an_attempt_finishes_once(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let a = new_attempt(job, None, Role::Planner, "opus");
        store.start_attempt(&a).await.unwrap();

        assert!(
            store
                .finish_attempt(a.id, &finish(AttemptOutcome::Passed, 0.5))
                .await
                .unwrap()
        );
        let first = store.get_attempt(a.id).await.unwrap().unwrap();
        assert!(
            !store
                .finish_attempt(a.id, &finish(AttemptOutcome::Failed, 9.0))
                .await
                .unwrap()
        );
        assert_eq!(store.get_attempt(a.id).await.unwrap().unwrap(), first);
        assert!(
            !store
                .finish_attempt(AttemptId::new(), &finish(AttemptOutcome::Passed, 0.0))
                .await
                .unwrap()
        );
    }
}

store_test! {
    #[tokio::test]
    async fn running_attempts_are_interrupted_per_job(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let other = add_job(&store, JobStatus::Running, 0).await;
        let done = new_attempt(job, None, Role::Planner, "opus");
        let hung1 = new_attempt(job, None, Role::Reviewer, "opus");
        let hung2 = new_attempt(job, None, Role::Reviewer, "opus");
        let elsewhere = new_attempt(other, None, Role::Planner, "opus");
        for a in [&done, &hung1, &hung2, &elsewhere] {
            store.start_attempt(a).await.unwrap();
        }
        store
            .finish_attempt(done.id, &finish(AttemptOutcome::Passed, 0.1))
            .await
            .unwrap();

        assert_eq!(
            store
                .release_running(job, false, "daemon restarted")
                .await
                .unwrap(),
            2
        );
        for id in [hung1.id, hung2.id] {
            let a = store.get_attempt(id).await.unwrap().unwrap();
            assert_eq!(a.outcome, AttemptOutcome::Interrupted);
            assert_eq!(a.error.as_deref(), Some("daemon restarted"));
            assert!(a.finished_at.is_some());
            // A late result for an interrupted call is not recorded.
            assert!(
                !store
                    .finish_attempt(id, &finish(AttemptOutcome::Passed, 0.1))
                    .await
                    .unwrap()
            );
        }
        assert_eq!(
            store.get_attempt(done.id).await.unwrap().unwrap().outcome,
            AttemptOutcome::Passed
        );
        assert_eq!(
            store
                .get_attempt(elsewhere.id)
                .await
                .unwrap()
                .unwrap()
                .outcome,
            AttemptOutcome::Running
        );
        assert_eq!(
            store
                .release_running(job, false, "again")
                .await
                .unwrap(),
            0
        );
    }
}

store_test! {
    #[tokio::test]
    async fn attempt_stats_group_worker_outcomes_by_class_and_tier(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let mech_rust = new_subtask(job, 0, Complexity::Mechanical, "rust");
        let mut gen_py = new_subtask(job, 1, Complexity::Generative, "python");
        gen_py.error_cost = ErrorCost::High;
        store
            .insert_subtasks(&[mech_rust.clone(), gen_py.clone()])
            .await
            .unwrap();

        // (subtask, tier, outcome or None = left running, cost)
        let plan = [
            (&mech_rust, "haiku", Some(AttemptOutcome::Failed), 0.25),
            (&mech_rust, "haiku", Some(AttemptOutcome::Passed), 0.5),
            (&mech_rust, "sonnet", Some(AttemptOutcome::Passed), 1.0),
            (&gen_py, "sonnet", Some(AttemptOutcome::Failed), 2.0),
            (&gen_py, "sonnet", Some(AttemptOutcome::Failed), 2.0),
            (&gen_py, "opus", Some(AttemptOutcome::Passed), 4.0),
            (&gen_py, "opus", None, 0.0),
        ];
        for (sub, tier, outcome, cost) in plan {
            let a = new_attempt(job, Some(sub.id), Role::Worker, tier);
            store.start_attempt(&a).await.unwrap();
            if let Some(outcome) = outcome {
                store
                    .finish_attempt(a.id, &finish(outcome, cost))
                    .await
                    .unwrap();
            }
        }
        // Planner and reviewer calls are not worker statistics.
        let planner = new_attempt(job, None, Role::Planner, "opus");
        store.start_attempt(&planner).await.unwrap();
        store
            .finish_attempt(planner.id, &finish(AttemptOutcome::Passed, 8.0))
            .await
            .unwrap();

        let row = |complexity,
                   error_cost,
                   language: &str,
                   tier: &str,
                   attempts,
                   passed,
                   cost_usd,
                   passed_cost_usd| {
            AttemptStatRow {
                complexity,
                error_cost,
                language: language.into(),
                tier: tier.into(),
                attempts,
                passed,
                cost_usd,
                passed_cost_usd,
            }
        };
        let expected = vec![
            row(
                Complexity::Generative,
                ErrorCost::High,
                "python",
                "opus",
                1,
                1,
                4.0,
                4.0,
            ),
            row(
                Complexity::Generative,
                ErrorCost::High,
                "python",
                "sonnet",
                2,
                0,
                4.0,
                0.0,
            ),
            row(
                Complexity::Mechanical,
                ErrorCost::Low,
                "rust",
                "haiku",
                2,
                1,
                0.75,
                0.5,
            ),
            row(
                Complexity::Mechanical,
                ErrorCost::Low,
                "rust",
                "sonnet",
                1,
                1,
                1.0,
                1.0,
            ),
        ];
        assert_eq!(store.attempt_stats(None).await.unwrap(), expected);
        assert_eq!(store.attempt_stats(Some(0)).await.unwrap(), expected);
        let far_future = i64::MAX / 2;
        assert!(
            store
                .attempt_stats(Some(far_future))
                .await
                .unwrap()
                .is_empty()
        );
    }
}

store_test! {
    #[tokio::test]
    async fn a_group_commit_answers_each_write_in_order(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        // 70 subtasks: the batch's rows go in as chunks of 64, 4, 1 and 1.
        let subs = add_subtasks(&store, job, 70).await;
        let event = |n: usize| NewEvent {
            job_id: job,
            subtask_id: None,
            kind: EventKind::Note,
            message: format!("event {n}"),
            data: serde_json::json!({"n": n}),
        };
        let mut groups: Vec<Vec<AttemptWrite>> = Vec::new();
        let mut attempts = Vec::new();
        for (i, sub) in subs.iter().enumerate() {
            let attempt = new_attempt(job, Some(sub.id), Role::Worker, "haiku");
            // A subtask that is not where the change expects it stays put
            // and gets no event.
            let from = if i == 3 { SubtaskStatus::Accepted } else { SubtaskStatus::Pending };
            groups.push(vec![
                AttemptWrite::Transition {
                    id: sub.id,
                    from: vec![from],
                    to: SubtaskStatus::Running,
                    update: SubtaskUpdate::default(),
                    event: Some(event(2 * i)),
                },
                AttemptWrite::StartAttempt(attempt.clone()),
                AttemptWrite::Call(NewCall {
                    job_id: job,
                    attempt_id: attempt.id,
                    turn: 0,
                    request_sha256: format!("{i:064}"),
                    role: Role::Worker,
                    tier: "haiku".into(),
                    model: "claude-haiku".into(),
                    response_json: format!("{{\"n\":{i}}}"),
                    input_tokens: i as u64,
                    output_tokens: 1,
                    cache_read_tokens: 0,
                    cache_write_tokens: 0,
                    cost_usd: 0.5,
                    latency_ms: 3,
                    batch: false,
                }),
                AttemptWrite::Event(event(2 * i + 1)),
            ]);
            attempts.push(attempt);
        }
        let refs: Vec<&[AttemptWrite]> = groups.iter().map(Vec::as_slice).collect();
        let done = store.write_attempt_groups(&refs).await.unwrap();

        assert_eq!(done.len(), 70);
        let mut event_seqs = Vec::new();
        let mut call_seqs = Vec::new();
        for (i, group) in done.iter().enumerate() {
            let [
                AttemptWritten::Transition { changed, event },
                AttemptWritten::AttemptStarted,
                AttemptWritten::Call(call),
                AttemptWritten::Event(last),
            ] = group.as_slice()
            else {
                panic!("group {i}: {group:?}");
            };
            assert_eq!((*changed, event.is_some()), (i != 3, i != 3), "group {i}");
            event_seqs.extend(*event);
            event_seqs.push(*last);
            call_seqs.push(*call);
        }
        // Sequence numbers follow the groups' order, and each names its own row.
        assert!(event_seqs.windows(2).all(|w| w[0] < w[1]), "{event_seqs:?}");
        assert!(call_seqs.windows(2).all(|w| w[0] < w[1]), "{call_seqs:?}");
        let stored = store.list_events(job, 0, 1000).await.unwrap();
        let by_seq: Vec<(i64, String)> = stored.iter().map(|e| (e.seq, e.message.clone())).collect();
        let expected: Vec<(i64, String)> = (0..70)
            .flat_map(|i| [2 * i, 2 * i + 1])
            .filter(|n| *n != 6)
            .map(|n| format!("event {n}"))
            .zip(event_seqs.iter())
            .map(|(m, s)| (*s, m))
            .collect();
        assert_eq!(by_seq, expected);
        let calls = store.list_calls(job).await.unwrap();
        let listed: Vec<(i64, u64)> = calls.iter().map(|c| (c.seq, c.input_tokens)).collect();
        let wanted: Vec<(i64, u64)> = call_seqs.iter().copied().zip(0..70).collect();
        assert_eq!(listed, wanted);
        assert_eq!(store.list_attempts(job).await.unwrap().len(), 70);
        let running = store
            .list_subtasks(job)
            .await
            .unwrap()
            .iter()
            .filter(|s| s.status == SubtaskStatus::Running)
            .count();
        assert_eq!(running, 69);
    }
}

store_test! {
    #[tokio::test]
    async fn a_group_commit_keeps_each_rows_compare_and_sets_in_order(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        // 21 subtasks: the multi-row updates go in chunks of 16, 4 and 1.
        let subs = add_subtasks(&store, job, 21).await;
        let attempts: Vec<_> = subs
            .iter()
            .map(|s| new_attempt(job, Some(s.id), Role::Worker, "haiku"))
            .collect();
        let starts: Vec<AttemptWrite> = attempts
            .iter()
            .map(|a| AttemptWrite::StartAttempt(a.clone()))
            .collect();
        store.write_attempt_groups(&[&starts]).await.unwrap();
        let status = |i: usize, from: SubtaskStatus, to: SubtaskStatus, update: SubtaskUpdate| {
            AttemptWrite::Transition {
                id: subs[i].id,
                from: vec![from],
                to,
                update,
                event: Some(NewEvent {
                    job_id: job,
                    subtask_id: Some(subs[i].id),
                    kind: EventKind::SubtaskStatus,
                    message: format!("{i}: {to}"),
                    data: serde_json::json!({}),
                }),
            }
        };
        let mut groups: Vec<Vec<AttemptWrite>> = Vec::new();
        for (i, attempt) in attempts.iter().enumerate() {
            let mut end = finish(AttemptOutcome::Passed, 0.25);
            end.input_tokens = i as u64 + 100;
            groups.push(vec![
                status(i, SubtaskStatus::Pending, SubtaskStatus::Running, SubtaskUpdate {
                    current_tier: (i % 2 == 0).then(|| "sonnet".to_owned()),
                    ..SubtaskUpdate::default()
                }),
                AttemptWrite::FinishAttempt { id: attempt.id, finish: end.clone() },
                // Finished already: the second end is refused.
                AttemptWrite::FinishAttempt { id: attempt.id, finish: finish(AttemptOutcome::Failed, 9.0) },
                status(i, SubtaskStatus::Running, SubtaskStatus::Accepted, SubtaskUpdate {
                    attempts: Some(i as u32 + 1),
                    reason: Some(format!("accepted {i}")),
                    accepted_content: Some(Some(format!("content {i}"))),
                    ..SubtaskUpdate::default()
                }),
            ]);
        }
        // Subtask 5, in a later group of the same commit: sent back (its
        // content cleared), then a change that no longer matches.
        groups.push(vec![
            status(5, SubtaskStatus::Accepted, SubtaskStatus::Pending, SubtaskUpdate {
                accepted_content: Some(None),
                ..SubtaskUpdate::default()
            }),
            status(5, SubtaskStatus::Accepted, SubtaskStatus::NeedsHuman, SubtaskUpdate::default()),
        ]);
        let refs: Vec<&[AttemptWrite]> = groups.iter().map(Vec::as_slice).collect();
        let done = store.write_attempt_groups(&refs).await.unwrap();
        for (i, group) in done.iter().take(21).enumerate() {
            let [
                AttemptWritten::Transition { changed: true, event: Some(running) },
                AttemptWritten::AttemptFinished(true),
                AttemptWritten::AttemptFinished(false),
                AttemptWritten::Transition { changed: true, event: Some(accepted) },
            ] = group.as_slice()
            else {
                panic!("group {i}: {group:?}");
            };
            assert!(running < accepted, "group {i}");
        }
        let [
            AttemptWritten::Transition { changed: true, event: Some(_) },
            AttemptWritten::Transition { changed: false, event: None },
        ] = done[21].as_slice()
        else {
            panic!("{:?}", done[21]);
        };
        let stored = store.list_subtasks(job).await.unwrap();
        for (i, s) in stored.iter().enumerate() {
            let tier = if i % 2 == 0 { "sonnet" } else { &subs[i].start_tier };
            assert_eq!(s.current_tier, tier, "subtask {i}");
            assert_eq!(s.attempts, i as u32 + 1, "subtask {i}");
            assert_eq!(s.reason, format!("accepted {i}"), "subtask {i}");
            if i == 5 {
                assert_eq!((s.status, s.accepted_content.as_deref()), (SubtaskStatus::Pending, None));
            } else {
                assert_eq!(
                    (s.status, s.accepted_content.clone()),
                    (SubtaskStatus::Accepted, Some(format!("content {i}"))),
                    "subtask {i}"
                );
            }
        }
        for (i, a) in attempts.iter().enumerate() {
            let row = store.get_attempt(a.id).await.unwrap().unwrap();
            assert_eq!(
                (row.outcome, row.input_tokens, row.cost_usd),
                (AttemptOutcome::Passed, i as u64 + 100, 0.25),
                "attempt {i}"
            );
        }
        // One event per change that matched, in the groups' order.
        let events: Vec<String> = store
            .list_events(job, 0, 1000)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.message)
            .collect();
        let mut expected: Vec<String> = (0..21)
            .flat_map(|i| [format!("{i}: running"), format!("{i}: accepted")])
            .collect();
        expected.push("5: pending".to_owned());
        assert_eq!(events, expected);
    }
}

store_test! {
    #[tokio::test]
    async fn a_group_commit_stores_every_field_as_given(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        // Three files in one commit: each update goes in as a chunk of two
        // rows and a chunk of one, both joins.
        let subs = add_subtasks(&store, job, 3).await;
        // Text that JSON escapes: quotes, backslashes, control characters,
        // non-ASCII and a character outside the BMP.
        let awkward = "line \"one\"\n\ttab \\ back é ü 🎉 \u{1}";
        let response_json = format!("{{\"text\":{}}}", serde_json::to_string(awkward).unwrap());
        let data = serde_json::json!({"text": awkward, "n": 1.5, "list": [1, null, {"k": true}]});
        let mut end = finish(AttemptOutcome::Failed, 1e-9);
        end.error = Some(awkward.to_owned());
        end.response = Some(serde_json::json!({"said": awkward}));
        end.change = None;
        let mut groups: Vec<Vec<AttemptWrite>> = Vec::new();
        let mut attempts = Vec::new();
        for (i, sub) in subs.iter().enumerate() {
            let mut attempt = new_attempt(job, Some(sub.id), Role::Worker, "haiku");
            attempt.effort = Some(awkward.to_owned());
            attempt.batch_id = None;
            let call = NewCall {
                job_id: job,
                attempt_id: attempt.id,
                turn: 7,
                request_sha256: format!("{i:064}"),
                role: Role::Worker,
                tier: "haiku".into(),
                model: awkward.into(),
                response_json: response_json.clone(),
                input_tokens: i64::MAX as u64,
                output_tokens: 0,
                cache_read_tokens: 3,
                cache_write_tokens: 4,
                cost_usd: 0.1 + 0.2,
                latency_ms: 5,
                batch: true,
            };
            groups.push(vec![
                AttemptWrite::StartAttempt(attempt.clone()),
                AttemptWrite::Call(call),
                AttemptWrite::FinishAttempt { id: attempt.id, finish: end.clone() },
                AttemptWrite::Transition {
                    id: sub.id,
                    from: vec![SubtaskStatus::Pending],
                    to: SubtaskStatus::NeedsHuman,
                    update: SubtaskUpdate {
                        current_tier: Some(awkward.to_owned()),
                        attempts: Some(u32::MAX),
                        reason: Some(awkward.to_owned()),
                        accepted_content: Some(Some(awkward.to_owned())),
                    },
                    event: None,
                },
                AttemptWrite::Event(NewEvent {
                    job_id: job,
                    subtask_id: Some(sub.id),
                    kind: EventKind::Note,
                    message: awkward.to_owned(),
                    data: data.clone(),
                }),
            ]);
            attempts.push(attempt);
        }
        let refs: Vec<&[AttemptWrite]> = groups.iter().map(Vec::as_slice).collect();
        store.write_attempt_groups(&refs).await.unwrap();

        for (i, attempt) in attempts.iter().enumerate() {
            let row = store.get_attempt(attempt.id).await.unwrap().unwrap();
            assert_eq!(row.effort.as_deref(), Some(awkward), "attempt {i}");
            assert_eq!(row.batch_id, None);
            assert_eq!(
                (row.outcome, row.failure, row.error.as_deref()),
                (AttemptOutcome::Failed, end.failure, Some(awkward))
            );
            assert_eq!((row.response, row.change), (end.response.clone(), None));
            assert_eq!(
                (row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens),
                (end.input_tokens, end.output_tokens, end.cache_read_tokens, end.cache_write_tokens)
            );
            assert_eq!((row.cost_usd, row.latency_ms), (1e-9, end.latency_ms));
            let stored = store.find_call(job, &format!("{i:064}")).await.unwrap().unwrap();
            assert_eq!(
                (stored.turn, stored.model.as_str(), stored.input_tokens, stored.batch),
                (7, awkward, i64::MAX as u64, true)
            );
            assert_eq!((stored.cache_read_tokens, stored.cache_write_tokens), (3, 4));
            assert_eq!((stored.cost_usd, stored.latency_ms), (0.1 + 0.2, 5));
            assert_eq!(
                stored.response,
                Some(serde_json::from_str::<serde_json::Value>(&response_json).unwrap())
            );
        }
        for subtask in store.list_subtasks(job).await.unwrap() {
            assert_eq!(subtask.status, SubtaskStatus::NeedsHuman);
            assert_eq!(subtask.current_tier, awkward);
            assert_eq!(subtask.attempts, u32::MAX);
            assert_eq!(subtask.reason, awkward);
            assert_eq!(subtask.accepted_content.as_deref(), Some(awkward));
        }
        let events = store.list_events(job, 0, 10).await.unwrap();
        assert_eq!(events.len(), 3);
        for (e, sub) in events.iter().zip(&subs) {
            assert_eq!(
                (e.subtask_id, e.kind, e.message.as_str()),
                (Some(sub.id), EventKind::Note, awkward)
            );
            assert_eq!(e.data, data);
        }
    }
}
