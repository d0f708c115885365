//! Password hashes as they appear in Apache htpasswd files (and, later, the user store):
//! parsing, verification, timing-equalisation dummies, and hashing new passwords.
//!
//! Supported formats, with the `htpasswd` flag that writes each:
//!
//! | format        | prefix                    | htpasswd |
//! |---------------|---------------------------|----------|
//! | bcrypt        | `$2y$`, `$2a$`, `$2b$`    | `-B`     |
//! | apr1 (MD5)    | `$apr1$`                  | `-m` (the default) |
//! | SHA-1         | `{SHA}`                   | `-s`     |
//! | SHA-256-crypt | `$5$`                     | `-2`     |
//! | SHA-512-crypt | `$6$`                     | `-5`     |
//! | argon2id      | `$argon2id$` (PHC string) | none; `authgate hash` writes it |
//!
//! Passwords are byte strings. A password containing a NUL byte never verifies: Apache and
//! `htpasswd` handle passwords as C strings, so no hash they wrote can stand for one, and
//! matching Apache's "stop at the first NUL" would let `secret\0anything` log in as `secret`.

use std::fmt;

use argon2::password_hash::{PasswordHash as PhcString, SaltString};
use base64::engine::general_purpose::{GeneralPurpose, NO_PAD, STANDARD};
use base64::{alphabet, Engine as _};
use md5::Md5;
use rand::distributions::Alphanumeric;
use rand::{Rng as _, RngCore as _};
use sha1::{Digest as _, Sha1};
use subtle::ConstantTimeEq as _;

/// The alphabet of crypt(3)-style base64, used by apr1 and SHA-crypt (not by bcrypt).
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// bcrypt's own base64 (`./A-Za-z0-9`, no padding), as the bcrypt crate decodes it:
/// non-canonical trailing bits are rejected.
const BCRYPT_B64: GeneralPurpose = GeneralPurpose::new(&alphabet::BCRYPT, NO_PAD);

/// bcrypt's valid cost range (2^4 to 2^31 rounds).
const BCRYPT_COSTS: std::ops::RangeInclusive<u32> = 4..=31;

/// SHA-crypt's valid `rounds=` range; the default when `rounds=` is absent is 5000.
const SHA_CRYPT_ROUNDS: std::ops::RangeInclusive<u32> = 1_000..=999_999_999;
const SHA_CRYPT_DEFAULT_ROUNDS: u32 = 5_000;

/// The largest argon2 memory cost accepted, in KiB (1 GiB). Each verification allocates this
/// much, so a larger value in a hash file would let a handful of logins exhaust the gateway's memory.
const ARGON2_MAX_M_KIB: u32 = 1024 * 1024;

/// The bcrypt cost `hash_password` uses unless told otherwise, and the cost of the dummy for
/// an empty htpasswd file.
pub const DEFAULT_BCRYPT_COST: u32 = 10;

const REHASH: &str = "re-hash with htpasswd -B or `authgate hash`";

/// A hash algorithm, as reported by `authgate check` and in logs.
///
/// `Display` gives a short name (`bcrypt`, `apr1`, `SHA-1`, `SHA-256-crypt`, `SHA-512-crypt`,
/// `argon2id`); [`Algorithm::htpasswd_flag`] gives the `htpasswd` option that writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    Bcrypt,
    Apr1,
    Sha1,
    Sha256Crypt,
    Sha512Crypt,
    Argon2id,
}

impl Algorithm {
    /// The `htpasswd` option that writes this algorithm (`-B`, `-m`, `-s`, `-2`, `-5`);
    /// `None` for argon2id, which `htpasswd` cannot write.
    pub fn htpasswd_flag(self) -> Option<&'static str> {
        match self {
            Algorithm::Bcrypt => Some("-B"),
            Algorithm::Apr1 => Some("-m"),
            Algorithm::Sha1 => Some("-s"),
            Algorithm::Sha256Crypt => Some("-2"),
            Algorithm::Sha512Crypt => Some("-5"),
            Algorithm::Argon2id => None,
        }
    }

    /// Rough strength order, weakest first; used to break ties when choosing a dummy.
    pub(crate) fn strength_rank(self) -> u8 {
        match self {
            Algorithm::Sha1 => 0,
            Algorithm::Apr1 => 1,
            Algorithm::Sha256Crypt => 2,
            Algorithm::Sha512Crypt => 3,
            Algorithm::Bcrypt => 4,
            Algorithm::Argon2id => 5,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Bcrypt => "bcrypt",
            Algorithm::Apr1 => "apr1",
            Algorithm::Sha1 => "SHA-1",
            Algorithm::Sha256Crypt => "SHA-256-crypt",
            Algorithm::Sha512Crypt => "SHA-512-crypt",
            Algorithm::Argon2id => "argon2id",
        })
    }
}

/// The work factor of a hash within its algorithm. Two hashes with the same [`Algorithm`] and
/// `Cost` take the same time to verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cost {
    /// apr1 (always 1000 MD5 rounds) and `{SHA}` (one SHA-1) have no tunable cost.
    Fixed,
    /// bcrypt's cost: 2^cost rounds.
    Bcrypt(u32),
    /// SHA-crypt's `rounds=` (5000 when absent).
    Rounds(u32),
    /// argon2's memory (KiB), iterations and parallelism.
    Argon2 { m_kib: u32, t: u32, p: u32 },
}

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cost::Fixed => f.write_str("fixed cost"),
            Cost::Bcrypt(cost) => write!(f, "cost {cost}"),
            Cost::Rounds(rounds) => write!(f, "rounds={rounds}"),
            Cost::Argon2 { m_kib, t, p } => write!(f, "m={m_kib},t={t},p={p}"),
        }
    }
}

/// A parsed password hash from an htpasswd line (or, later, the user store).
///
/// Values built by [`PasswordHash::parse`] are fully validated. The fields are public for
/// matching and reporting; a value built by hand with inconsistent fields never panics, it just
/// fails to verify. `Debug` shows the hash: hashes are not passwords, but avoid logging them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordHash {
    /// `$2y$` / `$2a$` / `$2b$` (htpasswd -B writes `$2y$`). `encoded` is the whole string.
    Bcrypt { cost: u32, encoded: String },
    /// `$apr1$<salt>$<checksum>` (htpasswd -m, the default): 1000 rounds of MD5.
    Apr1 { salt: String, checksum: String },
    /// `{SHA}<base64 of SHA-1(password)>` (htpasswd -s): unsalted.
    Sha1 { digest: [u8; 20] },
    /// `$5$[rounds=N$]<salt>$<checksum>` (htpasswd -2). `rounds` is read from `encoded`.
    Sha256Crypt { rounds: u32, encoded: String },
    /// `$6$[rounds=N$]<salt>$<checksum>` (htpasswd -5). `rounds` is read from `encoded`.
    Sha512Crypt { rounds: u32, encoded: String },
    /// `$argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>` (PHC string format).
    Argon2 { encoded: String },
}

