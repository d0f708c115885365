//! `WWW-Authenticate` challenges (RFC 9110 §11.3, §11.6.1): building, rendering and
//! parsing, with lints for what a sender got wrong.

use std::fmt;

use crate::auth::{self, AuthParam, Cursor, Item};
use crate::error::{LintKind, Mode, ParseError, ParseErrorKind, Parsed, Sink};

/// One challenge: an auth-scheme with either a token68 or auth-params (or neither).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Kept as sent; compare with [`Challenge::is_scheme`].
    pub scheme: String,
    /// Exclusive with `params`: when set, `params` is empty (and is not rendered).
    pub token68: Option<String>,
    /// In the order sent; names unique case-insensitively after parsing.
    pub params: Vec<AuthParam>,
}

impl Challenge {
    /// A challenge with no parameters. `scheme` must be a token (debug-asserted on render).
    #[must_use]
    pub fn new(scheme: impl Into<String>) -> Self {
        Self {
            scheme: scheme.into(),
            token68: None,
            params: Vec::new(),
        }
    }

    /// Adds a parameter rendered as a quoted-string. Use this for `realm`, which a sender
    /// MUST quote (RFC 9110 §11.5), and for any free text. Control characters other than
    /// HTAB in `value` are rendered as SP.
    #[must_use]
    pub fn param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push(AuthParam {
            name: name.into(),
            value: value.into(),
            quoted: true,
        });
        self
    }

    /// Adds a parameter rendered as a bare token, e.g. Digest `stale=true` or
    /// `algorithm=SHA-256`, which RFC 7616 §3.3 says a sender MUST NOT quote.
    ///
    /// `value` must be a token (debug-asserted); in release builds a non-token value is
    /// rendered as a quoted-string rather than producing a malformed field.
    #[must_use]
    pub fn token_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let value = value.into();
        debug_assert!(crate::syntax::is_token(&value), "not a token: {value:?}");
        self.params.push(AuthParam {
            name: name.into(),
            value,
            quoted: false,
        });
        self
    }

    /// Sets the token68 form (e.g. `Negotiate <blob>`). `token68` must match the
    /// token68 grammar (debug-asserted on render).
    #[must_use]
    pub fn with_token68(mut self, token68: impl Into<String>) -> Self {
        self.token68 = Some(token68.into());
        self
    }

    /// The value of the first parameter called `name`, case-insensitively (RFC 9110 §11.2).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        auth::find(&self.params, name)
    }

    /// The `realm` parameter (RFC 9110 §11.5).
    #[must_use]
    pub fn realm(&self) -> Option<&str> {
        self.get("realm")
    }

    /// Whether the auth-scheme is `scheme`, case-insensitively (RFC 9110 §11.1).
    #[must_use]
    pub fn is_scheme(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }
}

