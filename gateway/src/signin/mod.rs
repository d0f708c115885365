//! The browser side of session routes (issue 5): the sign-in page, sign-out, and the rule
//! that decides who is redirected to sign in and who gets a 401.
//!
//! **The rule.** A request on a `session` route without a valid session is redirected to the
//! sign-in page only when it is a page navigation: a GET or HEAD whose `Accept` explicitly
//! lists `text/html`, with no `Authorization` header, that is not marked as a script request
//! (`Sec-Fetch-Mode` other than `navigate`, or `X-Requested-With`). Everything else (curl,
//! SDKs, `fetch`/XHR, `Accept: application/json`) gets 401 with `WWW-Authenticate` and a
//! problem body, never a redirect or HTML: an API client cannot follow a sign-in form.
//!
//! **The pages** live at [`SIGNIN_PATH`] and [`SIGNOUT_PATH`], answered before routing, so no
//! route (not even a `session` route on `/`) can put them behind a sign-in: no loops.
//!
//! **CSRF.** The forms carry a token that is an HMAC of a random per-browser cookie
//! (`authgate_csrf`, HttpOnly, SameSite=Strict, path `/_authgate/`) under a per-process key:
//! a cross-site page can neither read the cookie nor compute the token. A post with an
//! `Origin` that is not this site is refused as well.

pub mod page;
pub mod return_url;

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, LOCATION, ORIGIN, SET_COOKIE,
    VARY, WWW_AUTHENTICATE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;

use self::page::{Look, Notice, SignInForm};
pub use crate::authenticate::session::{SIGNIN_PATH, SIGNOUT_PATH};
use crate::authenticate::Authenticators;
use crate::body::{full, Body};
use crate::clock::Clock;
use crate::config::Sessions;
use crate::reason::{Expired, Reason};

const CSRF_COOKIE: &str = "authgate_csrf";
/// Sign-in forms are tiny; anything larger is not one.
const MAX_FORM: usize = 8 * 1024;

pub struct SignIn {
    look: Look,
    allowed_origins: Vec<String>,
    secure: Option<bool>,
    mac: Hmac<Sha256>,
    realm: String,
}

impl SignIn {
    pub fn new(config: &Sessions, realm: &str) -> SignIn {
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        // HMAC takes keys of any length, so this cannot fail.
        #[allow(clippy::expect_used)]
        let mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts any key length");
        SignIn {
            look: Look {
                title: config.title.clone(),
                logo: config.logo.clone(),
                accent: config.accent.clone(),
                background: config.background.clone(),
            },
            allowed_origins: config.allowed_return_origins.clone(),
            secure: config.secure,
            mac,
            realm: realm.to_owned(),
        }
    }

    /// Whether cookies get `Secure` and the `__Host-` prefix: `sessions.secure`, or else
    /// whether the client used https according to a trusted proxy's `X-Forwarded-Proto`.
    pub fn secure(&self, headers: &HeaderMap, peer_trusted: bool) -> bool {
        self.secure.unwrap_or_else(|| {
            peer_trusted
                && headers
                    .get("x-forwarded-proto")
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
        })
    }

