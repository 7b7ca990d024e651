//! Plan selectors expanded over the workspace index: a selector names files
//! by workspace-relative globs and a content match (a literal or a regex,
//! searched with the ripgrep crates `grep-regex`/`grep-searcher`, or an AST
//! pattern matched by `ast-grep-core`), so a change over 5,000 files costs
//! the planner one short entry. Explicit entries win over a selector for the
//! same file; every expanded entry records its selector. A hostile selector
//! (an absolute or escaping glob, a `.git` glob, a regex too large to
//! compile within bounds, a pattern that does not parse) is refused with a
//! reason and expands to nothing.

use std::collections::BTreeSet;
use std::path::Path;

use ast_grep_core::Pattern;
use ast_grep_core::tree_sitter::LanguageExt;
use cadre_types::{PlanSelector, PlannedSubtask, SelectorMatch, SubtaskAction};
use globset::{Glob, GlobSet, GlobSetBuilder};
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, SearcherBuilder, sinks};
use serde::{Deserialize, Serialize};

use crate::codemod::CodemodLanguage;
use crate::paths::validate_relative;

/// Sample paths kept per selector for `cadre plan` and the events.
pub const SAMPLE_PATHS: usize = 5;

/// The longest pattern (literal, regex or AST) a selector may hold.
const MAX_PATTERN_CHARS: usize = 2_000;

/// The compiled size a selector's regex may reach (bytes): bounds memory
/// and time however the pattern nests.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// What one selector expanded to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectorOutcome {
    /// The selector's id.
    pub id: String,
    /// Files it selected (explicit entries for the same file excluded).
    pub matched: usize,
    /// A few of them.
    pub samples: Vec<String>,
    /// Files its globs cover whose content did not match.
    pub left_out: usize,
    /// Files it matched that an explicit entry (or an earlier selector) already plans.
    pub overridden: usize,
    /// Why it was refused, if it was (then it selected nothing).
    pub rejected: Option<String>,
}

/// A selector's content match compiled for matching.
enum Matcher {
    Text(RegexMatcher),
    Ast(CodemodLanguage, Pattern),
}

/// Globs and a content match compiled: what a selector and the planner's
/// `search` tool both run over the index.
pub(crate) struct FileMatcher {
    globs: Option<GlobSet>,
    matcher: Matcher,
}

/// Checks and compiles a selector, or says why it is refused.
fn compile(selector: &PlanSelector) -> Result<FileMatcher, String> {
    if selector.id.trim().is_empty() || selector.id.chars().count() > 100 {
        return Err("a selector needs an id of 1 to 100 characters".to_owned());
    }
    compile_match(&selector.paths, &selector.matcher)
}

/// Checks and compiles workspace-relative globs and a content match, or
/// says why they are refused (the same rules for selectors and searches).
pub(crate) fn compile_match(paths: &[String], m: &SelectorMatch) -> Result<FileMatcher, String> {
    let globs = compile_globs(paths)?;
    let given = [&m.literal, &m.regex, &m.pattern]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if given != 1 {
        return Err(format!(
            "`match` needs exactly one of literal, regex or pattern; got {given}"
        ));
    }
    let text = m
        .literal
        .as_deref()
        .or(m.regex.as_deref())
        .or(m.pattern.as_deref())
        .unwrap_or_default();
    if text.is_empty() || text.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!(
            "the match must be 1 to {MAX_PATTERN_CHARS} characters"
        ));
    }
    let matcher = if let Some(pattern) = &m.pattern {
        let name = m.language.as_deref().unwrap_or_default();
        let language = CodemodLanguage::from_name(name).ok_or_else(|| {
            format!("an AST pattern needs a known language (python, typescript, tsx, javascript, rust, go), got {name:?}")
        })?;
        let compiled = Pattern::try_new(pattern, language)
            .map_err(|e| format!("the AST pattern does not parse as {name}: {e}"))?;
        Matcher::Ast(language, compiled)
    } else {
        let source = match (&m.literal, &m.regex) {
            (Some(literal), _) => regex_escape(literal),
            (None, Some(regex)) => regex.clone(),
            (None, None) => String::new(),
        };
        let compiled = RegexMatcherBuilder::new()
            .size_limit(REGEX_SIZE_LIMIT)
            .dfa_size_limit(REGEX_SIZE_LIMIT)
            .nest_limit(64)
            .build(&source)
            .map_err(|e| {
                format!("the regex is refused (invalid, or too large to run within bounds): {e}")
            })?;
        Matcher::Text(compiled)
    };
    Ok(FileMatcher { globs, matcher })
}

