//! Workspace indexing: which files exist, which can be sent to a model, and
//! a bounded overview of them for the planner.
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

    /// The planner's view of the whole index, bounded however large it is:
    /// totals; files per language; how many files mention each instruction
    /// term; files per directory (at the deepest level whose directories fit
    /// `max_dirs` lines, those with term mentions first, the rest summed);
    /// a sample of `sample` files (most mentions first); the skipped files
    /// (at most `sample` named).
    pub fn render_overview(&self, max_dirs: usize, sample: usize) -> String {
        let lines: u64 = self.files.iter().map(|f| f.lines).sum();
        let mut out = format!(
            "{} file(s) ({lines} lines), {} skipped\n",
            self.files.len(),
            self.skipped.len()
        );
        let mut languages: BTreeMap<&str, usize> = BTreeMap::new();
        let mut terms: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
        for f in &self.files {
            *languages.entry(f.language).or_default() += 1;
            for (term, n) in &f.mentions {
                let entry = terms.entry(term.as_str()).or_default();
                entry.0 += 1;
                entry.1 += u64::from(*n);
            }
        }
        let mut by_count: Vec<(&str, usize)> = languages.into_iter().collect();
        by_count.sort_by_key(|(name, n)| (std::cmp::Reverse(*n), *name));
        let listed: Vec<String> = by_count.iter().map(|(l, n)| format!("{l} {n}")).collect();
        out.push_str(&format!("languages: {}\n", listed.join(", ")));
        for (term, (files, mentions)) in &terms {
            out.push_str(&format!(
                "`{term}`: mentioned in {files} file(s), {mentions} time(s)\n"
            ));
        }
        out.push_str(&self.render_directories(max_dirs));
        let mut ranked: Vec<&IndexedFile> = self.files.iter().collect();
        ranked.sort_by_key(|f| {
            (
                std::cmp::Reverse(f.mentions.values().sum::<u32>()),
                f.path.as_str(),
            )
        });
        if !ranked.is_empty() && sample > 0 {
            out.push_str(&format!(
                "sample of {} file(s), most mentions first:\n",
                sample.min(ranked.len())
            ));
        }
        for f in ranked.iter().take(sample) {
            out.push_str(&format!("{} ({} lines, {})", f.path, f.lines, f.language));
            if !f.mentions.is_empty() {
                let m: Vec<String> = f.mentions.iter().map(|(t, n)| format!("{t}x{n}")).collect();
                out.push_str(&format!(" mentions: {}", m.join(", ")));
            }
            out.push('\n');
        }
        for s in self.skipped.iter().take(sample) {
            out.push_str(&format!("{} (skipped: {})\n", s.path, s.reason));
        }
        if self.skipped.len() > sample {
            out.push_str(&format!(
                "... {} more skipped file(s)\n",
                self.skipped.len() - sample
            ));
        }
        out
    }

    /// Files per directory, at the deepest level with at most `max_dirs`
    /// directories (or the top level's `max_dirs` busiest, the rest summed).
    fn render_directories(&self, max_dirs: usize) -> String {
        let deepest = self
            .files
            .iter()
            .map(|f| f.path.matches('/').count())
            .max()
            .unwrap_or(0);
        let at_depth = |depth: usize| {
            let mut dirs: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
            for f in &self.files {
                let entry = dirs.entry(dir_at(&f.path, depth)).or_default();
                entry.0 += 1;
                if !f.mentions.is_empty() {
                    entry.1 += 1;
                }
            }
            dirs
        };
        let mut depth = 1;
        let mut dirs = at_depth(depth);
        while depth < deepest {
            let deeper = at_depth(depth + 1);
            if deeper.len() > max_dirs {
                break;
            }
            depth += 1;
            dirs = deeper;
        }
        let mut ranked: Vec<(&str, (usize, usize))> = dirs.into_iter().collect();
        ranked.sort_by_key(|(dir, (files, mentioning))| {
            (
                std::cmp::Reverse(*mentioning),
                std::cmp::Reverse(*files),
                *dir,
            )
        });
        let mut out = format!(
            "{} director{} (files, files mentioning a term):\n",
            ranked.len(),
            if ranked.len() == 1 { "y" } else { "ies" }
        );
        for (dir, (files, mentioning)) in ranked.iter().take(max_dirs) {
            out.push_str(&format!("{dir}/ {files}, {mentioning}\n"));
        }
        if ranked.len() > max_dirs {
            let rest = &ranked[max_dirs..];
            let files: usize = rest.iter().map(|(_, (n, _))| n).sum();
            let mentioning: usize = rest.iter().map(|(_, (_, m))| m).sum();
            out.push_str(&format!(
                "... {} more directories: {files}, {mentioning}\n",
                rest.len()
            ));
        }
        out
    }
}

/// The directory of `path` cut to at most `depth` (>= 1) components; "."
/// for a file at the root.
fn dir_at(path: &str, depth: usize) -> &str {
    let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
    if dir.is_empty() {
        return ".";
    }
    match dir.match_indices('/').nth(depth.saturating_sub(1)) {
        Some((i, _)) => &dir[..i],
        None => dir,
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
        let map = index.render_overview(10, 10);
        assert!(map.starts_with("2 file(s) (3 lines), 3 skipped\n"), "{map}");
        assert!(
            map.contains("\n`UserId`: mentioned in 1 file(s), 2 time(s)\n"),
            "{map}"
        );
        assert!(
            map.contains("\nsrc/a.py (2 lines, python) mentions: UserIdx2\n"),
            "{map}"
        );
        assert!(map.contains("big.txt (skipped"));
    }

    #[test]
    fn the_overview_counts_the_whole_index_within_its_bounds() {
        let file = |path: &str, mentions: u32| IndexedFile {
            path: path.to_owned(),
            bytes: 10,
            lines: 2,
            language: language_name(path),
            mentions: (mentions > 0)
                .then(|| ("UserId".to_owned(), mentions))
                .into_iter()
                .collect(),
        };
        let mut files = Vec::new();
        for d in 0..30 {
            for i in 0..10 {
                let ext = if i % 2 == 0 { "py" } else { "rs" };
                files.push(file(
                    &format!("pkg{d:02}/sub/m{i}.{ext}"),
                    u32::from(d == 7 && i < 3),
                ));
            }
        }
        files.push(file("top.py", 0));
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let index = WorkspaceIndex {
            files,
            skipped: Vec::new(),
        };
        // 30 directories fit at depth 2; the summary names the mentions first.
        let text = index.render_overview(40, 2);
        assert!(
            text.starts_with("301 file(s) (602 lines), 0 skipped\n"),
            "{text}"
        );
        assert!(
            text.contains("\nlanguages: python 151, rust 150\n"),
            "{text}"
        );
        assert!(
            text.contains("\n`UserId`: mentioned in 3 file(s), 3 time(s)\n"),
            "{text}"
        );
        assert!(
            text.contains("31 directories (files, files mentioning a term):\npkg07/sub/ 10, 3\n"),
            "{text}"
        );
        assert!(
            text.contains("\nsample of 2 file(s), most mentions first:\npkg07/sub/m0.py"),
            "{text}"
        );
        // Fewer lines than directories: the busiest listed, the rest summed.
        let text = index.render_overview(5, 0);
        assert!(text.contains("31 directories"), "{text}");
        assert!(text.contains("pkg07/ 10, 3\n"), "{text}");
        assert!(
            text.contains("\n... 26 more directories: 251, 0\n"),
            "{text}"
        );
        assert!(!text.contains("sample"), "{text}");
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
