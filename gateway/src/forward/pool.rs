//! Upstream HTTP/1.1 connections: each client connection keeps the upstream connection it
//! used last ("pinned"), and gives it back to a small shared pool of idle connections when it
//! closes.
//!
//! Why not hyper-util's pooled client: on the proxied path its per-request bookkeeping (a
//! pool lookup under a mutex, and a task spawned for each response to put the connection
//! back once the body is read) was a measurable share of the CPU (bench/RESULTS.md). A
//! client connection of HTTP/1.1 sends one request at a time, so the upstream connection it
//! used last is free again when its next request comes; taking it needs no lookup and no
//! lock anyone else contends for.
//!
//! The rules:
//! - A request takes its client connection's pinned upstream connection if it is for the
//!   same upstream; otherwise the newest idle one from the shared pool; otherwise it opens a
//!   new one (`upstream_connect_timeout`). An HTTP/1 client connection sends one request at a
//!   time, so its request waits for the pinned connection to finish reading the previous
//!   response; a request of an HTTP/2 client connection takes the pinned connection only if
//!   it is free at once, so concurrent streams never queue behind another stream's body.
//! - After the response head arrives the connection goes back to the pin (or, if the pin is
//!   taken, to the shared pool); the next request waits until the body has been read.
//! - The shared pool keeps at most [`MAX_IDLE`] connections per upstream, each for at most
//!   [`IDLE_TIMEOUT`]; older or closed ones are dropped when the pool is next touched, and
//!   dropping one closes it. An idle client keep-alive connection keeps its pinned upstream
//!   connection open until the client connection closes, like a client of its own would.
//! - A request that an idle connection refused before it was sent (the upstream closed the
//!   connection while it sat idle) is retried once on a new connection; a request that may
//!   have reached the upstream is never retried.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::body::Body;

/// Idle upstream connections kept per upstream in the shared pool.
pub const MAX_IDLE: usize = 256;
/// How long an idle upstream connection is kept in the shared pool.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request could not be sent.
#[derive(Debug)]
pub enum SendError {
    /// No connection could be opened (refused, unreachable, name not found, timed out).
    Connect(std::io::Error),
    /// The request failed on an open connection.
    Request(hyper::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "cannot connect: {e}"),
            SendError::Request(e) => write!(f, "{e}"),
        }
    }
}

struct Idle {
    authority: Authority,
    sender: SendRequest<Body>,
    since: Instant,
}

impl Idle {
    /// Still open upstream and not idle for too long.
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.duration_since(self.since) < IDLE_TIMEOUT
    }
}

/// The shared pool and how to open new connections.
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    connect_timeout: Duration,
}

impl Pool {
    pub fn new(connect_timeout: Duration) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
            connect_timeout,
        })
    }

    /// The pin for one client connection.
    pub fn pin(self: &Arc<Self>) -> Pinned {
        Pinned {
            pool: Arc::clone(self),
            slot: Mutex::new(None),
        }
    }

    fn take_idle(&self, authority: &Authority) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        // Newest first: the connection most likely still open upstream.
        while let Some(pos) = idle.iter().rposition(|i| &i.authority == authority) {
            let entry = idle.remove(pos);
            if entry.usable(now) {
                return Some(entry.sender);
            }
        }
        None
    }

    fn put_idle(&self, authority: Authority, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        idle.retain(|i| i.usable(now));
        if idle.iter().filter(|i| i.authority == authority).count() >= MAX_IDLE {
            return;
        }
        idle.push(Idle {
            authority,
            sender,
            since: now,
        });
    }

    async fn connect(&self, authority: &Authority) -> Result<SendRequest<Body>, SendError> {
        // `Authority::host` keeps an IPv6 literal's brackets; the resolver wants it bare.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = (host, authority.port_u16().unwrap_or(80));
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr)).await {
                Err(_) => {
                    return Err(SendError::Connect(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "connect timed out",
                    )))
                }
                Ok(Err(e)) => return Err(SendError::Connect(e)),
                Ok(Ok(s)) => s,
            };
        let _ = stream.set_nodelay(true);
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(SendError::Request)?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// One client connection's upstream connection. Dropped with the client connection; its
/// upstream connection then goes to the shared pool.
pub struct Pinned {
    pool: Arc<Pool>,
    slot: Mutex<Option<(Authority, SendRequest<Body>)>>,
}

impl Pinned {
    /// Sends `req` (origin-form URI, Host set) to `authority` and returns the response head;
    /// the body streams from the upstream connection. `exclusive`: the client connection
    /// sends one request at a time (HTTP/1), so its pinned connection is this request's to
    /// wait for.
    pub async fn send(
        &self,
        authority: &Authority,
        req: Request<Body>,
        exclusive: bool,
    ) -> Result<Response<Incoming>, SendError> {
        let reused = self.take(authority, exclusive);
        let (sender, req) = match reused {
            Some(mut sender) => match sender.ready().await {
                Ok(()) => match sender.try_send_request(req).await {
                    Ok(res) => {
                        self.put(authority, sender);
                        return Ok(res);
                    }
                    Err(mut e) => match e.take_message() {
                        // Not sent: the idle connection was closed meanwhile. Retry once on
                        // a new connection (RFC 9110 §9.2.2 concerns requests that may have
                        // been processed; this one was not).
                        Some(req) => (self.pool.connect(authority).await?, req),
                        None => return Err(SendError::Request(e.into_error())),
                    },
                },
                Err(_) => (self.pool.connect(authority).await?, req),
            },
            None => (self.pool.connect(authority).await?, req),
        };
        let mut sender = sender;
        let res = sender.send_request(req).await.map_err(SendError::Request)?;
        self.put(authority, sender);
        Ok(res)
    }

    fn take(&self, authority: &Authority, exclusive: bool) -> Option<SendRequest<Body>> {
        let pinned = {
            let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
            match slot.take() {
                Some((a, s)) if &a == authority && !s.is_closed() => {
                    if exclusive || s.is_ready() {
                        Some(s)
                    } else {
                        // Still reading another stream's response: leave it pinned.
                        *slot = Some((a, s));
                        None
                    }
                }
                Some((a, s)) => {
                    drop(slot);
                    self.pool.put_idle(a, s);
                    None
                }
                None => None,
            }
        };
        pinned.or_else(|| self.pool.take_idle(authority))
    }

    fn put(&self, authority: &Authority, sender: SendRequest<Body>) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some((authority.clone(), sender));
        } else {
            drop(slot);
            self.pool.put_idle(authority.clone(), sender);
        }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let slot = self.slot.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some((authority, sender)) = slot.take() {
            self.pool.put_idle(authority, sender);
        }
    }
}
