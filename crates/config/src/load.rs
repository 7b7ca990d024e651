//! Layered loading: embedded defaults, user file, `CADRE_*` environment
//! variables, `-c key=value` overrides; with provenance for every leaf.
//!
//! How [`load`] works, and where each step lives:
//!
//! 1. The schema (which keys exist, and the TOML kind of each leaf) is
//!    derived from the embedded defaults ([`crate::schema`]).
//! 2. The layers are read ([`crate::sources`] gathers the inputs,
//!    [`crate::layers`] turns each into a table) and each is checked against
//!    the schema *before* it is merged, so an unknown key or a wrong kind is
//!    reported with the layer that set it.
//! 3. Layers are deep-merged (tables merge, everything else replaces); every
//!    leaf remembers the layer that last set it ([`crate::layers`]).
//! 4. The merged tree is rendered as a flat TOML document and deserialized
//!    into [`Config`]; serde's errors are mapped back to a key and a layer
//!    ([`crate::flat`]).
//! 5. [`Config::validate`] checks cross-references; its problems are
//!    annotated with the layer that set the offending key
//!    ([`crate::provenance`]).

use crate::error::{Error, Result};
use crate::flat::deserialize_merged;
use crate::layers::{
    DEFAULT_SOURCE, Layer, Provenance, env_layer, merge, override_layer, parse_document,
};
use crate::model::Config;
use crate::provenance::{LoadedConfig, origin_of_key, sources_by_key};
use crate::schema::Schema;
use crate::sources::{ConfigSources, ENV_PREFIX, RESERVED_ENV_VARS};

/// The built-in defaults, embedded in the binary (the base layer).
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

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

    let mut merged = toml::Table::new();
    let mut provenance = Provenance::new();
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
    let sources_map = sources_by_key(&provenance, &config);

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

#[cfg(test)]
mod tests {
    use super::*;

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
