//! The Message Batches lifecycle.

use std::time::Duration;

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::common::{INSTANT, scenario, simple_body, start_with_clock};

fn batch_request(n: usize) -> Value {
    let mut requests: Vec<Value> = (0..n)
        .map(|i| json!({"custom_id": format!("task-{i:04}"), "params": simple_body("claude-haiku-4-5", &format!("question {i}"))}))
        .collect();
    // One invalid request: it errors without failing the batch.
    requests.push(json!({"custom_id": "bad-one", "params": simple_body("claude-nope", "x")}));
    json!({"requests": requests})
}

#[tokio::test]
async fn batch_lifecycle_with_out_of_order_results() {
    let (sim, clock) = start_with_clock(scenario(&format!(
        "[batch]\nprocessing_delay_ms = 1000\n{INSTANT}"
    )))
    .await;
    let created = sim.post("/v1/messages/batches", &batch_request(6)).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let id = created.json["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("msgbatch_"));
    assert_eq!(created.json["type"], "message_batch");
    assert_eq!(created.json["processing_status"], "in_progress");
    assert_eq!(
        created.json["request_counts"],
        json!({"processing": 7, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0})
    );
    assert_eq!(created.json["results_url"], Value::Null);
    assert_eq!(created.json["ended_at"], Value::Null);

    // Results are not available before the end.
    let early = sim.get(&format!("/v1/messages/batches/{id}/results")).await;
    assert_eq!(early.status, 400);
    assert!(
        early.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("has not ended")
    );
    // Deleting needs the batch to have ended.
    let r = sim
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/messages/batches/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 400);

    clock.advance(Duration::from_millis(999));
    assert_eq!(
        sim.get(&format!("/v1/messages/batches/{id}")).await.json["processing_status"],
        "in_progress"
    );
    clock.advance(Duration::from_millis(1));
    let ended = sim.get(&format!("/v1/messages/batches/{id}")).await;
    assert_eq!(ended.json["processing_status"], "ended");
    assert_eq!(
        ended.json["request_counts"],
        json!({"processing": 0, "succeeded": 6, "errored": 1, "canceled": 0, "expired": 0})
    );
    let results_url = ended.json["results_url"].as_str().unwrap();
    assert_eq!(
        results_url,
        format!("{}/v1/messages/batches/{id}/results", sim.server.base_url())
    );

    let results = sim
        .client
        .get(results_url)
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap();
    assert_eq!(results.status().as_u16(), 200);
    let lines: Vec<Value> = results
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    let order: Vec<&str> = lines
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_ne!(order, sorted, "results are not in request order");
    for line in &lines {
        let custom_id = line["custom_id"].as_str().unwrap();
        if custom_id == "bad-one" {
            assert_eq!(line["result"]["type"], "errored");
            assert_eq!(line["result"]["error"]["error"]["type"], "not_found_error");
        } else {
            assert_eq!(line["result"]["type"], "succeeded");
            let msg = &line["result"]["message"];
            assert_eq!(msg["type"], "message");
            assert_eq!(msg["usage"]["service_tier"], "batch");
            let n: usize = custom_id.trim_start_matches("task-").parse().unwrap();
            assert!(
                msg["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("question {n}"))
            );
        }
    }

    // Listed, then deleted.
    let list = sim.get("/v1/messages/batches?limit=10").await;
    assert_eq!(list.json["data"][0]["id"], id.as_str());
    assert_eq!(list.json["has_more"], false);
    assert_eq!(list.json["first_id"], id.as_str());
    let del = sim
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/messages/batches/{id}"),
            None,
            &[],
        )
        .await;
    assert_eq!(del.json, json!({"id": id, "type": "message_batch_deleted"}));
    assert_eq!(
        sim.get(&format!("/v1/messages/batches/{id}")).await.status,
        404
    );

    // Each batch item is in the request log.
    let items: Vec<_> = sim
        .server
        .request_log()
        .into_iter()
        .filter(|r| r.method == "BATCH")
        .collect();
    assert_eq!(items.len(), 7);
    assert!(
        items
            .iter()
            .all(|r| r.batch_id.as_deref() == Some(id.as_str()))
    );
    assert_eq!(items.iter().filter(|r| r.status == 200).count(), 6);
    sim.server.shutdown().await;
}

#[tokio::test]
async fn cancelling_a_batch_cancels_its_requests() {
    let (sim, clock) = start_with_clock(scenario(INSTANT)).await;
    let created = sim.post("/v1/messages/batches", &batch_request(3)).await;
    let id = created.json["id"].as_str().unwrap().to_string();
    let canceled = sim
        .post(&format!("/v1/messages/batches/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    assert_eq!(canceled.json["processing_status"], "canceling");
    assert!(canceled.json["cancel_initiated_at"].is_string());
    clock.advance(Duration::from_millis(1));
    let ended = sim.get(&format!("/v1/messages/batches/{id}")).await;
    assert_eq!(ended.json["processing_status"], "ended");
    assert_eq!(ended.json["request_counts"]["canceled"], 4);
    let results = sim.get(&format!("/v1/messages/batches/{id}/results")).await;
    assert!(results.text.lines().all(|l| l.contains("\"canceled\"")));
    // Cancelling again is refused.
    assert_eq!(
        sim.post(&format!("/v1/messages/batches/{id}/cancel"), &json!({}))
            .await
            .status,
        400
    );
    sim.server.shutdown().await;
}

#[tokio::test]
async fn invalid_batches_are_rejected() {
    let (sim, _clock) = start_with_clock(scenario(INSTANT)).await;
    let dup = json!({"requests": [
        {"custom_id": "a", "params": simple_body("claude-haiku-4-5", "x")},
        {"custom_id": "a", "params": simple_body("claude-haiku-4-5", "y")},
    ]});
    let r = sim.post("/v1/messages/batches", &dup).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unique")
    );
    let empty = sim
        .post("/v1/messages/batches", &json!({"requests": []}))
        .await;
    assert_eq!(empty.status, 400);
    let bad_id = sim
        .post(
            "/v1/messages/batches",
            &json!({"requests": [{"custom_id": "has space", "params": {}}]}),
        )
        .await;
    assert_eq!(bad_id.status, 400);
    assert_eq!(
        sim.get("/v1/messages/batches/msgbatch_missing")
            .await
            .status,
        404
    );
    sim.server.shutdown().await;
}
