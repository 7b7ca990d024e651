//! `GET /v1/jobs/{id}/files`: a job's files with their worker attempts, for
//! the dashboard's grid and file panel (and any client that wants more than
//! the report's one line per file); `GET /v1/jobs/{id}/costs`: its model
//! calls' cost over time by role and tier, from the ledger.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use cadre_store::AttemptRecord;
use cadre_types::SubtaskId;
use cadre_types::api::{AttemptDetail, CostPoint, CostTimeline, FileDetail, FileList};

use crate::api::{job_id, load_job};
use crate::error::ApiError;
use crate::state::AppState;

fn attempt_detail(a: AttemptRecord) -> AttemptDetail {
    AttemptDetail {
        attempt_id: a.id,
        role: a.role,
        tier: a.tier,
        model: a.model,
        ordinal: a.ordinal,
        outcome: a.outcome,
        failure: a.failure,
        error: a.error,
        input_tokens: a.input_tokens,
        output_tokens: a.output_tokens,
        cache_read_tokens: a.cache_read_tokens,
        cost_usd: a.cost_usd,
        latency_ms: a.latency_ms,
        started_at: a.started_at,
        finished_at: a.finished_at,
    }
}

pub(crate) async fn files(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FileList>, ApiError> {
    let id = job_id(&id)?;
    load_job(&state, id).await?;
    let mut by_subtask: HashMap<SubtaskId, Vec<AttemptDetail>> = HashMap::new();
    state
        .store()
        .for_each_attempt_brief(id, |a| {
            if let Some(subtask) = a.subtask_id {
                by_subtask
                    .entry(subtask)
                    .or_default()
                    .push(attempt_detail(a));
            }
        })
        .await?;
    let mut data = Vec::new();
    state
        .store()
        .for_each_subtask_brief(id, |s| {
            data.push(FileDetail {
                attempts: by_subtask.remove(&s.id).unwrap_or_default(),
                subtask_id: s.id,
                path: s.path,
                status: s.status,
                complexity: s.complexity,
                error_cost: s.error_cost,
                start_tier: s.start_tier,
                current_tier: s.current_tier,
                reason: s.reason,
                updated_at: s.updated_at,
            });
        })
        .await?;
    Ok(Json(FileList { job_id: id, data }))
}

/// `GET /v1/jobs/{id}/costs`: every recorded call (planner, workers,
/// reviewer) summed per second, role and tier.
pub(crate) async fn costs(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CostTimeline>, ApiError> {
    let id = job_id(&id)?;
    load_job(&state, id).await?;
    let data = state
        .store()
        .call_cost_timeline(id)
        .await?
        .into_iter()
        .map(|row| CostPoint {
            at: row.at,
            role: row.role,
            tier: row.tier,
            calls: row.calls,
            cost_usd: row.cost_usd,
        })
        .collect();
    Ok(Json(CostTimeline { job_id: id, data }))
}
