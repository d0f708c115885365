//! The HTTP side: send the request as a careful client would, follow redirects one hop at
//! a time, and resolve every host seen.
//!
//! Like browsers (Fetch §4.4 "HTTP-redirect fetch") and curl (without
//! `--location-trusted`), `Authorization` is sent only to the origin of the URL given:
//! a redirect to another origin drops it. Cookies from a jar follow their own domain and
//! path rules. `https` hops go through rustls (see [`super::tls`]); a failed handshake is
//! an answer of its own ([`FetchError::Tls`]).

use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::challenge;
use super::digest::Digest;
use super::input::{Credentials, Request};
use super::tls::{self, TlsProblem};

/// The doctor's client: HTTP/1.1 over TCP, or over rustls for `https`.
type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// The most redirects followed before giving up (browsers allow 20, curl 50; 10 is plenty
/// to see a loop).
pub const MAX_REDIRECTS: usize = 10;
/// Each request, connection included, must answer within this.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Bodies are read up to this many bytes: enough for a problem document.
const MAX_BODY: usize = 64 * 1024;
/// Sent so that servers that speak RFC 9457 answer with a problem document.
const ACCEPT: &str = "application/problem+json, */*;q=0.5";
/// After refused credentials, at most this many related URLs of the same origin are tried
/// with them (see [`related_urls`]). Each is one more failed sign-in for servers that count
/// them (fail2ban, authgate's lockout), so the number stays small.
pub const MAX_RELATED: usize = 4;

/// Which variant of the request a trace is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// No credentials and no cookies.
    Anonymous,
    /// The credentials given (and the cookies, if a jar was given).
    Credentials,
    /// The jar's cookies alone, or with the credentials when both were given.
    Cookies,
}

impl Attempt {
    pub fn label(self) -> &'static str {
        match self {
            Self::Anonymous => "without credentials",
            Self::Credentials => "with credentials",
            Self::Cookies => "with cookies",
        }
    }
}

/// Why a hop got no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The TLS handshake failed: what kind of failure, and rustls' words.
    Tls { problem: TlsProblem, detail: String },
    /// Could not connect (refused, unreachable, DNS): the error chain as text.
    Connect(String),
    /// No answer within the timeout.
    Timeout,
    /// The answer was not HTTP, or the connection broke mid-answer.
    Protocol(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tls { detail, .. } => write!(f, "TLS: {detail}"),
            Self::Connect(e) => write!(f, "could not connect: {e}"),
            Self::Timeout => write!(f, "no answer within {} s", TIMEOUT.as_secs()),
            Self::Protocol(e) => write!(f, "broken answer: {e}"),
        }
    }
}

/// Something about a redirect hop that changes what a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedirectNote {
    /// To another scheme/host/port: clients drop `Authorization` here.
    CrossOrigin { from: String, to: String },
    /// From https to http: credentials and cookies marked Secure are dropped, and anything
    /// sent would travel in clear.
    Downgrade,
    /// Only a trailing slash was added or removed.
    TrailingSlash,
    /// The path differs only in letter case.
    CaseChange,
}

impl fmt::Display for RedirectNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CrossOrigin { from, to } => write!(
                f,
                "redirect from origin {from} to another origin {to}: browsers and curl drop the Authorization header here"
            ),
            Self::Downgrade => f.write_str(
                "redirect from https to http: clients drop credentials (and Secure cookies) here",
            ),
            Self::TrailingSlash => f.write_str(
                "the redirect only adds or removes a trailing slash: use the final URL directly to save a round trip (and a credential drop on some clients)",
            ),
            Self::CaseChange => f.write_str(
                "the redirect only changes the letter case of the path: the server treats paths case-sensitively",
            ),
        }
    }
}

/// One request and what came back.
#[derive(Debug, Clone)]
pub struct Hop {
    pub method: Method,
    pub url: Uri,
    pub sent_credentials: bool,
    pub sent_cookies: usize,
    pub outcome: Result<Answer, FetchError>,
    /// About the redirect that led here.
    pub notes: Vec<RedirectNote>,
}

/// An HTTP answer, with its body capped at [`MAX_BODY`].
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `Location` of a redirect, if this is one.
    pub fn location(&self) -> Option<&str> {
        if matches!(self.status.as_u16(), 301 | 302 | 303 | 307 | 308) {
            self.header("location")
        } else {
            None
        }
    }

    /// The server's clock from `Date` (RFC 9110 §6.6.1).
    pub fn date(&self) -> Option<SystemTime> {
        httpdate::parse_http_date(self.header("date")?).ok()
    }
}

