//! Shared helpers: start a sim, send requests, build role prompts.

use std::sync::Arc;

use cadre_sim::{ManualClock, Scenario, SimServer};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// A running sim and a client for it.
pub struct Sim {
    pub server: SimServer,
    pub client: reqwest::Client,
}

/// A response: status, headers, body text and (if it parses) JSON.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The first tool_use block.
    pub fn tool_use(&self) -> Option<&Value> {
        self.json["content"]
            .as_array()?
            .iter()
            .find(|b| b["type"] == "tool_use")
    }
}

pub async fn start(scenario: Scenario) -> Sim {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = SimServer::start(scenario, listener).await.unwrap();
    Sim {
        server,
        client: reqwest::Client::new(),
    }
}

pub async fn start_with_clock(scenario: Scenario) -> (Sim, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = SimServer::start_with_clock(scenario, listener, clock.clone())
        .await
        .unwrap();
    (
        Sim {
            server,
            client: reqwest::Client::new(),
        },
        clock,
    )
}

/// A scenario from TOML text (no workspace).
pub fn scenario(toml: &str) -> Scenario {
    Scenario::from_toml_str(toml, std::path::Path::new(".")).unwrap()
}

/// Every built-in model answers instantly.
pub const INSTANT: &str = r#"
[models."claude-haiku-4-5"]
latency_ms = { base = 0, jitter = 0 }
[models."claude-sonnet-4-5"]
latency_ms = { base = 0, jitter = 0 }
[models."claude-sonnet-4-6"]
latency_ms = { base = 0, jitter = 0 }
[models."claude-opus-4-5"]
latency_ms = { base = 0, jitter = 0 }
[models."claude-opus-4-6"]
latency_ms = { base = 0, jitter = 0 }
[models."claude-opus-4-7"]
latency_ms = { base = 0, jitter = 0 }
"#;

impl Sim {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url())
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let mut req = self
            .client
            .request(method, self.url(path))
            .header("x-api-key", "test-key")
            .header("anthropic-version", "2023-06-01");
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        into_reply(req.send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body), &[])
            .await
    }

    pub async fn post_with(&self, path: &str, body: &Value, extra: &[(&str, &str)]) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body), extra)
            .await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None, &[]).await
    }

    pub async fn message(&self, body: &Value) -> Reply {
        self.post("/v1/messages", body).await
    }
}

pub async fn into_reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        text,
        json,
    }
}

/// A minimal valid Messages body.
pub fn simple_body(model: &str, text: &str) -> Value {
    json!({"model": model, "max_tokens": 256, "messages": [{"role": "user", "content": text}]})
}

pub fn worker_tools() -> Value {
    json!([
        {"name": "edit_file", "description": "Exact search/replace edits.", "input_schema": {
            "type": "object",
            "properties": {"edits": {"type": "array", "items": {"type": "object",
                "properties": {"old": {"type": "string"}, "new": {"type": "string"}},
                "required": ["old", "new"]}}},
            "required": ["edits"]}},
        {"name": "write_file", "description": "Replace the whole file.", "input_schema": {
            "type": "object", "properties": {"content": {"type": "string"}}, "required": ["content"]}},
        {"name": "read_file", "description": "Read a file.", "input_schema": {
            "type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}},
        {"name": "grep", "description": "Search the workspace.", "input_schema": {
            "type": "object", "properties": {"pattern": {"type": "string"}}, "required": ["pattern"]}}
    ])
}

/// The worker's first user message, per the prompt protocol.
pub fn worker_prompt(path: &str, complexity: &str, file: &str, feedback: &[&str]) -> String {
    let mut text = format!(
        "<subtask path=\"{path}\" complexity=\"{complexity}\" error_cost=\"low\">\nDo the change.\n</subtask>\n<file path=\"{path}\">\n{file}\n</file>"
    );
    for (i, f) in feedback.iter().enumerate() {
        text.push_str(&format!(
            "\n<feedback attempt=\"{}\" kind=\"syntax_error\">{f}</feedback>",
            i + 1
        ));
    }
    text
}

pub fn worker_body(model: &str, prompt: &str) -> Value {
    json!({
        "model": model,
        "max_tokens": 8192,
        "system": [{"type": "text", "text": "You are a careful code editor.", "cache_control": {"type": "ephemeral"}}],
        "tools": worker_tools(),
        "messages": [{"role": "user", "content": [{"type": "text", "text": prompt}]}],
    })
}

/// Applies an edit_file / write_file call to `file` like cadre would.
pub fn apply_call(file: &str, call: &Value) -> Result<String, String> {
    match call["name"].as_str() {
        Some("write_file") => call["input"]["content"]
            .as_str()
            .map(str::to_string)
            .ok_or("no content".into()),
        Some("edit_file") => {
            let mut text = file.to_string();
            for e in call["input"]["edits"].as_array().ok_or("no edits")? {
                let old = e["old"].as_str().ok_or("no old")?;
                let new = e["new"].as_str().ok_or("no new")?;
                if text.matches(old).count() != 1 {
                    return Err(format!("old {old:?} does not occur exactly once"));
                }
                text = text.replacen(old, new, 1);
            }
            Ok(text)
        }
        other => Err(format!("not an edit tool: {other:?}")),
    }
}

/// Bracket balance ignoring nothing: non-zero means the file cannot parse.
pub fn bracket_balance(text: &str) -> i64 {
    text.chars()
        .map(|c| match c {
            '(' | '[' | '{' => 1,
            ')' | ']' | '}' => -1,
            _ => 0,
        })
        .sum()
}

pub fn planner_tools() -> Value {
    json!([{"name": "submit_plan", "description": "Submit the plan.", "input_schema": {
        "type": "object", "properties": {"notes": {"type": "string"}, "subtasks": {"type": "array"}},
        "required": ["notes", "subtasks"]}}])
}

pub fn reviewer_tools() -> Value {
    json!([{"name": "submit_review", "description": "Submit verdicts.", "input_schema": {
        "type": "object", "properties": {"verdicts": {"type": "array"}}, "required": ["verdicts"]}}])
}

/// A unified diff like cadre produces (similar, 3 lines context).
pub fn unified(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

pub fn reviewer_body(model: &str, diffs: &[(&str, String)]) -> Value {
    let mut text = String::from("Review the combined change.\n");
    for (path, diff) in diffs {
        text.push_str(&format!("<diff path=\"{path}\">\n{diff}\n</diff>\n"));
    }
    json!({
        "model": model,
        "max_tokens": 4096,
        "tools": reviewer_tools(),
        "messages": [{"role": "user", "content": text}],
    })
}