/// Why a hash string was refused, or a new hash could not be made.
///
/// Messages say what was found and what would be valid. They never contain a password, and
/// never echo the hash text (a line that is not a recognisable hash may be a plaintext password).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashError {
    #[error("empty hash; expected one of $2y$ (htpasswd -B), $apr1$ (-m), {{SHA}} (-s), $5$ (-2), $6$ (-5), $argon2id$")]
    Empty,
    #[error("crypt(3) DES hashes (htpasswd -d) are not supported: they use only the first 8 characters of the password; re-hash with htpasswd -B or `authgate hash`")]
    Des,
    #[error("plaintext passwords (htpasswd -p) are not supported, and this is not any known hash format (not shown, in case it is a password); re-hash with htpasswd -B or `authgate hash`")]
    Plaintext,
    #[error("{scheme} hashes are not supported: {reason}; {REHASH}", REHASH = REHASH)]
    Unsupported {
        scheme: &'static str,
        reason: &'static str,
    },
    #[error("unknown hash format; expected one of $2y$ (htpasswd -B), $apr1$ (-m), {{SHA}} (-s), $5$ (-2), $6$ (-5), $argon2id$")]
    Unknown,
    #[error("malformed {algorithm} hash: {problem}")]
    Malformed {
        algorithm: Algorithm,
        /// Built from fixed text and numbers only, never from the hash text.
        problem: String,
    },
    #[error("passwords containing a NUL byte are not supported (Apache and htpasswd cannot represent them)")]
    PasswordContainsNul,
    #[error("bcrypt uses only the first 72 bytes of a password and this one is longer; use argon2id (the default) instead")]
    PasswordTooLongForBcrypt,
    #[error("bcrypt cost {0} is out of range; valid costs are 4 to 31 (10 is the default)")]
    InvalidCost(u32),
    #[error("password hashing failed: {0}")]
    Backend(String),
}

fn malformed(algorithm: Algorithm, problem: impl Into<String>) -> HashError {
    HashError::Malformed {
        algorithm,
        problem: problem.into(),
    }
}

/// The scheme for a new hash made by [`hash_password`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NewHash {
    /// argon2id with the argon2 crate's defaults (OWASP: m=19456 KiB, t=2, p=1).
    #[default]
    Argon2id,
    /// bcrypt with the given cost (4 to 31; [`DEFAULT_BCRYPT_COST`] is 10), written as `$2y$`.
    Bcrypt { cost: u32 },
}

impl PasswordHash {
    /// Parses one hash string, exactly as it appears after the `:` of an htpasswd line.
    ///
    /// Validates everything that can be checked without the password (prefix, lengths,
    /// alphabets, canonical encodings, cost and rounds ranges, argon2 parameters), so a bad line
    /// is reported when the file is loaded, not at login. Refused with a specific error: crypt(3)
    /// DES, plaintext, MD5-crypt `$1$`, bcrypt `$2x$`/`$2$`, argon2i and argon2d. Out-of-range
    /// SHA-crypt rounds are refused rather than clamped as glibc does (glibc never writes them).
    ///
    /// # Errors
    /// A [`HashError`] naming what was found and what would be valid; it never echoes `s`.
    pub fn parse(s: &str) -> Result<Self, HashError> {
        if s.is_empty() {
            return Err(HashError::Empty);
        }
        if let Some(rest) = ["$2y$", "$2a$", "$2b$"]
            .iter()
            .find_map(|prefix| s.strip_prefix(prefix))
        {
            return parse_bcrypt(s, rest);
        }
        if let Some(rest) = s.strip_prefix("$apr1$") {
            return parse_apr1(rest);
        }
        if let Some(rest) = s.strip_prefix("{SHA}") {
            return parse_sha1(rest);
        }
        if let Some(rest) = s.strip_prefix("$5$") {
            let parts = ShaCryptParts::parse(rest, ShaCryptVariant::Sha256)?;
            return Ok(PasswordHash::Sha256Crypt {
                rounds: parts.rounds,
                encoded: s.to_owned(),
            });
        }
        if let Some(rest) = s.strip_prefix("$6$") {
            let parts = ShaCryptParts::parse(rest, ShaCryptVariant::Sha512)?;
            return Ok(PasswordHash::Sha512Crypt {
                rounds: parts.rounds,
                encoded: s.to_owned(),
            });
        }
        if s.starts_with("$argon2id$") {
            Argon2Parts::parse(s)?;
            return Ok(PasswordHash::Argon2 {
                encoded: s.to_owned(),
            });
        }
        if s.starts_with("$argon2i$") || s.starts_with("$argon2d$") {
            return Err(HashError::Unsupported {
                scheme: "argon2i and argon2d",
                reason: "only argon2id is accepted (argon2d leaks timing, argon2i is weaker against trade-off attacks)",
            });
        }
        if s.starts_with("$2x$") || s.starts_with("$2$") {
            return Err(HashError::Unsupported {
                scheme: "bcrypt $2x$ and $2$",
                reason: "they are the buggy pre-2011 variants",
            });
        }
        if s.starts_with("$1$") {
            return Err(HashError::Unsupported {
                scheme: "MD5-crypt ($1$)",
                reason: "only Apache's variant $apr1$ is read, and MD5 is fast to brute-force",
            });
        }
        if s.starts_with('$') || s.starts_with('{') {
            return Err(HashError::Unknown);
        }
        if is_des(s) {
            return Err(HashError::Des);
        }
        Err(HashError::Plaintext)
    }

    /// Checks `password` against this hash. CPU-heavy (that is the point): call it off the
    /// async executor.
    ///
    /// The final digest is compared in constant time. Never panics: a hash that does not parse
    /// (only possible for a value built by hand) or a password containing NUL gives `false`.
    /// bcrypt uses only the first 72 bytes of the password, as Apache does, so existing files
    /// verify identically (and a longer password matches any password with the same 72 bytes).
    pub fn verify(&self, password: &[u8]) -> bool {
        if password.contains(&0) {
            return false;
        }
        match self {
            // The crate truncates at 72 bytes like crypt_blowfish in Apache, and compares with
            // `subtle`; `non_truncating_verify` would reject passwords Apache accepts.
            PasswordHash::Bcrypt { encoded, .. } => {
                matches!(bcrypt::verify(password, encoded), Ok(true))
            }
            PasswordHash::Apr1 { salt, checksum } => {
                let computed = apr1_checksum(password, salt.as_bytes());
                bool::from(computed.ct_eq(checksum.as_bytes()))
            }
            PasswordHash::Sha1 { digest } => {
                let computed: [u8; 20] = Sha1::digest(password).into();
                bool::from(computed.ct_eq(digest))
            }
            PasswordHash::Sha256Crypt { encoded, .. } => {
                verify_sha_crypt(encoded, "$5$", ShaCryptVariant::Sha256, password)
            }
            PasswordHash::Sha512Crypt { encoded, .. } => {
                verify_sha_crypt(encoded, "$6$", ShaCryptVariant::Sha512, password)
            }
            PasswordHash::Argon2 { encoded } => match Argon2Parts::parse(encoded) {
                Ok(parts) => parts.verify(password),
                Err(_) => false,
            },
        }
    }

