//! Unified diffs as the reviewer sees them: parse, apply, compare.

use similar::{ChangeTag, TextDiff};

/// One `@@ -a,b +c,d @@` hunk.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Hunk {
    old_start: usize,
    old_len: usize,
    /// (tag, text) with tag one of ' ', '-', '+'.
    lines: Vec<(char, String)>,
    old_no_newline: bool,
    new_no_newline: bool,
}

/// A parsed single-file unified diff.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct UnifiedDiff {
    hunks: Vec<Hunk>,
}

fn parse_range(s: &str) -> Option<(usize, usize)> {
    let s = s.get(1..)?;
    match s.split_once(',') {
        Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
        None => Some((s.parse().ok()?, 1)),
    }
}

/// Parses the hunks of a unified diff; `---`/`+++`/`diff`/`index` headers
/// before the first hunk are skipped. Hunk bodies are read by their declared
/// line counts, so content lines that look like headers are handled.
pub(crate) fn parse(text: &str) -> Result<UnifiedDiff, String> {
    let mut hunks = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.starts_with("@@") {
            continue;
        }
        let mut parts = line.split_whitespace().skip(1);
        let (old_start, old_len) = parts
            .next()
            .and_then(parse_range)
            .ok_or_else(|| format!("bad hunk header {line:?}"))?;
        let (_new_start, new_len) = parts
            .next()
            .and_then(parse_range)
            .ok_or_else(|| format!("bad hunk header {line:?}"))?;
        let mut hunk = Hunk {
            old_start,
            old_len,
            lines: Vec::new(),
            old_no_newline: false,
            new_no_newline: false,
        };
        let (mut old_left, mut new_left) = (old_len, new_len);
        while old_left > 0 || new_left > 0 {
            let Some(body) = lines.next() else {
                return Err("diff ends inside a hunk".into());
            };
            let (tag, rest) = match body.chars().next() {
                None => (' ', ""),
                Some(c @ (' ' | '-' | '+')) => (c, &body[1..]),
                Some('\\') => continue,
                Some(_) => return Err(format!("unexpected line in hunk: {body:?}")),
            };
            match tag {
                ' ' => {
                    old_left = old_left.saturating_sub(1);
                    new_left = new_left.saturating_sub(1);
                }
                '-' => old_left = old_left.saturating_sub(1),
                _ => new_left = new_left.saturating_sub(1),
            }
            hunk.lines.push((tag, rest.to_string()));
        }
        // "\ No newline at end of file" markers right after the hunk body.
        while let Some(next) = lines.peek() {
            if !next.starts_with('\\') {
                break;
            }
            lines.next();
            match hunk.lines.last().map(|(t, _)| *t) {
                Some('-') => hunk.old_no_newline = true,
                Some('+') => hunk.new_no_newline = true,
                _ => {
                    hunk.old_no_newline = true;
                    hunk.new_no_newline = true;
                }
            }
        }
        // A marker after a '-' line followed by '+' lines: the '+' side has a newline.
        hunks.push(hunk);
    }
    Ok(UnifiedDiff { hunks })
}

impl UnifiedDiff {
    /// Applies the diff to `original`; context and removed lines must match.
    pub(crate) fn apply(&self, original: &str) -> Result<String, String> {
        let old: Vec<&str> = original.lines().collect();
        let mut out: Vec<String> = Vec::with_capacity(old.len() + 8);
        let mut cursor = 0usize;
        let mut final_newline = original.ends_with('\n') || original.is_empty();
        for hunk in &self.hunks {
            let start = if hunk.old_len == 0 {
                hunk.old_start
            } else {
                hunk.old_start.saturating_sub(1)
            };
            if start < cursor || start > old.len() {
                return Err(format!(
                    "hunk at line {} is out of order or out of range",
                    hunk.old_start
                ));
            }
            out.extend(old[cursor..start].iter().map(|s| (*s).to_string()));
            cursor = start;
            for (tag, text) in &hunk.lines {
                match tag {
                    '+' => out.push(text.clone()),
                    _ => {
                        let actual = old
                            .get(cursor)
                            .ok_or_else(|| "hunk runs past the end of the file".to_string())?;
                        if actual != text {
                            return Err(format!(
                                "line {} is {actual:?}, the diff expects {text:?}",
                                cursor + 1
                            ));
                        }
                        if *tag == ' ' {
                            out.push(text.clone());
                        }
                        cursor += 1;
                    }
                }
            }
            if cursor == old.len() {
                final_newline = !hunk.new_no_newline;
            }
        }
        out.extend(old[cursor..].iter().map(|s| (*s).to_string()));
        let mut text = out.join("\n");
        if final_newline && !out.is_empty() {
            text.push('\n');
        }
        Ok(text)
    }

