//! Dotted key paths and names: how a leaf's path is written in messages and
//! in the flat document, how leaves are enumerated, and what an environment
//! variable name looks like.

use toml::{Table, Value};

/// Every leaf (scalar, array, empty table) under `table`, with its path.
pub(crate) fn collect_leaves<'a>(
    table: &'a Table,
    path: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, &'a Value)>,
) {
    for (key, value) in table {
        path.push(key.clone());
        match value {
            Value::Table(inner) if !inner.is_empty() => collect_leaves(inner, path, out),
            other => out.push((path.clone(), other)),
        }
        path.pop();
    }
}

/// Dotted key; segments that are not bare TOML keys are quoted.
pub(crate) fn join_key<S: AsRef<str>>(path: &[S]) -> String {
    path.iter()
        .map(|s| quote_segment(s.as_ref(), false))
        .collect::<Vec<_>>()
        .join(".")
}

/// One key segment as TOML: bare when it can be (unless `always`), else a
/// quoted string.
pub(crate) fn quote_segment(segment: &str, always: bool) -> String {
    let bare = !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare && !always {
        segment.to_owned()
    } else {
        Value::String(segment.to_owned()).to_string()
    }
}

/// `[A-Z_][A-Z0-9_]*`: the conventional shape of an environment variable name.
pub(crate) fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_quote_only_non_bare_segments() {
        assert_eq!(
            join_key(&["models", "gpt-4o", "model"]),
            "models.gpt-4o.model"
        );
        assert_eq!(
            join_key(&["models", "gpt.4", "model"]),
            "models.\"gpt.4\".model"
        );
        assert!(is_env_var_name("ANTHROPIC_API_KEY"));
        assert!(!is_env_var_name("sk-ant-123"));
        assert!(!is_env_var_name(""));
    }
}
