//! Subtask actions beyond an edit: `create` (a file that does not exist
//! yet), `delete` and `move {to}`. Planning checks each against the
//! workspace (a create refuses an existing file, a move a taken target);
//! deletes and pure moves are settled without a model call; the patch, the
//! reviewer's diff, the staging copy and the apply all see one
//! [`FileAction`] per accepted subtask, so the four actions cannot drift
//! apart between those stages.

use std::collections::BTreeMap;
use std::path::Path;

use cadre_store::{SubtaskDirective, SubtaskRecord, SubtaskUpdate};
use cadre_types::{PlannedSubtask, SubtaskAction, SubtaskStatus};

use crate::Result;
use crate::diff::unified_diff;
use crate::paths::validate_in_workspace;
use crate::run::JobRun;

/// What an accepted subtask does to the workspace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileAction {
    /// Replace the file's content.
    Write,
    /// Write a file that did not exist.
    Create,
    /// Remove the file.
    Delete,
    /// Rename the file to `to` (with the accepted content).
    Move {
        /// The new workspace-relative path.
        to: String,
    },
}

impl FileAction {
    /// The action a stored directive asks for.
    pub fn from_directive(directive: Option<&SubtaskDirective>) -> Self {
        match directive {
            None => FileAction::Write,
            Some(d) => match d.action {
                SubtaskAction::Edit => FileAction::Write,
                SubtaskAction::Create => FileAction::Create,
                SubtaskAction::Delete => FileAction::Delete,
                SubtaskAction::Move => FileAction::Move {
                    to: d.move_to.clone().unwrap_or_default(),
                },
            },
        }
    }
}

/// A git-style patch of one accepted subtask: `new file`, `deleted file`
/// and `rename from/to` headers for the other actions, so `git apply`
/// creates, removes and renames. Empty when nothing changes.
pub fn action_patch(path: &str, action: &FileAction, old: &str, new: &str) -> String {
    match action {
        FileAction::Write => {
            if old == new {
                return String::new();
            }
            format!(
                "diff --git a/{path} b/{path}\n{}",
                unified_diff(path, old, new)
            )
        }
        FileAction::Create => format!(
            "diff --git a/{path} b/{path}\nnew file mode 100644\n{}",
            headed_diff("/dev/null", &format!("b/{path}"), "", new)
        ),
        FileAction::Delete => format!(
            "diff --git a/{path} b/{path}\ndeleted file mode 100644\n{}",
            headed_diff(&format!("a/{path}"), "/dev/null", old, "")
        ),
        FileAction::Move { to } => {
            let mut out = format!("diff --git a/{path} b/{to}\n");
            if old == new {
                out.push_str("similarity index 100%\n");
            }
            out.push_str(&format!("rename from {path}\nrename to {to}\n"));
            if old != new {
                out.push_str(&headed_diff(
                    &format!("a/{path}"),
                    &format!("b/{to}"),
                    old,
                    new,
                ));
            }
            out
        }
    }
}

fn headed_diff(from: &str, to: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string()
}

/// Why a planned subtask's action cannot be carried out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ActionProblem {
    /// A path broke the workspace rules (recorded as a rejected path).
    Rejected(String),
    /// The action does not fit the workspace (the subtask is skipped).
    Skip(String),
}

/// The directive a planned subtask stores (its selector and rule are filled
/// in by whoever expanded it).
pub(crate) fn planned_directive(planned: &PlannedSubtask) -> SubtaskDirective {
    SubtaskDirective {
        action: planned.action,
        rule: planned.rule.clone(),
        selector_id: planned.selector.clone(),
        ..SubtaskDirective::default()
    }
}

/// Checks what a `create` or a `move` needs beyond a valid path: a create's
/// file must not exist; a move needs a valid `to` that neither exists nor is
/// claimed by another subtask. Returns a move's normalised target, which
/// `seen` then claims.
pub(crate) fn check_action(
    root: &Path,
    planned: &PlannedSubtask,
    rel: &str,
    ordinal: usize,
    seen: &mut BTreeMap<String, usize>,
) -> std::result::Result<Option<String>, ActionProblem> {
    match planned.action {
        SubtaskAction::Edit | SubtaskAction::Delete => Ok(None),
        SubtaskAction::Create => {
            if root.join(rel).symlink_metadata().is_ok() {
                return Err(ActionProblem::Skip(format!(
                    "create: {rel} already exists; a create never overwrites"
                )));
            }
            Ok(None)
        }
        SubtaskAction::Move => {
            let Some(raw) = planned.to.as_deref() else {
                return Err(ActionProblem::Skip("move: no `to` path given".to_owned()));
            };
            let to = validate_in_workspace(root, raw)
                .map_err(|e| ActionProblem::Rejected(e.to_string()))?;
            let to = to.as_str().to_owned();
            if to == rel {
                return Err(ActionProblem::Skip(format!("move: {rel} onto itself")));
            }
            if root.join(&to).symlink_metadata().is_ok() {
                return Err(ActionProblem::Skip(format!(
                    "move: the target {to} already exists; a move never overwrites"
                )));
            }
            if let Some(first) = seen.get(&to) {
                return Err(ActionProblem::Skip(format!(
                    "move: the target {to} is already claimed by subtask {first}"
                )));
            }
            seen.insert(to.clone(), ordinal);
            Ok(Some(to))
        }
    }
}