    /// The algorithm of this hash.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            PasswordHash::Bcrypt { .. } => Algorithm::Bcrypt,
            PasswordHash::Apr1 { .. } => Algorithm::Apr1,
            PasswordHash::Sha1 { .. } => Algorithm::Sha1,
            PasswordHash::Sha256Crypt { .. } => Algorithm::Sha256Crypt,
            PasswordHash::Sha512Crypt { .. } => Algorithm::Sha512Crypt,
            PasswordHash::Argon2 { .. } => Algorithm::Argon2id,
        }
    }

    /// The work factor of this hash; equal `(algorithm(), cost())` means equal verify time.
    pub fn cost(&self) -> Cost {
        match self {
            PasswordHash::Bcrypt { cost, .. } => Cost::Bcrypt(*cost),
            PasswordHash::Apr1 { .. } | PasswordHash::Sha1 { .. } => Cost::Fixed,
            PasswordHash::Sha256Crypt { rounds, .. } | PasswordHash::Sha512Crypt { rounds, .. } => {
                Cost::Rounds(*rounds)
            }
            PasswordHash::Argon2 { encoded } => match Argon2Parts::parse(encoded) {
                Ok(parts) => parts.cost(),
                Err(_) => Cost::Argon2 {
                    m_kib: 0,
                    t: 0,
                    p: 0,
                },
            },
        }
    }

    /// A hash of a random password with the same algorithm and cost (same bcrypt cost,
    /// SHA-crypt rounds, argon2 parameters), for making unknown users cost the same time as
    /// known ones. Costs one hash computation (~50 ms for bcrypt cost 10): call it at load time.
    ///
    /// The random password is discarded, so the result verifies nothing in practice. If the
    /// parameters cannot be hashed (only for a hand-built inconsistent value) the result is a
    /// bcrypt cost-10 dummy.
    pub fn dummy_like(&self) -> PasswordHash {
        self.hash_like(&random_password())
    }

    /// A bcrypt hash of a random password with the given cost (clamped to 4..=31), for timing
    /// equalisation when there is no other hash to imitate (an empty htpasswd file).
    pub fn dummy_bcrypt(cost: u32) -> PasswordHash {
        bcrypt_hash(&random_password(), cost)
    }

    /// `password` hashed with the same algorithm and cost as `self`, with a fresh salt.
    fn hash_like(&self, password: &[u8]) -> PasswordHash {
        let mut rng = rand::thread_rng();
        match self {
            PasswordHash::Bcrypt { cost, .. } => bcrypt_hash(password, *cost),
            PasswordHash::Apr1 { .. } => {
                let salt: String = (0..8).map(|_| char::from(crypt_char(rng.gen()))).collect();
                let checksum = apr1_checksum(password, salt.as_bytes());
                PasswordHash::Apr1 {
                    checksum: checksum.iter().map(|&b| char::from(b)).collect(),
                    salt,
                }
            }
            PasswordHash::Sha1 { .. } => PasswordHash::Sha1 {
                digest: Sha1::digest(password).into(),
            },
            PasswordHash::Sha256Crypt { rounds, .. } => {
                sha_crypt_hash(password, *rounds, ShaCryptVariant::Sha256)
            }
            PasswordHash::Sha512Crypt { rounds, .. } => {
                sha_crypt_hash(password, *rounds, ShaCryptVariant::Sha512)
            }
            PasswordHash::Argon2 { encoded } => {
                let encoded = Argon2Parts::parse(encoded)
                    .ok()
                    .and_then(|parts| parts.hash_new(password).ok());
                match encoded {
                    Some(encoded) => PasswordHash::Argon2 { encoded },
                    None => bcrypt_hash(password, DEFAULT_BCRYPT_COST),
                }
            }
        }
    }

    /// `Some(reason)` if this hash is weak enough that `authgate check` should warn: `{SHA}`
    /// (unsalted SHA-1), apr1 (fast MD5), bcrypt below cost 10, SHA-crypt below 5000 rounds,
    /// argon2id below OWASP's minimum (m*t below 19456 KiB * 2 or m below 7 MiB). `None` otherwise.
    pub fn is_weak(&self) -> Option<&'static str> {
        match self {
            PasswordHash::Sha1 { .. } => {
                return Some("{SHA} is a single unsalted SHA-1: fast to brute-force, and equal passwords give equal hashes; re-hash with htpasswd -B or `authgate hash`");
            }
            PasswordHash::Apr1 { .. } => {
                return Some("apr1 is 1000 rounds of MD5, fast to brute-force on a GPU; re-hash with htpasswd -B or `authgate hash`");
            }
            _ => {}
        }
        match self.cost() {
            Cost::Bcrypt(cost) if cost < DEFAULT_BCRYPT_COST => Some(
                "bcrypt cost below 10 (htpasswd -B defaults to 5); re-hash with htpasswd -B -C 10 or `authgate hash`",
            ),
            Cost::Rounds(rounds) if rounds < SHA_CRYPT_DEFAULT_ROUNDS => Some(
                "SHA-crypt with fewer than 5000 rounds; re-hash with htpasswd -B or `authgate hash`",
            ),
            // OWASP's argon2id table trades memory for iterations down to m=7168 KiB, t=5.
            Cost::Argon2 { m_kib, t, .. }
                if m_kib < 7 * 1024 || u64::from(m_kib) * u64::from(t) < 35 * 1024 =>
            {
                Some("argon2id parameters below OWASP's minimum (m=19456 KiB, t=2, p=1 or equivalent); re-hash with `authgate hash`")
            }
            _ => None,
        }
    }
}

/// Hashes a new password (for `authgate hash`).
///
/// [`NewHash::Argon2id`] (the default) uses the argon2 crate's defaults (OWASP: m=19456 KiB,
/// t=2, p=1) and a random 16-byte salt. [`NewHash::Bcrypt`] uses the given cost and writes the
/// `$2y$` prefix like Apache's htpasswd, so the output also works in Apache and nginx.
///
/// # Errors
/// A password containing NUL ([`HashError::PasswordContainsNul`]); for bcrypt, a cost outside
/// 4..=31 ([`HashError::InvalidCost`]) or a password over 72 bytes
/// ([`HashError::PasswordTooLongForBcrypt`]: bcrypt would silently ignore the rest).
pub fn hash_password(password: &[u8], scheme: NewHash) -> Result<String, HashError> {
    if password.contains(&0) {
        return Err(HashError::PasswordContainsNul);
    }
    match scheme {
        NewHash::Argon2id => {
            let salt = SaltString::encode_b64(&random_bytes::<16>())
                .map_err(|e| HashError::Backend(e.to_string()))?;
            let hash = argon2::password_hash::PasswordHasher::hash_password(
                &argon2::Argon2::default(),
                password,
                &salt,
            )
            .map_err(|e| HashError::Backend(e.to_string()))?;
            Ok(hash.to_string())
        }
        NewHash::Bcrypt { cost } => {
            if !BCRYPT_COSTS.contains(&cost) {
                return Err(HashError::InvalidCost(cost));
            }
            if password.len() > 72 {
                return Err(HashError::PasswordTooLongForBcrypt);
            }
            let parts = bcrypt::hash_with_result(password, cost)
                .map_err(|e| HashError::Backend(e.to_string()))?;
            Ok(parts.format_for_version(bcrypt::Version::TwoY))
        }
    }
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes
}

/// 32 random alphanumeric bytes: never contains NUL, fits bcrypt's 72 bytes.
fn random_password() -> Vec<u8> {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(32)
        .collect()
}

