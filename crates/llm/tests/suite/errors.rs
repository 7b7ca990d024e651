//! Error classification, decoding failures, transport failures, metadata.

use std::time::Duration;

use cadre_llm::{
    AnthropicClient, AnthropicSettings, ApiErrorKind, ApiKey, ContentBlock, Error, ModelProvider,
    RateLimitSnapshot, RetryPolicy, StopReason,
};
use pretty_assertions::assert_eq;
use serde_json::json;

use super::support::*;

#[tokio::test]
async fn each_documented_status_maps_to_its_kind() {
    let cases: Vec<(u16, &str, ApiErrorKind)> = vec![
        (400, "invalid_request_error", ApiErrorKind::InvalidRequest),
        (401, "authentication_error", ApiErrorKind::Authentication),
        (402, "billing_error", ApiErrorKind::Billing),
        (403, "permission_error", ApiErrorKind::Permission),
        (404, "not_found_error", ApiErrorKind::NotFound),
        (409, "invalid_request_error", ApiErrorKind::Conflict),
        (413, "request_too_large", ApiErrorKind::RequestTooLarge),
        (422, "invalid_request_error", ApiErrorKind::Unprocessable),
        (429, "rate_limit_error", ApiErrorKind::RateLimit),
        (500, "api_error", ApiErrorKind::Api),
        (504, "timeout_error", ApiErrorKind::Timeout),
        (529, "overloaded_error", ApiErrorKind::Overloaded),
    ];
    let script = cases
        .iter()
        .map(|(status, kind, _)| {
            Scripted::api_error(*status, kind, &format!("message for {status}"))
        })
        .collect();
    let server = TestServer::start(script).await;
    let client = client(&server, RetryPolicy::none());
    for (status, _, kind) in &cases {
        let err = client.send(&request(100)).await.unwrap_err();
        assert_eq!(err.status(), Some(*status), "{err}");
        assert_eq!(err.api_kind(), Some(kind), "{err}");
        let expected_request_id = format!("req_{status}");
        assert_eq!(err.request_id(), Some(expected_request_id.as_str()));
        let retryable = matches!(status, 409 | 429 | 500 | 504 | 529);
        assert_eq!(err.is_retryable(), retryable, "{status}");
        assert_eq!(err.is_overload(), matches!(status, 429 | 529), "{status}");
        let api = match &err {
            // Retryable statuses exhaust the (empty) budget; others fail directly.
            Error::RetriesExhausted { attempts: 1, last } if retryable => match last.as_ref() {
                Error::Api(api) => api.clone(),
                other => panic!("unexpected last error {other:?}"),
            },
            Error::Api(api) if !retryable => api.clone(),
            other => panic!("unexpected error shape for {status}: {other:?}"),
        };
        assert_eq!(api.message, format!("message for {status}"));
        assert!(
            err.to_string().contains(&format!("message for {status}")),
            "{err}"
        );
    }
    assert_eq!(server.seen().len(), cases.len());
}

