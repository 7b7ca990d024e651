//! Reading the prompts cadre sends: a worker's `<subtask>`, `<file>` and
//! `<feedback>` blocks, and a reviewer's `<diff path="...">` blocks and
//! codemod `<rule id="..." files="N">` blocks (the rule's `<yaml>` and its
//! `<sample path="...">` diffs).

/// The parts of a worker's first user message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkerPrompt {
    pub(crate) path: String,
    pub(crate) complexity: String,
    pub(crate) instruction: String,
    pub(crate) file: Option<String>,
    /// 1 + the number of earlier failed attempts (from `<feedback>` blocks).
    pub(crate) attempt: u32,
    /// The `<feedback>` blocks' messages, in order, each cut at
    /// [`FEEDBACK_LOGGED_CHARS`] characters.
    pub(crate) feedback: Vec<String>,
}

/// How much of each feedback message the request log keeps.
const FEEDBACK_LOGGED_CHARS: usize = 300;

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of `name="..."` inside an opening tag.
fn attr(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// The subtask, the file content and the attempt number of a worker prompt.
pub(crate) fn parse_worker_prompt(text: &str) -> Option<WorkerPrompt> {
    let open = text.find("<subtask ")?;
    let tag_end = text[open..].find('>')? + open;
    let tag = &text[open..=tag_end];
    let path = attr(tag, "path")?;
    let complexity = attr(tag, "complexity").unwrap_or_else(|| "mechanical".into());
    let body_start = tag_end + 1;
    let close = text[body_start..]
        .find("</subtask>")
        .map_or(text.len(), |i| i + body_start);
    let instruction = text[body_start..close].trim_matches('\n').to_string();

    let after = &text[close..];
    let file = after.find("<file ").and_then(|fo| {
        let fo_abs = close + fo;
        let ftag_end = text[fo_abs..].find('>')? + fo_abs;
        let mut content_start = ftag_end + 1;
        if text[content_start..].starts_with('\n') {
            content_start += 1;
        }
        // The last "\n</file>" followed only by feedback blocks (or nothing).
        let mut end = None;
        for (pos, _) in text.match_indices("\n</file>") {
            let rest = text[pos + "\n</file>".len()..].trim_start();
            if rest.is_empty() || rest.starts_with("<feedback") {
                end = Some(pos);
            }
        }
        let end = end.or_else(|| text.rfind("</file>"))?;
        if end < content_start {
            return Some(String::new());
        }
        Some(text[content_start..end].to_string())
    });
    let feedback_area = match text.rfind("</file>") {
        Some(p) => &text[p..],
        None => after,
    };
    let mut count = 0u32;
    let mut max_n = 0u32;
    let mut feedback = Vec::new();
    for (pos, _) in feedback_area.match_indices("<feedback") {
        count += 1;
        let tag_end = feedback_area[pos..]
            .find('>')
            .map_or(feedback_area.len(), |e| e + pos);
        if let Some(n) =
            attr(&feedback_area[pos..tag_end], "attempt").and_then(|n| n.parse::<u32>().ok())
        {
            max_n = max_n.max(n);
        }
        let body = feedback_area.get(tag_end + 1..).unwrap_or_default();
        let body = body.find("</feedback>").map_or(body, |end| &body[..end]);
        feedback.push(body.chars().take(FEEDBACK_LOGGED_CHARS).collect());
    }
    Some(WorkerPrompt {
        path,
        complexity,
        instruction,
        file,
        attempt: count.max(max_n) + 1,
        feedback,
    })
}

/// `(opening tag, body)` for every `<name ...>body</name>` block of `text`
/// (a body's leading newline left out; an unclosed block runs to the end).
fn blocks<'t>(text: &'t str, name: &str) -> Vec<(&'t str, &'t str)> {
    let (open_tag, close_tag) = (format!("<{name} "), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find(&open_tag) {
        let Some(tag_end) = rest[open..].find('>').map(|e| e + open) else {
            break;
        };
        let tag = &rest[open..=tag_end];
        let mut body_start = tag_end + 1;
        if rest[body_start..].starts_with('\n') {
            body_start += 1;
        }
        let close = rest[body_start..]
            .find(&close_tag)
            .map_or(rest.len(), |c| c + body_start);
        out.push((tag, &rest[body_start..close]));
        rest = &rest[(close + close_tag.len()).min(rest.len())..];
    }
    out
}

/// `(path, diff text)` for every `<diff path="P">` block.
pub(crate) fn parse_diffs(text: &str) -> Vec<(String, String)> {
    blocks(text, "diff")
        .into_iter()
        .filter_map(|(tag, body)| Some((attr(tag, "path")?, body.to_string())))
        .collect()
}

/// A codemod rule block of a review prompt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RuleReview {
    /// The rule's id (what the verdict names).
    pub(crate) id: String,
    /// How many files it rewrote.
    pub(crate) files: usize,
    /// `(path, diff text)` of the samples shown.
    pub(crate) samples: Vec<(String, String)>,
}

