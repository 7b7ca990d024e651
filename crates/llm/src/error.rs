//! The crate's one error type and its classification.
//!
//! Retry loops (here and in the engine) ask the error what it is —
//! [`Error::is_retryable`], [`Error::is_overload`], [`Error::retry_after`],
//! [`Error::status`] — and never match on message strings.

use std::fmt;
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything a provider call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with an HTTP error status. Returned after the
    /// retry policy gave up or decided not to retry (4xx other than
    /// 408/409/429, or `x-should-retry: false`). The caller should surface
    /// `message`; retrying the same request is pointless unless
    /// [`Error::is_retryable`] says otherwise.
    #[error(transparent)]
    Api(ApiError),
    /// The request could not be sent or the connection failed (connect
    /// refused, reset, TLS, or the connection dropped while reading a
    /// non-streamed response body). Retried by the client.
    #[error("connection error: {message}")]
    Connection {
        /// What failed (never contains the API key).
        message: String,
    },
    /// The request, the connect or a read between two body chunks timed out.
    /// Retried by the client.
    #[error("request timed out: {message}")]
    Timeout {
        /// What timed out.
        message: String,
    },
    /// A success response whose body is not the JSON the API documents
    /// (including a malformed SSE `data:` payload or a bad JSONL line). Not
    /// retried: the server sent a complete but unusable answer.
    #[error("could not decode response: {message}; body starts with: {body_snippet:?}")]
    Decode {
        /// The parser's complaint.
        message: String,
        /// The first bytes of the offending body (lossy UTF-8, at most 512 bytes).
        body_snippet: String,
    },
    /// An SSE stream failed after the HTTP 200: an `error` event, the body
    /// was cut before `message_stop`, or the events violated the protocol.
    /// Retried by the client when the cause is transient (see
    /// [`StreamError`]); the whole request is re-sent, nothing partial is
    /// ever returned.
    #[error(transparent)]
    Stream(StreamError),
    /// The retry budget ran out. `last` is the error of the final attempt;
    /// the classification methods delegate to it.
    #[error("gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        /// How many requests were sent in total.
        attempts: u32,
        /// The final attempt's error.
        last: Box<Error>,
    },
    /// The environment variable that should hold the API key is unset or empty.
    #[error("API key missing: environment variable {env} is not set")]
    MissingApiKey {
        /// The variable's name.
        env: String,
    },
    /// A setting is unusable (bad base URL, a results URL on another origin,
    /// an HTTP client that cannot be built).
    #[error("invalid configuration: {message}")]
    InvalidConfig {
        /// What is wrong.
        message: String,
    },
}

/// Classified `error.type` of an API error body (or the HTTP status when the
/// body has none).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiErrorKind {
    /// 400 `invalid_request_error`.
    InvalidRequest,
    /// 401 `authentication_error`.
    Authentication,
    /// 402 `billing_error`.
    Billing,
    /// 403 `permission_error`.
    Permission,
    /// 404 `not_found_error`.
    NotFound,
    /// 413 `request_too_large`.
    RequestTooLarge,
    /// 429 `rate_limit_error`.
    RateLimit,
    /// 500 `api_error`.
    Api,
    /// 504 `timeout_error` (and 408).
    Timeout,
    /// 529 `overloaded_error`.
    Overloaded,
    /// 409 (the SDKs' `ConflictError`).
    Conflict,
    /// 422 (the SDKs' `UnprocessableEntityError`).
    Unprocessable,
    /// Anything else: the body's `error.type`, or `http_<status>`.
    Other(String),
}

impl ApiErrorKind {
    /// Parses a documented `error.type` string; `None` when unknown.
    pub fn from_type(error_type: &str) -> Option<Self> {
        Some(match error_type {
            "invalid_request_error" => Self::InvalidRequest,
            "authentication_error" => Self::Authentication,
            "billing_error" => Self::Billing,
            "permission_error" => Self::Permission,
            "not_found_error" => Self::NotFound,
            "request_too_large" => Self::RequestTooLarge,
            "rate_limit_error" => Self::RateLimit,
            "api_error" => Self::Api,
            "timeout_error" => Self::Timeout,
            "overloaded_error" => Self::Overloaded,
            "conflict_error" => Self::Conflict,
            "unprocessable_entity_error" => Self::Unprocessable,
            _ => return None,
        })
    }

    /// The kind an HTTP status implies when the body says nothing useful.
    pub fn from_status(status: u16) -> Self {
        match status {
            400 => Self::InvalidRequest,
            401 => Self::Authentication,
            402 => Self::Billing,
            403 => Self::Permission,
            404 => Self::NotFound,
            408 | 504 => Self::Timeout,
            409 => Self::Conflict,
            413 => Self::RequestTooLarge,
            422 => Self::Unprocessable,
            429 => Self::RateLimit,
            529 => Self::Overloaded,
            500..=599 => Self::Api,
            other => Self::Other(format!("http_{other}")),
        }
    }

