//! `Authorization` credentials (RFC 9110 §11.4, §11.6.2): one credentials per field value.

use std::fmt;

use crate::auth::{self, AuthParam, Cursor};
use crate::error::{Mode, ParseError, ParseErrorKind, Sink};

/// The credentials in one `Authorization` field value.
///
/// `Debug` redacts the token68 and every parameter value; `Display` renders the full
/// field value, secret included, and is meant only for sending it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Kept as sent; compare with [`Credentials::is_scheme`].
    pub scheme: String,
    /// E.g. the Basic user-pass or the Bearer token. Exclusive with `params`.
    pub token68: Option<String>,
    /// E.g. Digest's username, response, nc... Names are unique case-insensitively.
    pub params: Vec<AuthParam>,
}

impl Credentials {
    /// Credentials with no token68 and no parameters. `scheme` must be a token.
    #[must_use]
    pub fn new(scheme: impl Into<String>) -> Self {
        Self {
            scheme: scheme.into(),
            token68: None,
            params: Vec::new(),
        }
    }

    /// Sets the token68 (`Bearer <token>`, `Basic <user-pass>`).
    #[must_use]
    pub fn with_token68(mut self, token68: impl Into<String>) -> Self {
        self.token68 = Some(token68.into());
        self
    }

    /// Adds a parameter rendered as a quoted-string.
    #[must_use]
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push(AuthParam {
            name: name.into(),
            value: value.into(),
            quoted: true,
        });
        self
    }

    /// Adds a parameter rendered as a token (e.g. Digest `nc`, `qop`, `algorithm`);
    /// a non-token value is quoted instead.
    #[must_use]
    pub fn token_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push(AuthParam {
            name: name.into(),
            value: value.into(),
            quoted: false,
        });
        self
    }

    /// Whether the auth-scheme is `scheme`, case-insensitively (RFC 9110 §11.1).
    #[must_use]
    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    /// The value of the parameter called `name`, case-insensitively (RFC 9110 §11.2).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        auth::find(&self.params, name)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.params.iter().map(|p| p.name.as_str()).collect();
        f.debug_struct("Credentials")
            .field("scheme", &self.scheme)
            .field("token68", &self.token68.as_ref().map(|_| "[redacted]"))
            .field("param_names", &names)
            .finish()
    }
}

/// Renders the field value, e.g. `Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==`.
impl fmt::Display for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        auth::render(
            &mut out,
            &self.scheme,
            self.token68.as_deref(),
            &self.params,
        );
        f.write_str(&out)
    }
}

