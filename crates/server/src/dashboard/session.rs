//! Browser sessions for the dashboard when the daemon has a token.
//!
//! `POST /login` with the right token creates a session: a random id sent
//! once as an `HttpOnly; SameSite=Strict` cookie, and a random CSRF token the
//! page's script reads from `GET /ui/session` (same-origin only: the daemon
//! sends no CORS headers) and sends back as `X-CSRF-Token` on every
//! state-changing request. The daemon keeps only SHA-256 digests of the
//! session ids, in memory: a restart logs everyone out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Name of the session cookie.
pub(crate) const COOKIE: &str = "cadre_session";
/// Header carrying the CSRF token on state-changing requests.
pub(crate) const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; the oldest goes first.
const MAX_SESSIONS: usize = 1024;

/// A logged-in browser.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    /// The token state-changing requests must carry.
    pub(crate) csrf: String,
    created: Instant,
}

/// The live sessions, by digest of their id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    inner: Mutex<HashMap<[u8; 32], Session>>,
}

/// 32 random bytes from the thread's CSPRNG, as hex.
fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// Opens a session; returns its id (for the cookie only).
    pub(crate) fn create(&self) -> String {
        let id = random_hex();
        let session = Session {
            csrf: random_hex(),
            created: Instant::now(),
        };
        if let Ok(mut map) = self.inner.lock() {
            map.retain(|_, s| s.created.elapsed() < LIFETIME);
            if map.len() >= MAX_SESSIONS
                && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
            {
                map.remove(&oldest);
            }
            map.insert(digest(&id), session);
        }
        id
    }

    /// The session the request's cookie names, if it is live.
    pub(crate) fn find(&self, headers: &HeaderMap) -> Option<Session> {
        let id = cookie_value(headers, COOKIE)?;
        let map = self.inner.lock().ok()?;
        map.get(&digest(&id))
            .filter(|s| s.created.elapsed() < LIFETIME)
            .cloned()
    }

    /// Ends the session the request's cookie names.
    pub(crate) fn remove(&self, headers: &HeaderMap) {
        if let Some(id) = cookie_value(headers, COOKIE)
            && let Ok(mut map) = self.inner.lock()
        {
            map.remove(&digest(&id));
        }
    }
}

/// Whether the request carries `session`'s CSRF token (constant time).
pub(crate) fn csrf_ok(session: &Session, headers: &HeaderMap) -> bool {
    headers
        .get(CSRF_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|presented| {
            presented.len() == session.csrf.len()
                && bool::from(presented.as_bytes().ct_eq(session.csrf.as_bytes()))
        })
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `Set-Cookie` value opening a session.
pub(crate) fn set_cookie(id: &str) -> String {
    format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        LIFETIME.as_secs()
    )
}

/// `Set-Cookie` value ending a session.
pub(crate) fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with_cookie(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn sessions_are_found_by_cookie_and_removed() {
        let sessions = Sessions::default();
        let id = sessions.create();
        assert_eq!(id.len(), 64);
        let headers = with_cookie(&format!("other=1; {COOKIE}={id}"));
        let session = sessions.find(&headers).unwrap();
        assert_ne!(session.csrf, id);
        assert!(
            sessions
                .find(&with_cookie(&format!("{COOKIE}=x{id}")))
                .is_none()
        );
        assert!(sessions.find(&HeaderMap::new()).is_none());
        sessions.remove(&headers);
        assert!(sessions.find(&headers).is_none());
    }

    #[test]
    fn csrf_must_match_exactly() {
        let sessions = Sessions::default();
        let id = sessions.create();
        let session = sessions
            .find(&with_cookie(&format!("{COOKIE}={id}")))
            .unwrap();
        let mut headers = HeaderMap::new();
        assert!(!csrf_ok(&session, &headers));
        headers.insert(CSRF_HEADER, HeaderValue::from_static("nope"));
        assert!(!csrf_ok(&session, &headers));
        headers.insert(CSRF_HEADER, HeaderValue::from_str(&session.csrf).unwrap());
        assert!(csrf_ok(&session, &headers));
    }

    #[test]
    fn cookies_carry_the_flags() {
        let cookie = set_cookie("abc");
        assert!(cookie.starts_with("cadre_session=abc;"), "{cookie}");
        for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(flag), "{cookie}");
        }
        assert!(clear_cookie().contains("Max-Age=0"));
    }
}
