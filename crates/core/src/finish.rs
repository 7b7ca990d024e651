//! The finish: every subtask terminal, the job's patch in the store (per-file
//! diffs joined by SQLite), for a job on a git repository submitted with a
//! branch to push the branch pushed, then the terminal status, in that
//! order, so a watcher that sees the job end can fetch the patch (and the
//! branch) at once; then this daemon's worktree of a git job is removed. The report is
//! not stored: it is recomputed from the store on every read.

use cadre_store::SubtaskRecord;
use cadre_types::{EventKind, JobId, JobStatus, SubtaskId, SubtaskStatus};
use serde_json::json;

use crate::actions::{FileAction, action_patch};
use crate::checkout::{Checkouts, GitSource, job_git_source as git_source, redact_url};
use crate::engine::Engine;
use crate::events::LIVE_JOB_STATES;
use crate::report::changed_lines;
use crate::{Error, Result};

impl Engine {
    /// Stores the job's patch and adds `wall_ms` to its wall time.
    pub(crate) async fn write_result(&self, job_id: JobId, wall_ms: u64) -> Result<()> {
        let store = self.store();
        let job = self.load_job_brief(job_id).await?;
        let accepted: Vec<SubtaskId> = store
            .list_subtasks_brief(job_id)
            .await?
            .iter()
            .filter(|s| s.status == SubtaskStatus::Accepted)
            .map(|s| s.id)
            .collect();
        let directives = store.job_directives_brief(job_id).await?;
        // One file's contents and diff at a time; SQLite joins the diffs
        // into the job's patch at the commit.
        // Fenced on the job's lease when it runs under one (crate::lease).
        let mut result = store
            .begin_fenced_result(job_id, self.fence_of(job_id)?)
            .await?;
        for id in accepted {
            let Some(full) = store.get_subtask(id).await? else {
                continue;
            };
            let diff = action_patch(
                &full.path,
                &FileAction::from_directive(directives.get(&id)),
                full.original_content.as_deref().unwrap_or_default(),
                full.accepted_content.as_deref().unwrap_or_default(),
            );
            if !diff.is_empty() {
                let (added, removed) = changed_lines(&diff);
                result.add_diff(id, diff, added, removed).await?;
            }
        }
        result.commit(job.wall_ms + wall_ms).await?;
        Ok(())
    }

    /// Ends a job whose stages ran to the end: on a user's cancel the
    /// unfinished subtasks become `cancelled`; otherwise the only unfinished
    /// ones are files the budget could not cover, which stay `pending` ("not
    /// started: budget") so `cadre resume JOB --budget USD` can run them.
    /// A job that accepted no change is never `completed` (nothing was
    /// checked). Then the patch, then the terminal status.
    pub(crate) async fn finish(&self, job_id: JobId, cancelled: bool, wall_ms: u64) -> Result<()> {
        if cancelled {
            self.end_unfinished(job_id, SubtaskStatus::Cancelled, "job cancelled")
                .await?;
        }
        let listing = self.store().list_subtasks_brief(job_id).await?;
        let not_started = listing.iter().filter(|s| !s.status.is_terminal()).count();
        let accepted = listing
            .iter()
            .filter(|s| s.status == SubtaskStatus::Accepted)
            .count();
        // Collected from a borrow: an in-place `into_iter` collect would keep
        // the whole listing's buffer alive behind the (short) list of paths.
        let unfinished: Vec<String> = listing
            .iter()
            .filter(|s| {
                matches!(
                    s.status,
                    SubtaskStatus::NeedsHuman | SubtaskStatus::Cancelled
                )
            })
            .map(|s: &SubtaskRecord| s.path.clone())
            .collect();
        drop(listing);
        let (status, reason) = if cancelled {
            (JobStatus::Cancelled, "cancelled by a user".to_owned())
        } else if unfinished.is_empty() && not_started == 0 && accepted > 0 {
            (JobStatus::Completed, String::new())
        } else if unfinished.is_empty() && not_started == 0 {
            // Nothing changed (every planned file skipped, or none planned),
            // so no check ran either: a person must look.
            (
                JobStatus::NeedsHuman,
                "no change was accepted (every planned file was skipped or none was planned), so no check ran".to_owned(),
            )
        } else {
            let mut parts = Vec::new();
            if not_started > 0 {
                parts.push(format!(
                    "{not_started} file(s) not started: budget (raise it with `cadre resume JOB --budget USD`)"
                ));
            }
            if !unfinished.is_empty() {
                parts.push(format!(
                    "{} subtask(s) need a human: {}",
                    unfinished.len(),
                    unfinished.join(", ")
                ));
            }
            (JobStatus::NeedsHuman, parts.join("; "))
        };
        self.write_result(job_id, wall_ms).await?;
        let source = git_source(&self.load_job_brief(job_id).await?);
        let (status, reason) = match (&source, status) {
            (Some(source), JobStatus::Completed) => self.push_result(job_id, source).await?,
            _ => (status, reason),
        };
        self.set_job_status(job_id, LIVE_JOB_STATES, status, &reason)
            .await?;
        self.release_checkout(job_id, source.as_ref()).await;
        Ok(())
    }

