//! Micro-benchmarks of the per-request hot path: header parsing, path normalisation, route
//! matching, a verification-cache hit and a connection's remembered credentials. `cargo bench -p authgate --bench hot`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;

use authgate::authenticate::basic::BasicAuth;
use authgate::config;
use authgate::normalize::normalize_path;
use authgate::route::Router;
use authgate::users::UserDb;
use authgate_proto::{decode_basic, decode_plain_basic, parse_credentials};

fn main() {
    divan::main();
}

#[divan::bench]
fn parse_authorization_basic() -> usize {
    let c = parse_credentials(divan::black_box(b"Basic YWxpY2U6d29uZGVyIGxhbmQ=")).unwrap();
    let b = decode_basic(c.token68.as_deref().unwrap()).unwrap();
    b.user_id.len()
}

/// What the gateway runs for the usual `Basic <base64>` value: the one-pass reading that
/// leaves every other form to the parser above.
#[divan::bench]
fn decode_plain_basic_authorization() -> usize {
    decode_plain_basic(divan::black_box(b"Basic YWxpY2U6d29uZGVyIGxhbmQ="))
        .unwrap()
        .user_id
        .len()
}

#[divan::bench]
fn normalize_typical_path() -> usize {
    normalize_path(divan::black_box("/api/v1/users/42/orders?limit=10"))
        .unwrap()
        .len()
}

#[divan::bench]
fn normalize_hostile_path() -> usize {
    normalize_path(divan::black_box("/a/./b/../c//d/%7Euser/%41%42/x/../../y/"))
        .unwrap()
        .len()
}

fn routes() -> Router {
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&format!(
            "[[route]]\npath = \"/svc{i}/api\"\nupstream = \"http://127.0.0.1:9000\"\nauth = \"none\"\n"
        ));
    }
    text.push_str(
        "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\nauth = \"none\"\n",
    );
    let loaded = config::load_str(Path::new("bench.toml"), &text);
    Router::new(&loaded.config.expect("valid config").routes)
}

#[divan::bench]
fn route_match_among_21(bencher: divan::Bencher) {
    let router = routes();
    bencher.bench(|| {
        router
            .route(
                divan::black_box("app.example"),
                divan::black_box("/svc17/api/items/3"),
            )
            .map(|r| r.index)
    });
}

/// A `BasicAuth` for alice (bcrypt cost 10) with her verification cached, and a runtime to
/// drive it. The directory must outlive the benchmark.
fn cached_basic() -> (
    BasicAuth,
    tokio::runtime::Runtime,
    tempfile::TempDir,
    std::net::IpAddr,
) {
    let dir = tempfile::tempdir().unwrap();
    let line = authgate::users::hash::hash_password(
        b"wonder land",
        authgate::users::hash::NewHash::Bcrypt { cost: 10 },
    )
    .unwrap();
    std::fs::write(dir.path().join("u"), format!("alice:{line}\n")).unwrap();
    let text = "[users]\nhtpasswd = \"u\"\n[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9\"\nauth = [\"basic\"]\n";
    let loaded = config::load_str(&dir.path().join("c.toml"), text);
    let cfg = loaded.config.expect("valid config");
    let users = cfg.users.as_ref().unwrap();
    let db = Arc::new(authgate::users::Directory::new(
        Some(Arc::new(UserDb::new(
            users.htpasswd.clone(),
            users.initial.clone(),
        ))),
        None,
    ));
    let metrics = Arc::new(authgate::metrics::Metrics::new(&cfg));
    let lockout = Arc::new(authgate::authenticate::lockout::Lockout::new(
        cfg.lockout.clone(),
        authgate::clock::Clock::default(),
    ));
    let auth = BasicAuth::new(
        db,
        &cfg,
        metrics,
        lockout,
        authgate::clock::Clock::default(),
    );
    let client: std::net::IpAddr = [127, 0, 0, 1].into();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // The first call pays the bcrypt cost and fills the cache.
    let creds = parse_credentials(AUTHORIZATION).unwrap();
    rt.block_on(auth.authenticate(&creds, client)).unwrap();
    (auth, rt, dir, client)
}

