//! The forward-auth endpoint (issue 6) behind real proxies: nginx `auth_request` and Caddy
//! `forward_auth` (Debian's nginx 1.22 and caddy 2.6), started on free ports with the configs
//! from `examples/forward-auth/`, in front of the recording upstream; and Traefik's
//! ForwardAuth header contract, sent directly with reqwest (Traefik is not packaged).
//!
//! Routes (examples/forward-auth/authgate.toml): `/` any valid user, `/admin` group `admins`
//! (alice), `/public` no authentication. Users: alice, bob.

use std::net::SocketAddr;

use crate::daemon::{self, Daemon};
use crate::kit;

const EXAMPLE_AUTHGATE: &str = include_str!("../../../examples/forward-auth/authgate.toml");
const EXAMPLE_NGINX: &str = include_str!("../../../examples/forward-auth/nginx.conf");
const EXAMPLE_CADDY: &str = include_str!("../../../examples/forward-auth/Caddyfile");

/// The placeholders the examples use.
const EX_AUTHGATE: &str = "127.0.0.1:9091";
const EX_APP: &str = "127.0.0.1:9000";
const EX_LISTEN: &str = "127.0.0.1:8080";

const CHALLENGE: &str = r#"Basic realm="Example", charset="UTF-8""#;
const CHECK: &str = "/_authgate/check";

fn users() -> String {
    let b = ["-B", "-C", "4"];
    [
        kit::htpasswd(&b, "alice", "alice-pw"),
        kit::htpasswd(&b, "bob", "bob-pw"),
    ]
    .concat()
}

/// authgate with `config` (the example's listen address becomes port 0).
fn authgate(config: &str) -> kit::Gateway {
    let config = config.replace(
        &format!("listen = \"{EX_AUTHGATE}\""),
        "listen = \"127.0.0.1:0\"",
    );
    assert!(config.contains("127.0.0.1:0"), "no listen line in {config}");
    let users = users();
    kit::Gateway::start(&config, &[("users.htpasswd", users.as_str())])
}

// ---------------------------------------------------------------------------------------
// Responses and what was sent, printable for failure messages
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct Resp {
    sent: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn all(&self, name: &str) -> Vec<&str> {
        kit::header_values(&self.headers, name)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }
}

impl std::fmt::Display for Resp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "sent: {}", self.sent)?;
        writeln!(f, "got: {}", self.status)?;
        for (k, v) in &self.headers {
            writeln!(f, "  {k}: {v}")?;
        }
        write!(
            f,
            "  body: {:?}",
            self.body.chars().take(400).collect::<String>()
        )
    }
}

/// GET `url` with optional Basic credentials and extra headers.
fn get(url: &str, creds: Option<(&str, &str)>, headers: &[(&str, &str)]) -> Resp {
    let sent = format!("GET {url} creds={creds:?} headers={headers:?}");
    kit::rt().block_on(async {
        let mut req = kit::client().get(url);
        if let Some((u, p)) = creds {
            req = req.basic_auth(u, Some(p));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap_or_else(|e| panic!("{sent}: {e:?}"));
        let (status, headers, body) = kit::read(resp).await;
        Resp {
            sent,
            status,
            headers,
            body,
        }
    })
}

/// A raw request line `GET {target}` (bytes as written, no client-side normalisation).
fn raw_get(addr: SocketAddr, target: &str, extra: &str) -> Resp {
    let req = format!(
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{extra}Connection: close\r\n\r\n",
        addr.port()
    );
    let r = kit::raw(addr, req.as_bytes());
    Resp {
        sent: format!("{req:?}"),
        status: r.status,
        headers: r
            .head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
        body: r.body,
    }
}

// ---------------------------------------------------------------------------------------
// Real proxies
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Nginx,
    Caddy,
}

/// A proxy process on 127.0.0.1, killed on drop.
struct Proxy {
    kind: Kind,
    daemon: Daemon,
}

impl Proxy {
    fn addr(&self) -> SocketAddr {
        self.daemon.addr()
    }

