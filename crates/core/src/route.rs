//! The route, over the ladder's rungs (`cascade.ladder`, else `tiers.order`):
//! complexity picks the start rung, a high error cost raises it, path
//! patterns force a high error cost, a prompt too large for a rung's model
//! skips it, `routing.start_effort` may pick the start rung's effort, and
//! with `routing.adaptive` the store's history chooses the class's path of
//! rungs (or, while the top rung lacks history, its start rung), never below
//! what the prompt size needs. Every decision carries its reason.

use cadre_config::Config;
use cadre_types::{Complexity, ErrorCost, Role, SubtaskId};
use globset::{Glob, GlobSet, GlobSetBuilder};

use cadre_config::{RungThinking, ThinkingMode};
use cadre_llm::types::{OutputConfig, ThinkingConfig, ToolChoice};

use cadre_store::RungStatRow;

use crate::learn::routed::attempt_rows;
use crate::learn::{RoutedPath, learned_path, learned_start};
use crate::syntax::language_name;
use crate::{Error, Result};

/// Where a subtask starts, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteDecision {
    /// The start rung (a tier name with the default ladder).
    pub start_tier: String,
    /// The learned path, when adaptive routing chose one (the cascade climbs
    /// only these rungs); `None`: every rung from the start up.
    pub path: Option<RoutedPath>,
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

    /// Routes one subtask, then lets `history` (the store's rung
    /// statistics, when routing is adaptive) choose its path: the learned
    /// path for its class when the top rung has enough history (see
    /// [`crate::learn::routed`]; `seed` decides whether it explores), else
    /// the start rung the start-tier learner picks, climbing every rung
    /// above it. Never below the rung the prompt's size needs.
    #[allow(clippy::too_many_arguments, reason = "one subtask's routing inputs")]
    pub fn route_learned(
        &self,
        config: &Config,
        history: Option<&[RungStatRow]>,
        path: &str,
        complexity: Complexity,
        planned_cost: ErrorCost,
        prompt_tokens: u64,
        seed: u64,
    ) -> Result<RouteDecision> {
        let mut decision = self.route(config, path, complexity, planned_cost, prompt_tokens)?;
        let Some(stats) = history else {
            return Ok(decision);
        };
        let floor = context_floor(config, prompt_tokens);
        let language = language_name(path);
        let no_path = match learned_path(
            config,
            stats,
            complexity,
            decision.error_cost,
            language,
            floor,
            Some(seed),
        ) {
            Ok(routed) => {
                if let Some(first) = routed.path.first() {
                    decision.start_tier = first.clone();
                }
                decision.reason = format!("{}; learned path: {}", decision.reason, routed.reason);
                decision.path = Some(routed);
                return Ok(decision);
            }
            Err(why) => why,
        };
        let rows = attempt_rows(stats);
        if let Some(learned) =
            learned_start(config, &rows, complexity, decision.error_cost, language)
        {
            let index = rung_index(config, &learned.tier)?.max(floor);
            if let Some(rung) = config.ladder_names().get(index) {
                decision.start_tier = rung.clone();
                decision.reason = format!(
                    "{}; learned: {}; {no_path}",
                    decision.reason, learned.reason
                );
            }
        }
        Ok(decision)
    }

    /// Routes one subtask whose worker prompt is about `prompt_tokens` long.
    /// Works on the ladder's rungs (`cascade.ladder`, else `tiers.order`).
    pub fn route(
        &self,
        config: &Config,
        path: &str,
        complexity: Complexity,
        planned_cost: ErrorCost,
        prompt_tokens: u64,
    ) -> Result<RouteDecision> {
        let ladder = config.ladder_names();
        let top = ladder.len().saturating_sub(1);
        let base = match complexity {
            Complexity::Mechanical => &config.routing.start_tier.mechanical,
            Complexity::Generative => &config.routing.start_tier.generative,
            Complexity::Reasoning => &config.routing.start_tier.reasoning,
        };
        let mut index = rung_index(config, base)?;
        let mut why = vec![format!("{complexity} starts at {}", ladder[index])];
        let mut error_cost = planned_cost;
        if error_cost == ErrorCost::Low && self.high_cost_paths.is_match(path) {
            error_cost = ErrorCost::High;
            why.push("path matches a high-error-cost pattern".to_owned());
        }
        if error_cost == ErrorCost::High && config.routing.high_error_cost_raise > 0 {
            let raised = (index + config.routing.high_error_cost_raise as usize).min(top);
            if raised != index {
                why.push(format!(
                    "high error cost raises {} -> {}",
                    ladder[index], ladder[raised]
                ));
                index = raised;
            }
        }
        if prompt_tokens > config.routing.usable_context_tokens && index < top {
            why.push(format!(
                "{prompt_tokens} prompt tokens > usable context {}: top rung",
                config.routing.usable_context_tokens
            ));
            index = top;
        }
        while index < ladder.len() {
            let window = rung_context_window(config, &ladder[index]);
            if prompt_tokens + worker_output_reserve(config) <= window {
                break;
            }
            why.push(format!(
                "{prompt_tokens} tokens > {} context ({window})",
                ladder[index]
            ));
            index += 1;
        }
        if index < ladder.len()
            && let Some((class, effort)) = start_effort(config, complexity, error_cost)
            && let Some(with_effort) = config.rung_with_effort(index, effort)
            && with_effort != index
        {
            why.push(format!(
                "start_effort.{class} = {effort}: {} -> {}",
                ladder[index], ladder[with_effort]
            ));
            index = with_effort;
        }
        let Some(start_tier) = ladder.get(index).cloned() else {
            let window = ladder
                .iter()
                .map(|r| rung_context_window(config, r))
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
            path: None,
            error_cost,
            reason,
        })
    }
}

