//! The hashing budget: when the pool's queue is full, unverified attempts get 503 with
//! Retry-After, while requests that hit the verification cache are unaffected; and the cache
//! keeps a result for `cache_ttl` on authgate's clock, then verifies again.

use crate::kit::{self, metric, Gateway, Upstream};

/// status, Retry-After, body
type Answer = (u16, Option<String>, String);

#[test]
fn a_saturated_hash_pool_refuses_new_attempts_but_not_cached_users() {
    let upstream = Upstream::start();
    let config = kit::basic_config(
        &upstream,
        "[server]\nlisten = \"127.0.0.1:0\"\nhash_queue = 1\nhash_wait = \"20ms\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[lockout]\nenabled = false",
    );
    // bcrypt cost 12: each verification takes a few hundred milliseconds.
    let gw = Gateway::start(
        &config,
        &[(
            "users.htpasswd",
            &kit::htpasswd(&["-B", "-C", "12"], "alice", "right"),
        )],
    );
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "right")), &[]).0, 200);
    upstream.clear();

    let url = gw.url("/");
    let (flood, cached): (Vec<Answer>, Vec<u16>) = kit::rt().block_on(async {
        let c = kit::client();
        let flood = (0..40).map(|i| {
            let (c, url) = (c.clone(), url.clone());
            async move {
                let r = c
                    .get(&url)
                    .basic_auth("alice", Some(format!("wrong-{i}")))
                    .header("accept", "application/json")
                    .send()
                    .await
                    .expect("flood request");
                let status = r.status().as_u16();
                let retry = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                (status, retry, r.text().await.unwrap_or_default())
            }
        });
        let cached = (0..20).map(|_| {
            let (c, url) = (c.clone(), url.clone());
            async move {
                c.get(&url)
                    .basic_auth("alice", Some("right"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        });
        futures_util::future::join(
            futures_util::future::join_all(flood),
            futures_util::future::join_all(cached),
        )
        .await
    });

    assert!(
        cached.iter().all(|s| *s == 200),
        "cached sign-ins must be unaffected: {cached:?}"
    );
    assert_eq!(
        upstream.count(),
        20,
        "only the cached requests reached the upstream"
    );
    let busy: Vec<_> = flood.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(
        !busy.is_empty(),
        "the saturated pool must refuse some attempts: {:?}",
        flood.iter().map(|f| f.0).collect::<Vec<_>>()
    );
    for (status, retry, body) in &flood {
        assert!(*status == 401 || *status == 503, "{status} {body}");
        if *status == 503 {
            assert_eq!(retry.as_deref(), Some("1"), "{body}");
            assert!(body.contains("\"reason\":\"hashing_busy\""), "{body}");
        }
    }
    let admin = gw.admin.expect("admin");
    let (_, _, metrics) = kit::get(&format!("http://{admin}/metrics"), None, &[]);
    let busy_metric: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("authgate_hashing_busy_total ")?.parse().ok())
        .expect("authgate_hashing_busy_total");
    assert_eq!(busy_metric, busy.len() as f64);
}

#[test]
fn a_verification_is_reused_for_cache_ttl_on_the_clock_then_made_again() {
    let upstream = Upstream::start();
    let config = kit::basic_config(
        &upstream,
        "[server]\nlisten = \"127.0.0.1:0\"\ncache_ttl = \"60s\"\n[admin]\nlisten = \"127.0.0.1:0\"",
    );
    let gw = Gateway::start(
        &config,
        &[
            (
                "users.htpasswd",
                &kit::htpasswd(&["-B", "-C", "4"], "alice", "right"),
            ),
            ("clock", "0"),
        ],
    );
    let status = || kit::get(&gw.url("/"), Some(("alice", "right")), &[]).0;
    let hashes = || metric(&gw, "authgate_password_hashes_total");
    assert_eq!(status(), 200);
    assert_eq!(status(), 200);
    assert_eq!(hashes(), 1.0, "the second request used the cache");
    gw.set_clock(59);
    assert_eq!(status(), 200);
    assert_eq!(hashes(), 1.0, "still within cache_ttl");
    gw.set_clock(61);
    assert_eq!(status(), 200);
    assert_eq!(
        hashes(),
        2.0,
        "past cache_ttl the password is verified again"
    );
    assert_eq!(status(), 200);
    assert_eq!(hashes(), 2.0, "and the new result is cached");
    // A wrong password after the right one was cached is still refused.
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "wrong")), &[]).0, 401);
    assert_eq!(upstream.count(), 5);
}

