//! The languages codemod rules run on: the tree-sitter grammars cadre
//! already builds for its syntax check, wrapped for `ast-grep-core`. Python,
//! Rust and Go do not accept `$` in identifiers, so their patterns use `µ`
//! for metavariables under the hood, as ast-grep itself does.

use std::borrow::Cow;
use std::path::Path;

use ast_grep_core::Language;
use ast_grep_core::matcher::{Pattern, PatternBuilder, PatternError};
use ast_grep_core::tree_sitter::{LanguageExt, StrDoc, TSLanguage};
use serde::{Deserialize, Deserializer};

/// A language a codemod rule may name (`language:` in its YAML).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodemodLanguage {
    /// `python`, `py`.
    Python,
    /// `typescript`, `ts`.
    TypeScript,
    /// `tsx`.
    Tsx,
    /// `javascript`, `js`, `jsx`.
    JavaScript,
    /// `rust`, `rs`.
    Rust,
    /// `go`, `golang`.
    Go,
}

/// The character that stands for `$` in patterns of languages whose
/// identifiers cannot hold `$`.
const EXPANDO: char = 'µ';

impl CodemodLanguage {
    /// The language a rule names, case-insensitive, with ast-grep's aliases.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "python" | "py" => Self::Python,
            "typescript" | "ts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "javascript" | "js" | "jsx" => Self::JavaScript,
            "rust" | "rs" => Self::Rust,
            "go" | "golang" => Self::Go,
            _ => return None,
        })
    }

    /// The language of a file, by extension.
    pub fn of_path(path: &str) -> Option<Self> {
        let ext = Path::new(path).extension()?.to_str()?;
        Some(match ext {
            "py" | "pyi" => Self::Python,
            "ts" | "mts" | "cts" => Self::TypeScript,
            "tsx" => Self::Tsx,
            "js" | "mjs" | "cjs" | "jsx" => Self::JavaScript,
            "rs" => Self::Rust,
            "go" => Self::Go,
            _ => return None,
        })
    }

    fn uses_expando(self) -> bool {
        matches!(self, Self::Python | Self::Rust | Self::Go)
    }
}

impl<'de> Deserialize<'de> for CodemodLanguage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unsupported language {name:?}: expected python, typescript, tsx, javascript, rust or go"
            ))
        })
    }
}

impl Language for CodemodLanguage {
    fn pre_process_pattern<'q>(&self, query: &'q str) -> Cow<'q, str> {
        if self.uses_expando() {
            Cow::Owned(query.replace('$', &EXPANDO.to_string()))
        } else {
            Cow::Borrowed(query)
        }
    }

    fn expando_char(&self) -> char {
        if self.uses_expando() { EXPANDO } else { '$' }
    }

    fn from_path<P: AsRef<Path>>(path: P) -> Option<Self> {
        Self::of_path(path.as_ref().to_str()?)
    }

    fn kind_to_id(&self, kind: &str) -> u16 {
        self.get_ts_language().id_for_node_kind(kind, true)
    }

    fn field_to_id(&self, field: &str) -> Option<u16> {
        self.get_ts_language()
            .field_id_for_name(field)
            .map(|f| f.get())
    }

    fn build_pattern(&self, builder: &PatternBuilder<'_>) -> Result<Pattern, PatternError> {
        builder.build(|src| StrDoc::try_new(src, *self))
    }
}

impl LanguageExt for CodemodLanguage {
    fn get_ts_language(&self) -> TSLanguage {
        match self {
            Self::Python => tree_sitter_python::LANGUAGE.into(),
            Self::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Self::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
            Self::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Self::Rust => tree_sitter_rust::LANGUAGE.into(),
            Self::Go => tree_sitter_go::LANGUAGE.into(),
        }
    }
}
