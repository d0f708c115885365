//! Where to send the browser after sign-in, without becoming an open redirect.
//!
//! The return URL arrives in a query string or a form field, so an attacker chooses it. The rule
//! is therefore an allow-list: [`safe_return`] accepts only what it positively recognises as a
//! path on this site, or an absolute URL on a configured origin, and answers `"/"` for
//! everything else.
//!
//! Why the checks are stricter than RFC 3986 alone would need: browsers parse `Location` values
//! and links with the WHATWG URL Standard (<https://url.spec.whatwg.org/#concept-basic-url-parser>),
//! which differs from RFC 3986 in ways that turn harmless-looking paths into other hosts:
//! - leading and trailing C0 controls and spaces are stripped, and ASCII tab, LF and CR are
//!   removed anywhere in the input, so `/\t/evil.com` is `//evil.com`;
//! - for the special schemes (http, https) `\` is treated exactly like `/`, so `/\evil.com` is
//!   `//evil.com`;
//! - `//host` is a network-path reference (RFC 3986 §4.2) that keeps the scheme but changes host;
//! - `https:evil.com` and `http:/evil` are read as `https://evil.com/` and `http://evil/` when the
//!   scheme is special, whatever the base URL.
//!
//! And servers, proxies and application frameworks further along may percent-decode the path once
//! or more and then redirect again, so `/%2F/evil.com` can become `//evil.com`. Every check is
//! therefore applied to the raw value and to each percent-decoded form of it.

/// Longest return URL accepted, in bytes. Longer values are not an attack in themselves, but no
/// legitimate page needs them and they bloat cookies and `Location` headers.
const MAX_LEN: usize = 2048;

/// How many rounds of percent-decoding a value may need before it stops changing. Legitimate
/// values need at most two (a path that was encoded into a query string once more); anything
/// nested deeper is refused rather than followed.
const MAX_DECODE_ROUNDS: usize = 3;

/// The place to send the browser after sign-in. Only ever a path on this site, or an absolute
/// URL whose origin (`scheme://host[:port]`, compared case-insensitively, default ports normalised)
/// is in `allowed_origins` (each given like `"https://app.example.com"`). Anything else gives "/".
///
/// A path is accepted when it starts with exactly one `/` followed by a character that is not
/// `/`, and consists only of RFC 3986 path, query and fragment characters (unreserved,
/// sub-delims, `:`, `@`, `/`, `?`, at most one `#`, and well-formed `%XX` escapes), at most
/// 2048 bytes. In addition, the raw value and each of its percent-decodings (repeated until
/// stable, at most three rounds, otherwise refused) must all be valid UTF-8 with
/// no `\`, no control character, no whitespace other than a plain space, no `.` or `..` path
/// segment, and must start with `/` followed by a printable ASCII character other than `/`.
/// So `/a%20b` is accepted (a space inside the path starts no authority), `/%20/x` is not.
///
/// An absolute URL must be `http://` or `https://` (any case), a host of ASCII letters, digits,
/// `-` and `.` (no user info, no IP-literal in brackets, no trailing dot, no percent-escapes), an
/// optional port 1–65535, and then nothing or a path, query or fragment that passes the checks
/// above. Entries of `allowed_origins` that are not such an origin (optionally followed by a
/// single `/`) never match.
///
/// The value returned is the input unchanged when accepted. Either way it holds only printable
/// ASCII that is valid in a `Location` header; it still needs HTML-escaping inside a page.
pub fn safe_return(raw: Option<&str>, allowed_origins: &[String]) -> String {
    match raw {
        Some(s) if is_safe(s, allowed_origins) => s.to_owned(),
        _ => "/".to_owned(),
    }
}

fn is_safe(s: &str, allowed_origins: &[String]) -> bool {
    if s.is_empty()
        || s.len() > MAX_LEN
        || !s.bytes().all(is_uri_char)
        || s.bytes().filter(|&b| b == b'#').count() > 1
        || !escapes_well_formed(s.as_bytes())
    {
        return false;
    }
    if s.starts_with('/') {
        return all_forms_ok(s, true);
    }
    let Some((origin, rest)) = split_absolute(s) else {
        return false;
    };
    let allowed = allowed_origins
        .iter()
        .any(|a| parse_allowed_origin(a).as_ref() == Some(&origin));
    allowed && is_safe_rest(rest)
}

