//! Validation of a worker's change: the edit applies exactly, the result is
//! neither a revert nor a repeat (a circular fix), tree-sitter finds no new
//! syntax errors, and the per-file check passes on a scratch copy.

use std::path::Path;
use std::time::Duration;

use cadre_types::{FailureKind, WorkerChange};

use crate::cascade::{AttemptSummary, StoredChange};
use crate::checks::{run_check, shell_quote};
use crate::edit::apply_change;
use crate::staging::sha256_hex;
use crate::syntax::check_no_new_errors;
use crate::{Error, Result};

/// A change that passed every check.
#[derive(Debug)]
pub(crate) struct Candidate {
    pub stored: StoredChange,
}

/// A change that failed a check, with what the next attempt is told.
#[derive(Debug)]
pub(crate) struct ValidationFailure {
    pub kind: FailureKind,
    pub message: String,
    /// The change as recorded (for circular-fix detection later).
    pub stored: StoredChange,
}

/// What validation needs besides the change.
#[derive(Debug)]
pub(crate) struct ValidationInput<'a> {
    pub path: &'a str,
    pub original: &'a str,
    /// The subtask's earlier attempts.
    pub history: &'a [AttemptSummary],
    /// `--file-check`, run in `workspace` with `{file}` replaced.
    pub file_check: Option<&'a str>,
    pub workspace: &'a Path,
    pub check_timeout: Duration,
}

/// Validates `change`; `Err` only when a check could not be run at all.
pub(crate) async fn validate(
    input: &ValidationInput<'_>,
    change: WorkerChange,
) -> Result<Result<Candidate, ValidationFailure>> {
    let change_fingerprint = sha256_hex(
        &serde_json::to_vec(&change)
            .map_err(|e| Error::InvalidInput(format!("a change cannot be serialised: {e}")))?,
    );
    let content = match apply_change(input.original, &change) {
        Err(rejection) => {
            let circular = input
                .history
                .iter()
                .any(|a| a.fingerprint.as_deref() == Some(&change_fingerprint));
            let (kind, message) = if circular {
                (
                    FailureKind::CircularFix,
                    format!("repeats an earlier failed edit: {rejection}"),
                )
            } else {
                (FailureKind::EditMismatch, rejection.to_string())
            };
            return Ok(Err(ValidationFailure {
                kind,
                message,
                stored: StoredChange {
                    change,
                    fingerprint: change_fingerprint,
                },
            }));
        }
        Ok(content) => content,
    };
    let fingerprint = sha256_hex(content.as_bytes());
    let problem = if let Some(message) = drops_most_of_the_file(&change, input.original, &content) {
        Some((FailureKind::EditMismatch, message))
    } else if content == input.original {
        Some((
            FailureKind::CircularFix,
            "the change leaves the file as it was (a revert or no-op)".to_owned(),
        ))
    } else if input.history.iter().any(|a| {
        // Content that only the reviewer or the integration check turned
        // down may go back to them (their rounds are bounded); any other
        // repeat is a model going round in circles.
        a.fingerprint.as_deref() == Some(&fingerprint)
            && !matches!(
                a.failure,
                Some(FailureKind::ReviewRejected | FailureKind::IntegrationBlamed)
            )
    }) {
        Some((
            FailureKind::CircularFix,
            "the change reproduces an earlier attempt's content".to_owned(),
        ))
    } else if let Err(message) = check_no_new_errors(input.path, input.original, &content) {
        Some((FailureKind::SyntaxError, message))
    } else if let Some(command) = input.file_check
        && let Err(message) = file_check(input, command, &content).await?
    {
        Some((FailureKind::FileCheckFailed, message))
    } else {
        None
    };
    let stored = StoredChange {
        change,
        fingerprint,
    };
    Ok(match problem {
        None => Ok(Candidate { stored }),
        Some((kind, message)) => Err(ValidationFailure {
            kind,
            message,
            stored,
        }),
    })
}

/// Non-blank lines a file needs before a `write_file` that drops most of
/// them is suspicious.
const SUSPICIOUS_WRITE_MIN_LINES: usize = 8;

/// `Some(message)` when a `write_file` keeps under half of the original's
/// non-blank lines: small models replace a file with a stub or a single
/// line, which may still parse.
fn drops_most_of_the_file(change: &WorkerChange, original: &str, content: &str) -> Option<String> {
    if !matches!(change, WorkerChange::Write { .. }) {
        return None;
    }
    let lines = |text: &str| text.lines().filter(|l| !l.trim().is_empty()).count();
    let (before, after) = (lines(original), lines(content));
    (before >= SUSPICIOUS_WRITE_MIN_LINES && after * 2 < before).then(|| {
        format!(
            "write_file kept {after} of the file's {before} non-blank lines; replacing most of a \
             file is rejected as suspicious: use edit_file with exact edits for the lines that change"
        )
    })
}