/// A client connection remembers the Basic credentials it had verified last, and skips the
/// decoding and the cache lookup when the same value comes again on it. The answers must be
/// exactly those without it: a different password on the same connection, a ban, the end of
/// `cache_ttl` and a changed htpasswd file each take effect on that connection at once.
#[test]
fn a_kept_connection_gets_the_same_answers_as_new_ones() {
    use base64::Engine as _;
    let upstream = Upstream::start();
    let config = kit::basic_config(
        &upstream,
        "[server]\nlisten = \"127.0.0.1:0\"\ncache_ttl = \"60s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[lockout]\npair_threshold = 3\nban = \"30s\"",
    )
    .replace(
        "htpasswd = \"{dir}/users.htpasswd\"",
        "htpasswd = \"{dir}/users.htpasswd\"\nwatch = false",
    );
    let gw = Gateway::start(
        &config,
        &[
            (
                "users.htpasswd",
                &kit::htpasswd(&["-B", "-C", "4"], "alice", "right"),
            ),
            ("clock", "0"),
        ],
    );
    let mut conn = std::net::TcpStream::connect(gw.addr).expect("connect");
    let mut on_conn = |user: &str, password: &str| {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let request = format!("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {token}\r\n\r\n");
        let r = kit::raw_on(&mut conn, request.as_bytes());
        assert!(
            !r.head.contains("onnection: close"),
            "the connection must stay open: {}",
            r.head
        );
        r.status
    };
    let hashes = || metric(&gw, "authgate_password_hashes_total");

    assert_eq!(on_conn("alice", "right"), 200);
    assert_eq!(
        on_conn("alice", "wrong"),
        401,
        "a wrong password on the same connection"
    );
    assert_eq!(on_conn("alice", "right"), 200);
    assert_eq!(on_conn("Alice", "right"), 401, "another user-id");
    assert_eq!(upstream.count(), 2);
    assert_eq!(hashes(), 3.0, "right once, then the two wrong ones");

    // Banned from elsewhere: the remembered connection is refused too, and hashes nothing.
    for _ in 0..2 {
        assert_eq!(
            kit::get(&gw.url("/"), Some(("alice", "wrong2")), &[]).0,
            401
        );
    }
    assert_eq!(
        on_conn("alice", "right"),
        429,
        "a ban holds on a remembered connection"
    );
    assert_eq!(
        upstream.count(),
        2,
        "the banned request reached the upstream"
    );

    // Past the ban, within cache_ttl: no hashing.
    gw.set_clock(31);
    let before = hashes();
    assert_eq!(on_conn("alice", "right"), 200);
    assert_eq!(hashes(), before, "within cache_ttl nothing is hashed again");

    // Past cache_ttl the password is verified again, on this connection too.
    gw.set_clock(61);
    assert_eq!(on_conn("alice", "right"), 200);
    assert_eq!(
        hashes(),
        before + 1.0,
        "past cache_ttl the password was not verified"
    );
    assert_eq!(upstream.count(), 4);

    // A new password in the file: the old one stops working on this connection at once.
    std::fs::write(
        gw.path("users.htpasswd"),
        kit::htpasswd(&["-B", "-C", "4"], "alice", "new"),
    )
    .expect("write");
    gw.signal("HUP");
    gw.wait_stderr("reloaded the htpasswd file");
    assert_eq!(
        on_conn("alice", "right"),
        401,
        "the old password after the change"
    );
    assert_eq!(upstream.count(), 4, "the old password reached the upstream");
    assert_eq!(on_conn("alice", "new"), 200);
    assert_eq!(upstream.count(), 5);
}
