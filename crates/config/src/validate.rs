//! Cross-field validation and tier helpers on [`Config`].
//!
//! Tier vocabulary: `tiers.order` lists the *active* tiers, cheapest first:
//! the codemod tier when it is switched on ([`crate::CODEMOD_TIER`], first,
//! checked in `codemod.rs`), then the model tiers.
//! A *known* tier is any key of `models` (the defaults' `haiku`/`sonnet`/`opus`
//! stay known even when a user file drops them from `tiers.order`, because
//! layers can add keys but not remove them). Things that pick a tier to run
//! (start tiers, role tiers) must name an active tier; per-tier tables
//! (`cascade.attempts`, `limits.per_tier_concurrency`) must name known tiers.

use std::net::SocketAddr;
use std::path::Path;

use crate::error::{Error, Problem, Result};
use crate::keys::{is_env_var_name, join_key};
use crate::model::{Config, ModelConfig, ProviderConfig, RoleConfig, ThinkingMode};

/// Values accepted by `roles.*.effort` (empty = do not send).
pub const EFFORT_LEVELS: &[&str] = &["", "low", "medium", "high", "xhigh", "max"];

/// Smallest `budget_tokens` the Anthropic API accepts.
pub const MIN_THINKING_BUDGET_TOKENS: u32 = 1024;

impl Config {
    /// Position of model tier `name` in [`Config::model_tiers`] (0 =
    /// cheapest); `None` for the codemod tier and unknown tiers.
    pub fn tier_index(&self, name: &str) -> Option<usize> {
        self.model_tiers().iter().position(|tier| tier == name)
    }

    /// The most capable tier (last of `tiers.order`); `""` only for an
    /// unvalidated config with an empty order.
    pub fn top_tier(&self) -> &str {
        self.model_tiers().last().map_or("", String::as_str)
    }

    /// The model tier after `name`; `None` at the top or for an unknown tier.
    pub fn next_tier(&self, name: &str) -> Option<&str> {
        let index = self.tier_index(name)?;
        self.model_tiers().get(index + 1).map(String::as_str)
    }

    /// The model that plays tier `name`.
    pub fn model_for_tier(&self, name: &str) -> Option<&ModelConfig> {
        self.models.get(name)
    }

    /// The provider of tier `name`'s model.
    pub fn provider_for_tier(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.get(&self.model_for_tier(name)?.provider)
    }

    /// Attempts at tier `name` before escalating (`cascade.attempts`, default 1).
    pub fn attempts_for_tier(&self, name: &str) -> u32 {
        self.cascade.attempts.get(name).copied().unwrap_or(1)
    }

    /// Model calls in flight allowed for tier `name`:
    /// `limits.per_tier_concurrency[name]`, capped by (and defaulting to)
    /// `limits.max_concurrency`.
    pub fn concurrency_for_tier(&self, name: &str) -> u32 {
        let max = self.limits.max_concurrency;
        self.limits
            .per_tier_concurrency
            .get(name)
            .map_or(max, |&n| n.min(max))
    }

