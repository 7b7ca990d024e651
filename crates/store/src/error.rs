//! The store's one error type.

use std::path::PathBuf;

/// Everything that can go wrong talking to the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or failed a query (I/O, constraint violation, lock timeout, ...).
    /// Returned by every method; usually fatal for the operation. A foreign-key violation
    /// means the caller referenced a job or subtask that does not exist.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Applying the embedded migrations failed (a newer or edited schema, a broken file).
    /// Returned by [`Store::open`](crate::Store::open); the database must be fixed by hand.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A JSON column could not be written or read back.
    #[error("invalid JSON in the store: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored enum or id string is not a valid value (the row was corrupted or written by a
    /// newer version of cadre).
    #[error("invalid value stored in the database: {0}")]
    InvalidStoredValue(#[from] cadre_types::Error),
    /// An integer does not fit its column or field (SQLite integers are signed 64-bit).
    #[error("{field} value {value} is out of range")]
    OutOfRange {
        /// The column or field.
        field: &'static str,
        /// The offending value.
        value: String,
    },
    /// The row an update targets does not exist. Returned by the setters that are not
    /// compare-and-set (e.g. [`Store::set_job_plan`](crate::Store::set_job_plan)).
    #[error("{what} {id} not found")]
    NotFound {
        /// "job", "subtask" or "attempt".
        what: &'static str,
        /// The id that was looked up.
        id: String,
    },
    /// A write made under a job's lease found the lease gone: another runner
    /// claimed the job, or the lease expired. Nothing of the write was
    /// stored; the runner must stop working on the job.
    #[error("the lease of {owner} on job {job} is lost (expired or taken by another runner)")]
    LeaseLost {
        /// The job.
        job: String,
        /// The owner whose lease it was.
        owner: String,
    },
    /// A write for a subtask was refused because the daemon's claim on it
    /// is gone (it expired and was given back, or another daemon holds
    /// it): nothing of the write is stored; the daemon must stop working on
    /// that subtask.
    #[error("the claim of {owner} on subtask {subtask} is lost (expired and given back)")]
    ClaimLost {
        /// The subtask.
        subtask: String,
        /// The daemon whose claim it was.
        owner: String,
    },
    /// The directory that should hold the database file could not be created.
    #[error("cannot create database directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl Error {
    /// True when the database was busy or locked by another writer: the same
    /// statement may succeed if tried again.
    pub fn is_busy(&self) -> bool {
        match self {
            Error::Database(sqlx::Error::Database(db)) => crate::is_busy(db.as_ref()),
            _ => false,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
