//! The plan: the workspace indexed, the planner asked (its conversation is
//! [`crate::plan_call`]), selectors expanded over the index, every planned
//! path validated against the workspace rules, each subtask routed, and the
//! subtasks written in one transaction.

use std::collections::{BTreeMap, BTreeSet};

use cadre_store::{JobRecord, NewEvent, NewSubtask, SubtaskPath};
use cadre_types::{Complexity, EventKind, Plan, SubtaskAction, SubtaskId, SubtaskStatus};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use crate::actions::{ActionProblem, check_action, planned_directive};
use crate::checks::ProtectedFiles;
use crate::codemod::{CODEMOD_TIER, user_rule_for};
use crate::events::EVENTS_PER_GROUP;
use crate::index::{WorkspaceIndex, file_filter, instruction_terms};
use crate::paths::{validate_in_workspace, validate_relative};
use crate::plan_call::call_planner;
use crate::pricing::estimate_tokens;
use crate::prompts::{shared_prefix, worker_prefix_text};
use crate::route::{Router, route_seed};
use crate::run::JobRun;
use crate::selectors::expand;
use crate::staging::sha256_hex;
use crate::syntax::language_name;
use crate::{Error, Result};

/// What planning hands to the fan-out: the readable files it indexed (so a
/// fresh run does not index the workspace twice).
#[derive(Debug)]
pub(crate) struct Planned {
    pub files: Vec<String>,
}

/// Plans the job (indexes, asks the planner unless the plan is stored,
/// validates, routes and stores the subtasks). Leaves the job in `planning`.
pub(crate) async fn plan(run: &JobRun, job: &JobRecord) -> Result<Planned> {
    let span = tracing::info_span!("plan", job = %job.id);
    plan_inner(run, job).instrument(span).await
}

async fn plan_inner(run: &JobRun, job: &JobRecord) -> Result<Planned> {
    use cadre_types::JobStatus;
    let engine = &run.engine;
    let store = run.store();
    engine
        // From `planning` too: a plan cut short by a killed process is
        // planned again by `cadre resume`.
        .set_job_status(
            job.id,
            &[JobStatus::Queued, JobStatus::Planning],
            JobStatus::Planning,
            "",
        )
        .await?;
    let index = run.index(&instruction_terms(&job.instruction)).await?;
    if !index.skipped.is_empty() {
        let listed: Vec<String> = index
            .skipped
            .iter()
            .take(20)
            .map(|s| format!("{} ({})", s.path, s.reason))
            .collect();
        engine
            .emit(
                job.id,
                None,
                EventKind::FileSkipped,
                format!(
                    "{} file(s) not sent to models: {}",
                    index.skipped.len(),
                    listed.join(", ")
                ),
                json!({"count": index.skipped.len()}),
            )
            .await?;
    }
    let plan = match &job.plan {
        Some(p) => {
            Plan::deserialize(p).map_err(|e| Error::Planning(format!("stored plan: {e}")))?
        }
        None => {
            let plan = call_planner(run, job, &index).await?;
            store.set_job_plan(job.id, &plan).await?;
            plan
        }
    };
    let files = index.files.iter().map(|f| f.path.clone()).collect();
    if store.list_subtasks_brief(job.id).await?.is_empty() {
        let plan = expand_selectors(run, job, plan, &index).await?;
        write_subtasks(run, job, &plan, &index).await?;
    }
    Ok(Planned { files })
}