    /// Checks cross-references and ranges. Returns [`Error::Invalid`] listing
    /// every problem found.
    pub fn validate(&self) -> Result<()> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Invalid { problems })
        }
    }

    /// Every validation problem, in a stable order (empty = valid).
    pub fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        self.check_tiers(&mut out);
        self.check_codemod_tier(&mut out);
        self.check_models(&mut out);
        self.check_providers(&mut out);
        self.check_roles(&mut out);
        self.check_routing(&mut out);
        self.check_cascade_and_limits(&mut out);
        self.check_budget_store_daemon(&mut out);
        out
    }

    fn check_tiers(&self, out: &mut Vec<Problem>) {
        let order = &self.tiers.order;
        if order.is_empty() {
            out.push(Problem::new("tiers.order", "must list at least one tier"));
        }
        for (i, tier) in order.iter().enumerate() {
            if tier.is_empty() {
                out.push(Problem::new(
                    "tiers.order",
                    format!("entry {i} is an empty tier name"),
                ));
            } else if order[..i].contains(tier) {
                out.push(Problem::new(
                    "tiers.order",
                    format!("tier {tier:?} is listed twice"),
                ));
            } else if tier != crate::CODEMOD_TIER && !self.models.contains_key(tier) {
                out.push(Problem::new(
                    "tiers.order",
                    format!("tier {tier:?} has no [models.{}] entry", join_key(&[tier])),
                ));
            }
        }
    }

    fn check_models(&self, out: &mut Vec<Problem>) {
        for (tier, model) in &self.models {
            let key = |field: &str| join_key(&["models", tier, field]);
            if !self.providers.contains_key(&model.provider) {
                let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                out.push(Problem::new(
                    key("provider"),
                    format!(
                        "provider {:?} does not exist (known: {})",
                        model.provider,
                        known.join(", ")
                    ),
                ));
            }
            if model.model.trim().is_empty() {
                out.push(Problem::new(key("model"), "must not be empty"));
            }
            for (field, price) in [
                ("input_usd_per_mtok", model.input_usd_per_mtok),
                ("output_usd_per_mtok", model.output_usd_per_mtok),
                (
                    "cache_write_5m_usd_per_mtok",
                    model.cache_write_5m_usd_per_mtok,
                ),
                (
                    "cache_write_1h_usd_per_mtok",
                    model.cache_write_1h_usd_per_mtok,
                ),
                ("cache_read_usd_per_mtok", model.cache_read_usd_per_mtok),
            ] {
                if !(price.is_finite() && price >= 0.0) {
                    out.push(Problem::new(
                        key(field),
                        format!("price must be a finite number >= 0, got {price}"),
                    ));
                }
            }
            let discount = model.batch_discount;
            if !(discount.is_finite() && discount > 0.0 && discount <= 1.0) {
                out.push(Problem::new(
                    key("batch_discount"),
                    format!("must be in (0, 1], got {discount}"),
                ));
            }
            for (field, multiplier) in [
                (
                    "long_context_input_multiplier",
                    model.long_context_input_multiplier,
                ),
                (
                    "long_context_output_multiplier",
                    model.long_context_output_multiplier,
                ),
            ] {
                if !(multiplier.is_finite() && multiplier > 0.0) {
                    out.push(Problem::new(
                        key(field),
                        format!("must be a finite number > 0, got {multiplier}"),
                    ));
                }
            }
            if model.context_window == 0 {
                out.push(Problem::new(key("context_window"), "must be > 0"));
            }
            if model.max_output_tokens == 0 {
                out.push(Problem::new(key("max_output_tokens"), "must be > 0"));
            } else if model.max_output_tokens > model.context_window {
                out.push(Problem::new(
                    key("max_output_tokens"),
                    format!(
                        "{} exceeds context_window {}",
                        model.max_output_tokens, model.context_window
                    ),
                ));
            }
            if model.long_context_threshold_tokens > model.context_window {
                out.push(Problem::new(
                    key("long_context_threshold_tokens"),
                    format!(
                        "{} exceeds context_window {} (use 0 for no long-context premium)",
                        model.long_context_threshold_tokens, model.context_window
                    ),
                ));
            }
        }
    }

    fn check_providers(&self, out: &mut Vec<Problem>) {
        for (name, provider) in &self.providers {
            let key = |field: &str| join_key(&["providers", name, field]);
            let url = provider.base_url.trim();
            if !(url.starts_with("http://") || url.starts_with("https://"))
                || url.len() <= "https://".len()
            {
                out.push(Problem::new(
                    key("base_url"),
                    format!(
                        "must be an http:// or https:// URL, got {:?}",
                        provider.base_url
                    ),
                ));
            }
            for (field, var) in [
                ("api_key_env", &provider.api_key_env),
                ("base_url_env", &provider.base_url_env),
            ] {
                if !var.is_empty() && !is_env_var_name(var) {
                    out.push(Problem::new(
                        key(field),
                        format!("must be an environment variable NAME like ANTHROPIC_API_KEY (or empty), got {var:?}"),
                    ));
                }
            }
            if provider.timeout_secs == 0 {
                out.push(Problem::new(key("timeout_secs"), "must be > 0"));
            }
            if provider.connect_timeout_secs == 0 {
                out.push(Problem::new(key("connect_timeout_secs"), "must be > 0"));
            }
            for role in provider.sampling.keys() {
                if !matches!(role.as_str(), "planner" | "worker" | "reviewer") {
                    out.push(Problem::new(
                        key("sampling"),
                        format!("role {role:?} is not one of planner, worker, reviewer"),
                    ));
                }
            }
            let backoff = provider.overload_max_backoff_secs;
            if !(backoff.is_finite() && backoff >= 0.0) {
                out.push(Problem::new(
                    key("overload_max_backoff_secs"),
                    format!("must be a finite number >= 0, got {backoff}"),
                ));
            }
        }
    }

    fn check_roles(&self, out: &mut Vec<Problem>) {
        for (role, config) in [
            ("planner", &self.roles.planner),
            ("reviewer", &self.roles.reviewer),
        ] {
            let key = |field: &str| format!("roles.{role}.{field}");
            if config.tier.is_empty() {
                out.push(Problem::new(
                    key("tier"),
                    "must name a tier from tiers.order",
                ));
            } else if self.tier_index(&config.tier).is_none() {
                out.push(Problem::new(
                    key("tier"),
                    self.not_a_model_tier(&config.tier, "plays no role"),
                ));
            }
            if config.thinking_for_mechanical {
                out.push(Problem::new(
                    key("thinking_for_mechanical"),
                    "only applies to roles.worker",
                ));
            }
            self.check_role_calls(role, config, std::slice::from_ref(&config.tier), out);
        }
        let worker = &self.roles.worker;
        if !worker.tier.is_empty() && self.tier_index(&worker.tier).is_none() {
            out.push(Problem::new(
                "roles.worker.tier",
                format!(
                    "{} (the worker's tier comes from routing; leave it empty)",
                    self.not_active(&worker.tier)
                ),
            ));
        }
        self.check_role_calls("worker", worker, self.model_tiers(), out);
    }

    /// Rules that depend on the models a role may call.
    fn check_role_calls(
        &self,
        role: &str,
        config: &RoleConfig,
        tiers: &[String],
        out: &mut Vec<Problem>,
    ) {
        let key = |field: &str| format!("roles.{role}.{field}");
        if config.max_tokens == 0 {
            out.push(Problem::new(key("max_tokens"), "must be > 0"));
        }
        if !EFFORT_LEVELS.contains(&config.effort.as_str()) {
            out.push(Problem::new(
                key("effort"),
                format!(
                    "{:?} is not one of low, medium, high, xhigh, max (or empty to omit)",
                    config.effort
                ),
            ));
        }
        if !(config.thinking || config.thinking_for_mechanical) {
            return;
        }
        let budget_tiers: Vec<(&String, &ModelConfig)> = tiers
            .iter()
            .filter_map(|tier| Some((tier, self.models.get(tier)?)))
            .filter(|(_, model)| model.thinking == ThinkingMode::Budget)
            .collect();
        for (tier, model) in budget_tiers {
            let budget = config.thinking_budget_tokens;
            if budget < MIN_THINKING_BUDGET_TOKENS {
                out.push(Problem::new(
                    key("thinking_budget_tokens"),
                    format!(
                        "thinking is on and tier {tier:?} uses a thinking budget, so it must be >= {MIN_THINKING_BUDGET_TOKENS}, got {budget}"
                    ),
                ));
            } else if u64::from(budget) >= model.max_output_tokens {
                out.push(Problem::new(
                    key("thinking_budget_tokens"),
                    format!(
                        "{budget} leaves no room for output on tier {tier:?} (max_output_tokens {})",
                        model.max_output_tokens
                    ),
                ));
            }
        }
    }

    fn check_routing(&self, out: &mut Vec<Problem>) {
        let start = &self.routing.start_tier;
        for (class, tier) in [
            ("mechanical", &start.mechanical),
            ("generative", &start.generative),
            ("reasoning", &start.reasoning),
        ] {
            if self.rung_index(tier).is_none() {
                let message = if self.cascade.ladder.is_empty() {
                    self.not_a_model_tier(tier, "is no start tier")
                } else {
                    format!(
                        "{tier:?} is not a rung of cascade.ladder ({}) nor a tier of one",
                        self.cascade.ladder.join(", ")
                    )
                };
                out.push(Problem::new(format!("routing.start_tier.{class}"), message));
            }
        }
        for (class, effort) in &self.routing.start_effort {
            let key = join_key(&["routing", "start_effort", class]);
            let mut parts = class.split('/');
            let complexity_ok = parts
                .next()
                .is_some_and(|c| ["mechanical", "generative", "reasoning"].contains(&c));
            let cost_ok = parts.next().is_none_or(|c| ["low", "high"].contains(&c));
            if !complexity_ok || !cost_ok || parts.next().is_some() {
                out.push(Problem::new(
                    key,
                    "keys are COMPLEXITY or COMPLEXITY/ERROR_COST (mechanical|generative|reasoning, low|high)",
                ));
            } else if effort.is_empty() || !EFFORT_LEVELS.contains(&effort.as_str()) {
                out.push(Problem::new(
                    key,
                    format!("effort {effort:?} is not one of low, medium, high, xhigh, max"),
                ));
            }
        }
        let explore = self.routing.explore_share;
        if !(explore.is_finite() && (0.0..=1.0).contains(&explore)) {
            out.push(Problem::new(
                "routing.explore_share",
                format!("must be a share in [0, 1], got {explore}"),
            ));
        }
        for (i, pattern) in self.routing.high_error_cost_paths.iter().enumerate() {
            if let Err(e) = globset::Glob::new(pattern) {
                out.push(Problem::new(
                    "routing.high_error_cost_paths",
                    format!("entry {i} {pattern:?} is not a valid glob: {e}"),
                ));
            }
        }
        for (i, pattern) in self.limits.protected_paths.iter().enumerate() {
            if let Err(e) = globset::Glob::new(pattern) {
                out.push(Problem::new(
                    "limits.protected_paths",
                    format!("entry {i} {pattern:?} is not a valid glob: {e}"),
                ));
            }
        }
        if self.routing.usable_context_tokens == 0 {
            out.push(Problem::new("routing.usable_context_tokens", "must be > 0"));
        }
        if self.routing.adaptive_min_samples == 0 {
            out.push(Problem::new("routing.adaptive_min_samples", "must be >= 1"));
        }
        let mean = self.routing.adaptive_prior_success;
        if !(mean.is_finite() && (0.0..=1.0).contains(&mean)) {
            out.push(Problem::new(
                "routing.adaptive_prior_success",
                format!("must be a probability in [0, 1], got {mean}"),
            ));
        }
        let text = self.routing.min_solved_share.trim();
        let share = match text.strip_suffix('%') {
            Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
            None => text.parse::<f64>(),
        };
        if text != "top" && !share.is_ok_and(|v| v.is_finite() && (0.0..=1.0).contains(&v)) {
            out.push(Problem::new(
                "routing.min_solved_share",
                format!("must be \"top\", a share in [0, 1] or a percentage, got {text:?}"),
            ));
        }
        let strength = self.routing.adaptive_prior_strength;
        if !(strength.is_finite() && strength >= 0.0) {
            out.push(Problem::new(
                "routing.adaptive_prior_strength",
                format!("must be a finite number >= 0 (pseudo-attempts), got {strength}"),
            ));
        }
    }

    fn check_cascade_and_limits(&self, out: &mut Vec<Problem>) {
        self.check_ladder(out);
        for (tier, &attempts) in &self.cascade.attempts {
            let key = join_key(&["cascade", "attempts", tier]);
            if !self.models.contains_key(tier) && !self.cascade.ladder.contains(tier) {
                out.push(Problem::new(key, self.not_known(tier)));
            } else if attempts == 0 {
                out.push(Problem::new(key, "must be >= 1"));
            }
        }
        let limits = &self.limits;
        if limits.max_concurrency == 0 {
            out.push(Problem::new("limits.max_concurrency", "must be >= 1"));
        }
        for (tier, &n) in &limits.per_tier_concurrency {
            let key = join_key(&["limits", "per_tier_concurrency", tier]);
            if !self.models.contains_key(tier) {
                out.push(Problem::new(key, self.not_known(tier)));
            } else if n == 0 {
                out.push(Problem::new(key, "must be >= 1"));
            }
        }
        if limits.planner_pages == 0 {
            out.push(Problem::new("limits.planner_pages", "must be >= 1"));
        }
        if limits.max_file_bytes == 0 {
            out.push(Problem::new("limits.max_file_bytes", "must be > 0"));
        }
        if limits.check_timeout_secs == 0 {
            out.push(Problem::new("limits.check_timeout_secs", "must be > 0"));
        }
    }

    fn check_budget_store_daemon(&self, out: &mut Vec<Problem>) {
        let usd = self.budget.default_usd;
        if !(usd.is_finite() && usd >= 0.0) {
            out.push(Problem::new(
                "budget.default_usd",
                format!("must be a finite number >= 0 (0 = no cap), got {usd}"),
            ));
        }
        let daemon = &self.daemon;
        if let Err(e) = daemon.listen.parse::<SocketAddr>() {
            out.push(Problem::new(
                "daemon.listen",
                format!("{:?} is not an IP:port socket address ({e})", daemon.listen),
            ));
        }
        for (i, root) in daemon.allowed_roots.iter().enumerate() {
            if !Path::new(root).is_absolute() {
                out.push(Problem::new(
                    "daemon.allowed_roots",
                    format!("entry {i} {root:?} must be an absolute path"),
                ));
            }
        }
        for (field, value) in [
            ("max_jobs", u64::from(daemon.max_jobs)),
            ("lease_secs", daemon.lease_secs),
            ("max_body_bytes", daemon.max_body_bytes),
        ] {
            if value == 0 {
                out.push(Problem::new(format!("daemon.{field}"), "must be > 0"));
            }
        }
    }

    fn check_ladder(&self, out: &mut Vec<Problem>) {
        let ladder = &self.cascade.ladder;
        for (i, name) in ladder.iter().enumerate() {
            let problem = match crate::Rung::parse(name) {
                Err(why) => Some(why),
                Ok(_) if ladder[..i].contains(name) => {
                    Some(format!("rung {name:?} is listed twice"))
                }
                Ok(rung) => match self.models.get(&rung.tier) {
                    None => Some(format!("rung {name:?}: {}", self.not_known(&rung.tier))),
                    Some(_) if self.tier_index(&rung.tier).is_none() => {
                        Some(format!("rung {name:?}: {}", self.not_active(&rung.tier)))
                    }
                    Some(model) if rung.effort.is_some() && !model.supports_effort => {
                        Some(format!(
                            "rung {name:?}: models.{}.supports_effort is false",
                            rung.tier
                        ))
                    }
                    Some(model)
                        if matches!(rung.thinking, crate::RungThinking::On { .. })
                            && model.thinking == ThinkingMode::None =>
                    {
                        Some(format!(
                            "rung {name:?}: models.{}.thinking is \"none\"",
                            rung.tier
                        ))
                    }
                    Some(_) => None,
                },
            };
            if let Some(message) = problem {
                out.push(Problem::new("cascade.ladder", message));
            }
        }
    }

    fn not_active(&self, tier: &str) -> String {
        format!(
            "tier {tier:?} is not in tiers.order ({})",
            self.tiers.order.join(", ")
        )
    }

    /// Why a role or a start tier cannot be `tier`.
    fn not_a_model_tier(&self, tier: &str, what: &str) -> String {
        if tier == crate::CODEMOD_TIER {
            format!(
                "the codemod tier {what}: it runs ast-grep rules, and only subtasks with a rule start there; name a model tier ({})",
                self.model_tiers().join(", ")
            )
        } else {
            self.not_active(tier)
        }
    }

    fn not_known(&self, tier: &str) -> String {
        let known: Vec<&str> = self.models.keys().map(String::as_str).collect();
        format!(
            "tier {tier:?} has no [models.{}] entry (known tiers: {})",
            join_key(&[tier]),
            known.join(", ")
        )
    }
}
