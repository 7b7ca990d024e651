//! Unified diffs of a job's changes (the patch, `cadre diff`, the reviewer's input).

use similar::TextDiff;

/// A unified diff of one file with 3 lines of context and `a/`/`b/` headers.
pub fn unified_diff(path: &str, old: &str, new: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

/// Lines added and removed between two texts.
pub fn line_counts(old: &str, new: &str) -> (u32, u32) {
    let diff = TextDiff::from_lines(old, new);
    let mut added = 0;
    let mut removed = 0;
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    (added, removed)
}

/// A git-style patch for several files.
pub fn patch(files: &[(String, String, String)]) -> String {
    let mut out = String::new();
    for (path, old, new) in files {
        if old == new {
            continue;
        }
        out.push_str(&format!("diff --git a/{path} b/{path}\n"));
        out.push_str(&unified_diff(path, old, new));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_and_counts() {
        let d = unified_diff("a.py", "x = 1\ny = 2\n", "x = 1\ny = 3\n");
        assert!(d.starts_with("--- a/a.py\n+++ b/a.py\n"), "{d}");
        assert!(d.contains("-y = 2\n+y = 3\n"));
        assert_eq!(line_counts("a\nb\n", "a\nc\nd\n"), (2, 1));
        assert!(patch(&[("a".into(), "x".into(), "x".into())]).is_empty());
    }
}