/// One request followed to its end.
#[derive(Debug, Clone)]
pub struct Trace {
    pub attempt: Attempt,
    pub hops: Vec<Hop>,
    pub too_many_redirects: bool,
}

impl Trace {
    /// The last hop.
    pub fn last(&self) -> Option<&Hop> {
        self.hops.last()
    }

    /// The final answer, when the last hop got one.
    pub fn answer(&self) -> Option<&Answer> {
        self.last().and_then(|h| h.outcome.as_ref().ok())
    }

    /// The final status.
    pub fn status(&self) -> Option<u16> {
        self.answer().map(|a| a.status.as_u16())
    }

    /// Every redirect note with the index of the hop it led to.
    pub fn notes(&self) -> impl Iterator<Item = (usize, &RedirectNote)> {
        self.hops
            .iter()
            .enumerate()
            .flat_map(|(i, h)| h.notes.iter().map(move |n| (i, n)))
    }
}

/// A host and what it resolves to.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub host: String,
    pub port: u16,
    pub addresses: Result<Vec<IpAddr>, String>,
}

/// How `--user` credentials were answered to a Digest-only server.
#[derive(Debug, Clone)]
pub enum DigestUse {
    /// Digest was computed from the challenge (the password never crossed the wire).
    Answered {
        realm: String,
        algorithm: String,
        /// The first answer said `stale=true` and the doctor retried with the new nonce.
        stale_renewed: bool,
    },
    /// The server offers only Digest in a form the doctor cannot answer: why.
    Unanswerable(String),
}

/// How a related URL is related to the one refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// The same path with a trailing slash added or removed.
    TrailingSlash,
    /// An ancestor directory of the path (`/a/b/c` -> `/a/b/`, `/a/`, `/`).
    Parent,
}

impl Relation {
    /// The stable code shown in JSON (`probes[].relation`).
    pub fn code(self) -> &'static str {
        match self {
            Self::TrailingSlash => "trailing_slash",
            Self::Parent => "parent",
        }
    }
}

/// One related URL tried after the credentials were refused: first without credentials
/// (to read its challenge's realm), then, if it asks for the scheme sent, with them.
#[derive(Debug, Clone)]
pub struct Probe {
    pub url: Uri,
    pub relation: Relation,
    /// The status without credentials (redirects are not followed).
    pub anonymous: Result<u16, FetchError>,
    /// The realm of its challenge for the scheme sent, if it asked for that scheme.
    pub realm: Option<String>,
    /// The status with the same credentials; `None` when they were not sent there.
    pub with_credentials: Option<Result<u16, FetchError>>,
    /// Why the credentials were not sent there.
    pub skipped: Option<String>,
}

impl Probe {
    /// The credentials passed authentication there: asked for them (401 without), the
    /// server then answered 2xx, or a 3xx, 403, 404, 405 or 410 that it gives only after
    /// authentication (a directory without an index is a 403 or 404 on nginx and Apache).
    /// Another 401, a 429 (lockout) or a 5xx is not acceptance.
    pub fn accepted(&self) -> bool {
        matches!(self.anonymous, Ok(401))
            && matches!(
                self.with_credentials,
                Some(Ok(s)) if (200..400).contains(&s) || matches!(s, 403 | 404 | 405 | 410)
            )
    }
}

/// Related URLs tried with the refused credentials, to tell a wrong password from
/// credentials that belong to another protection space (RFC 9110 §11.5, RFC 7617 §2.2).
#[derive(Debug, Clone)]
pub struct Related {
    /// `Basic` or `Digest`: the scheme the credentials went out with.
    pub scheme: &'static str,
    /// The realm of the refusing URL's challenge.
    pub realm: Option<String>,
    /// In the order tried; the probing stops at the first URL that accepts them.
    pub probes: Vec<Probe>,
}

/// Everything the doctor saw.
#[derive(Debug)]
pub struct Findings {
    /// Set when `--user` met a server that asks for Digest and not Basic.
    pub digest: Option<DigestUse>,
    pub anonymous: Trace,
    pub credentials: Option<Trace>,
    /// With the jar's cookies (and the credentials if any).
    pub cookies: Option<Trace>,
    /// Set when the credentials were refused with a 401: related URLs tried with them.
    pub related: Option<Related>,
    pub resolved: Vec<Resolved>,
    pub local_time: SystemTime,
}

