//! Malformed, spoofed and ambiguous requests: they never reach the upstream, and the client
//! gets a clear status with a stable `reason`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{
    GeneralPurpose, GeneralPurposeConfig, STANDARD, STANDARD_NO_PAD,
};
use base64::Engine as _;

use crate::kit;

const CHALLENGE: &str = "Basic realm=\"Test\", charset=\"UTF-8\"";

/// alice (group admins), bob, and two users whose standard base64 contains '/' and '+'.
fn users() -> String {
    let b = ["-B", "-C", "4"];
    [
        kit::htpasswd(&b, "alice", "alice-pw"),
        kit::htpasswd(&b, "bob", "bob-pw"),
        kit::htpasswd(&b, "dave", "pw>?>?"),
        kit::htpasswd(&b, "erin", "pw>>>?"),
    ]
    .concat()
}

fn start(upstream: &kit::Upstream, extra: &str) -> kit::Gateway {
    let users = users();
    kit::Gateway::start(
        &kit::basic_config(
            upstream,
            &format!("[groups]\nadmins = [\"alice\"]\n{extra}"),
        ),
        &[("users.htpasswd", users.as_str())],
    )
}

fn basic(user: &str, pw: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{pw}")))
}

/// One request and its answer, printed whole when an assertion fails.
#[derive(Debug)]
struct Exchange {
    #[allow(dead_code)] // shown through Debug when an assertion fails
    sent: String,
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Exchange {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
    fn reason(&self) -> String {
        self.json()["reason"].as_str().unwrap_or("").to_string()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// GET through reqwest with `Accept: application/json` and the given extra headers.
fn ask(gw: &kit::Gateway, path: &str, headers: &[(&str, &str)]) -> Exchange {
    let mut all = vec![("accept", "application/json")];
    all.extend_from_slice(headers);
    let (status, headers, body) = kit::get(&gw.url(path), None, &all);
    Exchange {
        sent: format!("GET {path} {all:?}"),
        status,
        headers,
        body,
    }
}

/// A byte-exact request; the answer's headers are lower-cased names.
fn ask_raw(gw: &kit::Gateway, request: &[u8]) -> Exchange {
    let r = kit::raw(gw.addr, request);
    let headers = r
        .head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let sent = if r.status == 0 {
        // How the exchange ended, and what the gateway logged, when nothing came back.
        format!(
            "{}\n{}\ngateway stderr:\n{}",
            request.escape_ascii(),
            r.head,
            gw.stderr()
        )
    } else {
        request.escape_ascii().to_string()
    };
    Exchange {
        sent,
        status: r.status,
        headers,
        body: r.body,
    }
}

fn host(gw: &kit::Gateway) -> String {
    gw.addr.to_string()
}

#[track_caller]
fn assert_denied(ex: &Exchange, status: u16, reason: &str) {
    assert_eq!(ex.status, status, "wrong status for {ex:#?}");
    assert_eq!(ex.reason(), reason, "wrong reason for {ex:#?}");
    assert_eq!(ex.header("cache-control"), Some("no-store"), "{ex:#?}");
    if status == 401 {
        assert_eq!(ex.header("www-authenticate"), Some(CHALLENGE), "{ex:#?}");
    } else {
        assert_eq!(
            ex.header("www-authenticate"),
            None,
            "only 401 carries a challenge: {ex:#?}"
        );
    }
}

/// A 400 either from authgate (with `reason`) or from hyper's parser (bare, no request id).
#[track_caller]
fn assert_bad_request(ex: &Exchange, reason: &str) {
    assert_eq!(ex.status, 400, "{ex:#?}");
    let from_hyper = ex.body.is_empty() && ex.header("x-request-id").is_none();
    assert!(
        from_hyper || ex.reason() == reason,
        "expected reason {reason} (or hyper's bare 400): {ex:#?}"
    );
}

/// (what, Authorization value, acceptable (status, reason) answers)
type Case<'a> = (&'a str, String, &'a [(u16, &'a str)]);

