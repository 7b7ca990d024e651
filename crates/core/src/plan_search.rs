//! The planner's read-only `search` tool: a pattern (a literal, a regex, or
//! an AST pattern with its language, in a selector's `match` form) run over
//! the index with the selectors' own matcher (`selectors::compile_match`), answered
//! with the match count and a bounded sample of matching lines. So the
//! planner learns how many files a selector would take before it writes one,
//! without cadre sending it a file list. Searches per plan are bounded by
//! `limits.planner_searches`; a hostile pattern or glob is refused with the
//! reason a selector would get.

use std::sync::Arc;

use cadre_llm::types::ContentBlock;
use cadre_types::{EventKind, JobId, SelectorMatch};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::run::JobRun;
use crate::selectors::compile_match;
use crate::{Error, Result};

/// The tool's name.
pub(crate) const SEARCH_TOOL: &str = "search";

/// Matching lines a search answers with, at most.
pub const SEARCH_SAMPLES: usize = 20;

/// Characters of a sampled line, at most.
const LINE_CHARS: usize = 160;

/// What the planner sends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchInput {
    /// Workspace-relative globs; none means every file.
    #[serde(default)]
    paths: Vec<String>,
    /// Exactly one of literal, regex or pattern (+ language).
    #[serde(rename = "match")]
    matcher: SelectorMatch,
}

/// One sampled match: a file's first matching line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SearchHit {
    /// Workspace-relative path.
    pub path: String,
    /// Line number, from 1.
    pub line: u64,
    /// The line (cut to a bounded length).
    pub text: String,
}

/// What a search found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SearchAnswer {
    /// Files the globs covered (and were read).
    pub searched: usize,
    /// Files with at least one match.
    pub matched: usize,
    /// The first matching line of the first few matching files.
    pub samples: Vec<SearchHit>,
}

impl SearchAnswer {
    /// The tool result the planner reads.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{} of {} searched file(s) match.",
            self.matched, self.searched
        );
        if !self.samples.is_empty() {
            out.push_str(&format!(
                " First matching line of {} of them:",
                self.samples.len()
            ));
        }
        for hit in &self.samples {
            out.push_str(&format!("\n{}:{}: {}", hit.path, hit.line, hit.text));
        }
        out
    }
}

/// Runs the planner's search `input` over `files` (the index's readable
/// files, in order), reading each covered file with `read`; or says why the
/// search is refused.
pub fn search(
    input: &Value,
    files: &[String],
    mut read: impl FnMut(&str) -> Option<String>,
) -> std::result::Result<SearchAnswer, String> {
    let input = SearchInput::deserialize(input)
        .map_err(|e| format!("search input does not match its schema: {e}"))?;
    let matcher = compile_match(&input.paths, &input.matcher)?;
    let mut answer = SearchAnswer::default();
    for path in files {
        if !matcher.covers(path) {
            continue;
        }
        let Some(content) = read(path) else { continue };
        answer.searched += 1;
        let Some((line, text)) = matcher.first_match(path, &content) else {
            continue;
        };
        answer.matched += 1;
        if answer.samples.len() < SEARCH_SAMPLES {
            answer.samples.push(SearchHit {
                path: path.clone(),
                line,
                text: text.chars().take(LINE_CHARS).collect(),
            });
        }
    }
    Ok(answer)
}

/// The planner's searches of one plan: what it may still run.
#[derive(Debug)]
pub(crate) struct PlannerSearches {
    files: Arc<Vec<String>>,
    used: u32,
    limit: u32,
}

impl PlannerSearches {
    /// `limit` searches over `files`.
    pub(crate) fn new(files: Vec<String>, limit: u32) -> Self {
        Self {
            files: Arc::new(files),
            used: 0,
            limit,
        }
    }

    /// True when the planner may search at all (the tool is offered).
    pub(crate) fn offered(&self) -> bool {
        self.limit > 0
    }

    /// True once every search allowed was used.
    pub(crate) fn exhausted(&self) -> bool {
        self.used >= self.limit
    }

