//! Exact search/replace edits and the text surgery behind wrong answers.

use crate::scenario::EditSpec;

/// Applies `edits` in order; each `old` must occur exactly once in the text
/// as it stands when that edit is applied. The error says which edit failed.
pub(crate) fn apply_edits(text: &str, edits: &[EditSpec]) -> Result<String, String> {
    let mut current = text.to_string();
    for (i, edit) in edits.iter().enumerate() {
        if edit.old.is_empty() {
            return Err(format!("edit {}: `old` is empty", i + 1));
        }
        let count = current.matches(edit.old.as_str()).count();
        if count != 1 {
            return Err(format!(
                "edit {}: `old` text {:?} occurs {count} times (must be exactly once)",
                i + 1,
                preview(&edit.old)
            ));
        }
        current = current.replacen(edit.old.as_str(), &edit.new, 1);
    }
    Ok(current)
}

/// The first 60 characters of `s`, for messages.
pub(crate) fn preview(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

/// `content` with a stray closing parenthesis on a new last line: unbalanced
/// at file level, which no supported language parses.
pub(crate) fn break_syntax(content: &str) -> String {
    let mut out = content.to_string();
    if !out.ends_with('\n') && !out.is_empty() {
        out.push('\n');
    }
    out.push_str(")\n");
    out
}

/// An edit list that applies `edits` and then also appends a stray `)` line at
/// the end of the file, anchored on the smallest unique tail of the edited
/// text. `None` when no unique anchor exists.
pub(crate) fn syntax_breaking_edits(file: &str, edits: &[EditSpec]) -> Option<Vec<EditSpec>> {
    let edited = apply_edits(file, edits).ok()?;
    let trimmed = edited.trim_end_matches('\n');
    if trimmed.is_empty() {
        return None;
    }
    let lines: Vec<&str> = trimmed.split('\n').collect();
    for take in 1..=lines.len() {
        let tail = lines[lines.len() - take..].join("\n");
        if tail.trim().is_empty() {
            continue;
        }
        if edited.matches(tail.as_str()).count() == 1 {
            let mut out = edits.to_vec();
            out.push(EditSpec {
                old: tail.clone(),
                new: format!("{tail}\n)"),
            });
            return Some(out);
        }
    }
    None
}

/// The expected content with its last changed line missed: a replaced line
/// keeps its original text, an inserted line is dropped, and when the change
/// only deletes lines the last deleted line is kept. With a single one-line
/// change the result is the original (the only change is missed).
pub(crate) fn drop_last_change(original: &str, expected: &str) -> String {
    use similar::{DiffOp, TextDiff};
    let diff = TextDiff::from_lines(original, expected);
    let old_lines: Vec<&str> = split_keep(original);
    let new_lines: Vec<&str> = split_keep(expected);
    let ops = diff.ops().to_vec();
    let Some(last_change) = ops
        .iter()
        .rposition(|op| !matches!(op, DiffOp::Equal { .. }))
    else {
        return expected.to_string();
    };
    let mut out = String::with_capacity(expected.len());
    for (i, op) in ops.iter().enumerate() {
        let (old_range, new_range) = (op.old_range(), op.new_range());
        if i != last_change {
            for line in &new_lines[new_range] {
                out.push_str(line);
            }
            continue;
        }
        match op {
            DiffOp::Equal { .. } => {}
            DiffOp::Delete { .. } => {
                // Keep the last deleted line.
                if let Some(line) = old_lines[old_range].last() {
                    out.push_str(line);
                }
            }
            DiffOp::Insert { .. } => {
                let inserted = &new_lines[new_range];
                for line in &inserted[..inserted.len().saturating_sub(1)] {
                    out.push_str(line);
                }
            }
            DiffOp::Replace { .. } => {
                let removed = &old_lines[old_range];
                let added = &new_lines[new_range];
                if let Some((last_removed, _)) = removed.split_last() {
                    // Every added line but the last, then the original of the last.
                    for line in &added[..added.len().saturating_sub(1)] {
                        out.push_str(line);
                    }
                    if removed.len() == added.len() {
                        out.push_str(last_removed);
                    }
                } else {
                    for line in added {
                        out.push_str(line);
                    }
                }
            }
        }
    }
    out
}

/// Splits into lines keeping their terminators (the last line may lack one).
pub(crate) fn split_keep(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// A variant of `old` that does not occur anywhere in `file`.
pub(crate) fn mismatching_old(file: &str, old: &str) -> String {
    let swapped: String = {
        let mut done = false;
        old.chars()
            .map(|c| {
                if !done && c.is_ascii_alphabetic() {
                    done = true;
                    if c.is_ascii_uppercase() {
                        c.to_ascii_lowercase()
                    } else {
                        c.to_ascii_uppercase()
                    }
                } else {
                    c
                }
            })
            .collect()
    };
    let candidates = [
        swapped,
        format!("{old} "),
        format!(" {old}"),
        format!("{old}_"),
        format!("{old}\n    // updated"),
    ];
    for candidate in candidates {
        if !candidate.is_empty() && !file.contains(candidate.as_str()) {
            return candidate;
        }
    }
    // Longer than the file: cannot occur.
    format!("{file}{old}#")
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn e(old: &str, new: &str) -> EditSpec {
        EditSpec {
            old: old.into(),
            new: new.into(),
        }
    }

    #[test]
    fn edits_require_unique_matches() {
        assert_eq!(apply_edits("a b c", &[e("b", "x")]).unwrap(), "a x c");
        assert!(
            apply_edits("a b b", &[e("b", "x")])
                .unwrap_err()
                .contains("occurs 2 times")
        );
        assert!(
            apply_edits("a", &[e("z", "x")])
                .unwrap_err()
                .contains("occurs 0 times")
        );
    }

    #[test]
    fn syntax_breaking_edits_end_with_a_stray_paren() {
        let file = "def f():\n    return 1\n\ndef g():\n    return 1\n";
        let edits = syntax_breaking_edits(file, &[e("def f", "def h")]).unwrap();
        let out = apply_edits(file, &edits).unwrap();
        assert_eq!(out, "def h():\n    return 1\n\ndef g():\n    return 1\n)\n");
    }

    #[test]
    fn dropping_the_last_change_keeps_the_original_line() {
        let original = "a = UserId()\nb = 1\nc = UserId()\n";
        let expected = "a = AccountId()\nb = 1\nc = AccountId()\n";
        assert_eq!(
            drop_last_change(original, expected),
            "a = AccountId()\nb = 1\nc = UserId()\n"
        );
        // A pure insertion: the inserted line is dropped.
        assert_eq!(drop_last_change("x\n", "x\ny\nz\n"), "x\ny\n");
        // A pure deletion: the last deleted line survives.
        assert_eq!(drop_last_change("x\ny\nz\n", "x\n"), "x\nz\n");
    }

    #[test]
    fn mismatching_old_never_occurs() {
        let file = "class UserId:\n    pass\n";
        let old = mismatching_old(file, "class UserId");
        assert!(!file.contains(&old));
    }
}
