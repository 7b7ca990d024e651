//! The model provider behind each tier: one client per configured provider,
//! shared by the tiers that name it. Keys come from the environment only.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cadre_config::{Config, ProviderKind, ToolChoiceMode};
use cadre_llm::{
    AnthropicClient, AnthropicSettings, ApiKey, ForcedToolMode, ModelProvider, OpenAiClient,
    OpenAiSettings, RetryPolicy, resolve_base_url,
};
use serde_json::{Map, Value};

use crate::{Error, Result};

/// The model provider for each tier.
#[derive(Clone, Debug, Default)]
pub struct Providers {
    by_tier: BTreeMap<String, Arc<dyn ModelProvider>>,
}

impl Providers {
    /// Providers keyed by tier name.
    pub fn new(by_tier: BTreeMap<String, Arc<dyn ModelProvider>>) -> Self {
        Self { by_tier }
    }

    /// Builds one client per provider from config; `env` looks up
    /// environment variables (API keys, base-URL overrides).
    /// `override_base` points every provider at one server with one key
    /// (the demo and tests use it for the simulator).
    pub fn from_config(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
        override_base: Option<(&str, &str)>,
    ) -> Result<Self> {
        let mut clients: BTreeMap<String, Arc<dyn ModelProvider>> = BTreeMap::new();
        let mut by_tier = BTreeMap::new();
        for tier in config.model_tiers() {
            let model = config
                .models
                .get(tier)
                .ok_or_else(|| Error::Config(format!("tier {tier:?} has no model")))?;
            if let Some(client) = clients.get(&model.provider) {
                by_tier.insert(tier.clone(), client.clone());
                continue;
            }
            let client: Arc<dyn ModelProvider> =
                match ProviderClient::build(config, &model.provider, env, override_base)? {
                    ProviderClient::Anthropic(c) => Arc::new(c),
                    ProviderClient::Openai(c) => Arc::new(c),
                };
            clients.insert(model.provider.clone(), client.clone());
            by_tier.insert(tier.clone(), client);
        }
        Ok(Self { by_tier })
    }

    pub(crate) fn for_tier(&self, tier: &str) -> Result<Arc<dyn ModelProvider>> {
        self.by_tier
            .get(tier)
            .cloned()
            .ok_or_else(|| Error::Config(format!("no provider for tier {tier:?}")))
    }
}

/// One provider's client, by wire protocol.
#[derive(Debug)]
pub enum ProviderClient {
    /// The Messages API.
    Anthropic(AnthropicClient),
    /// Chat Completions (llama.cpp, vLLM, Ollama, ...).
    Openai(OpenAiClient),
}

impl ProviderClient {
    /// Builds the client of provider `name` from config; `env` looks up the
    /// key and base-URL override; `override_base` as in
    /// [`Providers::from_config`].
    pub fn build(
        config: &Config,
        name: &str,
        env: &dyn Fn(&str) -> Option<String>,
        override_base: Option<(&str, &str)>,
    ) -> Result<Self> {
        let provider = config
            .providers
            .get(name)
            .ok_or_else(|| Error::Config(format!("unknown provider {name:?}")))?;
        let retry = RetryPolicy {
            retry_timeouts: provider
                .retry_timeouts
                .unwrap_or(provider.kind == ProviderKind::Anthropic),
            ..RetryPolicy::new(
                provider.max_retries,
                provider.overload_max_retries,
                Duration::from_secs_f64(provider.overload_max_backoff_secs.max(0.0)),
            )
        };
        let (base_url, key) = match override_base {
            Some((url, key)) => (url.to_owned(), Some(ApiKey::new(key))),
            None => (
                resolve_base_url(&provider.base_url, env(&provider.base_url_env)),
                env(&provider.api_key_env)
                    .filter(|k| !k.is_empty())
                    .map(ApiKey::new),
            ),
        };
        Ok(match provider.kind {
            ProviderKind::Anthropic => {
                let key = key.ok_or_else(|| {
                    Error::Config(format!(
                        "provider {name:?} needs an API key in ${}",
                        provider.api_key_env
                    ))
                })?;
                let mut settings = AnthropicSettings::new(base_url, key);
                settings.timeout = Duration::from_secs(provider.timeout_secs);
                settings.connect_timeout = Duration::from_secs(provider.connect_timeout_secs);
                settings.retry = retry;
                ProviderClient::Anthropic(AnthropicClient::new(settings)?)
            }
            ProviderKind::Openai => {
                let mut settings = OpenAiSettings::new(base_url, key);
                settings.timeout = Duration::from_secs(provider.timeout_secs);
                settings.connect_timeout = Duration::from_secs(provider.connect_timeout_secs);
                settings.retry = retry;
                settings.forced_tool = match provider.tool_choice {
                    ToolChoiceMode::Required => ForcedToolMode::Required,
                    ToolChoiceMode::Named => ForcedToolMode::Named,
                    ToolChoiceMode::Auto => ForcedToolMode::Auto,
                };
                settings.stream = provider.stream;
                settings.idle_timeout = Duration::from_secs(provider.idle_timeout_secs);
                settings.extra_body = json_fields(&provider.extra_body);
                settings.sampling = provider
                    .sampling
                    .iter()
                    .map(|(role, fields)| (role.clone(), json_fields(fields)))
                    .collect();
                ProviderClient::Openai(OpenAiClient::new(settings)?)
            }
        })
    }
}

/// Config body fields (TOML values) as JSON; a value JSON cannot hold (a
/// TOML date) is sent as its text.
fn json_fields<V: serde::Serialize + std::fmt::Display>(
    fields: &BTreeMap<String, V>,
) -> Map<String, Value> {
    fields
        .iter()
        .map(|(k, v)| {
            let json = serde_json::to_value(v).unwrap_or_else(|_| Value::from(v.to_string()));
            (k.clone(), json)
        })
        .collect()
}
