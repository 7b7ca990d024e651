//! `POST /v1/messages`: validate, apply rate limits and faults, compute the
//! answer, then deliver it as JSON or as a paced SSE stream (or break it on
//! purpose: a dropped connection, a malformed body, a mid-stream error).

use std::collections::VecDeque;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::Role;
use crate::agents;
use crate::api_error::ApiError;
use crate::faults::{FaultKind, FaultTarget};
use crate::ids::{hex, sha256_hex};
use crate::log::LoggedRequest;
use crate::request::{Purpose, parse_request};
use crate::response::{UsageNums, message_json, per_event_delay, sse, sse_events};
use crate::server::SimState;
use crate::server::http::{MESSAGES_LIMIT, check_auth, json_response, parse_json, read_body};
use crate::server::state::record_answer;

/// How long a dropped connection waits after its partial body before aborting.
const FLUSH_BEFORE_DROP: Duration = Duration::from_millis(25);

/// How a successful answer reaches the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Delivery {
    Normal,
    Drop,
    Malformed,
    StreamError,
}

pub(super) async fn messages(
    State(sim): State<SimState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut rec = sim.begin("POST", "/v1/messages");
    let result = sim.handle_messages(&mut rec, &headers, body).await;
    sim.reply(rec, result)
}

impl SimState {
    async fn handle_messages(
        &self,
        rec: &mut LoggedRequest,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let bytes = read_body(body, MESSAGES_LIMIT).await?;
        rec.body_sha256 = request_sha256(&bytes);
        check_auth(headers)?;
        let value = parse_json(&bytes)?;
        let (req, model) = parse_request(
            value,
            &self.inner.models,
            Purpose::Messages,
            &self.inner.secret,
        )?;
        rec.model = Some(req.model.clone());
        rec.stream = req.stream;
        let (role, paths) = agents::peek(&req);
        rec.role = Some(role);
        if role == Role::Worker {
            rec.subtask_path = paths.first().cloned();
        }
        self.take_rate_limit()?;
        let target = FaultTarget {
            role,
            model: &req.model,
            paths: &paths,
        };
        let firing = self.fire_fault(headers, &rec.body_sha256, &target)?;
        let mut extra_delay = Duration::ZERO;
        let mut forced = None;
        let mut delivery = Delivery::Normal;
        if let Some(f) = firing {
            rec.fault = Some(f.kind.as_str().to_string());
            match f.kind {
                FaultKind::RateLimit => {
                    return Err(ApiError::rate_limited(
                        "This request would exceed the rate limit for your organization (injected \
                         by cadre-sim). Please retry after the time in the retry-after header.",
                        f.retry_after_secs.unwrap_or(1),
                    ));
                }
                FaultKind::Overloaded => return Err(ApiError::overloaded(f.retry_after_secs)),
                FaultKind::ServerError => return Err(ApiError::internal()),
                FaultKind::StreamError if !req.stream => {
                    return Err(ApiError::overloaded(f.retry_after_secs));
                }
                FaultKind::StreamError => delivery = Delivery::StreamError,
                FaultKind::Slow => extra_delay = Duration::from_millis(f.delay_ms),
                FaultKind::DropConnection => delivery = Delivery::Drop,
                FaultKind::MalformedJson => delivery = Delivery::Malformed,
                other => forced = other.as_outcome(),
            }
        }

        let (answer, plan) = self.compute(&req, model, &rec.body_sha256, forced);
        record_answer(rec, &answer.meta, &plan, answer.output_tokens);
        let latency = self.latency(model, &rec.body_sha256) + extra_delay;
        let msg_id = self.next_id("msg_");
        let usage = UsageNums::new(&plan, &answer);

        if !req.stream {
            tokio::time::sleep(latency).await;
            self.commit(&plan);
            let message = message_json(&msg_id, &req.model, &answer, &usage, "standard");
            let full = Bytes::from(message.to_string());
            return Ok(match delivery {
                Delivery::Normal | Delivery::StreamError => {
                    rec.complete = true;
                    json_response(StatusCode::OK, full)
                }
                Delivery::Malformed => {
                    let cut = full.slice(..full.len() * 3 / 5);
                    json_response(StatusCode::OK, cut)
                }
                Delivery::Drop => {
                    let half = full.slice(..full.len() / 2);
                    let stream = EventStream {
                        events: VecDeque::from([half]),
                        delay: Duration::ZERO,
                        fail_after: Some(1),
                        sent: 0,
                        done: false,
                        complete_on_end: false,
                        sim: self.clone(),
                        seq: rec.seq,
                    };
                    let mut resp = Response::new(Body::from_stream(stream.into_stream()));
                    resp.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    );
                    resp
                }
            });
        }

