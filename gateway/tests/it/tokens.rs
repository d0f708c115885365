//! API tokens, store users and the RFC 6750 answers (issue 4), end to end: tokens and users
//! are made with the real `authgate token` / `authgate user` commands, requests are sent with
//! real curl, and every denial is checked to have reached nothing behind the gateway.
//!
//! A running gateway picks up CLI changes within about a second (it polls the store), so each
//! step after a CLI command waits for its effect in a bounded loop instead of sleeping.

use std::fmt;
use std::io::Write as _;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::kit::{self, Gateway, Seen, Upstream};

/// How long a CLI change may take to reach a running gateway (it polls every second).
const PICKUP: Duration = Duration::from_secs(5);

/// An answer, with the request that got it; `Display` prints both, for failure messages.
pub(crate) struct Reply {
    pub sent: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        kit::header_values(&self.headers, name)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    /// The problem-details body (requests here send `Accept: application/json`).
    #[track_caller]
    pub fn problem(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not a problem+json body ({e}):\n{self}"))
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "--- sent:\n{}", self.sent)?;
        writeln!(f, "--- received: {}", self.status)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        write!(f, "\n{}", self.body)
    }
}

/// Real curl: `curl -sS -i` with `Accept: application/json` and `args` (URL included).
pub(crate) fn curl(args: &[&str]) -> Reply {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-i",
            "--max-time",
            "10",
            "-H",
            "Accept: application/json",
        ])
        .args(args)
        .output()
        .expect("curl (Debian curl) must be installed");
    let sent = format!("curl -i {}", args.join(" "));
    assert!(
        out.status.success(),
        "{sent} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{sent}: no status line in\n{text}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        sent,
        status,
        headers,
        body: body.to_string(),
    }
}

/// curl GET with `Authorization: Bearer token`.
pub(crate) fn bearer(url: &str, token: &str) -> Reply {
    curl(&["-H", &format!("Authorization: Bearer {token}"), url])
}

/// A GET through reqwest with `Accept: application/json` and `headers`.
pub(crate) fn get(url: &str, headers: &[(&str, &str)]) -> Reply {
    kit::rt().block_on(async {
        let mut req = kit::client().get(url).header("accept", "application/json");
        let mut sent = format!("GET {url}\n");
        for (k, v) in headers {
            req = req.header(*k, *v);
            sent.push_str(&format!("{k}: {v}\n"));
        }
        let resp = req.send().await.expect("request");
        let (status, headers, body) = kit::read(resp).await;
        Reply {
            sent,
            status,
            headers,
            body,
        }
    })
}

/// Asserts a denial: the status, the problem body's `reason`, exactly one `WWW-Authenticate`
/// field equal to `challenge` (or none), and that the upstream saw nothing.
#[track_caller]
pub(crate) fn assert_denied(
    r: &Reply,
    status: u16,
    reason: &str,
    challenge: Option<&str>,
    upstream: &Upstream,
) {
    assert_eq!(r.status, status, "{r}");
    assert_eq!(r.problem()["reason"], reason, "{r}");
    let fields = r.header_all("www-authenticate");
    match challenge {
        Some(c) => assert_eq!(fields, vec![c], "exactly one challenge field:\n{r}"),
        None => assert!(fields.is_empty(), "no challenge expected:\n{r}"),
    }
    assert_eq!(r.header("cache-control"), Some("no-store"), "{r}");
    assert!(
        upstream.count() == 0,
        "a denied request reached the upstream:\n{r}\nupstream saw: {:#?}",
        upstream.seen()
    );
}

/// Asserts that the request reached the upstream once, as `user` by `method`, without the
/// client's `Authorization`; returns what the upstream saw and clears it.
#[track_caller]
pub(crate) fn assert_reached(r: &Reply, upstream: &Upstream, user: &str, method: &str) -> Seen {
    assert_eq!(r.status, 200, "{r}");
    let seen = upstream.seen();
    assert_eq!(seen.len(), 1, "{r}\nupstream saw: {seen:#?}");
    let s = seen[0].clone();
    assert_eq!(s.header_all("x-authgate-user"), vec![user], "{s:#?}");
    assert_eq!(s.header_all("x-authgate-method"), vec![method], "{s:#?}");
    assert!(
        s.header("authorization").is_none(),
        "the credentials must not reach the upstream: {s:#?}"
    );
    upstream.clear();
    s
}

