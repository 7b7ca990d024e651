//! Fault injection: scenario `[[faults]]`, runtime `POST /sim/faults`, and
//! the per-request `x-sim-fault` header.

use std::collections::HashMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Role;
use crate::scenario::OutcomeKind;

/// What a fault does to the request it hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// HTTP 429 `rate_limit_error` with `retry-after`.
    RateLimit,
    /// HTTP 529 `overloaded_error` (with `retry-after` when given).
    Overloaded,
    /// HTTP 500 `api_error`.
    ServerError,
    /// Waits `delay_ms`, then answers normally.
    Slow,
    /// Sends the status, headers and part of the body, then aborts the connection.
    DropConnection,
    /// HTTP 200 with a body (or SSE event) that is not valid JSON.
    MalformedJson,
    /// HTTP 200 SSE stream that ends with `event: error` (`overloaded_error`);
    /// a non-streaming request gets a 529 instead.
    StreamError,
    /// Model output: `stop_reason: max_tokens`, tool input cut off.
    Truncated,
    /// Model output: tool input violating the schema.
    Schema,
    /// Model output: calls a tool the role does not expect.
    WrongTool,
    /// Model output: `content: []`.
    Empty,
    /// Model output: text only, no tool call.
    NoTool,
}

impl FaultKind {
    /// The snake_case name used in scenarios, headers and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::RateLimit => "rate_limit",
            FaultKind::Overloaded => "overloaded",
            FaultKind::ServerError => "server_error",
            FaultKind::Slow => "slow",
            FaultKind::DropConnection => "drop_connection",
            FaultKind::MalformedJson => "malformed_json",
            FaultKind::StreamError => "stream_error",
            FaultKind::Truncated => "truncated",
            FaultKind::Schema => "schema",
            FaultKind::WrongTool => "wrong_tool",
            FaultKind::Empty => "empty",
            FaultKind::NoTool => "no_tool",
        }
    }

    /// The model-output kinds map onto the worker outcome kinds.
    pub(crate) fn as_outcome(self) -> Option<OutcomeKind> {
        match self {
            FaultKind::Truncated => Some(OutcomeKind::Truncated),
            FaultKind::Schema => Some(OutcomeKind::Schema),
            FaultKind::WrongTool => Some(OutcomeKind::WrongTool),
            FaultKind::Empty => Some(OutcomeKind::Empty),
            FaultKind::NoTool => Some(OutcomeKind::NoTool),
            _ => None,
        }
    }
}

impl FromStr for FaultKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.trim().to_string())).map_err(|_| {
            format!(
                "unknown fault kind {s:?}: expected rate_limit, overloaded, server_error, slow, \
                 drop_connection, malformed_json, stream_error, truncated, schema, wrong_tool, \
                 empty or no_tool"
            )
        })
    }
}

/// Which requests a fault applies to; every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultMatch {
    /// `planner | worker | reviewer | other`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// Model id as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Subtask path (workers) or a reviewed path (reviewers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// One `[[faults]]` table (also the JSON body of `POST /sim/faults`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// What to do.
    pub kind: FaultKind,
    /// Which requests.
    #[serde(default, rename = "match")]
    pub matches: FaultMatch,
    /// How many matching requests it hits.
    #[serde(default = "one")]
    pub times: u32,
    /// Skip this many matching requests first.
    #[serde(default)]
    pub after: u32,
    /// `retry-after` seconds for rate_limit / overloaded (default 1 for rate_limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// Delay for `slow`.
    #[serde(default)]
    pub delay_ms: u64,
}

fn one() -> u32 {
    1
}

/// What the server needs to know about a request to match faults.
#[derive(Clone, Debug)]
pub(crate) struct FaultTarget<'a> {
    pub(crate) role: Role,
    pub(crate) model: &'a str,
    pub(crate) paths: &'a [String],
}

/// A fault that fires on this request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Firing {
    pub(crate) kind: FaultKind,
    pub(crate) retry_after_secs: Option<u64>,
    pub(crate) delay_ms: u64,
}

