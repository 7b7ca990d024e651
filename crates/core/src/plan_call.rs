//! The planner's conversation: the request (the instruction and a bounded
//! overview of the index, [`WorkspaceIndex::render_overview`]), read-only
//! `search` turns answered from the index ([`crate::plan_search`]), the
//! plan's pages gathered (`more: true` asks for the next), and an unusable
//! answer fed back once. The calls run under the run's stop and halt tokens
//! like every other call.

use cadre_llm::types::{ContentBlock, Message, MessageRole, ToolChoice};
use cadre_store::JobRecord;
use cadre_types::{AttemptOutcome, FailureKind, Plan, Role};

use crate::attempt::{AttemptEnd, AttemptStart, echo_content};
use crate::budget::min_output_tokens;
use crate::call::{CallCost, CallFailure, ModelCall};
use crate::index::WorkspaceIndex;
use crate::plan_search::{PlannerSearches, SEARCH_TOOL};
use crate::prompts::{parse_plan, planner_request};
use crate::route::call_settings;
use crate::run::JobRun;
use crate::{Error, Result};

/// Directory lines of the overview the planner sees, at most.
const OVERVIEW_DIRS: usize = 200;

/// Files the overview names as a sample, at most.
const OVERVIEW_SAMPLE: usize = 30;

/// Asks the planner for the plan; an unusable answer is fed back once. A
/// plan answered in pages (`more: true`) is asked to continue, at most
/// `limits.planner_pages` answers; a planner still asking for more then
/// ends the job with that reason. A turn of searches only (no
/// `submit_plan`) is answered and the conversation goes on, at most
/// `limits.planner_searches` searches; past them the planner is told to
/// submit, and a turn that still only searches counts as unusable.
pub(crate) async fn call_planner(
    run: &JobRun,
    job: &JobRecord,
    index: &WorkspaceIndex,
) -> Result<Plan> {
    let engine = &run.engine;
    let config = run.config();
    let tier = config.roles.planner.tier.clone();
    let model = config
        .models
        .get(&tier)
        .ok_or_else(|| Error::Config(format!("planner tier {tier:?} has no model")))?;
    let search_limit = if forces_one_of_several_tools(config, &model.provider) {
        config.limits.planner_searches
    } else {
        0
    };
    let mut searches = PlannerSearches::new(
        index.files.iter().map(|f| f.path.clone()).collect(),
        search_limit,
    );
    // With the search tool offered, the planner must call a tool (either);
    // without, it must submit.
    let forced = (!searches.offered()).then_some("submit_plan");
    let settings = call_settings(config, Role::Planner, &tier, None, forced)?;
    let mut request = planner_request(
        &model.model,
        &settings,
        &job.instruction,
        &index.render_overview(OVERVIEW_DIRS, OVERVIEW_SAMPLE),
        searches.offered(),
    );
    let mut last_problem = String::new();
    let max_pages = config.limits.planner_pages.max(1);
    let mut pages = PlanPages::default();
    let mut failures = 0u32;
    let mut ordinal = 0u32;
    while failures < 2 {
        ordinal += 1;
        let attempt = engine
            .start_attempt(
                AttemptStart {
                    job: job.id,
                    subtask: None,
                    role: Role::Planner,
                    tier: &tier,
                    model: &model.model,
                    effort: settings.effort.clone(),
                    ordinal,
                },
                &request,
            )
            .await?;
        let call = ModelCall {
            attempt,
            turn: 0,
            role: Role::Planner,
            tier: &tier,
            request: &request,
            warm: false,
            min_output_tokens: min_output_tokens(
                Role::Planner,
                index.files.len(),
                0,
                request.max_tokens,
            ),
        };
        let done = match call.send(run).await {
            Ok(done) => done,
            Err(CallFailure::Budget(m)) => {
                let end =
                    AttemptEnd::failed(FailureKind::ProviderError, m.clone(), CallCost::default());
                engine
                    .finish_attempt(attempt, AttemptOutcome::Interrupted, end)
                    .await?;
                return Err(Error::BudgetExhausted(format!("planning not started: {m}")));
            }
            Err(CallFailure::Stopped) => {
                let end = AttemptEnd::failed(
                    FailureKind::ProviderError,
                    "stopped".into(),
                    CallCost::default(),
                );
                engine
                    .finish_attempt(attempt, AttemptOutcome::Interrupted, end)
                    .await?;
                return Err(Error::Stopped);
            }
            Err(CallFailure::Store(e)) => return Err(Error::Store(e)),
            Err(CallFailure::Provider(m)) => {
                let end =
                    AttemptEnd::failed(FailureKind::ProviderError, m.clone(), CallCost::default());
                engine
                    .finish_attempt(attempt, AttemptOutcome::Failed, end)
                    .await?;
                return Err(Error::Planning(format!(
                    "{}: {m}",
                    FailureKind::ProviderError
                )));
            }
        };
        if searches_only(&done.response.content) && !truncated(&done.response) {
            let end = AttemptEnd::paid(done.cost);
            engine
                .finish_attempt(attempt, AttemptOutcome::Passed, end)
                .await?;
            let (results, ran) = searches.answer(run, job.id, &done.response.content).await?;
            request.messages.push(Message {
                role: MessageRole::Assistant,
                content: echo_content(&done.response.content),
            });
            request.messages.push(Message {
                role: MessageRole::User,
                content: results,
            });
            if searches.exhausted() && request.tool_choice == Some(ToolChoice::Any) {
                request.tool_choice = Some(ToolChoice::Tool {
                    name: "submit_plan".to_owned(),
                });
            }
            if !ran {
                failures += 1;
                last_problem = format!(
                    "{}: the planner kept searching past limits.planner_searches = {} without \
                     submitting a plan",
                    FailureKind::NoUsableEdit,
                    config.limits.planner_searches
                );
            }
            continue;
        }
        let problem = match parse_plan(&done.response) {
            Ok(page) => {
                let end = AttemptEnd::paid(done.cost);
                engine
                    .finish_attempt(attempt, AttemptOutcome::Passed, end)
                    .await?;
                let more = page.more;
                pages.add(page);
                if !more {
                    return Ok(pages.plan);
                }
                if pages.count >= max_pages {
                    return Err(Error::Planning(format!(
                        "the planner did not finish its plan: {} page(s) ({} entries), each asking \
                         for more (limits.planner_pages = {max_pages})",
                        pages.count,
                        pages.plan.subtasks.len()
                    )));
                }
                request.messages.push(Message {
                    role: MessageRole::Assistant,
                    content: echo_content(&done.response.content),
                });
                request.messages.push(Message {
                    role: MessageRole::User,
                    content: tool_results(&done.response.content, &pages.progress(), false),
                });
                continue;
            }
            Err(p) => p,
        };
        failures += 1;
        let end = AttemptEnd::failed(problem.kind, problem.message.clone(), done.cost);
        engine
            .finish_attempt(attempt, AttemptOutcome::Failed, end)
            .await?;
        last_problem = format!("{}: {}", problem.kind, problem.message);
        tracing::info!(problem = %last_problem, "the planner's answer was unusable; asking again");
        request.messages.push(Message {
            role: MessageRole::Assistant,
            content: echo_content(&done.response.content),
        });
        let mut blocks = tool_results(&done.response.content, &problem.message, true);
        if blocks.is_empty() {
            blocks.push(ContentBlock::text(format!(
                "Your answer was not usable: {}. Call submit_plan.",
                problem.message
            )));
        }
        request.messages.push(Message {
            role: MessageRole::User,
            content: blocks,
        });
    }
    Err(Error::Planning(last_problem))
}

