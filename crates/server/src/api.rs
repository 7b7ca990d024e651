//! The HTTP API: routes, extractors and handlers.
//!
//! The request and response bodies, and the wire conventions, are
//! [`cadre_types::api`]'s: the clients in `cadre` read and write the same types.

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes_ext::body_bytes;
use std::path::PathBuf;

use cadre_core::JobOptions;
use cadre_core::checkout::{Checkouts, GitSource, redact_url};
use cadre_store::JobRecord;
use cadre_types::api::{
    ApplyRequest, BudgetRequest, BudgetResponse, CancelResponse, EventsQuery, Health,
    JobListFilter, JobPage, JobProgress, JobSummary, SubmitRequest, SubmitResponse,
};
use cadre_types::{JobId, JobStatus};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::security::{admit_repository, admit_workspace, guard, may_run};
use crate::sse;
use crate::state::AppState;

/// Page size of `GET /v1/jobs` when `limit` is not given.
const DEFAULT_PAGE: u32 = 20;
/// Largest page of `GET /v1/jobs`.
const MAX_PAGE: u32 = 200;

/// The API as a router (the daemon serves it; tests call it directly).
pub fn app(state: AppState) -> Router {
    let limit = state.options().max_body_bytes;
    Router::new()
        .route("/healthz", get(healthz))
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(show))
        .route("/v1/jobs/{id}/events", get(events))
        .route("/v1/jobs/{id}/diff", get(diff))
        .route("/v1/jobs/{id}/cancel", post(cancel))
        .route("/v1/jobs/{id}/apply", post(apply))
        .route("/v1/jobs/{id}/budget", post(raise_budget))
        .route("/v1/jobs/{id}/files", get(crate::files::files))
        .route("/v1/jobs/{id}/costs", get(crate::files::costs))
        .route("/v1/stats", get(crate::stats::stats))
        .merge(crate::dashboard::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .layer(DefaultBodyLimit::max(limit))
        .layer(axum::middleware::from_fn(
            crate::dashboard::security_headers,
        ))
        .with_state(state)
}

mod bytes_ext {
    //! Reading a request body under the body limit, with the API's errors.

    use axum::body::Bytes;
    use axum::extract::{FromRequest, Request};
    use axum::http::StatusCode;

    use cadre_types::api::ErrorType;

    use crate::error::ApiError;

    pub(super) async fn body_bytes(req: Request, limit: usize) -> Result<Bytes, ApiError> {
        Bytes::from_request(req, &()).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorType::PayloadTooLarge,
                    format!("the request body is larger than the limit of {limit} bytes"),
                )
            } else {
                ApiError::invalid(format!(
                    "could not read the request body: {}",
                    rejection.body_text()
                ))
            }
        })
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => "the JSON body does not match the expected fields",
            serde_json::error::Category::Eof => "the JSON body ends early",
            _ => "the request body is not valid JSON",
        };
        ApiError::invalid(format!("{what}: {e}"))
    })
}

/// A JSON request body with the API's errors: 400 for malformed JSON or
/// unknown/missing/mistyped fields (the message says which), 413 over the
/// body limit, 415 without `Content-Type: application/json`.
#[derive(Debug)]
pub(crate) struct AppJson<T>(pub(crate) T);

impl<T: DeserializeOwned> FromRequest<AppState> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::invalid(
                "expected a JSON body with `Content-Type: application/json`",
            )
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        let bytes = body_bytes(req, state.options().max_body_bytes).await?;
        parse_json(&bytes).map(AppJson)
    }
}

/// Like [`AppJson`], but an empty body means `T::default()` (for actions
/// whose fields are all optional, so `curl -X POST` works).
#[derive(Debug)]
pub(crate) struct OptionalJson<T>(pub(crate) T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let json = is_json(req.headers());
        let bytes = body_bytes(req, state.options().max_body_bytes).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !json {
            return Err(ApiError::invalid(
                "expected a JSON body with `Content-Type: application/json`",
            )
            .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// Query parameters with the API's errors.
#[derive(Debug)]
pub(crate) struct AppQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for AppQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| AppQuery(q.0))
            .map_err(|rejection| {
                ApiError::invalid(format!("invalid query string: {}", rejection.body_text()))
            })
    }
}

pub(crate) fn job_id(raw: &str) -> Result<JobId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::invalid(format!("{raw:?} is not a job id (a UUID)")))
}

