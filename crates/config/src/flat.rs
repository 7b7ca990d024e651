//! From the merged tree to [`Config`]: the tree is rendered as a flat TOML
//! document (one dotted key per leaf) and deserialized; serde's error span is
//! mapped back to the leaf, so range errors, bad enum variants and
//! incomplete new `[models.x]` tables also name their key and the layer that
//! set it.

use std::fmt::Write as _;
use std::ops::Range;

use toml::Table;

use crate::error::{Error, Result};
use crate::keys::{collect_leaves, join_key, quote_segment};
use crate::layers::Provenance;
use crate::model::Config;

/// One rendered `key = value` entry of the flat document.
struct Entry {
    path: Vec<String>,
    /// Byte range of each key segment.
    segments: Vec<Range<usize>>,
    value_start: usize,
    end: usize,
}

/// Deserializes the merged tree; maps serde's error span back to a key.
pub(crate) fn deserialize_merged(merged: &Table, provenance: &Provenance) -> Result<Config> {
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
