//! The crate's one error type.

use std::path::PathBuf;

/// Errors from loading a scenario or running the sim server.
///
/// Request-level problems (bad requests, injected faults) are not errors of
/// this type: they are HTTP responses with the Anthropic error body.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A scenario file or a workspace file could not be read. Returned by
    /// [`crate::Scenario::load`] and [`crate::Scenario::from_toml_str`] (which
    /// preloads originals from the scenario's `workspace`); fix the path.
    #[error("reading {path}: {source}")]
    Io {
        /// The file that could not be read.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The scenario is not valid TOML or has unknown or mistyped fields.
    /// Returned by the scenario loaders; the message names the field.
    #[error("parsing scenario {origin}: {source}")]
    ScenarioParse {
        /// Where the TOML came from (a path or `<string>`).
        origin: String,
        /// The TOML parser's complaint.
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A scenario could not be written as TOML (a value TOML cannot hold,
    /// such as a seed above `i64::MAX`). Returned by
    /// [`crate::Scenario::to_toml_string`].
    #[error("writing scenario as TOML: {0}")]
    ScenarioSerialize(#[source] toml::ser::Error),
    /// The scenario parses but is inconsistent (an edit whose `old` text is
    /// not unique in the original, a skill outside 0..=1, a duplicate file,
    /// ...). Returned by the scenario loaders and [`crate::ScenarioBuilder::build`];
    /// the message says what to fix.
    #[error("invalid scenario: {0}")]
    InvalidScenario(String),
    /// The server could not accept connections or failed while serving.
    /// Returned by [`crate::SimServer::start`] and [`crate::serve_until`].
    #[error("sim server I/O: {0}")]
    Serve(#[source] std::io::Error),
    /// The server task panicked or was aborted. Returned by
    /// [`crate::SimServer::shutdown_checked`].
    #[error("sim server task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
