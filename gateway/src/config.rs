//! The TOML configuration: parsed once into typed values, every problem reported with the
//! file, line, column and key, and what would be valid.
//!
//! `authgate check` and `authgate serve` run the same [`load`]; `serve` refuses to start on
//! any error, because a misconfigured server is one of the five reasons people get a 401.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use toml::Spanned;

use crate::authenticate::jwt::{JwksSource, JwtSettings};
use crate::users::htpasswd::Htpasswd;

/// One problem in the configuration or a file it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The key the problem is about (`route[2].upstream`), empty when it is about a whole file.
    pub key: String,
    pub message: String,
    pub severity: Severity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {level}",
            self.file.display(),
            self.line,
            self.column
        )?;
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The whole result of loading: a config when there were no errors, and every problem found.
#[derive(Debug)]
pub struct Loaded {
    pub config: Option<Config>,
    pub problems: Vec<Problem>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub server: Server,
    pub users: Option<Users>,
    /// group name -> members
    pub groups: BTreeMap<String, BTreeSet<String>>,
    pub routes: Vec<Route>,
    pub forward_auth: Option<ForwardAuth>,
    pub admin: Option<Admin>,
    pub lockout: Lockout,
    /// The embedded store (`[store] path`): users, API tokens, sessions.
    pub store: Option<PathBuf>,
    /// `[users] password_max_age`: store users whose password is older get
    /// `expired_credentials`. htpasswd files carry no dates, so it does not apply to them.
    pub password_max_age: Option<Duration>,
    pub tokens: Tokens,
    /// `[jwt]`, validated, ready for `authenticate::jwt::JwtVerifier`.
    pub jwt: Option<JwtSettings>,
    pub sessions: Sessions,
}

/// API tokens issued by `authgate token issue`.
#[derive(Debug, Clone)]
pub struct Tokens {
    /// A token unused for this long is refused (`expired_credentials`). None: never.
    pub idle_timeout: Option<Duration>,
}

/// Browser sessions and the sign-in page (`[sessions]`).
#[derive(Debug, Clone)]
pub struct Sessions {
    /// A session unused for this long ends (sliding).
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, used or not.
    pub lifetime: Duration,
    /// The cookie's name without the `__Host-` prefix (added under TLS).
    pub cookie: String,
    /// Set `Secure` and the `__Host-` prefix. Default: on when `trusted_proxies` say the
    /// client used https (X-Forwarded-Proto), see `signin`.
    pub secure: Option<bool>,
    /// Origins (`https://app.example.com`) the sign-in page may return to besides this site.
    pub allowed_return_origins: Vec<String>,
    pub title: String,
    pub logo: Option<String>,
    pub accent: String,
    pub background: String,
}

/// Brute-force protection (see `authenticate::lockout`). On by default.
#[derive(Debug, Clone)]
pub struct Lockout {
    pub enabled: bool,
    /// Failures are counted within this window.
    pub window: Duration,
    /// Failures from one client address (any user) before the address is banned.
    pub client_threshold: u32,
    /// Failures for one user name (any client) before unknown clients are refused for it.
    pub user_threshold: u32,
    /// Failures for one user name from one client before that pair is banned.
    pub pair_threshold: u32,
    /// The first ban; each further ban of the same key doubles, up to `max_ban`.
    pub ban: Duration,
    pub max_ban: Duration,
    /// How long a client that signed in as a user stays exempt from that user's lockout.
    pub known_client: Duration,
    /// How long a lockout refusal (a ban, or too many guesses in flight) is held before it goes
    /// out (zero: at once). A client hammering the gateway then gets one answer per `tarpit`
    /// per connection, as with HAProxy's `http-request tarpit`, so it can no longer ask for
    /// refusals as fast as the CPU the real users need can make them.
    pub tarpit: Duration,
}

/// The longest `lockout.tarpit`.
const MAX_TARPIT: Duration = Duration::from_secs(60);

/// The admin listener (`/metrics`, `/healthz`). Off unless `[admin]` is present.
#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    /// Users (from the htpasswd file) who may open the dashboard. Empty: no dashboard.
    pub users: Vec<String>,
}

/// The forward-auth endpoint for nginx `auth_request`, Caddy `forward_auth` and Traefik
/// ForwardAuth.
#[derive(Debug, Clone)]
pub struct ForwardAuth {
    /// The path the proxy asks on, e.g. "/_authgate/check". Requests to it are decisions about
    /// another request, never forwarded.
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub trusted_proxies: Vec<IpNet>,
    pub audit_log: AuditTarget,
    pub realm: String,
    pub max_header_bytes: usize,
    pub header_timeout: Duration,
    pub upstream_connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_timeout: Duration,
    pub cache_capacity: u64,
    pub cache_ttl: Duration,
    /// Waiting password verifications per hashing thread, at most.
    pub hash_queue: usize,
    /// How long a verification waits for room in a full queue before 503 `hashing_busy`.
    pub hash_wait: Duration,
    pub identity_headers: IdentityHeaders,
}

