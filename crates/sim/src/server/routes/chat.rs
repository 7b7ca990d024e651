//! `POST /v1/chat/completions`: the OpenAI-compatible endpoint. Quirks
//! refuse what their servers refuse, the body is translated to Messages and
//! validated and answered like `/v1/messages`, and the answer goes back on
//! the Chat wire (see [`crate::chat`]).

use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;

use crate::Role;
use crate::agents;
use crate::chat::{
    ChatError, ChatQuirk, check_quirks, chunk_frames, completion_json, generate_whole,
    parse_quirk_list, stream_body, to_messages_body,
};
use crate::faults::{FaultKind, FaultTarget};
use crate::ids::sha256_hex;
use crate::log::LoggedRequest;
use crate::request::{Purpose, parse_request};
use crate::response::UsageNums;
use crate::server::SimState;
use crate::server::http::{MESSAGES_LIMIT, json_response, read_body};
use crate::server::state::record_answer;

pub(super) async fn chat_completions(
    State(sim): State<SimState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut rec = sim.begin("POST", "/v1/chat/completions");
    let resp = match sim.handle_chat(&mut rec, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => {
            let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
            json_response(status, Bytes::from(e.body().to_string()))
        }
    };
    sim.finish(rec, resp)
}

impl SimState {
    async fn handle_chat(
        &self,
        rec: &mut LoggedRequest,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ChatError> {
        let bytes = read_body(body, MESSAGES_LIMIT)
            .await
            .map_err(|e| ChatError::new(413, "invalid_request_error", e.message))?;
        rec.body_sha256 = sha256_hex(&bytes);
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| ChatError::invalid(format!("invalid JSON body: {e}")))?;
        let mut quirks = self.inner.scenario.chat.quirks.clone();
        if let Some(h) = headers.get("x-sim-quirks").and_then(|v| v.to_str().ok()) {
            quirks.extend(parse_quirk_list(h).map_err(ChatError::invalid)?);
        }
        check_quirks(&value, &quirks)?;
        let (messages_body, meta) = to_messages_body(&value)?;
        let (mut req, model) = parse_request(
            messages_body,
            &self.inner.models,
            Purpose::Messages,
            &self.inner.secret,
        )
        .map_err(|e| ChatError::new(e.status.as_u16(), "invalid_request_error", e.message))?;
        rec.model = Some(req.model.clone());
        let window = match self.inner.scenario.chat.context_window {
            0 => model.context_window,
            n => n,
        };
        let prompt = req.input_tokens();
        if prompt > window {
            return Err(ChatError::new(
                400,
                "invalid_request_error",
                format!("Requested tokens ({prompt}) exceed context window of {window}"),
            ));
        }
        let left = window - prompt;
        req.max_tokens = meta.max_tokens.unwrap_or(left).min(left);
        let (role, paths) = agents::peek(&req);
        rec.role = Some(role);
        if role == Role::Worker {
            rec.subtask_path = paths.first().cloned();
        }
        let target = FaultTarget {
            role,
            model: &req.model,
            paths: &paths,
        };
        let firing = self
            .fire_fault(headers, &rec.body_sha256, &target)
            .map_err(|e| ChatError::invalid(e.message))?;
        let mut forced = None;
        let mut extra_delay = Duration::ZERO;
        if let Some(f) = firing {
            rec.fault = Some(f.kind.as_str().to_string());
            match f.kind {
                FaultKind::RateLimit | FaultKind::Overloaded => {
                    return Err(ChatError::new(429, "rate_limit_error", "Too many requests"));
                }
                FaultKind::ServerError
                | FaultKind::StreamError
                | FaultKind::DropConnection
                | FaultKind::MalformedJson => {
                    return Err(ChatError::new(
                        500,
                        "internal_server_error",
                        "Internal error",
                    ));
                }
                FaultKind::Slow => extra_delay = Duration::from_millis(f.delay_ms),
                other => forced = other.as_outcome(),
            }
        }
        let (slot, busy_with_abandoned) = if quirks.contains(&ChatQuirk::KeepsGenerating) {
            self.inner.chat_slot.acquire().await
        } else {
            (None, false)
        };
        if busy_with_abandoned {
            rec.fault = Some("busy_with_abandoned_generation".to_owned());
        }
        let (answer, plan) = self.compute(&req, model, &rec.body_sha256, forced);
        let named_choice = value
            .get("tool_choice")
            .is_some_and(serde_json::Value::is_object);
        if meta.stream
            && !named_choice
            && quirks.contains(&ChatQuirk::StreamsOnlyNamedToolCalls)
            && ((answer.calls_a_tool() && !quirks.contains(&ChatQuirk::ProseUnlessNamed))
                || value.get("tool_choice").and_then(serde_json::Value::as_str) == Some("required"))
        {
            // The handler raised after the 200 went out: nothing was answered.
            rec.fault = Some("stream_closed_without_data".to_owned());
            return Ok(event_stream(Body::empty()));
        }
        record_answer(rec, &answer.meta, &plan, answer.output_tokens);
        let latency = self.latency(model, &rec.body_sha256) + extra_delay;
        let slot = if meta.stream {
            slot
        } else {
            generate_whole(slot, latency).await;
            None
        };
        self.commit(&plan);
        let usage = UsageNums::new(&plan, &answer);
        let id = self.next_id("chatcmpl-");
        let body = completion_json(&id, &req.model, &answer, &usage, &quirks, named_choice);
        rec.complete = true;
        if meta.stream {
            rec.stream = true;
            let frames = chunk_frames(&body, quirks.contains(&ChatQuirk::RepeatsToolCallHeader));
            return Ok(event_stream(stream_body(frames, latency, slot)));
        }
        Ok(json_response(StatusCode::OK, Bytes::from(body.to_string())))
    }
}

/// A 200 `text/event-stream` response with `body`.
fn event_stream(body: Body) -> Response {
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}
