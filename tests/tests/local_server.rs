//! The real `cadre` binary with every tier on `provider = "openai"`, pointed
//! at the simulator's OpenAI-compatible endpoint playing a llama-cpp-python
//! server: `tool_choice: "required"` refused with a 500, `content: null`
//! refused, tool-call arguments with raw newlines.

use cadre_e2e::{
    Fixture, ScenarioSpec, SimRole, assert_all_terminal, models_file, parse_report, read_file,
    rename_module,
};
use cadre_sim::ChatQuirk;
use cadre_types::{JobReport, JobStatus};
use pretty_assertions::assert_eq;

/// Every tier on the `openai` provider at `base`.
fn every_tier_on(base: &str) -> [(&'static str, &str); 4] {
    [
        ("CADRE_MODELS__HAIKU__PROVIDER", "openai"),
        ("CADRE_MODELS__SONNET__PROVIDER", "openai"),
        ("CADRE_MODELS__OPUS__PROVIDER", "openai"),
        ("CADRE_PROVIDERS__OPENAI__BASE_URL", base),
    ]
}

/// `cadre run` of the rename (applied when `apply`), which must complete
/// with every subtask terminal.
fn run_to_completion(f: &Fixture, env: &[(&str, &str)], apply: bool) -> JobReport {
    let ws = f.ws_arg();
    let mut args = vec![
        "run",
        "Rename UserId to AccountId.",
        "--workspace",
        &ws,
        "--json",
    ];
    if apply {
        args.push("--apply");
    }
    let out = f.cadre_env(&args, env);
    out.expect_code(0);
    let report = parse_report(&out);
    assert_eq!(report.status, JobStatus::Completed, "{}", out.dump());
    assert_all_terminal(&report);
    report
}

#[test]
fn a_quirky_local_server_runs_the_job_without_a_refused_request() {
    let cases = vec![models_file(), rename_module("app/views.py", "show")];
    let spec = ScenarioSpec::new(&cases)
        .chat_quirk(ChatQuirk::RefuseRequired)
        .chat_quirk(ChatQuirk::RefuseNullContent)
        .chat_quirk(ChatQuirk::RawNewlinesInArguments);
    let f = Fixture::new(&spec);
    let base = format!("{}/v1", f.sim.base_url());
    let env = every_tier_on(&base);
    run_to_completion(&f, &env, true);

    let requests = f.sim.requests();
    assert!(!requests.is_empty());
    for r in &requests {
        assert_eq!(r.path, "/v1/chat/completions", "{r:?}");
        assert_eq!(r.status, 200, "refused: {r:?}");
    }
    for case in &cases {
        assert_eq!(
            read_file(&f.ws, &case.path),
            case.expected(),
            "{}",
            case.path
        );
    }
}

#[test]
fn a_worker_that_answers_in_prose_is_told_so_once_and_forced_to_call_the_tool() {
    let cases = vec![models_file(), rename_module("app/views.py", "show")];
    let spec = ScenarioSpec::new(&cases)
        .chat_quirk(ChatQuirk::RefuseRequired)
        .chat_quirk(ChatQuirk::ProseUnlessNamed);
    let f = Fixture::new(&spec);
    let base = format!("{}/v1", f.sim.base_url());
    let env = every_tier_on(&base);
    let report = run_to_completion(&f, &env, true);
    for case in &cases {
        // The first turn (several tools, sent as `auto`) is prose; the
        // retry names edit_file, and the sim answers it with the change.
        let worker = f.sim.worker_requests_for(&case.path);
        assert_eq!(worker.len(), 2, "{}: {worker:#?}", case.path);
        assert!(worker.iter().all(|r| r.status == 200), "{worker:#?}");
        for subtask in &report.subtasks {
            assert_eq!(subtask.attempts, 1, "{subtask:#?}");
        }
        assert_eq!(
            read_file(&f.ws, &case.path),
            case.expected(),
            "{}",
            case.path
        );
    }
}

#[test]
fn streaming_to_a_server_that_streams_only_named_tool_calls_falls_back_once() {
    let cases = vec![models_file(), rename_module("app/views.py", "show")];
    let spec = ScenarioSpec::new(&cases)
        .chat_quirk(ChatQuirk::RefuseRequired)
        .chat_quirk(ChatQuirk::StreamsOnlyNamedToolCalls)
        .chat_quirk(ChatQuirk::RepeatsToolCallHeader);
    let f = Fixture::new(&spec);
    let base = format!("{}/v1", f.sim.base_url());
    let mut env = every_tier_on(&base).to_vec();
    env.push(("CADRE_PROVIDERS__OPENAI__STREAM", "true"));
    run_to_completion(&f, &env, true);
    for case in &cases {
        assert_eq!(
            read_file(&f.ws, &case.path),
            case.expected(),
            "{}",
            case.path
        );
    }
    let requests = f.sim.requests();
    let empty = requests
        .iter()
        .filter(|r| r.fault.as_deref() == Some("stream_closed_without_data"))
        .count();
    // Worker turns offer several tools, so they go out as `auto`: the first
    // streamed ones come back empty (at most one per call in flight), each is
    // re-sent unstreamed, and the client streams no more.
    assert!(
        (1..=cases.len()).contains(&empty),
        "{empty} empty streams: {requests:#?}"
    );
    let unstreamed = requests.iter().filter(|r| !r.stream).count();
    assert!(unstreamed >= empty, "{requests:#?}");
    for r in &requests {
        assert_eq!(r.status, 200, "refused: {r:?}");
    }
    assert!(
        requests.iter().any(|r| r.stream && r.complete),
        "the named planner call streamed: {requests:#?}"
    );
}

/// A window the worker's prompt and its 1,024 output tokens just fit, so
/// cadre asks the server for its own count before fitting `max_tokens`.
const TIGHT_WINDOW: &str = "1600";

#[test]
fn a_tight_window_is_fitted_by_the_server_s_own_token_count() {
    let cases = vec![models_file(), rename_module("app/views.py", "show")];
    let f = Fixture::new(&ScenarioSpec::new(&cases));
    let base = format!("{}/v1", f.sim.base_url());
    let mut env = every_tier_on(&base).to_vec();
    let sized: Vec<(String, &str)> = ["HAIKU", "SONNET", "OPUS"]
        .iter()
        .flat_map(|tier| {
            [
                (
                    format!("CADRE_MODELS__{tier}__CONTEXT_WINDOW"),
                    TIGHT_WINDOW,
                ),
                (format!("CADRE_MODELS__{tier}__MAX_OUTPUT_TOKENS"), "1024"),
                (
                    format!("CADRE_MODELS__{tier}__LONG_CONTEXT_THRESHOLD_TOKENS"),
                    "0",
                ),
                (format!("CADRE_MODELS__{tier}__THINKING"), "none"),
            ]
        })
        .collect();
    env.extend(sized.iter().map(|(k, v)| (k.as_str(), *v)));
    run_to_completion(&f, &env, false);

    let requests = f.sim.requests();
    let counts: Vec<u64> = requests
        .iter()
        .filter(|r| r.path == "/extras/tokenize/count" && r.status == 200)
        .map(|r| r.input_tokens)
        .collect();
    let workers: Vec<u64> = requests
        .iter()
        .filter(|r| r.path == "/v1/chat/completions" && r.role == Some(SimRole::Worker))
        .map(|r| r.input_tokens)
        .collect();
    assert_eq!(
        counts.len(),
        workers.len(),
        "one server count per worker call: {requests:#?}"
    );
    assert!(
        requests.iter().all(|r| r.path != "/tokenize"),
        "the first endpoint that answered is kept: {requests:#?}"
    );
    // The text cadre counts is the prompt the server sees: its count is the
    // server's own count of the worker request, give or take the layout.
    let (mut counts, mut workers) = (counts, workers);
    counts.sort_unstable();
    workers.sort_unstable();
    for (counted, seen) in counts.iter().zip(&workers) {
        assert!(
            counted.abs_diff(*seen) * 10 <= *seen,
            "counted {counted} vs the request's {seen}: {requests:#?}"
        );
    }
}