    /// Classifies an error from its status and the body's `error.type`.
    ///
    /// A documented 4xx status decides by itself (OpenAI-style servers send
    /// `invalid_request_error` with a 401, for example); for 5xx and
    /// unlisted statuses a known `error.type` wins, then the status.
    pub fn classify(status: u16, error_type: Option<&str>) -> Self {
        if matches!(status, 400..=404 | 408 | 409 | 413 | 422 | 429) {
            return Self::from_status(status);
        }
        if let Some(kind) = error_type.and_then(Self::from_type) {
            return kind;
        }
        match (Self::from_status(status), error_type) {
            (Self::Other(_), Some(t)) if !t.is_empty() => Self::Other(t.to_owned()),
            (kind, _) => kind,
        }
    }

    /// The wire name (`rate_limit_error`, ...), for logs and the store.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request_error",
            Self::Authentication => "authentication_error",
            Self::Billing => "billing_error",
            Self::Permission => "permission_error",
            Self::NotFound => "not_found_error",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimit => "rate_limit_error",
            Self::Api => "api_error",
            Self::Timeout => "timeout_error",
            Self::Overloaded => "overloaded_error",
            Self::Conflict => "conflict_error",
            Self::Unprocessable => "unprocessable_entity_error",
            Self::Other(s) => s,
        }
    }

    /// 429 / 529 kinds, which use the separate overload retry budget.
    pub fn is_overload(&self) -> bool {
        matches!(self, Self::RateLimit | Self::Overloaded)
    }
}

impl fmt::Display for ApiErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP error response, classified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status} {kind}: {message}{}", fmt_request_id(request_id.as_deref()))]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Classified `error.type`.
    pub kind: ApiErrorKind,
    /// The API's message (or the start of a non-JSON body).
    pub message: String,
    /// `request-id` header, else the body's `request_id`.
    pub request_id: Option<String>,
    /// Server-suggested delay (`retry-after-ms`, else `retry-after`), as sent.
    pub retry_after: Option<Duration>,
    /// The `x-should-retry` header, when present and `true`/`false`.
    pub should_retry: Option<bool>,
}

/// The request field a validation error names, from pydantic's `'loc':
/// ('body', 'messages', 2, 'content')` or FastAPI's `"loc":["body","x"]`, as
/// `messages[2].content`. `None` when the message names no field.
pub fn offending_field(message: &str) -> Option<String> {
    let at = message
        .find("'loc':")
        .or_else(|| message.find("\"loc\":"))?;
    let rest = &message[at..];
    let open = rest.find(['(', '['])?;
    let close = rest[open..].find([')', ']'])? + open;
    let mut field = String::new();
    for part in rest[open + 1..close].split(',') {
        let part = part.trim().trim_matches(|c| c == '\'' || c == '"');
        if part.is_empty() || (field.is_empty() && part == "body") {
            continue;
        }
        if part.chars().all(|c| c.is_ascii_digit()) {
            field.push_str(&format!("[{part}]"));
        } else {
            if !field.is_empty() {
                field.push('.');
            }
            field.push_str(part);
        }
    }
    (!field.is_empty()).then_some(field)
}

fn fmt_request_id(id: Option<&str>) -> String {
    id.map(|id| format!(" (request-id {id})"))
        .unwrap_or_default()
}

/// `{"type":"error","error":{"type","message"},"request_id"}`; the OpenAI
/// shape `{"error":{"message","type","code"}}` parses too.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorBody {
    pub(crate) error: Option<ErrorDetail>,
    #[serde(default)]
    pub(crate) request_id: Option<String>,
}

/// The inner `error` object.
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorDetail {
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) message: Option<String>,
}

impl ApiError {
    /// A 5xx that is really the server refusing the request's shape: an
    /// `invalid_request_error` type, or a schema-validation body
    /// (pydantic's `Input should be` / `'loc':`, `validation error`).
    /// Sending it again gets the same answer.
    pub fn is_request_rejection(&self) -> bool {
        const MARKERS: [&str; 5] = [
            "Input should be",
            "'loc':",
            "\"loc\":",
            "validation error",
            "Field required",
        ];
        self.status >= 500
            && (matches!(
                self.kind,
                ApiErrorKind::InvalidRequest | ApiErrorKind::Unprocessable
            ) || MARKERS.iter().any(|m| self.message.contains(m)))
    }

