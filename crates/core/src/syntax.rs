//! Syntax validation with tree-sitter: an edit must not add parse errors.
//!
//! Languages are detected from the file extension. Unknown languages skip the
//! check (docs/architecture.md section 4.6).

use std::cell::RefCell;

use tree_sitter::{Language, Node, Parser};

/// Languages cadre can parse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceLanguage {
    /// `.rs`
    Rust,
    /// `.py`, `.pyi`
    Python,
    /// `.js`, `.mjs`, `.cjs`, `.jsx`
    JavaScript,
    /// `.ts`, `.mts`, `.cts`
    TypeScript,
    /// `.tsx`
    Tsx,
    /// `.go`
    Go,
}

impl SourceLanguage {
    /// Detects the language from a path's extension.
    pub fn from_path(path: &str) -> Option<Self> {
        let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())?;
        Some(match ext.as_str() {
            "rs" => Self::Rust,
            "py" | "pyi" => Self::Python,
            "js" | "mjs" | "cjs" | "jsx" => Self::JavaScript,
            "ts" | "mts" | "cts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "go" => Self::Go,
            _ => return None,
        })
    }

    /// A short name for reports and routing history.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Rust => "rust",
            Self::Python => "python",
            Self::JavaScript => "javascript",
            Self::TypeScript | Self::Tsx => "typescript",
            Self::Go => "go",
        }
    }

    fn grammar(&self) -> Language {
        match self {
            Self::Rust => tree_sitter_rust::LANGUAGE.into(),
            Self::Python => tree_sitter_python::LANGUAGE.into(),
            Self::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Self::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Self::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Self::Go => tree_sitter_go::LANGUAGE.into(),
        }
    }
}

/// The language name used for routing history ("other" when unknown).
pub fn language_name(path: &str) -> &'static str {
    SourceLanguage::from_path(path).map_or("other", |l| l.name())
}

/// A syntax problem found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxProblem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// `ERROR` or `MISSING <kind>`.
    pub what: String,
}

/// Parses `source` and lists its error and missing nodes (at most 20).
/// Returns `None` when the language is unknown or the parser is unavailable.
pub fn syntax_problems(path: &str, source: &str) -> Option<Vec<SyntaxProblem>> {
    let language = SourceLanguage::from_path(path)?;
    let tree = with_parser(language, |parser| parser.parse(source, None))??;
    let mut problems = Vec::new();
    collect(tree.root_node(), &mut problems);
    Some(problems)
}

thread_local! {
    /// One parser per thread, kept with the language it was last set to:
    /// a parser allocates its stacks and lexer once, not for every file.
    static PARSER: RefCell<Option<(SourceLanguage, Parser)>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's parser set to `language`; `None` when the
/// grammar cannot be loaded.
fn with_parser<T>(language: SourceLanguage, f: impl FnOnce(&mut Parser) -> T) -> Option<T> {
    PARSER.with(|cell| {
        // A parser already borrowed (not expected: parsing never re-enters)
        // is left alone and a fresh one used.
        let Ok(mut slot) = cell.try_borrow_mut() else {
            let mut parser = Parser::new();
            parser.set_language(&language.grammar()).ok()?;
            return Some(f(&mut parser));
        };
        if slot.as_ref().is_none_or(|(set, _)| *set != language) {
            let mut parser = Parser::new();
            parser.set_language(&language.grammar()).ok()?;
            *slot = Some((language, parser));
        }
        let (_, parser) = slot.as_mut()?;
        // A parse cut short leaves the parser mid-document; start afresh.
        parser.reset();
        Some(f(parser))
    })
}

fn collect(node: Node<'_>, out: &mut Vec<SyntaxProblem>) {
    if out.len() >= 20 || !node.has_error() && !node.is_missing() {
        return;
    }
    if node.is_error() || node.is_missing() {
        let at = node.start_position();
        let what = if node.is_missing() {
            format!("MISSING {}", node.kind())
        } else {
            "ERROR".to_owned()
        };
        out.push(SyntaxProblem {
            line: at.row + 1,
            column: at.column + 1,
            what,
        });
        if node.is_error() {
            return;
        }
    }
    let mut cursor = node.walk();
    for child in node.children(&mut cursor) {
        collect(child, out);
    }
}

/// Compares before and after: `Err(message)` when the edit added syntax errors.
pub fn check_no_new_errors(path: &str, before: &str, after: &str) -> Result<(), String> {
    let Some(after_problems) = syntax_problems(path, after) else {
        return Ok(());
    };
    // A clean result adds no errors whatever the original had: the original
    // is parsed only when there is something to compare.
    if after_problems.is_empty() {
        return Ok(());
    }
    let before_count = syntax_problems(path, before).map_or(0, |p| p.len());
    if after_problems.len() > before_count {
        let listed: Vec<String> = after_problems
            .iter()
            .take(5)
            .map(|p| {
                let text = after.lines().nth(p.line - 1).unwrap_or_default().trim();
                let text: String = text.chars().take(160).collect();
                format!("line {}:{} {}: `{text}`", p.line, p.column, p.what)
            })
            .collect();
        return Err(format!(
            "the edited file has {} syntax error(s) (the original had {}): {}",
            after_problems.len(),
            before_count,
            listed.join("; ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_new_errors_per_language() {
        let cases = [
            ("a.rs", "fn main() { let x = 1; }", "fn main() { let x = ; "),
            (
                "a.py",
                "def f(x):\n    return x\n",
                "def f(x:\n    return x\n",
            ),
            (
                "a.js",
                "function f(x) { return x; }",
                "function f(x { return x; }",
            ),
            (
                "a.ts",
                "function f(x: number): number { return x; }",
                "function f(x: number: number { return x; }",
            ),
            (
                "a.tsx",
                "const a = <div>hi</div>;",
                "const a = <div>hi</span;",
            ),
            (
                "a.go",
                "package main\nfunc main() {}\n",
                "package main\nfunc main() {\n",
            ),
        ];
        for (path, good, bad) in cases {
            assert!(check_no_new_errors(path, good, good).is_ok(), "{path} good");
            assert!(check_no_new_errors(path, good, bad).is_err(), "{path} bad");
        }
    }

    #[test]
    fn errors_the_original_already_had_are_not_new() {
        let broken = "def f(x:\n    return x\n";
        let still_broken = "def g(x:\n    return x\n";
        let worse = "def g(x:\n    return x\nclass (:\n";
        assert!(check_no_new_errors("a.py", broken, still_broken).is_ok());
        assert!(check_no_new_errors("a.py", broken, "def f(x):\n    return x\n").is_ok());
        assert!(check_no_new_errors("a.py", broken, worse).is_err());
    }

    #[test]
    fn the_reused_parser_follows_the_language_of_each_file() {
        // The same text is valid Python and broken Rust: the thread's parser
        // must switch grammars between calls, whatever it parsed last.
        let text = "x = [1, 2]\n";
        for _ in 0..2 {
            assert_eq!(syntax_problems("a.py", text).map(|p| p.len()), Some(0));
            assert!(syntax_problems("a.rs", text).is_some_and(|p| !p.is_empty()));
        }
    }

    #[test]
    fn unknown_language_is_skipped() {
        assert!(check_no_new_errors("notes.txt", "a", "(((").is_ok());
        assert_eq!(language_name("x.md"), "other");
        assert_eq!(language_name("x.py"), "python");
    }
}