/// Validates, routes and stores every planned subtask. Each file is read
/// just before its row is written and dropped after, so planning holds one
/// file's contents, not the workspace's; the rows become visible together at
/// the commit. Events wait for the commit: the transaction holds the store's
/// write lock.
async fn write_subtasks(
    run: &JobRun,
    job: &JobRecord,
    plan: &Plan,
    index: &WorkspaceIndex,
) -> Result<()> {
    let engine = &run.engine;
    let config = run.config();
    let store = run.store();
    let root = &run.root;
    let filter = file_filter(&run.options.files)?;
    let router = Router::new(config)?;
    let protected = ProtectedFiles::new(
        &[
            run.options.check.as_deref(),
            run.options.file_check.as_deref(),
        ],
        &config.limits.protected_paths,
    )?;
    // Adaptive routing learns paths from the store's own history.
    let history = if config.routing.adaptive {
        Some(store.rung_stats(None, CODEMOD_TIER).await?)
    } else {
        None
    };
    let prefix_entries: Vec<(String, Complexity)> = plan
        .subtasks
        .iter()
        .map(|s| (s.path.clone(), s.complexity))
        .collect();
    let prefix_tokens = estimate_tokens(&worker_prefix_text(&shared_prefix(
        &job.instruction,
        &plan.notes,
        &prefix_entries,
    )));
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut writer = store.begin_subtasks().await?;
    let mut rejected: Vec<(String, String)> = Vec::new();
    let mut rows = Vec::new();
    let mut paths = Vec::new();
    let mut routes = BTreeMap::new();
    for (ordinal, planned) in plan.subtasks.iter().enumerate() {
        let mut row = NewSubtask {
            id: SubtaskId::new(),
            job_id: job.id,
            ordinal: ordinal as i64,
            path: planned.path.chars().take(500).collect(),
            instruction: planned.instruction.clone(),
            complexity: planned.complexity,
            error_cost: planned.error_cost,
            language: language_name(&planned.path).to_owned(),
            status: SubtaskStatus::Skipped,
            start_tier: String::new(),
            route_reason: String::new(),
            original_sha256: String::new(),
            original_content: None,
        };
        let mut directive = planned_directive(planned);
        let creates = planned.action == SubtaskAction::Create;
        let skip = match validate_in_workspace(root, &planned.path) {
            Err(e) => {
                rejected.push((e.to_string(), row.path.clone()));
                Some(e.to_string())
            }
            Ok(rel) => {
                row.path = rel.as_str().to_owned();
                if let Some(first) = seen.get(rel.as_str()) {
                    Some(format!("duplicate of subtask {first} for the same file"))
                } else if let Some(reason) = protected.reason(rel.as_str()) {
                    Some(reason)
                } else if creates && filter.as_ref().is_some_and(|f| !f.is_match(rel.as_str())) {
                    Some("outside the --files patterns".to_owned())
                } else if let Some(problem) =
                    match check_action(root, planned, rel.as_str(), ordinal, &mut seen) {
                        Ok(to) => {
                            directive.move_to = to;
                            None
                        }
                        Err(ActionProblem::Rejected(m)) => {
                            rejected.push((m.clone(), planned.to.clone().unwrap_or_default()));
                            Some(m)
                        }
                        Err(ActionProblem::Skip(m)) => Some(m),
                    }
                {
                    Some(problem)
                } else if creates {
                    seen.insert(rel.as_str().to_owned(), ordinal);
                    None
                } else if let Some(skipped) = index.skipped(rel.as_str()) {
                    Some(format!("file skipped: {}", skipped.reason))
                } else if filter.as_ref().is_some_and(|f| !f.is_match(rel.as_str())) {
                    Some("outside the --files patterns".to_owned())
                } else if index.file(rel.as_str()).is_none() {
                    Some(
                        "not a file of the workspace (missing, ignored or not a regular file)"
                            .to_owned(),
                    )
                } else {
                    seen.insert(rel.as_str().to_owned(), ordinal);
                    None
                }
            }
        };
        if let Some(reason) = skip {
            row.route_reason = reason;
            writer.insert(&row).await?;
            rows.push(row);
            continue;
        }
        let content = if creates {
            String::new()
        } else {
            tokio::fs::read_to_string(root.join(&row.path))
                .await
                .map_err(|e| Error::io(format!("reading {}", row.path), e))?
        };
        let prompt_tokens =
            prefix_tokens + estimate_tokens(&content) * 2 + estimate_tokens(&planned.instruction);
        match router.route_learned(
            config,
            history.as_deref(),
            &row.path,
            planned.complexity,
            planned.error_cost,
            prompt_tokens,
            route_seed(row.id),
        ) {
            Ok(decision) => {
                if let Some(routed) = decision.path {
                    paths.push(SubtaskPath {
                        subtask_id: row.id,
                        path: routed.path.clone(),
                        solved_share: Some(routed.solved_share),
                        cost_usd: Some(routed.cost_usd),
                        explored: routed.explored,
                        reason: routed.reason.clone(),
                    });
                    routes.insert(row.id, routed);
                }
                row.status = SubtaskStatus::Pending;
                row.error_cost = decision.error_cost;
                row.start_tier = decision.start_tier;
                row.route_reason = decision.reason;
                if directive.rule.is_none() && planned.action == SubtaskAction::Edit {
                    directive.rule =
                        user_rule_for(&run.options.rules, &row.path, planned.complexity)?;
                }
                if directive.rule.is_some() && config.has_codemod_tier() {
                    row.route_reason
                        .push_str(&format!("; {CODEMOD_TIER} first (ast-grep rule)"));
                }
                row.original_sha256 = sha256_hex(content.as_bytes());
                row.original_content = Some(content);
            }
            // A file that fits no tier's window needs a person (split or
            // shrink it, or a tier with a larger window).
            Err(e) => {
                row.status = SubtaskStatus::NeedsHuman;
                row.route_reason = e.to_string();
            }
        }
        writer.insert(&row).await?;
        if !directive.is_plain() {
            writer.set_directive(row.id, &directive).await?;
        }
        // Kept for the events after the commit: what they say, no more.
        row.original_content = None;
        row.instruction = String::new();
        row.original_sha256 = String::new();
        rows.push(row);
    }
    writer.commit().await?;
    // After the subtasks' commit (the rows must exist); a subtask whose path
    // was lost to a crash in between climbs every rung from its start.
    if !paths.is_empty() {
        store.insert_subtask_paths(&paths).await?;
    }
    let rejected: Vec<NewEvent> = rejected
        .into_iter()
        .map(|(message, path)| NewEvent {
            job_id: job.id,
            subtask_id: None,
            kind: EventKind::PathRejected,
            message,
            data: json!({"path": path}),
        })
        .collect();
    engine.emit_all(rejected).await?;
    // A trip's events at a time: a 10,000-file plan never holds them all.
    for page in rows.chunks(EVENTS_PER_GROUP) {
        let events = page
            .iter()
            .map(|row| {
                let (kind, message) = if row.status != SubtaskStatus::Pending {
                    (
                        EventKind::SubtaskStatus,
                        format!("{}: {}: {}", row.path, row.status, row.route_reason),
                    )
                } else {
                    (EventKind::Routed, row.route_reason.clone())
                };
                NewEvent {
                    job_id: job.id,
                    subtask_id: Some(row.id),
                    kind,
                    message,
                    data: json!({"path": row.path, "start_tier": row.start_tier,
                                 "status": row.status.as_str(),
                                 "complexity": row.complexity.as_str(),
                                 "error_cost": row.error_cost.as_str(),
                                 "route": routes.get(&row.id)}),
                }
            })
            .collect();
        engine.emit_all(events).await?;
    }
    Ok(())
}