/// The Bearer challenge with an RFC 6750 §3 error.
pub(crate) fn bearer_error(realm: &str, error: &str, description: &str) -> String {
    format!("Bearer realm=\"{realm}\", error=\"{error}\", error_description=\"{description}\"")
}

/// Sends `request` until `done` holds for the reply (bounded by [`PICKUP`]); returns that reply.
#[track_caller]
pub(crate) fn eventually(
    what: &str,
    mut request: impl FnMut() -> Reply,
    done: impl Fn(&Reply) -> bool,
) -> Reply {
    let deadline = Instant::now() + PICKUP;
    loop {
        let r = request();
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not seen within {PICKUP:?}; last reply:\n{r}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `authgate ARGS --config <the gateway's config>` with the gateway's test clock and
/// `stdin`; returns the output whatever the exit status.
fn run(gw: &Gateway, args: &[&str], stdin: &str) -> Output {
    let mut cmd = Command::new(kit::bin());
    cmd.args(args)
        .arg("--config")
        .arg(gw.path("authgate.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if gw.path("clock").exists() {
        cmd.env("AUTHGATE_TEST_CLOCK_FILE", gw.path("clock"));
    }
    let mut child = cmd.spawn().expect("spawn authgate");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("authgate")
}

/// Runs an `authgate` command that must succeed; returns (stdout, stderr).
#[track_caller]
fn cli(gw: &Gateway, args: &[&str], stdin: &str) -> (String, String) {
    let out = run(gw, args, stdin);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "authgate {args:?} exited {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status.code()
    );
    (stdout, stderr)
}

/// `authgate token issue ARGS`: checks that stdout is the token alone, shaped
/// `agt_<12>_<43 base64url>`, and that stderr names its id. Returns (token, id).
#[track_caller]
fn issue(gw: &Gateway, args: &[&str]) -> (String, String) {
    let mut all = vec!["token", "issue"];
    all.extend_from_slice(args);
    let (stdout, stderr) = cli(gw, &all, "");
    let token = stdout
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("stdout is one line: {stdout:?}"))
        .to_string();
    assert!(
        !token.contains('\n'),
        "stdout is the token alone: {stdout:?}"
    );
    let rest = token.strip_prefix("agt_").expect("agt_ prefix");
    let (id, secret) = rest.split_at(12);
    let secret = secret.strip_prefix('_').expect("_ after the id");
    let b64url = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    assert!(
        b64url(id) && b64url(secret) && secret.len() == 43,
        "token shape: {token}"
    );
    assert!(stderr.contains(id), "stderr names the id: {stderr}");
    let id = id.to_string();
    (token, id)
}

/// `authgate user add NAME [ARGS]` with the password on stdin.
#[track_caller]
fn add_user(gw: &Gateway, name: &str, password: &str, args: &[&str]) {
    let mut all = vec!["user", "add", name];
    all.extend_from_slice(args);
    cli(gw, &all, &format!("{password}\n"));
}

/// Until a running gateway sees a new user or password (within a second), the polls below
/// count as failed sign-ins; brute-force protection must not turn them into 429s.
const LENIENT_LOCKOUT: &str =
    "[lockout]\nclient_threshold = 1000\nuser_threshold = 1000\npair_threshold = 1000\n";

/// A `[store]` gateway with a bearer route at /api (realm "api") and `extra` TOML.
fn store_config(upstream: &Upstream, extra: &str) -> String {
    format!(
        "[store]\npath = \"authgate.db\"\n{extra}\n\
         [[route]]\npath = \"/api\"\nupstream = \"{}\"\nrealm = \"api\"\nauth = [\"bearer\"]\n",
        upstream.url()
    )
}

/// `token` with its last character changed: same shape, wrong secret.
fn flip_last(token: &str) -> String {
    let (head, last) = token.split_at(token.len() - 1);
    format!("{head}{}", if last == "A" { "B" } else { "A" })
}

/// Waits until `token` is accepted at `url` (a new token is seen within a second).
#[track_caller]
fn until_accepted(url: &str, token: &str) -> Reply {
    eventually(
        "the new token accepted",
        || bearer(url, token),
        |r| r.status == 200,
    )
}

#[test]
fn an_issued_token_works_with_curl_is_listed_without_its_secret_and_revocation_refuses_it() {
    let upstream = Upstream::start();
    let users = kit::htpasswd(&["-B", "-C", "4"], "alice", "pw");
    let gw = Gateway::start(
        &store_config(&upstream, "[users]\nhtpasswd = \"users.htpasswd\""),
        &[("users.htpasswd", &users)],
    );
    let url = gw.url("/api/things?x=1");
    // An htpasswd user can hold tokens too (`--config` lets the CLI see the file).
    let (token, id) = issue(&gw, &["--user", "alice", "--name", "ci"]);

    let r = until_accepted(&url, &token);
    let allowed_id = r.header("x-request-id").expect("request id").to_string();
    let seen = assert_reached(&r, &upstream, "alice", "bearer");
    assert_eq!(seen.target, "/api/things?x=1");
    assert_eq!(r.body, "upstream: /api/things?x=1", "{r}");

    let (ls, _) = cli(&gw, &["token", "ls"], "");
    let line = ls
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("`token ls` lists {id}:\n{ls}"));
    assert!(
        line.contains("alice") && line.contains("ci") && line.contains("active"),
        "{ls}"
    );
    let secret = &token[4 + 12 + 1..];
    assert!(
        !ls.contains(secret) && !ls.contains(&token),
        "`token ls` shows the secret:\n{ls}"
    );

    // A token for nobody is not issued, and nothing is printed on stdout.
    let out = run(&gw, &["token", "issue", "--user", "nobody"], "");
    assert!(!out.status.success() && out.stdout.is_empty(), "{out:?}");

    cli(&gw, &["token", "revoke", &id], "");
    let r = eventually(
        "the revoked token refused",
        || bearer(&url, &token),
        |r| r.status != 200,
    );
    upstream.clear();
    let challenge = bearer_error("api", "invalid_token", "The access token was revoked");
    assert_denied(&r, 401, "invalid_token", Some(&challenge), &upstream);
    let again = bearer(&url, &token);
    assert_denied(&again, 401, "invalid_token", Some(&challenge), &upstream);
    let audit = gw.audit_for(again.header("x-request-id").expect("request id"));
    assert_eq!(audit["reason"], "invalid_token", "{audit}");
    assert_eq!(audit["detail"], "revoked", "{audit}");
    // The audit log names the token (its public id), so an admin knows which one it was.
    assert_eq!(audit["token"], id.as_str(), "{audit}");
    let allowed = gw.audit_for(&allowed_id);
    assert_eq!(allowed["token"], id.as_str(), "{allowed}");
    assert_eq!(allowed["user"], "alice", "{allowed}");

    let (ls, _) = cli(&gw, &["token", "ls"], "");
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&id) && l.contains("revoked")),
        "{ls}"
    );
    // The secret never reaches a log.
    let logs: String = gw.audit().iter().map(|r| r.to_string()).collect();
    assert!(
        !logs.contains(secret) && !gw.stderr().contains(secret),
        "the token's secret leaked into the logs"
    );
}

