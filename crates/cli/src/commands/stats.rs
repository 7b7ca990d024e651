//! `cadre stats`: across jobs, what was spent and what it bought: success
//! rate per (complexity, error cost, tier), cost per accepted subtask,
//! escalation rate, and the codemod tier's attempts, acceptance rate and
//! savings.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{Result, bail};
use cadre_config::Config;
use cadre_core::codemod::{CODEMOD_TIER, stats_summary};
use cadre_store::{AttemptStatRow, Store, SubtaskOutcomeStats};
use serde_json::json;

use crate::args::Cli;
use crate::output::{codemod_line, usd};
use crate::session::Session;

/// `cadre stats [--since DATE]`.
pub(super) async fn run(cli: &Cli, since: Option<&str>, json: bool) -> Result<ExitCode> {
    let session = Session::open(cli).await?;
    print!(
        "{}",
        stats(&session.store, &session.loaded.config, since, json).await?
    );
    Ok(ExitCode::SUCCESS)
}

/// Parses `YYYY-MM-DD` (UTC midnight) to unix seconds.
fn parse_date(text: &str) -> Result<i64> {
    let parts: Vec<&str> = text.trim().split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        bail!("--since wants YYYY-MM-DD, got {text:?}")
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i64>(), m.parse::<i64>(), d.parse::<i64>()) else {
        bail!("--since wants YYYY-MM-DD, got {text:?}");
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        bail!("--since wants a real date, got {text:?}");
    }
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Ok((era * 146_097 + doe - 719_468) * 86_400)
}

/// Per (complexity, error cost, tier): attempts and success rate; then
/// mean cost per accepted subtask and the escalation rate.
async fn stats(
    store: &Store,
    config: &Config,
    since: Option<&str>,
    as_json: bool,
) -> Result<String> {
    let since = since.map(parse_date).transpose()?;
    let rows = store.attempt_stats(since).await?;
    let outcomes = store.subtask_outcome_stats(since).await?;
    let accepted_at_codemod = store.accepted_at_tier(CODEMOD_TIER, since).await?;
    let codemod = stats_summary(config, &rows, &accepted_at_codemod);
    let mut grouped: BTreeMap<(String, String, String), (u64, u64, f64)> = BTreeMap::new();
    for AttemptStatRow {
        complexity,
        error_cost,
        tier,
        attempts,
        passed,
        cost_usd,
        ..
    } in &rows
    {
        let e = grouped
            .entry((complexity.to_string(), error_cost.to_string(), tier.clone()))
            .or_default();
        e.0 += attempts;
        e.1 += passed;
        e.2 += cost_usd;
    }
    let SubtaskOutcomeStats {
        subtasks,
        accepted,
        needs_human,
        escalated,
        accepted_cost_usd,
    } = outcomes;
    let mean_accepted = if accepted == 0 {
        0.0
    } else {
        accepted_cost_usd / accepted as f64
    };
    let escalation_rate = if subtasks == 0 {
        0.0
    } else {
        escalated as f64 / subtasks as f64
    };
    if as_json {
        let classes: Vec<_> = grouped
            .iter()
            .map(|((c, e, t), (n, p, cost))| {
                json!({"complexity": c, "error_cost": e, "tier": t, "attempts": n, "passed": p,
                       "success_rate": if *n == 0 { 0.0 } else { *p as f64 / *n as f64 }, "cost_usd": cost})
            })
            .collect();
        let doc = json!({"since": since, "classes": classes, "subtasks": subtasks, "accepted": accepted,
            "needs_human": needs_human, "escalated": escalated, "escalation_rate": escalation_rate,
            "mean_cost_per_accepted_usd": mean_accepted, "codemod": codemod});
        return Ok(format!("{}\n", serde_json::to_string_pretty(&doc)?));
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<11} {:<5} {:<8} {:>8} {:>7} {:>9} {:>10}",
        "complexity", "cost", "tier", "attempts", "passed", "success", "spent"
    );
    for ((c, e, t), (n, p, cost)) in &grouped {
        let rate = if *n == 0 {
            0.0
        } else {
            *p as f64 / *n as f64 * 100.0
        };
        let _ = writeln!(
            out,
            "{c:<11} {e:<5} {t:<8} {n:>8} {p:>7} {rate:>8.1}% {:>10}",
            usd(*cost)
        );
    }
    let _ = writeln!(
        out,
        "\nsubtasks {subtasks}: accepted {accepted}, needs_human {needs_human}, escalated {escalated} ({:.1}%)\nmean worker cost per accepted subtask {}",
        escalation_rate * 100.0,
        usd(mean_accepted)
    );
    if let Some(line) = codemod_line(&codemod) {
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_to_utc_midnight() {
        assert_eq!(parse_date("1970-01-01").unwrap(), 0);
        assert_eq!(parse_date("2026-11-25").unwrap(), 1_795_564_800);
        assert!(parse_date("2026-13-01").is_err());
        assert!(parse_date("yesterday").is_err());
    }
}