    /// A completed job submitted with a branch to push: its change committed
    /// on its commit and pushed as that new branch. Returns the job's end:
    /// `completed`, or `needs_human` with why when the push failed (the
    /// patch is in the store either way).
    async fn push_result(&self, job_id: JobId, source: &GitSource) -> Result<(JobStatus, String)> {
        let Some(branch) = &source.push_branch else {
            return Ok((JobStatus::Completed, String::new()));
        };
        let checkouts = Checkouts::of(self.config());
        let tree = checkouts.job_dir(job_id);
        // A job-unique local branch in the shared clone, deleted after the push.
        let local = format!("cadre-push/{job_id}");
        let job = self.load_job_brief(job_id).await?;
        let pushed = match self
            .write_accepted(&job, tree.clone(), Some(local.clone()))
            .await
        {
            Ok(outcome) if !outcome.conflicts.is_empty() => Err(Error::Conflict(format!(
                "{} file(s) differ from the job's commit",
                outcome.conflicts.len()
            ))),
            Ok(_) => {
                let pushed = checkouts
                    .push_new_branch(&tree, &source.url, &local, branch)
                    .await;
                checkouts.delete_local_branch(&tree, &local).await;
                pushed
            }
            Err(e) => Err(e),
        };
        let repo = redact_url(&source.url);
        match pushed {
            Ok(()) => {
                self.emit(
                    job_id,
                    None,
                    EventKind::Note,
                    format!("pushed branch {branch} to {repo}"),
                    json!({"branch": branch, "repository": repo}),
                )
                .await?;
                Ok((JobStatus::Completed, String::new()))
            }
            Err(e) => {
                tracing::warn!(job = %job_id, error = %e.chain(), "pushing the job's branch failed");
                Ok((
                    JobStatus::NeedsHuman,
                    format!(
                        "the change is in the store (`cadre diff {job_id}`), but pushing branch {branch} to {repo} failed: {}",
                        e.chain()
                    ),
                ))
            }
        }
    }

    /// Removes this daemon's worktree of an ended job on a git repository
    /// (a failure is logged: the next job's prune retries it).
    async fn release_checkout(&self, job_id: JobId, source: Option<&GitSource>) {
        if source.is_none() {
            return;
        }
        if let Err(e) = Checkouts::of(self.config()).remove_worktree(job_id).await {
            tracing::warn!(job = %job_id, error = %e.chain(), "removing the job's worktree failed");
        }
    }

    /// Ends a job whose stages failed: `needs_human` when the budget ran
    /// out (what was accepted is kept), `failed` otherwise; every unfinished
    /// subtask needs a human with the reason.
    pub(crate) async fn end_failed(
        &self,
        job_id: JobId,
        error: &Error,
        wall_ms: u64,
    ) -> Result<()> {
        let reason = error.chain();
        let over_budget = matches!(error, Error::BudgetExhausted(_));
        let (status, subtask_reason) = if over_budget {
            (JobStatus::NeedsHuman, reason.clone())
        } else {
            (JobStatus::Failed, format!("job failed: {reason}"))
        };
        self.set_job_status(job_id, LIVE_JOB_STATES, status, &reason)
            .await?;
        self.end_unfinished(job_id, SubtaskStatus::NeedsHuman, &subtask_reason)
            .await?;
        self.write_result(job_id, wall_ms).await?;
        let source = git_source(&self.load_job_brief(job_id).await?);
        self.release_checkout(job_id, source.as_ref()).await;
        Ok(())
    }
}
