//! Basic authentication end to end: every htpasswd format Apache's `htpasswd` writes, the
//! challenge, the bodies, and the audit record of each decision.

use crate::kit::{self, Gateway, Upstream};

/// (htpasswd flags, format name) for every format Apache's htpasswd writes that authgate
/// accepts. Bcrypt at cost 4 keeps the suite fast; the cost does not change the code path.
const FORMATS: &[(&[&str], &str)] = &[
    (&["-B", "-C", "4"], "bcrypt"),
    (&["-m"], "apr1"),
    (&["-s"], "sha1"),
    (&["-2"], "sha256-crypt"),
    (&["-5"], "sha512-crypt"),
];

#[test]
fn every_htpasswd_format_accepts_the_right_password_and_only_it() {
    let upstream = Upstream::start();
    let mut file = String::new();
    for (flags, name) in FORMATS {
        file.push_str(&kit::htpasswd(flags, name, &format!("pw-{name}-é")));
    }
    let gw = Gateway::start(
        &kit::basic_config(&upstream, ""),
        &[("users.htpasswd", &file)],
    );
    for (_, name) in FORMATS {
        let right = format!("pw-{name}-é");
        let (status, _, body) = kit::get(&gw.url("/x"), Some((name, &right)), &[]);
        assert_eq!(status, 200, "{name} with the right password: {body}");
        assert_eq!(upstream.count(), 1, "{name}");
        upstream.clear();
        let mut last_byte_off = right.clone();
        last_byte_off.pop();
        last_byte_off.push('e');
        for wrong in [
            "",
            "pw",
            right.to_uppercase().as_str(),
            last_byte_off.as_str(),
            &format!("{right} "),
        ] {
            let (status, headers, _) = kit::get(&gw.url("/x"), Some((name, wrong)), &[]);
            assert_eq!(status, 401, "{name} with wrong password {wrong:?}");
            assert_eq!(
                headers["www-authenticate"],
                "Basic realm=\"Test\", charset=\"UTF-8\""
            );
        }
        upstream.assert_untouched(name);
    }
}

#[test]
fn argon2id_from_authgate_hash_works() {
    let upstream = Upstream::start();
    let out = std::process::Command::new(kit::bin())
        .args(["hash", "carol"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().expect("stdin").write_all(b"s3cret pass\n")?;
            c.wait_with_output()
        })
        .expect("authgate hash");
    let line = String::from_utf8(out.stdout).expect("utf8");
    assert!(line.starts_with("carol:$argon2id$"), "{line}");
    let gw = Gateway::start(
        &kit::basic_config(&upstream, ""),
        &[("users.htpasswd", &line)],
    );
    assert_eq!(
        kit::get(&gw.url("/"), Some(("carol", "s3cret pass")), &[]).0,
        200
    );
    assert_eq!(
        kit::get(&gw.url("/"), Some(("carol", "s3cret pas")), &[]).0,
        401
    );
    assert_eq!(upstream.count(), 1);
}

#[test]
fn missing_credentials_get_the_challenge_and_a_body_by_accept() {
    let upstream = Upstream::start();
    let file = kit::htpasswd(&["-B", "-C", "4"], "alice", "pw");
    let gw = Gateway::start(
        &kit::basic_config(&upstream, ""),
        &[("users.htpasswd", &file)],
    );

    let (status, h, body) = kit::get(&gw.url("/a"), None, &[("accept", "application/json")]);
    assert_eq!(status, 401);
    assert_eq!(
        h["www-authenticate"],
        "Basic realm=\"Test\", charset=\"UTF-8\""
    );
    assert_eq!(h["content-type"], "application/problem+json");
    assert_eq!(h["cache-control"], "no-store");
    let p: serde_json::Value = serde_json::from_str(&body).expect("problem json");
    assert_eq!(p["status"], 401);
    assert_eq!(p["reason"], "missing_credentials");
    assert_eq!(p["type"], "urn:authgate:reason:missing_credentials");
    assert_eq!(p["request_id"], h["x-request-id"].as_str());
    assert!(p["title"].is_string() && p["detail"].is_string(), "{p}");

    let (status, h, body) = kit::get(&gw.url("/a"), None, &[("accept", "text/html,*/*;q=0.8")]);
    assert_eq!(status, 401);
    assert!(h["content-type"].starts_with("text/html"), "{h:?}");
    assert!(body.contains("<h1>Authentication required</h1>"), "{body}");

    let (status, h, body) = kit::get(&gw.url("/a"), None, &[("accept", "*/*")]);
    assert_eq!(status, 401);
    assert!(h["content-type"].starts_with("text/plain"), "{h:?}");
    assert!(body.contains("reason: missing_credentials"), "{body}");
    upstream.assert_untouched("no credentials");
}

