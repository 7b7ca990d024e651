//! The sim's own control API under `/sim` (not part of the Anthropic API):
//! the request log, aggregate stats and runtime faults.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use crate::api_error::ApiError;
use crate::faults::FaultSpec;
use crate::server::SimState;
use crate::server::http::{MESSAGES_LIMIT, json_value, read_body};
use crate::server::state::lock;

pub(super) async fn sim_requests(State(sim): State<SimState>) -> Response {
    json_value(StatusCode::OK, &json!({"requests": sim.request_log()}))
}

pub(super) async fn sim_stats(State(sim): State<SimState>) -> Response {
    match serde_json::to_value(sim.stats()) {
        Ok(v) => json_value(StatusCode::OK, &v),
        Err(_) => sim.error_response(&ApiError::internal(), ""),
    }
}

pub(super) async fn add_fault(State(sim): State<SimState>, body: Body) -> Response {
    let result = async {
        let bytes = read_body(body, MESSAGES_LIMIT).await?;
        let spec: FaultSpec = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::invalid(format!("invalid fault table: {e}")))?;
        let mut book = lock(&sim.inner.faults);
        book.add(spec);
        Ok::<usize, ApiError>(book.snapshot().len())
    }
    .await;
    match result {
        Ok(n) => json_value(StatusCode::OK, &json!({"faults": n})),
        Err(e) => sim.error_response(&e, ""),
    }
}

pub(super) async fn list_faults(State(sim): State<SimState>) -> Response {
    let faults = lock(&sim.inner.faults).snapshot();
    json_value(StatusCode::OK, &json!({"faults": faults}))
}

pub(super) async fn clear_faults(State(sim): State<SimState>) -> Response {
    sim.clear_faults();
    json_value(StatusCode::OK, &json!({"faults": 0}))
}