#[test]
fn malformed_basic_credentials_are_refused_before_the_upstream() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let valid = STANDARD.encode("alice:alice-pw");
    assert!(
        valid.ends_with('=') && !valid.ends_with("=="),
        "test needs one pad char: {valid}"
    );
    let b64 = |bytes: &[u8]| STANDARD.encode(bytes);
    let m401 = &[(401, "malformed_credentials")][..];
    let m400 = &[(400, "malformed_authorization_header")][..];
    let cases: Vec<Case> = vec![
        (
            "no padding",
            format!("Basic {}", STANDARD_NO_PAD.encode("alice:alice-pw")),
            m401,
        ),
        (
            "url-safe alphabet '_'",
            format!("Basic {}", STANDARD.encode("dave:pw>?>?").replace('/', "_")),
            m401,
        ),
        (
            "url-safe alphabet '-'",
            format!("Basic {}", STANDARD.encode("erin:pw>>>?").replace('+', "-")),
            m401,
        ),
        (
            "space inside the token",
            format!("Basic {} {}", &valid[..8], &valid[8..]),
            m400,
        ),
        (
            "missing colon",
            format!("Basic {}", b64(b"alicealice-pw")),
            m401,
        ),
        (
            "\\x01 in user",
            format!("Basic {}", b64(b"al\x01ice:alice-pw")),
            m401,
        ),
        (
            "\\x7f in user",
            format!("Basic {}", b64(b"alice\x7f:alice-pw")),
            m401,
        ),
        (
            "\\x01 in password",
            format!("Basic {}", b64(b"alice:alice\x01-pw")),
            m401,
        ),
        (
            "\\x7f in password",
            format!("Basic {}", b64(b"alice:alice-pw\x7f")),
            m401,
        ),
        (
            "C1 U+0085 in user",
            format!("Basic {}", b64("ali\u{85}ce:alice-pw".as_bytes())),
            m401,
        ),
        (
            "C1 U+0085 in password",
            format!("Basic {}", b64("alice:alice\u{85}-pw".as_bytes())),
            m401,
        ),
        (
            "invalid UTF-8",
            format!("Basic {}", b64(b"alice:\xff\xfe-pw")),
            m401,
        ),
        (
            "Latin-1 password",
            format!("Basic {}", b64(b"alice:caf\xe9")),
            m401,
        ),
        ("empty token with a space", "Basic ".to_string(), m401),
        ("scheme alone", "Basic".to_string(), m401),
        (
            "auth-params instead of token68",
            "Basic a=b".to_string(),
            m401,
        ),
        ("two tokens", format!("Basic {valid} {valid}"), m400),
        ("token then comma", format!("Basic {valid},"), m400),
        ("not base64 at all", "Basic ****".to_string(), m400),
    ];
    for (what, value, allowed) in cases {
        let ex = ask(&gw, "/x", &[("authorization", &value)]);
        let got = (ex.status, ex.reason());
        assert!(
            allowed.iter().any(|(s, r)| got == (*s, r.to_string())),
            "{what}: expected one of {allowed:?}: {ex:#?}"
        );
        assert_denied(&ex, ex.status, &ex.reason());
        up.assert_untouched(what);
    }
}

#[test]
fn two_spellings_of_the_same_bytes_never_both_pass() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let lax = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    );
    for (user, pw) in [
        ("alice", "alice-pw"),
        ("dave", "pw>?>?"),
        ("erin", "pw>>>?"),
    ] {
        let canonical = STANDARD.encode(format!("{user}:{pw}"));
        let ok = ask(
            &gw,
            "/x",
            &[("authorization", &format!("Basic {canonical}"))],
        );
        assert_eq!(ok.status, 200, "the canonical spelling must pass: {ok:#?}");
        up.clear();

        let mut others = vec![STANDARD_NO_PAD.encode(format!("{user}:{pw}"))];
        if canonical.contains(['+', '/']) {
            others.push(canonical.replace('+', "-").replace('/', "_"));
        }
        // Same bytes, non-zero trailing bits in the last character before '='.
        if let Some(at) = canonical.find('=').and_then(|i| i.checked_sub(1)) {
            let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let idx = alphabet
                .iter()
                .position(|&c| c == canonical.as_bytes()[at])
                .unwrap();
            let mut alt = canonical.clone().into_bytes();
            alt[at] = alphabet[idx ^ 1];
            let alt = String::from_utf8(alt).unwrap();
            assert_eq!(
                lax.decode(&alt).unwrap(),
                lax.decode(&canonical).unwrap(),
                "{alt} must decode to the same bytes"
            );
            others.push(alt);
        }
        for alt in others {
            assert_ne!(alt, canonical);
            let ex = ask(&gw, "/x", &[("authorization", &format!("Basic {alt}"))]);
            assert_denied(&ex, 401, "malformed_credentials");
            up.assert_untouched(&format!("alternative spelling {alt} of {canonical}"));
        }
    }
}