/// The crypt(3) base64 character for the low 6 bits of `v`.
fn crypt_char(v: u32) -> u8 {
    CRYPT_ALPHABET
        .get((v & 0x3f) as usize)
        .copied()
        .unwrap_or(b'.')
}

/// The 6-bit value of a crypt(3) base64 character.
fn crypt_value(c: u8) -> Option<u8> {
    CRYPT_ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|p| u8::try_from(p).ok())
}

fn all_crypt_chars(s: &str) -> bool {
    s.bytes().all(|b| crypt_value(b).is_some())
}

/// crypt(3) DES: 13 characters (htpasswd -d), or BSDi extended DES: `_` and 19 more.
fn is_des(s: &str) -> bool {
    (s.len() == 13 && all_crypt_chars(s))
        || s.strip_prefix('_')
            .is_some_and(|rest| rest.len() == 19 && all_crypt_chars(rest))
}

/// Checks a crypt(3) base64 checksum: exact length, alphabet, and that the last character
/// carries only `last_bits` bits (what crypt writes; anything else could never match).
fn check_crypt_checksum(
    algorithm: Algorithm,
    checksum: &str,
    len: usize,
    last_bits: u32,
) -> Result<(), HashError> {
    if checksum.len() != len {
        return Err(malformed(
            algorithm,
            format!(
                "the checksum must be {len} characters, found {}",
                checksum.chars().count()
            ),
        ));
    }
    if !all_crypt_chars(checksum) {
        return Err(malformed(
            algorithm,
            "the checksum may contain only ./0-9A-Za-z",
        ));
    }
    let last = checksum.bytes().last().and_then(crypt_value).unwrap_or(0);
    if u32::from(last) >> last_bits != 0 {
        return Err(malformed(
            algorithm,
            "the checksum's last character is not canonical (this hash can never match)",
        ));
    }
    Ok(())
}

fn check_crypt_salt(algorithm: Algorithm, salt: &str, max: usize) -> Result<(), HashError> {
    if salt.is_empty() || salt.len() > max || !all_crypt_chars(salt) {
        return Err(malformed(
            algorithm,
            format!(
                "the salt must be 1 to {max} characters from ./0-9A-Za-z, found {} characters",
                salt.chars().count()
            ),
        ));
    }
    Ok(())
}

// ---- bcrypt ----

fn parse_bcrypt(s: &str, rest: &str) -> Result<PasswordHash, HashError> {
    let algorithm = Algorithm::Bcrypt;
    let Some((cost_text, body)) = rest.split_once('$') else {
        return Err(malformed(
            algorithm,
            "expected $2y$<two-digit cost>$<53 characters>, found no '$' after the cost",
        ));
    };
    if cost_text.len() != 2 || !cost_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(
            algorithm,
            "the cost must be two digits, 04 to 31",
        ));
    }
    let cost: u32 = cost_text
        .parse()
        .map_err(|_| malformed(algorithm, "the cost must be two digits, 04 to 31"))?;
    if !BCRYPT_COSTS.contains(&cost) {
        return Err(malformed(
            algorithm,
            format!("cost {cost} is out of range; valid costs are 04 to 31"),
        ));
    }
    if body.len() != 53 {
        return Err(malformed(
            algorithm,
            format!(
                "expected 22 salt and 31 checksum characters after the cost (53), found {}",
                body.chars().count()
            ),
        ));
    }
    let (salt, checksum) = body.split_at_checked(22).ok_or_else(|| {
        malformed(
            algorithm,
            "the salt and checksum may contain only ./A-Za-z0-9",
        )
    })?;
    let salt_ok = BCRYPT_B64.decode(salt).is_ok_and(|b| b.len() == 16);
    let checksum_ok = BCRYPT_B64.decode(checksum).is_ok_and(|b| b.len() == 23);
    if !salt_ok || !checksum_ok {
        return Err(malformed(
            algorithm,
            "the salt (22) and checksum (31) must be canonical bcrypt base64 (./A-Za-z0-9)",
        ));
    }
    Ok(PasswordHash::Bcrypt {
        cost,
        encoded: s.to_owned(),
    })
}

/// A `$2y$` hash of `password` (which must not contain NUL) at `cost`, clamped to 4..=31.
/// Infallible, unlike the crate's `hash`, so it can be the fallback dummy.
fn bcrypt_hash(password: &[u8], cost: u32) -> PasswordHash {
    let cost = cost.clamp(*BCRYPT_COSTS.start(), *BCRYPT_COSTS.end());
    let salt = random_bytes::<16>();
    // As the crate does: the key is the password with its C terminator, at most 72 bytes.
    let mut key: Vec<u8> = password.iter().copied().chain([0]).collect();
    key.truncate(72);
    let raw = bcrypt::bcrypt(cost, salt, &key);
    let checksum = raw.first_chunk::<23>().map(|c| BCRYPT_B64.encode(c));
    PasswordHash::Bcrypt {
        cost,
        encoded: format!(
            "$2y${cost:02}${}{}",
            BCRYPT_B64.encode(salt),
            checksum.unwrap_or_default()
        ),
    }
}

// ---- apr1 ----

fn parse_apr1(rest: &str) -> Result<PasswordHash, HashError> {
    let algorithm = Algorithm::Apr1;
    let Some((salt, checksum)) = rest.split_once('$') else {
        return Err(malformed(
            algorithm,
            "expected $apr1$<salt>$<22 characters>, found no '$' after the salt",
        ));
    };
    check_crypt_salt(algorithm, salt, 8)?;
    // 16 digest bytes: five 4-character groups of 24 bits, then 8 bits in 2 characters.
    check_crypt_checksum(algorithm, checksum, 22, 2)?;
    Ok(PasswordHash::Apr1 {
        salt: salt.to_owned(),
        checksum: checksum.to_owned(),
    })
}

/// Apache's MD5-crypt (apr_md5_encode), which is FreeBSD's MD5-crypt with the magic `$apr1$`.
/// Returns the 22-character checksum.
fn apr1_checksum(password: &[u8], salt: &[u8]) -> [u8; 22] {
    const MAGIC: &[u8] = b"$apr1$";
    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(MAGIC);
    ctx.update(salt);

    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt: [u8; 16] = alt.finalize().into();
    for chunk in password.chunks(16) {
        ctx.update(alt.get(..chunk.len()).unwrap_or_default());
    }

    // The original's quirk: for each bit of the length, a zero byte or the first password byte.
    let first = password.first().copied().unwrap_or(0);
    let mut len = password.len();
    while len != 0 {
        ctx.update([if len & 1 == 1 { 0 } else { first }]);
        len >>= 1;
    }
    let mut digest: [u8; 16] = ctx.finalize().into();

    for i in 0..1000 {
        let mut round = Md5::new();
        if i & 1 == 1 {
            round.update(password);
        } else {
            round.update(digest);
        }
        if i % 3 != 0 {
            round.update(salt);
        }
        if i % 7 != 0 {
            round.update(password);
        }
        if i & 1 == 1 {
            round.update(digest);
        } else {
            round.update(password);
        }
        digest = round.finalize().into();
    }

    let [d0, d1, d2, d3, d4, d5, d6, d7, d8, d9, d10, d11, d12, d13, d14, d15] = digest;
    let groups: [(u32, usize); 6] = [
        (u32::from(d0) << 16 | u32::from(d6) << 8 | u32::from(d12), 4),
        (u32::from(d1) << 16 | u32::from(d7) << 8 | u32::from(d13), 4),
        (u32::from(d2) << 16 | u32::from(d8) << 8 | u32::from(d14), 4),
        (u32::from(d3) << 16 | u32::from(d9) << 8 | u32::from(d15), 4),
        (u32::from(d4) << 16 | u32::from(d10) << 8 | u32::from(d5), 4),
        (u32::from(d11), 2),
    ];
    let mut out = [b'.'; 22];
    let mut slots = out.iter_mut();
    for (mut value, chars) in groups {
        for slot in slots.by_ref().take(chars) {
            *slot = crypt_char(value);
            value >>= 6;
        }
    }
    out
}

