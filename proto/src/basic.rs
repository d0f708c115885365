//! The Basic authentication scheme (RFC 7617).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::challenge::Challenge;
use crate::credentials::Credentials;
use crate::secret::Secret;

/// A decoded Basic user-pass. `Debug` shows the user-id and redacts the password.
#[derive(Debug, Clone)]
pub struct BasicCredentials {
    /// May be empty: that is well-formed (RFC 7617 §2) but can never match a user.
    pub user_id: String,
    pub password: Secret,
}

/// Why Basic credentials were refused. Messages never contain the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BasicError {
    /// The credentials use another scheme (only from `TryFrom<&Credentials>`).
    #[error("the credentials are not of the Basic scheme")]
    NotBasic,
    /// `Basic` with auth-params or nothing instead of a token68.
    #[error("Basic credentials must be a single token68 (RFC 7617 §2)")]
    NotToken68,
    #[error(
        "Basic credentials are not canonical padded base64 with the standard alphabet (RFC 7617 §2, RFC 4648 §4)"
    )]
    NotBase64,
    #[error("Basic user-pass is not UTF-8 (RFC 7617 §2.1)")]
    NotUtf8,
    #[error("Basic user-pass has no ':' between user-id and password (RFC 7617 §2)")]
    NoColon,
    #[error("Basic user-id contains a control character (RFC 7617 §2)")]
    ControlCharacterInUserId,
    #[error("Basic password contains a control character (RFC 7617 §2)")]
    ControlCharacterInPassword,
}

/// Decodes a Basic token68 into user-id and password (RFC 7617 §2).
///
/// The token68 must be strict RFC 4648 §4 base64: standard alphabet, padding required,
/// no whitespace, no non-zero trailing bits, so one byte string has exactly one
/// accepted spelling; anything outside the alphabet is refused (RFC 4648 §3.3). The
/// bytes are read as UTF-8, since authgate always advertises `charset="UTF-8"`
/// (RFC 7617 §2.1). The user-id is everything before the first ':' and the password
/// everything after (it may contain ':'). Neither may contain a control character
/// (C0, DEL or C1 U+0080..U+009F). An empty user-id or password is well-formed.
pub fn decode_basic(token68: &str) -> Result<BasicCredentials, BasicError> {
    decode_token68(token68.as_bytes())
}

/// [`decode_basic`] of the token68's bytes: the base64 alphabet is ASCII, so the decoder's
/// check of every byte is also the check that they are text.
fn decode_token68(token68: &[u8]) -> Result<BasicCredentials, BasicError> {
    // The STANDARD engine requires canonical padding and rejects trailing bits.
    let bytes = STANDARD
        .decode(token68)
        .map_err(|_| BasicError::NotBase64)?;
    let mut user_pass = String::from_utf8(bytes).map_err(|_| BasicError::NotUtf8)?;
    let (user_id, password) = user_pass.split_once(':').ok_or(BasicError::NoColon)?;
    let colon = user_id.len();
    if has_control(user_id) {
        return Err(BasicError::ControlCharacterInUserId);
    }
    if has_control(password) {
        return Err(BasicError::ControlCharacterInPassword);
    }
    let password = Secret::new(password);
    // The decoded buffer becomes the user-id, with the password's copy in it zeroed.
    let mut user_id = std::mem::take(&mut user_pass).into_bytes();
    if let Some(copy) = user_id.get_mut(colon..) {
        copy.fill(0);
    }
    user_id.truncate(colon);
    Ok(BasicCredentials {
        // The bytes before the ':' of valid UTF-8 are valid UTF-8.
        user_id: String::from_utf8(user_id).map_err(|_| BasicError::NotUtf8)?,
        password,
    })
}

/// Whether `s` has a control character, Unicode's Cc (exactly what `char::is_control` says):
/// C0, DEL, or C1, which UTF-8 spells as 0xC2 followed by 0x80..=0x9F. Read as bytes, since
/// this runs on every Basic request.
fn has_control(s: &str) -> bool {
    let b = s.as_bytes();
    b.iter().enumerate().any(|(i, &c)| {
        c < 0x20
            || c == 0x7f
            || (c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..=0x9f).contains(n)))
    })
}

/// Decodes an `Authorization` value of the plain form `Basic <canonical base64>`: the scheme
/// in any case, one space, and padded standard base64 (RFC 4648 §4) up to the end, holding a
/// valid user-pass. None for anything else, which the general parser
/// ([`crate::parse_credentials`], then [`decode_basic`]) reads instead and names the fault
/// of. Canonical base64 is a token68 (RFC 9110 §11.2), so for every value this decodes,
/// that path gives the same user-id and password (a test holds them to it). The gateway
/// reads Basic credentials on every request; this reads them in one pass, without the
/// general parser's allocations.
#[must_use]
pub fn decode_plain_basic(value: &[u8]) -> Option<BasicCredentials> {
    decode_token68(plain_basic_token68(value)?).ok()
}

