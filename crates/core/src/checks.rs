//! Check commands (`--check`, `--file-check`), blame attribution, and the
//! files workers may not edit because the checks run them.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use globset::{Glob, GlobSet, GlobSetBuilder};
use tokio::io::AsyncReadExt;

use crate::{Error, Result};

/// Keep at most this much of a check's output (head and tail).
const MAX_OUTPUT: usize = 16 * 1024;

/// What a check command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutput {
    /// Exit status 0 within the timeout.
    pub success: bool,
    /// The exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Combined stdout and stderr, shortened in the middle when long.
    pub output: String,
    /// Killed at the timeout.
    pub timed_out: bool,
}

fn shorten(mut text: String) -> String {
    if text.len() <= MAX_OUTPUT {
        return text;
    }
    let mut head_end = MAX_OUTPUT / 2;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - MAX_OUTPUT / 2;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let tail = text.split_off(tail_start);
    text.truncate(head_end);
    format!("{text}\n[... output shortened ...]\n{tail}")
}

/// Runs `command` with `sh -c` in `cwd`; the process is killed at `timeout`
/// (and if this future is dropped).
pub async fn run_check(command: &str, cwd: &Path, timeout: Duration) -> Result<CheckOutput> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::io(format!("starting check {command:?}"), e))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read_all = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(s) = stdout.as_mut() {
            let _ = s.read_to_end(&mut out).await;
        }
        if let Some(s) = stderr.as_mut() {
            let _ = s.read_to_end(&mut err).await;
        }
        (out, err)
    };
    let outcome = tokio::time::timeout(timeout, async {
        let (out, err) = read_all.await;
        let status = child.wait().await;
        (out, err, status)
    })
    .await;
    match outcome {
        Ok((out, err, status)) => {
            let status =
                status.map_err(|e| Error::io(format!("waiting for check {command:?}"), e))?;
            let mut text = String::from_utf8_lossy(&out).into_owned();
            text.push_str(&String::from_utf8_lossy(&err));
            Ok(CheckOutput {
                success: status.success(),
                exit_code: status.code(),
                output: shorten(text),
                timed_out: false,
            })
        }
        Err(_) => Ok(CheckOutput {
            success: false,
            exit_code: None,
            output: format!(
                "check {command:?} timed out after {}s and was killed",
                timeout.as_secs()
            ),
            timed_out: true,
        }),
    }
}

/// Quotes a path for `sh`.
pub fn shell_quote(path: &str) -> String {
    format!("'{}'", path.replace('\'', r"'\''"))
}

/// The changed files a failing check's output names (by relative path).
pub fn blame(output: &str, candidates: &[String]) -> Vec<String> {
    candidates
        .iter()
        .filter(|p| output.contains(p.as_str()))
        .cloned()
        .collect()
}

/// Workspace-relative files a check command names: its arguments that look
/// like relative paths (`python3 check.py`, `sh ./scripts/ci.sh`), and the
/// module of `python -m pkg.mod` as `pkg/mod.py`. Placeholders, options and
/// absolute paths are left out; whether a name is a file is the caller's
/// business (a planned path either equals one or not).
pub fn files_named_by(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut after_m = false;
    for raw in command.split(|c: char| c.is_whitespace() || ";&|()<>`".contains(c)) {
        let token = raw.trim_matches(|c| c == '\'' || c == '"');
        if token.is_empty() {
            continue;
        }
        if after_m {
            after_m = false;
            out.push(format!("{}.py", token.replace('.', "/")));
            continue;
        }
        if token == "-m" {
            after_m = true;
            continue;
        }
        if token.starts_with('-')
            || token.starts_with('/')
            || token.starts_with('$')
            || token.contains('{')
            || token.contains('=')
            || token.contains("..")
        {
            continue;
        }
        let token = token.trim_start_matches("./");
        if !token.is_empty() {
            out.push(token.to_owned());
        }
    }
    out
}

/// Files workers never edit: those the check commands name, and the
/// configured `limits.protected_paths` globs.
#[derive(Debug)]
pub struct ProtectedFiles {
    named: Vec<String>,
    globs: GlobSet,
}

impl ProtectedFiles {
    /// From the job's check commands and the configured globs.
    pub fn new(commands: &[Option<&str>], globs: &[String]) -> Result<Self> {
        let named = commands
            .iter()
            .flatten()
            .flat_map(|c| files_named_by(c))
            .collect();
        let mut builder = GlobSetBuilder::new();
        for pattern in globs {
            let glob = Glob::new(pattern).map_err(|e| {
                Error::Config(format!("limits.protected_paths: bad glob {pattern:?}: {e}"))
            })?;
            builder.add(glob);
        }
        let globs = builder
            .build()
            .map_err(|e| Error::Config(format!("limits.protected_paths: {e}")))?;
        Ok(Self { named, globs })
    }

    /// Why a worker may not edit `path` (workspace-relative), if it may not.
    pub fn reason(&self, path: &str) -> Option<String> {
        if self.named.iter().any(|n| n == path) {
            Some("protected: a check command runs this file, so workers never edit it".to_owned())
        } else if self.globs.is_match(path) {
            Some("protected by limits.protected_paths".to_owned())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let ok = run_check("echo hi; echo err >&2", dir.path(), Duration::from_secs(10))
            .await
            .unwrap();
        assert!(ok.success);
        assert_eq!(ok.output, "hi\nerr\n");
        let bad = run_check("exit 3", dir.path(), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!((bad.success, bad.exit_code), (false, Some(3)));
        let slow = run_check("sleep 5", dir.path(), Duration::from_millis(100))
            .await
            .unwrap();
        assert!(slow.timed_out && !slow.success);
    }

    #[test]
    fn files_the_checks_run_are_protected() {
        assert_eq!(
            files_named_by("python3 check.py && sh ./scripts/ci.sh --fast 'x y.sh'"),
            ["python3", "check.py", "sh", "scripts/ci.sh", "x", "y.sh"]
        );
        assert_eq!(
            files_named_by("python -m tools.verify {file}; X=1 /usr/bin/true ../up.py"),
            ["python", "tools/verify.py"]
        );
        let p = ProtectedFiles::new(
            &[Some("python3 check.py"), None, Some("ruff check {file}")],
            &["ci/**".to_owned()],
        )
        .unwrap();
        assert!(p.reason("check.py").unwrap().contains("check command"));
        assert!(p.reason("ci/run.sh").unwrap().contains("protected_paths"));
        assert_eq!(p.reason("app/check.py"), None);
        assert!(ProtectedFiles::new(&[], &["[".to_owned()]).is_err());
    }

    #[test]
    fn blame_finds_named_files() {
        let c = vec!["src/a.py".to_owned(), "src/b.py".to_owned()];
        assert_eq!(
            blame("File \"/tmp/x/src/b.py\", line 3", &c),
            vec!["src/b.py".to_owned()]
        );
        assert!(blame("all good", &c).is_empty());
        assert_eq!(shell_quote("a'b"), "'a'\\''b'");
    }
}
