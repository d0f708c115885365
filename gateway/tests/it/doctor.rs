//! `authgate doctor` (issue 8) against real servers: the real `authgate` binary, real nginx
//! (Debian's /usr/sbin/nginx) and a small real HTTP server for clock skew. Each scenario
//! produces one cause, and the doctor (run as a subprocess with `--json`) must name it.
//! Also: the published `WWW-Authenticate` parsing cases the doctor relies on.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authgate_proto::{parse_challenges, LintKind, Mode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use crate::daemon::{self, Daemon};
use crate::kit;

/// What one doctor run printed.
struct Run {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
}

impl Run {
    fn cause(&self) -> &str {
        self.json["verdict"]["cause"].as_str().unwrap_or("<none>")
    }

    /// Panics with the whole output unless the cause and exit code are as expected.
    #[track_caller]
    fn expect(&self, cause: &str, code: i32) {
        assert!(
            self.cause() == cause && self.code == code,
            "expected cause {cause} and exit {code}, got {} and exit {}\nstdout:\n{}\nstderr:\n{}",
            self.cause(),
            self.code,
            self.stdout,
            self.stderr
        );
    }
}

/// Runs `authgate doctor ARGS --json`, feeding `stdin` (the password) if given.
fn doctor(args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(kit::bin())
        .arg("doctor")
        .args(args)
        .arg("--json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn doctor");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(s) = stdin {
            input.write_all(s.as_bytes()).expect("write password");
        }
    }
    let out = child.wait_with_output().expect("doctor output");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    Run {
        code: out.status.code().unwrap_or(-1),
        json: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stdout,
        stderr,
    }
}

/// authgate with alice (allowed everywhere) and bob (not in `admins`, so 403 on /admin/).
fn gateway() -> (kit::Upstream, kit::Gateway) {
    let up = kit::Upstream::start();
    let users = kit::htpasswd(&["-B", "-C", "4"], "alice", "alice-password")
        + &kit::htpasswd(&["-B", "-C", "4"], "bob", "bob-password");
    let config = format!(
        "[users]\nhtpasswd = \"{{dir}}/users.htpasswd\"\n\n[groups]\nadmins = [\"alice\"]\n\n\
         [[route]]\npath = \"/admin/\"\nupstream = \"{up}\"\nrealm = \"Test\"\nauth = [\"basic\"]\nallow = {{ groups = [\"admins\"] }}\n\n\
         [[route]]\npath = \"/\"\nupstream = \"{up}\"\nrealm = \"Test\"\nauth = [\"basic\"]\n",
        up = up.url()
    );
    let gw = kit::Gateway::start(&config, &[("users.htpasswd", &users)]);
    (up, gw)
}

/// authgate's session routes answer API clients with a `Cookie` challenge naming the sign-in
/// form (draft-broyer-http-cookie-auth): the doctor must read it as "sign in with a
/// browser", not as a broken challenge, and authgate lists it after Basic.
#[test]
fn doctor_reads_authgates_sign_in_form_challenge() {
    let up = kit::Upstream::start();
    let users = kit::htpasswd(&["-B", "-C", "4"], "alice", "alice-password");
    let config = format!(
        "[users]\nhtpasswd = \"{{dir}}/users.htpasswd\"\n[store]\npath = \"{{dir}}/a.db\"\n\n\
         [[route]]\npath = \"/both/\"\nupstream = \"{up}\"\nrealm = \"Test\"\nauth = [\"session\", \"basic\"]\n\n\
         [[route]]\npath = \"/\"\nupstream = \"{up}\"\nrealm = \"Test\"\nauth = [\"session\"]\n",
        up = up.url()
    );
    let gw = kit::Gateway::start(&config, &[("users.htpasswd", &users)]);

    let r = doctor(&[&gw.url("/page")], None);
    r.expect("no_credentials", 1);
    let first = r.json["verdict"]["sentence"].as_str().unwrap_or_default();
    assert!(
        first.contains("browser session") && first.contains("/_authgate/signin"),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("unknown_scheme"), "{}", r.stdout);

    let r = doctor(&[&gw.url("/both/page")], None);
    r.expect("no_credentials", 1);
    assert_eq!(r.json["challenges"][0]["scheme"], "Basic", "{}", r.stdout);
    assert_eq!(r.json["challenges"][1]["scheme"], "Cookie", "{}", r.stdout);
    let r = doctor(
        &[&gw.url("/both/page"), "--user", "alice"],
        Some("alice-password\n"),
    );
    r.expect("ok", 0);
    assert_eq!(up.count(), 1, "only the last request reached the upstream");
}

#[test]
fn doctor_authgate_no_credentials() {
    let (_up, gw) = gateway();
    let r = doctor(&[&gw.url("/app")], None);
    r.expect("no_credentials", 1);
    assert_eq!(r.json["status"], 401);
    assert_eq!(r.json["challenges"][0]["scheme"], "Basic", "{}", r.stdout);
    assert!(
        r.stdout.contains("missing_credentials"),
        "the problem body's reason is evidence: {}",
        r.stdout
    );
}

