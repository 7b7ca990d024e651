//! Check commands (`--check`, `--file-check`) and blame attribution.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

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
