//! Small HTTP helpers every route uses: JSON responses, reading and parsing
//! a body under its size cap, the API-key check, the base URL and the list
//! pagination parameters.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use crate::api_error::ApiError;

/// Body size cap of `POST /v1/messages` and `count_tokens` (from the API docs).
pub(super) const MESSAGES_LIMIT: usize = 32 * 1024 * 1024;
/// Body size cap of `POST /v1/messages/batches`.
pub(super) const BATCH_LIMIT: usize = 256 * 1024 * 1024;

/// A response with a JSON body already serialised.
pub(super) fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A response with `value` as its JSON body.
pub(super) fn json_value(status: StatusCode, value: &Value) -> Response {
    json_response(status, Bytes::from(value.to_string()))
}

/// The whole body, or 413 when it is over `limit` bytes.
pub(super) async fn read_body(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::too_large(format!(
            "Request exceeds the maximum allowed number of bytes ({limit})."
        ))
    })
}

/// The body as JSON, or the API's 400 for invalid JSON.
pub(super) fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::invalid(format!(
            "There was an error parsing the body of your request: invalid JSON ({e})"
        ))
    })
}

/// `x-api-key` (any non-empty value) or `Authorization: Bearer ...`, then
/// `anthropic-version`. The key's value is never logged.
pub(super) fn check_auth(headers: &HeaderMap) -> Result<(), ApiError> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let has_key = get("x-api-key").is_some_and(|k| !k.is_empty());
    let has_bearer = get("authorization").is_some_and(|a| {
        a.strip_prefix("Bearer ")
            .is_some_and(|t| !t.trim().is_empty())
    });
    if !has_key && !has_bearer {
        return Err(ApiError::authentication("x-api-key header is required"));
    }
    if get("anthropic-version").is_none_or(str::is_empty) {
        return Err(ApiError::invalid("anthropic-version: header is required"));
    }
    Ok(())
}

/// `http://HOST` from the `Host` header (for the batch `results_url`).
pub(super) fn base_url(headers: &HeaderMap) -> String {
    match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}"),
        None => "http://127.0.0.1".to_string(),
    }
}

/// `limit` (1..=1000, default 20), `after_id` and `before_id` of a list endpoint.
pub(super) fn list_params(
    q: &HashMap<String, String>,
) -> Result<(usize, Option<String>, Option<String>), ApiError> {
    let limit = match q.get("limit") {
        None => 20,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid(
                    "limit: Input should be an integer between 1 and 1000",
                ));
            }
        },
    };
    Ok((
        limit,
        q.get("after_id").cloned(),
        q.get("before_id").cloned(),
    ))
}
