//! The request log and stats, in-process and over `/sim/*`.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};
use sha2::Digest;

use super::common::{INSTANT, scenario, simple_body, start, worker_body, worker_prompt};

#[tokio::test]
async fn every_request_is_logged_with_its_details() {
    let toml = format!("[[files]]\npath = \"a.py\"\ncontent = \"x = 2\\n\"\n{INSTANT}");
    let sim = start(scenario(&toml)).await;
    let worker = worker_body(
        "claude-haiku-4-5",
        &worker_prompt("a.py", "mechanical", "x = 1\n", &["oops"]),
    );
    let worker_text = worker.to_string();
    let ok = sim.message(&worker).await;
    assert_eq!(ok.status, 200);
    let limited = sim
        .post_with("/v1/messages", &worker, &[("x-sim-fault", "rate_limit")])
        .await;
    assert_eq!(limited.status, 429);
    let bad = sim
        .message(&json!({"model": "claude-haiku-4-5", "messages": []}))
        .await;
    assert_eq!(bad.status, 400);
    let count = sim.post("/v1/messages/count_tokens", &json!({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "abcd"}]})).await;
    assert_eq!(count.json, json!({"input_tokens": 1}));
    sim.get("/v1/models").await;

    let log = sim.server.request_log();
    assert_eq!(log.len(), 5);
    assert_eq!(
        log.iter().map(|r| r.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4, 5]
    );
    let first = &log[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/messages");
    assert_eq!(first.model.as_deref(), Some("claude-haiku-4-5"));
    assert_eq!(first.role, Some(cadre_sim::Role::Worker));
    assert_eq!(first.subtask_path.as_deref(), Some("a.py"));
    assert_eq!(first.attempt, Some(2));
    assert_eq!(first.model_attempt, Some(1));
    assert_eq!(first.status, 200);
    assert!(first.complete);
    assert_eq!(first.request_id, ok.header("request-id").unwrap());
    let sha = sha2::Sha256::digest(worker_text.as_bytes());
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(first.body_sha256, hex);
    assert!(first.output_tokens > 0);
    assert_eq!(log[1].status, 429);
    assert_eq!(log[1].fault.as_deref(), Some("rate_limit"));
    assert!(!log[1].complete);
    assert_eq!(log[1].body_sha256, first.body_sha256, "the same body");
    assert_eq!(log[2].status, 400);
    assert_eq!(log[3].path, "/v1/messages/count_tokens");
    assert_eq!(log[4].method, "GET");

    // "No finished call was sent twice": unique bodies among complete 200s.
    let finished: Vec<&str> = log
        .iter()
        .filter(|r| r.status == 200 && r.complete && r.path == "/v1/messages")
        .map(|r| r.body_sha256.as_str())
        .collect();
    let mut dedup = finished.clone();
    dedup.dedup();
    assert_eq!(finished, dedup);

    // The same log over HTTP.
    let over_http: Value = sim
        .client
        .get(sim.url("/sim/requests"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parsed: Vec<cadre_sim::LoggedRequest> =
        serde_json::from_value(over_http["requests"].clone()).unwrap();
    assert_eq!(parsed, log);
    let stats: cadre_sim::SimStats = sim
        .client
        .get(sim.url("/sim/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats.requests, 5);
    assert_eq!(stats.by_status.get(&200), Some(&3));
    assert_eq!(stats.by_role.get("worker"), Some(&2));
    assert_eq!(stats.faults.get("rate_limit"), Some(&1));
    assert_eq!(stats, sim.server.stats());
    sim.server.shutdown().await;
}

#[tokio::test]
async fn generic_requests_get_text_and_tool_calls() {
    let sim = start(scenario(INSTANT)).await;
    let text = sim
        .message(&simple_body("claude-sonnet-4-6", "Say hello"))
        .await;
    assert_eq!(text.json["content"][0]["type"], "text");
    assert_eq!(text.json["stop_reason"], "end_turn");
    assert!(text.json["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(text.json["role"], "assistant");
    assert_eq!(text.json["model"], "claude-sonnet-4-6");
    let mut with_stop = simple_body("claude-sonnet-4-6", "Say hello");
    with_stop["stop_sequences"] = json!(["cadre"]);
    let stopped = sim.message(&with_stop).await;
    assert_eq!(stopped.json["stop_reason"], "stop_sequence");
    assert_eq!(stopped.json["stop_sequence"], "cadre");
    assert!(
        !stopped.json["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("cadre")
    );
    sim.server.shutdown().await;
}
