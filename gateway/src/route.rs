//! Stage 3: choose the route for a normalised target.
//!
//! A route with a host beats a route without one; among routes of the same kind the longest
//! path prefix wins. A prefix matches whole segments: `/admin` covers `/admin` and
//! `/admin/...` but not `/adminx`. No match: 404 (`no_route`).

use std::sync::Arc;

use crate::config::Route;

#[derive(Debug, Clone)]
pub struct Router {
    /// Sorted so that the first match is the best one.
    routes: Vec<Arc<Route>>,
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
        Router { routes }
    }

    /// The best route for `host` and `path` (both already normalised).
    pub fn route(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.routes
            .iter()
            .find(|r| r.host.as_deref().is_none_or(|h| h == host) && prefix_matches(&r.path, path))
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
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
    fn no_match_is_none() {
        let r = Router::new(&[route(0, None, "/app"), route(1, Some("h"), "/")]);
        assert!(r.route("other", "/").is_none());
        assert!(r.route("other", "/apps").is_none());
    }
}
