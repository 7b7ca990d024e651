//! API keys (redacted everywhere) and base-URL resolution.

use std::fmt;

use crate::error::{Error, Result};

/// A provider API key. Its `Debug` prints `ApiKey(***)`; it has no
/// `Display`, and the clients mark the header carrying it as sensitive.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key obtained elsewhere (tests, a secret store).
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// Reads the key from the environment variable `var_name`.
    ///
    /// # Errors
    /// [`Error::MissingApiKey`] when the variable is unset or blank;
    /// [`Error::InvalidConfig`] when it is not valid Unicode.
    pub fn from_env(var_name: &str) -> Result<Self> {
        match std::env::var(var_name) {
            Ok(value) if !value.trim().is_empty() => Ok(Self(value.trim().to_owned())),
            Ok(_) | Err(std::env::VarError::NotPresent) => Err(Error::MissingApiKey {
                env: var_name.to_owned(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::InvalidConfig {
                message: format!("environment variable {var_name} is not valid Unicode"),
            }),
        }
    }

    /// The secret itself, for building the auth header. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// The base URL to use: a non-blank environment override (e.g. the value of
/// `ANTHROPIC_BASE_URL`, read by the caller) wins over the configured one.
/// Trailing slashes are removed so paths can be appended.
pub fn resolve_base_url(configured: &str, env_override: Option<String>) -> String {
    let chosen = match env_override {
        Some(v) if !v.trim().is_empty() => v.trim().to_owned(),
        _ => configured.trim().to_owned(),
    };
    chosen.trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_is_redacted() {
        let key = ApiKey::new("sk-ant-secret-123");
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        assert_eq!(format!("{:#?}", Some(key)), "Some(\n    ApiKey(***),\n)");
    }

    #[test]
    fn missing_env_var_is_typed() {
        let err = ApiKey::from_env("CADRE_LLM_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
        assert!(
            matches!(&err, Error::MissingApiKey { env } if env == "CADRE_LLM_TEST_SURELY_UNSET_VARIABLE")
        );
    }

    #[test]
    fn present_env_var_is_read() {
        // PATH is set in every test environment; reading it does not mutate anything.
        let key = ApiKey::from_env("PATH").expect("PATH is set");
        assert!(!key.expose().is_empty());
    }

    #[test]
    fn base_url_resolution() {
        assert_eq!(
            resolve_base_url("https://api.anthropic.com/", None),
            "https://api.anthropic.com"
        );
        assert_eq!(
            resolve_base_url(
                "https://api.anthropic.com",
                Some("http://127.0.0.1:9000/".into())
            ),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            resolve_base_url("https://a.example", Some("  ".into())),
            "https://a.example"
        );
    }
}
