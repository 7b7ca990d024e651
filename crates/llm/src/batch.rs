//! Message Batches (`/v1/messages/batches`): create, get, list, cancel,
//! delete, and the JSONL results. Results are not in request order; match
//! them by `custom_id`.

use reqwest::Method;
use reqwest::header::ACCEPT;
use serde::{Deserialize, Serialize};

use crate::anthropic::{AnthropicClient, Page};
use crate::error::{ApiErrorKind, Error, ErrorBody, Result};
use crate::types::{MessageRequest, MessageResponse};
use crate::{http, retry};

/// One request in a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchRequest {
    /// Caller's id, echoed in the result line.
    pub custom_id: String,
    /// Non-streaming Messages params (`stream` is dropped).
    pub params: MessageRequest,
}

/// `processing_status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// Still running.
    InProgress,
    /// Cancel requested, not finished.
    Canceling,
    /// Done; `results_url` is set.
    Ended,
    /// A status this client does not know.
    #[serde(other)]
    Other,
}

/// `request_counts`: they sum to the total; all but `processing` stay 0
/// until the whole batch ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRequestCounts {
    /// Not finished yet.
    #[serde(default)]
    pub processing: u64,
    /// Succeeded.
    #[serde(default)]
    pub succeeded: u64,
    /// Errored.
    #[serde(default)]
    pub errored: u64,
    /// Canceled.
    #[serde(default)]
    pub canceled: u64,
    /// Expired (unfinished after 24 h).
    #[serde(default)]
    pub expired: u64,
}

/// The `message_batch` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageBatch {
    /// `msgbatch_...`.
    pub id: String,
    /// Where processing stands.
    pub processing_status: BatchStatus,
    /// Per-outcome counts.
    #[serde(default)]
    pub request_counts: BatchRequestCounts,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// RFC 3339; unfinished requests expire then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// RFC 3339, once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    /// RFC 3339, once a cancel was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancel_initiated_at: Option<String>,
    /// RFC 3339, once archived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archived_at: Option<String>,
    /// JSONL results, set once ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results_url: Option<String>,
}

/// One page of `GET /v1/messages/batches`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchList {
    /// Batches, newest first.
    pub data: Vec<MessageBatch>,
    /// More pages after `last_id`.
    pub has_more: bool,
    /// First id on this page.
    pub first_id: Option<String>,
    /// Cursor for the next page (`after_id`).
    pub last_id: Option<String>,
}

/// An `errored` result's error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchError {
    /// Classified `error.type` (no HTTP status exists for batch items).
    pub kind: ApiErrorKind,
    /// The API's message.
    pub message: String,
    /// The item's request id.
    pub request_id: Option<String>,
}

impl Serialize for BatchError {
    /// The wire shape `{"type":"error","error":{"type","message"},"request_id"}`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "type": "error",
            "error": {"type": self.kind.as_str(), "message": self.message},
            "request_id": self.request_id,
        })
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for BatchError {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let body = ErrorBody::deserialize(d)?;
        let (kind, message) = match body.error {
            Some(detail) => {
                let t = detail.kind.unwrap_or_default();
                (
                    ApiErrorKind::from_type(&t).unwrap_or(ApiErrorKind::Other(t)),
                    detail.message.unwrap_or_default(),
                )
            }
            None => (ApiErrorKind::Other(String::new()), String::new()),
        };
        Ok(BatchError {
            kind,
            message,
            request_id: body.request_id,
        })
    }
}

/// The outcome of one batch request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum BatchResult {
    /// The message, as `POST /v1/messages` would have returned it.
    Succeeded {
        /// The response.
        message: MessageResponse,
    },
    /// The request failed.
    Errored {
        /// Why.
        error: BatchError,
    },
    /// Canceled before it ran.
    Canceled,
    /// Not processed within 24 h.
    Expired,
    /// A result type this client does not know.
    #[serde(other)]
    Unknown,
}

