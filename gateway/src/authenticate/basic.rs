//! HTTP Basic (RFC 7617) against the user database, with the hashing cost paid once.
//!
//! A password hash costs tens of milliseconds by design, so verifying one per request would
//! make a gateway serve a few dozen requests per second (nginx `auth_basic` does exactly
//! that). authgate remembers verification results for `cache_ttl` (on authgate's clock) in a
//! cache bounded to `cache_capacity` entries (`quick_cache`, whose lookup is a shard's read
//! lock and one probe: the lookup is on every request) and keyed by HMAC-SHA-256(process
//! key, user, password, hash fingerprint):
//! - the plaintext password is never stored, and the key is random per process, so the cache
//!   is useless to anyone reading memory dumps offline;
//! - the hash fingerprint is part of the key, so changing a user's password (a reload of the
//!   htpasswd file) makes every cached result for the old hash unreachable at once;
//! - concurrent identical verifications share one computation (the cache coalesces them);
//! - hashing runs on a pool of low-priority threads ([`super::hashing`]), one per core, so a
//!   flood of wrong passwords cannot take the CPU from cached logins and anonymous requests.
//!
//! Unknown users are verified against a dummy hash of the same algorithm and cost, so their
//! answer takes as long as a wrong password for a real user.
//!
//! A client connection also remembers the last `Authorization` value it had verified
//! ([`Remembered`]), so that the next request on it presenting the same value skips the
//! decoding, the user lookup and the HMAC. It keeps no plaintext either: only a 128-bit
//! keyed SipHash-1-3 of the value (random key per process), with the user, the answer's
//! expiry and the version of the user sources it came from. Like the cache's HMAC keys, the
//! digest is no secret from someone who can read the process's memory (the key is there
//! too): they could test guesses against it, faster than against the HMAC. The remembered
//! answer is used only while all of these hold: the same value (compared in constant time),
//! the cached answer's `cache_ttl` not over, and no user source replaced since (an htpasswd
//! reload or a store change forgets it); a memo found out of date is dropped at once. The
//! lockout and the account's state are checked again every time, as on a cache hit.

use std::sync::Arc;

use authgate_proto::basic::{decode_basic, BasicError};
use authgate_proto::Credentials;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use siphasher::sip128::SipHasher13;
use subtle::ConstantTimeEq;

use super::hashing::HashPool;
use super::lockout::Lockout;
use crate::clock::Clock;
use crate::config::Server;
use crate::metrics::Metrics;
use crate::reason::{CredentialFault, Reason};
use crate::store::LiveUser;
use crate::users::{check_account, Directory, Version};

type Key = [u8; 32];

/// A claim on a missing cache entry: concurrent lookups of the key wait until it is filled
/// or dropped.
type Placeholder<'a> = quick_cache::sync::PlaceholderGuard<
    'a,
    Key,
    Verified,
    quick_cache::UnitWeighter,
    PrehashedKey,
    quick_cache::sync::DefaultLifecycle<Key, Verified>,
>;

/// A connection's last verified Basic credentials (see the module doc). Shared by the
/// requests of one connection, which for HTTP/2 run at the same time: one short lock.
#[derive(Default)]
pub struct Remembered(Mutex<Option<Memo>>);

struct Memo {
    /// [`BasicAuth::digest`] of the whole `Authorization` value.
    digest: Digest,
    user: String,
    stored: Option<Arc<LiveUser>>,
    /// Until when (on authgate's clock) the cached answer holds.
    until: Duration,
    version: Version,
}

/// A keyed SipHash-1-3 of an `Authorization` value: 128 bits, so that no other value can be
/// found to match it without the process's key.
pub type Digest = [u8; 16];

/// The SipHash keyed for [`BasicAuth::digest`]. Its own type so that its `Debug` (which
/// `siphasher` derives, printing the key) can never be reached from ours.
struct MemoKey(SipHasher13);

pub struct BasicAuth {
    users: Arc<Directory>,
    /// Keyed once with a random per-process key.
    memo_key: MemoKey,
    clock: Clock,
    password_max_age: Option<std::time::Duration>,
    /// HMAC-SHA-256 keyed once with a random per-process key; cloned per request so the
    /// key-block compressions are not redone every time.
    mac: Hmac<Sha256>,
    cache: quick_cache::sync::Cache<Key, Verified, quick_cache::UnitWeighter, PrehashedKey>,
    cache_ttl: std::time::Duration,
    hashing: Arc<HashPool>,
    metrics: Arc<Metrics>,
    lockout: Arc<Lockout>,
}