impl Findings {
    /// The trace the verdict is about: the one with everything the user gave.
    pub fn decisive(&self) -> &Trace {
        self.cookies
            .as_ref()
            .or(self.credentials.as_ref())
            .unwrap_or(&self.anonymous)
    }

    /// The scheme the credentials went out with, when it is not the one given (Digest
    /// computed from `--user`).
    pub fn sent_scheme(&self) -> Option<&'static str> {
        matches!(self.digest, Some(DigestUse::Answered { .. })).then_some("Digest")
    }

    /// Every trace, in the order tried.
    pub fn traces(&self) -> impl Iterator<Item = &Trace> {
        std::iter::once(&self.anonymous)
            .chain(self.credentials.as_ref())
            .chain(self.cookies.as_ref())
    }
}

/// Runs every attempt and resolves every host seen.
pub async fn run(request: &Request) -> Findings {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config((*request.tls.config).clone())
        .https_or_http()
        .enable_http1()
        .build();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(connector);
    let fixed = request.credentials.as_ref().and_then(|c| c.authorization());
    let anonymous = follow(&client, request, Attempt::Anonymous, &|_, _| None, false).await;

    // `--user` against a server that asks for Digest and not Basic: answer Digest, as
    // curl --anyauth and browsers do.
    let mut digest = None;
    let mut digest_use = None;
    if let Some(Credentials::Basic { .. }) = &request.credentials {
        if let Some(answer) = anonymous.answer().filter(|a| a.status.as_u16() == 401) {
            let report = challenge::Report::of(answer);
            if report.find("Basic").is_none() {
                match Digest::choose(&report.challenges) {
                    Some(Ok(d)) => digest = Some(d),
                    Some(Err(why)) => digest_use = Some(DigestUse::Unanswerable(why)),
                    None => {}
                }
            }
        }
    }
    let nc = std::cell::Cell::new(0u32);
    let cnonce = format!("{:032x}", rand::random::<u128>());
    let digest_auth = |d: &Digest, method: &Method, url: &Uri| -> Option<HeaderValue> {
        let Some(Credentials::Basic { user, password }) = &request.credentials else {
            return None;
        };
        nc.set(nc.get() + 1);
        let target = url.path_and_query().map_or("/", |p| p.as_str());
        let value = d.authorization(
            user,
            password.expose(),
            method.as_str(),
            target,
            nc.get(),
            &cnonce,
        );
        let mut v = HeaderValue::from_str(&value.to_string()).ok()?;
        v.set_sensitive(true);
        Some(v)
    };

    let credentials = if let Some(d) = &digest {
        let mut trace = follow(
            &client,
            request,
            Attempt::Credentials,
            &|m, u| digest_auth(d, m, u),
            false,
        )
        .await;
        // RFC 7616 §3.3: stale=true means the password was right but the nonce had
        // expired; a client retries once with the new nonce without asking the user.
        let renewed = trace
            .answer()
            .filter(|a| a.status.as_u16() == 401)
            .and_then(|a| Digest::choose(&challenge::Report::of(a).challenges))
            .and_then(Result::ok)
            .filter(|fresh| fresh.stale);
        let stale_renewed = renewed.is_some();
        if let Some(fresh) = renewed {
            nc.set(0);
            trace = follow(
                &client,
                request,
                Attempt::Credentials,
                &|m, u| digest_auth(&fresh, m, u),
                false,
            )
            .await;
        }
        digest_use = Some(DigestUse::Answered {
            realm: d.realm.clone(),
            algorithm: d.algorithm_name.clone(),
            stale_renewed,
        });
        Some(trace)
    } else {
        match &fixed {
            Some(a) => Some(
                follow(
                    &client,
                    request,
                    Attempt::Credentials,
                    &|_, _| Some(a.clone()),
                    false,
                )
                .await,
            ),
            None => None,
        }
    };
    let cookies = if request.cookies.is_empty() {
        None
    } else {
        let trace = match (&digest, &fixed) {
            (Some(d), _) => {
                follow(
                    &client,
                    request,
                    Attempt::Cookies,
                    &|m, u| digest_auth(d, m, u),
                    true,
                )
                .await
            }
            (None, Some(a)) => {
                follow(
                    &client,
                    request,
                    Attempt::Cookies,
                    &|_, _| Some(a.clone()),
                    true,
                )
                .await
            }
            (None, None) => follow(&client, request, Attempt::Cookies, &|_, _| None, true).await,
        };
        Some(trace)
    };
    let related = match &credentials {
        Some(trace) => probe_related(&client, request, trace, digest.as_ref(), &cnonce).await,
        None => None,
    };
    let local_time = SystemTime::now();
    let mut resolved: Vec<Resolved> = Vec::new();
    let traces = std::iter::once(&anonymous)
        .chain(credentials.as_ref())
        .chain(cookies.as_ref());
    for hop in traces.flat_map(|t| t.hops.iter()) {
        let Some((host, port)) = host_port(&hop.url) else {
            continue;
        };
        if resolved.iter().any(|r| r.host == host && r.port == port) {
            continue;
        }
        let addresses = resolve(&host, port).await;
        resolved.push(Resolved {
            host,
            port,
            addresses,
        });
    }
    Findings {
        digest: digest_use,
        anonymous,
        credentials,
        cookies,
        related,
        resolved,
        local_time,
    }
}

