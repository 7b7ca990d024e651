//! The OpenAI-compatible client over a real socket.

use cadre_llm::{
    ApiErrorKind, ApiKey, ContentBlock, Error, Message, MessageRequest, MessageRole, ModelProvider,
    OpenAiClient, OpenAiSettings, RetryPolicy, StopReason, SystemBlock, ToolChoice, ToolDefinition,
    Usage,
};
use pretty_assertions::assert_eq;
use serde_json::json;

use super::support::*;

fn openai(server: &TestServer, key: Option<&str>, retry: RetryPolicy) -> OpenAiClient {
    OpenAiClient::new(OpenAiSettings {
        retry,
        ..OpenAiSettings::new(format!("{}/v1", server.base_url), key.map(ApiKey::new))
    })
    .unwrap()
}

fn worker_request() -> MessageRequest {
    MessageRequest {
        model: "qwen2.5-7b".into(),
        max_tokens: 512,
        system: vec![SystemBlock::text("You edit files.")],
        tools: vec![ToolDefinition {
            name: "edit_file".into(),
            description: Some("Edit the file".into()),
            input_schema: json!({"type": "object", "properties": {"edits": {"type": "array"}}})
                .into(),
            cache_control: None,
        }],
        tool_choice: Some(ToolChoice::Any),
        messages: vec![
            Message {
                role: MessageRole::User,
                content: vec![ContentBlock::text("<subtask/>")],
            },
            Message {
                role: MessageRole::Assistant,
                content: vec![
                    ContentBlock::text("Reading first."),
                    ContentBlock::ToolUse {
                        id: "call_1".into(),
                        name: "read_file".into(),
                        input: json!({"path": "a.rs"}),
                    },
                ],
            },
            Message {
                role: MessageRole::User,
                content: vec![ContentBlock::ToolResult {
                    tool_use_id: "call_1".into(),
                    content: "fn a() {}".into(),
                    is_error: false,
                }],
            },
        ],
        thinking: None,
        output_config: None,
        stream: None,
    }
}

#[tokio::test]
async fn round_trip_with_tool_calls_and_cached_tokens() {
    let server = TestServer::start(vec![
        Scripted::json(
            200,
            json!({
                "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "qwen2.5-7b",
                "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                    "role": "assistant", "content": "Editing.", "refusal": null,
                    "tool_calls": [{"id": "call_2", "type": "function",
                        "function": {"name": "edit_file", "arguments": "{\"edits\":[{\"old\":\"a\",\"new\":\"b\"}]}"}}]}}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120,
                          "prompt_tokens_details": {"cached_tokens": 60, "cache_write_tokens": null}}
            }),
        )
        .header("x-request-id", "req_oa")
        .header("x-ratelimit-remaining-requests", "42"),
    ])
    .await;
    let client = openai(&server, Some("sk-openai-SECRET"), RetryPolicy::none());
    assert_eq!(client.name(), "openai");
    let reply = client.send(&worker_request()).await.unwrap();
    assert_eq!(
        reply.message.content,
        vec![
            ContentBlock::text("Editing."),
            ContentBlock::ToolUse {
                id: "call_2".into(),
                name: "edit_file".into(),
                input: json!({"edits": [{"old": "a", "new": "b"}]}),
            },
        ]
    );
    assert_eq!(reply.message.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(
        reply.message.usage,
        Usage {
            input_tokens: 40,
            output_tokens: 20,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 60,
            cache_creation: None
        }
    );
    assert_eq!(reply.message.id, "chatcmpl-1");
    assert_eq!(reply.request_id.as_deref(), Some("req_oa"));
    assert_eq!(reply.rate_limits.requests_remaining, Some(42));

    let seen = server.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer sk-openai-SECRET")
    );
    assert_eq!(seen[0].header("x-api-key"), None);
    assert_eq!(
        seen[0].json(),
        json!({
            "model": "qwen2.5-7b",
            "messages": [
                {"role": "system", "content": "You edit files."},
                {"role": "user", "content": "<subtask/>"},
                {"role": "assistant", "content": "Reading first.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": "{\"path\":\"a.rs\"}"}}
                ]},
                {"role": "tool", "content": "fn a() {}", "tool_call_id": "call_1"}
            ],
            "tools": [{"type": "function", "function": {"name": "edit_file", "description": "Edit the file",
                       "parameters": {"type": "object", "properties": {"edits": {"type": "array"}}}}}],
            // One tool, forced by name: the default that every common server takes.
            "tool_choice": {"type": "function", "function": {"name": "edit_file"}},
            "max_tokens": 512,
            "stream": false
        })
    );
    assert!(!format!("{client:?}").contains("SECRET"));
}

