//! `POST /v1/chat/completions`: the planner answers on the Chat wire, and
//! each quirk of a real local server does what that server does.

use cadre_sim::{ChatQuirk, Scenario, SubtaskSpec};
use serde_json::{Value, json};

use super::common::{INSTANT, Sim, scenario, start};

const MODEL: &str = "claude-haiku-4-5";

fn chat_tools() -> Value {
    json!([{"type": "function", "function": {"name": "submit_plan", "description": "Submit the plan.",
        "parameters": {"type": "object", "properties": {"notes": {"type": "string"},
        "subtasks": {"type": "array"}}, "required": ["notes", "subtasks"]}}}])
}

fn planner_chat(tool_choice: Value) -> Value {
    json!({
        "model": MODEL,
        "max_tokens": 2048,
        "messages": [
            {"role": "system", "content": "You plan code changes."},
            {"role": "user", "content": "Rename UserId everywhere."}
        ],
        "tools": chat_tools(),
        "tool_choice": tool_choice,
    })
}

async fn sim_with(quirks: &[ChatQuirk], window: u64) -> Sim {
    let base = scenario(INSTANT);
    let mut builder = Scenario::builder()
        .notes("Line one.\nLine two.")
        .subtask(SubtaskSpec::new("app/a.py", "Rename it.\nKeep the rest."));
    for (id, m) in base.models {
        builder = builder.model(id, m);
    }
    for q in quirks {
        builder = builder.chat_quirk(*q);
    }
    start(builder.chat_context_window(window).build().unwrap()).await
}