/// Renders `Basic realm="x", charset="UTF-8"`: quoted values escape only `"` and `\`
/// (RFC 9110 §5.6.4).
impl fmt::Display for Challenge {
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

/// Joins challenges with ", " into one `WWW-Authenticate` field value
/// (RFC 9110 §11.6.1). List the best-supported scheme first: many clients only look at
/// the first challenge. An empty slice renders as "".
#[must_use]
pub fn render_challenges(challenges: &[Challenge]) -> String {
    challenges
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses all `WWW-Authenticate` field values: the field may repeat, and each value
/// may hold several challenges (RFC 9110 §11.6.1). Challenges come back in order.
///
/// Empty list elements are ignored (§5.6.1.2) and linted. Control characters (other
/// than HTAB), non-ASCII bytes outside quoted-strings, unterminated quoted-strings and
/// anything the grammar cannot place are errors in both modes. In [`Mode::Strict`] the
/// lints for which [`LintKind::is_error_in_strict`] holds are errors too; in
/// [`Mode::Lenient`] a duplicate parameter keeps its first value. Advisory lints
/// (unquoted or missing realm, Digest quoting, charset, empty elements) are reported
/// in both modes.
///
/// Quoted-string values keep obs-text; values that are not UTF-8 are an error in strict
/// mode and decoded with U+FFFD in lenient mode.
pub fn parse_challenges<'a>(
    values: impl IntoIterator<Item = &'a [u8]>,
    mode: Mode,
) -> Result<Parsed<Vec<Challenge>>, ParseError> {
    let mut sink = Sink::new(mode);
    let mut challenges = Vec::new();
    for (field_index, value) in values.into_iter().enumerate() {
        sink.field_index = field_index;
        let before = challenges.len();
        parse_field(value, field_index, &mut sink, &mut challenges)?;
        if challenges.len() == before {
            sink.lint(LintKind::NoChallenge, 0)?;
        }
    }
    Ok(Parsed {
        value: challenges,
        lints: sink.lints,
    })
}

/// `#challenge` in one field value (RFC 9110 §5.6.1.2 recipient list rules).
fn parse_field(
    value: &[u8],
    field_index: usize,
    sink: &mut Sink,
    out: &mut Vec<Challenge>,
) -> Result<(), ParseError> {
    let mut cur = Cursor::new(value, field_index);
    cur.skip_ows();
    loop {
        match cur.peek() {
            None => return Ok(()),
            Some(b',') => {
                sink.lint(LintKind::EmptyListElement, cur.pos)?;
                cur.pos += 1;
                cur.skip_ows();
                continue;
            }
            Some(_) => {}
        }
        let item = cur.item(sink)?;
        lint_challenge(&item, sink)?;
        let (scheme, token68, params) = item.into_parts();
        out.push(Challenge {
            scheme,
            token68,
            params,
        });
        cur.skip_ows();
        match cur.peek() {
            None => return Ok(()),
            Some(b',') => {
                let comma = cur.pos;
                cur.pos += 1;
                cur.skip_ows();
                if cur.at_end() {
                    sink.lint(LintKind::EmptyListElement, comma)?;
                }
            }
            Some(_) => return Err(cur.unexpected(ParseErrorKind::ExpectedCommaOrEnd)),
        }
    }
}

/// Scheme-specific sender rules that do not affect parsing.
fn lint_challenge(item: &Item, sink: &mut Sink) -> Result<(), ParseError> {
    let scheme = item.scheme.as_str();
    let is = |s: &str| scheme.eq_ignore_ascii_case(s);
    let mut has_realm = false;
    for p in &item.params {
        let name = p.param.name.as_str();
        let at = p.value_offset;
        if p.param.is("realm") {
            has_realm = true;
            // RFC 9110 §11.5: a sender MUST generate realm as a quoted-string;
            // recipients accept both (§11.2), so this is never an error.
            if !p.param.quoted {
                sink.lint(LintKind::UnquotedRealm, at)?;
            }
        } else if is("Digest") {
            // RFC 7616 §3.3: domain, nonce, opaque and qop are always quoted;
            // stale and algorithm never are.
            let must_quote = ["domain", "nonce", "opaque", "qop"];
            let must_not_quote = ["stale", "algorithm"];
            if !p.param.quoted && must_quote.iter().any(|n| p.param.is(n)) {
                sink.lint(LintKind::TokenWhereQuotedRequired { name: name.into() }, at)?;
            }
            if p.param.quoted && must_not_quote.iter().any(|n| p.param.is(n)) {
                sink.lint(LintKind::QuotedWhereTokenRequired { name: name.into() }, at)?;
            }
        } else if is("Basic")
            && p.param.is("charset")
            && !p.param.value.eq_ignore_ascii_case("UTF-8")
        {
            // RFC 7617 §2.1: the only allowed value is "UTF-8", case-insensitive.
            let value = p.param.value.clone();
            sink.lint(LintKind::UnsupportedCharset { value }, at)?;
        }
    }
    // RFC 7617 §2 and RFC 7616 §3.3: realm is REQUIRED for Basic and Digest.
    if !has_realm && (is("Basic") || is("Digest")) {
        let scheme = item.scheme.clone();
        sink.lint(LintKind::MissingRealm { scheme }, item.scheme_offset)?;
    }
    // RFC 6750 §3: a Bearer challenge carries at least one auth-param.
    if is("Bearer") && item.params.is_empty() {
        let scheme = item.scheme.clone();
        sink.lint(LintKind::MissingAuthParam { scheme }, item.scheme_offset)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Lint;

    fn strict(v: &str) -> Result<Parsed<Vec<Challenge>>, ParseError> {
        parse_challenges([v.as_bytes()], Mode::Strict)
    }

    fn lenient(v: &str) -> Result<Parsed<Vec<Challenge>>, ParseError> {
        parse_challenges([v.as_bytes()], Mode::Lenient)
    }

    fn kinds(lints: &[Lint]) -> Vec<LintKind> {
        lints.iter().map(|l| l.kind.clone()).collect()
    }

    fn err(v: &str) -> (ParseErrorKind, usize) {
        let e = strict(v).expect_err(v);
        (e.kind, e.offset)
    }

    #[test]
    fn renders_basic_with_quoted_params() {
        let c = Challenge::new("Basic")
            .param("realm", "x")
            .param("charset", "UTF-8");
        assert_eq!(c.to_string(), r#"Basic realm="x", charset="UTF-8""#);
        let d = Challenge::new("Digest")
            .param("realm", "a\"b\\c")
            .token_param("algorithm", "SHA-256")
            .token_param("stale", "true");
        assert_eq!(
            d.to_string(),
            r#"Digest realm="a\"b\\c", algorithm=SHA-256, stale=true"#
        );
        assert_eq!(Challenge::new("Negotiate").to_string(), "Negotiate");
        assert_eq!(
            Challenge::new("Negotiate")
                .with_token68("abc==")
                .to_string(),
            "Negotiate abc=="
        );
        assert_eq!(render_challenges(&[c, d.clone()]).matches(", ").count(), 4);
        assert_eq!(render_challenges(&[]), "");
    }

    #[test]
    fn round_trips_render_then_parse() {
        let challenges = vec![
            Challenge::new("Digest")
                .param("realm", "api@example.org")
                .param("qop", "auth, auth-int")
                .token_param("algorithm", "SHA-256")
                .param("nonce", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v")
                .param("opaque", "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"),
            Challenge::new("Bearer")
                .param("realm", "with \"quotes\" and \\ and, commas")
                .param("error", "invalid_token"),
            Challenge::new("Negotiate").with_token68("YIIB+w/8=="),
            Challenge::new("Basic")
                .param("realm", "£ café")
                .param("charset", "UTF-8"),
            Challenge::new("Private"),
        ];
        let rendered = render_challenges(&challenges);
        let parsed = strict(&rendered).unwrap();
        assert_eq!(parsed.value, challenges, "rendered: {rendered}");
        assert_eq!(parsed.lints, vec![], "rendered: {rendered}");
    }

    #[test]
    fn rfc_9110_example_has_two_challenges() {
        // RFC 9110 §11.6.1.
        let v = r#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#;
        let p = strict(v).unwrap();
        assert_eq!(p.value.len(), 2);
        let first = &p.value[0];
        assert!(first.is_scheme("newauth"));
        assert_eq!(first.realm(), Some("apps"));
        assert_eq!(first.get("TYPE"), Some("1"));
        assert_eq!(first.get("title"), Some(r#"Login to "apps""#));
        assert!(p.value[1].is_scheme("BASIC"));
        assert_eq!(p.value[1].realm(), Some("simple"));
        // Basic without charset is fine: charset is OPTIONAL.
        assert_eq!(p.lints, vec![]);
    }

    #[test]
    fn challenges_across_repeated_fields() {
        let fields: [&[u8]; 3] = [
            br#"Basic realm="a""#,
            br#"Bearer realm="b", error="invalid_token", Digest realm="c", nonce="n""#,
            b"Negotiate",
        ];
        let p = parse_challenges(fields, Mode::Strict).unwrap();
        let schemes: Vec<_> = p.value.iter().map(|c| c.scheme.as_str()).collect();
        assert_eq!(schemes, ["Basic", "Bearer", "Digest", "Negotiate"]);
        assert_eq!(p.value[1].get("error"), Some("invalid_token"));
        assert_eq!(p.value[2].get("nonce"), Some("n"));
    }

    #[test]
    fn quoted_pairs_and_commas_inside_quotes() {
        let p = strict(r#"Basic realm="a\"b\\c, Bearer x=y""#).unwrap();
        assert_eq!(p.value.len(), 1);
        assert_eq!(p.value[0].realm(), Some(r#"a"b\c, Bearer x=y"#));
        // A quoted-pair may escape any VCHAR, not just " and \.
        let p = strict(r#"Basic realm="\a\b""#).unwrap();
        assert_eq!(p.value[0].realm(), Some("ab"));
    }

    #[test]
    fn token68_with_padding_and_its_disambiguation() {
        let p = strict("Negotiate abc=, Other a=b, Third abc==, Fourth abc").unwrap();
        let v = &p.value;
        assert_eq!(v.len(), 4);
        assert_eq!(v[0].token68.as_deref(), Some("abc="));
        assert!(v[0].params.is_empty());
        assert_eq!(v[1].token68, None);
        assert_eq!(v[1].get("a"), Some("b"));
        assert_eq!(v[2].token68.as_deref(), Some("abc=="));
        assert_eq!(v[3].token68.as_deref(), Some("abc"));
        // `a= b` is an auth-param with BWS, not the token68 `a=` followed by junk.
        let p = strict("X a= b").unwrap();
        assert_eq!(p.value[0].get("a"), Some("b"));
        // token68 in the middle of the list, then a new challenge.
        let p = strict("Negotiate QWxh/+Zg==  , Basic realm=\"r\"").unwrap();
        assert_eq!(p.value[0].token68.as_deref(), Some("QWxh/+Zg=="));
        assert_eq!(p.value[1].realm(), Some("r"));
    }

    #[test]
    fn empty_list_elements_are_ignored_and_linted() {
        let v = r#" , Basic realm="a",, , charset="UTF-8" ,,Bearer realm="b", "#;
        let p = strict(v).unwrap();
        assert_eq!(p.value.len(), 2);
        assert_eq!(p.value[0].get("charset"), Some("UTF-8"));
        assert_eq!(p.value[1].realm(), Some("b"));
        let k = kinds(&p.lints);
        assert!(k.iter().all(|k| *k == LintKind::EmptyListElement), "{k:?}");
        assert_eq!(k.len(), 5);
        assert_eq!(p.lints[0].offset, 1);
        // A field with nothing but commas holds no challenge.
        let p = lenient(" , ,").unwrap();
        assert!(p.value.is_empty());
        assert!(kinds(&p.lints).contains(&LintKind::NoChallenge));
    }

    #[test]
    fn bws_around_equals() {
        let p = strict("Basic realm =\t\"x\" , charset= UTF-8").unwrap();
        assert_eq!(p.value[0].realm(), Some("x"));
        assert_eq!(p.value[0].get("charset"), Some("UTF-8"));
        let p = strict("Basic realm = \"x\", Bearer scope = \"a b\"").unwrap();
        assert_eq!(p.value[1].get("scope"), Some("a b"));
    }

    #[test]
    fn case_insensitive_scheme_and_param_names() {
        let p = strict(r#"bAsIc REALM="x", CharSet="utf-8""#).unwrap();
        let c = &p.value[0];
        assert!(c.is_scheme("Basic"));
        assert_eq!(c.scheme, "bAsIc", "kept as sent");
        assert_eq!(c.realm(), Some("x"));
        assert_eq!(c.get("charset"), Some("utf-8"));
        assert_eq!(p.lints, vec![]);
    }

    #[test]
    fn duplicate_params_are_strict_errors_and_lenient_lints() {
        let v = r#"Basic realm="a", REALM="b""#;
        assert_eq!(
            err(v),
            (
                ParseErrorKind::Strict(LintKind::DuplicateParam {
                    name: "REALM".into()
                }),
                17
            )
        );
        let p = lenient(v).unwrap();
        assert_eq!(p.value[0].realm(), Some("a"), "first wins");
        assert_eq!(p.value[0].params.len(), 1);
        assert_eq!(
            kinds(&p.lints),
            [LintKind::DuplicateParam {
                name: "REALM".into()
            }]
        );
    }

    #[test]
    fn unquoted_realm_is_a_lint_in_both_modes() {
        for mode in [Mode::Strict, Mode::Lenient] {
            let p = parse_challenges([b"Basic realm=simple".as_slice()], mode).unwrap();
            assert_eq!(p.value[0].realm(), Some("simple"));
            assert_eq!(kinds(&p.lints), [LintKind::UnquotedRealm]);
            assert_eq!(p.lints[0].offset, 12);
        }
    }

    #[test]
    fn missing_realm_and_bare_bearer_are_linted() {
        let p =
            strict("Bearer, Basic, Digest nonce=\"n\", Bearer error=\"invalid_token\"").unwrap();
        assert_eq!(p.value.len(), 4);
        assert_eq!(
            kinds(&p.lints),
            [
                LintKind::MissingAuthParam {
                    scheme: "Bearer".into()
                },
                LintKind::MissingRealm {
                    scheme: "Basic".into()
                },
                LintKind::MissingRealm {
                    scheme: "Digest".into()
                },
            ]
        );
        assert_eq!(p.lints[1].offset, 8);
    }

    #[test]
    fn digest_quoting_and_basic_charset_lints() {
        let p = strict(r#"Digest realm="r", nonce=abc, algorithm="SHA-256", stale=true"#).unwrap();
        assert_eq!(
            kinds(&p.lints),
            [
                LintKind::TokenWhereQuotedRequired {
                    name: "nonce".into()
                },
                LintKind::QuotedWhereTokenRequired {
                    name: "algorithm".into()
                },
            ]
        );
        let p = strict(r#"Basic realm="r", charset="ISO-8859-1""#).unwrap();
        assert_eq!(
            kinds(&p.lints),
            [LintKind::UnsupportedCharset {
                value: "ISO-8859-1".into()
            }]
        );
    }

    #[test]
    fn tab_after_scheme_is_bad_whitespace() {
        let v = "Basic\trealm=\"x\"";
        assert_eq!(err(v), (ParseErrorKind::Strict(LintKind::BadWhitespace), 5));
        let p = lenient(v).unwrap();
        assert_eq!(p.value[0].realm(), Some("x"));
        assert_eq!(kinds(&p.lints), [LintKind::BadWhitespace]);
    }

    #[test]
    fn obs_text_in_quotes_is_kept_and_bad_utf8_is_strict_error() {
        let p =
            parse_challenges([b"Basic realm=\"caf\xc3\xa9\"".as_slice()], Mode::Strict).unwrap();
        assert_eq!(p.value[0].realm(), Some("café"));
        let bad = b"Basic realm=\"caf\xe9\"".as_slice();
        let e = parse_challenges([bad], Mode::Strict).unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::Strict(LintKind::InvalidUtf8));
        assert_eq!(e.offset, 12);
        let p = parse_challenges([bad], Mode::Lenient).unwrap();
        assert_eq!(p.value[0].realm(), Some("caf\u{fffd}"));
        assert_eq!(kinds(&p.lints), [LintKind::InvalidUtf8]);
    }

    #[test]
    fn errors_carry_offsets() {
        use ParseErrorKind as K;
        assert_eq!(
            err(r#"Basic realm="abc"#),
            (K::UnterminatedQuotedString, 12)
        );
        assert_eq!(
            err(r#"Basic realm="abc\"#),
            (K::UnterminatedQuotedString, 12)
        );
        assert_eq!(err(r#"="x""#), (K::ExpectedScheme, 0));
        assert_eq!(err(r#""Basic""#), (K::ExpectedScheme, 0));
        assert_eq!(
            err(r#"realm="x""#),
            (
                K::ParamWithoutScheme {
                    name: "realm".into()
                },
                0
            )
        );
        assert_eq!(
            err(r#"Basic, realm="x""#),
            (
                K::ParamWithoutScheme {
                    name: "realm".into()
                },
                7
            )
        );
        assert_eq!(
            err("Basic realm=\"a\rb\""),
            (K::ControlCharacter { byte: b'\r' }, 14)
        );
        assert_eq!(
            err("Basic realm=\"x\"\r\n"),
            (K::ControlCharacter { byte: b'\r' }, 15)
        );
        assert_eq!(
            err("Basic\0realm=\"x\""),
            (K::ControlCharacter { byte: 0 }, 5)
        );
        assert_eq!(
            err("Basic r\u{e9}alm=\"x\""),
            (K::NonAscii { byte: 0xc3 }, 7)
        );
        assert_eq!(
            err("Basic realm=caf\u{e9}"),
            (K::NonAscii { byte: 0xc3 }, 15)
        );
        assert_eq!(
            err(r#"Basic realm="x" garbage"#),
            (K::ExpectedCommaOrEnd, 16)
        );
        assert_eq!(err(r#"Basic realm="x"x"#), (K::ExpectedCommaOrEnd, 15));
        assert_eq!(err(r#"Basic a="x", realm="#), (K::ExpectedValue, 19));
        // `realm=` alone is a token68: an unquoted auth-param value cannot be empty.
        let p = strict("Basic realm=").unwrap();
        assert_eq!(p.value[0].token68.as_deref(), Some("realm="));
        assert_eq!(err("Basic realm x"), (K::ExpectedEquals, 12));
        assert_eq!(err("Basic a=b=c"), (K::ExpectedCommaOrEnd, 9));
        assert_eq!(err("Basic\"x\""), (K::ExpectedSpace, 5));
        // A bare word after the scheme is a token68, not an error.
        let p = strict("Basic realm").unwrap();
        assert_eq!(p.value[0].token68.as_deref(), Some("realm"));
        assert_eq!(
            err("Negotiate abc==, x=y"),
            (K::ParamWithoutScheme { name: "x".into() }, 17)
        );
    }

    #[test]
    fn error_display_says_what_and_where() {
        let e = strict(r#"Basic realm="abc"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unterminated quoted-string (RFC 9110 §5.6.4) at byte 12 of field line 1"
        );
        let l = strict("Basic realm=x").unwrap().lints.remove(0);
        assert!(l.to_string().contains("RFC 9110 §11.5"), "{l}");
        assert!(l.to_string().contains("byte 12"), "{l}");
    }
}
