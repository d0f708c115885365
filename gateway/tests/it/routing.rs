//! Which route a request takes, and static file routes.

use std::collections::BTreeMap;

use crate::kit;

const USERS_SECTION: &str = "[users]\nhtpasswd = \"{dir}/users.htpasswd\"\n\n";

fn users() -> String {
    let b = ["-B", "-C", "4"];
    [
        kit::htpasswd(&b, "alice", "alice-pw"),
        kit::htpasswd(&b, "bob", "bob-pw"),
        kit::htpasswd(&b, "carol", "carol-pw"),
    ]
    .concat()
}

fn route(path: &str, up: &kit::Upstream, auth: &str) -> String {
    format!(
        "[[route]]\npath = \"{path}\"\nupstream = \"{}\"\nrealm = \"Test\"\nauth = {auth}\n\n",
        up.url()
    )
}

const NONE: &str = "\"none\"";
const BASIC: &str = "[\"basic\"]";

fn start(config: &str, extra_files: &[(&str, &str)]) -> kit::Gateway {
    let users = users();
    let mut files = vec![("users.htpasswd", users.as_str())];
    files.extend_from_slice(extra_files);
    kit::Gateway::start(&format!("{USERS_SECTION}{config}"), &files)
}

/// GET with `Accept: application/json`; returns (status, headers, body) and a description of
/// what was sent for failure messages.
fn ask(
    gw: &kit::Gateway,
    path: &str,
    creds: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> (u16, BTreeMap<String, String>, String, String) {
    let mut all = vec![("accept", "application/json")];
    all.extend_from_slice(headers);
    let (s, h, b) = kit::get(&gw.url(path), creds, &all);
    (
        s,
        h,
        b,
        format!("GET {path} as {:?} with {all:?}", creds.map(|c| c.0)),
    )
}

fn reason(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["reason"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A raw GET with a chosen Host; returns the status and body.
fn raw_get(gw: &kit::Gateway, host: &str, path: &str) -> kit::RawResponse {
    kit::raw(
        gw.addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\n\r\n")
            .as_bytes(),
    )
}

#[test]
fn the_longest_prefix_wins() {
    let (root, api, v2) = (
        kit::Upstream::start(),
        kit::Upstream::start(),
        kit::Upstream::start(),
    );
    let gw = start(
        &[
            route("/", &root, NONE),
            route("/api/v2", &v2, NONE),
            route("/api/", &api, NONE),
        ]
        .concat(),
        &[],
    );
    for (path, want) in [
        ("/api/v2/x", &v2),
        ("/api/v2", &v2),
        ("/api/v1/x", &api),
        ("/api", &api),
        ("/api/v2x", &api),
        ("/apiv2", &root),
        ("/x", &root),
    ] {
        for u in [&root, &api, &v2] {
            u.clear();
        }
        let (status, h, body, sent) = ask(&gw, path, None, &[]);
        assert_eq!(status, 200, "{sent}: {h:?} {body}");
        assert_eq!(
            want.count(),
            1,
            "{sent}: went to the wrong upstream ({body})"
        );
        assert_eq!(root.count() + api.count() + v2.count(), 1, "{sent}");
        assert_eq!(want.seen()[0].target, path);
    }
}

#[test]
fn a_prefix_covers_whole_segments_only() {
    let (root, admin) = (kit::Upstream::start(), kit::Upstream::start());
    let gw = start(
        &[route("/", &root, NONE), route("/admin", &admin, BASIC)].concat(),
        &[],
    );
    for path in ["/admin", "/admin/", "/admin/x", "/admin/x/y?z=1"] {
        let (status, h, body, sent) = ask(&gw, path, None, &[]);
        assert_eq!(
            (status, reason(&body).as_str()),
            (401, "missing_credentials"),
            "{sent}: {h:?} {body}"
        );
        admin.assert_untouched(&sent);
        root.assert_untouched(&sent);
    }
    for path in ["/adminx", "/admin-x", "/admin.x"] {
        let (status, h, body, sent) = ask(&gw, path, None, &[]);
        assert_eq!(status, 200, "{sent}: {h:?} {body}");
        assert_eq!(root.count(), 1, "{sent}");
        root.clear();
        admin.assert_untouched(&sent);
    }
}

#[test]
fn a_host_route_beats_a_longer_hostless_route() {
    let (app, api) = (kit::Upstream::start(), kit::Upstream::start());
    let config = format!(
        "[[route]]\nhost = \"app.example\"\npath = \"/\"\nupstream = \"{}\"\nauth = \"none\"\n\n{}",
        app.url(),
        route("/api", &api, NONE)
    );
    let gw = start(&config, &[]);
    for host in ["app.example", "APP.Example:8080", "app.example."] {
        app.clear();
        let r = raw_get(&gw, host, "/api/x");
        assert_eq!(r.status, 200, "Host {host}: {r:#?}");
        assert_eq!(
            app.count(),
            1,
            "Host {host} should take the host route: {r:#?}"
        );
        api.assert_untouched(host);
    }
    let r = raw_get(&gw, "other.example", "/api/x");
    assert_eq!(r.status, 200, "{r:#?}");
    assert_eq!(api.count(), 1, "{r:#?}");
    app.clear();
    let r = raw_get(&gw, "other.example", "/x");
    assert_eq!(r.status, 404, "no route for other.example/x: {r:#?}");
    assert_eq!(reason(&r.body), "no_route", "{r:#?}");
    app.assert_untouched("other.example/x");
}

#[test]
fn no_matching_route_is_404_without_a_challenge() {
    let up = kit::Upstream::start();
    let gw = start(&route("/app", &up, BASIC), &[]);
    for path in ["/", "/other", "/apps", "/ap"] {
        let (status, h, body, sent) = ask(&gw, path, Some(("alice", "alice-pw")), &[]);
        assert_eq!(
            (status, reason(&body).as_str()),
            (404, "no_route"),
            "{sent}: {h:?} {body}"
        );
        assert!(!h.contains_key("www-authenticate"), "{sent}: {h:?}");
        assert!(h.contains_key("x-request-id"), "{sent}: {h:?}");
        up.assert_untouched(&sent);
    }
}

#[test]
fn a_public_route_passes_without_credentials_and_sends_no_identity() {
    let up = kit::Upstream::start();
    let gw = start(&route("/", &up, NONE), &[]);
    let (status, h, body, sent) = ask(
        &gw,
        "/x",
        None,
        &[("X-Authgate-User", "root"), ("X-Remote-User", "root")],
    );
    assert_eq!(status, 200, "{sent}: {h:?} {body}");
    let seen = up.seen();
    let ids: Vec<_> = seen[0]
        .headers
        .iter()
        .filter(|(k, _)| k.starts_with("x-authgate-") || k.contains("remote-user"))
        .collect();
    assert!(
        ids.is_empty(),
        "identity headers on a public route: {ids:?}"
    );
    // Credentials sent anyway are not checked, not turned into an identity, and not forwarded.
    up.clear();
    let (status, h, body, sent) = ask(&gw, "/x", Some(("alice", "wrong")), &[]);
    assert_eq!(status, 200, "{sent}: {h:?} {body}");
    let s = &up.seen()[0];
    assert!(
        s.header("x-authgate-user").is_none() && s.header("authorization").is_none(),
        "{s:#?}"
    );
}

#[test]
fn allow_lists_admit_users_and_group_members_and_forbid_the_rest() {
    let up = kit::Upstream::start();
    let config = format!(
        "[groups]\nops = [\"bob\"]\n\n[[route]]\npath = \"/\"\nupstream = \"{}\"\nrealm = \"Test\"\nauth = [\"basic\"]\nallow = {{ users = [\"alice\"], groups = [\"ops\"] }}\n",
        up.url()
    );
    let gw = start(&config, &[]);
    for user in ["alice", "bob"] {
        up.clear();
        let (status, h, body, sent) = ask(&gw, "/x", Some((user, &format!("{user}-pw"))), &[]);
        assert_eq!(status, 200, "{sent}: {h:?} {body}");
        assert_eq!(up.seen()[0].header("x-authgate-user"), Some(user));
    }
    up.clear();
    let (status, h, body, sent) = ask(&gw, "/x", Some(("carol", "carol-pw")), &[]);
    assert_eq!(
        (status, reason(&body).as_str()),
        (403, "forbidden"),
        "{sent}: {h:?} {body}"
    );
    assert!(
        !h.contains_key("www-authenticate"),
        "a 403 must not carry a challenge: {h:?}"
    );
    assert_eq!(
        h.get("cache-control").map(String::as_str),
        Some("no-store"),
        "{h:?}"
    );
    up.assert_untouched(&sent);
    let rid = h.get("x-request-id").cloned().unwrap_or_default();
    assert_eq!(gw.audit_for(&rid)["user"], "carol");
    // A wrong password is still 401, not 403: authorization comes after authentication.
    let (status, h, body, sent) = ask(&gw, "/x", Some(("carol", "nope")), &[]);
    assert_eq!(
        (status, reason(&body).as_str()),
        (401, "invalid_credentials"),
        "{sent}: {h:?} {body}"
    );
    up.assert_untouched(&sent);
}

// ---- static routes -------------------------------------------------------------------------

const MARKER: &str = "config-marker-5f3a";

const SITE: &[(&str, &str)] = &[
    ("site/a.txt", "hello static\n"),
    ("site/index.html", "<h1>root index</h1>\n"),
    ("site/sub/index.html", "<h1>sub index</h1>\n"),
    ("site/range.txt", "0123456789"),
];

fn static_gateway(up: &kit::Upstream) -> kit::Gateway {
    let config = format!(
        "# {MARKER}\n\
         [[route]]\npath = \"/files\"\nstatic = \"{{dir}}/site\"\nauth = \"none\"\n\n\
         [[route]]\npath = \"/private\"\nstatic = \"{{dir}}/site\"\nrealm = \"Test\"\nauth = [\"basic\"]\n\n{}",
        route("/", up, NONE)
    );
    start(&config, SITE)
}

#[test]
fn a_static_route_maps_its_prefix_to_the_directory_root() {
    let up = kit::Upstream::start();
    let gw = static_gateway(&up);
    for (path, want) in [
        ("/files/a.txt", "hello static\n"),
        ("/files/sub/", "<h1>sub index</h1>\n"),
        ("/files/", "<h1>root index</h1>\n"),
        ("/files/sub/index.html", "<h1>sub index</h1>\n"),
    ] {
        let (status, h, body, sent) = ask(&gw, path, None, &[]);
        assert_eq!((status, body.as_str()), (200, want), "{sent}: {h:?}");
    }
    let (status, h, body, sent) = ask(&gw, "/files/missing.txt", None, &[]);
    assert_eq!(status, 404, "{sent}: {h:?} {body}");
    up.assert_untouched("static files are served by authgate itself");
}

#[test]
fn a_static_directory_without_slash_redirects_under_the_prefix() {
    let up = kit::Upstream::start();
    let gw = static_gateway(&up);
    let (status, h, body, sent) = ask(&gw, "/files/sub", None, &[]);
    assert!(
        matches!(status, 301 | 302 | 307 | 308),
        "{sent}: {status} {h:?} {body}"
    );
    assert_eq!(
        h.get("location").map(String::as_str),
        Some("/files/sub/"),
        "{sent}: {h:?}"
    );
    up.assert_untouched(&sent);
}

#[test]
fn static_files_support_range_requests() {
    let up = kit::Upstream::start();
    let gw = static_gateway(&up);
    let (status, h, body, sent) = ask(&gw, "/files/range.txt", None, &[("range", "bytes=0-3")]);
    assert_eq!((status, body.as_str()), (206, "0123"), "{sent}: {h:?}");
    assert_eq!(
        h.get("content-range").map(String::as_str),
        Some("bytes 0-3/10"),
        "{h:?}"
    );
    let (status, h, body, sent) = ask(&gw, "/files/range.txt", None, &[("range", "bytes=-2")]);
    assert_eq!((status, body.as_str()), (206, "89"), "{sent}: {h:?}");
    up.assert_untouched(&sent);
}

#[test]
fn static_files_answer_conditional_requests_with_304() {
    let up = kit::Upstream::start();
    let gw = static_gateway(&up);
    let (status, h, _, sent) = ask(&gw, "/files/a.txt", None, &[]);
    assert_eq!(status, 200, "{sent}");
    let last_modified = h
        .get("last-modified")
        .cloned()
        .expect("static files carry Last-Modified");
    let (status, h2, body, sent) = ask(
        &gw,
        "/files/a.txt",
        None,
        &[("if-modified-since", &last_modified)],
    );
    assert_eq!(status, 304, "{sent}: {h2:?} {body}");
    assert_eq!(body, "", "{sent}");
    if let Some(etag) = h.get("etag") {
        let (status, h3, body, sent) = ask(&gw, "/files/a.txt", None, &[("if-none-match", etag)]);
        assert_eq!(status, 304, "{sent}: {h3:?} {body}");
    }
    up.assert_untouched(&sent);
}

#[test]
fn static_routes_never_serve_files_outside_their_root() {
    let up = kit::Upstream::start();
    let gw = static_gateway(&up);
    for path in [
        "/files/../authgate.toml",
        "/files/%2e%2e/authgate.toml",
        "/files/..%2fauthgate.toml",
        "/files/%2e%2e%2fauthgate.toml",
        "/files/..%5cauthgate.toml",
        "/files/..\\authgate.toml",
        "/files/%252e%252e/authgate.toml",
        "/files/sub/../../authgate.toml",
        "/files/....//authgate.toml",
        "/files//../authgate.toml",
        "/private/../authgate.toml",
        "/files/../users.htpasswd",
    ] {
        let r = raw_get(&gw, &gw.addr.to_string(), path);
        assert!(
            !r.body.contains(MARKER) && !r.body.contains("$2y$"),
            "{path} returned a file outside the static root: {r:#?}"
        );
    }
    // `/files/../authgate.toml` resolves to `/authgate.toml`, which belongs to the upstream route.
    assert!(
        up.seen()
            .iter()
            .all(|s| s.target == "/authgate.toml" || s.target == "/users.htpasswd"),
        "{:#?}",
        up.seen()
    );
}

#[test]
fn a_protected_static_route_needs_credentials() {
    let up = kit::Upstream::start();
    let gw = static_gateway(&up);
    let (status, h, body, sent) = ask(&gw, "/private/a.txt", None, &[]);
    assert_eq!(
        (status, reason(&body).as_str()),
        (401, "missing_credentials"),
        "{sent}: {h:?} {body}"
    );
    assert_eq!(
        h.get("www-authenticate").map(String::as_str),
        Some("Basic realm=\"Test\", charset=\"UTF-8\""),
        "{h:?}"
    );
    let (status, h, body, sent) = ask(&gw, "/private/a.txt", Some(("alice", "wrong")), &[]);
    assert_eq!(
        (status, reason(&body).as_str()),
        (401, "invalid_credentials"),
        "{sent}: {h:?} {body}"
    );
    let (status, h, body, sent) = ask(&gw, "/private/a.txt", Some(("alice", "alice-pw")), &[]);
    assert_eq!(
        (status, body.as_str()),
        (200, "hello static\n"),
        "{sent}: {h:?}"
    );
    assert!(
        h.get("cache-control")
            .is_some_and(|c| c.contains("private")),
        "an authenticated static file must be private: {h:?}"
    );
    up.assert_untouched(&sent);
}
