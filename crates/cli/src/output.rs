//! What commands print: reports, plans, job lists and applies for people,
//! and the exit codes that go with them.

use std::fmt::Write as _;
use std::process::ExitCode;

use cadre_core::{ApplyOutcome, PlanPreview};
use cadre_types::api::JobSummary;
use cadre_types::{CodemodSummary, JobReport, JobStatus};

/// Dollars as every table shows them: `$0.1234`.
pub(crate) fn usd(v: f64) -> String {
    format!("${v:.4}")
}

fn short(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or_default();
    if line.chars().count() > max {
        format!(
            "{}…",
            line.chars().take(max.saturating_sub(1)).collect::<String>()
        )
    } else {
        line.to_owned()
    }
}

/// What the codemod tier did, in one line (`None` when no rule ran).
pub(crate) fn codemod_line(c: &CodemodSummary) -> Option<String> {
    (c.attempts > 0).then(|| {
        format!(
            "codemod: {} rule run(s), {} accepted ({:.0}%), saved {} against their first model tier",
            c.attempts,
            c.accepted,
            c.acceptance_rate * 100.0,
            usd(c.saved_usd)
        )
    })
}

/// The report as a table plus totals.
pub(crate) fn render_report(r: &JobReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\njob {}  {}  ({:.1}s, {} escalations)",
        r.job_id,
        r.status,
        r.wall_ms as f64 / 1000.0,
        r.escalations
    );
    if !r.reason.is_empty() {
        let _ = writeln!(out, "reason: {}", r.reason);
    }
    let width = r
        .subtasks
        .iter()
        .map(|s| s.path.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 48);
    let _ = writeln!(
        out,
        "\n{:<width$}  {:<21}  {:<16}  {:<11}  {:>3}  {:>9}  reason",
        "file", "class", "tiers", "status", "try", "cost"
    );
    for s in &r.subtasks {
        let tiers = if s.start_tier.is_empty() {
            "-".to_owned()
        } else if s.start_tier == s.final_tier {
            s.start_tier.clone()
        } else {
            format!("{}→{}", s.start_tier, s.final_tier)
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<21}  {:<16}  {:<11}  {:>3}  {:>9}  {}",
            short(&s.path, width),
            format!("{}/{}", s.complexity, s.error_cost),
            tiers,
            s.status.as_str(),
            s.attempts,
            usd(s.cost_usd),
            short(&s.reason, 70)
        );
    }
    let c = &r.cost;
    let _ = writeln!(
        out,
        "\ncost {}  (all on the top tier: {}; cache saved {})",
        usd(c.total_usd),
        usd(c.all_top_tier_usd),
        usd(c.cache_savings_usd)
    );
    let tiers: Vec<String> = c
        .by_tier
        .iter()
        .map(|(t, v)| format!("{t} {}", usd(*v)))
        .collect();
    let roles: Vec<String> = c
        .by_role
        .iter()
        .map(|(t, v)| format!("{t} {}", usd(*v)))
        .collect();
    let _ = writeln!(out, "  by tier: {}", tiers.join(", "));
    let _ = writeln!(out, "  by role: {}", roles.join(", "));
    if let Some(line) = codemod_line(&c.codemod) {
        let _ = writeln!(out, "  {line}");
    }
    if let Some(b) = c.budget_usd {
        let _ = writeln!(out, "  budget: {}", usd(b));
    }
    let t = &r.tokens;
    let _ = writeln!(
        out,
        "tokens: input {} · output {} · cache read {} · cache write {} · cache read share {:.0}%",
        t.input,
        t.output,
        t.cache_read,
        t.cache_write,
        r.cache_read_share * 100.0
    );
    out
}

/// Files and lines changed by a patch.
pub(crate) fn render_diff_summary(patch: &str) -> String {
    let mut out = String::new();
    let mut files = Vec::new();
    let (mut added, mut removed) = (0, 0);
    let mut current: Option<(String, u32, u32)> = None;
    for line in patch.lines() {
        if let Some(rest) = line.strip_prefix("diff --git a/") {
            if let Some(f) = current.take() {
                files.push(f);
            }
            let path = rest.split(" b/").next().unwrap_or(rest).to_owned();
            current = Some((path, 0, 0));
        } else if line.starts_with("+++") || line.starts_with("---") {
        } else if line.starts_with('+') {
            added += 1;
            if let Some(c) = current.as_mut() {
                c.1 += 1;
            }
        } else if line.starts_with('-') {
            removed += 1;
            if let Some(c) = current.as_mut() {
                c.2 += 1;
            }
        }
    }
    if let Some(f) = current.take() {
        files.push(f);
    }
    let _ = writeln!(out, "\npatch: {} file(s), +{added} -{removed}", files.len());
    for (path, a, r) in files {
        let _ = writeln!(out, "  {path}  +{a} -{r}");
    }
    out
}

