//! Scenario-driven planner, worker and reviewer answers.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::common::{
    INSTANT, apply_call, bracket_balance, planner_tools, reviewer_body, scenario, start, unified,
    worker_body, worker_prompt,
};

const MODELS_PY: &str = "from app.types import UserId\n\n\nclass UserId:\n    def __init__(self, raw):\n        self.raw = raw\n\n\ndef load(uid: UserId) -> UserId:\n    return UserId(uid.raw)\n";

fn rename_scenario(extra: &str) -> String {
    format!(
        r#"
seed = 11
[plan]
notes = "Rename UserId to AccountId."
[[plan.subtasks]]
path = "app/models.py"
instruction = "Rename the class."
complexity = "mechanical"
error_cost = "low"
[[plan.subtasks]]
path = "../outside.py"
instruction = "Hostile path, sent verbatim."
complexity = "reasoning"
error_cost = "high"

[[files]]
path = "app/models.py"
edits = [
  {{ old = "from app.types import UserId", new = "from app.types import AccountId" }},
  {{ old = "class UserId:", new = "class AccountId:" }},
  {{ old = "def load(uid: UserId) -> UserId:\n    return UserId(uid.raw)", new = "def load(uid: AccountId) -> AccountId:\n    return AccountId(uid.raw)" }},
]
reads = ["app/types.py", "grep:UserId"]
script = {{ "claude-haiku-4-5" = ["syntax"], "claude-sonnet-4-6" = ["partial", "ok"] }}

{extra}
{INSTANT}
"#
    )
}

fn expected_models_py() -> String {
    MODELS_PY.replace("UserId", "AccountId")
}

/// Runs one worker attempt through its read turns and returns the final reply.
async fn run_attempt(
    sim: &super::common::Sim,
    model: &str,
    feedback: &[&str],
) -> super::common::Reply {
    let prompt = worker_prompt("app/models.py", "mechanical", MODELS_PY, feedback);
    let mut body = worker_body(model, &prompt);
    for _ in 0..5 {
        let reply = sim.message(&body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let Some(call) = reply.tool_use().cloned() else {
            return reply;
        };
        if call["name"] != "read_file" && call["name"] != "grep" {
            return reply;
        }
        let messages = body["messages"].as_array_mut().unwrap();
        messages.push(json!({"role": "assistant", "content": reply.json["content"].clone()}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call["id"], "content": "class AccountId: ..."}
        ]}));
    }
    panic!("worker never edited");
}