/// One line of the results JSONL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchResultLine {
    /// The request's `custom_id`.
    pub custom_id: String,
    /// What happened to it.
    pub result: BatchResult,
}

#[derive(Serialize)]
struct CreateBody<'a> {
    requests: &'a [BatchRequest],
}

#[derive(Deserialize)]
struct Deleted {
    id: String,
}

/// Parses a results JSONL body (blank lines skipped).
///
/// # Errors
/// [`Error::Decode`] naming the first bad line.
pub fn parse_batch_results(body: &[u8]) -> Result<Vec<BatchResultLine>> {
    body.split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| {
            serde_json::from_slice(line).map_err(|e| Error::Decode {
                message: format!("results line {}: {e}", i + 1),
                body_snippet: crate::error::snippet(line),
            })
        })
        .collect()
}

impl AnthropicClient {
    /// `POST /v1/messages/batches`.
    ///
    /// # Errors
    /// Any [`Error`].
    pub async fn create_batch(&self, requests: Vec<BatchRequest>) -> Result<MessageBatch> {
        let requests: Vec<BatchRequest> = requests
            .into_iter()
            .map(|mut r| {
                r.params.stream = None;
                r
            })
            .collect();
        let body = http::to_body(&CreateBody {
            requests: &requests,
        })?;
        drop(requests);
        let url = self.url("/v1/messages/batches");
        Ok(self
            .call_json("create_batch", Method::POST, &url, Some(body))
            .await?
            .0)
    }

    /// `GET /v1/messages/batches/{id}`.
    ///
    /// # Errors
    /// Any [`Error`] (`NotFound` for an unknown id).
    pub async fn get_batch(&self, id: &str) -> Result<MessageBatch> {
        let url = self.batch_url(id, "")?;
        Ok(self
            .call_json("get_batch", Method::GET, &url, None)
            .await?
            .0)
    }

    /// `GET /v1/messages/batches?limit=&after_id=` (one page).
    ///
    /// # Errors
    /// Any [`Error`].
    pub async fn list_batches(
        &self,
        limit: Option<u32>,
        after_id: Option<&str>,
    ) -> Result<BatchList> {
        let mut url = self.parse_url("/v1/messages/batches")?;
        if let Some(limit) = limit {
            url.query_pairs_mut()
                .append_pair("limit", &limit.to_string());
        }
        if let Some(after) = after_id {
            url.query_pairs_mut().append_pair("after_id", after);
        }
        let (page, _): (Page<MessageBatch>, _) = self
            .call_json("list_batches", Method::GET, url.as_str(), None)
            .await?;
        Ok(BatchList {
            data: page.data,
            has_more: page.has_more,
            first_id: page.first_id,
            last_id: page.last_id,
        })
    }

    /// `POST /v1/messages/batches/{id}/cancel`; the batch becomes `canceling`.
    ///
    /// # Errors
    /// Any [`Error`].
    pub async fn cancel_batch(&self, id: &str) -> Result<MessageBatch> {
        let url = self.batch_url(id, "/cancel")?;
        Ok(self
            .call_json("cancel_batch", Method::POST, &url, None)
            .await?
            .0)
    }

    /// `DELETE /v1/messages/batches/{id}` (only once ended).
    ///
    /// # Errors
    /// Any [`Error`].
    pub async fn delete_batch(&self, id: &str) -> Result<()> {
        let url = self.batch_url(id, "")?;
        let (deleted, _): (Deleted, _) = self
            .call_json("delete_batch", Method::DELETE, &url, None)
            .await?;
        tracing::debug!(batch = %deleted.id, "batch deleted");
        Ok(())
    }

    /// The results of an ended batch: its `results_url`, or the canonical
    /// `/v1/messages/batches/{id}/results` when the object has none (the
    /// server then answers with its own error if the batch is not done).
    ///
    /// # Errors
    /// Any [`Error`]; [`Error::Decode`] for a bad JSONL line.
    pub async fn batch_results(&self, batch: &MessageBatch) -> Result<Vec<BatchResultLine>> {
        match &batch.results_url {
            Some(url) => self.batch_results_from_url(url).await,
            None => {
                let url = self.batch_url(&batch.id, "/results")?;
                self.batch_results_from_url(&url).await
            }
        }
    }

