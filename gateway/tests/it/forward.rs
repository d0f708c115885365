//! What the upstream receives from an allowed request, and what the client gets back.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use crate::kit;

fn users() -> String {
    let b = ["-B", "-C", "4"];
    [
        kit::htpasswd(&b, "alice", "alice-pw"),
        kit::htpasswd(&b, "bob", "bob-pw"),
        kit::htpasswd(&b, "carol", "carol-pw"),
    ]
    .concat()
}

fn start(config: &str) -> kit::Gateway {
    let users = users();
    kit::Gateway::start(config, &[("users.htpasswd", users.as_str())])
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

/// Reads one response to a raw request that asked for `Connection: close`, up to EOF.
fn raw_to_eof(addr: std::net::SocketAddr, request: &[u8]) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (head.to_string(), body.to_string())
}

fn head_fields(head: &str) -> BTreeMap<String, String> {
    head.lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

#[test]
fn authorization_is_removed_unless_the_route_passes_it() {
    let up = kit::Upstream::start();
    let gw = start(&kit::basic_config(
        &up,
        &format!("[[route]]\npath = \"/pass\"\nupstream = \"{}\"\nauth = [\"basic\"]\npass_authorization = true\n", up.url()),
    ));
    let (status, h, body) = kit::get(&gw.url("/x"), Some(("alice", "alice-pw")), &[]);
    assert_eq!(status, 200, "{h:?} {body}");
    let seen = up.seen();
    assert!(
        seen[0].header("authorization").is_none(),
        "Authorization reached the upstream: {seen:#?}"
    );
    up.clear();
    let (status, h, body) = kit::get(&gw.url("/pass/x"), Some(("alice", "alice-pw")), &[]);
    assert_eq!(status, 200, "{h:?} {body}");
    let seen = up.seen();
    assert_eq!(
        seen[0].header_all("authorization"),
        vec!["Basic YWxpY2U6YWxpY2UtcHc="],
        "{seen:#?}"
    );
    assert_eq!(
        seen[0].header("x-authgate-user"),
        Some("alice"),
        "{seen:#?}"
    );
}

#[test]
fn hop_by_hop_headers_never_reach_the_upstream() {
    let up = kit::Upstream::start();
    let gw = start(&kit::basic_config(&up, ""));
    let req = format!(
        "GET /x HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic YWxpY2U6YWxpY2UtcHc=\r\n\
         Connection: keep-alive, X-Secret-Hop, x-other-hop\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\n\
         Upgrade: websocket\r\nProxy-Authorization: Basic cHJveHk6cHc=\r\nProxy-Connection: keep-alive\r\n\
         X-Secret-Hop: 1\r\nX-Other-Hop: 2\r\nTrailer: X-T\r\nX-End-To-End: kept\r\n\r\n",
        gw.addr
    );
    let r = kit::raw(gw.addr, req.as_bytes());
    assert_eq!(r.status, 200, "sent {req}\ngot {r:#?}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{r:#?}");
    let s = &seen[0];
    for name in [
        "connection",
        "keep-alive",
        "te",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "x-secret-hop",
        "x-other-hop",
        "trailer",
    ] {
        assert!(
            s.header(name).is_none(),
            "{name} reached the upstream: {s:#?}"
        );
    }
    assert_eq!(s.header("x-end-to-end"), Some("kept"), "{s:#?}");
}

#[test]
fn upstream_receives_the_normalised_path_and_the_query_unchanged() {
    let up = kit::Upstream::start();
    let gw = start(&kit::basic_config(&up, ""));
    for (sent, want) in [
        ("/a/./b/../c?x=%2F&y", "/a/c?x=%2F&y"),
        ("/%61dmin/x%7e?q=%41&&z=a%20b", "/admin/x~?q=%41&&z=a%20b"),
        ("//a///b/?", "/a/b/?"),
        ("/caf%c3%a9?%zz", "/caf%C3%A9?%zz"),
        ("/a/b/..", "/a/"),
    ] {
        up.clear();
        let req = format!(
            "GET {sent} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic YWxpY2U6YWxpY2UtcHc=\r\n\r\n",
            gw.addr
        );
        let r = kit::raw(gw.addr, req.as_bytes());
        assert_eq!(r.status, 200, "{sent}: {r:#?}");
        let seen = up.seen();
        assert_eq!(seen.len(), 1, "{sent}");
        assert_eq!(seen[0].target, want, "sent {sent}");
    }
}

#[test]
fn identity_headers_name_the_user_groups_and_method() {
    let up = kit::Upstream::start();
    let gw = start(&kit::basic_config(
        &up,
        "[groups]\nadmins = [\"alice\"]\nstaff = [\"alice\", \"bob\"]\n",
    ));
    for (user, groups) in [("alice", "admins,staff"), ("bob", "staff"), ("carol", "")] {
        up.clear();
        let (status, h, body) = kit::get(&gw.url("/x"), Some((user, &format!("{user}-pw"))), &[]);
        assert_eq!(status, 200, "{user}: {h:?} {body}");
        let seen = up.seen();
        let s = &seen[0];
        assert_eq!(s.header_all("x-authgate-user"), vec![user], "{s:#?}");
        assert_eq!(
            s.header("x-authgate-groups").unwrap_or(""),
            groups,
            "{s:#?}"
        );
        assert_eq!(s.header_all("x-authgate-method"), vec!["basic"], "{s:#?}");
    }
}

#[test]
fn identity_header_names_can_be_configured() {
    let up = kit::Upstream::start();
    let gw = start(&kit::basic_config(
        &up,
        "[server]\nuser_header = \"x-user\"\ngroups_header = \"x-groups\"\nmethod_header = \"x-auth-method\"\n\n[groups]\nadmins = [\"alice\"]\n",
    ));
    let spoof = [
        ("X-User", "root"),
        ("X-Groups", "root"),
        ("X-Auth-Method", "root"),
        ("X-Authgate-User", "root"),
    ];
    let (status, h, body) = kit::get(&gw.url("/x"), Some(("alice", "alice-pw")), &spoof);
    assert_eq!(status, 200, "{h:?} {body}");
    let seen = up.seen();
    let s = &seen[0];
    assert_eq!(s.header_all("x-user"), vec!["alice"], "{s:#?}");
    assert_eq!(s.header_all("x-groups"), vec!["admins"], "{s:#?}");
    assert_eq!(s.header_all("x-auth-method"), vec!["basic"], "{s:#?}");
    assert!(s.header("x-authgate-user").is_none(), "{s:#?}");
    assert!(
        s.headers.iter().all(|(_, v)| v != "root"),
        "a spoofed value got through: {s:#?}"
    );
}

#[test]
fn authenticated_responses_are_private_and_denials_are_not_stored() {
    let up = kit::Upstream::start();
    let gw = start(&kit::basic_config(
        &up,
        &format!(
            "[[route]]\npath = \"/public-cache/open\"\nupstream = \"{}\"\nauth = \"none\"\n",
            up.url()
        ),
    ));
    let (status, h, body) = kit::get(&gw.url("/public-cache/x"), Some(("alice", "alice-pw")), &[]);
    assert_eq!(status, 200, "{h:?} {body}");
    assert_eq!(
        h.get("cache-control").map(String::as_str),
        Some("private, max-age=60"),
        "{h:?}"
    );
    assert!(h.contains_key("x-request-id"), "{h:?}");
    assert_eq!(
        h.get("x-upstream").map(String::as_str),
        Some("yes"),
        "{h:?}"
    );

    // An anonymous route is not made private: nothing user-specific was served.
    let (status, h, _) = kit::get(&gw.url("/public-cache/open/x"), None, &[]);
    assert_eq!(status, 200);
    assert_eq!(
        h.get("cache-control").map(String::as_str),
        Some("public, max-age=60"),
        "{h:?}"
    );
    assert!(h.contains_key("x-request-id"), "{h:?}");

    up.clear();
    let (status, h, body) = kit::get(&gw.url("/public-cache/x"), None, &[]);
    assert_eq!(status, 401, "{h:?} {body}");
    assert_eq!(
        h.get("cache-control").map(String::as_str),
        Some("no-store"),
        "{h:?}"
    );
    assert!(h.contains_key("x-request-id"), "{h:?}");
    up.assert_untouched("401");
}

#[test]
fn request_bodies_stream_to_the_upstream_intact() {
    let up = kit::Upstream::start();
    let gw = start(&kit::basic_config(&up, ""));
    let body: Vec<u8> = (0..5 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let (status, text) = kit::rt().block_on(async {
        let r = kit::client()
            .post(gw.url("/upload"))
            .basic_auth("alice", Some("alice-pw"))
            .body(body.clone())
            .send()
            .await
            .expect("post");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    });
    assert_eq!(status, 200, "{text}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(
        seen[0].body.len(),
        body.len(),
        "the upstream got {} of {} bytes",
        seen[0].body.len(),
        body.len()
    );
    assert!(seen[0].body == body, "the body was altered on the way");
}

fn limited_config(up: &kit::Upstream) -> String {
    kit::basic_config(
        up,
        &format!("[[route]]\npath = \"/limited\"\nupstream = \"{}\"\nauth = [\"basic\"]\nmax_body = \"1KiB\"\n", up.url()),
    )
}

fn post(gw: &kit::Gateway, path: &str, body: reqwest::Body) -> (u16, String) {
    kit::rt().block_on(async {
        let r = kit::client()
            .post(gw.url(path))
            .basic_auth("alice", Some("alice-pw"))
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    })
}

#[test]
fn a_body_over_max_body_gets_413_and_never_reaches_the_upstream() {
    let up = kit::Upstream::start();
    let gw = start(&limited_config(&up));
    let (status, text) = post(&gw, "/limited/x", vec![b'a'; 2048].into());
    assert_eq!(status, 413, "2 KiB with Content-Length: {text}");
    // The body format is checked in `upstream_failures_answer_with_a_problem_body`.
    assert!(text.contains("body_too_large"), "{text}");
    up.assert_untouched("2 KiB body on a 1 KiB route");

    let (status, text) = post(&gw, "/limited/x", vec![b'a'; 1024].into());
    assert_eq!(status, 200, "exactly 1 KiB must pass: {text}");
    assert_eq!(up.seen()[0].body.len(), 1024);
}

#[test]
fn a_chunked_body_over_max_body_gets_413() {
    let up = kit::Upstream::start();
    let gw = start(&limited_config(&up));
    let chunk = format!("400\r\n{}\r\n", "a".repeat(1024));
    let req = format!(
        "POST /limited/x HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic YWxpY2U6YWxpY2UtcHc=\r\nAccept: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n{}0\r\n\r\n",
        gw.addr,
        chunk.repeat(4)
    );
    let r = kit::raw(gw.addr, req.as_bytes());
    assert_eq!(r.status, 413, "4 KiB chunked on a 1 KiB route: {r:#?}");
    assert_eq!(json(&r.body)["reason"], "body_too_large", "{r:#?}");
    assert!(
        up.seen().iter().all(|s| s.body.len() <= 1024),
        "the upstream got more than max_body: {:#?}",
        up.seen()
    );
}

fn dead_upstream_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    drop(l);
    format!("http://{addr}")
}

fn dead_config() -> String {
    format!(
        "[users]\nhtpasswd = \"{{dir}}/users.htpasswd\"\n\n[[route]]\npath = \"/\"\nupstream = \"{}\"\nauth = [\"basic\"]\n",
        dead_upstream_url()
    )
}

#[test]
fn upstream_down_is_502_never_401() {
    let gw = start(&dead_config());
    let (status, h, body) = kit::get(&gw.url("/x"), Some(("alice", "alice-pw")), &[]);
    assert_eq!(status, 502, "{h:?} {body}");
    assert!(body.contains("reason: upstream_unavailable"), "{body}");
    assert!(!h.contains_key("www-authenticate"), "{h:?}");
    let rid = h.get("x-request-id").cloned().unwrap_or_default();
    let audit = gw.audit_for(&rid);
    assert_eq!(audit["reason"], "upstream_unavailable", "{audit}");
    assert_eq!(audit["user"], "alice", "{audit}");
}

#[test]
fn upstream_slower_than_upstream_timeout_is_504() {
    let up = kit::Upstream::start();
    let gw = start(&kit::basic_config(
        &up,
        "[server]\nupstream_timeout = \"500ms\"\n",
    ));
    let started = std::time::Instant::now();
    let (status, h, body) = kit::get(&gw.url("/slow/x"), Some(("alice", "alice-pw")), &[]);
    let took = started.elapsed();
    assert_eq!(status, 504, "{h:?} {body}");
    assert!(body.contains("reason: upstream_timeout"), "{body}");
    assert!(!h.contains_key("www-authenticate"), "{h:?}");
    assert!(
        took < Duration::from_millis(2500),
        "the 504 came after {took:?}, not after ~500 ms"
    );
}

#[test]
fn upstream_failures_answer_with_a_problem_body() {
    let up = kit::Upstream::start();
    let gw = start(&limited_config(&up));
    let (status, text) = post(&gw, "/limited/x", vec![b'a'; 2048].into());
    assert_eq!(status, 413, "{text}");
    assert_eq!(
        json(&text)["reason"],
        "body_too_large",
        "2 KiB POST with Accept: application/json got: {text}"
    );
    up.assert_untouched("413");

    let gw = start(&dead_config());
    let (status, h, body) = kit::get(
        &gw.url("/x"),
        Some(("alice", "alice-pw")),
        &[("accept", "application/json")],
    );
    assert_eq!(status, 502, "{h:?} {body}");
    assert_eq!(
        h.get("content-type").map(String::as_str),
        Some("application/problem+json"),
        "{h:?} {body}"
    );
    assert_eq!(json(&body)["reason"], "upstream_unavailable", "{body}");

    let up = kit::Upstream::start();
    let gw = start(&kit::basic_config(
        &up,
        "[server]\nupstream_timeout = \"500ms\"\n",
    ));
    let (status, h, body) = kit::get(
        &gw.url("/slow/x"),
        Some(("alice", "alice-pw")),
        &[("accept", "application/json")],
    );
    assert_eq!(status, 504, "{h:?} {body}");
    assert_eq!(json(&body)["reason"], "upstream_timeout", "{h:?} {body}");
}

/// An upstream that records the raw request head of one connection and answers 200.
fn one_shot_raw_upstream() -> (String, std::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((s, _)) = l.accept() else { return };
        let mut reader = BufReader::new(s.try_clone().expect("clone"));
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let mut s = s;
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
        let _ = tx.send(head);
    });
    (url, rx)
}

