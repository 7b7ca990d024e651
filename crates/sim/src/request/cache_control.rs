//! `cache_control` rules: the shape of a breakpoint, its TTL, at most four
//! of them, and no 1h breakpoint after a 5m one (in tools, system, messages
//! order).

use serde_json::Value;

use super::Ttl;
use crate::api_error::ApiError;

/// Running state of the cache_control checks (count and TTL order).
#[derive(Default)]
pub(super) struct Breakpoints {
    pub(super) count: usize,
    seen_5m: bool,
}

impl Breakpoints {
    pub(super) fn check(&mut self, at: &str, cc: Option<&Value>) -> Result<Option<Ttl>, ApiError> {
        let Some(cc) = cc else { return Ok(None) };
        if cc.is_null() {
            return Ok(None);
        }
        let obj = cc.as_object().ok_or_else(|| {
            ApiError::invalid(format!("{at}.cache_control: Input should be an object"))
        })?;
        if obj.get("type").and_then(Value::as_str) != Some("ephemeral") {
            return Err(ApiError::invalid(format!(
                "{at}.cache_control.type: Input should be 'ephemeral'"
            )));
        }
        for key in obj.keys() {
            if key != "type" && key != "ttl" {
                return Err(ApiError::invalid(format!(
                    "{at}.cache_control.{key}: Extra inputs are not permitted"
                )));
            }
        }
        let ttl = match obj.get("ttl") {
            None | Some(Value::Null) => Ttl::FiveMinutes,
            Some(Value::String(s)) if s == "5m" => Ttl::FiveMinutes,
            Some(Value::String(s)) if s == "1h" => Ttl::OneHour,
            Some(_) => {
                return Err(ApiError::invalid(format!(
                    "{at}.cache_control.ttl: Input should be '5m' or '1h'"
                )));
            }
        };
        match ttl {
            Ttl::FiveMinutes => self.seen_5m = true,
            Ttl::OneHour if self.seen_5m => {
                return Err(ApiError::invalid(
                    "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control \
                     block. Note that blocks are processed in the following order: `tools`, \
                     `system`, `messages`.",
                ));
            }
            Ttl::OneHour => {}
        }
        self.count += 1;
        Ok(Some(ttl))
    }
}
