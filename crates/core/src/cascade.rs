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
use crate::route::rung_index;

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

/// The rungs a subtask climbs (ladder indices, increasing): from `start`
/// up, or the stored path when routing chose one.
pub(crate) fn subtask_path(
    config: &Config,
    start: &str,
    stored: Option<&[String]>,
) -> Result<Vec<usize>> {
    if let Some(names) = stored
        && !names.is_empty()
    {
        let mut path = Vec::with_capacity(names.len());
        for name in names {
            let index = rung_index(config, name)?;
            if path.last().is_none_or(|&last| index > last) {
                path.push(index);
            }
        }
        return Ok(path);
    }
    let first = rung_index(config, start)?;
    Ok((first..config.ladder_names().len()).collect())
}

/// Decides the next move from the attempt history alone
/// (docs/architecture.md section 4.7): with `codemod` (the subtask has a
/// rule and the config a codemod tier) one attempt at the codemod tier
/// first, then climb `path` (ladder indices, see [`subtask_path`]),
/// `cascade.attempts` attempts per rung; after the path's last rung the
/// subtask needs a human.
pub(crate) fn next_step(
    config: &Config,
    codemod: bool,
    path: &[usize],
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
    if codemod && !finished.iter().any(|(_, a)| a.tier == CODEMOD_TIER) {
        return Ok(Step::Attempt {
            tier: CODEMOD_TIER.to_owned(),
        });
    }
    if let Some(message) = same_provider_error(config, &finished) {
        return Ok(Step::NeedsHuman(message));
    }
    let ladder = config.ladder_names();
    let Some(&first) = path.first() else {
        return Ok(Step::NeedsHuman("the subtask's path has no rungs".into()));
    };
    // Never de-escalate: the highest rung reached so far.
    let mut reached = first;
    // The codemod attempt comes before the ladder and holds no rung back.
    for (_, a) in finished.iter().filter(|(_, a)| a.tier != CODEMOD_TIER) {
        reached = reached.max(rung_index(config, &a.tier)?);
    }
    let mut position = path
        .iter()
        .position(|&r| r >= reached)
        .unwrap_or(path.len());
    if let Some(&current) = path.get(position) {
        let at_current: Vec<&&AttemptSummary> = finished
            .iter()
            .map(|(_, a)| a)
            .filter(|a| config.rung_index(&a.tier) == Some(current))
            .collect();
        let circular = at_current
            .last()
            .is_some_and(|a| a.failure == Some(FailureKind::CircularFix));
        if circular || at_current.len() as u32 >= config.attempts_for_rung(&ladder[current]) {
            position += 1;
        }
    }
    if let Some(&next) = path.get(position) {
        return Ok(Step::Attempt {
            tier: ladder[next].clone(),
        });
    }
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
    let end = path.last().copied().unwrap_or(first);
    let top = ladder.len().saturating_sub(1);
    if end < top {
        let names: Vec<&str> = path.iter().map(|&r| ladder[r].as_str()).collect();
        return Ok(Step::NeedsHuman(format!(
            "the routed path {} stops at {} below the top rung {} (history says {} rarely pays off here); last: {last}",
            names.join(" -> "),
            ladder[end],
            ladder[top],
            ladder[top]
        )));
    }
    Ok(Step::NeedsHuman(format!("every rung failed; last: {last}")))
}

/// The cascade stops when the last two attempts, on two tiers of one
/// provider, failed with the same provider error and every tier above is on
/// that provider too: the server refuses what cadre sends (a configuration
/// or provider problem), and escalating would only repeat it.
fn same_provider_error(config: &Config, finished: &[(usize, &AttemptSummary)]) -> Option<String> {
    let [.., (_, a), (_, b)] = finished else {
        return None;
    };
    let provider = |rung: &str| {
        config
            .models
            .get(config.tier_of_rung(rung))
            .map(|m| m.provider.as_str())
    };
    let both_provider_errors = [a, b]
        .iter()
        .all(|x| x.failure == Some(FailureKind::ProviderError));
    let (ea, eb) = (a.error.as_deref()?, b.error.as_deref()?);
    if !both_provider_errors
        || a.tier == b.tier
        || provider(&a.tier) != provider(&b.tier)
        || without_request_ids(ea) != without_request_ids(eb)
    {
        return None;
    }
    let name = provider(&b.tier)?;
    let above = rung_index(config, &b.tier).ok()? + 1;
    if config.ladder_names()[above..]
        .iter()
        .any(|t| provider(t) != Some(name))
    {
        return None;
    }
    let field = cadre_llm::offending_field(eb)
        .map(|f| format!(" (field `{f}`)"))
        .unwrap_or_default();
    Some(format!(
        "configuration/provider error: rungs {} and {} of provider {name:?} refused the request alike{field}, so the rungs above (same provider) were not tried: {}",
        a.tier,
        b.tier,
        without_request_ids(eb)
    ))
}