/// Parses one `Authorization` field value: a single credentials, not a list
/// (RFC 9110 §11.6.2). Two `Authorization` lines are the caller's error to refuse
/// (§5.3); this function sees one value.
///
/// Always strict: a duplicate parameter, a tab after the scheme, a second credentials
/// or anything after the token68, control characters, non-ASCII bytes outside
/// quoted-strings and quoted-strings that are not UTF-8 are errors. UTF-8 inside a
/// quoted-string is accepted. Leading/trailing OWS and empty elements in the auth-param
/// list are tolerated (§5.6.1.2). Error messages never contain the credentials.
pub fn parse_credentials(value: &[u8]) -> Result<Credentials, ParseError> {
    let mut sink = Sink::new(Mode::Strict);
    let mut cur = Cursor::new(value, 0);
    cur.skip_ows();
    let item = cur.item(&mut sink)?;
    cur.skip_ows();
    if !item.params.is_empty() {
        // Trailing empty elements of the #auth-param list.
        while cur.peek() == Some(b',') {
            cur.pos += 1;
            cur.skip_ows();
        }
    }
    if !cur.at_end() {
        return Err(cur.unexpected(ParseErrorKind::ExpectedEnd));
    }
    let (scheme, token68, params) = item.into_parts();
    Ok(Credentials {
        scheme,
        token68,
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::LintKind;

    fn err(v: &[u8]) -> (ParseErrorKind, usize) {
        let e = parse_credentials(v).unwrap_err();
        (e.kind, e.offset)
    }

    #[test]
    fn parses_basic_and_bearer_token68() {
        let c = parse_credentials(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert!(c.is_scheme("basic"));
        assert_eq!(c.token68.as_deref(), Some("QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        assert!(c.params.is_empty());
        let c = parse_credentials(b"  bearer  mF_9.B5f-4.1JqM  ").unwrap();
        assert!(c.is_scheme("Bearer"));
        assert_eq!(c.token68.as_deref(), Some("mF_9.B5f-4.1JqM"));
    }

    #[test]
    fn parses_digest_params() {
        let v = br#"Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let c = parse_credentials(v).unwrap();
        assert!(c.is_scheme("DIGEST"));
        assert_eq!(c.get("USERNAME"), Some("Mufasa"));
        assert_eq!(c.get("nc"), Some("00000001"));
        assert_eq!(c.get("uri"), Some("/dir/index.html"));
        assert_eq!(c.params.len(), 10);
        assert_eq!(c.token68, None);
    }

    #[test]
    fn round_trips_render_then_parse() {
        let c = Credentials::new("Digest")
            .param("username", "J\"o\\e, jr")
            .param("realm", "r")
            .token_param("nc", "00000001")
            .token_param("qop", "auth");
        assert_eq!(parse_credentials(c.to_string().as_bytes()).unwrap(), c);
        let b = Credentials::new("Bearer").with_token68("abc.def-ghi_~+/==");
        assert_eq!(b.to_string(), "Bearer abc.def-ghi_~+/==");
        assert_eq!(parse_credentials(b.to_string().as_bytes()).unwrap(), b);
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials::new("Bearer").with_token68("s3cr3t");
        let d = format!("{c:?}");
        assert!(!d.contains("s3cr3t"), "{d}");
        assert!(d.contains("[redacted]"), "{d}");
        let c = Credentials::new("Digest").param("response", "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }

    #[test]
    fn tolerates_bws_and_empty_param_elements() {
        let c = parse_credentials(br#"Digest a = "1" , , b= 2,"#).unwrap();
        assert_eq!(c.get("A"), Some("1"));
        assert_eq!(c.get("b"), Some("2"));
    }

    #[test]
    fn strict_errors_with_offsets() {
        use ParseErrorKind as K;
        assert_eq!(err(b""), (K::ExpectedScheme, 0));
        assert_eq!(err(b"   "), (K::ExpectedScheme, 3));
        assert_eq!(err(b", Basic abc"), (K::ExpectedScheme, 0));
        assert_eq!(
            err(br#"Digest a="1", A="2""#),
            (K::Strict(LintKind::DuplicateParam { name: "A".into() }), 14)
        );
        assert_eq!(err(b"Basic abc def"), (K::ExpectedEquals, 10));
        assert_eq!(err(br#"Digest a="x", b="#), (K::ExpectedValue, 16));
        assert_eq!(err(b"Basic abc==,"), (K::ExpectedEnd, 11));
        assert_eq!(err(b"Basic abc, Bearer def"), (K::ExpectedEnd, 9));
        assert_eq!(err(br#"Digest a="1", Basic abc"#), (K::ExpectedEnd, 14));
        assert_eq!(err(b"Basic ,"), (K::ExpectedEnd, 6));
        assert_eq!(
            err(b"Bearer abc\r\n"),
            (K::ControlCharacter { byte: b'\r' }, 10)
        );
        assert_eq!(err(b"Bearer ab\0c"), (K::ControlCharacter { byte: 0 }, 9));
        assert_eq!(
            err(b"Bearer \x7fabc"),
            (K::ControlCharacter { byte: 0x7f }, 7)
        );
        assert_eq!(
            err("Bearer abc\u{e9}".as_bytes()),
            (K::NonAscii { byte: 0xc3 }, 10)
        );
        assert_eq!(
            err(b"Digest a=\"\xff\""),
            (K::Strict(LintKind::InvalidUtf8), 9)
        );
        assert_eq!(err(b"Digest a=\"x"), (K::UnterminatedQuotedString, 9));
        assert_eq!(err(b"Bearer\tabc"), (K::Strict(LintKind::BadWhitespace), 6));
        assert_eq!(
            err(br#"realm="x""#),
            (
                K::ParamWithoutScheme {
                    name: "realm".into()
                },
                0
            )
        );
        // UTF-8 inside a quoted-string is fine.
        let c = parse_credentials("Digest username=\"J\u{f6}rg\"".as_bytes()).unwrap();
        assert_eq!(c.get("username"), Some("J\u{f6}rg"));
    }

    #[test]
    fn error_messages_do_not_echo_credentials() {
        for v in [
            b"Digest response=\"s3cr3t".as_slice(),
            b"Bearer s3cr3t s3cr3t",
            b"Digest response=\"s3cr3t\", response=\"s3cr3t\"",
        ] {
            let e = parse_credentials(v).unwrap_err();
            assert!(!e.to_string().contains("s3cr3t"), "{e}");
        }
    }
}