/// The token68 of an `Authorization` value that starts `Basic ` (the scheme in any case,
/// RFC 9110 §11.1) with something after it: the only values [`decode_plain_basic`] reads.
/// None for anything else, without reading the value further.
#[must_use]
pub fn plain_basic_token68(value: &[u8]) -> Option<&[u8]> {
    let (scheme, token68) = value.split_at_checked(6)?;
    (scheme.eq_ignore_ascii_case(b"Basic ") && !token68.is_empty()).then_some(token68)
}

/// Encodes `user_id:password` as the Basic token68 (UTF-8, padded standard base64).
///
/// A `user_id` containing ':' cannot round-trip: the recipient splits at the first ':'.
#[must_use]
pub fn encode_basic(user_id: &str, password: &str) -> String {
    debug_assert!(!user_id.contains(':'), "a Basic user-id cannot contain ':'");
    STANDARD.encode(format!("{user_id}:{password}"))
}

/// `Basic realm="…", charset="UTF-8"` (RFC 7617 §2, §2.1).
#[must_use]
pub fn basic_challenge(realm: &str) -> Challenge {
    Challenge::new("Basic")
        .param("realm", realm)
        .param("charset", "UTF-8")
}

/// `Basic <token68>` credentials for a client (e.g. `doctor`).
#[must_use]
pub fn basic_credentials(user_id: &str, password: &str) -> Credentials {
    Credentials::new("Basic").with_token68(encode_basic(user_id, password))
}

/// Decodes Basic credentials parsed from an `Authorization` field.
impl TryFrom<&Credentials> for BasicCredentials {
    type Error = BasicError;