#[test]
fn duplicated_authorization_is_refused_even_when_both_are_valid() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let a = basic("alice", "alice-pw");
    for second in [a.clone(), basic("bob", "bob-pw"), "Bearer xyz".to_string()] {
        let req = format!(
            "GET /x HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nAuthorization: {a}\r\nAuthorization: {second}\r\n\r\n",
            host(&gw)
        );
        let ex = ask_raw(&gw, req.as_bytes());
        assert_denied(&ex, 400, "duplicate_authorization");
        up.assert_untouched("two Authorization fields");
    }
}

#[test]
fn unsupported_scheme_gets_401_with_the_basic_challenge() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    for value in [
        "Bearer xyz",
        "Digest username=\"alice\", realm=\"Test\", nonce=\"n\", uri=\"/x\", response=\"0123\"",
        "Negotiate YII=",
    ] {
        let ex = ask(&gw, "/x", &[("authorization", value)]);
        assert_denied(&ex, 401, "unsupported_scheme");
        up.assert_untouched(value);
    }
}

#[test]
fn scheme_name_is_case_insensitive() {
    // RFC 9110 §11.1: the auth-scheme is a case-insensitive token.
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let token = STANDARD.encode("alice:alice-pw");
    for scheme in ["basic", "BASIC", "bAsIc"] {
        up.clear();
        let ex = ask(
            &gw,
            "/x",
            &[("authorization", &format!("{scheme} {token}"))],
        );
        assert_eq!(ex.status, 200, "{ex:#?}");
        let seen = up.seen();
        assert_eq!(seen.len(), 1, "{ex:#?}");
        assert_eq!(
            seen[0].header("x-authgate-user"),
            Some("alice"),
            "{seen:#?}"
        );
    }
}

#[test]
fn oversized_headers_get_431_and_never_reach_the_upstream() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let auth = basic("alice", "alice-pw");
    let ex = ask(
        &gw,
        "/x",
        &[
            ("authorization", &auth),
            ("cookie", &format!("c={}", "x".repeat(20 * 1024))),
        ],
    );
    assert_denied(&ex, 431, "headers_too_large");
    up.assert_untouched("20 KB cookie");

    // Far over hyper's own buffer: hyper answers 431 itself (no reason) or authgate does.
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nAuthorization: {auth}\r\nCookie: c={}\r\nConnection: close\r\n\r\n",
        host(&gw),
        "x".repeat(100 * 1024)
    );
    let r = send_tolerant(gw.addr, req.as_bytes());
    assert!(
        r.starts_with("HTTP/1.1 431"),
        "100 KB cookie: expected 431, got {:?}",
        r.get(..r.len().min(400))
    );
    up.assert_untouched("100 KB cookie");
}

#[test]
fn headers_exactly_at_the_limit_pass_and_one_byte_more_is_431() {
    // normalize counts name + value + 4 per field against max_header_bytes (16384 by default).
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let host = host(&gw);
    let auth = basic("alice", "alice-pw");
    let fixed = ("host".len() + host.len() + 4)
        + ("authorization".len() + auth.len() + 4)
        + ("cookie".len() + 4);
    let make = |cookie_len: usize| {
        format!(
            "GET /x HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nCookie: {}\r\n\r\n",
            "c".repeat(cookie_len)
        )
    };
    let at_limit = make(16384 - fixed);
    let ex = ask_raw(&gw, at_limit.as_bytes());
    assert_eq!(
        ex.status, 200,
        "a header section of exactly 16384 bytes must pass: {}",
        ex.status
    );
    assert_eq!(up.count(), 1);
    up.clear();
    let over = make(16384 - fixed + 1);
    let ex = ask_raw(&gw, over.as_bytes());
    assert_eq!(
        ex.status, 431,
        "one byte over: {:?} {:?}",
        ex.status, ex.headers
    );
    up.assert_untouched("16385-byte header section");
}