    fn url(&self, path: &str) -> String {
        self.daemon.url(path)
    }

    fn log(&self) -> String {
        self.daemon.log()
    }

    /// Starts `kind` with `config` (the example's placeholders filled in).
    fn start(kind: Kind, config: &str, authgate: SocketAddr, app: SocketAddr) -> Proxy {
        let fill = |listen: SocketAddr| {
            config
                .replace(EX_AUTHGATE, &authgate.to_string())
                .replace(EX_APP, &app.to_string())
                .replace(EX_LISTEN, &listen.to_string())
        };
        let daemon = match kind {
            Kind::Nginx => Daemon::start("nginx", "nginx.pid", &["127.0.0.1"], &|dir, addrs| {
                std::fs::write(dir.join("nginx.conf"), fill(addrs[0])).expect("write");
                daemon::nginx(dir)
            }),
            Kind::Caddy => Daemon::start("caddy", "caddy.pid", &["127.0.0.1"], &|dir, addrs| {
                std::fs::write(dir.join("Caddyfile"), fill(addrs[0])).expect("write");
                daemon::caddy(dir)
            }),
        };
        Proxy { kind, daemon }
    }
}

/// Upstream, authgate and a proxy, wired as in examples/forward-auth.
struct Stack {
    up: kit::Upstream,
    gw: kit::Gateway,
    proxy: Proxy,
}

impl Stack {
    fn start(kind: Kind) -> Stack {
        let config = match kind {
            Kind::Nginx => EXAMPLE_NGINX,
            Kind::Caddy => EXAMPLE_CADDY,
        };
        Self::with_proxy_config(kind, config)
    }

    fn with_proxy_config(kind: Kind, config: &str) -> Stack {
        let up = kit::Upstream::start();
        let gw = authgate(EXAMPLE_AUTHGATE);
        let proxy = Proxy::start(kind, config, gw.addr, up.addr);
        Stack { up, gw, proxy }
    }

    fn get(&self, path: &str, creds: Option<(&str, &str)>, headers: &[(&str, &str)]) -> Resp {
        get(&self.proxy.url(path), creds, headers)
    }

    /// Everything that helps when an assertion fails.
    fn context(&self, r: &Resp) -> String {
        format!(
            "{:?} at {}\n{r}\nupstream saw: {:#?}\nauthgate audit: {:#?}\nproxy log:\n{}",
            self.proxy.kind,
            self.proxy.addr(),
            self.up.seen(),
            self.gw.audit(),
            self.proxy.log()
        )
    }

    #[track_caller]
    fn expect_denied(&self, r: &Resp, status: u16) {
        assert_eq!(r.status, status, "{}", self.context(r));
        assert!(
            self.up.seen().is_empty(),
            "a denied request reached the upstream\n{}",
            self.context(r)
        );
    }
}

