//! Stage 1: accept connections and speak HTTP/1.1 or HTTP/2 (h2c, prior knowledge) on them,
//! within the configured limits, until shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::coarse_timer::CoarseTimer;
use crate::config::Server;
use crate::gateway::Gateway;

/// The HTTP/1.1 + h2c (prior knowledge) connection settings of `serve`, from the server's
/// `header_timeout` and `max_header_bytes`. Public for the hyper floor of the benchmarks
/// (`gateway/examples/hyper_floor.rs`), which must run hyper exactly as authgate does.
/// Must be called on the runtime that serves (it starts the header timer's sweeper).
pub fn http_builder(
    header_timeout: Duration,
    max_header_bytes: usize,
) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // Slowloris: the whole header section must arrive within this time. Checked every
        // tenth of it, 5 ms to 1 s (see `coarse_timer`: hyper starts and stops the timer for
        // every request), so it fires at most that much late, never early.
        .timer(CoarseTimer::for_timeout(header_timeout))
        .header_read_timeout(header_timeout)
        // Above this hyper answers 431 itself; below it, `normalize` answers 431 with a
        // reason once the headers exceed `max_header_bytes`.
        .max_buf_size((max_header_bytes * 2).max(16 * 1024));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(max_header_bytes * 2).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Serves until `shutdown` completes, then stops accepting and gives open connections
/// `server.shutdown_timeout` to finish their requests (in-flight requests complete; idle
/// keep-alive connections are closed at once).
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    server: &Server,
    shutdown: impl Future<Output = ()>,
) {
    let builder = http_builder(server.header_timeout, server.max_header_bytes);
    let limit = Arc::new(Semaphore::new(server.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

    loop {
        // At the connection limit, stop accepting: new clients wait in the kernel's backlog
        // instead of each taking memory here.
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let gw = Arc::clone(&gateway);
        // What this connection's requests share: its peer and its upstream connection.
        let conn = Arc::new(gateway.connection(peer));
        let service = service_fn(move |req| {
            let gw = Arc::clone(&gw);
            let conn = Arc::clone(&conn);
            async move { Ok::<_, Infallible>(gw.handle(req, &conn).await) }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let first_byte = server.header_timeout;
        tokio::spawn(async move {
            // hyper's header timer starts with the first byte of a request; a client that
            // connects and sends nothing would otherwise hold a connection slot forever.
            // (`readable()` can report a fresh socket ready before any byte arrives; `peek`
            // waits for one.)
            let mut probe = [0u8; 1];
            if tokio::time::timeout(first_byte, stream.peek(&mut probe))
                .await
                .is_err()
            {
                drop(permit);
                return;
            }
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }

    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: no new connections; waiting for open ones"
    );
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(server.shutdown_timeout) => {
            tracing::warn!("shutdown timeout passed; closing the remaining connections");
        }
    }
}
