//! Layered loading: embedded defaults, user file, `CADRE_*` environment
//! variables, `-c key=value` overrides; with provenance for every leaf.
//!
//! How it works:
//!
//! 1. The schema (which keys exist, and the TOML kind of each leaf) is derived
//!    from the embedded defaults deserialized into [`Config`] and serialized
//!    back, so it can never drift from `model.rs`. Four tables are maps with
//!    free keys ([`FREE_KEY_MAPS`]); their entries share one entry schema.
//! 2. Each layer is checked against the schema *before* it is merged, so an
//!    unknown key or a wrong kind is reported with the layer that set it.
//! 3. Layers are deep-merged (tables merge, everything else replaces); every
//!    leaf remembers the layer that last set it.
//! 4. The merged tree is rendered as a flat TOML document (one dotted key per
//!    leaf) and deserialized into [`Config`]; serde's error span maps back to
//!    the leaf, so range errors, bad enum variants and incomplete new
//!    `[models.x]` tables also name their key and layer.
//! 5. [`Config::validate`] checks cross-references; its problems are
//!    annotated with the layer that set the offending key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::PathBuf;

use toml::{Table, Value};

use crate::error::{Error, Result};
use crate::model::Config;

/// The built-in defaults, embedded in the binary (the base layer).
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

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

/// Tables whose keys are free (names chosen by the user) rather than fixed
/// fields. A user layer may add entries; a new entry must be complete.
pub const FREE_KEY_MAPS: &[&str] = &[
    "models",
    "providers",
    "cascade.attempts",
    "limits.per_tier_concurrency",
];

/// Provenance label of the embedded defaults.
pub const DEFAULT_SOURCE: &str = "default";

/// Provenance label of `-c` overrides.
pub const OVERRIDE_SOURCE: &str = "-c";

/// The inputs of [`load`], passed explicitly so tests never touch the
/// process environment.
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

/// A resolved configuration and where each value came from.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedConfig {
    /// The merged, validated configuration.
    pub config: Config,
    /// Dotted leaf key -> the layer that set it: `default`, the user file's
    /// path, `env CADRE_X` or `-c`. Covers every leaf of `config`.
    pub sources: BTreeMap<String, String>,
}

impl LoadedConfig {
    /// The layer that set `key` (a dotted leaf key, e.g. `limits.max_concurrency`).
    pub fn source_of(&self, key: &str) -> Option<&str> {
        self.sources.get(key).map(String::as_str)
    }

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

/// Loads the configuration: defaults, then the user file, then `CADRE_*`
/// variables, then `-c` overrides; then validates it.
pub fn load(sources: &ConfigSources) -> Result<LoadedConfig> {
    let schema = Schema::from_defaults()?;
    let mut layers = vec![Layer::new(
        DEFAULT_SOURCE,
        DEFAULT_SOURCE,
        parse_document(DEFAULT_TOML, DEFAULT_SOURCE)?,
    )];

    if let Some(path) = &sources.user_file {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
            path: path.clone(),
            source,
        })?;
        let label = path.display().to_string();
        let table = parse_document(&text, &label)?;
        layers.push(Layer::new(&label, &label, table));
    }

    let mut env: Vec<&(String, String)> = sources
        .env
        .iter()
        .filter(|(name, _)| {
            name.starts_with(ENV_PREFIX) && !RESERVED_ENV_VARS.contains(&name.as_str())
        })
        .collect();
    env.sort();
    for (name, value) in env {
        layers.push(env_layer(&schema, name, value)?);
    }
    for text in &sources.overrides {
        layers.push(override_layer(&schema, text)?);
    }

    let mut merged = Table::new();
    let mut provenance: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for layer in layers {
        schema.check_table(&layer.table, &mut Vec::new(), &layer.describe)?;
        merge(
            &mut merged,
            layer.table,
            &mut Vec::new(),
            &layer.label,
            &mut provenance,
        );
    }

    let config = deserialize_merged(&merged, &provenance)?;

    let mut sources_map: BTreeMap<String, String> = provenance
        .iter()
        .map(|(path, label)| (join_key(path), label.clone()))
        .collect();
    // Leaves filled in by serde defaults were set by nobody: they are defaults.
    if let Ok(Value::Table(table)) = Value::try_from(&config) {
        let mut leaves = Vec::new();
        collect_leaves(&table, &mut Vec::new(), &mut leaves);
        for (path, _) in leaves {
            sources_map
                .entry(join_key(&path))
                .or_insert_with(|| DEFAULT_SOURCE.to_owned());
        }
    }

    if let Err(Error::Invalid { mut problems }) = config.validate() {
        for problem in &mut problems {
            problem.origin = origin_of_key(&sources_map, &problem.key);
        }
        return Err(Error::Invalid { problems });
    }
    Ok(LoadedConfig {
        config,
        sources: sources_map,
    })
}