#[test]
fn a_token_past_its_ttl_is_refused_as_expired() {
    let upstream = Upstream::start();
    let users = kit::htpasswd(&["-B", "-C", "4"], "alice", "pw");
    let gw = Gateway::start(
        &store_config(&upstream, "[users]\nhtpasswd = \"users.htpasswd\""),
        &[("users.htpasswd", &users), ("clock", "0")],
    );
    let url = gw.url("/api/x");
    let (token, id) = issue(&gw, &["--user", "alice", "--ttl", "1h"]);
    let r = until_accepted(&url, &token);
    assert_reached(&r, &upstream, "alice", "bearer");
    gw.set_clock(3500);
    assert_reached(&bearer(&url, &token), &upstream, "alice", "bearer");

    gw.set_clock(3601);
    let r = bearer(&url, &token);
    assert_denied(
        &r,
        401,
        "expired_credentials",
        Some(&bearer_error(
            "api",
            "invalid_token",
            "The access token expired",
        )),
        &upstream,
    );
    let audit = gw.audit_for(r.header("x-request-id").expect("request id"));
    assert_eq!(audit["detail"], "token", "{audit}");
    // The CLI reads the same clock.
    let (ls, _) = cli(&gw, &["token", "ls"], "");
    assert!(
        ls.lines()
            .any(|l| l.starts_with(&id) && l.contains("expired")),
        "{ls}"
    );
}

