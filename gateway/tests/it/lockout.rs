//! Brute-force protection against the real binary: bans engage without any hashing, expire on
//! the test clock, and a flood from other addresses does not lock a real user out.

use crate::kit::{self, metric, Gateway, Upstream};

/// A gateway with the `[lockout]` settings `lockout`, and no tarpit unless they set one (the
/// tests that count refusals would otherwise wait a second for each).
fn start(upstream: &Upstream, lockout: &str) -> Gateway {
    let lockout = if lockout.contains("tarpit") {
        lockout.to_string()
    } else {
        format!("{lockout}\ntarpit = \"0s\"")
    };
    let config = kit::basic_config(
        upstream,
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.1\"]\n[admin]\nlisten = \"127.0.0.1:0\"\n[lockout]\n{lockout}"
        ),
    );
    let file = kit::htpasswd(&["-B", "-C", "4"], "alice", "right");
    Gateway::start(&config, &[("users.htpasswd", &file), ("clock", "0")])
}

#[test]
fn a_pair_ban_answers_429_without_hashing_and_expires_on_the_clock() {
    let upstream = Upstream::start();
    let gw = start(&upstream, "pair_threshold = 3\nban = \"60s\"");
    for _ in 0..3 {
        assert_eq!(kit::get(&gw.url("/"), Some(("alice", "wrong")), &[]).0, 401);
    }
    let hashes = metric(&gw, "authgate_password_hashes_total");
    // Banned: even the right password is refused, and nothing is hashed.
    let (status, h, body) = kit::get(
        &gw.url("/"),
        Some(("alice", "right")),
        &[("accept", "application/json")],
    );
    assert_eq!(status, 429, "{body}");
    let retry: u64 = h["retry-after"].parse().expect("Retry-After seconds");
    assert!((1..=60).contains(&retry), "{retry}");
    let p: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(p["reason"], "too_many_failures");
    for _ in 0..5 {
        assert_eq!(
            kit::get(
                &gw.url("/"),
                Some(("alice", &format!("guess{}", rand_suffix()))),
                &[]
            )
            .0,
            429
        );
    }
    assert_eq!(
        metric(&gw, "authgate_password_hashes_total"),
        hashes,
        "a banned attempt computed a hash"
    );
    assert_eq!(metric(&gw, "authgate_bans_total"), 1.0);
    upstream.assert_untouched("banned");
    // Past the ban, on the test clock: the right password works again.
    gw.set_clock(61);
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "right")), &[]).0, 200);
}

