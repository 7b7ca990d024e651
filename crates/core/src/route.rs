//! The route: complexity picks the start tier, a high error cost raises it,
//! path patterns force a high error cost, a prompt too large for a tier skips
//! it, and with `routing.adaptive` the store's history may start a class
//! higher or lower (never below what the prompt size needs). Every decision
//! carries its reason.

use cadre_config::Config;
use cadre_types::{Complexity, ErrorCost, Role};
use globset::{Glob, GlobSet, GlobSetBuilder};

use cadre_config::ThinkingMode;
use cadre_llm::types::{OutputConfig, ThinkingConfig, ToolChoice};

use cadre_store::AttemptStatRow;

use crate::learn::learned_start;
use crate::syntax::language_name;
use crate::{Error, Result};

/// Where a subtask starts, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteDecision {
    /// The start tier.
    pub start_tier: String,
    /// The error cost after path rules.
    pub error_cost: ErrorCost,
    /// "src/db.rs: reasoning/high -> opus (high error cost raises sonnet by 1)".
    pub reason: String,
}

/// The static router, compiled from config once per job.
#[derive(Debug)]
pub struct Router {
    high_cost_paths: GlobSet,
}

impl Router {
    /// Compiles the path rules.
    pub fn new(config: &Config) -> Result<Self> {
        let mut builder = GlobSetBuilder::new();
        for pattern in &config.routing.high_error_cost_paths {
            let glob = Glob::new(pattern).map_err(|e| {
                Error::Config(format!(
                    "routing.high_error_cost_paths: bad glob {pattern:?}: {e}"
                ))
            })?;
            builder.add(glob);
        }
        let high_cost_paths = builder
            .build()
            .map_err(|e| Error::Config(format!("routing.high_error_cost_paths: {e}")))?;
        Ok(Self { high_cost_paths })
    }

    /// Routes one subtask, then lets `history` (the store's attempt
    /// statistics, when routing is adaptive) move its start tier.
    pub fn route_learned(
        &self,
        config: &Config,
        history: Option<&[AttemptStatRow]>,
        path: &str,
        complexity: Complexity,
        planned_cost: ErrorCost,
        prompt_tokens: u64,
    ) -> Result<RouteDecision> {
        let mut decision = self.route(config, path, complexity, planned_cost, prompt_tokens)?;
        if let Some(stats) = history
            && let Some(learned) = learned_start(
                config,
                stats,
                complexity,
                decision.error_cost,
                language_name(path),
            )
        {
            let floor = context_floor(config, prompt_tokens);
            let index = tier_index(config, &learned.tier)?.max(floor);
            if let Some(tier) = config.tiers.order.get(index) {
                decision.start_tier = tier.clone();
                decision.reason = format!("{}; learned: {}", decision.reason, learned.reason);
            }
        }
        Ok(decision)
    }

