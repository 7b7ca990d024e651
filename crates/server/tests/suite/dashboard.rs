//! The dashboard: its pages and assets, the security headers on every
//! answer, the login / session / CSRF flow with a token, and the
//! `GET /v1/jobs/{id}/files` endpoint its job page reads.

use pretty_assertions::assert_eq;
use serde_json::json;

use super::common::{Api, Reply, Served, World, cases, token};

const SECRET: &str = "correct horse battery staple";

/// A client that does not follow redirects (to see the 303s).
fn no_redirects(api: &Api) -> Api {
    Api {
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        ..api.clone()
    }
}

fn assert_secure_headers(reply: &Reply, what: &str) {
    let csp = reply
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("{what}: no CSP: {reply:#?}"));
    assert!(csp.contains("script-src 'self'"), "{what}: {csp}");
    assert!(csp.contains("default-src 'none'"), "{what}: {csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert!(!csp.contains("unsafe-eval"), "{what}: {csp}");
    assert_eq!(
        reply.header("x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
}

/// Every `src="..."`/`href="..."` that points at `/assets/`.
fn asset_links(html: &str) -> Vec<String> {
    html.split(['"', '\''])
        .filter(|s| s.starts_with("/assets/"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn pages_and_assets_are_served_with_a_strict_csp_and_no_inline_script() {
    let world = World::new().await;
    let served = Served::app(world.state(world.options())).await;
    let api = &served.api;
    let job = cadre_types::JobId::new();
    let mut linked = Vec::new();
    for page in ["/", &format!("/jobs/{job}"), "/login", "/stats"] {
        let reply = api.get(page).await;
        assert_eq!(reply.status, 200, "{page}: {reply:#?}");
        assert_eq!(
            reply.header("content-type").as_deref(),
            Some("text/html; charset=utf-8"),
            "{page}"
        );
        assert_secure_headers(&reply, page);
        // Every script is a file: no inline script and no inline handler.
        for tag in reply.text.split("<script").skip(1) {
            let open = tag.split('>').next().unwrap_or_default();
            assert!(
                open.contains("src=\"/assets/"),
                "{page}: inline script {tag:.80}"
            );
            assert!(tag.starts_with(&format!("{open}></script>")), "{page}");
        }
        assert!(!reply.text.contains(" onclick="), "{page}");
        assert!(!reply.text.contains("style=\""), "{page}");
        linked.extend(asset_links(&reply.text));
    }
    linked.sort();
    linked.dedup();
    assert!(linked.len() >= 6, "{linked:?}");
    for asset in &linked {
        let reply = api.get(asset).await;
        assert_eq!(reply.status, 200, "{asset}");
        let mime = reply.header("content-type").unwrap_or_default();
        let want = if asset.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(mime.starts_with(want), "{asset}: {mime}");
        assert_secure_headers(&reply, asset);
        assert!(!reply.text.contains("innerHTML"), "{asset} writes HTML");
    }
    assert_eq!(api.get("/assets/uPlot.LICENSE").await.status, 200);
    api.get("/assets/secret.js")
        .await
        .expect_error(404, "not_found");
    api.get("/jobs/not-a-job")
        .await
        .expect_error(404, "not_found");
    // The API's answers carry the same headers.
    assert_secure_headers(&api.get("/v1/jobs").await, "/v1/jobs");
    let session = api.get("/ui/session").await;
    assert_eq!(session.json, json!({"auth": "loopback", "csrf": ""}));
    served.stop().await.unwrap();
}

#[tokio::test]
async fn with_a_token_the_dashboard_needs_a_login_cookie_and_csrf() {
    let world = World::new().await;
    let ws = world.workspace("ws", &cases("app", 1));
    let mut options = world.options();
    options.token = token(SECRET);
    let served = Served::app(world.state(options)).await;
    let api = no_redirects(&served.api);
    let bearer = api.with_token(Some(SECRET));
    let id = bearer.submit(&ws, json!({})).await;

    // Without a cookie: the API says 401, the pages send to the login form,
    // which (with its assets) is public and never holds the token.
    api.get("/v1/jobs").await.expect_error(401, "unauthorized");
    api.get(&format!("/v1/jobs/{id}/files"))
        .await
        .expect_error(401, "unauthorized");
    api.get("/v1/stats").await.expect_error(401, "unauthorized");
    for page in ["/", &format!("/jobs/{id}"), "/stats"] {
        let reply = api.get(page).await;
        assert_eq!(reply.status, 303, "{page}");
        assert_eq!(reply.header("location").as_deref(), Some("/login"));
    }
    let form = api.get("/login").await;
    assert_eq!(form.status, 200);
    assert!(form.text.contains("name=\"token\""));
    assert!(!form.text.contains(SECRET));
    assert_eq!(api.get("/assets/app.css").await.status, 200);

    let login = |secret: &'static str| {
        let api = api.clone();
        async move {
            api.send(
                api.client
                    .post(format!("{}/login", api.base))
                    .form(&[("token", secret)]),
            )
            .await
        }
    };
    let wrong = login("not the token").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());

    let right = login(SECRET).await;
    assert_eq!(right.status, 303, "{right:#?}");
    assert_eq!(right.header("location").as_deref(), Some("/"));
    let cookie = right.header("set-cookie").unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains(SECRET));
    let pair = cookie.split(';').next().unwrap().to_owned();
    let with_cookie = |request: reqwest::RequestBuilder| request.header("cookie", pair.clone());

    let get = |path: String| api.send(with_cookie(api.client.get(format!("{}{path}", api.base))));
    assert_eq!(get("/".to_owned()).await.status, 200);
    assert_eq!(get("/v1/jobs".to_owned()).await.status, 200);
    let session = get("/ui/session".to_owned()).await;
    assert_eq!(session.json["auth"], "token");
    let csrf = session.json["csrf"].as_str().unwrap().to_owned();
    assert_eq!(csrf.len(), 64);
    assert!(
        !pair.contains(&csrf),
        "the CSRF token is not the session id"
    );

    // State changes with the cookie need the CSRF token.
    let post = |path: &str, csrf: Option<&str>| {
        let mut request = with_cookie(api.client.post(format!("{}{path}", api.base)));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        api.send(request)
    };
    let cancel = format!("/v1/jobs/{id}/cancel");
    post(&cancel, None).await.expect_error(403, "forbidden");
    post(&cancel, Some("0000"))
        .await
        .expect_error(403, "forbidden");
    let ok = post(&cancel, Some(&csrf)).await;
    assert_eq!(ok.status, 200, "{ok:#?}");
    assert_eq!(ok.json["status"], "cancelled");
    post("/logout", None).await.expect_error(403, "forbidden");

    let out = post("/logout", Some(&csrf)).await;
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let after = get("/v1/jobs".to_owned()).await;
    after.expect_error(401, "unauthorized");
    served.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_lists_each_file_with_its_attempts() {
    let files = cases("app", 3);
    let world = World::new().await.with_sim(&files, 5).await;
    let ws = world.workspace("ws", &files);
    let served = Served::daemon(world.state(world.options())).await;
    let api = &served.api;

    api.get(&format!("/v1/jobs/{}/files", cadre_types::JobId::new()))
        .await
        .expect_error(404, "not_found");
    api.get("/v1/jobs/nope/files")
        .await
        .expect_error(400, "invalid_request");

    let id = api.submit(&ws, json!({})).await;
    let report = api.wait_terminal(&id).await;
    assert_eq!(report["status"], "completed", "{report:#}");
    let reply = api.get(&format!("/v1/jobs/{id}/files")).await;
    assert_eq!(reply.status, 200, "{reply:#?}");
    let list: cadre_types::api::FileList = serde_json::from_value(reply.json).unwrap();
    assert_eq!(list.job_id.to_string(), id);
    let paths: Vec<&str> = list.data.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["app/mod0.py", "app/mod1.py", "app/mod2.py"]);
    for file in &list.data {
        assert_eq!(
            file.status,
            cadre_types::SubtaskStatus::Accepted,
            "{file:#?}"
        );
        let last = file.attempts.last().unwrap();
        assert_eq!(last.outcome, cadre_types::AttemptOutcome::Passed);
        assert_eq!(last.tier, file.current_tier);
        assert!(last.cost_usd > 0.0 && last.output_tokens > 0, "{last:#?}");
        assert!(
            file.attempts
                .iter()
                .all(|a| a.role == cadre_types::Role::Worker)
        );
    }
    served.stop().await.unwrap();
}
