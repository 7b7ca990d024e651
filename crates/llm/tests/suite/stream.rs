//! SSE streaming: assembly, errors, truncation.

use cadre_llm::{
    ApiErrorKind, ContentBlock, Error, MessageResponse, ModelProvider, RetryPolicy, StopReason,
    StreamError, Usage,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::support::*;

fn start_event() -> Value {
    json!({"type":"message_start","message":{"id":"msg_s1","type":"message","role":"assistant","content":[],
        "model":"claude-haiku-4-5","stop_reason":null,"stop_sequence":null,
        "usage":{"input_tokens":25,"cache_creation_input_tokens":100,"cache_read_input_tokens":4000,"output_tokens":1}}})
}

fn tool_events(index: usize, fragments: &[&str]) -> Vec<Value> {
    let mut events = vec![json!({"type":"content_block_start","index":index,
        "content_block":{"type":"tool_use","id":"toolu_01","name":"edit_file","input":{}}})];
    for f in fragments {
        events.push(json!({"type":"content_block_delta","index":index,"delta":{"type":"input_json_delta","partial_json":f}}));
    }
    events.push(json!({"type":"content_block_stop","index":index}));
    events
}

#[tokio::test]
async fn sse_stream_is_assembled() {
    let mut events = vec![
        start_event(),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"Let me "}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"think."}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"EqQB"}}),
        json!({"type":"content_block_stop","index":0}),
        json!({"type":"ping"}),
        json!({"type":"content_block_start","index":1,"content_block":{"type":"text","text":""}}),
        json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"Editing "}}),
        json!({"type":"content_block_delta","index":1,"delta":{"type":"text_delta","text":"now."}}),
        json!({"type":"content_block_delta","index":1,"delta":{"type":"citations_delta","citation":{}}}),
        json!({"type":"content_block_stop","index":1}),
        json!({"type":"content_block_start","index":2,"content_block":{"type":"server_tool_use","id":"srv_1","name":"web_search","input":{}}}),
        json!({"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{}"}}),
        json!({"type":"content_block_stop","index":2}),
        json!({"type":"some_future_event","payload":1}),
    ];
    events.extend(tool_events(
        3,
        &[
            "{\"edits\": [{\"ol",
            "d\": \"a\\n\", \"new\"",
            ": \"b\\n\"}]}",
        ],
    ));
    events.extend([
        json!({"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":40}}),
        json!({"type":"message_delta","delta":{},"usage":{"output_tokens":57}}),
        json!({"type":"message_stop"}),
    ]);
    let server = TestServer::start(vec![
        Scripted::sse(&events).header("request-id", "req_stream"),
    ])
    .await;
    let reply = streaming_client(&server, RetryPolicy::none())
        .send(&request(1000))
        .await
        .unwrap();
    assert_eq!(
        reply.message,
        MessageResponse {
            id: "msg_s1".into(),
            model: "claude-haiku-4-5".into(),
            content: vec![
                ContentBlock::Thinking {
                    thinking: "Let me think.".into(),
                    signature: "EqQB".into()
                },
                ContentBlock::text("Editing now."),
                ContentBlock::Unknown,
                ContentBlock::ToolUse {
                    id: "toolu_01".into(),
                    name: "edit_file".into(),
                    input: json!({"edits": [{"old": "a\n", "new": "b\n"}]}),
                },
            ],
            stop_reason: Some(StopReason::ToolUse),
            usage: Usage {
                input_tokens: 25,
                output_tokens: 57,
                cache_creation_input_tokens: 100,
                cache_read_input_tokens: 4000,
                cache_creation: None,
            },
        }
    );
    assert_eq!(reply.request_id.as_deref(), Some("req_stream"));
    let seen = server.seen();
    assert_eq!(seen[0].json()["stream"], json!(true));
    assert_eq!(seen[0].header("accept"), Some("text/event-stream"));
}

#[tokio::test]
async fn large_max_tokens_streams_automatically() {
    let events = [
        start_event(),
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}),
        json!({"type":"message_stop"}),
    ];
    let server = TestServer::start(vec![ok_message("small"), Scripted::sse(&events)]).await;
    let client = client(&server, RetryPolicy::none());
    assert!(!client.will_stream(&request(21_333)));
    assert!(client.will_stream(&request(21_334)));
    client.send(&request(21_333)).await.unwrap();
    let reply = client.send(&request(32_000)).await.unwrap();
    assert_eq!(reply.message.content, vec![]);
    assert_eq!(reply.message.stop_reason, Some(StopReason::EndTurn));
    let seen = server.seen();
    assert!(seen[0].json().get("stream").is_none());
    assert_eq!(seen[1].json()["stream"], json!(true));
}

