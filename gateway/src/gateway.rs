//! The request path, assembled in one function in reading order:
//! normalize -> route -> authenticate -> authorize -> forward, with every denial answered by
//! [`respond::deny`] and every decision written to the audit log.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use http::header::{HeaderValue, ACCEPT};
use http::{HeaderMap, Request, Response};
use hyper::body::Incoming;
use ipnet::IpNet;

use crate::audit::{AuditLog, Record};
use crate::authenticate::jwt::JwtVerifier;
use crate::authenticate::lockout::Lockout;
use crate::authenticate::{self, Authenticators, Identity, Outcome, Presented};
use crate::authorize::{authorize, Decision};
use crate::body::Body;
use crate::clock::Clock;
use crate::config::{Config, Route, Scheme};
use crate::forward::headers::{self, Forwarding};
use crate::forward::Forwarder;
use crate::forward_auth;
use crate::insights::Insights;
use crate::metrics::Metrics;
use crate::normalize::{normalize, Target};
use crate::reason::Reason;
use crate::respond;
use crate::route::Router;
use crate::store::Live;
use crate::users::{Directory, UserDb};

/// The user, token and key sources a configuration names, opened.
#[derive(Default)]
pub struct Sources {
    pub users: Option<Arc<Directory>>,
    pub store: Option<Arc<Live>>,
    pub jwt: Option<Arc<JwtVerifier>>,
}

impl Sources {
    /// Opens the htpasswd file's live view, the store (creating it on first use) and the
    /// JWT keys (fetching a JWKS URL). Fails with a message for the operator.
    pub async fn open(config: &Config) -> anyhow::Result<Sources> {
        let htpasswd = config
            .users
            .as_ref()
            .map(|u| Arc::new(UserDb::new(u.htpasswd.clone(), u.initial.clone())));
        let store = match &config.store {
            Some(path) => {
                let path = path.clone();
                Some(
                    tokio::task::spawn_blocking(move || Live::open(&path))
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?
                        .map_err(|e| anyhow::anyhow!("cannot open the store: {e}"))?,
                )
            }
            None => None,
        };
        let users = (htpasswd.is_some() || store.is_some())
            .then(|| Arc::new(Directory::new(htpasswd, store.clone())));
        let jwt = match &config.jwt {
            Some(j) => Some(
                JwtVerifier::new(j.clone())
                    .await
                    .map_err(|e| anyhow::anyhow!("[jwt]: {e}"))?,
            ),
            None => None,
        };
        Ok(Sources { users, store, jwt })
    }
}

/// What the requests of one client connection share, made once when it is accepted.
pub struct Connection {
    peer: SocketAddr,
    /// The peer is one of `trusted_proxies`.
    peer_trusted: bool,
    /// The peer's address as the value of `X-Forwarded-For`: the whole list unless the peer
    /// is a trusted proxy that sent a list of its own (which is extended per request).
    forwarded_for: Option<HeaderValue>,
    /// The connection's upstream connection slot (see `forward::pool`).
    pinned: crate::forward::Pinned,
    /// The last Basic credentials verified on this connection.
    remembered: authenticate::basic::Remembered,
    /// The read side of the client's socket, for noticing a client that goes away while its
    /// request waits for the upstream. None where there is no socket (tests).
    client: Option<crate::accept::ClientReader>,
}

pub struct Gateway {
    config: Config,
    router: Router,
    authenticators: Authenticators,
    forwarder: Forwarder,
    audit: AuditLog,
    metrics: Arc<Metrics>,
    lockout: Arc<Lockout>,
    insights: Insights,
    clock: Clock,
    /// The sign-in and sign-out pages, when there is a store for sessions.
    signin: Option<crate::signin::SignIn>,
    /// Each route's `WWW-Authenticate` value, rendered once, by route index.
    challenges: Vec<Option<HeaderValue>>,
    /// Each route's label for the audit log and the dashboard, made once, by route index.
    labels: Vec<Arc<str>>,
    /// `[server]`'s identity header names, parsed once.
    identity_names: headers::IdentityNames,
    /// Lockout refusals being held (`lockout.tarpit`): at most [`TARPIT_HELD`] at once.
    tarpit_slots: tokio::sync::Semaphore,
    /// Set once `serve` has stopped waiting for open connections: a request dropped after
    /// that was cut off by the shutdown, not by its client (see [`Pending`]).
    stopped: Arc<std::sync::atomic::AtomicBool>,
}