/// After a 401 to credentials the doctor can send elsewhere (Basic, or Digest computed from
/// `--user`), tries them on at most [`MAX_RELATED`] related URLs of the same origin. Each
/// is asked first without credentials, for its challenge's realm; the credentials go only
/// where that challenge asks for the scheme sent. Redirects are not followed, so nothing
/// leaves the origin. Stops at the first URL that accepts them.
async fn probe_related(
    client: &HttpClient,
    request: &Request,
    trace: &Trace,
    digest: Option<&Digest>,
    cnonce: &str,
) -> Option<Related> {
    let last = trace.last().filter(|h| h.sent_credentials)?;
    let answer = last.outcome.as_ref().ok()?;
    if answer.status != StatusCode::UNAUTHORIZED {
        return None;
    }
    let creds = request.credentials.as_ref()?;
    let scheme = match (digest, creds) {
        (Some(_), _) => "Digest",
        (None, Credentials::Basic { .. }) => "Basic",
        (None, Credentials::Raw { scheme, .. }) if scheme.eq_ignore_ascii_case("Basic") => "Basic",
        // A bearer token or a precomputed Digest answer means nothing at another URL.
        _ => return None,
    };
    let refused = challenge::Report::of(answer);
    // A server that does not ask for what was sent is a scheme mismatch, not a realm one.
    let realm = refused.find(scheme)?.realm().map(str::to_owned);
    let covered: Vec<&Uri> = trace.hops.iter().map(|h| &h.url).collect();
    let mut probes = Vec::new();
    for (url, relation) in related_urls(&last.url, &covered) {
        let probe = probe_one(client, request, scheme, url, relation, cnonce).await;
        let accepted = probe.accepted();
        probes.push(probe);
        if accepted {
            break;
        }
    }
    Some(Related {
        scheme,
        realm,
        probes,
    })
}