/// Runs the per-file check on a candidate written to a scratch copy of its
/// path. `Ok(Err(output))` when the check fails.
async fn file_check(
    input: &ValidationInput<'_>,
    command: &str,
    content: &str,
) -> Result<Result<(), String>> {
    let scratch = tempfile::tempdir().map_err(|e| Error::io("creating a scratch dir", e))?;
    let candidate = scratch.path().join(input.path);
    if let Some(parent) = candidate.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    tokio::fs::write(&candidate, content)
        .await
        .map_err(|e| Error::io(format!("writing {}", candidate.display()), e))?;
    let command = command.replace("{file}", &shell_quote(&candidate.to_string_lossy()));
    let out = run_check(&command, input.workspace, input.check_timeout).await?;
    Ok(if out.success {
        Ok(())
    } else {
        Err(format!("per-file check failed: {}", out.output.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_types::{AttemptOutcome, EditOp};

    fn input<'a>(original: &'a str, history: &'a [AttemptSummary]) -> ValidationInput<'a> {
        ValidationInput {
            path: "a.py",
            original,
            history,
            file_check: None,
            workspace: Path::new("."),
            check_timeout: Duration::from_secs(5),
        }
    }

    fn edit(old: &str, new: &str) -> WorkerChange {
        WorkerChange::Edits {
            edits: vec![EditOp {
                old: old.into(),
                new: new.into(),
            }],
        }
    }

    #[tokio::test]
    async fn a_clean_edit_passes_and_a_broken_one_names_its_failure() {
        let original = "def f():\n    return OldName(1)\n";
        let ok = validate(&input(original, &[]), edit("OldName", "NewName"))
            .await
            .unwrap();
        assert!(ok.is_ok());
        let mismatch = validate(&input(original, &[]), edit("Missing", "x"))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(mismatch.kind, FailureKind::EditMismatch);
        let syntax = validate(&input(original, &[]), edit("(1)", "(1"))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(syntax.kind, FailureKind::SyntaxError);
        let revert = validate(&input(original, &[]), edit("OldName", "OldName"))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(revert.kind, FailureKind::CircularFix);
    }

    #[tokio::test]
    async fn a_write_that_drops_most_of_the_file_is_suspicious_and_feedback_is_actionable() {
        let original: String = (0..10).map(|i| format!("x{i} = OldName({i})\n")).collect();
        let stub = WorkerChange::Write {
            content: "check.py\n".into(),
        };
        let rejected = validate(&input(&original, &[]), stub)
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(rejected.kind, FailureKind::EditMismatch);
        assert!(
            rejected
                .message
                .contains("kept 1 of the file's 10 non-blank lines"),
            "{}",
            rejected.message
        );
        let whole = WorkerChange::Write {
            content: original.replace("OldName", "NewName"),
        };
        assert!(
            validate(&input(&original, &[]), whole)
                .await
                .unwrap()
                .is_ok()
        );

        let twice = "a = OldName\nb = OldName\n";
        let ambiguous = validate(&input(twice, &[]), edit("OldName", "NewName"))
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            ambiguous.message.contains("matches 2 times")
                && ambiguous.message.contains("surrounding lines"),
            "{}",
            ambiguous.message
        );
        let syntax = validate(
            &input("def f():\n    return OldName(1)\n", &[]),
            edit("OldName(1)", "NewName(1"),
        )
        .await
        .unwrap()
        .unwrap_err();
        assert!(
            syntax.message.contains("`return NewName(1`"),
            "the offending line is quoted: {}",
            syntax.message
        );
    }

    #[tokio::test]
    async fn repeating_an_earlier_failed_content_is_circular_unless_a_reviewer_turned_it_down() {
        let original = "x = OldName\n";
        let first = validate(&input(original, &[]), edit("OldName", "NewName"))
            .await
            .unwrap()
            .unwrap();
        let earlier = |failure| AttemptSummary {
            tier: "haiku".into(),
            outcome: AttemptOutcome::Failed,
            failure: Some(failure),
            error: None,
            fingerprint: Some(first.stored.fingerprint.clone()),
            change: None,
        };
        let history = [earlier(FailureKind::FileCheckFailed)];
        let again = validate(&input(original, &history), edit("OldName", "NewName"))
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(again.kind, FailureKind::CircularFix);
        let history = [earlier(FailureKind::ReviewRejected)];
        assert!(
            validate(&input(original, &history), edit("OldName", "NewName"))
                .await
                .unwrap()
                .is_ok()
        );
    }
}
