//! Batch mode: worker calls of a round go out as one Message Batch.
//!
//! Worker tasks hand their requests to the [`Batcher`] and wait. The
//! batcher sends whatever arrived within a short window as one batch
//! (`custom_id` = the attempt id), records the batch id on those attempts,
//! polls with backoff, and answers each waiting task by `custom_id`, since
//! results arrive in any order. Escalations and retries arrive later and so
//! form the next round. A restart mid-batch polls the recorded batch instead
//! of sending it again (see `resume.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cadre_llm::types::{MessageRequest, MessageResponse};
use cadre_llm::{BatchRequest, BatchResult, BatchStatus, MessageBatch, ModelProvider};
use cadre_types::AttemptId;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use cadre_store::Store;

/// What a waiting worker gets back.
pub(crate) type BatchAnswer = std::result::Result<MessageResponse, String>;

/// One request waiting for its round.
#[derive(Debug)]
pub(crate) struct BatchItem {
    pub(crate) attempt: AttemptId,
    pub(crate) provider: Arc<dyn ModelProvider>,
    pub(crate) provider_name: String,
    pub(crate) request: MessageRequest,
    pub(crate) reply: oneshot::Sender<BatchAnswer>,
}

/// The batching task of one job run. Dropping it stops the task.
#[derive(Debug)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<BatchItem>,
    /// Owned here; aborted on drop so the task never outlives its job run.
    task: JoinHandle<()>,
}

impl Drop for Batcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Batcher {
    /// Starts the batching task.
    pub(crate) fn start(
        store: Store,
        window: Duration,
        poll_max: Duration,
        stop: CancellationToken,
    ) -> Self {
        let (tx, rx) = mpsc::channel(4096);
        let task = tokio::spawn(run(rx, store, window, poll_max, stop));
        Self { tx, task }
    }

    /// Queues a request for the next round.
    pub(crate) async fn submit(&self, item: BatchItem) -> std::result::Result<(), String> {
        self.tx
            .send(item)
            .await
            .map_err(|_| "the batching task has stopped".to_owned())
    }
}

async fn run(
    mut rx: mpsc::Receiver<BatchItem>,
    store: Store,
    window: Duration,
    poll_max: Duration,
    stop: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            item = rx.recv() => item,
            _ = stop.cancelled() => None,
        };
        let Some(first) = first else { return };
        let mut round = vec![first];
        loop {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => round.push(item),
                    None => break,
                },
                _ = tokio::time::sleep(window) => break,
                _ = stop.cancelled() => return,
            }
            if round.len() >= 10_000 {
                break;
            }
        }
        let mut by_provider: BTreeMap<String, Vec<BatchItem>> = BTreeMap::new();
        for item in round {
            by_provider
                .entry(item.provider_name.clone())
                .or_default()
                .push(item);
        }
        for (_, items) in by_provider {
            tokio::select! {
                _ = send_round(items, &store, poll_max) => {}
                _ = stop.cancelled() => return,
            }
        }
    }
}

/// Sends one round, polls it to the end and answers every waiting task.
async fn send_round(items: Vec<BatchItem>, store: &Store, poll_max: Duration) {
    let Some(provider) = items.first().map(|i| i.provider.clone()) else {
        return;
    };
    let requests: Vec<BatchRequest> = items
        .iter()
        .map(|i| BatchRequest {
            custom_id: i.attempt.to_string(),
            params: i.request.clone(),
        })
        .collect();
    let mut waiting: BTreeMap<String, oneshot::Sender<BatchAnswer>> = items
        .into_iter()
        .map(|i| (i.attempt.to_string(), i.reply))
        .collect();
    let batch = match provider.create_batch(requests).await {
        Ok(batch) => batch,
        Err(e) => {
            for (_, reply) in waiting {
                let _ = reply.send(Err(format!("creating the batch failed: {e}")));
            }
            return;
        }
    };
    let ids: Vec<AttemptId> = waiting.keys().filter_map(|k| k.parse().ok()).collect();
    if let Err(e) = store.set_attempts_batch(&ids, &batch.id).await {
        tracing::warn!(batch = %batch.id, "recording the batch id failed: {e}");
    }
    match poll_results(provider.as_ref(), batch, poll_max).await {
        Ok(lines) => {
            for (custom_id, answer) in lines {
                if let Some(reply) = waiting.remove(&custom_id) {
                    let _ = reply.send(answer);
                }
            }
            for (_, reply) in waiting {
                let _ = reply.send(Err(
                    "the batch returned no result for this request".to_owned()
                ));
            }
        }
        Err(e) => {
            for (_, reply) in waiting {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// Polls a batch with backoff until it ends, then reads its results.
pub(crate) async fn poll_results(
    provider: &dyn ModelProvider,
    mut batch: MessageBatch,
    poll_max: Duration,
) -> std::result::Result<Vec<(String, BatchAnswer)>, String> {
    let mut pause = Duration::from_millis(100);
    while batch.processing_status != BatchStatus::Ended {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(poll_max.max(Duration::from_millis(100)));
        batch = provider
            .get_batch(&batch.id)
            .await
            .map_err(|e| format!("polling batch {}: {e}", batch.id))?;
    }
    let lines = provider
        .batch_results(&batch)
        .await
        .map_err(|e| format!("reading batch {} results: {e}", batch.id))?;
    Ok(lines
        .into_iter()
        .map(|line| {
            let answer = match line.result {
                BatchResult::Succeeded { message } => Ok(message),
                BatchResult::Errored { error } => Err(format!(
                    "batch request errored ({}): {}",
                    error.kind.as_str(),
                    error.message
                )),
                BatchResult::Canceled => Err("batch request was canceled".to_owned()),
                BatchResult::Expired => Err("batch request expired before it ran".to_owned()),
                other => Err(format!("batch request ended as {other:?}")),
            };
            (line.custom_id, answer)
        })
        .collect())
}