    /// Builds the error from a non-success response. Tolerates bodies that
    /// are not JSON (a proxy's HTML page, an empty body).
    pub(crate) fn from_response(
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
        request_id_header: &str,
    ) -> Self {
        let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
        let (error_type, message, body_request_id) = match parsed {
            Some(ErrorBody {
                error: Some(detail),
                request_id,
            }) => (detail.kind, detail.message, request_id),
            Some(ErrorBody {
                error: None,
                request_id,
            }) => (None, None, request_id),
            None => (None, None, None),
        };
        let message = message.unwrap_or_else(|| {
            let snippet = snippet(body);
            if snippet.trim().is_empty() {
                format!("HTTP {status} with an empty body")
            } else {
                snippet
            }
        });
        let request_id = header_str(headers, request_id_header)
            .map(str::to_owned)
            .or(body_request_id);
        ApiError {
            status,
            kind: ApiErrorKind::classify(status, error_type.as_deref()),
            message,
            request_id,
            retry_after: crate::retry::retry_after_from_headers(headers),
            should_retry: match header_str(headers, "x-should-retry") {
                Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
                Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
                _ => None,
            },
        }
    }
}

/// Why an SSE stream failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream failed{}: {message}{}", kind.as_ref().map(|k| format!(" ({k})")).unwrap_or_default(), fmt_request_id(request_id.as_deref()))]
pub struct StreamError {
    /// The `error` event's `error.type`; `None` when the body was cut or the
    /// events made no sense.
    pub kind: Option<ApiErrorKind>,
    /// What happened.
    pub message: String,
    /// The response's `request-id`.
    pub request_id: Option<String>,
}

impl StreamError {
    fn is_retryable(&self) -> bool {
        match &self.kind {
            None => true,
            Some(kind) => matches!(
                kind,
                ApiErrorKind::RateLimit
                    | ApiErrorKind::Overloaded
                    | ApiErrorKind::Api
                    | ApiErrorKind::Timeout
            ),
        }
    }
}