    /// Removed and added lines as sorted multisets.
    pub(crate) fn changed_lines(&self) -> (Vec<String>, Vec<String>) {
        let mut removed = Vec::new();
        let mut added = Vec::new();
        for hunk in &self.hunks {
            for (tag, text) in &hunk.lines {
                match tag {
                    '-' => removed.push(text.clone()),
                    '+' => added.push(text.clone()),
                    _ => {}
                }
            }
        }
        removed.sort();
        added.sort();
        (removed, added)
    }
}

/// Removed and added lines (sorted multisets) of the line diff `old -> new`.
pub(crate) fn expected_changes(old: &str, new: &str) -> (Vec<String>, Vec<String>) {
    let diff = TextDiff::from_lines(old, new);
    let mut removed = Vec::new();
    let mut added = Vec::new();
    for change in diff.iter_all_changes() {
        let text = change
            .value()
            .trim_end_matches('\n')
            .trim_end_matches('\r')
            .to_string();
        match change.tag() {
            ChangeTag::Delete => removed.push(text),
            ChangeTag::Insert => added.push(text),
            ChangeTag::Equal => {}
        }
    }
    removed.sort();
    added.sort();
    (removed, added)
}

/// Items of sorted multiset `a` missing from sorted multiset `b`.
pub(crate) fn multiset_minus(a: &[String], b: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() {
        if j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && b[j] < a[i] {
            j += 1;
        } else {
            out.push(a[i].clone());
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn unified(old: &str, new: &str) -> String {
        TextDiff::from_lines(old, new)
            .unified_diff()
            .context_radius(3)
            .header("a/p", "b/p")
            .to_string()
    }

    #[test]
    fn a_similar_diff_round_trips() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n";
        let new = "a\nB\nc\nd\ne\nf\ng\nh\ni\nJ\nk\n";
        let d = parse(&unified(old, new)).unwrap();
        assert_eq!(d.apply(old).unwrap(), new);
        assert_eq!(d.changed_lines(), expected_changes(old, new));
    }

    #[test]
    fn missing_final_newline_is_tracked() {
        let old = "a\nb\n";
        let new = "a\nc";
        let d = parse(&unified(old, new)).unwrap();
        assert_eq!(d.apply(old).unwrap(), new);
    }

    #[test]
    fn header_lookalike_content_lines_are_content() {
        let old = "x\n-- y\n";
        let new = "x\n";
        let text = unified(old, new);
        assert!(text.contains("\n--- y\n"));
        let d = parse(&text).unwrap();
        assert_eq!(d.apply(old).unwrap(), new);
    }

    #[test]
    fn context_mismatch_is_an_error() {
        let d = parse(&unified("a\nb\n", "a\nc\n")).unwrap();
        assert!(d.apply("z\nb\n").is_err());
    }

    #[test]
    fn multiset_difference() {
        let a = vec!["a".to_string(), "a".to_string(), "b".to_string()];
        let b = vec!["a".to_string(), "c".to_string()];
        assert_eq!(
            multiset_minus(&a, &b),
            vec!["a".to_string(), "b".to_string()]
        );
    }
}
