//! The floor of authgate's HTTP stack, for `bench/run` and `bench/icount`: hyper configured
//! the way authgate configures it, doing nothing else.
//!
//! ```text
//! cargo build --release -p authgate --example hyper_floor
//! target/release/examples/hyper_floor 127.0.0.1:8080 127.0.0.1:9000
//! ```
//!
//! A request with an `Authorization` header, whatever it says, is proxied unchanged to the
//! upstream; one without it gets a 401 with a Basic challenge. No credential is checked, no
//! header is cleaned or added, nothing is logged. So this is what any gateway built on these
//! crates costs per request before it does any of a gateway's work, and authgate's figures
//! minus this program's are what authgate's own work costs.
//!
//! Configured as in `authgate serve` (accept.rs, forward/pool.rs, main.rs): the same
//! allocator (mimalloc), the same runtime (`authgate::serve::runtime`), the same connection
//! settings (`authgate::accept::http_builder`: HTTP/1.1 + h2c, the header read timeout, the
//! header size limits) and hyper's HTTP/1.1 client on one upstream connection per client
//! connection.
//!
//! Not a gateway: it authenticates nobody. Never put it in front of anything.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self as client, SendRequest};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: authgate_alloc::MiMalloc = authgate_alloc::MiMalloc;

type Body = Either<Incoming, Full<Bytes>>;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream), None) = (args.next(), args.next(), args.next()) else {
        eprintln!(
            "usage: hyper_floor LISTEN_ADDR UPSTREAM_ADDR (e.g. 127.0.0.1:8080 127.0.0.1:9000)"
        );
        std::process::exit(2);
    };
    let (Ok(listen), Ok(upstream)) = (listen.parse::<SocketAddr>(), upstream.parse::<SocketAddr>())
    else {
        eprintln!("hyper_floor: the addresses must be IP:PORT");
        std::process::exit(2);
    };
    let runtime = authgate::serve::runtime().unwrap_or_else(|e| {
        eprintln!("hyper_floor: cannot start the runtime: {e}");
        std::process::exit(1);
    });
    // SIGTERM (how bench/run stops servers) ends `main` normally, so that a build instrumented
    // for profile-guided optimisation writes its profile on the way out (scripts/build-pgo).
    let served = runtime.block_on(async {
        tokio::select! {
            r = serve(listen, upstream) => r,
            () = terminated() => Ok(()),
        }
    });
    if let Err(e) = served {
        eprintln!("hyper_floor: {e}");
        std::process::exit(1);
    }
}

async fn serve(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    // authgate's connection settings with its default header_timeout and max_header_bytes.
    let builder = authgate::accept::http_builder(Duration::from_secs(10), 16 * 1024);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(a) => a,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // This client connection's upstream connection, opened by its first proxied request.
        let pinned: Arc<Mutex<Option<SendRequest<Incoming>>>> = Arc::new(Mutex::new(None));
        let service = service_fn(move |req| {
            let pinned = Arc::clone(&pinned);
            async move { Ok::<_, Infallible>(handle(req, upstream, &pinned).await) }
        });
        let builder = builder.clone();
        tokio::spawn(async move {
            let _ = builder
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn terminated() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            term.recv().await;
        }
        Err(_) => std::future::pending().await,
    }
}

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    pinned: &Mutex<Option<SendRequest<Incoming>>>,
) -> Response<Body> {
    if !req.headers().contains_key(AUTHORIZATION) {
        // RFC 9110 §11.6.1: a 401 carries a challenge.
        let mut res = Response::new(Either::Right(Full::new(Bytes::from_static(
            b"401 Unauthorized\n",
        ))));
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        res.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"bench\", charset=\"UTF-8\""),
        );
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        return res;
    }
    let mut sender = pinned.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(s) = &mut sender {
        if s.ready().await.is_err() {
            sender = None;
        }
    }
    if sender.is_none() {
        sender = connect(upstream).await;
    }
    let Some(mut sender) = sender else {
        return bad_gateway();
    };
    let res = sender.send_request(req).await;
    *pinned.lock().unwrap_or_else(|e| e.into_inner()) = Some(sender);
    match res {
        Ok(res) => res.map(Either::Left),
        Err(_) => bad_gateway(),
    }
}

async fn connect(upstream: SocketAddr) -> Option<SendRequest<Incoming>> {
    let stream = TcpStream::connect(upstream).await.ok()?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = client::handshake(TokioIo::new(stream)).await.ok()?;
    tokio::spawn(conn);
    Some(sender)
}

fn bad_gateway() -> Response<Body> {
    let mut res = Response::new(Either::Right(Full::new(Bytes::from_static(
        b"502 Bad Gateway\n",
    ))));
    *res.status_mut() = StatusCode::BAD_GATEWAY;
    res
}
