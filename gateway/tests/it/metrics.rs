//! The admin listener's /metrics, parsed by the Prometheus project's own text-format parser
//! (Python `prometheus_client`).

use std::process::Command;

use crate::kit::{self, Gateway, Upstream};

/// Parses Prometheus text with prometheus_client and returns {"name{labels}": value}.
fn parse(text: &str) -> serde_json::Value {
    let script = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = {}
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        labels = ",".join(f'{k}={v}' for k, v in sorted(s.labels.items()))
        out[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(out))
"#;
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "the Prometheus parser refused the output: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn metrics_count_decisions_cache_hits_and_hashes() {
    let upstream = Upstream::start();
    let config = kit::basic_config(
        &upstream,
        "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\nlisten = \"127.0.0.1:0\"",
    );
    let gw = Gateway::start(
        &config,
        &[(
            "users.htpasswd",
            &kit::htpasswd(&["-B", "-C", "4"], "alice", "pw"),
        )],
    );
    let admin = gw.admin.expect("the admin listener's address on stderr");

    assert_eq!(kit::get(&gw.url("/"), None, &[]).0, 401);
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "pw")), &[]).0, 200);
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "pw")), &[]).0, 200);
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "bad")), &[]).0, 401);
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "bad")), &[]).0, 401);

    let (status, headers, text) = kit::get(&format!("http://{admin}/metrics"), None, &[]);
    assert_eq!(status, 200);
    assert!(
        headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    let m = parse(&text);
    let v = |k: &str| {
        m.get(k)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("no sample {k} in\n{text}"))
    };
    assert_eq!(
        v("authgate_decisions_total{outcome=allow,reason=,route=/}"),
        2.0
    );
    assert_eq!(
        v("authgate_decisions_total{outcome=deny,reason=missing_credentials,route=/}"),
        1.0
    );
    assert_eq!(
        v("authgate_decisions_total{outcome=deny,reason=invalid_credentials,route=/}"),
        2.0
    );
    // Two distinct (user, password) pairs: two hashes; the repeats were cache hits.
    assert_eq!(v("authgate_password_hashes_total{}"), 2.0);
    assert_eq!(v("authgate_verification_cache_hits_total{}"), 2.0);
    assert_eq!(v("authgate_verification_cache_misses_total{}"), 2.0);
    assert_eq!(
        v("authgate_authentication_duration_seconds_count{scheme=basic}"),
        4.0
    );
    assert_eq!(v("authgate_upstream_errors_total{kind=unavailable}"), 0.0);
    assert_eq!(v("authgate_upstream_errors_total{kind=busy}"), 0.0);
    // Two requests were proxied, each on a client connection of its own: their upstream
    // connection is back in the pool (or, if the second reused it, one).
    let (open, max) = (
        v("authgate_upstream_connections{}"),
        v("authgate_upstream_connections_max{}"),
    );
    assert!(
        (1.0..=2.0).contains(&open),
        "{open} upstream connections open"
    );
    assert!(max >= 2.0, "max {max}");
    // The audit log (stdout, read by the test) took every record.
    assert_eq!(
        v("authgate_audit_records_lost_total{cause=queue_full}"),
        0.0
    );
    assert_eq!(
        v("authgate_audit_records_lost_total{cause=write_error}"),
        0.0
    );

    let (status, _, _) = kit::get(&format!("http://{admin}/nope"), None, &[]);
    assert_eq!(status, 404);
}

#[cfg(target_os = "linux")]
#[test]
fn audit_records_the_output_refuses_are_counted_and_reported() {
    // /dev/full refuses every write with ENOSPC, as a full disk does.
    let upstream = Upstream::start();
    let config = kit::basic_config(
        &upstream,
        "[server]\nlisten = \"127.0.0.1:0\"\naudit_log = \"/dev/full\"\n[admin]\nlisten = \"127.0.0.1:0\"",
    );
    let gw = Gateway::start(
        &config,
        &[(
            "users.htpasswd",
            &kit::htpasswd(&["-B", "-C", "4"], "alice", "pw"),
        )],
    );
    // Requests are answered as ever: the log never holds one up.
    assert_eq!(kit::get(&gw.url("/"), None, &[]).0, 401);
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "pw")), &[]).0, 200);
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "nope")), &[]).0, 401);
    assert_eq!(
        upstream.count(),
        1,
        "only the allowed request reaches the upstream"
    );
    let lost = "authgate_audit_records_lost_total{cause=\"write_error\"}";
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while kit::metric(&gw, lost) < 3.0 {
        assert!(
            std::time::Instant::now() < until,
            "{lost} stayed at {}",
            kit::metric(&gw, lost)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(kit::metric(&gw, lost), 3.0);
    assert_eq!(
        kit::metric(
            &gw,
            "authgate_audit_records_lost_total{cause=\"queue_full\"}"
        ),
        0.0
    );
    // The admin is told on stderr, with the cause.
    gw.wait_stderr("audit log: cannot write");
    assert!(
        gw.stderr().contains("No space left on device"),
        "{}",
        gw.stderr()
    );
}

/// Waits (bounded) until the file at `path` has a line containing `needle`.
fn wait_for_line(path: &std::path::Path, needle: &str) -> String {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().any(|l| l.contains(needle)) {
            return text;
        }
        assert!(
            std::time::Instant::now() < until,
            "no line with {needle} in {}:\n{text}",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_rotated_audit_log_is_followed_to_the_new_file() {
    // logrotate's default: rename the file, let the program write a new one.
    let upstream = Upstream::start();
    let config = kit::basic_config(
        &upstream,
        "[server]\nlisten = \"127.0.0.1:0\"\naudit_log = \"{dir}/audit.log\"",
    );
    let gw = Gateway::start(
        &config,
        &[(
            "users.htpasswd",
            &kit::htpasswd(&["-B", "-C", "4"], "alice", "pw"),
        )],
    );
    let log = gw.path("audit.log");
    let rotated = gw.path("audit.log.1");
    let (status, h, _) = kit::get(&gw.url("/"), None, &[]);
    assert_eq!(status, 401);
    let first = h["x-request-id"].clone();
    wait_for_line(&log, &first);
    std::fs::rename(&log, &rotated).expect("rotate");

    // The writer notices within a second and writes to a new file at the path; what it
    // wrote before noticing is in the rotated file. Requests go on meanwhile, and every
    // one of them must be in one of the two files.
    let mut after = Vec::new();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, h, _) = kit::get(&gw.url("/later"), None, &[]);
        assert_eq!(status, 401);
        after.push(h["x-request-id"].clone());
        // Any of them: the writer writes a record a few ms after its answer.
        if std::fs::read_to_string(&log).is_ok_and(|t| after.iter().any(|id| t.contains(id))) {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "no new audit.log after the rotation"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // The last records reach a file within the writer's idle tick (50 ms).
    let last = after[after.len() - 1].clone();
    wait_for_line(&log, &last);
    let old = std::fs::read_to_string(&rotated).expect("rotated file");
    let new = std::fs::read_to_string(&log).expect("new file");
    assert!(old.contains(&first), "{old}");
    assert!(!new.contains(&first), "{new}");
    for id in &after {
        assert_eq!(
            usize::from(old.contains(id.as_str())) + usize::from(new.contains(id.as_str())),
            1,
            "{id} is not in exactly one of the two files"
        );
    }
    upstream.assert_untouched("every request was refused");
}
