//! Stage 2: turn the raw request into the one reading every later stage uses.
//!
//! The route is chosen and the decision made on exactly the path the backend will receive:
//! dot-segments are resolved (RFC 3986 §5.2.4), repeated slashes merged, percent-encoded
//! unreserved characters decoded (RFC 3986 §6.2.2.2), and every form that servers disagree
//! about is refused with 400 instead of guessed.

use http::header::{AUTHORIZATION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Request, Version};

use crate::reason::Reason;

/// What the later stages know about the request target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host as the client sent it (with port), for `X-Forwarded-Host`. Not to be changed
    /// after `normalize`: [`Target::host`] is mostly a part of it.
    pub authority: String,
    /// Where [`Target::host`] is: mostly a part of `authority`, which needs no copy.
    host: Host,
    /// The normalised path: the one that is routed, authorised and forwarded.
    pub path: String,
    /// The query, unchanged, without '?'.
    pub query: Option<String>,
}

/// The normalised host: `authority[..end]` when that is it already (lower-case, no trailing
/// dot, not an IPv6 literal), otherwise a copy made normal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    Prefix(usize),
    Owned(String),
}

impl Target {
    /// Lower-case host without port and without a trailing dot.
    pub fn host(&self) -> &str {
        match &self.host {
            Host::Prefix(end) => self.authority.get(..*end).unwrap_or_default(),
            Host::Owned(h) => h,
        }
    }

    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Checks the request's framing and headers and normalises its target.
pub fn normalize<B>(req: &Request<B>, max_header_bytes: usize) -> Result<Target, Reason> {
    let fields = Fields::read(req.headers());
    // RFC 6585 §5: 431 when the header section is too large. hyper's own buffer limit is set
    // higher than this, so this answer (with a reason) is the one clients see.
    if fields.size > max_header_bytes {
        return Err(Reason::HeadersTooLarge);
    }
    check_framing(&fields)?;
    // RFC 9110 §5.3 / §11.6.2: Authorization is a single value, not a list.
    if fields.authorization > 1 {
        return Err(Reason::DuplicateAuthorization);
    }
    let authority = authority(req, &fields)?;
    let host = host_of(&authority).ok_or(Reason::InvalidHost)?;
    let path = normalize_path(req.uri().path()).map_err(Reason::AmbiguousPath)?;
    Ok(Target {
        host,
        authority,
        path,
        query: req.uri().query().map(str::to_string),
    })
}

/// What `normalize` needs from the header section, read in one pass over it: a lookup in a
/// `HeaderMap` hashes the name and probes, which for a handful of names costs more than
/// walking every field once.
struct Fields<'a> {
    /// The header section's size, counted as on the wire (`name: value\r\n`).
    size: usize,
    host: Option<&'a HeaderValue>,
    hosts: usize,
    authorization: usize,
    transfer_encoding: bool,
    content_length: Option<&'a HeaderValue>,
    /// A second Content-Length differs from the first.
    conflicting_lengths: bool,
}

impl<'a> Fields<'a> {
    fn read(headers: &'a HeaderMap) -> Self {
        let mut f = Fields {
            size: 0,
            host: None,
            hosts: 0,
            authorization: 0,
            transfer_encoding: false,
            content_length: None,
            conflicting_lengths: false,
        };
        for (name, value) in headers {
            f.size += name.as_str().len() + value.len() + 4;
            if name == HOST {
                f.hosts += 1;
                f.host.get_or_insert(value);
            } else if name == AUTHORIZATION {
                f.authorization += 1;
            } else if name == TRANSFER_ENCODING {
                f.transfer_encoding = true;
            } else if name == CONTENT_LENGTH {
                match f.content_length {
                    None => f.content_length = Some(value),
                    Some(first) => f.conflicting_lengths |= first != value,
                }
            }
        }
        f
    }
}

/// RFC 9112 §6.1 and §6.3: a request with both Content-Length and Transfer-Encoding, or with
/// an invalid or repeated-and-different Content-Length, is a smuggling attempt or a broken
/// client; either way it is refused.
fn check_framing(fields: &Fields<'_>) -> Result<(), Reason> {
    if let Some(first) = fields.content_length {
        let valid = !first.is_empty() && first.as_bytes().iter().all(u8::is_ascii_digit);
        if fields.transfer_encoding || !valid || fields.conflicting_lengths {
            return Err(Reason::ConflictingFraming);
        }
    }
    Ok(())
}

