//! The codemod tier: an ast-grep rule (ast-grep's YAML format, from the
//! user's `--rule FILE.yml` or attached by the planner) rewrites a
//! mechanical subtask's file locally, with no model call. It is a tier of
//! its own kind ([`CODEMOD_TIER`], first in `tiers.order`, priced 0, no
//! model): a subtask with a rule starts there, one without a rule skips it.
//! The rewrite goes through the same validation as a worker's change
//! (applies, not a no-op, no new syntax errors, `--file-check`) and is
//! recorded as an attempt at the codemod tier costing nothing; a rule that
//! matches nothing, changes nothing or fails validation leaves a failed
//! attempt whose message (the rule's output and the failure) the next tier
//! reads as feedback. The cascade (`cascade::next_step`) then goes
//! on at the subtask's routed model tier: a codemod attempt holds no model
//! rung back. Reports, `cadre cost` and `cadre stats` count codemod
//! attempts, their acceptance rate and what they saved ([`saved_usd`]).

mod lang;
mod rule;

use cadre_config::Config;
use cadre_store::{AttemptStatRow, CodemodAcceptedRow, NewAttempt, SubtaskRecord};
use cadre_types::{
    AttemptId, AttemptOutcome, CodemodSummary, Complexity, EventKind, FailureKind, Role,
    WorkerChange,
};
use serde_json::json;

pub use lang::CodemodLanguage;
pub use rule::{CodemodRule, Rewrite, parse_rules};

use crate::attempt::AttemptEnd;
use crate::cascade::AttemptSummary;
use crate::diff::unified_diff;
use crate::run::JobRun;
use crate::staging::sha256_hex;
use crate::validate::{ValidationInput, validate};
use crate::{Error, Result};

/// The tier name codemod attempts are recorded under.
pub use cadre_config::CODEMOD_TIER;

/// The "model" codemod attempts are recorded with.
pub const CODEMOD_ENGINE: &str = "ast-grep";

/// How much of a rule's output a failed attempt quotes as feedback.
const FEEDBACK_DIFF_CHARS: usize = 2_000;

/// The rule text (one YAML document) a subtask of `path` gets from the
/// user's rules: the first rule whose language is the file's, for a
/// mechanical subtask only.
pub(crate) fn user_rule_for(
    rules: &[String],
    path: &str,
    complexity: Complexity,
) -> Result<Option<String>> {
    if complexity != Complexity::Mechanical {
        return Ok(None);
    }
    for text in rules {
        let parsed = parse_rules(text).map_err(Error::InvalidInput)?;
        if parsed.iter().any(|r| r.applies_to(path)) {
            return Ok(Some(text.clone()));
        }
    }
    Ok(None)
}

/// Checks every rule text given with `--rule` before a job is stored.
pub fn check_rules(rules: &[String]) -> Result<()> {
    for text in rules {
        parse_rules(text).map_err(|e| Error::InvalidInput(format!("--rule: {e}")))?;
    }
    Ok(())
}

/// What a file accepted at the codemod tier saved: the estimated price of
/// one worker attempt at its first model tier (`start_tier`, where it would
/// have started with no rule), priced as the plan estimate prices attempts
/// (`estimate.rs`), leaving out the job's shared prefix so a job's
/// report and `cadre stats` give the same figure.
pub fn saved_usd(config: &Config, start_tier: &str, chars: u64) -> f64 {
    crate::estimate::attempt_usd(config, start_tier, chars, 0).unwrap_or(0.0)
}

/// The codemod tier's figures across jobs (`cadre stats`, `GET /v1/stats`):
/// its finished attempts from the store's attempt statistics, and the files
/// accepted there ([`cadre_store::Store::accepted_at_tier`]) with what each
/// saved ([`saved_usd`]).
pub fn stats_summary(
    config: &Config,
    rows: &[AttemptStatRow],
    accepted: &[CodemodAcceptedRow],
) -> CodemodSummary {
    let attempts = rows
        .iter()
        .filter(|r| r.tier == CODEMOD_TIER)
        .map(|r| r.attempts)
        .sum();
    let saved = accepted
        .iter()
        .map(|a| saved_usd(config, &a.start_tier, a.chars))
        .sum();
    CodemodSummary::new(attempts, accepted.len() as u64, saved)
}

/// Refuses `--rule` under a config with no codemod tier (its `tiers.order`
/// leaves `codemod` out), where no rule would run.
pub(crate) fn check_codemod_tier(config: &Config, rules: &[String]) -> Result<()> {
    if rules.is_empty() || config.has_codemod_tier() {
        return Ok(());
    }
    Err(Error::InvalidInput(format!(
        "--rule needs the codemod tier, and tiers.order ({}) leaves it out: list \"{CODEMOD_TIER}\" first in tiers.order",
        config.tiers.order.join(", ")
    )))
}