/// Resolves dot-segments the way an upstream application would (RFC 3986 §5.2.4), after
/// decoding `%2e`/`%2E`; the result is what the upstream may serve.
fn effective_path(target: &str) -> String {
    let path = target.split('?').next().unwrap_or("");
    let decoded = path.replace("%2e", ".").replace("%2E", ".");
    let mut out: Vec<&str> = Vec::new();
    for seg in decoded.split('/').skip(1) {
        match seg {
            "." | "" => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    format!("/{}", out.join("/"))
}

// ---------------------------------------------------------------------------------------
// The flows, for each proxy
// ---------------------------------------------------------------------------------------

fn no_credentials(kind: Kind) {
    let s = Stack::start(kind);
    for path in ["/", "/app/x?y=1", "/admin/"] {
        let r = s.get(path, None, &[]);
        s.expect_denied(&r, 401);
        assert_eq!(
            r.all("www-authenticate"),
            vec![CHALLENGE],
            "exactly authgate's challenge, once\n{}",
            s.context(&r)
        );
    }
}

fn wrong_password(kind: Kind) {
    let s = Stack::start(kind);
    for (path, user, pw) in [
        ("/x", "alice", "wrong"),
        ("/admin/x", "alice", "bob-pw"),
        ("/x", "mallory", "x"),
    ] {
        let r = s.get(path, Some((user, pw)), &[]);
        s.expect_denied(&r, 401);
        assert_eq!(
            r.all("www-authenticate"),
            vec![CHALLENGE],
            "{}",
            s.context(&r)
        );
    }
}

fn valid_credentials(kind: Kind) {
    let s = Stack::start(kind);
    for (path, user, groups) in [("/x?q=1", "bob", ""), ("/admin/panel", "alice", "admins")] {
        s.up.clear();
        let pw = format!("{user}-pw");
        let r = s.get(path, Some((user, &pw)), &[]);
        assert_eq!(r.status, 200, "{}", s.context(&r));
        assert_eq!(r.body, format!("upstream: {path}"), "{}", s.context(&r));
        let seen = s.up.seen();
        assert_eq!(seen.len(), 1, "{}", s.context(&r));
        let seen = &seen[0];
        assert_eq!(
            seen.header_all("x-authgate-user"),
            vec![user],
            "{}",
            s.context(&r)
        );
        assert_eq!(
            seen.header_all("x-authgate-method"),
            vec!["basic"],
            "{}",
            s.context(&r)
        );
        // An empty groups list may arrive as an empty header or none at all.
        let g: Vec<&str> = seen
            .header_all("x-authgate-groups")
            .into_iter()
            .filter(|v| !v.is_empty())
            .collect();
        let want: Vec<&str> = if groups.is_empty() {
            vec![]
        } else {
            vec![groups]
        };
        assert_eq!(g, want, "{}", s.context(&r));
        assert!(
            seen.header("authorization").is_none(),
            "the example configs keep the password from the app\n{}",
            s.context(&r)
        );
    }
}

fn user_not_allowed(kind: Kind) {
    let s = Stack::start(kind);
    let r = s.get("/admin/panel", Some(("bob", "bob-pw")), &[]);
    s.expect_denied(&r, 403);
    assert!(r.all("www-authenticate").is_empty(), "{}", s.context(&r));
}

/// Identity and URI headers sent by the client: never identity at the upstream, never the
/// target of the decision.
fn spoofed_headers(kind: Kind) {
    let s = Stack::start(kind);
    let spoof: &[(&str, &str)] = &[
        ("X-Authgate-User", "admin"),
        ("x-authgate-groups", "admins"),
        ("X-Authgate-Method", "admin"),
        ("X_Authgate_User", "admin"),
        ("X-Forwarded-User", "admin"),
        ("X-Remote-User", "admin"),
        ("Remote-User", "admin"),
        ("X-Original-URI", "/public/x"),
        ("X-Original-Method", "GET"),
        ("X-Forwarded-Uri", "/public/x"),
        ("X-Forwarded-Method", "GET"),
        ("X-Forwarded-Host", "public.example"),
    ];
    // Without credentials the decision is for /admin (401), not for the /public the
    // headers name.
    let r = s.get("/admin/secret", None, spoof);
    s.expect_denied(&r, 401);
    assert_eq!(
        r.all("www-authenticate"),
        vec![CHALLENGE],
        "{}",
        s.context(&r)
    );
    // bob on /admin: 403, whatever the headers say.
    let r = s.get("/admin/secret", Some(("bob", "bob-pw")), spoof);
    s.expect_denied(&r, 403);
    // bob on /: allowed as bob, and only bob reaches the upstream.
    let r = s.get("/x", Some(("bob", "bob-pw")), spoof);
    assert_eq!(r.status, 200, "{}", s.context(&r));
    let seen = s.up.seen();
    assert_eq!(seen.len(), 1, "{}", s.context(&r));
    assert_eq!(
        seen[0].header_all("x-authgate-user"),
        vec!["bob"],
        "{}",
        s.context(&r)
    );
    assert_no_spoofed_identity(&s, &r);
}

/// On a public route authgate answers 200 without identity headers: the client's must not
/// reach the upstream either.
fn public_route(kind: Kind) {
    let s = Stack::start(kind);
    let spoof: &[(&str, &str)] = &[
        ("X-Authgate-User", "admin"),
        ("x-authgate-user", "admin"),
        ("X-Authgate-Groups", "admins"),
        ("X-Authgate-Method", "basic"),
        ("X_Authgate_User", "admin"),
        ("X-Forwarded-User", "admin"),
        ("Remote-User", "admin"),
    ];
    let r = s.get("/public/page", None, spoof);
    assert_eq!(r.status, 200, "{}", s.context(&r));
    let seen = s.up.seen();
    assert_eq!(seen.len(), 1, "{}", s.context(&r));
    for h in ["x-authgate-user", "x-authgate-groups", "x-authgate-method"] {
        assert_eq!(
            seen[0].header_all(h),
            Vec::<&str>::new(),
            "{h} on an anonymous request\n{}",
            s.context(&r)
        );
    }
    assert_no_spoofed_identity(&s, &r);
}

#[track_caller]
fn assert_no_spoofed_identity(s: &Stack, r: &Resp) {
    for seen in s.up.seen() {
        for (k, v) in &seen.headers {
            let k = k.to_ascii_lowercase().replace('_', "-");
            let identity = k.starts_with("x-authgate-")
                || k.ends_with("remote-user")
                || k == "x-forwarded-user";
            assert!(
                !(v.contains("admin") || (identity && v.contains('{'))),
                "client-sent identity reached the upstream as {k}: {v}\n{}",
                s.context(r)
            );
        }
    }
}

/// Dot-segments and their encodings, sent verbatim: whatever each proxy does with them, the
/// upstream never receives a request for a protected path without authentication.
fn path_confusion(kind: Kind) {
    let s = Stack::start(kind);
    let targets = [
        "/public/../admin/x",
        "/public/./../admin/x",
        "/public/x/../../admin/x",
        "/public/%2e%2e/admin/x",
        "/public/%2E%2E/admin/x",
        "/public/.%2e/admin/x",
        "/public/..%2fadmin/x",
        "/public%2f..%2fadmin/x",
        "/public/..;/admin/x",
        "/public/..\\admin/x",
        "//admin/x",
        "/public//../admin/x",
        "/admin/../public/x",
    ];
    let mut report = Vec::new();
    for t in targets {
        s.up.clear();
        let r = raw_get(s.proxy.addr(), t, "");
        let seen = s.up.seen();
        report.push(format!(
            "{t} -> {} {:?}",
            r.status,
            seen.iter().map(|x| &x.target).collect::<Vec<_>>()
        ));
        for x in &seen {
            let lower = x.target.to_ascii_lowercase();
            assert!(
                effective_path(&x.target).starts_with("/public/")
                    && !["%2e", "%2f", "%5c", ";", "\\"]
                        .iter()
                        .any(|b| lower.contains(b)),
                "unauthenticated {t} reached the upstream as {} (effective {})\n{}",
                x.target,
                effective_path(&x.target),
                s.context(&r)
            );
        }
        if effective_path(t).starts_with("/admin") || effective_path(t) == "/" {
            assert!(
                [400, 401, 403, 404].contains(&r.status),
                "{t}: {}",
                s.context(&r)
            );
        }
    }
    // The same protected targets with valid credentials but for a user not allowed there.
    for t in ["/public/../admin/x", "/x/../admin/x", "//admin/x"] {
        s.up.clear();
        let r = raw_get(
            s.proxy.addr(),
            t,
            "Authorization: Basic Ym9iOmJvYi1wdw==\r\n", // bob:bob-pw
        );
        s.expect_denied(&r, 403);
    }
    eprintln!("{kind:?} path confusion: {report:#?}");
}

macro_rules! for_proxies {
    ($($flow:ident: $nginx:ident, $caddy:ident;)*) => {$(
        #[test]
        fn $nginx() {
            $flow(Kind::Nginx);
        }
        #[test]
        fn $caddy() {
            $flow(Kind::Caddy);
        }
    )*};
}

for_proxies! {
    no_credentials: nginx_no_credentials_get_authgates_challenge, caddy_no_credentials_get_authgates_challenge;
    wrong_password: nginx_wrong_password_is_401_upstream_untouched, caddy_wrong_password_is_401_upstream_untouched;
    valid_credentials: nginx_valid_credentials_reach_upstream_with_identity, caddy_valid_credentials_reach_upstream_with_identity;
    user_not_allowed: nginx_user_not_allowed_is_403, caddy_user_not_allowed_is_403;
    spoofed_headers: nginx_spoofed_identity_and_uri_headers_change_nothing, caddy_spoofed_identity_and_uri_headers_change_nothing;
    public_route: nginx_public_route_drops_client_identity_headers, caddy_public_route_drops_client_identity_headers;
    path_confusion: nginx_path_confusion_never_reaches_protected_path, caddy_path_confusion_never_reaches_protected_path;
    session_sign_in: nginx_browser_is_sent_to_sign_in_and_gets_through, caddy_browser_is_sent_to_sign_in_and_gets_through;
}

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// The `name=value` of a `Set-Cookie` for `name`, if the response sets one.
fn set_cookie(r: &Resp, name: &str) -> Option<String> {
    r.all("set-cookie")
        .into_iter()
        .filter_map(|c| c.split(';').next())
        .find(|nv| nv.split('=').next() == Some(name))
        .map(str::to_owned)
}

/// A session route (`/portal`) behind the proxy: a browser's page request is redirected to
/// authgate's sign-in page (served through the proxy on the app's host), an API request
/// gets the 401; signing in through the proxy gives a cookie that the proxy's next
/// forward-auth question carries, and the request reaches the app as the user.
fn session_sign_in(kind: Kind) {
    let s = Stack::start(kind);
    let nav = [("Accept", BROWSER_ACCEPT), ("Sec-Fetch-Mode", "navigate")];
    let r = s.get("/portal/page?x=1", None, &nav);
    assert_eq!(r.status, 302, "{}", s.context(&r));
    // nginx makes the Location absolute (on the proxy's own origin); Caddy passes it on.
    let origin = format!("http://{}", s.proxy.addr());
    assert_eq!(
        r.header("location")
            .map(|l| l.trim_start_matches(origin.as_str())),
        Some("/_authgate/signin?return_to=/portal/page%3Fx%3D1&why=required"),
        "{}",
        s.context(&r)
    );
    let api = s.get("/portal/page", None, &[("Accept", "application/json")]);
    assert_eq!(api.status, 401, "{}", s.context(&api));
    assert_eq!(
        api.all("www-authenticate"),
        vec![
            r#"Basic realm="Example", charset="UTF-8", Cookie realm="Example", form-action="/_authgate/signin""#
        ],
        "{}",
        s.context(&api)
    );
    assert!(s.up.seen().is_empty(), "{}", s.context(&api));

    // The sign-in page, through the proxy.
    let page = s.get(
        "/_authgate/signin?return_to=/portal/page%3Fx%3D1",
        None,
        &nav,
    );
    assert_eq!(page.status, 200, "{}", s.context(&page));
    let csrf_cookie = set_cookie(&page, "authgate_csrf").expect("csrf cookie");
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf field")
        .to_string();
    let post = kit::rt().block_on(async {
        kit::client()
            .post(s.proxy.url("/_authgate/signin"))
            .header("Cookie", &csrf_cookie)
            .form(&[
                ("user", "bob"),
                ("password", "bob-pw"),
                ("csrf", csrf.as_str()),
                ("return_to", "/portal/page?x=1"),
            ])
            .send()
            .await
            .expect("post")
    });
    assert_eq!(post.status().as_u16(), 303);
    assert_eq!(post.headers()["location"], "/portal/page?x=1");
    let session = post
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|c| c.split(';').next())
        .find(|nv| nv.starts_with("authgate_session="))
        .expect("session cookie")
        .to_string();
    assert!(
        s.up.seen().is_empty(),
        "sign-in is authgate's, not the app's"
    );

    let r = s.get(
        "/portal/page?x=1",
        None,
        &[nav[0], nav[1], ("Cookie", session.as_str())],
    );
    assert_eq!(r.status, 200, "{}", s.context(&r));
    let seen = s.up.seen();
    assert_eq!(seen.len(), 1, "{}", s.context(&r));
    assert_eq!(
        seen[0].header("x-authgate-user"),
        Some("bob"),
        "{}",
        s.context(&r)
    );
    assert_eq!(
        seen[0].header("x-authgate-method"),
        Some("session"),
        "{}",
        s.context(&r)
    );
}

#[test]
fn traefik_contract_sends_a_browser_to_sign_in() {
    let gw = authgate(EXAMPLE_AUTHGATE);
    let r = get(
        &gw.url(CHECK),
        None,
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.com"),
            ("X-Forwarded-Uri", "/portal/"),
            ("Accept", BROWSER_ACCEPT),
        ],
    );
    // Traefik hands a non-2xx answer to the client as it is.
    assert_eq!(r.status, 302, "{r}");
    assert_eq!(
        r.header("location"),
        Some("/_authgate/signin?return_to=/portal/&why=required"),
        "{r}"
    );
    // An API client on the same route: the 401 and its challenge.
    let r = get(
        &gw.url(CHECK),
        None,
        &[
            ("X-Forwarded-Method", "GET"),
            ("X-Forwarded-Host", "app.example.com"),
            ("X-Forwarded-Uri", "/portal/"),
            ("Accept", "application/json"),
        ],
    );
    assert_eq!(r.status, 401, "{r}");
    assert!(r.header("location").is_none(), "{r}");
}

