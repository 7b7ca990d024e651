//! Rungs: the steps of the escalation ladder (`cascade.ladder`). A rung is
//! a tier with its knobs, named by them: `TIER[+thinking[:BUDGET]|+no-thinking][@EFFORT]`,
//! e.g. `haiku+thinking`, `sonnet`, `opus@medium`, `opus@high`. A bare tier
//! name is the tier with the role's own settings, so with `cascade.ladder`
//! empty the ladder is `tiers.order`'s model tiers and nothing changes. Prices come from
//! the tier; attempts from `cascade.attempts[rung]`, else `[tier]`, else 1.

use crate::model::Config;
use crate::validate::{EFFORT_LEVELS, MIN_THINKING_BUDGET_TOKENS};

/// Thinking as a rung sets it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RungThinking {
    /// What `roles.<role>` says.
    #[default]
    Role,
    /// On, with this budget (or the role's) where the model takes a budget.
    On {
        /// `+thinking:N`.
        budget_tokens: Option<u32>,
    },
    /// Off (`+no-thinking`).
    Off,
}

/// One rung of the ladder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rung {
    /// Its name, as written (`opus@medium`).
    pub name: String,
    /// The tier that plays it (a `[models.NAME]` key).
    pub tier: String,
    /// `output_config.effort`, when the rung sets it.
    pub effort: Option<String>,
    /// Thinking.
    pub thinking: RungThinking,
}

impl Rung {
    /// Parses a rung name (does not check the tier exists).
    pub fn parse(name: &str) -> std::result::Result<Self, String> {
        let (head, effort) = match name.rsplit_once('@') {
            Some((head, effort)) => (head, Some(effort)),
            None => (name, None),
        };
        let (tier, thinking) = match head.split_once('+') {
            Some((tier, knob)) => (tier, Some(knob)),
            None => (head, None),
        };
        if tier.is_empty() {
            return Err(format!("rung {name:?} names no tier"));
        }
        let effort = match effort {
            None => None,
            Some(e) if !e.is_empty() && EFFORT_LEVELS.contains(&e) => Some(e.to_owned()),
            Some(e) => {
                return Err(format!(
                    "rung {name:?}: effort {e:?} is not one of low, medium, high, xhigh, max"
                ));
            }
        };
        let thinking = match thinking {
            None => RungThinking::Role,
            Some("thinking") => RungThinking::On {
                budget_tokens: None,
            },
            Some("no-thinking") => RungThinking::Off,
            Some(knob) => match knob.strip_prefix("thinking:").map(str::parse::<u32>) {
                Some(Ok(n)) if n >= MIN_THINKING_BUDGET_TOKENS => RungThinking::On {
                    budget_tokens: Some(n),
                },
                _ => {
                    return Err(format!(
                        "rung {name:?}: expected +thinking, +thinking:N (N >= {MIN_THINKING_BUDGET_TOKENS}) or +no-thinking after the tier, got +{knob}"
                    ));
                }
            },
        };
        Ok(Self {
            name: name.to_owned(),
            tier: tier.to_owned(),
            effort,
            thinking,
        })
    }
}

impl Config {
    /// The ladder's rung names, cheapest first: `cascade.ladder`, or the
    /// model tiers of `tiers.order` when that is empty. The codemod tier is
    /// no rung: it comes before the ladder, for subtasks with a rule.
    pub fn ladder_names(&self) -> &[String] {
        if self.cascade.ladder.is_empty() {
            self.model_tiers()
        } else {
            &self.cascade.ladder
        }
    }

    /// The ladder's rungs (names that do not parse are left out; a
    /// validated config has none).
    pub fn ladder(&self) -> Vec<Rung> {
        self.ladder_names()
            .iter()
            .filter_map(|n| Rung::parse(n).ok())
            .collect()
    }

    /// Position of a rung in the ladder. A name that is not a rung of the
    /// ladder but plays a tier (a bare tier name, or a rung of an older
    /// ladder) maps to the first rung of that tier, so history recorded
    /// under another ladder still places.
    pub fn rung_index(&self, name: &str) -> Option<usize> {
        let names = self.ladder_names();
        if let Some(i) = names.iter().position(|n| n == name) {
            return Some(i);
        }
        let tier = Rung::parse(name).ok()?.tier;
        names
            .iter()
            .position(|n| Rung::parse(n).is_ok_and(|r| r.tier == tier))
    }

    /// The rung called `name` (any well-formed name, on the ladder or not).
    pub fn rung(&self, name: &str) -> Option<Rung> {
        Rung::parse(name).ok()
    }

    /// The tier that plays rung `name` (the name itself when it does not parse).
    pub fn tier_of_rung<'a>(&self, name: &'a str) -> &'a str {
        match name.split_once('+') {
            Some((tier, _)) => tier,
            None => name.rsplit_once('@').map_or(name, |(tier, _)| tier),
        }
    }

    /// Attempts at rung `name` before escalating: `cascade.attempts[name]`,
    /// else `cascade.attempts[its tier]`, else 1.
    pub fn attempts_for_rung(&self, name: &str) -> u32 {
        self.cascade
            .attempts
            .get(name)
            .or_else(|| self.cascade.attempts.get(self.tier_of_rung(name)))
            .copied()
            .unwrap_or(1)
    }

    /// The ladder rung with the same tier as rung `index` and this effort,
    /// if the ladder has one.
    pub fn rung_with_effort(&self, index: usize, effort: &str) -> Option<usize> {
        let ladder = self.ladder();
        let tier = &ladder.get(index)?.tier;
        ladder
            .iter()
            .position(|r| &r.tier == tier && r.effort.as_deref() == Some(effort))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rung_names_parse_into_tier_and_knobs() {
        let r = Rung::parse("opus@medium").unwrap();
        assert_eq!(
            (r.tier.as_str(), r.effort.as_deref(), r.thinking),
            ("opus", Some("medium"), RungThinking::Role)
        );
        let r = Rung::parse("haiku+thinking").unwrap();
        assert_eq!(
            r.thinking,
            RungThinking::On {
                budget_tokens: None
            }
        );
        let r = Rung::parse("sonnet+thinking:4096@low").unwrap();
        assert_eq!(
            (r.tier.as_str(), r.effort.as_deref()),
            ("sonnet", Some("low"))
        );
        assert_eq!(
            r.thinking,
            RungThinking::On {
                budget_tokens: Some(4096)
            }
        );
        assert_eq!(
            Rung::parse("opus+no-thinking").unwrap().thinking,
            RungThinking::Off
        );
        assert_eq!(Rung::parse("sonnet").unwrap().tier, "sonnet");
        for bad in [
            "opus@huge",
            "opus@",
            "haiku+think",
            "haiku+thinking:10",
            "@high",
        ] {
            assert!(Rung::parse(bad).is_err(), "{bad}");
        }
    }
}