// ---- {SHA} ----

fn parse_sha1(rest: &str) -> Result<PasswordHash, HashError> {
    let digest = STANDARD
        .decode(rest)
        .ok()
        .and_then(|bytes| <[u8; 20]>::try_from(bytes).ok())
        .ok_or_else(|| {
            malformed(
                Algorithm::Sha1,
                format!(
                    "expected {{SHA}} and 28 characters of base64 (a 20-byte digest), found {} characters",
                    rest.chars().count()
                ),
            )
        })?;
    Ok(PasswordHash::Sha1 { digest })
}

// ---- SHA-crypt ----

#[derive(Clone, Copy)]
enum ShaCryptVariant {
    Sha256,
    Sha512,
}

impl ShaCryptVariant {
    fn algorithm(self) -> Algorithm {
        match self {
            ShaCryptVariant::Sha256 => Algorithm::Sha256Crypt,
            ShaCryptVariant::Sha512 => Algorithm::Sha512Crypt,
        }
    }

    /// (prefix, checksum length, bits in the checksum's last character)
    fn shape(self) -> (&'static str, usize, u32) {
        match self {
            // 32 bytes = 42 full characters + 4 bits.
            ShaCryptVariant::Sha256 => ("$5$", 43, 4),
            // 64 bytes = 85 full characters + 2 bits.
            ShaCryptVariant::Sha512 => ("$6$", 86, 2),
        }
    }

    /// The crypt(3) base64 checksum of `password`, or `None` if `rounds` is out of range.
    fn checksum(self, password: &[u8], salt: &[u8], rounds: u32) -> Option<String> {
        let rounds = usize::try_from(rounds).ok()?;
        match self {
            ShaCryptVariant::Sha256 => {
                let params = sha_crypt::Sha256Params::new(rounds).ok()?;
                sha_crypt::sha256_crypt_b64(password, salt, &params).ok()
            }
            ShaCryptVariant::Sha512 => {
                let params = sha_crypt::Sha512Params::new(rounds).ok()?;
                sha_crypt::sha512_crypt_b64(password, salt, &params).ok()
            }
        }
    }
}

/// `[rounds=N$]<salt>$<checksum>`, the part after `$5$` / `$6$`.
struct ShaCryptParts<'a> {
    rounds: u32,
    salt: &'a str,
    checksum: &'a str,
}

impl<'a> ShaCryptParts<'a> {
    fn parse(rest: &'a str, variant: ShaCryptVariant) -> Result<Self, HashError> {
        let algorithm = variant.algorithm();
        let (prefix, checksum_len, last_bits) = variant.shape();
        let (rounds, rest) = match rest.strip_prefix("rounds=") {
            Some(after) => {
                let (digits, rest) = after.split_once('$').ok_or_else(|| {
                    malformed(algorithm, "expected rounds=<number>$ before the salt")
                })?;
                let rounds = digits
                    .parse::<u32>()
                    .ok()
                    .filter(|_| digits.bytes().all(|b| b.is_ascii_digit()))
                    .filter(|r| SHA_CRYPT_ROUNDS.contains(r))
                    .ok_or_else(|| {
                        malformed(algorithm, "rounds= must be a number from 1000 to 999999999")
                    })?;
                (rounds, rest)
            }
            None => (SHA_CRYPT_DEFAULT_ROUNDS, rest),
        };
        let Some((salt, checksum)) = rest.split_once('$') else {
            return Err(malformed(
                algorithm,
                format!("expected {prefix}[rounds=N$]<salt>$<{checksum_len} characters>, found no '$' after the salt"),
            ));
        };
        check_crypt_salt(algorithm, salt, 16)?;
        check_crypt_checksum(algorithm, checksum, checksum_len, last_bits)?;
        Ok(ShaCryptParts {
            rounds,
            salt,
            checksum,
        })
    }
}

fn verify_sha_crypt(
    encoded: &str,
    prefix: &str,
    variant: ShaCryptVariant,
    password: &[u8],
) -> bool {
    let Some(parts) = encoded
        .strip_prefix(prefix)
        .and_then(|rest| ShaCryptParts::parse(rest, variant).ok())
    else {
        return false;
    };
    match variant.checksum(password, parts.salt.as_bytes(), parts.rounds) {
        // glibc's crypt() output compared as a string, as Apache does, but in constant time.
        Some(computed) => bool::from(computed.as_bytes().ct_eq(parts.checksum.as_bytes())),
        None => false,
    }
}

fn sha_crypt_hash(password: &[u8], rounds: u32, variant: ShaCryptVariant) -> PasswordHash {
    let mut rng = rand::thread_rng();
    let salt: String = (0..16).map(|_| char::from(crypt_char(rng.gen()))).collect();
    let Some(checksum) = variant.checksum(password, salt.as_bytes(), rounds) else {
        return bcrypt_hash(password, DEFAULT_BCRYPT_COST);
    };
    let (prefix, _, _) = variant.shape();
    let encoded = if rounds == SHA_CRYPT_DEFAULT_ROUNDS {
        format!("{prefix}{salt}${checksum}")
    } else {
        format!("{prefix}rounds={rounds}${salt}${checksum}")
    };
    match variant {
        ShaCryptVariant::Sha256 => PasswordHash::Sha256Crypt { rounds, encoded },
        ShaCryptVariant::Sha512 => PasswordHash::Sha512Crypt { rounds, encoded },
    }
}

// ---- argon2id ----

/// A validated argon2id PHC string, decoded.
struct Argon2Parts {
    version: argon2::Version,
    params: argon2::Params,
    salt: Vec<u8>,
    expected: Vec<u8>,
}

