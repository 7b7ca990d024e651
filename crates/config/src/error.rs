//! The crate's one error type.

use std::fmt;
use std::path::PathBuf;

/// Convenience alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading or validating configuration.
///
/// Every variant names where the bad input came from (`origin`): `default`
/// (the embedded `config/default.toml`), a user file path, `env CADRE_X` or
/// `-c "key=value"`. Callers (the CLI, the daemon) should print the error and
/// exit; none of these are retryable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Returned by [`load`](fn@crate::load) when the user config file cannot be read
    /// (missing, unreadable). Fix the path given to `--config` / `CADRE_CONFIG`.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file that was asked for.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// Returned by [`load`](fn@crate::load) when a TOML document is not valid TOML.
    /// The message carries line and column.
    #[error("invalid TOML in {origin}: {message}")]
    Parse {
        /// Which document.
        origin: String,
        /// The parser's message.
        message: String,
    },

    /// Returned by [`load`](fn@crate::load) for a key that is not part of the
    /// configuration schema (usually a typo). `key` is the full dotted path.
    #[error("unknown config key \"{key}\" in {origin}")]
    UnknownKey {
        /// Full dotted key, e.g. `limits.max_concurency`.
        key: String,
        /// The layer that set it.
        origin: String,
    },

    /// Returned by [`load`](fn@crate::load) when a value has the wrong type or is out
    /// of range for its field (a string where a number belongs, `-1` for a
    /// count, an unknown enum variant, a new `[models.x]` missing a field).
    #[error("invalid value for config key \"{key}\" in {origin}: {message}")]
    InvalidValue {
        /// Full dotted key (for a missing field: the table that lacks it).
        key: String,
        /// The layer(s) that set it.
        origin: String,
        /// What is wrong.
        message: String,
    },

    /// Returned by [`load`](fn@crate::load) for a malformed `-c` override or a
    /// `CADRE_*` environment variable name that is not a key path.
    #[error("invalid config override {text:?} ({origin}): {message}")]
    BadOverride {
        /// The override or variable name as given.
        text: String,
        /// `-c` or `env NAME`.
        origin: String,
        /// What is wrong.
        message: String,
    },

    /// Returned by [`crate::Config::validate`] (and so by [`load`](fn@crate::load))
    /// when the merged configuration is inconsistent: a tier without a
    /// model, a model whose provider does not exist, a negative price, ...
    /// All problems found are listed at once.
    #[error("invalid configuration: {}", DisplayProblems(problems))]
    Invalid {
        /// Every problem found, in key order.
        problems: Vec<Problem>,
    },
}

/// One validation problem: which key, what is wrong, and (when known) which
/// layer set the offending value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Full dotted key, e.g. `models.haiku.batch_discount`.
    pub key: String,
    /// What is wrong with it.
    pub message: String,
    /// The layer that set the value (`default`, a file path, `env CADRE_X`,
    /// `-c`), filled in by [`load`](fn@crate::load); `None` from a bare
    /// [`crate::Config::validate`].
    pub origin: Option<String>,
}

impl Problem {
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            origin: None,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)?;
        if let Some(origin) = &self.origin {
            write!(f, " (set in {origin})")?;
        }
        Ok(())
    }
}

struct DisplayProblems<'a>(&'a [Problem]);

impl fmt::Display for DisplayProblems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
