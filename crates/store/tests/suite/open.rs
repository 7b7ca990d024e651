//! Opening: the file persists, and several pools share one file (WAL).

use cadre_store::{NewEvent, Store};
use cadre_types::{EventKind, JobStatus};
use pretty_assertions::assert_eq;
use serde_json::json;

use super::common::{add_job, new_job};

#[tokio::test]
async fn data_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/cadre.db");
    let store = Store::open(&path).await.unwrap();
    let id = add_job(&store, JobStatus::Queued, 0).await;
    let before = store.get_job(id).await.unwrap();
    store.close().await;
    drop(store);

    // Reopening finds the migrations applied and the data intact.
    let store = Store::open(&path).await.unwrap();
    assert_eq!(store.get_job(id).await.unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_share_one_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cadre.db");
    let one = Store::open(&path).await.unwrap();
    let two = Store::open(&path).await.unwrap();

    let id = add_job(&one, JobStatus::Running, 0).await;
    assert_eq!(
        two.get_job(id).await.unwrap(),
        one.get_job(id).await.unwrap()
    );

    // Both write at once; each sees the other's writes.
    let append = |store: Store, n: u32| async move {
        for i in 0..20 {
            store
                .append_event(&NewEvent {
                    job_id: id,
                    subtask_id: None,
                    kind: EventKind::Note,
                    message: format!("pool {n} event {i}"),
                    data: json!({}),
                })
                .await
                .unwrap();
        }
    };
    tokio::join!(append(one.clone(), 1), append(two.clone(), 2));
    assert_eq!(one.list_events(id, 0, 100).await.unwrap().len(), 40);
    assert_eq!(two.list_events(id, 0, 100).await.unwrap().len(), 40);

    assert!(two.request_cancel(id).await.unwrap());
    assert!(one.is_cancel_requested(id).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_fresh_file_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fresh.db");
    let mut openers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let path = path.clone();
        openers.spawn(async move { Store::open(&path).await });
    }
    let mut stores = Vec::new();
    while let Some(opened) = openers.join_next().await {
        stores.push(opened.unwrap().unwrap());
    }
    let job = new_job(JobStatus::Queued, 0);
    stores[0].create_job(&job).await.unwrap();
    for store in &stores {
        assert!(store.get_job(job.id).await.unwrap().is_some());
    }
}