/// Names of the headers authgate sets on forwarded requests.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user: String,
    pub groups: String,
    pub method: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditTarget {
    Off,
    Stdout,
    File(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Users {
    pub htpasswd: PathBuf,
    /// Watch the file and reload it on change (SIGHUP always reloads).
    pub watch: bool,
    /// The file as loaded by `load`, so `serve` starts with exactly what `check` validated.
    pub initial: std::sync::Arc<Htpasswd>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// RFC 7617, against htpasswd files and store users.
    Basic,
    /// RFC 6750: authgate API tokens and JWTs from `[jwt]`.
    Bearer,
    /// A browser session cookie from authgate's sign-in page.
    Session,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Basic => "basic",
            Scheme::Bearer => "bearer",
            Scheme::Session => "session",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    /// Index in the file, for messages and the audit log (`route[0]`).
    pub index: usize,
    /// Lower-case host without port, or None for any host.
    pub host: Option<String>,
    /// Normalised prefix: starts with '/', no trailing '/' except for "/" itself.
    pub path: String,
    pub backend: Backend,
    /// Accepted schemes, challenged in this order. Empty: no authentication.
    pub auth: Vec<Scheme>,
    pub realm: String,
    pub allow: Option<Allow>,
    /// Forward the client's `Authorization` header to the upstream (default: removed).
    pub pass_authorization: bool,
    pub max_body: Option<u64>,
    /// Scopes a bearer token must carry, all of them (RFC 6750 §3 `insufficient_scope`).
    /// Password and session sign-ins are not scoped: `allow` restricts those.
    pub scopes: Vec<String>,
}

impl Route {
    /// A name for logs: `route[1] /admin` or `route[1] example.com/admin`.
    pub fn label(&self) -> String {
        match &self.host {
            Some(h) => format!("{h}{}", self.path),
            None => self.path.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Backend {
    Upstream(Upstream),
    Static(PathBuf),
    /// No backend: the route only exists for forward-auth decisions. In gateway mode it
    /// answers 404 `no_route`.
    None,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://host:port`, as an authority for building request URIs.
    pub authority: http::uri::Authority,
}

#[derive(Debug, Clone, Default)]
pub struct Allow {
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
}

// ---- the file as written -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    users: Option<RawUsers>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<Spanned<String>>>,
    #[serde(default, rename = "route")]
    routes: Vec<RawRoute>,
    forward_auth: Option<RawForwardAuth>,
    admin: Option<RawAdmin>,
    #[serde(default)]
    lockout: RawLockout,
    store: Option<RawStore>,
    tokens: Option<RawTokens>,
    jwt: Option<RawJwt>,
    sessions: Option<RawSessions>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTokens {
    idle_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJwt {
    issuer: Spanned<String>,
    audience: Spanned<toml::Value>,
    algorithms: Spanned<Vec<String>>,
    jwks_file: Option<Spanned<String>>,
    jwks_url: Option<Spanned<String>>,
    hs256_secret_file: Option<Spanned<String>>,
    leeway: Option<Spanned<String>>,
    typ: Option<String>,
    user_claim: Option<String>,
    groups_claim: Option<String>,
    scope_claim: Option<String>,
    jwks_refresh: Option<Spanned<String>>,
    jwks_min_refetch: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    idle_timeout: Option<Spanned<String>>,
    lifetime: Option<Spanned<String>>,
    cookie: Option<Spanned<String>>,
    secure: Option<bool>,
    #[serde(default)]
    allowed_return_origins: Vec<Spanned<String>>,
    title: Option<String>,
    logo: Option<Spanned<String>>,
    accent: Option<Spanned<String>>,
    background: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLockout {
    enabled: Option<bool>,
    window: Option<Spanned<String>>,
    client_threshold: Option<Spanned<u64>>,
    user_threshold: Option<Spanned<u64>>,
    pair_threshold: Option<Spanned<u64>>,
    ban: Option<Spanned<String>>,
    max_ban: Option<Spanned<String>>,
    known_client: Option<Spanned<String>>,
    tarpit: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    listen: Option<Spanned<String>>,
    #[serde(default)]
    users: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawForwardAuth {
    path: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    #[serde(default)]
    trusted_proxies: Vec<Spanned<String>>,
    audit_log: Option<Spanned<String>>,
    realm: Option<String>,
    max_header_bytes: Option<Spanned<u64>>,
    header_timeout: Option<Spanned<String>>,
    upstream_connect_timeout: Option<Spanned<String>>,
    upstream_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<u64>>,
    shutdown_timeout: Option<Spanned<String>>,
    cache_capacity: Option<Spanned<u64>>,
    cache_ttl: Option<Spanned<String>>,
    hash_queue: Option<Spanned<u64>>,
    hash_wait: Option<Spanned<String>>,
    user_header: Option<Spanned<String>>,
    groups_header: Option<Spanned<String>>,
    method_header: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUsers {
    htpasswd: Option<Spanned<String>>,
    #[serde(default = "yes")]
    watch: bool,
    password_max_age: Option<Spanned<String>>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    host: Option<Spanned<String>>,
    path: Spanned<String>,
    upstream: Option<Spanned<String>>,
    #[serde(rename = "static")]
    static_dir: Option<Spanned<String>>,
    auth: Option<Spanned<toml::Value>>,
    realm: Option<Spanned<String>>,
    allow: Option<Spanned<RawAllow>>,
    #[serde(default)]
    pass_authorization: bool,
    max_body: Option<Spanned<String>>,
    #[serde(default)]
    scopes: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    users: Vec<Spanned<String>>,
    #[serde(default)]
    groups: Vec<Spanned<String>>,
}

// ---- loading -------------------------------------------------------------------------------

/// Reads and validates the config at `path` and every file it names.
pub fn load(path: &Path) -> Loaded {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Loaded {
                config: None,
                problems: vec![Problem {
                    file: path.to_path_buf(),
                    line: 0,
                    column: 0,
                    key: String::new(),
                    message: format!("cannot read the configuration file: {e}"),
                    severity: Severity::Error,
                }],
            }
        }
    };
    load_str(path, &text)
}

/// Validates configuration text; `path` is used for messages and to resolve relative paths.
pub fn load_str(path: &Path, text: &str) -> Loaded {
    let mut cx = Checker {
        file: path.to_path_buf(),
        text,
        problems: Vec::new(),
    };
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let (line, column) = e.span().map(|s| cx.position(s.start)).unwrap_or((0, 0));
            cx.problems.push(Problem {
                file: cx.file.clone(),
                line,
                column,
                key: String::new(),
                message: e.message().trim().to_string(),
                severity: Severity::Error,
            });
            return Loaded {
                config: None,
                problems: cx.problems,
            };
        }
    };
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let config = cx.check(raw, &base, path);
    let has_errors = cx.problems.iter().any(|p| p.severity == Severity::Error);
    Loaded {
        config: if has_errors { None } else { Some(config) },
        problems: cx.problems,
    }
}

/// What a route is checked against.
#[derive(Clone, Copy)]
struct RouteContext<'a> {
    base: &'a Path,
    server: &'a Server,
    groups: &'a BTreeMap<String, BTreeSet<String>>,
    known_users: &'a Option<BTreeSet<String>>,
    /// An htpasswd file or a store.
    has_users: bool,
    /// A store (API tokens) or `[jwt]`.
    bearer: bool,
    /// A store (sessions live there).
    sessions: bool,
    forward_auth: bool,
}

struct Checker<'t> {
    file: PathBuf,
    text: &'t str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
        let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
        (line, column)
    }

    fn at<T>(&mut self, spanned: &Spanned<T>, key: &str, severity: Severity, message: String) {
        let (line, column) = self.position(spanned.span().start);
        self.problems.push(Problem {
            file: self.file.clone(),
            line,
            column,
            key: key.to_string(),
            message,
            severity,
        });
    }

    fn error<T>(&mut self, spanned: &Spanned<T>, key: &str, message: impl Into<String>) {
        self.at(spanned, key, Severity::Error, message.into());
    }

    fn warn<T>(&mut self, spanned: &Spanned<T>, key: &str, message: impl Into<String>) {
        self.at(spanned, key, Severity::Warning, message.into());
    }

    fn duration(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
    ) -> Duration {
        self.duration_from(value, key, default, false)
    }

    fn duration_from(
        &mut self,
        value: &Option<Spanned<String>>,
        key: &str,
        default: Duration,
        zero_allowed: bool,
    ) -> Duration {
        let Some(v) = value else { return default };
        match humantime::parse_duration(v.get_ref()) {
            Ok(d) if zero_allowed || !d.is_zero() => d,
            _ => {
                self.error(
                    v,
                    key,
                    format!(
                        "`{}` is not a duration; write e.g. \"500ms\", \"10s\", \"5m\"",
                        v.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn count(&mut self, value: &Option<Spanned<u64>>, key: &str, default: u64, min: u64) -> u64 {
        let Some(v) = value else { return default };
        if *v.get_ref() < min {
            self.error(v, key, format!("must be at least {min}"));
            return default;
        }
        *v.get_ref()
    }

    fn header_name(&mut self, value: &Option<Spanned<String>>, key: &str, default: &str) -> String {
        let Some(v) = value else {
            return default.to_string();
        };
        // Letters, digits and '-' only: an '_' (or another token character) would make a
        // name that CGI, PHP and WSGI read as the same variable as a client's spelling with
        // '-', which authgate removes only in the canonical form.
        let plain = v
            .get_ref()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        match http::HeaderName::from_bytes(v.get_ref().as_bytes()) {
            Ok(name) if plain => name.as_str().to_string(),
            _ => {
                self.error(v, key, "not a valid header name (letters, digits and '-')");
                default.to_string()
            }
        }
    }

    fn check(&mut self, raw: RawConfig, base: &Path, path: &Path) -> Config {
        let server = self.check_server(&raw.server, base);
        let users = raw.users.as_ref().and_then(|u| self.check_users(u, base));
        let store = raw.store.as_ref().map(|s| base.join(s.path.get_ref()));
        // With a store, users come and go at run time: names cannot be checked here.
        let known_users: Option<BTreeSet<String>> = if store.is_some() {
            None
        } else {
            users
                .as_ref()
                .map(|u| u.initial.users().map(str::to_string).collect())
        };
        let has_users = users.is_some() || store.is_some();
        let password_max_age = raw
            .users
            .as_ref()
            .and_then(|u| u.password_max_age.as_ref())
            .map(|v| self.duration(&Some(v.clone()), "users.password_max_age", Duration::ZERO));
        let tokens = Tokens {
            idle_timeout: raw.tokens.as_ref().and_then(|t| {
                t.idle_timeout
                    .as_ref()
                    .map(|v| self.duration(&Some(v.clone()), "tokens.idle_timeout", Duration::ZERO))
            }),
        };
        if raw.tokens.is_some() && store.is_none() {
            self.problems.push(Problem {
                file: self.file.clone(),
                line: 1,
                column: 1,
                key: "tokens".into(),
                message: "API tokens live in the store: add [store] path = \"authgate.db\"".into(),
                severity: Severity::Error,
            });
        }
        let jwt = raw
            .jwt
            .as_ref()
            .and_then(|j| self.check_jwt(j, base, server.cache_capacity));
        let sessions = self.check_sessions(raw.sessions.as_ref());

        let mut groups = BTreeMap::new();
        for (name, members) in &raw.groups {
            let mut set = BTreeSet::new();
            for m in members {
                if let Some(known) = &known_users {
                    if !known.contains(m.get_ref()) {
                        self.error(
                            m,
                            &format!("groups.{name}"),
                            format!(
                                "user `{}` is not in the htpasswd file; add the user or remove \
                                 them from the group",
                                m.get_ref()
                            ),
                        );
                    }
                }
                set.insert(m.get_ref().clone());
            }
            groups.insert(name.clone(), set);
        }

        let forward_auth = raw.forward_auth.as_ref().and_then(|fa| {
            let p = fa.path.get_ref();
            if !p.starts_with('/') || crate::normalize::normalize_path(p).as_deref() != Ok(p.as_str()) {
                self.error(&fa.path, "forward_auth.path", "write a plain absolute path such as \"/_authgate/check\"");
                return None;
            }
            if server.trusted_proxies.is_empty() {
                self.error(
                    &fa.path,
                    "forward_auth.path",
                    "forward-auth answers only the proxies in server.trusted_proxies, and that list is empty; add the proxy's address, e.g. trusted_proxies = [\"127.0.0.1\"]",
                );
                return None;
            }
            Some(ForwardAuth { path: p.clone() })
        });

        let admin = raw.admin.as_ref().map(|a| {
            let default = SocketAddr::from(([127, 0, 0, 1], 9901));
            let mut admins = Vec::new();
            for u in &a.users {
                if known_users.as_ref().is_some_and(|k| !k.contains(u.get_ref())) || !has_users {
                    self.error(u, "admin.users", format!("user `{}` is not in the htpasswd file ([users])", u.get_ref()));
                }
                admins.push(u.get_ref().clone());
            }
            let Some(v) = &a.listen else {
                return Admin { listen: default, users: admins };
            };
            match v.get_ref().parse::<SocketAddr>() {
                Ok(addr) => {
                    if !addr.ip().is_loopback() {
                        self.warn(v, "admin.listen", "the admin listener is not on loopback: anyone who can reach it reads the metrics");
                    }
                    Admin { listen: addr, users: admins }
                }
                Err(_) => {
                    self.error(v, "admin.listen", format!("`{}` is not an address; write IP:PORT, e.g. \"127.0.0.1:9901\"", v.get_ref()));
                    Admin { listen: default, users: admins }
                }
            }
        });

        let l = &raw.lockout;
        let threshold = |cx: &mut Self, v: &Option<Spanned<u64>>, key: &str, default: u64| {
            u32::try_from(cx.count(v, key, default, 1)).unwrap_or(u32::MAX)
        };
        let lockout = Lockout {
            enabled: l.enabled.unwrap_or(true),
            window: self.duration(&l.window, "lockout.window", Duration::from_secs(600)),
            client_threshold: threshold(self, &l.client_threshold, "lockout.client_threshold", 50),
            user_threshold: threshold(self, &l.user_threshold, "lockout.user_threshold", 20),
            pair_threshold: threshold(self, &l.pair_threshold, "lockout.pair_threshold", 10),
            ban: self.duration(&l.ban, "lockout.ban", Duration::from_secs(60)),
            max_ban: self.duration(&l.max_ban, "lockout.max_ban", Duration::from_secs(3600)),
            known_client: self.duration(
                &l.known_client,
                "lockout.known_client",
                Duration::from_secs(7 * 86400),
            ),
            // "0s" (off) is a valid tarpit.
            tarpit: self.duration_from(&l.tarpit, "lockout.tarpit", Duration::from_secs(1), true),
        };
        if let Some(v) = l.tarpit.as_ref().filter(|_| lockout.tarpit > MAX_TARPIT) {
            // Longer, and most clients have given up before their answer goes out.
            self.error(v, "lockout.tarpit", "at most \"60s\"");
        }

        let mut routes = Vec::new();
        for (index, r) in raw.routes.iter().enumerate() {
            let cx = RouteContext {
                base,
                server: &server,
                groups: &groups,
                known_users: &known_users,
                has_users,
                bearer: store.is_some() || jwt.is_some(),
                sessions: store.is_some(),
                forward_auth: raw.forward_auth.is_some(),
            };
            if let Some(route) = self.check_route(index, r, &cx) {
                routes.push(route);
            }
        }
        self.check_overlaps(&raw.routes, &routes);
        if raw.routes.is_empty() {
            self.problems.push(Problem {
                file: self.file.clone(),
                line: 1,
                column: 1,
                key: "route".into(),
                message: "no [[route]] is defined: every request would get 404".into(),
                severity: Severity::Warning,
            });
        }
        Config {
            path: path.to_path_buf(),
            server,
            users,
            groups,
            routes,
            forward_auth,
            admin,
            lockout,
            store,
            password_max_age,
            tokens,
            jwt,
            sessions,
        }
    }

    fn check_server(&mut self, raw: &RawServer, base: &Path) -> Server {
        let listen = match &raw.listen {
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
            Some(v) => match v.get_ref().parse() {
                Ok(a) => a,
                Err(_) => {
                    self.error(
                        v,
                        "server.listen",
                        format!(
                            "`{}` is not an address; write IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::]:8080\"",
                            v.get_ref()
                        ),
                    );
                    SocketAddr::from(([127, 0, 0, 1], 8080))
                }
            },
        };
        let mut trusted_proxies = Vec::new();
        for p in &raw.trusted_proxies {
            let s = p.get_ref();
            let parsed = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from));
            match parsed {
                Ok(net) => trusted_proxies.push(net),
                Err(_) => self.error(
                    p,
                    "server.trusted_proxies",
                    format!(
                        "`{s}` is not an IP address or CIDR block (e.g. \"10.0.0.0/8\", \"::1\")"
                    ),
                ),
            }
        }
        let audit_log = match raw.audit_log.as_ref().map(|v| v.get_ref().as_str()) {
            None | Some("stdout") => AuditTarget::Stdout,
            Some("off") => AuditTarget::Off,
            Some("") => {
                if let Some(v) = &raw.audit_log {
                    self.error(
                        v,
                        "server.audit_log",
                        "write \"stdout\", \"off\" or a file path",
                    );
                }
                AuditTarget::Stdout
            }
            Some(p) => AuditTarget::File(base.join(p)),
        };
        Server {
            listen,
            trusted_proxies,
            audit_log,
            realm: raw.realm.clone().unwrap_or_else(|| "authgate".into()),
            max_header_bytes: self.count(
                &raw.max_header_bytes,
                "server.max_header_bytes",
                16 * 1024,
                1024,
            ) as usize,
            header_timeout: self.duration(
                &raw.header_timeout,
                "server.header_timeout",
                Duration::from_secs(10),
            ),
            upstream_connect_timeout: self.duration(
                &raw.upstream_connect_timeout,
                "server.upstream_connect_timeout",
                Duration::from_secs(5),
            ),
            upstream_timeout: self.duration(
                &raw.upstream_timeout,
                "server.upstream_timeout",
                Duration::from_secs(60),
            ),
            max_connections: self.count(&raw.max_connections, "server.max_connections", 10_000, 1)
                as usize,
            shutdown_timeout: self.duration(
                &raw.shutdown_timeout,
                "server.shutdown_timeout",
                Duration::from_secs(30),
            ),
            cache_capacity: self.count(&raw.cache_capacity, "server.cache_capacity", 100_000, 1),
            cache_ttl: self.duration(&raw.cache_ttl, "server.cache_ttl", Duration::from_secs(600)),
            hash_queue: self.count(&raw.hash_queue, "server.hash_queue", 64, 1) as usize,
            hash_wait: self.duration(
                &raw.hash_wait,
                "server.hash_wait",
                Duration::from_millis(500),
            ),
            identity_headers: IdentityHeaders {
                user: self.header_name(&raw.user_header, "server.user_header", "x-authgate-user"),
                groups: self.header_name(
                    &raw.groups_header,
                    "server.groups_header",
                    "x-authgate-groups",
                ),
                method: self.header_name(
                    &raw.method_header,
                    "server.method_header",
                    "x-authgate-method",
                ),
            },
        }
    }

    fn check_users(&mut self, raw: &RawUsers, base: &Path) -> Option<Users> {
        let htpasswd = raw.htpasswd.as_ref()?;
        let path = base.join(htpasswd.get_ref());
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                self.error(
                    htpasswd,
                    "users.htpasswd",
                    format!("cannot read `{}`: {e}", path.display()),
                );
                return None;
            }
        };
        match Htpasswd::parse(&text) {
            Ok(h) => {
                for user in h.users() {
                    if let Some(entry) = h.get(user) {
                        if let Some(why) = entry.hash.is_weak() {
                            self.problems.push(Problem {
                                file: path.clone(),
                                line: entry.line,
                                column: user.chars().count() + 2,
                                key: String::new(),
                                message: format!("user `{user}`: {why}"),
                                severity: Severity::Warning,
                            });
                        }
                    }
                }
                Some(Users {
                    htpasswd: path,
                    watch: raw.watch,
                    initial: std::sync::Arc::new(h),
                })
            }
            Err(errors) => {
                for e in errors {
                    self.problems.push(Problem {
                        file: path.clone(),
                        line: e.line,
                        column: e.column,
                        key: String::new(),
                        message: e.message,
                        severity: Severity::Error,
                    });
                }
                None
            }
        }
    }

    fn check_jwt(&mut self, raw: &RawJwt, base: &Path, cache_capacity: u64) -> Option<JwtSettings> {
        use jsonwebtoken::Algorithm as A;
        let mut ok = true;
        let issuer = raw.issuer.get_ref().clone();
        if issuer.is_empty() {
            self.error(
                &raw.issuer,
                "jwt.issuer",
                "the issuer (`iss`) must be given exactly as the identity provider writes it",
            );
            ok = false;
        }
        let audiences: Vec<String> = match raw.audience.get_ref() {
            toml::Value::String(s) => vec![s.clone()],
            toml::Value::Array(items) => items
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            self.error(&raw.audience, "jwt.audience", "write the audience this gateway accepts, e.g. audience = \"https://api.example.com\" or a list");
            ok = false;
        }
        let hs256_secret = match &raw.hs256_secret_file {
            None => None,
            Some(f) => match std::fs::read_to_string(base.join(f.get_ref())) {
                Ok(text) if text.trim().len() >= 32 => {
                    Some(authgate_proto::Secret::new(text.trim().to_owned()))
                }
                Ok(_) => {
                    self.error(
                        f,
                        "jwt.hs256_secret_file",
                        "the HS256 secret must be at least 32 bytes (RFC 7518 §3.2)",
                    );
                    ok = false;
                    None
                }
                Err(e) => {
                    self.error(f, "jwt.hs256_secret_file", format!("cannot read it: {e}"));
                    ok = false;
                    None
                }
            },
        };
        let mut algorithms = Vec::new();
        for name in raw.algorithms.get_ref() {
            let alg = match name.as_str() {
                "RS256" => A::RS256,
                "PS256" => A::PS256,
                "ES256" => A::ES256,
                "ES384" => A::ES384,
                "EdDSA" => A::EdDSA,
                "HS256" if hs256_secret.is_some() => A::HS256,
                "HS256" => {
                    self.error(&raw.algorithms, "jwt.algorithms", "HS256 needs hs256_secret_file (a shared secret); without one it would let anyone who knows a public key sign tokens (RFC 8725 §2.1)");
                    ok = false;
                    continue;
                }
                other => {
                    let why = if other.eq_ignore_ascii_case("none") {
                        "`none` means unsigned tokens and is never accepted (RFC 8725 §3.1)"
                            .to_string()
                    } else {
                        format!("`{other}` is not supported")
                    };
                    self.error(
                        &raw.algorithms,
                        "jwt.algorithms",
                        format!("{why}; allowed: RS256, PS256, ES256, ES384, EdDSA, HS256"),
                    );
                    ok = false;
                    continue;
                }
            };
            algorithms.push(alg);
        }
        if algorithms.is_empty() && ok {
            self.error(
                &raw.algorithms,
                "jwt.algorithms",
                "list the algorithms your identity provider signs with, e.g. [\"RS256\"]",
            );
            ok = false;
        }
        let jwks_file = raw.jwks_file.as_ref().map(|f| base.join(f.get_ref()));
        let jwks_url = raw.jwks_url.as_ref().map(|u| u.get_ref().clone());
        if let Some(u) = &raw.jwks_url {
            if !(u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://")) {
                self.error(
                    u,
                    "jwt.jwks_url",
                    "write an http(s) URL, e.g. \"https://idp.example.com/.well-known/jwks.json\"",
                );
                ok = false;
            }
        }
        let needs_keys = algorithms.iter().any(|a| *a != A::HS256);
        if needs_keys && jwks_file.is_none() && jwks_url.is_none() {
            self.error(&raw.issuer, "jwt", "say where the signing keys are: jwks_url = \"https://…/jwks.json\" or jwks_file = \"FILE\"");
            ok = false;
        }
        if jwks_file.is_some() && jwks_url.is_some() {
            self.error(&raw.issuer, "jwt", "give jwks_file or jwks_url, not both");
            ok = false;
        }
        let jwt = JwtSettings {
            issuer,
            audiences,
            algorithms,
            jwks: match (jwks_file, jwks_url) {
                (Some(f), _) => JwksSource::File(f),
                (None, Some(u)) => JwksSource::Url(u),
                (None, None) => JwksSource::None,
            },
            hs256_secret,
            cache_capacity,
            leeway: raw.leeway.as_ref().map_or(Duration::from_secs(60), |v| {
                humantime::parse_duration(v.get_ref()).unwrap_or_else(|_| {
                    self.error(v, "jwt.leeway", "write a duration such as \"60s\"");
                    Duration::from_secs(60)
                })
            }),
            typ: raw.typ.clone(),
            user_claim: raw.user_claim.clone().unwrap_or_else(|| "sub".into()),
            groups_claim: Some(raw.groups_claim.clone().unwrap_or_else(|| "groups".into()))
                .filter(|g| !g.is_empty()),
            scope_claim: raw.scope_claim.clone().unwrap_or_else(|| "scope".into()),
            jwks_refresh: self.duration(
                &raw.jwks_refresh,
                "jwt.jwks_refresh",
                Duration::from_secs(600),
            ),
            jwks_min_refetch: self.duration(
                &raw.jwks_min_refetch,
                "jwt.jwks_min_refetch",
                Duration::from_secs(30),
            ),
        };
        ok.then_some(jwt)
    }

    fn check_sessions(&mut self, raw: Option<&RawSessions>) -> Sessions {
        let default = RawSessions::default();
        let raw = raw.unwrap_or(&default);
        let cookie = match &raw.cookie {
            None => "authgate_session".to_string(),
            Some(c) => {
                let v = c.get_ref();
                // RFC 6265 §4.1.1: cookie-name is a token.
                if v.is_empty()
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
                {
                    self.error(
                        c,
                        "sessions.cookie",
                        "a cookie name is letters, digits, '-', '_' or '.'",
                    );
                }
                v.clone()
            }
        };
        let mut allowed_return_origins = Vec::new();
        for o in &raw.allowed_return_origins {
            let v = o.get_ref().trim_end_matches('/');
            let valid = (v.starts_with("https://") || v.starts_with("http://"))
                && v.split_once("://").is_some_and(|(_, rest)| {
                    !rest.is_empty() && !rest.contains(['/', '?', '#', '@', ' '])
                });
            if !valid {
                self.error(
                    o,
                    "sessions.allowed_return_origins",
                    "write an origin: scheme and host (and port), e.g. \"https://app.example.com\"",
                );
            }
            allowed_return_origins.push(v.to_ascii_lowercase());
        }
        let color = |cx: &mut Self, v: &Option<Spanned<String>>, key: &str, default: &str| match v {
            None => default.to_string(),
            Some(c) => {
                if let Err(e) = crate::signin::page::check_color(c.get_ref()) {
                    cx.error(c, key, e);
                }
                c.get_ref().clone()
            }
        };
        let accent = color(self, &raw.accent, "sessions.accent", "#1f5fbf");
        let background = color(self, &raw.background, "sessions.background", "#f4f5f7");
        let logo = raw.logo.as_ref().map(|l| {
            if let Err(e) = crate::signin::page::check_logo(l.get_ref()) {
                self.error(l, "sessions.logo", e);
            }
            l.get_ref().clone()
        });
        Sessions {
            idle_timeout: self.duration(
                &raw.idle_timeout,
                "sessions.idle_timeout",
                Duration::from_secs(30 * 60),
            ),
            lifetime: self.duration(
                &raw.lifetime,
                "sessions.lifetime",
                Duration::from_secs(12 * 3600),
            ),
            cookie,
            secure: raw.secure,
            allowed_return_origins,
            title: raw.title.clone().unwrap_or_else(|| "Sign in".into()),
            logo,
            accent,
            background,
        }
    }

    fn check_route(
        &mut self,
        index: usize,
        raw: &RawRoute,
        cx: &RouteContext<'_>,
    ) -> Option<Route> {
        let RouteContext {
            base,
            server,
            groups,
            known_users,
            has_users,
            bearer,
            sessions,
            forward_auth,
        } = *cx;
        let key = |k: &str| format!("route[{index}].{k}");
        let mut ok = true;

        let host = raw.host.as_ref().and_then(|h| {
            let v = h.get_ref().trim_end_matches('.').to_ascii_lowercase();
            let valid = !v.is_empty()
                && v.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if valid {
                Some(v)
            } else {
                self.error(
                    h,
                    &key("host"),
                    "write a host name without scheme or port, e.g. \"app.example.com\"",
                );
                ok = false;
                None
            }
        });

        let p = raw.path.get_ref();
        let path = if !p.starts_with('/') {
            self.error(
                &raw.path,
                &key("path"),
                format!("`{p}` must start with '/'"),
            );
            ok = false;
            String::new()
        } else {
            match crate::normalize::normalize_path(p) {
                Ok(n) if n == *p || n == p.trim_end_matches('/') || format!("{n}/") == *p => {
                    if n.len() > 1 {
                        n.trim_end_matches('/').to_string()
                    } else {
                        n
                    }
                }
                _ => {
                    self.error(
                        &raw.path,
                        &key("path"),
                        format!("`{p}` is not a normalised path prefix (no '//', '.', '..', ';' or encoded separators)"),
                    );
                    ok = false;
                    String::new()
                }
            }
        };

        let backend = match (&raw.upstream, &raw.static_dir) {
            (Some(_), Some(s)) => {
                self.error(
                    s,
                    &key("static"),
                    "a route has either `upstream` or `static`, not both",
                );
                ok = false;
                None
            }
            // A route that only answers forward-auth questions needs no backend.
            (None, None) if forward_auth => Some(Backend::None),
            (None, None) => {
                self.error(&raw.path, &key("path"), "the route needs `upstream = \"http://host:port\"` or `static = \"dir\"` (or a [forward_auth] section, for decision-only routes)");
                ok = false;
                None
            }
            (Some(u), None) => match parse_upstream(u.get_ref()) {
                Ok(up) => Some(Backend::Upstream(up)),
                Err(why) => {
                    self.error(u, &key("upstream"), why);
                    ok = false;
                    None
                }
            },
            (None, Some(s)) => {
                let dir = base.join(s.get_ref());
                if dir.is_dir() {
                    Some(Backend::Static(dir))
                } else {
                    self.error(
                        s,
                        &key("static"),
                        format!("`{}` is not a directory", dir.display()),
                    );
                    ok = false;
                    None
                }
            }
        };

        let auth = match &raw.auth {
            None => {
                self.error(
                    &raw.path,
                    &key("auth"),
                    "say how this route is protected: `auth = [\"basic\"]`, or `auth = \"none\"` for a public route",
                );
                ok = false;
                Vec::new()
            }
            Some(a) => match self.check_auth(a, &key("auth")) {
                Some(list) => list,
                None => {
                    ok = false;
                    Vec::new()
                }
            },
        };
        if let Some(a) = &raw.auth {
            let needs = [
                (
                    (auth.contains(&Scheme::Basic) || auth.contains(&Scheme::Session)) && !has_users,
                    "`basic` and `session` need a user source: add [users] htpasswd = \"FILE\" or [store] path = \"authgate.db\"",
                ),
                (
                    auth.contains(&Scheme::Bearer) && !bearer,
                    "`bearer` needs API tokens ([store] path = \"authgate.db\") or JWTs ([jwt])",
                ),
                (
                    auth.contains(&Scheme::Session) && !sessions,
                    "`session` keeps sessions in the store: add [store] path = \"authgate.db\"",
                ),
            ];
            for (missing, message) in needs {
                if missing {
                    self.error(a, &key("auth"), message);
                    ok = false;
                }
            }
        }
        let mut scopes = Vec::new();
        for sc in &raw.scopes {
            let v = sc.get_ref();
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            let valid = !v.is_empty()
                && v.bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
            if !valid {
                self.error(
                    sc,
                    &key("scopes"),
                    "a scope is printable ASCII without spaces, '\"' or '\\'",
                );
                ok = false;
            }
            scopes.push(v.clone());
        }
        if !raw.scopes.is_empty() && !auth.contains(&Scheme::Bearer) {
            if let Some(first) = raw.scopes.first() {
                self.error(
                    first,
                    &key("scopes"),
                    "scopes apply to bearer tokens: add \"bearer\" to auth",
                );
                ok = false;
            }
        }

        let allow = raw.allow.as_ref().map(|a| {
            if auth.is_empty() {
                self.error(
                    a,
                    &key("allow"),
                    "`allow` has no effect on a route with auth = \"none\"",
                );
                ok = false;
            }
            let mut allow = Allow::default();
            for u in &a.get_ref().users {
                if let Some(known) = known_users {
                    if !known.contains(u.get_ref()) {
                        self.error(
                            u,
                            &key("allow.users"),
                            format!("user `{}` is not in the htpasswd file", u.get_ref()),
                        );
                        ok = false;
                    }
                }
                allow.users.insert(u.get_ref().clone());
            }
            for g in &a.get_ref().groups {
                if !groups.contains_key(g.get_ref()) {
                    let known: Vec<_> = groups.keys().map(String::as_str).collect();
                    self.error(
                        g,
                        &key("allow.groups"),
                        format!(
                            "group `{}` is not defined in [groups] (defined: {})",
                            g.get_ref(),
                            if known.is_empty() {
                                "none".into()
                            } else {
                                known.join(", ")
                            }
                        ),
                    );
                    ok = false;
                }
                allow.groups.insert(g.get_ref().clone());
            }
            if allow.users.is_empty() && allow.groups.is_empty() {
                self.warn(
                    a,
                    &key("allow"),
                    "an empty `allow` lets no one in: every authenticated user gets 403",
                );
            }
            allow
        });

        let realm = match &raw.realm {
            Some(r) => {
                if r.get_ref().is_empty() || r.get_ref().chars().any(char::is_control) {
                    self.error(
                        r,
                        &key("realm"),
                        "the realm must be non-empty text without control characters",
                    );
                    ok = false;
                }
                r.get_ref().clone()
            }
            None => server.realm.clone(),
        };

        let max_body = raw
            .max_body
            .as_ref()
            .and_then(|m| match parse_size(m.get_ref()) {
                Some(n) => Some(n),
                None => {
                    self.error(
                        m,
                        &key("max_body"),
                        "write a size such as \"10MiB\", \"512KiB\" or \"1000000\"",
                    );
                    ok = false;
                    None
                }
            });

        if raw.pass_authorization && auth.is_empty() {
            self.warn(
                &raw.path,
                &key("pass_authorization"),
                "has no effect without authentication",
            );
        }

        if !ok {
            return None;
        }
        Some(Route {
            index,
            host,
            path,
            backend: backend?,
            auth,
            realm,
            allow,
            pass_authorization: raw.pass_authorization,
            max_body,
            scopes,
        })
    }

    fn check_auth(&mut self, value: &Spanned<toml::Value>, key: &str) -> Option<Vec<Scheme>> {
        const VALID: &str = "write auth = \"none\" or a list of schemes, e.g. auth = [\"basic\"]";
        let names: Vec<&toml::Value> = match value.get_ref() {
            toml::Value::String(s) if s == "none" => return Some(Vec::new()),
            toml::Value::String(_) => vec![value.get_ref()],
            toml::Value::Array(items) => items.iter().collect(),
            _ => {
                self.error(value, key, VALID);
                return None;
            }
        };
        let mut schemes = Vec::new();
        for n in names {
            let scheme = match n.as_str() {
                Some("basic") => Some(Scheme::Basic),
                Some("bearer") => Some(Scheme::Bearer),
                Some("session") => Some(Scheme::Session),
                _ => None,
            };
            match n.as_str() {
                Some(name) if scheme.is_some() => {
                    let scheme = scheme?;
                    if schemes.contains(&scheme) {
                        self.error(value, key, format!("`{name}` is listed twice"));
                        return None;
                    }
                    schemes.push(scheme)
                }
                Some("none") => {
                    self.error(value, key, "\"none\" cannot be combined with other schemes");
                    return None;
                }
                Some(other) => {
                    self.error(
                        value,
                        key,
                        format!("unknown scheme `{other}`; supported: \"basic\", \"bearer\", \"session\""),
                    );
                    return None;
                }
                None => {
                    self.error(value, key, VALID);
                    return None;
                }
            }
        }
        if schemes.is_empty() {
            self.error(value, key, VALID);
            return None;
        }
        Some(schemes)
    }

    /// Two routes with the same host and prefix: the second could never match.
    fn check_overlaps(&mut self, raw: &[RawRoute], routes: &[Route]) {
        // Keyed by the path in lower case: two prefixes that differ only in letter case could
        // never both be reached, since a path whose case selects another route is refused as
        // ambiguous (route.rs).
        let mut seen: BTreeMap<(Option<&str>, String), (usize, &str)> = BTreeMap::new();
        for r in routes {
            let key = (r.host.as_deref(), r.path.to_ascii_lowercase());
            if let Some((first, first_path)) = seen.insert(key, (r.index, r.path.as_str())) {
                if let Some(raw_route) = raw.get(r.index) {
                    let message = if first_path == r.path {
                        format!(
                            "route[{}] has the same host and path as route[{first}], so it can never match",
                            r.index
                        )
                    } else {
                        format!(
                            "route[{}]'s path differs from route[{first}]'s only in letter case; \
                             many upstreams ignore case, so authgate refuses such paths as \
                             ambiguous: use one spelling",
                            r.index
                        )
                    };
                    self.error(
                        &raw_route.path,
                        &format!("route[{}].path", r.index),
                        message,
                    );
                }
            }
        }
    }
}

fn parse_upstream(s: &str) -> Result<Upstream, String> {
    const VALID: &str = "write the upstream as http://HOST:PORT, e.g. \"http://127.0.0.1:9000\"";
    let uri: http::Uri = s
        .parse()
        .map_err(|_| format!("`{s}` is not a URL; {VALID}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "`{s}`: https upstreams are not supported yet; {VALID}"
            ))
        }
        _ => return Err(format!("`{s}` has no http:// scheme; {VALID}")),
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| format!("`{s}` has no host; {VALID}"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "`{s}`: credentials in the upstream URL are not supported"
        ));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "`{s}`: a path in the upstream URL is not supported (requests keep their own path); {VALID}"
        ));
    }
    Ok(Upstream { authority })
}

