//! Cache: how many worker calls of a fan-out read the shared prefix (long
//! plan notes, above every tier's cache minimum) from the prompt cache.

use anyhow::Result;

use super::{BenchResult, Figure, Sizes};
use crate::rig::{Workload, run_in_process};

/// Plan notes long enough that the shared prefix passes every tier's cache minimum.
pub fn long_notes() -> String {
    let line = "Keep the public API unchanged: only the type name UserId becomes AccountId; \
                imports, annotations, docstrings and f-strings follow; nothing else moves.\n";
    line.repeat(120)
}

/// Cache: how many worker calls read the shared prefix from cache.
pub fn cache(rt: &tokio::runtime::Runtime, sizes: &Sizes) -> Result<BenchResult> {
    let n = sizes.cache_files;
    let mut w = Workload::new(n);
    w.notes = long_notes();
    w.latency_ms = 20;
    eprintln!("cache: {n} subtasks, long shared prefix");
    let done = run_in_process(rt, &w, &[])?;
    let workers: Vec<&cadre_sim::LoggedRequest> = done
        .log
        .iter()
        .filter(|r| r.role == Some(cadre_sim::Role::Worker) && r.status == 200)
        .collect();
    let total = workers.len().max(1) as f64;
    let read = workers
        .iter()
        .filter(|r| r.cache_read_input_tokens > 0)
        .count() as f64;
    let wrote = workers
        .iter()
        .filter(|r| r.cache_creation_input_tokens > 0)
        .count() as f64;
    let setting = format!("N={n}");
    let figures = vec![
        Figure::new(
            &setting,
            "prompt tokens read from cache (report.cache_read_share)",
            done.run.report.cache_read_share * 100.0,
            "%",
        ),
        Figure::new(
            &setting,
            "worker calls reading the prefix",
            read / total * 100.0,
            "%",
        )
        .at_least(95.0),
        Figure::new(
            &setting,
            "worker calls writing the prefix",
            wrote / total * 100.0,
            "%",
        ),
        Figure::new(&setting, "worker calls", workers.len() as f64, "calls"),
    ];
    Ok(BenchResult {
        name: "cache".to_owned(),
        title: "Cache: shared-prefix reads on a fan-out whose prefix is above every tier's minimum"
            .to_owned(),
        figures,
        notes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_notes_pass_every_cache_minimum() {
        // tokens = ceil(chars / 4); the largest minimum of the default tiers is 4096.
        assert!(long_notes().len().div_ceil(4) > 4096);
    }
}
