//! Browser sessions (issue 5) against the real binary: who is redirected to the sign-in page
//! and who gets a 401, the sign-in form's CSRF and open-redirect defences, what the upstream
//! sees, idle timeout and lifetime on the test clock, sign-out, and the whole flow in real
//! headless Chromium.
//!
//! Cookies are handled by hand (read `Set-Cookie`, send `Cookie`) so that every test says
//! exactly which cookies a request carried.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

use crate::kit::{self, Gateway, Upstream};

const USER: &str = "alice";
const PASSWORD: &str = "correct horse";
/// What Chromium sends as `Accept` for a page navigation.
const NAV_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8";
/// The headers of a top-level navigation in a current browser.
const NAVIGATION: &[(&str, &str)] = &[
    ("accept", NAV_ACCEPT),
    ("sec-fetch-mode", "navigate"),
    ("sec-fetch-dest", "document"),
    ("sec-fetch-site", "none"),
];
const API: &[(&str, &str)] = &[("accept", "application/json")];
const SESSION_COOKIE: &str = "authgate_session";
const CHALLENGE: &str = "Cookie realm=\"Test\", form-action=\"/_authgate/signin\"";

/// A `[store]` + `[sessions]` config with one route on `/` using `auth`
/// (idle timeout 10 min, lifetime 1 h, one allowed return origin).
fn config(upstream: &Upstream, auth: &str, sessions_extra: &str) -> String {
    format!(
        "[store]\npath = \"authgate.db\"\n\n\
         [users]\nhtpasswd = \"users.htpasswd\"\n\n\
         [sessions]\nidle_timeout = \"10m\"\nlifetime = \"1h\"\n\
         allowed_return_origins = [\"https://app.example.com\"]\n{sessions_extra}\n\n\
         [[route]]\npath = \"/\"\nupstream = \"{}\"\nrealm = \"Test\"\nauth = {auth}\n",
        upstream.url()
    )
}

fn start_with(auth: &str, sessions_extra: &str, clock: bool) -> (Upstream, Gateway) {
    start_full("", auth, sessions_extra, clock)
}

/// Like [`start_with`], with `top` (e.g. a `[server]` or `[lockout]` table) before the rest.
fn start_full(top: &str, auth: &str, sessions_extra: &str, clock: bool) -> (Upstream, Gateway) {
    let upstream = Upstream::start();
    let users = kit::htpasswd(&["-B", "-C", "4"], USER, PASSWORD);
    let mut files = vec![("users.htpasswd", users.as_str())];
    if clock {
        files.push(("clock", "0"));
    }
    let text = format!("{top}\n{}", config(&upstream, auth, sessions_extra));
    let gw = Gateway::start(&text, &files);
    (upstream, gw)
}

fn start() -> (Upstream, Gateway) {
    start_with("[\"session\"]", "", false)
}

/// One exchange: what was sent and what came back, printed whole when an assertion fails.
struct Reply {
    sent: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- sent ---\n{}\n--- received ---", self.sent)?;
        writeln!(f, "{}", self.status)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        let body: String = self.body.chars().take(3000).collect();
        write!(f, "\n{body}")
    }
}

impl Reply {
    fn header_all(&self, name: &str) -> Vec<&str> {
        kit::header_values(&self.headers, name)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// All challenges, in order, whether sent in one field or several (RFC 9110 §11.6.1).
    fn challenges(&self) -> String {
        self.header_all("www-authenticate").join(", ")
    }

    /// The `Set-Cookie` line that sets cookie `name`, if any.
    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.header_all("set-cookie")
            .into_iter()
            .find(|c| c.split('=').next().map(str::trim) == Some(name))
    }

    /// The value `Set-Cookie` gives cookie `name`, if any.
    fn cookie(&self, name: &str) -> Option<String> {
        let line = self.set_cookie(name)?;
        let pair = line.split(';').next()?;
        Some(pair.split_once('=')?.1.trim().to_string())
    }

    /// The problem-details body's `reason`.
    fn reason(&self) -> String {
        let v: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not a problem+json body ({e}):\n{self}"));
        v["reason"].as_str().unwrap_or("").to_string()
    }

    /// The value of the hidden input `name` in an HTML form.
    fn hidden(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let len = self.body.get(start..)?.find('"')?;
        self.body.get(start..start + len).map(unescape_html)
    }
}

