//! `cadre doctor`: asks each tier's server what a job would need of it.
//! Per tier (tiers sharing a provider and model are asked once): the server
//! is reachable, the model id is in its model list (a server that does not
//! list it may serve its default model instead), the context length it
//! reports against the configured `context_window`, and, for
//! OpenAI-compatible servers, which forced-tool modes it answers with a tool
//! call and whether streaming works. Exit 0 when every tier is usable as
//! configured, 1 otherwise, with what to change.

use std::process::ExitCode;

use anyhow::Result;
use cadre_core::ProviderClient;
use cadre_llm::{OpenAiClient, ProbeOutcome, ToolChoiceProbe};
use serde_json::{Value, json};

use crate::args::Cli;
use crate::session::load_config;

/// One tier's findings.
struct TierReport {
    tiers: Vec<String>,
    provider: String,
    model: String,
    checks: Vec<(String, bool, String)>,
}

impl TierReport {
    fn check(&mut self, name: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push((name.to_owned(), ok, detail.into()));
    }

    fn ok(&self) -> bool {
        self.checks.iter().all(|(_, ok, _)| *ok)
    }

    fn to_json(&self) -> Value {
        json!({
            "tiers": self.tiers,
            "provider": self.provider,
            "model": self.model,
            "ok": self.ok(),
            "checks": self.checks.iter().map(|(name, ok, detail)| {
                json!({"check": name, "ok": ok, "detail": detail})
            }).collect::<Vec<_>>(),
        })
    }
}