    /// Answers every tool call of a planner turn that did not submit a
    /// plan: each `search` runs (or is refused, with why, or past the limit),
    /// any other tool is named as unknown. Emits a `planner_search` event
    /// per search. Returns the tool results and whether any search ran.
    pub(crate) async fn answer(
        &mut self,
        run: &JobRun,
        job: JobId,
        content: &[ContentBlock],
    ) -> Result<(Vec<ContentBlock>, bool)> {
        let mut blocks = Vec::new();
        let mut ran = false;
        for block in content {
            let ContentBlock::ToolUse { id, name, input } = block else {
                continue;
            };
            let answer: std::result::Result<SearchAnswer, String> = if name != SEARCH_TOOL {
                Err(format!(
                    "there is no tool {name:?}; call {SEARCH_TOOL} or submit_plan"
                ))
            } else if self.exhausted() {
                Err(format!(
                    "no searches left (limits.planner_searches = {}); call submit_plan now",
                    self.limit
                ))
            } else {
                self.used += 1;
                ran = true;
                let files = Arc::clone(&self.files);
                let root = run.root.clone();
                let input = input.clone();
                tokio::task::spawn_blocking(move || {
                    search(&input, &files, |path| {
                        std::fs::read_to_string(root.join(path)).ok()
                    })
                })
                .await
                .map_err(|source| Error::Task {
                    task: "planner search",
                    source,
                })?
            };
            if name == SEARCH_TOOL {
                let (message, data) = match &answer {
                    Ok(found) => (
                        format!(
                            "planner search {}: {} of {} file(s) match",
                            input.get("match").unwrap_or(&Value::Null),
                            found.matched,
                            found.searched
                        ),
                        json!({"input": input, "matched": found.matched,
                               "searched": found.searched, "samples": found.samples}),
                    ),
                    Err(reason) => (
                        format!("planner search refused: {reason}"),
                        json!({"input": input, "rejected": reason}),
                    ),
                };
                run.engine
                    .emit(job, None, EventKind::PlannerSearch, message, data)
                    .await?;
            }
            let (content, is_error) = match answer {
                Ok(found) => (found.render(), false),
                Err(reason) => (format!("search refused: {reason}"), true),
            };
            blocks.push(ContentBlock::ToolResult {
                tool_use_id: id.clone(),
                content,
                is_error,
            });
        }
        Ok((blocks, ran))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> Vec<(String, String)> {
        vec![
            (
                "app/a.py".into(),
                "import os\nfrom m import UserId\n".into(),
            ),
            ("app/b.py".into(), "x = 'UserIdentity'\n".into()),
            ("web/c.ts".into(), "let u: UserId = make();\n".into()),
            ("app/d.py".into(), "y = 1\n".into()),
        ]
    }

    fn run(input: Value) -> std::result::Result<SearchAnswer, String> {
        let files = files();
        let paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
        search(&input, &paths, |p| {
            files.iter().find(|(q, _)| q == p).map(|(_, c)| c.clone())
        })
    }

    #[test]
    fn searches_count_matches_and_sample_lines() {
        let found = run(json!({"paths": ["app/**"], "match": {"literal": "UserId"}})).unwrap();
        assert_eq!((found.searched, found.matched), (3, 2));
        assert_eq!(
            found.samples[0],
            SearchHit {
                path: "app/a.py".into(),
                line: 2,
                text: "from m import UserId".into()
            }
        );
        let text = found.render();
        assert!(text.starts_with("2 of 3 searched file(s) match."), "{text}");
        assert!(text.contains("\napp/b.py:1: x = 'UserIdentity'"), "{text}");

        let found = run(json!({"match": {"regex": r"\bUserId\b"}})).unwrap();
        assert_eq!(found.matched, 2, "{found:?}");

        // The AST pattern finds the identifier, not the string with the same letters.
        let found = run(json!({"match": {"pattern": "UserId", "language": "python"}})).unwrap();
        let paths: Vec<&str> = found.samples.iter().map(|h| h.path.as_str()).collect();
        assert_eq!(paths, vec!["app/a.py"]);
        assert_eq!(found.samples[0].line, 2);
    }

    #[test]
    fn hostile_searches_are_refused_with_the_selectors_reasons() {
        let cases = [
            (
                json!({"paths": ["../**"], "match": {"literal": "x"}}),
                "'..'",
            ),
            (
                json!({"paths": ["/etc/*"], "match": {"literal": "x"}}),
                "absolute",
            ),
            (
                json!({"match": {"regex": "((((a{100}){100}){100}){100})"}}),
                "too large",
            ),
            (json!({"match": {}}), "exactly one"),
            (json!({"pattern": "x"}), "schema"),
        ];
        for (input, why) in cases {
            let reason = run(input.clone()).unwrap_err();
            assert!(reason.contains(why), "{input}: {reason}");
        }
    }
}
