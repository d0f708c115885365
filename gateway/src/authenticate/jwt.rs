//! JWT bearer tokens from an outside identity provider, verified the way RFC 8725 (JWT Best
//! Current Practices) asks.
//!
//! The contract, in the order [`JwtVerifier::verify`] checks it:
//! 1. The token is a compact JWS: three base64url parts (RFC 7515 §7.1), at most
//!    [`MAX_TOKEN_LEN`] bytes. Anything else is [`JwtError::Malformed`].
//! 2. The header's `alg` is one of [`JwtSettings::algorithms`]; `none` never is
//!    ([`JwtError::AlgorithmNotAllowed`]). A `crit` header is refused: no extension is understood.
//! 3. When [`JwtSettings::typ`] is set, the header's `typ` names that media type.
//! 4. The key comes from the configured JWKS (file or URL), or is the configured HS256 secret,
//!    and never from the token: `jku`, `x5u`, `x5c` and `jwk` are not even parsed. A key
//!    verifies only the algorithms that fit its type and its own `alg` (RFC 8725 §3.1).
//! 5. The claims: `iss` equal to the issuer, `aud` naming one of the audiences, `exp` in the
//!    future and `nbf` (when present) in the past, both with the leeway, the user claim a
//!    non-empty string. Time is the caller's `now`, never the system clock.
//!
//! A token that verified is remembered (by its SHA-256) until the cache evicts it, so that a
//! repeated token costs a hash and a lookup; `exp` and `nbf` are checked again on every hit.
//!
//! The signature itself is checked by the `jsonwebtoken` crate's RustCrypto provider, used
//! directly ([`jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER`]) rather than through
//! `jsonwebtoken::decode`: `decode` reads the system clock for `exp`/`nbf`, parses `jku`/`jwk`
//! into its `Header` and cannot tell `alg: none` from bad JSON, which this module answers
//! differently.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use authgate_proto::Secret;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{ACCEPT, USER_AGENT};
use http::{StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use moka::future::Cache;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;

/// Longer tokens are refused as [`JwtError::Malformed`] before anything is decoded.
pub const MAX_TOKEN_LEN: usize = 32 * 1024;
/// A JWKS URL that does not answer within this time counts as a failed fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// A larger JWKS document is refused.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// A token without `kid` is tried against at most this many keys of the right type.
const MAX_KEYS_WITHOUT_KID: usize = 3;
/// RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used with these algorithms."
const MIN_RSA_BITS: usize = 2048;
/// RFC 7518 §3.2: the HMAC key must be at least as long as the hash output.
const MIN_HS256_SECRET_BYTES: usize = 32;

/// Where the signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWK Set (RFC 7517 §5) read once at start.
    File(PathBuf),
    /// A JWK Set fetched over http(s) at start, every [`JwtSettings::jwks_refresh`], and when a
    /// token names an unknown `kid` (at most once per [`JwtSettings::jwks_min_refetch`]).
    Url(String),
    /// No key set: only HS256 with [`JwtSettings::hs256_secret`] can verify.
    None,
}

/// Validated settings (config parsing is done elsewhere and fills this in).
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// `iss` must equal this exactly.
    pub issuer: String,
    /// `aud` (string or array) must contain one of these.
    pub audiences: Vec<String>,
    /// The algorithms a token may use. HS256 only with `hs256_secret`.
    pub algorithms: Vec<Algorithm>,
    pub jwks: JwksSource,
    pub hs256_secret: Option<Secret>,
    /// Clock skew allowed for `exp` and `nbf`.
    pub leeway: Duration,
    /// If set, the header `typ` must name this media type (RFC 8725 §3.11).
    pub typ: Option<String>,
    /// The claim naming the user, default "sub".
    pub user_claim: String,
    /// The claim listing the groups: an array of strings, or one string (one group).
    pub groups_claim: Option<String>,
    /// The claim listing the scopes, default "scope"; "scp" is read when it is absent.
    pub scope_claim: String,
    /// How often a URL JWKS is fetched again; zero: never.
    pub jwks_refresh: Duration,
    /// An unknown `kid` makes a URL JWKS be fetched again at most this often.
    pub jwks_min_refetch: Duration,
    /// How many verified tokens are remembered.
    pub cache_capacity: u64,
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The user claim.
    pub user: String,
    /// The groups claim; empty without one.
    pub groups: Vec<String>,
    /// The scope claim (or `scp`), split on spaces; empty without one.
    pub scopes: Vec<String>,
    /// `exp`, Unix seconds.
    pub expires: u64,
    /// The `kid` of the key that verified the token; `None` for the HS256 secret and for
    /// JWKS keys without `kid`.
    pub key_id: Option<String>,
}

/// Why a token was refused. Each variant is one audit code and one RFC 6750
/// `error_description`; all of them are `error="invalid_token"` (RFC 6750 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url parts, bad JSON, duplicate claims, a `crit` header, a claim of the
    /// wrong type.
    Malformed,
    /// `alg` not allowed, `none`, HS256 without a secret, or an `alg` the key does not verify.
    AlgorithmNotAllowed,
    /// No key for this `kid` (after the rate-limited refetch), or no key for this `alg`.
    UnknownKey,
    BadSignature,
    /// `exp + leeway <= now`.
    Expired,
    /// `nbf - leeway > now`.
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    WrongType,
    /// `exp`, `iss`, `aud` or the user claim missing or not of the right type. The user claim
    /// is named "sub" when it is `sub`, "user" otherwise.
    MissingClaim(&'static str),
}

impl JwtError {
    /// Stable snake_case code for the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            JwtError::Malformed => "malformed",
            JwtError::AlgorithmNotAllowed => "algorithm_not_allowed",
            JwtError::UnknownKey => "unknown_key",
            JwtError::BadSignature => "bad_signature",
            JwtError::Expired => "expired",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::WrongType => "wrong_type",
            JwtError::MissingClaim(_) => "missing_claim",
        }
    }

    /// The RFC 6750 §3 `error_description` shown to the client: short, ASCII printable
    /// without `"` and `\` (RFC 6750 §3 allows only %x20-21 / %x23-5B / %x5D-7E), and never
    /// anything taken from the token.
    pub fn description(&self) -> &'static str {
        match self {
            JwtError::Malformed => "The access token is malformed",
            JwtError::AlgorithmNotAllowed => {
                "The access token is signed with an algorithm that is not accepted"
            }
            JwtError::UnknownKey => "The access token is signed with an unknown key",
            JwtError::BadSignature => "The access token signature is invalid",
            JwtError::Expired => "The access token expired",
            JwtError::NotYetValid => "The access token is not valid yet",
            JwtError::WrongIssuer => "The access token comes from an untrusted issuer",
            JwtError::WrongAudience => "The access token is not meant for this service",
            JwtError::WrongType => "The access token has the wrong type",
            JwtError::MissingClaim(_) => "The access token lacks a required claim",
        }
    }
}

impl fmt::Display for JwtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

impl std::error::Error for JwtError {}

/// Verifies bearer JWTs against one issuer's keys. Built once at start; cheap to share.
pub struct JwtVerifier {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    /// `typ` as a lower-case media type with its `application/` prefix.
    typ: Option<String>,
    user_claim: String,
    user_label: &'static str,
    groups_claim: Option<String>,
    scope_claim: String,
    leeway: u64,
    /// HS256 with the configured secret, when HS256 is allowed.
    hmac: Option<DecodingKey>,
    keys: ArcSwap<KeySet>,
    remote: Option<Remote>,
    cache: Cache<[u8; 32], Arc<CachedToken>>,
    /// Bumped when a key disappears from the JWKS: cached tokens of an older epoch are
    /// verified again, so a withdrawn key stops working at once.
    epoch: AtomicU64,
    /// Signature checks done (cache misses that got that far).
    signature_checks: AtomicU64,
    source: &'static str,
}

