//! Smoke tests of the binary's argument handling. (Having an integration
//! test here also makes `cargo test --workspace` build the `cadre` binary
//! that the end-to-end suite in `tests/` drives.)

use std::process::Command;

fn cadre() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cadre"))
}

#[test]
fn help_lists_the_main_commands() {
    let out = cadre().arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in [
        "run", "plan", "demo", "jobs", "show", "diff", "apply", "resume", "config", "sim",
    ] {
        assert!(text.contains(command), "--help lacks {command}: {text}");
    }
}

#[test]
fn unknown_config_key_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = cadre()
        .args(["-c", "limits.max_concurency=4", "config", "show"])
        .env_clear()
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("limits.max_concurency"), "{err}");
}

#[test]
fn config_show_names_sources() {
    let dir = tempfile::tempdir().unwrap();
    let out = cadre()
        .args(["-c", "limits.max_concurrency=3", "config", "show"])
        .env_clear()
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("limits.max_concurrency"))
        .unwrap();
    assert!(line.contains('3') && line.contains("-c"), "{line}");
}