fn unescape_html(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Sends one request with exactly these extra headers (reqwest adds `Accept: */*` only when
/// none is given) and never follows redirects.
fn send(method: &str, url: &str, headers: &[(&str, &str)], body: Option<String>) -> Reply {
    let mut sent = format!("{method} {url}\n");
    for (k, v) in headers {
        sent.push_str(&format!("{k}: {v}\n"));
    }
    if let Some(b) = &body {
        sent.push_str(&format!("\n{b}\n"));
    }
    kit::rt().block_on(async {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = kit::client().request(method, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("request failed: {e}\n{sent}"));
        let (status, headers, body) = kit::read(resp).await;
        Reply {
            sent,
            status,
            headers,
            body,
        }
    })
}

fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    send("GET", url, headers, None)
}

/// `application/x-www-form-urlencoded` (WHATWG URL §5.2): everything but unreserved
/// characters is percent-encoded, so every test value arrives exactly as written.
fn form_encode(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The decoded query parameters of a URL or path.
fn query(url: &str) -> BTreeMap<String, String> {
    url.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

/// What a browser holds after opening the sign-in page: its CSRF cookie and the form's token.
#[derive(Clone)]
struct Form {
    cookie: String,
    csrf: String,
}

impl Form {
    /// The `Cookie` header value for the CSRF cookie plus `more` (e.g. a session cookie).
    fn cookies(&self, more: &str) -> String {
        if more.is_empty() {
            format!("authgate_csrf={}", self.cookie)
        } else {
            format!("authgate_csrf={}; {more}", self.cookie)
        }
    }
}

/// Opens the sign-in page as a fresh browser would and returns the page and the form.
fn open_form(gw: &Gateway, query: &str) -> (Reply, Form) {
    let page = get(&gw.url(&format!("/_authgate/signin{query}")), NAVIGATION);
    assert_eq!(page.status, 200, "{page}");
    let cookie = page
        .cookie("authgate_csrf")
        .unwrap_or_else(|| panic!("no CSRF cookie set:\n{page}"));
    let csrf = page
        .hidden("csrf")
        .unwrap_or_else(|| panic!("no csrf input:\n{page}"));
    (page, Form { cookie, csrf })
}

fn origin(gw: &Gateway) -> String {
    format!("http://{}", gw.addr)
}

/// POSTs a form to `path` as the browser holding `cookie` would (same-site `Origin`).
fn post_form(
    gw: &Gateway,
    path: &str,
    fields: &[(&str, &str)],
    cookie: Option<&str>,
    origin_header: Option<&str>,
) -> Reply {
    let mut headers = vec![
        ("content-type", "application/x-www-form-urlencoded"),
        ("accept", NAV_ACCEPT),
    ];
    if let Some(c) = cookie {
        headers.push(("cookie", c));
    }
    if let Some(o) = origin_header {
        headers.push(("origin", o));
    }
    send("POST", &gw.url(path), &headers, Some(form_encode(fields)))
}

/// Signs in with the right password through a freshly opened form; returns the 303.
fn sign_in(gw: &Gateway, return_to: &str, more_cookies: &str) -> Reply {
    let (_, form) = open_form(gw, "");
    let o = origin(gw);
    post_form(
        gw,
        "/_authgate/signin",
        &[
            ("csrf", &form.csrf),
            ("return_to", return_to),
            ("user", USER),
            ("password", PASSWORD),
        ],
        Some(&form.cookies(more_cookies)),
        Some(&o),
    )
}

/// Signs in and returns the session cookie's value.
fn session(gw: &Gateway) -> String {
    let r = sign_in(gw, "/", "");
    assert_eq!(r.status, 303, "{r}");
    r.cookie(SESSION_COOKIE)
        .unwrap_or_else(|| panic!("no session cookie:\n{r}"))
}

fn with_session(value: &str, headers: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.push(("cookie".into(), format!("{SESSION_COOKIE}={value}")));
    h
}

fn get_owned(url: &str, headers: &[(String, String)]) -> Reply {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    get(url, &h)
}

/// Asserts `r` is the redirect of a navigation to the sign-in page, returning to `back`.
#[track_caller]
fn assert_to_sign_in(r: &Reply, back: &str, why: &str) {
    assert_eq!(r.status, 302, "{r}");
    let location = r.header("location").unwrap_or_default();
    assert!(
        location.starts_with("/_authgate/signin?"),
        "Location should be the sign-in page:\n{r}"
    );
    let q = query(location);
    assert_eq!(q.get("return_to").map(String::as_str), Some(back), "{r}");
    assert_eq!(q.get("why").map(String::as_str), Some(why), "{r}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r}");
    assert!(r.set_cookie(SESSION_COOKIE).is_none(), "{r}");
}

/// Asserts `r` is a 401 with the session route's challenge and no redirect.
#[track_caller]
fn assert_challenged(r: &Reply) {
    assert_eq!(r.status, 401, "{r}");
    assert!(r.challenges().contains(CHALLENGE), "{r}");
    assert!(r.header("location").is_none(), "{r}");
}

#[test]
fn api_clients_get_401_with_a_cookie_challenge_and_only_navigations_are_redirected() {
    let (upstream, gw) = start();
    let url = gw.url("/api/items?page=2");

    // An API client asking for JSON: problem details, never HTML.
    let r = get(&url, API);
    assert_challenged(&r);
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{r}"
    );
    assert_eq!(r.reason(), "missing_credentials", "{r}");

    // curl's `Accept: */*`: a text answer with the challenge.
    let out = Command::new("curl")
        .args(["-si", &url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    let lower = text.to_ascii_lowercase();
    assert!(text.starts_with("HTTP/1.1 401"), "curl -si {url}\n{text}");
    assert!(
        lower.contains(&format!(
            "www-authenticate: {}",
            CHALLENGE.to_ascii_lowercase()
        )),
        "curl -si {url}\n{text}"
    );
    assert!(
        lower.contains("content-type: text/plain") && !lower.contains("\nlocation:"),
        "curl -si {url}\n{text}"
    );

    // Requests a page's script makes, even when they accept HTML, are not navigations.
    let not_navigations: &[(&str, &[(&str, &str)])] = &[
        (
            "fetch() with Accept: text/html",
            &[("accept", NAV_ACCEPT), ("sec-fetch-mode", "cors")],
        ),
        (
            "no-cors fetch",
            &[("accept", "text/html"), ("sec-fetch-mode", "no-cors")],
        ),
        (
            "XHR marked by its library",
            &[
                ("accept", "text/html"),
                ("x-requested-with", "XMLHttpRequest"),
            ],
        ),
        (
            "HTML with a (wrong) Authorization header",
            &[("accept", NAV_ACCEPT), ("authorization", "Bearer abc")],
        ),
        ("HTML refused with q=0", &[("accept", "text/html;q=0, */*")]),
    ];
    for (what, headers) in not_navigations {
        let r = get(&url, headers);
        assert_eq!(r.status, 401, "{what}:\n{r}");
        assert!(r.header("location").is_none(), "{what}:\n{r}");
    }
    // No Accept at all (reqwest would add `*/*`, so this one is written by hand).
    let raw = kit::raw(
        gw.addr,
        b"GET /api/items HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(raw.status, 401, "no Accept:\n{}\n\n{}", raw.head, raw.body);
    assert!(
        !raw.head.to_ascii_lowercase().contains("\nlocation:"),
        "{}",
        raw.head
    );
    let r = send("POST", &url, NAVIGATION, Some("a=1".into()));
    assert_eq!(r.status, 401, "a POST is never redirected:\n{r}");
    assert!(r.challenges().contains(CHALLENGE), "{r}");

    // A page navigation goes to the sign-in page and comes back to the same path and query.
    let r = get(&gw.url("/app/page?x=1&y=a%20b"), NAVIGATION);
    assert_to_sign_in(&r, "/app/page?x=1&y=a%20b", "required");
    // Older browsers send no Sec-Fetch-* at all; HEAD is a navigation too.
    let r = get(&gw.url("/app/page"), &[("accept", NAV_ACCEPT)]);
    assert_to_sign_in(&r, "/app/page", "required");
    let r = send("HEAD", &gw.url("/app/page"), NAVIGATION, None);
    assert_to_sign_in(&r, "/app/page", "required");

    // Following the redirect shows the form, with the notice and the return path.
    let location = get(&gw.url("/app/page?x=1"), NAVIGATION)
        .header("location")
        .unwrap_or_default()
        .to_string();
    let (page, _) = open_form(&gw, location.trim_start_matches("/_authgate/signin"));
    assert!(
        page.header("content-type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{page}"
    );
    assert!(page.body.contains("<form id=\"signin\""), "{page}");
    assert!(
        page.body
            .contains("<p role=\"alert\" id=\"notice\">Sign in to continue.</p>"),
        "{page}"
    );
    assert_eq!(page.hidden("return_to").as_deref(), Some("/app/page?x=1"));
    let csrf_cookie = page.set_cookie("authgate_csrf").unwrap_or_default();
    for attr in ["Path=/_authgate/", "HttpOnly", "SameSite=Strict"] {
        assert!(csrf_cookie.contains(attr), "{attr} missing:\n{page}");
    }
    upstream.assert_untouched("requests without a session");
}

/// Open-redirect attempts from the return URL: each must end on `/` (CWE-601).
#[test]
fn the_return_url_never_leaves_the_site_unless_the_origin_is_allowed() {
    let (upstream, gw) = start();
    let malicious = [
        "//evil.com",
        "/\\evil.com",
        "\\/evil.com",
        "/%2F/evil.com",
        "%2F%2Fevil.com",
        "/%09/evil.com",
        "/\t/evil.com",
        "/\n/evil.com",
        " //evil.com",
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "https://evil.com",
        "https:evil.com",
        "https://app.example.com.evil.com",
        "https://app.example.com@evil.com",
        "http://app.example.com/",
    ];
    for bad in malicious {
        let r = sign_in(&gw, bad, "");
        assert_eq!(r.status, 303, "return_to {bad:?}:\n{r}");
        assert_eq!(r.header("location"), Some("/"), "return_to {bad:?}:\n{r}");
        assert!(r.cookie(SESSION_COOKIE).is_some(), "{r}");
        // The form itself never carries it either.
        let (page, _) = open_form(&gw, &format!("?return_to={}", percent_encode(bad)));
        assert_eq!(
            page.hidden("return_to").as_deref(),
            Some("/"),
            "return_to {bad:?}:\n{page}"
        );
    }
    for good in [
        "/",
        "/reports/2024?sort=desc&page=2",
        "https://app.example.com/dash?tab=1",
    ] {
        let r = sign_in(&gw, good, "");
        assert_eq!(r.status, 303, "{r}");
        assert_eq!(r.header("location"), Some(good), "return_to {good:?}:\n{r}");
    }
    upstream.assert_untouched("sign-ins only");
}

/// One sign-in post with a broken or forged part.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    what: &'a str,
    csrf: Option<&'a str>,
    cookie: Option<&'a str>,
    origin: Option<&'a str>,
}

#[test]
fn sign_in_without_a_valid_csrf_token_or_from_another_site_is_refused() {
    let (upstream, gw) = start();
    let (_, form) = open_form(&gw, "");
    let (_, other) = open_form(&gw, "");
    assert_ne!(form.cookie, other.cookie, "each browser gets its own");
    let own = origin(&gw);
    let cookie = form.cookies("");
    let ok = Attempt {
        what: "",
        csrf: Some(&form.csrf),
        cookie: Some(&cookie),
        origin: Some(&own),
    };
    let cases = [
        Attempt {
            what: "no csrf field",
            csrf: None,
            ..ok
        },
        Attempt {
            what: "empty csrf",
            csrf: Some(""),
            ..ok
        },
        Attempt {
            what: "another browser's token",
            csrf: Some(&other.csrf),
            ..ok
        },
        Attempt {
            what: "a forged token",
            csrf: Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ..ok
        },
        Attempt {
            what: "no csrf cookie",
            cookie: None,
            ..ok
        },
        Attempt {
            what: "a cross-site Origin",
            origin: Some("https://evil.example"),
            ..ok
        },
        Attempt {
            what: "an opaque Origin (sandboxed frame)",
            origin: Some("null"),
            ..ok
        },
    ];
    for case in &cases {
        let what = case.what;
        let mut fields = vec![
            ("return_to", "/app"),
            ("user", USER),
            ("password", PASSWORD),
        ];
        if let Some(c) = case.csrf {
            fields.push(("csrf", c));
        }
        let r = post_form(&gw, "/_authgate/signin", &fields, case.cookie, case.origin);
        assert_eq!(r.status, 403, "{what}:\n{r}");
        assert!(r.set_cookie(SESSION_COOKIE).is_none(), "{what}:\n{r}");
        assert!(r.header("location").is_none(), "{what}:\n{r}");
        assert!(
            r.body.contains("<form id=\"signin\"")
                && r.body
                    .contains("The form was too old or came from another page"),
            "{what}: the form again, with the CSRF notice:\n{r}"
        );
        let a = gw.audit_for(r.header("x-request-id").unwrap_or_default());
        assert_eq!(a["reason"], "csrf_failed", "{what}: {a}");
        assert_eq!(a["outcome"], "deny", "{what}: {a}");
    }
    // No session came out of any of them: nothing gets through.
    assert!(
        !gw.audit().iter().any(|a| a["outcome"] == "allow"
            && a["scheme"] == "session"
            && a["path"] == "/_authgate/signin"),
        "{:#?}",
        gw.audit()
    );
    let r = get(&gw.url("/app"), API);
    assert_challenged(&r);
    upstream.assert_untouched("refused sign-ins");

    // The same form, posted properly, works (so the refusals were for the CSRF defence).
    let r = post_form(
        &gw,
        "/_authgate/signin",
        &[
            ("csrf", &form.csrf),
            ("return_to", "/app"),
            ("user", USER),
            ("password", PASSWORD),
        ],
        Some(&cookie),
        Some(&own),
    );
    assert_eq!(r.status, 303, "{r}");
    assert_eq!(r.header("location"), Some("/app"), "{r}");
    // Without an Origin (older browsers, some privacy settings) the token alone is enough.
    let r = post_form(
        &gw,
        "/_authgate/signin",
        &[
            ("csrf", &form.csrf),
            ("return_to", "/app"),
            ("user", USER),
            ("password", PASSWORD),
        ],
        Some(&cookie),
        None,
    );
    assert_eq!(r.status, 303, "{r}");
}

#[test]
fn a_wrong_password_shows_the_form_again_with_a_401_and_no_session() {
    let (upstream, gw) = start();
    let (_, form) = open_form(&gw, "");
    let o = origin(&gw);
    let r = post_form(
        &gw,
        "/_authgate/signin",
        &[
            ("csrf", &form.csrf),
            ("return_to", "/app?x=1"),
            ("user", USER),
            ("password", "wrong horse"),
        ],
        Some(&form.cookies("")),
        Some(&o),
    );
    // The sign-in page belongs to no route, so its challenge names the server's realm.
    assert_eq!(r.status, 401, "{r}");
    assert!(
        r.challenges()
            .starts_with("Cookie realm=\"authgate\", form-action=\"/_authgate/signin\""),
        "{r}"
    );
    assert!(r.set_cookie(SESSION_COOKIE).is_none(), "{r}");
    assert!(
        r.body.contains("<form id=\"signin\"")
            && r.body
                .contains("<p role=\"alert\" id=\"notice\">Wrong user name or password.</p>"),
        "{r}"
    );
    // The user name stays filled in and the return path is kept; the password is not echoed.
    assert!(r.body.contains(&format!("value=\"{USER}\"")), "{r}");
    assert_eq!(r.hidden("return_to").as_deref(), Some("/app?x=1"), "{r}");
    assert!(!r.body.contains("wrong horse"), "{r}");
    let a = gw.audit_for(r.header("x-request-id").unwrap_or_default());
    assert_eq!(
        (
            a["outcome"].as_str(),
            a["reason"].as_str(),
            a["scheme"].as_str()
        ),
        (Some("deny"), Some("invalid_credentials"), Some("session")),
        "{a}"
    );
    assert_eq!(a["user"], USER, "{a}");
    let logs = format!("{:?}{}", gw.audit(), gw.stderr());
    assert!(!logs.contains("wrong horse"), "the password was logged");
    // The echoed user name and return path are escaped (reflected XSS).
    let (_, form) = open_form(&gw, "");
    let evil = "\"><img src=x onerror=alert(1)>";
    let r = post_form(
        &gw,
        "/_authgate/signin",
        &[
            ("csrf", &form.csrf),
            ("return_to", "/a\"><script>alert(2)</script>"),
            ("user", evil),
            ("password", "x"),
        ],
        Some(&form.cookies("")),
        Some(&o),
    );
    assert_eq!(r.status, 401, "{r}");
    assert!(
        !r.body.contains("<img src=x") && !r.body.contains("<script>alert(2)"),
        "markup from the request is in the page:\n{r}"
    );
    let (page, _) = open_form(
        &gw,
        &format!(
            "?return_to={}&why=%3Cscript%3Ealert(3)%3C%2Fscript%3E",
            percent_encode("/a\"><script>alert(2)</script>")
        ),
    );
    assert!(
        !page.body.contains("<script>alert("),
        "markup from the query is in the page:\n{page}"
    );
    assert!(
        !page.body.contains("id=\"notice\""),
        "an unknown `why` shows no notice:\n{page}"
    );
    upstream.assert_untouched("wrong password");
}

#[test]
fn the_upstream_gets_the_identity_and_app_cookies_but_never_the_session_cookie() {
    let (upstream, gw) = start();
    let r = sign_in(&gw, "/app/data?id=7", "");
    assert_eq!(r.status, 303, "{r}");
    assert_eq!(r.header("location"), Some("/app/data?id=7"), "{r}");
    let line = r.set_cookie(SESSION_COOKIE).unwrap_or_default();
    let value = r.cookie(SESSION_COOKIE).unwrap_or_default();
    assert_eq!(value.len(), 43, "256 bits in base64url:\n{r}");
    assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{r}"
    );
    let attrs: Vec<&str> = line.split(';').skip(1).map(str::trim).collect();
    for want in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=3600"] {
        assert!(attrs.contains(&want), "{want} missing:\n{r}");
    }
    assert!(
        !attrs
            .iter()
            .any(|a| a.to_ascii_lowercase().starts_with("domain")),
        "{r}"
    );
    let a = gw.audit_for(r.header("x-request-id").unwrap_or_default());
    assert_eq!(
        (
            a["outcome"].as_str(),
            a["scheme"].as_str(),
            a["user"].as_str()
        ),
        (Some("allow"), Some("session"), Some(USER)),
        "{a}"
    );
    let all = format!("{:?}{}", gw.audit(), gw.stderr());
    assert!(
        !all.contains(&value) && !all.contains(PASSWORD),
        "a secret reached the logs"
    );

    // The app's own cookies around the session cookie go through; the session cookie does not.
    let cookie = format!("theme=dark; {SESSION_COOKIE}={value}; lang=en");
    let r = get(
        &gw.url("/app/data?id=7"),
        &[("accept", NAV_ACCEPT), ("cookie", &cookie)],
    );
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(r.body, "upstream: /app/data?id=7", "{r}");
    let vary = r.header_all("vary").join(", ").to_ascii_lowercase();
    assert!(vary.split(',').any(|v| v.trim() == "cookie"), "{r}");
    let cache = r.header("cache-control").unwrap_or_default();
    assert!(cache.split(',').any(|d| d.trim() == "private"), "{r}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let s = &seen[0];
    assert_eq!(s.header("x-authgate-user"), Some(USER), "{s:#?}");
    assert_eq!(s.header("x-authgate-method"), Some("session"), "{s:#?}");
    let cookies = s.header_all("cookie").join("; ");
    assert!(
        cookies.contains("theme=dark") && cookies.contains("lang=en"),
        "{s:#?}"
    );
    assert!(
        !s.headers
            .iter()
            .any(|(_, v)| v.contains(SESSION_COOKIE) || v.contains(&value)),
        "the session cookie reached the upstream: {s:#?}"
    );

    // HTTP/2 and some clients split cookies over several `Cookie` fields (RFC 9113 §8.2.3).
    upstream.clear();
    let r = get(
        &gw.url("/app/split"),
        &[
            ("accept", "*/*"),
            ("cookie", "theme=dark"),
            ("cookie", &format!("{SESSION_COOKIE}={value}")),
            ("cookie", "lang=en"),
        ],
    );
    assert_eq!(r.status, 200, "{r}");
    let seen = upstream.seen();
    let s = &seen[0];
    let cookies = s.header_all("cookie").join("; ");
    assert!(
        cookies.contains("theme=dark") && cookies.contains("lang=en"),
        "{s:#?}"
    );
    assert!(
        !s.headers
            .iter()
            .any(|(_, v)| v.contains(SESSION_COOKIE) || v.contains(&value)),
        "the session cookie reached the upstream: {s:#?}"
    );

    // A page the app marks public is still private once it depends on a session.
    let r = get_owned(&gw.url("/public-cache/x"), &with_session(&value, API));
    assert_eq!(r.status, 200, "{r}");
    let cache = r.header("cache-control").unwrap_or_default();
    assert!(
        cache.contains("private") && !cache.contains("public"),
        "{r}"
    );

    // curl with the cookie, as a script holding a session would.
    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-b",
            &format!("{SESSION_COOKIE}={value}"),
            &gw.url("/api/me"),
        ])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n200") && text.contains("upstream: /api/me"),
        "{text}"
    );
}

/// Session fixation (OWASP): a sign-in always issues a new id and ends the one the browser had.
#[test]
fn each_sign_in_issues_a_new_session_and_ends_the_old_one() {
    let (upstream, gw) = start();
    let old = session(&gw);
    assert_eq!(
        get_owned(&gw.url("/app"), &with_session(&old, API)).status,
        200
    );
    let r = sign_in(&gw, "/", &format!("{SESSION_COOKIE}={old}"));
    assert_eq!(r.status, 303, "{r}");
    let new = r.cookie(SESSION_COOKIE).unwrap_or_default();
    assert_eq!(new.len(), 43, "{r}");
    assert_ne!(new, old, "the same session id was handed out again:\n{r}");
    upstream.clear();
    let r = get_owned(&gw.url("/app"), &with_session(&old, API));
    assert_challenged(&r);
    upstream.assert_untouched("the replaced session");
    let r = get_owned(&gw.url("/app"), &with_session(&new, API));
    assert_eq!(r.status, 200, "{r}");

    // A value an attacker planted is never adopted.
    let planted = "A".repeat(43);
    let r = sign_in(&gw, "/", &format!("{SESSION_COOKIE}={planted}"));
    assert_eq!(r.status, 303, "{r}");
    assert_ne!(r.cookie(SESSION_COOKIE).as_deref(), Some(planted.as_str()));
    upstream.clear();
    let r = get_owned(&gw.url("/app"), &with_session(&planted, API));
    assert_challenged(&r);
    upstream.assert_untouched("a planted session id");
}

/// `sessions.secure`: the `__Host-` cookie (RFC 6265bis §4.1.3.2), also kept from the upstream.
#[test]
fn a_secure_session_cookie_has_the_host_prefix_and_is_not_forwarded() {
    let (upstream, gw) = start_with("[\"session\"]", "secure = true", false);
    let r = sign_in(&gw, "/", "");
    assert_eq!(r.status, 303, "{r}");
    let name = format!("__Host-{SESSION_COOKIE}");
    let line = r
        .set_cookie(&name)
        .unwrap_or_else(|| panic!("no {name} cookie:\n{r}"));
    let attrs: Vec<&str> = line.split(';').skip(1).map(str::trim).collect();
    for want in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(attrs.contains(&want), "{want} missing:\n{r}");
    }
    let value = r.cookie(&name).unwrap_or_default();
    let cookie = format!("theme=dark; {name}={value}");
    let r = get(&gw.url("/app"), &[("accept", "*/*"), ("cookie", &cookie)]);
    assert_eq!(r.status, 200, "{r}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].header("x-authgate-method"), Some("session"));
    assert_eq!(seen[0].header("cookie"), Some("theme=dark"), "{seen:#?}");
}

#[test]
fn an_idle_session_ends_and_every_request_slides_the_timeout() {
    let (upstream, gw) = start_with("[\"session\"]", "", true);
    let value = session(&gw);
    let api = with_session(&value, API);
    // idle_timeout = 10m: each request within 9 minutes of the last keeps it alive, even
    // well past 10 minutes after sign-in.
    for t in [0, 540, 1080] {
        gw.set_clock(t);
        let r = get_owned(&gw.url("/app"), &api);
        assert_eq!(r.status, 200, "at t={t}s:\n{r}");
    }
    assert_eq!(upstream.count(), 3);
    upstream.clear();
    gw.set_clock(1080 + 601);
    let r = get_owned(&gw.url("/app"), &api);
    assert_challenged(&r);
    assert_eq!(r.reason(), "session_expired", "{r}");
    let a = gw.audit_for(r.header("x-request-id").unwrap_or_default());
    assert_eq!(
        (
            a["reason"].as_str(),
            a["detail"].as_str(),
            a["user"].as_str()
        ),
        (Some("session_expired"), Some("idle"), Some(USER)),
        "{a}"
    );
    // A browser with the same cookie is sent to sign in again, told why.
    let r = get_owned(&gw.url("/app/page?x=1"), &with_session(&value, NAVIGATION));
    assert_to_sign_in(&r, "/app/page?x=1", "expired");
    let (page, _) = open_form(
        &gw,
        r.header("location")
            .unwrap_or_default()
            .trim_start_matches("/_authgate/signin"),
    );
    assert!(
        page.body.contains("Your session expired"),
        "the expiry notice:\n{page}"
    );
    upstream.assert_untouched("an idle session");
    // Signing in again works at the new time.
    let value = session(&gw);
    let r = get_owned(&gw.url("/app"), &with_session(&value, API));
    assert_eq!(r.status, 200, "{r}");
}

#[test]
fn a_session_ends_at_its_lifetime_however_active() {
    let (upstream, gw) = start_with("[\"session\"]", "", true);
    let value = session(&gw);
    let api = with_session(&value, API);
    // lifetime = 1h, activity every 9 minutes (under idle_timeout = 10m).
    let mut t = 0;
    while t < 3600 - 60 {
        gw.set_clock(t);
        let r = get_owned(&gw.url("/app"), &api);
        assert_eq!(r.status, 200, "at t={t}s:\n{r}");
        t += 540;
    }
    upstream.clear();
    gw.set_clock(3601);
    let r = get_owned(&gw.url("/app"), &api);
    assert_challenged(&r);
    assert_eq!(r.reason(), "session_expired", "{r}");
    let a = gw.audit_for(r.header("x-request-id").unwrap_or_default());
    assert_eq!(
        (a["reason"].as_str(), a["detail"].as_str()),
        (Some("session_expired"), Some("lifetime")),
        "{a}"
    );
    let r = get_owned(&gw.url("/app"), &with_session(&value, NAVIGATION));
    assert_to_sign_in(&r, "/app", "expired");
    upstream.assert_untouched("a session past its lifetime");
}

#[test]
fn sign_out_needs_the_csrf_token_clears_the_site_and_ends_the_session() {
    let (upstream, gw) = start();
    let value = session(&gw);
    let session_cookie = format!("{SESSION_COOKIE}={value}");
    // The confirmation page, as the signed-in browser opens it.
    let page = get(
        &gw.url("/_authgate/signout"),
        &[("accept", NAV_ACCEPT), ("cookie", &session_cookie)],
    );
    assert_eq!(page.status, 200, "{page}");
    assert!(page.body.contains("<form id=\"signout\""), "{page}");
    let form = Form {
        cookie: page
            .cookie("authgate_csrf")
            .unwrap_or_else(|| panic!("no CSRF cookie:\n{page}")),
        csrf: page
            .hidden("csrf")
            .unwrap_or_else(|| panic!("no csrf input:\n{page}")),
    };
    let cookies = form.cookies(&session_cookie);
    let own = origin(&gw);

    // A cross-site page cannot sign the user out (logout CSRF).
    for (what, fields, origin_header) in [
        ("no csrf", vec![], Some(own.as_str())),
        ("a wrong csrf", vec![("csrf", "x".repeat(43))], Some(&own)),
        (
            "a cross-site Origin",
            vec![("csrf", form.csrf.clone())],
            Some("https://evil.example"),
        ),
    ] {
        let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = post_form(&gw, "/_authgate/signout", &f, Some(&cookies), origin_header);
        assert_eq!(r.status, 403, "{what}:\n{r}");
        assert!(r.header("clear-site-data").is_none(), "{what}:\n{r}");
        assert!(r.set_cookie(SESSION_COOKIE).is_none(), "{what}:\n{r}");
        let r = get_owned(&gw.url("/app"), &with_session(&value, API));
        assert_eq!(r.status, 200, "{what}: the session must survive:\n{r}");
    }

    let r = post_form(
        &gw,
        "/_authgate/signout",
        &[("csrf", &form.csrf)],
        Some(&cookies),
        Some(&own),
    );
    assert_eq!(r.status, 200, "{r}");
    assert!(r.body.contains("You are signed out"), "{r}");
    assert_eq!(
        r.header("clear-site-data"),
        Some("\"cache\", \"cookies\", \"storage\""),
        "{r}"
    );
    let deletion = r
        .set_cookie(SESSION_COOKIE)
        .unwrap_or_else(|| panic!("the session cookie is not deleted:\n{r}"));
    let attrs: Vec<&str> = deletion.split(';').map(str::trim).collect();
    assert_eq!(attrs.first(), Some(&"authgate_session="), "{r}");
    assert!(
        attrs.contains(&"Max-Age=0") && attrs.contains(&"Path=/"),
        "{r}"
    );

    // The old value, replayed (a copied cookie, a browser that ignored the deletion).
    upstream.clear();
    let r = get_owned(&gw.url("/app"), &with_session(&value, API));
    assert_challenged(&r);
    let r = get_owned(&gw.url("/app"), &with_session(&value, NAVIGATION));
    assert_eq!(r.status, 302, "{r}");
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with("/_authgate/signin?")),
        "{r}"
    );
    upstream.assert_untouched("a signed-out session");
}

