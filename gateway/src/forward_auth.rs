//! The forward-auth endpoint's view of the request it is asked about.
//!
//! nginx `auth_request`, Caddy `forward_auth` and Traefik ForwardAuth send authgate a
//! subrequest that describes the client's request: Traefik and Caddy with
//! `X-Forwarded-Method`, `X-Forwarded-Proto`, `X-Forwarded-Host` and `X-Forwarded-Uri`;
//! nginx with `X-Original-URI` and `X-Original-Method` (set in its config, see the README),
//! the client's `Host` and every client header. These headers are believed only from
//! `server.trusted_proxies` (checked by the gateway before this module is used).
//!
//! The decision is made on the URI the proxy will route, normalised exactly as in gateway
//! mode, so a path that would be refused there (`/admin/..;/`, `%2e%2e`) is refused here too.

use http::header::{HeaderName, HeaderValue, CACHE_CONTROL, HOST};
use http::{Method, Request, Response, StatusCode, Uri, Version};

use crate::authenticate::Identity;
use crate::body::{empty, Body};
use crate::config::IdentityHeaders;
use crate::reason::Reason;

/// Headers that describe the original request; they are not part of it.
const DESCRIBING: &[&str] = &[
    "x-forwarded-method",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-uri",
    "x-forwarded-for",
    "x-original-uri",
    "x-original-method",
    "x-original-url",
];

