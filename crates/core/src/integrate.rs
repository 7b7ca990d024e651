//! The integration check: every accepted change staged together (a git
//! worktree of HEAD plus uncommitted changes, or a copy), the job's `--check`
//! run there, and the files its output blames sent back to the cascade (on
//! the last round, to a human).

use std::time::Duration;

use cadre_store::SubtaskRecord;
use cadre_types::{EventKind, FailureKind, SubtaskStatus};
use serde_json::json;
use tracing::Instrument;

use crate::actions::FileAction;
use crate::checks::{blame, run_check};
use crate::run::{JobRun, PlannedContext};
use crate::staging::Staging;
use crate::{Error, Result};

/// What one integration round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct IntegrationOutcome {
    /// Files sent back to the cascade (another round follows).
    pub sent_back: usize,
}

/// Stages every accepted change and runs `command`. On the final round,
/// blamed files need a human instead of going back.
pub(crate) async fn integrate(
    run: &JobRun,
    planned: &PlannedContext,
    command: &str,
    final_round: bool,
) -> Result<IntegrationOutcome> {
    let span = tracing::debug_span!("integrate", job = %run.job_id, final_round);
    integrate_inner(run, planned, command, final_round)
        .instrument(span)
        .await
}

async fn integrate_inner(
    run: &JobRun,
    planned: &PlannedContext,
    command: &str,
    final_round: bool,
) -> Result<IntegrationOutcome> {
    let engine = &run.engine;
    let store = run.store();
    let accepted: Vec<SubtaskRecord> = store
        .list_subtasks_brief(run.job_id)
        .await?
        .into_iter()
        .filter(|s| s.status == SubtaskStatus::Accepted)
        .collect();
    if accepted.is_empty() {
        return Ok(IntegrationOutcome::default());
    }
    let root = run.root.clone();
    let files = planned.files.clone();
    let staging = tokio::task::spawn_blocking(move || Staging::prepare(&root, &files))
        .await
        .map_err(|source| Error::Task {
            task: "staging",
            source,
        })??;
    let staging = std::sync::Arc::new(staging);
    let directives = store.job_directives_brief(run.job_id).await?;
    // One accepted file's contents at a time, written off the async threads.
    for sub in &accepted {
        if let Some(full) = store.get_subtask(sub.id).await? {
            let staging = staging.clone();
            let action = FileAction::from_directive(directives.get(&sub.id));
            tokio::task::spawn_blocking(move || {
                staging.stage(
                    &full.path,
                    &action,
                    full.accepted_content.as_deref().unwrap_or_default(),
                )
            })
            .await
            .map_err(|source| Error::Task {
                task: "staging",
                source,
            })??;
        }
    }
    let timeout = Duration::from_secs(run.config().limits.check_timeout_secs);
    let out = run_check(command, staging.dir(), timeout).await?;
    drop(staging);
    engine
        .emit(
            run.job_id,
            None,
            EventKind::IntegrationCheck,
            format!(
                "integration check {}",
                if out.success { "passed" } else { "failed" }
            ),
            json!({"success": out.success, "exit_code": out.exit_code, "output": out.output}),
        )
        .await?;
    if out.success {
        return Ok(IntegrationOutcome::default());
    }
    let paths: Vec<String> = accepted.iter().map(|s| s.path.clone()).collect();
    let blamed = blame(&out.output, &paths);
    if blamed.is_empty() {
        run.release_reviews(accepted.iter().map(|s| s.id));
        for sub in &accepted {
            engine
                .withdraw_to_human(
                    run.job_id,
                    sub,
                    "the integration check failed and its output names no changed file".to_owned(),
                )
                .await?;
        }
        return Ok(IntegrationOutcome::default());
    }
    let message = format!("integration check failed:\n{}", out.output);
    for sub in accepted.iter().filter(|s| blamed.contains(&s.path)) {
        if final_round {
            run.release_reviews([sub.id]);
            engine
                .withdraw_to_human(
                    run.job_id,
                    sub,
                    format!(
                        "integration rounds ({}) exhausted; the check still blames this file",
                        run.config().limits.integration_rounds
                    ),
                )
                .await?;
        } else {
            engine
                .send_back(run.job_id, sub, FailureKind::IntegrationBlamed, &message)
                .await?;
        }
    }
    Ok(IntegrationOutcome {
        sent_back: if final_round { 0 } else { blamed.len() },
    })
}