#[test]
fn a_banned_client_waits_for_its_answer_and_is_logged_even_if_it_leaves() {
    let upstream = Upstream::start();
    let gw = start(
        &upstream,
        "pair_threshold = 2\nban = \"60s\"\ntarpit = \"1500ms\"",
    );
    let banned =
        "authgate_decisions_total{route=\"/\",outcome=\"deny\",reason=\"too_many_failures\"}";
    // Failures are answered at once; only a ban's refusal is held.
    for _ in 0..2 {
        assert_eq!(kit::get(&gw.url("/"), Some(("alice", "wrong")), &[]).0, 401);
    }
    let asked = std::time::Instant::now();
    let (status, h, _) = kit::get(&gw.url("/"), Some(("alice", "right")), &[]);
    assert_eq!(status, 429);
    assert!(
        asked.elapsed() >= std::time::Duration::from_millis(1500),
        "answered after {:?}, before the tarpit",
        asked.elapsed()
    );
    assert!(h.contains_key("retry-after"), "{h:?}");
    assert_eq!(metric(&gw, banned), 1.0);
    // A client that gives up while held: its refusal is counted (and logged) all the same.
    let gave_up = kit::rt().block_on(async {
        kit::client()
            .get(gw.url("/"))
            .basic_auth("alice", Some("right"))
            .timeout(std::time::Duration::from_millis(200))
            .send()
            .await
    });
    assert!(gave_up.is_err(), "answered within 200 ms: {gave_up:?}");
    assert_eq!(metric(&gw, banned), 2.0);
    upstream.assert_untouched("banned, held in the tarpit");
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

#[test]
fn a_flood_from_other_addresses_does_not_lock_the_user_out_of_a_known_client() {
    let upstream = Upstream::start();
    let gw = start(
        &upstream,
        "user_threshold = 5\npair_threshold = 100\nclient_threshold = 100",
    );
    let home = [("x-forwarded-for", "192.0.2.10")];
    assert_eq!(
        kit::get(&gw.url("/"), Some(("alice", "right")), &home).0,
        200
    );
    // Credential stuffing against alice from many addresses.
    for i in 0..8 {
        let from = format!("198.51.100.{i}");
        let status = kit::get(
            &gw.url("/"),
            Some(("alice", &format!("pw{i}"))),
            &[("x-forwarded-for", &from)],
        )
        .0;
        assert!(status == 401 || status == 429, "{status}");
    }
    // A new address is refused for alice now...
    let (status, _, _) = kit::get(
        &gw.url("/"),
        Some(("alice", "right")),
        &[("x-forwarded-for", "203.0.113.7")],
    );
    assert_eq!(status, 429);
    // ...but alice still gets in from where she signed in before.
    upstream.clear();
    assert_eq!(
        kit::get(&gw.url("/"), Some(("alice", "right")), &home).0,
        200
    );
    assert_eq!(upstream.count(), 1);
}

#[test]
fn a_banned_client_address_is_refused_for_every_user() {
    let upstream = Upstream::start();
    let gw = start(
        &upstream,
        "client_threshold = 4\npair_threshold = 100\nuser_threshold = 100",
    );
    let bad = [("x-forwarded-for", "198.51.100.66")];
    for i in 0..4 {
        kit::get(&gw.url("/"), Some((&format!("user{i}"), "x")), &bad);
    }
    assert_eq!(
        kit::get(&gw.url("/"), Some(("alice", "right")), &bad).0,
        429
    );
    // Another address is unaffected.
    assert_eq!(
        kit::get(
            &gw.url("/"),
            Some(("alice", "right")),
            &[("x-forwarded-for", "192.0.2.20")]
        )
        .0,
        200
    );
}

#[test]
fn a_client_whose_sign_ins_came_from_the_cache_is_known_too() {
    let upstream = Upstream::start();
    let gw = start(
        &upstream,
        "user_threshold = 5\npair_threshold = 100\nclient_threshold = 100",
    );
    // The office verifies the password (a hash); home then signs in from the cache.
    let office = [("x-forwarded-for", "192.0.2.10")];
    let home = [("x-forwarded-for", "192.0.2.11")];
    assert_eq!(
        kit::get(&gw.url("/"), Some(("alice", "right")), &office).0,
        200
    );
    let hashes = metric(&gw, "authgate_password_hashes_total");
    assert_eq!(
        kit::get(&gw.url("/"), Some(("alice", "right")), &home).0,
        200
    );
    assert_eq!(
        metric(&gw, "authgate_password_hashes_total"),
        hashes,
        "home's sign-in came from the cache"
    );
    for i in 0..8 {
        let from = format!("198.51.100.{i}");
        kit::get(
            &gw.url("/"),
            Some(("alice", &format!("pw{i}"))),
            &[("x-forwarded-for", &from)],
        );
    }
    upstream.clear();
    let (status, _, _) = kit::get(
        &gw.url("/"),
        Some(("alice", "right")),
        &[("x-forwarded-for", "203.0.113.7")],
    );
    assert_eq!(status, 429, "a stranger is refused for alice");
    upstream.assert_untouched("a stranger during the lockout");
    assert_eq!(
        kit::get(&gw.url("/"), Some(("alice", "right")), &home).0,
        200,
        "home is known"
    );
    assert_eq!(upstream.count(), 1);
}

#[test]
fn an_ipv6_client_is_banned_by_its_64() {
    let upstream = Upstream::start();
    let gw = start(
        &upstream,
        "client_threshold = 4\npair_threshold = 100\nuser_threshold = 100",
    );
    // One host, a new address of its /64 for each guess.
    for i in 1..=4 {
        let from = format!("2001:db8:1:2::{i:x}");
        let status = kit::get(
            &gw.url("/"),
            Some((&format!("user{i}"), "x")),
            &[("x-forwarded-for", &from)],
        )
        .0;
        assert_eq!(status, 401);
    }
    upstream.clear();
    let (status, _, _) = kit::get(
        &gw.url("/"),
        Some(("alice", "right")),
        &[("x-forwarded-for", "2001:db8:1:2:beef::1")],
    );
    assert_eq!(status, 429, "the whole /64 is banned");
    upstream.assert_untouched("a banned /64");
    assert_eq!(
        kit::get(
            &gw.url("/"),
            Some(("alice", "right")),
            &[("x-forwarded-for", "2001:db8:1:3::1")]
        )
        .0,
        200,
        "the next /64 is not"
    );
}

#[test]
fn concurrent_guesses_cannot_pass_the_threshold_together() {
    let upstream = Upstream::start();
    let gw = start(
        &upstream,
        "pair_threshold = 3\nuser_threshold = 1000\nclient_threshold = 1000",
    );
    let hashes = metric(&gw, "authgate_password_hashes_total");
    // Two dozen different guesses for alice at once, from one client: each passes the ban
    // check before any has failed, so only the attempts in flight can hold them back.
    let url = gw.url("/");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..24)
            .map(|i| {
                let url = &url;
                s.spawn(move || kit::get(url, Some(("alice", &format!("guess{i}"))), &[]).0)
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client thread"))
            .collect()
    });
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    let hashed = metric(&gw, "authgate_password_hashes_total") - hashes;
    assert!(hashed <= 3.0, "{hashed} guesses hashed, threshold 3");
    upstream.assert_untouched("guesses");
}

