//! The dashboard: HTML pages, their scripts and styles, embedded in the
//! binary and served by the daemon next to the API.
//!
//! * `/` lists the jobs, `/jobs/{id}` shows one, `/stats` is `cadre stats`
//!   (`GET /v1/stats`); all are static pages whose scripts (`/assets/*.js`)
//!   read the JSON API and the SSE event stream.
//!   Nothing is fetched from anywhere but the daemon.
//! * With a token, `/login` takes it in a form and opens a [`session`]
//!   (cookie + CSRF token); `POST /logout` ends it. Without a token the
//!   pages are served to loopback clients like the API.
//! * Every response carries [`security_headers`]: a Content-Security-Policy
//!   that allows only the daemon's own scripts and styles (no inline script,
//!   no `eval`), no framing, no sniffing, no referrer.

pub(crate) mod session;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::state::AppState;

/// The Content-Security-Policy of every response.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const JOB_HTML: &str = include_str!("../../assets/job.html");
const LOGIN_HTML: &str = include_str!("../../assets/login.html");
const STATS_HTML: &str = include_str!("../../assets/stats.html");

/// The embedded assets: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/app.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/common.js"),
    ),
    (
        "jobs.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/jobs.js"),
    ),
    (
        "job.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/job.js"),
    ),
    (
        "stats.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/stats.js"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/vendor/uPlot.min.css"),
    ),
    (
        "uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("../../assets/vendor/uPlot.LICENSE"),
    ),
];

/// The dashboard's routes (merged into the API's router).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/jobs/{id}", get(job_page))
        .route("/stats", get(stats_page))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/ui/session", get(session_info))
        .route("/assets/{name}", get(asset))
}

/// Paths served without a session even when the daemon has a token.
pub(crate) fn is_public(path: &str) -> bool {
    path == "/login" || path.starts_with("/assets/")
}

/// Pages a browser opens directly: without a session they redirect to the
/// login form instead of answering 401.
pub(crate) fn is_page(path: &str) -> bool {
    path == "/" || path == "/stats" || (path.starts_with("/jobs/") && path.len() > "/jobs/".len())
}

/// Middleware: the security headers of every response.
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn html(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    html(StatusCode::OK, INDEX_HTML)
}

async fn job_page(Path(id): Path<String>) -> Response {
    if id.parse::<cadre_types::JobId>().is_err() {
        return ApiError::not_found(format!("{id:?} is not a job id")).into_response();
    }
    html(StatusCode::OK, JOB_HTML)
}

async fn stats_page() -> Response {
    html(StatusCode::OK, STATS_HTML)
}

async fn login_page() -> Response {
    html(StatusCode::OK, LOGIN_HTML)
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, mime, body)) => (
            [
                (header::CONTENT_TYPE, *mime),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => ApiError::not_found(format!("no asset {name:?}")).into_response(),
    }
}

/// The login form's fields.
#[derive(Debug, Deserialize)]
struct LoginForm {
    token: String,
}

/// `POST /login`: the right token opens a session and goes to `/`; a wrong
/// one answers 401 with the form again. Without a token there is nothing
/// to log in to.
async fn login(State(state): State<AppState>, Form(form): Form<LoginForm>) -> Response {
    let Some(token) = state.token() else {
        return Redirect::to("/").into_response();
    };
    if !token.matches(&form.token) {
        tracing::warn!("dashboard login with a wrong token");
        return html(StatusCode::UNAUTHORIZED, LOGIN_HTML);
    }
    let id = state.sessions().create();
    let mut response = Redirect::to("/").into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::set_cookie(&id)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `POST /logout` (behind the guard, so with the CSRF token): ends the
/// session and clears the cookie.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    state.sessions().remove(&headers);
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /ui/session` answer: what the page's script needs to act.
#[derive(Debug, Serialize)]
struct SessionInfo {
    /// `token` when the daemon has one (the page shows a logout button).
    auth: &'static str,
    /// The CSRF token to send as `X-CSRF-Token`; empty without a token.
    csrf: String,
}

async fn session_info(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let info = match state.token() {
        Some(_) => SessionInfo {
            auth: "token",
            csrf: state
                .sessions()
                .find(&headers)
                .map(|s| s.csrf)
                .unwrap_or_default(),
        },
        None => SessionInfo {
            auth: "loopback",
            csrf: String::new(),
        },
    };
    ([(header::CACHE_CONTROL, "no-store")], axum::Json(info)).into_response()
}