    /// Routes one subtask whose worker prompt is about `prompt_tokens` long.
    pub fn route(
        &self,
        config: &Config,
        path: &str,
        complexity: Complexity,
        planned_cost: ErrorCost,
        prompt_tokens: u64,
    ) -> Result<RouteDecision> {
        let order = &config.tiers.order;
        let base = match complexity {
            Complexity::Mechanical => &config.routing.start_tier.mechanical,
            Complexity::Generative => &config.routing.start_tier.generative,
            Complexity::Reasoning => &config.routing.start_tier.reasoning,
        };
        let mut index = tier_index(config, base)?;
        let mut why = vec![format!("{complexity} starts at {base}")];
        let mut error_cost = planned_cost;
        if error_cost == ErrorCost::Low && self.high_cost_paths.is_match(path) {
            error_cost = ErrorCost::High;
            why.push("path matches a high-error-cost pattern".to_owned());
        }
        if error_cost == ErrorCost::High && config.routing.high_error_cost_raise > 0 {
            let raised =
                (index + config.routing.high_error_cost_raise as usize).min(order.len() - 1);
            if raised != index {
                why.push(format!(
                    "high error cost raises {} -> {}",
                    order[index], order[raised]
                ));
                index = raised;
            }
        }
        if prompt_tokens > config.routing.usable_context_tokens && index < order.len() - 1 {
            why.push(format!(
                "{prompt_tokens} prompt tokens > usable context {}: top tier",
                config.routing.usable_context_tokens
            ));
            index = order.len() - 1;
        }
        while index < order.len() {
            let window = config
                .models
                .get(&order[index])
                .map_or(0, |m| m.context_window);
            if prompt_tokens + worker_output_reserve(config) <= window {
                break;
            }
            why.push(format!(
                "{prompt_tokens} tokens > {} context ({window})",
                order[index]
            ));
            index += 1;
        }
        let Some(start_tier) = order.get(index).cloned() else {
            let window = order
                .iter()
                .filter_map(|t| config.models.get(t).map(|m| m.context_window))
                .max()
                .unwrap_or(0);
            return Err(Error::InvalidInput(format!(
                "{path}: fits no tier: prompt {prompt_tokens} + output {} > window {window} (tokens)",
                worker_output_reserve(config)
            )));
        };
        let reason = format!(
            "{path}: {complexity}/{error_cost} -> {start_tier} ({})",
            why.join("; ")
        );
        Ok(RouteDecision {
            start_tier,
            error_cost,
            reason,
        })
    }
}

/// The lowest tier a prompt of this size may start at: the first whose
/// context window holds it, or the top tier above the usable context.
pub fn context_floor(config: &Config, prompt_tokens: u64) -> usize {
    let order = &config.tiers.order;
    if prompt_tokens > config.routing.usable_context_tokens {
        return order.len().saturating_sub(1);
    }
    order
        .iter()
        .position(|t| {
            config
                .models
                .get(t)
                .is_some_and(|m| prompt_tokens + worker_output_reserve(config) <= m.context_window)
        })
        .unwrap_or(order.len().saturating_sub(1))
}

/// The output a worker call must have room for: its `max_tokens`, at most
/// 1,024 (each call lowers `max_tokens` to what its tier's window leaves).
pub fn worker_output_reserve(config: &Config) -> u64 {
    u64::from(config.roles.worker.max_tokens).min(1024)
}

/// Position of a tier in `tiers.order`.
pub fn tier_index(config: &Config, tier: &str) -> Result<usize> {
    config
        .tiers
        .order
        .iter()
        .position(|t| t == tier)
        .ok_or_else(|| Error::Config(format!("unknown tier {tier:?}")))
}

/// The per-call knobs for a role at a tier: thinking, effort, max_tokens and
/// tool choice. Thinking and effort are sent only where the model supports
/// them; forced tool choice is used only without thinking (the API rejects
/// the combination).
#[derive(Clone, Debug, PartialEq)]
pub struct CallSettings {
    /// `max_tokens`.
    pub max_tokens: u32,
    /// `thinking`, if any.
    pub thinking: Option<ThinkingConfig>,
    /// `output_config`, if any.
    pub output_config: Option<OutputConfig>,
    /// `tool_choice`.
    pub tool_choice: ToolChoice,
    /// The effort sent, for the attempt record.
    pub effort: Option<String>,
}