impl BasicAuth {
    pub fn new(
        users: Arc<Directory>,
        config: &crate::config::Config,
        metrics: Arc<Metrics>,
        lockout: Arc<Lockout>,
        clock: Clock,
    ) -> Self {
        let server: &Server = &config.server;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // HMAC takes keys of any length, so this cannot fail.
        #[allow(clippy::expect_used)]
        let mac = Hmac::<Sha256>::new_from_slice(&key).expect("HMAC accepts any key length");
        let mut memo_key = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut memo_key);
        BasicAuth {
            users,
            memo_key: MemoKey(SipHasher13::new_with_key(&memo_key)),
            clock,
            password_max_age: config.password_max_age,
            mac,
            cache: quick_cache::sync::Cache::with(
                usize::try_from(server.cache_capacity).unwrap_or(usize::MAX),
                server.cache_capacity,
                quick_cache::UnitWeighter,
                PrehashedKey,
                quick_cache::sync::DefaultLifecycle::default(),
            ),
            cache_ttl: server.cache_ttl,
            hashing: Arc::new(HashPool::new(
                cores,
                server.hash_queue.saturating_mul(cores),
                server.hash_wait,
            )),
            metrics,
            lockout,
        }
    }

    /// Returns the user name if the credentials are right; otherwise the reason and, for the
    /// audit log, the user name that was tried.
    pub async fn authenticate(&self, credentials: &Credentials, client: IpAddr) -> super::Checked {
        let token68 = credentials.token68.as_deref().ok_or((
            Reason::MalformedCredentials("Basic takes a token68, not parameters"),
            None,
        ))?;
        let basic = decode_basic(token68)
            .map_err(|e| (Reason::MalformedCredentials(basic_fault(e)), None))?;
        self.verify(basic.user_id, basic.password, client, None)
            .await
    }

    /// The digest a connection remembers an `Authorization` value by.
    pub fn digest(&self, authorization: &[u8]) -> Digest {
        self.memo_key.0.hash(authorization).as_bytes()
    }

    /// The answer `remembered` holds for the `Authorization` value of `digest`, if it still
    /// stands (see the module doc); None sends the request through [`BasicAuth::verify`].
    pub fn recall(
        &self,
        remembered: &Remembered,
        digest: &Digest,
        client: IpAddr,
    ) -> Option<super::Checked> {
        let started = std::time::Instant::now();
        let now = self.clock.now();
        let (user, stored) = {
            let mut slot = remembered.0.lock().ok()?;
            let memo = slot.as_ref()?;
            let same: bool = memo.digest.ct_eq(digest).into();
            if !same {
                return None;
            }
            if memo.until <= now || !self.users.is_current(&memo.version) {
                // Out of date for good: drop it, and with it the old version's user.
                *slot = None;
                return None;
            }
            (memo.user.clone(), memo.stored.clone())
        };
        // As in `verify`: a banned client or user is refused even with the right password.
        if let Err(retry_after) = self.lockout.check(client, &user) {
            return Some(Err((Reason::TooManyFailures { retry_after }, Some(user))));
        }
        self.metrics.cache_hit();
        self.metrics.basic_authentication(started.elapsed());
        if let Some(account) = &stored {
            if let Err(reason) = check_account(account, now.as_secs(), Some(self.password_max_age))
            {
                return Some(Err((reason, Some(user))));
            }
        }
        Some(Ok((user, stored)))
    }

    /// Checks a user name and password (from Basic credentials or the sign-in form) with
    /// everything Basic does: lockout first, the verification cache, the hashing pool, the
    /// account's state. Returns the user and, for store users, their record. A success is
    /// remembered in `remember` under the `Authorization` value's digest, when given.
    pub async fn verify(
        &self,
        user_id: String,
        password: authgate_proto::Secret,
        client: IpAddr,
        remember: Option<(&Remembered, &Digest)>,
    ) -> super::Checked {
        struct Basic {
            user_id: String,
            password: authgate_proto::Secret,
        }
        let basic = Basic { user_id, password };
        // A banned client, user or pair is refused before any hash is computed.
        if let Err(retry_after) = self.lockout.check(client, &basic.user_id) {
            return Err((Reason::TooManyFailures { retry_after }, Some(basic.user_id)));
        }
        let version = remember.map(|_| self.users.version());
        let entry = self.users.find(&basic.user_id);
        let (hash, fingerprint, fault) = match &entry {
            Some(e) => (
                Arc::clone(&e.hash),
                e.fingerprint,
                CredentialFault::WrongPassword,
            ),
            None => (self.users.dummy(), [0u8; 32], CredentialFault::UnknownUser),
        };
        let key = self.cache_key(
            &basic.user_id,
            basic.password.expose().as_bytes(),
            &fingerprint,
        );
        let started = std::time::Instant::now();
        let now = self.clock.now();
        let mut in_flight = None;
        let mut fresh = false;
        let (verified, until) = match self.cache.get(&key) {
            Some(v) if v.until > now => {
                self.metrics.cache_hit();
                (v.ok, v.until)
            }
            expired => {
                if expired.is_some() {
                    self.cache.remove(&key);
                }
                // Concurrent identical verifications wait for the first one's result.
                match self.cache.get_value_or_guard_async(&key).await {
                    Ok(v) => {
                        self.metrics.cache_hit();
                        (v.ok, v.until)
                    }
                    Err(guard) => {
                        fresh = true;
                        self.metrics.cache_miss();
                        // Counted as in flight until the answer is known (and a failure
                        // counted), so concurrent guesses cannot pass a threshold together.
                        in_flight = match self.lockout.attempt(client, &basic.user_id) {
                            Ok(a) => Some(a),
                            Err(retry_after) => {
                                return Err((
                                    Reason::TooManyFailures { retry_after },
                                    Some(basic.user_id),
                                ))
                            }
                        };
                        let Some(answer) = self.hash_and_cache(guard, hash, basic.password).await
                        else {
                            self.metrics.hashing_busy();
                            return Err((Reason::HashingBusy, Some(basic.user_id)));
                        };
                        answer
                    }
                }
            }
        };
        self.metrics.basic_authentication(started.elapsed());
        if let (true, Some(account)) = (verified, &entry) {
            // Every verified password, cached or not, makes the client known for the user
            // (README "Brute-force protection"): a device whose sign-ins all come from the
            // cache must not be locked out with the strangers. Requests the connection's memo
            // answers come after one of these. Only a hashed one clears the pair's failures.
            self.lockout.success(client, &basic.user_id, fresh);
            // The account's state is checked after the password, so only its owner learns it.
            if let Some(stored) = &account.stored {
                let now = self.clock.now().as_secs();
                check_account(stored, now, Some(self.password_max_age))
                    .map_err(|reason| (reason, Some(basic.user_id.clone())))?;
            }
            if let (Some((remembered, digest)), Some(version)) = (remember, version) {
                if let Ok(mut slot) = remembered.0.lock() {
                    *slot = Some(Memo {
                        digest: *digest,
                        user: basic.user_id.clone(),
                        stored: account.stored.clone(),
                        until,
                        version,
                    });
                }
            }
            Ok((basic.user_id, account.stored.clone()))
        } else {
            let banned = self.lockout.failure(client, &basic.user_id);
            // Only now, with its failure counted, does this attempt stop counting as in
            // flight (on the success path it ends when `verify` returns).
            drop(in_flight);
            if banned {
                self.metrics.ban();
                tracing::warn!(%client, user = %basic.user_id, "too many failed sign-ins: banned");
            }
            Err((Reason::InvalidCredentials(fault), Some(basic.user_id)))
        }
    }

    /// Verifies `password` against `hash` on the hashing pool and caches the answer under
    /// `guard`'s key; returns it with its expiry. None if the pool is busy: that is not an
    /// answer, so nothing is cached, and dropping the guard lets a waiting request try in
    /// turn.
    async fn hash_and_cache(
        &self,
        guard: Placeholder<'_>,
        hash: Arc<crate::users::hash::PasswordHash>,
        password: authgate_proto::Secret,
    ) -> Option<(bool, Duration)> {
        let metrics = Arc::clone(&self.metrics);
        let ok = self
            .hashing
            .run(move || {
                metrics.password_hash();
                hash.verify(password.expose().as_bytes())
            })
            .await
            .ok()?;
        let until = self.clock.now() + self.cache_ttl;
        // Refused only if the entry was removed meanwhile; the answer stands either way.
        let _ = guard.insert(Verified { ok, until });
        Some((ok, until))
    }

    fn cache_key(&self, user: &str, password: &[u8], fingerprint: &[u8; 32]) -> Key {
        // Length-prefix the user so ("ab", "c…") and ("a", "bc…") cannot collide.
        let mut mac = self.mac.clone();
        mac.update(&(user.len() as u64).to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(fingerprint);
        mac.update(password);
        mac.finalize().into_bytes().into()
    }

    /// How many results are cached now (for metrics and tests), expired ones included until
    /// they are looked up again or pushed out.
    pub fn cached(&self) -> u64 {
        self.cache.len() as u64
    }
}

