//! Prompt-cache accounting: writes, reads, minimums, TTLs, automatic caching.

use std::time::Duration;

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::common::{INSTANT, Sim, scenario, start, start_with_clock};

/// A request whose system prompt is `chars` characters with a breakpoint.
fn cached_request(model: &str, chars: usize, ttl: Option<&str>, question: &str) -> Value {
    let mut cc = json!({"type": "ephemeral"});
    if let Some(ttl) = ttl {
        cc["ttl"] = json!(ttl);
    }
    json!({
        "model": model,
        "max_tokens": 256,
        "system": [{"type": "text", "text": "s".repeat(chars), "cache_control": cc}],
        "messages": [{"role": "user", "content": question}],
    })
}

fn usage(reply: &super::common::Reply) -> (u64, u64, u64, u64, u64) {
    let u = &reply.json["usage"];
    (
        u["input_tokens"].as_u64().unwrap(),
        u["cache_creation_input_tokens"].as_u64().unwrap(),
        u["cache_read_input_tokens"].as_u64().unwrap(),
        u["cache_creation"]["ephemeral_5m_input_tokens"]
            .as_u64()
            .unwrap(),
        u["cache_creation"]["ephemeral_1h_input_tokens"]
            .as_u64()
            .unwrap(),
    )
}

async fn count(sim: &Sim, body: &Value) -> u64 {
    let mut b = body.clone();
    b.as_object_mut().unwrap().remove("max_tokens");
    let reply = sim.post("/v1/messages/count_tokens", &b).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json["input_tokens"].as_u64().unwrap()
}

#[tokio::test]
async fn first_call_writes_second_identical_prefix_reads() {
    let sim = start(scenario(INSTANT)).await;
    // sonnet-4-5 caches prefixes of >= 1024 tokens; 8000 chars = 2000 tokens.
    let first = cached_request("claude-sonnet-4-5", 8000, None, "first question");
    let r1 = sim.message(&first).await;
    assert_eq!(r1.status, 200, "{}", r1.text);
    // "first question" = 14 chars = 4 tokens uncached.
    assert_eq!(usage(&r1), (4, 2000, 0, 2000, 0));
    assert_eq!(count(&sim, &first).await, 2004);

    let second = cached_request(
        "claude-sonnet-4-5",
        8000,
        None,
        "a different second question",
    );
    let r2 = sim.message(&second).await;
    assert_eq!(usage(&r2), (7, 0, 2000, 0, 0));

    // Another model does not share the cache.
    let other = cached_request("claude-opus-4-5", 20_000, None, "q");
    let r3 = sim.message(&other).await;
    assert_eq!(usage(&r3), (1, 5000, 0, 5000, 0));
    let r4 = sim
        .message(&cached_request("claude-opus-4-5", 20_000, None, "q"))
        .await;
    assert_eq!(usage(&r4), (1, 0, 5000, 0, 0));

    // The log records the same numbers.
    let log = sim.server.request_log();
    assert_eq!(log[0].cache_creation_input_tokens, 2000);
    assert_eq!(log[2].cache_read_input_tokens, 2000);
    sim.server.shutdown().await;
}

#[tokio::test]
async fn prefixes_below_the_model_minimum_are_never_cached() {
    let sim = start(scenario(INSTANT)).await;
    // haiku-4-5 needs 4096 tokens; 2000 tokens is too short.
    let body = cached_request("claude-haiku-4-5", 8000, None, "q");
    for _ in 0..2 {
        let r = sim.message(&body).await;
        assert_eq!(usage(&r), (2001, 0, 0, 0, 0));
    }
    // Just above the minimum: cached.
    let body = cached_request("claude-haiku-4-5", 4096 * 4, None, "q");
    assert_eq!(usage(&sim.message(&body).await), (1, 4096, 0, 4096, 0));
    assert_eq!(usage(&sim.message(&body).await), (1, 0, 4096, 0, 0));
    sim.server.shutdown().await;
}

