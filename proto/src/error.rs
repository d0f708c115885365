//! What the auth-header parsers report: hard errors ([`ParseError`]) and, for
//! challenges, sender mistakes that a recipient tolerates ([`Lint`]).

use std::fmt;

/// How strictly [`crate::parse_challenges`] treats sender mistakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every lint for which [`LintKind::is_error_in_strict`] holds is returned as an
    /// `Err`; the remaining (advisory) lints are still collected.
    Strict,
    /// Every recoverable mistake becomes a [`Lint`] and parsing continues. For `doctor`.
    Lenient,
}

/// A parsed value plus what the sender got wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    pub value: T,
    /// In the order found (for each challenge: syntax lints, then scheme rules).
    /// Empty when the sender did everything right.
    pub lints: Vec<Lint>,
}

/// One sender mistake, located by field line and byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    pub kind: LintKind,
    /// Byte offset inside the field value at `field_index`.
    pub offset: usize,
    /// Which field line (0-based, in the order given to the parser).
    pub field_index: usize,
}

impl fmt::Display for Lint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (at byte {} of field line {})",
            self.kind,
            self.offset,
            self.field_index + 1
        )
    }
}

/// A sender mistake. Display is one plain-English sentence citing the rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LintKind {
    /// `realm=x` instead of `realm="x"`. Advisory in both modes: recipients accept both
    /// forms (RFC 9110 §11.2) but a sender MUST quote realm (§11.5).
    UnquotedRealm,
    /// A Basic or Digest challenge without `realm` (RFC 7617 §2, RFC 7616 §3.3). Advisory.
    MissingRealm { scheme: String },
    /// A Bearer challenge without any auth-param (RFC 6750 §3 asks for at least one,
    /// such as realm; `error` alone is fine). Advisory.
    MissingAuthParam { scheme: String },
    /// A parameter name occurs twice in one challenge (case-insensitively).
    /// An error in strict mode; in lenient mode the first occurrence wins.
    DuplicateParam { name: String },
    /// A stray comma (RFC 9110 §5.6.1.2: recipients ignore it). Advisory.
    EmptyListElement,
    /// A tab where the grammar needs `1*SP` (between auth-scheme and its parameters).
    /// An error in strict mode.
    BadWhitespace,
    /// A Digest parameter that RFC 7616 §3.3 says is always quoted (domain, nonce,
    /// opaque, qop) was sent as a token. Advisory. (realm reports [`Self::UnquotedRealm`].)
    TokenWhereQuotedRequired { name: String },
    /// A Digest parameter that RFC 7616 §3.3 says is never quoted (stale, algorithm)
    /// was sent as a quoted-string. Advisory.
    QuotedWhereTokenRequired { name: String },
    /// Basic `charset` other than "UTF-8" (RFC 7617 §2.1). Advisory.
    UnsupportedCharset { value: String },
    /// A quoted-string whose bytes are not UTF-8. An error in strict mode; in lenient
    /// mode the value is decoded with U+FFFD replacement characters.
    InvalidUtf8,
    /// A field line that holds no challenge at all (RFC 9110 §11.6.1). Advisory.
    NoChallenge,
}

impl LintKind {
    /// Whether [`Mode::Strict`] turns this lint into a [`ParseError`].
    ///
    /// Only mistakes that change what the value means (duplicate parameters, tabs the
    /// grammar forbids, undecodable bytes) are errors; mistakes a recipient is told to
    /// tolerate stay advisory.
    #[must_use]
    pub fn is_error_in_strict(&self) -> bool {
        matches!(
            self,
            Self::DuplicateParam { .. } | Self::BadWhitespace | Self::InvalidUtf8
        )
    }
}

