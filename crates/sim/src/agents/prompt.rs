//! Reading the prompts cadre sends: a worker's `<subtask>`, `<file>` and
//! `<feedback>` blocks, and a reviewer's `<diff path="...">` blocks.

/// The parts of a worker's first user message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WorkerPrompt {
    pub(crate) path: String,
    pub(crate) complexity: String,
    pub(crate) instruction: String,
    pub(crate) file: Option<String>,
    /// 1 + the number of earlier failed attempts (from `<feedback>` blocks).
    pub(crate) attempt: u32,
}

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
    }
    Some(WorkerPrompt {
        path,
        complexity,
        instruction,
        file,
        attempt: count.max(max_n) + 1,
    })
}

/// `(path, diff text)` for every `<diff path="P">` block.
pub(crate) fn parse_diffs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("<diff ") {
        let Some(tag_end) = rest[open..].find('>').map(|e| e + open) else {
            break;
        };
        let tag = &rest[open..=tag_end];
        let mut body_start = tag_end + 1;
        if rest[body_start..].starts_with('\n') {
            body_start += 1;
        }
        let close = rest[body_start..]
            .find("</diff>")
            .map_or(rest.len(), |c| c + body_start);
        if let Some(path) = attr(tag, "path") {
            out.push((path, rest[body_start..close].to_string()));
        }
        rest = &rest[(close + "</diff>".len()).min(rest.len())..];
    }
    out
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
}