/// The plan with routes and the estimate.
pub(crate) fn render_plan(p: &PlanPreview) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "job {} planned (run it with: cadre resume {})",
        p.job_id, p.job_id
    );
    if !p.notes.is_empty() {
        let _ = writeln!(out, "notes: {}", p.notes);
    }
    for s in &p.selectors {
        let o = &s.outcome;
        match &o.rejected {
            Some(reason) => {
                let _ = writeln!(out, "  selector {}: refused: {reason}", o.id);
            }
            None => {
                let tiers: Vec<String> = s.tiers.iter().map(|(t, n)| format!("{t} {n}")).collect();
                let _ = writeln!(
                    out,
                    "  selector {}: {} file(s) [{}], e.g. {}; {} left out (no match), {} planned explicitly; {}",
                    o.id,
                    o.matched,
                    tiers.join(", "),
                    if o.samples.is_empty() {
                        "-".to_owned()
                    } else {
                        o.samples.join(", ")
                    },
                    o.left_out,
                    o.overridden,
                    usd(s.estimated_usd)
                );
            }
        }
    }
    // A selector's files are summarised above; explicit entries are listed.
    for r in p.routes.iter().filter(|r| r.selector.is_none()) {
        let _ = writeln!(
            out,
            "  {:<10} {:<8} {:>9}  {}",
            r.status.as_str(),
            if r.start_tier.is_empty() {
                "-"
            } else {
                &r.start_tier
            },
            usd(r.estimated_usd),
            r.reason
        );
    }
    let _ = writeln!(
        out,
        "planner cost {}; estimated total {}",
        usd(p.planner_usd),
        usd(p.estimated_total_usd)
    );
    let e = &p.expected;
    let covers = match p.budget_usd {
        Some(_) => format!(
            "; the budget left covers about {} of {} files",
            e.files_covered, e.files
        ),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "workers and review expected {} (90% interval {}-{}){covers}",
        usd(e.expected_usd),
        usd(e.low_usd),
        usd(e.high_usd)
    );
    if let Some(b) = p.budget_usd {
        let _ = writeln!(
            out,
            "budget {}{}",
            usd(b),
            if p.over_budget {
                "  WARNING: the estimate exceeds the budget"
            } else {
                ""
            }
        );
    }
    out
}

/// One line per job: id, status, the instruction's first line.
pub(crate) fn render_jobs(jobs: &[JobSummary]) -> String {
    let mut out = String::new();
    for j in jobs {
        let _ = writeln!(
            out,
            "{}  {:<12}  {}",
            j.job_id,
            j.status.as_str(),
            short(&j.instruction, 80)
        );
    }
    if jobs.is_empty() {
        out.push_str("no jobs\n");
    }
    out
}

/// The exit code for a finished job, as `cadre run`, `resume` and `watch`
/// exit: 0 completed, 2 needs_human, 1 otherwise.
pub(crate) fn job_exit_code(status: JobStatus) -> ExitCode {
    match status {
        JobStatus::Completed => ExitCode::SUCCESS,
        JobStatus::NeedsHuman => ExitCode::from(2),
        _ => ExitCode::FAILURE,
    }
}

/// Prints what an apply did (JSON or text) and returns its exit code: 0, or
/// 3 when some files were left alone.
pub(crate) fn print_apply(outcome: &ApplyOutcome, json: bool) -> anyhow::Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(outcome)?);
    } else {
        print!("{}", render_apply(outcome));
    }
    Ok(if outcome.conflicts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

/// What an apply did.
pub(crate) fn render_apply(o: &ApplyOutcome) -> String {
    let mut out = String::new();
    match &o.branch {
        Some(b) => {
            let _ = writeln!(out, "committed {} file(s) to branch {b}", o.written.len());
        }
        None => {
            let _ = writeln!(out, "wrote {} file(s)", o.written.len());
        }
    }
    for (path, reason) in &o.conflicts {
        let _ = writeln!(out, "  left alone: {path}: {reason}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_cadre_run() {
        assert_eq!(job_exit_code(JobStatus::Completed), ExitCode::SUCCESS);
        assert_eq!(job_exit_code(JobStatus::NeedsHuman), ExitCode::from(2));
        assert_eq!(job_exit_code(JobStatus::Cancelled), ExitCode::FAILURE);
        assert_eq!(job_exit_code(JobStatus::Failed), ExitCode::FAILURE);
    }
}
