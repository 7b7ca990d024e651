//! Where changes are put before and after they are trusted: a staging copy for
//! the integration check, and the final apply (in place, or to a new branch).
//!
//! Apply never overwrites a file whose content changed since the job read it:
//! such files are reported and left alone (docs/architecture.md sections 4.11 and 11).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use sha2::{Digest, Sha256};

pub use cadre_types::api::ApplyOutcome;

use crate::actions::FileAction;
use crate::paths::validate_in_workspace;
use crate::{Error, Result};

/// Hex SHA-256 of a text.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes` (one allocation, where formatting each byte
/// made one per byte).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// One file to write: where, what it held when the job started, and its new content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileChange {
    /// Workspace-relative path.
    pub path: String,
    /// SHA-256 of the content the job started from.
    pub original_sha256: String,
    /// The new content (unused by a delete).
    pub content: String,
    /// Write, create, delete or move.
    pub action: FileAction,
}

fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running git {}", args.join(" ")), e))?;
    if !out.status.success() {
        return Err(Error::Git {
            command: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
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

fn create_parent(target: &Path) -> Result<()> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    Ok(())
}

fn write_atomically(target: &Path, content: &str) -> Result<()> {
    let dir = target
        .parent()
        .ok_or_else(|| Error::InvalidInput(format!("{} has no parent", target.display())))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| Error::io(format!("temp file in {}", dir.display()), e))?;
    std::io::Write::write_all(&mut tmp, content.as_bytes())
        .map_err(|e| Error::io(format!("writing {}", target.display()), e))?;
    if let Ok(meta) = std::fs::metadata(target) {
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(target)
        .map_err(|e| Error::io(format!("replacing {}", target.display()), e.error))?;
    Ok(())
}

/// Writes accepted changes one at a time, so an apply holds one file's
/// contents: in place, or to a new branch through a temporary worktree that
/// leaves the user's working tree untouched. A file whose content changed
/// since the job started is left alone and reported.
#[derive(Debug)]
pub struct Applier {
    root: PathBuf,
    branch: Option<BranchTree>,
    outcome: ApplyOutcome,
}

/// The worktree of a new branch; removed on drop.
#[derive(Debug)]
struct BranchTree {
    root: PathBuf,
    /// Owns the directory the worktree lives in.
    holder: tempfile::TempDir,
    tree: PathBuf,
}

impl Drop for BranchTree {
    fn drop(&mut self) {
        let _ = git(
            &self.root,
            &[
                "worktree",
                "remove",
                "--force",
                &self.tree.to_string_lossy(),
            ],
        );
        let _ = &self.holder;
    }
}

impl Applier {
    /// Writes into the workspace itself.
    pub fn in_place(root: &Path) -> Self {
        Applier {
            root: root.to_path_buf(),
            branch: None,
            outcome: ApplyOutcome::default(),
        }
    }

    /// Writes to a new branch `branch` from HEAD. Fails when `root` is not
    /// the top of a git repository or the branch exists.
    pub fn to_branch(root: &Path, branch: &str) -> Result<Self> {
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
            return Err(Error::Conflict(format!("branch {branch:?} already exists")));
        }
        let holder = tempfile::tempdir().map_err(|e| Error::io("creating a temp dir", e))?;
        let tree = holder.path().join("tree");
        git(
            root,
            &[
                "worktree",
                "add",
                "--quiet",
                "-b",
                branch,
                &tree.to_string_lossy(),
                "HEAD",
            ],
        )?;
        Ok(Applier {
            root: root.to_path_buf(),
            branch: Some(BranchTree {
                root: root.to_path_buf(),
                holder,
                tree,
            }),
            outcome: ApplyOutcome {
                branch: Some(branch.to_owned()),
                ..ApplyOutcome::default()
            },
        })
    }

    /// Carries out `change` if its file still has its original content (a
    /// create or a move: if its target is still free), or records the
    /// conflict. A move is a rename (`git mv` on a branch).
    pub fn add(&mut self, change: &FileChange) -> Result<()> {
        let checked = match &change.action {
            FileAction::Create => self.check_free(&change.path).map(|t| (t.clone(), t)),
            FileAction::Move { to } => check_unchanged(&self.root, change)
                .and_then(|source| self.check_free(to).map(|target| (source, target))),
            FileAction::Write | FileAction::Delete => {
                check_unchanged(&self.root, change).map(|target| (target.clone(), target))
            }
        };
        let (source, target) = match checked {
            Ok(paths) => paths,
            Err(reason) => {
                self.outcome.conflicts.push((change.path.clone(), reason));
                return Ok(());
            }
        };
        match (&self.branch, &change.action) {
            (None, FileAction::Delete) => std::fs::remove_file(&source)
                .map_err(|e| Error::io(format!("removing {}", source.display()), e))?,
            (None, FileAction::Move { .. }) => {
                create_parent(&target)?;
                write_atomically(&target, &change.content)?;
                if let Ok(meta) = std::fs::metadata(&source) {
                    let _ = std::fs::set_permissions(&target, meta.permissions());
                }
                std::fs::remove_file(&source)
                    .map_err(|e| Error::io(format!("removing {}", source.display()), e))?;
            }
            (None, FileAction::Write | FileAction::Create) => {
                create_parent(&target)?;
                write_atomically(&target, &change.content)?;
            }
            (Some(branch), action) => {
                let mut path = change.path.as_str();
                match action {
                    FileAction::Delete => {
                        git(&branch.tree, &["rm", "--quiet", "--", path])?;
                    }
                    FileAction::Move { to } => {
                        create_parent(&branch.tree.join(to))?;
                        git(&branch.tree, &["mv", "--", path, to])?;
                        path = to.as_str();
                    }
                    FileAction::Write | FileAction::Create => {}
                }
                if *action != FileAction::Delete {
                    let target = branch.tree.join(path);
                    create_parent(&target)?;
                    std::fs::write(&target, &change.content)
                        .map_err(|e| Error::io(format!("writing {}", target.display()), e))?;
                    git(&branch.tree, &["add", "--", path])?;
                }
            }
        }
        let written = match &change.action {
            FileAction::Move { to } => format!("{} -> {to}", change.path),
            _ => change.path.clone(),
        };
        self.outcome.written.push(written);
        Ok(())
    }

    /// A create's or a move's target: a valid path where nothing exists,
    /// neither in the workspace nor on the new branch.
    fn check_free(&self, raw: &str) -> std::result::Result<PathBuf, String> {
        let rel = validate_in_workspace(&self.root, raw).map_err(|e| e.to_string())?;
        let target = rel.join_to(&self.root);
        let taken = target.symlink_metadata().is_ok()
            || self
                .branch
                .as_ref()
                .is_some_and(|b| b.tree.join(rel.as_str()).symlink_metadata().is_ok());
        if taken {
            return Err(format!("{rel} exists now; left alone (never overwritten)"));
        }
        Ok(target)
    }

    /// Commits the branch (when writing to one and something was written)
    /// and reports what was written and left alone.
    pub fn finish(self, message: &str) -> Result<ApplyOutcome> {
        if let Some(branch) = &self.branch
            && !self.outcome.written.is_empty()
        {
            git(
                &branch.tree,
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
        Ok(self.outcome)
    }
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
        let holder = tempfile::tempdir().map_err(|e| Error::io("creating a temp dir", e))?;
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
        create_parent(&target)?;
        std::fs::write(&target, content)
            .map_err(|e| Error::io(format!("writing {}", target.display()), e))
    }

    /// Stages one accepted subtask: writes, creates, removes or renames.
    pub fn stage(&self, rel: &str, action: &FileAction, content: &str) -> Result<()> {
        match action {
            FileAction::Write | FileAction::Create => self.write(rel, content),
            FileAction::Delete => self.remove(rel),
            FileAction::Move { to } => {
                self.write(to, content)?;
                self.remove(rel)
            }
        }
    }

    fn remove(&self, rel: &str) -> Result<()> {
        let target = self.dir.join(rel);
        match std::fs::remove_file(&target) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", target.display()), e))
            }
            _ => Ok(()),
        }
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
            .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    }
    std::fs::copy(src, dst).map_err(|e| Error::io(format!("copying {}", src.display()), e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_two_lower_case_digits_a_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

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
                action: FileAction::Write,
            },
            FileChange {
                path: "b.txt".into(),
                original_sha256: sha256_hex(b"two\n"),
                content: "TWO\n".into(),
                action: FileAction::Write,
            },
        ];
        std::fs::write(dir.path().join("b.txt"), "user edit\n").unwrap();
        let mut applier = Applier::in_place(dir.path());
        for change in &changes {
            applier.add(change).unwrap();
        }
        let outcome = applier.finish("unused").unwrap();
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
    fn a_branch_apply_commits_without_touching_the_working_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let run = |args: &[&str]| git(root, args).unwrap();
        run(&["init", "--quiet"]);
        std::fs::write(root.join("a.txt"), "one\n").unwrap();
        std::fs::write(root.join("b.txt"), "two\n").unwrap();
        run(&["add", "."]);
        run(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "--quiet",
            "-m",
            "init",
        ]);
        std::fs::write(root.join("b.txt"), "user edit\n").unwrap();

        let mut applier = Applier::to_branch(root, "cadre/test").unwrap();
        for (path, before, after) in [("a.txt", "one\n", "ONE\n"), ("b.txt", "two\n", "TWO\n")] {
            applier
                .add(&FileChange {
                    path: path.into(),
                    original_sha256: sha256_hex(before.as_bytes()),
                    content: after.into(),
                    action: FileAction::Write,
                })
                .unwrap();
        }
        let outcome = applier.finish("cadre: test").unwrap();
        assert_eq!(outcome.written, vec!["a.txt".to_owned()]);
        assert_eq!(outcome.conflicts.len(), 1, "{outcome:?}");
        assert_eq!(outcome.branch.as_deref(), Some("cadre/test"));
        assert_eq!(run(&["show", "cadre/test:a.txt"]), "ONE\n");
        assert_eq!(run(&["show", "cadre/test:b.txt"]), "two\n");
        // The working tree and its worktree list are as they were.
        assert_eq!(
            std::fs::read_to_string(root.join("a.txt")).unwrap(),
            "one\n"
        );
        assert_eq!(run(&["worktree", "list"]).lines().count(), 1);

        let again = Applier::to_branch(root, "cadre/test").unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        let plain = tempfile::tempdir().unwrap();
        assert!(Applier::to_branch(plain.path(), "x").is_err());
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