impl fmt::Debug for JwtVerifier {
    // By hand: the HS256 secret must not appear, and the keys are noise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.issuer)
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("jwks", &self.source)
            .field("keys", &self.keys.load().keys.len())
            .field("hs256_secret", &self.hmac.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

/// A verified token in the cache, with what is needed to check it again at another time.
#[derive(Debug)]
struct CachedToken {
    verified: Verified,
    nbf: Option<u64>,
    epoch: u64,
}

/// One verification key from the JWKS, bound to the algorithms it may verify.
struct Key {
    kid: Option<String>,
    /// RFC 8725 §3.1: the key's own `alg` when it has one; else the allowed algorithms of
    /// its type (RSA: RS*/PS*; P-256: ES256; P-384: ES384; Ed25519: EdDSA).
    algs: Vec<Algorithm>,
    key: DecodingKey,
    /// Identifies the key's public material, kid and algorithms (to notice removals).
    fingerprint: [u8; 32],
}

#[derive(Default)]
struct KeySet {
    keys: Vec<Key>,
}

/// The fetching side of a URL JWKS.
struct Remote {
    url: String,
    uri: Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    min_refetch: Duration,
    /// Serialises fetches. Holds when the last unknown-`kid` refetch started.
    last_unknown_kid_fetch: tokio::sync::Mutex<Option<Instant>>,
    /// Fetches completed (either way): a caller that waited for the lock while a fetch ran
    /// uses that fetch's result instead of starting another.
    attempts: AtomicU64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trigger {
    Schedule,
    UnknownKid,
}

/// The JOSE header fields this module reads. Everything else (`jku`, `x5u`, `x5c`, `jwk`, ...)
/// is skipped unparsed: RFC 8725 §3.10 says not to trust them. A repeated field of these is
/// an error (serde's derive refuses duplicates; RFC 7515 §4).
#[derive(Deserialize)]
struct JoseHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// A JSON object whose member names are unique (RFC 7519 §4: a parser "MUST either reject
/// JWTs with duplicate Claim Names or use a JSON parser that returns only the lexically last
/// duplicate member name"; this one rejects).
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object without duplicate members")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some(name) = access.next_key::<String>()? {
                    let value: Value = access.next_value()?;
                    if map.insert(name, value).is_some() {
                        return Err(serde::de::Error::custom("duplicate member"));
                    }
                }
                Ok(UniqueObject(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

/// Makes RustCrypto the process-wide `jsonwebtoken` provider, once. `jsonwebtoken` 11 picks
/// it from its crate features when exactly one backend is enabled (here: `rust_crypto`), but
/// panics on first use when both backends end up enabled by feature unification; installing
/// it explicitly keeps the crate's own helpers working then. Verification here does not
/// depend on it: it calls the RustCrypto provider directly.
fn install_crypto_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Err: another provider was installed first; that one stays, which is fine.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
    });
}

impl JwtVerifier {
    /// Loads the keys: reads the JWKS file or fetches the JWKS URL, and for a URL starts a
    /// background task that fetches it again every `jwks_refresh` (the task ends once the
    /// verifier is dropped). Errors are plain messages for the operator.
    pub async fn new(settings: JwtSettings) -> Result<Arc<JwtVerifier>, String> {
        install_crypto_provider();
        check_settings(&settings)?;

        let hmac = match (
            &settings.hs256_secret,
            settings.algorithms.contains(&Algorithm::HS256),
        ) {
            (Some(secret), true) => Some(DecodingKey::from_secret(secret.expose().as_bytes())),
            _ => None,
        };
        let algs = alg_list(&settings.algorithms);
        let (keys, remote, source) = match &settings.jwks {
            JwksSource::None => (KeySet::default(), None, "none"),
            JwksSource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|e| format!("cannot read JWKS file {}: {e}", path.display()))?;
                let keys = parse_jwks(&bytes, &settings.algorithms, true).map_err(|e| match e {
                    JwksError::NotAJwkSet(why) => format!(
                        "JWKS file {} is not a JWK Set (RFC 7517 §5): {why}",
                        path.display()
                    ),
                    JwksError::NoUsableKey => format!(
                        "JWKS file has no usable key for the allowed algorithms ({algs}): {}",
                        path.display()
                    ),
                })?;
                (keys, None, "file")
            }
            JwksSource::Url(url) => {
                let remote = Remote::new(url, settings.jwks_min_refetch)?;
                let keys = remote
                    .fetch(&settings.algorithms, true)
                    .await
                    .map_err(|e| format!("cannot fetch JWKS from URL: {url}: {e}"))?;
                (keys, Some(remote), "url")
            }
        };
        let user_label = if settings.user_claim == "sub" {
            "sub"
        } else {
            "user"
        };
        let verifier = Arc::new(JwtVerifier {
            typ: settings.typ.as_deref().map(media_type),
            issuer: settings.issuer,
            audiences: settings.audiences,
            algorithms: settings.algorithms,
            user_claim: settings.user_claim,
            user_label,
            groups_claim: settings.groups_claim,
            scope_claim: settings.scope_claim,
            leeway: settings.leeway.as_secs(),
            hmac,
            keys: ArcSwap::from_pointee(keys),
            remote,
            cache: Cache::builder()
                .max_capacity(settings.cache_capacity)
                .build(),
            epoch: AtomicU64::new(0),
            signature_checks: AtomicU64::new(0),
            source,
        });
        if verifier.remote.is_some() && !settings.jwks_refresh.is_zero() {
            spawn_refresh(&verifier, settings.jwks_refresh);
        }
        Ok(verifier)
    }

    /// Verifies `token` (the bearer credential, a compact JWS) at `now` (Unix seconds, from
    /// the gateway's clock). See the module documentation for what is checked, in order.
    pub async fn verify(&self, token: &str, now: u64) -> Result<Verified, JwtError> {
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed);
        }
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.cache.get(&digest).await {
            if hit.epoch == self.epoch.load(Ordering::SeqCst) {
                check_time(hit.verified.expires, hit.nbf, now, self.leeway)?;
                return Ok(hit.verified.clone());
            }
        }
        // Read before the keys are, so that a key removed meanwhile makes this entry stale.
        let epoch = self.epoch.load(Ordering::SeqCst);
        let (verified, nbf) = self.verify_uncached(token, now).await?;
        let entry = CachedToken {
            verified: verified.clone(),
            nbf,
            epoch,
        };
        self.cache.insert(digest, Arc::new(entry)).await;
        Ok(verified)
    }

    async fn verify_uncached(
        &self,
        token: &str,
        now: u64,
    ) -> Result<(Verified, Option<u64>), JwtError> {
        // RFC 7515 §7.1: BASE64URL(header) '.' BASE64URL(payload) '.' BASE64URL(signature).
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed);
        };
        let signed = token
            .get(..header_b64.len() + 1 + payload_b64.len())
            .ok_or(JwtError::Malformed)?;
        let header: JoseHeader = decode_json(header_b64)?;
        // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; none are.
        if header.crit.is_some() {
            return Err(JwtError::Malformed);
        }
        let alg = self.allowed_algorithm(&header.alg)?;
        // RFC 8725 §3.11: explicit typing keeps one kind of JWT from passing for another.
        if let Some(want) = &self.typ {
            match header.typ.as_deref().map(media_type) {
                Some(got) if got == *want => {}
                _ => return Err(JwtError::WrongType),
            }
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature_b64)
            .map_err(|_| JwtError::Malformed)?;
        if signature.is_empty() {
            return Err(JwtError::Malformed);
        }
        let key_id = self
            .check_signature(alg, header.kid.as_deref(), signed.as_bytes(), &signature)
            .await?;
        // Claims are parsed only once the signature says who wrote them.
        let UniqueObject(claims) = decode_json(payload_b64)?;
        let (verified, nbf) = self.check_claims(&claims, key_id)?;
        check_time(verified.expires, nbf, now, self.leeway)?;
        Ok((verified, nbf))
    }

    /// RFC 8725 §3.1: the token's `alg` only chooses among the configured algorithms.
    fn allowed_algorithm(&self, alg: &str) -> Result<Algorithm, JwtError> {
        // `none` (any spelling) and unknown names fail to parse.
        let alg = Algorithm::from_str(alg).map_err(|_| JwtError::AlgorithmNotAllowed)?;
        if !self.algorithms.contains(&alg) {
            return Err(JwtError::AlgorithmNotAllowed);
        }
        if alg.family() == AlgorithmFamily::Hmac && self.hmac.is_none() {
            return Err(JwtError::AlgorithmNotAllowed);
        }
        Ok(alg)
    }

    /// Finds the key(s) for `alg` and `kid` and checks the signature. Returns the `kid` of the
    /// key that verified.
    async fn check_signature(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        signed: &[u8],
        signature: &[u8],
    ) -> Result<Option<String>, JwtError> {
        if alg.family() == AlgorithmFamily::Hmac {
            // The shared secret is the only HMAC key: never a JWKS key, so an RSA public key
            // can never serve as an HMAC secret (the RS256 -> HS256 confusion, RFC 8725 §2.1).
            let key = self.hmac.as_ref().ok_or(JwtError::AlgorithmNotAllowed)?;
            return if self.signature_valid(alg, key, signed, signature) {
                Ok(None)
            } else {
                Err(JwtError::BadSignature)
            };
        }
        let mut keys = self.keys.load_full();
        let mut candidates = select_keys(&keys, alg, kid);
        if candidates == Err(JwtError::UnknownKey) {
            if let Some(remote) = &self.remote {
                self.refetch(remote, Trigger::UnknownKid).await;
                keys = self.keys.load_full();
                candidates = select_keys(&keys, alg, kid);
            }
        }
        for i in candidates? {
            let Some(key) = keys.keys.get(i) else {
                continue;
            };
            if self.signature_valid(alg, &key.key, signed, signature) {
                return Ok(key.kid.clone());
            }
        }
        Err(JwtError::BadSignature)
    }

    fn signature_valid(
        &self,
        alg: Algorithm,
        key: &DecodingKey,
        signed: &[u8],
        signature: &[u8],
    ) -> bool {
        self.signature_checks.fetch_add(1, Ordering::Relaxed);
        // The factory refuses a key of another family than `alg` (InvalidKeyFormat).
        let provider = &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
        match (provider.verifier_factory)(&alg, key) {
            Ok(verifier) => verifier.verify(signed, &signature.to_vec()).is_ok(),
            Err(_) => false,
        }
    }

    /// RFC 7519 §4.1: `iss`, `aud` and `exp` are required here, `nbf` optional; then the
    /// user, groups and scopes. Returns the identity and `nbf`.
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        key_id: Option<String>,
    ) -> Result<(Verified, Option<u64>), JwtError> {
        // RFC 7519 §4.1.1, RFC 8725 §3.8: the issuer is compared as a case-sensitive string.
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.issuer => {}
            Some(Value::String(_)) => return Err(JwtError::WrongIssuer),
            _ => return Err(JwtError::MissingClaim("iss")),
        }
        // RFC 7519 §4.1.3: a string or an array of strings; one must name us (RFC 8725 §3.9).
        let ours = |a: &str| self.audiences.iter().any(|mine| mine == a);
        match claims.get("aud") {
            Some(Value::String(aud)) if ours(aud) => {}
            Some(Value::String(_)) => return Err(JwtError::WrongAudience),
            Some(Value::Array(list)) if list.iter().all(Value::is_string) => {
                if !list.iter().filter_map(Value::as_str).any(ours) {
                    return Err(JwtError::WrongAudience);
                }
            }
            _ => return Err(JwtError::MissingClaim("aud")),
        }
        let expires = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or(JwtError::MissingClaim("exp"))?;
        let nbf = match claims.get("nbf") {
            None => None,
            Some(v) => Some(numeric_date(v).ok_or(JwtError::Malformed)?),
        };
        let user = match claims.get(&self.user_claim) {
            Some(Value::String(u)) if !u.is_empty() && !u.chars().any(char::is_control) => {
                u.clone()
            }
            _ => return Err(JwtError::MissingClaim(self.user_label)),
        };
        let groups = match &self.groups_claim {
            Some(name) => match claims.get(name) {
                None | Some(Value::Null) => Vec::new(),
                // One string is one group.
                Some(Value::String(g)) if g.is_empty() => Vec::new(),
                Some(Value::String(g)) => vec![clean(g)?],
                Some(Value::Array(list)) => list
                    .iter()
                    .map(|g| g.as_str().ok_or(JwtError::Malformed).and_then(clean))
                    .collect::<Result<_, _>>()?,
                Some(_) => return Err(JwtError::Malformed),
            },
            None => Vec::new(),
        };
        // RFC 8693 §4.2: `scope` is space-delimited; Microsoft-style `scp` may be an array.
        let scope = claims.get(&self.scope_claim).or_else(|| claims.get("scp"));
        let scopes = match scope {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(clean)
                .collect::<Result<_, _>>()?,
            Some(Value::Array(list)) => list
                .iter()
                .map(|s| s.as_str().ok_or(JwtError::Malformed).and_then(clean))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(JwtError::Malformed),
        };
        Ok((
            Verified {
                user,
                groups,
                scopes,
                expires,
                key_id,
            },
            nbf,
        ))
    }

    /// Fetches the URL JWKS again. An unknown-`kid` refetch happens at most once per
    /// `min_refetch`, and callers that queued behind a running fetch share its result. A failed
    /// fetch keeps the old keys.
    async fn refetch(&self, remote: &Remote, trigger: Trigger) {
        let seen = remote.attempts.load(Ordering::SeqCst);
        let mut last = remote.last_unknown_kid_fetch.lock().await;
        if remote.attempts.load(Ordering::SeqCst) != seen {
            return;
        }
        if trigger == Trigger::UnknownKid {
            if let Some(at) = *last {
                if at.elapsed() < remote.min_refetch {
                    return;
                }
            }
            *last = Some(Instant::now());
        }
        let fetched = remote.fetch(&self.algorithms, false).await;
        remote.attempts.fetch_add(1, Ordering::SeqCst);
        match fetched {
            Ok(keys) => self.replace_keys(keys),
            Err(e) => tracing::warn!(
                url = %remote.url,
                reason = ?trigger,
                "cannot fetch JWKS, keeping the {} keys we have: {e}",
                self.keys.load().keys.len()
            ),
        }
    }

    fn replace_keys(&self, new: KeySet) {
        let old = self.keys.load_full();
        let has = |set: &KeySet, k: &Key| set.keys.iter().any(|n| n.fingerprint == k.fingerprint);
        let removed = old.keys.iter().filter(|k| !has(&new, k)).count();
        let added = new.keys.iter().filter(|k| !has(&old, k)).count();
        self.keys.store(Arc::new(new));
        if removed > 0 {
            // After the store: whoever reads the new epoch also sees the new keys.
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
        if removed > 0 || added > 0 {
            tracing::info!(added, removed, "JWKS keys changed");
        }
    }
}