#[test]
fn a_token_unused_for_the_idle_timeout_is_refused_and_each_use_restarts_it() {
    let upstream = Upstream::start();
    let users = kit::htpasswd(&["-B", "-C", "4"], "alice", "pw");
    let gw = Gateway::start(
        &store_config(
            &upstream,
            "[users]\nhtpasswd = \"users.htpasswd\"\n[tokens]\nidle_timeout = \"1h\"",
        ),
        &[("users.htpasswd", &users), ("clock", "0")],
    );
    let url = gw.url("/api/x");
    let (token, _) = issue(&gw, &["--user", "alice"]);
    let r = until_accepted(&url, &token);
    assert_reached(&r, &upstream, "alice", "bearer");

    gw.set_clock(1800);
    assert_reached(&bearer(&url, &token), &upstream, "alice", "bearer");
    // Another CLI change makes the gateway reload the store: the use at 1800 must survive
    // that (it is flushed to the store only every ~10 s).
    let (other, _) = issue(&gw, &["--user", "alice"]);
    let r = until_accepted(&url, &other);
    assert_reached(&r, &upstream, "alice", "bearer");

    // 3000 s after the last use but 4800 s after issue: still valid.
    gw.set_clock(1800 + 3000);
    assert_reached(&bearer(&url, &token), &upstream, "alice", "bearer");

    // 3601 s after the last use: idle.
    gw.set_clock(1800 + 3000 + 3601);
    let challenge = bearer_error(
        "api",
        "invalid_token",
        "The access token expired after a period without use",
    );
    let r = bearer(&url, &token);
    assert_denied(&r, 401, "expired_credentials", Some(&challenge), &upstream);
    let audit = gw.audit_for(r.header("x-request-id").expect("request id"));
    assert_eq!(audit["detail"], "token_idle", "{audit}");
    // The other token was last used at 1800: idle too.
    let r = bearer(&url, &other);
    assert_denied(&r, 401, "expired_credentials", Some(&challenge), &upstream);
}

#[test]
fn a_token_without_every_scope_of_the_route_gets_insufficient_scope() {
    let upstream = Upstream::start();
    let users = kit::htpasswd(&["-B", "-C", "4"], "alice", "pw");
    let config = format!(
        "[store]\npath = \"authgate.db\"\n[users]\nhtpasswd = \"users.htpasswd\"\n\
         [[route]]\npath = \"/api\"\nupstream = \"{0}\"\nrealm = \"api\"\nauth = [\"bearer\"]\nscopes = [\"read\", \"write\"]\n\
         [[route]]\npath = \"/mixed\"\nupstream = \"{0}\"\nrealm = \"api\"\nauth = [\"bearer\", \"basic\"]\nscopes = [\"read\"]\n",
        upstream.url()
    );
    let gw = Gateway::start(&config, &[("users.htpasswd", &users)]);
    let url = gw.url("/api/x");
    let (read, _) = issue(&gw, &["--user", "alice", "--scopes", "read"]);
    let (both, _) = issue(&gw, &["--user", "alice", "--scopes", "read,write"]);
    let (none, _) = issue(&gw, &["--user", "alice"]);

    let r = until_accepted(&url, &both);
    assert_reached(&r, &upstream, "alice", "bearer");

    // RFC 6750 §3.1: 403, and `scope` names what the resource needs.
    let challenge = "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"The access token does not have the scope this resource requires\", scope=\"read write\"";
    for token in [&read, &none] {
        let r = bearer(&url, token);
        assert_denied(&r, 403, "insufficient_scope", Some(challenge), &upstream);
    }
    // Basic users are not scoped; tokens are, on a route that takes both.
    let r = curl(&["-u", "alice:pw", &gw.url("/mixed/y")]);
    assert_reached(&r, &upstream, "alice", "basic");
    assert_reached(
        &bearer(&gw.url("/mixed/y"), &read),
        &upstream,
        "alice",
        "bearer",
    );
    // A 403 asks for another token, not for a password: only the Bearer challenge.
    let r = bearer(&gw.url("/mixed/y"), &none);
    assert_denied(
        &r,
        403,
        "insufficient_scope",
        Some("Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"The access token does not have the scope this resource requires\", scope=\"read\""),
        &upstream,
    );
}

