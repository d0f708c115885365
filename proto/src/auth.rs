//! The shape shared by challenges and credentials (RFC 9110 §11.3, §11.4):
//! `auth-scheme [ 1*SP ( token68 / #auth-param ) ]`, parsed and rendered once here.

use crate::error::{LintKind, ParseError, ParseErrorKind, Sink};
use crate::syntax::{self, is_ctl, is_tchar, is_token, is_token68_char, UnquoteError};

/// One auth-param. `name` is kept as sent and compared case-insensitively
/// (RFC 9110 §11.2); `value` is unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthParam {
    pub name: String,
    /// The value with quoted-pairs unescaped.
    pub value: String,
    /// Whether it was (or is to be) sent as a quoted-string rather than a token.
    pub quoted: bool,
}

impl AuthParam {
    /// Whether this parameter is called `name`, case-insensitively (RFC 9110 §11.2).
    #[must_use]
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The value of the first parameter called `name` (case-insensitive).
pub(crate) fn find<'a>(params: &'a [AuthParam], name: &str) -> Option<&'a str> {
    params.iter().find(|p| p.is(name)).map(|p| p.value.as_str())
}

/// Appends `scheme [ SP ( token68 / auth-param *( ", " auth-param ) ) ]`.
///
/// Quoted params become quoted-strings; unquoted params become tokens unless the value
/// is not a token, in which case it is quoted anyway so the output stays well-formed.
pub(crate) fn render(out: &mut String, scheme: &str, token68: Option<&str>, params: &[AuthParam]) {
    debug_assert!(is_token(scheme), "auth-scheme must be a token: {scheme:?}");
    out.push_str(scheme);
    if let Some(t) = token68 {
        debug_assert!(syntax::is_token68(t), "not a token68");
        debug_assert!(params.is_empty(), "token68 and auth-params are exclusive");
        out.push(' ');
        out.push_str(t);
        return;
    }
    for (i, p) in params.iter().enumerate() {
        debug_assert!(
            is_token(&p.name),
            "auth-param name must be a token: {:?}",
            p.name
        );
        out.push_str(if i == 0 { " " } else { ", " });
        out.push_str(&p.name);
        out.push('=');
        if p.quoted || !is_token(&p.value) {
            syntax::write_quoted(out, &p.value);
        } else {
            out.push_str(&p.value);
        }
    }
}

/// A parameter with where it was found, for lints.
pub(crate) struct ParamAt {
    pub(crate) param: AuthParam,
    pub(crate) value_offset: usize,
}

/// One parsed challenge or credentials, before it loses its offsets.
pub(crate) struct Item {
    pub(crate) scheme: String,
    pub(crate) scheme_offset: usize,
    pub(crate) token68: Option<String>,
    pub(crate) params: Vec<ParamAt>,
}

impl Item {
    pub(crate) fn into_parts(self) -> (String, Option<String>, Vec<AuthParam>) {
        let params = self.params.into_iter().map(|p| p.param).collect();
        (self.scheme, self.token68, params)
    }
}

