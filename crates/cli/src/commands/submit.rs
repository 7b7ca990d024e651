//! `cadre submit`: queue a job on the daemon and print its id.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use cadre_core::checkout::{RepoLocation, redact_url, repo_location};
use cadre_types::api::{GitSource, SubmitRequest};

use crate::args::{Cli, SubmitArgs};
use crate::client::DaemonClient;
use crate::session::read_rules;

/// `cadre submit`: prints the new job's id.
pub(super) async fn run(cli: &Cli, args: &SubmitArgs) -> Result<ExitCode> {
    let client = DaemonClient::connect(cli, &args.server)?;
    let (workspace, git) = match (&args.workspace, &args.repo, args.git) {
        (Some(path), _, _) => {
            if args.rev.is_some() || args.push_branch.is_some() {
                bail!("--rev and --push-branch go with --repo or --git, not --workspace");
            }
            (workspace_path(path)?, None)
        }
        (None, Some(url), _) => (String::new(), Some(repo_source(url, args)?)),
        (None, None, true) => (String::new(), Some(own_repo_source(args)?)),
        (None, None, false) => bail!("give --workspace DIR, --repo URL or --git"),
    };
    let request = SubmitRequest {
        instruction: args.instruction.clone(),
        workspace,
        files: args.files.clone(),
        check: args.check.clone(),
        file_check: args.file_check.clone(),
        priority: args.priority,
        batch: args.batch,
        budget_usd: args.budget,
        require_budget_fit: args.require_budget_fit,
        rules: read_rules(&args.rules)?,
        git,
    };
    let answer = client.submit(&request).await?;
    println!("{}", answer.job_id);
    Ok(ExitCode::SUCCESS)
}

/// The workspace as the daemon should see it: canonical when it exists here
/// (the usual case: the daemon runs on this machine), else as given if absolute.
fn workspace_path(path: &Path) -> Result<String> {
    match path.canonicalize() {
        Ok(p) => Ok(p.to_string_lossy().into_owned()),
        Err(_) if path.is_absolute() => Ok(path.to_string_lossy().into_owned()),
        Err(e) => bail!("workspace {}: {e}", path.display()),
    }
}

/// `--repo URL [--rev REV]`: the daemon resolves the revision.
fn repo_source(url: &str, args: &SubmitArgs) -> Result<GitSource> {
    repo_location(url)?;
    Ok(GitSource {
        url: url.to_owned(),
        rev: args.rev.clone().unwrap_or_else(|| "HEAD".to_owned()),
        push_branch: args.push_branch.clone(),
    })
}

/// `--git`: the current directory's repository, as its `origin` URL (a
/// relative path made absolute) and the commit of `--rev` (default HEAD),
/// resolved here. Warns when the commit is on no branch fetched from
/// origin, and when the working tree has changes the job will not see.
fn own_repo_source(args: &SubmitArgs) -> Result<GitSource> {
    let top = PathBuf::from(git_here(&["rev-parse", "--show-toplevel"])?);
    let origin = git_here(&["remote", "get-url", "origin"])
        .context("--git takes the repository's `origin` remote")?;
    let url = match repo_location(&origin) {
        Ok(_) => origin,
        // A relative path: relative to the repository, as git reads it.
        Err(_) => {
            let path = top.join(&origin);
            let path = path
                .canonicalize()
                .with_context(|| format!("origin {}", path.display()))?;
            path.to_string_lossy().into_owned()
        }
    };
    let local = matches!(repo_location(&url)?, RepoLocation::Local(_));
    let rev = args.rev.as_deref().unwrap_or("HEAD");
    let commit = git_here(&["rev-parse", "--verify", &format!("{rev}^{{commit}}")])?;
    let on_origin = git_here(&["branch", "--remotes", "--contains", &commit])
        .is_ok_and(|branches| branches.lines().any(|b| b.trim().starts_with("origin/")));
    if !on_origin && !local {
        eprintln!(
            "warning: commit {commit} is on no branch fetched from origin ({}); the daemon \
             can only run it once it is pushed",
            redact_url(&url)
        );
    }
    if rev == "HEAD" && !git_here(&["status", "--porcelain"])?.is_empty() {
        eprintln!("note: uncommitted changes are not part of the job; it runs on commit {commit}");
    }
    Ok(GitSource {
        url,
        rev: commit,
        push_branch: args.push_branch.clone(),
    })
}

/// `git ARGS` in the current directory; its trimmed stdout.
fn git_here(args: &[&str]) -> Result<String> {
    let out = std::process::Command::new("git")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running git {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.join(" "),
            redact_url(String::from_utf8_lossy(&out.stderr).trim())
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
