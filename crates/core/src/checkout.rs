//! Git workspaces: a job on a git repository ([`GitSource`]) runs in the
//! daemon's own checkout of the job's commit, so any daemon of a cluster can
//! run it, whatever paths it is allowed.
//!
//! The cache lives in `daemon.checkouts_dir` ([`Checkouts`]): one bare clone
//! per repository URL (`repos/<hash>.git`, fetched only when a revision is
//! missing or names a branch or tag) and one detached worktree per job
//! (`jobs/<job id>`), removed when the job ends here, or pruned when the
//! next job starts and finds the worktree of a job that ended elsewhere.
//! Everything that changes a clone (clone, fetch, worktree add and remove)
//! holds the clone's lock file (`repos/<hash>.lock`), so two jobs of one
//! repository, in one daemon or in two daemons sharing the directory, never
//! race. Credentials in a URL never reach an error or a log line
//! ([`redact_url`]); git never prompts for them (`GIT_TERMINAL_PROMPT=0`).

use std::path::{Path, PathBuf};
use std::process::Stdio;

use cadre_config::Config;
use cadre_store::{JobRecord, Store};
use cadre_types::JobId;
use sha2::{Digest, Sha256};

pub use cadre_types::api::GitSource;

use crate::engine::{Engine, JobOptions};
use crate::{Error, Result};

/// The transports a repository URL may use (`GIT_ALLOW_PROTOCOL`): `ext::`
/// and the other command-running transports are refused.
const ALLOWED_PROTOCOLS: &str = "file:https:ssh";

/// Where a repository URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RepoLocation {
    /// Another machine (`https://`, `ssh://`, `user@host:path`).
    Remote,
    /// This machine's filesystem (`file://` or an absolute path): it must
    /// lie inside the daemon's allowed roots.
    Local(PathBuf),
}

/// Checks a repository URL: `https://`, `ssh://`, scp-like `user@host:path`,
/// `file:///abs/path` or an absolute path. Anything else (a relative path,
/// `http://`, `ext::`, a leading `-`) is refused.
pub fn repo_location(url: &str) -> Result<RepoLocation> {
    let refuse = |why: &str| {
        Error::InvalidInput(format!(
            "repository {:?} {why}; use https://, ssh://, user@host:path, file:// or an absolute path",
            redact_url(url)
        ))
    };
    if url.is_empty() || url.starts_with('-') || url.chars().any(char::is_control) {
        return Err(refuse("is not a repository URL"));
    }
    if let Some(path) = url.strip_prefix("file://") {
        return if path.starts_with('/') {
            Ok(RepoLocation::Local(PathBuf::from(path)))
        } else {
            Err(refuse("must name an absolute path"))
        };
    }
    if url.starts_with('/') {
        return Ok(RepoLocation::Local(PathBuf::from(url)));
    }
    if let Some((scheme, _)) = url.split_once("://") {
        return match scheme {
            "https" | "ssh" | "git+ssh" | "ssh+git" => Ok(RepoLocation::Remote),
            _ => Err(refuse(&format!("uses the {scheme}:// transport"))),
        };
    }
    // scp-like `[user@]host:path`: a colon before any slash.
    match url.split_once(':') {
        Some((host, _)) if !host.is_empty() && !host.contains('/') && !url.contains("::") => {
            Ok(RepoLocation::Remote)
        }
        _ => Err(refuse("is neither a URL nor an absolute path")),
    }
}

