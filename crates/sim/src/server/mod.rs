//! The HTTP server: the shared state ([`state`]), the routes ([`routes`], one
//! module per endpoint family), small HTTP helpers ([`http`]) and the handle
//! of a running server ([`SimServer`]).

mod http;
mod routes;
mod state;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket, ToSocketAddrs};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::clock::{Clock, SystemClock};
use crate::faults::FaultSpec;
use crate::log::{LoggedRequest, SimStats};
use crate::scenario::Scenario;
use crate::{Error, Result};
pub use routes::router;
pub use state::SimState;

/// Connections [`bind`]'s listener holds before they are accepted (the
/// kernel caps it at `net.core.somaxconn`, 4,096 on current Linux).
pub const LISTEN_BACKLOG: u32 = 4096;

/// A listener on `addr` (the first of its addresses that binds, as
/// `TcpListener::bind` tries them) whose accept queue holds a fan-out's
/// burst of connections. `TcpListener::bind` asks for a queue of 128: when
/// 512 calls opened their connections at once, the connections past it were
/// dropped, and their requests waited for TCP's 200 ms retransmission
/// (`TcpExtListenOverflows` in `nstat`); a provider's front end takes such a
/// burst.
///
/// # Errors
/// [`Error::Serve`] when `addr` does not resolve or none of its addresses
/// can be bound (the last address's error).
pub async fn bind(addr: impl ToSocketAddrs) -> Result<TcpListener> {
    let mut last = std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        "the address resolves to nothing",
    );
    for addr in tokio::net::lookup_host(addr).await.map_err(Error::Serve)? {
        match listen_on(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(Error::Serve(last))
}

fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server may rebind its port
    // while the old connections linger in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `scenario` on `listener` until `shutdown` resolves, then shuts
/// down gracefully (in-flight requests finish). This is what `cadre sim serve`
/// runs.
pub async fn serve_until(
    scenario: Scenario,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = router(SimState::new(scenario));
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Serve)
}

/// A running sim server. Dropping it cancels the server; prefer
/// [`SimServer::shutdown`], which also waits for it to stop.
#[derive(Debug)]
pub struct SimServer {
    addr: SocketAddr,
    state: SimState,
    guard: DropGuard,
    task: JoinHandle<Result<()>>,
}

impl SimServer {
    /// Starts serving `scenario` on `listener` (bind `127.0.0.1:0` for tests).
    pub async fn start(scenario: Scenario, listener: TcpListener) -> Result<SimServer> {
        Self::start_with_clock(scenario, listener, Arc::new(SystemClock::new())).await
    }

    /// Like [`SimServer::start`], reading time from `clock`.
    pub async fn start_with_clock(
        scenario: Scenario,
        listener: TcpListener,
        clock: Arc<dyn Clock>,
    ) -> Result<SimServer> {
        let addr = listener.local_addr().map_err(Error::Serve)?;
        let state = SimState::with_clock(scenario, clock);
        let token = CancellationToken::new();
        let stop = token.clone();
        let app = router(state.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
                .map_err(Error::Serve)
        });
        Ok(SimServer {
            addr,
            state,
            guard: token.drop_guard(),
            task,
        })
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, to use as `ANTHROPIC_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The shared state (log, stats, faults).
    pub fn state(&self) -> &SimState {
        &self.state
    }

    /// Every request received so far.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.state.request_log()
    }

    /// Aggregate counts over the request log.
    pub fn stats(&self) -> SimStats {
        self.state.stats()
    }

    /// Adds a fault at runtime.
    pub fn add_fault(&self, spec: FaultSpec) {
        self.state.add_fault(spec);
    }

    /// Stops accepting connections, lets in-flight requests finish and waits
    /// for the server task. Errors are logged.
    pub async fn shutdown(self) {
        if let Err(e) = self.shutdown_checked().await {
            tracing::warn!(error = %e, "cadre-sim server stopped with an error");
        }
    }

    /// Like [`SimServer::shutdown`], returning the server's error if any.
    pub async fn shutdown_checked(self) -> Result<()> {
        self.guard.disarm().cancel();
        self.task.await?
    }
}