impl Remote {
    fn new(url: &str, min_refetch: Duration) -> Result<Remote, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("JWKS URL {url} is not a URL: {e}"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => {
                return Err(format!(
                    "JWKS URL {url} must start with https:// or http://"
                ))
            }
        };
        let Some(host) = uri.host() else {
            return Err(format!("JWKS URL {url} has no host"));
        };
        let loopback = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !https && !loopback {
            tracing::warn!(
                url,
                "the JWKS URL is plain http: anyone on the path can replace the signing keys"
            );
        }
        let tls = tls_config(https)?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Ok(Remote {
            url: url.to_owned(),
            uri,
            client,
            min_refetch,
            last_unknown_kid_fetch: tokio::sync::Mutex::new(None),
            attempts: AtomicU64::new(0),
        })
    }

    /// One GET of the JWKS, within [`FETCH_TIMEOUT`] and [`MAX_JWKS_BYTES`].
    async fn fetch(&self, allowed: &[Algorithm], at_start: bool) -> Result<KeySet, String> {
        let request = http::Request::get(self.uri.clone())
            .header(ACCEPT, "application/jwk-set+json, application/json")
            .header(USER_AGENT, concat!("authgate/", env!("CARGO_PKG_VERSION")))
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let body = tokio::time::timeout(FETCH_TIMEOUT, async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| error_chain(&e))?;
            if response.status() != StatusCode::OK {
                return Err(format!("the server answered {}", response.status()));
            }
            Limited::new(response.into_body(), MAX_JWKS_BYTES)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .map_err(|e| format!("reading the body: {e} (limit {MAX_JWKS_BYTES} bytes)"))
        })
        .await
        .map_err(|_| format!("no complete answer within {} s", FETCH_TIMEOUT.as_secs()))??;
        parse_jwks(&body, allowed, at_start).map_err(|e| match e {
            JwksError::NotAJwkSet(why) => format!("not a JWK Set (RFC 7517 §5): {why}"),
            JwksError::NoUsableKey => format!(
                "the JWKS has no usable key for the allowed algorithms ({})",
                alg_list(allowed)
            ),
        })
    }
}

/// Fetches the URL JWKS every `every`, for as long as the verifier lives.
fn spawn_refresh(verifier: &Arc<JwtVerifier>, every: Duration) {
    let weak: Weak<JwtVerifier> = Arc::downgrade(verifier);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // Dropped verifier: the task ends at its next tick.
            let Some(verifier) = weak.upgrade() else {
                break;
            };
            if let Some(remote) = &verifier.remote {
                verifier.refetch(remote, Trigger::Schedule).await;
            }
        }
    });
}

/// rustls (ring) with the system's trust store, as `doctor::tls` builds it.
fn tls_config(https: bool) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    if https {
        // Certificates the system store cannot parse are skipped, as curl does.
        let native = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(native.certs);
        if added == 0 {
            tracing::warn!(
                "no trusted certificate in the system store: the https JWKS URL will fail"
            );
        }
    }
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The settings `new` cannot work with, in the operator's words.
fn check_settings(s: &JwtSettings) -> Result<(), String> {
    if s.issuer.is_empty() {
        return Err("the JWT issuer is empty: set the `iss` value tokens must carry".into());
    }
    if s.audiences.is_empty() || s.audiences.iter().any(String::is_empty) {
        // RFC 8725 §3.9: the audience is what keeps a token for another service out.
        return Err("at least one non-empty JWT audience is needed".into());
    }
    if s.algorithms.is_empty() {
        return Err("no JWT algorithm is allowed".into());
    }
    for alg in &s.algorithms {
        if matches!(alg, Algorithm::HS384 | Algorithm::HS512) {
            return Err(format!(
                "JWT algorithm {alg:?} is not supported: the only shared-secret algorithm is HS256"
            ));
        }
    }
    if s.algorithms.contains(&Algorithm::HS256) {
        match &s.hs256_secret {
            None => return Err("HS256 is allowed but no hs256_secret is set".into()),
            // RFC 7518 §3.2: "A key of the same size as the hash output (for instance, 256
            // bits for "HS256") or larger MUST be used".
            Some(secret) if secret.expose().len() < MIN_HS256_SECRET_BYTES => {
                return Err(format!(
                    "hs256_secret is shorter than {MIN_HS256_SECRET_BYTES} bytes (RFC 7518 §3.2)"
                ))
            }
            Some(_) => {}
        }
    }
    let asymmetric = s
        .algorithms
        .iter()
        .any(|a| a.family() != AlgorithmFamily::Hmac);
    if asymmetric && s.jwks == JwksSource::None {
        return Err(format!(
            "JWT algorithms {} need a JWKS (file or URL), and none is set",
            alg_list(&s.algorithms)
        ));
    }
    Ok(())
}

enum JwksError {
    NotAJwkSet(String),
    NoUsableKey,
}

/// Parses a JWK Set and keeps the keys that can verify one of `allowed`. A key that cannot
/// (an encryption key, an unknown type, too short, `oct`) is skipped with a log line, so that
/// one odd key does not lose the others.
fn parse_jwks(bytes: &[u8], allowed: &[Algorithm], at_start: bool) -> Result<KeySet, JwksError> {
    #[derive(Deserialize)]
    struct RawSet {
        keys: Vec<Value>,
    }
    let raw: RawSet =
        serde_json::from_slice(bytes).map_err(|e| JwksError::NotAJwkSet(e.to_string()))?;
    let mut keys = Vec::new();
    for (index, value) in raw.keys.into_iter().enumerate() {
        let kid = value.get("kid").and_then(Value::as_str).map(str::to_owned);
        let usable = serde_json::from_value::<Jwk>(value)
            .map_err(|e| format!("not a JWK: {e}"))
            .and_then(|jwk| usable_key(&jwk, allowed));
        match usable {
            Ok(key) => keys.push(key),
            Err(why) if at_start => {
                tracing::warn!(index, kid = ?kid, "JWKS key skipped: {why}")
            }
            Err(why) => tracing::debug!(index, kid = ?kid, "JWKS key skipped: {why}"),
        }
    }
    if keys.is_empty() {
        return Err(JwksError::NoUsableKey);
    }
    Ok(KeySet { keys })
}

/// The verification key and its algorithms, or why the JWK cannot serve.
fn usable_key(jwk: &Jwk, allowed: &[Algorithm]) -> Result<Key, String> {
    // RFC 7517 §4.2-4.3: a key meant for encryption does not verify signatures.
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(other) => return Err(format!("its use is {other:?}, not sig")),
    }
    if let Some(ops) = &jwk.common.key_operations {
        if !ops.contains(&KeyOperations::Verify) {
            return Err("its key_ops do not include verify".into());
        }
    }
    let fits: &[Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(rsa) => {
            let n = URL_SAFE_NO_PAD
                .decode(&rsa.n)
                .map_err(|_| "its modulus is not base64url".to_owned())?;
            let bits = significant_bits(&n);
            if bits < MIN_RSA_BITS {
                return Err(format!(
                    "RSA key of {bits} bits; at least {MIN_RSA_BITS} are needed (RFC 7518 §3.3)"
                ));
            }
            AlgorithmFamily::Rsa.algorithms()
        }
        AlgorithmParameters::EllipticCurve(ec) => {
            let (alg, len) = match ec.curve {
                EllipticCurve::P256 => (&[Algorithm::ES256], 32),
                EllipticCurve::P384 => (&[Algorithm::ES384], 48),
                ref other => return Err(format!("curve {other:?} is not supported")),
            };
            let coordinate_ok = |c: &str| URL_SAFE_NO_PAD.decode(c).is_ok_and(|b| b.len() == len);
            if !coordinate_ok(&ec.x) || !coordinate_ok(&ec.y) {
                return Err("its coordinates do not fit the curve".into());
            }
            alg
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            if okp.curve != EllipticCurve::Ed25519 {
                return Err(format!("curve {:?} is not supported", okp.curve));
            }
            // Exactly 32 bytes (RFC 8037 §2): jsonwebtoken's EdDSA verifier slices `[..32]`.
            if !URL_SAFE_NO_PAD.decode(&okp.x).is_ok_and(|b| b.len() == 32) {
                return Err("its Ed25519 public key is not 32 bytes".into());
            }
            &[Algorithm::EdDSA]
        }
        // Shared secrets come only from hs256_secret, never from a key set.
        AlgorithmParameters::OctetKey(_) => return Err("oct (shared secret) key".into()),
        // `Other`, and whatever a later jsonwebtoken adds (the enum is non-exhaustive).
        _ => return Err("unsupported key type".into()),
    };
    let algs: Vec<Algorithm> = match jwk.common.key_algorithm {
        // RFC 8725 §3.1: a key with `alg` verifies that algorithm only.
        Some(key_alg) => {
            let alg = Algorithm::try_from(key_alg)
                .map_err(|_| format!("its alg {key_alg} is not a signature algorithm"))?;
            if !fits.contains(&alg) {
                return Err(format!("its alg {key_alg} does not fit its key type"));
            }
            vec![alg]
        }
        None => fits.to_vec(),
    };
    let algs: Vec<Algorithm> = algs.into_iter().filter(|a| allowed.contains(a)).collect();
    if algs.is_empty() {
        return Err("none of its algorithms is allowed".into());
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable: {e}"))?;
    let mut hash = Sha256::new();
    hash.update(jwk.common.key_id.as_deref().unwrap_or("").as_bytes());
    hash.update([0]);
    hash.update(format!("{algs:?}").as_bytes());
    hash.update(serde_json::to_vec(&jwk.algorithm).unwrap_or_default());
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        algs,
        key,
        fingerprint: hash.finalize().into(),
    })
}

