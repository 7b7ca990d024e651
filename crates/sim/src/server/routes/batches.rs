//! The Message Batches endpoints: create (every request answered at once,
//! results readable once the batch's processing delay has passed), list,
//! get, cancel, delete and the JSONL results.

use std::collections::{HashMap, HashSet};

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::simple;
use crate::Role;
use crate::agents;
use crate::api_error::ApiError;
use crate::batch::{Batch, paginate};
use crate::ids::sha256_hex;
use crate::log::LoggedRequest;
use crate::request::{Purpose, parse_request};
use crate::response::{UsageNums, message_json};
use crate::server::SimState;
use crate::server::http::{
    BATCH_LIMIT, base_url, check_auth, json_value, list_params, parse_json, read_body,
};
use crate::server::state::{lock, record_answer};

pub(super) async fn create_batch(
    State(sim): State<SimState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut rec = sim.begin("POST", "/v1/messages/batches");
    let result = sim.handle_create_batch(&mut rec, &headers, body).await;
    sim.reply(rec, result)
}

pub(super) async fn list_batches(
    State(sim): State<SimState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    simple(&sim, "GET", "/v1/messages/batches", &headers, || {
        let (limit, after, before) = list_params(&q)?;
        let now = sim.now_ms();
        let base = base_url(&headers);
        let batches = lock(&sim.inner.batches);
        let items: Vec<(String, Value)> = batches
            .newest_first()
            .into_iter()
            .map(|b| (b.id.clone(), b.json(now, &|ms| sim.wall(ms), &base, false)))
            .collect();
        Ok(paginate(items, limit, after.as_deref(), before.as_deref()))
    })
}

pub(super) async fn get_batch(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/messages/batches/{id}");
    simple(&sim, "GET", &path, &headers, || {
        sim.batch_json(&id, &headers)
    })
}

pub(super) async fn cancel_batch(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/messages/batches/{id}/cancel");
    simple(&sim, "POST", &path, &headers, || {
        let now = sim.now_ms();
        let mut batches = lock(&sim.inner.batches);
        let batch = batches.get_mut(&id).ok_or_else(|| batch_not_found(&id))?;
        if !batch.cancel(now) {
            return Err(ApiError::invalid(format!(
                "Message batch {id} has already ended and can no longer be canceled."
            )));
        }
        Ok(batch.json(now, &|ms| sim.wall(ms), &base_url(&headers), true))
    })
}

pub(super) async fn delete_batch(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/v1/messages/batches/{id}");
    simple(&sim, "DELETE", &path, &headers, || {
        let now = sim.now_ms();
        let mut batches = lock(&sim.inner.batches);
        let batch = batches.get(&id).ok_or_else(|| batch_not_found(&id))?;
        if !batch.ended(now) {
            return Err(ApiError::invalid(format!(
                "Message batch {id} cannot be deleted while it is still processing; cancel it first."
            )));
        }
        batches.remove(&id);
        Ok(json!({"id": id, "type": "message_batch_deleted"}))
    })
}

pub(super) async fn batch_results(
    State(sim): State<SimState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut rec = sim.begin("GET", &format!("/v1/messages/batches/{id}/results"));
    rec.body_sha256 = sha256_hex(b"");
    let result = check_auth(&headers).and_then(|()| {
        let now = sim.now_ms();
        let batches = lock(&sim.inner.batches);
        let batch = batches.get(&id).ok_or_else(|| batch_not_found(&id))?;
        if !batch.ended(now) {
            return Err(ApiError::invalid(format!(
                "Message batch {id} has not ended yet; results are available once processing_status is `ended`."
            )));
        }
        Ok(batch.results_jsonl())
    });
    let result = result.map(|jsonl| {
        rec.complete = true;
        let mut resp = Response::new(Body::from(jsonl));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-jsonl"),
        );
        resp
    });
    sim.reply(rec, result)
}

fn batch_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("message_batch: no batch with id {id}"))
}

