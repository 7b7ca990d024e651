//! The layers and how they merge: the embedded defaults and the user file
//! are TOML documents; each `CADRE_*` variable and each `-c key=value`
//! override becomes a one-leaf table of its own. Layers are deep-merged in
//! order (tables merge, everything else replaces) and every leaf remembers
//! the label of the layer that last set it.

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::error::{Error, Result};
use crate::keys::collect_leaves;
use crate::schema::Schema;
use crate::sources::ENV_PREFIX;

/// Provenance label of the embedded defaults.
pub const DEFAULT_SOURCE: &str = "default";

/// Provenance label of `-c` overrides.
pub const OVERRIDE_SOURCE: &str = "-c";

/// Leaf path -> the label of the layer that set it last.
pub(crate) type Provenance = BTreeMap<Vec<String>, String>;

/// One configuration layer.
pub(crate) struct Layer {
    /// Provenance label (`default`, path, `env X`, `-c`).
    pub(crate) label: String,
    /// Longer description for error messages.
    pub(crate) describe: String,
    /// What it sets.
    pub(crate) table: Table,
}

impl Layer {
    pub(crate) fn new(label: &str, describe: &str, table: Table) -> Self {
        Self {
            label: label.to_owned(),
            describe: describe.to_owned(),
            table,
        }
    }
}

/// Parses one TOML document; `origin` names it in the error.
pub(crate) fn parse_document(text: &str, origin: &str) -> Result<Table> {
    text.parse::<Table>().map_err(|e| Error::Parse {
        origin: origin.to_owned(),
        message: e.to_string(),
    })
}

/// `CADRE_LIMITS__MAX_CONCURRENCY=4` -> `{limits = {max_concurrency = 4}}`.
pub(crate) fn env_layer(schema: &Schema, name: &str, raw: &str) -> Result<Layer> {
    let label = format!("env {name}");
    let rest = &name[ENV_PREFIX.len()..];
    let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
    if path.iter().any(String::is_empty) {
        return Err(Error::BadOverride {
            text: name.to_owned(),
            origin: label,
            message: "expected CADRE_SECTION__KEY[__SUBKEY], segments separated by \"__\""
                .to_owned(),
        });
    }
    let value = schema.coerce(&path, raw, &label)?;
    Ok(Layer::new(&label, &label, nest(&path, value)))
}

/// `-c limits.max_concurrency=4` -> `{limits = {max_concurrency = 4}}`.
pub(crate) fn override_layer(schema: &Schema, text: &str) -> Result<Layer> {
    let describe = format!("-c {text:?}");
    let bad = |message: &str| Error::BadOverride {
        text: text.to_owned(),
        origin: OVERRIDE_SOURCE.to_owned(),
        message: message.to_owned(),
    };
    let (key, raw) = text
        .split_once('=')
        .ok_or_else(|| bad("expected key.path=value"))?;
    let path: Vec<String> = key.trim().split('.').map(|s| s.trim().to_owned()).collect();
    if path.iter().any(String::is_empty) {
        return Err(bad("empty segment in key path"));
    }
    let value = schema.coerce(&path, raw.trim(), &describe)?;
    Ok(Layer::new(OVERRIDE_SOURCE, &describe, nest(&path, value)))
}

/// `[a, b, c]` and a value -> `{a = {b = {c = value}}}`.
fn nest(path: &[String], value: Value) -> Table {
    let mut value = value;
    for segment in path.iter().skip(1).rev() {
        let mut table = Table::new();
        table.insert(segment.clone(), value);
        value = Value::Table(table);
    }
    let mut root = Table::new();
    if let Some(first) = path.first() {
        root.insert(first.clone(), value);
    }
    root
}

/// A raw env / `-c` value: a TOML value when it parses as exactly one
/// (number, bool, array, inline table, quoted string), else the raw string.
/// Datetimes are kept as strings (no config field is a datetime).
pub(crate) fn parse_value(raw: &str) -> Value {
    let doc = format!("v = {raw}");
    match doc.parse::<Table>() {
        Ok(mut table) if table.len() == 1 => match table.remove("v") {
            Some(Value::Datetime(_)) | None => Value::String(raw.to_owned()),
            Some(value) => value,
        },
        Ok(_) | Err(_) => Value::String(raw.to_owned()),
    }
}

/// Deep-merges `over` into `base` (tables merge, everything else replaces)
/// and records `label` as the layer of every leaf it sets.
pub(crate) fn merge(
    base: &mut Table,
    over: Table,
    path: &mut Vec<String>,
    label: &str,
    provenance: &mut Provenance,
) {
    for (key, value) in over {
        path.push(key.clone());
        match (base.get_mut(&key), value) {
            (Some(Value::Table(base_table)), Value::Table(over_table)) => {
                merge(base_table, over_table, path, label, provenance);
            }
            (_, value) => {
                provenance.retain(|leaf, _| !leaf.starts_with(path));
                let mut leaves = Vec::new();
                match &value {
                    Value::Table(table) if !table.is_empty() => {
                        collect_leaves(table, &mut path.clone(), &mut leaves);
                    }
                    other => leaves.push((path.clone(), other)),
                }
                for (leaf, _) in leaves {
                    provenance.insert(leaf, label.to_owned());
                }
                base.insert(key, value);
            }
        }
        path.pop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_values_parse_as_one_toml_value_or_stay_strings() {
        assert_eq!(parse_value("4"), Value::Integer(4));
        assert_eq!(parse_value("2.5"), Value::Float(2.5));
        assert_eq!(parse_value("false"), Value::Boolean(false));
        assert_eq!(parse_value("\"x y\""), Value::String("x y".into()));
        assert_eq!(parse_value("x y"), Value::String("x y".into()));
        assert_eq!(parse_value(""), Value::String(String::new()));
        assert_eq!(
            parse_value("1979-05-27"),
            Value::String("1979-05-27".into())
        );
        // A value cannot smuggle in a second key.
        assert_eq!(
            parse_value("1\nother = 2"),
            Value::String("1\nother = 2".into())
        );
        assert!(matches!(parse_value("{ a = 1 }"), Value::Table(t) if t["a"] == Value::Integer(1)));
    }
}
