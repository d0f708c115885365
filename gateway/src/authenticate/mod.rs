//! Stage 4: who is this? Turns the `Authorization` header into a typed [`Identity`] or a
//! [`Reason`]. Builds no HTTP responses: that is [`crate::respond`]'s job.
//!
//! A new scheme (tokens, sessions, Digest) adds a module here and a [`Scheme`] variant; the
//! routing, answers and forwarding do not change.

pub mod basic;
pub mod hashing;
pub mod lockout;

use std::collections::HashMap;
use std::sync::Arc;

use authgate_proto::{parse_credentials, Challenge};
use http::HeaderValue;

use crate::config::{Config, Route, Scheme};
use crate::metrics::Metrics;
use crate::reason::Reason;
use crate::users::UserDb;

/// Who made the request, and how they proved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub method: Scheme,
    pub groups: Arc<[String]>,
}

/// The result of authentication for one request.
#[derive(Debug)]
pub enum Outcome {
    /// The route needs no authentication.
    Anonymous,
    Authenticated(Identity),
    /// Refused, with the user name that was tried when there was one (for the audit log only).
    Denied(Reason, Option<String>),
}

/// Every authenticator the configuration uses, built once at start-up.
pub struct Authenticators {
    basic: Option<basic::BasicAuth>,
    /// user -> groups, from `[groups]`.
    groups: HashMap<String, Arc<[String]>>,
    no_groups: Arc<[String]>,
}

impl Authenticators {
    pub fn new(
        config: &Config,
        users: Option<Arc<UserDb>>,
        metrics: Arc<Metrics>,
        lockout: Arc<lockout::Lockout>,
    ) -> Self {
        let mut by_user: HashMap<String, Vec<String>> = HashMap::new();
        for (group, members) in &config.groups {
            for m in members {
                by_user.entry(m.clone()).or_default().push(group.clone());
            }
        }
        Authenticators {
            basic: users.map(|db| basic::BasicAuth::new(db, &config.server, metrics, lockout)),
            groups: by_user.into_iter().map(|(u, g)| (u, g.into())).collect(),
            no_groups: Arc::from(Vec::new()),
        }
    }

    /// Authenticates a request for `route`. `authorization` is the request's single
    /// `Authorization` value (duplicates were refused by `normalize`).
    pub async fn authenticate(
        &self,
        route: &Route,
        authorization: Option<&HeaderValue>,
        client: std::net::IpAddr,
    ) -> Outcome {
        if route.auth.is_empty() {
            return Outcome::Anonymous;
        }
        let Some(value) = authorization else {
            return Outcome::Denied(Reason::MissingCredentials, None);
        };
        let Ok(credentials) = parse_credentials(value.as_bytes()) else {
            return Outcome::Denied(Reason::MalformedAuthorizationHeader, None);
        };
        let result = if credentials.is_scheme("Basic") && route.auth.contains(&Scheme::Basic) {
            match &self.basic {
                Some(basic) => basic
                    .authenticate(&credentials, client)
                    .await
                    .map(|u| (u, Scheme::Basic)),
                // `config::load` refuses a basic route without users, so this is unreachable
                // in practice; answer as if the password were wrong rather than panic.
                None => Err((
                    Reason::InvalidCredentials(crate::reason::CredentialFault::UnknownUser),
                    None,
                )),
            }
        } else {
            Err((Reason::UnsupportedScheme, None))
        };
        match result {
            Ok((user, method)) => {
                let groups = self
                    .groups
                    .get(&user)
                    .cloned()
                    .unwrap_or_else(|| self.no_groups.clone());
                Outcome::Authenticated(Identity {
                    user,
                    method,
                    groups,
                })
            }
            Err((reason, attempted)) => Outcome::Denied(reason, attempted),
        }
    }
}

/// The challenges for a route, one per accepted scheme in the route's order
/// (RFC 9110 §11.6.1: list the well-supported schemes first; the route's order decides).
pub fn challenges(route: &Route) -> Vec<Challenge> {
    route
        .auth
        .iter()
        .map(|scheme| match scheme {
            Scheme::Basic => authgate_proto::basic::basic_challenge(&route.realm),
        })
        .collect()
}