#[tokio::test]
async fn finish_reasons_map_to_stop_reasons() {
    let reply_with = |reason: &str| {
        Scripted::json(
            200,
            json!({"choices": [{"finish_reason": reason, "message": {"role": "assistant", "content": "x"}}],
                   "usage": {"prompt_tokens": 5, "completion_tokens": 1}}),
        )
    };
    let server = TestServer::start(vec![
        reply_with("stop"),
        reply_with("length"),
        reply_with("content_filter"),
    ])
    .await;
    let client = openai(&server, None, RetryPolicy::none());
    let mut stops = Vec::new();
    for _ in 0..3 {
        stops.push(
            client
                .send(&worker_request())
                .await
                .unwrap()
                .message
                .stop_reason,
        );
    }
    assert_eq!(
        stops,
        vec![
            Some(StopReason::EndTurn),
            Some(StopReason::MaxTokens),
            Some(StopReason::Refusal)
        ]
    );
    assert!(
        server
            .seen()
            .iter()
            .all(|s| s.header("authorization").is_none())
    );
}

#[tokio::test]
async fn errors_are_classified_and_retried() {
    let server = TestServer::start(vec![
        Scripted::json(429, json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}))
            .header("retry-after-ms", "10"),
        Scripted::json(200, json!({"choices": [{"finish_reason": "stop", "message": {"content": "ok"}}]})),
        Scripted::json(401, json!({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error", "code": "invalid_api_key"}}))
            .header("x-request-id", "req_401"),
        Scripted::json(200, json!({"choices": []})),
    ])
    .await;
    let client = openai(&server, Some("k"), fast_policy(2, 2));
    let reply = client.send(&worker_request()).await.unwrap();
    assert_eq!((reply.retries, reply.overload_retries), (1, 1));
    assert_eq!(reply.message.usage, Usage::default());

    let err = client.send(&worker_request()).await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    assert_eq!(err.api_kind(), Some(&ApiErrorKind::Authentication));
    assert_eq!(err.request_id(), Some("req_401"));
    assert!(err.to_string().contains("Incorrect API key provided"));

    let err = client.send(&worker_request()).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

fn chunk_frames(chunks: &[serde_json::Value]) -> String {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    body
}

#[tokio::test]
async fn a_streamed_answer_is_assembled_like_a_whole_one() {
    let body = chunk_frames(&[
        json!({"id": "chatcmpl-s", "model": "qwen", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Edit"}}]}),
        json!({"id": "chatcmpl-s", "choices": [{"index": 0, "delta": {"content": "ing."}}]}),
        json!({"id": "chatcmpl-s", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_9", "type": "function", "function": {"name": "edit_file", "arguments": "{\"edits\":[{\"old\":"}}]}}]}),
        json!({"id": "chatcmpl-s", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "\"a\",\"new\":\"b\"}]}"}}]}}]}),
        json!({"id": "chatcmpl-s", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}],
               "usage": {"prompt_tokens": 50, "completion_tokens": 12}}),
    ]);
    let server = TestServer::start(vec![Scripted::raw(200, "text/event-stream", body)]).await;
    let mut settings = OpenAiSettings::new(format!("{}/v1", server.base_url), None);
    settings.retry = RetryPolicy::none();
    settings.stream = true;
    let client = OpenAiClient::new(settings).unwrap();
    let reply = client.send(&worker_request()).await.unwrap();
    assert_eq!(
        reply.message.content,
        vec![
            ContentBlock::text("Editing."),
            ContentBlock::ToolUse {
                id: "call_9".into(),
                name: "edit_file".into(),
                input: json!({"edits": [{"old": "a", "new": "b"}]}),
            },
        ]
    );
    assert_eq!(reply.message.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(reply.message.usage.output_tokens, 12);
    let seen = server.seen();
    assert_eq!(seen[0].json()["stream"], json!(true));
    assert_eq!(seen[0].header("accept"), Some("text/event-stream"));
}

#[tokio::test]
async fn a_stream_silent_past_its_idle_timeout_fails_once_and_is_not_sent_again() {
    let server = TestServer::start(vec![
        Scripted::raw(200, "text/event-stream", chunk_frames(&[]))
            .delayed(std::time::Duration::from_millis(1500)),
        Scripted::raw(200, "text/event-stream", chunk_frames(&[])),
    ])
    .await;
    let mut settings = OpenAiSettings::new(format!("{}/v1", server.base_url), None);
    settings.retry = fast_policy(2, 2);
    settings.retry.retry_timeouts = false;
    settings.stream = true;
    settings.idle_timeout = std::time::Duration::from_millis(200);
    let client = OpenAiClient::new(settings).unwrap();
    let err = client.send(&worker_request()).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert_eq!(
        server.seen().len(),
        1,
        "a timed-out local call is not sent again"
    );
}

