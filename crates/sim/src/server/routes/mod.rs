//! The router: one module per endpoint family, plus the fallbacks and the
//! wrapper for simple (bodiless) `/v1` handlers.

mod batches;
mod chat;
mod control;
mod count_tokens;
mod messages;
mod models;
mod tokenize;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::Value;

use crate::api_error::ApiError;
use crate::ids::sha256_hex;
use crate::server::SimState;
use crate::server::http::{check_auth, json_value};
use batches::{batch_results, cancel_batch, create_batch, delete_batch, get_batch, list_batches};
use chat::chat_completions;
use control::{add_fault, clear_faults, list_faults, sim_requests, sim_stats};
use count_tokens::count_tokens;
use messages::messages;
use models::{get_model, list_models};
use tokenize::{tokenize, tokenize_count};

/// The sim's routes: the Anthropic API under `/v1` and the control API under `/sim`.
pub fn router(state: SimState) -> Router {
    Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/messages/batches", post(create_batch).get(list_batches))
        .route(
            "/v1/messages/batches/{id}",
            get(get_batch).delete(delete_batch),
        )
        .route("/v1/messages/batches/{id}/cancel", post(cancel_batch))
        .route("/v1/messages/batches/{id}/results", get(batch_results))
        .route("/v1/models", get(list_models))
        .route("/extras/tokenize/count", post(tokenize_count))
        .route("/tokenize", post(tokenize))
        .route("/v1/models/{id}", get(get_model))
        .route("/sim/requests", get(sim_requests))
        .route("/sim/stats", get(sim_stats))
        .route(
            "/sim/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Runs a simple (bodiless) `/v1` handler with auth, logging and headers.
fn simple(
    sim: &SimState,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    f: impl FnOnce() -> Result<Value, ApiError>,
) -> Response {
    let mut rec = sim.begin(method, path);
    rec.body_sha256 = sha256_hex(b"");
    let result = check_auth(headers).and_then(|()| f()).map(|v| {
        rec.complete = true;
        json_value(StatusCode::OK, &v)
    });
    sim.reply(rec, result)
}

async fn not_found(State(sim): State<SimState>, method: Method, uri: Uri) -> Response {
    let rec = sim.begin(method.as_str(), uri.path());
    let e = ApiError::not_found(format!("Not found: {method} {}", uri.path()));
    sim.reply(rec, Err(e))
}

async fn method_not_allowed(State(sim): State<SimState>, method: Method, uri: Uri) -> Response {
    let rec = sim.begin(method.as_str(), uri.path());
    let e = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        format!("Method {method} is not allowed on {}", uri.path()),
    );
    sim.reply(rec, Err(e))
}
