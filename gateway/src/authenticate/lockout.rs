//! Brute-force protection: failure counters per client address, per user name and per
//! (client, user) pair, each with a window, a threshold and a ban that doubles each time it
//! is imposed again (up to `max_ban`). A banned request is answered 429 with `Retry-After`
//! (reason `too_many_failures`) before any password hash is computed.
//!
//! The per-user rule must not let an attacker lock a real user out: when a user name passes
//! its threshold, only clients that have not signed in as that user recently are refused.
//! A client that authenticated as the user within `known_client` keeps getting in, so a
//! flood from other addresses cannot lock the user out of the places they already use.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Lockout as Settings;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Client(IpAddr),
    User(String),
    Pair(IpAddr, String),
}

/// A ban in force, as the dashboard shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ban {
    /// `client`, `user` or `pair`.
    pub kind: &'static str,
    pub client: Option<String>,
    pub user: Option<String>,
    pub seconds_left: u64,
    /// How many times this key has been banned.
    pub bans: u32,
}

#[derive(Debug, Default, Clone)]
struct Entry {
    window_start: Duration,
    failures: u32,
    banned_until: Duration,
    bans: u32,
}

pub struct Lockout {
    settings: Settings,
    clock: Clock,
    entries: Mutex<HashMap<Key, Entry>>,
    /// (client, user) -> time of the last successful sign-in.
    known: Mutex<HashMap<(IpAddr, String), Duration>>,
}

/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 100_000;

