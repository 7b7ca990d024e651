//! `GET /v1/models` and `GET /v1/models/{id}`.

use pretty_assertions::assert_eq;

use super::common::{scenario, start};

#[tokio::test]
async fn models_list_paginates_and_describes_capabilities() {
    let sim = start(scenario("[models.\"local-coder\"]\nthinking = \"none\"\n")).await;
    let all = sim.get("/v1/models?limit=100").await;
    assert_eq!(all.status, 200);
    let ids: Vec<&str> = all.json["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "claude-opus-4-7",
        "claude-sonnet-4-6",
        "claude-haiku-4-5",
        "claude-sonnet-4-5",
        "local-coder",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert_eq!(ids[0], "claude-opus-4-7", "newest first");

    let page1 = sim.get("/v1/models?limit=2").await;
    assert_eq!(page1.json["data"].as_array().unwrap().len(), 2);
    assert_eq!(page1.json["has_more"], true);
    assert_eq!(page1.json["first_id"], ids[0]);
    assert_eq!(page1.json["last_id"], ids[1]);
    let page2 = sim
        .get(&format!("/v1/models?limit=2&after_id={}", ids[1]))
        .await;
    assert_eq!(page2.json["first_id"], ids[2]);
    let back = sim
        .get(&format!("/v1/models?limit=1&before_id={}", ids[2]))
        .await;
    assert_eq!(back.json["first_id"], ids[1]);

    let opus = sim.get("/v1/models/claude-opus-4-7").await;
    assert_eq!(opus.json["type"], "model");
    assert_eq!(opus.json["lifecycle"], "active");
    assert_eq!(
        opus.json["capabilities"]["thinking"]["types"]["enabled"]["supported"],
        false
    );
    assert_eq!(
        opus.json["capabilities"]["thinking"]["types"]["adaptive"]["supported"],
        true
    );
    assert_eq!(
        opus.json["capabilities"]["effort"]["xhigh"]["supported"],
        true
    );
    let haiku = sim.get("/v1/models/claude-haiku-4-5-20251001").await;
    assert_eq!(haiku.json["id"], "claude-haiku-4-5");
    assert_eq!(haiku.json["capabilities"]["effort"]["supported"], false);
    assert_eq!(haiku.json["max_input_tokens"], 200_000);

    let missing = sim.get("/v1/models/claude-nope").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json["error"]["type"], "not_found_error");
    assert_eq!(sim.get("/v1/models?limit=0").await.status, 400);
    sim.server.shutdown().await;
}
