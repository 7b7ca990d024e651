//! What every command shares: the layered configuration, the store, the
//! engine built on them, and the process's termination signals.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use cadre_config::{Config, ConfigSources, LoadedConfig};
use cadre_core::{Engine, Providers};
use cadre_store::{Store, StoreLocation};
use cadre_types::JobId;
use tokio_util::sync::CancellationToken;

use crate::args::Cli;

/// The resolved configuration and the open store a command works with.
pub(crate) struct Session {
    /// The configuration and where each value came from.
    pub(crate) loaded: LoadedConfig,
    /// The store at `--db`, `CADRE_DB`, `store.url`, `store.path` or the user data dir.
    pub(crate) store: Store,
}

impl Session {
    /// Loads the configuration and opens the store.
    pub(crate) async fn open(cli: &Cli) -> Result<Session> {
        let loaded = load_config(cli)?;
        let store = open_store(cli, &loaded.config).await?;
        Ok(Session { loaded, store })
    }

    /// An engine whose providers come from the configuration and the
    /// environment's keys, or from `override_base` (a base URL and key, for
    /// the simulator).
    pub(crate) fn engine(&self, override_base: Option<(&str, &str)>) -> Result<Engine> {
        let config = Arc::new(self.loaded.config.clone());
        let providers = Providers::from_config(&config, &env_var, override_base)?;
        Ok(Engine::new(config, self.store.clone(), providers))
    }

    /// An engine for commands that make no model calls (no keys needed).
    pub(crate) fn reading_engine(&self) -> Engine {
        Engine::new(
            Arc::new(self.loaded.config.clone()),
            self.store.clone(),
            Providers::default(),
        )
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The configuration layers: built-in defaults, `--config`/`CADRE_CONFIG`,
/// `CADRE_*` variables, `-c` flags.
pub(crate) fn load_config(cli: &Cli) -> Result<LoadedConfig> {
    let sources = ConfigSources::from_process_env(cli.config.clone(), cli.overrides.clone());
    cadre_config::load(&sources).map_err(|e| anyhow!("{e}"))
}

async fn open_store(cli: &Cli, config: &Config) -> Result<Store> {
    let location = match &cli.db {
        Some(db) => StoreLocation::parse(db),
        None if !config.store.url.is_empty() => StoreLocation::parse(&config.store.url),
        None => StoreLocation::Sqlite(config.store.resolve_path(
            env_var("HOME").as_deref(),
            env_var("XDG_DATA_HOME").as_deref(),
        )),
    };
    Store::connect(&location)
        .await
        .with_context(|| format!("opening the store at {location}"))
}

/// A job id from the command line.
pub(crate) fn parse_job(id: &str) -> Result<JobId> {
    id.parse().map_err(|e| anyhow!("{e}"))
}

/// Refuses a `--workspace` that is not a directory.
pub(crate) fn check_workspace(path: &Path) -> Result<()> {
    if !path.is_dir() {
        bail!("workspace {} is not a directory", path.display());
    }
    Ok(())
}

/// Resolves at the first SIGINT or SIGTERM (SIGINT only when SIGTERM cannot
/// be watched).
pub(crate) async fn termination() {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Stops the job on the first SIGINT/SIGTERM (leaving it resumable); the
/// returned task is aborted by the caller when the job ends.
pub(crate) fn stop_on_signal(stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        termination().await;
        eprintln!(
            "\nstopping: in-flight calls are abandoned and the job stays resumable (cadre resume JOB)"
        );
        stop.cancel();
    })
}

/// The contents of each `--rule FILE.yml`, each checked as ast-grep rules.
pub(crate) fn read_rules(paths: &[std::path::PathBuf]) -> Result<Vec<String>> {
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading --rule {}", path.display()))?;
            cadre_core::codemod::check_rules(std::slice::from_ref(&text))
                .with_context(|| format!("--rule {}", path.display()))?;
            Ok(text)
        })
        .collect()
}
