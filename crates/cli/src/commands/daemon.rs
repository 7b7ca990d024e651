//! `cadre daemon`: a durable job queue behind an HTTP API, until SIGINT or
//! SIGTERM. The server itself is `cadre-server`; this is its front door
//! (flags over `daemon.*` config, the token from `CADRE_TOKEN`).

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use cadre_core::Providers;
use cadre_server::{AppState, DaemonOptions, Token};

use crate::args::{Cli, DaemonArgs, TOKEN_ENV};
use crate::session::{Session, termination};

/// Runs the daemon until SIGINT/SIGTERM; exits 0 after a clean shutdown.
pub(super) async fn run(cli: &Cli, args: &DaemonArgs) -> Result<ExitCode> {
    let session = Session::open(cli).await?;
    let config = &session.loaded.config;
    let token = match std::env::var(TOKEN_ENV) {
        Ok(secret) => Some(Token::new(&secret)?),
        Err(_) => None,
    };
    let mut options = DaemonOptions::from_config(&config.daemon);
    if !args.allow_root.is_empty() {
        options.allowed_roots.clone_from(&args.allow_root);
    }
    if let Some(n) = args.max_jobs {
        options.max_jobs = n;
    }
    options.token = token;
    let listen = args.listen.as_deref().unwrap_or(&config.daemon.listen);
    let addr: std::net::SocketAddr = tokio::net::lookup_host(listen)
        .await
        .with_context(|| format!("resolving listen address {listen}"))?
        .next()
        .ok_or_else(|| anyhow!("listen address {listen} resolves to nothing"))?;
    // Refuse before binding, so a refused address is never even opened.
    cadre_server::check_bind(&addr, options.token.as_ref())?;
    let env = |name: &str| std::env::var(name).ok();
    let providers = Providers::from_config(config, &env, None)?;
    let no_roots = options.allowed_roots.is_empty();
    let state = AppState::new(config, session.store.clone(), providers, options)?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let bound = listener.local_addr()?;
    if no_roots {
        eprintln!(
            "warning: no --allow-root given (and daemon.allowed_roots is empty): every submission will be refused"
        );
    }
    println!("cadre daemon listening on http://{bound}");
    let _ = std::io::stdout().flush();
    let shutdown = async {
        termination().await;
        eprintln!("shutting down: stopping running jobs (they resume on restart)");
    };
    cadre_server::run(listener, state, shutdown).await?;
    Ok(ExitCode::SUCCESS)
}
