//! Resuming a job: attempts the previous run left `running` are marked
//! interrupted, subtasks it left `running` go back to `pending` (in a
//! cluster, except those other daemons run under live claims), and answers
//! of interrupted Message Batch attempts are fetched from their batch into
//! the ledger, so the resumed run replays them instead of sending again.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use cadre_store::{AttemptRecord, NewCall};
use cadre_types::{AttemptOutcome, EventKind, JobId, Role};
use serde_json::json;

use crate::Result;
use crate::batcher::poll_results;
use crate::engine::Engine;
use crate::pricing::price_usage;

impl Engine {
    /// Readies a job that a previous run left mid-way.
    pub(crate) async fn prepare_resume(&self, job_id: JobId) -> Result<()> {
        let store = self.store();
        // In a cluster, files run under live claims are their claimers'
        // (crate::claims); the rest goes back to pending.
        let claims = self.claim_identity().is_some();
        let interrupted = store
            .release_running(job_id, claims, "the previous run stopped")
            .await?;
        self.recover_batches(job_id).await?;
        if interrupted > 0 {
            self.emit(
                job_id,
                None,
                EventKind::Note,
                format!("resuming: {interrupted} attempt(s) were interrupted"),
                json!({}),
            )
            .await?;
        }
        Ok(())
    }

    /// After a restart: attempts that went out in a Message Batch and were
    /// interrupted before their answer was recorded get it from that batch
    /// (polled to its end), so the resumed run replays them from the ledger
    /// instead of sending them again.
    async fn recover_batches(&self, job_id: JobId) -> Result<()> {
        let store = self.store();
        let config = self.config();
        let recorded: HashSet<String> = store
            .list_calls(job_id)
            .await?
            .into_iter()
            .map(|c| c.request_sha256)
            .collect();
        let mut by_batch: BTreeMap<String, Vec<AttemptRecord>> = BTreeMap::new();
        for a in store.list_attempts_brief(job_id).await? {
            if a.role == Role::Worker
                && a.outcome == AttemptOutcome::Interrupted
                && !recorded.contains(&a.request_sha256)
                && let Some(batch) = a.batch_id.clone()
            {
                by_batch.entry(batch).or_default().push(a);
            }
        }
        for (batch_id, attempts) in by_batch {
            let Some(tier) = attempts
                .first()
                .map(|a| config.tier_of_rung(&a.tier).to_owned())
            else {
                continue;
            };
            let (Ok(provider), Some(model)) =
                (self.providers().for_tier(&tier), config.models.get(&tier))
            else {
                continue;
            };
            let poll_max = Duration::from_secs(config.limits.batch_poll_max_secs);
            let outcome = match provider.get_batch(&batch_id).await {
                Ok(batch) => poll_results(provider.as_ref(), batch, poll_max).await,
                Err(e) => Err(e.to_string()),
            };
            let lines = match outcome {
                Ok(lines) => lines,
                Err(message) => {
                    self.emit(
                        job_id,
                        None,
                        EventKind::Note,
                        format!("batch {batch_id} could not be recovered: {message}"),
                        json!({}),
                    )
                    .await?;
                    continue;
                }
            };
            let mut recovered = 0;
            for (custom_id, answer) in lines {
                let (Some(a), Ok(message)) = (
                    attempts.iter().find(|a| a.id.to_string() == custom_id),
                    answer,
                ) else {
                    continue;
                };
                let usage = message.usage;
                store
                    .record_call(&NewCall {
                        job_id,
                        attempt_id: a.id,
                        turn: 0,
                        request_sha256: a.request_sha256.clone(),
                        role: Role::Worker,
                        tier: tier.clone(),
                        model: model.model.clone(),
                        response_json: serde_json::to_string(&message)
                            .map_err(cadre_store::Error::Json)?,
                        input_tokens: usage.input_tokens,
                        output_tokens: usage.output_tokens,
                        cache_read_tokens: usage.cache_read_input_tokens,
                        cache_write_tokens: usage.cache_creation_input_tokens,
                        cost_usd: price_usage(model, &usage, true),
                        latency_ms: 0,
                        batch: true,
                    })
                    .await?;
                recovered += 1;
            }
            self.emit(
                job_id,
                None,
                EventKind::Note,
                format!("recovered {recovered} answer(s) from batch {batch_id} instead of sending them again"),
                json!({"batch_id": batch_id, "recovered": recovered}),
            )
            .await?;
        }
        Ok(())
    }
}
