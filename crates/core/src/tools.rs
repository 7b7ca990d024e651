//! The worker's read-only tools: `read_file { path }` and `grep { pattern }`
//! over the workspace's indexed files. They run on a blocking thread (file
//! reads never stall the async workers), stop at their hit cap, and answer
//! an unknown tool name with an error the model can read.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Arc;

use cadre_llm::types::ContentBlock;
use serde_json::Value;

use crate::paths::validate_in_workspace;
use crate::{Error, Result};

/// Most matching lines one `grep` answers.
pub(crate) const GREP_MAX_HITS: usize = 100;

/// Most characters of one matching line in a `grep` answer.
const GREP_LINE_CHARS: usize = 200;

/// A read-only tool call a worker made.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LookTool {
    ReadFile { path: String },
    Grep { pattern: String },
}

impl LookTool {
    /// Reads a tool call; `Err` is the message the model gets back.
    pub fn parse(name: &str, input: &Value) -> std::result::Result<Self, String> {
        match name {
            "read_file" => match input.get("path").and_then(Value::as_str) {
                Some(path) => Ok(Self::ReadFile {
                    path: path.to_owned(),
                }),
                None => Err("read_file needs a string `path`".to_owned()),
            },
            "grep" => match input.get("pattern").and_then(Value::as_str) {
                Some(pattern) if !pattern.is_empty() => Ok(Self::Grep {
                    pattern: pattern.to_owned(),
                }),
                _ => Err("grep needs a non-empty string `pattern`".to_owned()),
            },
            other => Err(format!(
                "unknown tool {other:?}; the read-only tools are read_file and grep, \
                 and edit_file or write_file changes your file"
            )),
        }
    }
}

/// The workspace the tools may read: its root and its indexed files.
#[derive(Debug, Clone)]
pub(crate) struct ToolWorkspace {
    pub root: PathBuf,
    pub files: Arc<[String]>,
}

impl ToolWorkspace {
    /// Answers one read-only tool call as a `tool_result` block.
    pub async fn answer(&self, id: &str, name: &str, input: &Value) -> Result<ContentBlock> {
        let result = match LookTool::parse(name, input) {
            Err(message) => Err(message),
            Ok(tool) => {
                let workspace = self.clone();
                tokio::task::spawn_blocking(move || workspace.run(&tool))
                    .await
                    .map_err(|source| Error::Task {
                        task: "worker tool",
                        source,
                    })?
            }
        };
        let (content, is_error) = match result {
            Ok(text) => (text, false),
            Err(text) => (text, true),
        };
        Ok(ContentBlock::ToolResult {
            tool_use_id: id.to_owned(),
            content,
            is_error,
        })
    }

    fn run(&self, tool: &LookTool) -> std::result::Result<String, String> {
        match tool {
            LookTool::ReadFile { path } => {
                let rel = validate_in_workspace(&self.root, path).map_err(|e| e.to_string())?;
                if !self.files.iter().any(|f| f == rel.as_str()) {
                    return Err(format!("{rel} is not a readable file of the workspace"));
                }
                std::fs::read_to_string(rel.join_to(&self.root)).map_err(|e| format!("{rel}: {e}"))
            }
            LookTool::Grep { pattern } => Ok(self.grep(pattern)),
        }
    }

    /// Lines containing `pattern`, file by file, up to [`GREP_MAX_HITS`];
    /// files after the cap are not read.
    fn grep(&self, pattern: &str) -> String {
        let mut out = String::new();
        let mut hits = 0;
        'files: for rel in self.files.iter() {
            let Ok(file) = std::fs::File::open(self.root.join(rel)) else {
                continue;
            };
            for (n, line) in BufReader::new(file).lines().enumerate() {
                let Ok(line) = line else { continue 'files };
                if line.contains(pattern) {
                    hits += 1;
                    let shown: String = line.chars().take(GREP_LINE_CHARS).collect();
                    out.push_str(&format!("{rel}:{}: {shown}\n", n + 1));
                    if hits == GREP_MAX_HITS {
                        out.push_str(&format!("[stopped at {GREP_MAX_HITS} matches]\n"));
                        break 'files;
                    }
                }
            }
        }
        if out.is_empty() {
            "no matches".to_owned()
        } else {
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn workspace(dir: &std::path::Path, files: Vec<String>) -> ToolWorkspace {
        ToolWorkspace {
            root: dir.to_path_buf(),
            files: files.into(),
        }
    }

    #[tokio::test]
    async fn an_unknown_tool_is_answered_as_an_error_naming_it_not_as_grep() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "x = 1\n").unwrap();
        let ws = workspace(dir.path(), vec!["a.py".into()]);
        let answer = ws
            .answer("t1", "delete_file", &serde_json::json!({"pattern": "x"}))
            .await
            .unwrap();
        let ContentBlock::ToolResult {
            content, is_error, ..
        } = answer
        else {
            panic!("not a tool result: {answer:?}");
        };
        assert!(is_error);
        assert!(
            content.contains("unknown tool \"delete_file\""),
            "{content}"
        );
    }

    /// A grep stops reading files once it has its hits: a file after the cap
    /// that would block every read (a FIFO nobody writes to) is never opened.
    #[tokio::test]
    async fn grep_stops_reading_at_its_hit_cap() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..GREP_MAX_HITS {
            let name = format!("f{i:03}.py");
            std::fs::write(dir.path().join(&name), "OldName()\n").unwrap();
            files.push(name);
        }
        let fifo = dir.path().join("zz_fifo.py");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        files.push("zz_fifo.py".into());
        let ws = workspace(dir.path(), files);
        let answer = match tokio::time::timeout(
            Duration::from_secs(10),
            ws.answer("t1", "grep", &serde_json::json!({"pattern": "OldName"})),
        )
        .await
        {
            Ok(answer) => answer.unwrap(),
            Err(_) => {
                // Release the blocked reader so the runtime can shut down.
                drop(std::fs::OpenOptions::new().write(true).open(&fifo));
                panic!("grep kept reading past its hit cap (it opened the FIFO)");
            }
        };
        let ContentBlock::ToolResult { content, .. } = answer else {
            panic!("not a tool result");
        };
        assert_eq!(content.matches("OldName()").count(), GREP_MAX_HITS);
        assert!(content.contains("stopped at 100 matches"), "{content}");
    }

    #[tokio::test]
    async fn read_file_answers_only_indexed_files_inside_the_workspace() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "x = 1\n").unwrap();
        std::fs::write(dir.path().join("secret.env"), "KEY=1\n").unwrap();
        let ws = workspace(dir.path(), vec!["a.py".into()]);
        let read = |path: &'static str| {
            let ws = ws.clone();
            async move {
                match ws
                    .answer("t", "read_file", &serde_json::json!({ "path": path }))
                    .await
                    .unwrap()
                {
                    ContentBlock::ToolResult {
                        content, is_error, ..
                    } => (content, is_error),
                    other => panic!("{other:?}"),
                }
            }
        };
        assert_eq!(read("a.py").await, ("x = 1\n".to_owned(), false));
        assert!(read("secret.env").await.1);
        assert!(read("../etc/passwd").await.1);
    }
}
