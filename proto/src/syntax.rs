//! Character classes and quoting from RFC 9110 §5.6: token, token68, quoted-string,
//! OWS/BWS. Pure functions over bytes; the auth parsers are built from these.

/// `tchar` (RFC 9110 §5.6.2): the bytes allowed in a token.
#[must_use]
pub const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.'
        | b'^' | b'_' | b'`' | b'|' | b'~'
        | b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z')
}

/// `token = 1*tchar` (RFC 9110 §5.6.2). The empty string is not a token.
#[must_use]
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// The non-padding bytes of `token68` (RFC 9110 §11.2):
/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`.
#[must_use]
pub const fn is_token68_char(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'A'..=b'Z' | b'a'..=b'z' | b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
}

/// `token68 = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="` (RFC 9110 §11.2).
#[must_use]
pub fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(is_token68_char)
}

/// `OWS`/`BWS` whitespace: SP or HTAB (RFC 9110 §5.6.3).
#[must_use]
pub const fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// A control character as RFC 5234 `CTL` defines it: 0x00-0x1F and DEL. HTAB is one.
#[must_use]
pub const fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text` (RFC 9110 §5.6.4).
#[must_use]
pub const fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// The byte after `\` in `quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )` (RFC 9110 §5.6.4).
#[must_use]
pub const fn is_quoted_pair_char(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff)
}

/// Returns the index of the first byte at or after `pos` that is not OWS
/// (`bytes.len()` if there is none).
#[must_use]
pub fn skip_ows(bytes: &[u8], pos: usize) -> usize {
    let rest = bytes.get(pos..).unwrap_or_default();
    pos + rest.iter().take_while(|&&b| is_ows(b)).count()
}

/// Why [`unquote`] refused its input; the offset is absolute in the input slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnquoteError {
    /// No `"` at the start position.
    NotQuoted(usize),
    /// The closing `"` is missing; the offset is the opening quote's.
    Unterminated(usize),
    /// A byte that `qdtext`/`quoted-pair` excludes (a CTL other than HTAB).
    ControlCharacter(usize, u8),
}

/// Parses the `quoted-string` starting at `start` (which must be `"`), unescaping
/// quoted-pairs (RFC 9110 §5.6.4).
///
/// Returns the raw unescaped bytes (obs-text 0x80-0xFF kept as sent; the caller decides
/// how to treat non-UTF-8) and the index just past the closing quote.
pub fn unquote(bytes: &[u8], start: usize) -> Result<(Vec<u8>, usize), UnquoteError> {
    if bytes.get(start) != Some(&b'"') {
        return Err(UnquoteError::NotQuoted(start));
    }
    let mut out = Vec::new();
    let mut pos = start + 1;
    loop {
        match bytes.get(pos).copied() {
            None => return Err(UnquoteError::Unterminated(start)),
            Some(b'"') => return Ok((out, pos + 1)),
            Some(b'\\') => match bytes.get(pos + 1).copied() {
                None => return Err(UnquoteError::Unterminated(start)),
                Some(b) if is_quoted_pair_char(b) => {
                    out.push(b);
                    pos += 2;
                }
                Some(b) => return Err(UnquoteError::ControlCharacter(pos + 1, b)),
            },
            Some(b) if is_qdtext(b) => {
                out.push(b);
                pos += 1;
            }
            Some(b) => return Err(UnquoteError::ControlCharacter(pos, b)),
        }
    }
}

/// Appends `value` to `out` as a quoted-string.
///
/// Only `"` and `\` are escaped: a sender SHOULD NOT escape anything else (RFC 9110
/// §5.6.4). Control characters other than HTAB cannot be carried in a quoted-string at
/// all; each is replaced with SP, as RFC 9110 §5.5 allows for CR/LF/NUL, so rendering
/// can never split a header line.
pub fn write_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push(c),
            c if c.is_ascii_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `value` as a quoted-string; see [`write_quoted`].
#[must_use]
pub fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    write_quoted(&mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_classes() {
        assert!(is_token("Basic"));
        assert!(is_token("SHA-256"));
        assert!(!is_token(""));
        assert!(!is_token("a b"));
        assert!(!is_token("a=b"));
        assert!(!is_token("a/b"));
        assert!(is_token68("QWxhZGRpbjpvcGVuIHNlc2FtZQ=="));
        assert!(is_token68("a/b+c~d"));
        assert!(!is_token68("=="));
        assert!(!is_token68("a=b"));
        assert!(!is_token68(""));
    }

    #[test]
    fn unquote_handles_quoted_pairs_and_commas() {
        let input = br#""a\"b\\c, d" rest"#;
        let (v, end) = unquote(input, 0).unwrap();
        assert_eq!(v, br#"a"b\c, d"#);
        assert_eq!(&input[end..], b" rest");
    }

    #[test]
    fn unquote_errors() {
        assert_eq!(unquote(b"\"abc", 0), Err(UnquoteError::Unterminated(0)));
        assert_eq!(unquote(b"\"abc\\", 0), Err(UnquoteError::Unterminated(0)));
        assert_eq!(
            unquote(b"\"a\rb\"", 0),
            Err(UnquoteError::ControlCharacter(2, b'\r'))
        );
        assert_eq!(
            unquote(b"\"a\\\nb\"", 0),
            Err(UnquoteError::ControlCharacter(3, b'\n'))
        );
        assert_eq!(unquote(b"abc", 0), Err(UnquoteError::NotQuoted(0)));
        // obs-text is kept as sent.
        assert_eq!(unquote(b"\"\xff\"", 0), Ok((vec![0xff], 3)));
    }

    #[test]
    fn quote_escapes_only_dquote_and_backslash() {
        assert_eq!(quote(r#"a"b\c d'e"#), r#""a\"b\\c d'e""#);
        assert_eq!(quote("x\r\ny\tz"), "\"x  y\tz\"");
        assert_eq!(quote("£"), "\"£\"");
    }

    #[test]
    fn skip_ows_stops_at_non_whitespace() {
        assert_eq!(skip_ows(b" \t x", 0), 3);
        assert_eq!(skip_ows(b"x", 0), 0);
        assert_eq!(skip_ows(b"  ", 0), 2);
        assert_eq!(skip_ows(b"ab", 9), 9);
    }
}