/// The characters RFC 3986 allows in a path, query or fragment (§3.3–3.5), plus `%` for escapes
/// and `#` as the fragment delimiter. Everything else (space, controls, `\`, `"`, `<`, `>`, `[`,
/// `]`, `^`, `` ` ``, `{`, `|`, `}`, non-ASCII) is refused outright.
fn is_uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
                | b'?'
                | b'#'
                | b'%'
        )
}

/// Every `%` is followed by two hex digits (RFC 3986 §2.1). A stray `%` is refused in the raw
/// value because decoders disagree about what it means.
fn escapes_well_formed(mut rest: &[u8]) -> bool {
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            match tail {
                [h, l, after @ ..] if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                    rest = after;
                    continue;
                }
                _ => return false,
            }
        }
        rest = tail;
    }
    true
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// One round of percent-decoding. A `%` not followed by two hex digits is kept as it is, the way
/// most servers do it (the raw value has already been checked to have none).
fn decode_once(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rest.len());
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' {
            if let [h, l, after @ ..] = tail {
                if let (Some(h), Some(l)) = (hex_value(*h), hex_value(*l)) {
                    out.push((h << 4) | l);
                    rest = after;
                    continue;
                }
            }
        }
        out.push(b);
        rest = tail;
    }
    out
}

/// Checks the raw value and each percent-decoding of it until decoding changes nothing.
/// `path` says the value must start like a path on this site.
fn all_forms_ok(raw: &str, path: bool) -> bool {
    let mut form = raw.as_bytes().to_vec();
    for _ in 0..=MAX_DECODE_ROUNDS {
        if !form_ok(&form, path) {
            return false;
        }
        let next = decode_once(&form);
        if next == form {
            return true;
        }
        form = next;
    }
    // Still changing: encoded deeper than any legitimate use, and some decoder further along
    // might go one round further than we did.
    false
}

fn form_ok(bytes: &[u8], path: bool) -> bool {
    // A decoded form that is not UTF-8 (`%FF`, a truncated sequence) has no single meaning.
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    // `\` counts as `/` in browsers; controls and tab/LF/CR are stripped or split headers
    // (`%0d%0a`); other whitespace (NEL, NBSP, U+2028, ideographic space) gets trimmed by some
    // parsers. A plain space is allowed inside the path, see below.
    if text
        .chars()
        .any(|c| c == '\\' || c.is_control() || (c.is_whitespace() && c != ' '))
    {
        return false;
    }
    if path {
        let mut chars = text.chars();
        if chars.next() != Some('/') {
            return false;
        }
        // The character after the first `/` is where an authority would start (`//host`):
        // it must be something no parser could take as a second slash or strip away, so only
        // printable ASCII other than `/` (which also rules out a space and fullwidth solidus).
        if let Some(c) = chars.next() {
            if c == '/' || !c.is_ascii_graphic() {
                return false;
            }
        }
    }
    !has_dot_segment(text)
}

/// `.` and `..` segments in the path part (RFC 3986 §5.2.4): `/..//evil.com` normalises to
/// `//evil.com` in some libraries, and no sign-in return needs them.
fn has_dot_segment(text: &str) -> bool {
    let path = text.split(['?', '#']).next().unwrap_or("");
    path.split('/').any(|seg| seg == "." || seg == "..")
}