/// Every `<rule id="ID" files="N">` block with its `<sample>` diffs.
pub(crate) fn parse_rule_blocks(text: &str) -> Vec<RuleReview> {
    blocks(text, "rule")
        .into_iter()
        .filter_map(|(tag, body)| {
            Some(RuleReview {
                id: attr(tag, "id")?,
                files: attr(tag, "files").and_then(|n| n.parse().ok()).unwrap_or(0),
                samples: blocks(body, "sample")
                    .into_iter()
                    .filter_map(|(t, b)| Some((attr(t, "path")?, b.to_string())))
                    .collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn worker_prompt_parses_path_file_and_attempt() {
        let text = "<subtask path=\"app/a.py\" complexity=\"generative\" error_cost=\"low\">\nRename it.\n</subtask>\n<file path=\"app/a.py\">\nx = 1\n</file>\n</file>\n\n<feedback attempt=\"1\" kind=\"syntax_error\">bad</feedback>\n<feedback attempt=\"2\" kind=\"review\">no</feedback>";
        let p = parse_worker_prompt(text).unwrap();
        assert_eq!(p.path, "app/a.py");
        assert_eq!(p.complexity, "generative");
        assert_eq!(p.instruction, "Rename it.");
        assert_eq!(p.file.as_deref(), Some("x = 1\n</file>"));
        assert_eq!(p.attempt, 3);
        assert_eq!(p.feedback, vec!["bad".to_string(), "no".to_string()]);
    }

    #[test]
    fn empty_file_content_parses() {
        let text = "<subtask path=\"n.py\" complexity=\"mechanical\" error_cost=\"low\">\nCreate.\n</subtask>\n<file path=\"n.py\">\n\n</file>";
        assert_eq!(parse_worker_prompt(text).unwrap().file.as_deref(), Some(""));
    }

    #[test]
    fn diffs_are_split_per_path() {
        let text = "Review:\n<diff path=\"a.py\">\n--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n</diff>\n<diff path=\"b.py\">\n@@ -1 +1 @@\n-p\n+q\n</diff>";
        let d = parse_diffs(text);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].0, "a.py");
        assert_eq!(d[0].1, "--- a/a.py\n+++ b/a.py\n@@ -1 +1 @@\n-x\n+y\n");
        assert_eq!(d[1].0, "b.py");
    }

    #[test]
    fn rule_blocks_carry_their_id_count_and_samples() {
        let text = "Some files were rewritten by a codemod.\n<rule id=\"rename-py\" files=\"40\" shown=\"2\">\n<yaml>\nid: rename-py\n</yaml>\n<sample path=\"a.py\">\n@@ -1 +1 @@\n-x\n+y\n</sample>\n<sample path=\"b.py\">\n@@ -1 +1 @@\n-p\n+q\n</sample>\n</rule>\n<diff path=\"c.py\">\n@@ -1 +1 @@\n-m\n+n\n</diff>\n";
        let rules = parse_rule_blocks(text);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].id, "rename-py");
        assert_eq!(rules[0].files, 40);
        assert_eq!(
            rules[0].samples,
            vec![
                ("a.py".to_string(), "@@ -1 +1 @@\n-x\n+y\n".to_string()),
                ("b.py".to_string(), "@@ -1 +1 @@\n-p\n+q\n".to_string())
            ]
        );
        // Samples are not per-file diffs.
        let diffs = parse_diffs(text);
        assert_eq!(diffs.len(), 1);
        assert_eq!(diffs[0].0, "c.py");
    }
}
