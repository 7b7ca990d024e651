//! The pipeline's one error type.
//!
//! Variants are what callers branch on: bad input (400 in the daemon), a
//! state that does not allow the request (409), a missing job (404), a run
//! that was stopped, a budget that ran out (the job ends `needs_human`), and
//! failures of the things underneath (filesystem, git, store, provider), each
//! with its source kept.

/// Errors of the pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path from a model or client broke the workspace rules; nothing was written.
    #[error("path {path:?} rejected: {reason}")]
    PathRejected {
        /// The offending path (shortened).
        path: String,
        /// Which rule it broke.
        reason: String,
    },
    /// Bad input from the user (flags, globs, workspace, outcome tables).
    #[error("{0}")]
    InvalidInput(String),
    /// The job's state does not allow the request (applying a running job).
    #[error("{0}")]
    Conflict(String),
    /// A filesystem or process operation failed.
    #[error("{context}")]
    Io {
        /// What was being done ("reading src/a.rs").
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A git command failed.
    #[error("git {command} failed: {stderr}")]
    Git {
        /// The git arguments.
        command: String,
        /// What git printed on stderr.
        stderr: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] cadre_store::Error),
    /// A job or subtask that should exist does not.
    #[error("{0} not found")]
    NotFound(String),
    /// The configuration does not allow what was asked.
    #[error("configuration: {0}")]
    Config(String),
    /// A model provider could not be built (e.g. missing API key).
    #[error(transparent)]
    Provider(#[from] cadre_llm::Error),
    /// The budget cannot cover the next call the job needs; the job ends `needs_human`.
    #[error("{0}")]
    BudgetExhausted(String),
    /// The reviewer could not be asked or its answer was unusable.
    #[error("{0}")]
    Review(String),
    /// The planner failed, so the job cannot run.
    #[error("planning failed: {0}")]
    Planning(String),
    /// The run was stopped (Ctrl-C, shutdown, a lost lease); the job is resumable.
    #[error("the run was stopped; the job can be resumed")]
    Stopped,
    /// A task of the engine panicked or was aborted.
    #[error("the {task} task failed")]
    Task {
        /// Which task.
        task: &'static str,
        /// Why it ended.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl Error {
    /// An I/O failure with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }

    /// The message with every source appended (`context: cause: cause`), for
    /// places that keep one line: the job's failure reason, the daemon's log.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.ends_with(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_keep_their_source_and_chain_names_it_once() {
        let e = Error::io(
            "reading src/a.rs",
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        );
        assert_eq!(e.to_string(), "reading src/a.rs");
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(e.chain(), "reading src/a.rs: no such file");
    }
}
