//! cadre-server: `cadre daemon`, a durable job queue behind an HTTP API.
//!
//! This crate owns everything the daemon adds on top of the pipeline in
//! `cadre-core`:
//!
//! * the **HTTP API** ([`app`]): JSON over axum (the bodies are
//!   [`cadre_types::api`]'s, shared with the clients), one error shape everywhere
//!   (`{"error":{"type":..,"message":..}}`, including malformed bodies, unknown
//!   fields, oversize bodies, unknown routes and wrong methods), cursor
//!   pagination, and server-sent events for a job's event log, resumable with
//!   `Last-Event-ID`;
//! * the **dispatcher** (a task owned by [`run`]): claims queued or orphaned
//!   jobs from the store under leases, runs up to `max_jobs` of them at once,
//!   heartbeats each lease and stops a job whose lease it lost;
//! * **security**: loopback unless a bearer token is configured ([`Token`],
//!   compared in constant time), loopback-only `Host`/`Origin` without a token
//!   (DNS rebinding), and workspaces confined to the allowed roots.
//!
//! # Design decisions
//!
//! * **The store is the queue.** Nothing about a job lives only in memory:
//!   submission writes a `queued` row, the dispatcher claims rows with a
//!   lease ([`cadre_store::Store::claim_job`]), and the engine resumes any
//!   non-terminal job from its last committed attempt. A daemon that is
//!   killed loses nothing; on restart (or on another daemon sharing the file)
//!   expired leases are claimed again and the jobs continue. The event stream
//!   reads the durable event log, so a client that reconnects with
//!   `Last-Event-ID` misses nothing either, even across daemon restarts.
//! * **Fair share in the engine.** The jobs a daemon runs share one engine,
//!   whose `limits.max_concurrency` model-call slots are divided among the
//!   running jobs as they come and go (each holds at most total / running):
//!   a huge migration cannot starve a small job submitted behind it, and a
//!   job running alone gets every slot.
//! * **Shutdown is cooperative and bounded.** [`run`] takes its shutdown
//!   trigger as a future. On shutdown it stops claiming, cancels every running
//!   job's token (in-flight calls are recorded as interrupted and the jobs stay
//!   resumable), waits up to the grace period, releases its leases so a
//!   restarted daemon picks the jobs up at once, and returns.
#![warn(missing_docs)]

mod api;
mod assist;
mod dashboard;
mod dispatch;
mod error;
mod files;
mod security;
mod sse;
mod state;
mod stats;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

pub use api::{app, job_summaries, job_summary};
pub use error::{Error, Result};
pub use security::{Token, check_bind};
pub use state::{AppState, DaemonOptions, daemon_owner_id};

/// Serves the API on `listener` and runs the dispatcher until `shutdown`
/// resolves, then shuts down gracefully (see the crate docs) and returns.
///
/// Refuses ([`Error::Bind`]) to serve a non-loopback address when the state
/// has no bearer token.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let addr: SocketAddr = listener.local_addr()?;
    check_bind(&addr, state.token())?;
    let stop = state.shutdown_token();
    tracing::info!(%addr, owner = state.owner(), "daemon serving");

    // The dispatcher and the HTTP server are the only tasks this function
    // spawns; both are awaited (or aborted) before it returns.
    let mut dispatcher = tokio::spawn(dispatch::run(state.clone()));
    let server = axum::serve(listener, app(state.clone()))
        .with_graceful_shutdown(stop.clone().cancelled_owned());
    let mut server = tokio::spawn(async move { server.await });

    let early: Option<Result<()>> = tokio::select! {
        () = shutdown => None,
        r = &mut server => Some(match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::Io(e)),
            Err(e) => Err(Error::Task(e.to_string())),
        }),
        r = &mut dispatcher => Some(match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(Error::Task(e.to_string())),
        }),
    };
    tracing::info!("daemon shutting down");
    stop.cancel();
    if !dispatcher.is_finished() {
        match dispatcher.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "dispatcher ended with an error"),
            Err(e) => tracing::warn!(error = %e, "dispatcher task failed"),
        }
    }
    if !server.is_finished() {
        // Every event stream ends on `stop`; ordinary requests are short. Bound
        // the drain anyway so a stuck client cannot hold the process.
        let grace = state.options().shutdown_grace;
        if tokio::time::timeout(grace, &mut server).await.is_err() {
            tracing::warn!("HTTP connections still open after the grace period; closing them");
            server.abort();
            let _ = server.await;
        }
    }
    early.unwrap_or(Ok(()))
}
