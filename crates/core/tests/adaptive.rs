//! Routing that learns: a sequence of jobs in which haiku always fails one
//! class of subtask (Python files) moves that class's start tier to sonnet
//! once the minimum sample count is reached, and the job's cost drops. The
//! other class (JavaScript files, which haiku handles) keeps starting at haiku.

mod support;

use cadre_sim::OutcomeKind;
use support::{GenFile, run_job, scenario, small_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_moves_a_hopeless_class_to_the_next_tier() {
    let root = tempfile::tempdir().unwrap();
    let db = root.path().join("cadre.db");
    let mut config = small_config();
    config.routing.adaptive = true;
    config.routing.adaptive_min_samples = 4;
    let mut costs = Vec::new();
    let mut py_start = Vec::new();
    let mut js_start = Vec::new();
    for round in 0..4u64 {
        let dir = root.path().join(format!("job{round}"));
        let files = vec![
            GenFile {
                path: "a.py".into(),
                complexity: "mechanical",
                script: &[("claude-haiku-4-5", &[OutcomeKind::Syntax])],
            },
            GenFile {
                path: "b.py".into(),
                complexity: "mechanical",
                script: &[("claude-haiku-4-5", &[OutcomeKind::Syntax])],
            },
            GenFile {
                path: "c.js".into(),
                complexity: "mechanical",
                script: &[],
            },
            GenFile {
                path: "d.js".into(),
                complexity: "mechanical",
                script: &[],
            },
        ];
        let spec = scenario(&dir, &files, round, [1.0, 1.0, 1.0]);
        let report = run_job(&dir, spec, config.clone(), &db, None).await;
        assert_eq!(
            report.status.as_str(),
            "completed",
            "round {round}: {}",
            report.reason
        );
        let start = |ext: &str| {
            report
                .subtasks
                .iter()
                .filter(|s| s.path.ends_with(ext))
                .map(|s| s.start_tier.clone())
                .collect::<Vec<_>>()
        };
        py_start.push(start(".py"));
        js_start.push(start(".js"));
        costs.push(report.cost.by_role.get("worker").copied().unwrap_or(0.0));
        if round == 3 {
            let store = cadre_store::Store::open(&db).await.unwrap();
            let events = store.list_events(report.job_id, 0, 1000).await.unwrap();
            let routed = events
                .iter()
                .find(|e| e.kind == cadre_types::EventKind::Routed && e.message.starts_with("a.py"))
                .unwrap();
            assert!(
                routed.message.contains("learned") && routed.message.contains("p="),
                "{}",
                routed.message
            );
        }
    }
    // Rounds 0 and 1 gather 4 haiku failures on python; from round 2 on, python starts at sonnet.
    assert_eq!(py_start[0], vec!["haiku", "haiku"]);
    assert_eq!(
        py_start[3],
        vec!["sonnet", "sonnet"],
        "python should start at sonnet once history shows haiku fails: {py_start:?}"
    );
    for starts in &js_start {
        assert_eq!(
            starts,
            &vec!["haiku".to_owned(), "haiku".to_owned()],
            "javascript keeps haiku: {js_start:?}"
        );
    }
    assert!(
        costs[3] < costs[0],
        "worker cost should drop once haiku is skipped: {costs:?}"
    );
}