impl Argon2Parts {
    fn parse(s: &str) -> Result<Self, HashError> {
        let algorithm = Algorithm::Argon2id;
        let phc = PhcString::new(s).map_err(|e| {
            malformed(algorithm, format!("not a valid PHC string ({e}); expected $argon2id$v=19$m=<KiB>,t=<n>,p=<n>$<salt>$<hash>"))
        })?;
        if phc.algorithm != argon2::ARGON2ID_IDENT {
            return Err(malformed(algorithm, "the algorithm must be argon2id"));
        }
        let version = match phc.version {
            None => argon2::Version::default(),
            Some(v) => argon2::Version::try_from(v).map_err(|_| {
                malformed(
                    algorithm,
                    format!("version v={v} is unknown; valid versions are v=19 and v=16"),
                )
            })?,
        };
        let params = argon2::Params::try_from(&phc).map_err(|e| {
            malformed(algorithm, format!("invalid parameters ({e}); expected m=<KiB, at least 8*p>,t=<at least 1>,p=<1 to 16777215>"))
        })?;
        if params.m_cost() > ARGON2_MAX_M_KIB {
            return Err(malformed(
                algorithm,
                format!(
                    "m={} KiB is above the {ARGON2_MAX_M_KIB} KiB (1 GiB) allowed per verification",
                    params.m_cost()
                ),
            ));
        }
        let mut salt_buf = [0u8; 64];
        let salt = phc
            .salt
            .ok_or_else(|| malformed(algorithm, "the salt is missing"))?
            .decode_b64(&mut salt_buf)
            .map_err(|_| malformed(algorithm, "the salt must be unpadded base64"))?;
        if salt.len() < argon2::MIN_SALT_LEN {
            return Err(malformed(
                algorithm,
                format!(
                    "the salt is {} bytes; at least {} are required",
                    salt.len(),
                    argon2::MIN_SALT_LEN
                ),
            ));
        }
        let expected = phc
            .hash
            .ok_or_else(|| malformed(algorithm, "the hash is missing"))?;
        Ok(Argon2Parts {
            version,
            params,
            salt: salt.to_vec(),
            expected: expected.as_bytes().to_vec(),
        })
    }