#[test]
fn doctor_authgate_wrong_password_is_never_printed() {
    let (_up, gw) = gateway();
    let r = doctor(
        &[&gw.url("/app"), "--user", "alice"],
        Some("not-the-password\n"),
    );
    r.expect("wrong_credentials", 1);
    assert!(r.stdout.contains("invalid_credentials"), "{}", r.stdout);
    // Neither the password nor its base64 form appear anywhere.
    let b64 = base64::engine::general_purpose::STANDARD.encode("alice:not-the-password");
    for secret in ["not-the-password", b64.as_str()] {
        assert!(
            !r.stdout.contains(secret) && !r.stderr.contains(secret),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn doctor_authgate_right_password_is_ok() {
    let (_up, gw) = gateway();
    let r = doctor(
        &[&gw.url("/app"), "--user", "alice", "--password-stdin"],
        Some("alice-password\n"),
    );
    r.expect("ok", 0);
    assert_eq!(r.json["status"], 200);
}

#[test]
fn doctor_authgate_bearer_to_basic_route_is_scheme_mismatch() {
    let (_up, gw) = gateway();
    let r = doctor(&[&gw.url("/app"), "--bearer", "opaque-token-123"], None);
    r.expect("scheme_mismatch", 1);
    assert!(!r.stdout.contains("opaque-token-123"), "{}", r.stdout);
}

#[test]
fn doctor_authgate_forbidden() {
    let (_up, gw) = gateway();
    let r = doctor(
        &[&gw.url("/admin/x"), "--user", "bob"],
        Some("bob-password\n"),
    );
    r.expect("forbidden", 1);
    assert_eq!(r.json["status"], 403);
}

#[test]
fn doctor_user_with_colon_is_named() {
    let (_up, gw) = gateway();
    let r = doctor(&[&gw.url("/app"), "--user", "alice:x"], Some("y\n"));
    r.expect("user_contains_colon", 1);
}

#[test]
fn doctor_unreachable_port_exits_2() {
    // A port that was free a moment ago: bind, read, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port();
    let r = doctor(&[&format!("http://127.0.0.1:{port}/")], None);
    r.expect("unreachable", 2);
    assert_eq!(r.json["addresses"][0]["addresses"][0], "127.0.0.1");
}

#[test]
fn doctor_usage_errors_exit_2() {
    let r = doctor(&["ftp://example.com/"], None);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = doctor(&["http://127.0.0.1/", "--user", "a", "--bearer", "b"], None);
    assert_eq!(r.code, 2, "{}", r.stderr);
}

#[test]
fn doctor_https_nothing_listening_is_unreachable() {
    let port = daemon::free_port("127.0.0.1").port();
    let r = doctor(&[&format!("https://127.0.0.1:{port}/")], None);
    r.expect("unreachable", 2);
}

// ---- nginx ----------------------------------------------------------------------------

/// A real nginx on two loopback origins: 127.0.0.1:P1 (the scenarios) and 127.0.0.2:P2
/// (another origin that always answers 401 with a Basic challenge).
struct Nginx {
    daemon: Daemon,
}

impl Nginx {
    fn start() -> Nginx {
        Self::start_with(&[], &|_| String::new())
    }

    /// nginx also listening on a port of each of `extra_ips`, with `servers(addrs)` (more
    /// `server {}` blocks, given [P1, P2, the extra addresses...]) added.
    fn start_with(extra_ips: &[&str], servers: &dyn Fn(&[SocketAddr]) -> String) -> Nginx {
        let ips = [&["127.0.0.1", "127.0.0.2"][..], extra_ips].concat();
        let daemon = Daemon::start("nginx", "nginx.pid", &ips, &|dir, addrs| {
            let d = dir.display();
            let (one, two) = (addrs[0], addrs[1]);
            let servers = servers(addrs);
            let config = format!(
                r#"pid {d}/nginx.pid;
    events {{ worker_connections 64; }}
    http {{
        access_log off;
        client_body_temp_path {d}/body;
        proxy_temp_path {d}/proxy;
        fastcgi_temp_path {d}/fastcgi;
        uwsgi_temp_path {d}/uwsgi;
        scgi_temp_path {d}/scgi;
        server {{
            listen {one};
            location = /ok {{ return 200 "ok\n"; }}
            # nginx's `return 401` sends no challenge at all.
            location = /no-challenge {{ return 401; }}
            location = /unquoted {{
                add_header WWW-Authenticate 'Basic realm=unquoted' always;
                return 401;
            }}
            location = /elsewhere {{ return 302 http://{two}/private; }}
            location = /basic {{
                add_header WWW-Authenticate 'Basic realm="plain"' always;
                return 401;
            }}
            # What an authenticating proxy answers (RFC 9110 §15.5.8).
            location = /proxy {{
                add_header Proxy-Authenticate 'Basic realm="corp proxy"' always;
                return 407;
            }}
            location = /api/invalid {{
                add_header WWW-Authenticate 'Bearer realm="api", error="invalid_token"' always;
                return 401;
            }}
            location = /api/expired {{
                add_header WWW-Authenticate 'Bearer realm="api", error="invalid_token", error_description="The access token expired"' always;
                return 401;
            }}
            location = /api/audience {{
                add_header WWW-Authenticate 'Bearer realm="api", error="invalid_token", error_description="Invalid audience"' always;
                return 401;
            }}
        }}
        server {{
            listen {two};
            location / {{
                add_header WWW-Authenticate 'Basic realm="other", charset="UTF-8"' always;
                return 401;
            }}
        }}
    {servers}
    }}
    "#
            );
            std::fs::write(dir.join("nginx.conf"), &config).expect("write conf");
            daemon::nginx(dir)
        });
        Nginx { daemon }
    }

    /// The scenarios' origin, 127.0.0.1:P1.
    fn one(&self) -> SocketAddr {
        self.daemon.addrs[0]
    }

    fn url(&self, path: &str) -> String {
        self.daemon.url(path)
    }
}

#[test]
fn doctor_nginx_401_without_challenge_is_no_challenge() {
    let n = Nginx::start();
    let r = doctor(&[&n.url("/no-challenge")], None);
    r.expect("no_challenge", 1);
    assert_eq!(r.json["challenge_issues"][0]["code"], "no_challenge");
    assert!(
        r.json["verdict"]["sentence"]
            .as_str()
            .unwrap_or_default()
            .contains("RFC 9110 §15.5.2"),
        "{}",
        r.stdout
    );
}

#[test]
fn doctor_nginx_unquoted_realm_is_linted() {
    let n = Nginx::start();
    let r = doctor(&[&n.url("/unquoted")], None);
    r.expect("malformed_challenge", 1);
    let issues = r.json["challenge_issues"].as_array().expect("issues");
    assert!(
        issues.iter().any(|i| i["code"] == "unquoted_realm"
            && i["text"]
                .as_str()
                .unwrap_or_default()
                .contains("RFC 9110 §11.5")),
        "{}",
        r.stdout
    );
    assert!(
        r.json["verdict"]["sentence"]
            .as_str()
            .unwrap_or_default()
            .contains("realm"),
        "the first sentence names the realm problem: {}",
        r.stdout
    );
    assert_eq!(r.json["challenges"][0]["params"][0]["value"], "unquoted");
}

#[test]
fn doctor_nginx_cross_origin_redirect_drops_credentials() {
    let n = Nginx::start();
    let r = doctor(
        &[&n.url("/elsewhere"), "--user", "alice"],
        Some("secret-pw\n"),
    );
    r.expect("redirect_drops_credentials", 1);
    let hops = r.json["hops"].as_array().expect("hops");
    let with: Vec<&Value> = hops
        .iter()
        .filter(|h| h["attempt"] == "with credentials")
        .collect();
    assert_eq!(with.len(), 2, "{}", r.stdout);
    assert_eq!(with[0]["status"], 302);
    assert_eq!(with[0]["sent_credentials"], true);
    assert_eq!(with[1]["sent_credentials"], false, "{}", r.stdout);
    assert_eq!(with[1]["status"], 401);
    assert!(with[1]["notes"][0]
        .as_str()
        .unwrap_or_default()
        .contains("another origin"));
    // Without credentials, the redirect is still the cause: no client would send them.
    let r = doctor(&[&n.url("/elsewhere")], None);
    r.expect("redirect_drops_credentials", 1);
}

#[test]
fn doctor_nginx_ok_route() {
    let n = Nginx::start();
    doctor(&[&n.url("/ok")], None).expect("ok", 0);
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An unsigned-looking JWT with `claims` and a fake signature.
fn jwt(claims: &str) -> String {
    format!(
        "{}.{}.c2lnbmF0dXJlLW5vdC1wcmludGVk",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

#[test]
fn doctor_nginx_expired_jwt() {
    let n = Nginx::start();
    let token = jwt(&format!(
        r#"{{"sub":"alice","aud":"127.0.0.1","exp":{},"iat":{}}}"#,
        now() - 3600,
        now() - 7200
    ));
    let r = doctor(&[&n.url("/api/expired"), "--bearer", &token], None);
    r.expect("token_expired", 1);
    assert_eq!(r.json["token"]["claims"]["sub"], "alice", "{}", r.stdout);
    assert!(
        !r.stdout.contains("c2lnbmF0dXJlLW5vdC1wcmludGVk"),
        "the signature is never printed: {}",
        r.stdout
    );
}

#[test]
fn doctor_nginx_wrong_audience() {
    let n = Nginx::start();
    let token = jwt(&format!(
        r#"{{"sub":"alice","aud":"https://other.example","exp":{}}}"#,
        now() + 3600
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{token}\n")).expect("write token");
    let r = doctor(
        &[
            &n.url("/api/audience"),
            "--bearer",
            &format!("@{}", file.display()),
        ],
        None,
    );
    r.expect("wrong_audience", 1);
}

// ---- clock skew: a real server whose clock is 10 minutes ahead -------------------------

/// Answers every request with 401 `Bearer error="invalid_token"` and a `Date` `ahead`
/// seconds in the future, like a server whose clock is wrong.
fn skewed_server(ahead: u64) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut s, &mut buf);
            let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(ahead));
            let body = "token expired\n";
            let _ = write!(
                s,
                "HTTP/1.1 401 Unauthorized\r\nDate: {date}\r\nWWW-Authenticate: Bearer realm=\"api\", error=\"invalid_token\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn doctor_clock_skew_explains_refused_token() {
    let addr = skewed_server(600);
    // Valid for 5 more minutes by this machine's clock, expired by the server's.
    let token = jwt(&format!(r#"{{"sub":"alice","exp":{}}}"#, now() + 300));
    let r = doctor(&[&format!("http://{addr}/"), "--bearer", &token], None);
    r.expect("clock_skew", 1);
}

// ---- WWW-Authenticate parsing cases ---------------------------------------------------

/// Published `WWW-Authenticate` test cases (greenbytes "httpauth" suite by Julian Reschke)
/// that proto/src's unit tests do not already cover, read in the doctor's lenient mode.
#[test]
fn doctor_challenge_parser_published_cases() {
    let lenient = |v: &str| parse_challenges([v.as_bytes()], Mode::Lenient);
    // simplebasicsq: single quotes are not quotes; the realm is the token 'foo'.
    let p = lenient("Basic realm='foo'").expect("parse");
    assert_eq!(p.value[0].realm(), Some("'foo'"));
    // simplebasicpct: no percent-decoding.
    let p = lenient(r#"Basic realm="foo%20bar""#).expect("parse");
    assert_eq!(p.value[0].realm(), Some("foo%20bar"));
    // simplebasicrealmsqc2: escaped quotes inside.
    let p = lenient(r#"Basic realm="\"foo\"""#).expect("parse");
    assert_eq!(p.value[0].realm(), Some("\"foo\""));
    // simplebasicnewparam1: empty list elements between params.
    let p = lenient(r#"Basic realm="foo", bar="xyz",, a=b,,,c=d"#).expect("parse");
    assert_eq!(p.value.len(), 1);
    assert_eq!(p.value[0].realm(), Some("foo"));
    assert_eq!(p.value[0].get("c"), Some("d"));
    assert!(p.lints.iter().all(|l| l.kind == LintKind::EmptyListElement));
    // multibasicempty: a leading empty element.
    let p = lenient(r#",Basic realm="basic""#).expect("parse");
    assert_eq!(p.value[0].realm(), Some("basic"));
    // multibasicunknownnoparam / multibasicunknown2np: an unknown scheme without params,
    // before or after Basic.
    for v in [
        r#"Basic realm="basic", Newauth"#,
        r#"Newauth, Basic realm="basic""#,
    ] {
        let p = lenient(v).expect(v);
        assert_eq!(p.value.len(), 2, "{v}");
        let basic = p.value.iter().find(|c| c.is_scheme("Basic")).expect(v);
        assert_eq!(basic.realm(), Some("basic"), "{v}");
    }
    // multidisgscheme: `basic=foo` is a parameter of Newauth, not a Basic challenge.
    let p = lenient(r#"Newauth realm="Newauth Realm", basic=foo, Basic realm="Basic Realm""#)
        .expect("parse");
    assert_eq!(p.value.len(), 2);
    assert_eq!(p.value[0].get("basic"), Some("foo"));
    assert_eq!(p.value[1].realm(), Some("Basic Realm"));
    // disguisedrealm / disguisedrealm2: only the real `realm` parameter counts.
    let p = lenient(r#"Basic foo="realm=nottherealm", realm="basic""#).expect("parse");
    assert_eq!(p.value[0].realm(), Some("basic"));
    let p = lenient(r#"Basic nottherealm="nottherealm", realm="basic""#).expect("parse");
    assert_eq!(p.value[0].realm(), Some("basic"));
    // parametersnotrequired: two schemes, no parameters.
    let p = lenient("A, B").expect("parse");
    assert_eq!(p.value.len(), 2);
    // Several fields, several schemes each (multibasicunknown2mf).
    let fields: [&[u8]; 2] = [br#"Newauth realm="newauth""#, br#"Basic realm="basic""#];
    let p = parse_challenges(fields, Mode::Lenient).expect("parse");
    assert_eq!(p.value[1].realm(), Some("basic"));
    // simplebasic2realms: the first realm wins in lenient mode, and it is linted.
    let p = lenient(r#"Basic realm="foo", realm="bar""#).expect("parse");
    assert_eq!(p.value[0].realm(), Some("foo"));
    assert!(matches!(p.lints[0].kind, LintKind::DuplicateParam { .. }));
    // missingquote and simplebasiccomma2 cannot be read.
    assert!(lenient(r#"Basic realm="basic"#).is_err());
    assert!(lenient(r#"Basic, realm="foo""#).is_err());
}

// ---- stale cookie: a real server that refuses an old session cookie ---------------------

/// Answers 401 to a request carrying `session=old`, 200 to anything else (a server whose
/// session store forgot the session while the browser kept the cookie).
fn session_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let n = std::io::Read::read(&mut s, &mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            let stale = head.contains("\r\ncookie: session=old");
            let (status, extra) = if stale {
                (
                    "401 Unauthorized",
                    "WWW-Authenticate: Basic realm=\"app\"\r\n",
                )
            } else {
                ("200 OK", "")
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    addr
}

#[test]
fn doctor_stale_cookie_from_jar() {
    let addr = session_server();
    let dir = tempfile::tempdir().expect("tempdir");
    let jar = dir.path().join("cookies.txt");
    std::fs::write(
        &jar,
        "# Netscape HTTP Cookie File\n#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\tsession\told\n",
    )
    .expect("write jar");
    let r = doctor(
        &[
            &format!("http://{addr}/"),
            "--cookie-jar",
            &jar.display().to_string(),
        ],
        None,
    );
    r.expect("stale_cookie", 1);
    assert!(!r.stdout.contains("session=old"), "{}", r.stdout);
}

#[test]
fn doctor_nginx_not_yet_valid_jwt() {
    let n = Nginx::start();
    let token = jwt(&format!(
        r#"{{"sub":"alice","aud":"127.0.0.1","nbf":{},"exp":{}}}"#,
        now() + 3600,
        now() + 7200
    ));
    let r = doctor(&[&n.url("/api/invalid"), "--bearer", &token], None);
    r.expect("token_not_yet_valid", 1);
    assert!(
        r.json["evidence"].as_array().is_some_and(|e| e
            .iter()
            .any(|l| l.as_str().unwrap_or_default().contains("nbf"))),
        "{}",
        r.stdout
    );
}

// ---- https: real nginx with a certificate from a CA made at test time -------------------

/// A CA and a server certificate for 127.0.0.1 only (not for `localhost`), made with the `openssl` CLI.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("the openssl CLI must be installed (Debian package `openssl`)");
            assert!(
                out.status.success(),
                "openssl {args:?} failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.path().join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write ext");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=doctor test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat());
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        Pki { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `expired.pem`: a certificate for 127.0.0.1 (key `server.key`) from the same CA, valid
    /// from 2020-01-01 to 2021-01-01. `openssl x509 -req` in OpenSSL 3.0 cannot set past
    /// dates; `openssl ca` can, with a minimal CA directory.
    fn expired(&self) -> String {
        let dir = self.dir.path();
        std::fs::write(dir.join("index.txt"), "").expect("index");
        std::fs::write(dir.join("serial"), "1000\n").expect("serial");
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = test\n\n[test]\ndatabase = index.txt\nnew_certs_dir = .\n\
             serial = serial\ncertificate = ca.pem\nprivate_key = ca.key\ndefault_md = sha256\n\
             policy = any\nunique_subject = no\n\n[any]\ncommonName = supplied\n",
        )
        .expect("write ca.cnf");
        let out = Command::new("openssl")
            .args([
                "ca",
                "-batch",
                "-notext",
                "-config",
                "ca.cnf",
                "-in",
                "server.csr",
                "-out",
                "expired.pem",
                "-startdate",
                "20200101000000Z",
                "-enddate",
                "20210101000000Z",
                "-extfile",
                "ext.cnf",
            ])
            .current_dir(dir)
            .output()
            .expect("openssl ca");
        assert!(
            out.status.success(),
            "openssl ca failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.path("expired.pem")
    }
}

#[test]
fn doctor_https_to_http_redirect_is_https_downgrade() {
    let pki = Pki::new();
    let (cert, key) = (pki.path("server.pem"), pki.path("server.key"));
    let n = Nginx::start_with(&["127.0.0.1"], &|addrs| {
        let (one, tls) = (addrs[0], addrs[2]);
        format!(
            r#"    server {{
        listen {tls} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location = /ok {{ return 200 "ok\n"; }}
        # A proxy that builds Location from its plain-http upstream's view.
        location = /down {{ return 302 http://{one}/basic; }}
    }}"#
        )
    });
    let tls = n.daemon.addrs[2];
    let cacert = pki.path("ca.pem");
    let down = format!("https://{tls}/down");

    // Trusted through --cacert: the certificate is fine, the redirect is the cause.
    let r = doctor(
        &[&down, "--cacert", &cacert, "--user", "alice"],
        Some("pw\n"),
    );
    r.expect("https_downgrade", 1);
    let with: Vec<&Value> = r.json["hops"]
        .as_array()
        .expect("hops")
        .iter()
        .filter(|h| h["attempt"] == "with credentials")
        .collect();
    assert_eq!(with.len(), 2, "{}", r.stdout);
    assert_eq!(with[0]["status"], 302, "{}", r.stdout);
    assert_eq!(with[1]["status"], 401, "{}", r.stdout);
    assert_eq!(r.json["insecure"], false);
    doctor(&[&format!("https://{tls}/ok"), "--cacert", &cacert], None).expect("ok", 0);

    // The same server without --cacert: its issuer is unknown to this machine.
    let r = doctor(&[&down], None);
    r.expect("tls_error", 2);
    assert_eq!(
        r.json["hops"][0]["tls_problem"], "unknown_issuer",
        "{}",
        r.stdout
    );
    assert!(
        r.json["verdict"]["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("--cacert"),
        "{}",
        r.stdout
    );

    // --insecure goes on, and says first what verification would have refused.
    let r = doctor(&[&down, "--insecure"], None);
    r.expect("https_downgrade", 1);
    assert_eq!(r.json["insecure"], true);
    let first = r.json["evidence"][0].as_str().unwrap_or_default();
    assert!(
        first.starts_with("WARNING: --insecure") && first.contains("not issued by an authority"),
        "{}",
        r.stdout
    );

    // The certificate names 127.0.0.1, not localhost.
    let r = doctor(
        &[
            &format!("https://localhost:{}/ok", tls.port()),
            "--cacert",
            &cacert,
        ],
        None,
    );
    r.expect("tls_error", 2);
    assert_eq!(
        r.json["hops"][0]["tls_problem"], "name_mismatch",
        "{}",
        r.stdout
    );

    // https:// to a plain-http port.
    let r = doctor(&[&format!("https://{}/ok", n.one())], None);
    r.expect("tls_error", 2);
    assert_eq!(r.json["hops"][0]["tls_problem"], "not_tls", "{}", r.stdout);
}

// ---- Caddy and Apache httpd ------------------------------------------------------------

/// Debian's caddy 2.6 with `basicauth` on /private/* (alice / alice-password, bcrypt cost
/// 4 so that each check is quick).
fn caddy() -> Daemon {
    let line = kit::htpasswd(&["-B", "-C", "4"], "alice", "alice-password");
    let hash = line
        .trim()
        .split_once(':')
        .map(|(_, h)| h.to_owned())
        .expect("hash");
    Daemon::start("caddy", "caddy.pid", &["127.0.0.1"], &|dir, addrs| {
        let addr = addrs[0];
        let config = format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\n\
             http://{addr} {{\n\tbasicauth /private/* {{\n\t\talice {hash}\n\t}}\n\trespond \"ok\" 200\n}}\n"
        );
        std::fs::write(dir.join("Caddyfile"), &config).expect("write Caddyfile");
        daemon::caddy(dir)
    })
}

#[test]
fn doctor_caddy_basicauth_wrong_and_missing_credentials() {
    let c = caddy();
    let url = c.url("/private/report");
    let r = doctor(&[&url, "--user", "alice"], Some("wrong-password\n"));
    r.expect("wrong_credentials", 1);
    assert_eq!(r.json["challenges"][0]["scheme"], "Basic", "{}", r.stdout);
    assert!(!r.stdout.contains("wrong-password"), "{}", r.stdout);
    let r = doctor(&[&url], None);
    r.expect("no_credentials", 1);
    let r = doctor(&[&url, "--user", "alice"], Some("alice-password\n"));
    r.expect("ok", 0);
}

fn md5_hex(s: &str) -> String {
    use md5::Digest as _;
    md5::Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Debian's Apache httpd 2.4 (`apache2`, one process with -X) with `mod_auth_digest`:
/// /private/ and /fast/ need Digest for alice / alice-password in the realm "private area";
/// /fast/ expires nonces after 1 s (AuthDigestNonceLifetime) to show `stale=true`;
/// /team/ is realm "team" (alice) and /team/admin/ realm "admins" (bob / bob-password).
fn apache() -> Daemon {
    Daemon::start("apache2", "httpd.pid", &["127.0.0.1"], &|dir, addrs| {
        let addr = addrs[0];
        let d = dir.display();
        let realm = "private area";
        let ha1 = md5_hex(&format!("alice:{realm}:alice-password"));
        std::fs::write(dir.join("htdigest"), format!("alice:{realm}:{ha1}\n")).expect("htdigest");
        // Two more protection spaces (issue 8, wrong realm): /team/ in realm "team" for
        // alice, and inside it /team/admin/ in realm "admins" for bob only.
        for (file, user, realm) in [("team", "alice", "team"), ("admins", "bob", "admins")] {
            let ha1 = md5_hex(&format!("{user}:{realm}:{user}-password"));
            std::fs::write(dir.join(file), format!("{user}:{realm}:{ha1}\n")).expect("htdigest");
        }
        std::fs::create_dir_all(dir.join("www")).expect("mkdir");
        std::fs::write(dir.join("www").join("index.html"), "public\n").expect("page");
        for sub in ["private", "fast", "team", "team/admin"] {
            std::fs::create_dir_all(dir.join("www").join(sub)).expect("mkdir");
            std::fs::write(dir.join("www").join(sub).join("index.html"), "ok\n").expect("page");
        }
        let modules = "/usr/lib/apache2/modules";
        let load = [
            ("mpm_event", "mod_mpm_event"),
            ("authn_core", "mod_authn_core"),
            ("authn_file", "mod_authn_file"),
            ("authz_core", "mod_authz_core"),
            ("authz_user", "mod_authz_user"),
            ("auth_digest", "mod_auth_digest"),
            ("dir", "mod_dir"),
        ]
        .iter()
        .map(|(m, f)| format!("LoadModule {m}_module {modules}/{f}.so\n"))
        .collect::<String>();
        let digest = format!(
            "AuthType Digest\n  AuthName \"{realm}\"\n  AuthDigestProvider file\n  \
             AuthUserFile \"{d}/htdigest\"\n  Require valid-user\n"
        );
        let space = |realm: &str, file: &str| {
            format!(
                "AuthType Digest\n  AuthName \"{realm}\"\n  AuthDigestProvider file\n  \
                 AuthUserFile \"{d}/{file}\"\n  Require valid-user\n"
            )
        };
        let (team, admins) = (space("team", "team"), space("admins", "admins"));
        let config = format!(
            "ServerRoot \"{d}\"\nServerName 127.0.0.1\nListen {addr}\nPidFile \"{d}/httpd.pid\"\n\
             DefaultRuntimeDir \"{d}\"\nErrorLog \"{d}/error.log\"\nLogLevel info\n{load}\
             DocumentRoot \"{d}/www\"\n<Directory \"{d}/www\">\n  Require all granted\n</Directory>\n\
             <Location \"/private/\">\n  {digest}</Location>\n\
             <Location \"/fast/\">\n  {digest}  AuthDigestNonceLifetime 1\n</Location>\n\
             <Location \"/team/\">\n  {team}</Location>\n\
             <Location \"/team/admin/\">\n  {admins}</Location>\n"
        );
        std::fs::write(dir.join("httpd.conf"), &config).expect("write httpd.conf");
        let bin = ["/usr/sbin/apache2", "/usr/sbin/httpd"]
            .into_iter()
            .find(|p| Path::new(p).is_file())
            .expect("Apache httpd must be installed (Debian package `apache2`)");
        let mut c = Command::new(bin);
        c.arg("-X")
            .arg("-d")
            .arg(dir)
            .arg("-f")
            .arg(dir.join("httpd.conf"))
            .current_dir(dir);
        c
    })
}

#[test]
fn doctor_apache_digest_no_wrong_and_right_credentials() {
    let a = apache();
    let url = a.url("/private/index.html");
    let r = doctor(&[&url], None);
    r.expect("no_credentials", 1);
    assert_eq!(r.json["challenges"][0]["scheme"], "Digest", "{}", r.stdout);
    assert!(
        r.json["verdict"]["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("--user"),
        "{}",
        r.stdout
    );

    // --user answers the Digest challenge (Apache offers only MD5 with qop=auth).
    let r = doctor(&[&url, "--user", "alice"], Some("wrong-password\n"));
    r.expect("wrong_credentials", 1);
    assert_eq!(r.json["credentials"], "Digest", "{}", r.stdout);
    assert!(!r.stdout.contains("wrong-password"), "{}", r.stdout);

    let r = doctor(&[&url, "--user", "alice"], Some("alice-password\n"));
    r.expect("ok", 0);
}

/// Issue 8 "Digest stale nonce": a Digest header computed once (as copied from a browser's
/// request) and replayed after the nonce expired is answered 401 with `stale=true`; the
/// doctor says the password was right and the nonce only needs renewing.
#[test]
fn doctor_apache_digest_stale_nonce_is_harmless_renewal() {
    let a = apache();
    let path = "/fast/index.html";
    let first = kit::raw(
        a.addr(),
        format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            a.addr()
        )
        .as_bytes(),
    );
    let nonce = first
        .head
        .lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with("www-authenticate: digest")
        })
        .and_then(|l| l.split("nonce=\"").nth(1))
        .and_then(|n| n.split('"').next())
        .unwrap_or_else(|| panic!("no Digest nonce in:\n{}", first.head))
        .to_owned();
    // Apache's clock cannot be injected: wait out the 1 s nonce lifetime (bounded).
    std::thread::sleep(Duration::from_millis(1500));
    let realm = "private area";
    let (nc, cnonce) = ("00000001", "0a4f113b");
    let ha1 = md5_hex(&format!("alice:{realm}:alice-password"));
    let ha2 = md5_hex(&format!("GET:{path}"));
    let response = md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}"));
    let header = format!(
        "Authorization: Digest username=\"alice\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{path}\", \
         algorithm=MD5, response=\"{response}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\""
    );
    let r = doctor(&[&a.url(path), "-H", &header], None);
    r.expect("stale_nonce", 1);
    assert!(
        r.json["challenges"][0]["params"]
            .as_array()
            .is_some_and(|p| p
                .iter()
                .any(|p| p["name"] == "stale" && p["value"] == "true")),
        "Apache's challenge says stale=true: {}",
        r.stdout
    );
    assert!(!r.stdout.contains(&response), "{}", r.stdout);
    // A client that computes Digest per request (the doctor with --user) just works.
    let r = doctor(&[&a.url(path), "--user", "alice"], Some("alice-password\n"));
    r.expect("ok", 0);
}

/// Issue 8: the server's certificate expired; the verdict names the date it expired.
#[test]
fn doctor_https_expired_certificate_names_the_date() {
    let pki = Pki::new();
    let (cert, key) = (pki.expired(), pki.path("server.key"));
    let n = Nginx::start_with(&["127.0.0.1"], &|addrs| {
        let tls = addrs[2];
        format!(
            r#"    server {{
        listen {tls} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location = /ok {{ return 200 "ok\n"; }}
    }}"#
        )
    });
    let url = format!("https://{}/ok", n.daemon.addrs[2]);
    let r = doctor(&[&url, "--cacert", &pki.path("ca.pem")], None);
    r.expect("tls_error", 2);
    assert_eq!(r.json["hops"][0]["tls_problem"], "expired", "{}", r.stdout);
    for field in ["sentence", "fix"] {
        assert!(
            r.json["verdict"][field]
                .as_str()
                .unwrap_or_default()
                .contains("2021-01-01T00:00:00Z"),
            "the {field} names the expiry date: {}",
            r.stdout
        );
    }
}

/// Issue 8: a 407 is the proxy's question, read from Proxy-Authenticate, and answered
/// with the client's proxy settings, not the server's credentials.
#[test]
fn doctor_nginx_407_is_proxy_auth_required() {
    let n = Nginx::start();
    for (args, stdin) in [
        (vec![n.url("/proxy")], None),
        (
            vec![n.url("/proxy"), "--user".into(), "alice".into()],
            Some("pw\n"),
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = doctor(&args, stdin);
        r.expect("proxy_auth_required", 1);
        assert_eq!(r.json["status"], 407);
        assert_eq!(
            r.json["challenge_field"], "Proxy-Authenticate",
            "{}",
            r.stdout
        );
        assert_eq!(r.json["challenges"][0]["scheme"], "Basic", "{}", r.stdout);
        assert_eq!(
            r.json["challenges"][0]["params"][0]["value"], "corp proxy",
            "{}",
            r.stdout
        );
        let verdict = &r.json["verdict"];
        let (sentence, fix) = (
            verdict["sentence"].as_str().unwrap_or_default(),
            verdict["fix"].as_str().unwrap_or_default(),
        );
        assert!(
            sentence.contains("proxy") && sentence.contains("corp proxy"),
            "{}",
            r.stdout
        );
        assert!(
            fix.contains("--proxy-user") && fix.contains("http_proxy=http://NAME:PASSWORD@"),
            "{}",
            r.stdout
        );
        // Related URLs are tried only after a 401 to credentials.
        assert_eq!(r.json["probes"], serde_json::json!([]), "{}", r.stdout);
    }
}

// ---- credentials for another protection space (issue 8) -------------------------------

/// A real nginx whose third origin (the extra 127.0.0.1 port) has two protection spaces:
/// `/` in realm `root_realm` with `root_users`, and `/admin/` in realm `admin_realm` with
/// `admin_users`, each with its own htpasswd file (bcrypt, cost 4), serving static files
/// (`return` would answer before `auth_basic` runs). Returns the server and its web root.
fn two_realms(
    root_realm: &str,
    root_users: &[(&str, &str)],
    admin_realm: &str,
    admin_users: &[(&str, &str)],
) -> (Nginx, tempfile::TempDir) {
    let www = tempfile::tempdir().expect("tempdir");
    let root = www.path().join("www");
    std::fs::create_dir_all(root.join("admin")).expect("mkdir");
    std::fs::write(root.join("index.html"), "staff home\n").expect("page");
    std::fs::write(root.join("admin").join("x"), "admin page\n").expect("page");
    let file = |name: &str, users: &[(&str, &str)]| {
        let lines: String = users
            .iter()
            .map(|(u, p)| kit::htpasswd(&["-B", "-C", "4"], u, p))
            .collect();
        let path = www.path().join(name);
        std::fs::write(&path, lines).expect("htpasswd");
        path.display().to_string()
    };
    let (root_file, admin_file) = (
        file("root.htpasswd", root_users),
        file("admin.htpasswd", admin_users),
    );
    let root = root.display().to_string();
    let n = Nginx::start_with(&["127.0.0.1"], &|addrs| {
        let addr = addrs[2];
        format!(
            r#"    server {{
        listen {addr};
        root {root};
        location / {{
            auth_basic "{root_realm}";
            auth_basic_user_file {root_file};
        }}
        location /admin/ {{
            auth_basic "{admin_realm}";
            auth_basic_user_file {admin_file};
        }}
    }}"#
        )
    });
    (n, www)
}

impl Nginx {
    /// `http://` + the third origin (see [`two_realms`]) + `path`.
    fn third(&self, path: &str) -> String {
        format!("http://{}{path}", self.daemon.addrs[2])
    }
}

/// The `probes` of a run as (path, status without credentials, realm, status with them).
fn probes(r: &Run) -> Vec<(String, Value, Value, Value)> {
    r.json["probes"]
        .as_array()
        .unwrap_or_else(|| panic!("no probes array:\n{}", r.stdout))
        .iter()
        .map(|p| {
            let url = p["url"].as_str().unwrap_or_default();
            let path = url
                .splitn(4, '/')
                .nth(3)
                .map(|p| format!("/{p}"))
                .unwrap_or_default();
            (
                path,
                p["status_without_credentials"].clone(),
                p["realm"].clone(),
                p["status"].clone(),
            )
        })
        .collect()
}

#[test]
fn doctor_nginx_credentials_for_another_realm_are_wrong_realm() {
    let (n, _www) = two_realms(
        "staff",
        &[("alice", "alice-password")],
        "admin",
        &[("bob", "bob-password")],
    );
    let r = doctor(
        &[&n.third("/admin/x"), "--user", "alice"],
        Some("alice-password\n"),
    );
    r.expect("wrong_realm", 1);
    let sentence = r.json["verdict"]["sentence"].as_str().unwrap_or_default();
    assert_eq!(
        sentence,
        "Your credentials work in realm \"staff\" (at /) but this URL is in realm \"admin\": they belong to another protection space (RFC 7617 §2.2).",
        "{}",
        r.stdout
    );
    assert!(
        r.json["verdict"]["fix"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Use the credentials for realm \"admin\""),
        "{}",
        r.stdout
    );
    // Nearest first, and the probing stops where the credentials work.
    assert_eq!(
        probes(&r),
        [
            ("/admin/x/".into(), 401.into(), "admin".into(), 401.into()),
            ("/admin/".into(), 401.into(), "admin".into(), 401.into()),
            ("/".into(), 401.into(), "staff".into(), 200.into()),
        ],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("alice-password"), "{}", r.stdout);
    // The same credentials given as a ready-made `Authorization: Basic` header.
    let header = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:alice-password")
    );
    let r = doctor(&[&n.third("/admin/x"), "-H", &header], None);
    r.expect("wrong_realm", 1);
    assert_eq!(probes(&r).len(), 3, "{}", r.stdout);
    // bob's own credentials work here, and nothing else is tried.
    let r = doctor(
        &[&n.third("/admin/x"), "--user", "bob"],
        Some("bob-password\n"),
    );
    r.expect("ok", 0);
    assert_eq!(r.json["probes"], serde_json::json!([]), "{}", r.stdout);
}

/// The nginx mistake: two `auth_basic_user_file`s under one `auth_basic` realm name.
#[test]
fn doctor_nginx_same_realm_other_user_file_is_credentials_not_valid_here() {
    let (n, _www) = two_realms(
        "staff",
        &[("alice", "alice-password")],
        "staff",
        &[("bob", "bob-password")],
    );
    let r = doctor(
        &[&n.third("/admin/x"), "--user", "alice"],
        Some("alice-password\n"),
    );
    r.expect("credentials_not_valid_here", 1);
    let verdict = &r.json["verdict"];
    assert!(
        verdict["sentence"]
            .as_str()
            .unwrap_or_default()
            .contains("different user list"),
        "{}",
        r.stdout
    );
    assert!(
        verdict["fix"]
            .as_str()
            .unwrap_or_default()
            .contains("auth_basic_user_file"),
        "{}",
        r.stdout
    );
    assert_eq!(
        probes(&r).last(),
        Some(&("/".into(), 401.into(), "staff".into(), 200.into())),
        "{}",
        r.stdout
    );
}

/// A wrong password is refused everywhere: still `wrong_credentials`, after at most
/// MAX_RELATED related URLs; and nothing is probed without credentials.
#[test]
fn doctor_nginx_wrong_password_everywhere_stays_wrong_credentials() {
    let alice = [("alice", "alice-password")];
    let (n, _www) = two_realms("staff", &alice, "admin", &alice);
    let url = n.third("/admin/x");
    let r = doctor(&[&url, "--user", "alice"], Some("wrong-password\n"));
    r.expect("wrong_credentials", 1);
    let seen = probes(&r);
    assert_eq!(seen.len(), 3, "{}", r.stdout);
    assert!(seen.len() <= 4);
    assert!(
        seen.iter()
            .all(|(_, anon, _, with)| *anon == 401 && *with == 401),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("wrong-password"), "{}", r.stdout);

    let r = doctor(&[&url], None);
    r.expect("no_credentials", 1);
    assert_eq!(r.json["probes"], serde_json::json!([]), "{}", r.stdout);
    let r = doctor(&[&url, "--user", "alice"], Some("alice-password\n"));
    r.expect("ok", 0);
}

/// Digest credentials computed from `--user` are tried in the related URLs' own realms:
/// alice's work in Apache's realm "team" (/team/), not in "admins" (/team/admin/).
#[test]
fn doctor_apache_digest_for_another_realm_is_wrong_realm() {
    let a = apache();
    let r = doctor(
        &[&a.url("/team/admin/index.html"), "--user", "alice"],
        Some("alice-password\n"),
    );
    r.expect("wrong_realm", 1);
    assert_eq!(r.json["credentials"], "Digest", "{}", r.stdout);
    assert_eq!(
        probes(&r).last(),
        Some(&("/team/".into(), 401.into(), "team".into(), 200.into())),
        "{}",
        r.stdout
    );
    assert!(
        r.json["verdict"]["sentence"]
            .as_str()
            .unwrap_or_default()
            .contains("in realm \"admins\""),
        "{}",
        r.stdout
    );
    // A wrong password: refused in every realm tried; the public root gets no credentials.
    let r = doctor(
        &[&a.url("/team/admin/index.html"), "--user", "alice"],
        Some("wrong-password\n"),
    );
    r.expect("wrong_credentials", 1);
    let root = r.json["probes"]
        .as_array()
        .and_then(|p| p.last())
        .cloned()
        .unwrap_or_default();
    assert_eq!(root["status_without_credentials"], 200, "{}", r.stdout);
    assert_eq!(root["sent_credentials"], false, "{}", r.stdout);
}
