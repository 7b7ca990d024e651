//! The daemon's HTTP API on the wire: every request and response body and
//! query string of `cadre daemon`, shared by the server (`cadre-server`) and
//! its clients (`cadre submit|status|watch|cancel|jobs|apply`).
//!
//! Wire conventions: JSON bodies, ids as strings, timestamps as integer Unix
//! seconds named `*_at`, cursor pagination (`cursor`, `limit` -> `data`,
//! `next_cursor`), and every error as [`ErrorBody`]:
//! `{"error":{"type":"invalid_request|...","message":"..."}}`.
//!
//! Requests refuse unknown fields (`deny_unknown_fields`), so a typo is a
//! 400 naming the field rather than a silently ignored option; responses
//! accept them, so an older client can read a newer daemon's answers.
//!
//! | endpoint | request | answer |
//! |---|---|---|
//! | `GET /healthz` | - | [`Health`] |
//! | `POST /v1/jobs` | [`SubmitRequest`] | 201 [`SubmitResponse`], `Location: /v1/jobs/{id}` |
//! | `GET /v1/jobs` | [`JobListFilter`] (a [`JobListQuery`] plus `status`) | [`JobPage`] of [`JobSummary`] with their [`JobProgress`] |
//! | `GET /v1/jobs/{id}` | - | [`JobReport`](crate::JobReport) |
//! | `GET /v1/jobs/{id}/events` | [`EventsQuery`], `Last-Event-ID` | `text/event-stream` of [`JobEvent`](crate::JobEvent) |
//! | `GET /v1/jobs/{id}/diff` | - | `text/x-diff` |
//! | `POST /v1/jobs/{id}/cancel` | - | [`CancelResponse`] |
//! | `POST /v1/jobs/{id}/apply` | [`ApplyRequest`] (body optional) | [`ApplyOutcome`] |
//! | `POST /v1/jobs/{id}/budget` | [`BudgetRequest`] | [`BudgetResponse`] |
//! | `GET /v1/jobs/{id}/files` | - | [`FileList`] of [`FileDetail`] with their [`AttemptDetail`]s |
//! | `GET /v1/jobs/{id}/costs` | - | [`CostTimeline`] of [`CostPoint`]s |
//! | `GET /v1/stats` | [`StatsQuery`] | [`StatsReport`] |

use serde::{Deserialize, Serialize};

use crate::status::string_enum;
use crate::{
    AttemptId, AttemptOutcome, Complexity, ErrorCost, FailureKind, JobId, JobStatus, Role,
    SubtaskId, SubtaskStatus,
};

/// `GET /healthz` answer: `{"status":"ok"}` while the daemon serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

impl Health {
    /// The answer of a serving daemon.
    pub fn ok() -> Self {
        Self {
            status: "ok".to_owned(),
        }
    }
}

/// `POST /v1/jobs` body: queue a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// What to do, in one sentence.
    pub instruction: String,
    /// Absolute path on the daemon's machine, inside an allowed root; empty
    /// for a job on a git repository (`git`).
    #[serde(default)]
    pub workspace: String,
    /// Only files matching these globs (none: every file).
    #[serde(default)]
    pub files: Vec<String>,
    /// Integration check run on the combined change; blank means none.
    #[serde(default)]
    pub check: Option<String>,
    /// Per-file check, `{file}` replaced by the candidate file; blank means none.
    #[serde(default)]
    pub file_check: Option<String>,
    /// Queue priority; higher runs first.
    #[serde(default)]
    pub priority: i64,
    /// Send worker rounds as message batches (cheaper, slower).
    #[serde(default)]
    pub batch: bool,
    /// Cost cap in USD.
    #[serde(default)]
    pub budget_usd: Option<f64>,
    /// Stop before any worker call when the plan's expected cost is above the budget.
    #[serde(default)]
    pub require_budget_fit: bool,
    /// ast-grep YAML rules (file contents) the codemod tier runs first on
    /// mechanical subtasks of their language.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Run on a checkout of this git repository and revision instead of a
    /// path on the daemon's machine (`workspace` is then empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
}

/// A job's workspace as a git repository and revision: each daemon that
/// runs the job checks the revision out in its own clone cache.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitSource {
    /// The repository: `https://...`, `ssh://...`, `user@host:path`,
    /// `file://...` or an absolute path to a repository.
    pub url: String,
    /// The revision; a daemon resolves it to a commit id when it admits the job.
    pub rev: String,
    /// When set, the finished job's change is committed on the revision and
    /// pushed to the repository as this new branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push_branch: Option<String>,
}

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyOutcome {
    /// Files written.
    pub written: Vec<String>,
    /// Files left alone, with why.
    pub conflicts: Vec<(String, String)>,
    /// The branch committed to, if any.
    pub branch: Option<String>,
}

