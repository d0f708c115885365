//! Reloads, signals and timeouts of a running gateway.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::kit::{self, Gateway, Upstream};

#[test]
fn htpasswd_changes_are_picked_up_and_a_broken_file_keeps_the_old_one() {
    let upstream = Upstream::start();
    // The polling below fails many times before the reload lands: keep lockout out of it.
    let gw = Gateway::start(
        &kit::basic_config(&upstream, "[lockout]\nenabled = false"),
        &[(
            "users.htpasswd",
            &kit::htpasswd(&["-B", "-C", "4"], "alice", "old"),
        )],
    );
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "old")), &[]).0, 200);

    // A new password: the cached success for the old one must not survive the change.
    std::fs::write(
        gw.path("users.htpasswd"),
        kit::htpasswd(&["-B", "-C", "4"], "alice", "new"),
    )
    .expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    while kit::get(&gw.url("/"), Some(("alice", "new")), &[]).0 != 200 {
        assert!(
            Instant::now() < deadline,
            "the new password never took effect:\n{}",
            gw.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "old")), &[]).0, 401);

    // A broken file: the previous one stays in force and the log says why.
    std::fs::write(gw.path("users.htpasswd"), "alice:not-a-hash\n").expect("write");
    gw.wait_stderr("kept the previous htpasswd file");
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "new")), &[]).0, 200);
}

#[test]
fn sighup_reloads_without_dropping_connections() {
    let upstream = Upstream::start();
    let config = kit::basic_config(&upstream, "").replace(
        "htpasswd = \"{dir}/users.htpasswd\"",
        "htpasswd = \"{dir}/users.htpasswd\"\nwatch = false",
    );
    let gw = Gateway::start(
        &config,
        &[(
            "users.htpasswd",
            &kit::htpasswd(&["-B", "-C", "4"], "alice", "a"),
        )],
    );
    // One keep-alive connection across the reload.
    let mut conn = TcpStream::connect(gw.addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = |conn: &mut TcpStream, auth: &str| -> String {
        let req = format!("GET / HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n");
        conn.write_all(req.as_bytes()).expect("write");
        let mut buf = vec![0u8; 4096];
        let n = conn.read(&mut buf).expect("read");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    // bob:b
    let bob = "Ym9iOmI=";
    assert!(request(&mut conn, bob).starts_with("HTTP/1.1 401"));
    std::fs::write(
        gw.path("users.htpasswd"),
        kit::htpasswd(&["-B", "-C", "4"], "bob", "b"),
    )
    .expect("write");
    gw.signal("HUP");
    gw.wait_stderr("reloaded the htpasswd file");
    let r = request(&mut conn, bob);
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[test]
fn sigterm_lets_in_flight_requests_finish_then_exits() {
    let upstream = Upstream::start();
    let config = kit::basic_config(&upstream, "").replace("[[route]]\npath = \"/\"", "[[route]]\npath = \"/slow\"\nupstream = \"UP\"\nauth = \"none\"\n\n[[route]]\npath = \"/\"").replace("UP", &upstream.url());
    let mut gw = Gateway::start(
        &config,
        &[(
            "users.htpasswd",
            &kit::htpasswd(&["-B", "-C", "4"], "alice", "a"),
        )],
    );
    let url = gw.url("/slow/x");
    let slow = std::thread::spawn(move || kit::get(&url, None, &[]));
    // Wait until the upstream has the request, then ask the gateway to stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while upstream.count() == 0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    gw.signal("TERM");
    let (status, _, body) = slow.join().expect("join");
    assert_eq!(
        (status, body.as_str()),
        (200, "upstream: /slow/x"),
        "the in-flight request finished"
    );
    assert_eq!(
        gw.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        gw.stderr()
    );
    assert!(TcpStream::connect(gw.addr).is_err(), "no longer listening");
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let upstream = Upstream::start();
    let config = kit::basic_config(&upstream, "[server]\nheader_timeout = \"300ms\"");
    let gw = Gateway::start(
        &config,
        &[(
            "users.htpasswd",
            &kit::htpasswd(&["-B", "-C", "4"], "alice", "a"),
        )],
    );
    let mut conn = TcpStream::connect(gw.addr).expect("connect");
    conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = conn.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "the connection was not closed by the header timeout"
    );
    upstream.assert_untouched("slowloris");
}

#[test]
fn silent_and_idle_connections_are_closed_after_the_header_timeout() {
    let upstream = Upstream::start();
    let config = kit::basic_config(&upstream, "[server]\nheader_timeout = \"300ms\"");
    let gw = Gateway::start(
        &config,
        &[(
            "users.htpasswd",
            &kit::htpasswd(&["-B", "-C", "4"], "alice", "a"),
        )],
    );
    // A client that connects and sends nothing.
    let mut silent = TcpStream::connect(gw.addr).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = silent.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "a silent connection was kept open"
    );
    // A keep-alive connection that goes idle after one request.
    let mut idle = TcpStream::connect(gw.addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = idle.read_to_end(&mut buf);
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 401"));
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "an idle keep-alive connection was kept open"
    );
}

#[test]
fn a_request_still_running_when_the_shutdown_timeout_passes_is_logged_as_shutdown() {
    // An upstream that takes the request and never answers (for 10 s).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let upstream = listener.local_addr().expect("addr");
    let (got, seen) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = got.send(());
            std::thread::sleep(Duration::from_secs(10));
        }
    });
    let mut gw = Gateway::start(
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nshutdown_timeout = \"300ms\"\n\
             [[route]]\npath = \"/\"\nupstream = \"http://{upstream}\"\nauth = \"none\"\n"
        ),
        &[],
    );
    let mut conn = TcpStream::connect(gw.addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    conn.write_all(b"GET /held/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    seen.recv_timeout(Duration::from_secs(10))
        .expect("the upstream got the request");
    gw.signal("TERM");
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "no answer was possible: {}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(
        gw.wait_exit(Duration::from_secs(15)),
        Some(0),
        "{}",
        gw.stderr()
    );
    let records = gw.audit();
    let record = records
        .iter()
        .find(|r| r["path"] == "/held/1")
        .unwrap_or_else(|| panic!("no record of the cut-off request in {records:?}"));
    assert_eq!(record["reason"], "shutdown", "{record}");
    assert_eq!(record["status"], 503, "{record}");
    assert_eq!(record["outcome"], "deny", "{record}");
}
