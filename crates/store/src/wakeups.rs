//! Wake-ups for idle daemons: PostgreSQL's `LISTEN cadre_queue` (sent by a
//! trigger when a job becomes claimable, see `migrations/postgres/`).

use std::time::Duration;

use sqlx::postgres::PgListener;

use crate::backend::StoreLocation;
use crate::{Result, Store};

/// The channel the queue trigger notifies.
const CHANNEL: &str = "cadre_queue";

/// How long a listener whose connection failed waits before it wakes its
/// owner (who polls the queue) and tries again.
const RETRY: Duration = Duration::from_secs(1);

/// Hints that a job may have become claimable. On SQLite there are none (one
/// machine; the daemon polls); on PostgreSQL each notification, and each
/// reconnection of the listener (notifications may have been missed), wakes
/// [`QueueWakeups::next`]. A hint is never a promise: the claim decides.
#[derive(Debug)]
pub struct QueueWakeups {
    listener: Option<PgListener>,
}

impl Store {
    /// Starts listening for queue wake-ups (a dedicated connection on
    /// PostgreSQL, nothing on SQLite).
    pub async fn queue_wakeups(&self) -> Result<QueueWakeups> {
        let listener = match self.location() {
            StoreLocation::Sqlite(_) => None,
            StoreLocation::Postgres(url) => {
                let mut listener = PgListener::connect(url).await?;
                listener.listen(CHANNEL).await?;
                Some(listener)
            }
        };
        Ok(QueueWakeups { listener })
    }
}

impl QueueWakeups {
    /// Whether wake-ups can arrive at all (false on SQLite).
    pub fn is_live(&self) -> bool {
        self.listener.is_some()
    }

    /// Resolves at the next hint with the job it names (`None` after a
    /// reconnection, when hints may have been lost); never on SQLite.
    /// Cancel-safe: dropping the future loses at most a hint, which the
    /// caller's poll makes up for.
    pub async fn next(&mut self) -> Option<String> {
        let Some(listener) = self.listener.as_mut() else {
            return std::future::pending().await;
        };
        match listener.try_recv().await {
            Ok(Some(note)) => {
                tracing::trace!(job.id = note.payload(), "queue notification");
                Some(note.payload().to_owned())
            }
            Ok(None) => {
                tracing::debug!("queue listener reconnected; notifications may be lost");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "queue listener failed; retrying");
                tokio::time::sleep(RETRY).await;
                None
            }
        }
    }
}