/// A position in one field value.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pub(crate) pos: usize,
    field_index: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8], field_index: usize) -> Self {
        Self {
            bytes,
            pos: 0,
            field_index,
        }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    pub(crate) fn skip_ows(&mut self) {
        self.pos = syntax::skip_ows(self.bytes, self.pos);
    }

    pub(crate) fn error_at(&self, kind: ParseErrorKind, offset: usize) -> ParseError {
        ParseError {
            kind,
            offset,
            field_index: self.field_index,
        }
    }

    /// The error for the byte at `pos`: a control character or non-ASCII byte is named
    /// as such, since that is the real problem; otherwise `expected` is reported.
    pub(crate) fn unexpected(&self, expected: ParseErrorKind) -> ParseError {
        let kind = match self.peek() {
            Some(b) if is_ctl(b) && b != b'\t' => ParseErrorKind::ControlCharacter { byte: b },
            Some(b) if !b.is_ascii() => ParseErrorKind::NonAscii { byte: b },
            _ => expected,
        };
        self.error_at(kind, self.pos)
    }

    fn run_len(&self, from: usize, pred: impl Fn(u8) -> bool) -> usize {
        let rest = self.bytes.get(from..).unwrap_or_default();
        rest.iter().take_while(|&&b| pred(b)).count()
    }

    fn text(&self, from: usize, to: usize) -> String {
        // Only ever called on tchar/token68 runs, which are ASCII.
        String::from_utf8_lossy(self.bytes.get(from..to).unwrap_or_default()).into_owned()
    }

    /// Consumes a token; `None` (consuming nothing) if there is no tchar at `pos`.
    fn token(&mut self) -> Option<String> {
        let n = self.run_len(self.pos, is_tchar);
        if n == 0 {
            return None;
        }
        let t = self.text(self.pos, self.pos + n);
        self.pos += n;
        Some(t)
    }

    /// Whether an `auth-param` (`token BWS "="`) starts at `at`.
    fn param_starts_at(&self, at: usize) -> bool {
        let n = self.run_len(at, is_tchar);
        n > 0 && self.bytes.get(syntax::skip_ows(self.bytes, at + n)) == Some(&b'=')
    }

    /// If a whole `token68` sits at `pos`, followed by OWS and then `,` or the end,
    /// consumes it and the OWS and returns it.
    ///
    /// This is how `abc=` (token68: an unquoted auth-param value cannot be empty) is
    /// told apart from `a=b` (auth-param) and `a= b` (auth-param with BWS).
    fn token68(&mut self) -> Option<String> {
        let n = self.run_len(self.pos, is_token68_char);
        if n == 0 {
            return None;
        }
        let end = self.pos + n + self.run_len(self.pos + n, |b| b == b'=');
        let after = syntax::skip_ows(self.bytes, end);
        match self.bytes.get(after) {
            None | Some(b',') => {
                let t = self.text(self.pos, end);
                self.pos = after;
                Some(t)
            }
            Some(_) => None,
        }
    }

    /// Consumes a quoted-string and returns its unescaped text.
    ///
    /// obs-text is kept; if the bytes are not UTF-8 an [`LintKind::InvalidUtf8`] is
    /// raised (an error in strict mode) and the text is decoded lossily.
    fn quoted_string(&mut self, sink: &mut Sink) -> Result<String, ParseError> {
        let start = self.pos;
        match syntax::unquote(self.bytes, start) {
            Ok((raw, end)) => {
                self.pos = end;
                match String::from_utf8(raw) {
                    Ok(s) => Ok(s),
                    Err(e) => {
                        sink.lint(LintKind::InvalidUtf8, start)?;
                        Ok(String::from_utf8_lossy(e.as_bytes()).into_owned())
                    }
                }
            }
            Err(UnquoteError::Unterminated(at)) => {
                Err(self.error_at(ParseErrorKind::UnterminatedQuotedString, at))
            }
            Err(UnquoteError::ControlCharacter(at, byte)) => {
                Err(self.error_at(ParseErrorKind::ControlCharacter { byte }, at))
            }
            Err(UnquoteError::NotQuoted(at)) => {
                Err(self.error_at(ParseErrorKind::ExpectedValue, at))
            }
        }
    }

    /// Parses `auth-scheme [ 1*SP ( token68 / #auth-param ) ]` at `pos`.
    ///
    /// Stops at the end or at the `,` that ends the item: a `,` is taken as part of the
    /// auth-param list only when an auth-param (`token BWS "="`) follows it, so in a
    /// challenge list `, Basic realm=...` starts a new challenge (RFC 9110 §11.6.1).
    /// Empty list elements between auth-params are linted and skipped (§5.6.1.2).
    pub(crate) fn item(&mut self, sink: &mut Sink) -> Result<Item, ParseError> {
        let scheme_offset = self.pos;
        let scheme = self
            .token()
            .ok_or_else(|| self.unexpected(ParseErrorKind::ExpectedScheme))?;
        let mut item = Item {
            scheme,
            scheme_offset,
            token68: None,
            params: Vec::new(),
        };
        let ws_start = self.pos;
        self.skip_ows();
        match self.peek() {
            None | Some(b',') => return Ok(item),
            // `realm="x"` where a scheme was expected.
            Some(b'=') => {
                return Err(self.error_at(
                    ParseErrorKind::ParamWithoutScheme { name: item.scheme },
                    scheme_offset,
                ))
            }
            Some(_) if self.pos == ws_start => {
                return Err(self.unexpected(ParseErrorKind::ExpectedSpace))
            }
            Some(_) => {}
        }
        // RFC 9110 §11.3: `1*SP`, not OWS, after the scheme.
        let ws = self.bytes.get(ws_start..self.pos).unwrap_or_default();
        if ws.contains(&b'\t') {
            sink.lint(LintKind::BadWhitespace, ws_start)?;
        }
        if let Some(t) = self.token68() {
            item.token68 = Some(t);
            return Ok(item);
        }
        loop {
            let name_offset = self.pos;
            let name = self
                .token()
                .ok_or_else(|| self.unexpected(ParseErrorKind::ExpectedParamName))?;
            // RFC 9110 §11.2: `token BWS "=" BWS ( token / quoted-string )`.
            self.skip_ows();
            if self.peek() != Some(b'=') {
                return Err(self.unexpected(ParseErrorKind::ExpectedEquals));
            }
            self.pos += 1;
            self.skip_ows();
            let value_offset = self.pos;
            let (value, quoted) = if self.peek() == Some(b'"') {
                (self.quoted_string(sink)?, true)
            } else {
                let v = self
                    .token()
                    .ok_or_else(|| self.unexpected(ParseErrorKind::ExpectedValue))?;
                (v, false)
            };
            // RFC 9110 §11.2: each parameter name MUST only occur once per challenge.
            if item.params.iter().any(|p| p.param.is(&name)) {
                sink.lint(LintKind::DuplicateParam { name }, name_offset)?;
            } else {
                item.params.push(ParamAt {
                    param: AuthParam {
                        name,
                        value,
                        quoted,
                    },
                    value_offset,
                });
            }
            self.skip_ows();
            match self.peek() {
                None => return Ok(item),
                Some(b',') => {}
                Some(_) => return Err(self.unexpected(ParseErrorKind::ExpectedCommaOrEnd)),
            }
            // Look past the comma and any empty elements for another auth-param.
            let mut next = self.pos + 1;
            let mut empties = Vec::new();
            loop {
                next = syntax::skip_ows(self.bytes, next);
                if self.bytes.get(next) != Some(&b',') {
                    break;
                }
                empties.push(next);
                next += 1;
            }
            if !self.param_starts_at(next) {
                // The comma ends this item; the caller decides what follows.
                return Ok(item);
            }
            for at in empties {
                sink.lint(LintKind::EmptyListElement, at)?;
            }
            self.pos = next;
        }
    }
}
