//! A scripted HTTP server on 127.0.0.1:0 and request builders.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use cadre_llm::{
    AnthropicClient, AnthropicSettings, ApiKey, ContentBlock, Message, MessageRequest, MessageRole,
    RetryPolicy,
};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub const KEY: &str = "sk-ant-test-SECRET-key-0123456789";

/// What the body does.
#[derive(Clone, Debug)]
pub enum BodyPlan {
    /// Sent whole.
    Full(Vec<u8>),
    /// These bytes, then the connection is aborted.
    Cut(Vec<u8>),
}

/// One scripted response.
#[derive(Clone, Debug)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: BodyPlan,
    pub delay: Duration,
}

impl Scripted {
    pub fn json(status: u16, body: Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: BodyPlan::Full(body.to_string().into_bytes()),
            delay: Duration::ZERO,
        }
    }

    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), content_type.into())],
            body: BodyPlan::Full(body.into()),
            delay: Duration::ZERO,
        }
    }

    pub fn sse(events: &[Value]) -> Self {
        Self::raw(200, "text/event-stream", sse_body(events))
    }

    /// An Anthropic error body.
    pub fn api_error(status: u16, kind: &str, message: &str) -> Self {
        Self::json(
            status,
            json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_body"}),
        )
        .header("request-id", &format!("req_{status}"))
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn cut(mut self) -> Self {
        self.body = match self.body {
            BodyPlan::Full(b) | BodyPlan::Cut(b) => BodyPlan::Cut(b),
        };
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// SSE framing with `event:` names taken from each JSON `type`.
pub fn sse_body(events: &[Value]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "event: {}\ndata: {e}\n\n",
                e["type"].as_str().unwrap_or("unknown")
            )
        })
        .collect()
}

/// A request the server saw.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    /// Path and query.
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Scripted>>,
    seen: Mutex<Vec<Seen>>,
}

/// The server; aborts its task when dropped.
pub struct TestServer {
    pub base_url: String,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start(script: Vec<Scripted>) -> Self {
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            seen: Mutex::default(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            base_url: format!("http://{addr}"),
            shared,
            task,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn remaining(&self) -> usize {
        self.shared.script.lock().unwrap().len()
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    shared.seen.lock().unwrap().push(Seen {
        at: Instant::now(),
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
    });
    let next = shared.script.lock().unwrap().pop_front();
    let Some(step) = next else {
        return Response::builder()
            .status(599)
            .body(Body::from("script exhausted"))
            .unwrap();
    };
    if !step.delay.is_zero() {
        tokio::time::sleep(step.delay).await;
    }
    let mut builder = Response::builder().status(StatusCode::from_u16(step.status).unwrap());
    for (name, value) in &step.headers {
        builder = builder.header(name, value);
    }
    let body = match step.body {
        BodyPlan::Full(bytes) => Body::from(bytes),
        // The pause lets hyper flush the headers and the first bytes (it
        // flushes when the body is pending) before the connection is aborted.
        BodyPlan::Cut(bytes) => Body::from_stream(
            futures::stream::iter(vec![
                Ok(Bytes::from(bytes)),
                Err(std::io::Error::other("scripted connection drop")),
            ])
            .then(|item| async move {
                if item.is_err() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                item
            }),
        ),
    };
    builder.body(body).unwrap()
}

/// Fast backoff so retry tests stay short; budgets as given.
pub fn fast_policy(max_retries: u32, overload_max_retries: u32) -> RetryPolicy {
    RetryPolicy {
        max_retries,
        overload_max_retries,
        overload_max_backoff: Duration::from_millis(20),
        initial_backoff: Duration::from_millis(5),
        retry_timeouts: true,
        max_backoff: Duration::from_millis(20),
    }
}

pub fn settings(server: &TestServer, retry: RetryPolicy) -> AnthropicSettings {
    AnthropicSettings {
        retry,
        ..AnthropicSettings::new(server.base_url.clone(), ApiKey::new(KEY))
    }
}

pub fn client(server: &TestServer, retry: RetryPolicy) -> AnthropicClient {
    AnthropicClient::new(settings(server, retry)).unwrap()
}

pub fn streaming_client(server: &TestServer, retry: RetryPolicy) -> AnthropicClient {
    AnthropicClient::new(AnthropicSettings {
        stream: true,
        ..settings(server, retry)
    })
    .unwrap()
}

pub fn request(max_tokens: u32) -> MessageRequest {
    MessageRequest {
        model: "claude-haiku-4-5".into(),
        max_tokens,
        system: vec![],
        tools: vec![],
        tool_choice: None,
        messages: vec![Message {
            role: MessageRole::User,
            content: vec![ContentBlock::text("hello")],
        }],
        thinking: None,
        output_config: None,
        stream: None,
    }
}

/// A complete non-streaming message body.
pub fn message_json(text: &str) -> Value {
    json!({
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": null,
        "usage": {"input_tokens": 12, "output_tokens": 3, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    })
}

pub fn ok_message(text: &str) -> Scripted {
    Scripted::json(200, message_json(text)).header("request-id", "req_ok")
}