#[test]
fn route_realm_and_forbidden_user() {
    let upstream = Upstream::start();
    let mut file = kit::htpasswd(&["-B", "-C", "4"], "alice", "a");
    file += &kit::htpasswd(&["-B", "-C", "4"], "bob", "b");
    file += &kit::htpasswd(&["-B", "-C", "4"], "eve", "e");
    let config = format!(
        "[users]\nhtpasswd = \"{{dir}}/users.htpasswd\"\n[groups]\nadmins = [\"alice\"]\n\
         [[route]]\npath = \"/\"\nupstream = \"{}\"\nrealm = \"Example \\\"quoted\\\"\"\nauth = [\"basic\"]\n\
         allow = {{ groups = [\"admins\"], users = [\"bob\"] }}\n",
        upstream.url()
    );
    let gw = Gateway::start(&config, &[("users.htpasswd", &file)]);
    let (status, h, _) = kit::get(&gw.url("/"), None, &[]);
    assert_eq!(status, 401);
    // RFC 9110 §11.5 / §5.6.4: realm is a quoted-string with `"` escaped.
    assert_eq!(
        h["www-authenticate"],
        "Basic realm=\"Example \\\"quoted\\\"\", charset=\"UTF-8\""
    );
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "a")), &[]).0, 200);
    assert_eq!(kit::get(&gw.url("/"), Some(("bob", "b")), &[]).0, 200);
    assert_eq!(upstream.count(), 2);
    upstream.clear();
    let (status, h, body) = kit::get(
        &gw.url("/"),
        Some(("eve", "e")),
        &[("accept", "application/json")],
    );
    assert_eq!(status, 403, "{body}");
    assert!(
        !h.contains_key("www-authenticate"),
        "403 carries no challenge: {h:?}"
    );
    assert_eq!(h["cache-control"], "no-store");
    let p: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(p["reason"], "forbidden");
    let audit = gw.audit_for(&h["x-request-id"]);
    assert_eq!(audit["user"], "eve");
    assert_eq!(audit["outcome"], "deny");
    assert_eq!(audit["status"], 403);
    upstream.assert_untouched("forbidden user");
}

#[test]
fn audit_log_records_each_decision_without_secrets() {
    let upstream = Upstream::start();
    let file = kit::htpasswd(&["-B", "-C", "4"], "alice", "topsecret-pw");
    let gw = Gateway::start(
        &kit::basic_config(&upstream, ""),
        &[("users.htpasswd", &file)],
    );
    let (_, ok, _) = kit::get(&gw.url("/ok?q=1"), Some(("alice", "topsecret-pw")), &[]);
    let (_, wrong, _) = kit::get(&gw.url("/x"), Some(("alice", "guess-pw-123")), &[]);
    let (_, unknown, _) = kit::get(&gw.url("/x"), Some(("nobody", "guess-pw-456")), &[]);

    let a = gw.audit_for(&ok["x-request-id"]);
    assert_eq!(a["outcome"], "allow");
    assert_eq!(a["status"], 200);
    assert_eq!(a["user"], "alice");
    assert_eq!(a["scheme"], "basic");
    assert_eq!(a["method"], "GET");
    assert_eq!(a["path"], "/ok");
    assert_eq!(a["route"], "/");
    assert_eq!(a["client"], "127.0.0.1");
    assert!(
        a["latency_ms"].as_f64().is_some() && a["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{a}"
    );

    let w = gw.audit_for(&wrong["x-request-id"]);
    assert_eq!(
        (w["reason"].as_str(), w["detail"].as_str()),
        (Some("invalid_credentials"), Some("wrong_password"))
    );
    let u = gw.audit_for(&unknown["x-request-id"]);
    assert_eq!(
        (u["reason"].as_str(), u["detail"].as_str()),
        (Some("invalid_credentials"), Some("unknown_user"))
    );
    assert_eq!(u["user"], "nobody");

    let all: String = gw.audit().iter().map(|r| r.to_string()).collect();
    let stderr = gw.stderr();
    for secret in ["topsecret-pw", "guess-pw-123", "guess-pw-456", "YWxpY2U6"] {
        assert!(
            !all.contains(secret) && !stderr.contains(secret),
            "`{secret}` leaked into the logs"
        );
    }
}

#[test]
fn a_wrong_password_never_passes_even_after_a_right_one_is_cached() {
    let upstream = Upstream::start();
    let file = kit::htpasswd(&["-B", "-C", "4"], "alice", "right");
    let gw = Gateway::start(
        &kit::basic_config(&upstream, ""),
        &[("users.htpasswd", &file)],
    );
    for round in 0..3 {
        assert_eq!(
            kit::get(&gw.url("/"), Some(("alice", "right")), &[]).0,
            200,
            "round {round}"
        );
        assert_eq!(
            kit::get(&gw.url("/"), Some(("alice", "righ")), &[]).0,
            401,
            "round {round}"
        );
        assert_eq!(
            kit::get(&gw.url("/"), Some(("alice", "right\u{0}")), &[]).0,
            401,
            "round {round}"
        );
        assert_eq!(
            kit::get(&gw.url("/"), Some(("Alice", "right")), &[]).0,
            401,
            "round {round}"
        );
    }
    assert_eq!(upstream.count(), 3);
}

#[test]
fn concurrent_first_logins_all_succeed() {
    let upstream = Upstream::start();
    let file = kit::htpasswd(&["-B", "-C", "8"], "alice", "pw");
    let gw = Gateway::start(
        &kit::basic_config(&upstream, ""),
        &[("users.htpasswd", &file)],
    );
    let url = gw.url("/");
    let statuses: Vec<u16> = kit::rt().block_on(async {
        let c = kit::client();
        let reqs = (0..20).map(|_| {
            let c = c.clone();
            let url = url.clone();
            async move {
                c.get(&url)
                    .basic_auth("alice", Some("pw"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            }
        });
        futures_util::future::join_all(reqs).await
    });
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(upstream.count(), 20);
}