/// Computes [`CallSettings`]; `forced_tool` is the tool the role must call.
pub fn call_settings(
    config: &Config,
    role: Role,
    tier: &str,
    complexity: Option<Complexity>,
    forced_tool: Option<&str>,
) -> Result<CallSettings> {
    let role_config = match role {
        Role::Planner => &config.roles.planner,
        Role::Worker => &config.roles.worker,
        Role::Reviewer => &config.roles.reviewer,
    };
    let model = config
        .models
        .get(tier)
        .ok_or_else(|| Error::Config(format!("tier {tier:?} has no model")))?;
    let mut max_tokens = role_config
        .max_tokens
        .min(u32::try_from(model.max_output_tokens).unwrap_or(u32::MAX));
    let wants_thinking = role_config.thinking
        && (role != Role::Worker
            || complexity != Some(Complexity::Mechanical)
            || role_config.thinking_for_mechanical);
    let thinking = match (wants_thinking, model.thinking) {
        (false, _) | (true, ThinkingMode::None) => None,
        (true, ThinkingMode::Adaptive) => Some(ThinkingConfig::Adaptive),
        (true, ThinkingMode::Budget) => {
            let budget = role_config.thinking_budget_tokens.max(1024);
            if max_tokens <= budget {
                max_tokens = budget + role_config.max_tokens.max(1024);
            }
            Some(ThinkingConfig::Enabled {
                budget_tokens: budget,
            })
        }
    };
    let effort = (model.supports_effort && !role_config.effort.is_empty())
        .then(|| role_config.effort.clone());
    let output_config = effort.clone().map(|e| OutputConfig { effort: Some(e) });
    let tool_choice = match (&thinking, forced_tool) {
        (Some(_), _) => ToolChoice::Auto,
        (None, Some(name)) => ToolChoice::Tool {
            name: name.to_owned(),
        },
        (None, None) => ToolChoice::Any,
    };
    Ok(CallSettings {
        max_tokens,
        thinking,
        output_config,
        tool_choice,
        effort,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        Config::default_embedded().unwrap()
    }

    #[test]
    fn complexity_and_error_cost_pick_the_start() {
        let c = config();
        let r = Router::new(&c).unwrap();
        let d = r
            .route(&c, "src/a.py", Complexity::Mechanical, ErrorCost::Low, 1000)
            .unwrap();
        assert_eq!(d.start_tier, "haiku");
        let d = r
            .route(
                &c,
                "src/a.py",
                Complexity::Mechanical,
                ErrorCost::High,
                1000,
            )
            .unwrap();
        assert_eq!(d.start_tier, "sonnet");
        assert!(
            d.reason.contains("high error cost raises haiku -> sonnet"),
            "{}",
            d.reason
        );
        let d = r
            .route(
                &c,
                "src/auth/tokens.py",
                Complexity::Generative,
                ErrorCost::Low,
                1000,
            )
            .unwrap();
        assert_eq!(
            (d.start_tier.as_str(), d.error_cost),
            ("opus", ErrorCost::High)
        );
        let d = r
            .route(
                &c,
                "src/big.py",
                Complexity::Mechanical,
                ErrorCost::Low,
                212_000,
            )
            .unwrap();
        assert_eq!(d.start_tier, "opus");
        assert!(
            r.route(
                &c,
                "x.py",
                Complexity::Mechanical,
                ErrorCost::Low,
                5_000_000
            )
            .is_err()
        );
    }

    #[test]
    fn thinking_and_effort_only_where_supported() {
        let c = config();
        let s = call_settings(
            &c,
            Role::Worker,
            "haiku",
            Some(Complexity::Generative),
            None,
        )
        .unwrap();
        assert_eq!(
            s.thinking,
            Some(ThinkingConfig::Enabled {
                budget_tokens: 2048
            })
        );
        assert_eq!(s.output_config, None, "haiku does not take effort");
        assert_eq!(s.tool_choice, ToolChoice::Auto);
        let s = call_settings(
            &c,
            Role::Worker,
            "haiku",
            Some(Complexity::Mechanical),
            None,
        )
        .unwrap();
        assert_eq!((s.thinking, s.tool_choice), (None, ToolChoice::Any));
        let s = call_settings(&c, Role::Planner, "opus", None, Some("submit_plan")).unwrap();
        assert_eq!(s.effort.as_deref(), Some("medium"));
        assert_eq!(
            s.tool_choice,
            ToolChoice::Tool {
                name: "submit_plan".into()
            }
        );
    }
}
