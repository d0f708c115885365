//! The admin dashboard, opened in real headless Chromium: the chart renders from real
//! denials, and the unban button lifts a real ban.

use std::process::Command;

use crate::kit::{self, Gateway, Upstream};

fn start() -> (Upstream, Gateway) {
    let upstream = Upstream::start();
    let config = kit::basic_config(
        &upstream,
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"\nusers = [\"root\"]\n[lockout]\npair_threshold = 3",
    );
    let mut users = kit::htpasswd(&["-B", "-C", "4"], "alice", "right");
    users += &kit::htpasswd(&["-B", "-C", "4"], "root", "admin-pw");
    let gw = Gateway::start(&config, &[("users.htpasswd", &users)]);
    (upstream, gw)
}

#[test]
fn the_dashboard_needs_an_admin_and_csrf_header() {
    let (_upstream, gw) = start();
    let admin = gw.admin.expect("admin listener");
    let url = format!("http://{admin}/dashboard");
    let (status, h, _) = kit::get(&url, None, &[]);
    assert_eq!(status, 401);
    assert_eq!(
        h["www-authenticate"],
        "Basic realm=\"authgate admin\", charset=\"UTF-8\""
    );
    assert_eq!(
        kit::get(&url, Some(("alice", "right")), &[]).0,
        403,
        "not an admin"
    );
    assert_eq!(kit::get(&url, Some(("root", "wrong")), &[]).0, 401);
    let (status, h, body) = kit::get(&url, Some(("root", "admin-pw")), &[]);
    assert_eq!(status, 200);
    assert!(
        h["content-type"].starts_with("text/html") && body.contains("drawChart"),
        "{body}"
    );
    // The admin API explains a decision by request id, in plain words.
    let (status, h, _) = kit::get(&gw.url("/x"), None, &[]);
    assert_eq!(status, 401);
    let explain = format!("http://{admin}/api/explain/{}", h["x-request-id"]);
    assert_eq!(kit::get(&explain, None, &[]).0, 401);
    let (status, _, text) = kit::get(&explain, Some(("root", "admin-pw")), &[]);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("no Authorization header was sent") && text.contains("missing_credentials"),
        "{text}"
    );
    let (status, _, _) = kit::get(
        &format!("http://{admin}/api/explain/nope"),
        Some(("root", "admin-pw")),
        &[],
    );
    assert_eq!(status, 404);
    // POST without the CSRF header is refused.
    let status = kit::rt().block_on(async {
        kit::client()
            .post(format!("http://{admin}/api/unban"))
            .basic_auth("root", Some("admin-pw"))
            .body(r#"{"kind":"client","client":"127.0.0.1"}"#)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    });
    assert_eq!(status, 403);
}

#[test]
fn chromium_renders_the_chart_and_unbans() {
    let (upstream, gw) = start();
    let admin = gw.admin.expect("admin listener");
    // Real denials: a missing credential, wrong passwords until a ban, then the ban itself.
    assert_eq!(kit::get(&gw.url("/"), None, &[]).0, 401);
    for _ in 0..3 {
        assert_eq!(kit::get(&gw.url("/"), Some(("alice", "wrong")), &[]).0, 401);
    }
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "right")), &[]).0, 429);
    upstream.assert_untouched("denied requests");

    let shot = gw.path("dashboard.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(format!("http://{admin}/dashboard"))
        .args(["root", "admin-pw"])
        .arg(&shot)
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "browser failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).expect("json");
    assert!(
        v["rects"].as_u64().unwrap_or(0) >= 2,
        "the chart has bars for two reasons: {v}"
    );
    let reasons = v["reasons"].to_string();
    assert!(
        reasons.contains("invalid_credentials") && reasons.contains("too_many_failures"),
        "{v}"
    );
    assert_eq!(v["bansBefore"], 1, "{v}");
    assert_eq!(v["bansAfter"], 0, "{v}");
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 10_000)
            .unwrap_or(false),
        "no screenshot"
    );
    if let Ok(dir) = std::env::var("AUTHGATE_SCREENSHOT_DIR") {
        let _ = std::fs::copy(&shot, std::path::Path::new(&dir).join("dashboard.png"));
    }
    // The ban is really gone: alice gets in again.
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "right")), &[]).0, 200);
}
