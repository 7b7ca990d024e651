//! `POST /v1/messages/count_tokens`: the same validation as a message, then
//! the prompt's token count by the sim's convention.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::api_error::ApiError;
use crate::ids::sha256_hex;
use crate::log::LoggedRequest;
use crate::request::{Purpose, parse_request};
use crate::server::SimState;
use crate::server::http::{MESSAGES_LIMIT, check_auth, json_value, parse_json, read_body};

pub(super) async fn count_tokens(
    State(sim): State<SimState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut rec = sim.begin("POST", "/v1/messages/count_tokens");
    let result = sim.handle_count_tokens(&mut rec, &headers, body).await;
    sim.reply(rec, result)
}

impl SimState {
    async fn handle_count_tokens(
        &self,
        rec: &mut LoggedRequest,
        headers: &HeaderMap,
        body: Body,
    ) -> Result<Response, ApiError> {
        let bytes = read_body(body, MESSAGES_LIMIT).await?;
        rec.body_sha256 = sha256_hex(&bytes);
        check_auth(headers)?;
        let value = parse_json(&bytes)?;
        let (req, _model) = parse_request(
            value,
            &self.inner.models,
            Purpose::CountTokens,
            &self.inner.secret,
        )?;
        rec.model = Some(req.model.clone());
        let tokens = req.input_tokens();
        rec.input_tokens = tokens;
        rec.complete = true;
        Ok(json_value(StatusCode::OK, &json!({"input_tokens": tokens})))
    }
}