/// "10MiB", "512KiB", "1MB", "1000".
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1000,
        "KiB" => 1024,
        "MB" => 1000 * 1000,
        "MiB" => 1024 * 1024,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Loaded {
        load_str(Path::new("/nonexistent/test.toml"), text)
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let l = load_text("[server]\nlisten = \"127.0.0.1:1\"\nlistne = 3\n");
        let p = l.errors().next().expect("an error");
        assert_eq!((p.line, p.column), (3, 1), "{p}");
        assert!(p.message.contains("listne"), "{p}");
    }

    #[test]
    fn bad_upstream_and_missing_auth_are_reported_together() {
        let l = load_text(
            "[[route]]\npath = \"/\"\nupstream = \"ftp://x\"\n\n[[route]]\npath = \"/a\"\nupstream = \"http://127.0.0.1:1\"\n",
        );
        let errs: Vec<_> = l.errors().collect();
        assert_eq!(errs.len(), 3, "{errs:#?}");
        assert_eq!(errs[0].key, "route[0].upstream");
        assert_eq!(errs[0].line, 3);
        assert_eq!(errs[1].key, "route[0].auth");
        assert_eq!(errs[2].key, "route[1].auth");
    }

    #[test]
    fn identity_header_names_are_letters_digits_and_dashes() {
        let route = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n";
        for bad in ["x_login", "x!login", "x login"] {
            let l = load_text(&format!("[server]\nuser_header = \"{bad}\"\n{route}"));
            let errs: Vec<_> = l.errors().collect();
            assert_eq!(errs.len(), 1, "{bad}: {errs:#?}");
            assert_eq!(errs[0].key, "server.user_header");
        }
        let l = load_text(&format!("[server]\nuser_header = \"X-Login\"\n{route}"));
        assert_eq!(l.errors().count(), 0);
    }

    #[test]
    fn the_tarpit_may_be_off_but_other_durations_may_not_be_zero() {
        let route = "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n";
        let tarpit = |l: &Loaded| l.config.as_ref().map(|c| c.lockout.tarpit);
        let l = load_text(route);
        assert_eq!(tarpit(&l), Some(Duration::from_secs(1)), "the default");
        let l = load_text(&format!("[lockout]\ntarpit = \"0s\"\n{route}"));
        assert_eq!(l.errors().count(), 0);
        assert_eq!(tarpit(&l), Some(Duration::ZERO));
        let l = load_text(&format!("[lockout]\ntarpit = \"250ms\"\n{route}"));
        assert_eq!(tarpit(&l), Some(Duration::from_millis(250)));
        for bad in ["tarpit = \"soon\"", "tarpit = \"61s\"", "ban = \"0s\""] {
            let l = load_text(&format!("[lockout]\n{bad}\n{route}"));
            let errs: Vec<_> = l.errors().collect();
            assert_eq!(errs.len(), 1, "{bad}: {errs:#?}");
        }
    }

    #[test]
    fn routes_differing_only_in_case_are_an_error() {
        let l = load_text(
            "[[route]]\npath = \"/api\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n[[route]]\npath = \"/API\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n",
        );
        let errs: Vec<_> = l.errors().collect();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(
            errs[0].message.contains("only in letter case"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn duplicate_routes_are_an_error() {
        let l = load_text(
            "[[route]]\npath = \"/a/\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n[[route]]\npath = \"/a\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n",
        );
        let errs: Vec<_> = l.errors().collect();
        assert_eq!(errs.len(), 1, "{errs:#?}");
        assert!(errs[0].message.contains("never match"));
        assert_eq!(errs[0].line, 6);
    }

    #[test]
    fn route_paths_are_normalised_prefixes() {
        let l = load_text(
            "[[route]]\npath = \"/a/../b\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n",
        );
        assert_eq!(l.errors().count(), 1);
        let l = load_text(
            "[[route]]\npath = \"/public/\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n",
        );
        let c = l.config.expect("valid");
        assert_eq!(c.routes[0].path, "/public");
    }

    #[test]
    fn basic_without_users_is_an_error() {
        let l = load_text(
            "[[route]]\npath = \"/\"\nupstream = \"http://127.0.0.1:1\"\nauth = [\"basic\"]\n",
        );
        let e: Vec<_> = l.errors().collect();
        assert_eq!(e.len(), 1);
        assert!(e[0].message.contains("[users]"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("7"), Some(7));
        assert_eq!(parse_size("1 KB"), Some(1000));
        assert_eq!(parse_size("x"), None);
    }
}