pub(crate) async fn load_job(state: &AppState, id: JobId) -> Result<JobRecord, ApiError> {
    state
        .store()
        .get_job_brief(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} not found")))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::invalid("this endpoint does not support that method")
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

async fn healthz() -> Json<Health> {
    Json(Health::ok())
}

async fn submit(
    State(state): State<AppState>,
    AppJson(req): AppJson<SubmitRequest>,
) -> Result<Response, ApiError> {
    let roots = &state.options().allowed_roots;
    let (workspace, git) = match &req.git {
        None => (admit_workspace(&req.workspace, roots)?, None),
        Some(_) if !req.workspace.is_empty() => {
            return Err(ApiError::invalid(
                "give a workspace or a git repository, not both",
            ));
        }
        Some(source) => (PathBuf::new(), Some(admit_git(&state, source).await?)),
    };
    let options = JobOptions {
        files: req.files,
        check: req.check.filter(|c| !c.trim().is_empty()),
        file_check: req.file_check.filter(|c| !c.trim().is_empty()),
        batch: req.batch,
        require_budget_fit: req.require_budget_fit,
        rules: req.rules,
        git,
    };
    let id = state
        .engine()
        .create_job(
            &req.instruction,
            &workspace,
            &options,
            req.budget_usd,
            req.priority,
        )
        .await?;
    // The engine stored the path it resolved; re-check it in case the
    // workspace was swapped for a symlink in between.
    let record = load_job(&state, id).await?;
    if !may_run(&record, roots) {
        state.engine().cancel(id).await?;
        return Err(ApiError::forbidden(format!(
            "workspace {} resolved outside the daemon's allowed roots",
            record.workspace
        )));
    }
    tracing::info!(job.id = %id, workspace = %record.workspace, priority = req.priority, "job submitted");
    state.wake_dispatcher();
    let mut response = (
        StatusCode::CREATED,
        Json(SubmitResponse {
            job_id: id,
            status: record.status,
        }),
    )
        .into_response();
    if let Ok(location) = HeaderValue::from_str(&format!("/v1/jobs/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Admits a job's git repository ([`admit_repository`]) and resolves its
/// revision to a commit in this daemon's clone cache, so every daemon that
/// runs the job checks out the same commit. A repository that cannot be
/// read or a revision it does not have is the client's error (400).
async fn admit_git(state: &AppState, source: &GitSource) -> Result<GitSource, ApiError> {
    admit_repository(&source.url, &state.options().allowed_roots)?;
    Checkouts::of(state.engine().config())
        .admit(source)
        .await
        .map_err(|e| match e {
            cadre_core::Error::Git { .. } | cadre_core::Error::NotFound(_) => {
                ApiError::invalid(format!("repository {}: {}", redact_url(&source.url), e))
            }
            other => other.into(),
        })
}

/// A job as `GET /v1/jobs` and `cadre jobs --json` list it.
pub fn job_summary(job: &JobRecord) -> JobSummary {
    JobSummary {
        job_id: job.id,
        status: job.status,
        reason: job.reason.clone(),
        instruction: job.instruction.clone(),
        workspace: job.workspace.clone(),
        priority: job.priority,
        budget_usd: job.budget_usd,
        cancel_requested: job.cancel_requested,
        lease_owner: job.lease_owner.clone(),
        created_at: job.created_at,
        updated_at: job.updated_at,
        finished_at: job.finished_at,
        applied_at: job.applied_at,
        progress: None,
    }
}

/// Jobs as `GET /v1/jobs` and `cadre jobs --json` list them, each with its
/// progress (one store query for the whole list).
pub async fn job_summaries(
    store: &cadre_store::Store,
    jobs: &[JobRecord],
) -> cadre_store::Result<Vec<JobSummary>> {
    let ids: Vec<JobId> = jobs.iter().map(|j| j.id).collect();
    let mut progress = store.job_progress(&ids).await?;
    Ok(jobs
        .iter()
        .map(|job| {
            let p = progress.remove(&job.id).unwrap_or_default();
            JobSummary {
                progress: Some(JobProgress {
                    files: p.files,
                    accepted: p.accepted,
                    needs_human: p.needs_human,
                    in_flight: p.in_flight,
                    cost_usd: p.cost_usd,
                }),
                ..job_summary(job)
            }
        })
        .collect())
}

/// The statuses a `status` filter names: comma-separated status names, or
/// `active` for every state that is not terminal; empty keeps all.
fn parse_status_filter(raw: Option<&str>) -> Result<Vec<JobStatus>, ApiError> {
    let mut out = Vec::new();
    for name in raw.unwrap_or("").split(',').map(str::trim) {
        if name.is_empty() {
            continue;
        }
        if name == "active" {
            out.extend(JobStatus::ALL.iter().filter(|s| !s.is_terminal()));
            continue;
        }
        let status = name.parse::<JobStatus>().map_err(|_| {
            let known: Vec<&str> = JobStatus::ALL.iter().map(JobStatus::as_str).collect();
            ApiError::invalid(format!(
                "status {name:?} is not one of active, {}",
                known.join(", ")
            ))
        })?;
        out.push(status);
    }
    out.sort_by_key(|s| s.as_str());
    out.dedup();
    Ok(out)
}

async fn list(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<JobListFilter>,
) -> Result<Json<JobPage>, ApiError> {
    let statuses = parse_status_filter(query.status.as_deref())?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::invalid(format!(
            "limit must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    let cursor = match query.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(
            c.parse::<JobId>()
                .map_err(|_| ApiError::invalid(format!("cursor {c:?} is not a job id")))?,
        ),
        None => None,
    };
    // One extra row tells whether another page exists.
    let mut jobs = state
        .store()
        .list_jobs_by_status(&statuses, cursor, limit + 1)
        .await?;
    let more = jobs.len() > limit as usize;
    jobs.truncate(limit as usize);
    let next_cursor = more
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    let data = job_summaries(state.store(), &jobs).await?;
    Ok(Json(JobPage { data, next_cursor }))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<cadre_types::JobReport>, ApiError> {
    let id = job_id(&id)?;
    load_job(&state, id).await?;
    Ok(Json(state.engine().report(id).await?))
}

async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppQuery(query): AppQuery<EventsQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    load_job(&state, id).await?;
    let header_after = match headers.get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .ok_or_else(|| {
                    ApiError::invalid("Last-Event-ID must be an event sequence number")
                })?,
        ),
        None => None,
    };
    let after = header_after.or(query.after).unwrap_or(0).max(0);
    // Subscribe before the first read so no wake-up is missed in between.
    let live = state.engine().subscribe();
    Ok(sse::events(
        state.store().clone(),
        id,
        after,
        live,
        state.shutdown_token(),
    )
    .into_response())
}

async fn diff(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = job_id(&id)?;
    let job = load_job(&state, id).await?;
    match state.store().job_patch(id).await? {
        Some(patch) => Ok((
            [(header::CONTENT_TYPE, "text/x-diff; charset=utf-8")],
            patch,
        )
            .into_response()),
        None => Err(ApiError::conflict(format!(
            "job {id} has no patch yet (status {})",
            job.status
        ))),
    }
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<CancelResponse>, ApiError> {
    let id = job_id(&id)?;
    load_job(&state, id).await?;
    let requested = state.engine().cancel(id).await?;
    let job = load_job(&state, id).await?;
    tracing::info!(job.id = %id, requested, "cancel requested");
    Ok(Json(CancelResponse {
        job_id: id,
        cancel_requested: requested,
        status: job.status,
    }))
}

async fn apply(
    State(state): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<ApplyRequest>,
) -> Result<Json<cadre_types::api::ApplyOutcome>, ApiError> {
    let id = job_id(&id)?;
    let job = load_job(&state, id).await?;
    // The store may hold jobs the daemon did not admit (foreground runs,
    // earlier configurations): it writes only inside its allowed roots.
    if !may_run(&job, &state.options().allowed_roots) {
        return Err(ApiError::forbidden(format!(
            "job {id}'s workspace {} is outside the daemon's allowed roots",
            job.workspace
        )));
    }
    // The engine refuses a job that has not finished (409).
    let outcome = state.engine().apply(id, req.branch).await?;
    Ok(Json(outcome))
}

/// `POST /v1/jobs/{id}/budget`: raises a job's budget; a job whose old
/// budget left files not started goes back to the queue.
async fn raise_budget(
    State(state): State<AppState>,
    Path(id): Path<String>,
    AppJson(req): AppJson<BudgetRequest>,
) -> Result<Json<BudgetResponse>, ApiError> {
    let id = job_id(&id)?;
    let job = load_job(&state, id).await?;
    // A job raised back to the queue runs here: only inside the allowed roots.
    if !may_run(&job, &state.options().allowed_roots) {
        return Err(ApiError::forbidden(format!(
            "job {id}'s workspace {} is outside the daemon's allowed roots",
            job.workspace
        )));
    }
    let status = state.engine().raise_budget(id, req.budget_usd).await?;
    if status == JobStatus::Queued {
        state.wake_dispatcher();
    }
    Ok(Json(BudgetResponse {
        job_id: id,
        budget_usd: req.budget_usd,
        status,
    }))
}
