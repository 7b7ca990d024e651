//! cadre-config: typed, layered configuration.
//!
//! Owns the configuration model ([`Config`]) and how it is resolved: the
//! embedded `config/default.toml`, then a user file, then `CADRE_*` environment
//! variables, then `-c key=value` overrides. (Loader: to be written.)
#![warn(missing_docs)]

mod model;

pub use model::*;