/// The plan with its selectors expanded over the index into entries after
/// the explicit ones (which win for the same file); says what each selector
/// did, or why it was refused, in an event.
async fn expand_selectors(
    run: &JobRun,
    job: &JobRecord,
    mut plan: Plan,
    index: &WorkspaceIndex,
) -> Result<Plan> {
    if plan.selectors.is_empty() {
        return Ok(plan);
    }
    let mut planned: BTreeSet<String> = plan
        .subtasks
        .iter()
        .filter_map(|s| validate_relative(&s.path).ok())
        .map(|p| p.as_str().to_owned())
        .collect();
    let files: Vec<String> = index.files.iter().map(|f| f.path.clone()).collect();
    let selectors = std::mem::take(&mut plan.selectors);
    let root = run.root.clone();
    let (entries, outcomes, selectors) = tokio::task::spawn_blocking(move || {
        let (entries, outcomes) = expand(&selectors, &files, &mut planned, |path| {
            std::fs::read_to_string(root.join(path)).ok()
        });
        (entries, outcomes, selectors)
    })
    .await
    .map_err(|source| Error::Task {
        task: "selectors",
        source,
    })?;
    plan.selectors = selectors;
    for outcome in &outcomes {
        let (kind, message) = match &outcome.rejected {
            Some(reason) => (
                EventKind::SelectorRejected,
                format!("selector {:?} refused: {reason}", outcome.id),
            ),
            None => (
                EventKind::SelectorExpanded,
                format!(
                    "selector {:?}: {} file(s) ({}), {} left out, {} planned explicitly",
                    outcome.id,
                    outcome.matched,
                    outcome.samples.join(", "),
                    outcome.left_out,
                    outcome.overridden
                ),
            ),
        };
        run.engine
            .emit(
                job.id,
                None,
                kind,
                message,
                serde_json::to_value(outcome).map_err(cadre_store::Error::Json)?,
            )
            .await?;
    }
    plan.subtasks.extend(entries);
    Ok(plan)
}
