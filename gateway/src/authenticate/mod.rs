//! Stage 4: who is this? Turns the `Authorization` header into a typed [`Identity`] or a
//! [`Reason`]. Builds no HTTP responses: that is [`crate::respond`]'s job.
//!
//! A new scheme (tokens, sessions, Digest) adds a module here and a [`Scheme`] variant; the
//! routing, answers and forwarding do not change.

pub mod basic;
pub mod hashing;
pub mod jwt;
pub mod lockout;
pub mod session;
pub mod token;

use std::collections::HashMap;
use std::sync::Arc;

use authgate_proto::{parse_credentials, Challenge};
use http::HeaderMap;

use crate::clock::Clock;
use crate::config::{Config, Route, Scheme};
use crate::metrics::Metrics;
use crate::reason::{Expired, Reason};
use crate::store::{Live, LiveUser};
use crate::users::Directory;

/// Who made the request, and how they proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub method: Scheme,
    pub groups: Arc<[String]>,
    /// The token's scopes, for bearer tokens; None for passwords and sessions, which are
    /// not scoped.
    pub scopes: Option<Arc<[String]>>,
}

/// What a password or session check concludes: the user (with their store record, for
/// store users), or the reason and the user name that was tried.
pub type Checked = Result<(String, Option<Arc<LiveUser>>), (Reason, Option<String>)>;

/// The result of authentication for one request.
#[derive(Debug)]
pub enum Outcome {
    /// The route needs no authentication.
    Anonymous,
    Authenticated(Identity),
    /// Refused, with the user name that was tried when there was one (for the audit log only).
    Denied(Reason, Option<String>),
}

/// What a request presents: its headers and its query (for `access_token`, RFC 6750 §2.3).
pub struct Presented<'a> {
    pub headers: &'a HeaderMap,
    /// The `Authorization` value, looked up once by [`Presented::new`].
    pub authorization: Option<&'a http::HeaderValue>,
    pub query: Option<&'a str>,
    pub client: std::net::IpAddr,
    /// The client uses TLS (directly or per a trusted proxy): only the `__Host-` session
    /// cookie counts.
    pub secure: bool,
    /// The client connection's last verified Basic credentials, when the request came on
    /// one (not for forward-auth questions, which describe someone else's request).
    pub remembered: Option<&'a basic::Remembered>,
}

impl<'a> Presented<'a> {
    pub fn new(
        headers: &'a HeaderMap,
        query: Option<&'a str>,
        client: std::net::IpAddr,
        secure: bool,
    ) -> Self {
        Presented {
            headers,
            authorization: headers.get(http::header::AUTHORIZATION),
            query,
            client,
            secure,
            remembered: None,
        }
    }
}

/// Every authenticator the configuration uses, built once at start-up.
pub struct Authenticators {
    basic: Option<basic::BasicAuth>,
    tokens: Option<token::TokenAuth>,
    jwt: Option<Arc<jwt::JwtVerifier>>,
    sessions: Option<session::SessionAuth>,
    clock: Clock,
    metrics: Arc<Metrics>,
    /// user -> groups, from `[groups]`.
    groups: HashMap<String, Arc<[String]>>,
    no_groups: Arc<[String]>,
}

impl Authenticators {
    pub fn new(
        config: &Config,
        users: Option<Arc<Directory>>,
        store: Option<Arc<Live>>,
        jwt: Option<Arc<jwt::JwtVerifier>>,
        metrics: Arc<Metrics>,
        lockout: Arc<lockout::Lockout>,
        clock: Clock,
    ) -> Self {
        let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
        for (group, members) in &config.groups {
            for m in members {
                by_user.entry(m.clone()).or_default().push(group.clone());
            }
        }
        Authenticators {
            basic: users.clone().map(|db| {
                basic::BasicAuth::new(db, config, Arc::clone(&metrics), lockout, clock.clone())
            }),
            metrics,
            tokens: match (&store, &users) {
                (Some(store), Some(users)) => Some(token::TokenAuth::new(
                    Arc::clone(store),
                    Arc::clone(users),
                    config.tokens.idle_timeout,
                )),
                _ => None,
            },
            sessions: match (&store, &users) {
                (Some(store), Some(users)) => Some(session::SessionAuth::new(
                    Arc::clone(store),
                    Arc::clone(users),
                    &config.sessions,
                )),
                _ => None,
            },
            jwt,
            clock,
            groups: by_user.into_iter().map(|(u, g)| (u, g.into())).collect(),
            no_groups: Arc::from(Vec::new()),
        }
    }

    pub fn sessions(&self) -> Option<&session::SessionAuth> {
        self.sessions.as_ref()
    }

    pub fn basic(&self) -> Option<&basic::BasicAuth> {
        self.basic.as_ref()
    }

