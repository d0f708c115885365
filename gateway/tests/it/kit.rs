//! The test kit: the real `authgate` binary on port 0 with a temp config, a real upstream that
//! records what it received, and helpers for real clients.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

/// One runtime for every test's background servers and async clients.
pub fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// A request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Every value of a header in `headers` (name compared case-insensitively), in order.
pub fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

impl Seen {
    /// All values of a header (case-insensitive name).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_values(&self.headers, name)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }
}

/// A real HTTP upstream on 127.0.0.1:0 that records every request and answers
/// `200 upstream: <target>`. Special paths: `/slow/...` waits 3 s before answering;
/// `/public-cache/...` answers with `Cache-Control: public, max-age=60`.
pub struct Upstream {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    _task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    pub fn start() -> Upstream {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let listener = rt()
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let s = seen.clone();
        let task = rt().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let s = s.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let s = s.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let target = parts
                                .uri
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            s.lock().expect("lock").push(Seen {
                                method: parts.method.to_string(),
                                target: target.clone(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (
                                            k.to_string(),
                                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                        )
                                    })
                                    .collect(),
                                body: body.to_vec(),
                            });
                            if target.starts_with("/slow/") {
                                tokio::time::sleep(Duration::from_secs(3)).await;
                            }
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(format!(
                                "upstream: {target}"
                            ))));
                            if target.starts_with("/public-cache/") {
                                resp.headers_mut().insert(
                                    "cache-control",
                                    "public, max-age=60".parse().expect("hv"),
                                );
                            }
                            resp.headers_mut()
                                .insert("x-upstream", "yes".parse().expect("hv"));
                            Ok::<_, std::convert::Infallible>(resp)
                        }
                    });
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            seen,
            _task: task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }

    pub fn clear(&self) {
        self.seen.lock().expect("lock").clear();
    }

    /// Panics, with what it saw, if the upstream received anything.
    #[track_caller]
    pub fn assert_untouched(&self, context: &str) {
        let seen = self.seen();
        assert!(
            seen.is_empty(),
            "{context}: the upstream must see no request, but saw {seen:#?}"
        );
    }
}

/// A running `authgate serve` on 127.0.0.1:0.
pub struct Gateway {
    pub addr: SocketAddr,
    /// The admin listener's address, when `[admin]` is configured.
    pub admin: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

/// The path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_authgate")
}

impl Gateway {
    /// Writes `files` (name -> content) and `config` into a temp dir and starts the gateway.
    /// In `config`, `{dir}` is replaced by the temp dir. `[server] listen` is added if absent.
    pub fn start(config: &str, files: &[(&str, &str)]) -> Gateway {
        Self::start_with_nofile(config, files, None)
    }

