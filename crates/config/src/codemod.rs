//! The codemod tier: a tier of its own kind, played by ast-grep rules run
//! locally instead of a model. It is switched on by listing [`CODEMOD_TIER`]
//! first in `tiers.order` (the default does); it takes no `[models]` table
//! (no provider, model, prices or limits), no `cascade.attempts` (a rule is
//! tried once) and no `limits.per_tier_concurrency`, and it plays no role
//! and no start tier: only a subtask that has a rule starts there. Every
//! other tier keeps the rules of [`crate::Config::validate`]. A config whose
//! `tiers.order` leaves it out has no codemod tier: no rule runs, and
//! `--rule` is refused.

use crate::error::Problem;
use crate::model::Config;

/// The codemod tier's name in `tiers.order`.
pub const CODEMOD_TIER: &str = "codemod";

impl Config {
    /// True when `tiers.order` lists the codemod tier: subtasks with an
    /// ast-grep rule start there.
    pub fn has_codemod_tier(&self) -> bool {
        self.tiers.order.first().map(String::as_str) == Some(CODEMOD_TIER)
    }

    /// The tiers models play: `tiers.order` without the codemod tier,
    /// cheapest first.
    pub fn model_tiers(&self) -> &[String] {
        if self.has_codemod_tier() {
            &self.tiers.order[1..]
        } else {
            &self.tiers.order
        }
    }

    /// The codemod tier's own rules.
    pub(crate) fn check_codemod_tier(&self, out: &mut Vec<Problem>) {
        let takes_nothing = "the codemod tier runs ast-grep rules locally: it takes no provider, model, prices or limits";
        if let Some(at) = self.tiers.order.iter().position(|t| t == CODEMOD_TIER)
            && at != 0
        {
            out.push(Problem::new(
                "tiers.order",
                format!("tier {CODEMOD_TIER:?} must come first (it is listed at position {at}): rules run before any model"),
            ));
        }
        if self.has_codemod_tier() && self.model_tiers().is_empty() {
            out.push(Problem::new(
                "tiers.order",
                "must list at least one model tier after \"codemod\" (a failed rule escalates to a model)",
            ));
        }
        if self.models.contains_key(CODEMOD_TIER) {
            out.push(Problem::new(
                format!("models.{CODEMOD_TIER}"),
                takes_nothing,
            ));
        }
        for (table, has) in [
            (
                "limits.per_tier_concurrency",
                self.limits.per_tier_concurrency.contains_key(CODEMOD_TIER),
            ),
            (
                "cascade.attempts",
                self.cascade.attempts.contains_key(CODEMOD_TIER),
            ),
        ] {
            if has {
                out.push(Problem::new(
                    format!("{table}.{CODEMOD_TIER}"),
                    format!("{takes_nothing}; a rule is tried once per file"),
                ));
            }
        }
        if self.cascade.ladder.iter().any(|r| r == CODEMOD_TIER) {
            out.push(Problem::new(
                "cascade.ladder",
                "lists model rungs only: the codemod tier is switched on by listing it first in tiers.order",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(edit: impl FnOnce(&mut Config)) -> Vec<String> {
        let mut config = Config::default_embedded().unwrap();
        edit(&mut config);
        config
            .problems()
            .into_iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect()
    }

    #[test]
    fn the_default_lists_codemod_first_with_no_model() {
        let config = Config::default_embedded().unwrap();
        assert_eq!(config.tiers.order[0], CODEMOD_TIER);
        assert!(config.has_codemod_tier());
        assert_eq!(config.model_tiers(), ["haiku", "sonnet", "opus"]);
        assert_eq!(config.ladder_names(), ["haiku", "sonnet", "opus"]);
        assert!(!config.models.contains_key(CODEMOD_TIER));
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        // The model tiers keep their positions and neighbours.
        assert_eq!(config.tier_index("haiku"), Some(0));
        assert_eq!(config.tier_index(CODEMOD_TIER), None);
        assert_eq!(config.next_tier("haiku"), Some("sonnet"));
    }

    #[test]
    fn an_order_without_codemod_has_no_codemod_tier_and_stays_valid() {
        let mut config = Config::default_embedded().unwrap();
        config.tiers.order = ["haiku", "sonnet", "opus"].map(String::from).to_vec();
        assert!(!config.has_codemod_tier());
        assert_eq!(config.model_tiers(), ["haiku", "sonnet", "opus"]);
        assert!(config.problems().is_empty(), "{:?}", config.problems());
    }

    #[test]
    fn a_codemod_tier_takes_no_model_attempts_or_limits_and_comes_first() {
        let all = problems(|c| {
            c.tiers.order = ["haiku", "codemod", "sonnet"].map(String::from).to_vec();
        })
        .join("\n");
        assert!(
            all.contains(
                "tiers.order: tier \"codemod\" must come first (it is listed at position 1)"
            ),
            "{all}"
        );
        let all = problems(|c| {
            let haiku = c.models["haiku"].clone();
            c.models.insert(CODEMOD_TIER.into(), haiku);
            c.cascade.attempts.insert(CODEMOD_TIER.into(), 2);
            c.limits.per_tier_concurrency.insert(CODEMOD_TIER.into(), 4);
            c.cascade.ladder = ["codemod", "haiku", "sonnet", "opus"]
                .map(String::from)
                .to_vec();
        })
        .join("\n");
        for key in [
            "models.codemod: the codemod tier runs ast-grep rules locally: it takes no provider, model, prices or limits",
            "cascade.attempts.codemod: the codemod tier",
            "limits.per_tier_concurrency.codemod: the codemod tier",
            "cascade.ladder: lists model rungs only",
        ] {
            assert!(all.contains(key), "{key}\n{all}");
        }
        let all = problems(|c| c.tiers.order = vec![CODEMOD_TIER.into()]).join("\n");
        assert!(
            all.contains("tiers.order: must list at least one model tier after \"codemod\""),
            "{all}"
        );
        // It plays no role and no start tier.
        let all = problems(|c| {
            c.roles.planner.tier = CODEMOD_TIER.into();
            c.routing.start_tier.mechanical = CODEMOD_TIER.into();
        })
        .join("\n");
        assert!(
            all.contains("roles.planner.tier: the codemod tier plays no role"),
            "{all}"
        );
        assert!(
            all.contains("routing.start_tier.mechanical: the codemod tier is no start tier"),
            "{all}"
        );
    }
}