#[test]
fn h2c_prior_knowledge_works_and_the_upstream_gets_http11_with_host() {
    let (url, heads) = one_shot_raw_upstream();
    let gw = start(&format!(
        "[users]\nhtpasswd = \"{{dir}}/users.htpasswd\"\n\n[[route]]\npath = \"/\"\nupstream = \"{url}\"\nrealm = \"Test\"\nauth = [\"basic\"]\n"
    ));
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let ask = |creds: bool| {
        kit::rt().block_on(async {
            let mut req = client.get(gw.url("/h2/x?q=1"));
            if creds {
                req = req.basic_auth("alice", Some("alice-pw"));
            }
            let r = req.send().await.expect("h2 request");
            let version = r.version();
            let h: BTreeMap<String, String> = r
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                .collect();
            (
                r.status().as_u16(),
                version,
                h,
                r.text().await.unwrap_or_default(),
            )
        })
    };
    let (status, version, h, body) = ask(false);
    assert_eq!(
        (status, version),
        (401, reqwest::Version::HTTP_2),
        "{h:?} {body}"
    );
    assert_eq!(
        h.get("www-authenticate").map(String::as_str),
        Some("Basic realm=\"Test\", charset=\"UTF-8\""),
        "{h:?}"
    );
    assert!(
        heads.try_recv().is_err(),
        "the upstream saw the unauthenticated h2 request"
    );

    let (status, version, h, body) = ask(true);
    assert_eq!(
        (status, version),
        (200, reqwest::Version::HTTP_2),
        "{h:?} {body}"
    );
    let head = heads
        .recv_timeout(Duration::from_secs(10))
        .expect("the upstream got no request");
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("GET /h2/x?q=1 HTTP/1.1"), "{head}");
    let fields = head_fields(&head);
    assert_eq!(
        fields.get("host").map(String::as_str),
        Some(gw.addr.to_string().as_str()),
        "{head}"
    );
    assert_eq!(
        fields.get("x-authgate-user").map(String::as_str),
        Some("alice"),
        "{head}"
    );
    assert!(!fields.contains_key("authorization"), "{head}");
}

