//! What the daemon refuses: a public address without a token, requests
//! without the token, workspaces outside the allowed roots, malformed and
//! oversize bodies; and the token never reaches the log.

use cadre_e2e::{Fixture, RENAME, ScenarioSpec, rename_module};
use pretty_assertions::assert_eq;
use serde_json::json;

use crate::harness::Daemon;
use crate::http::http;

#[test]
fn the_daemon_refuses_what_it_must() {
    let f = Fixture::new(&ScenarioSpec::new(&[rename_module("app/a.py", "a")]));
    let ws = f.ws_arg();

    // A public address without a token: refused before serving.
    let refused = f.cadre(&["daemon", "--listen", "0.0.0.0:0", "--allow-root", &ws]);
    assert_ne!(refused.code, Some(0), "{}", refused.dump());
    assert!(refused.stderr.contains("CADRE_TOKEN"), "{}", refused.dump());
    assert!(refused.stdout.is_empty(), "{}", refused.dump());

    // With a token, a public address is fine, and every request needs it.
    let token = "e2e-token-0123456789";
    let d = Daemon::start(
        &f,
        &[
            "--listen",
            "0.0.0.0:0",
            "--allow-root",
            &ws,
            "-c",
            "daemon.max_body_bytes=1024",
        ],
        &[("CADRE_TOKEN", token)],
    );
    let port = d.url.rsplit(':').next().unwrap().to_owned();
    let host_port = format!("127.0.0.1:{port}");
    let url = format!("http://{host_port}");
    let auth = format!("Bearer {token}");
    let authed = [("Authorization", auth.as_str())];
    let json_authed = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];

    assert_eq!(http(&host_port, "GET", "/healthz", &[], None).status, 200);
    http(&host_port, "GET", "/v1/jobs", &[], None).expect_error(401, "unauthorized");
    http(
        &host_port,
        "GET",
        "/v1/jobs",
        &[("Authorization", "Bearer nope")],
        None,
    )
    .expect_error(401, "unauthorized");
    assert_eq!(
        http(&host_port, "GET", "/v1/jobs", &authed, None).status,
        200
    );
    let no_token = f.cadre(&["jobs", "--server", &url]);
    assert_ne!(no_token.code, Some(0));
    assert!(no_token.stderr.contains("401"), "{}", no_token.dump());
    f.cadre_env(&["jobs", "--server", &url], &[("CADRE_TOKEN", token)])
        .expect_code(0);

    // A workspace outside the allowed roots: 403, over HTTP and from the client.
    let outside = f.home.to_string_lossy().into_owned();
    let body = json!({"instruction": RENAME, "workspace": outside}).to_string();
    let message = http(
        &host_port,
        "POST",
        "/v1/jobs",
        &json_authed,
        Some(body.as_bytes()),
    )
    .expect_error(403, "forbidden");
    assert!(message.contains("outside"), "{message}");
    let submit = f.cadre_env(
        &["submit", RENAME, "--workspace", &outside, "--server", &url],
        &[("CADRE_TOKEN", token)],
    );
    assert_ne!(submit.code, Some(0));
    assert!(submit.stderr.contains("403"), "{}", submit.dump());

    // Bad bodies: 400 saying what is wrong, 413 over the limit.
    let message = http(
        &host_port,
        "POST",
        "/v1/jobs",
        &json_authed,
        Some(b"{\"instruction\":"),
    )
    .expect_error(400, "invalid_request");
    assert!(message.contains("JSON"), "{message}");
    let body = json!({"instruction": RENAME, "workspace": ws, "priority": 1, "colour": "red"});
    let message = http(
        &host_port,
        "POST",
        "/v1/jobs",
        &json_authed,
        Some(body.to_string().as_bytes()),
    )
    .expect_error(400, "invalid_request");
    assert!(message.contains("unknown field `colour`"), "{message}");
    let huge = json!({"instruction": "x".repeat(4096), "workspace": ws}).to_string();
    let message = http(
        &host_port,
        "POST",
        "/v1/jobs",
        &json_authed,
        Some(huge.as_bytes()),
    )
    .expect_error(413, "payload_too_large");
    assert!(message.contains("1024"), "{message}");
    // Nothing was queued by any of that.
    let page = http(&host_port, "GET", "/v1/jobs", &authed, None);
    assert_eq!(page.json["data"], json!([]), "{page:#?}");

    // The token never reaches the log.
    drop(d);
    let logs: String = std::fs::read_dir(f.tmp.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("daemon-"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(!logs.is_empty());
    assert!(!logs.contains(token), "the token was logged");
}