#[tokio::test]
async fn planner_submits_the_scenario_plan_verbatim() {
    let sim = start(scenario(&rename_scenario(""))).await;
    let body = json!({
        "model": "claude-opus-4-7",
        "max_tokens": 16000,
        "tools": planner_tools(),
        "output_config": {"effort": "medium"},
        "messages": [{"role": "user", "content": "<instruction>\nRename UserId\n</instruction>\n<workspace_map>app/models.py</workspace_map>"}],
    });
    let reply = sim.message(&body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json["stop_reason"], "tool_use");
    let call = reply.tool_use().unwrap();
    assert_eq!(call["name"], "submit_plan");
    assert!(call["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(
        call["input"],
        json!({
            "notes": "Rename UserId to AccountId.",
            "subtasks": [
                {"path": "app/models.py", "instruction": "Rename the class.", "complexity": "mechanical", "error_cost": "low"},
                {"path": "../outside.py", "instruction": "Hostile path, sent verbatim.", "complexity": "reasoning", "error_cost": "high"},
            ]
        })
    );
    // Output tokens follow the answer size.
    let out = reply.json["usage"]["output_tokens"].as_u64().unwrap();
    assert!(out >= call["input"].to_string().len() as u64 / 4, "{out}");
    assert_eq!(
        sim.server.request_log()[0].role,
        Some(cadre_sim::Role::Planner)
    );
    sim.server.shutdown().await;
}

#[tokio::test]
async fn workers_read_first_then_follow_the_script_in_order() {
    let sim = start(scenario(&rename_scenario(""))).await;

    // Attempt 1, haiku: two read turns (read_file, then grep), then "syntax".
    let first = worker_body(
        "claude-haiku-4-5",
        &worker_prompt("app/models.py", "mechanical", MODELS_PY, &[]),
    );
    let r = sim.message(&first).await;
    let call = r.tool_use().unwrap();
    assert_eq!(
        (call["name"].as_str(), &call["input"]),
        (Some("read_file"), &json!({"path": "app/types.py"}))
    );
    let reply = run_attempt(&sim, "claude-haiku-4-5", &[]).await;
    let call = reply.tool_use().unwrap();
    let out = apply_call(MODELS_PY, call).unwrap();
    assert_ne!(
        bracket_balance(&out),
        0,
        "syntax answer must not parse:\n{out}"
    );
    assert!(
        out.contains("class AccountId:"),
        "the change itself is there"
    );

    // Attempt 2, sonnet: "partial" = only the first edit.
    let reply = run_attempt(&sim, "claude-sonnet-4-6", &["bad syntax"]).await;
    let out = apply_call(MODELS_PY, reply.tool_use().unwrap()).unwrap();
    assert_eq!(bracket_balance(&out), 0);
    assert!(
        out.contains("import AccountId") && out.contains("class UserId:"),
        "{out}"
    );

    // Attempt 3, sonnet again: "ok".
    let reply = run_attempt(
        &sim,
        "claude-sonnet-4-6",
        &["bad syntax", "missed a call site"],
    )
    .await;
    assert_eq!(
        apply_call(MODELS_PY, reply.tool_use().unwrap()).unwrap(),
        expected_models_py()
    );

    // Attempt 4, haiku: its script is exhausted, so it answers correctly.
    let reply = run_attempt(&sim, "claude-haiku-4-5", &["a", "b", "c"]).await;
    assert_eq!(
        apply_call(MODELS_PY, reply.tool_use().unwrap()).unwrap(),
        expected_models_py()
    );

    type Final = (String, Option<u32>, Option<u32>, Option<String>);
    let finals: Vec<Final> = sim
        .server
        .request_log()
        .into_iter()
        .filter(|r| r.outcome.as_deref() != Some("read"))
        .map(|r| (r.model.unwrap(), r.attempt, r.model_attempt, r.outcome))
        .collect();
    assert_eq!(
        finals,
        vec![
            (
                "claude-haiku-4-5".into(),
                Some(1),
                Some(1),
                Some("syntax".into())
            ),
            (
                "claude-sonnet-4-6".into(),
                Some(2),
                Some(1),
                Some("partial".into())
            ),
            (
                "claude-sonnet-4-6".into(),
                Some(3),
                Some(2),
                Some("ok".into())
            ),
            (
                "claude-haiku-4-5".into(),
                Some(4),
                Some(2),
                Some("ok".into())
            ),
        ]
    );
    sim.server.shutdown().await;
}

#[tokio::test]
async fn every_wrong_answer_kind_is_really_wrong() {
    let toml = format!(
        r#"
seed = 3
[[files]]
path = "m.py"
edits = [ {{ old = "a = f(1)", new = "a = g(1)" }}, {{ old = "b = f(2)", new = "b = g(2)" }} ]
script = {{ "claude-haiku-4-5" = ["syntax", "partial", "mismatch", "noop", "repeat", "no_tool", "schema", "wrong_tool", "truncated", "empty", "ok"] }}
{INSTANT}
"#
    );
    let sim = start(scenario(&toml)).await;
    let file = "import x\n\na = f(1)\nb = f(2)\n";
    let expected = "import x\n\na = g(1)\nb = g(2)\n";
    let mut feedback: Vec<&str> = Vec::new();
    let mut replies = Vec::new();
    for _ in 0..11 {
        let body = worker_body(
            "claude-haiku-4-5",
            &worker_prompt("m.py", "mechanical", file, &feedback),
        );
        let reply = sim.message(&body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        replies.push(reply);
        feedback.push("try again");
    }
    let applied = |i: usize| apply_call(file, replies[i].tool_use().unwrap());
    // syntax: unbalanced.
    assert_ne!(bracket_balance(&applied(0).unwrap()), 0);
    // partial: parses, misses the second change.
    assert_eq!(applied(1).unwrap(), "import x\n\na = g(1)\nb = f(2)\n");
    // mismatch: `old` does not occur.
    assert!(
        applied(2)
            .unwrap_err()
            .contains("does not occur exactly once")
    );
    // noop: the original.
    assert_eq!(applied(3).unwrap(), file);
    // repeat: the previous wrong answer verbatim (the noop).
    assert_eq!(
        replies[4].tool_use().unwrap()["input"],
        replies[3].tool_use().unwrap()["input"]
    );
    // no_tool: text only.
    assert!(replies[5].tool_use().is_none());
    assert_eq!(replies[5].json["stop_reason"], "end_turn");
    assert_eq!(replies[5].json["content"][0]["type"], "text");
    // schema: edit_file without `edits`.
    let schema = replies[6].tool_use().unwrap();
    assert_eq!(schema["name"], "edit_file");
    assert!(schema["input"].get("edits").is_none(), "{schema}");
    // wrong_tool: submit_plan.
    assert_eq!(replies[7].tool_use().unwrap()["name"], "submit_plan");
    // truncated: max_tokens with a cut-off input.
    assert_eq!(replies[8].json["stop_reason"], "max_tokens");
    assert_eq!(replies[8].json["usage"]["output_tokens"], 8192);
    assert!(
        replies[8].tool_use().unwrap()["input"]["edits"][0]
            .get("new")
            .is_none()
    );
    // empty: no content at all.
    assert_eq!(replies[9].json["content"], json!([]));
    // then the correct answer.
    assert_eq!(applied(10).unwrap(), expected);
    sim.server.shutdown().await;
}

async fn roll_outcomes(seed: u64, attempts: &[u32]) -> Vec<(u32, String)> {
    let toml = format!(
        r#"
seed = {seed}
[[files]]
path = "r.py"
edits = [ {{ old = "x = 1", new = "x = 2" }}, {{ old = "y = 1", new = "y = 2" }} ]
[models."claude-haiku-4-5"]
skill = {{ mechanical = 0.5 }}
latency_ms = {{ base = 0, jitter = 0 }}
"#
    );
    let sim = start(scenario(&toml)).await;
    for &n in attempts {
        let feedback: Vec<&str> = (1..n).map(|_| "again").collect();
        let body = worker_body(
            "claude-haiku-4-5",
            &worker_prompt("r.py", "mechanical", "x = 1\ny = 1\n", &feedback),
        );
        assert_eq!(sim.message(&body).await.status, 200);
    }
    let mut out: Vec<(u32, String)> = sim
        .server
        .request_log()
        .into_iter()
        .map(|r| (r.attempt.unwrap(), r.outcome.unwrap()))
        .collect();
    out.sort();
    sim.server.shutdown().await;
    out
}

#[tokio::test]
async fn skill_rolls_are_deterministic_per_seed_and_independent_of_order() {
    let forward: Vec<u32> = (1..=24).collect();
    let backward: Vec<u32> = (1..=24).rev().collect();
    let a = roll_outcomes(42, &forward).await;
    let b = roll_outcomes(42, &forward).await;
    let c = roll_outcomes(42, &backward).await;
    assert_eq!(a, b, "same seed, same answers");
    let kinds = |v: &[(u32, String)]| v.iter().map(|(n, k)| (*n, k.clone())).collect::<Vec<_>>();
    assert_eq!(kinds(&a), kinds(&c), "arrival order does not matter");
    let other = roll_outcomes(43, &forward).await;
    assert_ne!(a, other, "another seed rolls differently");
    // With skill 0.5 both outcomes occur.
    assert!(
        a.iter().any(|(_, k)| k == "ok") && a.iter().any(|(_, k)| k != "ok"),
        "{a:?}"
    );
}

#[tokio::test]
async fn files_outside_the_scenario_get_a_noop() {
    let sim = start(scenario(&rename_scenario(""))).await;
    let original = "print('untouched')\n";
    let reply = sim
        .message(&worker_body(
            "claude-haiku-4-5",
            &worker_prompt("other.py", "mechanical", original, &[]),
        ))
        .await;
    let call = reply.tool_use().unwrap();
    assert_eq!(call["name"], "write_file");
    assert_eq!(call["input"]["content"], original);
    sim.server.shutdown().await;
}

#[tokio::test]
async fn reviewer_approves_exactly_the_expected_change() {
    let extra = r#"
[[files]]
path = "app/legacy.py"
content = "def old():\n    return 2\n"

[reviewer]
force_revise = { "app/legacy.py" = 1 }
"#;
    let sim = start(scenario(&rename_scenario(extra))).await;
    let legacy = "def old():\n    return 1\n";
    // The reviewer learns the originals from the first worker prompts.
    for (path, content) in [("app/models.py", MODELS_PY), ("app/legacy.py", legacy)] {
        let body = worker_body(
            "claude-opus-4-7",
            &worker_prompt(path, "mechanical", content, &[]),
        );
        assert_eq!(sim.message(&body).await.status, 200);
    }
    let good = unified("app/models.py", MODELS_PY, &expected_models_py());
    let partial = unified(
        "app/models.py",
        MODELS_PY,
        &MODELS_PY.replacen("class UserId:", "class AccountId:", 1),
    );
    let legacy_good = unified("app/legacy.py", legacy, "def old():\n    return 2\n");

    let verdicts = |reply: &super::common::Reply| -> Vec<(String, String)> {
        reply.tool_use().unwrap()["input"]["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                (
                    v["path"].as_str().unwrap().to_string(),
                    v["verdict"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };

    // Round 1: models.py is partial -> revise; legacy.py is right but forced -> revise.
    let r1 = sim
        .message(&reviewer_body(
            "claude-opus-4-7",
            &[
                ("app/models.py", partial),
                ("app/legacy.py", legacy_good.clone()),
            ],
        ))
        .await;
    assert_eq!(r1.status, 200, "{}", r1.text);
    assert_eq!(
        verdicts(&r1),
        vec![
            ("app/models.py".into(), "revise".into()),
            ("app/legacy.py".into(), "revise".into())
        ]
    );
    let comment = r1.tool_use().unwrap()["input"]["verdicts"][0]["comment"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        comment.contains("AccountId"),
        "the comment names what is missing: {comment}"
    );

    // Round 2: both right -> approve (the forced revision is used up).
    let r2 = sim
        .message(&reviewer_body(
            "claude-opus-4-7",
            &[("app/models.py", good), ("app/legacy.py", legacy_good)],
        ))
        .await;
    assert_eq!(
        verdicts(&r2),
        vec![
            ("app/models.py".into(), "approve".into()),
            ("app/legacy.py".into(), "approve".into())
        ]
    );

    // A change to a file the scenario does not touch is sent back.
    let stray = unified("README.md", "a\n", "b\n");
    let body = worker_body(
        "claude-opus-4-7",
        &worker_prompt("README.md", "mechanical", "a\n", &[]),
    );
    sim.message(&body).await;
    let r3 = sim
        .message(&reviewer_body("claude-opus-4-7", &[("README.md", stray)]))
        .await;
    assert_eq!(verdicts(&r3), vec![("README.md".into(), "revise".into())]);
    sim.server.shutdown().await;
}

#[tokio::test]
async fn workspace_originals_feed_the_reviewer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("ws/app")).unwrap();
    std::fs::write(dir.path().join("ws/app/models.py"), MODELS_PY).unwrap();
    let toml = format!("workspace = \"ws\"\n{}", rename_scenario(""));
    let s = cadre_sim::Scenario::from_toml_str(&toml, dir.path()).unwrap();
    let sim = start(s).await;
    // No worker prompt seen: the original comes from the workspace.
    let good = unified("app/models.py", MODELS_PY, &expected_models_py());
    let reply = sim
        .message(&reviewer_body(
            "claude-opus-4-7",
            &[("app/models.py", good)],
        ))
        .await;
    assert_eq!(
        reply.tool_use().unwrap()["input"]["verdicts"][0]["verdict"],
        "approve"
    );
    sim.server.shutdown().await;
}

#[tokio::test]
async fn thinking_blocks_are_signed_and_required_on_continuations() {
    let sim = start(scenario(&rename_scenario(""))).await;
    let mut body = worker_body(
        "claude-haiku-4-5",
        &worker_prompt("app/models.py", "generative", MODELS_PY, &[]),
    );
    body["thinking"] = json!({"type": "enabled", "budget_tokens": 2048});
    let reply = sim.message(&body).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let content = reply.json["content"].as_array().unwrap().clone();
    assert_eq!(content[0]["type"], "thinking");
    assert!(!content[0]["thinking"].as_str().unwrap().is_empty());
    assert!(
        reply.json["usage"]["output_tokens_details"]["thinking_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
    let call = reply.tool_use().unwrap().clone();

    let continue_with = |assistant: Vec<Value>| {
        let mut b = body.clone();
        let msgs = b["messages"].as_array_mut().unwrap();
        msgs.push(json!({"role": "assistant", "content": assistant}));
        msgs.push(json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "ok"}]}));
        b
    };
    // Dropping the thinking block is rejected like the real API does.
    let without: Vec<Value> = content
        .iter()
        .filter(|b| b["type"] != "thinking")
        .cloned()
        .collect();
    let r = sim.message(&continue_with(without)).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("must start with a thinking block")
    );
    // A tampered signature is rejected.
    let mut tampered = content.clone();
    tampered[0]["signature"] = json!("EsForged");
    let r = sim.message(&continue_with(tampered)).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Invalid `signature`")
    );
    // Passed back unchanged: accepted.
    let r = sim.message(&continue_with(content)).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Adaptive-only opus-4-7 omits the thinking text by default.
    let mut body = worker_body(
        "claude-opus-4-7",
        &worker_prompt("app/models.py", "reasoning", MODELS_PY, &[]),
    );
    body["thinking"] = json!({"type": "adaptive"});
    let reply = sim.message(&body).await;
    assert_eq!(reply.json["content"][0]["type"], "thinking");
    assert_eq!(reply.json["content"][0]["thinking"], "");
    sim.server.shutdown().await;
}