    fn csrf_for(&self, cookie: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(cookie.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The browser's CSRF cookie, or a new one to set.
    fn csrf_cookie(headers: &HeaderMap) -> (String, bool) {
        if let Some((_, v)) = crate::authenticate::session::cookies(headers)
            .find(|(n, v)| *n == CSRF_COOKIE && v.len() >= 22)
        {
            return (v.to_owned(), false);
        }
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        (URL_SAFE_NO_PAD.encode(bytes), true)
    }

    fn csrf_ok(&self, headers: &HeaderMap, presented: Option<&str>) -> bool {
        // A post from another site's page carries its Origin (Fetch standard); refuse it.
        if let (Some(origin), Some(host)) = (
            headers.get(ORIGIN).and_then(|v| v.to_str().ok()),
            headers
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok()),
        ) {
            let origin_host = origin.split_once("://").map_or("", |(_, h)| h);
            if !origin_host.eq_ignore_ascii_case(host) {
                return false;
            }
        }
        let Some(presented) = presented else {
            return false;
        };
        let Some((_, cookie)) =
            crate::authenticate::session::cookies(headers).find(|(n, _)| *n == CSRF_COOKIE)
        else {
            return false;
        };
        let expected = self.csrf_for(cookie);
        expected.len() == presented.len()
            && bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// Answers a request for one of the sign-in paths.
    pub async fn handle(
        &self,
        req: Request<Incoming>,
        auth: &Authenticators,
        clock: &Clock,
        client: IpAddr,
        peer_trusted: bool,
        record: &mut crate::audit::Record,
    ) -> Response<Body> {
        let secure = self.secure(req.headers(), peer_trusted);
        let path = req.uri().path().to_owned();
        let query = req.uri().query().map(str::to_owned);
        match (path.as_str(), req.method().clone()) {
            (SIGNIN_PATH, Method::GET | Method::HEAD) => {
                record.outcome = "allow";
                let return_to = query_param(query.as_deref(), "return_to");
                let why = query_param(query.as_deref(), "why").and_then(|w| Notice::from_code(&w));
                self.form_page(
                    req.headers(),
                    secure,
                    StatusCode::OK,
                    &return_url::safe_return(return_to.as_deref(), &self.allowed_origins),
                    None,
                    why,
                )
            }
            (SIGNIN_PATH, Method::POST) => {
                self.sign_in(req, auth, clock, client, secure, record).await
            }
            (SIGNOUT_PATH, Method::GET | Method::HEAD) => {
                record.outcome = "allow";
                let (cookie, new) = Self::csrf_cookie(req.headers());
                let html =
                    page::sign_out_confirm(&self.look, SIGNOUT_PATH, &self.csrf_for(&cookie));
                let mut r = html_response(StatusCode::OK, html);
                if new {
                    set_csrf_cookie(&mut r, &cookie, secure);
                }
                r
            }
            (SIGNOUT_PATH, Method::POST) => self.sign_out(req, auth, secure, record).await,
            _ => {
                record.outcome = "deny";
                let mut r = html_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "Use GET or POST.".to_string(),
                );
                r.headers_mut().insert(
                    http::header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, POST"),
                );
                r
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn form_page(
        &self,
        headers: &HeaderMap,
        secure: bool,
        status: StatusCode,
        return_to: &str,
        user: Option<&str>,
        notice: Option<Notice>,
    ) -> Response<Body> {
        let (cookie, new) = Self::csrf_cookie(headers);
        let html = page::sign_in(
            &self.look,
            &SignInForm {
                action: SIGNIN_PATH,
                return_to,
                csrf: &self.csrf_for(&cookie),
                user,
                notice,
            },
        );
        let mut r = html_response(status, html);
        if new {
            set_csrf_cookie(&mut r, &cookie, secure);
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110 §15.5.2: a 401 carries a challenge.
            if let Ok(v) = HeaderValue::from_str(&authgate_proto::render_challenges(&[
                crate::authenticate::session::challenge(&self.realm),
            ])) {
                r.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
        }
        r
    }

    async fn sign_in(
        &self,
        req: Request<Incoming>,
        auth: &Authenticators,
        clock: &Clock,
        client: IpAddr,
        secure: bool,
        record: &mut crate::audit::Record,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let form = match read_form(body).await {
            Some(f) => f,
            None => {
                record.outcome = "deny";
                record.reason = Some("invalid_request");
                return html_response(
                    StatusCode::BAD_REQUEST,
                    "The sign-in form could not be read.".into(),
                );
            }
        };
        let field = |name: &str| {
            form.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let return_to = return_url::safe_return(field("return_to"), &self.allowed_origins);
        let user = field("user").unwrap_or("").to_owned();
        record.user = (!user.is_empty()).then(|| user.clone());
        record.scheme = Some("session");
        if !self.csrf_ok(&parts.headers, field("csrf")) {
            record.outcome = "deny";
            record.reason = Some(Reason::CsrfFailed.code());
            return self.form_page(
                &parts.headers,
                secure,
                StatusCode::FORBIDDEN,
                &return_to,
                Some(&user),
                Some(Notice::CsrfFailed),
            );
        }
        let (Some(basic), Some(sessions)) = (auth.basic(), auth.sessions()) else {
            record.outcome = "deny";
            return html_response(StatusCode::NOT_FOUND, "Sign-in is not enabled here.".into());
        };
        let password = authgate_proto::Secret::new(field("password").unwrap_or("").to_owned());
        match basic.verify(user.clone(), password, client, None).await {
            Ok((user, _)) => {
                // A new id at every sign-in (no fixation); the old session, if any, ends.
                if let Some(old) = sessions.cookie_value(&parts.headers, secure) {
                    let _ = sessions.remove(old);
                }
                let now = clock.now().as_secs();
                let value = match sessions.create(&user, now) {
                    Ok(v) => v,
                    Err(e) => {
                        tracing::error!("cannot store a session: {e}");
                        record.outcome = "deny";
                        return self.form_page(
                            &parts.headers,
                            secure,
                            StatusCode::SERVICE_UNAVAILABLE,
                            &return_to,
                            Some(&user),
                            Some(Notice::Busy),
                        );
                    }
                };
                record.outcome = "allow";
                let mut r = Response::new(full(String::new()));
                // RFC 9110 §15.4.4: 303 turns the POST into a GET of the return URL.
                *r.status_mut() = StatusCode::SEE_OTHER;
                let h = r.headers_mut();
                if let Ok(v) = HeaderValue::from_str(&return_to) {
                    h.insert(LOCATION, v);
                }
                if let Ok(v) = HeaderValue::from_str(&sessions.set_cookie(&value, secure)) {
                    h.append(SET_COOKIE, v);
                }
                h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
                r
            }
            Err((reason, _)) => {
                record.outcome = "deny";
                record.reason = Some(reason.code());
                record.detail = reason.audit_detail();
                let (status, notice) = match reason {
                    Reason::TooManyFailures { retry_after } => (
                        StatusCode::TOO_MANY_REQUESTS,
                        Notice::TooManyAttempts { retry_after },
                    ),
                    Reason::HashingBusy => (StatusCode::SERVICE_UNAVAILABLE, Notice::Busy),
                    Reason::ExpiredCredentials(Expired::Password) => {
                        (StatusCode::UNAUTHORIZED, Notice::PasswordExpired)
                    }
                    Reason::ExpiredCredentials(_) => {
                        (StatusCode::UNAUTHORIZED, Notice::AccountExpired)
                    }
                    Reason::AccountLocked => (StatusCode::UNAUTHORIZED, Notice::AccountLocked),
                    _ => (StatusCode::UNAUTHORIZED, Notice::WrongCredentials),
                };
                self.form_page(
                    &parts.headers,
                    secure,
                    status,
                    &return_to,
                    Some(&user),
                    Some(notice),
                )
            }
        }
    }

    async fn sign_out(
        &self,
        req: Request<Incoming>,
        auth: &Authenticators,
        secure: bool,
        record: &mut crate::audit::Record,
    ) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let form = read_form(body).await.unwrap_or_default();
        let csrf = form
            .iter()
            .find(|(k, _)| k == "csrf")
            .map(|(_, v)| v.as_str());
        if !self.csrf_ok(&parts.headers, csrf) {
            record.outcome = "deny";
            record.reason = Some(Reason::CsrfFailed.code());
            let (cookie, new) = Self::csrf_cookie(&parts.headers);
            let html = page::sign_out_confirm(&self.look, SIGNOUT_PATH, &self.csrf_for(&cookie));
            let mut r = html_response(StatusCode::FORBIDDEN, html);
            if new {
                set_csrf_cookie(&mut r, &cookie, secure);
            }
            return r;
        }
        record.outcome = "allow";
        let mut r = html_response(StatusCode::OK, page::signed_out(&self.look, SIGNIN_PATH));
        if let Some(sessions) = auth.sessions() {
            if let Some(value) = sessions.cookie_value(&parts.headers, secure) {
                if let Ok(Some(user)) = sessions.user_of(value) {
                    record.user = Some(user);
                }
                if let Err(e) = sessions.remove(value) {
                    tracing::error!("cannot delete a session: {e}");
                }
            }
            for c in sessions.clear_cookies(secure) {
                if let Ok(v) = HeaderValue::from_str(&c) {
                    r.headers_mut().append(SET_COOKIE, v);
                }
            }
        }
        // The server's own "clear your browser's cache": W3C Clear Site Data §3.1.
        r.headers_mut().insert(
            "clear-site-data",
            HeaderValue::from_static("\"cache\", \"cookies\", \"storage\""),
        );
        r
    }
}

/// Whether a denied request is a page navigation that should go to the sign-in page
/// (see the module documentation for the rule).
pub fn is_navigation(method: &Method, headers: &HeaderMap) -> bool {
    if headers.contains_key(AUTHORIZATION) || headers.contains_key("x-requested-with") {
        return false;
    }
    let mode = headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok());
    if mode.is_some_and(|m| !m.eq_ignore_ascii_case("navigate")) {
        return false;
    }
    let wants_html = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let media = parts.next().unwrap_or("").trim();
            let q_zero = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .is_some_and(|q| q.trim().parse::<f32>().is_ok_and(|q| q == 0.0))
            });
            media.eq_ignore_ascii_case("text/html") && !q_zero
        });
    (*method == Method::GET || *method == Method::HEAD) && wants_html
}

