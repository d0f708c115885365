//! Real servers for the tests (nginx, Caddy, Apache httpd), each from a generated config in
//! its own temp dir on free loopback ports, killed on drop.
//!
//! Ports are found by binding port 0 and closing it, so another test can take one before the
//! server binds it. Listening on the port therefore proves nothing (it may be the other
//! test's server): a server counts as started only once it has written its pid file, which
//! nginx, Caddy and httpd all do after binding their sockets, and the pid in it is the child's.
//! A server that exits instead (address in use) is started again on new ports.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A started server.
pub struct Daemon {
    /// One per entry of the `ips` given to [`Daemon::start`], in order.
    pub addrs: Vec<SocketAddr>,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many times a server that lost its port race is started again.
const TRIES: usize = 3;

impl Daemon {
    /// Picks a free port on each of `ips`, calls `setup(dir, addrs)` for the command (which
    /// writes its config into `dir` and makes the server write its pid to `dir/pid_file`),
    /// and waits until the server has started. Its stdout and stderr go to `dir/stderr.log`.
    pub fn start(
        name: &str,
        pid_file: &str,
        ips: &[&str],
        setup: &dyn Fn(&Path, &[SocketAddr]) -> Command,
    ) -> Daemon {
        let mut last = String::new();
        for _ in 0..TRIES {
            match Self::try_start(name, pid_file, ips, setup) {
                Ok(d) => return d,
                Err(e) => last = e,
            }
        }
        panic!("{name} did not start:\n{last}");
    }

    fn try_start(
        name: &str,
        pid_file: &str,
        ips: &[&str],
        setup: &dyn Fn(&Path, &[SocketAddr]) -> Command,
    ) -> Result<Daemon, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let addrs: Vec<SocketAddr> = ips.iter().map(|ip| free_port(ip)).collect();
        let mut cmd = setup(dir.path(), &addrs);
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let mut d = Daemon { addrs, dir, child };
        d.wait_started(name, pid_file)?;
        Ok(d)
    }

    fn wait_started(&mut self, name: &str, pid_file: &str) -> Result<(), String> {
        let pid = self.child.id().to_string();
        let pid_path = self.dir.path().join(pid_file);
        let deadline = Instant::now() + Duration::from_secs(15);
        let listening =
            |a: &SocketAddr| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok();
        loop {
            let written = std::fs::read_to_string(&pid_path)
                .map(|s| s.trim() == pid)
                .unwrap_or(false);
            if written && self.addrs.iter().all(listening) {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{name} exited ({status}) before it started on {:?}; log:\n{}",
                    self.addrs,
                    self.log()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} not started on {:?} after 15 s; log:\n{}",
                    self.addrs,
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The first address.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// `http://` + the first address + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr())
    }

    /// What the server printed and logged (`stderr.log`, `error.log`).
    pub fn log(&self) -> String {
        ["stderr.log", "error.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.dir.path().join(f)).ok())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A port that was free on `ip` a moment ago.
pub fn free_port(ip: &str) -> SocketAddr {
    TcpListener::bind(format!("{ip}:0"))
        .and_then(|l| l.local_addr())
        .expect("bind")
}

/// A program: on PATH, or at one of Debian's paths; panics naming the package to install.
pub fn tool(name: &str, package: &str, fallbacks: &[&str]) -> String {
    let on_path = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|f| f.is_file())
    });
    if let Some(p) = on_path {
        return p.display().to_string();
    }
    fallbacks
        .iter()
        .find(|f| Path::new(f).is_file())
        .map(|f| (*f).to_string())
        .unwrap_or_else(|| panic!("`{name}` must be installed (Debian package `{package}`)"))
}

/// nginx in the foreground, one process, with `dir/nginx.conf`, relative paths under `dir`
/// and its error log in `dir/error.log`. The config must say `pid nginx.pid;` (or an
/// absolute path to it in `dir`).
pub fn nginx(dir: &Path) -> Command {
    let mut c = Command::new(tool("nginx", "nginx", &["/usr/sbin/nginx"]));
    c.arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .args(["-g", "daemon off; master_process off;"]);
    c
}

/// Caddy with `dir/Caddyfile`, its state under `dir`, its pid in `dir/caddy.pid`. The
/// Caddyfile should say `admin off` (the admin port is the same for every instance).
pub fn caddy(dir: &Path) -> Command {
    let mut c = Command::new(tool("caddy", "caddy", &["/usr/bin/caddy"]));
    c.args(["run", "--adapter", "caddyfile", "--config"])
        .arg(dir.join("Caddyfile"))
        .arg("--pidfile")
        .arg(dir.join("caddy.pid"))
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .current_dir(dir);
    c
}
