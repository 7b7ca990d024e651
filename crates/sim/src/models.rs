//! The simulated models: built-in defaults plus scenario overrides.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::ModelOverride;

/// How a model thinks, which decides which `thinking` configs it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThinkingMode {
    /// No thinking: `enabled` and `adaptive` are rejected.
    None,
    /// Extended thinking with `budget_tokens` only (Haiku 4.5, Sonnet 4.5, Opus 4.5).
    Budget,
    /// Adaptive only: `budget_tokens` is rejected (Opus 4.7).
    Adaptive,
    /// Adaptive, with the deprecated `budget_tokens` still accepted (Opus 4.6, Sonnet 4.6).
    AdaptiveOrBudget,
}

impl ThinkingMode {
    pub(crate) fn accepts_budget(self) -> bool {
        matches!(self, ThinkingMode::Budget | ThinkingMode::AdaptiveOrBudget)
    }

    pub(crate) fn accepts_adaptive(self) -> bool {
        matches!(
            self,
            ThinkingMode::Adaptive | ThinkingMode::AdaptiveOrBudget
        )
    }
}

/// Every effort level the API knows.
pub(crate) const ALL_EFFORTS: [&str; 5] = ["low", "medium", "high", "xhigh", "max"];

/// One fully resolved simulated model.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ModelSpec {
    pub(crate) id: String,
    pub(crate) aliases: Vec<String>,
    pub(crate) display_name: String,
    pub(crate) created_at: String,
    /// P(correct) for mechanical, generative, reasoning.
    pub(crate) skill: [f64; 3],
    pub(crate) latency_base_ms: u64,
    pub(crate) latency_jitter_ms: u64,
    pub(crate) output_tokens_per_char: f64,
    pub(crate) min_cacheable_tokens: u64,
    pub(crate) thinking: ThinkingMode,
    /// Accepted `output_config.effort` values; empty = effort unsupported.
    pub(crate) effort_levels: Vec<String>,
    pub(crate) context_window: u64,
    pub(crate) max_output_tokens: u64,
    /// Whether `temperature` / `top_p` / `top_k` are accepted.
    pub(crate) sampling_params: bool,
    /// Per effort level: skill per class (where set) and the output-token
    /// scale.
    pub(crate) effort_profiles: BTreeMap<String, ([Option<f64>; 3], f64)>,
}

impl ModelSpec {
    pub(crate) fn supports_effort(&self) -> bool {
        !self.effort_levels.is_empty()
    }

    /// Adaptive-only models default to `display: omitted`.
    pub(crate) fn default_display_omitted(&self) -> bool {
        self.thinking == ThinkingMode::Adaptive
    }