#[test]
fn basic_still_works_on_a_session_and_basic_route_and_both_are_offered() {
    let (upstream, gw) = start_with("[\"session\", \"basic\"]", "", false);
    let r = get(&gw.url("/api"), API);
    assert_eq!(r.status, 401, "{r}");
    let challenges = r.challenges();
    let cookie_at = challenges.find(CHALLENGE);
    let basic_at = challenges.find("Basic realm=\"Test\"");
    // Basic first: the Cookie challenge is no registered scheme, so it always comes last
    // (RFC 9110 §11.6.1), whatever the route's order.
    assert!(
        cookie_at.is_some() && basic_at.is_some() && basic_at < cookie_at,
        "both challenges, Basic first:\n{r}"
    );
    upstream.assert_untouched("no credentials");

    let basic = kit::get(&gw.url("/api"), Some((USER, PASSWORD)), &[]);
    assert_eq!(basic.0, 200, "{basic:?}");
    // A browser that sends Basic credentials with a navigation is served, not redirected.
    let basic_nav = kit::get(&gw.url("/page"), Some((USER, PASSWORD)), NAVIGATION);
    assert_eq!(basic_nav.0, 200, "{basic_nav:?}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert!(
        seen.iter()
            .all(|s| s.header("x-authgate-user") == Some(USER)
                && s.header("x-authgate-method") == Some("basic")),
        "{seen:#?}"
    );
    upstream.clear();

    let (status, h, body) = kit::get(&gw.url("/api"), Some((USER, "wrong")), API);
    assert_eq!(status, 401, "{body}");
    assert!(h["www-authenticate"].contains("Basic"), "{h:?}");
    // A navigation without anything still goes to the sign-in page.
    let r = get(&gw.url("/page"), NAVIGATION);
    assert_to_sign_in(&r, "/page", "required");
    upstream.assert_untouched("denials");

    // And a session works on the same route.
    let value = session(&gw);
    let r = get_owned(&gw.url("/api"), &with_session(&value, API));
    assert_eq!(r.status, 200, "{r}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].header("x-authgate-method"), Some("session"));

    // curl: Basic gets in, nothing gets a 401.
    let code = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .arg(gw.url("/curl"))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(code(&[]), "401");
    assert_eq!(code(&["-u", &format!("{USER}:{PASSWORD}")]), "200");
}

/// Runs gateway/tests/browser/session.mjs against `gw`. The script prints `{"wait":"clock"}`
/// when the session should have gone idle; `on_wait` moves the clock, then the script goes on.
fn browser(gw: &Gateway, shot: &std::path::Path, on_wait: impl Fn()) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/session.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .arg(gw.url(""))
        .args([USER, PASSWORD])
        .arg(shot)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = Vec::new();
    // The script has its own overall timeout, so this loop ends.
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line.trim() == r#"{"wait":"clock"}"# {
            on_wait();
            let _ = writeln!(stdin, "go");
            let _ = stdin.flush();
        }
        lines.push(line);
    }
    drop(stdin);
    let status = child.wait().expect("wait node");
    let stderr = err.join().unwrap_or_default();
    let output = lines.join("\n");
    assert!(
        status.success(),
        "browser failed ({status}):\n{stderr}\n{output}\n--- authgate ---\n{}",
        gw.stderr()
    );
    let last = lines.last().map(String::as_str).unwrap_or("");
    serde_json::from_str(last)
        .unwrap_or_else(|e| panic!("browser printed no result ({e}):\n{output}\n{stderr}"))
}