/// Settles a subtask that needs no model: a delete, or a move that keeps
/// its content. Returns `None` when the subtask needs the cascade, else
/// whether it was accepted (false when its state changed under it).
pub(crate) async fn settle_without_model(
    run: &JobRun,
    sub: &SubtaskRecord,
    directive: &SubtaskDirective,
) -> Result<Option<bool>> {
    let (content, reason) = match directive.action {
        SubtaskAction::Delete => (String::new(), "delete: no model call needed".to_owned()),
        SubtaskAction::Move if directive.rule.is_none() => (
            sub.original_content.clone().unwrap_or_default(),
            format!(
                "move to {}: no model call needed",
                directive.move_to.as_deref().unwrap_or_default()
            ),
        ),
        _ => return Ok(None),
    };
    let update = SubtaskUpdate {
        reason: Some(reason),
        accepted_content: Some(Some(content)),
        ..SubtaskUpdate::default()
    };
    let accepted = run
        .engine
        .set_subtask_status(
            run.job_id,
            sub,
            &[SubtaskStatus::Running],
            SubtaskStatus::Accepted,
            update,
        )
        .await?;
    Ok(Some(accepted))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_name_every_action() {
        let create = action_patch("n.py", &FileAction::Create, "", "x = 1\n");
        assert!(
            create.starts_with(
                "diff --git a/n.py b/n.py\nnew file mode 100644\n--- /dev/null\n+++ b/n.py\n"
            ),
            "{create}"
        );
        assert!(create.contains("+x = 1\n"));
        let delete = action_patch("o.py", &FileAction::Delete, "y = 2\n", "");
        assert!(
            delete.contains("deleted file mode 100644\n--- a/o.py\n+++ /dev/null\n"),
            "{delete}"
        );
        assert!(delete.contains("-y = 2\n"));
        let to = "pkg/b.py".to_owned();
        let pure = action_patch("a.py", &FileAction::Move { to: to.clone() }, "z\n", "z\n");
        assert_eq!(
            pure,
            "diff --git a/a.py b/pkg/b.py\nsimilarity index 100%\nrename from a.py\nrename to pkg/b.py\n"
        );
        let edited = action_patch("a.py", &FileAction::Move { to }, "z\n", "w\n");
        assert!(edited.contains("--- a/a.py\n+++ b/pkg/b.py\n"), "{edited}");
        assert!(action_patch("a.py", &FileAction::Write, "q\n", "q\n").is_empty());
    }

    fn planned(action: SubtaskAction, to: Option<&str>) -> PlannedSubtask {
        PlannedSubtask {
            path: "a.py".into(),
            instruction: String::new(),
            complexity: cadre_types::Complexity::Mechanical,
            error_cost: cadre_types::ErrorCost::Low,
            action,
            to: to.map(str::to_owned),
            rule: None,
            selector: None,
        }
    }

    #[test]
    fn creates_and_moves_never_clobber() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "x\n").unwrap();
        std::fs::write(dir.path().join("taken.py"), "y\n").unwrap();
        let mut seen = BTreeMap::new();
        let root = dir.path();
        assert!(matches!(
            check_action(root, &planned(SubtaskAction::Create, None), "a.py", 0, &mut seen),
            Err(ActionProblem::Skip(m)) if m.contains("already exists")
        ));
        assert_eq!(
            check_action(
                root,
                &planned(SubtaskAction::Create, None),
                "new.py",
                0,
                &mut seen
            ),
            Ok(None)
        );
        assert!(matches!(
            check_action(root, &planned(SubtaskAction::Move, Some("taken.py")), "a.py", 1, &mut seen),
            Err(ActionProblem::Skip(m)) if m.contains("already exists")
        ));
        assert!(matches!(
            check_action(root, &planned(SubtaskAction::Move, Some("../out.py")), "a.py", 1, &mut seen),
            Err(ActionProblem::Rejected(m)) if m.contains("..")
        ));
        assert!(matches!(
            check_action(
                root,
                &planned(SubtaskAction::Move, None),
                "a.py",
                1,
                &mut seen
            ),
            Err(ActionProblem::Skip(_))
        ));
        assert_eq!(
            check_action(
                root,
                &planned(SubtaskAction::Move, Some("./pkg/b.py")),
                "a.py",
                2,
                &mut seen
            ),
            Ok(Some("pkg/b.py".to_owned()))
        );
        assert!(matches!(
            check_action(root, &planned(SubtaskAction::Move, Some("pkg/b.py")), "c.py", 3, &mut seen),
            Err(ActionProblem::Skip(m)) if m.contains("claimed by subtask 2")
        ));
    }
}