#[tokio::test]
async fn ttl_expiry_makes_it_write_again_and_hits_refresh_the_ttl() {
    let (sim, clock) = start_with_clock(scenario(INSTANT)).await;
    let body = cached_request("claude-sonnet-4-5", 8000, None, "q");
    assert_eq!(usage(&sim.message(&body).await).1, 2000);
    clock.advance(Duration::from_secs(4 * 60));
    assert_eq!(
        usage(&sim.message(&body).await).2,
        2000,
        "alive after 4 min"
    );
    // The hit refreshed the TTL: 4 more minutes is 8 since the write, still alive.
    clock.advance(Duration::from_secs(4 * 60));
    assert_eq!(
        usage(&sim.message(&body).await).2,
        2000,
        "refreshed by the hit"
    );
    clock.advance(Duration::from_secs(5 * 60 + 1));
    assert_eq!(
        usage(&sim.message(&body).await),
        (1, 2000, 0, 2000, 0),
        "expired: written again"
    );

    // 1h entries survive 5 minutes and are reported as 1h writes.
    let long = cached_request("claude-sonnet-4-5", 12_000, Some("1h"), "q");
    assert_eq!(usage(&sim.message(&long).await), (1, 3000, 0, 0, 3000));
    clock.advance(Duration::from_secs(30 * 60));
    assert_eq!(usage(&sim.message(&long).await), (1, 0, 3000, 0, 0));
    clock.advance(Duration::from_secs(61 * 60));
    assert_eq!(usage(&sim.message(&long).await), (1, 3000, 0, 0, 3000));
    sim.server.shutdown().await;
}

#[tokio::test]
async fn longer_breakpoints_extend_a_cached_prefix() {
    let sim = start(scenario(INSTANT)).await;
    let tools = json!([{"name": "t", "description": "d".repeat(6000), "input_schema": {"type": "object"},
        "cache_control": {"type": "ephemeral"}}]);
    let tool_tokens = count(&sim, &json!({"model": "claude-sonnet-4-5", "tools": tools, "messages": [{"role":"user","content":"q"}]})).await - 1;
    let mut body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "tools": tools,
        "messages": [{"role": "user", "content": "q"}],
    });
    let r1 = sim.message(&body).await;
    assert_eq!(usage(&r1), (1, tool_tokens, 0, tool_tokens, 0));
    // Add a second breakpoint after a system block: the tools prefix is read,
    // the system block is written on top of it.
    body["system"] =
        json!([{"type": "text", "text": "y".repeat(4000), "cache_control": {"type": "ephemeral"}}]);
    let r2 = sim.message(&body).await;
    assert_eq!(usage(&r2), (1, 1000, tool_tokens, 1000, 0));
    let r3 = sim.message(&body).await;
    assert_eq!(usage(&r3), (1, 0, tool_tokens + 1000, 0, 0));
    sim.server.shutdown().await;
}

#[tokio::test]
async fn automatic_caching_and_prewarming() {
    let sim = start(scenario(INSTANT)).await;
    // Top-level cache_control marks the last block; max_tokens 0 pre-warms.
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 0,
        "cache_control": {"type": "ephemeral"},
        "messages": [{"role": "user", "content": "z".repeat(8000)}],
    });
    let warm = sim.message(&body).await;
    assert_eq!(warm.status, 200, "{}", warm.text);
    assert_eq!(warm.json["content"], json!([]));
    assert_eq!(warm.json["stop_reason"], "max_tokens");
    assert_eq!(warm.json["usage"]["output_tokens"], 0);
    assert_eq!(usage(&warm), (0, 2000, 0, 2000, 0));
    let mut real = body.clone();
    real["max_tokens"] = json!(100);
    assert_eq!(usage(&sim.message(&real).await), (0, 0, 2000, 0, 0));
    sim.server.shutdown().await;
}

#[tokio::test]
async fn changing_tool_choice_invalidates_only_message_level_entries() {
    let sim = start(scenario(INSTANT)).await;
    let body = |choice: &str| {
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "tools": [{"name": "t", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": choice},
            "system": [{"type": "text", "text": "s".repeat(8000), "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "m".repeat(8000), "cache_control": {"type": "ephemeral"}}]}],
        })
    };
    let first = sim.message(&body("auto")).await;
    let (_, written, _, _, _) = usage(&first);
    let system_prefix = written - 2000;
    assert_eq!(usage(&sim.message(&body("auto")).await).2, written);
    // Only the system-level prefix survives a tool_choice change.
    let changed = sim.message(&body("none")).await;
    assert_eq!(usage(&changed), (0, 2000, system_prefix, 2000, 0));
    sim.server.shutdown().await;
}
