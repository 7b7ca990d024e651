//! Where cadre keeps its data when `store.path` is empty.

use std::path::{Path, PathBuf};

use crate::model::StoreConfig;

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
        match (
            self.path.strip_prefix("~/"),
            env_home.filter(|h| !h.is_empty()),
        ) {
            (Some(rest), Some(home)) => Path::new(home).join(rest),
            _ => PathBuf::from(&self.path),
        }
    }
}
