//! The reviewer's side of the prompts: its system text, its one tool
//! (`submit_review`), the request that shows file diffs and codemod rule
//! blocks, and the reading of its answer (docs/architecture.md 4.9).

use cadre_llm::types::{MessageRequest, MessageResponse, SystemBlock, ToolDefinition};
use cadre_types::{ReviewVerdict, Verdict};
use serde::Deserialize;
use serde_json::json;

use super::{OutputProblem, base_request, malformed, single_call, tool};
use crate::route::CallSettings;

const REVIEWER_SYSTEM: &str = "You are the reviewer of a combined code change. For every file \
in the diff decide approve or revise. Revise when the change is incomplete, wrong, breaks \
behaviour, or does not follow the instruction and notes; say precisely what is wrong in the \
comment. Answer by calling submit_review exactly once with a verdict for every file.";

/// What the reviewer reads before the codemod rule blocks of a request.
pub(super) const REVIEWER_RULES_NOTE: &str = "Some files were rewritten by a codemod: an ast-grep rule \
run locally, with no model. Each rule comes once, as a <rule> block: its YAML, how many files \
it rewrote and a few of their diffs (the largest, the smallest and one from the middle by \
path); the other files it rewrote are not shown. Judge the rule, not only its samples: approve \
when its rewrite is right for every file it matches; revise when it is wrong or risky for any \
of them, and say what is wrong: every file it rewrote then goes to a model with your comment. \
Give the rule one verdict in `rules`, not one per file.";

/// The reviewer's one tool: a verdict per `<diff>` file in `verdicts`,
/// and per codemod `<rule>` block in `rules`.
pub fn reviewer_tools() -> Vec<ToolDefinition> {
    vec![tool(
        "submit_review",
        "Submit a verdict for every file in the diff, and one for every codemod rule block.",
        json!({
            "type": "object",
            "properties": {
                "verdicts": {"type": "array", "description": "one per <diff> block", "items": {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string"},
                        "verdict": {"type": "string", "enum": ["approve", "revise"]},
                        "comment": {"type": "string"}
                    },
                    "required": ["path", "verdict", "comment"]
                }},
                "rules": {"type": "array", "description": "one per <rule> block; the verdict applies to every file the rule rewrote", "items": {
                    "type": "object",
                    "properties": {
                        "rule": {"type": "string", "description": "the id of the <rule> block"},
                        "verdict": {"type": "string", "enum": ["approve", "revise"]},
                        "comment": {"type": "string"}
                    },
                    "required": ["rule", "verdict", "comment"]
                }}
            },
            "required": ["verdicts"]
        }),
    )]
}

/// One codemod rule as the reviewer sees it: the rule, how many files it
/// rewrote, and a few of their diffs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleBlock {
    /// The rule's id (the ids of a multi-rule text joined by `+`).
    pub id: String,
    /// The rule text (ast-grep YAML).
    pub yaml: String,
    /// Files the rule rewrote (accepted at the codemod tier).
    pub files: usize,
    /// `(path, diff)` of the sample files shown.
    pub samples: Vec<(String, String)>,
}

/// The reviewer's request: codemod rule blocks (one per rule, see
/// [`RuleBlock`]) and per-file diffs.
pub fn reviewer_request(
    model: &str,
    settings: &CallSettings,
    prefix: &str,
    rules: &[RuleBlock],
    diffs: &[(String, String)],
) -> MessageRequest {
    let mut user = String::new();
    if !rules.is_empty() {
        user.push_str(REVIEWER_RULES_NOTE);
        user.push('\n');
    }
    for rule in rules {
        user.push_str(&format!(
            "<rule id=\"{}\" files=\"{}\" shown=\"{}\">\n<yaml>\n{}\n</yaml>\n",
            rule.id,
            rule.files,
            rule.samples.len(),
            rule.yaml.trim_end()
        ));
        for (path, diff) in &rule.samples {
            user.push_str(&format!("<sample path=\"{path}\">\n{diff}</sample>\n"));
        }
        user.push_str("</rule>\n");
    }
    for (path, diff) in diffs {
        user.push_str(&format!("<diff path=\"{path}\">\n{diff}</diff>\n"));
    }
    user.push_str(match (rules.is_empty(), diffs.is_empty()) {
        (true, _) => "Call submit_review with a verdict for every file above.",
        (false, true) => "Call submit_review with a verdict for every rule above (in `rules`).",
        (false, false) => {
            "Call submit_review with a verdict for every file above (in `verdicts`) and for \
             every rule (in `rules`)."
        }
    });
    base_request(
        model,
        settings,
        reviewer_tools(),
        vec![
            SystemBlock::text(REVIEWER_SYSTEM),
            SystemBlock::text(prefix),
        ],
        user,
    )
}

/// The reviewer's verdict on a codemod rule: it holds for every file the
/// rule rewrote.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RuleVerdict {
    /// The rule's id, as its `<rule>` block gave it.
    pub rule: String,
    /// Approve or revise.
    pub verdict: Verdict,
    /// Why (fed back to every file's next attempt on `revise`).
    #[serde(default)]
    pub comment: String,
}

/// What `submit_review` answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct ReviewAnswer {
    /// One per file diff.
    #[serde(rename = "verdicts")]
    pub files: Vec<ReviewVerdict>,
    /// One per codemod rule block.
    #[serde(default)]
    pub rules: Vec<RuleVerdict>,
}

/// Reads `submit_review`.
pub fn parse_review(response: &MessageResponse) -> Result<ReviewAnswer, OutputProblem> {
    let input = single_call(response, "submit_review")?;
    ReviewAnswer::deserialize(input).map_err(|e| {
        malformed(format!(
            "submit_review input does not match its schema: {e}"
        ))
    })
}
