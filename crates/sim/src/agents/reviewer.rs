//! The reviewer: approves exactly the diffs that turn the original into the
//! expected content, says what is missing or extra otherwise, and asks for
//! revisions the scenario forces (`force_revise`). A codemod `<rule>` block
//! gets one verdict for the rule: approve when every sample diff is right,
//! revise when one is not or when the scenario forces it
//! (`force_revise_rules`).

use serde_json::json;

use super::draft::Draft;
use super::prompt::{RuleReview, parse_rule_blocks};
use super::{AnswerMeta, Ctx, ToolCall, World, first_user_text, parse_diffs};
use crate::diff::{self, expected_changes, multiset_minus};
use crate::request::ParsedRequest;
use crate::scenario::OutcomeKind;

/// One verdict per diff of the review prompt.
pub(super) fn reviewer(
    ctx: &Ctx<'_>,
    world: &mut World,
    req: &ParsedRequest,
    forced: Option<OutcomeKind>,
) -> (Draft, AnswerMeta) {
    let text = first_user_text(req);
    let diffs = parse_diffs(&text);
    let rules = parse_rule_blocks(&text);
    let mut verdicts = Vec::new();
    let mut approved = 0usize;
    for (path, diff_text) in &diffs {
        let (verdict, comment) = if forced.is_some() {
            ("approve", String::new())
        } else {
            let n = world.reviews.entry(path.clone()).or_insert(0);
            *n += 1;
            let count = *n;
            let forced_n = ctx
                .scenario
                .reviewer
                .force_revise
                .get(path)
                .copied()
                .unwrap_or(0);
            let structural = judge_structural(ctx, path, diff_text);
            if let Some(verdict) = structural {
                verdict
            } else if count <= forced_n {
                (
                    "revise",
                    format!(
                        "Please take another pass over {path}: double-check every changed line \
                         against the instruction (review {count} of {forced_n} requested by the \
                         scenario)."
                    ),
                )
            } else {
                judge(
                    ctx,
                    world.originals.get(path).map(String::as_str),
                    path,
                    diff_text,
                )
            }
        };
        if verdict == "approve" {
            approved += 1;
        }
        verdicts.push(json!({"path": path, "verdict": verdict, "comment": comment}));
    }
    let mut rule_verdicts = Vec::new();
    let mut rules_approved = 0usize;
    for rule in &rules {
        let (verdict, comment) = if forced.is_some() {
            ("approve", String::new())
        } else {
            judge_rule(ctx, world, rule)
        };
        if verdict == "approve" {
            rules_approved += 1;
        }
        rule_verdicts.push(json!({"rule": rule.id, "verdict": verdict, "comment": comment}));
    }
    let input = if rules.is_empty() {
        json!({"verdicts": verdicts})
    } else {
        json!({"verdicts": verdicts, "rules": rule_verdicts})
    };
    let good = ToolCall::new("submit_review", input);
    let outcome = match forced {
        Some(k) => k.as_str().to_string(),
        None if rules.is_empty() => format!("approved {approved}/{}", diffs.len()),
        None => format!(
            "approved {approved}/{}, rules {rules_approved}/{}",
            diffs.len(),
            rules.len()
        ),
    };
    let meta = AnswerMeta {
        outcome: Some(outcome),
        ..AnswerMeta::default()
    };
    let draft = match forced {
        Some(kind) => Draft::forced(kind, good, "submit_plan"),
        None => Draft::call(good),
    };
    (draft, meta)
}

