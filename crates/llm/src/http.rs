//! Plumbing shared by the clients: building the reqwest client, turning a
//! response into a value or a classified [`Error`], reading headers.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, Error, Result, header_str};
use crate::types::RateLimitSnapshot;

/// `User-Agent` sent by every client.
const USER_AGENT: &str = concat!("cadre/", env!("CARGO_PKG_VERSION"));

/// Builds the HTTP client. `timeout` bounds each read between body chunks
/// (so long streams live as long as they keep producing); non-streaming
/// calls additionally get it as a whole-request timeout. Redirects are not
/// followed: a redirect to another host would carry the API key there.
pub(crate) fn build_client(
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client> {
    if timeout.is_zero() || connect_timeout.is_zero() {
        return Err(Error::InvalidConfig {
            message: "timeouts must be greater than zero".into(),
        });
    }
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(connect_timeout)
        .read_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| Error::InvalidConfig {
            message: format!("cannot build HTTP client: {e}"),
        })
}

/// Validates and normalises a base URL (no trailing slash).
pub(crate) fn parse_base_url(base_url: &str) -> Result<String> {
    let trimmed = base_url.trim().trim_end_matches('/');
    let url = parse_url(trimmed)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidConfig {
            message: format!("base URL {trimmed:?} must use http or https"),
        });
    }
    Ok(trimmed.to_owned())
}

/// Parses an endpoint's URL.
pub(crate) fn parse_url(url: &str) -> Result<reqwest::Url> {
    reqwest::Url::parse(url).map_err(|e| Error::InvalidConfig {
        message: format!("invalid base URL {url:?}: {e}"),
    })
}

/// Sends `request`; a non-2xx status becomes [`Error::Api`] with the body's
/// message, kind and the retry headers.
pub(crate) async fn execute(
    request: reqwest::RequestBuilder,
    request_id_header: &str,
) -> Result<reqwest::Response> {
    let response = request
        .send()
        .await
        .map_err(|e| Error::from_reqwest(e, false))?;
    let status = response.status();
    if status.is_success() {
        tracing::debug!(
            status = status.as_u16(),
            request_id = header_str(response.headers(), request_id_header),
            "response headers received"
        );
        return Ok(response);
    }
    let headers = response.headers().clone();
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(e) => {
            tracing::debug!(error = %e, "could not read error body");
            Bytes::new()
        }
    };
    let error = ApiError::from_response(status.as_u16(), &headers, &body, request_id_header);
    tracing::debug!(
        status = error.status,
        kind = %error.kind,
        request_id = error.request_id.as_deref(),
        "API error response"
    );
    Err(Error::Api(error))
}

/// Reads the whole body. A cut body is a (retryable) connection error.
pub(crate) async fn read_body(response: reqwest::Response) -> Result<Bytes> {
    response
        .bytes()
        .await
        .map_err(|e| Error::from_reqwest(e, true))
}

/// Reads and decodes a JSON body.
pub(crate) async fn read_json<T: DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    let body = read_body(response).await?;
    serde_json::from_slice(&body).map_err(|e| Error::decode(e, &body))
}

/// Serialises a request body once, so retries re-send the same bytes.
pub(crate) fn to_body<T: serde::Serialize>(value: &T) -> Result<Bytes> {
    serde_json::to_vec(value)
        .map(Bytes::from)
        .map_err(|e| Error::InvalidConfig {
            message: format!("request cannot be serialised: {e}"),
        })
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    header_str(headers, name).and_then(|v| v.parse().ok())
}

fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    header_str(headers, name).map(str::to_owned)
}

/// The `anthropic-ratelimit-*` headers (names written out: read on every
/// answer, they are not formatted each time).
pub(crate) fn anthropic_rate_limits(h: &HeaderMap) -> RateLimitSnapshot {
    macro_rules! name {
        ($suffix:literal) => {
            concat!("anthropic-ratelimit-", $suffix)
        };
    }
    RateLimitSnapshot {
        requests_limit: header_u64(h, name!("requests-limit")),
        requests_remaining: header_u64(h, name!("requests-remaining")),
        requests_reset: header_string(h, name!("requests-reset")),
        tokens_limit: header_u64(h, name!("tokens-limit")),
        tokens_remaining: header_u64(h, name!("tokens-remaining")),
        tokens_reset: header_string(h, name!("tokens-reset")),
        input_tokens_limit: header_u64(h, name!("input-tokens-limit")),
        input_tokens_remaining: header_u64(h, name!("input-tokens-remaining")),
        input_tokens_reset: header_string(h, name!("input-tokens-reset")),
        output_tokens_limit: header_u64(h, name!("output-tokens-limit")),
        output_tokens_remaining: header_u64(h, name!("output-tokens-remaining")),
        output_tokens_reset: header_string(h, name!("output-tokens-reset")),
    }
}

/// OpenAI-style `x-ratelimit-*` headers (resets are durations like `"1s"`,
/// kept verbatim).
pub(crate) fn openai_rate_limits(h: &HeaderMap) -> RateLimitSnapshot {
    RateLimitSnapshot {
        requests_limit: header_u64(h, "x-ratelimit-limit-requests"),
        requests_remaining: header_u64(h, "x-ratelimit-remaining-requests"),
        requests_reset: header_string(h, "x-ratelimit-reset-requests"),
        tokens_limit: header_u64(h, "x-ratelimit-limit-tokens"),
        tokens_remaining: header_u64(h, "x-ratelimit-remaining-tokens"),
        tokens_reset: header_string(h, "x-ratelimit-reset-tokens"),
        ..RateLimitSnapshot::default()
    }
}

/// The request-id header, if any.
pub(crate) fn request_id(headers: &HeaderMap, name: &str) -> Option<String> {
    header_string(headers, name)
}