#[test]
fn chromium_signs_in_expires_signs_in_again_and_signs_out() {
    let (upstream, gw) = start_with("[\"session\"]", "", true);
    let shot = gw.path("signin.png");
    let v = browser(&gw, &shot, || gw.set_clock(700));
    let step = |name: &str| v[name].clone();

    // Opening a protected page lands on the sign-in page, asked to sign in.
    let first = step("first");
    assert_eq!(first["path"], "/_authgate/signin", "{v:#}");
    assert_eq!(first["notice"], "Sign in to continue.", "{v:#}");
    assert_eq!(first["returnTo"], "/app/page?x=1", "{v:#}");
    // Signing in lands back on it, served by the upstream.
    let signed_in = step("signedIn");
    assert_eq!(signed_in["url"], gw.url("/app/page?x=1"), "{v:#}");
    assert_eq!(signed_in["text"], "upstream: /app/page?x=1", "{v:#}");
    assert_eq!(step("other")["text"], "upstream: /app/other", "{v:#}");
    // The browser holds the cookie as set: HttpOnly, SameSite=Lax, host-only.
    let c = step("cookie");
    assert_eq!(c["httpOnly"], true, "{v:#}");
    assert_eq!(c["sameSite"], "Lax", "{v:#}");
    assert_eq!(c["path"], "/", "{v:#}");
    assert_eq!(c["length"], 43, "{v:#}");
    assert_eq!(
        c["inDocumentCookie"], false,
        "page scripts must not see it: {v:#}"
    );
    // Past idle_timeout: the next page shows the sign-in page with the expiry notice.
    let expired = step("expired");
    assert_eq!(expired["path"], "/_authgate/signin", "{v:#}");
    assert_eq!(
        expired["notice"], "Your session expired. Sign in again to continue.",
        "{v:#}"
    );
    assert_eq!(expired["returnTo"], "/app/third?y=2", "{v:#}");
    // Signing in again goes back where the user was.
    let again = step("again");
    assert_eq!(again["url"], gw.url("/app/third?y=2"), "{v:#}");
    assert_eq!(again["text"], "upstream: /app/third?y=2", "{v:#}");
    assert_ne!(
        step("cookieAgain")["value"],
        c["value"],
        "a new session id: {v:#}"
    );
    // Sign-out: the confirmation button, the signed-out page, no session cookie left.
    let out = step("signedOut");
    assert_eq!(out["status"], 200, "{v:#}");
    assert!(
        out["text"]
            .as_str()
            .is_some_and(|t| t.contains("You are signed out")),
        "{v:#}"
    );
    assert_eq!(out["sessionCookies"], 0, "{v:#}");
    let after = step("afterSignOut");
    assert_eq!(after["path"], "/_authgate/signin", "{v:#}");
    assert_eq!(after["returnTo"], "/app/page?x=1", "{v:#}");

    // The upstream saw exactly the pages of the signed-in moments, as alice, without the
    // session cookie; the page opened after expiry only after signing in again.
    let seen: Vec<_> = upstream
        .seen()
        .into_iter()
        .filter(|s| s.target != "/favicon.ico")
        .collect();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(
        targets,
        ["/app/page?x=1", "/app/other", "/app/third?y=2"],
        "{seen:#?}"
    );
    for s in &seen {
        assert_eq!(s.header("x-authgate-user"), Some(USER), "{s:#?}");
        assert!(
            !s.header_all("cookie")
                .iter()
                .any(|c| c.contains(SESSION_COOKIE)),
            "{s:#?}"
        );
    }
    let audit = gw.audit();
    assert!(
        audit
            .iter()
            .any(|a| a["reason"] == "session_expired" && a["detail"] == "idle"),
        "{audit:#?}"
    );

    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 5_000)
            .unwrap_or(false),
        "no screenshot"
    );
    if let Ok(dir) = std::env::var("AUTHGATE_SCREENSHOT_DIR") {
        let _ = std::fs::copy(&shot, std::path::Path::new(&dir).join("signin.png"));
    }
}

