//! What models hand back: a plan, a file change, a review.

use serde::{Deserialize, Serialize};

use crate::{Complexity, ErrorCost};

/// The planner's output, as submitted through the `submit_plan` tool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Notes shared with every worker (conventions, the new names, ...).
    pub notes: String,
    /// One entry per file to change.
    pub subtasks: Vec<PlannedSubtask>,
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
