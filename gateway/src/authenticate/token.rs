//! API tokens issued by `authgate token issue`, presented as `Authorization: Bearer`
//! (RFC 6750 §2.1).
//!
//! A token reads `agt_<id>_<secret>`: the `agt_` prefix makes it recognisable (secret
//! scanners, log filters), the 12-character id names it in `token ls` and the audit log, and
//! the secret is 256 random bits in base64url. The store keeps only SHA-256 of the secret:
//! the secret is random, so a fast hash is as good as a slow one and costs nothing per
//! request. Comparison is constant-time.
//!
//! Expiry: at the TTL given at issue time, and after `tokens.idle_timeout` without use. The
//! last use is kept in memory and written back in batches (see `store::Live::flush`), never
//! once per request.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use subtle::ConstantTimeEq as _;

use crate::reason::{Expired, Reason};
use crate::store::{sha256, Live, LiveUser};
use crate::users::{check_account, Directory};

/// Every authgate token starts with this.
pub const PREFIX: &str = "agt_";
const ID_LEN: usize = 12;
const SECRET_BYTES: usize = 32;

/// A newly made token: the id (public) and the whole token (shown once).
pub struct NewToken {
    pub id: String,
    pub token: authgate_proto::Secret,
    pub secret_sha256: [u8; 32],
}

/// Makes a token from the operating system's random source.
pub fn generate() -> NewToken {
    const ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut rng = rand::rngs::OsRng;
    let mut id_bytes = [0u8; ID_LEN];
    rng.fill_bytes(&mut id_bytes);
    let id: String = id_bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b & 31)]))
        .collect();
    let mut secret = [0u8; SECRET_BYTES];
    rng.fill_bytes(&mut secret);
    let secret = URL_SAFE_NO_PAD.encode(secret);
    NewToken {
        secret_sha256: sha256(secret.as_bytes()),
        token: authgate_proto::Secret::new(format!("{PREFIX}{id}_{secret}")),
        id,
    }
}

/// Splits a presented token into (id, secret), or None if it is not shaped like ours.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_at_checked(ID_LEN)?;
    let secret = secret.strip_prefix('_')?;
    let plausible = id.bytes().all(|b| b.is_ascii_alphanumeric())
        && secret.len() == 43
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then_some((id, secret))
}

/// Who a valid token speaks for.
pub struct TokenIdentity {
    pub user: String,
    pub scopes: Arc<[String]>,
    pub stored: Option<Arc<LiveUser>>,
    pub id: String,
}

pub struct TokenAuth {
    store: Arc<Live>,
    users: Arc<Directory>,
    idle_timeout: Option<Duration>,
}

fn invalid(code: &'static str) -> Reason {
    Reason::InvalidToken {
        code,
        description: "The access token is not valid",
    }
}

impl TokenAuth {
    pub fn new(store: Arc<Live>, users: Arc<Directory>, idle_timeout: Option<Duration>) -> Self {
        TokenAuth {
            store,
            users,
            idle_timeout,
        }
    }

    /// Checks an `agt_` token at `now` (Unix seconds). Refuses with `invalid_token`
    /// (unknown, revoked, owner gone) or `expired_credentials` (TTL, idle), and with the
    /// owner's account state (locked, expired).
    pub fn authenticate(&self, token: &str, now: u64) -> Result<TokenIdentity, Reason> {
        let (id, secret) = split(token).ok_or_else(|| invalid("malformed"))?;
        let snapshot = self.store.snapshot();
        let Some(t) = snapshot.tokens.get(id) else {
            return Err(invalid("unknown_token"));
        };
        let presented = sha256(secret.as_bytes());
        if !bool::from(presented.ct_eq(&t.secret_sha256)) {
            return Err(invalid("wrong_secret"));
        }
        if t.revoked {
            return Err(Reason::InvalidToken {
                code: "revoked",
                description: "The access token was revoked",
            });
        }
        if t.expires.is_some_and(|at| at <= now) {
            return Err(Reason::ExpiredCredentials(Expired::Token));
        }
        if let Some(idle) = self.idle_timeout {
            if t.active_at().saturating_add(idle.as_secs()) <= now {
                return Err(Reason::ExpiredCredentials(Expired::TokenIdle));
            }
        }
        // The owner must still exist and be allowed to sign in.
        let account = self
            .users
            .find(&t.user)
            .ok_or_else(|| invalid("owner_gone"))?;
        if let Some(stored) = &account.stored {
            check_account(stored, now, None)?;
        }
        t.touch(now);
        Ok(TokenIdentity {
            user: t.user.clone(),
            scopes: Arc::clone(&t.scopes),
            stored: account.stored,
            id: t.id.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_have_the_prefix_and_split_back() {
        let t = generate();
        let s = t.token.expose();
        assert!(s.starts_with("agt_"));
        assert!(s.len() >= 4 + 12 + 1 + 43);
        let (id, secret) = split(s).expect("split");
        assert_eq!(id, t.id);
        assert_eq!(sha256(secret.as_bytes()), t.secret_sha256);
        assert_ne!(generate().token.expose(), s);
    }

    #[test]
    fn foreign_shapes_do_not_split() {
        for bad in [
            "",
            "agt_",
            "agt_short_x",
            "eyJhbGciOi.x.y",
            "agt_abcdefghijkm-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "agt_abcdefghijkm_AAAA",
            "agt_abcdéfghijk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(split(bad).is_none(), "{bad}");
        }
    }
}
