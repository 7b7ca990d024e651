//! Batches, count_tokens and models.

use std::collections::HashMap;

use cadre_llm::{
    ApiErrorKind, BatchError, BatchRequest, BatchRequestCounts, BatchResult, BatchStatus,
    ContentBlock, Error, MessageBatch, RetryPolicy,
};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::support::*;

fn batch_json(id: &str, status: &str, results_url: Value) -> Value {
    json!({
        "id": id, "type": "message_batch", "processing_status": status,
        "request_counts": {"processing": 0, "succeeded": 1, "errored": 1, "canceled": 1, "expired": 1},
        "created_at": "2026-08-01T10:00:00Z", "expires_at": "2026-08-02T10:00:00Z",
        "ended_at": null, "cancel_initiated_at": null, "archived_at": null,
        "results_url": results_url
    })
}

#[tokio::test]
async fn batch_create_get_and_results() {
    // The results_url is only known once the server's address is; script it as a path first,
    // then as an absolute URL on a second get.
    let results_lines = [
        json!({"custom_id":"task-b","result":{"type":"succeeded","message":message_json("from b")}}),
        json!({"custom_id":"task-a","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"bad a"},"request_id":"req_a"}}}),
        json!({"custom_id":"task-d","result":{"type":"expired"}}),
        json!({"custom_id":"task-c","result":{"type":"canceled"}}),
    ];
    let jsonl: String = results_lines.iter().map(|l| format!("{l}\n")).collect();
    let server = TestServer::start(vec![
        Scripted::json(200, {
            let mut b = batch_json("msgbatch_1", "in_progress", Value::Null);
            b["request_counts"] = json!({"processing": 4});
            b
        }),
        Scripted::json(
            200,
            batch_json(
                "msgbatch_1",
                "ended",
                json!("/v1/messages/batches/msgbatch_1/results"),
            ),
        ),
        Scripted::raw(200, "application/binary", jsonl),
    ])
    .await;
    let client = client(&server, RetryPolicy::none());

    let requests: Vec<BatchRequest> = ["task-a", "task-b", "task-c", "task-d"]
        .iter()
        .map(|id| {
            let mut params = request(100);
            params.stream = Some(true);
            BatchRequest {
                custom_id: (*id).into(),
                params,
            }
        })
        .collect();
    let created = client.create_batch(requests.clone()).await.unwrap();
    assert_eq!(created.id, "msgbatch_1");
    assert_eq!(created.processing_status, BatchStatus::InProgress);
    assert_eq!(
        created.request_counts,
        BatchRequestCounts {
            processing: 4,
            ..Default::default()
        }
    );
    assert_eq!(created.results_url, None);

    let ended = client.get_batch("msgbatch_1").await.unwrap();
    assert_eq!(ended.processing_status, BatchStatus::Ended);

    let lines = client.batch_results(&ended).await.unwrap();
    let by_id: HashMap<_, _> = lines.into_iter().map(|l| (l.custom_id, l.result)).collect();
    assert_eq!(by_id.len(), 4);
    match &by_id["task-b"] {
        BatchResult::Succeeded { message } => {
            assert_eq!(message.content, vec![ContentBlock::text("from b")])
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        by_id["task-a"],
        BatchResult::Errored {
            error: BatchError {
                kind: ApiErrorKind::InvalidRequest,
                message: "bad a".into(),
                request_id: Some("req_a".into())
            }
        }
    );
    assert_eq!(by_id["task-c"], BatchResult::Canceled);
    assert_eq!(by_id["task-d"], BatchResult::Expired);

    let seen = server.seen();
    assert_eq!(
        seen.iter()
            .map(|s| (s.method.as_str(), s.uri.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("POST", "/v1/messages/batches"),
            ("GET", "/v1/messages/batches/msgbatch_1"),
            ("GET", "/v1/messages/batches/msgbatch_1/results"),
        ]
    );
    let create_body = seen[0].json();
    let sent = create_body["requests"].as_array().unwrap();
    assert_eq!(sent.len(), 4);
    assert_eq!(sent[0]["custom_id"], json!("task-a"));
    assert_eq!(sent[0]["params"]["model"], json!("claude-haiku-4-5"));
    assert!(
        sent.iter().all(|r| r["params"].get("stream").is_none()),
        "stream is stripped from batch params"
    );
    assert_eq!(seen[2].header("accept"), Some("application/binary"));
    assert!(seen.iter().all(|s| s.header("x-api-key") == Some(KEY)));
}

#[tokio::test]
async fn batch_results_from_absolute_url_on_the_same_origin() {
    let server = TestServer::start(vec![Scripted::raw(
        200,
        "application/binary",
        "{\"custom_id\":\"x\",\"result\":{\"type\":\"canceled\"}}\n",
    )])
    .await;
    let client = client(&server, RetryPolicy::none());
    let url = format!("{}/v1/messages/batches/msgbatch_9/results", server.base_url);
    let lines = client.batch_results_from_url(&url).await.unwrap();
    assert_eq!(lines.len(), 1);
    assert_eq!(
        server.seen()[0].uri,
        "/v1/messages/batches/msgbatch_9/results"
    );
}

#[tokio::test]
async fn batch_results_on_a_foreign_origin_are_refused() {
    let server = TestServer::start(vec![]).await;
    let client = client(&server, RetryPolicy::none());
    let err = client
        .batch_results_from_url("https://evil.example/v1/messages/batches/x/results")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    assert!(server.seen().is_empty());
}

#[tokio::test]
async fn batch_results_without_url_use_the_canonical_path() {
    let server = TestServer::start(vec![Scripted::api_error(
        400,
        "invalid_request_error",
        "batch not ended",
    )])
    .await;
    let client = client(&server, RetryPolicy::none());
    let batch: MessageBatch =
        serde_json::from_value(batch_json("msgbatch_2", "in_progress", Value::Null)).unwrap();
    let err = client.batch_results(&batch).await.unwrap_err();
    assert_eq!(err.api_kind(), Some(&ApiErrorKind::InvalidRequest));
    assert_eq!(
        server.seen()[0].uri,
        "/v1/messages/batches/msgbatch_2/results"
    );
}

#[tokio::test]
async fn batch_list_cancel_delete() {
    let server = TestServer::start(vec![
        Scripted::json(
            200,
            json!({"data": [batch_json("msgbatch_2", "ended", Value::Null), batch_json("msgbatch_1", "canceling", Value::Null)],
                   "has_more": true, "first_id": "msgbatch_2", "last_id": "msgbatch_1"}),
        ),
        Scripted::json(200, batch_json("msgbatch_3", "canceling", Value::Null)),
        Scripted::json(200, json!({"id": "msgbatch_2", "type": "message_batch_deleted"})),
    ])
    .await;
    let client = client(&server, RetryPolicy::none());
    let list = client
        .list_batches(Some(2), Some("msgbatch_0"))
        .await
        .unwrap();
    assert_eq!(list.data.len(), 2);
    assert!(list.has_more);
    assert_eq!(list.first_id.as_deref(), Some("msgbatch_2"));
    assert_eq!(list.last_id.as_deref(), Some("msgbatch_1"));
    assert_eq!(list.data[1].processing_status, BatchStatus::Canceling);
    let canceled = client.cancel_batch("msgbatch_3").await.unwrap();
    assert_eq!(canceled.processing_status, BatchStatus::Canceling);
    client.delete_batch("msgbatch_2").await.unwrap();
    let seen = server.seen();
    assert_eq!(
        seen.iter()
            .map(|s| (s.method.as_str(), s.uri.as_str()))
            .collect::<Vec<_>>(),
        vec![
            ("GET", "/v1/messages/batches?limit=2&after_id=msgbatch_0"),
            ("POST", "/v1/messages/batches/msgbatch_3/cancel"),
            ("DELETE", "/v1/messages/batches/msgbatch_2"),
        ]
    );
}

#[tokio::test]
async fn count_tokens_sends_the_request_without_max_tokens() {
    let server = TestServer::start(vec![Scripted::json(200, json!({"input_tokens": 2095}))]).await;
    let client = client(&server, RetryPolicy::none());
    let mut req = request(4096);
    req.stream = Some(true);
    assert_eq!(client.count_tokens(&req).await.unwrap(), 2095);
    let seen = server.seen();
    assert_eq!(seen[0].uri, "/v1/messages/count_tokens");
    assert_eq!(
        seen[0].json(),
        json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]})
    );
}

#[tokio::test]
async fn list_models_follows_pagination() {
    let server = TestServer::start(vec![
        Scripted::json(
            200,
            json!({"data": [{"type": "model", "id": "claude-opus-4-6", "display_name": "Claude Opus 4.6",
                             "created_at": "2026-02-01T00:00:00Z", "max_input_tokens": 1000000, "max_tokens": 128000,
                             "capabilities": {"effort": {"supported": true}}}],
                   "has_more": true, "first_id": "claude-opus-4-6", "last_id": "claude-opus-4-6"}),
        ),
        Scripted::json(
            200,
            json!({"data": [{"type": "model", "id": "claude-haiku-4-5", "display_name": "Claude Haiku 4.5"}],
                   "has_more": false, "first_id": "claude-haiku-4-5", "last_id": "claude-haiku-4-5"}),
        ),
    ])
    .await;
    let models = client(&server, RetryPolicy::none())
        .list_models()
        .await
        .unwrap();
    assert_eq!(
        models.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(),
        vec!["claude-opus-4-6", "claude-haiku-4-5"]
    );
    assert_eq!(models[0].max_input_tokens, Some(1_000_000));
    assert_eq!(
        models[0].capabilities,
        Some(json!({"effort": {"supported": true}}))
    );
    assert_eq!(models[1].max_tokens, None);
    let uris: Vec<_> = server.seen().into_iter().map(|s| s.uri).collect();
    assert_eq!(
        uris,
        vec![
            "/v1/models?limit=1000",
            "/v1/models?limit=1000&after_id=claude-opus-4-6"
        ]
    );
}

#[tokio::test]
async fn list_models_refuses_a_cursor_that_does_not_move() {
    let page = json!({"data": [], "has_more": true, "last_id": null});
    let server = TestServer::start(vec![Scripted::json(200, page)]).await;
    let err = client(&server, RetryPolicy::none())
        .list_models()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err:?}");
}
