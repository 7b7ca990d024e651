//! The loader's inputs ([`ConfigSources`]): the user file, the `CADRE_*`
//! environment variables and the `-c` overrides, gathered in one value so
//! that only [`ConfigSources::from_process_env`] reads the real environment.

use std::path::PathBuf;

/// Prefix of configuration environment variables.
pub const ENV_PREFIX: &str = "CADRE_";

/// Environment variable naming the user config file (when `--config` is not given).
pub const CONFIG_PATH_ENV: &str = "CADRE_CONFIG";

/// `CADRE_*` variables that are not configuration keys and are ignored by the
/// loader: the config file path, the daemon bearer token, the daemon URL used
/// by client commands, the log filter and the store path used by tools.
/// Every other `CADRE_*` variable must name a config key, or loading fails.
pub const RESERVED_ENV_VARS: &[&str] = &[
    "CADRE_CONFIG",
    "CADRE_TOKEN",
    "CADRE_SERVER",
    "CADRE_LOG",
    "CADRE_DB",
];

/// The inputs of [`load`](fn@crate::load), passed explicitly so tests never
/// touch the process environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigSources {
    /// Optional user TOML file (from `--config` or `CADRE_CONFIG`). A path
    /// that is given but cannot be read is an error.
    pub user_file: Option<PathBuf>,
    /// Environment variables as `(name, value)`. Only names starting with
    /// `CADRE_` are considered; [`RESERVED_ENV_VARS`] are skipped. They are
    /// applied in name order, so `CADRE_A__B__C` wins over `CADRE_A__B`.
    pub env: Vec<(String, String)>,
    /// `-c key.path=value` overrides, applied in order (last wins).
    pub overrides: Vec<String>,
}

impl ConfigSources {
    /// Sources from the real process environment: every `CADRE_*` variable,
    /// and `CADRE_CONFIG` as the user file when `user_file` is `None`.
    /// Variables whose name is not Unicode are skipped; values that are not
    /// Unicode are converted lossily.
    pub fn from_process_env(user_file: Option<PathBuf>, overrides: Vec<String>) -> Self {
        let vars = std::env::vars_os().filter_map(|(name, value)| {
            let name = name.into_string().ok()?;
            name.starts_with(ENV_PREFIX)
                .then(|| (name, value.to_string_lossy().into_owned()))
        });
        Self::from_vars(user_file, vars, overrides)
    }

    /// Like [`ConfigSources::from_process_env`], over a given variable list
    /// (what `from_process_env` does after reading the environment).
    pub fn from_vars(
        user_file: Option<PathBuf>,
        vars: impl IntoIterator<Item = (String, String)>,
        overrides: Vec<String>,
    ) -> Self {
        let env: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        let user_file = user_file.or_else(|| {
            env.iter()
                .find(|(name, value)| name == CONFIG_PATH_ENV && !value.is_empty())
                .map(|(_, value)| PathBuf::from(value))
        });
        Self {
            user_file,
            env,
            overrides,
        }
    }
}
