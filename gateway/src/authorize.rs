//! Stage 5: may this identity use this route? A separate step from authentication, so that a
//! known user who is not allowed gets 403, never 401 (RFC 9110 §15.5.4).

use crate::authenticate::Identity;
use crate::config::Route;
use crate::reason::Reason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(Reason),
}

/// With no `allow` on the route, every authenticated user may pass. With one, the user must be
/// listed or be a member of a listed group. A bearer token must also carry every scope in the
/// route's `scopes` (RFC 6750 §3.1 `insufficient_scope`); passwords and sessions are not scoped.
pub fn authorize(route: &Route, identity: &Identity) -> Decision {
    if let Some(allow) = &route.allow {
        let listed = allow.users.contains(&identity.user)
            || identity.groups.iter().any(|g| allow.groups.contains(g));
        if !listed {
            return Decision::Deny(Reason::Forbidden);
        }
    }
    if let Some(scopes) = &identity.scopes {
        if !route.scopes.iter().all(|need| scopes.contains(need)) {
            return Decision::Deny(Reason::InsufficientScope {
                scope: route.scopes.join(" "),
            });
        }
    }
    Decision::Allow
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Allow, Backend, Scheme};

    fn route(allow: Option<Allow>) -> Route {
        Route {
            index: 0,
            host: None,
            path: "/".into(),
            backend: Backend::Static("/".into()),
            auth: vec![Scheme::Basic],
            realm: "r".into(),
            allow,
            pass_authorization: false,
            max_body: None,
            scopes: Vec::new(),
        }
    }

    fn who(user: &str, groups: &[&str]) -> Identity {
        Identity {
            user: user.into(),
            method: Scheme::Basic,
            groups: groups
                .iter()
                .map(|g| g.to_string())
                .collect::<Vec<_>>()
                .into(),
            scopes: None,
        }
    }

    #[test]
    fn bearer_tokens_need_every_route_scope() {
        let mut r = route(None);
        r.scopes = vec!["read".into(), "write".into()];
        let mut id = who("bob", &[]);
        id.scopes = Some(vec!["read".to_string()].into());
        assert_eq!(
            authorize(&r, &id),
            Decision::Deny(Reason::InsufficientScope {
                scope: "read write".into()
            })
        );
        id.scopes = Some(vec!["write".to_string(), "read".to_string()].into());
        assert_eq!(authorize(&r, &id), Decision::Allow);
        // Passwords and sessions are not scoped.
        assert_eq!(authorize(&r, &who("bob", &[])), Decision::Allow);
    }

    #[test]
    fn users_and_groups() {
        let allow = Allow {
            users: ["bob".to_string()].into(),
            groups: ["admins".to_string()].into(),
        };
        let r = route(Some(allow));
        assert_eq!(authorize(&r, &who("bob", &[])), Decision::Allow);
        assert_eq!(authorize(&r, &who("alice", &["admins"])), Decision::Allow);
        assert_eq!(
            authorize(&r, &who("carol", &["staff"])),
            Decision::Deny(Reason::Forbidden)
        );
        assert_eq!(authorize(&route(None), &who("carol", &[])), Decision::Allow);
    }
}
