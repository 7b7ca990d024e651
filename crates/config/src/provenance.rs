//! Where each resolved value came from: the [`LoadedConfig`] that [`load`]
//! returns keeps, for every leaf, the layer that set it (`default`, the user
//! file's path, `env CADRE_X` or `-c`), and validation problems are
//! annotated with the layer that set their key.
//!
//! [`load`]: fn@crate::load

use std::collections::{BTreeMap, BTreeSet};

use toml::Value;

use crate::keys::{collect_leaves, join_key};
use crate::layers::{DEFAULT_SOURCE, Provenance};
use crate::model::Config;

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
}

/// Dotted leaf key -> layer label for every leaf of `config`: the layer the
/// merge recorded, or `default` for leaves nobody set (serde defaults).
pub(crate) fn sources_by_key(provenance: &Provenance, config: &Config) -> BTreeMap<String, String> {
    let mut sources_map: BTreeMap<String, String> = provenance
        .iter()
        .map(|(path, label)| (join_key(path), label.clone()))
        .collect();
    // Leaves filled in by serde defaults were set by nobody: they are defaults.
    if let Ok(Value::Table(table)) = Value::try_from(config) {
        let mut leaves = Vec::new();
        collect_leaves(&table, &mut Vec::new(), &mut leaves);
        for (path, _) in leaves {
            sources_map
                .entry(join_key(&path))
                .or_insert_with(|| DEFAULT_SOURCE.to_owned());
        }
    }
    sources_map
}

/// The layer(s) that set `key` or anything under it.
pub(crate) fn origin_of_key(sources: &BTreeMap<String, String>, key: &str) -> Option<String> {
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
