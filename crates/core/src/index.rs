//! Workspace indexing: which files exist, which can be sent to a model, and
//! a compact map of them for the planner.
//!
//! The walk respects `.gitignore` (the `ignore` crate) and never follows
//! symlinks. Binary, non-UTF-8 and oversize files are listed as skipped with a
//! reason; their content is never kept. File contents are not held in memory:
//! the index keeps sizes, line counts and how often each term of the
//! instruction occurs.

use std::collections::BTreeMap;
use std::path::Path;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::syntax::language_name;
use crate::{Error, Result};

/// A file the job may change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedFile {
    /// Workspace-relative, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Line count.
    pub lines: u64,
    /// Language name ("other" when unknown).
    pub language: &'static str,
    /// Occurrences of each instruction term in the file.
    pub mentions: BTreeMap<String, u32>,
}

/// A file left out, with why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedFile {
    /// Workspace-relative path.
    pub path: String,
    /// "binary file", "not UTF-8", "larger than N bytes".
    pub reason: String,
}

/// The result of indexing a workspace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkspaceIndex {
    /// Files that may be sent to a model.
    pub files: Vec<IndexedFile>,
    /// Files left out.
    pub skipped: Vec<SkippedFile>,
}

impl WorkspaceIndex {
    /// Looks up an indexed file.
    pub fn file(&self, path: &str) -> Option<&IndexedFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// Looks up a skipped file.
    pub fn skipped(&self, path: &str) -> Option<&SkippedFile> {
        self.skipped.iter().find(|f| f.path == path)
    }

    /// A compact map for the planner: one line per file with its size and
    /// instruction-term mentions, files that mention a term first; at most
    /// `max_lines` lines (the rest summarised per directory).
    pub fn render_map(&self, max_lines: usize) -> String {
        let mut ranked: Vec<&IndexedFile> = self.files.iter().collect();
        ranked.sort_by_key(|f| {
            (
                std::cmp::Reverse(f.mentions.values().sum::<u32>()),
                f.path.clone(),
            )
        });
        let mut out = String::new();
        let mut omitted: BTreeMap<String, u32> = BTreeMap::new();
        for (i, f) in ranked.iter().enumerate() {
            if i < max_lines {
                out.push_str(&format!("{} ({} lines, {})", f.path, f.lines, f.language));
                if !f.mentions.is_empty() {
                    let m: Vec<String> =
                        f.mentions.iter().map(|(t, n)| format!("{t}x{n}")).collect();
                    out.push_str(&format!(" mentions: {}", m.join(", ")));
                }
                out.push('\n');
            } else {
                let dir = f.path.rsplit_once('/').map_or(".", |(d, _)| d).to_owned();
                *omitted.entry(dir).or_default() += 1;
            }
        }
        for (dir, n) in omitted {
            out.push_str(&format!(
                "{dir}/ ... {n} more files without instruction terms\n"
            ));
        }
        for s in &self.skipped {
            out.push_str(&format!("{} (skipped: {})\n", s.path, s.reason));
        }
        out
    }
}

/// Terms worth counting: text in backticks in the instruction.
pub fn instruction_terms(instruction: &str) -> Vec<String> {
    let mut terms: Vec<String> = instruction
        .split('`')
        .skip(1)
        .step_by(2)
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty() && t.len() <= 64)
        .collect();
    terms.sort();
    terms.dedup();
    terms
}