/// An error message without its ` (request-id ...)` parts.
fn without_request_ids(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(" (request-id ") {
        out.push_str(&rest[..at]);
        rest = rest[at..].find(')').map_or("", |end| &rest[at + end + 1..]);
    }
    out.push_str(rest);
    out
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
    fn the_same_provider_error_on_two_tiers_of_one_provider_stops_the_cascade() {
        let c = Config::default_embedded().unwrap();
        let refused = |tier: &str, id: &str| AttemptSummary {
            error: Some(format!(
                "gave up after 1 attempts: HTTP 500 api_error: [{{'loc': ('body', 'messages', 2, 'content')}}] (request-id {id})"
            )),
            ..summary(
                tier,
                AttemptOutcome::Failed,
                Some(FailureKind::ProviderError),
            )
        };
        let step = next_step(
            &c,
            false,
            &[0, 1, 2],
            &[refused("haiku", "a"), refused("sonnet", "b")],
        )
        .unwrap();
        let Step::NeedsHuman(message) = step else {
            panic!("{step:?}")
        };
        assert!(
            message.starts_with("configuration/provider error: rungs haiku and sonnet")
                && message.contains("(field `messages[2].content`)")
                && !message.contains("request-id"),
            "{message}"
        );
        // Different errors, or one tier alone, keep escalating.
        let other = AttemptSummary {
            error: Some("connection error: reset".into()),
            ..refused("sonnet", "c")
        };
        assert_eq!(
            next_step(&c, false, &[0, 1, 2], &[refused("haiku", "a"), other]).unwrap(),
            Step::Attempt {
                tier: "sonnet".into()
            }
        );
        assert_eq!(
            next_step(&c, false, &[0, 1, 2], &[refused("haiku", "a")]).unwrap(),
            Step::Attempt {
                tier: "sonnet".into()
            }
        );
    }

    #[test]
    fn cascade_follows_the_default_table() {
        let c = Config::default_embedded().unwrap();
        let f = |t: &str| summary(t, AttemptOutcome::Failed, Some(FailureKind::SyntaxError));
        let from = |start: &str| subtask_path(&c, start, None).unwrap();
        assert_eq!(
            next_step(&c, false, &from("haiku"), &[]).unwrap(),
            Step::Attempt {
                tier: "haiku".into()
            }
        );
        assert_eq!(
            next_step(&c, false, &from("haiku"), &[f("haiku")]).unwrap(),
            Step::Attempt {
                tier: "sonnet".into()
            }
        );
        assert_eq!(
            next_step(&c, false, &from("haiku"), &[f("haiku"), f("sonnet")]).unwrap(),
            Step::Attempt {
                tier: "sonnet".into()
            }
        );
        assert_eq!(
            next_step(
                &c,
                false,
                &from("haiku"),
                &[f("haiku"), f("sonnet"), f("sonnet")]
            )
            .unwrap(),
            Step::Attempt {
                tier: "opus".into()
            }
        );
        assert!(matches!(
            next_step(
                &c,
                false,
                &from("haiku"),
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
            next_step(&c, false, &from("sonnet"), &[circular]).unwrap(),
            Step::Attempt {
                tier: "opus".into()
            }
        );
        let passed = summary("sonnet", AttemptOutcome::Passed, None);
        assert_eq!(
            next_step(&c, false, &from("sonnet"), &[f("sonnet"), passed]).unwrap(),
            Step::Accept(1)
        );
        let interrupted = summary("haiku", AttemptOutcome::Interrupted, None);
        assert_eq!(
            next_step(&c, false, &from("haiku"), &[interrupted]).unwrap(),
            Step::Attempt {
                tier: "haiku".into()
            }
        );
        // Never de-escalate: a start above the history's tiers wins.
        assert_eq!(
            next_step(&c, false, &from("opus"), &[]).unwrap(),
            Step::Attempt {
                tier: "opus".into()
            }
        );
    }

    #[test]
    fn a_subtask_with_a_rule_starts_at_codemod_and_escalates_to_its_routed_start() {
        let c = Config::default_embedded().unwrap();
        let path = subtask_path(&c, "sonnet", None).unwrap();
        let attempt = |t: &str| Step::Attempt { tier: t.into() };
        assert_eq!(next_step(&c, true, &path, &[]).unwrap(), attempt("codemod"));
        // Without a rule the codemod tier is skipped, not failed.
        assert_eq!(next_step(&c, false, &path, &[]).unwrap(), attempt("sonnet"));
        let failed = summary(
            CODEMOD_TIER,
            AttemptOutcome::Failed,
            Some(FailureKind::SyntaxError),
        );
        // A failed rule goes on at the routed start (sonnet), never haiku,
        // and counts against no model rung.
        let history = [failed.clone()];
        assert_eq!(
            next_step(&c, true, &path, &history).unwrap(),
            attempt("sonnet")
        );
        let f = summary(
            "sonnet",
            AttemptOutcome::Failed,
            Some(FailureKind::SyntaxError),
        );
        // The rule's failure is the next attempt's feedback.
        assert_eq!(
            feedback(std::slice::from_ref(&failed))[0].kind,
            FailureKind::SyntaxError
        );
        let history = [failed, f];
        assert_eq!(
            next_step(&c, true, &path, &history).unwrap(),
            attempt("sonnet")
        );
        // An interrupted rewrite runs again; a passed one is accepted.
        let interrupted = summary(CODEMOD_TIER, AttemptOutcome::Interrupted, None);
        assert_eq!(
            next_step(&c, true, &path, &[interrupted]).unwrap(),
            attempt("codemod")
        );
        let passed = summary(CODEMOD_TIER, AttemptOutcome::Passed, None);
        assert_eq!(
            next_step(&c, true, &path, &[passed]).unwrap(),
            Step::Accept(0)
        );
    }

    #[test]
    fn cascade_climbs_rungs_and_follows_a_path_that_skips_and_stops() {
        let mut c = Config::default_embedded().unwrap();
        c.cascade.ladder = ["haiku", "sonnet", "opus@medium", "opus@high"]
            .map(String::from)
            .to_vec();
        c.cascade.attempts.insert("opus@medium".into(), 2);
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        let f = |t: &str| summary(t, AttemptOutcome::Failed, Some(FailureKind::SyntaxError));
        let attempt = |t: &str| Step::Attempt { tier: t.into() };
        // The default path: every rung from the start, attempts per rung
        // (opus@medium twice, opus@high once as opus).
        let from_sonnet = subtask_path(&c, "sonnet", None).unwrap();
        assert_eq!(from_sonnet, [1, 2, 3]);
        let history = [f("sonnet"), f("sonnet"), f("opus@medium")];
        assert_eq!(
            next_step(&c, false, &from_sonnet, &history).unwrap(),
            attempt("opus@medium")
        );
        let history = [f("sonnet"), f("sonnet"), f("opus@medium"), f("opus@medium")];
        assert_eq!(
            next_step(&c, false, &from_sonnet, &history).unwrap(),
            attempt("opus@high")
        );
        // A bare tier name starts at that tier's first rung.
        assert_eq!(subtask_path(&c, "opus", None).unwrap(), [2, 3]);
        // A stored path skips sonnet and stops at opus@medium.
        let stored = ["haiku".to_owned(), "opus@medium".to_owned()];
        let path = subtask_path(&c, "haiku", Some(&stored)).unwrap();
        assert_eq!(path, [0, 2]);
        assert_eq!(
            next_step(&c, false, &path, &[f("haiku")]).unwrap(),
            attempt("opus@medium")
        );
        let Step::NeedsHuman(why) = next_step(
            &c,
            false,
            &path,
            &[f("haiku"), f("opus@medium"), f("opus@medium")],
        )
        .unwrap() else {
            panic!("expected a human");
        };
        assert!(
            why.contains("haiku -> opus@medium stops at opus@medium below the top rung opus@high"),
            "{why}"
        );
        // History from an older ladder still places: a plain `opus` attempt
        // counts at opus@medium.
        assert!(matches!(
            next_step(&c, false, &path, &[f("haiku"), f("opus"), f("opus@medium")]).unwrap(),
            Step::NeedsHuman(_)
        ));
    }
}
