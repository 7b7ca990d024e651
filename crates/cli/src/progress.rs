//! The live progress line: subtasks by state and tier, escalations, cost.

use std::collections::HashMap;
use std::time::Duration;

use cadre_core::Engine;
use cadre_types::{EventKind, JobId, SubtaskId};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

/// A progress display fed by the engine's event stream; owned by the caller,
/// which stops it with [`Progress::finish`].
pub(crate) struct Progress {
    task: JoinHandle<()>,
    bar: ProgressBar,
}

impl Progress {
    /// Starts rendering events of `job` to stderr (hidden when not a terminal).
    pub(crate) fn start(engine: &Engine, job: JobId) -> Self {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        let mut rx = engine.subscribe();
        let line = bar.clone();
        let task = tokio::spawn(async move {
            let mut states: HashMap<SubtaskId, (String, String)> = HashMap::new();
            let mut escalations = 0;
            let mut cost = 0.0;
            loop {
                let event = match rx.recv().await {
                    Ok(e) => e,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                };
                if event.job_id != job {
                    continue;
                }
                let tier = event
                    .data
                    .get("tier")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_owned();
                match event.kind {
                    EventKind::Routed => {
                        if let Some(id) = event.subtask_id {
                            let start = event
                                .data
                                .get("start_tier")
                                .and_then(|t| t.as_str())
                                .unwrap_or_default();
                            states.insert(id, ("pending".into(), start.to_owned()));
                        }
                    }
                    EventKind::SubtaskStatus => {
                        if let (Some(id), Some(status)) = (
                            event.subtask_id,
                            event.data.get("status").and_then(|s| s.as_str()),
                        ) {
                            let entry = states
                                .entry(id)
                                .or_insert_with(|| (String::new(), String::new()));
                            entry.0 = status.to_owned();
                            if !tier.is_empty() {
                                entry.1 = tier.clone();
                            }
                        }
                    }
                    EventKind::AttemptStarted => {
                        if let Some(id) = event.subtask_id {
                            states
                                .entry(id)
                                .or_insert_with(|| ("running".into(), String::new()))
                                .1 = tier.clone();
                        }
                    }
                    EventKind::AttemptFinished => {
                        cost += event
                            .data
                            .get("cost_usd")
                            .and_then(|c| c.as_f64())
                            .unwrap_or(0.0)
                    }
                    EventKind::Escalated => escalations += 1,
                    EventKind::JobStatus => line.println(format!("  {}", event.message)),
                    _ => {}
                }
                let mut by_state: HashMap<&str, usize> = HashMap::new();
                let mut running_tiers: HashMap<&str, usize> = HashMap::new();
                for (state, tier) in states.values() {
                    *by_state.entry(state.as_str()).or_default() += 1;
                    if state == "running" {
                        *running_tiers.entry(tier.as_str()).or_default() += 1;
                    }
                }
                let mut tiers: Vec<String> = running_tiers
                    .iter()
                    .map(|(t, n)| format!("{t} {n}"))
                    .collect();
                tiers.sort();
                line.set_message(format!(
                    "{} subtasks: {} accepted, {} running ({}), {} pending, {} needs_human, {} skipped · {} escalations · ${:.4}",
                    states.len(),
                    by_state.get("accepted").unwrap_or(&0),
                    by_state.get("running").unwrap_or(&0),
                    tiers.join(", "),
                    by_state.get("pending").unwrap_or(&0),
                    by_state.get("needs_human").unwrap_or(&0),
                    by_state.get("skipped").unwrap_or(&0),
                    escalations,
                    cost
                ));
            }
        });
        Self { task, bar }
    }

    /// Stops the display.
    pub(crate) async fn finish(self) {
        self.task.abort();
        let _ = self.task.await;
        self.bar.finish_and_clear();
    }
}