#[test]
fn nginx_check_location_is_internal() {
    let s = Stack::start(Kind::Nginx);
    let r = s.get(
        CHECK,
        Some(("alice", "alice-pw")),
        &[("X-Original-URI", "/admin")],
    );
    s.expect_denied(&r, 404);
}

/// The nginx config most auth_request guides give (X-Original-URI, X-Original-Method, Host,
/// nothing else): nginx passes every client header to the subrequest, so a client can add an
/// X-Forwarded-Uri naming another path. authgate must never decide for the client's path:
/// the two descriptions disagree, so it fails closed with 403 (regression test for the bug
/// where X-Forwarded-Uri won and /admin went through unauthenticated).
#[test]
fn nginx_minimal_config_client_x_forwarded_uri_does_not_pick_the_route() {
    let minimal: String = EXAMPLE_NGINX
        .lines()
        .filter(|l| {
            !["X-Forwarded-Uri", "X-Forwarded-Method", "X-Forwarded-Host"]
                .iter()
                .any(|h| l.contains(&format!("proxy_set_header {h} ")))
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(minimal.contains("X-Original-URI     $request_uri"));
    let s = Stack::with_proxy_config(Kind::Nginx, &minimal);
    let r = s.get("/admin/secret", None, &[("X-Forwarded-Uri", "/public/x")]);
    // nginx answers the 403 with its own page; the upstream saw nothing (expect_denied).
    s.expect_denied(&r, 403);
}

#[test]
fn nginx_and_caddy_examples_use_the_tested_placeholders() {
    for (name, text) in [("nginx.conf", EXAMPLE_NGINX), ("Caddyfile", EXAMPLE_CADDY)] {
        for p in [EX_AUTHGATE, EX_APP, EX_LISTEN] {
            assert!(text.contains(p), "{name} lacks {p}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Traefik's ForwardAuth contract, sent directly
// ---------------------------------------------------------------------------------------

/// What Traefik sends: GET to the address, Host = authgate, X-Forwarded-* describing the
/// client's request, plus the client's headers.
fn traefik(gw: &kit::Gateway, method: &str, uri: &str, creds: Option<(&str, &str)>) -> Resp {
    get(
        &gw.url(CHECK),
        creds,
        &[
            ("X-Forwarded-Method", method),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "app.example.com"),
            ("X-Forwarded-Uri", uri),
            ("X-Forwarded-For", "203.0.113.7"),
        ],
    )
}

#[test]
fn traefik_contract_from_a_trusted_proxy() {
    let gw = authgate(EXAMPLE_AUTHGATE);
    let ctx = |r: &Resp| format!("{r}\naudit: {:#?}", gw.audit());

    let r = traefik(&gw, "GET", "/app/x?y=1", None);
    assert_eq!(r.status, 401, "{}", ctx(&r));
    assert_eq!(r.all("www-authenticate"), vec![CHALLENGE], "{}", ctx(&r));
    assert_eq!(
        r.header("x-authgate-reason"),
        Some("missing_credentials"),
        "{}",
        ctx(&r)
    );
    assert!(r.header("x-authgate-user").is_none(), "{}", ctx(&r));

    let r = traefik(&gw, "POST", "/app/x", Some(("alice", "nope")));
    assert_eq!(r.status, 401, "{}", ctx(&r));
    assert_eq!(r.all("www-authenticate"), vec![CHALLENGE], "{}", ctx(&r));
    assert_eq!(
        r.header("x-authgate-reason"),
        Some("invalid_credentials"),
        "{}",
        ctx(&r)
    );

    let r = traefik(&gw, "DELETE", "/admin/x", Some(("alice", "alice-pw")));
    assert_eq!(r.status, 200, "{}", ctx(&r));
    assert_eq!(r.all("x-authgate-user"), vec!["alice"], "{}", ctx(&r));
    assert_eq!(r.all("x-authgate-groups"), vec!["admins"], "{}", ctx(&r));
    assert_eq!(r.all("x-authgate-method"), vec!["basic"], "{}", ctx(&r));
    assert_eq!(r.header("cache-control"), Some("no-store"), "{}", ctx(&r));
    let id = r.header("x-request-id").expect("x-request-id").to_string();
    let audit = gw.audit_for(&id);
    assert_eq!(
        (
            &audit["method"],
            &audit["path"],
            &audit["user"],
            &audit["client"]
        ),
        (
            &serde_json::json!("DELETE"),
            &serde_json::json!("/admin/x"),
            &serde_json::json!("alice"),
            &serde_json::json!("203.0.113.7")
        ),
        "{audit:#}"
    );

    let r = traefik(&gw, "GET", "/admin/x", Some(("bob", "bob-pw")));
    assert_eq!(r.status, 403, "{}", ctx(&r));
    assert_eq!(
        r.header("x-authgate-reason"),
        Some("forbidden"),
        "{}",
        ctx(&r)
    );
    assert!(r.header("x-authgate-user").is_none(), "{}", ctx(&r));

    let r = traefik(&gw, "GET", "/public/x", None);
    assert_eq!(r.status, 200, "{}", ctx(&r));
    assert!(r.header("x-authgate-user").is_none(), "{}", ctx(&r));
}

#[test]
fn traefik_contract_from_an_untrusted_peer_is_403() {
    let config = EXAMPLE_AUTHGATE.replace(
        r#"trusted_proxies = ["127.0.0.1"]"#,
        r#"trusted_proxies = ["10.9.9.9"]"#,
    );
    assert_ne!(config, EXAMPLE_AUTHGATE);
    let gw = authgate(&config);
    for (uri, creds) in [
        ("/public/x", None),
        ("/x", Some(("bob", "bob-pw"))),
        ("/admin/x", Some(("alice", "alice-pw"))),
        ("/x", None),
    ] {
        let r = traefik(&gw, "GET", uri, creds);
        assert_eq!(r.status, 403, "{r}\naudit: {:#?}", gw.audit());
        assert_eq!(
            r.header("x-authgate-reason"),
            Some("untrusted_forward_auth"),
            "{r}"
        );
        assert!(r.header("x-authgate-user").is_none(), "{r}");
        assert!(r.all("www-authenticate").is_empty(), "{r}");
    }
}

/// nginx `auth_request` turns any status but 2xx/401/403 into a 500, so the endpoint answers
/// every other denial 403 with the reason in X-Authgate-Reason.
#[test]
fn forward_auth_answers_only_200_401_403() {
    let config = format!(
        "{}\n[[route]]\nhost = \"app.example\"\npath = \"/\"\nauth = [\"basic\"]\n",
        EXAMPLE_AUTHGATE.replace(
            "[[route]]\npath = \"/\"\n",
            "[[route]]\nhost = \"example.org\"\npath = \"/\"\n"
        )
    );
    assert!(config.contains("host = \"example.org\""), "{config}");
    let gw = authgate(&config);
    let big = "a".repeat(20_000);
    // (what, headers sent, expected X-Authgate-Reason or "" for any)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "no URI header",
            vec![("X-Forwarded-Method", "GET")],
            "forward_auth_incomplete",
        ),
        (
            "encoded dot-segment",
            vec![("X-Forwarded-Uri", "/public/%2e%2e/admin")],
            "ambiguous_path",
        ),
        (
            "encoded slash",
            vec![("X-Original-URI", "/public%2f..%2fadmin")],
            "ambiguous_path",
        ),
        (
            "path parameter",
            vec![("X-Forwarded-Uri", "/public/..;/admin")],
            "ambiguous_path",
        ),
        (
            "absolute URI",
            vec![("X-Forwarded-Uri", "http://evil/admin")],
            "ambiguous_path",
        ),
        ("asterisk", vec![("X-Forwarded-Uri", "*")], "ambiguous_path"),
        ("empty URI", vec![("X-Forwarded-Uri", "")], ""),
        (
            "bad method",
            vec![("X-Forwarded-Uri", "/x"), ("X-Forwarded-Method", "G(E)T")],
            "forward_auth_incomplete",
        ),
        (
            "unknown host",
            vec![
                ("X-Forwarded-Uri", "/x"),
                ("X-Forwarded-Host", "other.example"),
            ],
            "no_route",
        ),
        (
            "bad host",
            vec![("X-Forwarded-Uri", "/x"), ("X-Forwarded-Host", "a b")],
            "invalid_host",
        ),
        (
            "duplicate authorization",
            vec![
                ("X-Forwarded-Uri", "/x"),
                ("X-Forwarded-Host", "app.example"),
                ("Authorization", "Basic YTpi"),
                ("Authorization", "Basic YzpK"),
            ],
            "duplicate_authorization",
        ),
        (
            "malformed authorization",
            vec![
                ("X-Forwarded-Uri", "/x"),
                ("X-Forwarded-Host", "app.example"),
                ("Authorization", "Basic"),
            ],
            "",
        ),
        (
            "headers over max_header_bytes",
            vec![
                ("X-Forwarded-Uri", "/x"),
                ("X-Forwarded-Host", "app.example"),
                ("X-Big", big.as_str()),
            ],
            "headers_too_large",
        ),
    ];
    for (what, headers, reason) in cases {
        let r = get(&gw.url(CHECK), None, &headers);
        assert!(
            [200, 401, 403].contains(&r.status),
            "{what}: the endpoint must answer 200, 401 or 403\n{r}"
        );
        assert_ne!(r.status, 200, "{what}\n{r}");
        if r.status == 403 {
            assert!(r.header("x-authgate-reason").is_some(), "{what}\n{r}");
        }
        if !reason.is_empty() {
            assert_eq!(
                (r.status, r.header("x-authgate-reason")),
                (403, Some(reason)),
                "{what}\n{r}"
            );
        }
    }
}

/// Two values for the header that names the target: authgate decides on the first, a proxy
/// that adds its own value after the client's (instead of replacing it) forwards the second.
/// An ambiguous description should fail closed, as a duplicated Authorization does.
#[test]
fn forward_auth_refuses_duplicate_describing_headers() {
    let gw = authgate(EXAMPLE_AUTHGATE);
    for name in ["X-Forwarded-Uri", "X-Original-URI"] {
        let r = get(
            &gw.url(CHECK),
            None,
            &[(name, "/public/x"), (name, "/admin/x")],
        );
        assert_eq!(r.status, 403, "{r}");
    }
}
