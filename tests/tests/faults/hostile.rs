//! Hostile input: plan paths that escape the workspace or repeat a planned
//! file, binary, non-UTF-8 and oversize files, and a workspace that changes
//! under a running job.

use std::time::Duration;

use cadre_e2e::{
    FaultKind, Fixture, RENAME, ScenarioSpec, SimRequestExt, assert_all_terminal, assert_no_panic,
    parse_report, read_file, snapshot, subtask, write_file,
};
use cadre_types::{JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

use crate::invariants::{TARGET, apply_and_check, cases, fault, run_checked, worker_log};

#[test]
fn hostile_and_duplicate_plan_paths_are_skipped_with_reasons() {
    let outside = tempfile::Builder::new()
        .prefix("cadre-e2e-outside-")
        .tempdir()
        .unwrap();
    write_file(outside.path(), "evil.py", "SAFE = 1\n");
    let absolute = outside
        .path()
        .join("evil.py")
        .to_string_lossy()
        .into_owned();
    let pwned = "import os\nos.system('echo pwned')\n";
    let spec = ScenarioSpec::new(&cases())
        .extra_subtask("../escape.py", pwned)
        .extra_subtask(&absolute, pwned)
        .extra_subtask(".git/hooks/pre-commit", pwned)
        .extra_subtask("link/evil.py", pwned)
        // Duplicates of a planned file, literally and after normalisation.
        .planned(TARGET, "Again.")
        .planned("app/./views.py", "Again, spelled differently.");
    let f = Fixture::new(&spec);
    std::fs::create_dir_all(f.ws.join(".git/hooks")).unwrap();
    std::os::unix::fs::symlink(outside.path(), f.ws.join("link")).unwrap();
    let outside_before = snapshot(outside.path());
    let report = run_checked(&f, &[]);
    assert_eq!(report.status, JobStatus::Completed);
    let skipped: Vec<(&str, &str)> = report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Skipped)
        .map(|s| (s.path.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 6, "{skipped:#?}");
    for (rule, count) in [
        ("..", 1),
        ("absolute", 1),
        (".git", 1),
        ("symlink", 1),
        ("duplicate", 2),
    ] {
        let n = skipped.iter().filter(|(_, r)| r.contains(rule)).count();
        assert_eq!(n, count, "skips mentioning {rule:?}: {skipped:#?}");
    }
    for s in report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Skipped)
    {
        assert_eq!(s.attempts, 0, "{s:#?}");
    }
    // The planned file itself ran once, not three times.
    assert_eq!(worker_log(&f, TARGET).len(), 1);
    assert_eq!(snapshot(outside.path()), outside_before);
    apply_and_check(&f, &report);
    assert!(!f.ws.join(".git/hooks/pre-commit").exists());
    assert!(!f.ws.parent().unwrap().join("escape.py").exists());
}

#[test]
fn binary_non_utf8_and_oversize_files_are_skipped_and_never_sent() {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(b"UserId\0\0");
    let latin1 = b"# caf\xe9 UserId\nfrom app.models import UserId\n".to_vec();
    let big = format!(
        "from app.models import UserId\n{}",
        "PADDING = 'UserId'  # filler line for size\n".repeat(80)
    );
    let spec = ScenarioSpec::new(&cases())
        .extra_subtask("assets/logo.png", "not a png\n")
        .extra_subtask("app/latin1.py", "from app.models import AccountId\n")
        .extra_subtask("app/big.py", "from app.models import AccountId\n");
    let f = Fixture::with_files(
        &spec,
        &[
            ("assets/logo.png", &png),
            ("app/latin1.py", &latin1),
            ("app/big.py", big.as_bytes()),
        ],
    );
    let report = run_checked(&f, &["-c", "limits.max_file_bytes=2000"]);
    assert_eq!(report.status, JobStatus::Completed);
    for (path, reason) in [
        ("assets/logo.png", "binary"),
        ("app/latin1.py", "utf-8"),
        ("app/big.py", "larger than 2000"),
    ] {
        let s = subtask(&report, path);
        assert_eq!(s.status, SubtaskStatus::Skipped, "{s:#?}");
        assert!(
            s.reason.to_lowercase().contains(&reason.to_lowercase()),
            "{path}: reason should mention {reason:?}: {s:#?}"
        );
        assert!(
            worker_log(&f, path).is_empty(),
            "{path} was sent to a model"
        );
    }
    apply_and_check(&f, &report);
    assert_eq!(std::fs::read(f.ws.join("assets/logo.png")).unwrap(), png);
    assert_eq!(std::fs::read(f.ws.join("app/latin1.py")).unwrap(), latin1);
    assert_eq!(read_file(&f.ws, "app/big.py"), big);
}

// ------------------------------------------------------------------ the workspace moves under the job

#[test]
fn a_file_changed_or_deleted_mid_job_is_left_alone_by_apply() {
    // Serial calls, and a slow answer for TARGET: while it is in flight the
    // user edits TARGET and deletes app/service.py (already read by the plan).
    let spec = ScenarioSpec::new(&cases()).fault(fault(FaultKind::Slow).times(1).delay_ms(1500));
    let f = Fixture::new(&spec);
    let ws = f.ws_arg();
    let mut running = f.spawn(
        &[
            "-c",
            "limits.max_concurrency=1",
            "run",
            RENAME,
            "--workspace",
            &ws,
            "--json",
        ],
        &[],
    );
    f.sim.wait_for(
        "the answer before the slow call",
        Duration::from_secs(60),
        |r| r.is_worker_for("app/models.py") && r.status == 200,
    );
    // The sim logs a request when it answers, so the slow call for TARGET
    // (sent right after app/models.py's answer) is in flight now.
    assert!(!running.has_exited(), "the job ended before the slow call");
    let user_edit = format!(
        "{}# the user's edit, made mid-job\n",
        f.case(TARGET).original
    );
    write_file(&f.ws, TARGET, &user_edit);
    std::fs::remove_file(f.ws.join("app/service.py")).unwrap();
    let out = running.wait();
    assert!(matches!(out.code, Some(0) | Some(2)), "{}", out.dump());
    assert_no_panic(&out);
    let report = parse_report(&out);
    assert_all_terminal(&report);

    let applied = f.cadre(&["apply", &report.job_id.to_string(), "--json"]);
    assert_no_panic(&applied);
    applied.expect_code(3);
    let outcome: serde_json::Value = serde_json::from_str(&applied.stdout).unwrap();
    let conflicts: Vec<String> = outcome["conflicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[0].as_str().unwrap().to_owned())
        .collect();
    let mut conflicts = conflicts;
    conflicts.sort();
    assert_eq!(
        conflicts,
        vec!["app/service.py".to_owned(), TARGET.to_owned()]
    );
    assert_eq!(
        read_file(&f.ws, TARGET),
        user_edit,
        "the user's edit is kept"
    );
    assert!(
        !f.ws.join("app/service.py").exists(),
        "a deleted file was recreated"
    );
    assert_eq!(
        read_file(&f.ws, "app/models.py"),
        f.case("app/models.py").expected()
    );
}