/// The verdict on a codemod rule: the scenario's forced revisions first
/// (counted per rule id), then every sample judged like a file's diff.
fn judge_rule(ctx: &Ctx<'_>, world: &mut World, rule: &RuleReview) -> (&'static str, String) {
    let n = world.rule_reviews.entry(rule.id.clone()).or_insert(0);
    *n += 1;
    let count = *n;
    let forced_n = ctx
        .scenario
        .reviewer
        .force_revise_rules
        .get(&rule.id)
        .copied()
        .unwrap_or(0);
    if count <= forced_n {
        return (
            "revise",
            format!(
                "Rule {} is too broad to trust on all {} files: do each file's change by hand \
                 (review {count} of {forced_n} requested by the scenario).",
                rule.id, rule.files
            ),
        );
    }
    let mut problems = Vec::new();
    for (path, diff_text) in &rule.samples {
        let original = world.originals.get(path).map(String::as_str);
        let (verdict, comment) = judge(ctx, original, path, diff_text);
        if verdict != "approve" {
            problems.push(comment);
        }
    }
    if problems.is_empty() {
        (
            "approve",
            format!("Rule {} looks correct on its samples.", rule.id),
        )
    } else {
        (
            "revise",
            format!(
                "Rule {} is wrong on its samples: {}",
                rule.id,
                problems.join(" ")
            ),
        )
    }
}

/// The verdict on a planned delete or move: the diff must delete the file,
/// or rename it to the planned target without changing a line (a move the
/// scenario also edits is judged like any diff). `None` for other paths.
fn judge_structural(ctx: &Ctx<'_>, path: &str, diff_text: &str) -> Option<(&'static str, String)> {
    let planned = ctx.planned(path)?;
    let changes_lines = diff_text.lines().any(|l| {
        (l.starts_with('+') && !l.starts_with("+++"))
            || (l.starts_with('-') && !l.starts_with("---"))
    });
    match (planned.action.as_deref(), planned.to.as_deref()) {
        (Some("delete"), _) => Some(if diff_text.contains("deleted file mode") {
            ("approve", "Deleted as planned.".to_string())
        } else {
            ("revise", format!("{path} should be deleted."))
        }),
        (Some("move"), Some(to)) if ctx.file(path).is_none() => Some(
            if diff_text.contains(&format!("rename to {to}\n")) && !changes_lines {
                ("approve", "Moved as planned.".to_string())
            } else {
                ("revise", format!("{path} should move to {to} unchanged."))
            },
        ),
        _ => None,
    }
}

/// Approve exactly when the diff turns the original into the expected content
/// (checked by applying it; when it does not apply, by comparing the removed
/// and added line multisets with those of original -> expected).
fn judge(
    ctx: &Ctx<'_>,
    original: Option<&str>,
    path: &str,
    diff_text: &str,
) -> (&'static str, String) {
    let Some(original) = original else {
        return (
            "revise",
            format!("I cannot verify {path}: its original content is unknown to me."),
        );
    };
    let expected = match ctx.expected_content(path, original) {
        Ok(e) => e,
        Err(e) => {
            return (
                "revise",
                format!("The intended change to {path} cannot be derived: {e}."),
            );
        }
    };
    let parsed = match diff::parse(diff_text) {
        Ok(d) => d,
        Err(e) => return ("revise", format!("The diff for {path} is unreadable: {e}.")),
    };
    let (removed, added) = parsed.changed_lines();
    let (want_removed, want_added) = expected_changes(original, &expected);
    let correct = match parsed.apply(original) {
        Ok(result) => result == expected,
        Err(_) => removed == want_removed && added == want_added,
    };
    if correct {
        return ("approve", "Looks correct.".to_string());
    }
    if ctx.file(path).is_none() {
        return (
            "revise",
            format!("{path} should not change for this instruction; revert it."),
        );
    }
    let mut problems = Vec::new();
    for line in multiset_minus(&want_added, &added).iter().take(3) {
        problems.push(format!("missing change: expected a line `{}`", line.trim()));
    }
    for line in multiset_minus(&added, &want_added).iter().take(3) {
        problems.push(format!("unexpected line `{}`", line.trim()));
    }
    for line in multiset_minus(&want_removed, &removed).iter().take(3) {
        problems.push(format!("line `{}` should have been changed", line.trim()));
    }
    for line in multiset_minus(&removed, &want_removed).iter().take(3) {
        problems.push(format!(
            "line `{}` should not have been removed",
            line.trim()
        ));
    }
    if problems.is_empty() {
        problems.push("the right lines change, but in the wrong places".to_string());
    }
    ("revise", format!("{path}: {}.", problems.join("; ")))
}