/// `POST /v1/jobs/{id}/budget` body: raise a job's budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BudgetRequest {
    /// The new cap in USD (above the old one).
    pub budget_usd: f64,
}

/// `POST /v1/jobs/{id}/budget` answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetResponse {
    /// The job.
    pub job_id: JobId,
    /// Its new cap.
    pub budget_usd: f64,
    /// Its state afterwards: `queued` again when the old budget had left
    /// files not started (the daemon runs them).
    pub status: JobStatus,
}

/// `POST /v1/jobs` answer (status 201).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// The new job.
    pub job_id: JobId,
    /// Its state right after submission (`queued`).
    pub status: JobStatus,
}

/// `GET /v1/jobs` query string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobListQuery {
    /// A previous page's [`JobPage::next_cursor`]; absent or empty for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// One job in a listing: `GET /v1/jobs` rows and `cadre jobs --json`, with or
/// without `--server`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job.
    pub job_id: JobId,
    /// Its state.
    pub status: JobStatus,
    /// Why it is in this state (the reason of the last transition).
    pub reason: String,
    /// The user's instruction.
    pub instruction: String,
    /// The workspace root.
    pub workspace: String,
    /// Queue priority; higher first.
    pub priority: i64,
    /// Cost cap in USD, if any.
    pub budget_usd: Option<f64>,
    /// A user asked to cancel it.
    pub cancel_requested: bool,
    /// The runner holding its queue lease, if any.
    pub lease_owner: Option<String>,
    /// Creation time.
    pub created_at: i64,
    /// Last change.
    pub updated_at: i64,
    /// When it reached a terminal state.
    pub finished_at: Option<i64>,
    /// When its patch was applied.
    pub applied_at: Option<i64>,
    /// Its files by state and its cost so far: filled by `GET /v1/jobs`,
    /// absent where a listing does not compute it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<JobProgress>,
}

/// `GET /v1/jobs` query string: [`JobListQuery`]'s fields and a status filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobListFilter {
    /// A previous page's [`JobPage::next_cursor`] (of the same filter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size, 1 to 200 (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// Comma-separated job statuses to keep (`running,queued`), or `active`
    /// for every state that is not terminal; absent or empty keeps all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// A job's progress in a listing: its files by state and what it cost so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    /// Files in its plan (0 before planning).
    pub files: u32,
    /// Of which accepted.
    pub accepted: u32,
    /// Of which needing a human.
    pub needs_human: u32,
    /// Of which being worked on now.
    pub in_flight: u32,
    /// Every model call so far (planner, workers, reviewer), USD.
    pub cost_usd: f64,
}

/// `GET /v1/jobs` answer: a page of jobs, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobPage {
    /// The jobs of this page.
    pub data: Vec<JobSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// `GET /v1/jobs/{id}/events` query string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Resume after this event sequence number (like `Last-Event-ID`, which wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<i64>,
}

/// `POST /v1/jobs/{id}/cancel` answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelResponse {
    /// The job.
    pub job_id: JobId,
    /// `true` when this request asked a live job to stop; `false` when the
    /// job had already ended.
    pub cancel_requested: bool,
    /// Its state after the request.
    pub status: JobStatus,
}

/// `POST /v1/jobs/{id}/apply` body. Every field is optional, so an empty
/// body is the default.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// Commit to this new git branch instead of writing the working tree.
    #[serde(default)]
    pub branch: Option<String>,
}

/// `GET /v1/jobs/{id}/files` answer: the job's files in plan order, each
/// with its worker attempts (what the dashboard's grid and file panel show).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileList {
    /// The job.
    pub job_id: JobId,
    /// Its files (subtasks), in plan order.
    pub data: Vec<FileDetail>,
}

/// One file (subtask) of a job and its attempts so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileDetail {
    /// The subtask.
    pub subtask_id: SubtaskId,
    /// Workspace-relative path.
    pub path: String,
    /// Its state.
    pub status: SubtaskStatus,
    /// As routed.
    pub complexity: Complexity,
    /// As routed.
    pub error_cost: ErrorCost,
    /// The tier the router chose.
    pub start_tier: String,
    /// The tier of the current (or last) attempt.
    pub current_tier: String,
    /// Why it is where it is (routing reason, last failure, skip reason).
    pub reason: String,
    /// Last change (Unix seconds).
    pub updated_at: i64,
    /// Its worker attempts, in start order.
    pub attempts: Vec<AttemptDetail>,
}