/// The indices of the keys to try: those with the token's `kid` when it has one, else those
/// that fit `alg` (at most [`MAX_KEYS_WITHOUT_KID`]).
fn select_keys(set: &KeySet, alg: Algorithm, kid: Option<&str>) -> Result<Vec<usize>, JwtError> {
    let fitting = |k: &Key| k.algs.contains(&alg);
    match kid {
        Some(kid) => {
            let named: Vec<usize> = (0..set.keys.len())
                .filter(|&i| {
                    set.keys
                        .get(i)
                        .is_some_and(|k| k.kid.as_deref() == Some(kid))
                })
                .collect();
            if named.is_empty() {
                return Err(JwtError::UnknownKey);
            }
            let usable: Vec<usize> = named
                .into_iter()
                .filter(|&i| set.keys.get(i).is_some_and(fitting))
                .collect();
            if usable.is_empty() {
                // The key exists but is not for this algorithm (RFC 8725 §3.1).
                return Err(JwtError::AlgorithmNotAllowed);
            }
            Ok(usable)
        }
        None => {
            let usable: Vec<usize> = (0..set.keys.len())
                .filter(|&i| set.keys.get(i).is_some_and(fitting))
                .take(MAX_KEYS_WITHOUT_KID)
                .collect();
            if usable.is_empty() {
                return Err(JwtError::UnknownKey);
            }
            Ok(usable)
        }
    }
}

/// RFC 7519 §4.1.4-4.1.5, with the leeway RFC 7519 allows ("a small leeway, usually no more
/// than a few minutes"): expired when `exp + leeway <= now`, not yet valid when
/// `nbf - leeway > now`.
fn check_time(exp: u64, nbf: Option<u64>, now: u64, leeway: u64) -> Result<(), JwtError> {
    if exp.saturating_add(leeway) <= now {
        return Err(JwtError::Expired);
    }
    if let Some(nbf) = nbf {
        if nbf > now.saturating_add(leeway) {
            return Err(JwtError::NotYetValid);
        }
    }
    Ok(())
}

/// RFC 7519 §2 NumericDate: seconds since the epoch, possibly with a fraction (dropped).
fn numeric_date(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite() && *f >= 0.0 && *f < u64::MAX as f64)
                .map(|f| f.floor() as u64)
        }),
        _ => None,
    }
}

/// A group or scope name as it will be compared and forwarded: no control characters.
fn clean(name: &str) -> Result<String, JwtError> {
    if name.chars().any(char::is_control) {
        return Err(JwtError::Malformed);
    }
    Ok(name.to_owned())
}

/// base64url (no padding, RFC 7515 §2) then JSON.
fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JwtError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed)
}

/// RFC 7515 §4.1.9: `typ` is a media type, compared case-insensitively, with "application/"
/// implied when it has no '/'.
fn media_type(typ: &str) -> String {
    let lower = typ.trim().to_ascii_lowercase();
    if lower.contains('/') {
        lower
    } else {
        format!("application/{lower}")
    }
}

fn significant_bits(big_endian: &[u8]) -> usize {
    let mut bytes = big_endian.iter().skip_while(|b| **b == 0);
    match bytes.next() {
        None => 0,
        Some(first) => (8 - first.leading_zeros() as usize) + 8 * bytes.count(),
    }
}

