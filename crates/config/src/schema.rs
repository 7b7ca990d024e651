//! The schema: which keys exist and the TOML kind of each leaf, derived from
//! the embedded defaults deserialized into [`Config`] and serialized back, so
//! it can never drift from `model.rs`. The tables in [`FREE_KEY_MAPS`] take
//! keys chosen by the user; their entries share one entry schema.
//!
//! Every layer is checked against the schema before it is merged, so an
//! unknown key or a value of the wrong kind is reported with the layer that
//! set it. Env and `-c` values are parsed for their leaf here
//! ([`Schema::coerce`]): a string field keeps the raw text.

use std::collections::BTreeMap;

use toml::{Table, Value};

use crate::error::{Error, Result};
use crate::keys::join_key;
use crate::layers::{DEFAULT_SOURCE, parse_value};
use crate::load::DEFAULT_TOML;
use crate::model::Config;

/// Tables whose keys are free (names chosen by the user) rather than fixed
/// fields. A user layer may add entries; a new entry must be complete.
pub const FREE_KEY_MAPS: &[&str] = &[
    "models",
    "providers",
    "cascade.attempts",
    "limits.per_tier_concurrency",
];

/// TOML kinds of schema leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Float,
    Bool,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "a string",
            Kind::Integer => "an integer",
            Kind::Float => "a number",
            Kind::Bool => "a boolean (true/false)",
        }
    }

    fn accepts(self, value: &Value) -> bool {
        matches!(
            (self, value),
            (Kind::String, Value::String(_))
                | (Kind::Integer, Value::Integer(_))
                | (Kind::Float, Value::Float(_) | Value::Integer(_))
                | (Kind::Bool, Value::Boolean(_))
        )
    }
}

/// The shape of the configuration, derived from the defaults.
#[derive(Clone, Debug)]
enum Shape {
    /// Fixed fields.
    Table(BTreeMap<String, Shape>),
    /// Free keys; every entry has this shape.
    Map(Box<Shape>),
    /// An array of this shape.
    Array(Box<Shape>),
    Leaf(Kind),
    /// Unknown (empty default array or map): left to serde.
    Any,
}

/// The shape of every key, checked against each layer before it merges.
#[derive(Debug)]
pub(crate) struct Schema {
    root: Shape,
}

impl Schema {
    /// The schema of the embedded defaults.
    pub(crate) fn from_defaults() -> Result<Self> {
        let config: Config = toml::from_str(DEFAULT_TOML).map_err(|e| Error::Parse {
            origin: format!("{DEFAULT_SOURCE} (embedded config/default.toml)"),
            message: e.to_string(),
        })?;
        let value = Value::try_from(&config).map_err(|e| Error::Parse {
            origin: DEFAULT_SOURCE.to_owned(),
            message: format!("cannot serialize defaults: {e}"),
        })?;
        Ok(Self {
            root: shape_of(&value, &mut Vec::new()),
        })
    }

    /// The shape at `path`, or `None` when the path is not in the schema.
    fn lookup(&self, path: &[String]) -> Option<&Shape> {
        let mut shape = &self.root;
        for segment in path {
            shape = match shape {
                Shape::Table(fields) => fields.get(segment)?,
                Shape::Map(entry) => entry,
                Shape::Any => return Some(shape),
                Shape::Array(_) | Shape::Leaf(_) => return None,
            };
        }
        Some(shape)
    }

    /// Parses an env / `-c` value for `path`; a string field keeps the raw
    /// text even when it would parse as another TOML value.
    pub(crate) fn coerce(&self, path: &[String], raw: &str, origin: &str) -> Result<Value> {
        let shape = self.lookup(path).ok_or_else(|| Error::UnknownKey {
            key: join_key(path),
            origin: origin.to_owned(),
        })?;
        let value = parse_value(raw);
        Ok(match (shape, &value) {
            (Shape::Leaf(Kind::String), v) if !v.is_str() => Value::String(raw.to_owned()),
            _ => value,
        })
    }

    /// Checks one layer: every key known, every leaf of the right kind.
    pub(crate) fn check_table(
        &self,
        table: &Table,
        path: &mut Vec<String>,
        origin: &str,
    ) -> Result<()> {
        check(&self.root, &Value::Table(table.clone()), path, origin)
    }
}

