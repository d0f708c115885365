//! Stage 6: hand an allowed request to its backend, a reverse-proxied upstream or a static
//! directory. Bodies stream both ways; nothing is buffered.

pub mod headers;
pub mod pool;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, LOCATION};
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Body as _;
use hyper::body::Incoming;
use tower::ServiceExt;
use tower_http::services::ServeDir;

use crate::accept::ClientReader;
use crate::body::Body;
use crate::coarse_timer::CoarseTimer;
use crate::config::{Backend, Config, Route, Upstream};
use crate::normalize::Target;
use crate::reason::Reason;

pub use pool::Pinned;

pub struct Forwarder {
    pool: std::sync::Arc<pool::Pool>,
    upstream_timeout: Duration,
    /// The upstream timeout's timer, started by the first proxied request (it needs the
    /// runtime that serves). Coarse: the 504 never comes early and at most one resolution
    /// late (a tenth of the timeout, kept between 5 ms and 1 s, plus scheduling delay), and a
    /// deadline set for every request costs ~1,000 instructions less than on tokio's timer
    /// (see `coarse_timer`).
    timer: std::sync::OnceLock<CoarseTimer>,
    /// One file server per static route, by route index.
    statics: HashMap<usize, ServeDir>,
}

impl Forwarder {
    pub fn new(config: &Config) -> Self {
        let statics = config
            .routes
            .iter()
            .filter_map(|r| match &r.backend {
                Backend::Static(dir) => Some((
                    r.index,
                    ServeDir::new(dir).append_index_html_on_directories(true),
                )),
                Backend::Upstream(_) | Backend::None => None,
            })
            .collect();
        Forwarder {
            // Twice max_connections: the upstream half of the open-file budget (`fd_limit`).
            pool: pool::Pool::new(
                config.server.upstream_connect_timeout,
                config.server.max_connections.saturating_mul(2),
            ),
            upstream_timeout: config.server.upstream_timeout,
            timer: std::sync::OnceLock::new(),
            statics,
        }
    }

    /// The upstream connection slot for a new client connection.
    pub fn pin(&self) -> Pinned {
        self.pool.pin()
    }

    /// Upstream connections open now, and the most that may be (see `pool`).
    pub fn upstream_connections(&self) -> (usize, usize) {
        self.pool.open()
    }

    /// Sends the request to the route's backend. `req` already carries the headers the backend
    /// may see (see [`headers::prepare_request`]). `pinned` is the client connection's, and
    /// `client` the read side of its socket.
    pub async fn forward(
        &self,
        pinned: &Pinned,
        client: Option<&ClientReader>,
        route: &Route,
        target: &Target,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Reason> {
        if let Some(max) = route.max_body {
            let declared = req
                .headers()
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max) {
                return Err(Reason::BodyTooLarge);
            }
        }
        match &route.backend {
            Backend::Upstream(up) => self.proxy(pinned, client, up, route, target, req).await,
            Backend::Static(_) => self.serve_static(route, target, req).await,
            Backend::None => Err(Reason::NoRoute),
        }
    }

