//! cadre-llm (being written): provider trait, Anthropic and OpenAI-compatible clients.
#![warn(missing_docs)]
pub mod types;
