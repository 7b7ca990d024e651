//! The request log and its aggregate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Role;

/// One request the sim received (or one request inside a batch).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedRequest {
    /// Arrival order, from 1.
    pub seq: u64,
    /// HTTP method (`BATCH` for a request inside a Message Batch).
    pub method: String,
    /// HTTP path (`/v1/messages/batches/{id}#custom_id` for batch items).
    pub path: String,
    /// Model id as sent, once the body parsed.
    pub model: Option<String>,
    /// The role inferred from the tools, once the body validated.
    pub role: Option<Role>,
    /// Worker requests: the subtask path.
    pub subtask_path: Option<String>,
    /// Worker requests: 1 + the number of `<feedback>` blocks (the attempt number).
    pub attempt: Option<u32>,
    /// Worker requests: this model's attempt number at this path (1, 2, ...).
    pub model_attempt: Option<u32>,
    /// Worker requests: how many assistant turns came before (tool loop turn).
    pub turn: Option<u32>,
    /// Worker requests: the `<feedback>` messages of the prompt, in order,
    /// each cut at 300 characters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feedback: Vec<String>,
    /// What the model did (`ok`, `syntax`, `read`, `approved 2/3`, `text`, ...).
    pub outcome: Option<String>,
    /// The fault injected into this request, if any.
    pub fault: Option<String>,
    /// `stream: true`.
    pub stream: bool,
    /// SHA-256 (hex) of the request body (for `POST /v1/messages`, without a
    /// trailing `stream` member: a streamed send is the same request).
    pub body_sha256: String,
    /// HTTP status sent.
    pub status: u16,
    /// True when a well-formed response was sent in full (false for errors,
    /// dropped connections, malformed bodies, streams cut short or abandoned).
    pub complete: bool,
    /// `usage.input_tokens` (uncached remainder).
    pub input_tokens: u64,
    /// `usage.output_tokens`.
    pub output_tokens: u64,
    /// `usage.cache_read_input_tokens`.
    pub cache_read_input_tokens: u64,
    /// `usage.cache_creation_input_tokens`.
    pub cache_creation_input_tokens: u64,
    /// The `request-id` header sent.
    pub request_id: String,
    /// Batch items: the batch id.
    pub batch_id: Option<String>,
    /// Batch items: the `custom_id`.
    pub custom_id: Option<String>,
    /// Milliseconds since the server started (sim clock).
    pub at_ms: u64,
}

/// Aggregate counts over the request log (`GET /sim/stats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Requests logged.
    pub requests: u64,
    /// Count per HTTP status.
    pub by_status: BTreeMap<u16, u64>,
    /// Count per role (message requests only).
    pub by_role: BTreeMap<String, u64>,
    /// Count per model.
    pub by_model: BTreeMap<String, u64>,
    /// Count per injected fault kind.
    pub faults: BTreeMap<String, u64>,
    /// Count per outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Sum of uncached input tokens.
    pub input_tokens: u64,
    /// Sum of output tokens.
    pub output_tokens: u64,
    /// Sum of cache reads.
    pub cache_read_input_tokens: u64,
    /// Sum of cache writes.
    pub cache_creation_input_tokens: u64,
}

impl SimStats {
    /// Aggregates a log.
    pub fn from_log(log: &[LoggedRequest]) -> Self {
        let mut s = SimStats::default();
        for r in log {
            s.requests += 1;
            *s.by_status.entry(r.status).or_default() += 1;
            if let Some(role) = r.role {
                *s.by_role.entry(role.as_str().to_string()).or_default() += 1;
            }
            if let Some(m) = &r.model {
                *s.by_model.entry(m.clone()).or_default() += 1;
            }
            if let Some(f) = &r.fault {
                *s.faults.entry(f.clone()).or_default() += 1;
            }
            if let Some(o) = &r.outcome {
                *s.outcomes.entry(o.clone()).or_default() += 1;
            }
            s.input_tokens += r.input_tokens;
            s.output_tokens += r.output_tokens;
            s.cache_read_input_tokens += r.cache_read_input_tokens;
            s.cache_creation_input_tokens += r.cache_creation_input_tokens;
        }
        s
    }
}