/// Lockout refusals held at once; past this, a refusal goes out without waiting. Each held
/// one keeps a connection (or an HTTP/2 stream) and a timer, and behind a proxy one of the
/// proxy's connections to authgate: the bound keeps a flood from turning the tarpit into a
/// way to tie those up. Never more than a quarter of `max_connections` either (see
/// [`tarpit_held`]), so held refusals cannot take the connections real users need.
const TARPIT_HELD: usize = 1024;

/// How many lockout refusals may be held at once with `max_connections` connections.
fn tarpit_held(max_connections: usize) -> usize {
    TARPIT_HELD.min(max_connections / 4)
}

impl Gateway {
    pub fn new(config: Config, sources: Sources, audit: AuditLog, metrics: Arc<Metrics>) -> Self {
        let clock = Clock::from_env();
        let lockout = Arc::new(Lockout::new(config.lockout.clone(), clock.clone()));
        let signin = sources
            .store
            .is_some()
            .then(|| crate::signin::SignIn::new(&config.sessions, &config.server.realm));
        Gateway {
            signin,
            router: Router::new(&config.routes),
            authenticators: Authenticators::new(
                &config,
                sources.users,
                sources.store,
                sources.jwt,
                Arc::clone(&metrics),
                Arc::clone(&lockout),
                clock.clone(),
            ),
            clock,
            metrics,
            lockout,
            insights: Insights::default(),
            forwarder: Forwarder::new(&config),
            identity_names: headers::IdentityNames::new(&config.server.identity_headers),
            challenges: by_route_index(&config.routes, None, |r| {
                respond::challenge_header(&authenticate::challenges(r, None))
            }),
            labels: by_route_index(&config.routes, Arc::from(""), |r| Arc::from(r.label())),
            tarpit_slots: tokio::sync::Semaphore::new(tarpit_held(config.server.max_connections)),
            stopped: Arc::default(),
            audit,
            config,
        }
    }