        // Streaming: time to first event is half the latency, the rest is
        // spread over the events. The cache entry is readable from here on.
        tokio::time::sleep(latency / 2).await;
        self.commit(&plan);
        let mut events: VecDeque<Bytes> = sse_events(&msg_id, &req.model, &answer, &usage).into();
        let delay = per_event_delay(latency / 2, events.len());
        let mut fail_after = None;
        let mut complete_on_end = false;
        match delivery {
            Delivery::Normal => complete_on_end = true,
            Delivery::Drop => fail_after = Some(events.len() / 2),
            Delivery::Malformed => {
                if let Some(first) = events.front_mut() {
                    *first = Bytes::from_static(
                        b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\n\n",
                    );
                }
            }
            Delivery::StreamError => {
                let keep = events.len() / 2;
                events.truncate(keep.max(1));
                events.push_back(sse(
                    "error",
                    &json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
                ));
            }
        }
        let stream = EventStream {
            events,
            delay,
            fail_after,
            sent: 0,
            done: false,
            complete_on_end,
            sim: self.clone(),
            seq: rec.seq,
        };
        let mut resp = Response::new(Body::from_stream(stream.into_stream()));
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        Ok(resp)
    }
}

/// Streams SSE events with pacing, an optional mid-stream abort, and marks the
/// log entry complete once the last event went out.
struct EventStream {
    events: VecDeque<Bytes>,
    delay: Duration,
    fail_after: Option<usize>,
    sent: usize,
    done: bool,
    complete_on_end: bool,
    sim: SimState,
    seq: u64,
}

impl EventStream {
    fn into_stream(self) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures::stream::unfold(self, |mut st| async move {
            if st.done {
                return None;
            }
            if st.fail_after.is_some_and(|n| st.sent >= n) {
                // Give the server a moment to flush what was sent, so the
                // client sees the status, headers and a partial body first.
                tokio::time::sleep(FLUSH_BEFORE_DROP).await;
                st.done = true;
                return Some((Err(dropped()), st));
            }
            match st.events.pop_front() {
                Some(event) => {
                    if st.sent > 0 && !st.delay.is_zero() {
                        tokio::time::sleep(st.delay).await;
                    }
                    st.sent += 1;
                    Some((Ok(event), st))
                }
                None => {
                    if st.complete_on_end {
                        st.sim.mark_complete(st.seq);
                    }
                    None
                }
            }
        })
    }
}

fn dropped() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "cadre-sim: connection dropped (injected fault)",
    )
}

/// SHA-256 (hex) of the request the body carries, without the transport's
/// `stream` member (which clients such as cadre's write last): a streamed and
/// an unstreamed send of one request are the same request to the simulator,
/// with the same answer, and a resend of either is a repeat.
fn request_sha256(body: &[u8]) -> String {
    for suffix in [&b",\"stream\":true}"[..], &b",\"stream\":false}"[..]] {
        if let Some(head) = body.strip_suffix(suffix) {
            // Hashed in two parts, never copied.
            let mut hasher = Sha256::new();
            hasher.update(head);
            hasher.update(b"}");
            return hex(&hasher.finalize());
        }
    }
    sha256_hex(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_body_hashes_as_the_same_body_without_its_stream_member() {
        let plain = br#"{"model":"m","max_tokens":1}"#;
        for streamed in [
            &br#"{"model":"m","max_tokens":1,"stream":true}"#[..],
            &br#"{"model":"m","max_tokens":1,"stream":false}"#[..],
        ] {
            assert_eq!(request_sha256(streamed), sha256_hex(plain));
        }
        assert_eq!(request_sha256(plain), sha256_hex(plain));
        assert_ne!(
            request_sha256(br#"{"model":"m","max_tokens":2,"stream":true}"#),
            sha256_hex(plain)
        );
    }
}