    async fn proxy(
        &self,
        pinned: &Pinned,
        client: Option<&ClientReader>,
        upstream: &Upstream,
        route: &Route,
        target: &Target,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Reason> {
        let (mut parts, body) = req.into_parts();
        // An HTTP/1 client connection has one request in flight at a time (see `pool`).
        let exclusive = parts.version < Version::HTTP_2;
        // The backend receives exactly the normalised path the decision was made on, in
        // origin form (RFC 9112 §3.2.1); Host is set by `prepare_request`.
        // An origin-form target that normalisation left alone (the usual case) is sent as it
        // came; the query is never changed.
        let unchanged = parts.uri.scheme().is_none()
            && parts.uri.authority().is_none()
            && parts.uri.path() == target.path;
        if !unchanged {
            parts.uri = Uri::try_from(target.path_and_query())
                .map_err(|_| Reason::AmbiguousPath("a target that cannot be forwarded"))?;
        }
        parts.version = Version::HTTP_11;
        let body: Body = match route.max_body {
            // Nothing to stream (a GET, or a declared empty body): an empty body is boxed
            // without allocating, where wrapping hyper's would allocate the box.
            _ if body.is_end_stream() => crate::body::empty(),
            // A chunked body over the limit is cut off: the upstream sees an aborted request,
            // never a truncated one that looks complete.
            Some(max) => {
                Limited::new(body, usize::try_from(max).unwrap_or(usize::MAX)).boxed_unsync()
            }
            None => body.map_err(Into::into).boxed_unsync(),
        };
        let request = Request::from_parts(parts, body);
        let timer = self
            .timer
            .get_or_init(|| CoarseTimer::for_timeout(self.upstream_timeout));
        let mut send = std::pin::pin!(pinned.send(&upstream.authority, request, exclusive));
        let mut sleep = timer.sleep_for(self.upstream_timeout);
        let until = sleep.deadline();
        // An HTTP/1 client that goes away before the response head abandons the request
        // (dropping it closes its upstream connection), as nginx does by default
        // (`proxy_ignore_client_abort off`). The client is watched only once the request has
        // waited one tick of the timer (a tenth of `upstream_timeout`, 5 ms to 1 s), so it is
        // noticed one to two ticks after it left, and a quick answer costs nothing more. An
        // HTTP/2 stream's request runs in a task of its own, and hyper ends it when the
        // client resets the stream.
        let watch = client.filter(|_| exclusive);
        if watch.is_some() {
            let start = until
                .checked_sub(self.upstream_timeout)
                .unwrap_or_else(Instant::now);
            sleep.reset(until.min(start + timer.resolution()));
        }
        let mut gone: Option<crate::accept::Gone> = None;
        let answer = std::future::poll_fn(|cx| {
            if let Poll::Ready(answer) = send.as_mut().poll(cx) {
                return Poll::Ready(Ok(answer));
            }
            if let Some(g) = gone.as_mut() {
                if Pin::new(g).poll(cx).is_ready() {
                    return Poll::Ready(Err(Reason::ClientClosed));
                }
            }
            while Pin::new(&mut sleep).poll(cx).is_ready() {
                match watch {
                    Some(client) if gone.is_none() && sleep.deadline() < until => {
                        sleep.reset(until);
                        let mut g = client.gone();
                        if Pin::new(&mut g).poll(cx).is_ready() {
                            return Poll::Ready(Err(Reason::ClientClosed));
                        }
                        gone = Some(g);
                    }
                    _ => return Poll::Ready(Err(Reason::UpstreamTimeout)),
                }
            }
            Poll::Pending
        })
        .await?;
        let response = match answer {
            Err(pool::SendError::Request(e)) if body_over_limit(&e) => {
                return Err(Reason::BodyTooLarge)
            }
            // Counted and logged as a decision like any other; a warning per request would
            // flood the log exactly when the gateway is overloaded.
            Err(e @ pool::SendError::Busy { .. }) => {
                tracing::debug!(upstream = %upstream.authority, error = %e, "no upstream connection free");
                return Err(Reason::UpstreamBusy);
            }
            Err(e) => {
                tracing::warn!(upstream = %upstream.authority, error = %e, "upstream request failed");
                return Err(Reason::UpstreamUnavailable);
            }
            Ok(r) => r,
        };
        let (mut parts, body) = response.into_parts();
        headers::prepare_response(&mut parts.headers);
        // The body streams from the upstream; a client that goes away while it waits for the
        // upstream's next bytes (a server-sent event stream, a long poll) ends it, and with it
        // the upstream connection. HTTP/1 only, as above.
        let body = Watched {
            inner: body,
            gone: watch.map(ClientReader::gone),
        };
        Ok(Response::from_parts(parts, body.boxed_unsync()))
    }

    async fn serve_static(
        &self,
        route: &Route,
        target: &Target,
        req: Request<Incoming>,
    ) -> Result<Response<Body>, Reason> {
        let Some(serve) = self.statics.get(&route.index) else {
            return Err(Reason::NoRoute);
        };
        // The route prefix maps to the directory's root, like nginx's `alias`.
        let rest = if route.path == "/" {
            target.path.as_str()
        } else {
            target.path.strip_prefix(route.path.as_str()).unwrap_or("/")
        };
        let rest = if rest.is_empty() { "/" } else { rest };
        let (parts, _body) = req.into_parts();
        let mut inner = Request::new(Empty::<Bytes>::new());
        *inner.method_mut() = parts.method;
        *inner.headers_mut() = parts.headers;
        *inner.uri_mut() = rest
            .parse()
            .map_err(|_| Reason::AmbiguousPath("a target that cannot be served"))?;
        let response = match serve.clone().oneshot(inner).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let (mut parts, body) = response.into_parts();
        // ServeDir redirects `/dir` to `/dir/` relative to the path it saw; put the route
        // prefix back so the browser goes to the right place.
        if route.path != "/" {
            if let Some(loc) = parts.headers.get(LOCATION).and_then(|l| l.to_str().ok()) {
                if loc.starts_with('/') {
                    if let Ok(v) = HeaderValue::from_str(&format!("{}{loc}", route.path)) {
                        parts.headers.insert(LOCATION, v);
                    }
                }
            }
        }
        Ok(Response::from_parts(
            parts,
            body.map_err(Into::into).boxed_unsync(),
        ))
    }
}

/// An upstream's response body that, while it waits for the upstream, also watches for the
/// client going away ([`ClientReader::gone`]): then it ends in an error, which makes hyper
/// close the client connection and drop the upstream's.
struct Watched {
    inner: Incoming,
    gone: Option<crate::accept::Gone>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = crate::body::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                let gone = this
                    .gone
                    .as_mut()
                    .is_some_and(|g| Pin::new(g).poll(cx).is_ready());
                if gone {
                    let e = "the client closed the connection during the response";
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Pending
            }
            other => other.map(|frame| frame.map(|f| f.map_err(Into::into))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Whether a client error was caused by the request body passing `max_body` (the `Limited`
/// wrapper's error, somewhere in the source chain).
fn body_over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = err.source();
    }
    false
}