/// A cached verification: whether the password was right, and until when (on authgate's
/// clock) the answer may be used.
#[derive(Clone, Copy)]
struct Verified {
    ok: bool,
    until: std::time::Duration,
}

/// A short audit/detail text for a Basic decoding error (never containing the credentials).
fn basic_fault(e: BasicError) -> &'static str {
    match e {
        BasicError::NotBase64 => "not canonical padded base64",
        BasicError::NotUtf8 => "not UTF-8",
        BasicError::NoColon => "no ':' between user-id and password",
        BasicError::ControlCharacterInUserId | BasicError::ControlCharacterInPassword => {
            "a control character"
        }
        _ => "not a Basic token68",
    }
}

/// The cache keys are HMAC outputs: uniformly random and unknowable to clients, so hashing
/// them again with SipHash is wasted work and cannot be flooded. Folds the bytes into a u64.
#[derive(Clone, Copy, Default)]
struct PrehashedKey;

impl std::hash::BuildHasher for PrehashedKey {
    type Hasher = Fold;
    fn build_hasher(&self) -> Fold {
        Fold(0)
    }
}

struct Fold(u64);

impl std::hash::Hasher for Fold {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (w, b) in word.iter_mut().zip(chunk) {
                *w = *b;
            }
            self.0 = self.0.rotate_left(23) ^ u64::from_le_bytes(word);
        }
    }
}