/// A tool result answering each tool call of a turn.
fn tool_results(content: &[ContentBlock], message: &str, is_error: bool) -> Vec<ContentBlock> {
    content
        .iter()
        .filter_map(|b| match b {
            ContentBlock::ToolUse { id, .. } => Some(ContentBlock::ToolResult {
                tool_use_id: id.clone(),
                content: message.to_owned(),
                is_error,
            }),
            _ => None,
        })
        .collect()
}

/// A plan gathered from the planner's pages.
#[derive(Debug, Default)]
struct PlanPages {
    plan: Plan,
    count: u32,
}

impl PlanPages {
    /// Adds a page: its entries and selectors after the earlier ones; notes
    /// joined.
    fn add(&mut self, page: Plan) {
        self.count += 1;
        if !page.notes.trim().is_empty() {
            if !self.plan.notes.is_empty() {
                self.plan.notes.push('\n');
            }
            self.plan.notes.push_str(&page.notes);
        }
        self.plan.subtasks.extend(page.subtasks);
        self.plan.selectors.extend(page.selectors);
        self.plan.more = false;
    }

    /// What the planner is told after a page: what is planned so far.
    fn progress(&self) -> String {
        let last: Vec<&str> = self
            .plan
            .subtasks
            .iter()
            .rev()
            .take(3)
            .map(|s| s.path.as_str())
            .collect();
        format!(
            "Page {} received. Planned so far: {} explicit entries (last: {}) and {} selector(s). \
             Call submit_plan with the next entries only (never repeat a planned path); \
             set more=false on the last page.",
            self.count,
            self.plan.subtasks.len(),
            last.join(", "),
            self.plan.selectors.len()
        )
    }
}

/// Whether the planner's server can be made to call one of several tools
/// (Anthropic's `any`, or `tool_choice: "required"` on an OpenAI-compatible
/// server). Elsewhere a turn offering `search` beside `submit_plan` would go
/// out as `auto`, where small local models answer in prose, so only
/// `submit_plan` is offered, forced by name.
fn forces_one_of_several_tools(config: &cadre_config::Config, provider: &str) -> bool {
    config.providers.get(provider).is_none_or(|p| {
        p.kind != cadre_config::ProviderKind::Openai
            || p.tool_choice == cadre_config::ToolChoiceMode::Required
    })
}

/// True when a turn called tools and none of them was `submit_plan` (a
/// search turn; unknown tools are answered as such).
fn searches_only(content: &[ContentBlock]) -> bool {
    let mut names = content.iter().filter_map(|b| match b {
        ContentBlock::ToolUse { name, .. } => Some(name.as_str()),
        _ => None,
    });
    let mut any_search = false;
    for name in names.by_ref() {
        if name == "submit_plan" {
            return false;
        }
        any_search |= name == SEARCH_TOOL;
    }
    any_search
}

fn truncated(response: &cadre_llm::types::MessageResponse) -> bool {
    response.stop_reason == Some(cadre_llm::types::StopReason::MaxTokens)
}