/// Runs the subtask's rule (the cascade's attempt at the codemod tier).
pub(crate) async fn try_codemod(
    run: &JobRun,
    sub: &SubtaskRecord,
    rule: &str,
    original: &str,
    history: &[AttemptSummary],
) -> Result<AttemptSummary> {
    let text = rule.to_owned();
    let ordinal = history.len() as u32 + 1;
    let attempt = AttemptId::new();
    // Through the writer, so it is fenced on the job's lease (crate::lease).
    run.engine
        .writer()
        .start_attempt(NewAttempt {
            id: attempt,
            job_id: run.job_id,
            subtask_id: Some(sub.id),
            role: Role::Worker,
            tier: CODEMOD_TIER.to_owned(),
            model: CODEMOD_ENGINE.to_owned(),
            effort: None,
            ordinal,
            request_sha256: sha256_hex(format!("{text}\0{original}").as_bytes()),
            batch_id: None,
        })
        .await?;
    let engine = &run.engine;
    engine
        .emit(
            run.job_id,
            Some(sub.id),
            EventKind::AttemptStarted,
            format!("{}: attempt {ordinal} at {CODEMOD_TIER}", sub.path),
            json!({"path": sub.path, "tier": CODEMOD_TIER, "attempt": ordinal}),
        )
        .await?;
    let (path, source) = (sub.path.clone(), original.to_owned());
    let rewritten = tokio::task::spawn_blocking(move || rewrite_file(&text, &path, &source))
        .await
        .map_err(|source| Error::Task {
            task: "codemod",
            source,
        })?;
    let config = run.config();
    let mut stored = None;
    let problem = match rewritten {
        Err(message) => Some((FailureKind::NoUsableEdit, format!("codemod: {message}"))),
        Ok((id, rewrite)) if rewrite.matches == 0 => Some((
            FailureKind::NoUsableEdit,
            format!(
                "codemod rule {id:?} matched nothing in {}; make the change by hand",
                sub.path
            ),
        )),
        Ok((id, rewrite)) if rewrite.content == original => Some((
            FailureKind::NoUsableEdit,
            format!(
                "codemod rule {id:?} matched {} place(s) in {} but changed nothing",
                rewrite.matches, sub.path
            ),
        )),
        Ok((id, rewrite)) => {
            let output = unified_diff(&sub.path, original, &rewrite.content);
            let checks = ValidationInput {
                path: &sub.path,
                original,
                history,
                file_check: run.options.file_check.as_deref(),
                workspace: &run.root,
                check_timeout: std::time::Duration::from_secs(config.limits.check_timeout_secs),
            };
            let change = WorkerChange::Write {
                content: rewrite.content,
            };
            match validate(&checks, change).await? {
                Ok(candidate) => {
                    stored = Some(candidate.stored);
                    None
                }
                Err(failure) => {
                    stored = Some(failure.stored);
                    Some((
                        failure.kind,
                        format!(
                            "codemod rule {id:?} rewrote {} place(s) but its output failed: {}\n\
                             The rule's output (do better than it):\n{}",
                            rewrite.matches,
                            failure.message,
                            output.chars().take(FEEDBACK_DIFF_CHARS).collect::<String>()
                        ),
                    ))
                }
            }
        }
    };
    let outcome = if problem.is_none() {
        AttemptOutcome::Passed
    } else {
        AttemptOutcome::Failed
    };
    engine
        .finish_attempt(
            attempt,
            outcome,
            AttemptEnd {
                problem: problem.clone(),
                change: stored.as_ref(),
                ..AttemptEnd::default()
            },
        )
        .await?;
    let message = match &problem {
        None => format!("{}: attempt {ordinal} at {CODEMOD_TIER} passed", sub.path),
        Some((kind, m)) => format!(
            "{}: attempt {ordinal} at {CODEMOD_TIER} failed ({kind}): {}",
            sub.path,
            m.chars().take(200).collect::<String>()
        ),
    };
    engine
        .emit(
            run.job_id,
            Some(sub.id),
            EventKind::AttemptFinished,
            message,
            json!({"path": sub.path, "tier": CODEMOD_TIER, "attempt": ordinal,
                   "outcome": outcome.as_str(), "failure": problem.as_ref().map(|p| p.0.as_str()),
                   "cost_usd": 0.0}),
        )
        .await?;
    Ok(AttemptSummary {
        tier: CODEMOD_TIER.to_owned(),
        outcome,
        failure: problem.as_ref().map(|p| p.0),
        error: problem.map(|p| p.1),
        fingerprint: stored.as_ref().map(|s| s.fingerprint.clone()),
        change: stored.map(|s| s.change),
    })
}

/// Runs every rule of `text` that applies to `path`, in order; returns the
/// ids joined and the combined rewrite.
fn rewrite_file(
    text: &str,
    path: &str,
    source: &str,
) -> std::result::Result<(String, Rewrite), String> {
    let rules = parse_rules(text)?;
    let mut ids = Vec::new();
    let mut current = Rewrite {
        matches: 0,
        content: source.to_owned(),
    };
    for rule in rules.iter().filter(|r| r.applies_to(path)) {
        let next = rule.rewrite(&current.content)?;
        ids.push(rule.id.clone());
        current = Rewrite {
            matches: current.matches + next.matches,
            content: next.content,
        };
    }
    if ids.is_empty() {
        return Err(format!("no rule for the language of {path}"));
    }
    Ok((ids.join("+"), current))
}
