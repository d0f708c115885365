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

/// Everything the doctor saw.
#[derive(Debug)]
pub struct Findings {
    /// Set when `--user` met a server that asks for Digest and not Basic.
    pub digest: Option<DigestUse>,
    pub anonymous: Trace,
    pub credentials: Option<Trace>,
    /// With the jar's cookies (and the credentials if any).
    pub cookies: Option<Trace>,
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
        resolved,
        local_time,
    }
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
