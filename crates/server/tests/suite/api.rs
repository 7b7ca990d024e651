//! The HTTP API alone (no dispatcher): error shapes, auth, limits,
//! validation, pagination, event streams.

use pretty_assertions::assert_eq;
use serde_json::json;

use super::common::{Served, World, cases, token};

#[tokio::test]
async fn unknown_routes_and_methods_get_the_error_shape() {
    let world = World::new().await;
    let served = Served::app(world.state(world.options())).await;
    let api = &served.api;

    let health = api.get("/healthz").await;
    assert_eq!(
        (health.status, health.json.clone()),
        (200, json!({"status": "ok"}))
    );

    api.get("/v1/nothing").await.expect_error(404, "not_found");
    let reply = api
        .send(api.client.delete(format!("{}/v1/jobs", api.base)))
        .await;
    reply.expect_error(405, "invalid_request");
    served.stop().await.unwrap();
}

#[tokio::test]
async fn bad_submissions_get_4xx_saying_what_is_wrong() {
    let world = World::new().await;
    let ws = world.workspace("ws", &cases("app", 1));
    let mut options = world.options();
    options.max_body_bytes = 4096;
    let served = Served::app(world.state(options)).await;
    let api = &served.api;
    let ws_text = ws.to_str().unwrap();

    let message = api
        .post("/v1/jobs", "{\"instruction\": ")
        .await
        .expect_error(400, "invalid_request");
    assert!(message.contains("JSON"), "{message}");

    let message = api
        .post("/v1/jobs", "not json at all")
        .await
        .expect_error(400, "invalid_request");
    assert!(message.contains("not valid JSON"), "{message}");

    let body = json!({"instruction": "x", "workspace": ws_text, "colour": "red"});
    let message = api
        .post("/v1/jobs", &body.to_string())
        .await
        .expect_error(400, "invalid_request");
    assert!(message.contains("unknown field `colour`"), "{message}");

    let message = api
        .post("/v1/jobs", &json!({"workspace": ws_text}).to_string())
        .await
        .expect_error(400, "invalid_request");
    assert!(message.contains("missing field `instruction`"), "{message}");

    let body = json!({"instruction": "x", "workspace": ws_text, "priority": "high"});
    let message = api
        .post("/v1/jobs", &body.to_string())
        .await
        .expect_error(400, "invalid_request");
    assert!(
        message.contains("priority") || message.contains("i64"),
        "{message}"
    );

    let body = json!({"instruction": "   ", "workspace": ws_text});
    let message = api
        .post("/v1/jobs", &body.to_string())
        .await
        .expect_error(400, "invalid_request");
    assert!(message.contains("instruction is empty"), "{message}");

    let body = json!({"instruction": "x", "workspace": ws_text, "budget_usd": -1.0});
    api.post("/v1/jobs", &body.to_string())
        .await
        .expect_error(400, "invalid_request");

    let body = json!({"instruction": "x", "workspace": "relative/ws"});
    let message = api
        .post("/v1/jobs", &body.to_string())
        .await
        .expect_error(400, "invalid_request");
    assert!(message.contains("absolute"), "{message}");

    let huge = json!({"instruction": "x".repeat(10_000), "workspace": ws_text});
    let message = api
        .post("/v1/jobs", &huge.to_string())
        .await
        .expect_error(413, "payload_too_large");
    assert!(message.contains("4096"), "{message}");

    let reply = api
        .send(
            api.client
                .post(format!("{}/v1/jobs", api.base))
                .header("content-type", "text/plain")
                .body(json!({"instruction": "x", "workspace": ws_text}).to_string()),
        )
        .await;
    let message = reply.expect_error(415, "invalid_request");
    assert!(message.contains("application/json"), "{message}");

    // Nothing above created a job.
    let page = api.get("/v1/jobs").await;
    assert_eq!(page.json["data"], json!([]));
    served.stop().await.unwrap();
}

#[tokio::test]
async fn workspaces_outside_the_allowed_roots_are_forbidden() {
    let world = World::new().await;
    let inside = world.workspace("ws", &cases("app", 1));
    let outside = world.tmp.path().join("elsewhere");
    std::fs::create_dir_all(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, world.root.join("link")).unwrap();
    let served = Served::app(world.state(world.options())).await;
    let api = &served.api;

    for path in [
        outside.clone(),
        world.root.join("link"),
        world.root.join("ws/../../elsewhere"),
    ] {
        let body = json!({"instruction": "x", "workspace": path});
        let message = api
            .post("/v1/jobs", &body.to_string())
            .await
            .expect_error(403, "forbidden");
        assert!(message.contains("outside"), "{message}");
    }
    let id = api.submit(&inside, json!({})).await;
    let report = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(report.json["status"], "queued");
    assert_eq!(
        report.json["workspace"],
        inside.canonicalize().unwrap().to_str().unwrap()
    );
    served.stop().await.unwrap();

    // No roots at all: every submission is refused, naming the flag.
    let mut options = world.options();
    options.allowed_roots.clear();
    let served = Served::app(world.state(options)).await;
    let body = json!({"instruction": "x", "workspace": inside});
    let message = served
        .api
        .post("/v1/jobs", &body.to_string())
        .await
        .expect_error(403, "forbidden");
    assert!(message.contains("--allow-root"), "{message}");
    served.stop().await.unwrap();
}