#[derive(Clone, Debug, Serialize)]
pub(crate) struct FaultState {
    #[serde(flatten)]
    pub(crate) spec: FaultSpec,
    pub(crate) matched: u32,
    pub(crate) applied: u32,
}

/// All configured faults with their counters.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    faults: Vec<FaultState>,
    /// (kind, body sha256) -> how many times a header fault already fired.
    header_hits: HashMap<(FaultKind, String), u32>,
}

impl FaultBook {
    pub(crate) fn new(specs: &[FaultSpec]) -> Self {
        let mut book = Self::default();
        for s in specs {
            book.add(s.clone());
        }
        book
    }

    pub(crate) fn add(&mut self, spec: FaultSpec) {
        self.faults.push(FaultState {
            spec,
            matched: 0,
            applied: 0,
        });
    }

    pub(crate) fn clear(&mut self) {
        self.faults.clear();
        self.header_hits.clear();
    }

    pub(crate) fn snapshot(&self) -> Vec<FaultState> {
        self.faults.clone()
    }

    /// The first configured fault that fires for this request. Faults are
    /// checked in order; each one that matches counts the request, and the
    /// search stops at the first that fires.
    pub(crate) fn fire(&mut self, target: &FaultTarget<'_>) -> Option<Firing> {
        for state in &mut self.faults {
            if !matches(&state.spec.matches, target) {
                continue;
            }
            state.matched += 1;
            if state.matched > state.spec.after && state.applied < state.spec.times {
                state.applied += 1;
                return Some(Firing {
                    kind: state.spec.kind,
                    retry_after_secs: state.spec.retry_after_secs,
                    delay_ms: state.spec.delay_ms,
                });
            }
        }
        None
    }

    /// A header-requested fault fires for the first `times` requests with the
    /// same body, so a client that retries the identical request gets through.
    pub(crate) fn fire_header(&mut self, kind: FaultKind, body_sha: &str, times: u32) -> bool {
        let hits = self
            .header_hits
            .entry((kind, body_sha.to_string()))
            .or_insert(0);
        if *hits < times {
            *hits += 1;
            true
        } else {
            false
        }
    }
}

fn matches(m: &FaultMatch, t: &FaultTarget<'_>) -> bool {
    m.role.is_none_or(|r| r == t.role)
        && m.model.as_deref().is_none_or(|model| model == t.model)
        && m.path
            .as_deref()
            .is_none_or(|p| t.paths.iter().any(|tp| tp == p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_after_count_matching_requests_only() {
        let spec = FaultSpec {
            kind: FaultKind::RateLimit,
            matches: FaultMatch {
                role: Some(Role::Worker),
                ..FaultMatch::default()
            },
            times: 2,
            after: 1,
            retry_after_secs: Some(3),
            delay_ms: 0,
        };
        let mut book = FaultBook::new(&[spec]);
        let paths = vec!["a.py".to_string()];
        let worker = FaultTarget {
            role: Role::Worker,
            model: "m",
            paths: &paths,
        };
        let planner = FaultTarget {
            role: Role::Planner,
            model: "m",
            paths: &[],
        };
        assert_eq!(book.fire(&planner), None);
        assert_eq!(book.fire(&worker), None); // skipped by `after`
        assert_eq!(
            book.fire(&worker).map(|f| f.kind),
            Some(FaultKind::RateLimit)
        );
        assert_eq!(
            book.fire(&worker).map(|f| f.retry_after_secs),
            Some(Some(3))
        );
        assert_eq!(book.fire(&worker), None); // `times` used up
    }

    #[test]
    fn header_faults_fire_once_per_body_by_default() {
        let mut book = FaultBook::default();
        assert!(book.fire_header(FaultKind::RateLimit, "abc", 1));
        assert!(!book.fire_header(FaultKind::RateLimit, "abc", 1));
        assert!(book.fire_header(FaultKind::RateLimit, "def", 1));
    }

    #[test]
    fn kinds_parse_from_header_strings() {
        assert_eq!(
            "drop_connection".parse::<FaultKind>(),
            Ok(FaultKind::DropConnection)
        );
        assert!("nope".parse::<FaultKind>().is_err());
    }
}
