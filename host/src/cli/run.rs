//! `guard run`: the daemon. Loads the plugins, opens the database (it must
//! be this process's alone), recovers the queue and the schedule, and
//! serves webhooks, the JSON API and metrics until SIGINT or SIGTERM; then
//! stops taking requests, lets events in progress finish (up to 30 s) and
//! flushes. Whatever was not finished is processed after the next start.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::Global;
use crate::daemon::Daemon;
use crate::platform::Platforms;
use crate::runtime::Runtime;
use crate::store::Store;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Directory of extra plugins (*.wasm); the embedded standard plugins are always loaded.
    #[arg(long)]
    plugins: Option<PathBuf>,
    /// Address to listen on (default: [server] listen, 127.0.0.1:8700).
    #[arg(long)]
    listen: Option<String>,
    /// Diagnose and plan, record what would be done, do nothing on the platforms.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(global: &Global, args: Args, err: &mut dyn Write) -> Result<u8> {
    let config = Arc::new(super::load_config(global)?);
    std::fs::create_dir_all(&global.data)
        .with_context(|| format!("creating data directory {}", global.data.display()))?;
    // Unlike one-shot commands, the daemon never falls back to a temporary
    // database: accepted events must survive it.
    let (store, _) = Store::open_configured(&config.store, &global.data, false)
        .context("opening the database (is another guard daemon using it?)")?;
    let mut runtime = Runtime::new(config.clone(), store, Some(global.data.join("compiled")))
        .context("starting the plugin runtime")?;
    let mut failures = runtime.load_embedded().await;
    if let Some(dir) = &args.plugins {
        failures.extend(
            runtime
                .load_dir(dir)
                .await
                .with_context(|| format!("loading plugins from {}", dir.display()))?,
        );
    }
    for f in &failures {
        let _ = writeln!(err, "guard: plugin {} not loaded: {}", f.origin, f.error);
    }
    let runtime = Arc::new(runtime);
    let platforms = Platforms::from_config(&config).context("setting up the platform clients")?;
    let daemon =
        Daemon::new(runtime.clone(), platforms, args.dry_run).context("opening the queue")?;
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| config.server.listen.clone());
    let addr: SocketAddr = listen
        .parse()
        .with_context(|| format!("{listen:?} is not an address like 127.0.0.1:8700"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listening on {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let waiting = daemon.queue.depth();
    let _ = writeln!(
        err,
        "guard: listening on http://{local} ({} plugins, {waiting} queued event(s) to resume, state in {}{})",
        runtime.plugins().len(),
        runtime.db().describe(),
        if args.dry_run { ", dry run" } else { "" }
    );
    for (name, set) in [
        (
            "github",
            config.github.as_ref().map(|g| g.webhook_secret.is_some()),
        ),
        (
            "gitlab",
            config.gitlab.as_ref().map(|g| g.webhook_secret.is_some()),
        ),
        (
            "jenkins",
            config.jenkins.as_ref().map(|j| j.webhook_secret.is_some()),
        ),
    ] {
        match set {
            Some(true) => {}
            Some(false) => {
                let _ = writeln!(
                    err,
                    "guard: [{name}] has no webhook_secret: its webhooks will be refused"
                );
            }
            None => {
                let _ = writeln!(
                    err,
                    "guard: no [{name}] section: /webhooks/{name} answers 503"
                );
            }
        }
    }
    let _ = err.flush();
    let tasks = daemon.start();
    let app = crate::server::router(daemon.clone());
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving HTTP")?;
    let _ = writeln!(err, "guard: stopping; letting events in progress finish");
    daemon.shutdown(Duration::from_secs(30)).await;
    for t in tasks {
        t.abort();
    }
    Ok(0)
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