#[test]
fn bearer_answers_have_the_rfc_6750_shapes() {
    let upstream = Upstream::start();
    let users = kit::htpasswd(&["-B", "-C", "4"], "alice", "pw");
    let config = format!(
        "[store]\npath = \"authgate.db\"\n[users]\nhtpasswd = \"users.htpasswd\"\n\
         [[route]]\npath = \"/api\"\nupstream = \"{0}\"\nrealm = \"api\"\nauth = [\"bearer\"]\n\
         [[route]]\npath = \"/both\"\nupstream = \"{0}\"\nrealm = \"api\"\nauth = [\"bearer\", \"basic\"]\n",
        upstream.url()
    );
    let gw = Gateway::start(&config, &[("users.htpasswd", &users)]);
    let api = gw.url("/api/x");
    let (token, _) = issue(&gw, &["--user", "alice"]);
    let r = until_accepted(&api, &token);
    assert_reached(&r, &upstream, "alice", "bearer");

    // RFC 6750 §3.1: no credentials, no error code.
    let r = curl(&[&api]);
    assert_denied(
        &r,
        401,
        "missing_credentials",
        Some("Bearer realm=\"api\""),
        &upstream,
    );
    let invalid = bearer_error("api", "invalid_token", "The access token is not valid");
    for garbage in [
        "garbage",
        "agt_aaaaaaaaaaaa_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        &format!("{token}x"),
        &token[..token.len() - 1],
        &flip_last(&token),
    ] {
        let r = bearer(&api, garbage);
        assert_denied(&r, 401, "invalid_token", Some(&invalid), &upstream);
    }
    // RFC 6750 §2.3 / §5.3: a token in the URL is refused, even alongside a valid header.
    let in_url = bearer_error(
        "api",
        "invalid_request",
        "The access token was sent in the URL",
    );
    let r = curl(&[&gw.url(&format!("/api/x?access_token={token}"))]);
    assert_denied(&r, 400, "invalid_request", Some(&in_url), &upstream);
    let r = curl(&[&gw.url("/api/x?a=1&access_token=x")]);
    assert_denied(&r, 400, "invalid_request", Some(&in_url), &upstream);
    let r = bearer(&gw.url("/api/x?access_token=x"), &token);
    assert_denied(
        &r,
        400,
        "invalid_request",
        Some(&bearer_error(
            "api",
            "invalid_request",
            "The access token was sent in two places",
        )),
        &upstream,
    );
    // `Bearer` without a token68.
    let r = curl(&["-H", "Authorization: Bearer", &api]);
    assert_denied(
        &r,
        400,
        "invalid_request",
        Some(&bearer_error(
            "api",
            "invalid_request",
            "The Bearer credentials are not a single token",
        )),
        &upstream,
    );
    // Two Authorization fields (RFC 9110 §5.3: it is not a list).
    let r = curl(&[
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        &format!("Authorization: Bearer {token}"),
        &api,
    ]);
    assert_eq!(r.status, 400, "{r}");
    assert!(upstream.count() == 0, "{r}\n{:#?}", upstream.seen());
    // Basic on a bearer-only route: the scheme is not accepted here.
    let r = curl(&["-u", "alice:pw", &api]);
    assert_denied(
        &r,
        401,
        "unsupported_scheme",
        Some("Bearer realm=\"api\""),
        &upstream,
    );

    // A route that takes both: one field with both challenges, in the route's order.
    let both = gw.url("/both/y");
    let r = curl(&[&both]);
    assert_denied(
        &r,
        401,
        "missing_credentials",
        Some("Bearer realm=\"api\", Basic realm=\"api\", charset=\"UTF-8\""),
        &upstream,
    );
    let r = bearer(&both, "garbage");
    assert_denied(
        &r,
        401,
        "invalid_token",
        Some(&format!(
            "{invalid}, Basic realm=\"api\", charset=\"UTF-8\""
        )),
        &upstream,
    );
    let r = curl(&["-u", "alice:wrong", &both]);
    assert_denied(
        &r,
        401,
        "invalid_credentials",
        Some("Bearer realm=\"api\", Basic realm=\"api\", charset=\"UTF-8\""),
        &upstream,
    );
    assert_reached(
        &curl(&["-u", "alice:pw", &both]),
        &upstream,
        "alice",
        "basic",
    );
    assert_reached(&bearer(&both, &token), &upstream, "alice", "bearer");
}

