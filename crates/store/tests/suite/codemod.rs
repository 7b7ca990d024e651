//! The codemod tier's figures: a job's subtasks with rules, and the files
//! accepted at the codemod tier across jobs.

use cadre_store::{CodemodAcceptedRow, SubtaskDirective, SubtaskUpdate};
use cadre_types::{AttemptOutcome, Complexity, JobStatus, Role, SubtaskStatus};

use super::common::{add_job, finish, new_attempt, new_subtask, temp_store};

store_test! {
    #[tokio::test]
    async fn rules_and_files_accepted_at_the_codemod_tier(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        // 0: rule, accepted at codemod. 1: rule, codemod failed, accepted at
        // haiku. 2: no rule, accepted at haiku.
        let subs: Vec<_> = (0..3)
            .map(|i| new_subtask(job, i, Complexity::Mechanical, "python"))
            .collect();
        let mut writer = store.begin_subtasks().await.unwrap();
        for (i, s) in subs.iter().enumerate() {
            writer.insert(s).await.unwrap();
            if i < 2 {
                let rule = SubtaskDirective {
                    rule: Some("id: r\nlanguage: python\nrule:\n  pattern: A\nfix: B\n".into()),
                    ..SubtaskDirective::default()
                };
                writer.set_directive(s.id, &rule).await.unwrap();
            }
        }
        writer.commit().await.unwrap();
        let with_rules = store.subtasks_with_rules(job).await.unwrap();
        assert_eq!(with_rules, [subs[0].id, subs[1].id].into_iter().collect());

        for (s, tiers) in subs.iter().zip([
            &[("codemod", AttemptOutcome::Passed)][..],
            &[("codemod", AttemptOutcome::Failed), ("haiku", AttemptOutcome::Passed)],
            &[("haiku", AttemptOutcome::Passed)],
        ]) {
            for (tier, outcome) in tiers {
                let a = new_attempt(job, Some(s.id), Role::Worker, tier);
                store.start_attempt(&a).await.unwrap();
                store.finish_attempt(a.id, &finish(*outcome, 0.0)).await.unwrap();
            }
            let accepted = store
                .transition_subtask(
                    s.id,
                    &[SubtaskStatus::Pending],
                    SubtaskStatus::Accepted,
                    &SubtaskUpdate::default(),
                )
                .await
                .unwrap();
            assert!(accepted);
        }
        let chars = subs[0].original_content.as_ref().unwrap().chars().count() as u64;
        let expected = vec![CodemodAcceptedRow {
            start_tier: "haiku".into(),
            chars,
        }];
        assert_eq!(store.accepted_at_tier("codemod", None).await.unwrap(), expected);
        assert_eq!(store.accepted_at_tier("codemod", Some(0)).await.unwrap(), expected);
        let future = i64::MAX / 2;
        assert!(store.accepted_at_tier("codemod", Some(future)).await.unwrap().is_empty());
        // haiku's accepted files: subtasks 1 and 2.
        assert_eq!(store.accepted_at_tier("haiku", None).await.unwrap().len(), 2);
    }
}

store_test! {
    #[tokio::test]
    async fn rung_stats_count_the_first_model_attempt_after_a_rule_as_the_start(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let sub = new_subtask(job, 0, Complexity::Mechanical, "python");
        let mut writer = store.begin_subtasks().await.unwrap();
        writer.insert(&sub).await.unwrap();
        writer.commit().await.unwrap();
        // The rule failed, haiku failed, sonnet passed.
        for (ordinal, (tier, outcome)) in [
            ("codemod", AttemptOutcome::Failed),
            ("haiku", AttemptOutcome::Failed),
            ("sonnet", AttemptOutcome::Passed),
        ]
        .into_iter()
        .enumerate()
        {
            let mut a = new_attempt(job, Some(sub.id), Role::Worker, tier);
            a.ordinal = u32::try_from(ordinal).unwrap() + 1;
            store.start_attempt(&a).await.unwrap();
            store.finish_attempt(a.id, &finish(outcome, 0.001)).await.unwrap();
        }
        let stats = store.rung_stats(None, "codemod").await.unwrap();
        let rows: Vec<(&str, bool, u64, u64)> = stats
            .iter()
            .map(|r| (r.rung.as_str(), r.started, r.attempts, r.passed))
            .collect();
        assert_eq!(
            rows,
            vec![("haiku", true, 1, 0), ("sonnet", false, 1, 1)],
            "no codemod rung; haiku is where the subtask started among models"
        );
    }
}

store_test! {
    #[tokio::test]
    async fn the_review_finds_the_files_a_rule_rewrote_and_their_rule(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let other_job = add_job(&store, JobStatus::Running, 0).await;
        let rule = "id: r\nlanguage: python\nrule:\n  pattern: A\nfix: B\n";
        // 0: rule, accepted at codemod. 1: rule, accepted at haiku. 2: rule,
        // still pending. 3: no rule, accepted at codemod (never happens; not a
        // rule's rewrite). 4: another job's file accepted at codemod.
        let mut subs: Vec<_> = (0..4)
            .map(|i| new_subtask(job, i, Complexity::Mechanical, "python"))
            .collect();
        subs.push(new_subtask(other_job, 0, Complexity::Mechanical, "python"));
        let mut writer = store.begin_subtasks().await.unwrap();
        for (i, s) in subs.iter().enumerate() {
            writer.insert(s).await.unwrap();
            if i != 3 {
                let directive = SubtaskDirective {
                    rule: Some(rule.into()),
                    ..SubtaskDirective::default()
                };
                writer.set_directive(s.id, &directive).await.unwrap();
            }
        }
        writer.commit().await.unwrap();
        for (i, tier) in [(0, "codemod"), (1, "haiku"), (3, "codemod"), (4, "codemod")] {
            let update = SubtaskUpdate {
                current_tier: Some(tier.into()),
                ..SubtaskUpdate::default()
            };
            let moved = store
                .transition_subtask(
                    subs[i].id,
                    &[SubtaskStatus::Pending],
                    SubtaskStatus::Accepted,
                    &update,
                )
                .await
                .unwrap();
            assert!(moved);
        }
        let found = store.accepted_rule_rewrites(job, "codemod").await.unwrap();
        assert_eq!(found, [(subs[0].id, rule.to_owned())].into_iter().collect());
        let at_haiku = store.accepted_rule_rewrites(job, "haiku").await.unwrap();
        assert_eq!(at_haiku.keys().copied().collect::<Vec<_>>(), vec![subs[1].id]);
    }
}