/// RFC 9112 §3.2: HTTP/1.1 needs exactly one Host; with an absolute-form target, the target's
/// authority wins. HTTP/2 carries `:authority`, which hyper puts in the URI.
fn authority<B>(req: &Request<B>, fields: &Fields<'_>) -> Result<String, Reason> {
    if fields.hosts > 1 {
        return Err(Reason::InvalidHost);
    }
    if let Some(a) = req.uri().authority() {
        if a.as_str().contains('@') {
            return Err(Reason::InvalidHost);
        }
        return Ok(a.as_str().to_string());
    }
    match fields.host {
        Some(v) => v
            .to_str()
            .map(str::to_string)
            .map_err(|_| Reason::InvalidHost),
        None if req.version() == Version::HTTP_10 || req.version() == Version::HTTP_09 => {
            Ok(String::new())
        }
        None => Err(Reason::InvalidHost),
    }
}

/// The host part of `host[:port]` or `[v6]:port`, lower-cased, without a trailing dot.
/// None if it is not a valid RFC 3986 host.
fn host_of(authority: &str) -> Option<Host> {
    if authority.is_empty() {
        return Some(Host::Prefix(0));
    }
    if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let (v6, after) = rest.split_at(end);
        let port = after.get(1..)?;
        if !(port.is_empty() || valid_port(port.strip_prefix(':')?)) {
            return None;
        }
        v6.parse::<std::net::Ipv6Addr>().ok()?;
        return Some(Host::Owned(format!("[{}]", v6.to_ascii_lowercase())));
    }
    // The last ':' by a byte scan: `rsplit_once(':')` goes through the generic reverse
    // char searcher, several times the cost for an authority's few bytes.
    let (host, port) = match authority.bytes().rposition(|b| b == b':') {
        Some(i) => (
            authority.get(..i).unwrap_or_default(),
            authority.get(i + 1..),
        ),
        None => (authority, None),
    };
    if let Some(p) = port {
        if !valid_port(p) {
            return None;
        }
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    let ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if !ok {
        return None;
    }
    // `host` is a prefix of `authority`; most clients send it in lower case already.
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Host::Owned(host.to_ascii_lowercase())
    } else {
        Host::Prefix(host.len())
    })
}

fn valid_port(p: &str) -> bool {
    !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit())
}

/// Normalises an origin-form path. Errors name what was ambiguous.
///
/// - `\`, `;`, `%2F`, `%5C`, `%00` and encoded dot-segments (`%2e%2e`): refused, because
///   backends differ on whether they are separators or dot-segments.
/// - invalid percent-encoding: refused.
/// - `%41` and other encoded unreserved characters: decoded; other escapes are kept with
///   upper-case hex digits (RFC 3986 §6.2.2.1).
/// - `.` and `..` segments: resolved (RFC 3986 §5.2.4); `..` above the root stays at the root.
/// - empty segments (`//`): merged, as nginx's default `merge_slashes` does.
pub fn normalize_path(raw: &str) -> Result<String, &'static str> {
    if !raw.starts_with('/') {
        // `*` (OPTIONS *) and anything else that is not origin-form.
        return Err("a target that is not an absolute path");
    }
    if is_already_normal(raw) {
        return Ok(raw.to_string());
    }
    normalize_slowly(raw)
}

/// [`normalize_path`] segment by segment, for a path that is not normal already.
fn normalize_slowly(raw: &str) -> Result<String, &'static str> {
    let mut out: Vec<String> = Vec::new();
    let trailing_slash = raw.len() > 1 && raw.ends_with('/');
    let mut last_was_dot = false;
    for segment in raw.split('/').skip(1) {
        let (decoded, had_escape) = normalize_segment(segment)?;
        last_was_dot = false;
        match decoded.as_str() {
            "" => {}
            "." | ".." if had_escape => return Err("an encoded dot-segment"),
            "." => last_was_dot = true,
            ".." => {
                out.pop();
                last_was_dot = true;
            }
            _ => out.push(decoded),
        }
    }
    let mut path = String::with_capacity(raw.len());
    for s in &out {
        path.push('/');
        path.push_str(s);
    }
    // `/a/.` and `/a/..` name a directory: keep the trailing slash (RFC 3986 §5.2.4 output).
    if trailing_slash || last_was_dot || path.is_empty() {
        path.push('/');
    }
    Ok(path)
}