#[test]
fn store_users_sign_in_and_lock_unlock_and_expiry_take_effect() {
    let upstream = Upstream::start();
    let config = format!(
        "{LENIENT_LOCKOUT}[store]\npath = \"authgate.db\"\n[users]\npassword_max_age = \"1d\"\n\
         [[route]]\npath = \"/app\"\nupstream = \"{}\"\nrealm = \"app\"\nauth = [\"basic\"]\n",
        upstream.url()
    );
    let gw = Gateway::start(&config, &[("clock", "0")]);
    let url = gw.url("/app/x");
    let basic = |pw: &str| curl(&["-u", &format!("alice:{pw}"), &url]);
    let challenge = Some("Basic realm=\"app\", charset=\"UTF-8\"");

    add_user(&gw, "alice", "s3cret alice", &["--groups", "dev,ops"]);
    let r = eventually(
        "the new user signs in",
        || basic("s3cret alice"),
        |r| r.status == 200,
    );
    let seen = assert_reached(&r, &upstream, "alice", "basic");
    assert_eq!(
        seen.header_all("x-authgate-groups"),
        vec!["dev,ops"],
        "{seen:#?}"
    );
    assert_denied(
        &basic("s3cret alic"),
        401,
        "invalid_credentials",
        challenge,
        &upstream,
    );

    cli(&gw, &["user", "lock", "alice"], "");
    let r = eventually("locked", || basic("s3cret alice"), |r| r.status != 200);
    upstream.clear();
    assert_denied(&r, 401, "account_locked", challenge, &upstream);
    let (ls, _) = cli(&gw, &["user", "ls"], "");
    assert!(
        ls.lines()
            .any(|l| l.starts_with("alice") && l.contains("locked")),
        "{ls}"
    );
    // A wrong password on a locked account says nothing about the lock.
    assert_denied(
        &basic("wrong"),
        401,
        "invalid_credentials",
        challenge,
        &upstream,
    );

    cli(&gw, &["user", "unlock", "alice"], "");
    let r = eventually("unlocked", || basic("s3cret alice"), |r| r.status == 200);
    assert_reached(&r, &upstream, "alice", "basic");

    cli(&gw, &["user", "expire", "alice"], "");
    let r = eventually(
        "account expired",
        || basic("s3cret alice"),
        |r| r.status != 200,
    );
    upstream.clear();
    assert_denied(&r, 401, "expired_credentials", challenge, &upstream);
    let audit = gw.audit_for(r.header("x-request-id").expect("request id"));
    assert_eq!(audit["detail"], "account", "{audit}");

    cli(&gw, &["user", "expire", "alice", "--clear"], "");
    let r = eventually(
        "expiry cleared",
        || basic("s3cret alice"),
        |r| r.status == 200,
    );
    assert_reached(&r, &upstream, "alice", "basic");

    cli(&gw, &["user", "expire", "alice", "--password"], "");
    let r = eventually(
        "password expired",
        || basic("s3cret alice"),
        |r| r.status != 200,
    );
    upstream.clear();
    assert_denied(&r, 401, "expired_credentials", challenge, &upstream);
    let audit = gw.audit_for(r.header("x-request-id").expect("request id"));
    assert_eq!(audit["detail"], "password", "{audit}");

    // A new password clears the forced expiry; the old one stops working.
    cli(&gw, &["user", "passwd", "alice"], "n3w pass\n");
    let r = eventually("new password", || basic("n3w pass"), |r| r.status == 200);
    assert_reached(&r, &upstream, "alice", "basic");
    assert_denied(
        &basic("s3cret alice"),
        401,
        "invalid_credentials",
        challenge,
        &upstream,
    );

    // users.password_max_age = 1d, on the test clock.
    gw.set_clock(2 * 86_400);
    let r = basic("n3w pass");
    assert_denied(&r, 401, "expired_credentials", challenge, &upstream);
    let audit = gw.audit_for(r.header("x-request-id").expect("request id"));
    assert_eq!(audit["detail"], "password", "{audit}");
}