/// One model call on a file: the model's text and change are left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptDetail {
    /// The attempt.
    pub attempt_id: AttemptId,
    /// Who called (a worker, for a file's attempts).
    pub role: Role,
    /// The tier name.
    pub tier: String,
    /// The model id.
    pub model: String,
    /// Attempt number within its subtask.
    pub ordinal: u32,
    /// How it ended (`running` while in flight).
    pub outcome: AttemptOutcome,
    /// Why it failed.
    pub failure: Option<FailureKind>,
    /// The failure's detail: the validation feedback or the error.
    pub error: Option<String>,
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from cache.
    pub cache_read_tokens: u64,
    /// What the call cost.
    pub cost_usd: f64,
    /// How long the call took, milliseconds.
    pub latency_ms: u64,
    /// When it started (Unix seconds).
    pub started_at: i64,
    /// When it ended, if it has.
    pub finished_at: Option<i64>,
}

string_enum!(
    /// The `type` of an API error; each has one usual status code.
    ErrorType, "API error type" {
        /// 400 (also 405, 415): the request is malformed or names something invalid.
        InvalidRequest => "invalid_request",
        /// 401: a bearer token is required and was missing or wrong.
        Unauthorized => "unauthorized",
        /// 403: the request is understood but refused (workspace outside the
        /// allowed roots, a non-loopback `Host` without a token).
        Forbidden => "forbidden",
        /// 404: no such job or endpoint.
        NotFound => "not_found",
        /// 409: the job is not in a state that allows it.
        Conflict => "conflict",
        /// 413: the body is over the daemon's limit.
        PayloadTooLarge => "payload_too_large",
        /// 500: the daemon failed; the message is generic and the daemon log has the detail.
        Internal => "internal",
    }
);

/// Every error answer of the API: `{"error":{"type":..,"message":..}}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// The class of error.
    #[serde(rename = "type")]
    pub kind: ErrorType,
    /// For people: what was wrong with the request, naming the field or value.
    pub message: String,
}

impl ErrorBody {
    /// An error answer of `kind` saying `message`.
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                kind,
                message: message.into(),
            },
        }
    }
}

/// `GET /v1/jobs/{id}/costs` answer: the job's model calls over time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostTimeline {
    /// The job.
    pub job_id: JobId,
    /// Calls summed per second, role and tier, in time order.
    pub data: Vec<CostPoint>,
}

/// The model calls of one second for one role and tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CostPoint {
    /// When they were recorded (unix seconds).
    pub at: i64,
    /// Who called.
    pub role: Role,
    /// The tier.
    pub tier: String,
    /// How many calls.
    pub calls: u32,
    /// Their cost, USD.
    pub cost_usd: f64,
}

/// `GET /v1/stats` query string.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsQuery {
    /// Only attempts started at or after this unix time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<i64>,
}

/// `GET /v1/stats` answer: `cadre stats` across every job in the store, and
/// the start tiers history recommends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatsReport {
    /// The `since` asked for.
    pub since: Option<i64>,
    /// Finished worker attempts per (complexity, error cost, tier).
    pub classes: Vec<ClassStats>,
    /// Files that had worker attempts.
    pub subtasks: u64,
    /// Of which accepted.
    pub accepted: u64,
    /// Of which needing a human.
    pub needs_human: u64,
    /// Of which tried at more than one tier.
    pub escalated: u64,
    /// `escalated / subtasks` (0 without files).
    pub escalation_rate: f64,
    /// Worker cost of the accepted files (failed attempts included) per accepted file.
    pub mean_cost_per_accepted_usd: f64,
    /// The learned start tier of every (complexity, error cost, language) with attempts.
    pub learned: Vec<LearnedStart>,
    /// The codemod tier's attempts, acceptance rate and savings.
    #[serde(default)]
    pub codemod: crate::CodemodSummary,
}

/// Worker attempts of one (complexity, error cost, tier).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassStats {
    /// The files' complexity.
    pub complexity: Complexity,
    /// Their error cost.
    pub error_cost: ErrorCost,
    /// The attempts' tier.
    pub tier: String,
    /// Finished attempts.
    pub attempts: u64,
    /// Of which passed.
    pub passed: u64,
    /// `passed / attempts`.
    pub success_rate: f64,
    /// Their cost, USD.
    pub cost_usd: f64,
}

/// What history says about where to start one class of files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LearnedStart {
    /// "complexity/error_cost/language".
    pub class: String,
    /// The static rule's start tier.
    pub static_tier: String,
    /// Finished attempts at the static tier in this class.
    pub static_samples: u64,
    /// Samples needed before history is used.
    pub min_samples: u32,
    /// The start tier history recommends; `None` until it has enough samples.
    pub learned_tier: Option<String>,
    /// Whether routing uses it (`routing.adaptive`).
    pub adaptive: bool,
    /// The estimator's explanation.
    pub reason: String,
    /// The estimate of starting at each tier.
    pub starts: Vec<StartTierEstimate>,
}

