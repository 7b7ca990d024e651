//! The daemon's shared state and settings.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cadre_config::{Config, DaemonConfig};
use cadre_core::{Engine, Providers};
use cadre_store::Store;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::dashboard::session::Sessions;
use crate::security::{Token, canonical_roots};
use crate::{Error, Result};

/// How the daemon runs: what `cadre daemon` resolves from flags, config and
/// environment.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// Workspaces must lie inside one of these (resolved at startup). Empty:
    /// every submission is refused.
    pub allowed_roots: Vec<PathBuf>,
    /// Jobs run at once.
    pub max_jobs: u32,
    /// Lease length on claimed jobs; heartbeats renew it every third of it.
    pub lease_secs: u64,
    /// How long shutdown waits for running jobs to stop.
    pub shutdown_grace: Duration,
    /// Request bodies above this many bytes get 413.
    pub max_body_bytes: usize,
    /// The bearer token, if any (required for non-loopback addresses).
    pub token: Option<Token>,
    /// This daemon's name on the leases it takes (see [`daemon_owner_id`]).
    pub owner: String,
}

impl DaemonOptions {
    /// Options from the `[daemon]` config section, with no token and a fresh
    /// [`daemon_owner_id`].
    pub fn from_config(config: &DaemonConfig) -> DaemonOptions {
        DaemonOptions {
            allowed_roots: config.allowed_roots.iter().map(PathBuf::from).collect(),
            max_jobs: config.max_jobs,
            lease_secs: config.lease_secs,
            shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
            max_body_bytes: usize::try_from(config.max_body_bytes).unwrap_or(usize::MAX),
            token: None,
            owner: daemon_owner_id(),
        }
    }
}

/// `hostname-pid-uuid`: unique per daemon process, readable in the store.
pub fn daemon_owner_id() -> String {
    let host = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!(
        "{host}-{}-{}",
        std::process::id(),
        uuid::Uuid::now_v7().simple()
    )
}

/// Everything the handlers and the dispatcher share. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// Runs jobs with the fair-share limits; also answers reports and applies.
    engine: Engine,
    options: DaemonOptions,
    /// Wakes the dispatcher when a job is submitted, so it does not wait for
    /// its next poll.
    wake: Notify,
    /// Cancelled once on shutdown: the dispatcher stops claiming and event
    /// streams end, so the HTTP server can drain.
    shutdown: CancellationToken,
    /// The dashboard's logged-in browsers (with a token).
    sessions: Sessions,
}

impl AppState {
    /// The daemon's state over `store`. Resolves the allowed roots
    /// ([`Error::AllowedRoot`] if one is missing) and builds the engine. The
    /// engine shares `limits.max_concurrency` among running jobs (each gets at
    /// most total / running), so no per-daemon division is needed here.
    pub fn new(
        config: &Config,
        store: Store,
        providers: Providers,
        mut options: DaemonOptions,
    ) -> Result<AppState> {
        if options.max_jobs == 0 {
            return Err(Error::Settings("max jobs must be at least 1".to_owned()));
        }
        if options.lease_secs == 0 {
            return Err(Error::Settings(
                "daemon.lease_secs must be at least 1".to_owned(),
            ));
        }
        options.allowed_roots = canonical_roots(&options.allowed_roots)?;
        let config = Arc::new(config.clone());
        Ok(AppState {
            inner: Arc::new(Shared {
                engine: Engine::new(config, store, providers),
                options,
                wake: Notify::new(),
                shutdown: CancellationToken::new(),
                sessions: Sessions::default(),
            }),
        })
    }

    /// The engine jobs run on.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.inner.engine.store()
    }

    /// The resolved options (allowed roots canonical).
    pub fn options(&self) -> &DaemonOptions {
        &self.inner.options
    }

    /// The lease owner name.
    pub fn owner(&self) -> &str {
        &self.inner.options.owner
    }

    /// The bearer token, if any.
    pub fn token(&self) -> Option<&Token> {
        self.inner.options.token.as_ref()
    }

    /// Cancelled when the daemon shuts down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }

    pub(crate) fn sessions(&self) -> &Sessions {
        &self.inner.sessions
    }

    pub(crate) fn wake_dispatcher(&self) {
        self.inner.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.inner.wake.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_ids_are_unique_and_name_the_process() {
        let a = daemon_owner_id();
        let b = daemon_owner_id();
        assert_ne!(a, b);
        assert!(a.contains(&format!("-{}-", std::process::id())), "{a}");
    }
}