    /// The flag `serve` sets once it no longer waits for open connections: the requests still
    /// running are then dropped with the runtime, and logged as cut off by the shutdown.
    pub fn stopped_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        Arc::clone(&self.stopped)
    }

    /// Whether the client reached us over TLS as far as cookies are concerned (see
    /// `SignIn::secure`).
    fn secure(&self, headers: &HeaderMap, peer_trusted: bool) -> bool {
        self.signin
            .as_ref()
            .is_some_and(|s| s.secure(headers, peer_trusted))
    }

    /// Drops ended sessions from memory (and, at the next flush, from the store).
    pub fn sweep_sessions(&self) {
        if let Some(sessions) = self.authenticators.sessions() {
            sessions.sweep(self.clock.now().as_secs());
        }
    }

    pub fn lockout(&self) -> &Lockout {
        &self.lockout
    }

    pub fn insights(&self) -> &Insights {
        &self.insights
    }

    /// Upstream connections open now, and the most that may be (twice `max_connections`).
    pub fn upstream_connections(&self) -> (usize, usize) {
        self.forwarder.upstream_connections()
    }

    /// The audit log's file, when it is written to one.
    pub fn audit_file(&self) -> Option<&std::path::Path> {
        match &self.config.server.audit_log {
            crate::config::AuditTarget::File(p) => Some(p),
            _ => None,
        }
    }

    /// Authenticates an admin for the dashboard: Basic against the same users, then the
    /// `[admin] users` list. Returns the user name.
    pub async fn admin_identity(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
    ) -> Result<String, Reason> {
        let Some(admin) = &self.config.admin else {
            return Err(Reason::Forbidden);
        };
        let route = Route {
            index: usize::MAX,
            host: None,
            path: "/".into(),
            backend: crate::config::Backend::None,
            auth: vec![crate::config::Scheme::Basic],
            realm: "authgate admin".into(),
            allow: Some(crate::config::Allow {
                users: admin.users.iter().cloned().collect(),
                groups: Default::default(),
            }),
            pass_authorization: false,
            max_body: None,
            scopes: Vec::new(),
        };
        let presented = Presented::new(headers, None, client, false);
        match self.authenticators.authenticate(&route, &presented).await {
            Outcome::Authenticated(id) => match authorize(&route, &id) {
                Decision::Allow => Ok(id.user),
                Decision::Deny(reason) => Err(reason),
            },
            Outcome::Anonymous => Err(Reason::MissingCredentials),
            Outcome::Denied(reason, _) => Err(reason),
        }
    }

    /// Decides a request without serving it (`authgate explain --config`): the same normalize,
    /// route, authenticate and authorize stages as [`Gateway::handle`], with the decision
    /// returned as an audit record instead of a response. Nothing is forwarded.
    pub async fn dry_run(&self, req: &Request<()>, client: IpAddr) -> Record {
        let mut record = Record {
            client_ip: client,
            method: req.method().clone(),
            path: req.uri().path().to_string(),
            ..Record::default()
        };
        let target = match normalize(req, self.config.server.max_header_bytes) {
            Ok(t) => t,
            Err(reason) => {
                dry_deny(&mut record, &reason);
                return record;
            }
        };
        record.path.clone_from(&target.path);
        match self
            .admit(&target, req.headers(), false, None, &mut record)
            .await
        {
            Ok(_) => {
                record.outcome = "allow";
                record.status = 200;
            }
            Err((reason, _)) => dry_deny(&mut record, &reason),
        }
        record
    }

    /// What the requests of a new client connection from `peer` share.
    pub fn connection(
        &self,
        peer: SocketAddr,
        client: Option<crate::accept::ClientReader>,
    ) -> Connection {
        let peer_trusted = is_trusted(&self.config.server.trusted_proxies, peer.ip());
        let forwarded_for = {
            let mut s = String::new();
            crate::ascii::push_ip(&mut s, peer.ip());
            HeaderValue::from_str(&s).ok()
        };
        Connection {
            peer,
            peer_trusted,
            forwarded_for,
            pinned: self.forwarder.pin(),
            remembered: authenticate::basic::Remembered::default(),
            client,
        }
    }

    /// Answers one request. Never fails: every problem becomes a response with a reason.
    pub async fn handle(&self, req: Request<Incoming>, conn: &Connection) -> Response<Body> {
        let started = Instant::now();
        let (peer, peer_trusted) = (conn.peer, conn.peer_trusted);
        // One value, shared (not copied) by the upstream's request, the client's response and
        // the audit record.
        let id = request_id(req.headers(), peer_trusted);
        let client_ip = client_address(
            req.headers(),
            peer.ip(),
            peer_trusted,
            &self.config.server.trusted_proxies,
        );
        let mut record = Record {
            client_ip,
            peer: Some(peer),
            method: req.method().clone(),
            request_id: id.clone(),
            ..Record::default()
        };
        let mut pending = Pending {
            gateway: self,
            record: &mut record,
            answered: false,
            target: req.uri().path_and_query().cloned(),
            started,
        };
        // `request_id` keeps only visible ASCII, so the text is always there.
        let mut response = self
            .decide(req, conn, id.to_str().unwrap_or(""), &id, pending.record)
            .await;
        // Answered: the record is written below, not by `Pending`.
        pending.answered = true;
        drop(pending);

        response.headers_mut().insert(headers::X_REQUEST_ID, id);
        record.status = response.status().as_u16();
        record.latency = started.elapsed();
        // A lockout refusal (a ban, or too many guesses in flight), whether answered 429 or,
        // to forward auth, 403.
        let held = (record.reason == Some(Reason::TooManyFailures { retry_after: 0 }.code())
            && !self.config.lockout.tarpit.is_zero())
        .then(|| self.tarpit_slots.try_acquire().ok())
        .flatten();
        self.metrics.decision(record.route_index, record.reason);
        self.insights.record(&record);
        self.audit.write(record);
        if let Some(_slot) = held {
            // The refusal waits (`lockout.tarpit`), after the decision has been recorded, so
            // a client that leaves meanwhile loses nothing from the log. Retry-After (RFC 6585
            // §4) counts from the answer's arrival, so it reads at most `tarpit` long.
            tokio::time::sleep(self.config.lockout.tarpit).await;
        }
        response
    }

    /// Counts and logs a request that ended without an answer: its future was dropped
    /// before [`Gateway::decide`] returned (see [`Pending`]). Cold, and kept out of line, so
    /// that the answered path's code stays as it was laid out.
    #[cold]
    #[inline(never)]
    fn abandoned(&self, mut record: Record, sent_path: &str, started: Instant) {
        // The path is in the record once the decision no longer needs it; before that, the
        // one the client sent.
        if record.path.is_empty() {
            record.path = sent_path.to_owned();
        }
        let reason = if self.stopped.load(std::sync::atomic::Ordering::Acquire) {
            Reason::Shutdown
        } else {
            Reason::ClientClosed
        };
        record.outcome = "deny";
        record.reason = Some(reason.code());
        record.detail = reason.audit_detail();
        record.status = reason.status().as_u16();
        record.latency = started.elapsed();
        self.metrics.decision(record.route_index, record.reason);
        self.insights.record(&record);
        self.audit.write(record);
    }

    async fn decide(
        &self,
        req: Request<Incoming>,
        conn: &Connection,
        request_id: &str,
        id_header: &HeaderValue,
        record: &mut Record,
    ) -> Response<Body> {
        let peer_trusted = conn.peer_trusted;
        if let Some(fa) = &self.config.forward_auth {
            if req.uri().path() == fa.path {
                record.path = fa.path.clone();
                return self
                    .forward_auth(&req, peer_trusted, request_id, record)
                    .await;
            }
        }
        // The sign-in pages come before routing: no route can put them behind a sign-in.
        if let Some(signin) = &self.signin {
            let path = req.uri().path();
            if path == crate::signin::SIGNIN_PATH || path == crate::signin::SIGNOUT_PATH {
                record.path = path.to_owned();
                return signin
                    .handle(
                        req,
                        &self.authenticators,
                        &self.clock,
                        record.client_ip,
                        peer_trusted,
                        record,
                    )
                    .await;
            }
        }
        // Normalize: one reading of host and path, refused if servers could disagree on it.
        let target = match normalize(&req, self.config.server.max_header_bytes) {
            Ok(t) => t,
            Err(reason) => {
                // The audit log has the path as the client sent it.
                record.path = req.uri().path().to_owned();
                return self.deny(reason, None, request_id, req.headers(), record);
            }
        };
        // The audit log has the normalised path: `target.path` moves into the record once the
        // decision no longer needs it (on every way out below), rather than being copied.

        // Route, authenticate, authorize.
        let secure = self.secure(req.headers(), peer_trusted);
        let admitted = self
            .admit(
                &target,
                req.headers(),
                secure,
                Some(&conn.remembered),
                record,
            )
            .await;
        let (route, identity) = match admitted {
            Ok(admitted) => admitted,
            Err((reason, route)) => {
                // A browser opening a page of a session route goes to the sign-in page;
                // every other client gets the 401 (see `signin`'s rule).
                let to_sign_in = route
                    .as_ref()
                    .is_some_and(|r| r.auth.contains(&Scheme::Session))
                    && reason.status() == http::StatusCode::UNAUTHORIZED
                    && crate::signin::is_navigation(req.method(), req.headers());
                if to_sign_in {
                    self.deny(
                        reason.clone(),
                        route.as_ref(),
                        request_id,
                        req.headers(),
                        record,
                    );
                    let redirect =
                        crate::signin::redirect_to_sign_in(&target.path_and_query(), &reason);
                    record.path = target.path;
                    return redirect;
                }
                record.path = target.path;
                return self.deny(reason, route.as_ref(), request_id, req.headers(), record);
            }
        };
        let route = &route;

        // Forward: clean the headers, then stream to the backend.
        let mut req = req;
        headers::prepare_request(
            req.headers_mut(),
            &Forwarding {
                identity: identity.as_ref(),
                names: &self.identity_names,
                peer: conn.peer.ip(),
                peer_trusted,
                forwarded_for: conn.forwarded_for.as_ref(),
                authority: &target.authority,
                request_id: Some(id_header),
                pass_authorization: route.pass_authorization,
            },
        );
        // The session cookie is authgate's, not the app's.
        if let Some(sessions) = self.authenticators.sessions() {
            headers::strip_cookies(req.headers_mut(), |name| sessions.is_session_cookie(name));
        }
        // The request moves into the backend; keep what the answer to a backend failure needs.
        let accept = req.headers().get(ACCEPT).cloned();
        let forwarded = self
            .forwarder
            .forward(&conn.pinned, conn.client.as_ref(), route, &target, req)
            .await;
        record.path = target.path;
        match forwarded {
            Ok(mut response) => {
                record.outcome = "allow";
                if let Some(id) = &identity {
                    headers::make_private(response.headers_mut());
                    if id.method == Scheme::Session {
                        // The same URL answers differently per session cookie.
                        response
                            .headers_mut()
                            .append(http::header::VARY, HeaderValue::from_static("Cookie"));
                    }
                }
                response
            }
            Err(reason) => {
                let mut headers = HeaderMap::new();
                if let Some(v) = accept {
                    headers.insert(ACCEPT, v);
                }
                self.deny(reason, Some(route), request_id, &headers, record)
            }
        }
    }

    /// Stages 3 to 5, shared by the gateway and the forward-auth endpoint: the route for the
    /// target, who is asking, and whether they may. On a denial, the route (if one matched) is
    /// returned for its challenges.
    async fn admit(
        &self,
        target: &Target,
        headers: &HeaderMap,
        secure: bool,
        remembered: Option<&authenticate::basic::Remembered>,
        record: &mut Record,
    ) -> Result<(Arc<Route>, Option<Identity>), (Reason, Option<Arc<Route>>)> {
        // Route: host first, then the longest path prefix.
        let route = self.router.route(target.host(), &target.path);
        if self
            .router
            .case_conflict(target.host(), &target.path, route)
        {
            return Err((
                Reason::AmbiguousPath("a path whose letter case selects another route"),
                None,
            ));
        }
        let Some(route) = route else {
            return Err((Reason::NoRoute, None));
        };
        record.route = Some(match self.labels.get(route.index) {
            Some(label) => Arc::clone(label),
            None => Arc::from(route.label()),
        });
        record.route_index = Some(route.index);

        // Authenticate: the Authorization header becomes an identity, or a reason.
        let mut presented =
            Presented::new(headers, target.query.as_deref(), record.client_ip, secure);
        presented.remembered = remembered;
        record.token = presented.authorization.and_then(presented_token_id);
        let identity = match self.authenticators.authenticate(route, &presented).await {
            Outcome::Anonymous => None,
            Outcome::Authenticated(id) => {
                record.user = Some(id.user.clone());
                record.scheme = Some(id.method.name());
                Some(id)
            }
            Outcome::Denied(reason, attempted) => {
                record.user = attempted;
                return Err((reason, Some(Arc::clone(route))));
            }
        };

        // Authorize: a known user who is not on the route's allow list gets 403.
        if let Some(id) = &identity {
            if let Decision::Deny(reason) = authorize(route, id) {
                return Err((reason, Some(Arc::clone(route))));
            }
        }
        Ok((Arc::clone(route), identity))
    }

    /// The forward-auth endpoint: decides for the request a trusted proxy describes in
    /// `X-Forwarded-*` / `X-Original-*` headers, with the same routes, authenticators and
    /// reasons as the gateway. Answers only 200, 401 and 403, the statuses nginx's
    /// `auth_request` understands (anything else becomes a 500 there).
    async fn forward_auth(
        &self,
        req: &Request<Incoming>,
        peer_trusted: bool,
        request_id: &str,
        record: &mut Record,
    ) -> Response<Body> {
        let deny =
            |this: &Self, reason: Reason, route: Option<&Arc<Route>>, record: &mut Record| {
                let mut r = this.deny(reason.clone(), route, request_id, req.headers(), record);
                forward_auth::finish_denial(&mut r, &reason);
                r
            };
        // Only the proxies in trusted_proxies may describe a request: anyone else could ask
        // about one request and send another.
        if !peer_trusted {
            return deny(self, Reason::UntrustedForwardAuth, None, record);
        }
        let original = match forward_auth::original_request(req) {
            Ok(o) => o,
            Err(reason) => return deny(self, reason, None, record),
        };
        record.method = original.method().clone();
        let target = match normalize(&original, self.config.server.max_header_bytes) {
            Ok(t) => t,
            Err(reason) => return deny(self, reason, None, record),
        };
        record.path.clone_from(&target.path);
        // The question comes from a trusted proxy: its X-Forwarded-Proto is the client's.
        let secure = self.secure(req.headers(), true);
        match self
            .admit(&target, original.headers(), secure, None, record)
            .await
        {
            Ok((_, identity)) => {
                record.outcome = "allow";
                forward_auth::allow(identity.as_ref(), &self.config.server.identity_headers)
            }
            Err((reason, route)) => {
                let mut r = deny(self, reason.clone(), route.as_ref(), record);
                // A browser on a session route is sent to sign in, as far as the proxy can
                // express it (see forward_auth::sign_in).
                let to_sign_in = route
                    .as_ref()
                    .is_some_and(|r| r.auth.contains(&Scheme::Session))
                    && reason.status() == http::StatusCode::UNAUTHORIZED
                    && crate::signin::is_navigation(original.method(), original.headers());
                if to_sign_in {
                    let location =
                        crate::signin::sign_in_location(&target.path_and_query(), &reason);
                    forward_auth::sign_in(&mut r, &location, req.headers());
                }
                r
            }
        }
    }

    fn deny(
        &self,
        reason: Reason,
        route: Option<&Arc<Route>>,
        request_id: &str,
        request_headers: &HeaderMap,
        record: &mut Record,
    ) -> Response<Body> {
        record.outcome = "deny";
        record.reason = Some(reason.code());
        record.detail = reason.audit_detail();
        // RFC 6750 §3: a bearer failure names its error in the Bearer challenge, so that
        // value is built per answer; every other denial uses the route's pre-rendered one.
        // Only a route that accepts Bearer has such a challenge: for the others the request's
        // Authorization is not looked up again.
        let bearer_error = route
            .filter(|r| r.auth.contains(&Scheme::Bearer))
            .and_then(|_| {
                let presented_token = request_headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(bearer_credentials)
                    .is_some();
                if presented_token {
                    reason.bearer_error_for_token()
                } else {
                    reason.bearer_error()
                }
            });
        let dynamic;
        let challenges = match route {
            Some(r) if bearer_error.is_some() => {
                dynamic = respond::challenge_header(&authenticate::challenges_with(
                    r,
                    Some(&reason),
                    bearer_error,
                ));
                dynamic.as_ref()
            }
            Some(r) => self.challenges.get(r.index).and_then(Option::as_ref),
            None => None,
        };
        respond::deny(&reason, challenges, request_id, request_headers)
    }
}

