//! cadre-config: typed, layered configuration.
//!
//! Owns the configuration model ([`Config`]) and how it is resolved. Layers,
//! lowest precedence first:
//!
//! 1. the embedded `config/default.toml` ([`DEFAULT_TOML`]);
//! 2. an optional user TOML file (`--config` or `CADRE_CONFIG`);
//! 3. `CADRE_<SECTION>__<KEY>[__<SUBKEY>]=value` environment variables
//!    (`__` separates path segments, segments are lowercased, e.g.
//!    `CADRE_LIMITS__MAX_CONCURRENCY=4`, `CADRE_MODELS__HAIKU__MODEL=x`);
//!    [`RESERVED_ENV_VARS`] (`CADRE_CONFIG`, `CADRE_TOKEN`, `CADRE_SERVER`,
//!    `CADRE_LOG`, `CADRE_DB`) are not config keys and are ignored;
//! 4. `-c key.path=value` overrides.
//!
//! Env and `-c` values are TOML values when they parse as one (`4`, `true`,
//! `["a","b"]`, `{ mechanical = "sonnet" }`), else plain strings; a string
//! field always takes the raw text.
//!
//! Key design decision: the loader takes all its inputs explicitly
//! ([`ConfigSources`]; only [`ConfigSources::from_process_env`] reads the
//! environment), and it is strict: an unknown key or a badly typed value is an
//! error that names the full dotted key and the layer it came from, and every
//! resolved value keeps its provenance ([`LoadedConfig::sources`],
//! `cadre config show` via [`LoadedConfig::render_show`]). The schema is
//! derived from the defaults, so it cannot drift from the structs. Tables with
//! free keys ([`FREE_KEY_MAPS`]: `models`, `providers`, `cascade.attempts`,
//! `limits.per_tier_concurrency`) accept new entries; a new `[models.x]` must
//! be complete. After merging, [`Config::validate`] checks cross-references
//! (every tier has a model, every model a provider, ...).
//!
//! No secret lives in configuration: providers name the environment variable
//! holding their API key (`api_key_env`).
#![warn(missing_docs)]

mod codemod;
mod error;
mod flat;
mod keys;
mod layers;
mod load;
mod model;
mod paths;
mod provenance;
mod rungs;
mod schema;
mod show;
mod sources;
mod validate;

pub use codemod::CODEMOD_TIER;
pub use error::{Error, Problem, Result};
pub use layers::{DEFAULT_SOURCE, OVERRIDE_SOURCE};
pub use load::{DEFAULT_TOML, load};
pub use model::*;
pub use paths::default_store_path;
pub use provenance::LoadedConfig;
pub use rungs::{Rung, RungThinking};
pub use schema::FREE_KEY_MAPS;
pub use sources::{CONFIG_PATH_ENV, ConfigSources, ENV_PREFIX, RESERVED_ENV_VARS};
pub use validate::{EFFORT_LEVELS, MIN_THINKING_BUDGET_TOKENS};