/// Rebuilds the request the proxy asks about: its method, target and `Host`, with the
/// client's other headers (the `Authorization` among them).
///
/// Two dialects, never mixed: nginx (`X-Original-URI`, `X-Original-Method`, the client's
/// `Host`) and Traefik/Caddy (`X-Forwarded-Uri`, `X-Forwarded-Method`, `X-Forwarded-Host`).
/// nginx's `auth_request` also passes every client header through, so a client could add an
/// `X-Forwarded-Uri` of its own: when both dialects are present and disagree, or any
/// describing header appears more than once, the question is refused (fail closed).
pub fn original_request<B>(asked: &Request<B>) -> Result<Request<()>, Reason> {
    let h = asked.headers();
    for name in DESCRIBING {
        if h.get_all(*name).iter().count() > 1 {
            return Err(Reason::ForwardAuthIncomplete);
        }
    }
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let (uri, method, host) = match (get("x-original-uri"), get("x-forwarded-uri")) {
        // nginx: the proxy sets X-Original-URI; the original Host is the request's own.
        (Some(original), forwarded) => {
            if forwarded.is_some_and(|f| f != original) {
                return Err(Reason::ForwardAuthIncomplete);
            }
            let method = get("x-original-method");
            if let (Some(m), Some(f)) = (method, get("x-forwarded-method")) {
                if m != f {
                    return Err(Reason::ForwardAuthIncomplete);
                }
            }
            (original, method, h.get(HOST).cloned())
        }
        // Traefik and Caddy set all three X-Forwarded-* themselves.
        (None, Some(forwarded)) => (
            forwarded,
            get("x-forwarded-method"),
            h.get("x-forwarded-host").or_else(|| h.get(HOST)).cloned(),
        ),
        (None, None) => return Err(Reason::ForwardAuthIncomplete),
    };
    if !uri.starts_with('/') {
        return Err(Reason::AmbiguousPath(
            "a target that is not an absolute path",
        ));
    }
    let uri: Uri = uri
        .parse()
        .map_err(|_| Reason::AmbiguousPath("a target that is not a valid URI"))?;
    let method = match method {
        Some(m) => Method::from_bytes(m.as_bytes()).map_err(|_| Reason::ForwardAuthIncomplete)?,
        None => Method::GET,
    };

    let mut original = Request::new(());
    *original.method_mut() = method;
    *original.uri_mut() = uri;
    *original.version_mut() = Version::HTTP_11;
    let headers = original.headers_mut();
    for (name, value) in h {
        if name != HOST && !DESCRIBING.contains(&name.as_str()) {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(host) = host {
        headers.insert(HOST, host);
    }
    Ok(original)
}

/// 200 for an allowed request, with the identity headers the proxy copies to the upstream.
pub fn allow(identity: Option<&Identity>, names: &IdentityHeaders) -> Response<Body> {
    let mut response = Response::new(empty());
    let headers = response.headers_mut();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(id) = identity {
        let groups = crate::forward::headers::groups_value(&id.groups);
        for (name, value) in [
            (&names.user, id.user.as_str()),
            (&names.groups, groups.as_str()),
            (&names.method, id.method.name()),
        ] {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                headers.insert(n, v);
            }
        }
    }
    response
}

/// nginx `auth_request` understands 2xx, 401 and 403 and turns anything else into a 500, so
/// every other denial (400-class input problems, no route) is answered 403, failing closed.
/// The precise reason travels in `X-Authgate-Reason` and the body.
pub fn finish_denial(response: &mut Response<Body>, reason: &Reason) {
    if !matches!(
        response.status(),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN
    ) {
        *response.status_mut() = StatusCode::FORBIDDEN;
    }
    response
        .headers_mut()
        .insert("x-authgate-reason", HeaderValue::from_static(reason.code()));
}

/// Sends a browser to sign in, in each proxy's terms. Traefik ForwardAuth and Caddy
/// `forward_auth` hand any non-2xx answer to the client as it is, so the 401 becomes a `302`
/// to the sign-in page (the proxy must route `/_authgate/` to authgate). nginx's
/// `auth_request` turns anything but 2xx/401/403 into 500, so for nginx (the question came
/// with `X-Original-URI`) the answer stays 401 and carries the sign-in URL in
/// `X-Authgate-Signin`, which nginx's `error_page 401` can redirect to (see the README).
pub fn sign_in(response: &mut Response<Body>, location: &str, asked: &http::HeaderMap) {
    let Ok(value) = HeaderValue::from_str(location) else {
        return;
    };
    response
        .headers_mut()
        .insert("x-authgate-signin", value.clone());
    if !asked.contains_key("x-original-uri") {
        *response.status_mut() = StatusCode::FOUND;
        response.headers_mut().insert(http::header::LOCATION, value);
        response
            .headers_mut()
            .remove(http::header::WWW_AUTHENTICATE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked(headers: &[(&str, &str)]) -> Request<()> {
        let mut b = Request::builder().uri("/_authgate/check");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn traefik_and_caddy_headers() {
        let r = original_request(&asked(&[
            ("host", "authgate.internal"),
            ("x-forwarded-method", "POST"),
            ("x-forwarded-host", "app.example"),
            ("x-forwarded-uri", "/admin/x?y=1"),
            ("authorization", "Basic YTpi"),
        ]))
        .expect("ok");
        assert_eq!(r.method(), Method::POST);
        assert_eq!(r.uri(), "/admin/x?y=1");
        assert_eq!(r.headers()[HOST], "app.example");
        assert_eq!(r.headers()["authorization"], "Basic YTpi");
        assert!(!r.headers().contains_key("x-forwarded-uri"));
    }

    #[test]
    fn nginx_headers() {
        let r = original_request(&asked(&[
            ("host", "app.example"),
            ("x-original-uri", "/a"),
            ("x-original-method", "DELETE"),
        ]))
        .expect("ok");
        assert_eq!((r.method(), r.uri().path()), (&Method::DELETE, "/a"));
        assert_eq!(r.headers()[HOST], "app.example");
    }

    #[test]
    fn mixed_or_repeated_descriptions_are_refused() {
        // A client behind nginx adds its own X-Forwarded-Uri.
        let mixed = asked(&[
            ("host", "a"),
            ("x-original-uri", "/admin"),
            ("x-forwarded-uri", "/public"),
        ]);
        assert_eq!(
            original_request(&mixed).err(),
            Some(Reason::ForwardAuthIncomplete)
        );
        let same = asked(&[
            ("host", "a"),
            ("x-original-uri", "/admin"),
            ("x-forwarded-uri", "/admin"),
        ]);
        assert!(original_request(&same).is_ok());
        let twice = asked(&[
            ("x-forwarded-uri", "/public"),
            ("x-forwarded-uri", "/admin"),
        ]);
        assert_eq!(
            original_request(&twice).err(),
            Some(Reason::ForwardAuthIncomplete)
        );
        // nginx mode ignores a client's X-Forwarded-Host: the Host is the original one.
        let r = original_request(&asked(&[
            ("host", "app.example"),
            ("x-original-uri", "/a"),
            ("x-forwarded-host", "evil.example"),
        ]))
        .expect("ok");
        assert_eq!(r.headers()[HOST], "app.example");
    }

    #[test]
    fn missing_uri_is_incomplete() {
        assert_eq!(
            original_request(&asked(&[("host", "a")])).err(),
            Some(Reason::ForwardAuthIncomplete)
        );
        assert!(original_request(&asked(&[("x-forwarded-uri", "http://evil/")])).is_err());
    }
}
