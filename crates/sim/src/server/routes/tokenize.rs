//! The tokenizer endpoints local servers offer beside `/v1`, counting by the
//! sim's convention ([`crate::tokens`]): llama-cpp-python's `POST
//! /extras/tokenize/count` (`{"input"}` -> `{"count"}`) and llama.cpp
//! `llama-server`'s `POST /tokenize` (`{"content"}` -> `{"tokens": [...]}`).

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use crate::api_error::ApiError;
use crate::ids::sha256_hex;
use crate::server::SimState;
use crate::server::http::{MESSAGES_LIMIT, json_value, parse_json, read_body};
use crate::tokens::text_tokens;

pub(super) async fn tokenize_count(State(sim): State<SimState>, body: Body) -> Response {
    let mut rec = sim.begin("POST", "/extras/tokenize/count");
    let result = count_field(&mut rec, body, "input")
        .await
        .map(|n| json_value(StatusCode::OK, &json!({"count": n})));
    sim.reply(rec, result)
}

pub(super) async fn tokenize(State(sim): State<SimState>, body: Body) -> Response {
    let mut rec = sim.begin("POST", "/tokenize");
    let result = count_field(&mut rec, body, "content").await.map(|n| {
        let tokens: Vec<u64> = (0..n).map(|i| i % 32_000).collect();
        json_value(StatusCode::OK, &json!({"tokens": tokens}))
    });
    sim.reply(rec, result)
}

/// Tokens of the string `field` of the JSON body.
async fn count_field(
    rec: &mut crate::log::LoggedRequest,
    body: Body,
    field: &str,
) -> Result<u64, ApiError> {
    let bytes = read_body(body, MESSAGES_LIMIT).await?;
    rec.body_sha256 = sha256_hex(&bytes);
    let value = parse_json(&bytes)?;
    let text = value
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::invalid(format!("{field}: Field required (a string)")))?;
    let tokens = text_tokens(text);
    rec.input_tokens = tokens;
    rec.complete = true;
    Ok(tokens)
}