/// Builds a glob set from `--files` patterns (empty = everything).
pub fn file_filter(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p)
            .map_err(|e| Error::InvalidInput(format!("bad --files glob {p:?}: {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| Error::InvalidInput(format!("bad --files globs: {e}")))
}

/// Why a file's bytes cannot be sent to a model, if any.
pub fn content_problem(bytes: &[u8], max_bytes: u64) -> Option<String> {
    if bytes.len() as u64 > max_bytes {
        return Some(format!(
            "larger than {max_bytes} bytes ({} bytes)",
            bytes.len()
        ));
    }
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return Some("binary file".to_owned());
    }
    if std::str::from_utf8(bytes).is_err() {
        return Some("not UTF-8".to_owned());
    }
    None
}

/// Walks `root`, honouring `.gitignore`, skipping `.git/`, and classifies
/// every regular file.
pub fn index_workspace(
    root: &Path,
    filter: Option<&GlobSet>,
    max_bytes: u64,
    terms: &[String],
) -> Result<WorkspaceIndex> {
    if !root.is_dir() {
        return Err(Error::InvalidInput(format!(
            "workspace {} is not a directory",
            root.display()
        )));
    }
    let mut index = WorkspaceIndex::default();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .follow_links(false)
        .require_git(false)
        .filter_entry(|e| e.file_name() != ".git")
        .build();
    for entry in walker {
        let entry =
            entry.map_err(|e| Error::InvalidInput(format!("walking {}: {e}", root.display())))?;
        let Some(ft) = entry.file_type() else {
            continue;
        };
        if !ft.is_file() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel.to_str().map(|s| s.replace('\\', "/")) else {
            index.skipped.push(SkippedFile {
                path: rel.to_string_lossy().into_owned(),
                reason: "file name is not UTF-8".to_owned(),
            });
            continue;
        };
        if filter.is_some_and(|f| !f.is_match(&rel)) {
            continue;
        }
        let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
        if size > max_bytes {
            index.skipped.push(SkippedFile {
                path: rel,
                reason: format!("larger than {max_bytes} bytes ({size} bytes)"),
            });
            continue;
        }
        let bytes =
            std::fs::read(entry.path()).map_err(|e| Error::io(format!("reading {rel}"), e))?;
        if let Some(reason) = content_problem(&bytes, max_bytes) {
            index.skipped.push(SkippedFile { path: rel, reason });
            continue;
        }
        let text = String::from_utf8_lossy(&bytes);
        let mentions = terms
            .iter()
            .filter_map(|t| {
                let n = text.matches(t.as_str()).count() as u32;
                (n > 0).then(|| (t.clone(), n))
            })
            .collect();
        index.files.push(IndexedFile {
            language: language_name(&rel),
            lines: text.lines().count() as u64,
            bytes: size,
            path: rel,
            mentions,
        });
    }
    index.files.sort_by(|a, b| a.path.cmp(&b.path));
    index.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_and_skips_with_reasons() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join(".git/config"), "x").unwrap();
        std::fs::write(root.join("src/a.py"), "UserId = 1\nprint(UserId)\n").unwrap();
        std::fs::write(root.join("src/blob.bin"), [0u8, 1, 2, 3]).unwrap();
        std::fs::write(root.join("src/latin1.txt"), [b'a', 0xe9, b'b']).unwrap();
        std::fs::write(root.join("big.txt"), "x".repeat(2000)).unwrap();
        std::fs::write(root.join(".gitignore"), "ignored.py\n").unwrap();
        std::fs::write(root.join("ignored.py"), "x = 1\n").unwrap();
        let terms = instruction_terms("Rename `UserId` to `AccountId`");
        let index = index_workspace(root, None, 1000, &terms).unwrap();
        let paths: Vec<&str> = index.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, vec![".gitignore", "src/a.py"]);
        let a = index.file("src/a.py").unwrap();
        assert_eq!(a.mentions.get("UserId"), Some(&2));
        assert_eq!(a.language, "python");
        assert_eq!(index.skipped("src/blob.bin").unwrap().reason, "binary file");
        assert_eq!(index.skipped("src/latin1.txt").unwrap().reason, "not UTF-8");
        assert!(
            index
                .skipped("big.txt")
                .unwrap()
                .reason
                .starts_with("larger than 1000")
        );
        let map = index.render_map(10);
        assert!(map.starts_with("src/a.py"), "{map}");
        assert!(map.contains("big.txt (skipped"));
    }

    #[test]
    fn filter_limits_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.py"), "x").unwrap();
        std::fs::write(dir.path().join("b.rs"), "x").unwrap();
        let filter = file_filter(&["*.py".to_owned()]).unwrap();
        let index = index_workspace(dir.path(), filter.as_ref(), 1000, &[]).unwrap();
        assert_eq!(index.files.len(), 1);
    }
}