impl Lockout {
    pub fn new(settings: Settings, clock: Clock) -> Self {
        Lockout {
            settings,
            clock,
            entries: Mutex::new(HashMap::new()),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this attempt may be verified. `Err(seconds)` is the `Retry-After`.
    pub fn check(&self, client: IpAddr, user: &str) -> Result<(), u64> {
        if !self.settings.enabled {
            return Ok(());
        }
        let Ok(entries) = self.entries.lock() else {
            return Ok(());
        };
        // The normal case: nobody has failed lately, so nothing to look up or allocate (nor
        // a clock to read).
        if entries.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let until = |k: &Key| entries.get(k).map_or(Duration::ZERO, |e| e.banned_until);
        let mut banned =
            until(&Key::Client(client)).max(until(&Key::Pair(client, user.to_string())));
        let user_ban = until(&Key::User(user.to_string()));
        if user_ban > now && !self.is_known(client, user, now) {
            banned = banned.max(user_ban);
        }
        if banned > now {
            Err((banned - now).as_secs().max(1))
        } else {
            Ok(())
        }
    }

    /// Counts a failed attempt; returns true if it imposed a new ban.
    pub fn failure(&self, client: IpAddr, user: &str) -> bool {
        if !self.settings.enabled {
            return false;
        }
        let now = self.clock.now();
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        if entries.len() > SWEEP_AT {
            let window = self.settings.window;
            entries.retain(|_, e| e.banned_until > now || e.window_start + window > now);
        }
        let mut banned = false;
        for (key, threshold) in [
            (Key::Client(client), self.settings.client_threshold),
            (Key::User(user.to_string()), self.settings.user_threshold),
            (
                Key::Pair(client, user.to_string()),
                self.settings.pair_threshold,
            ),
        ] {
            let e = entries.entry(key).or_default();
            if now >= e.window_start + self.settings.window {
                e.window_start = now;
                e.failures = 0;
            }
            e.failures += 1;
            if e.failures >= threshold && e.banned_until <= now {
                let factor = 1u32.checked_shl(e.bans.min(16)).unwrap_or(u32::MAX);
                let ban = self
                    .settings
                    .ban
                    .saturating_mul(factor)
                    .min(self.settings.max_ban);
                e.banned_until = now + ban;
                e.bans = e.bans.saturating_add(1);
                e.failures = 0;
                e.window_start = now;
                banned = true;
            }
        }
        banned
    }

    /// A successful sign-in: clears the pair's count and remembers the client for the user.
    pub fn success(&self, client: IpAddr, user: &str) {
        if !self.settings.enabled {
            return;
        }
        let now = self.clock.now();
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(&Key::Pair(client, user.to_string()));
        }
        if let Ok(mut known) = self.known.lock() {
            if known.len() > SWEEP_AT {
                let keep = self.settings.known_client;
                known.retain(|_, t| *t + keep > now);
            }
            known.insert((client, user.to_string()), now);
        }
    }

    fn is_known(&self, client: IpAddr, user: &str, now: Duration) -> bool {
        self.known
            .lock()
            .ok()
            .and_then(|k| k.get(&(client, user.to_string())).copied())
            .is_some_and(|t| t + self.settings.known_client > now)
    }

    /// The bans in force now, for the dashboard.
    pub fn bans(&self) -> Vec<Ban> {
        let now = self.clock.now();
        let Ok(entries) = self.entries.lock() else {
            return Vec::new();
        };
        let mut bans: Vec<Ban> = entries
            .iter()
            .filter(|(_, e)| e.banned_until > now)
            .map(|(k, e)| {
                let (kind, client, user) = match k {
                    Key::Client(c) => ("client", Some(c.to_string()), None),
                    Key::User(u) => ("user", None, Some(u.clone())),
                    Key::Pair(c, u) => ("pair", Some(c.to_string()), Some(u.clone())),
                };
                Ban {
                    kind,
                    client,
                    user,
                    seconds_left: (e.banned_until - now).as_secs().max(1),
                    bans: e.bans,
                }
            })
            .collect();
        bans.sort_by_key(|b| std::cmp::Reverse(b.seconds_left));
        bans
    }

    /// Lifts a ban (and forgets its failures). Returns whether there was one.
    pub fn unban(&self, kind: &str, client: Option<&str>, user: Option<&str>) -> bool {
        let client: Option<IpAddr> = client.and_then(|c| c.parse().ok());
        let key = match (kind, client, user) {
            ("client", Some(c), _) => Key::Client(c),
            ("user", _, Some(u)) => Key::User(u.to_string()),
            ("pair", Some(c), Some(u)) => Key::Pair(c, u.to_string()),
            _ => return false,
        };
        self.entries
            .lock()
            .map(|mut e| e.remove(&key).is_some())
            .unwrap_or(false)
    }

    /// Clients and user names banned now, for metrics.
    pub fn active_bans(&self) -> usize {
        let now = self.clock.now();
        self.entries
            .lock()
            .map(|e| e.values().filter(|e| e.banned_until > now).count())
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            enabled: true,
            window: Duration::from_secs(600),
            client_threshold: 5,
            user_threshold: 3,
            pair_threshold: 2,
            ban: Duration::from_secs(60),
            max_ban: Duration::from_secs(3600),
            known_client: Duration::from_secs(86400),
        }
    }

    #[test]
    fn pair_ban_then_client_ban() {
        let l = Lockout::new(settings(), Clock::default());
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        assert!(l.check(a, "bob").is_ok());
        l.failure(a, "bob");
        assert!(l.check(a, "bob").is_ok());
        l.failure(a, "bob");
        let retry = l.check(a, "bob").expect_err("pair banned");
        assert!((59..=60).contains(&retry), "{retry}");
        // Other users from the same client are fine until the client threshold.
        assert!(l.check(a, "carol").is_ok());
    }

    #[test]
    fn a_user_under_attack_still_gets_in_from_a_known_client() {
        let l = Lockout::new(settings(), Clock::default());
        let home: IpAddr = "192.0.2.1".parse().expect("ip");
        l.success(home, "alice");
        for i in 0..3u8 {
            l.failure(IpAddr::from([198, 51, 100, i]), "alice");
        }
        let stranger: IpAddr = "203.0.113.9".parse().expect("ip");
        assert!(
            l.check(stranger, "alice").is_err(),
            "the user name is locked for unknown clients"
        );
        assert!(
            l.check(home, "alice").is_ok(),
            "but not for the user's known client"
        );
    }
}