#[tokio::test]
async fn plain_server_answers_a_tool_call_with_string_arguments() {
    let sim = sim_with(&[], 0).await;
    let r = sim
        .post("/v1/chat/completions", &planner_chat(json!("required")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let choice = &r.json["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "submit_plan");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args["subtasks"][0]["path"], "app/a.py");
    assert!(r.json["usage"]["prompt_tokens"].as_u64().unwrap() > 0);

    // The follow-up turn: content null beside tool_calls is fine here.
    let mut body = planner_chat(json!({"type": "function", "function": {"name": "submit_plan"}}));
    let messages = body["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call.clone()]}));
    messages.push(
        json!({"role": "tool", "tool_call_id": call["id"], "content": "rejected: try again"}),
    );
    let r = sim.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn refuse_required_is_an_empty_500_and_named_still_works() {
    let sim = sim_with(&[ChatQuirk::RefuseRequired], 0).await;
    let r = sim
        .post("/v1/chat/completions", &planner_chat(json!("required")))
        .await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json["error"]["message"], "");
    let named = json!({"type": "function", "function": {"name": "submit_plan"}});
    let r = sim.post("/v1/chat/completions", &planner_chat(named)).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn refuse_null_content_is_a_500_validation_error() {
    let sim = sim_with(&[], 0).await;
    let mut body = planner_chat(json!("auto"));
    body["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "assistant", "content": null}));
    body["messages"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "user", "content": "again"}));
    let r = sim
        .post_with(
            "/v1/chat/completions",
            &body,
            &[("x-sim-quirks", "refuse_null_content")],
        )
        .await;
    assert_eq!(r.status, 500);
    let message = r.json["error"]["message"].as_str().unwrap();
    assert!(message.contains("'messages', 2, 'content'"), "{message}");
}

#[tokio::test]
async fn tool_calls_as_text_and_raw_newlines() {
    let sim = sim_with(&[ChatQuirk::ToolCallsAsText], 0).await;
    let r = sim
        .post("/v1/chat/completions", &planner_chat(json!("auto")))
        .await;
    let message = &r.json["choices"][0]["message"];
    assert!(message.get("tool_calls").is_none());
    assert_eq!(r.json["choices"][0]["finish_reason"], "stop");
    assert!(
        message["content"]
            .as_str()
            .unwrap()
            .starts_with("<tool_call>\n{")
    );

    let sim = sim_with(&[ChatQuirk::RawNewlinesInArguments], 0).await;
    let r = sim
        .post("/v1/chat/completions", &planner_chat(json!("auto")))
        .await;
    let args = r.json["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
        .as_str()
        .unwrap();
    assert!(args.contains("Line one.\nLine two."));
    assert!(serde_json::from_str::<Value>(args).is_err());
}

#[tokio::test]
async fn prose_unless_named_calls_a_tool_only_when_one_is_named() {
    let sim = sim_with(&[ChatQuirk::ProseUnlessNamed], 0).await;
    let r = sim
        .post("/v1/chat/completions", &planner_chat(json!("auto")))
        .await;
    let message = &r.json["choices"][0]["message"];
    assert!(message.get("tool_calls").is_none(), "{message}");
    assert_eq!(r.json["choices"][0]["finish_reason"], "stop");
    assert!(
        message["content"]
            .as_str()
            .unwrap()
            .contains("I will use submit_plan")
    );
    let named = json!({"type": "function", "function": {"name": "submit_plan"}});
    let r = sim.post("/v1/chat/completions", &planner_chat(named)).await;
    assert_eq!(
        r.json["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "submit_plan"
    );
}

#[tokio::test]
async fn small_window_refuses_long_prompts_and_cuts_max_tokens() {
    let sim = sim_with(&[], 40).await;
    let mut long = planner_chat(json!("auto"));
    long["messages"][1]["content"] = json!("x".repeat(400));
    let r = sim.post("/v1/chat/completions", &long).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("exceed context window of 40"), "{}", r.text);

    let body = planner_chat(json!("auto"));
    let full = sim_with(&[], 0)
        .await
        .post("/v1/chat/completions", &body)
        .await;
    let prompt = full.json["usage"]["prompt_tokens"].as_u64().unwrap();
    let sim = sim_with(&[], prompt + 5).await;
    let r = sim.post("/v1/chat/completions", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["choices"][0]["finish_reason"], "length");
    assert_eq!(r.json["usage"]["completion_tokens"], 5);
}

/// haiku answers after `ms`.
async fn slow_sim(quirks: &[ChatQuirk], ms: u64) -> Sim {
    let base = scenario(&INSTANT.replacen(
        "latency_ms = { base = 0, jitter = 0 }",
        &format!("latency_ms = {{ base = {ms}, jitter = 0 }}"),
        1,
    ));
    let mut builder = Scenario::builder()
        .notes("n")
        .subtask(SubtaskSpec::new("app/a.py", "Rename it."));
    for (id, m) in base.models {
        builder = builder.model(id, m);
    }
    for q in quirks {
        builder = builder.chat_quirk(*q);
    }
    start(builder.build().unwrap()).await
}

#[tokio::test]
async fn a_streamed_answer_carries_the_same_completion_in_chunks() {
    let sim = sim_with(&[], 0).await;
    let whole = sim
        .post("/v1/chat/completions", &planner_chat(json!("auto")))
        .await;
    let mut body = planner_chat(json!("auto"));
    body["stream"] = json!(true);
    let streamed = sim.post("/v1/chat/completions", &body).await;
    assert_eq!(streamed.status, 200);
    assert!(
        streamed
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert!(
        streamed.text.ends_with("data: [DONE]\n\n"),
        "{}",
        streamed.text
    );
    let mut arguments = String::new();
    let mut finish = Value::Null;
    for frame in streamed.text.split("\n\n").filter(|f| !f.is_empty()) {
        let data = frame.trim_start_matches("data: ");
        if data == "[DONE]" {
            continue;
        }
        let chunk: Value = serde_json::from_str(data).unwrap();
        assert_eq!(chunk["object"], "chat.completion.chunk");
        if let Some(piece) = chunk
            .pointer("/choices/0/delta/tool_calls/0/function/arguments")
            .and_then(Value::as_str)
        {
            arguments.push_str(piece);
        }
        if !chunk["choices"][0]["finish_reason"].is_null() {
            finish = chunk["choices"][0]["finish_reason"].clone();
        }
    }
    assert_eq!(finish, "tool_calls");
    assert_eq!(
        arguments,
        whole.json["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap()
    );
}

#[tokio::test]
async fn keeps_generating_after_a_client_timeout_unless_the_answer_streams() {
    let sim = slow_sim(&[ChatQuirk::KeepsGenerating], 1500).await;
    let url = sim.url("/v1/chat/completions");
    // A whole answer abandoned by its client keeps the one slot busy.
    let abandoned = sim
        .client
        .post(&url)
        .timeout(std::time::Duration::from_millis(300))
        .json(&planner_chat(json!("auto")))
        .send()
        .await;
    assert!(abandoned.is_err_and(|e| e.is_timeout()));
    let next = sim
        .post("/v1/chat/completions", &planner_chat(json!("auto")))
        .await;
    assert_eq!(next.status, 200);
    let log = sim.server.request_log();
    assert_eq!(
        log.last().and_then(|r| r.fault.as_deref()),
        Some("busy_with_abandoned_generation"),
        "{log:#?}"
    );

    // A streamed answer stops when its client disconnects: the next request
    // never finds the slot held by an abandoned generation.
    let mut body = planner_chat(json!("auto"));
    body["stream"] = json!(true);
    let mut streamed = sim.client.post(&url).json(&body).send().await.unwrap();
    assert!(streamed.chunk().await.unwrap().is_some());
    drop(streamed);
    let after = sim
        .post("/v1/chat/completions", &planner_chat(json!("auto")))
        .await;
    assert_eq!(after.status, 200);
    let log = sim.server.request_log();
    assert_eq!(
        log.last().and_then(|r| r.fault.as_deref()),
        None,
        "{log:#?}"
    );
}

#[tokio::test]
async fn streams_only_named_tool_calls_closes_other_tool_streams_with_no_data() {
    let sim = sim_with(
        &[
            ChatQuirk::StreamsOnlyNamedToolCalls,
            ChatQuirk::RepeatsToolCallHeader,
            ChatQuirk::RefuseRequired,
        ],
        0,
    )
    .await;
    let streamed = |choice: Value| {
        let mut body = planner_chat(choice);
        body["stream"] = json!(true);
        body
    };
    // auto (the model calls a tool) and required: a 200 event stream, then nothing.
    for choice in [json!("auto"), json!("required")] {
        let r = sim
            .post("/v1/chat/completions", &streamed(choice.clone()))
            .await;
        assert_eq!(r.status, 200, "{choice}: {}", r.text);
        assert!(
            r.header("content-type")
                .unwrap()
                .starts_with("text/event-stream")
        );
        assert_eq!(r.text, "", "{choice}: no data, no [DONE]");
    }
    let log = sim.server.request_log();
    assert!(
        log.iter()
            .all(|r| r.fault.as_deref() == Some("stream_closed_without_data") && !r.complete),
        "{log:#?}"
    );

    // The same request unstreamed is answered; required unstreamed is still the empty 500.
    let whole = sim
        .post("/v1/chat/completions", &planner_chat(json!("auto")))
        .await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    let refused = sim
        .post("/v1/chat/completions", &planner_chat(json!("required")))
        .await;
    assert_eq!(refused.status, 500);

    // A named function streams, every tool-call chunk repeating id and name.
    let named = json!({"type": "function", "function": {"name": "submit_plan"}});
    let r = sim.post("/v1/chat/completions", &streamed(named)).await;
    assert!(r.text.ends_with("data: [DONE]\n\n"), "{}", r.text);
    let calls: Vec<Value> = r
        .text
        .split("\n\n")
        .filter_map(|f| serde_json::from_str::<Value>(f.trim_start_matches("data: ")).ok())
        .filter_map(|c| c.pointer("/choices/0/delta/tool_calls/0").cloned())
        .collect();
    assert!(calls.len() > 1, "{}", r.text);
    for call in &calls {
        assert_eq!(call["function"]["name"], "submit_plan", "{call}");
        assert!(call["id"].is_string(), "{call}");
    }
}