    /// Authenticates a request for `route`. The request's single `Authorization` value
    /// (duplicates were refused by `normalize`) comes first; without one, a session cookie
    /// on a session route.
    pub async fn authenticate(&self, route: &Route, presented: &Presented<'_>) -> Outcome {
        if route.auth.is_empty() {
            return Outcome::Anonymous;
        }
        let authorization = presented.authorization;
        let bearer_route = route.auth.contains(&Scheme::Bearer);
        // RFC 6750 §2.3 allows `access_token` in the query, and §5.3 advises against it:
        // URLs end up in logs and Referer headers. authgate refuses it, saying why.
        if bearer_route && presented.query.is_some_and(has_access_token) {
            let why = if authorization.is_some() {
                "The access token was sent in two places"
            } else {
                "The access token was sent in the URL"
            };
            return Outcome::Denied(Reason::InvalidRequest(why), None);
        }
        let Some(value) = authorization else {
            if let (true, Some(sessions)) = (route.auth.contains(&Scheme::Session), &self.sessions)
            {
                if let Some(cookie) = sessions.cookie_value(presented.headers, presented.secure) {
                    let started = std::time::Instant::now();
                    let now = self.clock.now().as_secs();
                    let outcome = match sessions.authenticate(cookie, now) {
                        Ok((user, stored)) => self.identity(user, Scheme::Session, stored, None),
                        Err((reason, user)) => Outcome::Denied(reason, user),
                    };
                    self.metrics
                        .authentication(Scheme::Session, started.elapsed());
                    return outcome;
                }
            }
            return Outcome::Denied(Reason::MissingCredentials, None);
        };
        // The usual `Basic <base64>` is read without the general parser, which would read it
        // the same; anything else, well-formed or not, goes to the parser, which names the
        // fault (see `decode_plain_basic`).
        if let (true, Some(basic)) = (route.auth.contains(&Scheme::Basic), &self.basic) {
            // The same value as the connection's last verified one needs no decoding. Only
            // values `decode_plain_basic` reads are remembered, so only they are digested.
            let remembered = presented
                .remembered
                .filter(|_| authgate_proto::plain_basic_token68(value.as_bytes()).is_some())
                .map(|r| (r, basic.digest(value.as_bytes())));
            if let Some((r, digest)) = &remembered {
                if let Some(checked) = basic.recall(r, digest, presented.client) {
                    return self.password_outcome(checked);
                }
            }
            if let Some(c) = authgate_proto::decode_plain_basic(value.as_bytes()) {
                let remember = remembered.as_ref().map(|(r, digest)| (*r, digest));
                let checked = basic
                    .verify(c.user_id, c.password, presented.client, remember)
                    .await;
                return self.password_outcome(checked);
            }
        }
        let Ok(credentials) = parse_credentials(value.as_bytes()) else {
            return Outcome::Denied(Reason::MalformedAuthorizationHeader, None);
        };
        if credentials.is_scheme("Basic") && route.auth.contains(&Scheme::Basic) {
            return match &self.basic {
                Some(basic) => {
                    self.password_outcome(basic.authenticate(&credentials, presented.client).await)
                }
                // `config::load` refuses a basic route without users, so this is unreachable
                // in practice; answer as if the password were wrong rather than panic.
                None => Outcome::Denied(
                    Reason::InvalidCredentials(crate::reason::CredentialFault::UnknownUser),
                    None,
                ),
            };
        }
        if credentials.is_scheme("Bearer") && bearer_route {
            // RFC 6750 §2.1: b64token, i.e. a token68, not auth-params.
            let Some(token) = credentials.token68.as_deref() else {
                return Outcome::Denied(
                    Reason::InvalidRequest("The Bearer credentials are not a single token"),
                    None,
                );
            };
            let started = std::time::Instant::now();
            let outcome = self.bearer(token).await;
            self.metrics
                .authentication(Scheme::Bearer, started.elapsed());
            return outcome;
        }
        Outcome::Denied(Reason::UnsupportedScheme, None)
    }

    /// The outcome of a Basic password check.
    fn password_outcome(&self, checked: Checked) -> Outcome {
        match checked {
            Ok((user, stored)) => self.identity(user, Scheme::Basic, stored, None),
            Err((reason, attempted)) => Outcome::Denied(reason, attempted),
        }
    }

