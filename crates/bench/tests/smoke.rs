//! Runs the real `cadre-bench` binary with `--quick` sizes: every benchmark
//! (including the scale child process) completes, every job accepts all its
//! subtasks (the binary fails otherwise) and `--json` carries the same
//! figures as the table.

use std::process::Command;

use serde_json::Value;

fn bench(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cadre-bench"))
        .args(args)
        .env_remove("CADRE_LOG")
        .output()
        .unwrap_or_else(|e| panic!("running cadre-bench: {e}"))
}

#[test]
fn quick_run_reports_every_benchmark_as_json_and_as_a_table() {
    let out = bench(&["--quick", "--json"]);
    assert!(
        out.status.success(),
        "cadre-bench --quick --json failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = results.as_array().unwrap();
    let names: Vec<&str> = results
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "fanout",
            "overhead",
            "scale",
            "cache",
            "pressure",
            "migration",
            "backends",
            "cluster",
            "peer"
        ]
    );
    // In CI every benchmark runs; elsewhere one that needs what the machine
    // lacks (the SDK's Python for `peer`) says so in a "not run" note.
    let in_ci = std::env::var_os("CI").is_some();
    for r in results {
        let figures = r["figures"].as_array().unwrap();
        let not_run = r["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.starts_with("not run:")));
        assert!(!figures.is_empty() || (not_run && !in_ci), "{r}");
        for f in figures {
            assert!(f["value"].as_f64().is_some_and(f64::is_finite), "{f}");
        }
    }
    // Every job accepted all its subtasks: the pressure run lost none.
    let pressure = &results[4]["figures"];
    let accepted = pressure
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["metric"] == "subtasks accepted")
        .unwrap();
    assert_eq!(accepted["met"], true, "{accepted}");
}

#[test]
fn only_selects_and_the_table_quotes_the_command() {
    let out = bench(&["--quick", "--only", "cache"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("Command: `cargo run --release -p cadre-bench -- --quick --only cache`"),
        "{table}"
    );
    assert!(
        table.contains("| cache | N=30 | worker calls reading the prefix |"),
        "{table}"
    );
    assert!(!table.contains("| fanout |"), "{table}");
    let bad = bench(&["--only", "nope"]);
    assert!(!bad.status.success());
}
