//! Safety and bad input: hostile plan paths, files that must never reach a
//! model, and apply never overwriting a user's edit.

use cadre_e2e::{
    Fixture, ScenarioSpec, SimRequestExt, SimRole, assert_accepted_first_try, assert_all_terminal,
    git, models_file, read_file, rename_module, snapshot, subtask, write_file,
};
use cadre_types::{JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

#[test]
fn hostile_plan_paths_are_skipped_and_nothing_outside_the_workspace_changes() {
    let outside = tempfile::Builder::new()
        .prefix("cadre-e2e-outside-")
        .tempdir()
        .unwrap();
    write_file(outside.path(), "abs.py", "SECRET = 1\n");
    write_file(outside.path(), "evil.py", "SAFE = 1\n");
    let absolute = outside.path().join("abs.py").to_string_lossy().into_owned();

    let pwned = "import os\nos.system('echo pwned')\n";
    let spec = ScenarioSpec::new(&[models_file()])
        .extra_subtask("../outside.py", pwned)
        .extra_subtask(&absolute, pwned)
        .extra_subtask("/etc/passwd", "root::0:0::/root:/bin/sh\n")
        .extra_subtask(".git/config", "[core]\n\thooksPath = /tmp/evil\n")
        .extra_subtask("link/evil.py", pwned)
        .extra_subtask("app/escape.py", pwned);
    let f = Fixture::new(&spec);
    git(&f.ws, &f.home, &["init", "--quiet"]);
    // A directory symlink and a file symlink, both leading out of the workspace.
    std::os::unix::fs::symlink(outside.path(), f.ws.join("link")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("evil.py"), f.ws.join("app/escape.py")).unwrap();
    // A sibling of the workspace that "../outside.py" would reach.
    let sibling = f.ws.parent().unwrap().join("outside.py");
    std::fs::write(&sibling, "SIBLING = 1\n").unwrap();

    let outside_before = snapshot(outside.path());
    let git_before = snapshot(&f.ws.join(".git"));
    let passwd_before = std::fs::read("/etc/passwd").ok();

    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    assert_all_terminal(&report);
    assert_accepted_first_try(&report, "app/models.py", "haiku");
    let expectations = [
        ("../outside.py", ".."),
        (absolute.as_str(), "absolute"),
        ("/etc/passwd", "absolute"),
        (".git/config", ".git"),
        ("link/evil.py", "symlink"),
        ("app/escape.py", "symlink"),
    ];
    for (path, rule) in expectations {
        let s = subtask(&report, path);
        assert_eq!(s.status, SubtaskStatus::Skipped, "{s:#?}");
        assert!(
            s.reason.contains(rule),
            "the reason for {path} should mention {rule:?}: {s:#?}"
        );
        assert_eq!(s.attempts, 0, "{s:#?}");
    }
    // None of them was ever sent to a worker.
    let workers: Vec<String> = f
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.role == Some(SimRole::Worker))
        .filter_map(|r| r.subtask_path)
        .collect();
    assert_eq!(workers, vec!["app/models.py".to_owned()]);
    let rejected = f
        .events(&report.job_id)
        .into_iter()
        .filter(|(k, _)| k == "path_rejected")
        .count();
    assert_eq!(rejected, 6, "every rejection is recorded as an event");

    let job = report.job_id.to_string();
    let diff = f.diff(&report.job_id);
    assert!(
        !diff.contains("pwned") && !diff.contains("hooksPath"),
        "{diff}"
    );
    f.cadre(&["apply", &job]).expect_code(0);
    assert_eq!(
        read_file(&f.ws, "app/models.py"),
        f.case("app/models.py").expected()
    );
    assert_eq!(
        snapshot(outside.path()),
        outside_before,
        "files outside the workspace changed"
    );
    assert_eq!(snapshot(&f.ws.join(".git")), git_before, ".git changed");
    assert_eq!(std::fs::read_to_string(&sibling).unwrap(), "SIBLING = 1\n");
    assert_eq!(std::fs::read("/etc/passwd").ok(), passwd_before);
}