    fn hasher(&self) -> argon2::Argon2<'static> {
        argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            self.version,
            self.params.clone(),
        )
    }

    fn cost(&self) -> Cost {
        Cost::Argon2 {
            m_kib: self.params.m_cost(),
            t: self.params.t_cost(),
            p: self.params.p_cost(),
        }
    }

    fn verify(&self, password: &[u8]) -> bool {
        let mut computed = vec![0u8; self.expected.len()];
        match self
            .hasher()
            .hash_password_into(password, &self.salt, &mut computed)
        {
            Ok(()) => bool::from(computed.ct_eq(&self.expected)),
            Err(_) => false,
        }
    }

    /// A new PHC string for `password` with these parameters and a fresh 16-byte salt.
    fn hash_new(&self, password: &[u8]) -> Result<String, argon2::password_hash::Error> {
        let salt = SaltString::encode_b64(&random_bytes::<16>())?;
        let hash =
            argon2::password_hash::PasswordHasher::hash_password(&self.hasher(), password, &salt)?;
        Ok(hash.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "correct horse battery staple";

    // Vectors from Apache htpasswd 2.4.71 (Debian apache2-utils 2.4.71-1~deb12u1), e.g.
    // `htpasswd -nbB -C 4 alice 'correct horse battery staple'`.
    const BCRYPT_DEFAULT: &str = "$2y$05$GsIXNCIfMoLHT2VrsfSB4umrjKph5DW1jzrRapoy1c3U75GaNKt8u"; // -B
    const BCRYPT_C5: &str = "$2y$05$48G0XphRQonw7ooOgERR2.48ggFe/atyoBoyyPZptMucJDprh.Fui"; // -B -C 5
    const BCRYPT_C4: &str = "$2y$04$2RZTJKvxkSXnieSlNDsVIOWNqkYJw9Rvq.ZNbo837PerApVVNt3Qe"; // -B -C 4
    const APR1: &str = "$apr1$i8FQmNqN$nRUOzD21ps72b7aZq3T8v1"; // -m
    const SHA1: &str = "{SHA}q/eq1kOINtvlJqojGr3i0O73TUI="; // -s
    const SHA256: &str = "$5$6RKqpQnTZYsMlN7L$hTWQZ3vkOgs5q3qW3wCBlhrY6oWcy8huT2PdyWZvOJ3"; // -2
    const SHA256_R1000: &str =
        "$5$rounds=1000$Cx8Su.LEA4QxTJht$83IAa06MoCyIChCJc.88lZJYElcQGODFEnyU6F.m3y5"; // -2 -r 1000
    const SHA512: &str = "$6$HPaWir0zDmwknmCS$noCCxN30s1/4zTIZBn0GZdYBhpwpwM02RftftHL06Gh/E6xGZrOiLNOtWkwfuZl4GA0yJaW9LInYS4.K8H1vm."; // -5
                                                                                                                                       // From the argon2 0.5 crate: `hash_password(PASSWORD, NewHash::Argon2id)` (m=19456,t=2,p=1).
    const ARGON2ID: &str = "$argon2id$v=19$m=19456,t=2,p=1$5Ymq8et+8q0dx57JYcr/Ig$6YIU6TRimmYeIbpBUoPIZGV54seek2dTlxKz1IQcKsA";
    // From the argon2 0.5 crate with cheap parameters (m=256,t=1,p=1), for tests that verify often.
    const ARGON2ID_CHEAP: &str = "$argon2id$v=19$m=256,t=1,p=1$YXV0aGdhdGUtdGVzdHMhIQ$KwuTprFpD7u1N+kG8jczk2/2Vt6mS7MddOWfYYFVMWE";
    // From the reference implementation (Debian `argon2` 0~20171227):
    // `echo -n "$PASSWORD" | argon2 saltsaltsalt1234 -id -t 2 -k 19456 -p 1 -e` (and -t 1 -k 256).
    const ARGON2ID_REFERENCE: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0MTIzNA$3sOlQyZQ3asEqhCko2TQGcIzwlkxeNQtuSu1sisMsMg";
    const ARGON2ID_REFERENCE_CHEAP: &str = "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0MTIzNA$PufBhhlzG557EH00svxkECF0nG8wbYWXKLU6PgVR6VI";

    // Hashes of the empty password (htpasswd 2.4.71).
    const EMPTY_BCRYPT_C4: &str = "$2y$04$9m7b0E3YEjXzALe738LcVOvD2m6vmOtlRS8nUHM3vTtgSynosTFfO";
    const EMPTY_APR1: &str = "$apr1$Ocn7Y6Hn$C5mLBzz5G9ohBKQvapvhP/";
    const EMPTY_SHA1: &str = "{SHA}2jmj7l5rSw0yVb/vlWAYkK/YBwk=";
    const EMPTY_SHA256: &str = "$5$feHR9fkhvW0s9mjd$Wklf30f1SV0w9/mLudvuPWL8FIPv8Pu6Io1tpzO56Z/";
    const EMPTY_SHA512: &str = "$6$E9EV0zhzLyfGCWNK$RaWQ82YGImBO28BGE4xpvWshBrI6ln.aHSe9q35KRacA98r8ZRIEymt.7xTT/WMgc.wvexs1qTDvg5QhN8nFH1";

    fn parsed(s: &str) -> PasswordHash {
        match PasswordHash::parse(s) {
            Ok(h) => h,
            Err(e) => panic!("{s:?} did not parse: {e}"),
        }
    }

    /// Right password verifies; wrong, last-byte-changed and empty passwords do not.
    fn check_vector(s: &str, algorithm: Algorithm) {
        let hash = parsed(s);
        assert_eq!(hash.algorithm(), algorithm, "{s}");
        assert!(
            hash.verify(PASSWORD.as_bytes()),
            "right password rejected by {s}"
        );
        assert!(
            !hash.verify(b"Tr0ub4dor&3"),
            "wrong password accepted by {s}"
        );
        let mut last_changed = PASSWORD.as_bytes().to_vec();
        if let Some(last) = last_changed.last_mut() {
            *last ^= 1;
        }
        assert!(
            !hash.verify(&last_changed),
            "last-byte change accepted by {s}"
        );
        assert!(!hash.verify(b""), "empty password accepted by {s}");
        let mut with_nul = PASSWORD.as_bytes().to_vec();
        with_nul.extend_from_slice(b"\0x");
        assert!(!hash.verify(&with_nul), "password\\0suffix accepted by {s}");
    }

    #[test]
    fn htpasswd_bcrypt_default_verifies() {
        check_vector(BCRYPT_DEFAULT, Algorithm::Bcrypt);
    }

    #[test]
    fn htpasswd_bcrypt_cost5_verifies() {
        check_vector(BCRYPT_C5, Algorithm::Bcrypt);
        assert_eq!(parsed(BCRYPT_C5).cost(), Cost::Bcrypt(5));
    }

    #[test]
    fn htpasswd_bcrypt_cost4_verifies() {
        check_vector(BCRYPT_C4, Algorithm::Bcrypt);
    }

    #[test]
    fn bcrypt_2a_and_2b_prefixes_verify_like_2y() {
        for prefix in ["$2a$", "$2b$"] {
            let s = BCRYPT_C4.replacen("$2y$", prefix, 1);
            check_vector(&s, Algorithm::Bcrypt);
        }
    }

    #[test]
    fn bcrypt_uses_first_72_bytes_like_apache() {
        // `htpasswd -nbB -C 4 alice <100 x 'a'>`; `htpasswd -v` accepts the 72-byte prefix too.
        let hash = parsed("$2y$04$yEEktGF8hL5buUUf4FmOFOsMSu300XLQH2H/dqQ3TvLVXd95UUDSi");
        assert!(hash.verify(&[b'a'; 100]));
        assert!(hash.verify(&[b'a'; 72]));
        assert!(hash.verify(&[b'a'; 200]));
        assert!(!hash.verify(&[b'a'; 71]));
    }

    #[test]
    fn htpasswd_apr1_verifies() {
        check_vector(APR1, Algorithm::Apr1);
    }

    #[test]
    fn apr1_known_vectors() {
        // htpasswd -nbm alice myPassword
        assert!(parsed("$apr1$.bhNgiN8$XlEW9E0UEltKqrKfjyOv4.").verify(b"myPassword"));
        // htpasswd -nbm alice 'pässwörd✓' (UTF-8 bytes)
        assert!(parsed("$apr1$a.7kQuJC$iISxLup/svSE7ivUrO3jW0").verify("pässwörd✓".as_bytes()));
        // Passwords longer than 16 bytes exercise the chunked update.
        let long = PasswordHash::Apr1 {
            salt: "abcdefgh".into(),
            checksum: String::new(),
        }
        .hash_like(&[b'x'; 40]);
        assert!(long.verify(&[b'x'; 40]));
        assert!(!long.verify(&[b'x'; 39]));
    }

    #[test]
    fn htpasswd_sha1_verifies() {
        check_vector(SHA1, Algorithm::Sha1);
    }

    #[test]
    fn htpasswd_sha256_crypt_verifies() {
        check_vector(SHA256, Algorithm::Sha256Crypt);
        assert_eq!(parsed(SHA256).cost(), Cost::Rounds(5000));
        check_vector(SHA256_R1000, Algorithm::Sha256Crypt);
        assert_eq!(parsed(SHA256_R1000).cost(), Cost::Rounds(1000));
    }

    #[test]
    fn htpasswd_sha512_crypt_verifies() {
        check_vector(SHA512, Algorithm::Sha512Crypt);
    }

    #[test]
    fn argon2id_from_crate_verifies() {
        check_vector(ARGON2ID_CHEAP, Algorithm::Argon2id);
        check_vector(ARGON2ID_REFERENCE_CHEAP, Algorithm::Argon2id);
        // Default parameters: verified once each, as they are slow in unoptimised builds.
        assert!(parsed(ARGON2ID).verify(PASSWORD.as_bytes()));
        assert!(parsed(ARGON2ID_REFERENCE).verify(PASSWORD.as_bytes()));
        assert_eq!(parsed(ARGON2ID_CHEAP).is_weak().map(|_| ()), Some(()));
        assert_eq!(
            parsed(ARGON2ID).cost(),
            Cost::Argon2 {
                m_kib: 19456,
                t: 2,
                p: 1
            }
        );
    }

    #[test]
    fn empty_password_verifies_only_where_it_was_hashed() {
        for s in [
            EMPTY_BCRYPT_C4,
            EMPTY_APR1,
            EMPTY_SHA1,
            EMPTY_SHA256,
            EMPTY_SHA512,
        ] {
            let hash = parsed(s);
            assert!(hash.verify(b""), "empty password rejected by {s}");
            assert!(!hash.verify(b" "), "space accepted by {s}");
            assert!(!hash.verify(b"\0"), "NUL accepted by {s}");
        }
    }

    fn parse_err(s: &str) -> HashError {
        match PasswordHash::parse(s) {
            Ok(h) => panic!("{s:?} parsed as {h:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn refuses_des_plaintext_and_garbage() {
        // htpasswd -nbd alice 'correct horse battery staple'
        assert_eq!(parse_err("iW4lwsBD8NrtE"), HashError::Des);
        assert_eq!(parse_err("_J9..rasmBYk8r9AiWNc"), HashError::Des);
        // htpasswd -nbp writes the password itself.
        assert_eq!(parse_err(PASSWORD), HashError::Plaintext);
        assert_eq!(parse_err("$foo$bar"), HashError::Unknown);
        assert_eq!(parse_err("{MD5}abc"), HashError::Unknown);
        assert_eq!(parse_err(""), HashError::Empty);
        assert!(matches!(
            parse_err("$1$saltsalt$qjXMvbEw8oaL.CzflDugX/"),
            HashError::Unsupported { .. }
        ));
        assert!(matches!(
            parse_err(&BCRYPT_C4.replacen("$2y$", "$2x$", 1)),
            HashError::Unsupported { .. }
        ));
        assert!(matches!(
            parse_err("$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$c29tZWhhc2g"),
            HashError::Unsupported { .. }
        ));
    }

    fn assert_malformed(s: &str, algorithm: Algorithm, needle: &str) {
        match parse_err(s) {
            HashError::Malformed {
                algorithm: found,
                problem,
            } => {
                assert_eq!(found, algorithm, "{s}");
                assert!(
                    problem.contains(needle),
                    "{s}: {problem:?} lacks {needle:?}"
                );
            }
            other => panic!("{s:?}: expected malformed {algorithm}, got {other:?}"),
        }
    }

    #[test]
    fn refuses_malformed_bcrypt() {
        let b = Algorithm::Bcrypt;
        assert_malformed("$2y$05$48G0XphRQonw7ooOgERR2.48ggFe", b, "found 28");
        assert_malformed(
            &BCRYPT_C4.replacen("$04$", "$99$", 1),
            b,
            "cost 99 is out of range",
        );
        assert_malformed(
            &BCRYPT_C4.replacen("$04$", "$03$", 1),
            b,
            "cost 3 is out of range",
        );
        assert_malformed(&BCRYPT_C4.replacen("$04$", "$4$", 1), b, "two digits");
        assert_malformed("$2y$04", b, "no '$'");
        assert_malformed(
            &BCRYPT_C4.replacen('Q', "!", 1),
            b,
            "canonical bcrypt base64",
        );
        // Last checksum character carries 4 bits; 'f' would set the unused ones.
        let noncanonical = format!("{}f", BCRYPT_C4.get(..BCRYPT_C4.len() - 1).unwrap_or(""));
        assert_malformed(&noncanonical, b, "canonical");
    }

    #[test]
    fn refuses_malformed_crypt_hashes() {
        assert_malformed(
            "$apr1$i8FQmNqN$nRUOzD21ps72b7aZq3T8v",
            Algorithm::Apr1,
            "22",
        );
        assert_malformed(
            "$apr1$i8FQmNqNxx$nRUOzD21ps72b7aZq3T8v1",
            Algorithm::Apr1,
            "salt",
        );
        assert_malformed(
            "$apr1$i8FQmNqN$nRUOzD21ps72b7aZq3T8vz",
            Algorithm::Apr1,
            "canonical",
        );
        assert_malformed("$apr1$i8FQmNqN", Algorithm::Apr1, "no '$'");
        assert_malformed("{SHA}q/eq1kOINtvlJqojGr3i0O73TU", Algorithm::Sha1, "28");
        assert_malformed(
            &SHA256.replacen("$5$", "$5$rounds=999$", 1),
            Algorithm::Sha256Crypt,
            "1000 to 999999999",
        );
        assert_malformed(
            &SHA256.replacen("$5$", "$5$rounds=x$", 1),
            Algorithm::Sha256Crypt,
            "rounds=",
        );
        assert_malformed(
            SHA512.get(..SHA512.len() - 1).unwrap_or(""),
            Algorithm::Sha512Crypt,
            "86",
        );
        assert_malformed(
            "$argon2id$v=19$m=19456,t=0,p=1$5Ymq8et+8q0dx57JYcr/Ig$6YIU6TRimmYeIbpBUoPIZGV54seek2dTlxKz1IQcKsA",
            Algorithm::Argon2id,
            "invalid parameters",
        );
        assert_malformed(
            "$argon2id$v=19$m=4194304,t=2,p=1$5Ymq8et+8q0dx57JYcr/Ig$6YIU6TRimmYeIbpBUoPIZGV54seek2dTlxKz1IQcKsA",
            Algorithm::Argon2id,
            "1 GiB",
        );
        assert_malformed("$argon2id$garbage", Algorithm::Argon2id, "salt");
        assert_malformed(
            "$argon2id$v=19$m=19456,,t=2$abc$def",
            Algorithm::Argon2id,
            "PHC",
        );
    }

    #[test]
    fn errors_never_echo_the_input() {
        let secret = "hunter2-Secret-Passw0rd";
        for input in [
            secret.to_owned(),
            format!("$2y$04${secret}"),
            format!("$apr1${secret}"),
            format!("{{SHA}}{secret}"),
            format!("$5${secret}"),
            format!("$6$rounds={secret}$x$y"),
            format!("$argon2id${secret}"),
            format!("${secret}$"),
        ] {
            let message = parse_err(&input).to_string();
            assert!(!message.contains(secret), "{message:?} echoes the input");
            assert!(!message.contains("hunter2"), "{message:?} echoes the input");
        }
    }

    #[test]
    fn dummy_like_keeps_algorithm_and_cost() {
        for s in [BCRYPT_C4, APR1, SHA1, SHA256_R1000, SHA512, ARGON2ID_CHEAP] {
            let hash = parsed(s);
            let dummy = hash.dummy_like();
            assert_eq!(dummy.algorithm(), hash.algorithm(), "{s}");
            assert_eq!(dummy.cost(), hash.cost(), "{s}");
            assert_ne!(dummy, hash, "{s}: the dummy must have a fresh salt");
            assert!(!dummy.verify(PASSWORD.as_bytes()), "{s}");
            // The dummy is itself a well-formed hash.
            let reparsed = match &dummy {
                PasswordHash::Bcrypt { encoded, .. }
                | PasswordHash::Sha256Crypt { encoded, .. }
                | PasswordHash::Sha512Crypt { encoded, .. }
                | PasswordHash::Argon2 { encoded } => parsed(encoded),
                other => other.clone(),
            };
            assert_eq!(reparsed, dummy, "{s}");
        }
    }

    #[test]
    fn hash_like_output_verifies_its_password() {
        for s in [BCRYPT_C4, APR1, SHA1, SHA256_R1000, SHA512, ARGON2ID_CHEAP] {
            let made = parsed(s).hash_like(b"fresh password");
            assert!(made.verify(b"fresh password"), "{s}");
            assert!(!made.verify(b"fresh passwore"), "{s}");
        }
    }

    #[test]
    fn bcrypt_hash_like_truncates_like_the_crate() {
        let made = parsed(BCRYPT_C4).hash_like(&[b'z'; 80]);
        assert!(made.verify(&[b'z'; 80]));
        assert!(made.verify(&[b'z'; 72]));
        assert!(!made.verify(&[b'z'; 71]));
    }

    #[test]
    fn hash_password_round_trips() {
        let argon = hash_password(b"new secret", NewHash::Argon2id).unwrap_or_default();
        assert!(
            argon.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{argon}"
        );
        assert!(parsed(&argon).verify(b"new secret"));
        assert_eq!(parsed(&argon).is_weak(), None);

        let bcrypt = hash_password(b"new secret", NewHash::Bcrypt { cost: 4 }).unwrap_or_default();
        assert!(bcrypt.starts_with("$2y$04$"), "{bcrypt}");
        assert!(parsed(&bcrypt).verify(b"new secret"));
    }

    #[test]
    fn hash_password_refuses_what_cannot_verify_identically() {
        assert_eq!(
            hash_password(b"a\0b", NewHash::Argon2id),
            Err(HashError::PasswordContainsNul)
        );
        assert_eq!(
            hash_password(&[b'a'; 73], NewHash::Bcrypt { cost: 4 }),
            Err(HashError::PasswordTooLongForBcrypt)
        );
        assert_eq!(
            hash_password(b"x", NewHash::Bcrypt { cost: 32 }),
            Err(HashError::InvalidCost(32))
        );
    }

    #[test]
    fn weak_hashes_are_flagged() {
        assert!(parsed(SHA1).is_weak().is_some());
        assert!(parsed(APR1).is_weak().is_some());
        assert!(parsed(BCRYPT_C5).is_weak().is_some());
        assert!(parsed(SHA256_R1000).is_weak().is_some());
        assert_eq!(parsed(SHA256).is_weak(), None);
        assert_eq!(parsed(SHA512).is_weak(), None);
        assert_eq!(parsed(ARGON2ID).is_weak(), None);
        assert_eq!(PasswordHash::dummy_bcrypt(10).is_weak(), None);
    }

    #[test]
    fn algorithm_names_and_flags() {
        assert_eq!(Algorithm::Bcrypt.to_string(), "bcrypt");
        assert_eq!(Algorithm::Bcrypt.htpasswd_flag(), Some("-B"));
        assert_eq!(Algorithm::Apr1.htpasswd_flag(), Some("-m"));
        assert_eq!(Algorithm::Argon2id.htpasswd_flag(), None);
    }
}
