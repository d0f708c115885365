//! Browser sessions: a cookie set by authgate's sign-in page (see [`crate::signin`]).
//!
//! - The cookie value is 256 random bits (base64url); the store keeps only its SHA-256, so
//!   a copy of the database does not hold usable cookies.
//! - `HttpOnly; SameSite=Lax; Path=/`, and under TLS `Secure` with the `__Host-` prefix
//!   (RFC 6265bis §4.1.3.2: host-only, path `/`, secure — no subdomain can set or shadow it).
//! - A session ends after `sessions.idle_timeout` without a request (sliding: every request
//!   moves it) and `sessions.lifetime` after sign-in, whichever comes first. Activity is
//!   kept in memory and written to the store in batches.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use authgate_proto::Challenge;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderMap;
use rand::RngCore;

use crate::config::Sessions;
use crate::reason::Reason;
use crate::store::{sha256, Live, LiveSession, StoreError};
use crate::users::{check_account, Directory};

/// Where the sign-in page lives; never behind a route, so it cannot loop.
pub const SIGNIN_PATH: &str = "/_authgate/signin";
/// Where signing out happens.
pub const SIGNOUT_PATH: &str = "/_authgate/signout";

/// The challenge for session routes. There is no registered HTTP authentication scheme for
/// cookies; this follows the expired draft-broyer-http-cookie-auth (`Cookie` scheme with
/// `form-action` and `cookie-name`), which tells a client where to sign in. Browsers show no
/// prompt for it, which is what a session route wants.
pub fn challenge(realm: &str) -> Challenge {
    Challenge::new("Cookie")
        .param("realm", realm)
        .param("form-action", SIGNIN_PATH)
}

pub struct SessionAuth {
    store: Arc<Live>,
    users: Arc<Directory>,
    idle: Duration,
    lifetime: Duration,
    /// `name` and `__Host-name`.
    plain: String,
    host: String,
}

impl SessionAuth {
    pub fn new(store: Arc<Live>, users: Arc<Directory>, config: &Sessions) -> Self {
        SessionAuth {
            store,
            users,
            idle: config.idle_timeout,
            lifetime: config.lifetime,
            host: format!("__Host-{}", config.cookie),
            plain: config.cookie.clone(),
        }
    }

    /// The cookie's name: with the `__Host-` prefix when `secure`.
    pub fn cookie_name(&self, secure: bool) -> &str {
        if secure {
            &self.host
        } else {
            &self.plain
        }
    }

    /// The session cookie's value in the request, if any. Under TLS (`secure`) only the
    /// `__Host-` cookie counts: authgate never sets the plain one there, so a plain one was
    /// planted (by a sibling subdomain or over plain http) to sign the victim into the
    /// attacker's session.
    pub fn cookie_value<'h>(&self, headers: &'h HeaderMap, secure: bool) -> Option<&'h str> {
        let name = self.cookie_name(secure);
        cookies(headers).find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    /// The session for a cookie value, if it is valid at `now`. Ending sessions are removed.
    /// On refusal the reason says why (`session_expired` with idle / lifetime / unknown) and,
    /// when known, whose session it was.
    pub fn authenticate(&self, cookie: &str, now: u64) -> super::Checked {
        let id = sha256(cookie.as_bytes());
        let Some(session) = self.store.session(&id) else {
            return Err((Reason::SessionExpired("unknown"), None));
        };
        if let Err(why) = self.alive(&session, now) {
            self.store.expire_session(&id);
            return Err((Reason::SessionExpired(why), Some(session.user.clone())));
        }
        let Some(account) = self.users.find(&session.user) else {
            self.store.expire_session(&id);
            return Err((
                Reason::SessionExpired("user_removed"),
                Some(session.user.clone()),
            ));
        };
        if let Some(stored) = &account.stored {
            check_account(stored, now, None).map_err(|r| (r, Some(session.user.clone())))?;
        }
        session.last_seen.fetch_max(now, Ordering::Relaxed);
        Ok((session.user.clone(), account.stored))
    }

    fn alive(&self, s: &LiveSession, now: u64) -> Result<(), &'static str> {
        if s.created.saturating_add(self.lifetime.as_secs()) <= now {
            return Err("lifetime");
        }
        if s.last_seen
            .load(Ordering::Relaxed)
            .saturating_add(self.idle.as_secs())
            <= now
        {
            return Err("idle");
        }
        Ok(())
    }

    /// Starts a session for `user`: a new random id (never one the client sent, so a
    /// fixated id is worthless), stored before the cookie is handed out. Returns the value.
    pub fn create(&self, user: &str, now: u64) -> Result<authgate_proto::Secret, StoreError> {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let value = URL_SAFE_NO_PAD.encode(bytes);
        self.store
            .create_session(sha256(value.as_bytes()), user, now)?;
        Ok(authgate_proto::Secret::new(value))
    }

    /// Whose session this cookie value is, if it is one.
    pub fn user_of(&self, cookie: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .store
            .session(&sha256(cookie.as_bytes()))
            .map(|s| s.user.clone()))
    }

    /// Ends the session with this cookie value, if there is one.
    pub fn remove(&self, cookie: &str) -> Result<(), StoreError> {
        self.store.remove_session(&sha256(cookie.as_bytes()))
    }

    /// Drops sessions that have ended (periodic).
    pub fn sweep(&self, now: u64) {
        self.store.sweep_sessions(|s| self.alive(s, now).is_err());
    }

    /// `Set-Cookie` for a new session. Max-Age is the lifetime: the browser may forget it
    /// earlier, the server decides.
    pub fn set_cookie(&self, value: &authgate_proto::Secret, secure: bool) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            self.cookie_name(secure),
            value.expose(),
            self.lifetime.as_secs(),
            if secure { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` values that delete the session cookie (both spellings).
    pub fn clear_cookies(&self, secure: bool) -> Vec<String> {
        let mut out = vec![format!(
            "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
            self.plain,
            if secure { "; Secure" } else { "" }
        )];
        if secure {
            out.push(format!(
                "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure",
                self.host
            ));
        }
        out
    }

    /// Whether `name` is one of the session cookie's names (for stripping it upstream).
    pub fn is_session_cookie(&self, name: &str) -> bool {
        name == self.plain || name == self.host
    }
}

/// Every `name=value` pair of every `Cookie` field (RFC 6265 §5.4: pairs separated by "; ").
pub fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.trim(), value.trim().trim_matches('"')))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn cookies_are_split_across_fields() {
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1; b=\"2\""));
        h.append("cookie", HeaderValue::from_static("c=3"));
        let all: Vec<_> = cookies(&h).collect();
        assert_eq!(all, [("a", "1"), ("b", "2"), ("c", "3")]);
    }
}