    /// The model as it behaves at `effort` (itself without one, or at a
    /// level with no profile).
    pub(crate) fn at_effort(&self, effort: Option<&str>) -> Cow<'_, ModelSpec> {
        let Some((skill, scale)) = effort.and_then(|e| self.effort_profiles.get(e)) else {
            return Cow::Borrowed(self);
        };
        let mut spec = self.clone();
        for (mine, theirs) in spec.skill.iter_mut().zip(skill) {
            if let Some(v) = theirs {
                *mine = *v;
            }
        }
        spec.output_tokens_per_char *= scale;
        Cow::Owned(spec)
    }

    pub(crate) fn skill_for(&self, complexity: &str) -> f64 {
        match complexity {
            "generative" => self.skill[1],
            "reasoning" => self.skill[2],
            _ => self.skill[0],
        }
    }

    fn generic(id: &str) -> Self {
        ModelSpec {
            id: id.to_string(),
            aliases: Vec::new(),
            display_name: id.to_string(),
            created_at: "2026-01-01T00:00:00Z".into(),
            skill: [0.9, 0.7, 0.4],
            latency_base_ms: 50,
            latency_jitter_ms: 25,
            output_tokens_per_char: 0.25,
            min_cacheable_tokens: 1024,
            thinking: ThinkingMode::None,
            effort_levels: Vec::new(),
            context_window: 200_000,
            max_output_tokens: 64_000,
            sampling_params: true,
            effort_profiles: BTreeMap::new(),
        }
    }

    fn apply(&mut self, o: &ModelOverride) {
        if let Some(skill) = &o.skill {
            if let Some(v) = skill.mechanical {
                self.skill[0] = v;
            }
            if let Some(v) = skill.generative {
                self.skill[1] = v;
            }
            if let Some(v) = skill.reasoning {
                self.skill[2] = v;
            }
        }
        if let Some(l) = &o.latency_ms {
            self.latency_base_ms = l.base;
            self.latency_jitter_ms = l.jitter;
        }
        if let Some(v) = o.output_tokens_per_char {
            self.output_tokens_per_char = v;
        }
        if let Some(v) = o.min_cacheable_tokens {
            self.min_cacheable_tokens = v;
        }
        if let Some(v) = o.thinking {
            self.thinking = v;
        }
        match o.supports_effort {
            Some(false) => self.effort_levels.clear(),
            Some(true) if self.effort_levels.is_empty() => {
                self.effort_levels = ALL_EFFORTS.iter().map(|s| (*s).to_string()).collect();
            }
            _ => {}
        }
        if let Some(levels) = &o.effort_levels {
            self.effort_levels.clone_from(levels);
        }
        for (level, spec) in &o.effort {
            let profile = self
                .effort_profiles
                .entry(level.clone())
                .or_insert(([None; 3], 1.0));
            if let Some(skill) = &spec.skill {
                for (slot, v) in
                    profile
                        .0
                        .iter_mut()
                        .zip([skill.mechanical, skill.generative, skill.reasoning])
                {
                    if v.is_some() {
                        *slot = v;
                    }
                }
            }
            if let Some(scale) = spec.output_tokens_scale {
                profile.1 = scale;
            }
        }
        if let Some(v) = o.context_window {
            self.context_window = v;
        }
        if let Some(v) = o.max_output_tokens {
            self.max_output_tokens = v;
        }
        if let Some(v) = o.sampling_params {
            self.sampling_params = v;
        }
        if let Some(v) = &o.display_name {
            self.display_name.clone_from(v);
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "a flat table of constructor facts reads best as one call"
)]
fn builtin(
    id: &str,
    alias: Option<&str>,
    display_name: &str,
    created_at: &str,
    skill: [f64; 3],
    latency: (u64, u64),
    min_cacheable_tokens: u64,
    thinking: ThinkingMode,
    efforts: &[&str],
    context_window: u64,
    max_output_tokens: u64,
    sampling_params: bool,
) -> ModelSpec {
    ModelSpec {
        id: id.into(),
        aliases: alias.map(|a| vec![a.to_string()]).unwrap_or_default(),
        display_name: display_name.into(),
        created_at: created_at.into(),
        skill,
        latency_base_ms: latency.0,
        latency_jitter_ms: latency.1,
        output_tokens_per_char: 0.25,
        min_cacheable_tokens,
        thinking,
        effort_levels: efforts.iter().map(|s| (*s).to_string()).collect(),
        context_window,
        max_output_tokens,
        sampling_params,
        effort_profiles: BTreeMap::new(),
    }
}

