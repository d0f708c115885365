//! Real clients against the real binary: curl, Python `requests`, headless Chromium.

use std::process::Command;

use crate::kit::{self, Gateway, Upstream};

fn protected() -> (Upstream, Gateway) {
    let upstream = Upstream::start();
    let file = kit::htpasswd(&["-B", "-C", "4"], "alice", "wonder land");
    let gw = Gateway::start(
        &kit::basic_config(&upstream, ""),
        &[("users.htpasswd", &file)],
    );
    (upstream, gw)
}

#[test]
fn curl_gets_401_with_challenge_then_200_with_credentials() {
    let (upstream, gw) = protected();
    let out = Command::new("curl")
        .args(["-si", &gw.url("/hello")])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 401"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"test\", charset=\"utf-8\""),
        "{text}"
    );
    upstream.assert_untouched("curl without credentials");

    let out = Command::new("curl")
        .args([
            "-s",
            "-w",
            "\n%{http_code}",
            "-u",
            "alice:wonder land",
            &gw.url("/hello"),
        ])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n200") && text.contains("upstream: /hello"),
        "{text}"
    );
    // curl --anyauth meets the challenge first, then answers it.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--anyauth",
            "-u",
            "alice:wonder land",
            &gw.url("/x"),
        ])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
    // HTTP/2 over cleartext with prior knowledge.
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            "--http2-prior-knowledge",
            "-u",
            "alice:wonder land",
            &gw.url("/h2"),
        ])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 200");
    assert_eq!(upstream.count(), 3);
}

#[test]
fn python_requests_with_http_basic_auth() {
    let (upstream, gw) = protected();
    let script = r#"
import sys, json, requests
from requests.auth import HTTPBasicAuth
url = sys.argv[1]
r0 = requests.get(url, timeout=10)
r1 = requests.get(url, auth=HTTPBasicAuth("alice", "wonder land"), timeout=10)
r2 = requests.get(url, auth=HTTPBasicAuth("alice", "wrong"), headers={"Accept": "application/json"}, timeout=10)
print(json.dumps({"s0": r0.status_code, "c0": r0.headers.get("WWW-Authenticate"),
                  "s1": r1.status_code, "b1": r1.text,
                  "s2": r2.status_code, "p2": r2.json()}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, &gw.url("/py")])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["s0"], 401, "{v}");
    assert_eq!(v["c0"], "Basic realm=\"Test\", charset=\"UTF-8\"");
    assert_eq!(v["s1"], 200);
    assert_eq!(v["b1"], "upstream: /py");
    assert_eq!(v["s2"], 401);
    assert_eq!(v["p2"]["reason"], "invalid_credentials");
    assert_eq!(upstream.count(), 1);
}

/// Runs gateway/tests/browser/basic.mjs (playwright-core driving Debian's Chromium).
fn browser(
    url: &str,
    creds: Option<(&str, &str)>,
    shot: Option<&std::path::Path>,
) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/basic.mjs");
    let mut cmd = Command::new("node");
    cmd.arg(script).arg(url);
    if let Some((u, p)) = creds {
        cmd.args([u, p]);
    } else {
        cmd.args(["", ""]);
    }
    if let Some(s) = shot {
        cmd.arg(s);
    }
    let out = cmd.output().expect("node");
    assert!(
        out.status.success(),
        "browser failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(out.stdout.trim_ascii()).expect("browser json")
}

#[test]
fn chromium_meets_the_challenge_and_lands_on_the_page() {
    let (upstream, gw) = protected();
    // Without credentials the browser shows authgate's HTML page for the 401.
    let v = browser(&gw.url("/app"), None, None);
    assert_eq!(v["status"], 401, "{v}");
    assert!(
        v["text"]
            .as_str()
            .unwrap_or("")
            .contains("Authentication required"),
        "{v}"
    );
    upstream.assert_untouched("browser without credentials");
    // Given the credentials, it answers the challenge and ends up on the page.
    let v = browser(&gw.url("/app"), Some(("alice", "wonder land")), None);
    assert_eq!(v["status"], 200, "{v}");
    assert_eq!(v["text"], "upstream: /app");
    // Chromium parsed authgate's challenge: Basic, with the route's realm.
    assert_eq!(
        v["challenges"][0]["scheme"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("basic"),
        "{v}"
    );
    assert_eq!(v["challenges"][0]["realm"], "Test", "{v}");
    let seen = upstream.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|s| s.header("x-authgate-user") == Some("alice")),
        "{seen:#?}"
    );
    // The first navigation carried no credentials: the browser acted on the challenge.
    let audit = gw.audit();
    assert!(
        audit.iter().any(|r| r["reason"] == "missing_credentials"),
        "{audit:#?}"
    );
    // Wrong credentials: the browser gets 401 again (it does not loop forever).
    let v = browser(&gw.url("/app"), Some(("alice", "nope")), None);
    assert_eq!(v["status"], 401, "{v}");
}