/// alice:wonder land
const AUTHORIZATION: &[u8] = b"Basic YWxpY2U6d29uZGVyIGxhbmQ=";

#[divan::bench]
fn basic_verification_cache_hit(bencher: divan::Bencher) {
    let (auth, rt, _dir, client) = cached_basic();
    let creds = parse_credentials(AUTHORIZATION).unwrap();
    bencher.bench_local(|| {
        rt.block_on(auth.authenticate(divan::black_box(&creds), client))
            .unwrap()
    });
}

/// What the gateway does for a `Basic` value its connection has not seen: the one-pass
/// decoding, then the cached verification.
#[divan::bench]
fn basic_cache_hit_from_the_header_value(bencher: divan::Bencher) {
    let (auth, rt, _dir, client) = cached_basic();
    bencher.bench_local(|| {
        let c = decode_plain_basic(divan::black_box(AUTHORIZATION)).unwrap();
        rt.block_on(auth.verify(c.user_id, c.password, client, None))
            .unwrap()
    });
}

/// What the gateway does for the value its connection verified last: the digest, then the
/// remembered answer (see `basic::Remembered`).
#[divan::bench]
fn basic_remembered_by_the_connection(bencher: divan::Bencher) {
    let (auth, rt, _dir, client) = cached_basic();
    let remembered = authgate::authenticate::basic::Remembered::default();
    let c = decode_plain_basic(AUTHORIZATION).unwrap();
    let digest = auth.digest(AUTHORIZATION);
    rt.block_on(auth.verify(c.user_id, c.password, client, Some((&remembered, &digest))))
        .unwrap();
    bencher.bench_local(|| {
        let digest = auth.digest(divan::black_box(AUTHORIZATION));
        auth.recall(&remembered, &digest, client)
            .expect("remembered")
            .unwrap()
    });
}

fn header_map(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    for &(k, v) in pairs {
        h.append(k, http::HeaderValue::from_static(v));
    }
    h
}

/// A typical browser-less client request (curl, wrk, an SDK), keep-alive, with credentials.
fn client_request_headers() -> http::HeaderMap {
    header_map(&[
        ("host", "app.example"),
        ("user-agent", "curl/7.88.1"),
        ("accept", "*/*"),
        ("accept-encoding", "gzip"),
        ("authorization", "Basic YWxpY2U6d29uZGVyIGxhbmQ="),
        ("connection", "keep-alive"),
    ])
}

#[divan::bench]
fn prepare_forwarded_request_headers(bencher: divan::Bencher) {
    use authgate::forward::headers::{prepare_request, Forwarding, IdentityNames};
    let loaded = config::load_str(
        Path::new("bench.toml"),
        "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:9000\"\nauth = \"none\"\n",
    );
    let cfg = loaded.config.expect("valid config");
    let names = IdentityNames::new(&cfg.server.identity_headers);
    let identity = authgate::authenticate::Identity {
        user: "alice".into(),
        method: authgate::config::Scheme::Basic,
        groups: Arc::from(vec!["staff".to_owned()]),
        scopes: None,
    };
    let request_id = http::HeaderValue::from_static("0123456789abcdef");
    let forwarded_for = http::HeaderValue::from_static("127.0.0.1");
    let f = Forwarding {
        identity: Some(&identity),
        names: &names,
        peer: [127, 0, 0, 1].into(),
        peer_trusted: false,
        forwarded_for: Some(&forwarded_for),
        authority: "127.0.0.1:9000",
        request_id: Some(&request_id),
        pass_authorization: false,
    };
    bencher
        .with_inputs(client_request_headers)
        .bench_local_refs(|h| prepare_request(h, divan::black_box(&f)));
}

#[divan::bench]
fn prepare_upstream_response_headers(bencher: divan::Bencher) {
    // What nginx's `return 200` sends back.
    let response = || {
        header_map(&[
            ("server", "nginx"),
            ("date", "Sat, 28 Nov 2026 16:00:00 GMT"),
            ("content-type", "text/plain"),
            ("content-length", "3"),
            ("connection", "keep-alive"),
        ])
    };
    bencher
        .with_inputs(response)
        .bench_local_refs(authgate::forward::headers::prepare_response);
}
