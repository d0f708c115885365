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
//! - At most [`Pool::new`]'s `max_open` upstream connections are open at once, busy, pinned or
//!   idle: twice `max_connections`, the upstream half of the open-file budget (`fd_limit`).
//!   An HTTP/1 client connection holds at most one, but each waiting stream of an HTTP/2 client
//!   connection holds its own, so without a cap a few busy HTTP/2 clients could use up the
//!   open files and make `accept` fail for everyone. A request that finds every slot taken
//!   closes the oldest idle connection to another upstream, if there is one, and waits for a
//!   connection to come back to the pool or for a slot, until `upstream_connect_timeout`; then
//!   it gets 503 `upstream_busy`. While requests wait, a connection a request is done with goes
//!   to the shared pool rather than to its pin. Pinned connections cannot be taken back (an
//!   idle HTTP/1 client's, or one an HTTP/2 client's stream finished with before anyone
//!   waited), but there are at most `max_connections` of them: half the slots.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::Authority;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

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
    /// Every upstream connection slot stayed taken for `upstream_connect_timeout`.
    Busy { open: usize },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Connect(e) => write!(f, "cannot connect: {e}"),
            SendError::Request(e) => write!(f, "{e}"),
            SendError::Busy { open } => write!(
                f,
                "all {open} upstream connections stayed busy for upstream_connect_timeout"
            ),
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
    /// One permit per open upstream connection, held by the task that drives it, so a slot
    /// is free again once the connection has closed.
    slots: Arc<Semaphore>,
    max_open: usize,
    /// Requests waiting in [`Pool::wait`]: while there are any, a connection a request is
    /// done with goes to the shared pool, where they can take it, rather than to a pin.
    waiting: AtomicUsize,
    /// Woken when a connection goes back to the shared pool while requests wait.
    returned: Notify,
}

/// What a request waiting for a connection gets.
enum Slot {
    /// An idle connection to its upstream, given back meanwhile.
    Idle(SendRequest<Body>),
    /// Room to open a new one.
    Free(OwnedSemaphorePermit),
}