/// Sessions live in the store: they outlive a restart, with the activity seen before a
/// graceful shutdown, and a signed-out session stays signed out.
#[test]
fn sessions_survive_a_restart_with_their_activity_and_sign_out_is_durable() {
    let (upstream, mut first) = start_with("[\"session\"]", "", true);
    let kept = session(&first);
    let ended = session(&first);
    first.set_clock(540);
    // Activity at t=540 slides `kept` (written back in a batch or at shutdown).
    let r = get_owned(&first.url("/app"), &with_session(&kept, API));
    assert_eq!(r.status, 200, "{r}");
    let page = get(
        &first.url("/_authgate/signout"),
        &[
            ("accept", NAV_ACCEPT),
            ("cookie", &format!("{SESSION_COOKIE}={ended}")),
        ],
    );
    let form = Form {
        cookie: page.cookie("authgate_csrf").unwrap_or_default(),
        csrf: page.hidden("csrf").unwrap_or_default(),
    };
    let o = origin(&first);
    let r = post_form(
        &first,
        "/_authgate/signout",
        &[("csrf", &form.csrf)],
        Some(&form.cookies(&format!("{SESSION_COOKIE}={ended}"))),
        Some(&o),
    );
    assert_eq!(r.status, 200, "{r}");
    first.signal("TERM");
    assert_eq!(
        first.wait_exit(std::time::Duration::from_secs(15)),
        Some(0),
        "{}",
        first.stderr()
    );

    // A new process on the same store, 18 minutes after sign-in, 9 after the last request.
    let db = first.path("authgate.db").display().to_string();
    let users = kit::htpasswd(&["-B", "-C", "4"], USER, PASSWORD);
    let second = Gateway::start(
        &config(&upstream, "[\"session\"]", "")
            .replace("path = \"authgate.db\"", &format!("path = {db:?}")),
        &[("users.htpasswd", &users), ("clock", "1080")],
    );
    upstream.clear();
    let r = get_owned(&second.url("/app"), &with_session(&kept, API));
    assert_eq!(
        r.status,
        200,
        "the session (last used at t=540) should still be valid at t=1080 after a restart:\n{r}\n--- first process ---\n{}",
        first.stderr()
    );
    assert_eq!(upstream.count(), 1);
    upstream.clear();
    let r = get_owned(&second.url("/app"), &with_session(&ended, API));
    assert_challenged(&r);
    upstream.assert_untouched("a session signed out before the restart");
}