#[test]
fn imported_htpasswd_users_keep_their_hashes() {
    let upstream = Upstream::start();
    let config = format!(
        "{LENIENT_LOCKOUT}[store]\npath = \"authgate.db\"\n\
         [[route]]\npath = \"/app\"\nupstream = \"{}\"\nrealm = \"app\"\nauth = [\"basic\"]\n",
        upstream.url()
    );
    let gw = Gateway::start(&config, &[]);
    let bcrypt = kit::htpasswd(&["-B", "-C", "4"], "carol", "pw carol");
    let apr1 = kit::htpasswd(&["-m"], "dave", "pw dave");
    let file = gw.path("old.htpasswd");
    std::fs::write(&file, format!("{bcrypt}{apr1}")).expect("write");
    let file = file.to_str().expect("utf8 path");

    let (out, _) = cli(&gw, &["user", "import", file], "");
    assert!(out.contains("imported 2 users"), "{out}");
    let url = gw.url("/app/x");
    let r = eventually(
        "imported users sign in",
        || curl(&["-u", "carol:pw carol", &url]),
        |r| r.status == 200,
    );
    assert_reached(&r, &upstream, "carol", "basic");
    assert_reached(
        &curl(&["-u", "dave:pw dave", &url]),
        &upstream,
        "dave",
        "basic",
    );
    assert_denied(
        &curl(&["-u", "dave:pw carol", &url]),
        401,
        "invalid_credentials",
        Some("Basic realm=\"app\", charset=\"UTF-8\""),
        &upstream,
    );
    // The hashes are kept as they were, not re-hashed.
    let (ls, _) = cli(&gw, &["user", "ls"], "");
    assert!(
        ls.lines().any(|l| l.starts_with("carol")) && ls.lines().any(|l| l.starts_with("dave")),
        "{ls}"
    );
    // Importing again leaves them alone.
    let (out, _) = cli(&gw, &["user", "import", file], "");
    assert!(
        out.contains("imported 0 users") && out.contains("2 already"),
        "{out}"
    );

    // A large file reports progress on stderr.
    let hash = bcrypt.trim().split_once(':').expect("user:hash").1;
    let many: String = (0..1000).map(|i| format!("user{i:04}:{hash}\n")).collect();
    let big = gw.path("many.htpasswd");
    std::fs::write(&big, many).expect("write");
    let (out, err) = cli(&gw, &["user", "import", big.to_str().expect("utf8")], "");
    assert!(out.contains("imported 1000 users"), "{out}");
    assert!(err.contains("1000/1000"), "progress on stderr: {err:?}");
    let r = eventually(
        "a user of the large import signs in",
        || curl(&["-u", "user0999:pw carol", &url]),
        |r| r.status == 200,
    );
    assert_reached(&r, &upstream, "user0999", "basic");
}

#[test]
fn a_store_user_takes_precedence_over_the_same_name_in_htpasswd() {
    let upstream = Upstream::start();
    let users = kit::htpasswd(&["-B", "-C", "4"], "alice", "file pw");
    let config = format!(
        "{LENIENT_LOCKOUT}[store]\npath = \"authgate.db\"\n[users]\nhtpasswd = \"users.htpasswd\"\n\
         [[route]]\npath = \"/app\"\nupstream = \"{}\"\nrealm = \"app\"\nauth = [\"basic\"]\n",
        upstream.url()
    );
    let gw = Gateway::start(&config, &[("users.htpasswd", &users)]);
    let url = gw.url("/app/x");
    assert_reached(
        &curl(&["-u", "alice:file pw", &url]),
        &upstream,
        "alice",
        "basic",
    );
    add_user(&gw, "alice", "store pw", &[]);
    let r = eventually(
        "the store user wins",
        || curl(&["-u", "alice:store pw", &url]),
        |r| r.status == 200,
    );
    assert_reached(&r, &upstream, "alice", "basic");
    assert_denied(
        &curl(&["-u", "alice:file pw", &url]),
        401,
        "invalid_credentials",
        Some("Basic realm=\"app\", charset=\"UTF-8\""),
        &upstream,
    );
}