fn regex_escape(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() * 2);
    for c in literal.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Workspace-relative globs only: no absolute path, no `..`, nothing under `.git`.
fn compile_globs(globs: &[String]) -> Result<Option<GlobSet>, String> {
    if globs.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for glob in globs {
        if glob.starts_with('/') || glob.starts_with('\\') || Path::new(glob).is_absolute() {
            return Err(format!(
                "glob {glob:?} is absolute; globs are workspace-relative"
            ));
        }
        if glob.len() >= 2 && glob.as_bytes()[1] == b':' {
            return Err(format!(
                "glob {glob:?} names a drive; globs are workspace-relative"
            ));
        }
        for part in glob.split(['/', '\\']) {
            if part == ".." {
                return Err(format!("glob {glob:?} climbs out with '..'"));
            }
            if part.eq_ignore_ascii_case(".git") {
                return Err(format!("glob {glob:?} reaches into .git"));
            }
        }
        let compiled = Glob::new(glob).map_err(|e| format!("glob {glob:?}: {e}"))?;
        builder.add(compiled);
    }
    builder.build().map(Some).map_err(|e| format!("globs: {e}"))
}

impl Matcher {
    /// The first match in `content`: its line number (from 1) and line.
    fn first_match(&self, path: &str, content: &str) -> Option<(u64, String)> {
        match self {
            Matcher::Text(regex) => {
                let mut found = None;
                let mut searcher = SearcherBuilder::new()
                    .binary_detection(BinaryDetection::quit(0))
                    // The UTF8 sink refuses a search without line numbers.
                    .line_number(true)
                    .build();
                let sink = sinks::UTF8(|line, text| {
                    found = Some((line, text.trim_end().to_owned()));
                    Ok(false)
                });
                searcher
                    .search_slice(regex, content.as_bytes(), sink)
                    .ok()?;
                found
            }
            Matcher::Ast(language, pattern) => {
                if CodemodLanguage::of_path(path) != Some(*language) {
                    return None;
                }
                let root = language.ast_grep(content);
                let node = root.root().find(pattern)?;
                let line = node.start_pos().line();
                let text = content.lines().nth(line).unwrap_or_default();
                Some((line as u64 + 1, text.trim_end().to_owned()))
            }
        }
    }
}

impl FileMatcher {
    /// True when the globs cover `path` (a workspace-relative path).
    pub(crate) fn covers(&self, path: &str) -> bool {
        self.globs.as_ref().is_none_or(|g| g.is_match(path)) && validate_relative(path).is_ok()
    }

    /// The first match in `content` (line number from 1, the line), if any.
    pub(crate) fn first_match(&self, path: &str, content: &str) -> Option<(u64, String)> {
        self.matcher.first_match(path, content)
    }
}

