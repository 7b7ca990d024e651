//! Git workspaces end to end: the real daemon runs jobs named by a git
//! repository and revision (`cadre submit --repo URL --rev REV`, and
//! `cadre submit --git` from inside a clone) in its own checkout, although
//! its allowed roots do not hold the submitter's working tree; the patch is
//! in the store, the job's worktree is gone when it ends, and
//! `--push-branch` leaves a branch in the repository whose commit sits on
//! the revision and holds the change.

#![expect(
    clippy::unwrap_used,
    reason = "process and socket helpers outside #[test] fns fail loudly"
)]

#[path = "daemon/harness.rs"]
#[allow(
    dead_code,
    reason = "the daemon tests' harness; this file uses its daemon starter"
)]
mod harness;
#[path = "daemon/http.rs"]
#[allow(
    dead_code,
    reason = "the daemon tests' raw HTTP client, used by the harness"
)]
mod http;

use cadre_e2e::{Fixture, RENAME, ScenarioSpec, bare_remote, git, rename_module, run_with_timeout};
use cadre_types::JobStatus;
use cadre_types::api::JobPage;
use pretty_assertions::assert_eq;

use crate::harness::Daemon;

#[test]
fn a_daemon_runs_jobs_on_a_git_repository_outside_its_allowed_roots() {
    let case = rename_module("app/a.py", "a");
    let f = Fixture::new(&ScenarioSpec::new(std::slice::from_ref(&case)));
    let home = &f.home;
    // The submitter's repository, and a bare clone of it as the "remote".
    let (remotes, url, base) = bare_remote(&f);
    let bare = remotes.join("origin.git");
    let bare_arg = bare.to_string_lossy().into_owned();
    let checkouts = f.tmp.path().join("checkouts");
    let checkouts_setting = format!("daemon.checkouts_dir={}", checkouts.display());

    // The daemon may touch the remotes only: not the submitter's tree.
    let d = Daemon::start(
        &f,
        &[
            "--allow-root",
            &remotes.to_string_lossy(),
            "-c",
            &checkouts_setting,
        ],
        &[],
    );
    let server = [("CADRE_SERVER", d.url.as_str())];
    let refused = f.cadre_env(&["submit", RENAME, "--workspace", &f.ws_arg()], &server);
    assert_ne!(refused.code, Some(0), "{}", refused.dump());
    assert!(refused.stderr.contains("outside"), "{}", refused.dump());

    // --repo URL --rev SHA --push-branch NAME.
    let out = f.cadre_env(
        &[
            "submit",
            RENAME,
            "--repo",
            &url,
            "--rev",
            &base,
            "--push-branch",
            "cadre/test",
        ],
        &server,
    );
    out.expect_code(0);
    let job = out.stdout.trim().to_owned();
    let report = d.wait_terminal(&job);
    assert_eq!(
        report.status,
        JobStatus::Completed,
        "{report:#?}\n{}",
        d.stderr()
    );
    assert_eq!(report.files_changed, 1, "{report:#?}");

    // The patch is in the store, served by the daemon.
    let diff = d.get(&format!("/v1/jobs/{job}/diff"));
    assert_eq!(diff.status, 200, "{diff:#?}");
    assert!(
        diff.body.contains("+from app.models import AccountId"),
        "{}",
        diff.body
    );
    // The job's worktree is gone; the clone stays cached.
    assert!(!checkouts.join("jobs").join(&job).exists());
    assert!(checkouts.join("repos").is_dir());
    // The pushed branch: one commit on the base, holding the change.
    let parent = git(&bare, home, &["rev-parse", "cadre/test^"]);
    assert_eq!(parent.trim(), base);
    assert_eq!(
        git(&bare, home, &["show", "cadre/test:app/a.py"]),
        case.expected()
    );
    // The submitter's tree is untouched, and so is the remote's main line.
    assert_eq!(
        std::fs::read_to_string(f.ws.join("app/a.py")).unwrap(),
        case.original
    );
    assert_eq!(git(&bare, home, &["rev-parse", "HEAD"]).trim(), base);
    // The branch exists now: a second job may not overwrite it.
    let again = f.cadre_env(
        &[
            "submit",
            RENAME,
            "--repo",
            &url,
            "--rev",
            &base,
            "--push-branch",
            "cadre/test",
        ],
        &server,
    );
    again.expect_code(0);
    let again_report = d.wait_terminal(again.stdout.trim());
    assert_eq!(
        again_report.status,
        JobStatus::NeedsHuman,
        "{again_report:#?}"
    );
    assert!(
        again_report.reason.contains("cadre/test"),
        "{again_report:#?}"
    );
    let parent = git(&bare, home, &["rev-parse", "cadre/test^"]);
    assert_eq!(parent.trim(), base);

    // --git inside a clone: origin's URL and HEAD's commit.
    let clone = f.tmp.path().join("clone");
    git(
        f.tmp.path(),
        home,
        &["clone", "--quiet", &bare_arg, &clone.to_string_lossy()],
    );
    let mut cmd = f.command(&["submit", RENAME, "--git"], &server);
    cmd.current_dir(&clone);
    let out = run_with_timeout(cmd, std::time::Duration::from_secs(60));
    out.expect_code(0);
    let own = out.stdout.trim().to_owned();
    let report = d.wait_terminal(&own);
    assert_eq!(report.status, JobStatus::Completed, "{report:#?}");
    let listed = d.get("/v1/jobs?limit=10");
    let page: JobPage = serde_json::from_value(listed.json).unwrap();
    let summary = page
        .data
        .iter()
        .find(|j| j.job_id.to_string() == own)
        .unwrap();
    assert_eq!(summary.workspace, format!("{bare_arg}#{base}"));
    assert!(!checkouts.join("jobs").join(&own).exists());
}
