//! Fault injection: scenario faults, per-request header faults, runtime faults
//! and the requests-per-minute token bucket.

use std::time::Duration;

use pretty_assertions::assert_eq;
use serde_json::json;

use super::common::{
    INSTANT, scenario, simple_body, start, start_with_clock, worker_body, worker_prompt,
};

#[tokio::test]
async fn header_rate_limit_is_429_with_retry_after_then_passes() {
    let sim = start(scenario(INSTANT)).await;
    let body = simple_body("claude-haiku-4-5", "hello");
    let headers = [
        ("x-sim-fault", "rate_limit"),
        ("x-sim-fault-retry-after", "7"),
    ];
    let r = sim.post_with("/v1/messages", &body, &headers).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after").as_deref(), Some("7"));
    assert_eq!(r.json["error"]["type"], "rate_limit_error");
    // The identical retry gets through (header faults fire once per body by default).
    let r = sim.post_with("/v1/messages", &body, &headers).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // x-sim-fault-times widens that.
    let body2 = simple_body("claude-haiku-4-5", "again");
    let twice = [("x-sim-fault", "overloaded"), ("x-sim-fault-times", "2")];
    assert_eq!(
        sim.post_with("/v1/messages", &body2, &twice).await.status,
        529
    );
    assert_eq!(
        sim.post_with("/v1/messages", &body2, &twice).await.status,
        529
    );
    assert_eq!(
        sim.post_with("/v1/messages", &body2, &twice).await.status,
        200
    );
    // An unknown kind is a clear 400.
    let r = sim
        .post_with("/v1/messages", &body2, &[("x-sim-fault", "gremlins")])
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown fault kind")
    );
    sim.server.shutdown().await;
}

#[tokio::test]
async fn scenario_faults_match_role_model_path_with_times_and_after() {
    let toml = format!(
        r#"
[[files]]
path = "a.py"
content = "x = 2\n"
[[faults]]
kind = "rate_limit"
match = {{ role = "worker", model = "claude-haiku-4-5", path = "a.py" }}
times = 2
after = 1
retry_after_secs = 3
{INSTANT}
"#
    );
    let sim = start(scenario(&toml)).await;
    let body = worker_body(
        "claude-haiku-4-5",
        &worker_prompt("a.py", "mechanical", "x = 1\n", &[]),
    );
    let other_path = worker_body(
        "claude-haiku-4-5",
        &worker_prompt("b.py", "mechanical", "x = 1\n", &[]),
    );
    let other_model = worker_body(
        "claude-sonnet-4-6",
        &worker_prompt("a.py", "mechanical", "x = 1\n", &[]),
    );
    assert_eq!(
        sim.message(&other_path).await.status,
        200,
        "path does not match"
    );
    assert_eq!(
        sim.message(&other_model).await.status,
        200,
        "model does not match"
    );
    assert_eq!(
        sim.message(&simple_body("claude-haiku-4-5", "hi"))
            .await
            .status,
        200,
        "role does not match"
    );
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            let r = sim.message(&body).await;
            if r.status == 429 {
                assert_eq!(r.header("retry-after").as_deref(), Some("3"));
            }
            v.push(r.status);
        }
        v
    };
    assert_eq!(statuses, vec![200, 429, 429, 200, 200]);
    assert_eq!(sim.server.stats().faults.get("rate_limit"), Some(&2));
    sim.server.shutdown().await;
}

