//! Stage 1: accept connections and speak HTTP/1.1 or HTTP/2 (h2c, prior knowledge) on them,
//! within the configured limits, until shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
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
        // hyper does not read the connection while a request is in flight, so it does not
        // notice a client that goes away meanwhile; a proxied request watches for that
        // itself ([`ClientReader::gone`]). hyper's own check reads into its buffer, which the
        // request's head still shares, and so allocated a fresh 8 KiB buffer for every
        // request: ~500 instructions per request here, ~1,000 per proxied one (callgrind).
        .half_close(true)
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
        let (io, reader) = ClientIo::new(stream);
        // What this connection's requests share: its peer, its upstream connection, and the
        // read side of its socket.
        let conn = Arc::new(gateway.connection(peer, Some(reader)));
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
            if tokio::time::timeout(first_byte, io.first_byte())
                .await
                .is_err()
            {
                drop(permit);
                return;
            }
            let conn = builder.serve_connection(TokioIo::new(io), service);
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

/// A client connection's socket as hyper reads and writes it. Its read side is shared with
/// the requests of the connection ([`ClientReader`]), so that one waiting for its upstream
/// can notice the client going away while hyper is not reading.
pub struct ClientIo {
    read: ClientReader,
    write: OwnedWriteHalf,
}

/// The read side of a client connection, shared by hyper and the connection's requests. They
/// never read at the same time: an HTTP/1 request is polled by the connection's own task,
/// and hyper does not read for the next request, nor for an end of stream, while one is in
/// flight (`half_close`). The lock is therefore never contended; it is there because the
/// sharing must be safe, not fast.
#[derive(Clone)]
pub struct ClientReader(Arc<Shared>);

struct Shared {
    read: Mutex<OwnedReadHalf>,
    /// Set once a [`Gone`] has seen the client leave: from then on nothing more is written
    /// to the connection ([`ClientIo`]'s writes fail), so a client that only shut down its
    /// sending side gets no answer to the abandoned request, as from nginx.
    gone: AtomicBool,
}

impl ClientIo {
    pub fn new(stream: TcpStream) -> (ClientIo, ClientReader) {
        let (read, write) = stream.into_split();
        let read = ClientReader(Arc::new(Shared {
            read: Mutex::new(read),
            gone: AtomicBool::new(false),
        }));
        (
            ClientIo {
                read: read.clone(),
                write,
            },
            read,
        )
    }

    /// Waits until the client has sent a byte (or closed), without consuming it.
    async fn first_byte(&self) {
        let mut probe = [0u8; 1];
        std::future::poll_fn(|cx| {
            let mut buf = ReadBuf::new(&mut probe);
            self.read.lock().poll_peek(cx, &mut buf).map(|_| ())
        })
        .await;
    }
}

impl ClientReader {
    fn lock(&self) -> std::sync::MutexGuard<'_, OwnedReadHalf> {
        self.0.read.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A future that completes when the client has closed or reset the connection: an HTTP/1
    /// request in flight is then abandoned, as hyper (without `half_close`) and nginx
    /// (`proxy_ignore_client_abort off`) abandon it. A client that shut down only its sending
    /// side counts as gone too, as it does for both of them. If the client sends more bytes
    /// first (a pipelined request, which hyper reads once this response is written), the
    /// future stays pending: whether the client is still there cannot be told until then.
    /// One case differs from hyper's own check: a request pipelined *before* this one was
    /// read sits in hyper's buffer, not on the socket, so a client that then shuts down its
    /// sending side is taken as gone here, where hyper (seeing its buffer) kept waiting.
    ///
    /// Once it has completed, the connection writes nothing more: the answer to the abandoned
    /// request is never sent.
    ///
    /// Only for a request (or its response body) that hyper's HTTP/1 connection polls
    /// itself: the waker registered is the connection task's, the one hyper's own reads
    /// register. Polled from another task (an HTTP/2 stream's), it would take that waker
    /// from the connection.
    pub fn gone(&self) -> Gone {
        Gone {
            reader: self.clone(),
            watching: true,
        }
    }
}

/// See [`ClientReader::gone`].
pub struct Gone {
    reader: ClientReader,
    watching: bool,
}

impl Future for Gone {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if !self.watching {
            return Poll::Pending;
        }
        let mut byte = [0u8; 1];
        let mut buf = ReadBuf::new(&mut byte);
        let peeked = self.reader.lock().poll_peek(cx, &mut buf);
        match peeked {
            // End of stream, or an error such as a reset: the client is gone.
            Poll::Ready(Ok(0) | Err(_)) => {
                self.reader.0.gone.store(true, Ordering::Relaxed);
                Poll::Ready(())
            }
            Poll::Ready(Ok(_)) => {
                // Bytes are waiting: peeking again would find them again at once, for every
                // poll. Stop watching; the upstream's answer or timeout ends the request.
                self.watching = false;
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.read.lock()).poll_read(cx, buf)
    }
}

impl ClientIo {
    /// The error every write gets once the client is known to have gone.
    fn abandoned(&self) -> Option<io::Error> {
        self.read.0.gone.load(Ordering::Relaxed).then(|| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the client closed the connection",
            )
        })
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.abandoned() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.get_mut().write).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.abandoned() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.get_mut().write).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.write.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().write).poll_shutdown(cx)
    }
}