impl Config {
    /// The embedded defaults alone, validated. For tests of other crates and
    /// as the starting point of code that builds a `Config` by hand.
    pub fn default_embedded() -> Result<Config> {
        load(&ConfigSources::default()).map(|loaded| loaded.config)
    }
}

/// One configuration layer.
struct Layer {
    /// Provenance label (`default`, path, `env X`, `-c`).
    label: String,
    /// Longer description for error messages.
    describe: String,
    table: Table,
}

impl Layer {
    fn new(label: &str, describe: &str, table: Table) -> Self {
        Self {
            label: label.to_owned(),
            describe: describe.to_owned(),
            table,
        }
    }
}

fn parse_document(text: &str, origin: &str) -> Result<Table> {
    text.parse::<Table>().map_err(|e| Error::Parse {
        origin: origin.to_owned(),
        message: e.to_string(),
    })
}

/// `CADRE_LIMITS__MAX_CONCURRENCY=4` -> `{limits = {max_concurrency = 4}}`.
fn env_layer(schema: &Schema, name: &str, raw: &str) -> Result<Layer> {
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
fn override_layer(schema: &Schema, text: &str) -> Result<Layer> {
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
fn parse_value(raw: &str) -> Value {
    let doc = format!("v = {raw}");
    match doc.parse::<Table>() {
        Ok(mut table) if table.len() == 1 => match table.remove("v") {
            Some(Value::Datetime(_)) | None => Value::String(raw.to_owned()),
            Some(value) => value,
        },
        Ok(_) | Err(_) => Value::String(raw.to_owned()),
    }
}

fn merge(
    base: &mut Table,
    over: Table,
    path: &mut Vec<String>,
    label: &str,
    provenance: &mut BTreeMap<Vec<String>, String>,
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

/// Every leaf (scalar, array, empty table) under `table`, with its path.
fn collect_leaves<'a>(
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

/// One rendered `key = value` entry of the flat document.
struct Entry {
    path: Vec<String>,
    /// Byte range of each key segment.
    segments: Vec<Range<usize>>,
    value_start: usize,
    end: usize,
}

/// Deserializes the merged tree; maps serde's error span back to a key.
fn deserialize_merged(
    merged: &Table,
    provenance: &BTreeMap<Vec<String>, String>,
) -> Result<Config> {
    let mut leaves = Vec::new();
    collect_leaves(merged, &mut Vec::new(), &mut leaves);
    let mut text = String::new();
    let mut entries = Vec::with_capacity(leaves.len());
    for (path, value) in leaves {
        let mut segments = Vec::with_capacity(path.len());
        for (i, segment) in path.iter().enumerate() {
            if i > 0 {
                text.push('.');
            }
            let start = text.len();
            text.push_str(&quote_segment(segment, true));
            segments.push(start..text.len());
        }
        text.push_str(" = ");
        let value_start = text.len();
        let _ = write!(text, "{value}");
        text.push('\n');
        entries.push(Entry {
            path,
            segments,
            value_start,
            end: text.len(),
        });
    }

    toml::from_str::<Config>(&text).map_err(|e| {
        let message = e.message().to_owned();
        let key_path = e.span().and_then(|span| {
            let at = span.start;
            let entry = entries.iter().find(|entry| {
                entry.segments.first().is_some_and(|s| s.start <= at) && at < entry.end
            })?;
            if at >= entry.value_start {
                return Some(entry.path.clone());
            }
            let index = entry
                .segments
                .iter()
                .rposition(|s| s.start <= at)
                .unwrap_or(0);
            Some(entry.path[..=index].to_vec())
        });
        match key_path {
            Some(path) => {
                let mut origins: Vec<&str> = Vec::new();
                for (leaf, label) in provenance {
                    if leaf.starts_with(&path) && !origins.contains(&label.as_str()) {
                        origins.push(label);
                    }
                }
                let origin = if origins.is_empty() {
                    "merged configuration".to_owned()
                } else {
                    origins.join(", ")
                };
                Error::InvalidValue {
                    key: join_key(&path),
                    origin,
                    message,
                }
            }
            None => Error::InvalidValue {
                key: String::new(),
                origin: "merged configuration".to_owned(),
                message,
            },
        }
    })
}

/// The layer(s) that set `key` or anything under it.
fn origin_of_key(sources: &BTreeMap<String, String>, key: &str) -> Option<String> {
    if let Some(label) = sources.get(key) {
        return Some(label.clone());
    }
    let prefix = format!("{key}.");
    let labels: BTreeSet<&str> = sources
        .iter()
        .filter(|(leaf, _)| leaf.starts_with(&prefix))
        .map(|(_, label)| label.as_str())
        .collect();
    if labels.is_empty() {
        None
    } else {
        Some(labels.into_iter().collect::<Vec<_>>().join(", "))
    }
}

/// Dotted key; segments that are not bare TOML keys are quoted.
pub(crate) fn join_key<S: AsRef<str>>(path: &[S]) -> String {
    path.iter()
        .map(|s| quote_segment(s.as_ref(), false))
        .collect::<Vec<_>>()
        .join(".")
}

fn quote_segment(segment: &str, always: bool) -> String {
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

/// `[A-Z_][A-Z0-9_]*`: the conventional shape of an environment variable name.
pub(crate) fn is_env_var_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

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

#[derive(Debug)]
struct Schema {
    root: Shape,
}

impl Schema {
    fn from_defaults() -> Result<Self> {
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
    fn coerce(&self, path: &[String], raw: &str, origin: &str) -> Result<Value> {
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

    fn check_table(&self, table: &Table, path: &mut Vec<String>, origin: &str) -> Result<()> {
        check(&self.root, &Value::Table(table.clone()), path, origin)
    }
}

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
        assert!(
            is_secret_name("api_key_env")
                && is_secret_name("bearer_token")
                && !is_secret_name("model")
        );
    }

    #[test]
    fn a_tier_name_with_a_dot_round_trips_through_the_flat_document() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let haiku = DEFAULT_TOML
            .split("[models.haiku]")
            .nth(1)
            .unwrap()
            .split("\n\n")
            .next()
            .unwrap();
        std::fs::write(
            &path,
            format!("[models.\"gpt.4\"]{haiku}\nthinking = \"fancy\"\n"),
        )
        .unwrap();
        // Duplicate `thinking` key: a TOML error naming the file.
        let err = load(&ConfigSources {
            user_file: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{err}");

        let fixed = format!(
            "[models.\"gpt.4\"]{}\n",
            haiku.replace("\"budget\"", "\"fancy\"")
        );
        std::fs::write(&path, fixed).unwrap();
        let err = load(&ConfigSources {
            user_file: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidValue { key, .. } if key == "models.\"gpt.4\".thinking"),
            "{err}"
        );

        std::fs::write(&path, format!("[models.\"gpt.4\"]{haiku}\n")).unwrap();
        let loaded = load(&ConfigSources {
            user_file: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(loaded.config.models["gpt.4"].model, "claude-haiku-4-5");
        assert!(
            loaded
                .render_show()
                .contains("models.\"gpt.4\".model = \"claude-haiku-4-5\"")
        );
    }
}