/// Writes `request` (ignoring a reset while writing) and reads until EOF or 10 s.
fn send_tolerant(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Writes `request`, reads the response, and reports whether the server then closed the
/// connection (EOF within 5 s).
fn send_and_watch_close(addr: SocketAddr, request: &[u8]) -> (String, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => return (String::from_utf8_lossy(&buf).into_owned(), true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&buf).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&buf).into_owned(), false)
}

fn path_config(upstream: &kit::Upstream) -> String {
    format!(
        "[users]\nhtpasswd = \"{{dir}}/users.htpasswd\"\n\n\
         [[route]]\npath = \"/\"\nupstream = \"{u}\"\nauth = \"none\"\n\n\
         [[route]]\npath = \"/admin\"\nupstream = \"{u}\"\nrealm = \"Test\"\nauth = [\"basic\"]\n",
        u = upstream.url()
    )
}

#[test]
fn ambiguous_paths_are_refused_even_on_a_public_route() {
    let up = kit::Upstream::start();
    let users = users();
    let gw = kit::Gateway::start(&path_config(&up), &[("users.htpasswd", users.as_str())]);
    for path in [
        "/%2e%2e/admin",
        "/%2E%2E/admin/secret",
        "/.%2e/admin",
        "/a%2fb",
        "/a%2Fb",
        "/a%5cb",
        "/a\\b",
        "/x%00",
        "/a%zz",
        "/a%2",
        "/admin;x=1",
        "/admin/..;/",
        "/public;/../admin",
        "/public/..%3B/admin",
        "/a%3bb",
        // The letter case changes the route: `/` is public, `/admin` is not, and many
        // upstreams match paths without regard to case.
        "/ADMIN/secret",
        "/Admin",
        "/%41dmin/secret",
    ] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
            host(&gw)
        );
        let ex = ask_raw(&gw, req.as_bytes());
        assert_denied(&ex, 400, "ambiguous_path");
        up.assert_untouched(path);
    }
}

#[test]
fn dot_segments_and_double_slashes_are_decided_on_the_resolved_path() {
    let up = kit::Upstream::start();
    let users = users();
    let gw = kit::Gateway::start(&path_config(&up), &[("users.htpasswd", users.as_str())]);
    for path in [
        "/public/../admin/secret",
        "/public/./../admin",
        "//admin",
        "//admin//secret",
        "/./admin",
        "/%61dmin/x",
        "/../admin",
    ] {
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
            host(&gw)
        );
        let ex = ask_raw(&gw, req.as_bytes());
        assert_denied(&ex, 401, "missing_credentials");
        up.assert_untouched(&format!("{path} resolves into /admin"));
    }
    // With credentials the upstream gets the resolved path.
    let req = format!(
        "GET /public/../admin//secret HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\n\r\n",
        host(&gw),
        basic("alice", "alice-pw")
    );
    let ex = ask_raw(&gw, req.as_bytes());
    assert_eq!(ex.status, 200, "{ex:#?}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].target, "/admin/secret", "{seen:#?}");
}

#[test]
fn host_must_be_present_and_single() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let auth = basic("alice", "alice-pw");
    let h = host(&gw);
    for (what, req) in [
        ("no Host", format!("GET /x HTTP/1.1\r\nAccept: application/json\r\nAuthorization: {auth}\r\n\r\n")),
        (
            "two Host lines",
            format!("GET /x HTTP/1.1\r\nHost: {h}\r\nHost: other.example\r\nAccept: application/json\r\nAuthorization: {auth}\r\n\r\n"),
        ),
        (
            "two identical Host lines",
            format!("GET /x HTTP/1.1\r\nHost: {h}\r\nHost: {h}\r\nAccept: application/json\r\nAuthorization: {auth}\r\n\r\n"),
        ),
        ("Host with a space", format!("GET /x HTTP/1.1\r\nHost: a b\r\nAccept: application/json\r\nAuthorization: {auth}\r\n\r\n")),
        ("Host with userinfo", format!("GET /x HTTP/1.1\r\nHost: u@a\r\nAccept: application/json\r\nAuthorization: {auth}\r\n\r\n")),
    ] {
        let ex = ask_raw(&gw, req.as_bytes());
        assert_denied(&ex, 400, "invalid_host");
        up.assert_untouched(what);
    }
}

