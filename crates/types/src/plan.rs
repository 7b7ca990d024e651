//! What models hand back: a plan, a file change, a review.

use serde::{Deserialize, Serialize};

use crate::status::string_enum;
use crate::{Complexity, ErrorCost};

string_enum!(
    /// What a subtask does to its file.
    SubtaskAction, "subtask action" {
        /// Change the file's content (the default).
        Edit => "edit",
        /// Write a file that does not exist yet.
        Create => "create",
        /// Remove the file.
        Delete => "delete",
        /// Rename the file to the subtask's `to` path.
        Move => "move",
    }
);

// `string_enum!` derives a fixed list without `Default`.
#[allow(clippy::derivable_impls)]
impl Default for SubtaskAction {
    fn default() -> Self {
        SubtaskAction::Edit
    }
}

impl SubtaskAction {
    /// True for the default action, so plans that never name one stay as they were.
    pub fn is_edit(&self) -> bool {
        *self == SubtaskAction::Edit
    }
}

/// The planner's output, as submitted through the `submit_plan` tool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Notes shared with every worker (conventions, the new names, ...).
    pub notes: String,
    /// One entry per file to change.
    #[serde(default)]
    pub subtasks: Vec<PlannedSubtask>,
    /// Sets of files cadre expands over its index (explicit entries win).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<PlanSelector>,
    /// More explicit entries follow in another answer (a paged plan).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub more: bool,
}

/// A set of files named by globs and a content match, all given one
/// instruction; cadre expands it over its own index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanSelector {
    /// Its name in the plan (each expanded subtask records it).
    pub id: String,
    /// Workspace-relative globs (`src/**/*.py`); none means every file.
    #[serde(default)]
    pub paths: Vec<String>,
    /// What a file must contain.
    #[serde(rename = "match")]
    pub matcher: SelectorMatch,
    /// The classification of every file it selects.
    pub complexity: Complexity,
    /// What a mistake costs in those files.
    pub error_cost: ErrorCost,
    /// What to do to each file.
    pub instruction: String,
    /// An ast-grep YAML rule the codemod tier runs first on each file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
}

/// A selector's content match: exactly one of a literal, a regex or an AST
/// pattern (with its language).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorMatch {
    /// Text the file contains.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub literal: Option<String>,
    /// A regular expression a line of the file matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// An ast-grep pattern (`print($A)`) the file's syntax tree matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// The pattern's language (`python`, `typescript`, `rust`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// One file's share of the job, as the planner proposed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedSubtask {
    /// Workspace-relative path (validated before it is stored).
    pub path: String,
    /// What to do to this file.
    pub instruction: String,
    /// The planner's classification.
    pub complexity: Complexity,
    /// The planner's estimate of what a mistake costs.
    pub error_cost: ErrorCost,
    /// What to do to the file: `edit` (the default), `create`, `delete` or `move`.
    #[serde(default, skip_serializing_if = "SubtaskAction::is_edit")]
    pub action: SubtaskAction,
    /// The new path of a `move` (validated like `path`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// An ast-grep YAML rule the codemod tier runs before any model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The selector that expanded to this entry (set by cadre, not the planner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// One exact search/replace: `old` must occur exactly once in the file.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EditOp {
    /// The exact text to find.
    pub old: String,
    /// Its replacement.
    pub new: String,
}

/// A worker's proposed change to its file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WorkerChange {
    /// `edit_file`: search/replace edits applied in order.
    Edits {
        /// The edits.
        edits: Vec<EditOp>,
    },
    /// `write_file`: the file's whole new content.
    Write {
        /// The content.
        content: String,
    },
}

/// The reviewer's decision on one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Keep the change.
    Approve,
    /// Send the file back with the comment.
    Revise,
}

/// One entry of `submit_review`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewVerdict {
    /// The file reviewed.
    pub path: String,
    /// Approve or revise.
    pub verdict: Verdict,
    /// Why (fed back to the next attempt on `revise`).
    #[serde(default)]
    pub comment: String,
}
