//! The crash loop (issue 6): `cadre run` SIGKILLed at pseudo-random points
//! over several seeds, `cadre resume` (itself killed once more), then resumed
//! to the end. Every seed must end with the same patch as an uninterrupted
//! run, and no model call that cadre had recorded as finished is ever sent
//! again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use cadre_e2e::{
    FileCase, Fixture, HAIKU, RENAME, SONNET, ScenarioSpec, assert_all_terminal, assert_no_panic,
    models_file, parse_report, rename_module,
};
use cadre_types::{JobId, JobStatus, SubtaskStatus};
use pretty_assertions::assert_eq;

const SEEDS: [u64; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
/// Kills per seed before the final, uninterrupted resume.
const KILLS: usize = 3;
const CONCURRENCY: [&str; 2] = ["-c", "limits.max_concurrency=3"];

fn cases() -> Vec<FileCase> {
    let mut cases = vec![models_file()];
    for i in 1..=7 {
        cases.push(rename_module(
            &format!("app/mod{i}.py"),
            &format!("handler_{i}"),
        ));
    }
    // Escalations and same-tier retries, so a resumed cascade has history.
    cases[2] = cases[2].clone().script(HAIKU, &["syntax"]);
    cases[5] = cases[5]
        .clone()
        .complexity("generative")
        .script(SONNET, &["mismatch"]);
    cases
}

fn spec() -> ScenarioSpec {
    ScenarioSpec::new(&cases()).latency(30, 60)
}

/// SplitMix64: the kill points are a pure function of the seed.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The request hashes of every call the store's ledger holds for the newest job.
fn ledger(db: &Path) -> (Option<JobId>, BTreeSet<String>) {
    if !db.exists() {
        return (None, BTreeSet::new());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("tokio runtime: {e}"));
    rt.block_on(async {
        let store = cadre_store::Store::open(db)
            .await
            .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
        let job = store
            .list_jobs(None, 1)
            .await
            .unwrap_or_else(|e| panic!("list_jobs: {e}"))
            .first()
            .map(|j| j.id);
        let calls = match job {
            Some(id) => store
                .list_calls(id)
                .await
                .unwrap_or_else(|e| panic!("list_calls: {e}")),
            None => Vec::new(),
        };
        store.close().await;
        (job, calls.into_iter().map(|c| c.request_sha256).collect())
    })
}

/// The uninterrupted run: its patch, its wall time, and a check that the
/// ledger's request hashes are the sim's body hashes (what the loop relies on).
fn reference() -> (String, Duration) {
    let f = Fixture::new(&spec());
    let started = Instant::now();
    let (out, report) = f.run_json(&CONCURRENCY, &[]);
    let wall = started.elapsed();
    out.expect_code(0);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    let (_, ledger) = ledger(&f.db);
    let bodies: BTreeSet<String> = f
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.status == 200 && r.complete)
        .map(|r| r.body_sha256)
        .collect();
    assert!(!ledger.is_empty());
    assert!(
        ledger.is_subset(&bodies),
        "the store's request hashes are not the bodies the sim received; \
         this test cannot tell repeated calls apart"
    );
    (f.diff(&report.job_id), wall)
}

#[test]
fn killed_runs_resume_to_the_same_patch_without_repeating_finished_calls() {
    let (reference_diff, reference_wall) = reference();
    let window_ms = (reference_wall.as_millis() as u64).max(200);
    let mut interrupted_runs = 0;

    for seed in SEEDS {
        let f = Fixture::new(&spec());
        let ws = f.ws_arg();
        let mut rng = seed;
        let mut job: Option<JobId> = None;
        // (ledger at the kill, last sim seq at the kill)
        let mut kills: Vec<(BTreeSet<String>, u64)> = Vec::new();
        for _ in 0..KILLS {
            let job_arg = job.map(|j| j.to_string());
            let args: Vec<&str> = match &job_arg {
                Some(id) => vec!["resume", id, "--json"],
                None => {
                    let mut a = CONCURRENCY.to_vec();
                    a.extend(["run", RENAME, "--workspace", &ws, "--json"]);
                    a
                }
            };
            let mut running = f.spawn(&args, &[]);
            let delay = Duration::from_millis(splitmix(&mut rng) % window_ms);
            let started = Instant::now();
            while started.elapsed() < delay && !running.has_exited() {
                std::thread::sleep(Duration::from_millis(5));
            }
            let finished_first = running.has_exited();
            let out = running.kill();
            assert_no_panic(&out);
            if !finished_first {
                interrupted_runs += 1;
            }
            let last_seq = f.sim.requests().iter().map(|r| r.seq).max().unwrap_or(0);
            let (newest, recorded) = ledger(&f.db);
            eprintln!(
                "seed {seed}: killed after {delay:?} ({}), {} calls recorded, sim seq {last_seq}",
                if finished_first {
                    "already finished"
                } else {
                    "mid-run"
                },
                recorded.len()
            );
            job = job.or(newest);
            kills.push((recorded, last_seq));
        }

        // The final resume (or a fresh run if no job was ever created).
        let out = match job {
            Some(id) => f.cadre(&["resume", &id.to_string(), "--json"]),
            None => f.run_json(&CONCURRENCY, &[]).0,
        };
        assert_no_panic(&out);
        out.expect_code(0);
        let report = parse_report(&out);
        assert_eq!(
            report.status,
            JobStatus::Completed,
            "seed {seed}\n{}",
            out.dump()
        );
        assert_all_terminal(&report);
        assert!(
            report
                .subtasks
                .iter()
                .all(|s| s.status == SubtaskStatus::Accepted),
            "seed {seed}: {report:#?}"
        );
        assert_eq!(
            f.diff(&report.job_id),
            reference_diff,
            "seed {seed}: the resumed job's patch differs from an uninterrupted run's"
        );

        // No call the ledger held at a kill was sent again afterwards.
        let log = f.sim.requests();
        for (k, (recorded, last_seq)) in kills.iter().enumerate() {
            let repeated: Vec<_> = log
                .iter()
                .filter(|r| r.seq > *last_seq && recorded.contains(&r.body_sha256))
                .collect();
            assert!(
                repeated.is_empty(),
                "seed {seed}, kill {k}: finished calls were sent again: {repeated:#?}"
            );
        }
        // A body answered more than once lost its answer at a kill between
        // each answer and the next: the run died after the sim sent the
        // answer and before the ledger held it. Resumes send the same calls
        // in the same order, so one call can lose its answer at every kill
        // (answered four times over three kills); a finished call is never
        // answered twice.
        let mut answered: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
        for r in log.iter().filter(|r| r.status == 200 && r.complete) {
            answered.entry(&r.body_sha256).or_default().push(r.seq);
        }
        let (_, final_ledger) = ledger(&f.db);
        for (sha, seqs) in answered.iter().filter(|(_, s)| s.len() > 1) {
            for pair in seqs.windows(2) {
                let lost_at_kill = kills.iter().any(|(recorded, last)| {
                    pair[0] <= *last && pair[1] > *last && !recorded.contains(*sha)
                });
                assert!(
                    lost_at_kill,
                    "seed {seed}: {sha} was answered at seqs {seqs:?}, and {} then {} \
                     are not across a kill that lost its answer",
                    pair[0], pair[1]
                );
            }
            assert!(final_ledger.contains(*sha));
            eprintln!(
                "seed {seed}: {sha} lost its answer at {} kill(s) and was sent again",
                seqs.len() - 1
            );
        }
    }
    assert!(
        interrupted_runs > 0,
        "no kill landed before its run finished; the scenario is too fast"
    );
}