#[test]
fn head_of_a_401_has_the_same_headers_and_no_body() {
    let up = kit::Upstream::start();
    let gw = start(&kit::basic_config(&up, ""));
    let req = |method: &str| {
        format!("{method} /x HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\nConnection: close\r\n\r\n", gw.addr)
    };
    let (get_head, get_body) = raw_to_eof(gw.addr, req("GET").as_bytes());
    let (head_head, head_body) = raw_to_eof(gw.addr, req("HEAD").as_bytes());
    assert!(get_head.starts_with("HTTP/1.1 401"), "{get_head}");
    assert!(head_head.starts_with("HTTP/1.1 401"), "{head_head}");
    assert!(!get_body.is_empty(), "GET 401 should carry a body");
    assert_eq!(
        head_body, "",
        "HEAD must have no body; head was {head_head}"
    );
    let strip = |h: &str| {
        let mut f = head_fields(h);
        f.remove("date");
        f.remove("x-request-id");
        f
    };
    assert_eq!(
        strip(&head_head),
        strip(&get_head),
        "HEAD and GET 401 headers differ"
    );
    up.assert_untouched("GET and HEAD without credentials");
}

/// An upstream that takes one connection, reports each request head it reads on it, and
/// answers a request only when told to through the returned sender; it reports how long after
/// the first head its connection was closed (EOF), or None if it stayed open for 10 s (or
/// broke).
#[allow(clippy::type_complexity)]
fn held_upstream() -> (
    String,
    std::sync::mpsc::Receiver<String>,
    std::sync::mpsc::Sender<()>,
    std::sync::mpsc::Receiver<Option<Duration>>,
) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let (head_tx, head_rx) = std::sync::mpsc::channel();
    let (answer_tx, answer_rx) = std::sync::mpsc::channel::<()>();
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        // Short reads, so that the connection is watched for EOF while an answer waits.
        s.set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut first: Option<std::time::Instant> = None;
        let (mut pending, mut unanswered) = (Vec::new(), 0usize);
        let mut buf = [0u8; 4096];
        while std::time::Instant::now() < deadline {
            while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = pending.drain(..end + 4).collect();
                first.get_or_insert_with(std::time::Instant::now);
                let _ = head_tx.send(String::from_utf8_lossy(&head).into_owned());
                unanswered += 1;
            }
            while unanswered > 0 && answer_rx.try_recv().is_ok() {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                unanswered -= 1;
            }
            match s.read(&mut buf) {
                Ok(0) => {
                    let _ = closed_tx.send(first.map(|t| t.elapsed()));
                    return;
                }
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        let _ = closed_tx.send(None);
    });
    (url, head_rx, answer_tx, closed_rx)
}

