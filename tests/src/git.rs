//! Running `git` with a clean environment and a fixed identity.

use std::path::Path;
use std::time::Duration;

use crate::process::{clean_command, run_with_timeout};

/// Runs `git args` in `dir` with a clean environment; panics on failure.
pub fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    let mut cmd = clean_command("git", home);
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .args([
            "-c",
            "user.name=e2e",
            "-c",
            "user.email=e2e@localhost",
            "-c",
            "init.defaultBranch=main",
        ])
        .arg("-C")
        .arg(dir)
        .args(args);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "git failed\n{}", out.dump());
    out.stdout
}

/// A git remote holding the fixture's workspace: commits the workspace
/// (`git init`, everything in one commit) and clones it bare to
/// `<tmp>/remotes/origin.git`. Returns the remotes directory (to allow as a
/// root), the clone's `file://` URL and the commit.
pub fn bare_remote(f: &crate::Fixture) -> (std::path::PathBuf, String, String) {
    let home = &f.home;
    git(&f.ws, home, &["init", "--quiet"]);
    git(&f.ws, home, &["add", "."]);
    git(&f.ws, home, &["commit", "--quiet", "-m", "start"]);
    let base = git(&f.ws, home, &["rev-parse", "HEAD"]).trim().to_owned();
    let remotes = f.tmp.path().join("remotes");
    std::fs::create_dir_all(&remotes)
        .unwrap_or_else(|e| panic!("creating {}: {e}", remotes.display()));
    let bare = remotes.join("origin.git").to_string_lossy().into_owned();
    git(
        f.tmp.path(),
        home,
        &["clone", "--bare", "--quiet", &f.ws_arg(), &bare],
    );
    (remotes, format!("file://{bare}"), base)
}