#[test]
fn absolute_form_target_uses_the_targets_authority() {
    // RFC 9112 §3.2.2: with an absolute-form target, Host is ignored.
    let other = kit::Upstream::start();
    let default = kit::Upstream::start();
    let users = users();
    let config = kit::basic_config(
        &default,
        &format!("[[route]]\nhost = \"other.example\"\npath = \"/\"\nupstream = \"{}\"\nauth = \"none\"\n", other.url()),
    );
    let gw = kit::Gateway::start(&config, &[("users.htpasswd", users.as_str())]);
    let req = format!(
        "GET http://other.example/x HTTP/1.1\r\nHost: {}\r\n\r\n",
        host(&gw)
    );
    let ex = ask_raw(&gw, req.as_bytes());
    assert_eq!(ex.status, 200, "{ex:#?}");
    let seen = other.seen();
    assert_eq!(seen.len(), 1, "{ex:#?}");
    assert_eq!(seen[0].header("host"), Some("other.example"), "{seen:#?}");
    assert_eq!(seen[0].target, "/x");
    default.assert_untouched("absolute-form to other.example");

    // And the other way round: Host names the public host, the target does not.
    other.clear();
    let req = "GET http://elsewhere.example/x HTTP/1.1\r\nHost: other.example\r\nAccept: application/json\r\n\r\n";
    let ex = ask_raw(&gw, req.as_bytes());
    assert_denied(&ex, 401, "missing_credentials");
    other.assert_untouched("Host: other.example must not win over the absolute-form target");
    default.assert_untouched("no credentials");
}

/// RFC 9112 §6.1: a server MAY reject a request with both Content-Length and
/// Transfer-Encoding, or process it by Transfer-Encoding alone and then MUST close the
/// connection. hyper does the latter (it drops Content-Length while parsing, so authgate never
/// sees the pair). What matters is that nothing can be smuggled: bytes after the chunked body
/// are never read as a second request, and the upstream gets one consistent framing.
#[test]
fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let auth = basic("alice", "alice-pw");
    let h = host(&gw);
    for framing in [
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 5",
    ] {
        up.clear();
        let req = format!(
            "POST /x HTTP/1.1\r\nHost: {h}\r\nAuthorization: {auth}\r\n{framing}\r\n\r\n0\r\n\r\n\
             GET /smuggled HTTP/1.1\r\nHost: {h}\r\nAuthorization: {auth}\r\n\r\n"
        );
        let (resp, closed) = send_and_watch_close(gw.addr, req.as_bytes());
        let sent = req.as_bytes().escape_ascii().to_string();
        assert!(
            closed,
            "the connection must be closed; sent {sent}\ngot {resp}"
        );
        assert_eq!(
            resp.matches("HTTP/1.1 ").count(),
            1,
            "exactly one response; sent {sent}\ngot {resp}"
        );
        let seen = up.seen();
        assert!(
            seen.iter().all(|r| !r.target.contains("smuggled")),
            "smuggled request reached the upstream: {seen:#?}"
        );
        for r in &seen {
            let framings =
                r.header_all("content-length").len() + r.header_all("transfer-encoding").len();
            assert!(
                framings <= 1,
                "the upstream got conflicting framing: {r:#?}"
            );
        }
    }
}

#[test]
fn invalid_or_differing_content_lengths_are_refused() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let auth = basic("alice", "alice-pw");
    let h = host(&gw);
    for framing in [
        "Content-Length: 3\r\nContent-Length: 4",
        "Content-Length: 3, 4",
        "Content-Length: +3",
        "Content-Length: -1",
        "Content-Length: 0x3",
        "Transfer-Encoding: gzip",
    ] {
        let req = format!(
            "POST /x HTTP/1.1\r\nHost: {h}\r\nAccept: application/json\r\nAuthorization: {auth}\r\n{framing}\r\n\r\nabcd"
        );
        let ex = ask_raw(&gw, req.as_bytes());
        assert_bad_request(&ex, "conflicting_framing");
        up.assert_untouched(framing);
    }
}

#[test]
fn malformed_header_lines_are_refused_by_the_parser() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let auth = basic("alice", "alice-pw");
    let h = host(&gw);
    for bad in [
        "X-Foo: a\r\n X-Authgate-User: root",
        "X-Foo: a\r\n\tfolded",
        "X-Authgate-User : root",
        "X-Foo: a\rX-Authgate-User: root",
        "X-Foo: a\0b",
        "Bad Name: x",
        ": no-name",
    ] {
        let req = format!("GET /x HTTP/1.1\r\nHost: {h}\r\nAuthorization: {auth}\r\n{bad}\r\n\r\n");
        let ex = ask_raw(&gw, req.as_bytes());
        assert_eq!(ex.status, 400, "{ex:#?}");
        up.assert_untouched(&bad.escape_default().to_string());
    }
}