impl SimState {
    async fn handle_create_batch(
        &self,
        rec: &mut LoggedRequest,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let bytes = read_body(body, BATCH_LIMIT).await?;
        rec.body_sha256 = sha256_hex(&bytes);
        check_auth(headers)?;
        let value = parse_json(&bytes)?;
        let obj = value
            .as_object()
            .ok_or_else(|| ApiError::invalid("The request body must be a JSON object"))?;
        for key in obj.keys() {
            if key != "requests" {
                return Err(ApiError::invalid(format!(
                    "{key}: Extra inputs are not permitted"
                )));
            }
        }
        let requests = match obj.get("requests") {
            Some(Value::Array(r)) => r,
            Some(_) => return Err(ApiError::invalid("requests: Input should be a valid list")),
            None => return Err(ApiError::invalid("requests: Field required")),
        };
        if requests.is_empty() {
            return Err(ApiError::invalid(
                "requests: List should have at least 1 item after validation, not 0",
            ));
        }
        if requests.len() > 100_000 {
            return Err(ApiError::invalid(
                "requests: a batch holds at most 100,000 requests",
            ));
        }
        let mut seen = HashSet::new();
        for (i, r) in requests.iter().enumerate() {
            let custom_id = r.get("custom_id").and_then(Value::as_str).ok_or_else(|| {
                ApiError::invalid(format!("requests.{i}.custom_id: Field required"))
            })?;
            let valid = !custom_id.is_empty()
                && custom_id.len() <= 64
                && custom_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid {
                return Err(ApiError::invalid(format!(
                    "requests.{i}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                )));
            }
            if !seen.insert(custom_id) {
                return Err(ApiError::invalid(format!(
                    "requests: custom_id values must be unique within a batch; {custom_id:?} is repeated"
                )));
            }
            if !r.get("params").is_some_and(Value::is_object) {
                return Err(ApiError::invalid(format!(
                    "requests.{i}.params: Field required"
                )));
            }
        }

        let batch_id = self.next_id("msgbatch_");
        let mut items = Vec::with_capacity(requests.len());
        for r in requests {
            let custom_id = r
                .get("custom_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let params = r.get("params").cloned().unwrap_or(Value::Null);
            let mut item = self.begin("BATCH", "/v1/messages/batches");
            item.batch_id = Some(batch_id.clone());
            item.custom_id = Some(custom_id.clone());
            item.body_sha256 = sha256_hex(params.to_string().as_bytes());
            let result = match parse_request(
                params,
                &self.inner.models,
                Purpose::Batch,
                &self.inner.secret,
            ) {
                Ok((req, model)) => {
                    item.model = Some(req.model.clone());
                    let (role, paths) = agents::peek(&req);
                    item.role = Some(role);
                    if role == Role::Worker {
                        item.subtask_path = paths.first().cloned();
                    }
                    let (answer, plan) = self.compute(&req, model, &item.body_sha256, None);
                    self.commit(&plan);
                    record_answer(&mut item, &answer.meta, &plan, answer.output_tokens);
                    item.status = 200;
                    item.complete = true;
                    let usage = UsageNums::new(&plan, &answer);
                    let msg_id = self.next_id("msg_");
                    json!({"type": "succeeded", "message": message_json(&msg_id, &req.model, &answer, &usage, "batch")})
                }
                Err(e) => {
                    item.status = e.status.as_u16();
                    json!({"type": "errored", "error": e.body(&item.request_id)})
                }
            };
            lock(&self.inner.log).push(item);
            items.push((custom_id, result));
        }
        let now = self.now_ms();
        let batch = Batch::new(
            batch_id,
            self.inner.scenario.seed,
            now,
            self.inner.scenario.batch.processing_delay_ms,
            items,
        );
        let body = batch.json(now, &|ms| self.wall(ms), &base_url(headers), false);
        lock(&self.inner.batches).insert(batch);
        rec.complete = true;
        Ok(json_value(StatusCode::OK, &body))
    }

    fn batch_json(&self, id: &str, headers: &HeaderMap) -> Result<Value, ApiError> {
        let now = self.now_ms();
        let batches = lock(&self.inner.batches);
        let batch = batches.get(id).ok_or_else(|| batch_not_found(id))?;
        Ok(batch.json(now, &|ms| self.wall(ms), &base_url(headers), false))
    }
}
