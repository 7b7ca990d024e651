//! The apply: a finished job's accepted changes written to the workspace,
//! in place or as one commit on a new branch (through a temporary worktree,
//! the working tree untouched). A file whose content changed since the job
//! read it is left alone and reported, never overwritten.

use std::path::PathBuf;

use cadre_store::JobRecord;
use cadre_types::{EventKind, JobId, JobStatus, SubtaskId, SubtaskStatus};

use crate::actions::FileAction;
use crate::engine::Engine;
use crate::events::now_unix;
use crate::staging::{Applier, ApplyOutcome, FileChange};
use crate::{Error, Result};

impl Engine {
    /// Writes a finished job's accepted changes: in place, or as a commit on
    /// a new branch. Files changed since the job read them are left alone
    /// and reported.
    pub async fn apply(&self, job_id: JobId, branch: Option<String>) -> Result<ApplyOutcome> {
        let job = self.load_job_brief(job_id).await?;
        if !matches!(job.status, JobStatus::Completed | JobStatus::NeedsHuman) {
            return Err(Error::Conflict(format!(
                "job {job_id} is {}; only completed or needs_human jobs can be applied",
                job.status
            )));
        }
        if crate::checkout::job_git_source(&job).is_some() {
            return Err(Error::InvalidInput(format!(
                "job {job_id} ran on a checkout of {}: its change is the patch \
                 (`cadre diff {job_id}`), or the branch it pushed when submitted with --push-branch",
                job.workspace
            )));
        }
        let root = PathBuf::from(&job.workspace);
        let outcome = self.write_accepted(&job, root, branch).await?;
        self.emit(
            job_id,
            None,
            EventKind::Applied,
            format!(
                "applied {} file(s){}; {} left alone",
                outcome.written.len(),
                outcome
                    .branch
                    .as_ref()
                    .map(|b| format!(" to branch {b}"))
                    .unwrap_or_default(),
                outcome.conflicts.len()
            ),
            serde_json::to_value(&outcome).map_err(cadre_store::Error::Json)?,
        )
        .await?;
        self.store().mark_job_applied(job_id, now_unix()).await?;
        Ok(outcome)
    }

    /// Writes the accepted changes of `job` under `root`: in place, or as
    /// one commit on the new branch `branch` (from `root`'s HEAD).
    pub(crate) async fn write_accepted(
        &self,
        job: &JobRecord,
        root: PathBuf,
        branch: Option<String>,
    ) -> Result<ApplyOutcome> {
        let job_id = job.id;
        let store = self.store();
        let accepted: Vec<SubtaskId> = store
            .list_subtasks_brief(job_id)
            .await?
            .iter()
            .filter(|s| s.status == SubtaskStatus::Accepted)
            .map(|s| s.id)
            .collect();
        let message = format!(
            "cadre: {}\n\ncadre job {job_id}",
            job.instruction.lines().next().unwrap_or_default()
        );
        // The writer owns the files on a blocking thread and takes the
        // changes through a short channel: one file's contents at a time.
        let (changes, mut incoming) = tokio::sync::mpsc::channel::<FileChange>(4);
        let writer = tokio::task::spawn_blocking(move || {
            let mut applier = match branch {
                Some(name) => Applier::to_branch(&root, &name)?,
                None => Applier::in_place(&root),
            };
            while let Some(change) = incoming.blocking_recv() {
                applier.add(&change)?;
            }
            applier.finish(&message)
        });
        let directives = store.job_directives_brief(job_id).await?;
        for id in accepted {
            let Some(sub) = store.get_subtask(id).await? else {
                continue;
            };
            let Some(content) = sub.accepted_content else {
                continue;
            };
            let action = FileAction::from_directive(directives.get(&id));
            if action == FileAction::Write && Some(&content) == sub.original_content.as_ref() {
                continue;
            }
            let change = FileChange {
                path: sub.path,
                original_sha256: sub.original_sha256,
                content,
                action,
            };
            // A closed channel means the writer stopped; its error follows.
            if changes.send(change).await.is_err() {
                break;
            }
        }
        drop(changes);
        writer.await.map_err(|source| Error::Task {
            task: "apply",
            source,
        })?
    }
}
