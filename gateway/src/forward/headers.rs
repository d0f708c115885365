//! What the upstream may see: client headers cleaned of anything that could impersonate a
//! user or a proxy, then authgate's own identity and forwarding headers.

use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue, CONNECTION, HOST};
use http::HeaderMap;

use crate::authenticate::Identity;
use crate::config::IdentityHeaders;

/// RFC 9110 §7.6.1: hop-by-hop fields, never forwarded (plus the non-standard ones that some
/// clients still send). `name` is lower-case.
///
/// These lists are `match`es rather than arrays searched in turn: every field of every
/// request is classified, and a `match` on strings compiles to a switch on the length and one
/// comparison, where an array costs a comparison per entry.
fn is_hop_by_hop(name: &str) -> bool {
    matches!(
        name,
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// [`is_hop_by_hop`] for a name in any case (a token of a `Connection` value).
fn is_hop_by_hop_ignoring_case(token: &str) -> bool {
    // The longest hop-by-hop name has 19 bytes; a longer token is none of them.
    let mut lower = [0u8; 19];
    let Some(buf) = lower.get_mut(..token.len()) else {
        return false;
    };
    for (l, b) in buf.iter_mut().zip(token.bytes()) {
        *l = b.to_ascii_lowercase();
    }
    std::str::from_utf8(buf).is_ok_and(is_hop_by_hop)
}

/// Headers that some app or proxy somewhere reads as "the user is ...". A client must never
/// be able to send one: authgate removes every one of them, in any case and with `_` for `-`
/// (CGI, PHP and WSGI turn both into the same `HTTP_X_REMOTE_USER`). `name` is canonical
/// (see [`canonical`]). Also every name with the prefix of authgate's own identity headers
/// or oauth2-proxy's.
fn is_identity(name: &str) -> bool {
    matches!(
        name,
        "remote-user"
            | "remote-email"
            | "remote-groups"
            | "remote-name"
            | "x-remote-user"
            | "x-remote-email"
            | "x-remote-groups"
            | "x-remote-name"
            | "x-forwarded-user"
            | "x-forwarded-email"
            | "x-forwarded-groups"
            | "x-forwarded-preferred-username"
            | "x-forwarded-access-token"
            | "x-user"
            | "x-username"
            | "x-email"
            | "x-auth-user"
            | "auth-user"
            | "x-webauth-user"
            | "x-webauth-groups"
            | "x-proxy-user"
    ) || name.starts_with("x-authgate-")
        || name.starts_with("x-auth-request-")
}

/// Forwarding headers, believed only from `trusted_proxies`. `name` is canonical.
fn is_forwarding(name: &str) -> bool {
    matches!(
        name,
        "forwarded"
            | "x-forwarded-for"
            | "x-forwarded-host"
            | "x-forwarded-proto"
            | "x-forwarded-port"
            | "x-forwarded-prefix"
            | "x-forwarded-server"
            | "x-real-ip"
            | "x-client-ip"
            | "true-client-ip"
            | "x-original-method"
            | "x-request-id"
    )
}

/// Lower-case, `_` -> `-`: the name as a CGI-style backend would see it. `HeaderName`s are
/// already lower-case, so only names with `_` need a new string.
fn canonical(name: &str) -> std::borrow::Cow<'_, str> {
    if name.bytes().any(|b| b == b'_' || b.is_ascii_uppercase()) {
        name.bytes()
            .map(|b| {
                if b == b'_' {
                    '-'
                } else {
                    b.to_ascii_lowercase() as char
                }
            })
            .collect::<String>()
            .into()
    } else {
        name.into()
    }
}

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The identity header names of `[server]`, parsed once. A name that does not parse (the
/// configuration check refuses those) is not sent.
pub struct IdentityNames {
    user: Option<HeaderName>,
    groups: Option<HeaderName>,
    method: Option<HeaderName>,
}

impl IdentityNames {
    pub fn new(names: &IdentityHeaders) -> Self {
        let parse = |n: &str| HeaderName::from_bytes(n.as_bytes()).ok();
        IdentityNames {
            user: parse(&names.user),
            groups: parse(&names.groups),
            method: parse(&names.method),
        }
    }

    fn contains(&self, name: &str) -> bool {
        [&self.user, &self.groups, &self.method]
            .into_iter()
            .flatten()
            .any(|n| n.as_str() == name)
    }
}

/// Everything known about the request that the forwarded headers are made from.
pub struct Forwarding<'a> {
    pub identity: Option<&'a Identity>,
    pub names: &'a IdentityNames,
    pub peer: IpAddr,
    pub peer_trusted: bool,
    /// `peer` as an `X-Forwarded-For` value, made once per connection: the whole list when
    /// the peer is not trusted, or is trusted and sent no list of its own (a trusted proxy's
    /// list is extended instead).
    pub forwarded_for: Option<&'a HeaderValue>,
    pub authority: &'a str,
    /// The request id, as the value of `X-Request-Id`.
    pub request_id: Option<&'a HeaderValue>,
    pub pass_authorization: bool,
}

/// The field names a message's `Connection` fields list (RFC 9110 §7.6.1), split once per
/// message, leaving out the hop-by-hop names, which go anyway. Clients and upstreams mostly
/// send just `keep-alive` or `close`, so the list is mostly empty and allocates nothing.
fn connection_names(headers: &HeaderMap) -> Vec<&str> {
    let mut names = Vec::new();
    // A walk over the (few) fields costs less than hashing the name for a lookup.
    for value in headers
        .iter()
        .filter(|(n, _)| *n == CONNECTION)
        .map(|(_, v)| v)
    {
        // The usual values name nothing but a hop-by-hop field.
        let bytes = value.as_bytes();
        if bytes.eq_ignore_ascii_case(b"keep-alive") || bytes.eq_ignore_ascii_case(b"close") {
            continue;
        }
        let Ok(value) = value.to_str() else { continue };
        for name in value.split(',') {
            // OWS around list elements (RFC 9110 §5.6.1).
            let name = name.trim_matches([' ', '\t']);
            if !name.is_empty() && !is_hop_by_hop_ignoring_case(name) {
                names.push(name);
            }
        }
    }
    names
}

/// Whether `listed` (from [`connection_names`]) names `name`; field names are
/// case-insensitive.
fn named_in(listed: &[&str], name: &str) -> bool {
    listed.iter().any(|t| t.eq_ignore_ascii_case(name))
}

/// Fields that make some frameworks (Symfony, Zend, IIS rewrite setups) serve another path
/// than the request line's. authgate decides on the request line's path, so these never
/// reach the upstream, not even from a trusted proxy: load balancers pass a client's copy
/// through. `name` is canonical.
fn is_url_override(name: &str) -> bool {
    matches!(name, "x-original-url" | "x-original-uri" | "x-rewrite-url")
}

/// Whether a request field called `name` (canonical form) must not reach the upstream.
fn doomed(name: &str, f: &Forwarding<'_>) -> bool {
    is_hop_by_hop(name)
        || is_identity(name)
        || is_url_override(name)
        || f.names.contains(name)
        || (!f.peer_trusted && is_forwarding(name))
        || (name == "authorization" && !f.pass_authorization)
        // The request id is always authgate's (the gateway took a trusted one over).
        || name == "x-request-id"
}

/// Cleans `headers` in place for the upstream and sets authgate's headers. A request without
/// anything to remove allocates only the values authgate sets.
pub fn prepare_request(headers: &mut HeaderMap, f: &Forwarding<'_>) {
    // Decided before any header authgate sets, so a client cannot name one of ours in
    // Connection to have it removed.
    let mut remove = Doomed::default();
    // The upstream gets HTTP/1.1 and so needs Host, also when the client spoke HTTP/2. An
    // HTTP/1.1 client's Host is mostly the authority already, and its value then serves as
    // X-Forwarded-Host too (a clone shares the bytes; a new value would copy them).
    let mut host_value: Option<HeaderValue> = None;
    // Which forwarding fields a trusted proxy sent (and, for Proto and Host, that stay),
    // noted in the one walk over the fields rather than looked up after it: each lookup
    // hashes the name.
    let (mut has_xff, mut has_proto, mut has_host) = (false, false, false);
    {
        let listed = connection_names(headers);
        for (name, value) in headers.iter() {
            if name == HOST && value.as_bytes() == f.authority.as_bytes() {
                host_value = Some(value.clone());
            }
            let n = canonical(name.as_str());
            // Connection cannot take Host away: the upstream gets the one authgate routed on.
            if doomed(&n, f) || (name != HOST && named_in(&listed, &n)) {
                remove.push(name);
            } else if f.peer_trusted {
                has_proto |= name == X_FORWARDED_PROTO;
                has_host |= name == X_FORWARDED_HOST;
            }
            // A trusted proxy's list is read (below) before any field is removed.
            has_xff |= f.peer_trusted && name == X_FORWARDED_FOR;
        }
    }
    // A trusted proxy's X-Forwarded-For is kept and our peer appended; otherwise (an
    // untrusted peer's, removed below, or none sent) the peer is the whole list.
    let prior_xff = if has_xff {
        let mut joined = String::new();
        for v in headers
            .get_all(&X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            if !joined.is_empty() {
                joined.push_str(", ");
            }
            joined.push_str(v);
        }
        joined
    } else {
        String::new()
    };
    remove.apply(headers);

    let authority = match host_value {
        Some(host) => Some(host),
        None => {
            let authority = HeaderValue::from_str(f.authority).ok();
            if let Some(v) = &authority {
                headers.insert(HOST, v.clone());
            }
            authority
        }
    };
    let xff = match f.forwarded_for {
        Some(peer) if prior_xff.is_empty() => Some(peer.clone()),
        _ => {
            let mut xff = prior_xff;
            if !xff.is_empty() {
                xff.push_str(", ");
            }
            crate::ascii::push_ip(&mut xff, f.peer);
            owned_value(xff)
        }
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    if !has_proto {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    if !has_host {
        if let Some(v) = authority {
            headers.insert(X_FORWARDED_HOST, v);
        }
    }
    if let Some(v) = f.request_id {
        headers.insert(X_REQUEST_ID, v.clone());
    }
    if let Some(id) = f.identity {
        if let (Some(n), Ok(v)) = (&f.names.user, HeaderValue::from_str(&id.user)) {
            headers.insert(n.clone(), v);
        }
        if let Some(n) = &f.names.groups {
            let groups = match &*id.groups {
                [] => Some(HeaderValue::from_static("")),
                [one] if !one.contains([',', '%']) => HeaderValue::from_str(one).ok(),
                many => owned_value(groups_value(many)),
            };
            if let Some(v) = groups {
                headers.insert(n.clone(), v);
            }
        }
        if let Some(n) = &f.names.method {
            headers.insert(n.clone(), HeaderValue::from_static(id.method.name()));
        }
    }
}

/// The identity's groups as one field value: the names joined by `,`, with a `,` or `%`
/// inside a name percent-encoded (`%2C`, `%25`). A group name may come from a JWT's claim,
/// which an identity provider may let users name: `dev,admins` must not reach an upstream
/// that splits on `,` as the two groups `dev` and `admins`.
pub fn groups_value<S: AsRef<str>>(groups: &[S]) -> String {
    let mut value = String::new();
    for (i, g) in groups.iter().enumerate() {
        if i > 0 {
            value.push(',');
        }
        for c in g.as_ref().chars() {
            match c {
                ',' => value.push_str("%2C"),
                '%' => value.push_str("%25"),
                c => value.push(c),
            }
        }
    }
    value
}

/// A header value that takes over `s`'s buffer instead of copying it; None if `s` is not a
/// valid field value.
fn owned_value(s: String) -> Option<HeaderValue> {
    HeaderValue::from_maybe_shared(bytes::Bytes::from(s)).ok()
}

/// Removes hop-by-hop fields from an upstream response (RFC 9110 §7.6.1). Looks at the
/// response's own (few) field names rather than probing for each hop-by-hop name; up to four
/// names to remove (nginx sends `Connection: keep-alive`) cost no allocation.
pub fn prepare_response(headers: &mut HeaderMap) {
    let mut doomed = Doomed::default();
    {
        let listed = connection_names(headers);
        for k in headers.keys() {
            if is_hop_by_hop(k.as_str()) || named_in(&listed, k.as_str()) {
                doomed.push(k);
            }
        }
    }
    doomed.apply(headers);
}

/// The names of the fields to remove from a message, found in a walk over its fields and
/// removed after it. The usual few (an upstream's `Connection`, a client's `Authorization`)
/// are kept without allocating: this runs for every forwarded request and response.
#[derive(Default)]
struct Doomed {
    few: [Option<HeaderName>; 4],
    more: Vec<HeaderName>,
}

impl Doomed {
    fn push(&mut self, name: &HeaderName) {
        // A name that repeats (a field sent twice) is removed once: `remove` takes every value.
        // The check compares with every name so far, as `named_in` does for each field: both
        // grow with the square of the names a message lists, which its size limit bounds.
        if self
            .few
            .iter()
            .flatten()
            .chain(&self.more)
            .any(|n| n == name)
        {
            return;
        }
        match self.few.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(name.clone()),
            None => self.more.push(name.clone()),
        }
    }

    fn apply(self, headers: &mut HeaderMap) {
        for name in self.few.into_iter().flatten().chain(self.more) {
            headers.remove(name);
        }
    }
}

/// Removes the cookies for which `drop(name)` holds from every `Cookie` field, keeping the
/// others (the app's own cookies) in order; a field left empty is removed.
pub fn strip_cookies(headers: &mut HeaderMap, drop: impl Fn(&str) -> bool) {
    let cookie = http::header::COOKIE;
    if !headers.contains_key(&cookie) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(&cookie)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| !drop(pair.split('=').next().unwrap_or("").trim()))
        .map(str::to_owned)
        .collect();
    headers.remove(&cookie);
    // RFC 9113 §8.2.3 / RFC 6265 §5.4: one field, pairs joined by "; ".
    if !kept.is_empty() {
        if let Ok(v) = http::HeaderValue::from_str(&kept.join("; ")) {
            headers.insert(cookie, v);
        }
    }
}

/// RFC 9111 §3.5: a response to an authenticated request must not be stored by a shared cache.
/// Adds `private` unless the upstream already said `private` or `no-store`, and drops
/// `public` and `s-maxage`, which would override that.
pub fn make_private(headers: &mut HeaderMap) {
    if !headers.contains_key(http::header::CACHE_CONTROL) {
        headers.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("private"),
        );
        return;
    }
    let current: Vec<String> = headers
        .get_all(http::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect();
    let directive = |d: &str| {
        d.split('=')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    };
    if current
        .iter()
        .any(|d| matches!(directive(d).as_str(), "private" | "no-store"))
    {
        return;
    }
    let mut kept: Vec<String> = vec!["private".into()];
    kept.extend(
        current
            .into_iter()
            .filter(|d| !matches!(directive(d).as_str(), "public" | "s-maxage")),
    );
    if let Ok(v) = HeaderValue::from_str(&kept.join(", ")) {
        headers.insert(http::header::CACHE_CONTROL, v);
    }
}

#[cfg(test)]
mod cookie_tests {
    use super::*;

    #[test]
    fn strip_cookies_keeps_the_apps_cookies() {
        let mut h = HeaderMap::new();
        h.append(
            http::header::COOKIE,
            "app=1; authgate_session=s".parse().expect("v"),
        );
        h.append(
            http::header::COOKIE,
            "__Host-authgate_session=t; theme=dark".parse().expect("v"),
        );
        strip_cookies(&mut h, |n| {
            n == "authgate_session" || n == "__Host-authgate_session"
        });
        assert_eq!(h.get_all(http::header::COOKIE).iter().count(), 1);
        assert_eq!(h[http::header::COOKIE], "app=1; theme=dark");
        let mut only = HeaderMap::new();
        only.insert(
            http::header::COOKIE,
            "authgate_session=s".parse().expect("v"),
        );
        strip_cookies(&mut only, |n| n == "authgate_session");
        assert!(!only.contains_key(http::header::COOKIE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Scheme;

    fn names() -> IdentityNames {
        IdentityNames::new(&IdentityHeaders {
            user: "x-authgate-user".into(),
            groups: "x-authgate-groups".into(),
            method: "x-authgate-method".into(),
        })
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn spoofed_identity_and_forwarding_headers_are_removed() {
        let mut h = map(&[
            ("X-Authgate-User", "root"),
            ("x_authgate_user", "root"),
            ("X-Remote-User", "root"),
            ("X-Remote-User", "admin"),
            ("remote_user", "root"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Host", "evil"),
            ("X-Real-IP", "1.2.3.4"),
            ("Authorization", "Basic eDp5"),
            ("Connection", "keep-alive, X-Keep-Me-Not"),
            ("X-Keep-Me-Not", "1"),
            ("X-Auth-Request-Email", "a@b"),
            ("Accept", "*/*"),
        ]);
        let names = names();
        let id = Identity {
            user: "alice".into(),
            method: Scheme::Basic,
            groups: vec!["admins".to_string()].into(),
            scopes: None,
        };
        prepare_request(
            &mut h,
            &Forwarding {
                identity: Some(&id),
                names: &names,
                peer: "127.0.0.1".parse().expect("ip"),
                peer_trusted: false,
                // As `Gateway::connection` makes it for a peer that is not trusted.
                forwarded_for: Some(&HeaderValue::from_static("127.0.0.1")),
                authority: "app.example:8080",
                request_id: Some(&HeaderValue::from_static("rid")),
                pass_authorization: false,
            },
        );
        assert_eq!(h.get_all("x-authgate-user").iter().count(), 1);
        assert_eq!(h["x-authgate-user"], "alice");
        assert_eq!(h["x-authgate-groups"], "admins");
        assert!(!h.contains_key("x_authgate_user"));
        assert!(!h.contains_key("x-remote-user"));
        assert!(!h.contains_key("remote_user"));
        assert!(!h.contains_key("authorization"));
        assert!(!h.contains_key("x-keep-me-not"));
        assert!(!h.contains_key("x-real-ip"));
        assert!(!h.contains_key("x-auth-request-email"));
        assert_eq!(h["x-forwarded-for"], "127.0.0.1");
        assert_eq!(h["x-forwarded-host"], "app.example:8080");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["host"], "app.example:8080");
        assert_eq!(h["accept"], "*/*");
    }

    /// An anonymous request for authority `a` from the trusted proxy 10.0.0.1.
    fn from_trusted_proxy(names: &IdentityNames) -> Forwarding<'_> {
        Forwarding {
            identity: None,
            names,
            peer: "10.0.0.1".parse().expect("ip"),
            peer_trusted: true,
            forwarded_for: None,
            authority: "a",
            request_id: None,
            pass_authorization: false,
        }
    }

    #[test]
    fn trusted_proxy_forwarding_headers_are_kept_and_appended() {
        let mut h = map(&[
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-Proto", "https"),
        ]);
        let names = names();
        let rid = HeaderValue::from_static("rid");
        prepare_request(
            &mut h,
            &Forwarding {
                request_id: Some(&rid),
                ..from_trusted_proxy(&names)
            },
        );
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 10.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn a_trusted_proxy_without_forwarding_headers_is_the_whole_list() {
        // As `Gateway::connection` makes it for every peer (another address than
        // `from_trusted_proxy`'s peer here, to tell the prepared value from one made anew).
        let peer = HeaderValue::from_static("10.0.0.9");
        let names = names();
        // The Host is the authority (its value is reused for X-Forwarded-Host), and an
        // X-Forwarded-Proto the proxy names in Connection is gone, so authgate sets its own.
        let mut h = map(&[
            ("Host", "a"),
            ("Connection", "x-forwarded-proto"),
            ("X-Forwarded-Proto", "https"),
        ]);
        prepare_request(
            &mut h,
            &Forwarding {
                forwarded_for: Some(&peer),
                ..from_trusted_proxy(&names)
            },
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.9");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "a");
        assert_eq!(h.get_all("host").iter().count(), 1);
        assert_eq!(h["host"], "a");
        assert!(!h.contains_key("connection"));
        // A list of its own is extended, not replaced by the per-connection value.
        let mut h = map(&[
            ("X-Forwarded-For", "1.2.3.4"),
            ("X-Forwarded-For", "5.6.7.8"),
        ]);
        prepare_request(
            &mut h,
            &Forwarding {
                forwarded_for: Some(&peer),
                ..from_trusted_proxy(&names)
            },
        );
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.0.0.1");
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);

        // The proxy's X-Forwarded-Host is kept; named in Connection, it is authgate's. A Host
        // other than the authority is replaced by it.
        for (connection, want) in [("keep-alive", "public.example"), ("x-forwarded-host", "a")] {
            let mut h = map(&[
                ("Host", "internal:8080"),
                ("Connection", connection),
                ("X-Forwarded-Host", "public.example"),
            ]);
            prepare_request(&mut h, &from_trusted_proxy(&names));
            assert_eq!(h["x-forwarded-host"], want, "Connection: {connection}");
            assert_eq!(h.get_all("x-forwarded-host").iter().count(), 1);
            assert_eq!(h["host"], "a");
        }
    }

    #[test]
    fn a_comma_in_a_group_name_cannot_add_a_group() {
        assert_eq!(groups_value(&["dev,admins"]), "dev%2Cadmins");
        assert_eq!(groups_value(&["a", "b%2C", "c"]), "a,b%252C,c");
        assert_eq!(groups_value::<&str>(&[]), "");
    }

    #[test]
    fn url_overrides_never_pass_and_connection_cannot_remove_host() {
        let mut h = map(&[
            ("Host", "a"),
            ("Connection", "host, x-original-url"),
            ("X-Original-URL", "/admin/secret"),
            ("X-Rewrite-URL", "/admin/secret"),
            ("X-Original-URI", "/admin/secret"),
            ("x_original_url", "/admin/secret"),
        ]);
        let names = names();
        // Even from a trusted proxy: load balancers pass the client's copy on.
        prepare_request(&mut h, &from_trusted_proxy(&names));
        assert_eq!(h.get("host").map(|v| v.as_bytes()), Some(&b"a"[..]));
        for gone in [
            "connection",
            "x-original-url",
            "x-rewrite-url",
            "x-original-uri",
            "x_original_url",
        ] {
            assert!(h.get(gone).is_none(), "{gone} reached the upstream");
        }
    }

    #[test]
    fn responses_lose_hop_by_hop_fields_and_those_named_in_connection() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, X-Secret-Hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
            ("set-cookie", "a=1"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        prepare_response(&mut h);
        let mut left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["content-type", "set-cookie"]);

        // More names than the inline slots hold, one of them in two fields: all go.
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "x-a, x-b, x-c"),
            ("connection", "x-d"),
            ("upgrade", "websocket"),
            ("x-a", "1"),
            ("x-a", "2"),
            ("x-b", "1"),
            ("x-c", "1"),
            ("x-d", "1"),
            ("content-length", "2"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        prepare_response(&mut h);
        let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["content-length"]);
    }

    #[test]
    fn cache_control_becomes_private() {
        for (given, want) in [
            (None, "private"),
            (Some("public, max-age=60"), "private, max-age=60"),
            (Some("s-maxage=60, max-age=5"), "private, max-age=5"),
            (Some("no-store"), "no-store"),
            (Some("private, max-age=5"), "private, max-age=5"),
        ] {
            let mut h = HeaderMap::new();
            if let Some(g) = given {
                h.insert(http::header::CACHE_CONTROL, HeaderValue::from_static(g));
            }
            make_private(&mut h);
            assert_eq!(h[http::header::CACHE_CONTROL], want);
        }
    }
}