/// A per-subtask seed for adaptive routing's exploration draw (FNV-1a of
/// its id).
pub fn route_seed(id: SubtaskId) -> u64 {
    id.to_string().bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The `routing.start_effort` entry for a class: `complexity/error_cost`
/// first, then `complexity`.
fn start_effort(
    config: &Config,
    complexity: Complexity,
    error_cost: ErrorCost,
) -> Option<(String, &str)> {
    let efforts = &config.routing.start_effort;
    [format!("{complexity}/{error_cost}"), complexity.to_string()]
        .into_iter()
        .find_map(|key| efforts.get(&key).map(|e| (key.clone(), e.as_str())))
}

/// The output a worker call must have room for: its `max_tokens`, at most
/// 1,024 (each call lowers `max_tokens` to what its rung's window leaves).
pub fn worker_output_reserve(config: &Config) -> u64 {
    u64::from(config.roles.worker.max_tokens).min(1024)
}

/// The context window of the model playing a rung (0 when unknown).
fn rung_context_window(config: &Config, rung: &str) -> u64 {
    config
        .models
        .get(config.tier_of_rung(rung))
        .map_or(0, |m| m.context_window)
}

/// The lowest rung a prompt of this size may start at: the first whose
/// context window holds it, or the top rung above the usable context.
pub fn context_floor(config: &Config, prompt_tokens: u64) -> usize {
    let ladder = config.ladder_names();
    if prompt_tokens > config.routing.usable_context_tokens {
        return ladder.len().saturating_sub(1);
    }
    ladder
        .iter()
        .position(|r| {
            prompt_tokens + worker_output_reserve(config) <= rung_context_window(config, r)
        })
        .unwrap_or(ladder.len().saturating_sub(1))
}

/// Position of a rung (or of a tier's first rung) in the ladder.
pub fn rung_index(config: &Config, rung: &str) -> Result<usize> {
    config.rung_index(rung).ok_or_else(|| {
        Error::Config(format!(
            "{rung:?} is not a rung of the ladder ({})",
            config.ladder_names().join(", ")
        ))
    })
}

/// The per-call knobs for a role at a rung (a bare tier name is a rung with
/// the role's settings): thinking, effort, max_tokens and tool choice. A
/// rung's `@effort` and `+thinking` / `+no-thinking` override the role's.
/// Thinking and effort are sent only where the model supports them; forced
/// tool choice is used only without thinking (the API rejects the
/// combination).
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
    let rung = config
        .rung(tier)
        .ok_or_else(|| Error::Config(format!("{tier:?} is not a well-formed rung")))?;
    let model = config
        .models
        .get(&rung.tier)
        .ok_or_else(|| Error::Config(format!("tier {:?} has no model", rung.tier)))?;
    let mut max_tokens = role_config
        .max_tokens
        .min(u32::try_from(model.max_output_tokens).unwrap_or(u32::MAX));
    let (wants_thinking, rung_budget) = match rung.thinking {
        RungThinking::Role => (
            role_config.thinking
                && (role != Role::Worker
                    || complexity != Some(Complexity::Mechanical)
                    || role_config.thinking_for_mechanical),
            None,
        ),
        RungThinking::On { budget_tokens } => (true, budget_tokens),
        RungThinking::Off => (false, None),
    };
    let thinking = match (wants_thinking, model.thinking) {
        (false, _) | (true, ThinkingMode::None) => None,
        (true, ThinkingMode::Adaptive) => Some(ThinkingConfig::Adaptive),
        (true, ThinkingMode::Budget) => {
            let budget = rung_budget
                .unwrap_or(role_config.thinking_budget_tokens)
                .max(1024);
            if max_tokens <= budget {
                max_tokens = budget + role_config.max_tokens.max(1024);
            }
            Some(ThinkingConfig::Enabled {
                budget_tokens: budget,
            })
        }
    };
    let effort = rung
        .effort
        .or_else(|| (!role_config.effort.is_empty()).then(|| role_config.effort.clone()))
        .filter(|_| model.supports_effort);
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

    fn rung_config() -> Config {
        let mut c = config();
        c.cascade.ladder = ["haiku+thinking", "sonnet", "opus@medium", "opus@high"]
            .map(String::from)
            .to_vec();
        c.routing.start_effort = [("reasoning/high", "high"), ("generative", "medium")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into_iter()
            .collect();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        c
    }

    #[test]
    fn routes_climb_rungs_and_start_effort_picks_the_start_rung() {
        let c = rung_config();
        let r = Router::new(&c).unwrap();
        let start = |path: &str, complexity, cost, tokens| {
            r.route(&c, path, complexity, cost, tokens).unwrap()
        };
        // `haiku` in start_tier names the tier: its first rung.
        let d = start("a.py", Complexity::Mechanical, ErrorCost::Low, 1000);
        assert_eq!(d.start_tier, "haiku+thinking");
        // Reasoning starts at opus (its first rung, medium); a high error
        // cost raises it one rung, to opus@high.
        let d = start("a.py", Complexity::Reasoning, ErrorCost::Low, 1000);
        assert_eq!(d.start_tier, "opus@medium");
        let d = start("a.py", Complexity::Reasoning, ErrorCost::High, 1000);
        assert_eq!(d.start_tier, "opus@high", "{}", d.reason);
        // Generative work at the top (too long for the usable context) is
        // moved to opus@medium by start_effort.
        let d = start("a.py", Complexity::Generative, ErrorCost::Low, 210_000);
        assert_eq!(d.start_tier, "opus@medium", "{}", d.reason);
        assert!(
            d.reason
                .contains("start_effort.generative = medium: opus@high -> opus@medium"),
            "{}",
            d.reason
        );
        // A ladder without effort rungs ignores start_effort.
        let mut plain = c.clone();
        plain.cascade.ladder.clear();
        let d = r
            .route(&plain, "a.py", Complexity::Reasoning, ErrorCost::High, 1000)
            .unwrap();
        assert_eq!(d.start_tier, "opus");
    }

    #[test]
    fn a_rung_sets_the_calls_effort_and_thinking() {
        let c = rung_config();
        let s = call_settings(
            &c,
            Role::Worker,
            "opus@high",
            Some(Complexity::Generative),
            None,
        )
        .unwrap();
        assert_eq!(s.effort.as_deref(), Some("high"));
        assert_eq!(
            s.output_config,
            Some(OutputConfig {
                effort: Some("high".into())
            })
        );
        // +thinking turns thinking on even for mechanical work.
        let s = call_settings(
            &c,
            Role::Worker,
            "haiku+thinking",
            Some(Complexity::Mechanical),
            None,
        )
        .unwrap();
        assert!(s.thinking.is_some());
        assert_eq!(s.effort, None, "haiku takes no effort");
        let s = call_settings(
            &c,
            Role::Worker,
            "sonnet+no-thinking@low",
            Some(Complexity::Generative),
            None,
        )
        .unwrap();
        assert_eq!((s.thinking, s.effort.as_deref()), (None, Some("low")));
    }

    #[test]
    fn bad_ladders_are_refused_with_the_key() {
        let mut c = config();
        c.cascade.ladder = ["haiku@high", "sonnet", "opus@huge", "gpt", "sonnet"]
            .map(String::from)
            .to_vec();
        c.routing
            .start_effort
            .insert("creative".into(), "high".into());
        c.routing.explore_share = 1.5;
        let problems: Vec<String> = c
            .problems()
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect();
        let all = problems.join("\n");
        assert!(
            all.contains(
                "cascade.ladder: rung \"haiku@high\": models.haiku.supports_effort is false"
            ),
            "{all}"
        );
        assert!(all.contains("effort \"huge\""), "{all}");
        assert!(all.contains("rung \"gpt\""), "{all}");
        assert!(all.contains("rung \"sonnet\" is listed twice"), "{all}");
        assert!(all.contains("routing.start_effort.creative"), "{all}");
        assert!(all.contains("routing.explore_share"), "{all}");
        // start_tier must name a rung of the ladder or a tier of one.
        assert!(all.contains("routing.start_tier.reasoning"), "{all}");
    }
}
