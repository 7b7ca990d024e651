//! The SDK retry policy, observed from the server side.

use std::time::Duration;

use cadre_llm::{ApiErrorKind, ContentBlock, Error, ModelProvider};
use pretty_assertions::assert_eq;

use super::support::*;

#[tokio::test]
async fn server_error_is_retried_until_the_budget_is_exhausted() {
    let server = TestServer::start(vec![
        Scripted::api_error(500, "api_error", "boom 1"),
        Scripted::api_error(500, "api_error", "boom 2"),
        Scripted::api_error(500, "api_error", "boom 3"),
        ok_message("never sent"),
    ])
    .await;
    let err = client(&server, fast_policy(2, 8))
        .send(&request(100))
        .await
        .unwrap_err();
    match &err {
        Error::RetriesExhausted { attempts: 3, last } => {
            assert!(
                matches!(last.as_ref(), Error::Api(api) if api.message == "boom 3"),
                "{last:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 3, "max_retries + 1 requests");
    let counts: Vec<_> = seen
        .iter()
        .map(|s| s.header("x-stainless-retry-count").unwrap().to_owned())
        .collect();
    assert_eq!(counts, vec!["0", "1", "2"]);
    // The body is re-sent unchanged.
    assert!(seen.iter().all(|s| s.body == seen[0].body));
}

#[tokio::test]
async fn should_retry_false_stops_at_once() {
    let server = TestServer::start(vec![
        Scripted::api_error(500, "api_error", "do not retry me").header("x-should-retry", "false"),
        ok_message("never sent"),
    ])
    .await;
    let err = client(&server, fast_policy(2, 8))
        .send(&request(100))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Api(api) if api.status == 500 && api.should_retry == Some(false)),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn should_retry_true_overrides_a_400() {
    let server = TestServer::start(vec![
        Scripted::api_error(400, "invalid_request_error", "transient")
            .header("x-should-retry", "true"),
        ok_message("second time lucky"),
    ])
    .await;
    let reply = client(&server, fast_policy(2, 8))
        .send(&request(100))
        .await
        .unwrap();
    assert_eq!(
        reply.message.content,
        vec![ContentBlock::text("second time lucky")]
    );
    assert_eq!((reply.retries, reply.overload_retries), (1, 0));
}

#[tokio::test]
async fn rate_limit_retry_after_seconds_is_waited_for() {
    let server = TestServer::start(vec![
        Scripted::api_error(429, "rate_limit_error", "slow down").header("retry-after", "1"),
        ok_message("ok"),
    ])
    .await;
    let reply = client(&server, fast_policy(2, 8))
        .send(&request(100))
        .await
        .unwrap();
    assert_eq!((reply.retries, reply.overload_retries), (1, 1));
    assert_eq!(reply.request_id.as_deref(), Some("req_ok"));
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_secs(1),
        "second attempt arrived after only {gap:?}"
    );
}

#[tokio::test]
async fn retry_after_ms_is_honoured() {
    let server = TestServer::start(vec![
        Scripted::api_error(529, "overloaded_error", "Overloaded")
            .header("retry-after-ms", "400")
            .header("retry-after", "30"),
        ok_message("ok"),
    ])
    .await;
    let reply = client(&server, fast_policy(2, 8))
        .send(&request(100))
        .await
        .unwrap();
    assert_eq!((reply.retries, reply.overload_retries), (1, 1));
    let seen = server.seen();
    let gap = seen[1].at - seen[0].at;
    assert!(
        gap >= Duration::from_millis(400),
        "second attempt arrived after only {gap:?}"
    );
    // retry-after-ms wins over retry-after: 30 s were not waited (the test would time out).
}

#[tokio::test]
async fn overload_budget_is_separate_from_the_normal_budget() {
    // max_retries = 1 but 3 overload retries: 529, 429, 529, then one 500, then success.
    let server = TestServer::start(vec![
        Scripted::api_error(529, "overloaded_error", "Overloaded"),
        Scripted::api_error(429, "rate_limit_error", "rate"),
        Scripted::api_error(529, "overloaded_error", "Overloaded"),
        Scripted::api_error(500, "api_error", "boom"),
        ok_message("made it"),
    ])
    .await;
    let reply = client(&server, fast_policy(1, 3))
        .send(&request(100))
        .await
        .unwrap();
    assert_eq!(reply.message.content, vec![ContentBlock::text("made it")]);
    assert_eq!((reply.retries, reply.overload_retries), (4, 3));
    assert_eq!(server.seen().len(), 5);
}

#[tokio::test]
async fn overload_budget_exhausts_on_its_own() {
    let server = TestServer::start(vec![
        Scripted::api_error(529, "overloaded_error", "Overloaded"),
        Scripted::api_error(529, "overloaded_error", "Overloaded"),
        Scripted::api_error(529, "overloaded_error", "Overloaded"),
        ok_message("never sent"),
    ])
    .await;
    let err = client(&server, fast_policy(5, 2))
        .send(&request(100))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RetriesExhausted { attempts: 3, .. }),
        "{err:?}"
    );
    assert!(err.is_overload());
    assert_eq!(err.api_kind(), Some(&ApiErrorKind::Overloaded));
    assert_eq!(server.seen().len(), 3);
    assert_eq!(server.remaining(), 1);
}

#[tokio::test]
async fn normal_budget_does_not_borrow_from_the_overload_budget() {
    let server = TestServer::start(vec![
        Scripted::api_error(503, "api_error", "unavailable"),
        Scripted::api_error(408, "timeout_error", "request timeout"),
        ok_message("never sent"),
    ])
    .await;
    let err = client(&server, fast_policy(1, 8))
        .send(&request(100))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::RetriesExhausted { attempts: 2, .. }),
        "{err:?}"
    );
    assert_eq!(err.status(), Some(408));
    assert_eq!(server.seen().len(), 2);
}
