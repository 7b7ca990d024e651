//! Every documented bad request is rejected with the API's status, type and a
//! message that says what is wrong.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::common::{INSTANT, scenario, simple_body, start};

struct Case {
    name: &'static str,
    body: Value,
    status: u16,
    kind: &'static str,
    message_contains: &'static str,
}

fn case(
    name: &'static str,
    body: Value,
    status: u16,
    kind: &'static str,
    message_contains: &'static str,
) -> Case {
    Case {
        name,
        body,
        status,
        kind,
        message_contains,
    }
}

fn with(mut base: Value, key: &str, value: Value) -> Value {
    base[key] = value;
    base
}

fn without(mut base: Value, key: &str) -> Value {
    base.as_object_mut().unwrap().remove(key);
    base
}

fn cached_text(i: usize) -> Value {
    json!({"type": "text", "text": format!("block {i}"), "cache_control": {"type": "ephemeral"}})
}

#[tokio::test]
async fn bad_requests_get_the_documented_errors() {
    let sim = start(scenario(INSTANT)).await;
    let haiku = simple_body("claude-haiku-4-5", "hi");
    let opus47 = simple_body("claude-opus-4-7", "hi");
    let tool = json!([{"name": "get", "input_schema": {"type": "object", "properties": {}}}]);
    let cases = vec![
        case(
            "unknown model",
            simple_body("claude-nope-9", "hi"),
            404,
            "not_found_error",
            "model: claude-nope-9",
        ),
        case(
            "missing max_tokens",
            without(haiku.clone(), "max_tokens"),
            400,
            "invalid_request_error",
            "max_tokens: Field required",
        ),
        case(
            "string max_tokens",
            with(haiku.clone(), "max_tokens", json!("10")),
            400,
            "invalid_request_error",
            "max_tokens: Input should be a valid integer",
        ),
        case(
            "negative max_tokens",
            with(haiku.clone(), "max_tokens", json!(-1)),
            400,
            "invalid_request_error",
            "greater than or equal to 0",
        ),
        case(
            "max_tokens above the model's output cap",
            with(haiku.clone(), "max_tokens", json!(100_000)),
            400,
            "invalid_request_error",
            "maximum allowed number of output tokens",
        ),
        case(
            "empty messages",
            with(haiku.clone(), "messages", json!([])),
            400,
            "invalid_request_error",
            "at least one message",
        ),
        case(
            "missing messages",
            without(haiku.clone(), "messages"),
            400,
            "invalid_request_error",
            "messages: Field required",
        ),
        case(
            "empty text block",
            with(
                haiku.clone(),
                "messages",
                json!([{"role":"user","content":[{"type":"text","text":""}]}]),
            ),
            400,
            "invalid_request_error",
            "non-empty",
        ),
        case(
            "unknown top-level field",
            with(haiku.clone(), "temprature", json!(1)),
            400,
            "invalid_request_error",
            "temprature: Extra inputs are not permitted",
        ),
        case(
            "budget below 1024",
            with(
                haiku.clone(),
                "thinking",
                json!({"type":"enabled","budget_tokens":1000}),
            ),
            400,
            "invalid_request_error",
            "greater than or equal to 1024",
        ),
        case(
            "budget not below max_tokens",
            with(
                with(haiku.clone(), "max_tokens", json!(2000)),
                "thinking",
                json!({"type":"enabled","budget_tokens":2000}),
            ),
            400,
            "invalid_request_error",
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
        case(
            "budget_tokens on adaptive-only opus-4-7",
            with(
                with(opus47.clone(), "max_tokens", json!(4000)),
                "thinking",
                json!({"type":"enabled","budget_tokens":2000}),
            ),
            400,
            "invalid_request_error",
            "thinking.type.enabled is not supported for claude-opus-4-7",
        ),
        case(
            "adaptive thinking on haiku",
            with(haiku.clone(), "thinking", json!({"type":"adaptive"})),
            400,
            "invalid_request_error",
            "thinking.type.adaptive is not supported",
        ),
        case(
            "effort on haiku-4-5",
            with(haiku.clone(), "output_config", json!({"effort":"medium"})),
            400,
            "invalid_request_error",
            "does not support the effort parameter",
        ),
        case(
            "effort on sonnet-4-5",
            with(
                simple_body("claude-sonnet-4-5", "hi"),
                "output_config",
                json!({"effort":"low"}),
            ),
            400,
            "invalid_request_error",
            "does not support the effort parameter",
        ),
        case(
            "xhigh effort on sonnet-4-6",
            with(
                simple_body("claude-sonnet-4-6", "hi"),
                "output_config",
                json!({"effort":"xhigh"}),
            ),
            400,
            "invalid_request_error",
            "'xhigh' is not supported by claude-sonnet-4-6",
        ),
        case(
            "temperature on opus-4-7",
            with(opus47.clone(), "temperature", json!(0.2)),
            400,
            "invalid_request_error",
            "`temperature` is not supported on claude-opus-4-7",
        ),
        case(
            "temperature out of range",
            with(haiku.clone(), "temperature", json!(1.5)),
            400,
            "invalid_request_error",
            "between 0 and 1",
        ),
        case(
            "five cache breakpoints",
            with(
                haiku.clone(),
                "system",
                json!([
                    cached_text(1),
                    cached_text(2),
                    cached_text(3),
                    cached_text(4),
                    cached_text(5)
                ]),
            ),
            400,
            "invalid_request_error",
            "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        ),
        case(
            "four breakpoints plus automatic caching",
            with(
                with(
                    haiku.clone(),
                    "system",
                    json!([
                        cached_text(1),
                        cached_text(2),
                        cached_text(3),
                        cached_text(4)
                    ]),
                ),
                "cache_control",
                json!({"type":"ephemeral"}),
            ),
            400,
            "invalid_request_error",
            "Found 5.",
        ),
        case(
            "bad ttl",
            with(
                haiku.clone(),
                "system",
                json!([{"type":"text","text":"x","cache_control":{"type":"ephemeral","ttl":"10m"}}]),
            ),
            400,
            "invalid_request_error",
            "'5m' or '1h'",
        ),
        case(
            "1h breakpoint after a 5m one",
            with(
                haiku.clone(),
                "system",
                json!([cached_text(1), {"type":"text","text":"y","cache_control":{"type":"ephemeral","ttl":"1h"}}]),
            ),
            400,
            "invalid_request_error",
            "ttl='1h'",
        ),
        case(
            "tool_choice any with thinking",
            with(
                with(
                    with(
                        with(haiku.clone(), "max_tokens", json!(4000)),
                        "thinking",
                        json!({"type":"enabled","budget_tokens":2000}),
                    ),
                    "tools",
                    tool.clone(),
                ),
                "tool_choice",
                json!({"type":"any"}),
            ),
            400,
            "invalid_request_error",
            "tool_choice forces tool use",
        ),
        case(
            "tool_choice tool with adaptive thinking",
            with(
                with(
                    with(
                        simple_body("claude-sonnet-4-6", "hi"),
                        "thinking",
                        json!({"type":"adaptive"}),
                    ),
                    "tools",
                    tool.clone(),
                ),
                "tool_choice",
                json!({"type":"tool","name":"get"}),
            ),
            400,
            "invalid_request_error",
            "tool_choice forces tool use",
        ),
        case(
            "tool_choice naming an unknown tool",
            with(
                with(haiku.clone(), "tools", tool.clone()),
                "tool_choice",
                json!({"type":"tool","name":"nope"}),
            ),
            400,
            "invalid_request_error",
            "not in `tools`",
        ),
        case(
            "tool_choice without tools",
            with(haiku.clone(), "tool_choice", json!({"type":"any"})),
            400,
            "invalid_request_error",
            "only be specified while providing tools",
        ),
        case(
            "tool without input_schema",
            with(haiku.clone(), "tools", json!([{"name":"x"}])),
            400,
            "invalid_request_error",
            "input_schema: Field required",
        ),
        case(
            "duplicate tool names",
            with(
                haiku.clone(),
                "tools",
                json!([tool[0].clone(), tool[0].clone()]),
            ),
            400,
            "invalid_request_error",
            "Tool names must be unique",
        ),
        case(
            "tool_result for an unknown tool_use_id",
            with(
                with(haiku.clone(), "tools", tool.clone()),
                "messages",
                json!([
                    {"role":"user","content":"go"},
                    {"role":"assistant","content":[{"type":"tool_use","id":"toolu_A","name":"get","input":{}}]},
                    {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_B","content":"x"}]}
                ]),
            ),
            400,
            "invalid_request_error",
            "unexpected `tool_use_id` found in `tool_result` blocks: toolu_B",
        ),
        case(
            "tool_use without its tool_result",
            with(
                with(haiku.clone(), "tools", tool.clone()),
                "messages",
                json!([
                    {"role":"user","content":"go"},
                    {"role":"assistant","content":[{"type":"tool_use","id":"toolu_A","name":"get","input":{}}]},
                    {"role":"user","content":"and?"}
                ]),
            ),
            400,
            "invalid_request_error",
            "`tool_use` ids were found without `tool_result` blocks immediately after: toolu_A",
        ),
        case(
            "system role message",
            with(
                haiku.clone(),
                "messages",
                json!([{"role":"system","content":"x"}]),
            ),
            400,
            "invalid_request_error",
            "`system` role is not supported",
        ),
        case(
            "unknown block type",
            with(
                haiku.clone(),
                "messages",
                json!([{"role":"user","content":[{"type":"banana"}]}]),
            ),
            400,
            "invalid_request_error",
            "Input tag 'banana'",
        ),
        case(
            "stream with max_tokens 0",
            with(
                with(haiku.clone(), "stream", json!(true)),
                "max_tokens",
                json!(0),
            ),
            400,
            "invalid_request_error",
            "greater than 0",
        ),
        case(
            "prompt longer than the context window",
            with(
                haiku.clone(),
                "messages",
                json!([{"role":"user","content":"x".repeat(800_004)}]),
            ),
            400,
            "invalid_request_error",
            "prompt is too long: 200001 tokens > 200000 maximum",
        ),
    ];
    for c in cases {
        let reply = sim.message(&c.body).await;
        assert_eq!(reply.status, c.status, "{}: {}", c.name, reply.text);
        assert_eq!(reply.json["type"], "error", "{}", c.name);
        assert_eq!(
            reply.json["error"]["type"], c.kind,
            "{}: {}",
            c.name, reply.text
        );
        let message = reply.json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(c.message_contains),
            "{}: message {message:?} lacks {:?}",
            c.name,
            c.message_contains
        );
        // The body's request_id is the request-id header.
        let rid = reply.header("request-id").unwrap();
        assert!(rid.starts_with("req_"), "{}", c.name);
        assert_eq!(reply.json["request_id"], rid.as_str(), "{}", c.name);
    }
    // The same requests fixed are accepted.
    for ok in [
        with(
            with(haiku.clone(), "max_tokens", json!(4000)),
            "thinking",
            json!({"type":"enabled","budget_tokens":2000}),
        ),
        with(
            simple_body("claude-sonnet-4-6", "hi"),
            "output_config",
            json!({"effort":"max"}),
        ),
        with(
            with(opus47.clone(), "thinking", json!({"type":"adaptive"})),
            "output_config",
            json!({"effort":"xhigh"}),
        ),
        with(
            haiku.clone(),
            "system",
            json!([
                cached_text(1),
                cached_text(2),
                cached_text(3),
                cached_text(4)
            ]),
        ),
        with(haiku.clone(), "temperature", json!(0.3)),
    ] {
        let reply = sim.message(&ok).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    sim.server.shutdown().await;
}

#[tokio::test]
async fn authentication_version_and_json_are_checked_first() {
    let sim = start(scenario(INSTANT)).await;
    let body = simple_body("claude-haiku-4-5", "hi");

    let no_key = sim
        .client
        .post(sim.url("/v1/messages"))
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_key.status().as_u16(), 401);
    let err: Value = no_key.json().await.unwrap();
    assert_eq!(err["error"]["type"], "authentication_error");
    assert_eq!(err["error"]["message"], "x-api-key header is required");

    let bearer = sim
        .client
        .post(sim.url("/v1/messages"))
        .header("authorization", "Bearer tok")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status().as_u16(), 200);

    let no_version = sim
        .client
        .post(sim.url("/v1/messages"))
        .header("x-api-key", "k")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_version.status().as_u16(), 400);
    let err: Value = no_version.json().await.unwrap();
    assert_eq!(
        err["error"]["message"],
        "anthropic-version: header is required"
    );

    let bad_json = sim
        .client
        .post(sim.url("/v1/messages"))
        .header("x-api-key", "k")
        .header("anthropic-version", "2023-06-01")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status().as_u16(), 400);
    let err: Value = bad_json.json().await.unwrap();
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid JSON")
    );

    let unknown = sim.get("/v2/nothing").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json["error"]["type"], "not_found_error");
    sim.server.shutdown().await;
}

#[tokio::test]
async fn rate_limit_headers_are_on_every_response() {
    let sim = start(scenario(INSTANT)).await;
    let reply = sim.message(&simple_body("claude-haiku-4-5", "hi")).await;
    assert_eq!(reply.status, 200);
    for h in [
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
    ] {
        assert!(reply.header(h).is_some(), "missing {h}");
    }
    let reset = reply.header("anthropic-ratelimit-requests-reset").unwrap();
    assert!(reset.ends_with('Z') && reset.len() == 20, "{reset}");
    sim.server.shutdown().await;
}