/// Checks `value` against `shape`; errors name `path` and `origin`.
fn check(shape: &Shape, value: &Value, path: &mut Vec<String>, origin: &str) -> Result<()> {
    let invalid = |path: &[String], message: String| Error::InvalidValue {
        key: join_key(path),
        origin: origin.to_owned(),
        message,
    };
    match shape {
        Shape::Any => Ok(()),
        Shape::Table(fields) => {
            let Value::Table(table) = value else {
                return Err(invalid(
                    path,
                    format!("expected a table, found {}", describe(value)),
                ));
            };
            for (key, inner) in table {
                path.push(key.clone());
                let Some(field) = fields.get(key) else {
                    return Err(Error::UnknownKey {
                        key: join_key(path),
                        origin: origin.to_owned(),
                    });
                };
                check(field, inner, path, origin)?;
                path.pop();
            }
            Ok(())
        }
        Shape::Map(entry) => {
            let Value::Table(table) = value else {
                return Err(invalid(
                    path,
                    format!("expected a table, found {}", describe(value)),
                ));
            };
            for (key, inner) in table {
                path.push(key.clone());
                check(entry, inner, path, origin)?;
                path.pop();
            }
            Ok(())
        }
        Shape::Array(element) => {
            let Value::Array(items) = value else {
                return Err(invalid(
                    path,
                    format!("expected an array, found {}", describe(value)),
                ));
            };
            for (i, item) in items.iter().enumerate() {
                match check(element, item, path, origin) {
                    Err(Error::InvalidValue { message, .. }) => {
                        return Err(invalid(path, format!("element {i}: {message}")));
                    }
                    other => other?,
                }
            }
            Ok(())
        }
        Shape::Leaf(kind) => {
            if kind.accepts(value) {
                Ok(())
            } else {
                Err(invalid(
                    path,
                    format!("expected {}, found {}", kind.name(), describe(value)),
                ))
            }
        }
    }
}

/// A value's kind and (shortened) text, for messages.
fn describe(value: &Value) -> String {
    let kind = match value {
        Value::String(_) => "string",
        Value::Integer(_) => "integer",
        Value::Float(_) => "float",
        Value::Boolean(_) => "boolean",
        Value::Datetime(_) => "datetime",
        Value::Array(_) => "array",
        Value::Table(_) => "table",
    };
    let mut text = value.to_string();
    if text.len() > 60 {
        let mut cut = 57;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    format!("{kind} {text}")
}

/// The shape of a defaults value; tables in [`FREE_KEY_MAPS`] become maps.
fn shape_of(value: &Value, path: &mut Vec<String>) -> Shape {
    match value {
        Value::Table(table) => {
            if FREE_KEY_MAPS.contains(&path.join(".").as_str()) {
                let mut entry: Option<Shape> = None;
                for (key, inner) in table {
                    path.push(key.clone());
                    let shape = shape_of(inner, path);
                    path.pop();
                    entry = Some(match entry {
                        None => shape,
                        Some(previous) => union(previous, shape),
                    });
                }
                Shape::Map(Box::new(entry.unwrap_or(Shape::Any)))
            } else if table.is_empty() {
                // An empty default table (`extra_body = {}`) takes any
                // keys; serde checks the values.
                Shape::Any
            } else {
                let mut fields = BTreeMap::new();
                for (key, inner) in table {
                    path.push(key.clone());
                    fields.insert(key.clone(), shape_of(inner, path));
                    path.pop();
                }
                Shape::Table(fields)
            }
        }
        Value::Array(items) => Shape::Array(Box::new(
            items
                .first()
                .map_or(Shape::Any, |item| shape_of(item, path)),
        )),
        Value::String(_) => Shape::Leaf(Kind::String),
        Value::Integer(_) => Shape::Leaf(Kind::Integer),
        Value::Float(_) => Shape::Leaf(Kind::Float),
        Value::Boolean(_) => Shape::Leaf(Kind::Bool),
        Value::Datetime(_) => Shape::Any,
    }
}

/// One entry shape for every entry of a free-key map: the fields of both.
fn union(a: Shape, b: Shape) -> Shape {
    match (a, b) {
        (Shape::Table(mut left), Shape::Table(right)) => {
            for (key, shape) in right {
                let merged = match left.remove(&key) {
                    Some(existing) => union(existing, shape),
                    None => shape,
                };
                left.insert(key, merged);
            }
            Shape::Table(left)
        }
        (Shape::Any, other) => other,
        (other, _) => other,
    }
}
