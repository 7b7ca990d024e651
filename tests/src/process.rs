//! Running commands: a clean environment ([`clean_command`]), a watchdog
//! ([`run_with_timeout`]), what a finished command did ([`CmdOutput`]) and a
//! command running in the background ([`Running`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::COMMAND_TIMEOUT;

/// What a finished command did.
#[derive(Clone, Debug)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub command: String,
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CmdOutput {
    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "$ {}\nexit code: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command, self.code, self.stdout, self.stderr
        )
    }

    /// Panics unless the exit code is `code`.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "unexpected exit code\n{}",
            self.dump()
        );
        self
    }
}

/// The command line, for messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut out = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        out.push(' ');
        out.push_str(&arg.to_string_lossy());
    }
    out
}

fn drain<R: Read + Send + 'static>(reader: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut r) = reader {
            let _ = r.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Runs `cmd` to completion with piped output; kills it and panics after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> CmdOutput {
    let command = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out.join().unwrap_or_default();
                let stderr = err.join().unwrap_or_default();
                panic!(
                    "{command} did not finish within {timeout:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("waiting for {command}: {e}"),
        }
    };
    CmdOutput {
        command,
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A `Command` with an empty environment plus `PATH` (so `sh`, `git` and
/// `grep` resolve) and `HOME`.
pub fn clean_command(program: impl AsRef<std::ffi::OsStr>, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear();
    cmd.env(
        "PATH",
        std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
    );
    cmd.env("HOME", home);
    cmd.env("LANG", "C.UTF-8");
    cmd
}

/// A `cadre` command running in the background; killed on drop.
#[derive(Debug)]
pub struct Running {
    child: Child,
    command: String,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    started: Instant,
}

impl Running {
    /// Spawns `cmd` without waiting, its output going to
    /// `dir/spawned-N.stdout` and `dir/spawned-N.stderr`.
    pub fn start(mut cmd: Command, dir: &Path) -> Running {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let stdout_path = dir.join(format!("spawned-{n}.stdout"));
        let stderr_path = dir.join(format!("spawned-{n}.stderr"));
        let stdout = std::fs::File::create(&stdout_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stdout_path.display()));
        let stderr = std::fs::File::create(&stderr_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", stderr_path.display()));
        let command = describe(&cmd);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command}: {e}"));
        Running {
            child,
            command,
            stdout_path,
            stderr_path,
            started: Instant::now(),
        }
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// True once the process has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// SIGKILLs it and collects what it printed.
    pub fn kill(mut self) -> CmdOutput {
        let _ = self.child.kill();
        self.collect()
    }

    /// Waits for it to finish (panics after [`COMMAND_TIMEOUT`] in total).
    pub fn wait(mut self) -> CmdOutput {
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if self.started.elapsed() > COMMAND_TIMEOUT => {
                    let _ = self.child.kill();
                    let out = self.collect();
                    panic!("{} did not finish in time\n{}", out.command, out.dump());
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => panic!("waiting for {}: {e}", self.command),
            }
        }
        self.collect()
    }

    fn collect(&mut self) -> CmdOutput {
        let status = self.child.wait().ok();
        CmdOutput {
            command: self.command.clone(),
            code: status.and_then(|s| s.code()),
            stdout: std::fs::read_to_string(&self.stdout_path).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr_path).unwrap_or_default(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