#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let spoofed = [
        ("X-Authgate-User", "root"),
        ("x_authgate_user", "root"),
        ("X_AUTHGATE_GROUPS", "root"),
        ("x-authgate-method", "root"),
        ("X-Remote-User", "root"),
        ("Remote-User", "root"),
        ("remote_user", "root"),
        ("X-Forwarded-User", "root"),
        ("X-FORWARDED-USER", "root"),
        ("X-Auth-Request-User", "root"),
        ("x-auth-request-email", "root"),
        ("X_Auth_Request_Preferred_Username", "root"),
    ];
    let (status, headers, body) = kit::get(&gw.url("/x"), Some(("alice", "alice-pw")), &spoofed);
    assert_eq!(
        status, 200,
        "sent {spoofed:?}; got {status} {headers:?} {body}"
    );
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let s = &seen[0];
    assert_eq!(s.header_all("x-authgate-user"), vec!["alice"], "{s:#?}");
    assert_eq!(s.header_all("x-authgate-groups"), vec!["admins"], "{s:#?}");
    assert_eq!(s.header_all("x-authgate-method"), vec!["basic"], "{s:#?}");
    let leaked: Vec<_> = s
        .headers
        .iter()
        .filter(|(_, v)| v.contains("root"))
        .collect();
    assert!(
        leaked.is_empty(),
        "spoofed values reached the upstream: {leaked:?}\nsent {spoofed:?}"
    );
    for (name, _) in spoofed {
        let canonical = name.to_ascii_lowercase().replace('_', "-");
        if !canonical.starts_with("x-authgate-") {
            assert!(
                s.header(name).is_none() && s.header(&canonical).is_none(),
                "{name} reached the upstream: {s:#?}"
            );
        }
    }
}

#[test]
fn connection_header_cannot_remove_authgates_identity_headers() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nConnection: X-Authgate-User, X-Authgate-Groups, x-authgate-method, X-Forwarded-For, X-Request-Id\r\n\r\n",
        host(&gw),
        basic("alice", "alice-pw")
    );
    let ex = ask_raw(&gw, req.as_bytes());
    assert_eq!(ex.status, 200, "{ex:#?}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{ex:#?}");
    let s = &seen[0];
    assert_eq!(s.header("x-authgate-user"), Some("alice"), "{s:#?}");
    assert_eq!(s.header("x-authgate-groups"), Some("admins"), "{s:#?}");
    assert_eq!(s.header("x-authgate-method"), Some("basic"), "{s:#?}");
    assert_eq!(s.header("x-forwarded-for"), Some("127.0.0.1"), "{s:#?}");
    assert_eq!(
        s.header("x-request-id"),
        ex.header("x-request-id"),
        "{s:#?}"
    );
}

const SPOOFED_FORWARDING: [(&str, &str); 7] = [
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Proto", "https"),
    ("X-Real-IP", "6.6.6.6"),
    ("Forwarded", "for=6.6.6.6;proto=https"),
    ("True-Client-IP", "6.6.6.6"),
    ("X-Request-Id", "client-chosen-id"),
];

#[test]
fn forwarding_headers_from_an_untrusted_client_are_replaced() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    let (status, headers, body) = kit::get(
        &gw.url("/x"),
        Some(("alice", "alice-pw")),
        &SPOOFED_FORWARDING,
    );
    assert_eq!(status, 200, "{headers:?} {body}");
    let rid = headers.get("x-request-id").cloned().unwrap_or_default();
    assert!(
        !rid.is_empty() && rid != "client-chosen-id",
        "response id {rid:?} must be authgate's own"
    );
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    let ctx = format!("sent {SPOOFED_FORWARDING:?}\nupstream saw {s:#?}");
    assert_eq!(s.header_all("x-forwarded-for"), vec!["127.0.0.1"], "{ctx}");
    assert_eq!(
        s.header_all("x-forwarded-host"),
        vec![host(&gw).as_str()],
        "{ctx}"
    );
    assert_eq!(s.header_all("x-forwarded-proto"), vec!["http"], "{ctx}");
    assert_eq!(s.header_all("x-request-id"), vec![rid.as_str()], "{ctx}");
    for gone in ["x-real-ip", "forwarded", "true-client-ip"] {
        assert!(s.header(gone).is_none(), "{gone}: {ctx}");
    }
    assert_eq!(gw.audit_for(&rid)["client"], "127.0.0.1", "{ctx}");
}