impl fmt::Display for LintKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnquotedRealm => f.write_str(
                "realm is sent as a token; a sender MUST send it as a quoted-string (RFC 9110 §11.5)",
            ),
            Self::MissingRealm { scheme } => {
                let rfc = if scheme.eq_ignore_ascii_case("Digest") {
                    "RFC 7616 §3.3"
                } else {
                    "RFC 7617 §2"
                };
                write!(f, "the {scheme} challenge has no realm parameter, which it requires ({rfc})")
            }
            Self::MissingAuthParam { scheme } => write!(
                f,
                "the {scheme} challenge has no auth-param; it needs at least one, such as realm (RFC 6750 §3)"
            ),
            Self::DuplicateParam { name } => write!(
                f,
                "parameter {name} occurs more than once in one challenge; each name MUST occur only once (RFC 9110 §11.2)"
            ),
            Self::EmptyListElement => f.write_str(
                "empty list element (stray comma); senders MUST NOT send them and recipients ignore them (RFC 9110 §5.6.1)",
            ),
            Self::BadWhitespace => f.write_str(
                "a tab separates the auth-scheme from its parameters; the grammar requires spaces (RFC 9110 §11.3)",
            ),
            Self::TokenWhereQuotedRequired { name } => write!(
                f,
                "Digest parameter {name} is sent as a token; a sender MUST send it as a quoted-string (RFC 7616 §3.3)"
            ),
            Self::QuotedWhereTokenRequired { name } => write!(
                f,
                "Digest parameter {name} is sent as a quoted-string; a sender MUST NOT quote it (RFC 7616 §3.3)"
            ),
            Self::UnsupportedCharset { value } => write!(
                f,
                "Basic charset is \"{value}\"; the only allowed value is \"UTF-8\" (RFC 7617 §2.1)"
            ),
            Self::InvalidUtf8 => f.write_str(
                "a quoted-string is not valid UTF-8; its text cannot be read reliably (RFC 9110 §5.5)",
            ),
            Self::NoChallenge => f.write_str(
                "the field line holds no challenge; a 401 needs at least one (RFC 9110 §11.6.1)",
            ),
        }
    }
}

/// A field value that cannot be read. `offset` is the byte inside the field value at
/// `field_index` where the parser stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset} of field line {}", .field_index + 1)]
pub struct ParseError {
    pub kind: ParseErrorKind,
    pub offset: usize,
    /// Which field line (0-based). Always 0 for [`crate::parse_credentials`].
    pub field_index: usize,
}

/// What the parser expected and did not find. Messages never echo parameter values,
/// so they are safe to log for `Authorization` too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseErrorKind {
    #[error("expected an auth-scheme token (RFC 9110 §11.1)")]
    ExpectedScheme,
    #[error("expected a space, ',' or the end after the auth-scheme (RFC 9110 §11.3)")]
    ExpectedSpace,
    #[error("expected an auth-param name token (RFC 9110 §11.2)")]
    ExpectedParamName,
    #[error("expected '=' after the auth-param name (RFC 9110 §11.2)")]
    ExpectedEquals,
    #[error("expected a token or quoted-string auth-param value (RFC 9110 §11.2)")]
    ExpectedValue,
    #[error("expected ',' or the end of the field value (RFC 9110 §5.6.1)")]
    ExpectedCommaOrEnd,
    #[error("expected the end of the field value: Authorization holds a single credentials (RFC 9110 §11.6.2)")]
    ExpectedEnd,
    #[error(
        "auth-param {name} outside a challenge: expected an auth-scheme first (RFC 9110 §11.3)"
    )]
    ParamWithoutScheme { name: String },
    #[error("unterminated quoted-string (RFC 9110 §5.6.4)")]
    UnterminatedQuotedString,
    #[error("control character 0x{byte:02X} is not allowed here (RFC 9110 §5.5)")]
    ControlCharacter { byte: u8 },
    #[error("non-ASCII byte 0x{byte:02X} outside a quoted-string (RFC 9110 §5.6.2)")]
    NonAscii { byte: u8 },
    /// A lint that [`Mode::Strict`] refuses.
    #[error("{0} (refused in strict mode)")]
    Strict(LintKind),
}

/// Collects lints, turning strict-mode errors into `Err`.
pub(crate) struct Sink {
    pub(crate) mode: Mode,
    pub(crate) field_index: usize,
    pub(crate) lints: Vec<Lint>,
}

impl Sink {
    pub(crate) fn new(mode: Mode) -> Self {
        Self {
            mode,
            field_index: 0,
            lints: Vec::new(),
        }
    }

    pub(crate) fn lint(&mut self, kind: LintKind, offset: usize) -> Result<(), ParseError> {
        if self.mode == Mode::Strict && kind.is_error_in_strict() {
            return Err(ParseError {
                kind: ParseErrorKind::Strict(kind),
                offset,
                field_index: self.field_index,
            });
        }
        self.lints.push(Lint {
            kind,
            offset,
            field_index: self.field_index,
        });
        Ok(())
    }
}
