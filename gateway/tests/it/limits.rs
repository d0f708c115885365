//! The open-file limit: `authgate serve` raises its soft limit to the hard one, and when even
//! that is too low for `max_connections`, it accepts fewer connections at once instead of
//! answering 502 for the ones it cannot open an upstream connection for (src/fd_limit.rs).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::kit::{self, Gateway, Upstream};

/// `(soft, hard)` "Max open files" of a running process, from /proc/PID/limits.
fn nofile_of(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files");
    let nums: Vec<u64> = line
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (nums[0], nums[1])
}

fn start(upstream: &Upstream, nofile: &str) -> Gateway {
    let config = kit::basic_config(upstream, "");
    let file = kit::htpasswd(&["-B", "-C", "4"], "alice", "right");
    Gateway::start_with_nofile(&config, &[("users.htpasswd", &file)], Some(nofile))
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_one() {
    let upstream = Upstream::start();
    // Lowering a hard limit needs no privilege; raising one does, so stay at or below ours.
    let hard = nofile_of(std::process::id()).1.min(4096);
    let gw = start(&upstream, &format!("256:{hard}"));
    assert_eq!(nofile_of(gw.pid()), (hard, hard));
    // 4,096 files (or fewer) are too few for the default 10,000 connections.
    let fit = (hard - 64) / 3;
    gw.wait_stderr(&format!("accepting at most {fit} connections at once"));
    assert_eq!(kit::get(&gw.url("/"), Some(("alice", "right")), &[]).0, 200);
}

#[test]
fn past_the_open_file_limit_clients_wait_for_a_connection_instead_of_getting_502() {
    let upstream = Upstream::start();
    // 160 files: (160 - 64) / 3 = 32 connections at once. Each proxied client connection
    // holds two descriptors (its own and its upstream's), so without the fit, 100 clients at
    // once ran out of descriptors and got 502s.
    let gw = start(&upstream, "160:160");
    gw.wait_stderr("accepting at most 32 connections at once");
    let auth = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode("alice:right")
    };
    let request = format!(
        "GET /n HTTP/1.1\r\nHost: app\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    );
    // All 100 connect and send before any answer is read, so they are in flight together.
    let mut clients: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(gw.addr).expect("connect");
            s.write_all(request.as_bytes()).expect("write");
            s
        })
        .collect();
    let mut statuses = Vec::new();
    for s in &mut clients {
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        let status: u16 = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        statuses.push(status);
    }
    assert!(
        statuses.iter().all(|&s| s == 200),
        "statuses: {statuses:?}\nstderr:\n{}",
        gw.stderr()
    );
    assert_eq!(upstream.count(), 100);
    assert!(
        !gw.stderr().contains("Too many open files"),
        "{}",
        gw.stderr()
    );
}
