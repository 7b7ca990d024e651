//! Where changes are put before and after they are trusted: a staging copy for
//! the integration check, and the final apply (in place, or to a new branch).
//!
//! Apply never overwrites a file whose content changed since the job read it:
//! such files are reported and left alone (DESIGN section 7).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};

use crate::paths::validate_in_workspace;
use crate::{Error, Result};

/// Hex SHA-256 of a text.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// One file to write: where, what it held when the job started, and its new content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    /// Workspace-relative path.
    pub path: String,
    /// SHA-256 of the content the job started from.
    pub original_sha256: String,
    /// The new content.
    pub content: String,
}

/// What an apply did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApplyOutcome {
    /// Files written.
    pub written: Vec<String>,
    /// Files left alone, with why.
    pub conflicts: Vec<(String, String)>,
    /// The branch committed to, if any.
    pub branch: Option<String>,
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Io(format!("running git {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(Error::Io(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when `dir` is the top level of a git work tree.
pub fn is_git_root(dir: &Path) -> bool {
    let Ok(top) = git(dir, &["rev-parse", "--show-toplevel"]) else {
        return false;
    };
    match (Path::new(top.trim()).canonicalize(), dir.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn check_unchanged(root: &Path, change: &FileChange) -> std::result::Result<PathBuf, String> {
    let rel = validate_in_workspace(root, &change.path).map_err(|e| e.to_string())?;
    let target = rel.join_to(root);
    let current = std::fs::read(&target).map_err(|e| format!("cannot read it any more: {e}"))?;
    if sha256_hex(&current) != change.original_sha256 {
        return Err("changed since the job started; left alone".to_owned());
    }
    Ok(target)
}

fn write_atomically(target: &Path, content: &str) -> Result<()> {
    let dir = target
        .parent()
        .ok_or_else(|| Error::Io(format!("{} has no parent", target.display())))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::Io(format!("temp file in {}: {e}", dir.display())))?;
    std::io::Write::write_all(&mut tmp, content.as_bytes())
        .map_err(|e| Error::Io(format!("writing {}: {e}", target.display())))?;
    if let Ok(meta) = std::fs::metadata(target) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(target)
        .map_err(|e| Error::Io(format!("replacing {}: {e}", target.display())))?;
    Ok(())
}

/// Writes each change whose file still has its original content.
pub fn apply_in_place(root: &Path, changes: &[FileChange]) -> Result<ApplyOutcome> {
    let mut outcome = ApplyOutcome::default();
    for change in changes {
        match check_unchanged(root, change) {
            Ok(target) => {
                write_atomically(&target, &change.content)?;
                outcome.written.push(change.path.clone());
            }
            Err(reason) => outcome.conflicts.push((change.path.clone(), reason)),
        }
    }
    Ok(outcome)
}

/// Commits the changes to a new branch `branch` (from HEAD) without touching
/// the user's working tree. Files changed since the job started are left out.
pub fn commit_to_branch(
    root: &Path,
    branch: &str,
    changes: &[FileChange],
    message: &str,
) -> Result<ApplyOutcome> {
    if !is_git_root(root) {
        return Err(Error::InvalidInput(format!(
            "{} is not the root of a git repository",
            root.display()
        )));
    }
    git(root, &["check-ref-format", "--branch", branch])?;
    if git(
        root,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ],
    )
    .is_ok()
    {
        return Err(Error::InvalidInput(format!(
            "branch {branch:?} already exists"
        )));
    }
    let holder = tempfile::tempdir().map_err(|e| Error::Io(format!("temp dir: {e}")))?;
    let tree = holder.path().join("tree");
    let tree_str = tree.to_string_lossy().into_owned();
    git(
        root,
        &[
            "worktree", "add", "--quiet", "-b", branch, &tree_str, "HEAD",
        ],
    )?;
    let result = (|| {
        let mut outcome = ApplyOutcome {
            branch: Some(branch.to_owned()),
            ..ApplyOutcome::default()
        };
        for change in changes {
            match check_unchanged(root, change) {
                Ok(_) => {
                    let target = tree.join(&change.path);
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| Error::Io(format!("{}: {e}", parent.display())))?;
                    }
                    std::fs::write(&target, &change.content)
                        .map_err(|e| Error::Io(format!("{}: {e}", target.display())))?;
                    git(&tree, &["add", "--", &change.path])?;
                    outcome.written.push(change.path.clone());
                }
                Err(reason) => outcome.conflicts.push((change.path.clone(), reason)),
            }
        }
        if !outcome.written.is_empty() {
            git(
                &tree,
                &[
                    "-c",
                    "user.name=cadre",
                    "-c",
                    "user.email=cadre@localhost",
                    "commit",
                    "--quiet",
                    "--no-verify",
                    "-m",
                    message,
                ],
            )?;
        }
        Ok(outcome)
    })();
    let _ = git(root, &["worktree", "remove", "--force", &tree_str]);
    result
}

