//! `authgate serve`: load, bind, run until SIGTERM/SIGINT; SIGHUP reloads the user file.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

use crate::audit::AuditLog;
use crate::config::Config;
use crate::gateway::{Gateway, Sources};
use crate::metrics::Metrics;
use crate::users::{log_reload, UserDb};

/// How often the htpasswd file and the store are checked for changes.
const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// Token and session activity is written to the store every this many WATCH_INTERVALs.
const STORE_FLUSH_TICKS: u32 = 10;
/// How often ended sessions are dropped (they are refused as soon as they end either way).
const SESSION_SWEEP: Duration = Duration::from_secs(60);

/// The runtime `authgate serve` runs on: one worker thread per CPU this process may run on.
/// With a single CPU (a container limit, or `taskset`), a single-threaded runtime avoids the
/// cross-thread wake-ups of the work-stealing scheduler (measured: ~25% more proxied requests
/// per second on one core). Password hashing runs on the blocking pool either way.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(cpus);
        b
    };
    builder.enable_all().build()
}

/// Runs `authgate serve` until a shutdown signal, on a runtime of its own ([`runtime`]).
///
/// The order at the end matters for the audit log: [`run`] returns once open connections
/// have finished or `shutdown_timeout` has passed; the requests still running are then
/// dropped with the runtime, and each queues its record as cut off by the shutdown
/// (`gateway::Pending`); only then is the audit log drained and closed.
pub fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = runtime().context("cannot start the runtime")?;
    let stopped = runtime.block_on(run(config))?;
    stopped
        .flag
        .store(true, std::sync::atomic::Ordering::Release);
    drop(runtime);
    let mut audit = stopped.audit;
    audit.close();
    Ok(())
}

/// What [`run`] leaves for after the runtime (see [`serve`]).
pub struct Stopped {
    audit: AuditLog,
    flag: Arc<std::sync::atomic::AtomicBool>,
}

pub async fn run(mut config: Config) -> anyhow::Result<Stopped> {
    // Before anything opens a file: the soft open-file limit goes up to the hard one, and
    // max_connections comes down to what fits under it (see `fd_limit`).
    config.server.max_connections = crate::fd_limit::fit(config.server.max_connections);
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;

    let sources = Sources::open(&config).await?;
    let htpasswd = sources.users.as_ref().and_then(|d| d.htpasswd.clone());
    if let (Some(db), Some(u)) = (&htpasswd, &config.users) {
        if u.watch {
            db.spawn_watcher(WATCH_INTERVAL);
        }
    }
    spawn_sighup(htpasswd);
    if let Some(store) = &sources.store {
        // Other processes' changes (the CLI) are seen within a second; token and session
        // activity is written back every STORE_FLUSH_TICKS seconds and at shutdown.
        store.spawn_maintenance(WATCH_INTERVAL, STORE_FLUSH_TICKS);
    }
    let store = sources.store.clone();

    let audit = AuditLog::open(&config.server.audit_log).context("cannot open the audit log")?;
    let server = config.server.clone();
    let metrics = Arc::new(Metrics::new(&config).with_audit(audit.clone()));
    let admin = config.admin.clone();
    let gateway = Arc::new(Gateway::new(
        config,
        sources,
        audit.clone(),
        Arc::clone(&metrics),
    ));
    let flag = gateway.stopped_flag();
    if store.is_some() {
        let weak = Arc::downgrade(&gateway);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SESSION_SWEEP);
            loop {
                tick.tick().await;
                let Some(gateway) = weak.upgrade() else {
                    return;
                };
                gateway.sweep_sessions();
            }
        });
    }
    if let Some(admin) = &admin {
        let admin_listener = TcpListener::bind(admin.listen)
            .await
            .with_context(|| format!("cannot listen on {} (admin)", admin.listen))?;
        eprintln!(
            "authgate admin listening on {}",
            admin_listener.local_addr()?
        );
        tokio::spawn(crate::admin::serve(
            admin_listener,
            Arc::clone(&metrics),
            Arc::clone(&gateway),
        ));
    }

    // Tests and scripts read this line to learn the port when listening on port 0.
    eprintln!("authgate listening on {addr}");
    crate::accept::serve(listener, gateway, &server, shutdown_signal()).await;
    if let Some(store) = store {
        match tokio::task::spawn_blocking(move || store.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("store: the last write-back failed: {e}"),
            Err(e) => tracing::error!("store: the last write-back did not run: {e}"),
        }
    }
    Ok(Stopped { audit, flag })
}

#[cfg(unix)]
fn spawn_sighup(users: Option<Arc<UserDb>>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Some(db) = &users {
                let db2 = Arc::clone(db);
                let result = tokio::task::spawn_blocking(move || db2.reload(true)).await;
                log_reload(db, result.unwrap_or_else(|e| Err(e.to_string())));
            }
        }
    });
}

#[cfg(not(unix))]
fn spawn_sighup(_users: Option<Arc<UserDb>>) {}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