/// Counts a request in [`Pool::waiting`] for as long as it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Pool {
    /// `max_open`: the most upstream connections open at once (at least 1).
    pub fn new(connect_timeout: Duration, max_open: usize) -> Arc<Pool> {
        let max_open = max_open.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
            connect_timeout,
            slots: Arc::new(Semaphore::new(max_open)),
            max_open,
            waiting: AtomicUsize::new(0),
            returned: Notify::new(),
        })
    }

    /// Upstream connections open now (busy, pinned or idle), and the most that may be.
    pub fn open(&self) -> (usize, usize) {
        (
            self.max_open.saturating_sub(self.slots.available_permits()),
            self.max_open,
        )
    }

    fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
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
        drop(idle);
        if self.has_waiters() {
            self.returned.notify_waiters();
        }
    }

    /// Closes the oldest idle connection to an upstream other than `authority`, if any: its
    /// slot comes back once its task has seen it closed.
    fn close_idle_elsewhere(&self, authority: &Authority) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pos) = idle.iter().position(|i| &i.authority != authority) {
            drop(idle.remove(pos));
        }
    }

    /// Waits for a connection to `authority` to come back to the pool, or for a free slot,
    /// until `deadline`.
    async fn wait(
        &self,
        authority: &Authority,
        deadline: tokio::time::Instant,
    ) -> Result<Slot, SendError> {
        let _waiting = Waiting::new(&self.waiting);
        loop {
            // Registered before looking, so a connection returned in between wakes it.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(mut sender) = self.take_idle(authority) {
                // Given back after its response head: its body may still be arriving, and a
                // sender that is not ready refuses the request (hyper sends one at a time).
                tokio::select! {
                    ready = sender.ready() => match ready {
                        Ok(()) => return Ok(Slot::Idle(sender)),
                        Err(_) => continue,
                    },
                    () = tokio::time::sleep_until(deadline) => {
                        return Err(SendError::Busy { open: self.max_open });
                    }
                }
            }
            if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
                return Ok(Slot::Free(permit));
            }
            self.close_idle_elsewhere(authority);
            tokio::select! {
                permit = Arc::clone(&self.slots).acquire_owned() => {
                    // The semaphore is never closed.
                    return permit.map(Slot::Free).map_err(|_| SendError::Busy {
                        open: self.max_open,
                    });
                }
                () = &mut returned => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(SendError::Busy { open: self.max_open });
                }
            }
        }
    }

    /// A new connection to `authority`, or, when every slot is taken, one that another
    /// request gave back meanwhile (see [`Pool::wait`]).
    async fn connect(&self, authority: &Authority) -> Result<SendRequest<Body>, SendError> {
        let deadline = tokio::time::Instant::now() + self.connect_timeout;
        let permit = match Arc::clone(&self.slots).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => match self.wait(authority, deadline).await? {
                Slot::Idle(sender) => return Ok(sender),
                Slot::Free(permit) => permit,
            },
        };
        // `Authority::host` keeps an IPv6 literal's brackets; the resolver wants it bare.
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let addr = (host, authority.port_u16().unwrap_or(80));
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
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
            // The slot is this connection's until it closes.
            let _slot = permit;
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
        if slot.is_none() && !self.pool.has_waiters() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An HTTP/1.1 upstream on loopback that answers every request with `ok` after `delay`,
    /// the second byte of the body `pause` after the head and the first, and counts the
    /// connections it accepted.
    async fn upstream(delay: Duration, pause: Duration) -> (Authority, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let authority: Authority = listener
            .local_addr()
            .expect("addr")
            .to_string()
            .parse()
            .expect("authority");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        tokio::spawn(async move {
            // Bounded: each test opens a handful.
            for _ in 0..16 {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        // Requests without a body: each ends at the empty line.
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0);
                        buf.drain(..end + 4);
                        tokio::time::sleep(delay).await;
                        let head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no";
                        if stream.write_all(head).await.is_err() {
                            return;
                        }
                        tokio::time::sleep(pause).await;
                        if stream.write_all(b"k").await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (authority, accepted)
    }

    fn request(authority: &Authority) -> Request<Body> {
        Request::builder()
            .uri("/")
            .header(http::header::HOST, authority.as_str())
            .body(crate::body::empty())
            .expect("request")
    }

    /// Sends a request on `pinned` and reads the whole answer.
    async fn get(pinned: &Pinned, authority: &Authority) -> Result<String, SendError> {
        let res = pinned.send(authority, request(authority), true).await?;
        let body = res.into_body().collect().await.expect("body").to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn past_the_cap_a_request_waits_for_a_connection_to_come_back() {
        let (authority, accepted) = upstream(Duration::from_millis(200), Duration::ZERO).await;
        let pool = Pool::new(Duration::from_secs(5), 1);
        let (a, b) = (pool.pin(), pool.pin());
        let (ra, rb) = tokio::join!(get(&a, &authority), get(&b, &authority));
        assert_eq!(ra.expect("first").as_str(), "ok");
        assert_eq!(rb.expect("second").as_str(), "ok");
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one slot, one connection"
        );
        assert_eq!(pool.open(), (1, 1));
    }

    #[tokio::test]
    async fn a_request_that_finds_no_slot_in_time_is_busy() {
        let (authority, accepted) = upstream(Duration::from_secs(2), Duration::ZERO).await;
        let pool = Pool::new(Duration::from_millis(100), 1);
        let (a, b) = (pool.pin(), pool.pin());
        let slow = async {
            let _ = get(&a, &authority).await;
        };
        let waiting = async {
            // After the first request has taken the only slot.
            tokio::time::sleep(Duration::from_millis(20)).await;
            get(&b, &authority).await
        };
        let result = tokio::select! {
            () = slow => panic!("the slow request finished first"),
            r = waiting => r,
        };
        assert!(
            matches!(result, Err(SendError::Busy { open: 1 })),
            "{:?}",
            result.map_err(|e| e.to_string())
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_idle_connection_to_another_upstream_makes_room() {
        let (first, _) = upstream(Duration::ZERO, Duration::ZERO).await;
        let (second, accepted) = upstream(Duration::ZERO, Duration::ZERO).await;
        let pool = Pool::new(Duration::from_secs(5), 1);
        let a = pool.pin();
        assert_eq!(get(&a, &first).await.expect("first").as_str(), "ok");
        // Its connection goes to the shared pool, idle, holding the only slot.
        drop(a);
        assert_eq!(pool.open(), (1, 1));
        let b = pool.pin();
        assert_eq!(get(&b, &second).await.expect("second").as_str(), "ok");
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        assert_eq!(
            pool.open(),
            (1, 1),
            "the idle connection was closed for the new one"
        );
    }

    #[tokio::test]
    async fn a_waiter_given_a_connection_whose_body_is_still_streaming_waits_for_it() {
        let authority = upstream(Duration::from_millis(200), Duration::from_millis(300))
            .await
            .0;
        let pool = Pool::new(Duration::from_secs(5), 1);
        let (a, b) = (pool.pin(), pool.pin());
        let first = async {
            let res = a
                .send(&authority, request(&authority), true)
                .await
                .expect("first");
            res.into_body().collect().await.expect("body").to_bytes()
        };
        let second = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            match b.send(&authority, request(&authority), true).await {
                Ok(res) => Ok(res.into_body().collect().await.expect("body").to_bytes()),
                Err(e) => Err(e.to_string()),
            }
        };
        let (ra, rb) = tokio::join!(first, second);
        assert_eq!(&ra[..], b"ok");
        assert_eq!(rb.as_deref(), Ok(&b"ok"[..]), "second: {rb:?}");
    }

    /// Cancelling a waiter leaves `waiting` at 0.
    #[tokio::test]
    async fn a_cancelled_waiter_is_no_longer_counted() {
        let authority = upstream(Duration::from_millis(200), Duration::from_secs(2))
            .await
            .0;
        let pool = Pool::new(Duration::from_secs(5), 1);
        let (a, b) = (pool.pin(), pool.pin());
        let _first = tokio::spawn({
            let pool = Arc::clone(&pool);
            let authority = authority.clone();
            async move {
                let a = pool.pin();
                let _r = a.send(&authority, request(&authority), true).await;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
        });
        drop(a);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r = tokio::time::timeout(
            Duration::from_millis(100),
            b.send(&authority, request(&authority), true),
        )
        .await;
        assert!(r.is_err());
        assert_eq!(pool.open(), (1, 1));
        assert_eq!(pool.waiting.load(Ordering::SeqCst), 0);
    }
}
