//! Codemod rules in ast-grep's own YAML format (`id`, `language`, `rule`
//! with its `pattern`/`kind`/relational keys, `constraints`, `transform`,
//! `fix`), parsed and matched by `ast-grep-config` and `ast-grep-core`, so
//! rules users already have run unchanged.

use ast_grep_config::{GlobalRules, RuleConfig, from_yaml_string};
use ast_grep_core::tree_sitter::LanguageExt;

use super::lang::CodemodLanguage;

/// One parsed rule with a fix.
pub struct CodemodRule {
    /// The rule's `id`.
    pub id: String,
    /// The rule's `language`.
    pub language: CodemodLanguage,
    config: RuleConfig<CodemodLanguage>,
}

impl std::fmt::Debug for CodemodRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodemodRule")
            .field("id", &self.id)
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}

/// What a rule did to one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// Places the rule matched.
    pub matches: usize,
    /// The file after the fixes.
    pub content: String,
}

/// Parses every rule of a YAML text (documents separated by `---`). Each
/// must have a `fix`: a rule without one cannot rewrite anything.
pub fn parse_rules(yaml: &str) -> Result<Vec<CodemodRule>, String> {
    let globals = GlobalRules::default();
    let configs = from_yaml_string::<CodemodLanguage>(yaml, &globals)
        .map_err(|e| format!("not an ast-grep rule: {}", error_chain(&e)))?;
    if configs.is_empty() {
        return Err("no rule in the YAML".to_owned());
    }
    configs
        .into_iter()
        .map(|config| {
            let id = config.id.clone();
            if config.fix.is_none() {
                return Err(format!("rule {id:?} has no `fix`"));
            }
            config
                .get_fixer()
                .map_err(|e| format!("rule {id:?}: bad `fix`: {}", error_chain(&e)))?;
            Ok(CodemodRule {
                language: config.language,
                id,
                config,
            })
        })
        .collect()
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

impl CodemodRule {
    /// True when the rule's language is the file's.
    pub fn applies_to(&self, path: &str) -> bool {
        CodemodLanguage::of_path(path) == Some(self.language)
    }

    /// Runs the rule over `source`: every non-overlapping match replaced by
    /// its fix.
    pub fn rewrite(&self, source: &str) -> Result<Rewrite, String> {
        let fixers = self
            .config
            .get_fixer()
            .map_err(|e| format!("rule {:?}: bad `fix`: {}", self.id, error_chain(&e)))?;
        let Some(fixer) = fixers.first() else {
            return Err(format!("rule {:?} has no `fix`", self.id));
        };
        let grep = self.language.ast_grep(source);
        let edits = grep.root().replace_all(&self.config.matcher, fixer);
        let mut content = String::with_capacity(source.len());
        let bytes = source.as_bytes();
        let mut at = 0;
        let mut out: Vec<u8> = Vec::with_capacity(source.len());
        for edit in &edits {
            if edit.position < at {
                continue;
            }
            out.extend_from_slice(&bytes[at..edit.position]);
            out.extend_from_slice(&edit.inserted_text);
            at = edit.position + edit.deleted_length;
        }
        out.extend_from_slice(&bytes[at.min(bytes.len())..]);
        content.push_str(
            &String::from_utf8(out).map_err(|_| "the fix produced invalid UTF-8".to_owned())?,
        );
        Ok(Rewrite {
            matches: edits.len(),
            content,
        })
    }

    /// How many places the rule matches in `source`.
    pub fn count_matches(&self, source: &str) -> usize {
        let grep = self.language.ast_grep(source);
        grep.root().find_all(&self.config.matcher).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RENAME_PY: &str =
        "id: user-id-to-account-id\nlanguage: python\nrule:\n  pattern: UserId\nfix: AccountId\n";

    #[test]
    fn a_python_rule_renames_identifiers_not_strings() {
        let rules = parse_rules(RENAME_PY).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].id, "user-id-to-account-id");
        assert!(rules[0].applies_to("app/models.py"));
        assert!(!rules[0].applies_to("app/models.rs"));
        let source = "from ids import UserId\n\ndef f(u: UserId) -> str:\n    return \"UserId\"\n";
        let out = rules[0].rewrite(source).unwrap();
        assert_eq!(out.matches, 2);
        assert_eq!(
            out.content,
            "from ids import AccountId\n\ndef f(u: AccountId) -> str:\n    return \"UserId\"\n"
        );
    }

    #[test]
    fn metavariables_carry_over_in_python_and_typescript() {
        let py = parse_rules(
            "id: print-to-log\nlanguage: python\nrule:\n  pattern: print($MSG)\nfix: log.info($MSG)\n",
        )
        .unwrap();
        let out = py[0].rewrite("print('a')\nx = 1\nprint(x + 1)\n").unwrap();
        assert_eq!(out.content, "log.info('a')\nx = 1\nlog.info(x + 1)\n");
        let ts = parse_rules(
            "id: var-to-let\nlanguage: TypeScript\nrule:\n  pattern: var $A = $B\nfix: let $A = $B;\n",
        )
        .unwrap();
        let out = ts[0].rewrite("var a = 1;\nconst b = 2;\n").unwrap();
        assert_eq!(out.content, "let a = 1;\nconst b = 2;\n");
        assert_eq!(ts[0].count_matches("var q = 3;"), 1);
    }

    #[test]
    fn several_documents_and_bad_rules() {
        let two = format!(
            "{RENAME_PY}---\nid: rs\nlanguage: rust\nrule:\n  regex: ^UserId$\n  any:\n    - kind: identifier\n    - kind: type_identifier\nfix: AccountId\n"
        );
        let rules = parse_rules(&two).unwrap();
        assert_eq!(rules.len(), 2);
        let out = rules[1]
            .rewrite("fn f(u: UserId) -> UserId { u }\n")
            .unwrap();
        assert_eq!(out.content, "fn f(u: AccountId) -> AccountId { u }\n");
        let no_fix =
            parse_rules("id: x\nlanguage: python\nrule:\n  pattern: UserId\n").unwrap_err();
        assert!(no_fix.contains("no `fix`"), "{no_fix}");
        let bad_lang =
            parse_rules("id: x\nlanguage: cobol\nrule:\n  pattern: A\nfix: B\n").unwrap_err();
        assert!(bad_lang.contains("cobol"), "{bad_lang}");
        assert!(parse_rules("").is_err());
    }
}