/// The estimate of starting one class at one tier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StartTierEstimate {
    /// The start tier.
    pub tier: String,
    /// Attempts at that tier the estimate rests on.
    pub trials: f64,
    /// Its success chance per attempt (posterior mean).
    pub p_success: f64,
    /// Chance a file started there ends solved.
    pub solve_probability: f64,
    /// Expected cost per file, USD.
    pub expected_cost_usd: f64,
    /// Expected cost per solved file, USD (`None`: never solves).
    pub cost_per_solve_usd: Option<f64>,
    /// Whether it has enough samples to be chosen.
    pub eligible: bool,
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;

    #[test]
    fn error_body_has_the_documented_shape() {
        let body = ErrorBody::new(ErrorType::PayloadTooLarge, "too big");
        let value = serde_json::to_value(&body).unwrap();
        assert_eq!(
            value,
            json!({"error": {"type": "payload_too_large", "message": "too big"}})
        );
        assert_eq!(serde_json::from_value::<ErrorBody>(value).unwrap(), body);
    }

    #[test]
    fn submit_request_defaults_optional_fields_and_refuses_unknown_ones() {
        let minimal: SubmitRequest =
            serde_json::from_value(json!({"instruction": "x", "workspace": "/w"})).unwrap();
        assert_eq!(
            minimal,
            SubmitRequest {
                instruction: "x".to_owned(),
                workspace: "/w".to_owned(),
                files: Vec::new(),
                check: None,
                file_check: None,
                priority: 0,
                batch: false,
                budget_usd: None,
                require_budget_fit: false,
                rules: Vec::new(),
                git: None,
            }
        );
        let err = serde_json::from_value::<SubmitRequest>(
            json!({"instruction": "x", "workspace": "/w", "colour": "red"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn a_git_submission_needs_no_workspace() {
        let request: SubmitRequest = serde_json::from_value(json!({
            "instruction": "x",
            "git": {"url": "https://h/r.git", "rev": "main", "push_branch": "cadre/x"}
        }))
        .unwrap();
        assert_eq!(request.workspace, "");
        assert_eq!(
            request.git,
            Some(GitSource {
                url: "https://h/r.git".to_owned(),
                rev: "main".to_owned(),
                push_branch: Some("cadre/x".to_owned()),
            })
        );
        let err = serde_json::from_value::<SubmitRequest>(
            json!({"instruction": "x", "git": {"url": "u", "rev": "r", "depth": 1}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `depth`"), "{err}");
    }

    #[test]
    fn submit_request_sends_every_field() {
        let request = SubmitRequest {
            instruction: "x".to_owned(),
            workspace: "/w".to_owned(),
            files: vec!["*.py".to_owned()],
            check: None,
            file_check: Some("true".to_owned()),
            priority: -1,
            batch: true,
            budget_usd: Some(2.5),
            require_budget_fit: true,
            rules: Vec::new(),
            git: None,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"instruction": "x", "workspace": "/w", "files": ["*.py"], "check": null,
                   "file_check": "true", "priority": -1, "batch": true, "budget_usd": 2.5,
                   "require_budget_fit": true})
        );
    }

    #[test]
    fn apply_request_is_optional_and_strict() {
        assert_eq!(
            serde_json::from_str::<ApplyRequest>("{}").unwrap(),
            ApplyRequest::default()
        );
        assert_eq!(
            serde_json::to_value(ApplyRequest::default()).unwrap(),
            json!({"branch": null})
        );
        assert!(serde_json::from_str::<ApplyRequest>(r#"{"brnch":"x"}"#).is_err());
    }

    #[test]
    fn job_list_filter_is_strict_and_progress_is_optional() {
        let filter: JobListFilter =
            serde_json::from_value(json!({"status": "active", "limit": 5})).unwrap();
        assert_eq!(filter.status.as_deref(), Some("active"));
        assert!(serde_json::from_value::<JobListFilter>(json!({"stat": "x"})).is_err());
        let summary = json!({"job_id": JobId::new().to_string(), "status": "queued", "reason": "",
            "instruction": "i", "workspace": "/w", "priority": 0, "budget_usd": null,
            "cancel_requested": false, "lease_owner": null, "created_at": 1, "updated_at": 1,
            "finished_at": null, "applied_at": null});
        let parsed: JobSummary = serde_json::from_value(summary.clone()).unwrap();
        assert_eq!(parsed.progress, None);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), summary);
    }

    #[test]
    fn ids_and_statuses_are_strings_on_the_wire() {
        let id = JobId::new();
        let answer = CancelResponse {
            job_id: id,
            cancel_requested: true,
            status: JobStatus::Running,
        };
        assert_eq!(
            serde_json::to_value(&answer).unwrap(),
            json!({"job_id": id.to_string(), "cancel_requested": true, "status": "running"})
        );
    }
}