/// `value` of each route, at its index (a route's index is its place in the file); `empty`
/// where no route has that index.
fn by_route_index<T: Clone>(routes: &[Route], empty: T, value: impl Fn(&Route) -> T) -> Vec<T> {
    let mut by_index = Vec::new();
    for r in routes {
        if by_index.len() <= r.index {
            by_index.resize(r.index + 1, empty.clone());
        }
        if let Some(slot) = by_index.get_mut(r.index) {
            *slot = value(r);
        }
    }
    by_index
}

/// The id of a well-formed authgate API token in `Authorization: Bearer` (the public part
/// before the secret), for the audit log. Anything else is not logged: it may be a secret.
fn presented_token_id(authorization: &HeaderValue) -> Option<String> {
    let token = std::str::from_utf8(bearer_credentials(authorization)?).ok()?;
    authenticate::token::split(token.trim()).map(|(id, _)| id.to_owned())
}

/// What follows `Bearer ` (the scheme in any case) in an `Authorization` value; None for
/// every other scheme, without reading the value further.
fn bearer_credentials(authorization: &HeaderValue) -> Option<&[u8]> {
    let value = authorization.as_bytes();
    value
        .get(..7)?
        .eq_ignore_ascii_case(b"bearer ")
        .then(|| value.get(7..))
        .flatten()
}