    /// [`Gateway::start`] under an open-file limit, `"SOFT:HARD"` (util-linux's `prlimit`).
    pub fn start_with_nofile(
        config: &str,
        files: &[(&str, &str)],
        nofile: Option<&str>,
    ) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, content) in files {
            let p = dir.path().join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).expect("mkdir");
            }
            std::fs::write(&p, content).expect("write file");
        }
        let mut config = config.replace("{dir}", &dir.path().display().to_string());
        if !config.contains("listen") {
            config = if config.contains("[server]") {
                config.replacen("[server]", "[server]\nlisten = \"127.0.0.1:0\"", 1)
            } else {
                format!("[server]\nlisten = \"127.0.0.1:0\"\n{config}")
            };
        }
        let cfg = dir.path().join("authgate.toml");
        std::fs::write(&cfg, &config).expect("write config");
        Self::spawn(dir, &cfg, nofile)
    }

    fn spawn(dir: tempfile::TempDir, cfg: &Path, nofile: Option<&str>) -> Gateway {
        // prlimit sets the limit and execs authgate, so the child's pid is authgate's.
        let mut cmd = match nofile {
            Some(limit) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--nofile={limit}")).arg("--").arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        // A file named `clock` among the files makes it the test clock: the seconds written
        // to it are added to authgate's time (see src/clock.rs).
        let clock = dir.path().join("clock");
        if clock.exists() {
            cmd.env("AUTHGATE_TEST_CLOCK_FILE", &clock);
        }
        let mut child = cmd
            .args(["serve", "--config"])
            .arg(cfg)
            .env("AUTHGATE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn authgate");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let admin: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        {
            let err = child.stderr.take().expect("stderr");
            let buf = stderr.clone();
            let admin_slot = admin.clone();
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix("authgate admin listening on ") {
                        if let Ok(a) = rest.trim().parse::<SocketAddr>() {
                            *admin_slot.lock().expect("lock") = Some(a);
                        }
                    }
                    if let Some(rest) = line.strip_prefix("authgate listening on ") {
                        if let (Some(t), Ok(a)) = (tx.take(), rest.trim().parse::<SocketAddr>()) {
                            let _ = t.send(a);
                        }
                    }
                    let mut b = buf.lock().expect("lock");
                    b.push_str(&line);
                    b.push('\n');
                }
            });
        }
        {
            let out = child.stdout.take().expect("stdout");
            let buf = stdout.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let mut b = buf.lock().expect("lock");
                    b.push_str(&line);
                    b.push('\n');
                }
            });
        }
        let addr = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "authgate did not start; stderr:\n{}",
                    stderr.lock().expect("lock")
                );
            }
        };
        let admin = *admin.lock().expect("lock");
        Gateway {
            addr,
            admin,
            dir,
            child,
            stdout,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Moves the test clock forward to `seconds` past real time (needs a `clock` file).
    pub fn set_clock(&self, seconds: u64) {
        std::fs::write(self.path("clock"), seconds.to_string()).expect("write clock");
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    /// Audit records written so far, parsed.
    pub fn audit(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lock()
            .expect("lock")
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (bounded) for the audit record of `request_id`.
    pub fn audit_for(&self, request_id: &str) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self
                .audit()
                .into_iter()
                .find(|r| r["request_id"] == request_id)
            {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no audit record for {request_id}; stdout:\n{}",
                self.stdout.lock().expect("lock")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until `needle` appears on stderr.
    pub fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self.stderr().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "`{needle}` never appeared on stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits (bounded) for the process to exit and returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An htpasswd line made by Apache's real `htpasswd` (`-n -b` plus `flags`, e.g. "-B").
pub fn htpasswd(flags: &[&str], user: &str, password: &str) -> String {
    let out = Command::new("htpasswd")
        .arg("-nb")
        .args(flags)
        .args([user, password])
        .output()
        .expect("htpasswd (Debian apache2-utils) must be installed");
    assert!(
        out.status.success(),
        "htpasswd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
        + "\n"
}

/// The response to a raw HTTP/1.1 request written as-is to a new connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Writes `request` bytes verbatim and reads one response (the server closes or sends
/// Content-Length). Bounded by a 10 s timeout.
pub fn raw(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(addr).expect("connect");
    raw_on(&mut s, request)
}

/// [`raw`] on a connection the caller keeps, for several requests in a row on it.
pub fn raw_on(s: &mut TcpStream, request: &[u8]) -> RawResponse {
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let started = std::time::Instant::now();
    let mut ended = String::new();
    loop {
        match s.read(&mut chunk) {
            Ok(0) => {
                ended = format!("closed by the server after {:?}", started.elapsed());
                break;
            }
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if let Some(done) = complete(&buf) {
                    buf.truncate(done);
                    break;
                }
            }
            Err(e) => {
                ended = format!("read error after {:?}: {e}", started.elapsed());
                break;
            }
        }
    }
    if buf.is_empty() {
        // Nothing came back: say how the exchange ended, for the failure message.
        return RawResponse {
            status: 0,
            head: format!("<no response: {ended}>"),
            body: String::new(),
        };
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// Length of a complete response in `buf`, if it is complete and has Content-Length.
fn complete(buf: &[u8]) -> Option<usize> {
    let text = String::from_utf8_lossy(buf);
    let end = text.find("\r\n\r\n")? + 4;
    let len: usize = text[..end].lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })?;
    (buf.len() >= end + len).then_some(end + len)
}

/// A reqwest client that never follows redirects.
/// A response's status, every header as (name, value) in order (values lossy UTF-8), and
/// its body as text.
pub async fn read(resp: reqwest::Response) -> (u16, Vec<(String, String)>, String) {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp.text().await.unwrap_or_default();
    (status, headers, body)
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// GET with optional basic credentials and extra headers; returns (status, headers, body).
pub fn get(
    url: &str,
    creds: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> (u16, BTreeMap<String, String>, String) {
    rt().block_on(async {
        let mut req = client().get(url);
        if let Some((u, p)) = creds {
            req = req.basic_auth(u, Some(p));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp.text().await.unwrap_or_default();
        (status, headers, body)
    })
}

/// Standard config: one protected upstream route at `/` plus `extra` TOML appended.
/// The value of an unlabelled metric, from the admin listener's `/metrics`.
pub fn metric(gw: &Gateway, name: &str) -> f64 {
    let text = metrics_text(gw);
    sample(&text, name).unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// [`metric`], or None while the metric has no sample (a decision counter appears with its
/// first decision).
pub fn metric_if_any(gw: &Gateway, name: &str) -> Option<f64> {
    sample(&metrics_text(gw), name)
}

fn metrics_text(gw: &Gateway) -> String {
    let admin = gw.admin.expect("admin listener");
    get(&format!("http://{admin}/metrics"), None, &[]).2
}

fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

pub fn basic_config(upstream: &Upstream, extra: &str) -> String {
    format!(
        "[users]\nhtpasswd = \"{{dir}}/users.htpasswd\"\n\n{extra}\n\n[[route]]\npath = \"/\"\nupstream = \"{}\"\nrealm = \"Test\"\nauth = [\"basic\"]\n",
        upstream.url()
    )
}
