//! Provider pressure: the simulator's `requests_per_minute` answers 429 with
//! `retry-after`; completed subtasks per minute against the limit.

use anyhow::{Result, anyhow};
use cadre_types::SubtaskStatus;

use super::{BenchResult, Figure, Sizes};
use crate::rig::{Workload, run_in_process};

/// Provider pressure: the simulator's `requests_per_minute` answers 429
/// with `retry-after`; completed subtasks per minute against the limit.
pub fn pressure(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let n = sizes.pressure_files;
    let rpm = sizes.pressure_rpm;
    let mut w = Workload::new(n);
    w.requests_per_minute = rpm;
    eprintln!("pressure: {n} subtasks against {rpm} requests/minute");
    let done = run_in_process(rt, &w, &[])?;
    let rate = steady_rate(&done.log).ok_or_else(|| {
        anyhow!("the limit was never reached (no 429 before the last worker call)")
    })?;
    let limited = done.log.iter().filter(|r| r.status == 429).count();
    let accepted = done
        .run
        .report
        .subtasks
        .iter()
        .filter(|s| s.status == SubtaskStatus::Accepted)
        .count();
    let extra_attempts: u32 = done
        .run
        .report
        .subtasks
        .iter()
        .map(|s| s.attempts.saturating_sub(1))
        .sum();
    let setting = format!("N={n}, limit {rpm}/min");
    let overall = done
        .run
        .times
        .fan_out()
        .map(|d| n as f64 / d.as_secs_f64() * 60.0)
        .unwrap_or(0.0);
    let figures = vec![
        Figure::new(
            &setting,
            "completed subtasks per minute once the bucket is empty",
            rate,
            "/min",
        )
        .within(f64::from(rpm), 0.10),
        Figure::new(
            &setting,
            "completed subtasks per minute, whole fan-out (incl. initial burst)",
            overall,
            "/min",
        ),
        Figure::new(&setting, "429 answers", limited as f64, "responses"),
        Figure::new(&setting, "subtasks accepted", accepted as f64, "subtasks").at_least(n as f64),
        Figure::new(
            &setting,
            "attempts beyond the first (lost to 429s)",
            f64::from(extra_attempts),
            "attempts",
        ),
    ];
    Ok(BenchResult {
        name: "pressure".to_owned(),
        title: "Provider pressure: token-bucket limit with 429 + retry-after; steady rate measured at the simulator".to_owned(),
        figures,
        notes: Vec::new(),
    })
}

/// Successful worker answers per minute between the first 429 and the last
/// successful worker answer (the sim's clock): the sustained rate once the
/// bucket's initial burst is spent.
pub fn steady_rate(log: &[cadre_sim::LoggedRequest]) -> Option<f64> {
    let first_429 = log
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.at_ms)
        .min()?;
    let ok: Vec<u64> = log
        .iter()
        .filter(|r| {
            r.role == Some(cadre_sim::Role::Worker) && r.status == 200 && r.at_ms >= first_429
        })
        .map(|r| r.at_ms)
        .collect();
    let last = *ok.iter().max()?;
    let span = last.saturating_sub(first_429);
    (span > 0).then(|| ok.len() as f64 / (span as f64 / 60_000.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn steady_rate_counts_worker_answers_after_the_first_429() {
        let req = |at_ms: u64, status: u16, role: cadre_sim::Role| cadre_sim::LoggedRequest {
            at_ms,
            status,
            role: Some(role),
            ..cadre_sim::LoggedRequest::default()
        };
        use cadre_sim::Role::{Planner, Worker};
        let log = vec![
            req(0, 200, Planner),
            req(10, 200, Worker),
            req(1000, 429, Worker),
            req(2000, 200, Worker),
            req(4000, 200, Worker),
            req(7000, 200, Worker),
        ];
        // 3 answers over 6 s after the first 429.
        assert_eq!(steady_rate(&log), Some(30.0));
        assert_eq!(steady_rate(&log[..2]), None);
    }
}
