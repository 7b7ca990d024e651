//! The crate's error type, and the HTTP API's single error boundary (the
//! body's shape is [`cadre_types::api::ErrorBody`]).

use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cadre_types::api::{ErrorBody, ErrorType};

/// Errors of the daemon as a library (starting, serving, dispatching).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// [`crate::run`] / [`crate::check_bind`] refuse to serve a non-loopback
    /// address without a bearer token. The caller should set `CADRE_TOKEN` or
    /// listen on loopback.
    #[error(
        "refusing to listen on {addr}: it is not a loopback address and no token is set \
         (set CADRE_TOKEN to require `Authorization: Bearer <token>`, or listen on 127.0.0.1)"
    )]
    Bind {
        /// The address asked for.
        addr: String,
    },
    /// An `--allow-root` directory could not be resolved (missing, unreadable).
    /// Returned by [`crate::AppState::new`]; fix the flag.
    #[error("allowed root {}: {source}", path.display())]
    AllowedRoot {
        /// The root as given.
        path: PathBuf,
        /// Why it could not be canonicalized.
        source: std::io::Error,
    },
    /// A daemon setting is unusable (empty token, zero max jobs...). Returned
    /// by [`crate::Token::new`] and [`crate::AppState::new`]; fix the setting.
    #[error("{0}")]
    Settings(String),
    /// Binding, accepting or serving failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The store failed (the dispatcher cannot claim or release jobs).
    #[error(transparent)]
    Store(#[from] cadre_store::Error),
    /// The pipeline failed outside any one job.
    #[error(transparent)]
    Engine(#[from] cadre_core::Error),
    /// A task of the daemon panicked or was cancelled unexpectedly.
    #[error("daemon task failed: {0}")]
    Task(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The status an error of `kind` is answered with unless a handler overrides it.
fn default_status(kind: ErrorType) -> StatusCode {
    match kind {
        ErrorType::InvalidRequest => StatusCode::BAD_REQUEST,
        ErrorType::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorType::Forbidden => StatusCode::FORBIDDEN,
        ErrorType::NotFound => StatusCode::NOT_FOUND,
        ErrorType::Conflict => StatusCode::CONFLICT,
        ErrorType::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An error answer of the HTTP API. Every handler, extractor, middleware and
/// fallback returns this, so every error has the same JSON shape. Client
/// errors carry their message; internal errors are logged once here and
/// answered with a generic message.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    kind: ErrorType,
    message: String,
}

impl ApiError {
    pub(crate) fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            status: default_status(kind),
            kind,
            message: message.into(),
        }
    }

    /// Overrides the status (e.g. 405, 415), keeping the type.
    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorType::InvalidRequest, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorType::NotFound, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Forbidden, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorType::Conflict, message)
    }

    /// The error's type (for tests).
    #[cfg(test)]
    pub(crate) fn kind(&self) -> ErrorType {
        self.kind
    }

    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error answering a request");
        Self::new(ErrorType::Internal, "internal error; see the daemon log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody::new(self.kind, self.message))).into_response()
    }
}

impl From<cadre_core::Error> for ApiError {
    fn from(e: cadre_core::Error) -> Self {
        match e {
            cadre_core::Error::InvalidInput(_) | cadre_core::Error::PathRejected { .. } => {
                Self::invalid(e.to_string())
            }
            cadre_core::Error::NotFound(_) => Self::not_found(e.to_string()),
            cadre_core::Error::Conflict(_) => Self::conflict(e.to_string()),
            cadre_core::Error::Store(inner) => inner.into(),
            other => Self::internal(other.chain()),
        }
    }
}

impl From<cadre_store::Error> for ApiError {
    fn from(e: cadre_store::Error) -> Self {
        match e {
            cadre_store::Error::NotFound { .. } => Self::not_found(e.to_string()),
            other => Self::internal(other),
        }
    }
}