/// Runs `authgate user ARGS --config <the gateway's config>` with `stdin`.
fn user_cli(gw: &Gateway, args: &[&str], stdin: &str) {
    let mut child = Command::new(kit::bin())
        .arg("user")
        .args(args)
        .arg("--config")
        .arg(gw.path("authgate.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("authgate user");
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("authgate user");
    assert!(
        out.status.success(),
        "authgate user {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a `user` command and waits (bounded) until the gateway has reloaded the store.
fn user_cli_seen(gw: &Gateway, args: &[&str], stdin: &str) {
    const RELOADED: &str = "reloaded users and tokens from the store";
    let before = gw.stderr().matches(RELOADED).count();
    user_cli(gw, args, stdin);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while gw.stderr().matches(RELOADED).count() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the gateway never reloaded after `user {args:?}`:\n{}",
            gw.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn sign_in_as(gw: &Gateway, user: &str, password: &str) -> Reply {
    let (_, form) = open_form(gw, "");
    let o = origin(gw);
    post_form(
        gw,
        "/_authgate/signin",
        &[
            ("csrf", &form.csrf),
            ("return_to", "/"),
            ("user", user),
            ("password", password),
        ],
        Some(&form.cookies("")),
        Some(&o),
    )
}

#[test]
fn store_users_sign_in_and_locking_them_stops_their_sessions() {
    let (upstream, gw) = start();
    user_cli_seen(&gw, &["add", "bob", "--bcrypt"], "bob's pw\n");
    let r = sign_in_as(&gw, "bob", "bob's pw");
    assert_eq!(r.status, 303, "{r}");
    let bob = r.cookie(SESSION_COOKIE).unwrap_or_default();
    let r = get_owned(&gw.url("/app"), &with_session(&bob, API));
    assert_eq!(r.status, 200, "{r}");
    assert_eq!(upstream.seen()[0].header("x-authgate-user"), Some("bob"));
    upstream.clear();

    user_cli_seen(&gw, &["lock", "bob"], "");
    let r = get_owned(&gw.url("/app"), &with_session(&bob, API));
    assert_challenged(&r);
    assert_eq!(r.reason(), "account_locked", "{r}");
    let r = get_owned(&gw.url("/app"), &with_session(&bob, NAVIGATION));
    assert_to_sign_in(&r, "/app", "locked");
    let r = sign_in_as(&gw, "bob", "bob's pw");
    assert_eq!(r.status, 401, "a locked user cannot sign in:\n{r}");
    assert!(r.set_cookie(SESSION_COOKIE).is_none(), "{r}");
    upstream.assert_untouched("a locked user's session");

    user_cli_seen(&gw, &["unlock", "bob"], "");
    let r = get_owned(&gw.url("/app"), &with_session(&bob, API));
    assert_eq!(r.status, 200, "unlocked again:\n{r}");
    upstream.clear();

    user_cli_seen(&gw, &["rm", "bob"], "");
    let r = get_owned(&gw.url("/app"), &with_session(&bob, API));
    assert_challenged(&r);
    assert_eq!(r.reason(), "session_expired", "{r}");
    upstream.assert_untouched("a removed user's session");
}

/// A keep-alive connection remembers the Basic credentials it had verified (see
/// `basic::Remembered`); a store change made by `authgate user` must still apply to it at the
/// gateway's next look at the store, as it does to new connections.
#[test]
fn a_store_users_lock_and_removal_apply_to_a_kept_basic_connection() {
    use base64::Engine as _;
    let (upstream, gw) = start_with("[\"basic\"]", "", false);
    user_cli_seen(&gw, &["add", "bob", "--bcrypt"], "bob's pw\n");
    let mut conn = std::net::TcpStream::connect(gw.addr).expect("connect");
    let token = base64::engine::general_purpose::STANDARD.encode("bob:bob's pw");
    let request =
        format!("GET /app HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\nAuthorization: Basic {token}\r\n\r\n");
    let mut on_conn = || kit::raw_on(&mut conn, request.as_bytes());
    for _ in 0..2 {
        let r = on_conn();
        assert_eq!(r.status, 200, "{r:?}");
    }
    assert_eq!(upstream.count(), 2);
    upstream.clear();

    user_cli_seen(&gw, &["lock", "bob"], "");
    let r = on_conn();
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.body.contains("account_locked"), "{r:?}");
    upstream.assert_untouched("a locked user on a kept connection");

    user_cli_seen(&gw, &["unlock", "bob"], "");
    assert_eq!(on_conn().status, 200, "unlocked again");
    upstream.clear();

    user_cli_seen(&gw, &["rm", "bob"], "");
    let r = on_conn();
    assert_eq!(r.status, 401, "{r:?}");
    upstream.assert_untouched("a removed user on a kept connection");
}

/// `authgate user rm` deletes the user's sessions from the store; a running gateway must not
/// keep honouring them from memory when someone else is later added under the same name.
#[test]
fn a_removed_users_session_does_not_come_back_when_the_name_is_reused() {
    let (upstream, gw) = start();
    user_cli_seen(&gw, &["add", "bob", "--bcrypt"], "first bob\n");
    let r = sign_in_as(&gw, "bob", "first bob");
    assert_eq!(r.status, 303, "{r}");
    let old = r.cookie(SESSION_COOKIE).unwrap_or_default();
    // No request with the old cookie between the removal and the new account.
    user_cli_seen(&gw, &["rm", "bob"], "");
    user_cli_seen(&gw, &["add", "bob", "--bcrypt"], "second bob\n");
    upstream.clear();
    let r = get_owned(&gw.url("/app"), &with_session(&old, API));
    assert_challenged(&r);
    upstream.assert_untouched("the first bob's session, after `user rm bob` and a new bob");
}

/// The sign-in page's CSRF cookie gets `Secure` like the session cookie when sessions are
/// secure (the sign-out page already does), so a plain-http response cannot overwrite it.
#[test]
fn the_csrf_cookie_is_secure_when_sessions_are() {
    let (_upstream, gw) = start_with("[\"session\"]", "secure = true", false);
    let (page, _) = open_form(&gw, "");
    let line = page.set_cookie("authgate_csrf").unwrap_or_default();
    let attrs: Vec<&str> = line.split(';').map(str::trim).collect();
    let out = get(&gw.url("/_authgate/signout"), NAVIGATION);
    let out_line = out.set_cookie("authgate_csrf").unwrap_or_default();
    assert!(
        out_line.split(';').any(|a| a.trim() == "Secure"),
        "sign-out page:\n{out}"
    );
    assert!(attrs.contains(&"Secure"), "sign-in page:\n{page}");
}

/// With `secure = true` authgate only ever issues `__Host-authgate_session`. An unprefixed
/// `authgate_session` can be planted by a sibling subdomain or a plain-http response (cookie
/// tossing, RFC 6265bis §8.8.2 / §4.1.3.2), so honouring it would let an attacker sign a victim
/// into the attacker's session.
#[test]
fn a_secure_gateway_refuses_an_unprefixed_session_cookie() {
    let (upstream, gw) = start_with("[\"session\"]", "secure = true", false);
    let r = sign_in(&gw, "/", "");
    let value = r
        .cookie(&format!("__Host-{SESSION_COOKIE}"))
        .unwrap_or_else(|| panic!("no __Host- cookie:\n{r}"));
    // The attacker's own valid session, under the name without the prefix.
    let r = get(
        &gw.url("/app"),
        &[
            ("accept", "application/json"),
            ("cookie", &format!("{SESSION_COOKIE}={value}")),
        ],
    );
    assert_challenged(&r);
    upstream.assert_untouched("an unprefixed session cookie on a secure gateway");
}

/// `X-Forwarded-Proto` decides `Secure`/`__Host-` only from a trusted proxy (both sides).
#[test]
fn only_a_trusted_proxy_can_say_the_client_used_https() {
    for (trusted, top) in [
        (false, ""),
        (true, "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n"),
    ] {
        let (upstream, gw) = start_full(top, "[\"session\"]", "", false);
        let (_, form) = open_form(&gw, "");
        let fields = [
            ("csrf", form.csrf.as_str()),
            ("return_to", "/"),
            ("user", USER),
            ("password", PASSWORD),
        ];
        let cookie = form.cookies("");
        let body = form_encode(&fields);
        let o = origin(&gw);
        let post = |proto: Option<&str>| {
            let mut h = vec![
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", cookie.as_str()),
                ("origin", o.as_str()),
            ];
            if let Some(p) = proto {
                h.push(("x-forwarded-proto", p));
            }
            send("POST", &gw.url("/_authgate/signin"), &h, Some(body.clone()))
        };
        let r = post(Some("https"));
        assert_eq!(r.status, 303, "{r}");
        let host = format!("__Host-{SESSION_COOKIE}");
        if trusted {
            let line = r
                .set_cookie(&host)
                .unwrap_or_else(|| panic!("trusted proxy said https:\n{r}"));
            assert!(line.split(';').any(|a| a.trim() == "Secure"), "{r}");
            let value = r.cookie(&host).unwrap_or_default();
            let r = get(
                &gw.url("/app"),
                &[
                    ("accept", "*/*"),
                    ("x-forwarded-proto", "https"),
                    ("cookie", &format!("{host}={value}; theme=dark")),
                ],
            );
            assert_eq!(r.status, 200, "{r}");
            assert_eq!(upstream.seen()[0].header("cookie"), Some("theme=dark"));
        } else {
            assert!(
                r.set_cookie(&host).is_none(),
                "untrusted X-Forwarded-Proto:\n{r}"
            );
            let line = r.set_cookie(SESSION_COOKIE).unwrap_or_default();
            assert!(
                !line.split(';').any(|a| a.trim() == "Secure"),
                "untrusted X-Forwarded-Proto:\n{r}"
            );
        }
        // Without the header, plain http: no prefix either way.
        let r = post(None);
        assert_eq!(r.status, 303, "{r}");
        assert!(r.set_cookie(SESSION_COOKIE).is_some(), "{r}");
        assert!(r.set_cookie(&host).is_none(), "{r}");
    }
}

/// The sign-in form is a password prompt like Basic: the same brute-force protection applies.
#[test]
fn the_sign_in_form_is_covered_by_the_brute_force_lockout() {
    let (upstream, gw) = start_full(
        "[lockout]\npair_threshold = 3\nban = \"60s\"\n",
        "[\"session\"]",
        "",
        true,
    );
    for i in 0..3 {
        let r = sign_in_as(&gw, USER, &format!("guess-{i}"));
        assert_eq!(r.status, 401, "attempt {i}:\n{r}");
    }
    let r = sign_in_as(&gw, USER, PASSWORD);
    assert_eq!(r.status, 429, "banned, even with the right password:\n{r}");
    assert!(r.set_cookie(SESSION_COOKIE).is_none(), "{r}");
    assert!(r.body.contains("id=\"notice\""), "{r}");
    let a = gw.audit_for(r.header("x-request-id").unwrap_or_default());
    assert_eq!(a["reason"], "too_many_failures", "{a}");
    upstream.assert_untouched("a banned sign-in");
    gw.set_clock(61);
    let r = sign_in_as(&gw, USER, PASSWORD);
    assert_eq!(r.status, 303, "after the ban:\n{r}");
}