#[tokio::test]
async fn sse_error_event_is_a_typed_error() {
    let events = [
        start_event(),
        json!({"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long"}}),
    ];
    let server = TestServer::start(vec![
        Scripted::sse(&events).header("request-id", "req_e"),
        ok_message("never"),
    ])
    .await;
    let err = streaming_client(&server, fast_policy(2, 8))
        .send(&request(100))
        .await
        .unwrap_err();
    assert_eq!(
        match err {
            Error::Stream(e) => e,
            other => panic!("{other:?}"),
        },
        StreamError {
            kind: Some(ApiErrorKind::InvalidRequest),
            message: "prompt is too long".into(),
            request_id: Some("req_e".into()),
        }
    );
    assert_eq!(
        server.seen().len(),
        1,
        "a non-transient stream error is not retried"
    );
}

#[tokio::test]
async fn sse_overloaded_event_is_retried_from_the_overload_budget() {
    let failing = [
        start_event(),
        json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
    ];
    let good = [
        start_event(),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"fine"}}),
        json!({"type":"content_block_stop","index":0}),
        json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":2}}),
        json!({"type":"message_stop"}),
    ];
    let server = TestServer::start(vec![Scripted::sse(&failing), Scripted::sse(&good)]).await;
    let reply = streaming_client(&server, fast_policy(0, 2))
        .send(&request(100))
        .await
        .unwrap();
    assert_eq!(reply.message.content, vec![ContentBlock::text("fine")]);
    assert_eq!((reply.retries, reply.overload_retries), (1, 1));
}

#[tokio::test]
async fn stream_cut_mid_body_is_an_error() {
    let events = [
        start_event(),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"partial"}}),
    ];
    let server = TestServer::start(vec![Scripted::sse(&events).cut()]).await;
    let err = streaming_client(&server, RetryPolicy::none())
        .send(&request(100))
        .await
        .unwrap_err();
    match &err {
        Error::RetriesExhausted { attempts: 1, last } => {
            assert!(
                matches!(last.as_ref(), Error::Stream(StreamError { kind: None, .. })),
                "{last:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
}

#[tokio::test]
async fn stream_ending_without_message_stop_is_an_error() {
    let server = TestServer::start(vec![Scripted::sse(&[start_event()])]).await;
    let err = streaming_client(&server, RetryPolicy::none())
        .send(&request(100))
        .await
        .unwrap_err();
    match &err {
        Error::RetriesExhausted { last, .. } => match last.as_ref() {
            Error::Stream(StreamError {
                kind: None,
                message,
                ..
            }) => {
                assert!(message.contains("message_stop"), "{message}");
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn malformed_sse_data_is_a_decode_error() {
    let body = format!(
        "{}event: content_block_start\ndata: {{\"type\":\"content_blo\n\n",
        sse_body(&[start_event()])
    );
    let server = TestServer::start(vec![Scripted::raw(200, "text/event-stream", body)]).await;
    let err = streaming_client(&server, fast_policy(2, 2))
        .send(&request(100))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Decode { body_snippet, .. } if body_snippet.contains("content_blo")),
        "{err:?}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn truncated_tool_call_under_max_tokens_becomes_null_input() {
    let mut events = vec![start_event()];
    events.extend(tool_events(0, &["{\"edits\": [{\"old\": \"fn ma"]));
    events.extend([
        json!({"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":100}}),
        json!({"type":"message_stop"}),
    ]);
    let server = TestServer::start(vec![Scripted::sse(&events)]).await;
    let reply = streaming_client(&server, RetryPolicy::none())
        .send(&request(100))
        .await
        .unwrap();
    assert_eq!(reply.message.stop_reason, Some(StopReason::MaxTokens));
    assert_eq!(
        reply.message.content,
        vec![ContentBlock::ToolUse {
            id: "toolu_01".into(),
            name: "edit_file".into(),
            input: Value::Null
        }]
    );
    assert_eq!(reply.message.usage.output_tokens, 100);
}

#[tokio::test]
async fn truncated_stream_without_block_stop_still_finishes_the_block() {
    // The server may skip content_block_stop for a block cut by max_tokens.
    let events = vec![
        start_event(),
        json!({"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01","name":"write_file","input":{}}}),
        json!({"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"content\": \"abc"}}),
        json!({"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"output_tokens":7}}),
        json!({"type":"message_stop"}),
    ];
    let server = TestServer::start(vec![Scripted::sse(&events)]).await;
    let reply = streaming_client(&server, RetryPolicy::none())
        .send(&request(100))
        .await
        .unwrap();
    assert_eq!(
        reply.message.content,
        vec![ContentBlock::ToolUse {
            id: "toolu_01".into(),
            name: "write_file".into(),
            input: Value::Null
        }]
    );
}