#[test]
fn held_refusals_take_at_most_a_quarter_of_the_connections() {
    // max_connections = 8: at most 2 refusals are held; a third goes out at once, so a flood
    // held in the tarpit cannot take the connections real users need.
    let upstream = Upstream::start();
    let config = kit::basic_config(
        &upstream,
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_connections = 8\n[admin]\nlisten = \"127.0.0.1:0\"\n[lockout]\npair_threshold = 2\nban = \"60s\"\ntarpit = \"60s\"",
    );
    let file = kit::htpasswd(&["-B", "-C", "4"], "alice", "right");
    let gw = Gateway::start(&config, &[("users.htpasswd", &file)]);
    let banned =
        "authgate_decisions_total{route=\"/\",outcome=\"deny\",reason=\"too_many_failures\"}";
    for _ in 0..2 {
        assert_eq!(kit::get(&gw.url("/"), Some(("alice", "wrong")), &[]).0, 401);
    }
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("alice:right")
    };
    let request = format!("GET / HTTP/1.1\r\nHost: app\r\nAuthorization: Basic {auth}\r\n\r\n");
    let mut held: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(gw.addr).expect("connect");
            std::io::Write::write_all(&mut s, request.as_bytes()).expect("write");
            s
        })
        .collect();
    // Both are decided (and counted) before they are held.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while kit::metric_if_any(&gw, banned) < Some(2.0) {
        assert!(
            std::time::Instant::now() < until,
            "the two refusals were not decided"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The third is answered while the two are still held (the tarpit is 60 s; kit::raw
    // gives up after 10).
    let third = kit::raw(gw.addr, request.as_bytes());
    assert_eq!(third.status, 429, "{}", third.head);
    for s in &mut held {
        s.set_read_timeout(Some(std::time::Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 64];
        let read = std::io::Read::read(s, &mut buf);
        assert!(
            matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock
                || e.kind() == std::io::ErrorKind::TimedOut),
            "a held refusal was answered early: {read:?}"
        );
    }
    upstream.assert_untouched("banned, held or not");
}
