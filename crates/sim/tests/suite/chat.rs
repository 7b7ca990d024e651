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