/// What follows the authority of an absolute URL: empty, or a path, query or fragment that passes
/// the same checks as a relative path.
fn is_safe_rest(rest: &str) -> bool {
    if rest.is_empty() {
        true
    } else if rest.starts_with('/') {
        all_forms_ok(rest, true)
    } else if rest.starts_with('?') || rest.starts_with('#') {
        all_forms_ok(rest, false)
    } else {
        false
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Origin {
    https: bool,
    /// Lowercase.
    host: String,
    /// The effective port: 80 or 443 when none was written.
    port: u16,
}

/// Splits `scheme://authority` off an absolute http(s) URL; the second part is what follows the
/// authority (starting with `/`, `?`, `#`, or empty). None for anything else, including the
/// scheme-relative forms browsers accept (`https:evil.com`, `http:/evil`).
fn split_absolute(s: &str) -> Option<(Origin, &str)> {
    let (scheme, after) = s.split_once(':')?;
    let https = if scheme.eq_ignore_ascii_case("https") {
        true
    } else if scheme.eq_ignore_ascii_case("http") {
        false
    } else {
        return None;
    };
    let after = after.strip_prefix("//")?;
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    };
    if !is_host(host) {
        return None;
    }
    let port = match port {
        None => {
            if https {
                443
            } else {
                80
            }
        }
        // An empty port (`host:`) means the default to browsers; refused to keep one spelling.
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            match p.parse::<u16>() {
                Ok(n) if n != 0 => n,
                _ => return None,
            }
        }
        Some(_) => return None,
    };
    Some((
        Origin {
            https,
            host: host.to_ascii_lowercase(),
            port,
        },
        rest,
    ))
}