/// `text` with the credentials of every URL in it (`scheme://user:pass@`)
/// replaced by `***`.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '\'' || c == '"')
            .unwrap_or(tail.len());
        match tail[..authority_end].rfind('@') {
            Some(userinfo_end) => {
                out.push_str("***");
                rest = &tail[userinfo_end..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

/// How a job on a git repository shows as its workspace: the URL without
/// credentials and the revision (`https://host/repo.git#<commit>`).
pub fn describe(source: &GitSource) -> String {
    format!("{}#{}", redact_url(&source.url), source.rev)
}

/// The git source of a stored job, when it runs on a git repository.
pub fn job_git_source(job: &JobRecord) -> Option<GitSource> {
    JobOptions::from_stored(&job.options).ok()?.git
}

fn is_full_commit_id(rev: &str) -> bool {
    matches!(rev.len(), 40 | 64) && rev.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Runs `git ARGS` in `dir` (off the async threads, killed if the caller
/// stops waiting) and returns its trimmed stdout. Errors name the command
/// and git's stderr with credentials redacted.
async fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let out = tokio::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ALLOW_PROTOCOL", ALLOWED_PROTOCOLS)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::io(format!("running git {}", redact_url(&args.join(" "))), e))?;
    if !out.status.success() {
        return Err(Error::Git {
            command: redact_url(&args.join(" ")),
            stderr: redact_url(String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// A held clone lock; released on drop (closing the file).
#[derive(Debug)]
struct CloneLock {
    _file: std::fs::File,
}

/// The daemon's clone cache and job worktrees.
#[derive(Clone, Debug)]
pub struct Checkouts {
    dir: PathBuf,
}

impl Checkouts {
    /// The cache under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache `config` names (`daemon.checkouts_dir`).
    pub fn of(config: &Config) -> Self {
        let home = std::env::var("HOME").ok();
        let xdg = std::env::var("XDG_DATA_HOME").ok();
        Self::new(config.checkouts_dir(home.as_deref(), xdg.as_deref()))
    }

    /// The bare clone of `url`.
    fn clone_dir(&self, url: &str) -> PathBuf {
        let digest = Sha256::digest(url.as_bytes());
        let name: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join("repos").join(format!("{name}.git"))
    }

    /// The worktree of a job.
    pub fn job_dir(&self, job: JobId) -> PathBuf {
        self.dir.join("jobs").join(job.to_string())
    }

    /// Takes the lock of the clone at `clone_dir`, waiting for its holder.
    async fn lock(clone_dir: &Path) -> Result<CloneLock> {
        let path = clone_dir.with_extension("lock");
        let file = tokio::task::spawn_blocking(move || {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
            file.lock()
                .map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
            Ok::<_, Error>(file)
        })
        .await
        .map_err(|source| Error::Task {
            task: "clone lock",
            source,
        })??;
        Ok(CloneLock { _file: file })
    }

    /// Checks `source` (URL, revision, branch name) and resolves its
    /// revision to a commit id in the clone cache (cloning or fetching as
    /// needed), so every daemon checks out the same commit.
    pub async fn admit(&self, source: &GitSource) -> Result<GitSource> {
        repo_location(&source.url)?;
        let rev = source.rev.trim();
        if rev.is_empty() || rev.starts_with('-') || rev.chars().any(char::is_whitespace) {
            return Err(Error::InvalidInput(format!(
                "revision {:?} is not a revision",
                source.rev
            )));
        }
        if let Some(branch) = &source.push_branch {
            let valid = !branch.starts_with('-')
                && git(
                    &std::env::temp_dir(),
                    &["check-ref-format", &format!("refs/heads/{branch}")],
                )
                .await
                .is_ok();
            if !valid {
                return Err(Error::InvalidInput(format!(
                    "{branch:?} is not a valid branch name"
                )));
            }
        }
        let clone = self.clone_dir(&source.url);
        let _lock = Self::lock(&clone).await?;
        let commit = self.ensure_commit(&clone, &source.url, rev).await?;
        Ok(GitSource {
            url: source.url.clone(),
            rev: commit,
            push_branch: source.push_branch.clone(),
        })
    }

    /// The commit `rev` names in the clone of `url` (holding its lock):
    /// clones on first use, fetches when the revision is missing or is a
    /// name (branches move), and asks for a missing commit id directly.
    async fn ensure_commit(&self, clone: &Path, url: &str, rev: &str) -> Result<String> {
        let mut fetched = false;
        if !clone.join("HEAD").exists() {
            self.clone_bare(clone, url).await?;
            fetched = true;
        }
        let named = !is_full_commit_id(rev);
        if named && !fetched {
            fetch(clone, &[]).await?;
            fetched = true;
        }
        if let Some(commit) = rev_parse(clone, rev).await {
            return Ok(commit);
        }
        if !fetched {
            fetch(clone, &[]).await?;
            if let Some(commit) = rev_parse(clone, rev).await {
                return Ok(commit);
            }
        }
        if !named
            && fetch(clone, &[rev]).await.is_ok()
            && let Some(commit) = rev_parse(clone, rev).await
        {
            return Ok(commit);
        }
        Err(Error::NotFound(format!(
            "revision {rev:?} in repository {} (is it pushed?)",
            redact_url(url)
        )))
    }

    /// Clones `url` bare into `clone`, through a temporary directory so a
    /// failed clone leaves nothing behind.
    async fn clone_bare(&self, clone: &Path, url: &str) -> Result<()> {
        let parent = clone
            .parent()
            .ok_or_else(|| Error::InvalidInput(format!("{} has no parent", clone.display())))?;
        let partial = tempfile::Builder::new()
            .prefix(".clone-")
            .tempdir_in(parent)
            .map_err(|e| Error::io(format!("creating a temp dir in {}", parent.display()), e))?;
        let target = partial.path().join("repo.git");
        let target_str = target.to_string_lossy().into_owned();
        tracing::info!(repository = %redact_url(url), "cloning");
        git(
            parent,
            &["clone", "--bare", "--quiet", "--", url, &target_str],
        )
        .await?;
        std::fs::rename(&target, clone)
            .map_err(|e| Error::io(format!("moving the clone to {}", clone.display()), e))?;
        Ok(())
    }

    /// The worktree of `job` at `commit` of `url`, made when missing (a
    /// resumed job on this daemon reuses its own).
    pub async fn worktree(&self, job: JobId, url: &str, commit: &str) -> Result<PathBuf> {
        let clone = self.clone_dir(url);
        let tree = self.job_dir(job);
        let _lock = Self::lock(&clone).await?;
        if tree.exists() {
            if rev_parse(&tree, "HEAD").await.as_deref() == Some(commit) {
                return Ok(tree);
            }
            remove_tree(&clone, &tree).await?;
        }
        let commit = self.ensure_commit(&clone, url, commit).await?;
        if let Some(parent) = tree.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        }
        git(&clone, &["worktree", "prune"]).await?;
        let tree_str = tree.to_string_lossy().into_owned();
        git(
            &clone,
            &["worktree", "add", "--quiet", "--detach", &tree_str, &commit],
        )
        .await?;
        tracing::debug!(job = %job, tree = %tree.display(), "checked out");
        Ok(tree)
    }

    /// Removes the worktree of `job`, if this cache has one.
    pub async fn remove_worktree(&self, job: JobId) -> Result<()> {
        let tree = self.job_dir(job);
        if !tree.exists() {
            return Ok(());
        }
        match clone_of_worktree(&tree) {
            Some(clone) => {
                let _lock = Self::lock(&clone).await?;
                remove_tree(&clone, &tree).await
            }
            None => std::fs::remove_dir_all(&tree)
                .map_err(|e| Error::io(format!("removing {}", tree.display()), e)),
        }
    }

    /// Removes the worktrees of jobs that ended (or are gone) but `keep`:
    /// jobs another daemon finished, or that ended while this one was down.
    /// Failures are logged: a stale worktree costs disk, not correctness.
    pub async fn prune_ended(&self, store: &Store, keep: JobId) {
        let Ok(entries) = std::fs::read_dir(self.dir.join("jobs")) else {
            return;
        };
        for entry in entries.flatten() {
            let Some(job) = entry
                .file_name()
                .to_str()
                .and_then(|name| name.parse::<JobId>().ok())
            else {
                continue;
            };
            if job == keep {
                continue;
            }
            let ended = match store.get_job_brief(job).await {
                Ok(Some(record)) => record.status.is_terminal(),
                Ok(None) => true,
                Err(_) => false,
            };
            if ended && let Err(e) = self.remove_worktree(job).await {
                tracing::warn!(job = %job, error = %e, "removing an ended job's worktree failed");
            }
        }
    }

    /// Pushes `local` (a branch of the clone behind the worktree `tree`) to
    /// `url` as the new branch `branch`: refused when `branch` exists there.
    pub(crate) async fn push_new_branch(
        &self,
        tree: &Path,
        url: &str,
        local: &str,
        branch: &str,
    ) -> Result<()> {
        let lease = format!("--force-with-lease=refs/heads/{branch}:");
        let refspec = format!("refs/heads/{local}:refs/heads/{branch}");
        git(tree, &["push", "--quiet", &lease, "--", url, &refspec]).await?;
        Ok(())
    }

    /// Deletes the local branch `local` of the clone behind `tree` (logged
    /// when it fails: a leftover branch costs nothing but a name).
    pub(crate) async fn delete_local_branch(&self, tree: &Path, local: &str) {
        if let Err(e) = git(tree, &["branch", "--quiet", "-D", local]).await {
            tracing::debug!(branch = local, error = %e, "deleting the push branch failed");
        }
    }
}

/// The full commit id `rev` names in `dir`, if any.
async fn rev_parse(dir: &Path, rev: &str) -> Option<String> {
    git(
        dir,
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ],
    )
    .await
    .ok()
    .filter(|id| !id.is_empty())
}

/// Fetches the branches and tags of the clone's origin, or `wants` (commit ids).
async fn fetch(clone: &Path, wants: &[&str]) -> Result<()> {
    let mut args = vec!["fetch", "--quiet", "origin"];
    if wants.is_empty() {
        args.extend(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]);
    } else {
        args.extend(wants);
    }
    git(clone, &args).await.map(drop)
}

/// The clone a worktree belongs to, from its `.git` file
/// (`gitdir: <clone>/worktrees/<name>`).
fn clone_of_worktree(tree: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(tree.join(".git")).ok()?;
    let admin = PathBuf::from(text.trim().strip_prefix("gitdir:")?.trim());
    Some(admin.parent()?.parent()?.to_path_buf())
}

/// Removes the worktree `tree` of `clone` (holding its lock): through git,
/// then whatever is left on disk, then git's record of it.
async fn remove_tree(clone: &Path, tree: &Path) -> Result<()> {
    let tree_str = tree.to_string_lossy().into_owned();
    let removed = git(clone, &["worktree", "remove", "-f", "-f", &tree_str]).await;
    if tree.exists() {
        std::fs::remove_dir_all(tree)
            .map_err(|e| Error::io(format!("removing {}", tree.display()), e))?;
    }
    if removed.is_err() {
        git(clone, &["worktree", "prune"]).await?;
    }
    Ok(())
}

/// The root a run of `job` works in: the job's workspace path, or for a job
/// on a git repository this daemon's worktree of the job's commit (made
/// here; the worktrees of jobs that ended are pruned on the way).
pub(crate) async fn job_root(engine: &Engine, job: &JobRecord) -> Result<PathBuf> {
    let Some(source) = JobOptions::from_stored(&job.options)?.git else {
        return Ok(PathBuf::from(&job.workspace));
    };
    let checkouts = Checkouts::of(engine.config());
    checkouts.prune_ended(engine.store(), job.id).await;
    checkouts.worktree(job.id, &source.url, &source.rev).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh_git(dir: &Path, args: &[&str]) -> String {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// A repository with one commit, and a bare "remote" cloned from it.
    fn remote(tmp: &Path) -> (PathBuf, PathBuf, String) {
        let work = tmp.join("work");
        std::fs::create_dir_all(&work).unwrap();
        sh_git(&work, &["init", "--quiet", "-b", "main"]);
        std::fs::write(work.join("a.txt"), "one\n").unwrap();
        sh_git(&work, &["add", "."]);
        sh_git(&work, &["commit", "--quiet", "-m", "one"]);
        let bare = tmp.join("remote.git");
        sh_git(tmp, &["clone", "--bare", "--quiet", "work", "remote.git"]);
        let first = sh_git(&work, &["rev-parse", "HEAD"]);
        (work, bare, first)
    }

    fn source(url: &str, rev: &str) -> GitSource {
        GitSource {
            url: url.to_owned(),
            rev: rev.to_owned(),
            push_branch: None,
        }
    }

    #[tokio::test]
    async fn the_cache_clones_once_fetches_a_missing_rev_and_removes_worktrees() {
        let tmp = tempfile::tempdir().unwrap();
        let (work, bare, first) = remote(tmp.path());
        let url = format!("file://{}", bare.display());
        let cache = Checkouts::new(tmp.path().join("cache"));

        // A branch name resolves to its commit; the clone is made once.
        let admitted = cache.admit(&source(&url, "main")).await.unwrap();
        assert_eq!(admitted.rev, first);
        let clone = cache.clone_dir(&url);
        let marker = clone.join("cadre-test-marker");
        std::fs::write(&marker, "kept").unwrap();

        let (a, b) = (JobId::new(), JobId::new());
        let (tree_a, tree_b) = tokio::join!(
            cache.worktree(a, &url, &first),
            cache.worktree(b, &url, &first)
        );
        let (tree_a, tree_b) = (tree_a.unwrap(), tree_b.unwrap());
        assert_eq!(
            std::fs::read_to_string(tree_a.join("a.txt")).unwrap(),
            "one\n"
        );
        assert_eq!(
            rev_parse(&tree_b, "HEAD").await.as_deref(),
            Some(first.as_str())
        );
        // The second job reused the clone (a new clone would have lost the marker).
        assert!(marker.exists());
        assert_eq!(
            std::fs::read_dir(clone.parent().unwrap())
                .unwrap()
                .filter(|e| e
                    .as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "git"))
                .count(),
            1
        );

        // A commit pushed after the clone is fetched when a job names it.
        std::fs::write(work.join("a.txt"), "two\n").unwrap();
        sh_git(&work, &["commit", "--quiet", "-am", "two"]);
        sh_git(&work, &["push", "--quiet", bare.to_str().unwrap(), "main"]);
        let second = sh_git(&work, &["rev-parse", "HEAD"]);
        assert!(rev_parse(&clone, &second).await.is_none());
        let c = JobId::new();
        let tree_c = cache.worktree(c, &url, &second).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(tree_c.join("a.txt")).unwrap(),
            "two\n"
        );
        assert!(marker.exists());

        // Ending a job removes its worktree and git's record of it.
        cache.remove_worktree(a).await.unwrap();
        assert!(!tree_a.exists());
        let listed = sh_git(&clone, &["worktree", "list"]);
        assert!(!listed.contains(&a.to_string()), "{listed}");
        assert!(listed.contains(&b.to_string()), "{listed}");

        // A revision the remote does not have is an error naming it.
        let missing = "0123456789012345678901234567890123456789";
        let err = cache.admit(&source(&url, missing)).await.unwrap_err();
        assert!(err.to_string().contains(missing), "{err}");
    }

    #[test]
    fn urls_are_checked_and_credentials_never_shown() {
        for remote in [
            "https://github.com/o/r.git",
            "ssh://git@host/r.git",
            "git@github.com:o/r.git",
        ] {
            assert_eq!(
                repo_location(remote).unwrap(),
                RepoLocation::Remote,
                "{remote}"
            );
        }
        assert_eq!(
            repo_location("file:///srv/r.git").unwrap(),
            RepoLocation::Local(PathBuf::from("/srv/r.git"))
        );
        assert_eq!(
            repo_location("/srv/r.git").unwrap(),
            RepoLocation::Local(PathBuf::from("/srv/r.git"))
        );
        for bad in [
            "ext::sh -c touch% /tmp/x",
            "-uhelp",
            "relative/path",
            "http://host/r.git",
            "file://relative",
            "",
        ] {
            assert!(repo_location(bad).is_err(), "{bad}");
        }
        let err = repo_location("ftp://me:hunter2@host/r").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert_eq!(
            redact_url("fatal: unable to access 'https://me:tok@host/r.git/': 403"),
            "fatal: unable to access 'https://***@host/r.git/': 403"
        );
        assert_eq!(redact_url("https://host/a@b"), "https://host/a@b");
        assert_eq!(
            describe(&source("https://x:y@h/r.git", "abc")),
            "https://***@h/r.git#abc"
        );
    }
}
