//! State changes with their events: every job and subtask transition is a
//! compare-and-set in the store followed by an event in the job's log (and
//! on the engine's live channel) that says why.

use cadre_store::{AttemptWrite, AttemptWritten, NewEvent, SubtaskRecord, SubtaskUpdate};
use cadre_types::{EventKind, JobEvent, JobId, JobStatus, SubtaskId, SubtaskStatus};
use serde_json::{Value, json};

use crate::engine::Engine;
use crate::{Error, Result};

/// Every job state a run can leave for a terminal one.
pub(crate) const LIVE_JOB_STATES: &[JobStatus] = &[
    JobStatus::Queued,
    JobStatus::Planning,
    JobStatus::Running,
    JobStatus::Integrating,
    JobStatus::Reviewing,
];

/// Events one trip to the store writer carries in [`Engine::emit_all`]: a
/// trip is one transaction, so this bounds how long it holds the write lock.
pub(crate) const EVENTS_PER_GROUP: usize = 512;

pub(crate) fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Engine {
    /// Appends an event to the job's log and publishes it live.
    pub(crate) async fn emit(
        &self,
        job: JobId,
        subtask: Option<SubtaskId>,
        kind: EventKind,
        message: String,
        data: Value,
    ) -> Result<()> {
        let event = NewEvent {
            job_id: job,
            subtask_id: subtask,
            kind,
            message,
            data,
        };
        let live = self.listened().then(|| event.clone());
        let seq = self.writer().append_event(event).await?;
        self.publish(seq, live);
        Ok(())
    }

    /// Appends `events` in order, many to a trip to the store writer (at
    /// most [`EVENTS_PER_GROUP`] each), and publishes them live: a planned
    /// job's thousands of `routed` events or a review chunk's verdicts cost a
    /// few commits, not one each.
    pub(crate) async fn emit_all(&self, events: Vec<NewEvent>) -> Result<()> {
        let mut events = events.into_iter().peekable();
        while events.peek().is_some() {
            let group: Vec<AttemptWrite> = events
                .by_ref()
                .take(EVENTS_PER_GROUP)
                .map(AttemptWrite::Event)
                .collect();
            self.write_all_then_emit(group).await?;
        }
        Ok(())
    }

    /// Writes `write` and appends `event` after it in one group (one trip
    /// to the store writer), then publishes the event live; what `write` did.
    pub(crate) async fn write_then_emit(
        &self,
        write: AttemptWrite,
        event: NewEvent,
    ) -> Result<AttemptWritten> {
        let live = self.listened().then(|| event.clone());
        let done = self
            .writer()
            .write(vec![write, AttemptWrite::Event(event)])
            .await?;
        match done.as_slice() {
            [first, AttemptWritten::Event(seq)] => {
                self.publish(*seq, live);
                Ok(*first)
            }
            other => Err(Error::Conflict(format!(
                "the store writer answered {other:?} to a write and its event"
            ))),
        }
    }

    /// Writes `writes` in one group (one trip to the store writer), then
    /// publishes live every event it appended; what each write did.
    pub(crate) async fn write_all_then_emit(
        &self,
        writes: Vec<AttemptWrite>,
    ) -> Result<Vec<AttemptWritten>> {
        let live: Vec<Option<NewEvent>> = if self.listened() {
            writes
                .iter()
                .map(|w| match w {
                    AttemptWrite::Event(e) => Some(e.clone()),
                    AttemptWrite::Transition { event, .. } => event.clone(),
                    _ => None,
                })
                .collect()
        } else {
            Vec::new()
        };
        let done = self.writer().write(writes).await?;
        for (written, event) in done.iter().zip(live) {
            match written {
                AttemptWritten::Event(seq)
                | AttemptWritten::Transition {
                    event: Some(seq), ..
                } => self.publish(*seq, event),
                _ => {}
            }
        }
        Ok(done)
    }

    /// Whether anyone listens to the live channel (else events are only stored).
    fn listened(&self) -> bool {
        self.live_events().receiver_count() > 0
    }

    /// Publishes a stored event on the live channel.
    fn publish(&self, seq: i64, event: Option<NewEvent>) {
        let Some(event) = event else { return };
        let _ = self.live_events().send(JobEvent {
            seq,
            job_id: event.job_id,
            subtask_id: event.subtask_id,
            kind: event.kind,
            message: event.message,
            data: event.data,
            at: now_unix(),
        });
    }

    /// An informational job event whose loss must not stop the work (a
    /// back-off notice): a store failure is logged instead.
    pub(crate) async fn note(&self, job: JobId, kind: EventKind, message: String, data: Value) {
        if let Err(e) = self.emit(job, None, kind, message, data).await {
            tracing::warn!(job = %job, error = %e, "an informational event was not recorded");
        }
    }

    /// Moves the job from one of `from` to `to`; false when it was elsewhere.
    pub(crate) async fn set_job_status(
        &self,
        job: JobId,
        from: &[JobStatus],
        to: JobStatus,
        reason: &str,
    ) -> Result<bool> {
        // Fenced on the job's lease when it runs under one (crate::lease).
        let changed = self.transition_job(job, from, to, reason).await?;
        if changed {
            tracing::info!(job = %job, status = %to, reason, "job status");
            let message = if reason.is_empty() {
                format!("job {to}")
            } else {
                format!("job {to}: {reason}")
            };
            self.emit(
                job,
                None,
                EventKind::JobStatus,
                message,
                json!({"status": to.as_str(), "reason": reason}),
            )
            .await?;
        }
        Ok(changed)
    }

    /// Moves a subtask from one of `from` to `to` with `update`; false when
    /// it was elsewhere.
    pub(crate) async fn set_subtask_status(
        &self,
        job: JobId,
        sub: &SubtaskRecord,
        from: &[SubtaskStatus],
        to: SubtaskStatus,
        update: SubtaskUpdate,
    ) -> Result<bool> {
        self.set_subtask_status_after(Vec::new(), job, sub, from, to, update)
            .await
    }

    /// [`Engine::set_subtask_status`] written in one group after `before`
    /// (an attempt's end and its event), whose events are published too.
    pub(crate) async fn set_subtask_status_after(
        &self,
        mut before: Vec<AttemptWrite>,
        job: JobId,
        sub: &SubtaskRecord,
        from: &[SubtaskStatus],
        to: SubtaskStatus,
        update: SubtaskUpdate,
    ) -> Result<bool> {
        // The change and its event are one write: the event is appended
        // only when the compare-and-set matched.
        let event = self.subtask_status_event(job, sub, to, &update);
        before.push(AttemptWrite::Transition {
            id: sub.id,
            from: from.to_vec(),
            to,
            update,
            event: Some(event),
        });
        let done = self.write_all_then_emit(before).await?;
        let changed = match done.last() {
            Some(AttemptWritten::Transition { event, .. }) => event.is_some(),
            other => {
                return Err(Error::Conflict(format!(
                    "the store writer answered {other:?} to a status change"
                )));
            }
        };
        if changed {
            tracing::debug!(job = %job, subtask = %sub.id, path = %sub.path, status = %to, "subtask status");
        }
        Ok(changed)
    }

    /// The event that reports `sub` moving to `to` with `update`.
    pub(crate) fn subtask_status_event(
        &self,
        job: JobId,
        sub: &SubtaskRecord,
        to: SubtaskStatus,
        update: &SubtaskUpdate,
    ) -> NewEvent {
        let reason = update.reason.as_deref().unwrap_or_default();
        NewEvent {
            job_id: job,
            subtask_id: Some(sub.id),
            kind: EventKind::SubtaskStatus,
            message: format!("{}: {to} {reason}", sub.path).trim_end().to_owned(),
            data: json!({"path": sub.path, "status": to.as_str(), "tier": update.current_tier, "reason": reason}),
        }
    }

    /// Ends a running subtask as `needs_human` with why.
    pub(crate) async fn hand_to_human(
        &self,
        job: JobId,
        sub: &SubtaskRecord,
        attempts: usize,
        reason: String,
    ) -> Result<()> {
        let update = SubtaskUpdate {
            attempts: Some(attempts as u32),
            reason: Some(reason),
            ..SubtaskUpdate::default()
        };
        self.set_subtask_status(
            job,
            sub,
            &[SubtaskStatus::Running],
            SubtaskStatus::NeedsHuman,
            update,
        )
        .await?;
        Ok(())
    }

    /// Takes back an accepted change that a later check could not clear: the
    /// subtask needs a human and its change is dropped, so it is never applied.
    pub(crate) async fn withdraw_to_human(
        &self,
        job: JobId,
        sub: &SubtaskRecord,
        reason: String,
    ) -> Result<()> {
        let update = SubtaskUpdate {
            reason: Some(reason),
            accepted_content: Some(None),
            ..SubtaskUpdate::default()
        };
        self.set_subtask_status(
            job,
            sub,
            &[SubtaskStatus::Accepted],
            SubtaskStatus::NeedsHuman,
            update,
        )
        .await?;
        Ok(())
    }

    /// Ends every unfinished subtask of the job as `to` with `reason`.
    pub(crate) async fn end_unfinished(
        &self,
        job: JobId,
        to: SubtaskStatus,
        reason: &str,
    ) -> Result<()> {
        for sub in self.store().list_subtasks_brief(job).await? {
            if !sub.status.is_terminal() {
                self.set_subtask_status(
                    job,
                    &sub,
                    &[SubtaskStatus::Pending, SubtaskStatus::Running],
                    to,
                    SubtaskUpdate {
                        reason: Some(reason.to_owned()),
                        ..SubtaskUpdate::default()
                    },
                )
                .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cadre_config::Config;
    use cadre_store::Store;

    use super::*;
    use crate::providers::Providers;

    #[tokio::test]
    async fn emit_all_stores_and_publishes_every_event_in_order_across_groups() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("cadre.db")).await.unwrap();
        let config = Arc::new(Config::default_embedded().unwrap());
        let providers =
            Providers::from_config(&config, &|_| None, Some(("http://127.0.0.1:9", "k"))).unwrap();
        let engine = Engine::new(config, store.clone(), providers);
        let job = engine
            .create_job("x", dir.path(), &Default::default(), None, 0)
            .await
            .unwrap();
        let mut live = engine.subscribe();
        let before = store.list_events(job, 0, 10_000).await.unwrap().len();
        // Three trips to the writer: 512, 512 and 76.
        let n = 2 * EVENTS_PER_GROUP + 76;
        let events: Vec<NewEvent> = (0..n)
            .map(|i| NewEvent {
                job_id: job,
                subtask_id: None,
                kind: EventKind::Note,
                message: format!("event {i}"),
                data: json!({"i": i}),
            })
            .collect();
        engine.emit_all(events).await.unwrap();

        let stored = store.list_events(job, 0, 10_000).await.unwrap();
        let stored: Vec<&JobEvent> = stored.iter().skip(before).collect();
        let messages: Vec<&str> = stored.iter().map(|e| e.message.as_str()).collect();
        let wanted: Vec<String> = (0..n).map(|i| format!("event {i}")).collect();
        assert_eq!(messages, wanted);
        assert!(stored.windows(2).all(|w| w[0].seq < w[1].seq));
        for (i, e) in stored.iter().enumerate() {
            assert_eq!(e.data, json!({"i": i}));
            let published = live.try_recv().unwrap();
            assert_eq!((published.seq, &published.message), (e.seq, &e.message));
        }
        assert!(live.try_recv().is_err(), "nothing else was published");
    }
}
