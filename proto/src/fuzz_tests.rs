//! Property-style tests: pseudo-random inputs through every parser, proving no panic
//! and checking invariants. A fixed-seed xorshift keeps failures reproducible.

use crate::auth::AuthParam;
use crate::{
    decode_basic, parse_challenges, parse_credentials, render_challenges, Challenge, Mode,
    ParseErrorKind,
};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Bytes biased toward what the grammar cares about: either a soup of grammar pieces
/// and arbitrary bytes, or a valid field value with a few mutations.
fn random_bytes(rng: &mut XorShift) -> Vec<u8> {
    const PIECES: &[&[u8]] = &[
        b"Basic",
        b"Bearer",
        b"Digest",
        b"realm",
        b"=",
        b"==",
        b"\"",
        b"\\",
        b",",
        b" ",
        b"\t",
        b"a",
        b"Z",
        b"9",
        b"-",
        b"/",
        b"+",
        b"~",
        b"\r",
        b"\n",
        b"\0",
        b"\x7f",
        b"\xc3\xa9",
        b"\xff",
        b"\x80",
        b"QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        b"realm=\"x\"",
        b", ",
    ];
    const SEEDS: &[&[u8]] = &[
        br#"Basic realm="simple", charset="UTF-8""#,
        br#"Newauth realm="apps", type=1, title="Login to \"apps\"", Basic realm="simple""#,
        br#"Digest realm="r", qop="auth, auth-int", algorithm=SHA-256, nonce="n", opaque="o""#,
        br#"Bearer realm="example", error="invalid_token", error_description="expired""#,
        b"Negotiate YIIB+w/8==, Basic realm=x",
        b"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        b"Basic dGVzdDoxMjPCow==",
        b"Bearer mF_9.B5f-4.1JqM",
        br#"Digest username="Mufasa", nc=00000001, response="abc", uri="/a,b""#,
    ];
    let mut out = Vec::new();
    if rng.below(2) == 0 {
        for _ in 0..rng.below(24) {
            if rng.below(12) == 0 {
                out.push(rng.next() as u8);
            } else {
                let piece: &[u8] = PIECES[rng.below(PIECES.len())];
                out.extend_from_slice(piece);
            }
        }
        return out;
    }
    out.extend_from_slice(SEEDS[rng.below(SEEDS.len())]);
    for _ in 0..rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(3) {
            0 if at < out.len() => {
                out.remove(at);
            }
            1 => {
                let piece: &[u8] = PIECES[rng.below(PIECES.len())];
                out.splice(at..at, piece.iter().copied());
            }
            _ if at < out.len() => out[at] = rng.next() as u8,
            _ => out.push(rng.next() as u8),
        }
    }
    out
}

#[test]
fn random_bytes_never_panic_and_errors_stay_in_bounds() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused, mut creds_ok, mut basic_ok) = (0, 0, 0, 0);
    for _ in 0..5000 {
        let a = random_bytes(&mut rng);
        let b = random_bytes(&mut rng);
        for mode in [Mode::Strict, Mode::Lenient] {
            match parse_challenges([a.as_slice(), b.as_slice()], mode) {
                Ok(p) => {
                    accepted += 1;
                    for l in &p.lints {
                        let len = if l.field_index == 0 { a.len() } else { b.len() };
                        assert!(l.offset <= len, "{l:?} for {a:?} / {b:?}");
                    }
                    // Whatever parsed renders to something that parses to the same.
                    let again = render_challenges(&p.value);
                    let p2 = parse_challenges([again.as_bytes()], Mode::Lenient)
                        .unwrap_or_else(|e| panic!("{again:?} from {a:?} / {b:?}: {e}"));
                    assert_eq!(p2.value, normalized(&p.value), "{again:?}");
                }
                Err(e) => {
                    refused += 1;
                    let len = if e.field_index == 0 { a.len() } else { b.len() };
                    assert!(e.offset <= len, "{e:?} for {a:?} / {b:?}");
                    let _ = e.to_string();
                }
            }
        }
        match parse_credentials(&a) {
            Ok(c) => {
                creds_ok += 1;
                if let Some(Ok(b)) = c.token68.as_deref().map(decode_basic) {
                    basic_ok += 1;
                    assert!(!b.user_id.contains(':'));
                }
                let again = c.to_string();
                let c2 = parse_credentials(again.as_bytes())
                    .unwrap_or_else(|e| panic!("{again:?} from {a:?}: {e}"));
                assert_eq!(c2.scheme, c.scheme);
                assert_eq!(c2.token68, c.token68);
            }
            Err(e) => assert!(e.offset <= a.len(), "{e:?} for {a:?}"),
        }
        if let Ok(c) = decode_basic(&String::from_utf8_lossy(&a)) {
            basic_ok += 1;
            assert!(!c.user_id.contains(':'));
        }
    }
    // The generator reaches both sides of the parsers, not just the error paths.
    println!(
        "challenges {accepted} ok / {refused} err, credentials {creds_ok} ok, basic {basic_ok} ok"
    );
    assert!(accepted > 500 && refused > 500 && creds_ok > 200 && basic_ok > 0);
}

/// What rendering then parsing yields: unquoted params whose value is not a token get
/// quoted, and lenient-mode lossy text is already valid UTF-8.
fn normalized(challenges: &[Challenge]) -> Vec<Challenge> {
    challenges
        .iter()
        .map(|c| Challenge {
            params: c
                .params
                .iter()
                .map(|p| AuthParam {
                    quoted: p.quoted || !crate::syntax::is_token(&p.value),
                    ..p.clone()
                })
                .collect(),
            ..c.clone()
        })
        .collect()
}

#[test]
fn random_valid_challenges_round_trip() {
    let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
    let schemes = ["Basic", "Bearer", "Digest", "Negotiate", "X-Custom"];
    let names = ["realm", "charset", "error", "scope", "nonce", "a", "B-2"];
    let values = ["", "x", "a b", "\"", "\\", ",", "£", "a=b", "tok_en", "\t"];
    for _ in 0..2000 {
        let mut challenges = Vec::new();
        for _ in 0..=rng.below(3) {
            let mut c = Challenge::new(*rng.pick(&schemes));
            if rng.below(4) == 0 {
                c = c.with_token68(*rng.pick(&["abc", "YQ==", "a/b+c~d.e-f_g="]));
            } else {
                let mut used = Vec::new();
                for _ in 0..rng.below(4) {
                    let name = *rng.pick(&names);
                    if used.contains(&name) {
                        continue;
                    }
                    used.push(name);
                    let value = *rng.pick(&values);
                    c = if crate::syntax::is_token(value) && rng.below(2) == 0 {
                        c.token_param(name, value)
                    } else {
                        c.param(name, value)
                    };
                }
            }
            challenges.push(c);
        }
        let rendered = render_challenges(&challenges);
        let parsed = parse_challenges([rendered.as_bytes()], Mode::Strict)
            .unwrap_or_else(|e| panic!("{rendered:?}: {e}"));
        assert_eq!(parsed.value, challenges, "{rendered:?}");
        assert!(
            parsed.lints.iter().all(|l| !l.kind.is_error_in_strict()),
            "{rendered:?}"
        );
    }
}

#[test]
fn unterminated_quote_anywhere_is_an_error_not_a_panic() {
    let e = parse_credentials(b"Digest a=\"").unwrap_err();
    assert_eq!(e.kind, ParseErrorKind::UnterminatedQuotedString);
}
