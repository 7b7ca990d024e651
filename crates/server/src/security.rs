//! Who may talk to the daemon and which workspaces it may touch.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use cadre_core::checkout::{RepoLocation, job_git_source, repo_location};
use cadre_store::JobRecord;
use cadre_types::api::ErrorType;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::dashboard::{self, session};
use crate::error::ApiError;
use crate::state::AppState;
use crate::{Error, Result};

/// The bearer token clients must present. Its `Debug` is redacted and it is
/// never logged.
#[derive(Clone)]
pub struct Token {
    /// SHA-256 of the secret: comparing fixed-size digests in constant time
    /// hides the secret's length as well as its content.
    digest: [u8; 32],
}

impl Token {
    /// A token from its secret text; [`Error::Settings`] when empty.
    pub fn new(secret: &str) -> Result<Token> {
        if secret.is_empty() {
            return Err(Error::Settings(
                "CADRE_TOKEN is set but empty; unset it or give it a value".to_owned(),
            ));
        }
        Ok(Token {
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    /// Whether `presented` is the secret, in time independent of where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        let other: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&other).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// Refuses a non-loopback listen address without a token ([`Error::Bind`]).
pub fn check_bind(addr: &SocketAddr, token: Option<&Token>) -> Result<()> {
    if addr.ip().is_loopback() || token.is_some() {
        Ok(())
    } else {
        Err(Error::Bind {
            addr: addr.to_string(),
        })
    }
}

/// Middleware: with a token, every request but `GET /healthz` and the
/// dashboard's login form and assets must carry `Authorization: Bearer
/// <token>` or a dashboard session cookie (401 otherwise; a page opened
/// without either redirects to the login form); a state-changing request
/// authenticated by the cookie must also carry the session's CSRF token in
/// `X-CSRF-Token` (403 otherwise). Without a token (loopback only), requests
/// must be addressed to a loopback name and must not come from a
/// non-loopback web origin (403), which defeats DNS rebinding and
/// cross-site requests from a browser on the same machine.
pub(crate) async fn guard(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let path = request.uri().path();
    if path == "/healthz" {
        return Ok(next.run(request).await);
    }
    match state.token() {
        Some(_) if dashboard::is_public(path) => {}
        Some(token) => {
            let headers = request.headers();
            if headers.contains_key(header::AUTHORIZATION) {
                check_bearer(token, headers)?;
            } else if let Some(session) = state.sessions().find(headers) {
                if !request.method().is_safe() && !session::csrf_ok(&session, headers) {
                    return Err(ApiError::forbidden(
                        "this request needs the session's CSRF token in X-CSRF-Token",
                    ));
                }
            } else if dashboard::is_page(path) && request.method() == Method::GET {
                return Ok(Redirect::to("/login").into_response());
            } else {
                check_bearer(token, headers)?;
            }
        }
        None => check_loopback_names(request.headers())?,
    }
    Ok(next.run(request).await)
}

fn check_bearer(token: &Token, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match presented {
        Some(secret) if token.matches(secret) => Ok(()),
        Some(_) => Err(ApiError::new(
            ErrorType::Unauthorized,
            "the bearer token is not valid",
        )),
        None => Err(ApiError::new(
            ErrorType::Unauthorized,
            "this daemon requires `Authorization: Bearer <token>` (the value of CADRE_TOKEN) \
             or a dashboard session (log in at /login)",
        )),
    }
}

/// The host part of a `Host` header value or an origin's authority.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default();
    }
    authority.split(':').next().unwrap_or_default()
}

fn is_loopback_name(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn check_loopback_names(headers: &HeaderMap) -> Result<(), ApiError> {
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or_default();
        if !is_loopback_name(host_part(host)) {
            return Err(ApiError::forbidden(format!(
                "Host {host:?} is not a loopback name; without CADRE_TOKEN the daemon only \
                 answers requests addressed to localhost, 127.0.0.1 or [::1]"
            )));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
        if !is_loopback_name(host_part(authority)) {
            return Err(ApiError::forbidden(format!(
                "requests from the web origin {origin:?} are refused"
            )));
        }
    }
    Ok(())
}

/// Resolves each allowed root (symlinks included); fails on a missing one.
pub(crate) fn canonical_roots(roots: &[PathBuf]) -> Result<Vec<PathBuf>> {
    roots
        .iter()
        .map(|root| {
            let canonical = root.canonicalize().map_err(|source| Error::AllowedRoot {
                path: root.clone(),
                source,
            })?;
            if canonical.is_dir() {
                Ok(canonical)
            } else {
                Err(Error::AllowedRoot {
                    path: root.clone(),
                    source: std::io::Error::other("not a directory"),
                })
            }
        })
        .collect()
}

/// Whether the already-canonical `path` lies inside one of `roots`
/// (component-wise: `/a/bc` is not inside `/a/b`).
pub(crate) fn is_under(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

/// Checks a submitted workspace: absolute, existing, and (after resolving
/// symlinks) inside an allowed root. Returns the canonical path.
pub(crate) fn admit_workspace(workspace: &str, roots: &[PathBuf]) -> Result<PathBuf, ApiError> {
    if roots.is_empty() {
        return Err(ApiError::forbidden(
            "this daemon has no allowed roots, so it accepts no workspace: restart it with \
             --allow-root DIR (or set daemon.allowed_roots)",
        ));
    }
    let path = Path::new(workspace);
    if !path.is_absolute() {
        return Err(ApiError::invalid(format!(
            "workspace {workspace:?} must be an absolute path"
        )));
    }
    let canonical = path
        .canonicalize()
        .map_err(|e| ApiError::invalid(format!("workspace {workspace:?}: {e}")))?;
    if !is_under(&canonical, roots) {
        return Err(outside_roots(
            &format!("workspace {}", canonical.display()),
            roots,
        ));
    }
    if !canonical.is_dir() {
        return Err(ApiError::invalid(format!(
            "workspace {} is not a directory",
            canonical.display()
        )));
    }
    Ok(canonical)
}

fn outside_roots(what: &str, roots: &[PathBuf]) -> ApiError {
    ApiError::forbidden(format!(
        "{what} is outside the daemon's allowed roots ({})",
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// Checks a submitted repository URL: a remote one (https, ssh) is fine
/// whatever the allowed roots; one on this machine (`file://`, a path) must
/// resolve inside an allowed root, like a workspace.
pub(crate) fn admit_repository(url: &str, roots: &[PathBuf]) -> Result<(), ApiError> {
    match repo_location(url)? {
        RepoLocation::Remote => Ok(()),
        RepoLocation::Local(path) => {
            let canonical = path
                .canonicalize()
                .map_err(|e| ApiError::invalid(format!("repository {}: {e}", path.display())))?;
            if is_under(&canonical, roots) {
                Ok(())
            } else {
                Err(outside_roots(
                    &format!("repository {}", canonical.display()),
                    roots,
                ))
            }
        }
    }
}

/// Whether this daemon may run (or change) `job`: its workspace inside the
/// allowed roots, or for a job on a git repository, the repository admitted
/// by [`admit_repository`] (the daemon makes its own checkout).
pub(crate) fn may_run(job: &JobRecord, roots: &[PathBuf]) -> bool {
    match job_git_source(job) {
        Some(source) => admit_repository(&source.url, roots).is_ok(),
        None => is_under(Path::new(&job.workspace), roots),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_by_content_and_never_print() {
        let token = Token::new("s3cret-value").unwrap();
        assert!(token.matches("s3cret-value"));
        assert!(!token.matches("s3cret-valuf"));
        assert!(!token.matches(""));
        assert_eq!(format!("{token:?}"), "Token(<redacted>)");
        assert!(Token::new("").is_err());
    }

    #[test]
    fn non_loopback_bind_needs_a_token() {
        let public: SocketAddr = "0.0.0.0:7878".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:7878".parse().unwrap();
        let local6: SocketAddr = "[::1]:7878".parse().unwrap();
        assert!(matches!(check_bind(&public, None), Err(Error::Bind { .. })));
        assert!(check_bind(&local, None).is_ok());
        assert!(check_bind(&local6, None).is_ok());
        let token = Token::new("t").unwrap();
        assert!(check_bind(&public, Some(&token)).is_ok());
    }

    #[test]
    fn loopback_names() {
        for ok in [
            "localhost",
            "127.0.0.1",
            "::1",
            "LOCALHOST.",
            "app.localhost",
        ] {
            assert!(is_loopback_name(ok), "{ok}");
        }
        for bad in ["example.com", "10.0.0.1", "localhost.evil.com", ""] {
            assert!(!is_loopback_name(bad), "{bad}");
        }
        assert_eq!(host_part("[::1]:7878"), "::1");
        assert_eq!(host_part("localhost:80"), "localhost");
    }

    #[test]
    fn workspaces_must_resolve_inside_a_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("ws")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        std::fs::create_dir_all(tmp.path().join("rootx")).unwrap();
        let roots = canonical_roots(std::slice::from_ref(&root)).unwrap();

        let inside = root.join("ws");
        assert_eq!(
            admit_workspace(inside.to_str().unwrap(), &roots).unwrap(),
            inside.canonicalize().unwrap()
        );
        let via_symlink = root.join("escape");
        let err = admit_workspace(via_symlink.to_str().unwrap(), &roots).unwrap_err();
        assert_eq!(err_kind(&err), ErrorType::Forbidden);
        let dotdot = root.join("ws/../../outside");
        let err = admit_workspace(dotdot.to_str().unwrap(), &roots).unwrap_err();
        assert_eq!(err_kind(&err), ErrorType::Forbidden);
        let sibling = tmp.path().join("rootx");
        let err = admit_workspace(sibling.to_str().unwrap(), &roots).unwrap_err();
        assert_eq!(err_kind(&err), ErrorType::Forbidden);
        let err = admit_workspace("relative/ws", &roots).unwrap_err();
        assert_eq!(err_kind(&err), ErrorType::InvalidRequest);
        let err = admit_workspace(inside.to_str().unwrap(), &[]).unwrap_err();
        assert_eq!(err_kind(&err), ErrorType::Forbidden);
        assert!(canonical_roots(&[tmp.path().join("missing")]).is_err());
    }

    #[test]
    fn local_repositories_must_resolve_inside_a_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir_all(root.join("r.git")).unwrap();
        std::fs::create_dir_all(tmp.path().join("other.git")).unwrap();
        let roots = canonical_roots(std::slice::from_ref(&root)).unwrap();
        let inside = root.join("r.git");
        admit_repository(&format!("file://{}", inside.display()), &roots).unwrap();
        admit_repository(inside.to_str().unwrap(), &roots).unwrap();
        let outside = tmp.path().join("other.git");
        let err = admit_repository(&format!("file://{}", outside.display()), &roots).unwrap_err();
        assert_eq!(err_kind(&err), ErrorType::Forbidden);
        // Remote repositories need no allowed root at all.
        admit_repository("https://example.com/r.git", &[]).unwrap();
        let err = admit_repository("ext::sh -c id", &roots).unwrap_err();
        assert_eq!(err_kind(&err), ErrorType::InvalidRequest);
    }

    fn err_kind(e: &ApiError) -> ErrorType {
        e.kind()
    }
}