fn held_config(url: &str, upstream_timeout: &str) -> String {
    format!(
        "[server]\nupstream_timeout = \"{upstream_timeout}\"\n\n[users]\nhtpasswd = \"{{dir}}/users.htpasswd\"\n\n[[route]]\npath = \"/\"\nupstream = \"{url}\"\nauth = [\"basic\"]\n"
    )
}

const ALICE_GET: &[u8] =
    b"GET /held HTTP/1.1\r\nHost: app.test\r\nAuthorization: Basic YWxpY2U6YWxpY2UtcHc=\r\n\r\n";

/// A client connection that has sent [`ALICE_GET`], once the held upstream has its head
/// (returned too).
fn held_request(
    gw: &kit::Gateway,
    heads: &std::sync::mpsc::Receiver<String>,
) -> (TcpStream, String) {
    let mut client = TcpStream::connect(gw.addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    client.write_all(ALICE_GET).expect("write");
    let head = heads
        .recv_timeout(Duration::from_secs(10))
        .expect("the upstream got the request");
    (client, head)
}

/// Asserts that the upstream saw its connection closed within two ticks of a 5-s
/// `upstream_timeout`'s timer after its request, not at the timeout.
fn closed_soon(closed: &std::sync::mpsc::Receiver<Option<Duration>>) {
    let after = closed
        .recv_timeout(Duration::from_secs(15))
        .expect("the upstream thread reports")
        .expect("authgate kept the upstream connection open for 10 s");
    assert!(
        after < Duration::from_secs(3),
        "the upstream connection closed {after:?} after the request, not within two ticks (upstream_timeout is 5 s)"
    );
}

#[test]
fn a_client_that_goes_away_abandons_its_request_and_the_upstream_connection() {
    let (url, heads, _answer, closed) = held_upstream();
    // Watched from the first tick of the timer (0.5 s), so noticed within ~1 s.
    let gw = start(&held_config(&url, "5s"));
    let (client, head) = held_request(&gw, &heads);
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .expect("x-request-id")
        .to_string();
    // The client gives up while the upstream is still working on the request.
    drop(client);
    closed_soon(&closed);
    let audit = gw.audit_for(&id);
    assert_eq!(audit["reason"], "client_closed", "{audit}");
    assert_eq!(audit["status"], 499, "{audit}");
    assert_eq!(audit["user"], "alice", "{audit}");
}

#[test]
fn a_request_pipelined_behind_a_slow_one_neither_aborts_it_nor_is_lost() {
    let (url, heads, answer, _closed) = held_upstream();
    // Watched from the first tick (0.1 s); the upstream answers well before the 2-s timeout.
    let gw = start(&held_config(&url, "2s"));
    let (mut client, _) = held_request(&gw, &heads);
    // The second request arrives while the first waits for the upstream: the bytes waiting
    // on the socket are not an end of stream.
    client.write_all(ALICE_GET).expect("write");
    std::thread::sleep(Duration::from_millis(500));
    answer.send(()).expect("answer the first");
    heads
        .recv_timeout(Duration::from_secs(10))
        .expect("the upstream got the second request");
    answer.send(()).expect("answer the second");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count() < 2 {
        let n = client
            .read(&mut buf)
            .expect("two answers, not a closed connection");
        assert!(
            n > 0,
            "connection closed after: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn a_client_that_only_stops_sending_gets_no_answer_to_the_abandoned_request() {
    let (url, heads, _answer, closed) = held_upstream();
    let gw = start(&held_config(&url, "5s"));
    let (mut client, _) = held_request(&gw, &heads);
    // A half-close: the client could still read an answer, but nginx sends none either.
    client
        .shutdown(std::net::Shutdown::Write)
        .expect("shutdown");
    let mut got = Vec::new();
    let _ = client.read_to_end(&mut got);
    assert!(
        got.is_empty(),
        "the abandoned request was answered: {}",
        String::from_utf8_lossy(&got)
    );
    closed_soon(&closed);
}

#[test]
fn a_client_that_goes_away_during_a_streamed_response_ends_it_and_the_upstream_connection() {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = l.accept() else { return };
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        // An event stream: the head and one event, then nothing for a long time.
        let _ = s.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n7\r\ndata: 1\r\n",
        );
        let sent = std::time::Instant::now();
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let eof = matches!(s.read(&mut buf), Ok(0));
        let _ = closed_tx.send(eof.then(|| sent.elapsed()));
    });
    let gw = start(&held_config(&url, "5s"));
    let mut client = TcpStream::connect(gw.addr).expect("connect");
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    client.write_all(ALICE_GET).expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(7).any(|w| w == b"data: 1") {
        let n = client.read(&mut buf).expect("the first event");
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    drop(client);
    closed_soon(&closed_rx);
}