impl Error {
    /// Whether sending the same request again (later) may succeed: 408, 409,
    /// 429, 5xx, connection failures, timeouts, transient stream failures,
    /// with `x-should-retry` overriding the status. For
    /// [`Error::RetriesExhausted`] this describes the last error: the client
    /// already spent its budget, a caller may still re-queue the work.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Api(e) => match e.should_retry {
                Some(v) => v,
                None => status_is_retryable(e.status) && !e.is_request_rejection(),
            },
            Error::Connection { .. } | Error::Timeout { .. } => true,
            Error::Stream(e) => e.is_retryable(),
            Error::RetriesExhausted { last, .. } => last.is_retryable(),
            Error::Decode { .. } | Error::MissingApiKey { .. } | Error::InvalidConfig { .. } => {
                false
            }
        }
    }

    /// 429 or 529 (or a `rate_limit_error` / `overloaded_error` stream
    /// event): the provider is saturated, slow down.
    pub fn is_overload(&self) -> bool {
        match self {
            Error::Api(e) => matches!(e.status, 429 | 529) || e.kind.is_overload(),
            Error::Stream(e) => e.kind.as_ref().is_some_and(ApiErrorKind::is_overload),
            Error::RetriesExhausted { last, .. } => last.is_overload(),
            _ => false,
        }
    }

    /// The server-suggested delay (`retry-after-ms` / `retry-after`), raw.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api(e) => e.retry_after,
            Error::RetriesExhausted { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// The HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(e) => Some(e.status),
            Error::RetriesExhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    /// The `request-id` of the failing response, when there was one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Error::Api(e) => e.request_id.as_deref(),
            Error::Stream(e) => e.request_id.as_deref(),
            Error::RetriesExhausted { last, .. } => last.request_id(),
            _ => None,
        }
    }

    /// The classified API error kind (HTTP or stream `error` event).
    pub fn api_kind(&self) -> Option<&ApiErrorKind> {
        match self {
            Error::Api(e) => Some(&e.kind),
            Error::Stream(e) => e.kind.as_ref(),
            Error::RetriesExhausted { last, .. } => last.api_kind(),
            _ => None,
        }
    }

    /// A short stable label for metrics and the store (`api:rate_limit_error`,
    /// `connection`, `timeout`, ...).
    pub fn label(&self) -> String {
        match self {
            Error::Api(e) => format!("api:{}", e.kind),
            Error::Connection { .. } => "connection".into(),
            Error::Timeout { .. } => "timeout".into(),
            Error::Decode { .. } => "decode".into(),
            Error::Stream(e) => match &e.kind {
                Some(k) => format!("stream:{k}"),
                None => "stream".into(),
            },
            Error::RetriesExhausted { last, .. } => last.label(),
            Error::MissingApiKey { .. } => "missing_api_key".into(),
            Error::InvalidConfig { .. } => "invalid_config".into(),
        }
    }

    /// Maps a reqwest failure. `reading_body` marks failures after the
    /// headers arrived (a cut body is a connection failure, not a decode one).
    pub(crate) fn from_reqwest(err: reqwest::Error, reading_body: bool) -> Self {
        // reqwest's Display never includes headers, so the key cannot leak;
        // drop the URL anyway to keep messages short.
        let err = err.without_url();
        let message = error_chain(&err);
        if err.is_timeout() {
            Error::Timeout { message }
        } else if err.is_builder() {
            Error::InvalidConfig { message }
        } else if reading_body {
            Error::Connection {
                message: format!("response body interrupted: {message}"),
            }
        } else {
            Error::Connection { message }
        }
    }

    pub(crate) fn decode(err: impl fmt::Display, body: &[u8]) -> Self {
        Error::Decode {
            message: err.to_string(),
            body_snippet: snippet(body),
        }
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// 408, 409, 429 and every 5xx (529 included), as the official SDKs.
pub(crate) fn status_is_retryable(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

pub(crate) fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// At most 512 bytes of `body`, lossy UTF-8, cut on a char boundary.
pub(crate) fn snippet(body: &[u8]) -> String {
    const MAX: usize = 512;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX)]).into_owned();
    // A multi-byte char cut at MAX becomes U+FFFD; that is fine for a snippet.
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn a_validation_error_names_its_field() {
        assert_eq!(
            offending_field(
                "HTTP 500 api_error: [{'type': 'string_type', 'loc': ('body', 'messages', 2, 'content'), 'msg': 'Input should be a valid string'}]"
            )
            .as_deref(),
            Some("messages[2].content")
        );
        assert_eq!(
            offending_field(r#"{"detail":[{"loc":["body","tool_choice"],"msg":"bad"}]}"#)
                .as_deref(),
            Some("tool_choice")
        );
        assert_eq!(offending_field("HTTP 500 with an empty body"), None);
    }

    #[test]
    fn classify_prefers_known_type_then_status() {
        assert_eq!(
            ApiErrorKind::classify(529, Some("overloaded_error")),
            ApiErrorKind::Overloaded
        );
        assert_eq!(
            ApiErrorKind::classify(400, Some("weird_error")),
            ApiErrorKind::InvalidRequest
        );
        assert_eq!(
            ApiErrorKind::classify(418, Some("teapot_error")),
            ApiErrorKind::Other("teapot_error".into())
        );
        assert_eq!(
            ApiErrorKind::classify(418, None),
            ApiErrorKind::Other("http_418".into())
        );
        assert_eq!(
            ApiErrorKind::classify(409, Some("invalid_request_error")),
            ApiErrorKind::Conflict
        );
        assert_eq!(ApiErrorKind::classify(503, None), ApiErrorKind::Api);
        assert_eq!(
            ApiErrorKind::classify(503, Some("overloaded_error")),
            ApiErrorKind::Overloaded
        );
        assert_eq!(
            ApiErrorKind::classify(401, Some("invalid_request_error")),
            ApiErrorKind::Authentication
        );
    }

    #[test]
    fn non_json_error_body_is_tolerated() {
        let mut headers = HeaderMap::new();
        headers.insert("request-id", HeaderValue::from_static("req_1"));
        headers.insert("x-should-retry", HeaderValue::from_static("FALSE"));
        let e = ApiError::from_response(502, &headers, b"<html>bad gateway</html>", "request-id");
        assert_eq!(e.kind, ApiErrorKind::Api);
        assert_eq!(e.message, "<html>bad gateway</html>");
        assert_eq!(e.request_id.as_deref(), Some("req_1"));
        assert_eq!(e.should_retry, Some(false));
        assert!(!Error::Api(e).is_retryable());
        let empty = ApiError::from_response(500, &HeaderMap::new(), b"", "request-id");
        assert_eq!(empty.message, "HTTP 500 with an empty body");
    }

    #[test]
    fn body_request_id_is_a_fallback() {
        let body = br#"{"type":"error","error":{"type":"not_found_error","message":"no model"},"request_id":"req_body"}"#;
        let e = ApiError::from_response(404, &HeaderMap::new(), body, "request-id");
        assert_eq!(e.request_id.as_deref(), Some("req_body"));
        assert_eq!(e.kind, ApiErrorKind::NotFound);
        assert_eq!(e.message, "no model");
    }

    #[test]
    fn classification_delegates_through_retries_exhausted() {
        let api = ApiError {
            status: 529,
            kind: ApiErrorKind::Overloaded,
            message: "Overloaded".into(),
            request_id: Some("req_9".into()),
            retry_after: Some(Duration::from_secs(2)),
            should_retry: None,
        };
        let e = Error::RetriesExhausted {
            attempts: 3,
            last: Box::new(Error::Api(api)),
        };
        assert!(e.is_overload());
        assert!(e.is_retryable());
        assert_eq!(e.status(), Some(529));
        assert_eq!(e.request_id(), Some("req_9"));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
        assert_eq!(e.label(), "api:overloaded_error");
        assert!(e.to_string().contains("gave up after 3 attempts"));
    }
}
