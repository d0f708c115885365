//! `authgate explain`: why was this request allowed or refused, in plain words.
//!
//! - `authgate explain REQUEST_ID --audit-log FILE` (or `--config FILE`, whose `audit_log` file
//!   is read) finds the decision in the audit log;
//! - `authgate explain --config FILE --path /x [--method M] [--host H] [--header 'K: V']...
//!   [--client IP]` decides a request now, without a server, and explains that.
//!
//! Exit codes: 0 explained (allowed or refused), 1 request id not found, 2 usage error.

use std::io::BufRead;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::audit::{AuditLog, Record};
use crate::config::{self, AuditTarget};
use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::reason::Reason;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The request id (from the response's X-Request-Id) to look up in the audit log.
    pub request_id: Option<String>,
    /// The configuration: routes for a dry run, or where the audit log is.
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The audit log to search (JSON lines).
    #[arg(long)]
    pub audit_log: Option<PathBuf>,
    /// Dry run: the request's method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Dry run: the request's path (and query).
    #[arg(long)]
    pub path: Option<String>,
    /// Dry run: the request's Host.
    #[arg(long, default_value = "localhost")]
    pub host: String,
    /// Dry run: a request header, 'Name: value' (repeatable).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// Dry run: the client's address.
    #[arg(long, default_value = "127.0.0.1")]
    pub client: IpAddr,
}

pub fn main(args: Args) -> ExitCode {
    match (&args.request_id, &args.path) {
        (Some(id), None) => lookup(id, &args),
        (None, Some(path)) => dry_run(path, &args),
        _ => {
            eprintln!("give a REQUEST_ID to look up, or --config FILE --path /x for a dry run");
            ExitCode::from(2)
        }
    }
}

/// Finds a decision in an audit log file and explains it.
pub fn from_audit_log(path: &std::path::Path, id: &str) -> std::io::Result<Option<String>> {
    let file = std::fs::File::open(path)?;
    for line in std::io::BufReader::new(file).lines().map_while(Result::ok) {
        // Cheap test first: most lines are other requests.
        if !line.contains(id) {
            continue;
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if v["request_id"] == id {
                return Ok(Some(explain_json(&v)));
            }
        }
    }
    Ok(None)
}

fn lookup(id: &str, args: &Args) -> ExitCode {
    let log = match (&args.audit_log, &args.config) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) => match config::load(c).config.map(|c| c.server.audit_log) {
            Some(AuditTarget::File(p)) => p,
            Some(_) => {
                eprintln!("{}: the audit log goes to stdout or is off; pass --audit-log FILE (where stdout was saved)", c.display());
                return ExitCode::from(2);
            }
            None => {
                eprintln!(
                    "{}: the configuration has errors (see `authgate check`)",
                    c.display()
                );
                return ExitCode::from(2);
            }
        },
        (None, None) => {
            eprintln!("pass --audit-log FILE or --config FILE");
            return ExitCode::from(2);
        }
    };
    match from_audit_log(&log, id) {
        Ok(Some(text)) => {
            println!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("cannot read {}: {e}", log.display());
            return ExitCode::from(2);
        }
    }
    eprintln!("no decision with request id {id} in {}", log.display());
    ExitCode::from(1)
}

fn dry_run(path: &str, args: &Args) -> ExitCode {
    let Some(config_path) = &args.config else {
        eprintln!("a dry run needs --config FILE");
        return ExitCode::from(2);
    };
    let loaded = config::load(config_path);
    let Some(config) = loaded.config else {
        for p in loaded.errors() {
            eprintln!("{p}");
        }
        return ExitCode::from(2);
    };
    let mut req = http::Request::new(());
    match (args.method.parse(), path.parse(), args.host.parse()) {
        (Ok(m), Ok(u), Ok(h)) => {
            *req.method_mut() = m;
            *req.uri_mut() = u;
            req.headers_mut().insert(http::header::HOST, h);
        }
        _ => {
            eprintln!("--method, --path or --host is not valid HTTP");
            return ExitCode::from(2);
        }
    }
    for h in &args.headers {
        let parsed = h.split_once(':').and_then(|(k, v)| {
            Some((
                http::HeaderName::from_bytes(k.trim().as_bytes()).ok()?,
                http::HeaderValue::from_str(v.trim()).ok()?,
            ))
        });
        match parsed {
            Some((k, v)) => {
                req.headers_mut().append(k, v);
            }
            None => {
                eprintln!("--header `{h}` is not 'Name: value'");
                return ExitCode::from(2);
            }
        }
    }
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return ExitCode::from(2);
    };
    let record = rt.block_on(async {
        let sources = match crate::gateway::Sources::open(&config).await {
            Ok(s) => s,
            Err(e) => return Err(e),
        };
        let metrics = Arc::new(Metrics::new(&config));
        let audit = AuditLog::open(&AuditTarget::Off).ok();
        let gateway = Gateway::new(
            config,
            sources,
            audit.unwrap_or_else(AuditLog::off),
            metrics,
        );
        Ok(gateway.dry_run(&req, args.client).await)
    });
    let record = match record {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(2);
        }
    };
    println!("{}", explain_record(&record));
    ExitCode::SUCCESS
}

fn explain_record(r: &Record) -> String {
    match serde_json::to_value(r) {
        Ok(v) => explain_json(&v),
        Err(_) => String::new(),
    }
}

