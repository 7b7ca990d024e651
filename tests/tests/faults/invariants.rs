//! The invariants every fault test checks ([`Before`]), the workspace the
//! transport and model-output faults run on, and small helpers.

use std::collections::BTreeMap;

use cadre_e2e::{
    CmdOutput, FaultKind, FaultSpec, FileCase, Fixture, SimRequest, SimRole, assert_all_terminal,
    assert_no_panic, models_file, read_file, rename_module, snapshot, subtask, write_file,
};
use cadre_types::{JobReport, SubtaskStatus};
use pretty_assertions::assert_eq;

/// The workspace every transport/model-output fault runs on; faults target
/// `app/views.py`.
pub(crate) fn cases() -> Vec<FileCase> {
    vec![
        models_file(),
        rename_module("app/views.py", "show"),
        rename_module("app/service.py", "lookup"),
    ]
}

pub(crate) const TARGET: &str = "app/views.py";

/// Files of the fixture's temp dir outside the workspace that cadre may write
/// (the store) or the harness writes (the sim's dir, spawned output).
pub(crate) fn outside_snapshot(f: &Fixture) -> BTreeMap<String, Vec<u8>> {
    snapshot(f.tmp.path())
        .into_iter()
        .filter(|(k, _)| {
            !(k.starts_with("ws/")
                || k.starts_with("sim/")
                || k.starts_with("cadre.db")
                || k.starts_with("spawned-"))
        })
        .collect()
}

/// What a fault test checks before the job (`Before::take`) and after it
/// (`Before::check`): the generic invariants of issue 6.
pub(crate) struct Before {
    pub(crate) ws: BTreeMap<String, Vec<u8>>,
    pub(crate) outside: BTreeMap<String, Vec<u8>>,
    canary_dir: tempfile::TempDir,
    canary: BTreeMap<String, Vec<u8>>,
}

impl Before {
    pub(crate) fn take(f: &Fixture) -> Before {
        let canary_dir = tempfile::Builder::new()
            .prefix("cadre-e2e-canary-")
            .tempdir()
            .unwrap_or_else(|e| panic!("temp dir: {e}"));
        write_file(canary_dir.path(), "keep.py", "UserId = 1\n");
        Before {
            ws: snapshot(&f.ws),
            outside: outside_snapshot(f),
            canary: snapshot(canary_dir.path()),
            canary_dir,
        }
    }

    /// Exit 0 or 2, no panic (cadre or sim), every subtask terminal with a
    /// reason, every attempt finished with its cost equal to its recorded
    /// calls' cost, a failed attempt has a kind and a message, the report's
    /// costs add up, the workspace and everything outside it untouched.
    pub(crate) fn check(&self, f: &Fixture, out: &CmdOutput, report: &JobReport) {
        assert!(
            matches!(out.code, Some(0) | Some(2)),
            "exit code must be 0 or 2\n{}",
            out.dump()
        );
        assert_no_panic(out);
        assert!(
            !f.sim.stderr().contains("panicked"),
            "the simulator panicked:\n{}",
            f.sim.stderr()
        );
        assert_all_terminal(report);
        for s in &report.subtasks {
            assert!(!s.reason.trim().is_empty(), "no reason recorded: {s:#?}");
        }
        let attempts = f.attempt_costs(&report.job_id);
        for a in &attempts {
            assert_ne!(a.outcome, "running", "attempt left running: {a:#?}");
            assert!(
                (a.cost_usd - a.calls_cost_usd).abs() < 1e-9,
                "the attempt's cost differs from its recorded calls: {a:#?}"
            );
            if a.calls > 0 && a.tokens > 0 {
                assert!(a.cost_usd > 0.0, "a paid call cost nothing: {a:#?}");
            }
            if a.outcome == "failed" {
                assert!(
                    a.failure.is_some() && a.error.as_deref().is_some_and(|e| !e.is_empty()),
                    "a failed attempt lacks its reason: {a:#?}"
                );
            }
        }
        let total: f64 = attempts.iter().map(|a| a.cost_usd).sum();
        assert!(
            (report.cost.total_usd - total).abs() < 1e-9,
            "report total {} != sum of attempt costs {total}",
            report.cost.total_usd
        );
        // Per file (duplicate plan entries share a path): the report's
        // subtask costs add up to what that file's attempts cost.
        let mut by_path: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for s in &report.subtasks {
            by_path.entry(s.path.as_str()).or_default().0 += s.cost_usd;
        }
        for a in attempts.iter().filter(|a| a.role == "worker") {
            let path = a.path.as_deref().unwrap_or_default();
            by_path.entry(path).or_default().1 += a.cost_usd;
        }
        for (path, (reported, recorded)) in by_path {
            assert!(
                (reported - recorded).abs() < 1e-9,
                "{path}: report cost {reported} != its attempts' {recorded}"
            );
        }
        // Every answer the provider sent in full (and so billed) is in the ledger.
        let answered = f
            .sim
            .requests()
            .iter()
            .filter(|r| r.path == "/v1/messages" && r.status == 200 && r.complete)
            .count();
        let recorded: usize = attempts.iter().map(|a| a.calls).sum();
        assert_eq!(
            recorded, answered,
            "calls recorded in the store vs answers the provider completed"
        );
        assert_eq!(
            snapshot(&f.ws),
            self.ws,
            "the workspace changed before apply"
        );
        assert_eq!(
            outside_snapshot(f),
            self.outside,
            "files outside the workspace changed"
        );
        assert_eq!(snapshot(self.canary_dir.path()), self.canary);
    }
}

/// Runs the job with `global` flags and checks the invariants.
pub(crate) fn run_checked(f: &Fixture, global: &[&str]) -> JobReport {
    let before = Before::take(f);
    let (out, report) = f.run_json(global, &[]);
    before.check(f, &out, &report);
    report
}

pub(crate) fn worker_log(f: &Fixture, path: &str) -> Vec<SimRequest> {
    f.sim.worker_requests_for(path)
}

/// `apply` writes exactly the accepted files, with their expected content.
pub(crate) fn apply_and_check(f: &Fixture, report: &JobReport) {
    f.cadre(&["apply", &report.job_id.to_string()])
        .expect_code(0);
    for case in &f.cases {
        let s = subtask(report, &case.path);
        let want = if s.status == SubtaskStatus::Accepted {
            case.expected()
        } else {
            case.original.clone()
        };
        assert_eq!(read_file(&f.ws, &case.path), want, "{}", case.path);
    }
}

/// A fault on worker requests for TARGET.
pub(crate) fn fault(kind: FaultKind) -> FaultSpec {
    FaultSpec::new(kind).role(SimRole::Worker).path(TARGET)
}
