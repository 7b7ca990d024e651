//! `cadre config show`: every resolved leaf with the layer that set it, and
//! secret-looking values redacted.

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::keys::{collect_leaves, is_env_var_name, join_key};
use crate::layers::DEFAULT_SOURCE;
use crate::provenance::LoadedConfig;

impl LoadedConfig {
    /// Every resolved leaf as `key = value  # source`, one per line, sorted by
    /// key. String values of keys whose name contains `key`, `token` or
    /// `secret` are shown as `"<redacted>"` unless they look like an
    /// environment variable name (e.g. `api_key_env = "ANTHROPIC_API_KEY"`).
    pub fn render_show(&self) -> String {
        let table = match Value::try_from(&self.config) {
            Ok(Value::Table(table)) => table,
            Ok(_) | Err(_) => {
                tracing::warn!("configuration did not serialize to a TOML table");
                Table::new()
            }
        };
        let mut leaves = Vec::new();
        collect_leaves(&table, &mut Vec::new(), &mut leaves);
        let mut lines: BTreeMap<String, String> = BTreeMap::new();
        for (path, value) in leaves {
            let key = join_key(&path);
            let shown =
                if is_secret_name(path.last().map_or("", String::as_str)) && holds_secret(value) {
                    "\"<redacted>\"".to_owned()
                } else {
                    value.to_string()
                };
            let source = self
                .sources
                .get(&key)
                .map_or(DEFAULT_SOURCE, String::as_str);
            lines.insert(key.clone(), format!("{key} = {shown}  # {source}"));
        }
        let mut out = String::new();
        for line in lines.values() {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

/// A key whose name says it may hold a secret (`key`, `token`, `secret`).
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["key", "token", "secret"]
        .iter()
        .any(|word| name.contains(word))
}

/// Only strings can hold secrets (counts like `max_tokens` cannot); a string
/// that is empty or looks like an environment variable name is fine to show.
fn holds_secret(value: &Value) -> bool {
    match value {
        Value::String(s) => !(s.is_empty() || is_env_var_name(s)),
        Value::Array(items) => items.iter().any(holds_secret),
        Value::Table(table) => table.values().any(holds_secret),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_are_keys_tokens_and_secrets() {
        assert!(
            is_secret_name("api_key_env")
                && is_secret_name("bearer_token")
                && !is_secret_name("model")
        );
    }
}
