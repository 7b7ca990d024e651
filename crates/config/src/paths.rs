//! Where cadre keeps its data when `store.path` is empty.

use std::path::{Path, PathBuf};

use crate::model::{Config, StoreConfig};

/// The default SQLite file: `$XDG_DATA_HOME/cadre/cadre.db` when
/// `XDG_DATA_HOME` is set to an absolute path (the XDG spec ignores relative
/// ones), else `$HOME/.local/share/cadre/cadre.db`, else `cadre.db` in the
/// current directory. The caller passes the two variables (so tests do not
/// touch the process environment).
pub fn default_store_path(env_home: Option<&str>, xdg_data_home: Option<&str>) -> PathBuf {
    if let Some(xdg) = xdg_data_home.filter(|x| Path::new(x).is_absolute()) {
        return Path::new(xdg).join("cadre").join("cadre.db");
    }
    if let Some(home) = env_home.filter(|h| !h.is_empty()) {
        return Path::new(home)
            .join(".local")
            .join("share")
            .join("cadre")
            .join("cadre.db");
    }
    PathBuf::from("cadre.db")
}

impl StoreConfig {
    /// The store file to open: `path` if set (a leading `~/` is expanded with
    /// `env_home`), else [`default_store_path`].
    pub fn resolve_path(&self, env_home: Option<&str>, xdg_data_home: Option<&str>) -> PathBuf {
        if self.path.is_empty() {
            return default_store_path(env_home, xdg_data_home);
        }
        expand_home(&self.path, env_home)
    }
}

/// `path` with a leading `~/` replaced by `env_home`.
fn expand_home(path: &str, env_home: Option<&str>) -> PathBuf {
    match (path.strip_prefix("~/"), env_home.filter(|h| !h.is_empty())) {
        (Some(rest), Some(home)) => Path::new(home).join(rest),
        _ => PathBuf::from(path),
    }
}

impl Config {
    /// Where jobs on git repositories are checked out: `daemon.checkouts_dir`
    /// (a leading `~/` expanded with `env_home`), else `checkouts/` beside
    /// the store file.
    pub fn checkouts_dir(&self, env_home: Option<&str>, xdg_data_home: Option<&str>) -> PathBuf {
        let configured = &self.daemon.checkouts_dir;
        if configured.is_empty() {
            let store = self.store.resolve_path(env_home, xdg_data_home);
            return store
                .parent()
                .map_or_else(|| PathBuf::from("checkouts"), |dir| dir.join("checkouts"));
        }
        expand_home(configured, env_home)
    }
}