    /// Fetches and parses a results URL. A path (`/v1/...`) is joined to
    /// the base URL; an absolute URL must have the base URL's origin, so the
    /// API key is never sent to another host.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a foreign origin; any other [`Error`].
    pub async fn batch_results_from_url(&self, results_url: &str) -> Result<Vec<BatchResultLine>> {
        let url = self.resolve_results_url(results_url)?;
        let (body, _) = retry::run(&self.settings().retry, "batch_results", |n| {
            let url = url.clone();
            async move {
                let rb = self
                    .request(Method::GET, url.as_str(), n)
                    .header(ACCEPT, "application/binary")
                    .timeout(self.timeout());
                let response = http::execute(rb, "request-id").await?;
                http::read_body(response).await
            }
        })
        .await?;
        parse_batch_results(&body)
    }

    fn parse_url(&self, path: &str) -> Result<reqwest::Url> {
        reqwest::Url::parse(&self.url(path)).map_err(|e| Error::InvalidConfig {
            message: format!("bad URL for {path}: {e}"),
        })
    }

    fn batch_url(&self, id: &str, suffix: &str) -> Result<String> {
        let mut url = self.parse_url("/v1/messages/batches")?;
        url.path_segments_mut()
            .map_err(|()| Error::InvalidConfig {
                message: "base URL cannot have a path".into(),
            })?
            .push(id);
        Ok(format!("{url}{suffix}"))
    }

    fn resolve_results_url(&self, results_url: &str) -> Result<reqwest::Url> {
        let base = self.parse_url("")?;
        if results_url.starts_with('/') {
            let mut joined = base.clone();
            let (path, query) = match results_url.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (results_url, None),
            };
            joined.set_path(&format!("{}{path}", base.path().trim_end_matches('/')));
            joined.set_query(query);
            return Ok(joined);
        }
        let url = reqwest::Url::parse(results_url).map_err(|e| Error::InvalidConfig {
            message: format!("bad results_url {results_url:?}: {e}"),
        })?;
        if url.origin() != base.origin() {
            return Err(Error::InvalidConfig {
                message: format!(
                    "results_url {results_url:?} is not on the API origin {}; refusing to send the API key there",
                    self.base_url()
                ),
            });
        }
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    #[test]
    fn results_lines_parse_every_shape() {
        let body = br#"{"custom_id":"b","result":{"type":"errored","error":{"type":"error","error":{"type":"invalid_request_error","message":"bad"},"request_id":"req_2"}}}

{"custom_id":"c","result":{"type":"canceled"}}
{"custom_id":"d","result":{"type":"expired"}}
{"custom_id":"e","result":{"type":"from_the_future","x":1}}
"#;
        let lines = parse_batch_results(body).unwrap();
        assert_eq!(
            lines,
            vec![
                BatchResultLine {
                    custom_id: "b".into(),
                    result: BatchResult::Errored {
                        error: BatchError {
                            kind: ApiErrorKind::InvalidRequest,
                            message: "bad".into(),
                            request_id: Some("req_2".into())
                        }
                    }
                },
                BatchResultLine {
                    custom_id: "c".into(),
                    result: BatchResult::Canceled
                },
                BatchResultLine {
                    custom_id: "d".into(),
                    result: BatchResult::Expired
                },
                BatchResultLine {
                    custom_id: "e".into(),
                    result: BatchResult::Unknown
                },
            ]
        );
    }

    #[test]
    fn bad_line_names_its_number() {
        let err = parse_batch_results(
            b"{\"custom_id\":\"a\",\"result\":{\"type\":\"canceled\"}}\n{oops\n",
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Decode { message, .. } if message.starts_with("results line 2")),
            "{err}"
        );
    }
}