/// The redirect to the sign-in page for a navigation refused with `reason`; the original
/// path and query come back as `return_to`.
pub fn redirect_to_sign_in(path_and_query: &str, reason: &Reason) -> Response<Body> {
    let location = sign_in_location(path_and_query, reason);
    let mut r = Response::new(full(String::new()));
    *r.status_mut() = StatusCode::FOUND;
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        h.insert(LOCATION, v);
    }
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(VARY, HeaderValue::from_static("Accept, Cookie"));
    r
}

/// `/_authgate/signin?return_to=…&why=…` for a navigation to `path_and_query` refused with
/// `reason`.
pub fn sign_in_location(path_and_query: &str, reason: &Reason) -> String {
    let why = match reason {
        Reason::SessionExpired(_) => Notice::SessionExpired,
        Reason::ExpiredCredentials(Expired::Password) => Notice::PasswordExpired,
        Reason::ExpiredCredentials(_) => Notice::AccountExpired,
        Reason::AccountLocked => Notice::AccountLocked,
        _ => Notice::SignInRequired,
    };
    format!(
        "{SIGNIN_PATH}?return_to={}&why={}",
        percent_encode(path_and_query),
        why.code()
    )
}

fn html_response(status: StatusCode, html: String) -> Response<Body> {
    let mut r = Response::new(full(html));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    // The sign-in page is never framed (clickjacking) and loads nothing but its logo.
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    r
}

