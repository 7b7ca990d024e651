//! `GET /v1/models` and `GET /v1/models/{id}`: the scenario's model table in
//! the API's model object shape.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::simple;
use crate::api_error::ApiError;
use crate::batch::paginate;
use crate::ids::sha256_hex;
use crate::models::ModelSpec;
use crate::server::SimState;
use crate::server::http::{json_value, list_params};

pub(super) async fn list_models(
    State(sim): State<SimState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if !headers.contains_key("anthropic-version") {
        return openai_list(&sim);
    }
    simple(&sim, "GET", "/v1/models", &headers, || {
        let (limit, after, before) = list_params(&q)?;
        let items = sim
            .inner
            .models
            .all()
            .iter()
            .map(|m| (m.id.clone(), model_json(m)))
            .collect();
        Ok(paginate(items, limit, after.as_deref(), before.as_deref()))
    })
}

/// An OpenAI-compatible client (no `anthropic-version`): the list as local
/// servers give it, no key needed, each model's window as vLLM's
/// `max_model_len` (the `[chat] context_window` when set).
fn openai_list(sim: &SimState) -> Response {
    let mut rec = sim.begin("GET", "/v1/models");
    rec.body_sha256 = sha256_hex(b"");
    let window = sim.inner.scenario.chat.context_window;
    let data: Vec<Value> = sim
        .inner
        .models
        .all()
        .iter()
        .map(|m| {
            json!({"id": m.id, "object": "model", "owned_by": "cadre-sim",
                   "max_model_len": if window > 0 { window } else { m.context_window }})
        })
        .collect();
    rec.complete = true;
    let body = json!({"object": "list", "data": data});
    sim.finish(rec, json_value(StatusCode::OK, &body))
}

pub(super) async fn get_model(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/models/{id}");
    simple(&sim, "GET", &path, &headers, || {
        sim.inner
            .models
            .get(&id)
            .map(model_json)
            .ok_or_else(|| ApiError::not_found(format!("model: {id}")))
    })
}

fn model_json(m: &ModelSpec) -> Value {
    let effort = |level: &str| json!({"supported": m.effort_levels.iter().any(|l| l == level)});
    let thinking_on = m.thinking != crate::ThinkingMode::None;
    json!({
        "type": "model",
        "id": m.id,
        "display_name": m.display_name,
        "created_at": m.created_at,
        "lifecycle": "active",
        "max_input_tokens": m.context_window,
        "max_tokens": m.max_output_tokens,
        "capabilities": {
            "batch": {"supported": true},
            "citations": {"supported": true},
            "code_execution": {"supported": false},
            "context_management": {"supported": false},
            "effort": {
                "supported": m.supports_effort(),
                "low": effort("low"),
                "medium": effort("medium"),
                "high": effort("high"),
                "xhigh": effort("xhigh"),
                "max": effort("max"),
            },
            "image_input": {"supported": true},
            "pdf_input": {"supported": true},
            "server_tools": {"supported": false, "code_execution": {"supported": false}, "web_search": {"supported": false}},
            "structured_outputs": {"supported": true},
            "thinking": {
                "supported": thinking_on,
                "types": {
                    "adaptive": {"supported": m.thinking.accepts_adaptive()},
                    "between_tools": {"supported": thinking_on},
                    "disabled": {"supported": true},
                    "enabled": {"supported": m.thinking.accepts_budget()},
                },
            },
        },
    })
}