/// `cadre doctor`.
pub(super) async fn run(cli: &Cli, json_out: bool) -> Result<ExitCode> {
    let loaded = load_config(cli)?;
    let config = &loaded.config;
    let env = |name: &str| std::env::var(name).ok();
    let mut reports: Vec<TierReport> = Vec::new();
    for tier in &config.tiers.order {
        let Some(model) = config.models.get(tier) else {
            continue;
        };
        if let Some(r) = reports
            .iter_mut()
            .find(|r| r.provider == model.provider && r.model == model.model)
        {
            r.tiers.push(tier.clone());
            continue;
        }
        let mut report = TierReport {
            tiers: vec![tier.clone()],
            provider: model.provider.clone(),
            model: model.model.clone(),
            checks: Vec::new(),
        };
        match ProviderClient::build(config, &model.provider, &env, None) {
            Err(e) => report.check("client", false, e.to_string()),
            Ok(ProviderClient::Anthropic(client)) => match client.list_models().await {
                Err(e) => report.check("reachable", false, e.to_string()),
                Ok(models) => {
                    report.check("reachable", true, "GET /v1/models answered");
                    let found = models.iter().find(|m| m.id == model.model);
                    report.check(
                        "model listed",
                        found.is_some(),
                        listed_detail(found.is_some(), models.iter().map(|m| m.id.as_str())),
                    );
                    if let Some(window) = found.and_then(|m| m.max_input_tokens) {
                        context_check(&mut report, window, model.context_window);
                    }
                }
            },
            Ok(ProviderClient::Openai(client)) => {
                let provider = config.providers.get(&model.provider);
                let mode = provider.map_or(cadre_config::ToolChoiceMode::Named, |p| p.tool_choice);
                let stream = provider.is_some_and(|p| p.stream);
                openai_checks(&mut report, &client, mode, stream, model.context_window).await;
            }
        }
        reports.push(report);
    }
    let all_ok = reports.iter().all(TierReport::ok);
    if json_out {
        let out = json!({"ok": all_ok, "tiers": reports.iter().map(TierReport::to_json).collect::<Vec<_>>()});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for r in &reports {
            println!(
                "{} ({} via provider {}): {}",
                r.tiers.join(", "),
                r.model,
                r.provider,
                if r.ok() { "ok" } else { "PROBLEMS" }
            );
            for (name, ok, detail) in &r.checks {
                println!("  [{}] {name}: {detail}", if *ok { "ok" } else { "!!" });
            }
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn listed_detail<'a>(found: bool, ids: impl Iterator<Item = &'a str>) -> String {
    if found {
        return "the server lists it".to_owned();
    }
    let ids: Vec<&str> = ids.take(10).collect();
    format!(
        "not in the server's list ({}); a server may answer an unknown id with its default model",
        if ids.is_empty() {
            "empty".to_owned()
        } else {
            ids.join(", ")
        }
    )
}

fn context_check(report: &mut TierReport, reported: u64, configured: u64) {
    report.check(
        "context length",
        configured <= reported,
        if configured <= reported {
            format!("server reports {reported}; context_window = {configured}")
        } else {
            format!(
                "server reports {reported} but context_window = {configured}: set context_window = {reported}"
            )
        },
    );
}

async fn openai_checks(
    report: &mut TierReport,
    client: &OpenAiClient,
    mode: cadre_config::ToolChoiceMode,
    stream: bool,
    context_window: u64,
) {
    match client.list_models().await {
        Err(e) => {
            report.check("reachable", false, e.to_string());
            return;
        }
        Ok(models) => {
            report.check("reachable", true, "GET /models answered");
            let found = models.iter().find(|m| m.id == report.model);
            report.check(
                "model listed",
                found.is_some(),
                listed_detail(found.is_some(), models.iter().map(|m| m.id.as_str())),
            );
            match found.and_then(|m| m.context_length) {
                Some(window) => context_check(report, window, context_window),
                None => report.check(
                    "context length",
                    true,
                    format!(
                        "not reported; context_window = {context_window} must not exceed the server's (e.g. n_ctx)"
                    ),
                ),
            }
        }
    }
    let configured = match mode {
        cadre_config::ToolChoiceMode::Required => ToolChoiceProbe::Required,
        cadre_config::ToolChoiceMode::Named => ToolChoiceProbe::Named,
        cadre_config::ToolChoiceMode::Auto => ToolChoiceProbe::Auto,
    };
    let mut working = Vec::new();
    let mut configured_outcome = None;
    for probe in [
        ToolChoiceProbe::Required,
        ToolChoiceProbe::Named,
        ToolChoiceProbe::Auto,
    ] {
        let model = report.model.clone();
        let outcome = client.probe_tool_choice(&model, probe, false).await;
        if outcome == ProbeOutcome::Works {
            working.push(probe.as_str());
        }
        let name = format!("tool_choice {}", probe.as_str());
        let detail = describe(&outcome);
        if probe == configured {
            configured_outcome = Some(outcome.clone());
        } else {
            // Informational: only the configured mode must work.
            report.check(&name, true, detail);
        }
    }
    let works = configured_outcome == Some(ProbeOutcome::Works);
    let detail = match (&configured_outcome, works) {
        (Some(o), true) => format!("{} (configured)", describe(o)),
        (Some(o), false) => format!(
            "{} (configured); modes that work: {}",
            describe(o),
            if working.is_empty() {
                "none: the server or model does not call tools".to_owned()
            } else {
                format!("{}: set tool_choice = {:?}", working.join(", "), working[0])
            }
        ),
        (None, _) => "not probed".to_owned(),
    };
    report.check(
        &format!("tool_choice {} (configured)", configured.as_str()),
        works,
        detail,
    );
    // Streamed, every tool_choice the engine sends under this mode: a turn
    // offering several tools goes out as `auto` under `named`.
    let sent = match configured {
        ToolChoiceProbe::Named => vec![ToolChoiceProbe::Named, ToolChoiceProbe::Auto],
        other => vec![other],
    };
    let mut refused = Vec::new();
    for probe in sent {
        let model = report.model.clone();
        if let ProbeOutcome::Refused(e) = client.probe_tool_choice(&model, probe, true).await {
            refused.push(format!("tool_choice {}: {e}", probe.as_str()));
        }
    }
    let streams = refused.is_empty();
    report.check(
        "streaming",
        streams || !stream,
        match (streams, stream) {
            (false, true) => format!(
                "stream = true but streaming fails ({}); cadre sends such calls unstreamed \
                 after the first failure: set stream = false",
                refused.join("; ")
            ),
            (false, false) => format!("not available ({}); stream = false", refused.join("; ")),
            (true, on) => format!(
                "works (chat.completion.chunk frames); stream = {on}{}",
                if on {
                    ""
                } else {
                    ": set stream = true for progress and an idle timeout"
                }
            ),
        },
    );
}

fn describe(outcome: &ProbeOutcome) -> String {
    match outcome {
        ProbeOutcome::Works => "accepted, answered with a tool call".to_owned(),
        ProbeOutcome::NoToolCall => "accepted, but answered without a tool call".to_owned(),
        ProbeOutcome::Refused(e) => format!("refused: {}", e.chars().take(200).collect::<String>()),
    }
}
