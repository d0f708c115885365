//! Stage 3: choose the route for a normalised target.
//!
//! A route with a host beats a route without one; among routes of the same kind the longest
//! path prefix wins. A prefix matches whole segments: `/admin` covers `/admin` and
//! `/admin/...` but not `/adminx`. No match: 404 (`no_route`).
//!
//! Prefixes match case-sensitively, as RFC 3986 §6.2.2.1 says paths compare; but many
//! upstreams (Express, ASP.NET Core, IIS, Spring configured so) match paths without regard to
//! case. So a path whose letter case changes which route it gets (`/ADMIN/x` falling through
//! to a public `/` while `/admin` is protected) is refused as ambiguous (400), whatever the
//! upstream: see [`Router::case_conflict`].

use std::sync::Arc;

use crate::config::Route;

#[derive(Debug, Clone)]
pub struct Router {
    /// Sorted so that the first match is the best one.
    routes: Vec<Arc<Route>>,
    /// Some route's path prefix has a capital letter.
    capital_prefix: bool,
}

impl Router {
    pub fn new(routes: &[Route]) -> Self {
        let mut routes: Vec<Arc<Route>> = routes.iter().cloned().map(Arc::new).collect();
        routes.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.path.len().cmp(&a.path.len()))
                .then(a.index.cmp(&b.index))
        });
        let capital_prefix = routes
            .iter()
            .any(|r| r.path.bytes().any(|b| b.is_ascii_uppercase()));
        Router {
            routes,
            capital_prefix,
        }
    }

    /// The best route for `host` and `path` (both already normalised).
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.find(host, path, false)
    }

    /// The first route for `host` whose prefix covers `path`, letter case aside if
    /// `fold_case`.
    fn find(&self, host: &str, path: &str, fold_case: bool) -> Option<&Arc<Route>> {
        self.routes.iter().find(|r| {
            r.host.as_deref().is_none_or(|h| h == host) && prefix_matches(&r.path, path, fold_case)
        })
    }

    /// Whether `path` would get another route than `chosen` (the answer of [`Router::route`])
    /// if paths were matched without regard to ASCII case. Costs a scan of the path for
    /// capitals unless some route's prefix has one.
    pub fn case_conflict(&self, host: &str, path: &str, chosen: Option<&Arc<Route>>) -> bool {
        if !self.capital_prefix && !path.bytes().any(|b| b.is_ascii_uppercase()) {
            return false;
        }
        match (chosen, self.find(host, path, true)) {
            (Some(a), Some(b)) => !Arc::ptr_eq(a, b),
            (None, None) => false,
            _ => true,
        }
    }
}

/// Whether `prefix` covers `path` on a segment boundary (ASCII case aside if `fold_case`).
fn prefix_matches(prefix: &str, path: &str, fold_case: bool) -> bool {
    if prefix == "/" {
        return true;
    }
    let (Some(head), Some(rest)) = (path.get(..prefix.len()), path.get(prefix.len()..)) else {
        return false;
    };
    let same = if fold_case {
        head.eq_ignore_ascii_case(prefix)
    } else {
        head == prefix
    };
    same && (rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Backend, Route};
    use std::path::PathBuf;

    fn route(index: usize, host: Option<&str>, path: &str) -> Route {
        Route {
            index,
            host: host.map(str::to_string),
            path: path.into(),
            backend: Backend::Static(PathBuf::from("/")),
            auth: vec![],
            realm: "r".into(),
            allow: None,
            pass_authorization: false,
            max_body: None,
            scopes: Vec::new(),
        }
    }

    #[test]
    fn longest_prefix_on_segment_boundaries() {
        let r = Router::new(&[
            route(0, None, "/"),
            route(1, None, "/admin"),
            route(2, None, "/admin/api"),
            route(3, Some("x.example"), "/"),
        ]);
        let pick = |h: &str, p: &str| r.route(h, p).map(|r| r.index);
        assert_eq!(pick("a", "/admin"), Some(1));
        assert_eq!(pick("a", "/admin/"), Some(1));
        assert_eq!(pick("a", "/admin/x"), Some(1));
        assert_eq!(pick("a", "/adminx"), Some(0));
        assert_eq!(pick("a", "/admin/api/v1"), Some(2));
        assert_eq!(pick("a", "/admin/apix"), Some(1));
        assert_eq!(pick("x.example", "/admin"), Some(3));
    }

    #[test]
    fn a_path_whose_case_picks_another_route_conflicts() {
        let r = Router::new(&[route(0, None, "/"), route(1, None, "/admin")]);
        let conflict = |p: &str| r.case_conflict("a", p, r.route("a", p));
        assert!(conflict("/ADMIN/secret"));
        assert!(conflict("/Admin"));
        assert!(!conflict("/admin/Secret"), "the same route either way");
        assert!(!conflict("/Public/x"));
        assert!(!conflict("/adminx"));
        assert!(
            !conflict("/ADMINX"),
            "no segment boundary, no route either way"
        );
        // A prefix with capitals: the lower-case spelling must not fall through either.
        let r = Router::new(&[route(0, None, "/"), route(1, None, "/Admin")]);
        let conflict = |p: &str| r.case_conflict("a", p, r.route("a", p));
        assert!(!conflict("/Admin/x"));
        assert!(conflict("/admin/x"));
        // No route either way is no conflict; a route only one way is.
        let r = Router::new(&[route(0, None, "/app")]);
        let conflict = |p: &str| r.case_conflict("a", p, r.route("a", p));
        assert!(!conflict("/Other"));
        assert!(conflict("/APP/x"));
    }

    #[test]
    fn no_match_is_none() {
        let r = Router::new(&[route(0, None, "/app"), route(1, Some("h"), "/")]);
        assert!(r.route("other", "/").is_none());
        assert!(r.route("other", "/apps").is_none());
    }
}
