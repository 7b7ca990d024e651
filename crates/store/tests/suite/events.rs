//! The event log: global, increasing sequence numbers and per-job paging.

use cadre_store::NewEvent;
use cadre_types::{EventKind, JobEvent, JobId, JobStatus, SubtaskId};
use serde_json::json;

use super::common::{add_job, temp_store};

fn event(job: JobId, n: u32) -> NewEvent {
    NewEvent {
        job_id: job,
        subtask_id: n.is_multiple_of(2).then(SubtaskId::new),
        kind: if n.is_multiple_of(3) {
            EventKind::Routed
        } else {
            EventKind::Note
        },
        message: format!("event {n}"),
        data: json!({"n": n}),
    }
}

store_test! {
    #[tokio::test]
    async fn events_get_increasing_seqs_and_page_by_job(backend) {
        let Some((_scratch, store)) = temp_store(backend).await else {
            return;
        };
        let job = add_job(&store, JobStatus::Running, 0).await;
        let other = add_job(&store, JobStatus::Running, 0).await;

        let mut appended: Vec<(NewEvent, i64)> = Vec::new();
        let mut last_seq = 0;
        for n in 0..10 {
            // Interleave another job's events: seqs are global.
            let other_seq = store.append_event(&event(other, 100 + n)).await.unwrap();
            assert!(other_seq > last_seq);
            let e = event(job, n);
            let seq = store.append_event(&e).await.unwrap();
            assert!(seq > other_seq);
            last_seq = seq;
            appended.push((e, seq));
        }

        let all = store.list_events(job, 0, 100).await.unwrap();
        let expected: Vec<JobEvent> = appended
            .iter()
            .zip(&all)
            .map(|((e, seq), got)| JobEvent {
                seq: *seq,
                job_id: e.job_id,
                subtask_id: e.subtask_id,
                kind: e.kind,
                message: e.message.clone(),
                data: e.data.clone(),
                at: got.at,
            })
            .collect();
        assert_eq!(all, expected);
        assert!(all.iter().all(|e| e.at > 0));

        // after + limit page through in order.
        let first = store.list_events(job, 0, 4).await.unwrap();
        assert_eq!(first, all[..4].to_vec());
        let next = store.list_events(job, first[3].seq, 4).await.unwrap();
        assert_eq!(next, all[4..8].to_vec());
        let rest = store.list_events(job, next[3].seq, 4).await.unwrap();
        assert_eq!(rest, all[8..].to_vec());
        assert!(
            store
                .list_events(job, all[9].seq, 4)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.list_events(other, 0, 100).await.unwrap().len(), 10);
        assert!(
            store
                .list_events(JobId::new(), 0, 100)
                .await
                .unwrap()
                .is_empty()
        );
    }
}