/// A DNS name or dotted IPv4 address as written: labels of 1–63 ASCII letters, digits and `-`,
/// not starting or ending with `-`, at most 253 bytes, no empty label (so no trailing dot, which
/// would be a different origin to a browser). `@` (user info), `%`, `[` never get here.
fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// An allowed origin from config: `scheme://host[:port]`, optionally with a trailing `/`.
fn parse_allowed_origin(s: &str) -> Option<Origin> {
    match split_absolute(s) {
        Some((origin, "" | "/")) => Some(origin),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn allowed() -> Vec<String> {
        [
            "https://app.example.com",
            "http://legacy.example.com",
            "https://ports.example.com:8443",
            "https://slash.example.com/",
            "HTTPS://Upper.Example.COM:443",
            // Not origins: must never match anything.
            "https://withpath.example.com/app",
            "app.example.org",
            "",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn none_gives_root() {
        assert_eq!(safe_return(None, &allowed()), "/");
    }

    #[test]
    fn refuses_what_is_not_positively_safe() {
        let long_path = format!("/{}", "a".repeat(MAX_LEN));
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            // Other hosts via network-path references and the WHATWG quirks.
            ("//evil.com", "network-path reference"),
            ("///evil.com", "triple slash"),
            ("/\\evil.com", "backslash is a slash to browsers"),
            ("\\\\evil.com", "double backslash"),
            ("\\/evil.com", "backslash slash"),
            (" //evil.com", "leading space is stripped by browsers"),
            ("/\t/evil.com", "tab is removed by browsers"),
            ("/\n/evil.com", "newline is removed by browsers"),
            ("/\r/evil.com", "CR is removed by browsers"),
            ("//evil.com\t", "trailing tab"),
            // Percent-encoded versions, once and repeatedly.
            ("/%2F/evil.com", "encoded slash"),
            ("/%2f/evil.com", "encoded slash, lowercase"),
            ("/%2Fevil.com", "encoded slash right after the first"),
            ("/%5Cevil.com", "encoded backslash"),
            ("/%5cevil.com", "encoded backslash, lowercase"),
            ("/a%5Cb", "encoded backslash anywhere"),
            ("%2F%2Fevil.com", "fully encoded network-path reference"),
            ("/%09/evil.com", "encoded tab"),
            ("/%0A/evil.com", "encoded LF"),
            ("/%0d%0aSet-Cookie:%20x=1", "header injection"),
            ("/a%00b", "encoded NUL"),
            ("/%7F", "encoded DEL"),
            (
                "/%20/evil.com",
                "encoded space where an authority would start",
            ),
            ("/%252F/evil.com", "double-encoded slash"),
            ("/%25252F/evil.com", "triple-encoded slash"),
            ("/%255C/evil.com", "double-encoded backslash"),
            ("/%2509/evil.com", "double-encoded tab"),
            ("/a%25250Ab", "triple-encoded LF"),
            ("/%2525252541", "encoded deeper than the rounds allowed"),
            // Unicode whitespace, controls and look-alikes once decoded.
            ("/%C2%85", "NEL"),
            ("/a%C2%A0b", "no-break space"),
            ("/a%E2%80%A8b", "line separator"),
            ("/%E3%80%80", "ideographic space"),
            (
                "/%EF%BC%8Fevil.com",
                "fullwidth solidus where an authority would start",
            ),
            ("/%FF", "decodes to invalid UTF-8"),
            ("/%C3", "decodes to a truncated UTF-8 sequence"),
            ("/%C0%AF", "overlong UTF-8 slash"),
            // Malformed escapes and characters outside RFC 3986.
            ("/%", "stray percent"),
            ("/%zz", "percent without hex"),
            ("/%2", "truncated escape"),
            ("/é", "raw non-ASCII"),
            ("/a b", "raw space"),
            ("/<script>", "angle brackets"),
            ("/\"onmouseover=x", "double quote"),
            ("/a`b", "backtick"),
            ("/a{b}", "braces"),
            ("/a|b", "pipe"),
            ("/a^b", "caret"),
            ("/[::1]", "brackets"),
            ("/a#b#c", "two fragment delimiters"),
            ("/a\u{0}b", "raw NUL"),
            ("/a\u{7f}b", "raw DEL"),
            // Dot segments, raw and encoded.
            ("/..//evil.com", "dot-dot then network path"),
            ("/a/../b", "dot-dot"),
            ("/./", "dot"),
            ("/.", "lone dot"),
            ("/a/..", "trailing dot-dot"),
            ("/%2e%2e/", "encoded dot-dot"),
            ("/%2E%2E%2F%2Fevil.com", "encoded dot-dot and slashes"),
            (
                "/%3F/../..//evil.com",
                "encoded question mark hiding dot-dot",
            ),
            // Not paths at all.
            ("app/page", "relative path without slash"),
            ("?x=1", "query only"),
            ("#frag", "fragment only"),
            (".", "dot"),
            ("..", "dot-dot"),
            ("evil.com", "bare host"),
            ("javascript:alert(1)", "javascript scheme"),
            ("JaVaScRiPt:alert(1)", "javascript scheme, mixed case"),
            ("javascript://%0aalert(1)", "javascript scheme with slashes"),
            ("data:text/html,x", "data scheme"),
            ("vbscript:x", "vbscript scheme"),
            ("ftp://app.example.com/", "other scheme on an allowed host"),
            (
                "//app.example.com/x",
                "scheme-relative, even to an allowed host",
            ),
            // Absolute URLs on origins that are not allowed.
            ("http://evil.com", "other host over http"),
            ("https://evil.com", "other host"),
            ("https://evil.com/", "other host with path"),
            (
                "https://app.example.com.evil.com",
                "allowed host as a prefix",
            ),
            (
                "https://app.example.com.evil.com/x",
                "allowed host as a prefix, path",
            ),
            ("https://evilapp.example.com", "suffix look-alike"),
            ("https://app.example.com@evil.com", "user info"),
            (
                "https://user:pw@app.example.com/",
                "user info on the allowed host",
            ),
            (
                "https://app.example.com:443@evil.com/",
                "port-looking user info",
            ),
            (
                "https://app.example.com%2F@evil.com",
                "encoded slash in user info",
            ),
            (
                "https://app.example.com\\@evil.com",
                "backslash in authority",
            ),
            ("https:evil.com", "special scheme without slashes"),
            (
                "https:app.example.com",
                "special scheme without slashes, allowed host",
            ),
            ("http:/evil", "special scheme with one slash"),
            ("https:///evil.com", "special scheme with three slashes"),
            ("https://", "no host"),
            ("https://:443/", "empty host"),
            ("http://app.example.com/", "allowed host, other scheme"),
            (
                "https://legacy.example.com/",
                "allowed host, other scheme (other way)",
            ),
            ("https://app.example.com:8443/", "allowed host, other port"),
            (
                "https://ports.example.com/",
                "allowed host, default instead of 8443",
            ),
            ("https://app.example.com./", "trailing dot"),
            ("https://app.example.com:/", "empty port"),
            ("https://app.example.com:0/", "port zero"),
            ("https://app.example.com:99999/", "port out of range"),
            ("https://app.example.com:+443/", "signed port"),
            ("https://[::1]/", "IP literal"),
            ("https://app..example.com/", "empty label"),
            ("https://-app.example.com/", "label starting with a hyphen"),
            (
                "https://withpath.example.com/app",
                "config entry with a path is no origin",
            ),
            (
                "https://evil.com#https://app.example.com",
                "allowed origin in the fragment",
            ),
            (
                "https://evil.com?https://app.example.com",
                "allowed origin in the query",
            ),
            (
                "https://evil.com/https://app.example.com",
                "allowed origin in the path",
            ),
            // Allowed origins, but a dangerous rest.
            (
                "https://app.example.com//evil.com",
                "network path on allowed origin",
            ),
            (
                "https://app.example.com/%2F/evil.com",
                "encoded slash on allowed origin",
            ),
            ("https://app.example.com/a\tb", "tab on allowed origin"),
            (
                "https://app.example.com?a=%0d%0a",
                "CRLF in query on allowed origin",
            ),
            ("https://app.example.com/../x", "dot-dot on allowed origin"),
        ];
        let allowed = allowed();
        for (raw, why) in cases {
            assert_eq!(
                safe_return(Some(raw), &allowed),
                "/",
                "{why}: sent {raw:?}, expected \"/\""
            );
        }
        assert_eq!(
            safe_return(Some(&long_path), &allowed),
            "/",
            "over {MAX_LEN} bytes"
        );
    }

    #[test]
    fn accepts_paths_and_allowed_origins() {
        let exactly_max = format!("/{}", "a".repeat(MAX_LEN - 1));
        let cases: &[(&str, &str)] = &[
            ("/", "root"),
            ("/app/page?x=1#frag", "path, query and fragment"),
            ("/a%20b", "encoded space inside the path"),
            ("/caf%C3%A9", "encoded UTF-8"),
            ("/a/b/c/", "trailing slash"),
            ("/a//b", "double slash later in the path is still this site"),
            ("/search?q=a%2Fb", "encoded slash in the query"),
            ("/x?next=%2F%2Fevil.com", "slashes only inside the query"),
            ("/x?next=/../y", "dot-dot only inside the query"),
            ("/%25", "encoded percent decodes to a lone percent"),
            ("/%2541", "double-encoded letter"),
            ("/a.b/.c/..d", "dots that are not dot segments"),
            ("/~user/!$&'()*+,;=:@", "all sub-delims and pchar"),
            ("/?", "empty query"),
            ("/#", "empty fragment"),
            ("/a?b#c?d/e", "query and fragment characters"),
            ("https://app.example.com/x", "allowed origin"),
            ("https://app.example.com", "allowed origin, no path"),
            ("https://app.example.com/", "allowed origin, root"),
            ("https://app.example.com?x=1", "allowed origin, query only"),
            ("https://app.example.com#f", "allowed origin, fragment only"),
            (
                "HTTPS://APP.EXAMPLE.COM/x",
                "case-insensitive scheme and host",
            ),
            ("https://app.example.com:443/x", "explicit default port"),
            ("http://legacy.example.com/", "allowed http origin"),
            (
                "http://legacy.example.com:80/",
                "allowed http origin, explicit port",
            ),
            (
                "https://ports.example.com:8443/x",
                "allowed non-default port",
            ),
            (
                "https://slash.example.com/x",
                "config entry with trailing slash",
            ),
            (
                "https://upper.example.com/x",
                "config entry in upper case with :443",
            ),
        ];
        let allowed = allowed();
        for (raw, why) in cases {
            assert_eq!(
                safe_return(Some(raw), &allowed),
                *raw,
                "{why}: sent {raw:?}, expected it back"
            );
        }
        assert_eq!(safe_return(Some(&exactly_max), &allowed), exactly_max);
    }

    #[test]
    fn absolute_urls_need_an_allowed_origin() {
        assert_eq!(safe_return(Some("https://app.example.com/x"), &[]), "/");
        let only = vec!["https://app.example.com".to_string()];
        assert_eq!(
            safe_return(Some("https://app.example.com/x"), &only),
            "https://app.example.com/x"
        );
    }

    #[test]
    fn decode_once_decodes_valid_escapes_and_keeps_others() {
        assert_eq!(decode_once(b"/a%20b%2f%2F"), b"/a b//");
        assert_eq!(decode_once(b"%zz%2%"), b"%zz%2%");
        assert_eq!(decode_once(b"%2541"), b"%41");
    }
}