/// The built-in model table (capabilities and cache minimums from the wire reference).
pub(crate) fn builtins() -> Vec<ModelSpec> {
    use ThinkingMode::{Adaptive, AdaptiveOrBudget, Budget};
    vec![
        builtin(
            "claude-opus-4-7",
            None,
            "Claude Opus 4.7",
            "2026-04-16T00:00:00Z",
            [0.998, 0.98, 0.93],
            (120, 60),
            4096,
            Adaptive,
            &ALL_EFFORTS,
            1_000_000,
            128_000,
            false,
        ),
        builtin(
            "claude-sonnet-4-6",
            None,
            "Claude Sonnet 4.6",
            "2026-02-17T00:00:00Z",
            [0.99, 0.9, 0.6],
            (60, 40),
            2048,
            AdaptiveOrBudget,
            &["low", "medium", "high", "max"],
            1_000_000,
            64_000,
            true,
        ),
        builtin(
            "claude-opus-4-6",
            None,
            "Claude Opus 4.6",
            "2026-02-05T00:00:00Z",
            [0.995, 0.97, 0.9],
            (100, 50),
            4096,
            AdaptiveOrBudget,
            &["low", "medium", "high", "max"],
            1_000_000,
            128_000,
            true,
        ),
        builtin(
            "claude-opus-4-5",
            Some("claude-opus-4-5-20251101"),
            "Claude Opus 4.5",
            "2025-11-24T00:00:00Z",
            [0.995, 0.95, 0.85],
            (100, 50),
            4096,
            Budget,
            &["low", "medium", "high"],
            200_000,
            64_000,
            true,
        ),
        builtin(
            "claude-haiku-4-5",
            Some("claude-haiku-4-5-20251001"),
            "Claude Haiku 4.5",
            "2025-10-15T00:00:00Z",
            [0.95, 0.6, 0.2],
            (30, 20),
            4096,
            Budget,
            &[],
            200_000,
            64_000,
            true,
        ),
        builtin(
            "claude-sonnet-4-5",
            Some("claude-sonnet-4-5-20250929"),
            "Claude Sonnet 4.5",
            "2025-09-29T00:00:00Z",
            [0.98, 0.8, 0.45],
            (60, 40),
            1024,
            Budget,
            &[],
            200_000,
            64_000,
            true,
        ),
    ]
}

/// Built-ins with the scenario's `[models."id"]` overrides applied, plus any
/// scenario-only models. Ordered newest first (as `GET /v1/models` lists them).
#[derive(Clone, Debug)]
pub(crate) struct ModelTable {
    models: Vec<ModelSpec>,
}

impl ModelTable {
    pub(crate) fn new(overrides: &BTreeMap<String, ModelOverride>) -> Self {
        let mut models = builtins();
        for (id, o) in overrides {
            if let Some(existing) = models
                .iter_mut()
                .find(|m| &m.id == id || m.aliases.iter().any(|a| a == id))
            {
                existing.apply(o);
            } else {
                let mut spec = ModelSpec::generic(id);
                spec.apply(o);
                models.push(spec);
            }
        }
        models.sort_by(|a, b| {
            b.created_at
                .cmp(&a.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        Self { models }
    }

    pub(crate) fn get(&self, id: &str) -> Option<&ModelSpec> {
        self.models
            .iter()
            .find(|m| m.id == id || m.aliases.iter().any(|a| a == id))
    }

    pub(crate) fn all(&self) -> &[ModelSpec] {
        &self.models
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{LatencySpec, SkillSpec};

    #[test]
    fn overrides_apply_and_new_models_appear() {
        let mut overrides = BTreeMap::new();
        overrides.insert(
            "claude-haiku-4-5".to_string(),
            ModelOverride {
                skill: Some(SkillSpec {
                    mechanical: Some(0.5),
                    ..SkillSpec::default()
                }),
                latency_ms: Some(LatencySpec { base: 0, jitter: 0 }),
                supports_effort: Some(true),
                ..ModelOverride::default()
            },
        );
        overrides.insert("local-model".to_string(), ModelOverride::default());
        let table = ModelTable::new(&overrides);
        let haiku = table.get("claude-haiku-4-5-20251001").unwrap();
        assert_eq!(haiku.skill, [0.5, 0.6, 0.2]);
        assert_eq!(haiku.latency_base_ms, 0);
        assert!(haiku.supports_effort());
        assert!(table.get("local-model").is_some());
        assert!(table.get("claude-nope").is_none());
        assert!(!table.get("claude-opus-4-7").unwrap().sampling_params);
    }
}