fn dry_deny(record: &mut Record, reason: &Reason) {
    record.outcome = "deny";
    record.status = reason.status().as_u16();
    record.reason = Some(reason.code());
    record.detail = reason.audit_detail();
}

fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical_ip(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

/// `::ffff:127.0.0.1` is 127.0.0.1 for trust decisions.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
fn client_address(
    headers: &HeaderMap,
    peer: IpAddr,
    peer_trusted: bool,
    trusted: &[IpNet],
) -> IpAddr {
    if !peer_trusted {
        return canonical_ip(peer);
    }
    let chain: Vec<IpAddr> = headers
        .get_all(headers::X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    chain
        .iter()
        .rev()
        .copied()
        .find(|ip| !is_trusted(trusted, *ip))
        .or_else(|| chain.first().copied())
        .unwrap_or(canonical_ip(peer))
}

/// A request's audit record while its answer is being decided. hyper drops a request's
/// future when an HTTP/2 client resets the stream or closes the connection (a browser
/// leaving a page does), and every request still running when `serve` gives up waiting at
/// the end of `shutdown_timeout` is dropped with the runtime; either may have reached the
/// upstream by then. Dropped with its record still here, it is counted and logged rather than
/// vanishing from the audit log: as abandoned by its client, 499 `client_closed`, as an
/// HTTP/1 client's leaving is (`forward`), or, after the shutdown, as `shutdown`.
struct Pending<'a> {
    gateway: &'a Gateway,
    record: &'a mut Record,
    answered: bool,
    /// The target as sent, for the record's path until the normalised one is in it. A clone
    /// shares the request's bytes.
    target: Option<http::uri::PathAndQuery>,
    started: Instant,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if !self.answered {
            let path = self.target.as_ref().map_or("", |t| t.path());
            self.gateway
                .abandoned(std::mem::take(self.record), path, self.started);
        }
    }
}