#[test]
fn binary_and_oversize_files_are_skipped_and_never_sent_to_a_model() {
    let big = format!(
        "from app.models import UserId\n\n{}",
        "PADDING = 'UserId'  # filler line for size\n".repeat(60)
    );
    assert!(big.len() > 2000);
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(b"UserId\0\0");
    let spec = ScenarioSpec::new(&[models_file()])
        .extra_subtask("assets/logo.png", "not really a png\n")
        .extra_subtask("app/big.py", "from app.models import AccountId\n");
    let f = Fixture::with_files(
        &spec,
        &[("assets/logo.png", &png), ("app/big.py", big.as_bytes())],
    );

    let (out, report) = f.run_json(&["-c", "limits.max_file_bytes=2000"], &[]);
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    assert_all_terminal(&report);
    assert_accepted_first_try(&report, "app/models.py", "haiku");
    let logo = subtask(&report, "assets/logo.png");
    assert_eq!(logo.status, SubtaskStatus::Skipped, "{logo:#?}");
    assert!(logo.reason.contains("binary file"), "{logo:#?}");
    let large = subtask(&report, "app/big.py");
    assert_eq!(large.status, SubtaskStatus::Skipped, "{large:#?}");
    assert!(large.reason.contains("larger than 2000"), "{large:#?}");

    let requests = f.sim.requests();
    for path in ["assets/logo.png", "app/big.py"] {
        assert!(
            !requests.iter().any(|r| r.is_worker_for(path)),
            "{path} was sent to a worker: {requests:#?}"
        );
    }
    f.cadre(&["apply", &report.job_id.to_string()])
        .expect_code(0);
    assert_eq!(std::fs::read(f.ws.join("assets/logo.png")).unwrap(), png);
    assert_eq!(read_file(&f.ws, "app/big.py"), big);
}

#[test]
fn apply_leaves_alone_a_file_edited_after_the_job_started() {
    let cases = vec![
        models_file(),
        rename_module("app/views.py", "show"),
        rename_module("app/service.py", "lookup"),
    ];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(0);
    assert_all_terminal(&report);

    let user_edit = format!(
        "{}# a user's edit made while the job ran\n",
        f.case("app/views.py").original
    );
    write_file(&f.ws, "app/views.py", &user_edit);
    let applied = f.cadre(&["apply", &report.job_id.to_string(), "--json"]);
    applied.expect_code(3);
    let outcome: serde_json::Value =
        serde_json::from_str(&applied.stdout).unwrap_or_else(|e| panic!("{e}\n{}", applied.dump()));
    let mut written: Vec<String> = outcome["written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    written.sort();
    assert_eq!(
        written,
        vec!["app/models.py".to_owned(), "app/service.py".to_owned()],
        "{}",
        applied.dump()
    );
    let conflicts = outcome["conflicts"].as_array().unwrap();
    assert_eq!(conflicts.len(), 1, "{}", applied.dump());
    assert_eq!(conflicts[0][0], "app/views.py");
    assert!(
        conflicts[0][1]
            .as_str()
            .unwrap()
            .contains("changed since the job started"),
        "{}",
        applied.dump()
    );

    assert_eq!(
        read_file(&f.ws, "app/views.py"),
        user_edit,
        "the user's edit is kept"
    );
    assert_eq!(
        read_file(&f.ws, "app/models.py"),
        f.case("app/models.py").expected()
    );
    assert_eq!(
        read_file(&f.ws, "app/service.py"),
        f.case("app/service.py").expected()
    );

    // The human-readable form says the same.
    write_file(&f.ws, "app/models.py", &f.case("app/models.py").original);
    let again = f.cadre(&["apply", &report.job_id.to_string()]);
    again.expect_code(3);
    assert!(
        again.stdout.contains("left alone: app/views.py"),
        "{}",
        again.dump()
    );
}

#[test]
fn malformed_output_at_the_top_tier_ends_in_needs_human_not_a_crash() {
    // A text answer without a tool call is an attempt failure with a reason, never a lost subtask.
    let cases = vec![
        models_file(),
        rename_module("app/views.py", "show")
            .complexity("reasoning")
            .script(cadre_e2e::OPUS, &["no_tool"]),
    ];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    let (out, report) = f.run_json(&[], &[]);
    out.expect_code(2);
    assert_all_terminal(&report);
    let s = subtask(&report, "app/views.py");
    assert_eq!(s.status, SubtaskStatus::NeedsHuman, "{s:#?}");
    assert!(!s.reason.is_empty());
}
