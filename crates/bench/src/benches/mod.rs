//! The benchmarks, one module each (`fanout`, `overhead`, `scale`,
//! `cache`, `pressure`, `migration`, `backends`, `cluster`, `peer`). Each returns a [`BenchResult`]: the
//! figures the markdown table and the JSON output both print. This module
//! holds those shared result types and the benchmark sizes.

mod backends;
mod cache;
mod cluster;
mod fanout;
mod migration;
mod overhead;
mod peer;
mod pressure;
mod scale;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use backends::backends;
pub use cache::cache;
pub use cluster::cluster;
pub use fanout::fanout;
pub use migration::migration;
pub use overhead::overhead;
pub use peer::peer;
pub use pressure::pressure;
pub use scale::{scale, scale_child, serve_scale};

/// One number with its meaning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// The setting it was measured under ("C=32", "10000 files").
    pub setting: String,
    /// What it is ("efficiency (ideal/actual)").
    pub metric: String,
    /// The number.
    pub value: f64,
    /// Its unit ("ms", "MiB", "ratio", "%", "/min").
    pub unit: String,
    /// The target, when there is one ("≥ 0.95").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Whether the target is met.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

impl Figure {
    pub(super) fn new(setting: &str, metric: &str, value: f64, unit: &str) -> Figure {
        Figure {
            setting: setting.to_owned(),
            metric: metric.to_owned(),
            value,
            unit: unit.to_owned(),
            target: None,
            met: None,
        }
    }

    pub(super) fn at_least(mut self, bound: f64) -> Figure {
        self.target = Some(format!(">= {}", trim_number(bound)));
        self.met = Some(self.value >= bound);
        self
    }

    pub(super) fn below(mut self, bound: f64) -> Figure {
        self.target = Some(format!("< {}", trim_number(bound)));
        self.met = Some(self.value < bound);
        self
    }

    pub(super) fn within(mut self, reference: f64, tolerance: f64) -> Figure {
        self.target = Some(format!(
            "{} ± {}%",
            trim_number(reference),
            trim_number(tolerance * 100.0)
        ));
        self.met = Some((self.value - reference).abs() <= reference * tolerance);
        self
    }
}

/// Formats a number without useless decimals.
pub fn trim_number(v: f64) -> String {
    let text = if v.abs() >= 100.0 || (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// One benchmark's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchResult {
    /// The `--only` name.
    pub name: String,
    /// What it measures and how.
    pub title: String,
    /// The figures.
    pub figures: Vec<Figure>,
    /// Observations (missed targets, caveats).
    pub notes: Vec<String>,
}

/// Sizes of every benchmark; `quick` shrinks them for smoke tests.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Fan-out cases: (subtasks, concurrency).
    pub fanout_cases: Vec<(usize, u32)>,
    /// Fan-out model latency, ms.
    pub fanout_latency_ms: u64,
    /// Peer comparison: subtasks per run.
    pub peer_files: usize,
    /// Peer comparison: concurrency levels.
    pub peer_concurrency: Vec<u32>,
    /// Overhead subtasks.
    pub overhead_files: usize,
    /// Scale workspace sizes.
    pub scale_files: Vec<usize>,
    /// Cache subtasks.
    pub cache_files: usize,
    /// Pressure subtasks.
    pub pressure_files: usize,
    /// Pressure rate limit.
    pub pressure_rpm: u32,
    /// Cluster: files of the shared job.
    pub cluster_files: usize,
    /// Cluster: the per-file check's duration, ms.
    pub cluster_check_ms: u64,
}

impl Sizes {
    /// The sizes of issue 6.
    pub fn full() -> Sizes {
        Sizes {
            fanout_cases: vec![(1000, 8), (1000, 32), (1000, 128), (5000, 512)],
            fanout_latency_ms: 200,
            peer_files: 1000,
            peer_concurrency: vec![32, 128],
            overhead_files: 2000,
            scale_files: vec![2500, 5000, 10_000],
            cache_files: 200,
            pressure_files: 900,
            pressure_rpm: 600,
            cluster_files: 300,
            cluster_check_ms: 200,
        }
    }

    /// Small sizes that exercise every code path in seconds.
    pub fn quick() -> Sizes {
        Sizes {
            fanout_cases: vec![(40, 4), (40, 16)],
            fanout_latency_ms: 20,
            peer_files: 40,
            peer_concurrency: vec![16],
            overhead_files: 60,
            scale_files: vec![50, 100],
            cache_files: 30,
            pressure_files: 130,
            pressure_rpm: 120,
            cluster_files: 24,
            cluster_check_ms: 50,
        }
    }
}

/// Milliseconds, as a figure's value.
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn targets_are_judged() {
        assert_eq!(
            Figure::new("s", "m", 0.97, "ratio").at_least(0.95).met,
            Some(true)
        );
        assert_eq!(Figure::new("s", "m", 2.5, "ms").below(2.0).met, Some(false));
        let f = Figure::new("s", "m", 560.0, "/min").within(600.0, 0.1);
        assert_eq!(
            (f.met, f.target.as_deref()),
            (Some(true), Some("600 ± 10%"))
        );
        assert_eq!(
            Figure::new("s", "m", 530.0, "/min").within(600.0, 0.1).met,
            Some(false)
        );
    }
}
