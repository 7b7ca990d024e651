//! The escalation cascade: from a subtask's recorded attempts alone, the
//! next move (attempt at tier T, accept attempt i, or hand to a human), the
//! feedback the next attempt reads, and sending an accepted file back when a
//! later check turns it down. Because the cascade state is a pure function
//! of the recorded attempts, a resumed job continues exactly where it was.

use cadre_config::Config;
use cadre_store::{AttemptRecord, SubtaskRecord, SubtaskUpdate};
use cadre_types::{AttemptOutcome, FailureKind, JobId, SubtaskStatus, WorkerChange};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::codemod::CODEMOD_TIER;
use crate::engine::Engine;
use crate::prompts::Feedback;
use crate::route::tier_index;

/// A finished attempt as the cascade sees it.
#[derive(Clone, Debug)]
pub(crate) struct AttemptSummary {
    pub tier: String,
    pub outcome: AttemptOutcome,
    pub failure: Option<FailureKind>,
    pub error: Option<String>,
    /// Result content hash (or change hash when it did not apply).
    pub fingerprint: Option<String>,
    pub change: Option<WorkerChange>,
}

/// What the stored `change` JSON of a worker attempt holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredChange {
    pub change: WorkerChange,
    pub fingerprint: String,
}

impl AttemptSummary {
    pub fn from_record(a: &AttemptRecord) -> Self {
        let stored: Option<StoredChange> = a
            .change
            .clone()
            .and_then(|v| serde_json::from_value(v).ok());
        Self {
            tier: a.tier.clone(),
            outcome: a.outcome,
            failure: a.failure,
            error: a.error.clone(),
            fingerprint: stored.as_ref().map(|s| s.fingerprint.clone()),
            change: stored.map(|s| s.change),
        }
    }
}

/// The cascade's next move for a subtask.
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    Accept(usize),
    Attempt { tier: String },
    NeedsHuman(String),
}