#[tokio::test]
async fn bad_request_is_not_retried() {
    let server = TestServer::start(vec![
        Scripted::api_error(400, "invalid_request_error", "max_tokens: field required"),
        ok_message("never sent"),
    ])
    .await;
    let err = client(&server, fast_policy(2, 8))
        .send(&request(100))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Api(api) if api.kind == ApiErrorKind::InvalidRequest && api.message == "max_tokens: field required")
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn malformed_json_body_is_a_decode_error() {
    let server = TestServer::start(vec![
        Scripted::raw(
            200,
            "application/json",
            r#"{"id":"msg_1","content":[{"type":"text","te"#,
        ),
        ok_message("never sent"),
    ])
    .await;
    let err = client(&server, fast_policy(2, 8))
        .send(&request(100))
        .await
        .unwrap_err();
    match &err {
        Error::Decode { body_snippet, .. } => assert!(body_snippet.starts_with(r#"{"id":"msg_1""#)),
        other => panic!("expected Decode, got {other:?}"),
    }
    assert!(!err.is_retryable());
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn wrong_shape_json_is_a_decode_error() {
    let server = TestServer::start(vec![Scripted::json(200, json!({"hello": "world"}))]).await;
    let err = client(&server, RetryPolicy::none())
        .send(&request(100))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}

#[tokio::test]
async fn non_json_error_body_is_tolerated() {
    let server = TestServer::start(vec![Scripted::raw(
        403,
        "text/html",
        "<html>forbidden by proxy</html>",
    )])
    .await;
    let err = client(&server, RetryPolicy::none())
        .send(&request(100))
        .await
        .unwrap_err();
    match err {
        Error::Api(api) => {
            assert_eq!(api.kind, ApiErrorKind::Permission);
            assert_eq!(api.message, "<html>forbidden by proxy</html>");
            assert_eq!(api.request_id, None);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connection_dropped_mid_body_is_retried_then_succeeds() {
    let full = message_json("complete").to_string();
    let half = full.as_bytes()[..full.len() / 2].to_vec();
    let server = TestServer::start(vec![
        Scripted::raw(200, "application/json", half).cut(),
        ok_message("complete"),
    ])
    .await;
    let reply = client(&server, fast_policy(2, 0))
        .send(&request(100))
        .await
        .unwrap();
    assert_eq!(reply.message.content, vec![ContentBlock::text("complete")]);
    assert_eq!((reply.retries, reply.overload_retries), (1, 0));
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn connection_dropped_mid_body_without_budget_is_an_error() {
    let server = TestServer::start(vec![
        Scripted::raw(200, "application/json", &b"{\"id\":\"msg"[..]).cut(),
    ])
    .await;
    let err = client(&server, RetryPolicy::none())
        .send(&request(100))
        .await
        .unwrap_err();
    match &err {
        Error::RetriesExhausted { attempts: 1, last } => {
            assert!(
                matches!(last.as_ref(), Error::Connection { .. }),
                "{last:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(err.is_retryable());
}

#[tokio::test]
async fn connection_refused_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let settings = AnthropicSettings {
        retry: fast_policy(1, 0),
        ..AnthropicSettings::new(format!("http://{addr}"), ApiKey::new(KEY))
    };
    let err = AnthropicClient::new(settings)
        .unwrap()
        .send(&request(100))
        .await
        .unwrap_err();
    match &err {
        Error::RetriesExhausted { attempts: 2, last } => {
            assert!(
                matches!(last.as_ref(), Error::Connection { .. }),
                "{last:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn slow_server_is_a_timeout() {
    let server = TestServer::start(vec![ok_message("late").delayed(Duration::from_secs(5))]).await;
    let settings = AnthropicSettings {
        timeout: Duration::from_millis(200),
        ..settings(&server, RetryPolicy::none())
    };
    let err = AnthropicClient::new(settings)
        .unwrap()
        .send(&request(100))
        .await
        .unwrap_err();
    match &err {
        Error::RetriesExhausted { last, .. } => {
            assert!(matches!(last.as_ref(), Error::Timeout { .. }), "{last:?}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn request_headers_body_rate_limits_and_request_id() {
    let server = TestServer::start(vec![
        ok_message("hi")
            .header("anthropic-ratelimit-requests-limit", "1000")
            .header("anthropic-ratelimit-requests-remaining", "999")
            .header("anthropic-ratelimit-requests-reset", "2026-08-21T12:40:59Z")
            .header("anthropic-ratelimit-tokens-limit", "96000")
            .header("anthropic-ratelimit-tokens-remaining", "95000")
            .header("anthropic-ratelimit-tokens-reset", "2026-08-21T12:41:00Z")
            .header("anthropic-ratelimit-input-tokens-limit", "80000")
            .header("anthropic-ratelimit-input-tokens-remaining", "80000")
            .header(
                "anthropic-ratelimit-input-tokens-reset",
                "2026-08-21T12:40:59Z",
            )
            .header("anthropic-ratelimit-output-tokens-limit", "16000"),
    ])
    .await;
    let client = client(&server, RetryPolicy::none());
    assert_eq!(client.name(), "anthropic");
    let reply = client.send(&request(100)).await.unwrap();
    assert_eq!(reply.request_id.as_deref(), Some("req_ok"));
    assert_eq!(
        reply.rate_limits,
        RateLimitSnapshot {
            requests_limit: Some(1000),
            requests_remaining: Some(999),
            requests_reset: Some("2026-08-21T12:40:59Z".into()),
            tokens_limit: Some(96000),
            tokens_remaining: Some(95000),
            tokens_reset: Some("2026-08-21T12:41:00Z".into()),
            input_tokens_limit: Some(80000),
            input_tokens_remaining: Some(80000),
            input_tokens_reset: Some("2026-08-21T12:40:59Z".into()),
            output_tokens_limit: Some(16000),
            output_tokens_remaining: None,
            output_tokens_reset: None,
        }
    );
    assert_eq!(reply.message.stop_reason, Some(StopReason::EndTurn));
    assert_eq!(reply.message.usage.input_tokens, 12);

    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let req = &seen[0];
    assert_eq!(
        (req.method.as_str(), req.uri.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(req.header("x-api-key"), Some(KEY));
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(req.header("x-stainless-retry-count"), Some("0"));
    let body = req.json();
    assert_eq!(body, serde_json::to_value(request(100)).unwrap());
    assert!(
        body.get("stream").is_none(),
        "non-streaming body has no stream field"
    );
}

#[tokio::test]
async fn unknown_content_block_and_stop_reason_are_tolerated() {
    let mut body = message_json("after");
    body["content"] = json!([
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "text", "text": "after", "citations": null}
    ]);
    body["stop_reason"] = json!("brand_new_reason");
    let server = TestServer::start(vec![Scripted::json(200, body)]).await;
    let reply = client(&server, RetryPolicy::none())
        .send(&request(100))
        .await
        .unwrap();
    assert_eq!(
        reply.message.content,
        vec![ContentBlock::Unknown, ContentBlock::text("after")]
    );
    assert_eq!(reply.message.stop_reason, Some(StopReason::Other));
}

#[tokio::test]
async fn api_key_never_appears_in_debug_or_errors() {
    let server = TestServer::start(vec![Scripted::api_error(
        401,
        "authentication_error",
        "invalid x-api-key",
    )])
    .await;
    let settings = settings(&server, RetryPolicy::none());
    let client = AnthropicClient::new(settings.clone()).unwrap();
    let err = client.send(&request(100)).await.unwrap_err();
    for text in [
        format!("{settings:?}"),
        format!("{settings:#?}"),
        format!("{client:?}"),
        format!("{err:?}"),
        err.to_string(),
    ] {
        assert!(!text.contains(KEY), "key leaked in: {text}");
        assert!(!text.contains("SECRET"), "key leaked in: {text}");
    }
    assert!(format!("{settings:?}").contains("ApiKey(***)"));
}

#[tokio::test]
async fn invalid_settings_are_rejected() {
    let bad_url =
        AnthropicClient::new(AnthropicSettings::new("not a url", ApiKey::new(KEY))).unwrap_err();
    assert!(
        matches!(bad_url, Error::InvalidConfig { .. }),
        "{bad_url:?}"
    );
    let bad_key = AnthropicClient::new(AnthropicSettings::new(
        "http://127.0.0.1:1",
        ApiKey::new("bad\nkey"),
    ))
    .unwrap_err();
    assert!(
        matches!(bad_key, Error::InvalidConfig { .. }),
        "{bad_key:?}"
    );
    let zero_timeout = AnthropicClient::new(AnthropicSettings {
        timeout: Duration::ZERO,
        ..AnthropicSettings::new("http://127.0.0.1:1", ApiKey::new(KEY))
    })
    .unwrap_err();
    assert!(
        matches!(zero_timeout, Error::InvalidConfig { .. }),
        "{zero_timeout:?}"
    );
}