#[tokio::test]
async fn runtime_faults_overloaded_and_server_error() {
    let sim = start(scenario(INSTANT)).await;
    let add = sim
        .client
        .post(sim.url("/sim/faults"))
        .json(&json!({"kind": "overloaded", "retry_after_secs": 2, "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(add.status().as_u16(), 200);
    sim.server.add_fault(cadre_sim::FaultSpec {
        kind: cadre_sim::FaultKind::ServerError,
        matches: cadre_sim::FaultMatch::default(),
        times: 1,
        after: 0,
        retry_after_secs: None,
        delay_ms: 0,
    });
    let body = simple_body("claude-haiku-4-5", "hi");
    let r = sim.message(&body).await;
    assert_eq!(r.status, 529);
    assert_eq!(r.json["error"]["type"], "overloaded_error");
    assert_eq!(r.header("retry-after").as_deref(), Some("2"));
    let r = sim.message(&body).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json["error"]["type"], "api_error");
    assert_eq!(sim.message(&body).await.status, 200);
    // A bad fault table is rejected.
    let bad = sim
        .client
        .post(sim.url("/sim/faults"))
        .json(&json!({"kind": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    let listed: serde_json::Value = sim
        .client
        .get(sim.url("/sim/faults"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["faults"][0]["applied"], 1);
    sim.server.shutdown().await;
}

#[tokio::test]
async fn drop_connection_cuts_the_body() {
    let sim = start(scenario(INSTANT)).await;
    for stream in [false, true] {
        // Two requests: a streamed and an unstreamed send of one body are the
        // same request to the sim, and a header fault fires once per request.
        let mut body = simple_body("claude-haiku-4-5", &format!("drop me (stream={stream})"));
        body["stream"] = json!(stream);
        let resp = sim
            .client
            .post(sim.url("/v1/messages"))
            .header("x-api-key", "k")
            .header("anthropic-version", "2023-06-01")
            .header("x-sim-fault", "drop_connection")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "headers were sent");
        assert!(
            resp.bytes().await.is_err(),
            "stream={stream}: the body must be cut"
        );
    }
    let log = sim.server.request_log();
    assert!(
        log.iter()
            .all(|r| r.fault.as_deref() == Some("drop_connection")
                && r.status == 200
                && !r.complete)
    );
    sim.server.shutdown().await;
}

#[tokio::test]
async fn malformed_json_and_stream_errors() {
    let sim = start(scenario(INSTANT)).await;
    let body = simple_body("claude-haiku-4-5", "malformed please");
    let r = sim
        .post_with("/v1/messages", &body, &[("x-sim-fault", "malformed_json")])
        .await;
    assert_eq!(r.status, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&r.text).is_err(),
        "{}",
        r.text
    );
    assert!(r.text.starts_with('{'));

    let mut streaming = simple_body("claude-haiku-4-5", "stream error please");
    streaming["stream"] = json!(true);
    let r = sim
        .post_with(
            "/v1/messages",
            &streaming,
            &[("x-sim-fault", "stream_error")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        r.text.contains("event: error\n") && r.text.contains("overloaded_error"),
        "{}",
        r.text
    );
    assert!(!r.text.contains("message_stop"));
    // Non-streaming stream_error is a plain 529.
    let r = sim
        .post_with(
            "/v1/messages",
            &simple_body("claude-haiku-4-5", "x"),
            &[("x-sim-fault", "stream_error")],
        )
        .await;
    assert_eq!(r.status, 529);
    // slow answers normally.
    let r = sim
        .post_with(
            "/v1/messages",
            &simple_body("claude-haiku-4-5", "slow"),
            &[("x-sim-fault", "slow"), ("x-sim-fault-delay-ms", "20")],
        )
        .await;
    assert_eq!(r.status, 200);
    sim.server.shutdown().await;
}

#[tokio::test]
async fn model_output_faults_break_the_answer() {
    let toml = format!("[[files]]\npath = \"a.py\"\ncontent = \"x = 2\\n\"\n{INSTANT}");
    let sim = start(scenario(&toml)).await;
    let body = worker_body(
        "claude-haiku-4-5",
        &worker_prompt("a.py", "mechanical", "x = 1\n", &[]),
    );
    let r = sim
        .post_with("/v1/messages", &body, &[("x-sim-fault", "truncated")])
        .await;
    assert_eq!(r.json["stop_reason"], "max_tokens");
    assert_eq!(r.tool_use().unwrap()["input"], json!({}));
    let r = sim
        .post_with("/v1/messages", &body, &[("x-sim-fault", "empty")])
        .await;
    assert_eq!(r.json["content"], json!([]));
    let r = sim
        .post_with("/v1/messages", &body, &[("x-sim-fault", "no_tool")])
        .await;
    assert!(r.tool_use().is_none());
    let r = sim
        .post_with("/v1/messages", &body, &[("x-sim-fault", "wrong_tool")])
        .await;
    assert_eq!(r.tool_use().unwrap()["name"], "submit_plan");
    let r = sim
        .post_with("/v1/messages", &body, &[("x-sim-fault", "schema")])
        .await;
    assert!(r.tool_use().unwrap()["input"].get("content").is_none());
    // Without a fault the same request is answered correctly.
    let r = sim.message(&body).await;
    assert_eq!(r.tool_use().unwrap()["input"]["content"], "x = 2\n");
    sim.server.shutdown().await;
}

#[tokio::test]
async fn requests_per_minute_is_a_token_bucket() {
    let toml = format!("[limits]\nrequests_per_minute = 2\n{INSTANT}");
    let (sim, clock) = start_with_clock(scenario(&toml)).await;
    let body = simple_body("claude-haiku-4-5", "hi");
    let r = sim.message(&body).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("anthropic-ratelimit-requests-limit").as_deref(),
        Some("2")
    );
    assert_eq!(
        r.header("anthropic-ratelimit-requests-remaining")
            .as_deref(),
        Some("1")
    );
    assert_eq!(sim.message(&body).await.status, 200);
    let r = sim.message(&body).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json["error"]["type"], "rate_limit_error");
    assert_eq!(r.header("retry-after").as_deref(), Some("30"));
    clock.advance(Duration::from_secs(15));
    assert_eq!(
        sim.message(&body).await.header("retry-after").as_deref(),
        Some("15")
    );
    clock.advance(Duration::from_secs(15));
    assert_eq!(sim.message(&body).await.status, 200);
    sim.server.shutdown().await;
}