#[tokio::test]
async fn a_stream_closed_with_no_data_is_sent_again_unstreamed_and_streaming_stops() {
    let whole = json!({"id": "chatcmpl-w", "model": "qwen", "choices": [{"index": 0,
        "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "edit_file", "arguments": "{\"edits\":[]}"}}]}}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 6}});
    let server = TestServer::start(vec![
        // llama-cpp-python: the 200 went out, then its handler raised.
        Scripted::raw(200, "text/event-stream", String::new()),
        Scripted::json(200, whole.clone()),
        Scripted::json(200, whole),
    ])
    .await;
    let mut settings = OpenAiSettings::new(format!("{}/v1", server.base_url), None);
    settings.retry = RetryPolicy::none();
    settings.stream = true;
    let client = OpenAiClient::new(settings).unwrap();
    let first = client.send(&worker_request()).await.unwrap();
    assert_eq!(first.message.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(first.retries, 0, "the unstreamed resend is not a retry");
    let second = client.send(&worker_request()).await.unwrap();
    assert_eq!(second.message.usage.output_tokens, 6);
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].json()["stream"], json!(true));
    assert_eq!(seen[1].json()["stream"], json!(false));
    assert_eq!(seen[1].header("accept"), Some("application/json"));
    assert_eq!(
        seen[2].json()["stream"],
        json!(false),
        "once a stream came back empty, the client stops streaming"
    );
    let mut resent = seen[1].json();
    resent["stream"] = json!(true);
    assert_eq!(resent, seen[0].json(), "the resend is the same request");
}

#[tokio::test]
async fn tool_call_chunks_that_repeat_the_name_assemble_one_name() {
    // llama-cpp-python repeats the call's id and whole name in every chunk.
    let piece = |args: &str| {
        json!({"id": "chatcmpl-r", "choices": [{"index": 0, "delta": {"role": null, "content": null,
            "function_call": {"name": "edit_file", "arguments": args},
            "tool_calls": [{"index": 0, "id": "call__0_edit_file_cmpl-r", "type": "function",
                            "function": {"name": "edit_file", "arguments": args}}]}}]})
    };
    let body = chunk_frames(&[
        json!({"id": "chatcmpl-r", "model": "smollm2", "choices": [{"index": 0, "delta":
            {"role": "assistant", "content": null, "function_call": null, "tool_calls": null}}]}),
        piece("{\"edits\":[{\"old\":"),
        piece("\"a\",\"new\":"),
        piece("\"b\"}]}"),
        json!({"id": "chatcmpl-r", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
    ]);
    let server = TestServer::start(vec![Scripted::raw(200, "text/event-stream", body)]).await;
    let mut settings = OpenAiSettings::new(format!("{}/v1", server.base_url), None);
    settings.retry = RetryPolicy::none();
    settings.stream = true;
    let client = OpenAiClient::new(settings).unwrap();
    let reply = client.send(&worker_request()).await.unwrap();
    assert_eq!(
        reply.message.content,
        vec![ContentBlock::ToolUse {
            id: "call__0_edit_file_cmpl-r".into(),
            name: "edit_file".into(),
            input: json!({"edits": [{"old": "a", "new": "b"}]}),
        }]
    );
}

#[tokio::test]
async fn the_server_s_tokenizer_is_found_once_and_kept() {
    let server = TestServer::start(vec![
        // Not llama-cpp-python: no /extras/tokenize/count.
        Scripted::json(404, json!({"detail": "Not Found"})),
        // llama-server: /tokenize answers the tokens.
        Scripted::json(200, json!({"tokens": [1, 2, 3, 4, 5]})),
        Scripted::json(200, json!({"tokens": [1, 2, 3]})),
    ])
    .await;
    let client =
        OpenAiClient::new(OpenAiSettings::new(format!("{}/v1", server.base_url), None)).unwrap();
    let request = worker_request();
    let first = client.count_prompt_tokens(&request).await.unwrap();
    let second = client.count_prompt_tokens(&request).await.unwrap();
    assert_eq!(first - second, 2, "the token counts, plus the same markup");
    assert!(second > 3, "template markup per message is added");
    let seen = server.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.uri.as_str()).collect();
    assert_eq!(paths, ["/extras/tokenize/count", "/tokenize", "/tokenize"]);
    let text = seen[1].json()["content"].as_str().unwrap().to_owned();
    for block in &request.system {
        assert!(text.contains(&block.text), "the system text is counted");
    }
}

#[tokio::test]
async fn a_server_without_a_tokenizer_is_asked_once() {
    let server = TestServer::start(vec![
        Scripted::json(404, json!({"detail": "Not Found"})),
        Scripted::json(404, json!({"detail": "Not Found"})),
    ])
    .await;
    let client =
        OpenAiClient::new(OpenAiSettings::new(format!("{}/v1", server.base_url), None)).unwrap();
    assert_eq!(client.count_prompt_tokens(&worker_request()).await, None);
    assert_eq!(client.count_prompt_tokens(&worker_request()).await, None);
    assert_eq!(
        server.seen().len(),
        2,
        "both endpoints tried once, then never"
    );
}
