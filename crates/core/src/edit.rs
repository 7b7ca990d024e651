//! Exact search/replace application: an edit applies exactly as specified or
//! is rejected with a reason; it never touches the rest of the file.

use cadre_types::{EditOp, WorkerChange};

/// Why a change could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditRejection {
    /// The change has no edits at all.
    #[error("the edit_file call contains no edits")]
    Empty,
    /// An edit's `old` text is empty.
    #[error("edit {index}: `old` is empty; use write_file to replace a whole file")]
    EmptyOld {
        /// Zero-based edit index.
        index: usize,
    },
    /// `old` does not occur in the file.
    #[error("edit {index}: `old` text not found in the file: {snippet:?}")]
    NotFound {
        /// Zero-based edit index.
        index: usize,
        /// The beginning of the missing text.
        snippet: String,
    },
    /// `old` occurs more than once.
    #[error(
        "edit {index}: `old` text matches {count} times; it must match exactly once (copy more of the surrounding lines into `old` to make it unique): {snippet:?}"
    )]
    Ambiguous {
        /// Zero-based edit index.
        index: usize,
        /// How many matches.
        count: usize,
        /// The beginning of the ambiguous text.
        snippet: String,
    },
}

fn snippet(s: &str) -> String {
    let line: String = s.chars().take(80).collect();
    if s.chars().count() > 80 {
        format!("{line}...")
    } else {
        line
    }
}

/// Applies `change` to `original`, edits in order, each against the result of
/// the previous one.
pub fn apply_change(original: &str, change: &WorkerChange) -> Result<String, EditRejection> {
    match change {
        WorkerChange::Write { content } => Ok(content.clone()),
        WorkerChange::Edits { edits } => apply_edits(original, edits),
    }
}

/// Every start position of `needle` in `haystack`, overlapping ones included
/// (`"aa"` occurs twice in `"aaa"`), so an ambiguous `old` is never applied.
pub fn occurrences(haystack: &str, needle: &str) -> Vec<usize> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = haystack[from..].find(needle) {
        let at = from + offset;
        found.push(at);
        // Step one character past this match's start to find overlapping ones.
        from = at + haystack[at..].chars().next().map_or(1, char::len_utf8);
        if from > haystack.len() {
            break;
        }
    }
    found
}

/// Applies search/replace edits in order.
pub fn apply_edits(original: &str, edits: &[EditOp]) -> Result<String, EditRejection> {
    if edits.is_empty() {
        return Err(EditRejection::Empty);
    }
    let mut text = original.to_owned();
    for (index, edit) in edits.iter().enumerate() {
        if edit.old.is_empty() {
            return Err(EditRejection::EmptyOld { index });
        }
        let positions = occurrences(&text, &edit.old);
        let Some(&at) = positions.first() else {
            return Err(EditRejection::NotFound {
                index,
                snippet: snippet(&edit.old),
            });
        };
        if positions.len() > 1 {
            return Err(EditRejection::Ambiguous {
                index,
                count: positions.len(),
                snippet: snippet(&edit.old),
            });
        }
        text.replace_range(at..at + edit.old.len(), &edit.new);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn op(old: &str, new: &str) -> EditOp {
        EditOp {
            old: old.into(),
            new: new.into(),
        }
    }

    #[test]
    fn applies_unique_edits_in_order() {
        let out = apply_edits("a b c", &[op("b", "B"), op("B c", "X")]).unwrap();
        assert_eq!(out, "a X");
    }

    #[test]
    fn overlapping_matches_are_ambiguous() {
        assert!(matches!(
            apply_edits("aaa", &[op("aa", "X")]),
            Err(EditRejection::Ambiguous { count: 2, .. })
        ));
        assert!(matches!(
            apply_edits("}\n}\n}\n", &[op("}\n}\n", "")]),
            Err(EditRejection::Ambiguous { .. })
        ));
        assert_eq!(occurrences("é-é", "é"), vec![0, 3]);
    }

    #[test]
    fn rejects_missing_ambiguous_and_empty() {
        assert!(matches!(
            apply_edits("abc", &[op("z", "y")]),
            Err(EditRejection::NotFound { index: 0, .. })
        ));
        assert!(matches!(
            apply_edits("aa", &[op("a", "b")]),
            Err(EditRejection::Ambiguous { count: 2, .. })
        ));
        assert_eq!(apply_edits("aa", &[]), Err(EditRejection::Empty));
        assert_eq!(
            apply_edits("aa", &[op("", "x")]),
            Err(EditRejection::EmptyOld { index: 0 })
        );
    }

    proptest! {
        // An edit either applies exactly (prefix and suffix around the unique
        // match are untouched) or is rejected; nothing else can happen.
        #[test]
        fn edit_applies_exactly_or_is_rejected(
            text in "[abc\n]{0,40}",
            old in "[abc\n]{1,4}",
            new in "[xyz\n]{0,4}",
        ) {
            let count = occurrences(&text, &old).len();
            match apply_edits(&text, &[op(&old, &new)]) {
                Ok(out) => {
                    prop_assert_eq!(count, 1);
                    let at = text.find(old.as_str()).unwrap();
                    let expected = format!("{}{}{}", &text[..at], new, &text[at + old.len()..]);
                    prop_assert_eq!(out, expected);
                }
                Err(EditRejection::NotFound { .. }) => prop_assert_eq!(count, 0),
                Err(EditRejection::Ambiguous { count: c, .. }) => {
                    prop_assert!(count > 1);
                    prop_assert_eq!(c, count);
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