/// A decision from the audit log, in plain words: one line per stage, then the verdict.
pub fn explain_json(v: &serde_json::Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or("");
    let mut out = Vec::new();
    if !s("request_id").is_empty() {
        out.push(format!("request {} at {}", s("request_id"), s("time")));
    }
    out.push(format!(
        "  request:      {} {} from {}",
        s("method"),
        s("path"),
        s("client")
    ));
    let reason = s("reason");
    match v["route"].as_str() {
        Some(route) => out.push(format!("  route:        matched `{route}`")),
        None if reason == "no_route" => {
            out.push("  route:        no route matches this host and path".into())
        }
        None => {
            out.push("  route:        not reached (the request was refused before routing)".into())
        }
    }
    let user = s("user");
    let scheme = s("scheme");
    let auth = match (reason, s("detail")) {
        ("missing_credentials", _) => "no Authorization header was sent".to_string(),
        ("invalid_credentials", "unknown_user") => {
            format!("Basic credentials for `{user}`: no such user in the user file")
        }
        ("invalid_credentials", _) => {
            format!("Basic credentials for `{user}`: the password is wrong")
        }
        ("malformed_credentials", d) => format!("the credentials could not be decoded ({d})"),
        ("unsupported_scheme", _) => {
            "the Authorization header uses a scheme this route does not accept".into()
        }
        ("too_many_failures", _) => {
            format!("`{user}` was not checked: too many failed attempts (banned)")
        }
        ("expired_credentials", what) => match what {
            "password" => format!("`{user}`: right password, but it has expired"),
            "account" => format!("`{user}`: the account has expired"),
            "token_idle" => "the token was not used for longer than tokens.idle_timeout".into(),
            _ => "the token has expired".into(),
        },
        ("account_locked", _) => format!("`{user}`: right password, but the account is locked"),
        ("invalid_token", d) => format!("bearer token refused ({d})"),
        ("invalid_request", d) => format!("the token was sent wrongly ({d})"),
        ("session_expired", d) => format!("the session cookie is no longer valid ({d})"),
        _ if !scheme.is_empty() => format!("{scheme}: authenticated as `{user}`"),
        _ if s("outcome") == "allow" => "not required on this route".into(),
        _ => "not reached".into(),
    };
    out.push(format!("  authenticate: {auth}"));
    let authz = match (reason, s("outcome")) {
        ("forbidden", _) => format!("`{user}` is not in the route's allow list (users or groups)"),
        ("insufficient_scope", _) => {
            format!("the token for `{user}` lacks a scope the route requires")
        }
        (_, "allow") if !user.is_empty() => format!("`{user}` may use this route"),
        (_, "allow") => "anyone may use this route".into(),
        _ => "not reached".into(),
    };
    out.push(format!("  authorize:    {authz}"));
    let verdict = match Reason::all().into_iter().find(|r| r.code() == reason) {
        Some(r) => format!(
            "{} {}: {} (reason `{reason}`)\n  fix:          {}",
            v["status"],
            r.title(),
            r.detail(),
            fix(&r)
        ),
        None => format!("{} allowed", v["status"]),
    };
    out.push(format!("  decision:     {verdict}"));
    out.join("\n")
}

/// What to do about a reason, for an admin.
fn fix(r: &Reason) -> &'static str {
    match r {
        Reason::MissingCredentials => {
            "send credentials (curl -u USER); browsers prompt on their own"
        }
        Reason::InvalidCredentials(_) => {
            "check the user name and password; `authgate check` shows the users file in force"
        }
        Reason::MalformedCredentials(_) => {
            "fix the client's encoding: base64 of user:password, padded"
        }
        Reason::UnsupportedScheme => "use a scheme listed in WWW-Authenticate",
        Reason::Forbidden => "add the user, or one of their groups, to the route's allow list",
        Reason::TooManyFailures { .. } => {
            "wait for Retry-After; check that the client sends the right password"
        }
        Reason::NoRoute => "add a [[route]] for this host and path, or fix the URL",
        Reason::UpstreamUnavailable | Reason::UpstreamTimeout => {
            "check the upstream; this is not an authentication problem"
        }
        Reason::UpstreamBusy => {
            "every upstream connection (twice max_connections) was in use: find why the upstream is slow, or raise max_connections and the open-file limit"
        }
        Reason::Shutdown => {
            "nothing to fix: authgate was stopped while the request ran; raise shutdown_timeout to let long requests finish"
        }
        Reason::ClientClosed => {
            "nothing to fix here: the client gave up first (check the upstream if it is slow)"
        }
        Reason::ExpiredCredentials(crate::reason::Expired::Password) => {
            "set a new password: authgate user passwd USER"
        }
        Reason::ExpiredCredentials(crate::reason::Expired::Account) => {
            "extend the account: authgate user expire USER --clear (or --at DATE)"
        }
        Reason::ExpiredCredentials(_) => "issue a new token: authgate token issue --user USER",
        Reason::AccountLocked => "authgate user unlock USER, if the lock is no longer wanted",
        Reason::InvalidToken { .. } => {
            "send a current token; `authgate token ls` shows authgate's tokens, `authgate doctor URL --bearer TOKEN` explains a JWT"
        }
        Reason::InsufficientScope { .. } => {
            "issue a token with the route's scopes (authgate token issue --scopes ...)"
        }
        Reason::InvalidRequest(_) => "send the token once, as Authorization: Bearer TOKEN",
        Reason::SessionExpired(_) => "sign in again; sessions.idle_timeout and lifetime set how long sessions last",
        Reason::CsrfFailed => "reload the sign-in page and submit it again",
        _ => "see the README's \"Why did I get a 401?\" table",
    }
}
