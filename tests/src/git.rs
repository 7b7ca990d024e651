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