/// Decides the next move from the attempt history alone (docs/architecture.md section 4.7).
pub(crate) fn next_step(
    config: &Config,
    start_tier: &str,
    history: &[AttemptSummary],
) -> Result<Step> {
    let finished: Vec<(usize, &AttemptSummary)> = history
        .iter()
        .enumerate()
        .filter(|(_, a)| matches!(a.outcome, AttemptOutcome::Passed | AttemptOutcome::Failed))
        .collect();
    if let Some((i, last)) = finished.last()
        && last.outcome == AttemptOutcome::Passed
    {
        return Ok(Step::Accept(*i));
    }
    let order = &config.tiers.order;
    let mut current = tier_index(config, start_tier)?;
    // A codemod attempt runs before any model tier and holds none back.
    for (_, a) in finished.iter().filter(|(_, a)| a.tier != CODEMOD_TIER) {
        current = current.max(tier_index(config, &a.tier)?);
    }
    let at_current: Vec<&&AttemptSummary> = finished
        .iter()
        .map(|(_, a)| a)
        .filter(|a| tier_index(config, &a.tier).ok() == Some(current))
        .collect();
    let circular = at_current
        .last()
        .is_some_and(|a| a.failure == Some(FailureKind::CircularFix));
    if circular || at_current.len() as u32 >= config.attempts_for_tier(&order[current]) {
        current += 1;
    }
    match order.get(current) {
        Some(tier) => Ok(Step::Attempt { tier: tier.clone() }),
        None => {
            let last = finished
                .last()
                .map(|(_, a)| {
                    format!(
                        "{} at {}: {}",
                        a.failure.map_or("failed", |f| f.as_str()),
                        a.tier,
                        a.error.clone().unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            Ok(Step::NeedsHuman(format!("every tier failed; last: {last}")))
        }
    }
}

/// The failures of the last four attempts, for the next attempt's prompt.
pub(crate) fn feedback(history: &[AttemptSummary]) -> Vec<Feedback> {
    let all: Vec<Feedback> = history
        .iter()
        .enumerate()
        .filter(|(_, a)| a.outcome == AttemptOutcome::Failed)
        .map(|(i, a)| Feedback {
            attempt: i as u32 + 1,
            kind: a.failure.unwrap_or(FailureKind::NoUsableEdit),
            message: a.error.clone().unwrap_or_default(),
        })
        .collect();
    let keep = all.len().saturating_sub(4);
    all.into_iter().skip(keep).collect()
}

impl Engine {
    /// Rejects a subtask's accepted attempt (the integration check blamed it
    /// or the reviewer asked for a revision) and returns it to `pending`.
    pub(crate) async fn send_back(
        &self,
        job: JobId,
        sub: &SubtaskRecord,
        kind: FailureKind,
        message: &str,
    ) -> Result<()> {
        let store = self.store();
        let attempts = store.list_subtask_attempts(sub.id).await?;
        if let Some(last) = attempts
            .iter()
            .rfind(|a| a.outcome == AttemptOutcome::Passed)
        {
            store.reject_attempt(last.id, kind, message).await?;
        }
        self.set_subtask_status(
            job,
            sub,
            &[SubtaskStatus::Accepted],
            SubtaskStatus::Pending,
            SubtaskUpdate {
                reason: Some(format!("sent back: {kind}")),
                accepted_content: Some(None),
                ..SubtaskUpdate::default()
            },
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_types::{AttemptOutcome, FailureKind};

    fn summary(
        tier: &str,
        outcome: AttemptOutcome,
        failure: Option<FailureKind>,
    ) -> AttemptSummary {
        AttemptSummary {
            tier: tier.into(),
            outcome,
            failure,
            error: Some("e".into()),
            fingerprint: None,
            change: None,
        }
    }

    #[test]
    fn cascade_follows_the_default_table() {
        let c = Config::default_embedded().unwrap();
        let f = |t: &str| summary(t, AttemptOutcome::Failed, Some(FailureKind::SyntaxError));
        assert_eq!(
            next_step(&c, "haiku", &[]).unwrap(),
            Step::Attempt {
                tier: "haiku".into()
            }
        );
        assert_eq!(
            next_step(&c, "haiku", &[f("haiku")]).unwrap(),
            Step::Attempt {
                tier: "sonnet".into()
            }
        );
        assert_eq!(
            next_step(&c, "haiku", &[f("haiku"), f("sonnet")]).unwrap(),
            Step::Attempt {
                tier: "sonnet".into()
            }
        );
        assert_eq!(
            next_step(&c, "haiku", &[f("haiku"), f("sonnet"), f("sonnet")]).unwrap(),
            Step::Attempt {
                tier: "opus".into()
            }
        );
        assert!(matches!(
            next_step(
                &c,
                "haiku",
                &[f("haiku"), f("sonnet"), f("sonnet"), f("opus")]
            )
            .unwrap(),
            Step::NeedsHuman(_)
        ));
        let circular = summary(
            "sonnet",
            AttemptOutcome::Failed,
            Some(FailureKind::CircularFix),
        );
        assert_eq!(
            next_step(&c, "sonnet", &[circular]).unwrap(),
            Step::Attempt {
                tier: "opus".into()
            }
        );
        let passed = summary("sonnet", AttemptOutcome::Passed, None);
        assert_eq!(
            next_step(&c, "sonnet", &[f("sonnet"), passed]).unwrap(),
            Step::Accept(1)
        );
        let interrupted = summary("haiku", AttemptOutcome::Interrupted, None);
        assert_eq!(
            next_step(&c, "haiku", &[interrupted]).unwrap(),
            Step::Attempt {
                tier: "haiku".into()
            }
        );
        // Never de-escalate: a start above the history's tiers wins.
        assert_eq!(
            next_step(&c, "opus", &[]).unwrap(),
            Step::Attempt {
                tier: "opus".into()
            }
        );
    }
}