#[tokio::test]
async fn a_token_guards_every_endpoint_but_healthz() {
    let world = World::new().await;
    let ws = world.workspace("ws", &cases("app", 1));
    let mut options = world.options();
    options.token = token("correct horse battery staple");
    let served = Served::app(world.state(options)).await;
    let anonymous = &served.api;
    let wrong = served.api.with_token(Some("correct horse battery stapl"));
    let right = served.api.with_token(Some("correct horse battery staple"));

    assert_eq!(anonymous.get("/healthz").await.status, 200);
    anonymous
        .get("/v1/jobs")
        .await
        .expect_error(401, "unauthorized");
    wrong
        .get("/v1/jobs")
        .await
        .expect_error(401, "unauthorized");
    let body = json!({"instruction": "x", "workspace": ws}).to_string();
    anonymous
        .post("/v1/jobs", &body)
        .await
        .expect_error(401, "unauthorized");
    anonymous
        .get("/v1/nothing")
        .await
        .expect_error(401, "unauthorized");

    let id = right.submit(&ws, json!({})).await;
    assert_eq!(right.get(&format!("/v1/jobs/{id}")).await.status, 200);
    wrong
        .get(&format!("/v1/jobs/{id}/events"))
        .await
        .expect_error(401, "unauthorized");
    // The scheme is case-insensitive; a token works from any Host.
    let reply = anonymous
        .send(
            anonymous
                .client
                .get(format!("{}/v1/jobs", anonymous.base))
                .header("authorization", "bearer correct horse battery staple")
                .header("host", "cadre.example.com"),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    served.stop().await.unwrap();
}

#[tokio::test]
async fn without_a_token_only_loopback_names_and_origins_are_answered() {
    let world = World::new().await;
    let served = Served::app(world.state(world.options())).await;
    let api = &served.api;
    let url = format!("{}/v1/jobs", api.base);

    let rebinding = api
        .send(api.client.get(&url).header("host", "attacker.example:7878"))
        .await;
    assert!(
        rebinding
            .expect_error(403, "forbidden")
            .contains("loopback")
    );
    let cross_site = api
        .send(
            api.client
                .get(&url)
                .header("origin", "https://attacker.example"),
        )
        .await;
    cross_site.expect_error(403, "forbidden");
    let local = api
        .send(
            api.client
                .get(&url)
                .header("host", "localhost:7878")
                .header("origin", "http://127.0.0.1:7878"),
        )
        .await;
    assert_eq!(local.status, 200, "{local:#?}");
    served.stop().await.unwrap();
}

#[tokio::test]
async fn jobs_are_listed_newest_first_with_a_cursor() {
    let world = World::new().await;
    let ws = world.workspace("ws", &cases("app", 1));
    let served = Served::app(world.state(world.options())).await;
    let api = &served.api;
    let mut ids = Vec::new();
    for priority in 0..5 {
        ids.push(api.submit(&ws, json!({"priority": priority})).await);
    }
    ids.reverse();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/jobs?limit=2&cursor={c}"),
            None => "/v1/jobs?limit=2".to_owned(),
        };
        let page = api.get(&path).await;
        assert_eq!(page.status, 200, "{page:#?}");
        pages += 1;
        for row in page.json["data"].as_array().unwrap() {
            assert_eq!(row["status"], "queued");
            seen.push(row["job_id"].as_str().unwrap().to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!((seen, pages), (ids.clone(), 3));

    // Exactly one full page: no cursor to an empty page.
    let page = api.get("/v1/jobs?limit=5").await;
    assert_eq!(page.json["data"].as_array().unwrap().len(), 5);
    assert_eq!(page.json["next_cursor"], json!(null));
    let first = api.get("/v1/jobs?limit=1").await;
    assert_eq!(first.json["data"][0]["priority"], 4);

    api.get("/v1/jobs?limit=0")
        .await
        .expect_error(400, "invalid_request");
    api.get("/v1/jobs?limit=lots")
        .await
        .expect_error(400, "invalid_request");
    api.get("/v1/jobs?cursor=nope")
        .await
        .expect_error(400, "invalid_request");
    let message = api
        .get("/v1/jobs?page=2")
        .await
        .expect_error(400, "invalid_request");
    assert!(message.contains("page"), "{message}");
    served.stop().await.unwrap();
}

#[tokio::test]
async fn job_endpoints_answer_for_a_queued_job() {
    let world = World::new().await;
    let ws = world.workspace("ws", &cases("app", 1));
    let served = Served::app(world.state(world.options())).await;
    let api = &served.api;
    let id = api
        .submit(
            &ws,
            json!({"priority": 3, "batch": true, "files": ["app/**"], "budget_usd": 2.5, "check": "true"}),
        )
        .await;

    let report = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(report.status, 200);
    assert_eq!(report.json["job_id"], id.as_str());
    assert_eq!(report.json["status"], "queued");
    assert_eq!(report.json["cost"]["budget_usd"], 2.5);
    let stored = world
        .store
        .get_job(id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.options,
        json!({"files": ["app/**"], "check": "true", "file_check": null, "batch": true,
               "require_budget_fit": false})
    );
    assert_eq!(stored.priority, 3);

    let message = api
        .get(&format!("/v1/jobs/{id}/diff"))
        .await
        .expect_error(409, "conflict");
    assert!(message.contains("no patch yet"), "{message}");
    api.post(&format!("/v1/jobs/{id}/apply"), "")
        .await
        .expect_error(409, "conflict");
    api.post(&format!("/v1/jobs/{id}/apply"), "{\"branch\": 1}")
        .await
        .expect_error(400, "invalid_request");

    // The budget of a live job can be raised, never lowered.
    let raised = api
        .post(&format!("/v1/jobs/{id}/budget"), "{\"budget_usd\": 5}")
        .await;
    assert_eq!(raised.status, 200, "{raised:#?}");
    assert_eq!(
        raised.json,
        json!({"job_id": id, "budget_usd": 5.0, "status": "queued"})
    );
    let message = api
        .post(&format!("/v1/jobs/{id}/budget"), "{\"budget_usd\": 1}")
        .await
        .expect_error(400, "invalid_request");
    assert!(message.contains("only be raised"), "{message}");
    api.post(&format!("/v1/jobs/{id}/budget"), "{\"usd\": 9}")
        .await
        .expect_error(400, "invalid_request");

    let missing = cadre_types::JobId::new();
    api.post(&format!("/v1/jobs/{missing}/budget"), "{\"budget_usd\": 9}")
        .await
        .expect_error(404, "not_found");
    for path in [
        format!("/v1/jobs/{missing}"),
        format!("/v1/jobs/{missing}/diff"),
        format!("/v1/jobs/{missing}/events"),
    ] {
        api.get(&path).await.expect_error(404, "not_found");
    }
    api.post(&format!("/v1/jobs/{missing}/cancel"), "")
        .await
        .expect_error(404, "not_found");
    api.get("/v1/jobs/not-a-uuid")
        .await
        .expect_error(400, "invalid_request");

    let cancelled = api.post(&format!("/v1/jobs/{id}/cancel"), "").await;
    assert_eq!(cancelled.status, 200, "{cancelled:#?}");
    assert_eq!(
        cancelled.json,
        json!({"job_id": id, "cancel_requested": true, "status": "cancelled"})
    );
    let again = api.post(&format!("/v1/jobs/{id}/cancel"), "").await;
    assert_eq!(again.json["cancel_requested"], false);
    // A cancelled job's budget cannot be raised.
    api.post(&format!("/v1/jobs/{id}/budget"), "{\"budget_usd\": 9}")
        .await
        .expect_error(409, "conflict");
    served.stop().await.unwrap();
}

#[tokio::test]
async fn event_streams_end_with_the_job_and_resume_after_last_event_id() {
    let world = World::new().await;
    let ws = world.workspace("ws", &cases("app", 1));
    let served = Served::app(world.state(world.options())).await;
    let api = &served.api;
    let id = api.submit(&ws, json!({})).await;

    // A watcher attached before the job ends sees it end.
    let watcher = {
        let api = api.clone();
        let id = id.clone();
        tokio::spawn(async move { api.events(&id, None).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        api.post(&format!("/v1/jobs/{id}/cancel"), "").await.status,
        200
    );
    let all = watcher.await.unwrap();
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|e| {
            (
                e.kind.as_str(),
                e.data["data"]["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [("job_status", "queued"), ("job_status", "cancelled")]
    );
    assert!(all[0].id < all[1].id);
    assert_eq!(all[1].data["job_id"], id.as_str());
    assert_eq!(all[1].data["seq"], all[1].id);

    // Reconnecting after the first event replays only the rest.
    let rest = api.events(&id, Some(all[0].id)).await;
    assert_eq!(rest, all[1..].to_vec());
    let after = api
        .get(&format!("/v1/jobs/{id}/events?after={}", all[0].id))
        .await;
    assert_eq!(super::common::parse_sse(&after.text), all[1..].to_vec());
    assert_eq!(api.events(&id, Some(all[1].id)).await, vec![]);
    let bad = api
        .send(
            api.client
                .get(format!("{}/v1/jobs/{id}/events", api.base))
                .header("last-event-id", "abc"),
        )
        .await;
    bad.expect_error(400, "invalid_request");
    served.stop().await.unwrap();
}