async fn probe_one(
    client: &HttpClient,
    request: &Request,
    scheme: &'static str,
    url: Uri,
    relation: Relation,
    cnonce: &str,
) -> Probe {
    let mut probe = Probe {
        url,
        relation,
        anonymous: Err(FetchError::Timeout),
        realm: None,
        with_credentials: None,
        skipped: None,
    };
    let anonymous = send(client, request, &Method::GET, &probe.url, None, None).await;
    probe.anonymous = anonymous
        .as_ref()
        .map(|a| a.status.as_u16())
        .map_err(Clone::clone);
    let answer = match anonymous {
        Ok(a) if a.status == StatusCode::UNAUTHORIZED => a,
        Ok(a) if a.status.is_success() => {
            probe.skipped = Some("it needs no credentials".into());
            return probe;
        }
        Ok(a) => {
            probe.skipped = Some(format!(
                "it answers {} without credentials",
                a.status.as_u16()
            ));
            return probe;
        }
        Err(_) => {
            probe.skipped = Some("no answer without credentials".into());
            return probe;
        }
    };
    let report = challenge::Report::of(&answer);
    let Some(asked) = report.find(scheme) else {
        probe.skipped = Some(format!(
            "it asks for {}, not {scheme}",
            if report.challenges.is_empty() {
                "no scheme".to_owned()
            } else {
                report.schemes().join(", ")
            }
        ));
        return probe;
    };
    probe.realm = asked.realm().map(str::to_owned);
    let authorization = match (scheme, &request.credentials) {
        ("Digest", Some(Credentials::Basic { user, password })) => {
            match Digest::choose(&report.challenges) {
                Some(Ok(d)) => {
                    probe.realm = Some(d.realm.clone());
                    let target = probe.url.path_and_query().map_or("/", |p| p.as_str());
                    let value = d.authorization(user, password.expose(), "GET", target, 1, cnonce);
                    HeaderValue::from_str(&value.to_string()).ok()
                }
                Some(Err(why)) => {
                    probe.skipped = Some(why);
                    return probe;
                }
                None => None,
            }
        }
        (_, Some(c)) => c.authorization(),
        (_, None) => None,
    };
    let Some(mut authorization) = authorization else {
        probe.skipped = Some("the credentials cannot be sent there".into());
        return probe;
    };
    authorization.set_sensitive(true);
    let with = send(
        client,
        request,
        &Method::GET,
        &probe.url,
        Some(&authorization),
        None,
    )
    .await;
    probe.with_credentials = Some(with.map(|a| a.status.as_u16()));
    probe
}

/// The URLs of the same origin worth trying refused credentials on, nearest first and at
/// most [`MAX_RELATED`]: the path with its trailing slash toggled, then each ancestor
/// directory (`/a/b/c` -> `/a/b/`, `/a/`, `/`). URLs already requested (`covered`, e.g.
/// a trailing-slash redirect) are left out; queries are dropped.
pub fn related_urls(url: &Uri, covered: &[&Uri]) -> Vec<(Uri, Relation)> {
    let path = url.path();
    let mut paths: Vec<(String, Relation)> = Vec::new();
    if path != "/" && !path.is_empty() {
        let toggled = match path.strip_suffix('/') {
            Some(p) => p.to_owned(),
            None => format!("{path}/"),
        };
        if !toggled.is_empty() {
            paths.push((toggled, Relation::TrailingSlash));
        }
    }
    let mut rest = path.trim_end_matches('/');
    while let Some(i) = rest.rfind('/') {
        let parent = rest.get(..=i).unwrap_or("/");
        paths.push((parent.to_owned(), Relation::Parent));
        rest = parent.trim_end_matches('/');
    }
    let scheme = url.scheme_str().unwrap_or("http");
    let Some(authority) = url.authority() else {
        return Vec::new();
    };
    let here = origin(url);
    let mut out: Vec<(Uri, Relation)> = Vec::new();
    for (p, relation) in paths {
        let Ok(candidate) = format!("{scheme}://{authority}{p}").parse::<Uri>() else {
            continue;
        };
        let seen = |u: &Uri| origin(u) == here && u.path() == candidate.path();
        if candidate.path() == path
            || covered.iter().any(|u| seen(u))
            || out.iter().any(|(u, _)| seen(u))
        {
            continue;
        }
        out.push((candidate, relation));
        if out.len() == MAX_RELATED {
            break;
        }
    }
    out
}

async fn resolve(host: &str, port: u16) -> Result<Vec<IpAddr>, String> {
    match tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let mut out: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !out.contains(&a.ip()) {
                    out.push(a.ip());
                }
            }
            Ok(out)
        }
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no DNS answer within 10 s".into()),
    }
}

