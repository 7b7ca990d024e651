//! `cadre doctor` against the simulator playing a llama-cpp-python server
//! (`tool_choice: "required"` refused): the configured mode that works
//! passes, a configured mode the server refuses fails with the mode to set,
//! and a model id the server does not list is named.

use cadre_e2e::{Fixture, ScenarioSpec, models_file};
use cadre_sim::ChatQuirk;
use serde_json::Value;

fn doctor(f: &Fixture, extra: &[(&str, &str)]) -> (Option<i32>, Value, String) {
    let base = format!("{}/v1", f.sim.base_url());
    let mut env = vec![
        ("CADRE_MODELS__HAIKU__PROVIDER", "openai"),
        ("CADRE_MODELS__SONNET__PROVIDER", "openai"),
        ("CADRE_MODELS__OPUS__PROVIDER", "openai"),
        ("CADRE_PROVIDERS__OPENAI__BASE_URL", base.as_str()),
    ];
    env.extend_from_slice(extra);
    let out = f.cadre_env(&["doctor", "--json"], &env);
    let report: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("doctor --json is not JSON ({e})\n{}", out.dump()));
    (out.code, report, out.dump())
}

fn check<'a>(tier: &'a Value, name: &str) -> &'a Value {
    tier["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["check"] == name))
        .unwrap_or_else(|| panic!("no check {name:?} in {tier:#}"))
}

#[test]
fn doctor_reports_what_each_tier_s_server_accepts() {
    let spec = ScenarioSpec::new(&[models_file()]).chat_quirk(ChatQuirk::RefuseRequired);
    let f = Fixture::new(&spec);

    let (code, report, dump) = doctor(&f, &[]);
    assert_eq!(code, Some(0), "{dump}");
    let tiers = report["tiers"].as_array().unwrap();
    assert_eq!(tiers.len(), 3, "three models, one row each: {report:#}");
    for tier in tiers {
        assert_eq!(check(tier, "reachable")["ok"], true, "{tier:#}");
        assert_eq!(check(tier, "model listed")["ok"], true, "{tier:#}");
        let context = check(tier, "context length");
        assert_eq!(context["ok"], true, "{tier:#}");
        assert!(
            context["detail"]
                .as_str()
                .unwrap()
                .starts_with("server reports "),
            "{tier:#}"
        );
        assert!(
            check(tier, "tool_choice required")["detail"]
                .as_str()
                .unwrap()
                .starts_with("refused"),
            "{tier:#}"
        );
        assert_eq!(check(tier, "tool_choice named (configured)")["ok"], true);
        assert_eq!(check(tier, "streaming")["ok"], true, "{tier:#}");
    }

    // `required` configured on a server that refuses it: the mode to set.
    let (code, report, dump) = doctor(&f, &[("CADRE_PROVIDERS__OPENAI__TOOL_CHOICE", "required")]);
    assert_eq!(code, Some(1), "{dump}");
    let tier = &report["tiers"][0];
    let configured = check(tier, "tool_choice required (configured)");
    assert_eq!(configured["ok"], false);
    assert!(
        configured["detail"]
            .as_str()
            .unwrap()
            .contains("set tool_choice = \"named\""),
        "{configured:#}"
    );

    // A mistyped model id is named, not silently served.
    let (code, report, dump) = doctor(&f, &[("CADRE_MODELS__HAIKU__MODEL", "claude-haiku-typo")]);
    assert_eq!(code, Some(1), "{dump}");
    let listed = check(&report["tiers"][0], "model listed");
    assert_eq!(listed["ok"], false);
    assert!(
        listed["detail"]
            .as_str()
            .unwrap()
            .contains("not in the server's list"),
        "{listed:#}"
    );
}

#[test]
fn doctor_fails_streaming_on_a_server_that_streams_only_named_tool_calls() {
    let spec = ScenarioSpec::new(&[models_file()])
        .chat_quirk(ChatQuirk::RefuseRequired)
        .chat_quirk(ChatQuirk::StreamsOnlyNamedToolCalls);
    let f = Fixture::new(&spec);

    // Not streaming: informational, the doctor passes.
    let (code, report, dump) = doctor(&f, &[]);
    assert_eq!(code, Some(0), "{dump}");
    let streaming = check(&report["tiers"][0], "streaming");
    assert_eq!(streaming["ok"], true, "{streaming:#}");
    assert!(
        streaming["detail"]
            .as_str()
            .unwrap()
            .starts_with("not available (tool_choice auto:"),
        "{streaming:#}"
    );

    // Streaming configured: the `auto` turns would fail; say what to set.
    let (code, report, dump) = doctor(&f, &[("CADRE_PROVIDERS__OPENAI__STREAM", "true")]);
    assert_eq!(code, Some(1), "{dump}");
    let streaming = check(&report["tiers"][0], "streaming");
    assert_eq!(streaming["ok"], false, "{streaming:#}");
    let detail = streaming["detail"].as_str().unwrap();
    assert!(
        detail.contains("without sending any data") && detail.contains("set stream = false"),
        "{streaming:#}"
    );
    assert!(
        !detail.contains("tool_choice named:"),
        "named streams: {detail}"
    );
}
