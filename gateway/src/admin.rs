//! The admin listener: separate from the gateway's, off by default, on loopback by default.
//!
//! - `GET /metrics` (Prometheus text format) and `GET /healthz`: open, for scrapers;
//! - `GET /dashboard`, `GET /api/summary`, `POST /api/unban`: only for the users listed in
//!   `[admin] users`, with Basic authentication against the same user file as the gateway.
//!   `POST` also needs the header `X-Authgate-Admin: 1`, which a cross-site form cannot send
//!   and a cross-site `fetch` cannot send without a CORS preflight this listener never
//!   approves: that is the CSRF protection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use authgate_proto::basic::basic_challenge;
use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::body::{full, Body};
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::reason::Reason;

const DASHBOARD: &str = include_str!("dashboard.html");

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, gateway: Arc<Gateway>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let metrics = Arc::clone(&metrics);
        let gateway = Arc::clone(&gateway);
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let metrics = Arc::clone(&metrics);
                let gateway = Arc::clone(&gateway);
                async move { Ok::<_, Infallible>(answer(req, peer, &metrics, &gateway).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[derive(Deserialize)]
struct Unban {
    kind: String,
    client: Option<String>,
    user: Option<String>,
}

async fn answer(
    req: Request<Incoming>,
    peer: SocketAddr,
    metrics: &Metrics,
    gateway: &Gateway,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/metrics") => {
            let mut out = metrics.render();
            Metrics::render_upstream_connections(&mut out, gateway.upstream_connections());
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                out,
            )
        }
        (&Method::GET, "/healthz") => text(StatusCode::OK, "text/plain", "ok\n".into()),
        (&Method::GET, p) if p.starts_with("/api/explain/") => {
            if let Err(r) = gateway.admin_identity(req.headers(), peer.ip()).await {
                return denied(&r, gateway);
            }
            explain(p.trim_start_matches("/api/explain/"), gateway).await
        }
        (&Method::GET, "/dashboard")
        | (&Method::GET, "/api/summary")
        | (&Method::POST, "/api/unban") => {
            if let Err(r) = gateway.admin_identity(req.headers(), peer.ip()).await {
                return denied(&r, gateway);
            }
            match path.as_str() {
                "/dashboard" => text(StatusCode::OK, "text/html; charset=utf-8", DASHBOARD.into()),
                "/api/summary" => {
                    let body = serde_json::json!({
                        "summary": gateway.insights().summary(),
                        "bans": gateway.lockout().bans(),
                    });
                    text(StatusCode::OK, "application/json", body.to_string())
                }
                _ => unban(req, gateway).await,
            }
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found: the admin listener serves /metrics, /healthz and /dashboard\n".into(),
        ),
    }
}

async fn unban(req: Request<Incoming>, gateway: &Gateway) -> Response<Body> {
    if req
        .headers()
        .get("x-authgate-admin")
        .map(HeaderValue::as_bytes)
        != Some(b"1")
    {
        return text(
            StatusCode::FORBIDDEN,
            "text/plain",
            "POST needs the header X-Authgate-Admin: 1\n".into(),
        );
    }
    let body = match Limited::new(req.into_body(), 4096).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let Ok(u) = serde_json::from_slice::<Unban>(&body) else {
        return text(
            StatusCode::BAD_REQUEST,
            "text/plain",
            "send {\"kind\": \"client|user|pair\", \"client\": \"IP\", \"user\": \"NAME\"}\n"
                .into(),
        );
    };
    let done = gateway
        .lockout()
        .unban(&u.kind, u.client.as_deref(), u.user.as_deref());
    tracing::info!(kind = %u.kind, client = ?u.client, user = ?u.user, done, "unban from the dashboard");
    text(
        StatusCode::OK,
        "application/json",
        serde_json::json!({ "unbanned": done }).to_string(),
    )
}

/// The trace of one decision: a recent denial from memory, anything else from the audit log
/// file (when the audit log is a file).
async fn explain(id: &str, gateway: &Gateway) -> Response<Body> {
    if let Some(trace) = gateway.insights().trace(id) {
        return text(StatusCode::OK, "text/plain; charset=utf-8", trace + "\n");
    }
    if let Some(path) = gateway.audit_file().map(std::path::Path::to_path_buf) {
        let id = id.to_string();
        let found =
            tokio::task::spawn_blocking(move || crate::explain::from_audit_log(&path, &id)).await;
        if let Ok(Ok(Some(trace))) = found {
            return text(StatusCode::OK, "text/plain; charset=utf-8", trace + "\n");
        }
    }
    text(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "no decision with that request id (recent denials are kept in memory; everything else needs audit_log = \"FILE\")\n".into(),
    )
}

fn denied(reason: &Reason, gateway: &Gateway) -> Response<Body> {
    let _ = gateway;
    let mut r = text(
        reason.status(),
        "text/plain; charset=utf-8",
        format!("{}\n", reason.title()),
    );
    if reason.challenges() {
        if let Ok(v) = HeaderValue::from_str(&basic_challenge("authgate admin").to_string()) {
            r.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
    }
    r
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