#[test]
fn a_locked_or_expired_users_api_token_is_refused() {
    let upstream = Upstream::start();
    let gw = Gateway::start(&store_config(&upstream, ""), &[]);
    let url = gw.url("/api/x");
    add_user(&gw, "bob", "pw bob", &["--groups", "dev"]);
    let (token, _) = issue(&gw, &["--user", "bob"]);
    let r = until_accepted(&url, &token);
    let seen = assert_reached(&r, &upstream, "bob", "bearer");
    assert_eq!(
        seen.header_all("x-authgate-groups"),
        vec!["dev"],
        "{seen:#?}"
    );

    cli(&gw, &["user", "lock", "bob"], "");
    let r = eventually("locked", || bearer(&url, &token), |r| r.status != 200);
    upstream.clear();
    assert_eq!(r.status, 401, "{r}");
    assert_eq!(r.problem()["reason"], "account_locked", "{r}");
    assert!(upstream.count() == 0, "{r}\n{:#?}", upstream.seen());
    let locked = r;

    cli(&gw, &["user", "unlock", "bob"], "");
    let r = eventually("unlocked", || bearer(&url, &token), |r| r.status == 200);
    assert_reached(&r, &upstream, "bob", "bearer");

    cli(&gw, &["user", "expire", "bob"], "");
    let r = eventually("expired", || bearer(&url, &token), |r| r.status != 200);
    upstream.clear();
    assert_eq!(r.status, 401, "{r}");
    assert_eq!(r.problem()["reason"], "expired_credentials", "{r}");
    assert!(upstream.count() == 0, "{r}\n{:#?}", upstream.seen());
    let expired = r;

    // Removing the user removes their tokens.
    cli(&gw, &["user", "expire", "bob", "--clear"], "");
    let r = eventually("cleared", || bearer(&url, &token), |r| r.status == 200);
    assert_reached(&r, &upstream, "bob", "bearer");
    cli(&gw, &["user", "rm", "bob"], "");
    let r = eventually("removed", || bearer(&url, &token), |r| r.status != 200);
    upstream.clear();
    assert_denied(
        &r,
        401,
        "invalid_token",
        Some(&bearer_error(
            "api",
            "invalid_token",
            "The access token is not valid",
        )),
        &upstream,
    );

    // RFC 6750 §3: "If the protected resource request included an access token and failed
    // authentication, the resource server SHOULD include the error attribute": a token whose
    // owner is locked or expired is refused with error="invalid_token", like a revoked one.
    for r in [&locked, &expired] {
        let fields = r.header_all("www-authenticate");
        assert_eq!(fields.len(), 1, "{r}");
        assert!(
            fields[0]
                .starts_with("Bearer realm=\"api\", error=\"invalid_token\", error_description=\""),
            "a refused token's challenge has error=\"invalid_token\":\n{r}"
        );
    }
}

#[test]
fn tokens_and_users_survive_kill_9_of_the_gateway() {
    let upstream = Upstream::start();
    let config = |upstream: &Upstream| {
        format!(
            "[store]\npath = \"{{dir}}/authgate.db\"\n\
             [[route]]\npath = \"/api\"\nupstream = \"{0}\"\nrealm = \"api\"\nauth = [\"bearer\"]\n\
             [[route]]\npath = \"/app\"\nupstream = \"{0}\"\nrealm = \"app\"\nauth = [\"basic\"]\n",
            upstream.url()
        )
    };
    let mut first = Gateway::start(&config(&upstream), &[]);
    add_user(&first, "alice", "pw alice", &[]);
    let (token, _) = issue(&first, &["--user", "alice", "--scopes", "read"]);
    let (revoked, revoked_id) = issue(&first, &["--user", "alice"]);
    let r = until_accepted(&first.url("/api/x"), &token);
    assert_reached(&r, &upstream, "alice", "bearer");
    let r = until_accepted(&first.url("/api/x"), &revoked);
    assert_reached(&r, &upstream, "alice", "bearer");
    cli(&first, &["token", "revoke", &revoked_id], "");
    eventually(
        "revoked",
        || bearer(&first.url("/api/x"), &revoked),
        |r| r.status == 401,
    );
    upstream.clear();

    first.signal("KILL");
    first.wait_exit(Duration::from_secs(10));
    let alive = Command::new("kill")
        .args(["-0", &first.pid().to_string()])
        .stderr(Stdio::null())
        .status()
        .expect("kill -0")
        .success();
    assert!(!alive, "the first gateway is still running after kill -9");

    // A new gateway on the same store file (the first one's temp dir stays until the end).
    let store = first.path("authgate.db");
    let second = Gateway::start(
        &config(&upstream).replace("{dir}/authgate.db", &store.display().to_string()),
        &[],
    );
    assert_reached(
        &bearer(&second.url("/api/x"), &token),
        &upstream,
        "alice",
        "bearer",
    );
    assert_reached(
        &curl(&["-u", "alice:pw alice", &second.url("/app/x")]),
        &upstream,
        "alice",
        "basic",
    );
    assert_denied(
        &bearer(&second.url("/api/x"), &revoked),
        401,
        "invalid_token",
        Some(&bearer_error(
            "api",
            "invalid_token",
            "The access token was revoked",
        )),
        &upstream,
    );
}