/// The bytes a path that needs no normalising is made of: unreserved and sub-delim
/// characters, ':', '@' and '/' (RFC 3986 §3.3), without '%', ';' (a parameter to some
/// servers) and '\\'. A table: one load per byte.
const PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,=:@/";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// The common case, decided in one pass without allocating: only [`PLAIN`] bytes, no empty
/// segment except a trailing one, no dot-segment. `raw` starts with '/'.
fn is_already_normal(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    // A segment ends at each '/' after the first byte, and at the end.
    let dot_or_empty = |seg: &[u8]| matches!(seg, b"" | b"." | b"..");
    let mut start = 1;
    for (i, &b) in bytes.iter().enumerate().skip(1) {
        if !PLAIN[usize::from(b)] {
            return false;
        }
        if b == b'/' {
            if dot_or_empty(&bytes[start..i]) {
                return false;
            }
            start = i + 1;
        }
    }
    // The last segment may be empty (a trailing '/'), not a dot-segment.
    !matches!(bytes.get(start..), Some(b"." | b".."))
}

fn normalize_segment(segment: &str) -> Result<(String, bool), &'static str> {
    let bytes = segment.as_bytes();
    let mut out = String::with_capacity(segment.len());
    let mut had_escape = false;
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'\\' => return Err("a backslash"),
            b';' => return Err("a ';' path parameter"),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16));
                let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err("invalid percent-encoding");
                };
                let v = (hi * 16 + lo) as u8;
                match v {
                    b'/' => return Err("an encoded '/'"),
                    b'\\' => return Err("an encoded '\\'"),
                    0 => return Err("an encoded NUL"),
                    // A server that decodes before it strips path parameters (Tomcat behind
                    // a decoding proxy) would read `..%3B` as `..;`, a dot-segment.
                    b';' => return Err("an encoded ';'"),
                    _ if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') => {
                        had_escape = true;
                        out.push(v as char);
                    }
                    _ => {
                        out.push('%');
                        out.push_str(&format!("{v:02X}"));
                    }
                }
                i += 3;
            }
            _ if b.is_ascii_control() || !b.is_ascii() => {
                return Err("a control or non-ASCII character")
            }
            _ => {
                out.push(b as char);
                i += 1;
            }
        }
    }
    Ok((out, had_escape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_dot_segments_and_merges_slashes() {
        for (raw, want) in [
            ("/", "/"),
            ("/a/b/../c", "/a/c"),
            ("/a/./b", "/a/b"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("//admin", "/admin"),
            ("/admin//x/", "/admin/x/"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/a/.", "/a/"),
            ("/%61dmin", "/admin"),
            ("/a%2fb".replace("2f", "20").as_str(), "/a%20b"),
            ("/x%7e", "/x~"),
            ("/caf%c3%a9", "/caf%C3%A9"),
        ] {
            assert_eq!(normalize_path(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn the_one_pass_check_passes_only_paths_normalising_leaves_alone() {
        let normal = [
            "/",
            "/a",
            "/a/",
            "/a/b",
            "/a.b/c",
            "/.a",
            "/..a",
            "/a.",
            "/a../",
            "/~u/x-y_z",
            "/a:b@c",
            "/!$&'()*+,=",
            "/ABC/09",
        ];
        let not_normal = [
            "//",
            "/a//b",
            "/.",
            "/..",
            "/./a",
            "/../a",
            "/a/.",
            "/a/..",
            "/a/./b",
            "/a/../b",
            "/a/.//",
            "/%61",
            "/a;b",
            "/a\\b",
            "/a b",
            "/caf\u{e9}",
            "/a?b",
            "/a#b",
            "/a\"b",
        ];
        for p in normal {
            assert!(is_already_normal(p), "{p} is normal");
            assert_eq!(normalize_slowly(p).as_deref(), Ok(p), "{p}");
        }
        for p in not_normal {
            assert!(!is_already_normal(p), "{p} needs the slow path");
        }
        // Every byte: the table and the slow path agree on what stays as it is.
        for b in 0..=255u8 {
            let p = format!("/a{}", char::from(b));
            if is_already_normal(&p) {
                assert_eq!(normalize_slowly(&p).as_deref(), Ok(p.as_str()), "{b:#x}");
            }
        }
    }

    #[test]
    fn refuses_ambiguous_forms() {
        for raw in [
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
            "/a%00",
            "/%2e%2e/admin",
            "/%2E/admin",
            "/.%2e/admin",
            "/a%zz",
            "/a%2",
            "/admin;jsessionid=1",
            "*",
        ] {
            assert!(normalize_path(raw).is_err(), "{raw} should be refused");
        }
    }

    fn req(version: Version, headers: &[(&str, &str)], uri: &str) -> Request<()> {
        let mut b = Request::builder().uri(uri).version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request")
    }

    #[test]
    fn host_rules() {
        let r = req(Version::HTTP_11, &[("host", "Example.COM.:8080")], "/");
        assert_eq!(
            normalize(&r, 8192).map(|t| t.host().to_string()),
            Ok("example.com".into())
        );
        let r = req(Version::HTTP_11, &[], "/");
        assert_eq!(normalize(&r, 8192), Err(Reason::InvalidHost));
        let r = req(Version::HTTP_11, &[("host", "a"), ("host", "b")], "/");
        assert_eq!(normalize(&r, 8192), Err(Reason::InvalidHost));
        let r = req(Version::HTTP_11, &[("host", "a b")], "/");
        assert_eq!(normalize(&r, 8192), Err(Reason::InvalidHost));
        let r = req(Version::HTTP_11, &[("host", "[::1]:80")], "/");
        assert_eq!(
            normalize(&r, 8192).map(|t| t.host().to_string()),
            Ok("[::1]".into())
        );
        // RFC 9112 §3.2.2: absolute-form wins over Host.
        let r = req(Version::HTTP_11, &[("host", "a")], "http://b.example/x");
        assert_eq!(
            normalize(&r, 8192).map(|t| t.host().to_string()),
            Ok("b.example".into())
        );
        // Already normal: the host is the authority's prefix, not a copy.
        let r = req(Version::HTTP_11, &[("host", "app.example.:8443")], "/");
        let t = normalize(&r, 8192).expect("target");
        assert_eq!(
            (t.host(), t.authority.as_str()),
            ("app.example", "app.example.:8443")
        );
        assert_eq!(t.host, Host::Prefix(11));
        let r = req(Version::HTTP_11, &[("host", "App.example")], "/");
        assert_eq!(normalize(&r, 8192).expect("target").host(), "app.example");
    }

    #[test]
    fn framing_and_duplicates() {
        let r = req(
            Version::HTTP_11,
            &[
                ("host", "a"),
                ("content-length", "3"),
                ("transfer-encoding", "chunked"),
            ],
            "/",
        );
        assert_eq!(normalize(&r, 8192), Err(Reason::ConflictingFraming));
        let r = req(
            Version::HTTP_11,
            &[
                ("host", "a"),
                ("content-length", "3"),
                ("content-length", "4"),
            ],
            "/",
        );
        assert_eq!(normalize(&r, 8192), Err(Reason::ConflictingFraming));
        let r = req(
            Version::HTTP_11,
            &[("host", "a"), ("content-length", "+3")],
            "/",
        );
        assert_eq!(normalize(&r, 8192), Err(Reason::ConflictingFraming));
        let r = req(
            Version::HTTP_11,
            &[
                ("host", "a"),
                ("authorization", "Basic YTpi"),
                ("authorization", "Basic YTpi"),
            ],
            "/",
        );
        assert_eq!(normalize(&r, 8192), Err(Reason::DuplicateAuthorization));
        let big = "x".repeat(9000);
        let r = req(Version::HTTP_11, &[("host", "a"), ("x-big", &big)], "/");
        assert_eq!(normalize(&r, 8192), Err(Reason::HeadersTooLarge));
    }
}
