//! One test's world ([`Fixture`]): a temp dir holding the workspace, `HOME`,
//! the store and the scenario, the simulator serving it, and `cadre`
//! commands run against both.

use std::path::PathBuf;
use std::process::Command;

use cadre_types::{JobId, JobReport};

use crate::binary::cadre_bin;
use crate::cases::{FileCase, ScenarioSpec};
use crate::files::write_file;
use crate::process::{CmdOutput, Running, clean_command, run_with_timeout};
use crate::report::parse_report;
use crate::sim::Sim;
use crate::{COMMAND_TIMEOUT, RENAME};

/// One test's world: a temp dir holding the workspace (`ws/`), `HOME`, the
/// SQLite store and the scenario, plus the running simulator.
#[derive(Debug)]
pub struct Fixture {
    /// Owns everything on disk; removed on drop.
    pub tmp: tempfile::TempDir,
    /// The workspace root.
    pub ws: PathBuf,
    /// `HOME` of every child process.
    pub home: PathBuf,
    /// `CADRE_DB`.
    pub db: PathBuf,
    /// The simulator.
    pub sim: Sim,
    /// The cases the workspace was built from.
    pub cases: Vec<FileCase>,
}

impl Fixture {
    /// A workspace holding every case's original, and a simulator serving `scenario`.
    pub fn new(scenario: &ScenarioSpec) -> Fixture {
        Self::with_files(scenario, &[])
    }

    /// Like [`Fixture::new`], with extra workspace files (path, bytes).
    pub fn with_files(scenario: &ScenarioSpec, extra_files: &[(&str, &[u8])]) -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("cadre-e2e-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        let ws = tmp.path().join("ws");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&ws).unwrap_or_else(|e| panic!("creating {}: {e}", ws.display()));
        std::fs::create_dir_all(&home)
            .unwrap_or_else(|e| panic!("creating {}: {e}", home.display()));
        for case in scenario.cases() {
            write_file(&ws, &case.path, &case.original);
        }
        for (rel, bytes) in extra_files {
            write_file(&ws, rel, bytes);
        }
        let toml = if scenario.reads_workspace() {
            let mut built = scenario.build();
            built.workspace = Some(ws.clone());
            built
                .to_toml_string()
                .unwrap_or_else(|e| panic!("writing the test's scenario: {e}"))
        } else {
            scenario.to_toml()
        };
        let sim = Sim::start(&toml, &tmp.path().join("sim"));
        let db = tmp.path().join("cadre.db");
        Fixture {
            ws,
            home,
            db,
            sim,
            cases: scenario.cases().to_vec(),
            tmp,
        }
    }

    /// The workspace path as a string argument.
    pub fn ws_arg(&self) -> String {
        self.ws.to_string_lossy().into_owned()
    }

    /// The case for `path`.
    pub fn case(&self, path: &str) -> &FileCase {
        self.cases
            .iter()
            .find(|c| c.path == path)
            .unwrap_or_else(|| panic!("no case for {path}"))
    }

    /// A `cadre` command with the clean environment: `CADRE_DB`,
    /// `ANTHROPIC_BASE_URL` (the sim), `ANTHROPIC_API_KEY`, `HOME`, `PATH`.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut cmd = clean_command(cadre_bin(), &self.home);
        cmd.env("CADRE_DB", &self.db)
            .env("ANTHROPIC_BASE_URL", self.sim.base_url())
            .env("ANTHROPIC_API_KEY", "test-key")
            .current_dir(self.tmp.path())
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs `cadre args` to completion.
    pub fn cadre(&self, args: &[&str]) -> CmdOutput {
        self.cadre_env(args, &[])
    }

    /// Runs `cadre args` with extra environment variables.
    pub fn cadre_env(&self, args: &[&str], env: &[(&str, &str)]) -> CmdOutput {
        run_with_timeout(self.command(args, env), COMMAND_TIMEOUT)
    }

    /// `cadre [global...] run RENAME --workspace WS --json [extra...]`; parses the report.
    pub fn run_json(&self, global: &[&str], extra: &[&str]) -> (CmdOutput, JobReport) {
        let ws = self.ws_arg();
        let mut args: Vec<&str> = global.to_vec();
        args.extend(["run", RENAME, "--workspace", &ws, "--json"]);
        args.extend(extra);
        let out = self.cadre(&args);
        let report = parse_report(&out);
        (out, report)
    }

    /// `cadre diff JOB` (must succeed).
    pub fn diff(&self, job: &JobId) -> String {
        let out = self.cadre(&["diff", &job.to_string()]);
        out.expect_code(0);
        out.stdout
    }

    /// The first (newest) job of `cadre jobs --json`.
    pub fn newest_job(&self) -> serde_json::Value {
        let out = self.cadre(&["jobs", "--json"]);
        out.expect_code(0);
        let jobs: serde_json::Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("cadre jobs --json is not JSON ({e})\n{}", out.dump()));
        jobs.get(0)
            .cloned()
            .unwrap_or_else(|| panic!("no jobs listed\n{}", out.dump()))
    }

    /// Spawns `cadre args` (clean environment, output to files under the
    /// fixture's temp dir) without waiting; see [`Running`].
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Running {
        Running::start(self.command(args, env), self.tmp.path())
    }
}