fn alg_list(algs: &[Algorithm]) -> String {
    algs.iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An error and its sources, for the operator ("client error (Connect): tcp connect error:
/// Connection refused").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Mutex;

    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    use super::*;

    // TEST KEYS ONLY, generated for these tests with `openssl genpkey`; they protect nothing.
    const TEST_RSA_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQC0CZojKhTP06dr
XEqQi4AKdPd9ji/scJnOCA29E9cw2w5huwRaZLrPJOdcnXpQhz0aDGYYQErhj/Tg
v+hyqSOYe79BH6wJW7ZiQ5RVIs5xkEJe8SbrGQWUPITiyoQ9dkcgGPaBH/9PTsXd
5fUG+PCZi56PKUEvJ4IF+XstWzexYoeRbPjVFDSiHJPI820vByhEJw17LcLO2Mss
NGE9GOQ4G5qPMIKuwD7f3sSwn93Zud/LX2TE0cyVM562KBn4EYyBbmfsrkvyF/ct
6CWxT8n5L97b2K4zi1wwsExsBuJqjbQOxRuAxYSPoGvRrTHm/v7p2iBg0O5/sLYe
pkYLgkmxAgMBAAECggEAU44HRp2flgptL0LgajAL5w580/z62dkyUG/lbGR6YPax
OIMylH8eQcenRpDhdOEm5uFtOoEQH5oPdIUsLJa56ek4jFFWJuu0++rQOyjRtdvV
KbnyrXZp4++oXpbNg7bScJ+VO70tYNG2u/Ke4rMC+sfU+S0Uzv0fd4Ve+OBWOxCv
Z1uIGEk/LRPRQmaQm3DaLZTPHZ+VGbsrQV72dClqvIhyqADAaUEMHHzpqwMPlAcR
wLD3kLjdhITMB+nXslb1pvB9XOdWd5RzMtA/yJfsbWeO1wfo8maMBfL3AjZ4cIZN
yfDyV6bdnjW6UIdvenglWw4F3t1u2fBlF5ClmCZPBwKBgQDd8eT6D1yxJ20/M0K6
iGt2Vrqr5W2Zzt4D+Q/43GfHyu2ryUIGM3TPWmzealqPhCQ80wsud8gyBYSpYnlK
+CFZGeKKWZzUcUbs/PhFgp81Bd7JsLVhHSrGp7yKaTI81XkfsObEevwSkW9IeA+O
SyAw/IZGNafrRwtVTT8u9YLNAwKBgQDPqZCGp3BaugzvQOWkt4FTBlmGpyeiSXoJ
E9JVSZWvlecB3OBfQAqAXw9hSCmeSM1rqDdkFiXvz7g+69io9n9g3lOigsE+WH0E
Y8mNqnCOLBVtRSxMf/UKIvh4uqHA6nMVozzLbgbX4aOufEHO1pFZwu3byRo1uzi4
xO5moVeuOwKBgQC/RdiwKM0ZX4EnFmZLm4YBVn1J50+tXjq38c1yC4DlDl4Fzky4
S2A/0w5AICgrxxXz1W2tfk1pzpel4tflZDJZN5Wk5dXiwDz/wIO2Y/wRFh4Kc9/c
8eYLjkNOhZpmExNv3GUEr3jOB8iAC/hcCSKVFQwjNdqhSXja6tepAKzZQQKBgHMf
YcwEjzj846bPp3/Fa6CHaKJJkKNbcJgPsQ8vGBibVdGmjYzAiBHaoUAhLVFesuL4
Ap0t2iI0WcQoI5in7r3ZAyyYqGDT1ZrVZytuTa/DqK1HJ+PRHBtef7kOXhYA44Qf
VtjASnLr2D4nDKSKN1I3yn2J40neXPex1Sh4UY95AoGBAL/HYk0kyafZ5/Dq9542
OnVGedsy5A4KQg9/RG5LCqB2qPzkzKqvcuquahqlBOxI6pamxXzHQV9TrCmyR/TQ
S3Aq0JKptD3X7N2MLmTw+LW5WxJRzbbO4hR8ZVSFoaIZYxsSJ417PuqCFUhr0+Kt
I/2eUIBSWizJn6/xnIDca18T
-----END PRIVATE KEY-----
";
    /// The public half of `TEST_RSA_PRIVATE_PEM`, as an identity provider would publish it.
    const TEST_RSA_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAtAmaIyoUz9Ona1xKkIuA
CnT3fY4v7HCZzggNvRPXMNsOYbsEWmS6zyTnXJ16UIc9GgxmGEBK4Y/04L/ocqkj
mHu/QR+sCVu2YkOUVSLOcZBCXvEm6xkFlDyE4sqEPXZHIBj2gR//T07F3eX1Bvjw
mYuejylBLyeCBfl7LVs3sWKHkWz41RQ0ohyTyPNtLwcoRCcNey3CztjLLDRhPRjk
OBuajzCCrsA+397EsJ/d2bnfy19kxNHMlTOetigZ+BGMgW5n7K5L8hf3LeglsU/J
+S/e29iuM4tcMLBMbAbiao20DsUbgMWEj6Br0a0x5v7+6dogYNDuf7C2HqZGC4JJ
sQIDAQAB
-----END PUBLIC KEY-----
";
    /// A key the identity provider never published.
    const TEST_ATTACKER_RSA_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQCXotBo0Xbtzsg8
T8tdH/iRcDiB58QHWEuO7nqACATiAifG5y5EzIwOMQ8EWv3P37WNED5b5nDKfILM
CQQqWeu4iLCQXFGsA0MwB6zDg9lU0br6luek9wAPmzeGHDVTHh8n9PiepYC1azWF
7YV3w29tIzysAVENLVJKs0As5teF1p+5PLFZfJrlliAyUSa5cabAbb5fravvcPLN
8fymK7MSBwA7IYBIGLz4OVoPQkcmayCmzMRmU01H33kmY3QyvzqPeCHHCf11Z95P
8Bwr0aSscF80/Cxve5kIOqsNSyj97n6iPkbjIcu+zRmNBRnaN2QGi7lCXQFT2q7i
SYNW4545AgMBAAECggEABINRfZUiW4CIgBcF3+8oKDf1TpR1xpwvn4Dkf3P9pTZY
NbjCrUSDNJbsMf59SFcJobmmiXipybT79ZOdHp+Pfu3+h0VgHuT39nF8CFOfv8EA
Nh4Qpd2+EDjX5bNoOOGQHtHRJnOZiYy3ypUfoEleQxrF3v6pCWHcbaG5Gr0CFBcb
6afDIoj1Nmj8iqkLHD83Rh0VFNWXGcIiJxjTjQnPuXCp2JO0uXMSyuNQhW8O/J4c
n14TW1AbbJEVborZD/SGTOhHfxi6OERY6C4AApKRI27j/KKFoORNc/hvnBoOyUna
7AVAEzFn2Z2Nj0kJsrRRBR4T0J2JQoQMYQ0UxNEnSwKBgQDQko1b60KL9/MBrzMC
hDOA7Wbt7CgdlLpPwNffuH0r9edkK2jx5w1d8Krms/BfjrGRdqrjtPAW+3kyz8lx
MdrV7Hzvb+Hj00VKEpkixH1KT6/AGO++kSyu5m26mJs8F5RxtUsqkQiU7RznGtgC
xcR/EioSqWklGz6gbEo3ElZh4wKBgQC6Hd5IVRSeumyXgQGwzXK1wrR+9PnI+gSs
/u4PS97bu2h7BVhxWk/JFVLPZRZk2J0+aEfYPfWWrXTovdt9rlNUgISgV8iTTSSX
MGyKKT0o8oDHmKrxUzGqoznda3pTOmXV0UycCGex7WT3/v4ryQtw8I/9hjQfadpY
/zkBVpvKMwKBgQCdVK9FEyXTp2mrb5ku4MJpEqt99ZIdHj+cQX+VxvjE3G17ZjN3
pi6zGgQQmtNLgbv4Wmd19NrWu0MlTRBLTqwgio+DngXrcUbnJThWvZk1IP8WDLls
Kt5l4HQNOWh/39meHH9i0JyEmoge3GTtUnly0STjht9FmlOXd5hUCoUWuQKBgEJY
V16thZY3mnI/eJzP/+4vJCyFo20zQutwTOiDAUSO/+WquCZgLUTfJw/rVxpH5XXT
spixLZSy7JPy6gVZWTcsQRrvb/6iZ0LF7ksp/DVWjPWZxIYWRAQx/3Sg1ZBJpveb
jpWooV5Z475L1ctB9aQi/RFA/9+a2k0TXfzOJOblAoGBAJLkTpEsxDgRvih7am73
FDMh/t4naEfpV5OLrB8kgK80laJLHhcyiPOJX7Gl5GTuWzDeANoGC3SHlXV+WviS
1vQKvWQ3S46v3x7De17CjNN85VWfywffd56IGPU2OSNZMLpJxTzBh3aT/Qwu6WM0
DPjX4gtfXTF0u/Secr3WxQs5
-----END PRIVATE KEY-----
";
    const TEST_EC_P256_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgnzoJet0u4BO1sFzd
qw4LhnL+VEl05HnR6H25nX+eD1GhRANCAAR2PRrHHwQQDtkqitSam62M8xDpFBU+
mbFuviVrQDT8D/nlQQ3bYqKSCTUvi+vxYz0RpUcy7GoK/+Eq7oDjgeqE
-----END PRIVATE KEY-----
";
    const TEST_ED25519_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEINngfsSZRishpO5g9Hfp1PevlknU0+p4yNvQxOAr/ais
-----END PRIVATE KEY-----
";
    const TEST_HS256_SECRET: &str = "test-only-shared-secret-0123456789abcdef";

    const ISS: &str = "https://idp.example.test";
    const AUD: &str = "authgate";
    const NOW: u64 = 1_700_000_000;

    fn rsa() -> EncodingKey {
        EncodingKey::from_rsa_pem(TEST_RSA_PRIVATE_PEM.as_bytes()).unwrap()
    }
    fn attacker() -> EncodingKey {
        EncodingKey::from_rsa_pem(TEST_ATTACKER_RSA_PRIVATE_PEM.as_bytes()).unwrap()
    }
    fn ec() -> EncodingKey {
        EncodingKey::from_ec_pem(TEST_EC_P256_PRIVATE_PEM.as_bytes()).unwrap()
    }
    fn ed() -> EncodingKey {
        EncodingKey::from_ed_pem(TEST_ED25519_PRIVATE_PEM.as_bytes()).unwrap()
    }

    /// The public JWK of `key`, with `kid`, and with `alg` unless `alg_in_jwk` is false.
    fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str, alg_in_jwk: bool) -> Value {
        let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        if !alg_in_jwk {
            jwk.common.key_algorithm = None;
        }
        serde_json::to_value(jwk).unwrap()
    }

    /// The identity provider's key set: RSA bound to RS256, the same RSA key without `alg`,
    /// P-256, Ed25519.
    fn idp_keys() -> Vec<Value> {
        vec![
            jwk(&rsa(), Algorithm::RS256, "rsa-1", true),
            jwk(&rsa(), Algorithm::RS256, "rsa-any", false),
            jwk(&ec(), Algorithm::ES256, "ec-1", true),
            jwk(&ed(), Algorithm::EdDSA, "ed-1", true),
        ]
    }

    fn jwks(keys: &[Value]) -> String {
        json!({ "keys": keys }).to_string()
    }

    fn settings(jwks: JwksSource) -> JwtSettings {
        JwtSettings {
            issuer: ISS.into(),
            audiences: vec![AUD.into(), "other-service".into()],
            algorithms: vec![
                Algorithm::RS256,
                Algorithm::PS256,
                Algorithm::ES256,
                Algorithm::EdDSA,
            ],
            jwks,
            hs256_secret: None,
            leeway: Duration::from_secs(30),
            typ: None,
            user_claim: "sub".into(),
            groups_claim: Some("groups".into()),
            scope_claim: "scope".into(),
            jwks_refresh: Duration::from_secs(600),
            jwks_min_refetch: Duration::from_secs(30),
            cache_capacity: 1000,
        }
    }

    /// A verifier over `keys` in a JWKS file, with `tweak` applied to the settings.
    async fn verifier_with(
        keys: &[Value],
        tweak: impl FnOnce(&mut JwtSettings),
    ) -> Result<Arc<JwtVerifier>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, jwks(keys)).unwrap();
        let mut s = settings(JwksSource::File(path));
        tweak(&mut s);
        JwtVerifier::new(s).await
    }

    async fn verifier() -> Arc<JwtVerifier> {
        verifier_with(&idp_keys(), |_| {}).await.unwrap()
    }

    fn claims() -> Value {
        json!({
            "iss": ISS,
            "aud": AUD,
            "sub": "alice",
            "exp": NOW + 600,
            "iat": NOW,
            "groups": ["admins", "ops"],
            "scope": "read write",
        })
    }

    /// `claims()` with `changes` merged in; a `null` removes the claim.
    fn claims_with(changes: Value) -> Value {
        let mut c = claims();
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    }

    fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, key).unwrap()
    }

    /// A token with a header and payload written by hand, signed with `key`.
    fn sign_raw(header: &str, payload: &str, alg: Algorithm, key: &EncodingKey) -> String {
        let message = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), key, alg).unwrap();
        format!("{message}.{signature}")
    }

    fn rs256(claims: &Value) -> String {
        sign(Algorithm::RS256, Some("rsa-1"), claims, &rsa())
    }

    #[tokio::test]
    async fn accepts_rs256_ps256_es256_and_eddsa() {
        let v = verifier().await;
        let ok = v.verify(&rs256(&claims()), NOW).await.unwrap();
        assert_eq!(
            ok,
            Verified {
                user: "alice".into(),
                groups: vec!["admins".into(), "ops".into()],
                scopes: vec!["read".into(), "write".into()],
                expires: NOW + 600,
                key_id: Some("rsa-1".into()),
            }
        );
        for (alg, kid, key) in [
            (Algorithm::PS256, "rsa-any", rsa()),
            (Algorithm::ES256, "ec-1", ec()),
            (Algorithm::EdDSA, "ed-1", ed()),
        ] {
            let token = sign(alg, Some(kid), &claims(), &key);
            let got = v.verify(&token, NOW).await;
            assert_eq!(got.map(|v| v.key_id), Ok(Some(kid.to_owned())), "{alg:?}");
        }
    }

    #[tokio::test]
    async fn a_token_without_kid_is_tried_against_the_keys_that_fit_its_alg() {
        let v = verifier().await;
        let token = sign(Algorithm::ES256, None, &claims(), &ec());
        assert_eq!(
            v.verify(&token, NOW).await.map(|v| v.key_id),
            Ok(Some("ec-1".into()))
        );
        let token = sign(Algorithm::RS256, None, &claims(), &rsa());
        assert!(v.verify(&token, NOW).await.is_ok());
        let token = sign(Algorithm::RS256, None, &claims(), &attacker());
        assert_eq!(v.verify(&token, NOW).await, Err(JwtError::BadSignature));
    }

    #[tokio::test]
    async fn exp_and_nbf_are_checked_with_the_leeway_against_the_given_clock() {
        let v = verifier().await;
        let at = |changes: Value| rs256(&claims_with(changes));
        // leeway 30 s: valid while now < exp + 30.
        assert!(v.verify(&at(json!({"exp": NOW - 29})), NOW).await.is_ok());
        assert_eq!(
            v.verify(&at(json!({"exp": NOW - 30})), NOW).await,
            Err(JwtError::Expired)
        );
        assert_eq!(
            v.verify(&at(json!({"exp": NOW - 3600})), NOW).await,
            Err(JwtError::Expired)
        );
        // valid once now >= nbf - 30.
        assert!(v.verify(&at(json!({"nbf": NOW + 30})), NOW).await.is_ok());
        assert_eq!(
            v.verify(&at(json!({"nbf": NOW + 31})), NOW).await,
            Err(JwtError::NotYetValid)
        );
        // The clock is the caller's: a token long expired in real time is fine at `now`.
        let old = at(json!({"exp": 1_000_600, "nbf": 1_000_000}));
        assert!(v.verify(&old, 1_000_100).await.is_ok());
        // NumericDate may have a fraction (RFC 7519 §2).
        assert!(v
            .verify(&at(json!({"exp": (NOW + 60) as f64 + 0.5})), NOW)
            .await
            .is_ok());

        let strict = verifier_with(&idp_keys(), |s| s.leeway = Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(
            strict.verify(&at(json!({"exp": NOW})), NOW).await,
            Err(JwtError::Expired)
        );
        assert!(strict
            .verify(&at(json!({"exp": NOW + 1})), NOW)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn issuer_must_match_exactly() {
        let v = verifier().await;
        for iss in [
            json!("https://evil.example"),
            json!(format!("{ISS}/")),
            json!(ISS.to_uppercase()),
        ] {
            let token = rs256(&claims_with(json!({ "iss": iss })));
            assert_eq!(
                v.verify(&token, NOW).await,
                Err(JwtError::WrongIssuer),
                "{iss}"
            );
        }
        for iss in [Value::Null, json!(7), json!([ISS])] {
            let token = rs256(&claims_with(json!({ "iss": iss })));
            assert_eq!(
                v.verify(&token, NOW).await,
                Err(JwtError::MissingClaim("iss")),
                "{iss}"
            );
        }
    }

    #[tokio::test]
    async fn audience_is_a_string_or_an_array_that_must_name_us() {
        let v = verifier().await;
        let with = |aud: Value| rs256(&claims_with(json!({ "aud": aud })));
        assert!(v.verify(&with(json!("other-service")), NOW).await.is_ok());
        assert!(v.verify(&with(json!(["x", AUD])), NOW).await.is_ok());
        assert_eq!(
            v.verify(&with(json!("someone-else")), NOW).await,
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            v.verify(&with(json!(["x", "y"])), NOW).await,
            Err(JwtError::WrongAudience)
        );
        assert_eq!(
            v.verify(&with(json!([])), NOW).await,
            Err(JwtError::WrongAudience)
        );
        for aud in [
            Value::Null,
            json!(1),
            json!([AUD, 2]),
            json!({ "aud": AUD }),
        ] {
            assert_eq!(
                v.verify(&with(aud.clone()), NOW).await,
                Err(JwtError::MissingClaim("aud")),
                "{aud}"
            );
        }
    }

    #[tokio::test]
    async fn alg_none_is_never_accepted() {
        let v = verifier().await;
        let payload = URL_SAFE_NO_PAD.encode(claims().to_string());
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
            for signature in ["", "c2lnbmF0dXJl"] {
                let token = format!("{header}.{payload}.{signature}");
                assert_eq!(
                    v.verify(&token, NOW).await,
                    Err(JwtError::AlgorithmNotAllowed),
                    "{alg} with signature {signature:?}"
                );
            }
        }
    }

    #[tokio::test]
    async fn an_algorithm_outside_the_allowed_list_is_refused() {
        let v = verifier_with(&idp_keys(), |s| s.algorithms = vec![Algorithm::RS256])
            .await
            .unwrap();
        let es = sign(Algorithm::ES256, Some("ec-1"), &claims(), &ec());
        assert_eq!(v.verify(&es, NOW).await, Err(JwtError::AlgorithmNotAllowed));
        let ps = sign(Algorithm::PS256, Some("rsa-any"), &claims(), &rsa());
        assert_eq!(v.verify(&ps, NOW).await, Err(JwtError::AlgorithmNotAllowed));
        let hs = sign(
            Algorithm::HS256,
            None,
            &claims(),
            &EncodingKey::from_secret(TEST_HS256_SECRET.as_bytes()),
        );
        assert_eq!(v.verify(&hs, NOW).await, Err(JwtError::AlgorithmNotAllowed));
        let es512 = sign_raw(
            r#"{"alg":"ES512","kid":"ec-1"}"#,
            &claims().to_string(),
            Algorithm::ES256,
            &ec(),
        );
        assert_eq!(
            v.verify(&es512, NOW).await,
            Err(JwtError::AlgorithmNotAllowed)
        );
    }

    /// The classic RS256 -> HS256 confusion (CVE-2015-9235 and its many descendants): the
    /// attacker signs with HMAC, using the published RSA public key as the secret.
    #[tokio::test]
    async fn rsa_public_key_as_hmac_secret_is_refused() {
        let confused = sign(
            Algorithm::HS256,
            Some("rsa-1"),
            &claims(),
            &EncodingKey::from_secret(TEST_RSA_PUBLIC_PEM.as_bytes()),
        );
        let v = verifier().await;
        assert_eq!(
            v.verify(&confused, NOW).await,
            Err(JwtError::AlgorithmNotAllowed)
        );
        // Even with HS256 allowed, the only HMAC key is the configured secret.
        let v = verifier_with(&idp_keys(), |s| {
            s.algorithms.push(Algorithm::HS256);
            s.hs256_secret = Some(Secret::from(TEST_HS256_SECRET));
        })
        .await
        .unwrap();
        assert_eq!(v.verify(&confused, NOW).await, Err(JwtError::BadSignature));
        let no_kid = sign(
            Algorithm::HS256,
            None,
            &claims(),
            &EncodingKey::from_secret(TEST_RSA_PUBLIC_PEM.as_bytes()),
        );
        assert_eq!(v.verify(&no_kid, NOW).await, Err(JwtError::BadSignature));
    }

    #[tokio::test]
    async fn a_key_verifies_only_the_algorithms_it_is_for() {
        let v = verifier().await;
        // rsa-1 says alg RS256: PS256 with it is refused; rsa-any has no alg and takes PS256.
        let ps_with_rs_key = sign(Algorithm::PS256, Some("rsa-1"), &claims(), &rsa());
        assert_eq!(
            v.verify(&ps_with_rs_key, NOW).await,
            Err(JwtError::AlgorithmNotAllowed)
        );
        // An EC token naming the RSA key.
        let es_with_rsa_kid = sign(Algorithm::ES256, Some("rsa-1"), &claims(), &ec());
        assert_eq!(
            v.verify(&es_with_rsa_kid, NOW).await,
            Err(JwtError::AlgorithmNotAllowed)
        );
    }

    #[tokio::test]
    async fn an_unknown_kid_is_refused() {
        let v = verifier().await;
        let token = sign(Algorithm::RS256, Some("rsa-2"), &claims(), &rsa());
        assert_eq!(v.verify(&token, NOW).await, Err(JwtError::UnknownKey));
    }

    /// RFC 8725 §3.10 / CVE-2018-0114: keys named or embedded in the token are not trusted.
    #[tokio::test]
    async fn keys_embedded_or_linked_in_the_token_are_ignored() {
        let v = verifier().await;
        let attacker_jwk = jwk(&attacker(), Algorithm::RS256, "attacker", true);
        let payload = claims().to_string();
        for kid in [Some("attacker"), Some("rsa-1"), None] {
            let mut header = json!({
                "alg": "RS256",
                "jwk": attacker_jwk,
                "jku": "http://127.0.0.1:9/jwks.json",
                "x5u": "http://127.0.0.1:9/cert.pem",
                "x5c": ["MIIB"],
            });
            if let Some(kid) = kid {
                header["kid"] = json!(kid);
            }
            let token = sign_raw(&header.to_string(), &payload, Algorithm::RS256, &attacker());
            let want = if kid == Some("attacker") {
                JwtError::UnknownKey
            } else {
                JwtError::BadSignature
            };
            assert_eq!(v.verify(&token, NOW).await, Err(want), "kid {kid:?}");
        }
    }

    #[tokio::test]
    async fn hs256_verifies_with_the_configured_secret_only() {
        let v = verifier_with(&[], |s| {
            s.jwks = JwksSource::None;
            s.algorithms = vec![Algorithm::HS256];
            s.hs256_secret = Some(Secret::from(TEST_HS256_SECRET));
        })
        .await
        .unwrap();
        let good = EncodingKey::from_secret(TEST_HS256_SECRET.as_bytes());
        let token = sign(Algorithm::HS256, Some("whatever"), &claims(), &good);
        let ok = v.verify(&token, NOW).await.unwrap();
        assert_eq!((ok.user.as_str(), ok.key_id), ("alice", None));
        let bad = EncodingKey::from_secret(b"another-secret-of-enough-length-0123456789");
        let token = sign(Algorithm::HS256, None, &claims(), &bad);
        assert_eq!(v.verify(&token, NOW).await, Err(JwtError::BadSignature));
        let rs = rs256(&claims());
        assert_eq!(v.verify(&rs, NOW).await, Err(JwtError::AlgorithmNotAllowed));
        assert!(!format!("{v:?}").contains(TEST_HS256_SECRET));
    }

    #[tokio::test]
    async fn exp_is_required() {
        let v = verifier().await;
        for exp in [Value::Null, json!("1700000600"), json!(-5), json!(true)] {
            let token = rs256(&claims_with(json!({ "exp": exp })));
            assert_eq!(
                v.verify(&token, NOW).await,
                Err(JwtError::MissingClaim("exp")),
                "{exp}"
            );
        }
        let token = rs256(&claims_with(json!({ "nbf": "soon" })));
        assert_eq!(v.verify(&token, NOW).await, Err(JwtError::Malformed));
    }

    #[tokio::test]
    async fn the_user_claim_must_be_a_plain_non_empty_string() {
        let v = verifier().await;
        for sub in [
            Value::Null,
            json!(""),
            json!(42),
            json!(["alice"]),
            json!("alice\r\nX-Admin: 1"),
        ] {
            let token = rs256(&claims_with(json!({ "sub": sub })));
            assert_eq!(
                v.verify(&token, NOW).await,
                Err(JwtError::MissingClaim("sub")),
                "{sub}"
            );
        }
        let v = verifier_with(&idp_keys(), |s| s.user_claim = "email".into())
            .await
            .unwrap();
        let token = rs256(&claims());
        assert_eq!(
            v.verify(&token, NOW).await,
            Err(JwtError::MissingClaim("user"))
        );
        let token = rs256(&claims_with(json!({ "email": "alice@example.test" })));
        assert_eq!(
            v.verify(&token, NOW).await.unwrap().user,
            "alice@example.test"
        );
    }

    #[tokio::test]
    async fn typ_is_compared_as_a_media_type() {
        let v = verifier_with(&idp_keys(), |s| s.typ = Some("at+jwt".into()))
            .await
            .unwrap();
        let with_typ = |typ: Option<&str>| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some("rsa-1".into());
            header.typ = typ.map(str::to_owned);
            jsonwebtoken::encode(&header, &claims(), &rsa()).unwrap()
        };
        for ok in [
            "at+jwt",
            "AT+JWT",
            "application/at+jwt",
            "Application/At+JWT",
        ] {
            assert!(v.verify(&with_typ(Some(ok)), NOW).await.is_ok(), "{ok}");
        }
        for bad in [
            Some("JWT"),
            Some("application/jwt"),
            Some("text/at+jwt"),
            None,
        ] {
            assert_eq!(
                v.verify(&with_typ(bad), NOW).await,
                Err(JwtError::WrongType),
                "{bad:?}"
            );
        }
        // Without a configured typ, any typ passes.
        assert!(verifier()
            .await
            .verify(&with_typ(Some("JWT")), NOW)
            .await
            .is_ok());
    }

    #[tokio::test]
    async fn scopes_come_from_a_string_an_array_or_scp() {
        let v = verifier().await;
        let scopes = |changes: Value| {
            let v = v.clone();
            async move {
                v.verify(&rs256(&claims_with(changes)), NOW)
                    .await
                    .map(|ok| ok.scopes)
            }
        };
        let s = |list: &[&str]| list.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            scopes(json!({"scope": "a  b c"})).await,
            Ok(s(&["a", "b", "c"]))
        );
        assert_eq!(
            scopes(json!({"scope": ["a", "b"]})).await,
            Ok(s(&["a", "b"]))
        );
        assert_eq!(
            scopes(json!({"scope": null, "scp": "x y"})).await,
            Ok(s(&["x", "y"]))
        );
        assert_eq!(
            scopes(json!({"scope": null, "scp": ["x"]})).await,
            Ok(s(&["x"]))
        );
        assert_eq!(
            scopes(json!({"scope": "a", "scp": "x"})).await,
            Ok(s(&["a"]))
        );
        assert_eq!(scopes(json!({"scope": null})).await, Ok(vec![]));
        assert_eq!(scopes(json!({"scope": 5})).await, Err(JwtError::Malformed));
        assert_eq!(
            scopes(json!({"scope": ["a", 5]})).await,
            Err(JwtError::Malformed)
        );

        let groups = |changes: Value| {
            let v = v.clone();
            async move {
                v.verify(&rs256(&claims_with(changes)), NOW)
                    .await
                    .map(|ok| ok.groups)
            }
        };
        assert_eq!(
            groups(json!({"groups": "admins"})).await,
            Ok(s(&["admins"]))
        );
        assert_eq!(groups(json!({"groups": null})).await, Ok(vec![]));
        assert_eq!(groups(json!({"groups": 1})).await, Err(JwtError::Malformed));
        assert_eq!(
            groups(json!({"groups": [{"id": 1}]})).await,
            Err(JwtError::Malformed)
        );
    }

    #[tokio::test]
    async fn a_cache_hit_checks_exp_and_nbf_again() {
        let v = verifier().await;
        let token = rs256(&claims_with(json!({"nbf": NOW})));
        assert!(v.verify(&token, NOW).await.is_ok());
        assert_eq!(v.signature_checks.load(Ordering::Relaxed), 1);
        assert!(v.verify(&token, NOW + 60).await.is_ok());
        assert_eq!(
            v.signature_checks.load(Ordering::Relaxed),
            1,
            "served from the cache"
        );
        assert_eq!(v.verify(&token, NOW + 3600).await, Err(JwtError::Expired));
        assert_eq!(
            v.verify(&token, NOW - 3600).await,
            Err(JwtError::NotYetValid)
        );
        assert_eq!(v.signature_checks.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn failures_are_not_cached() {
        let v = verifier().await;
        let forged = sign(Algorithm::RS256, Some("rsa-1"), &claims(), &attacker());
        for n in 1..=3 {
            assert_eq!(v.verify(&forged, NOW).await, Err(JwtError::BadSignature));
            assert_eq!(v.signature_checks.load(Ordering::Relaxed), n);
        }
        // A valid token verified too early is checked in full later.
        let early = rs256(&claims_with(json!({"nbf": NOW + 100})));
        assert_eq!(v.verify(&early, NOW).await, Err(JwtError::NotYetValid));
        assert!(v.verify(&early, NOW + 100).await.is_ok());
        assert_eq!(v.signature_checks.load(Ordering::Relaxed), 5);
    }

    #[tokio::test]
    async fn malformed_tokens_are_refused() {
        let v = verifier().await;
        let good = rs256(&claims());
        let mut parts = good.split('.');
        let (h, p, s) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let bad = [
            String::new(),
            "abc".into(),
            "a.b".into(),
            format!("{h}.{p}"),
            format!("{h}.{p}.{s}.{s}"),
            format!("{h}.{p}.{s}="),
            format!("{h}=.{p}.{s}"),
            format!("{h}.{p}.{}+", s.get(..s.len() - 1).unwrap()),
            format!("{}.{p}.{s}", URL_SAFE_NO_PAD.encode("not json")),
            format!("{}.{p}.{s}", URL_SAFE_NO_PAD.encode("[1,2]")),
            format!("{}.{p}.{s}", URL_SAFE_NO_PAD.encode(r#"{"kid":"rsa-1"}"#)),
            format!("{h}.{p}."),
            "..".into(),
            "a".repeat(MAX_TOKEN_LEN + 1),
        ];
        for token in bad {
            let got = v.verify(&token, NOW).await;
            assert!(
                matches!(got, Err(JwtError::Malformed)),
                "{token:.80} gave {got:?}"
            );
        }
    }

    #[tokio::test]
    async fn duplicate_names_and_crit_are_refused() {
        let v = verifier().await;
        let payload = claims().to_string();
        let dup_claim = format!(r#"{{"sub":"mallory",{}"#, &payload[1..]);
        let token = sign_raw(
            r#"{"alg":"RS256","kid":"rsa-1"}"#,
            &dup_claim,
            Algorithm::RS256,
            &rsa(),
        );
        assert_eq!(v.verify(&token, NOW).await, Err(JwtError::Malformed));
        let dup_alg = r#"{"alg":"HS256","kid":"rsa-1","alg":"RS256"}"#;
        let token = sign_raw(dup_alg, &payload, Algorithm::RS256, &rsa());
        assert_eq!(v.verify(&token, NOW).await, Err(JwtError::Malformed));
        let crit = r#"{"alg":"RS256","kid":"rsa-1","crit":["exp"],"exp":1}"#;
        let token = sign_raw(crit, &payload, Algorithm::RS256, &rsa());
        assert_eq!(v.verify(&token, NOW).await, Err(JwtError::Malformed));
        let not_object = sign_raw(
            r#"{"alg":"RS256","kid":"rsa-1"}"#,
            "[1]",
            Algorithm::RS256,
            &rsa(),
        );
        assert_eq!(v.verify(&not_object, NOW).await, Err(JwtError::Malformed));
        // The same hand-written token without the duplicate is fine.
        let token = sign_raw(
            r#"{"alg":"RS256","kid":"rsa-1"}"#,
            &payload,
            Algorithm::RS256,
            &rsa(),
        );
        assert!(v.verify(&token, NOW).await.is_ok());
    }

    #[tokio::test]
    async fn no_truncation_or_mutation_of_a_token_is_accepted() {
        let v = verifier().await;
        let token = sign(Algorithm::ES256, Some("ec-1"), &claims(), &ec());
        for end in 0..token.len() {
            let prefix = token.get(..end).unwrap();
            assert!(
                v.verify(prefix, NOW).await.is_err(),
                "prefix of {end} bytes"
            );
        }
        let bytes = token.as_bytes();
        for i in 0..bytes.len() {
            for replacement in [b'A', b'_', b'.', 0xC3] {
                if bytes[i] == replacement {
                    continue;
                }
                let mut mutated = bytes.to_vec();
                mutated[i] = replacement;
                let mutated = String::from_utf8_lossy(&mutated);
                assert!(
                    v.verify(&mutated, NOW).await.is_err(),
                    "byte {i} -> {replacement}"
                );
            }
        }
        assert!(v.verify(&token, NOW).await.is_ok());
    }

    #[tokio::test]
    async fn new_explains_what_is_wrong() {
        let oct = json!({"kty": "oct", "kid": "s", "k": URL_SAFE_NO_PAD.encode(TEST_HS256_SECRET)});
        let err = verifier_with(&[oct], |_| {}).await.unwrap_err();
        assert!(
            err.starts_with("JWKS file has no usable key for the allowed algorithms"),
            "{err}"
        );
        // A 1024-bit RSA key is below RFC 7518 §3.3's minimum.
        let short = json!({"kty": "RSA", "kid": "short", "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode([0xC5u8; 128]), "e": "AQAB"});
        let err = verifier_with(&[short], |_| {}).await.unwrap_err();
        assert!(err.starts_with("JWKS file has no usable key"), "{err}");
        // Only an EC key while only RS256 is allowed.
        let err = verifier_with(&[jwk(&ec(), Algorithm::ES256, "ec-1", true)], |s| {
            s.algorithms = vec![Algorithm::RS256]
        })
        .await
        .unwrap_err();
        assert!(err.starts_with("JWKS file has no usable key"), "{err}");
        // One bad key does not lose the good ones.
        let mut keys = idp_keys();
        keys.push(json!({"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA", "kid": "broken"}));
        keys.push(json!({"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}));
        keys.push(json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "short-ed"}));
        keys.push(json!("not even an object"));
        let v = verifier_with(&keys, |_| {}).await.unwrap();
        assert_eq!(v.keys.load().keys.len(), 4);

        let missing = settings(JwksSource::File("/nonexistent/jwks.json".into()));
        let err = JwtVerifier::new(missing).await.unwrap_err();
        assert!(
            err.starts_with("cannot read JWKS file /nonexistent/jwks.json"),
            "{err}"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, "{\"keys\": 1}").unwrap();
        let err = JwtVerifier::new(settings(JwksSource::File(path)))
            .await
            .unwrap_err();
        assert!(err.contains("is not a JWK Set"), "{err}");

        let err = verifier_with(&idp_keys(), |s| s.algorithms.push(Algorithm::HS256))
            .await
            .unwrap_err();
        assert_eq!(err, "HS256 is allowed but no hs256_secret is set");
        let err = verifier_with(&idp_keys(), |s| {
            s.algorithms.push(Algorithm::HS256);
            s.hs256_secret = Some(Secret::from("short"));
        })
        .await
        .unwrap_err();
        assert!(err.contains("RFC 7518 §3.2"), "{err}");
        let err = verifier_with(&idp_keys(), |s| s.audiences.clear())
            .await
            .unwrap_err();
        assert!(err.contains("audience"), "{err}");
        let err = verifier_with(&idp_keys(), |s| s.jwks = JwksSource::None)
            .await
            .unwrap_err();
        assert!(err.contains("need a JWKS"), "{err}");

        // A port nobody listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/jwks.json");
        let err = JwtVerifier::new(settings(JwksSource::Url(url)))
            .await
            .unwrap_err();
        assert!(err.starts_with("cannot fetch JWKS from URL: "), "{err}");
        let err = JwtVerifier::new(settings(JwksSource::Url("ftp://x/jwks".into())))
            .await
            .unwrap_err();
        assert!(err.contains("https://"), "{err}");
    }

    #[test]
    fn descriptions_fit_rfc_6750_and_codes_are_distinct() {
        let all = [
            JwtError::Malformed,
            JwtError::AlgorithmNotAllowed,
            JwtError::UnknownKey,
            JwtError::BadSignature,
            JwtError::Expired,
            JwtError::NotYetValid,
            JwtError::WrongIssuer,
            JwtError::WrongAudience,
            JwtError::WrongType,
            JwtError::MissingClaim("exp"),
        ];
        let mut codes = std::collections::HashSet::new();
        for e in all {
            // RFC 6750 §3: error-description = *( %x20-21 / %x23-5B / %x5D-7E )
            assert!(
                e.description()
                    .bytes()
                    .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5B | 0x5D..=0x7E)),
                "{e:?}"
            );
            assert!(e
                .code()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(codes.insert(e.code()), "{e:?}");
        }
        assert_eq!(JwtError::Expired.code(), "expired");
        assert_eq!(JwtError::WrongAudience.code(), "wrong_audience");
    }

    #[tokio::test]
    async fn the_verifier_can_be_shared_across_tasks() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: &T) {}
        let v = verifier().await;
        send_sync(&v);
        let fut = v.verify("x", NOW);
        send(&fut);
        drop(fut);
        let token = rs256(&claims());
        let task = tokio::spawn(async move { v.verify(&token, NOW).await.map(|v| v.user) });
        assert_eq!(task.await.unwrap(), Ok("alice".to_owned()));
    }

    /// A loopback HTTP server answering every request with the current (status, body), and
    /// counting the requests.
    struct JwksServer {
        url: String,
        answer: Arc<Mutex<(u16, String)>>,
        hits: Arc<AtomicUsize>,
    }

    impl JwksServer {
        async fn start(body: String) -> JwksServer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!(
                "http://{}/.well-known/jwks.json",
                listener.local_addr().unwrap()
            );
            let answer = Arc::new(Mutex::new((200, body)));
            let hits = Arc::new(AtomicUsize::new(0));
            let (a, h) = (answer.clone(), hits.clone());
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    let (answer, hits) = (a.clone(), h.clone());
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&chunk[..n]),
                            }
                            if request.len() > 16 * 1024 {
                                return;
                            }
                        }
                        hits.fetch_add(1, Ordering::SeqCst);
                        let (status, body) = answer.lock().unwrap().clone();
                        let response = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                        let _ = socket.shutdown().await;
                    });
                }
            });
            JwksServer { url, answer, hits }
        }

        fn serve(&self, status: u16, body: String) {
            *self.answer.lock().unwrap() = (status, body);
        }

        fn hits(&self) -> usize {
            self.hits.load(Ordering::SeqCst)
        }
    }

    fn url_settings(server: &JwksServer, min_refetch: Duration) -> JwtSettings {
        let mut s = settings(JwksSource::Url(server.url.clone()));
        s.jwks_min_refetch = min_refetch;
        s
    }

    #[tokio::test]
    async fn url_jwks_unknown_kid_refetch_is_shared_and_rate_limited() {
        let rsa_1 = jwk(&rsa(), Algorithm::RS256, "rsa-1", true);
        let server = JwksServer::start(jwks(std::slice::from_ref(&rsa_1))).await;
        let v = JwtVerifier::new(url_settings(&server, Duration::from_secs(3600)))
            .await
            .unwrap();
        assert_eq!(server.hits(), 1, "fetched at start");
        assert!(v.verify(&rs256(&claims()), NOW).await.is_ok());

        // The provider rotates in ec-1; four requests with the new kid arrive together.
        server.serve(
            200,
            jwks(&[rsa_1, jwk(&ec(), Algorithm::ES256, "ec-1", true)]),
        );
        let tokens: Vec<String> = (0..4)
            .map(|i| {
                sign(
                    Algorithm::ES256,
                    Some("ec-1"),
                    &claims_with(json!({"n": i})),
                    &ec(),
                )
            })
            .collect();
        let results = futures_util::future::join_all(tokens.iter().map(|t| v.verify(t, NOW))).await;
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(server.hits(), 2, "one refetch for all four");

        // Within jwks_min_refetch another unknown kid does not fetch again.
        for _ in 0..3 {
            let token = sign(Algorithm::ES256, Some("ec-2"), &claims(), &ec());
            assert_eq!(v.verify(&token, NOW).await, Err(JwtError::UnknownKey));
        }
        assert_eq!(server.hits(), 2);

        // `jku` and `x5u` pointing at the server are never followed.
        let header = json!({"alg": "RS256", "kid": "rsa-1",
            "jku": server.url, "x5u": server.url, "jwk": jwk(&attacker(), Algorithm::RS256, "a", true)});
        let token = sign_raw(
            &header.to_string(),
            &claims().to_string(),
            Algorithm::RS256,
            &attacker(),
        );
        assert_eq!(v.verify(&token, NOW).await, Err(JwtError::BadSignature));
        assert_eq!(server.hits(), 2);
    }

    #[tokio::test]
    async fn a_failed_refetch_keeps_the_old_keys() {
        let server = JwksServer::start(jwks(&idp_keys())).await;
        let v = JwtVerifier::new(url_settings(&server, Duration::ZERO))
            .await
            .unwrap();
        let unknown = sign(Algorithm::RS256, Some("rsa-9"), &claims(), &rsa());
        assert_eq!(v.verify(&unknown, NOW).await, Err(JwtError::UnknownKey));
        assert_eq!(v.verify(&unknown, NOW).await, Err(JwtError::UnknownKey));
        assert_eq!(server.hits(), 3, "no rate limit with jwks_min_refetch = 0");

        for (status, body) in [
            (500, "oops".to_owned()),
            (200, "not json".to_owned()),
            (200, jwks(&[])),
            (
                200,
                format!(
                    "{{\"keys\":[], \"pad\":\"{}\"}}",
                    "x".repeat(MAX_JWKS_BYTES)
                ),
            ),
        ] {
            server.serve(status, body);
            let hits = server.hits();
            assert_eq!(v.verify(&unknown, NOW).await, Err(JwtError::UnknownKey));
            assert_eq!(server.hits(), hits + 1);
            let fresh = rs256(&claims_with(json!({"jti": hits})));
            assert!(
                v.verify(&fresh, NOW).await.is_ok(),
                "after a {status} answer"
            );
        }
    }

    #[tokio::test]
    async fn a_key_removed_from_the_jwks_stops_verifying_cached_tokens() {
        let server = JwksServer::start(jwks(&idp_keys())).await;
        let v = JwtVerifier::new(url_settings(&server, Duration::ZERO))
            .await
            .unwrap();
        let ec_token = sign(Algorithm::ES256, Some("ec-1"), &claims(), &ec());
        let rsa_token = rs256(&claims());
        assert!(v.verify(&ec_token, NOW).await.is_ok());
        assert!(v.verify(&rsa_token, NOW).await.is_ok());

        // ec-1 withdrawn; an unknown kid makes the gateway notice.
        server.serve(200, jwks(&[jwk(&rsa(), Algorithm::RS256, "rsa-1", true)]));
        let unknown = sign(Algorithm::RS256, Some("rsa-9"), &claims(), &rsa());
        assert_eq!(v.verify(&unknown, NOW).await, Err(JwtError::UnknownKey));
        assert_eq!(v.verify(&ec_token, NOW).await, Err(JwtError::UnknownKey));
        let checks = v.signature_checks.load(Ordering::Relaxed);
        assert!(
            v.verify(&rsa_token, NOW).await.is_ok(),
            "rsa-1 is still there"
        );
        assert_eq!(v.signature_checks.load(Ordering::Relaxed), checks + 1);
    }

    #[tokio::test]
    async fn the_url_jwks_is_fetched_again_in_the_background() {
        let server = JwksServer::start(jwks(&[jwk(&rsa(), Algorithm::RS256, "rsa-1", true)])).await;
        let mut s = url_settings(&server, Duration::from_secs(3600));
        s.jwks_refresh = Duration::from_millis(20);
        let v = JwtVerifier::new(s).await.unwrap();
        server.serve(200, jwks(&idp_keys()));
        let deadline = Instant::now() + Duration::from_secs(10);
        while server.hits() < 3 {
            assert!(Instant::now() < deadline, "no background fetch within 10 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let token = sign(Algorithm::EdDSA, Some("ed-1"), &claims(), &ed());
        assert!(v.verify(&token, NOW).await.is_ok());

        // Dropping the verifier ends the task: the count stops growing.
        drop(v);
        let stopped = server.hits();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            server.hits() <= stopped + 1,
            "{} fetches after drop",
            server.hits() - stopped
        );
    }
}