/// The host (without IPv6 brackets) and the port, defaulted by scheme.
pub fn host_port(url: &Uri) -> Option<(String, u16)> {
    let host = url.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_u16().unwrap_or(match url.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    Some((host.to_ascii_lowercase(), port))
}

/// `scheme://host:port`, lower-case, port always shown (RFC 6454 §4).
pub fn origin(url: &Uri) -> String {
    let scheme = url.scheme_str().unwrap_or("http").to_ascii_lowercase();
    match host_port(url) {
        Some((host, port)) if host.contains(':') => format!("{scheme}://[{host}]:{port}"),
        Some((host, port)) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://"),
    }
}

async fn follow(
    client: &HttpClient,
    request: &Request,
    attempt: Attempt,
    authorization: &dyn Fn(&Method, &Uri) -> Option<HeaderValue>,
    with_cookies: bool,
) -> Trace {
    let start_origin = origin(&request.url);
    let mut url = request.url.clone();
    let mut method = request.method.clone();
    let mut notes = Vec::new();
    let mut hops: Vec<Hop> = Vec::new();
    for _ in 0..=MAX_REDIRECTS {
        let same_origin = origin(&url) == start_origin;
        let auth = if same_origin {
            authorization(&method, &url)
        } else {
            None
        };
        let cookie = if with_cookies {
            cookie_header(request, &url)
        } else {
            None
        };
        let sent_cookies = cookie.as_ref().map_or(0, |(n, _)| *n);
        let outcome = send(
            client,
            request,
            &method,
            &url,
            auth.as_ref(),
            cookie.map(|(_, v)| v),
        )
        .await;
        let next = outcome
            .as_ref()
            .ok()
            .and_then(|a| Some((a.status.as_u16(), a.location()?.to_owned())));
        hops.push(Hop {
            method: method.clone(),
            url: url.clone(),
            sent_credentials: auth.is_some(),
            sent_cookies,
            outcome,
            notes: std::mem::take(&mut notes),
        });
        let Some((status, location)) = next else {
            return Trace {
                attempt,
                hops,
                too_many_redirects: false,
            };
        };
        let Some(target) = resolve_reference(&url, &location) else {
            // A Location that is not a URI reference: stop here, the answer is the last hop.
            return Trace {
                attempt,
                hops,
                too_many_redirects: false,
            };
        };
        notes = redirect_notes(&url, &target);
        // RFC 9110 §15.4.4: 303 turns the method into GET; browsers do the same for
        // POST on 301/302 (§15.4.2, §15.4.3 note).
        if (status == 303 && method != Method::HEAD)
            || (matches!(status, 301 | 302) && method == Method::POST)
        {
            method = Method::GET;
        }
        url = target;
    }
    Trace {
        attempt,
        hops,
        too_many_redirects: true,
    }
}

/// The `Cookie` header a client would send to `url` from the jar: (count, value).
fn cookie_header(request: &Request, url: &Uri) -> Option<(usize, HeaderValue)> {
    let (host, _) = host_port(url)?;
    let https = url.scheme_str() == Some("https");
    let pairs: Vec<String> = request
        .cookies
        .iter()
        .filter(|c| c.matches(&host, url.path(), https))
        .map(|c| format!("{}={}", c.name, c.value.expose()))
        .collect();
    if pairs.is_empty() {
        return None;
    }
    let mut v = HeaderValue::from_str(&pairs.join("; ")).ok()?;
    v.set_sensitive(true);
    Some((pairs.len(), v))
}

async fn send(
    client: &HttpClient,
    request: &Request,
    method: &Method,
    url: &Uri,
    authorization: Option<&HeaderValue>,
    cookie: Option<HeaderValue>,
) -> Result<Answer, FetchError> {
    let mut builder = http::Request::builder()
        .method(method.clone())
        .uri(url.clone())
        .header(header::ACCEPT, ACCEPT)
        .header(
            header::USER_AGENT,
            concat!("authgate-doctor/", env!("CARGO_PKG_VERSION")),
        );
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    if let Some(a) = authorization {
        builder = builder.header(header::AUTHORIZATION, a);
    }
    if let Some(c) = cookie {
        builder = builder.header(header::COOKIE, c);
    }
    let req = builder
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError::Protocol(e.to_string()))?;
    let exchange = async {
        let resp = client.request(req).await.map_err(|e| {
            let chain = error_chain(&e);
            if let Some((problem, detail)) = tls::find_error(&e) {
                FetchError::Tls { problem, detail }
            } else if e.is_connect() {
                FetchError::Connect(chain)
            } else {
                FetchError::Protocol(chain)
            }
        })?;
        let (parts, body) = resp.into_parts();
        // A body that breaks off or is too long is kept as far as it came: the head is
        // what matters.
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .unwrap_or(Err(FetchError::Timeout))
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// What changes between two hops of a redirect.
fn redirect_notes(from: &Uri, to: &Uri) -> Vec<RedirectNote> {
    let mut notes = Vec::new();
    let (a, b) = (origin(from), origin(to));
    if from.scheme_str() == Some("https") && to.scheme_str() == Some("http") {
        notes.push(RedirectNote::Downgrade);
    }
    if a != b {
        notes.push(RedirectNote::CrossOrigin { from: a, to: b });
    }
    let (p, q) = (from.path(), to.path());
    if p != q {
        if p.trim_end_matches('/') == q.trim_end_matches('/') {
            notes.push(RedirectNote::TrailingSlash);
        } else if p.eq_ignore_ascii_case(q)
            || p.trim_end_matches('/')
                .eq_ignore_ascii_case(q.trim_end_matches('/'))
        {
            notes.push(RedirectNote::CaseChange);
        }
    }
    notes
}

/// Resolves a `Location` against the URL it came from (RFC 3986 §5.2, without dot-segment
/// removal, which servers rarely need).
pub fn resolve_reference(base: &Uri, location: &str) -> Option<Uri> {
    let location = location.trim();
    if location.is_empty() {
        return None;
    }
    if let Ok(u) = location.parse::<Uri>() {
        if u.scheme().is_some() && u.authority().is_some() {
            return Some(u);
        }
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority()?.as_str();
    let full = if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else if location.starts_with('?') {
        format!("{scheme}://{authority}{}{location}", base.path())
    } else {
        let path = base.path();
        let dir = path
            .rfind('/')
            .map_or("/", |i| path.get(..=i).unwrap_or("/"));
        format!("{scheme}://{authority}{dir}{location}")
    };
    full.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn resolves_locations() {
        let base: Uri = "http://a.example:8080/x/y?q=1".parse().unwrap();
        let r = |l: &str| resolve_reference(&base, l).map(|u| u.to_string());
        assert_eq!(r("http://b/z").as_deref(), Some("http://b/z"));
        assert_eq!(r("//c/z").as_deref(), Some("http://c/z"));
        assert_eq!(r("/z").as_deref(), Some("http://a.example:8080/z"));
        assert_eq!(r("z").as_deref(), Some("http://a.example:8080/x/z"));
        assert_eq!(r("?p=2").as_deref(), Some("http://a.example:8080/x/y?p=2"));
        assert_eq!(r(""), None);
    }

    #[test]
    fn related_urls_are_slash_then_parents_bounded() {
        let r = |u: &str, covered: &[&str]| {
            let covered: Vec<Uri> = covered.iter().map(|c| c.parse().unwrap()).collect();
            let refs: Vec<&Uri> = covered.iter().collect();
            related_urls(&u.parse().unwrap(), &refs)
                .into_iter()
                .map(|(u, rel)| format!("{} {}", u, rel.code()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            r("http://h:8/admin/x?q=1", &[]),
            [
                "http://h:8/admin/x/ trailing_slash",
                "http://h:8/admin/ parent",
                "http://h:8/ parent"
            ]
        );
        assert_eq!(
            r("http://h/a/b/", &[]),
            [
                "http://h/a/b trailing_slash",
                "http://h/a/ parent",
                "http://h/ parent"
            ]
        );
        assert_eq!(r("http://h/", &[]), Vec::<String>::new());
        assert_eq!(r("http://h", &[]), Vec::<String>::new());
        // Already requested through a trailing-slash redirect.
        assert_eq!(
            r("http://h/a/", &["http://h/a", "http://h/a/"]),
            ["http://h/ parent"]
        );
        // Never more than the bound, nearest first.
        let deep = r("http://h/a/b/c/d/e", &[]);
        assert_eq!(deep.len(), MAX_RELATED);
        assert_eq!(deep[0], "http://h/a/b/c/d/e/ trailing_slash");
        assert_eq!(deep[3], "http://h/a/b/ parent");
        // Odd paths do not panic.
        for u in ["http://h//", "http://h///x//", "http://h/%2F/"] {
            let _ = r(u, &[]);
        }
    }

    #[test]
    fn notes_origin_downgrade_slash_and_case() {
        let n = |a: &str, b: &str| redirect_notes(&a.parse().unwrap(), &b.parse().unwrap());
        assert_eq!(
            n("http://a/x", "http://a/x/"),
            [RedirectNote::TrailingSlash]
        );
        assert_eq!(n("http://a/X", "http://a/x"), [RedirectNote::CaseChange]);
        assert_eq!(n("http://a:80/x", "http://A/x"), []);
        assert!(matches!(
            n("https://a/x", "http://a/x").as_slice(),
            [RedirectNote::Downgrade, RedirectNote::CrossOrigin { .. }]
        ));
    }
}