/// Expands `selectors` over `files` (the index's readable files, in order),
/// reading each candidate with `read`. `planned` holds the paths explicit
/// entries already claim; an expanded file is added to it, so a file two
/// selectors match goes to the first. Returns the new entries and what each
/// selector did.
pub fn expand(
    selectors: &[PlanSelector],
    files: &[String],
    planned: &mut BTreeSet<String>,
    mut read: impl FnMut(&str) -> Option<String>,
) -> (Vec<PlannedSubtask>, Vec<SelectorOutcome>) {
    let mut entries = Vec::new();
    let mut outcomes = Vec::with_capacity(selectors.len());
    for selector in selectors {
        let mut outcome = SelectorOutcome {
            id: selector.id.clone(),
            ..SelectorOutcome::default()
        };
        let matcher = match compile(selector) {
            Ok(compiled) => compiled,
            Err(reason) => {
                outcome.rejected = Some(reason);
                outcomes.push(outcome);
                continue;
            }
        };
        for path in files {
            if !matcher.covers(path) {
                continue;
            }
            let Some(content) = read(path) else { continue };
            if matcher.first_match(path, &content).is_none() {
                outcome.left_out += 1;
                continue;
            }
            if !planned.insert(path.clone()) {
                outcome.overridden += 1;
                continue;
            }
            outcome.matched += 1;
            if outcome.samples.len() < SAMPLE_PATHS {
                outcome.samples.push(path.clone());
            }
            entries.push(PlannedSubtask {
                path: path.clone(),
                instruction: selector.instruction.clone(),
                complexity: selector.complexity,
                error_cost: selector.error_cost,
                action: SubtaskAction::Edit,
                to: None,
                rule: selector.rule.clone(),
                selector: Some(selector.id.clone()),
            });
        }
        outcomes.push(outcome);
    }
    (entries, outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cadre_types::{Complexity, ErrorCost};

    fn selector(id: &str, paths: &[&str], m: SelectorMatch) -> PlanSelector {
        PlanSelector {
            id: id.into(),
            paths: paths.iter().map(|p| (*p).to_owned()).collect(),
            matcher: m,
            complexity: Complexity::Mechanical,
            error_cost: ErrorCost::Low,
            instruction: "Rename UserId to AccountId.".into(),
            rule: None,
        }
    }

    fn literal(text: &str) -> SelectorMatch {
        SelectorMatch {
            literal: Some(text.into()),
            ..SelectorMatch::default()
        }
    }

    fn files() -> Vec<(String, String)> {
        vec![
            ("app/a.py".into(), "from m import UserId\n".into()),
            ("app/b.py".into(), "x = 'UserIdentity'\n".into()),
            ("app/c.py".into(), "y = 1\n".into()),
            ("web/d.ts".into(), "let u: UserId = make();\n".into()),
            ("README.md".into(), "UserId docs (a+b)\n".into()),
        ]
    }

    fn run(
        selectors: &[PlanSelector],
        explicit: &[&str],
    ) -> (Vec<PlannedSubtask>, Vec<SelectorOutcome>) {
        let files = files();
        let paths: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
        let mut planned: BTreeSet<String> = explicit.iter().map(|p| (*p).to_owned()).collect();
        expand(selectors, &paths, &mut planned, |p| {
            files.iter().find(|(q, _)| q == p).map(|(_, c)| c.clone())
        })
    }

    #[test]
    fn literal_regex_and_ast_selectors_expand_and_explicit_entries_win() {
        let (entries, outcomes) = run(
            &[
                selector("py-literal", &["app/**/*.py"], literal("UserId")),
                selector(
                    "ts-regex",
                    &["web/*.ts"],
                    SelectorMatch {
                        regex: Some(r"\bUserId\b".into()),
                        ..SelectorMatch::default()
                    },
                ),
                selector("md-literal", &[], literal("(a+b)")),
            ],
            &["app/b.py"],
        );
        let paths: Vec<(&str, Option<&str>)> = entries
            .iter()
            .map(|e| (e.path.as_str(), e.selector.as_deref()))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("app/a.py", Some("py-literal")),
                ("web/d.ts", Some("ts-regex")),
                ("README.md", Some("md-literal")),
            ]
        );
        assert_eq!(outcomes[0].matched, 1);
        assert_eq!(outcomes[0].overridden, 1, "app/b.py is planned explicitly");
        assert_eq!(outcomes[0].left_out, 1, "app/c.py does not mention it");
        assert_eq!(outcomes[2].samples, vec!["README.md".to_owned()]);

        let (entries, _) = run(
            &[selector(
                "ast",
                &[],
                SelectorMatch {
                    pattern: Some("UserId".into()),
                    language: Some("python".into()),
                    ..SelectorMatch::default()
                },
            )],
            &[],
        );
        // The identifier, not the string that contains the same letters.
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, vec!["app/a.py"]);
    }

    #[test]
    fn hostile_selectors_are_refused_with_a_reason() {
        let regex = |r: &str| SelectorMatch {
            regex: Some(r.into()),
            ..SelectorMatch::default()
        };
        let cases = [
            (selector("up", &["../**/*.py"], literal("x")), "'..'"),
            (selector("abs", &["/etc/**"], literal("x")), "absolute"),
            (selector("git", &[".git/**"], literal("x")), ".git"),
            (
                selector("huge", &[], regex("((((a{100}){100}){100}){100})")),
                "too large",
            ),
            (selector("bad", &[], regex("(unclosed")), "refused"),
            (
                selector(
                    "two",
                    &[],
                    SelectorMatch {
                        literal: Some("a".into()),
                        regex: Some("b".into()),
                        ..SelectorMatch::default()
                    },
                ),
                "exactly one",
            ),
            (
                selector(
                    "lang",
                    &[],
                    SelectorMatch {
                        pattern: Some("x".into()),
                        language: Some("cobol".into()),
                        ..SelectorMatch::default()
                    },
                ),
                "known language",
            ),
            (selector("", &[], literal("x")), "id"),
        ];
        for (s, why) in cases {
            let (entries, outcomes) = run(std::slice::from_ref(&s), &[]);
            assert!(entries.is_empty(), "{}", s.id);
            let reason = outcomes[0].rejected.clone().unwrap_or_default();
            assert!(reason.contains(why), "{}: {reason}", s.id);
        }
    }
}