fn set_csrf_cookie(r: &mut Response<Body>, value: &str, secure: bool) {
    let c = format!(
        "{CSRF_COOKIE}={value}; Path=/_authgate/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        r.headers_mut().append(SET_COOKIE, v);
    }
}

/// Reads an `application/x-www-form-urlencoded` body of at most [`MAX_FORM`] bytes.
async fn read_form(body: Incoming) -> Option<Vec<(String, String)>> {
    let limited = http_body_util::Limited::new(body, MAX_FORM);
    let bytes: Bytes = limited.collect().await.ok()?.to_bytes();
    let text = std::str::from_utf8(&bytes).ok()?;
    Some(
        text.split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                (form_decode(k), form_decode(v))
            })
            .collect(),
    )
}

/// One query parameter, form-decoded.
fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| form_decode(v))
}

/// `application/x-www-form-urlencoded` decoding: '+' is a space, %XX a byte; invalid
/// sequences are kept as written, invalid UTF-8 replaced.
fn form_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                if let Some(v) = hex {
                    out.push(v);
                    i += 3;
                    continue;
                }
                out.push(b'%');
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes everything but unreserved characters and '/' (RFC 3986 §2.3).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn navigations_and_api_calls() {
        let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
        assert!(is_navigation(
            &Method::GET,
            &headers(&[("accept", browser)])
        ));
        assert!(is_navigation(
            &Method::GET,
            &headers(&[("accept", browser), ("sec-fetch-mode", "navigate")])
        ));
        assert!(!is_navigation(
            &Method::GET,
            &headers(&[("accept", browser), ("sec-fetch-mode", "cors")])
        ));
        assert!(!is_navigation(&Method::GET, &headers(&[("accept", "*/*")])));
        assert!(!is_navigation(
            &Method::GET,
            &headers(&[("accept", "application/json")])
        ));
        assert!(!is_navigation(&Method::GET, &headers(&[])));
        assert!(!is_navigation(
            &Method::POST,
            &headers(&[("accept", browser)])
        ));
        assert!(!is_navigation(
            &Method::GET,
            &headers(&[("accept", browser), ("x-requested-with", "XMLHttpRequest")])
        ));
        assert!(!is_navigation(
            &Method::GET,
            &headers(&[("accept", browser), ("authorization", "Basic eA==")])
        ));
        assert!(!is_navigation(
            &Method::GET,
            &headers(&[("accept", "text/html;q=0")])
        ));
    }

    #[test]
    fn form_decoding() {
        assert_eq!(form_decode("a+b%20c%2F%zz"), "a b c/%zz");
        assert_eq!(
            query_param(Some("x=1&return_to=%2Fa%3Fb"), "return_to").as_deref(),
            Some("/a?b")
        );
        assert_eq!(percent_encode("/a b?c=1&d"), "/a%20b%3Fc%3D1%26d");
    }
}