    fn try_from(c: &Credentials) -> Result<Self, BasicError> {
        if !c.is_scheme("Basic") {
            return Err(BasicError::NotBasic);
        }
        match (&c.token68, c.params.is_empty()) {
            (Some(t), true) => decode_basic(t),
            _ => Err(BasicError::NotToken68),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::parse_credentials;

    #[test]
    fn the_plain_form_reads_as_the_general_parser_reads_it() {
        let values: &[&[u8]] = &[
            b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            b"basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            b"BASIC YTpi",
            b"Basic YTpi=",
            b"Basic YTo=",
            b"Basic YQ==",
            b"Basic YTpi YTpi",
            b"Basic YTpi,",
            b"Basic  YTpi",
            b"Basic\tYTpi",
            b" Basic YTpi",
            b"Basic YTpi ",
            b"Basic ",
            b"Basic",
            b"Basic abc",
            b"Basic abc=def",
            b"Basic realm=x",
            b"Basic a-._~+/b",
            b"Basic w6k6w6k=",
            b"Basic AQ==",
            b"Basicx YTpi",
            b"Bearer YTpi",
        ];
        for v in values {
            let general = parse_credentials(v)
                .ok()
                .and_then(|c| BasicCredentials::try_from(&c).ok());
            match (decode_plain_basic(v), general) {
                (Some(fast), Some(general)) => {
                    assert_eq!(fast.user_id, general.user_id, "{v:?}");
                    assert_eq!(fast.password.expose(), general.password.expose(), "{v:?}");
                }
                (Some(_), None) => panic!("{v:?}: decoded by the fast path only"),
                // A value the fast path leaves alone goes to the general path.
                (None, _) => {}
            }
        }
        let c = decode_plain_basic(b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").expect("plain");
        assert_eq!(
            (c.user_id.as_str(), c.password.expose()),
            ("Aladdin", "open sesame")
        );
        for refused in [
            &b"Basic YTpi "[..],
            b"Basic  YTpi",
            b"Basic ",
            b"Basic abc",
            b"Basic YQ==",
        ] {
            assert!(decode_plain_basic(refused).is_none(), "{refused:?}");
        }
    }

    #[test]
    fn control_characters_are_unicode_cc() {
        for c in (0u32..0x800).filter_map(char::from_u32) {
            let s = format!("a{c}b");
            assert_eq!(has_control(&s), c.is_control(), "U+{:04X}", c as u32);
        }
        assert!(!has_control("\u{0100}\u{00a0}"));
    }

    #[test]
    fn rfc_7617_example() {
        let c = decode_basic("QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert_eq!(c.user_id, "Aladdin");
        assert_eq!(c.password.expose(), "open sesame");
        assert_eq!(
            encode_basic("Aladdin", "open sesame"),
            "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn rfc_7617_utf8_example() {
        // RFC 7617 §2.1.
        assert_eq!(encode_basic("test", "123£"), "dGVzdDoxMjPCow==");
        let c = decode_basic("dGVzdDoxMjPCow==").unwrap();
        assert_eq!(c.user_id, "test");
        assert_eq!(c.password.expose(), "123£");
    }

    #[test]
    fn strict_base64_only() {
        // "a:b" is YTpi; "a:bc" is YTpiYw==.
        assert!(decode_basic("YTpiYw==").is_ok());
        for bad in [
            "YTpiYw",     // missing padding
            "YTpiYw=",    // short padding
            "YTpiYw===",  // extra padding
            "YTpi Yw==",  // whitespace
            " YTpiYw==",  // leading whitespace
            "YTpiYw==\n", // trailing newline
            "YTpiYx==",   // non-zero trailing bits
            "YT-i",       // url-safe alphabet
            "YT_i",       // url-safe alphabet
            "YT*i",       // outside any alphabet
            "=YTpi",
        ] {
            assert_eq!(
                decode_basic(bad).unwrap_err(),
                BasicError::NotBase64,
                "{bad:?}"
            );
        }
        // Two spellings of "a": only the canonical one decodes.
        assert_eq!(decode_basic("YQ==").unwrap_err(), BasicError::NoColon);
        assert_eq!(decode_basic("YR==").unwrap_err(), BasicError::NotBase64);
    }

    #[test]
    fn user_pass_split_and_contents() {
        assert_eq!(
            decode_basic(&STANDARD.encode("nocolon")).unwrap_err(),
            BasicError::NoColon
        );
        assert_eq!(decode_basic("").unwrap_err(), BasicError::NoColon);
        let c = decode_basic(&STANDARD.encode("u:p:q:")).unwrap();
        assert_eq!(c.user_id, "u");
        assert_eq!(
            c.password.expose(),
            "p:q:",
            "colons in the password are kept"
        );
        let c = decode_basic(&STANDARD.encode(":pw")).unwrap();
        assert_eq!(c.user_id, "", "empty user-id is well-formed");
        let c = decode_basic(&STANDARD.encode("u:")).unwrap();
        assert_eq!(c.password.expose(), "");
    }

    #[test]
    fn control_characters_and_bad_utf8_rejected() {
        use BasicError as E;
        for (raw, want) in [
            ("a\0b:pw", E::ControlCharacterInUserId),
            ("a\tb:pw", E::ControlCharacterInUserId),
            ("a\u{7f}:pw", E::ControlCharacterInUserId),
            ("a\u{85}:pw", E::ControlCharacterInUserId),
            ("user:p\rw", E::ControlCharacterInPassword),
            ("user:p\u{9f}w", E::ControlCharacterInPassword),
        ] {
            assert_eq!(
                decode_basic(&STANDARD.encode(raw)).unwrap_err(),
                want,
                "{raw:?}"
            );
        }
        // U+00A0 is not a control character.
        assert!(decode_basic(&STANDARD.encode("a\u{a0}:pw")).is_ok());
        let latin1 = STANDARD.encode(b"test:123\xa3");
        assert_eq!(decode_basic(&latin1).unwrap_err(), E::NotUtf8);
    }

    #[test]
    fn from_parsed_credentials() {
        let c = parse_credentials(b"basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        let b = BasicCredentials::try_from(&c).unwrap();
        assert_eq!(b.user_id, "Aladdin");
        let bearer = parse_credentials(b"Bearer abc").unwrap();
        assert_eq!(
            BasicCredentials::try_from(&bearer).unwrap_err(),
            BasicError::NotBasic
        );
        let params = parse_credentials(b"Basic user=\"a\"").unwrap();
        assert_eq!(
            BasicCredentials::try_from(&params).unwrap_err(),
            BasicError::NotToken68
        );
        let bare = parse_credentials(b"Basic").unwrap();
        assert_eq!(
            BasicCredentials::try_from(&bare).unwrap_err(),
            BasicError::NotToken68
        );
        let rendered = basic_credentials("Aladdin", "open sesame").to_string();
        assert_eq!(rendered, "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn challenge_and_debug() {
        assert_eq!(
            basic_challenge(r#"my "realm""#).to_string(),
            r#"Basic realm="my \"realm\"", charset="UTF-8""#
        );
        let c = decode_basic("QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        let d = format!("{c:?}");
        assert!(d.contains("Aladdin") && !d.contains("sesame"), "{d}");
    }
}
