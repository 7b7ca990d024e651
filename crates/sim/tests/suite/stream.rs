//! SSE streams: the real event sequence, fragments and cumulative usage.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::common::{INSTANT, scenario, start, worker_body, worker_prompt};

/// Parses an SSE body into (event, data) pairs, checking the framing.
fn parse_sse(text: &str) -> Vec<(String, Value)> {
    assert!(text.ends_with("\n\n"), "events end with a blank line");
    text.split("\n\n")
        .filter(|chunk| !chunk.is_empty())
        .map(|chunk| {
            let mut lines = chunk.lines();
            let event = lines
                .next()
                .unwrap()
                .strip_prefix("event: ")
                .unwrap()
                .to_string();
            let data = lines.next().unwrap().strip_prefix("data: ").unwrap();
            assert!(lines.next().is_none());
            let value: Value = serde_json::from_str(data).unwrap();
            assert_eq!(
                value["type"],
                event.as_str(),
                "data.type matches the event name"
            );
            (event, value)
        })
        .collect()
}

#[tokio::test]
async fn stream_is_well_formed_and_matches_the_non_streaming_answer() {
    let toml = format!(
        "[[files]]\npath = \"a.py\"\nedits = [{{ old = \"value = 1\", new = \"value = 2\" }}]\n{INSTANT}"
    );
    let sim = start(scenario(&toml)).await;
    let mut body = worker_body(
        "claude-haiku-4-5",
        &worker_prompt("a.py", "mechanical", "value = 1\nother = 3\n", &[]),
    );
    let plain = sim.message(&body).await;
    body["stream"] = json!(true);
    let resp = sim.post("/v1/messages", &body).await;
    assert_eq!(resp.status, 200);
    assert!(
        resp.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = parse_sse(&resp.text);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();

    assert_eq!(names[0], "message_start");
    assert_eq!(names[1], "content_block_start");
    assert_eq!(names[2], "ping");
    assert_eq!(names[names.len() - 2], "message_delta");
    assert_eq!(names[names.len() - 1], "message_stop");
    let start = &events[0].1["message"];
    assert_eq!(start["stop_reason"], Value::Null);
    assert_eq!(start["content"], json!([]));
    assert_eq!(start["usage"]["output_tokens"], 1);
    assert_eq!(
        start["usage"]["input_tokens"],
        plain.json["usage"]["input_tokens"]
    );

    // Rebuild the content blocks from the deltas.
    let mut blocks: Vec<Value> = Vec::new();
    let mut json_parts: Vec<String> = Vec::new();
    let mut fragments = 0;
    for (name, data) in &events {
        match name.as_str() {
            "content_block_start" => {
                assert_eq!(data["index"], blocks.len());
                blocks.push(data["content_block"].clone());
                json_parts.push(String::new());
            }
            "content_block_delta" => {
                let i = data["index"].as_u64().unwrap() as usize;
                let d = &data["delta"];
                match d["type"].as_str().unwrap() {
                    "text_delta" => {
                        let t = format!(
                            "{}{}",
                            blocks[i]["text"].as_str().unwrap(),
                            d["text"].as_str().unwrap()
                        );
                        blocks[i]["text"] = json!(t);
                    }
                    "input_json_delta" => {
                        json_parts[i].push_str(d["partial_json"].as_str().unwrap());
                        fragments += 1;
                    }
                    other => panic!("unexpected delta {other}"),
                }
            }
            "content_block_stop" => {
                let i = data["index"].as_u64().unwrap() as usize;
                if blocks[i]["type"] == "tool_use" {
                    blocks[i]["input"] = serde_json::from_str(&json_parts[i]).unwrap();
                }
            }
            _ => {}
        }
    }
    assert!(fragments >= 3, "tool input arrives in several fragments");
    // Same answer (tool ids derive from the request body, which differs by `stream`).
    let strip = |v: &mut Vec<Value>| {
        for b in v {
            let o = b.as_object_mut().unwrap();
            o.remove("citations");
            o.remove("id");
        }
    };
    let mut plain_blocks = plain.json["content"].as_array().unwrap().clone();
    strip(&mut plain_blocks);
    strip(&mut blocks);
    assert_eq!(blocks, plain_blocks);

    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "tool_use");
    assert_eq!(
        delta["usage"]["output_tokens"],
        plain.json["usage"]["output_tokens"]
    );

    // The log marks the stream complete once message_stop went out.
    let log = sim.server.request_log();
    assert!(log[1].stream && log[1].complete, "{:?}", log[1]);
    sim.server.shutdown().await;
}

#[tokio::test]
async fn truncated_tool_input_streams_as_invalid_json() {
    let toml = format!("[[files]]\npath = \"a.py\"\ncontent = \"x = 2\\n\"\n{INSTANT}");
    let sim = start(scenario(&toml)).await;
    let mut body = worker_body(
        "claude-haiku-4-5",
        &worker_prompt("a.py", "mechanical", "x = 1\n", &[]),
    );
    body["stream"] = json!(true);
    let resp = sim
        .post_with("/v1/messages", &body, &[("x-sim-fault", "truncated")])
        .await;
    let events = parse_sse(&resp.text);
    let partial: String = events
        .iter()
        .filter(|(n, d)| n == "content_block_delta" && d["delta"]["type"] == "input_json_delta")
        .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap().to_string())
        .collect();
    assert!(
        serde_json::from_str::<Value>(&partial).is_err(),
        "{partial}"
    );
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    sim.server.shutdown().await;
}