    /// An authgate API token (`agt_…`) or a JWT from `[jwt]`.
    async fn bearer(&self, token: &str) -> Outcome {
        let now = self.clock.now().as_secs();
        if token.starts_with(token::PREFIX) {
            let Some(tokens) = &self.tokens else {
                return Outcome::Denied(no_such_token("no_token_store"), None);
            };
            return match tokens.authenticate(token, now) {
                Ok(t) => self.identity(t.user, Scheme::Bearer, t.stored, Some(t.scopes)),
                Err(reason) => Outcome::Denied(reason, None),
            };
        }
        let Some(jwt) = &self.jwt else {
            return Outcome::Denied(no_such_token("not_an_authgate_token"), None);
        };
        match jwt.verify(token, now).await {
            Ok(v) => {
                let mut identity =
                    match self.identity(v.user, Scheme::Bearer, None, Some(v.scopes.into())) {
                        Outcome::Authenticated(id) => id,
                        other => return other,
                    };
                if !v.groups.is_empty() {
                    let mut all: Vec<String> = identity.groups.to_vec();
                    all.extend(v.groups);
                    all.sort();
                    all.dedup();
                    identity.groups = all.into();
                }
                Outcome::Authenticated(identity)
            }
            Err(e) => Outcome::Denied(jwt_reason(e), None),
        }
    }

    /// The identity for `user`: groups from `[groups]` and, for store users, the store.
    fn identity(
        &self,
        user: String,
        method: Scheme,
        stored: Option<Arc<LiveUser>>,
        scopes: Option<Arc<[String]>>,
    ) -> Outcome {
        let configured = self.groups.get(&user);
        let groups = match (configured, stored.as_ref().filter(|s| !s.groups.is_empty())) {
            (Some(c), None) => Arc::clone(c),
            (None, Some(s)) => Arc::clone(&s.groups),
            (None, None) => Arc::clone(&self.no_groups),
            (Some(c), Some(s)) => {
                let mut all: Vec<String> = c.iter().chain(s.groups.iter()).cloned().collect();
                all.sort();
                all.dedup();
                all.into()
            }
        };
        Outcome::Authenticated(Identity {
            user,
            method,
            groups,
            scopes,
        })
    }
}

fn no_such_token(code: &'static str) -> Reason {
    Reason::InvalidToken {
        code,
        description: "The access token is not valid",
    }
}

/// A JWT failure as a reason: expiry is `expired_credentials`, everything else
/// `invalid_token`, each with the verifier's description for the client.
fn jwt_reason(e: jwt::JwtError) -> Reason {
    match e {
        jwt::JwtError::Expired => Reason::ExpiredCredentials(Expired::Token),
        other => Reason::InvalidToken {
            code: other.code(),
            description: other.description(),
        },
    }
}

/// Whether a query string has an `access_token` parameter (RFC 6750 §2.3).
fn has_access_token(query: &str) -> bool {
    query
        .split('&')
        .any(|pair| pair.split('=').next() == Some("access_token"))
}

/// The challenges for a route, one per accepted scheme in the route's order
/// (RFC 9110 §11.6.1: list the well-supported schemes first; the route's order decides).
/// With a bearer `reason`, the Bearer challenge carries its RFC 6750 §3 `error`,
/// `error_description` and, for `insufficient_scope`, the `scope` the route needs; on the
/// 400 and 403 answers about a token, only the Bearer challenge is sent (another scheme
/// would not fix a token's missing scope).
pub fn challenges(route: &Route, reason: Option<&Reason>) -> Vec<Challenge> {
    challenges_with(route, reason, reason.and_then(Reason::bearer_error))
}

/// [`challenges`] with the Bearer `error` and `error_description` given.
pub fn challenges_with(
    route: &Route,
    reason: Option<&Reason>,
    bearer_error: Option<(&'static str, &'static str)>,
) -> Vec<Challenge> {
    let only_bearer = reason.is_some_and(|r| r.status() != http::StatusCode::UNAUTHORIZED);
    // The session's `Cookie` challenge goes last whatever the route's order: it is no
    // registered scheme, and a client picks the first challenge it can answer, so Basic or
    // Bearer must come before it (RFC 9110 §11.6.1: well-supported schemes first).
    let in_order = route
        .auth
        .iter()
        .filter(|s| **s != Scheme::Session)
        .chain(route.auth.iter().filter(|s| **s == Scheme::Session));
    in_order
        .filter(|scheme| !only_bearer || **scheme == Scheme::Bearer)
        .map(|scheme| match scheme {
            Scheme::Basic => authgate_proto::basic::basic_challenge(&route.realm),
            Scheme::Bearer => {
                let mut c = Challenge::new("Bearer").param("realm", &route.realm);
                if let Some((error, description)) = bearer_error {
                    c = c
                        .param("error", error)
                        .param("error_description", description);
                    if let Some(Reason::InsufficientScope { scope }) = reason {
                        c = c.param("scope", scope);
                    }
                }
                c
            }
            Scheme::Session => session::challenge(&route.realm),
        })
        .collect()
}