#[test]
fn forwarding_headers_from_a_trusted_proxy_are_kept_and_appended() {
    let up = kit::Upstream::start();
    let gw = start(&up, "[server]\ntrusted_proxies = [\"127.0.0.1\"]\n");
    let (status, headers, body) = kit::get(
        &gw.url("/x"),
        Some(("alice", "alice-pw")),
        &SPOOFED_FORWARDING,
    );
    assert_eq!(status, 200, "{headers:?} {body}");
    assert_eq!(
        headers.get("x-request-id").map(String::as_str),
        Some("client-chosen-id"),
        "{headers:?}"
    );
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    let ctx = format!("sent {SPOOFED_FORWARDING:?}\nupstream saw {s:#?}");
    assert_eq!(
        s.header_all("x-forwarded-for"),
        vec!["6.6.6.6, 127.0.0.1"],
        "{ctx}"
    );
    assert_eq!(s.header_all("x-forwarded-proto"), vec!["https"], "{ctx}");
    assert_eq!(
        s.header_all("x-forwarded-host"),
        vec!["evil.example"],
        "{ctx}"
    );
    assert_eq!(
        s.header_all("x-request-id"),
        vec!["client-chosen-id"],
        "{ctx}"
    );
    assert_eq!(s.header("x-real-ip"), Some("6.6.6.6"), "{ctx}");
    assert_eq!(
        gw.audit_for("client-chosen-id")["client"],
        "6.6.6.6",
        "{ctx}"
    );
    // Identity headers are never trusted, not even from a trusted proxy.
    up.clear();
    let (status, _, _) = kit::get(
        &gw.url("/x"),
        Some(("bob", "bob-pw")),
        &[("X-Authgate-User", "alice")],
    );
    assert_eq!(status, 200);
    assert_eq!(
        up.seen()[0].header_all("x-authgate-user"),
        vec!["bob"],
        "{:#?}",
        up.seen()
    );
}

#[test]
fn unknown_user_and_wrong_password_look_identical_to_the_client() {
    let up = kit::Upstream::start();
    let gw = start(&up, "");
    for accept in ["application/json", "*/*", "text/html"] {
        let mut answers = Vec::new();
        for (user, pw) in [("mallory", "alice-pw"), ("alice", "wrong-pw")] {
            let (status, mut headers, body) =
                kit::get(&gw.url("/x"), Some((user, pw)), &[("accept", accept)]);
            let rid = headers.remove("x-request-id").unwrap_or_default();
            headers.remove("date");
            assert_eq!(status, 401, "{user}: {headers:?} {body}");
            assert!(body.contains("invalid_credentials"), "{user}: {body}");
            assert!(!rid.is_empty());
            answers.push((user, rid.clone(), headers, body.replace(&rid, "RID")));
            up.assert_untouched(user);
        }
        let (u1, rid1, h1, b1) = &answers[0];
        let (u2, rid2, h2, b2) = &answers[1];
        assert_eq!(
            h1, h2,
            "Accept {accept}: headers differ between {u1} and {u2}"
        );
        assert_eq!(
            b1, b2,
            "Accept {accept}: bodies differ between {u1} and {u2}"
        );
        let a1 = gw.audit_for(rid1);
        let a2 = gw.audit_for(rid2);
        assert_eq!(
            (&a1["reason"], &a1["detail"]),
            (&"invalid_credentials".into(), &"unknown_user".into()),
            "{a1}"
        );
        assert_eq!(
            (&a2["reason"], &a2["detail"]),
            (&"invalid_credentials".into(), &"wrong_password".into()),
            "{a2}"
        );
        for a in [&a1, &a2] {
            let line = a.to_string();
            assert!(
                !line.contains("alice-pw") && !line.contains("wrong-pw"),
                "a password in the audit log: {line}"
            );
        }
    }
}