/// A trusted proxy's `X-Request-Id` is kept so one id follows the request end to end; from
/// anyone else, or if it is not a short visible token, a new random id is made.
fn request_id(headers: &HeaderMap, peer_trusted: bool) -> HeaderValue {
    if peer_trusted {
        if let Some(v) = headers.get(headers::X_REQUEST_ID) {
            let v = v.as_bytes();
            let sane = (1..=128).contains(&v.len())
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b));
            // Copied: the request's own value shares its connection's read buffer, which
            // the audit record would keep alive until it is written.
            if let Some(v) = sane.then(|| HeaderValue::from_bytes(v).ok()).flatten() {
                return v;
            }
        }
    }
    // 128 bits of SipHash-1-3 over a process-wide counter under a key drawn at start:
    // unique, unpredictable to clients and revealing nothing about how many requests came
    // before, for a fraction of a CSPRNG draw on the request path. One 128-bit hash, not two
    // 64-bit ones. The key lives only in this static, which has no `Debug`.
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static KEY: OnceLock<siphasher::sip128::SipHasher13> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let key = KEY.get_or_init(|| {
        use rand::RngCore;
        let mut key = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut key);
        siphasher::sip128::SipHasher13::new_with_key(&key)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 32];
    for (pair, b) in id
        .chunks_exact_mut(2)
        .zip(key.hash(&n.to_le_bytes()).as_bytes())
    {
        pair.copy_from_slice(&crate::ascii::hex(b));
    }
    // One allocation, shared by reference count with every copy of the value (a copied
    // `HeaderValue` made from a slice allocates again on its first clone).
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(id))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tarpit_holds_at_most_a_quarter_of_the_connections() {
        assert_eq!(tarpit_held(10_000), TARPIT_HELD);
        assert_eq!(tarpit_held(320), 80);
        assert_eq!(tarpit_held(8), 2);
        assert_eq!(tarpit_held(3), 0);
    }

    #[test]
    fn client_address_skips_trusted_hops() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().expect("net")];
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 1.2.3.4, 10.0.0.2"),
        );
        let peer: IpAddr = "10.0.0.1".parse().expect("ip");
        assert_eq!(
            client_address(&h, peer, true, &trusted).to_string(),
            "1.2.3.4"
        );
        assert_eq!(
            client_address(&h, peer, false, &trusted).to_string(),
            "10.0.0.1"
        );
    }

    #[test]
    fn request_ids() {
        let request_id =
            |h: &HeaderMap, trusted| request_id(h, trusted).to_str().expect("ascii").to_owned();
        let mut h = HeaderMap::new();
        h.insert("x-request-id", HeaderValue::from_static("abc-1"));
        assert_eq!(request_id(&h, true), "abc-1");
        assert_ne!(request_id(&h, false), "abc-1");
        assert_eq!(request_id(&h, false).len(), 32);
        h.insert("x-request-id", HeaderValue::from_static("a b"));
        assert_ne!(request_id(&h, true), "a b");
        // The audit log writes ids without escaping: nothing JSON escapes gets through.
        h.insert("x-request-id", HeaderValue::from_static("a\"b\\c"));
        assert_eq!(request_id(&h, true).len(), 32);
        // Generated ids: 32 lower-case hex digits, no two alike, and no visible count
        // (consecutive ids share no prefix beyond chance).
        let ids: Vec<String> = (0..10_000).map(|_| request_id(&h, false)).collect();
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b"0123456789abcdef".contains(&b))));
        let distinct: std::collections::HashSet<&String> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        let shared_prefix = ids
            .windows(2)
            .filter(|w| w[0].get(..8) == w[1].get(..8))
            .count();
        assert!(
            shared_prefix < 5,
            "{shared_prefix} neighbours share 8 hex digits"
        );
    }
}