/// A throwaway copy of the workspace with the accepted changes written in,
/// for the integration check. In a git repository it is a detached worktree
/// of HEAD plus the working tree's uncommitted changes; otherwise a copy.
#[derive(Debug)]
pub struct Staging {
    /// Owns the directory; removed on drop.
    holder: tempfile::TempDir,
    dir: PathBuf,
    worktree_of: Option<PathBuf>,
}

impl Staging {
    /// The staged tree.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stages `root` (its `files` when it is not a git repository); the
    /// accepted changes are written in one at a time with [`Staging::write`].
    pub fn prepare(root: &Path, files: &[String]) -> Result<Self> {
        let holder = tempfile::tempdir().map_err(|e| Error::Io(format!("temp dir: {e}")))?;
        let dir = holder.path().join("tree");
        let mut worktree_of = None;
        if is_git_root(root) && Self::git_stage(root, &dir).is_ok() {
            worktree_of = Some(root.to_path_buf());
        } else {
            if dir.exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            for rel in files {
                copy_file(&root.join(rel), &dir.join(rel))?;
            }
        }
        Ok(Self {
            holder,
            dir,
            worktree_of,
        })
    }

    /// Writes `content` over the staged `rel` (a validated workspace path).
    pub fn write(&self, rel: &str, content: &str) -> Result<()> {
        let target = self.dir.join(rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::Io(format!("{}: {e}", parent.display())))?;
        }
        std::fs::write(&target, content)
            .map_err(|e| Error::Io(format!("{}: {e}", target.display())))
    }

    fn git_stage(root: &Path, dir: &Path) -> Result<()> {
        let dir_str = dir.to_string_lossy().into_owned();
        git(
            root,
            &["worktree", "add", "--quiet", "--detach", &dir_str, "HEAD"],
        )?;
        // Carry over uncommitted edits and untracked files: the job started from them.
        let changed = git(root, &["diff", "--name-only", "HEAD"])?;
        let untracked = git(root, &["ls-files", "--others", "--exclude-standard"])?;
        for rel in changed
            .lines()
            .chain(untracked.lines())
            .filter(|l| !l.is_empty())
        {
            let src = root.join(rel);
            if src.exists() {
                copy_file(&src, &dir.join(rel))?;
            } else {
                let _ = std::fs::remove_file(dir.join(rel));
            }
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(root) = &self.worktree_of {
            let _ = git(
                root,
                &["worktree", "remove", "--force", &self.dir.to_string_lossy()],
            );
        }
        let _ = &self.holder;
    }
}

fn copy_file(src: &Path, dst: &Path) -> Result<()> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::Io(format!("{}: {e}", parent.display())))?;
    }
    std::fs::copy(src, dst).map_err(|e| Error::Io(format!("copying {}: {e}", src.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_leaves_changed_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\n").unwrap();
        std::fs::write(dir.path().join("b.txt"), "two\n").unwrap();
        let changes = vec![
            FileChange {
                path: "a.txt".into(),
                original_sha256: sha256_hex(b"one\n"),
                content: "ONE\n".into(),
            },
            FileChange {
                path: "b.txt".into(),
                original_sha256: sha256_hex(b"two\n"),
                content: "TWO\n".into(),
            },
        ];
        std::fs::write(dir.path().join("b.txt"), "user edit\n").unwrap();
        let outcome = apply_in_place(dir.path(), &changes).unwrap();
        assert_eq!(outcome.written, vec!["a.txt".to_owned()]);
        assert_eq!(outcome.conflicts.len(), 1);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
            "ONE\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("b.txt")).unwrap(),
            "user edit\n"
        );
    }

    #[test]
    fn staging_copies_and_overlays() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "one\n").unwrap();
        let staging = Staging::prepare(dir.path(), &["a.txt".into()]).unwrap();
        staging.write("a.txt", "new\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(staging.dir().join("a.txt")).unwrap(),
            "new\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.txt")).unwrap(),
            "one\n"
        );
    }
}
