//! Brute-force protection: failure counters per client address, per user name and per
//! (client, user) pair, each with a window, a threshold and a ban that doubles each time it
//! is imposed again (up to `max_ban`). A banned request is answered 429 with `Retry-After`
//! (reason `too_many_failures`) before any password hash is computed.
//!
//! The per-user rule must not let an attacker lock a real user out: when a user name passes
//! its threshold, only clients that have not signed in as that user recently are refused.
//! A client that authenticated as the user within `known_client` keeps getting in, so a
//! flood from other addresses cannot lock the user out of the places they already use.
//!
//! A client is counted by its address, an IPv6 client by its /64 ([`ClientKey`]): one host
//! can use every address of its /64 at will, so counting single IPv6 addresses would let it
//! guess without end (and would forget a real user whose temporary address changed).
//!
//! The tables are bounded: a sweep drops the counters whose window and ban are over when a
//! table has doubled since the last sweep (so sweeping costs O(1) per failure, amortised), and
//! a table that is still full after a sweep drops a tenth of its unbanned counters, those with
//! the fewest failures first. Bans in force are never dropped. Lookups take the user name as
//! a `&str` and allocate nothing; only a new counter or a new known client allocates.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::clock::Clock;
use crate::config::Lockout as Settings;

/// What a client is counted as: an IPv4 address, or the /64 of an IPv6 address (RFC 4291
/// §2.5.1: the low 64 bits are the interface identifier, which a host chooses itself and
/// changes at will, RFC 8981). IPv4-mapped IPv6 addresses count as their IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => ClientKey(ip),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let s = a.segments();
                    ClientKey(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }

    /// `192.0.2.1` or `2001:db8:1:2::/64`, as the dashboard shows it and `unban` takes it.
    fn show(self) -> String {
        match self.0 {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("{a}/64"),
        }
    }

    /// An address (any of the /64, for IPv6) or the form [`ClientKey::show`] gives.
    fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let ip: IpAddr = addr.parse().ok()?;
        match (ip, prefix) {
            (_, None) | (IpAddr::V6(_), Some("64")) | (IpAddr::V4(_), Some("32")) => {
                Some(ClientKey::of(ip))
            }
            _ => None,
        }
    }
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
    /// Attempts being hashed now ([`Lockout::attempt`]).
    pending: u32,
}

impl Entry {
    /// Still worth keeping: in its window, banned, an attempt in flight, or banned before
    /// within `max_ban` (so a sweep, which an attacker can force by making counters, does
    /// not reset the doubling of the next ban).
    fn live(&self, now: Duration, s: &Settings) -> bool {
        self.kept(now)
            || self.window_start.saturating_add(s.window) > now
            || (self.bans > 0 && self.banned_until.saturating_add(s.max_ban) > now)
    }

    /// Never dropped to make room: a ban in force, or an attempt in flight.
    fn kept(&self, now: Duration) -> bool {
        self.banned_until > now || self.pending > 0
    }

    /// The failures counting now plus the attempts in flight.
    fn load(&self, now: Duration, window: Duration) -> u32 {
        let failures = if now >= self.window_start.saturating_add(window) {
            0
        } else {
            self.failures
        };
        failures.saturating_add(self.pending)
    }
}

/// The failure counters, by kind; pairs by client, then user, so a lookup by `&str` needs
/// no key to be built.
#[derive(Default)]
struct Counters {
    clients: HashMap<ClientKey, Entry>,
    users: HashMap<String, Entry>,
    pairs: HashMap<ClientKey, HashMap<String, Entry>>,
    /// Entries in `pairs`' inner maps.
    pair_count: usize,
    /// The size at which the next sweep runs.
    next_sweep: usize,
}

impl Counters {
    fn len(&self) -> usize {
        self.clients.len() + self.users.len() + self.pair_count
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn pair(&self, client: ClientKey, user: &str) -> Option<&Entry> {
        self.pairs.get(&client).and_then(|m| m.get(user))
    }

    fn pair_mut(&mut self, client: ClientKey, user: &str) -> Option<&mut Entry> {
        self.pairs.get_mut(&client).and_then(|m| m.get_mut(user))
    }

    /// The client's and pair's ban, and the user's (which spares known clients).
    fn bans_until(&self, client: ClientKey, user: &str) -> (Duration, Duration) {
        let until = |e: Option<&Entry>| e.map_or(Duration::ZERO, |e| e.banned_until);
        (
            until(self.clients.get(&client)).max(until(self.pair(client, user))),
            until(self.users.get(user)),
        )
    }

    /// Calls `f` on the client's, user's and pair's counters, each with its threshold. They
    /// are made if missing; the user name is copied only then.
    fn each_entry(
        &mut self,
        client: ClientKey,
        user: &str,
        s: &Settings,
        mut f: impl FnMut(&mut Entry, u32),
    ) {
        f(self.clients.entry(client).or_default(), s.client_threshold);
        let users = &mut self.users;
        let e = match users.get_mut(user) {
            Some(e) => e,
            None => users.entry(user.to_owned()).or_default(),
        };
        f(e, s.user_threshold);
        let by_user = self.pairs.entry(client).or_default();
        if !by_user.contains_key(user) {
            self.pair_count += 1;
        }
        let e = match by_user.get_mut(user) {
            Some(e) => e,
            None => by_user.entry(user.to_owned()).or_default(),
        };
        f(e, s.pair_threshold);
    }

    fn remove_pair(&mut self, client: ClientKey, user: &str) -> bool {
        let Some(by_user) = self.pairs.get_mut(&client) else {
            return false;
        };
        let removed = by_user.remove(user).is_some();
        if by_user.is_empty() {
            self.pairs.remove(&client);
        }
        if removed {
            self.pair_count -= 1;
        }
        removed
    }

    /// Keeps the counters for which `keep` holds.
    fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) {
        self.clients.retain(|_, e| keep(e));
        self.users.retain(|_, e| keep(e));
        self.pairs.retain(|_, by_user| {
            by_user.retain(|_, e| keep(e));
            !by_user.is_empty()
        });
        self.pair_count = self.pairs.values().map(HashMap::len).sum();
    }

    /// Before a new counter is added: the bounds of the module doc.
    fn make_room(&mut self, now: Duration, s: &Settings) {
        if self.len() < self.next_sweep.max(SWEEP_AT) {
            return;
        }
        self.retain(|e| e.live(now, s));
        if self.len() >= MAX_ENTRIES {
            // Drop a tenth: the unbanned counters never banned before and with the fewest
            // failures first.
            let rank = |e: &Entry| (u64::from(e.bans) << 32) | u64::from(e.failures);
            let mut counts: Vec<u64> = Vec::new();
            let mut collect = |e: &Entry| {
                if !e.kept(now) {
                    counts.push(rank(e));
                }
            };
            self.clients.values().for_each(&mut collect);
            self.users.values().for_each(&mut collect);
            self.pairs
                .values()
                .flat_map(HashMap::values)
                .for_each(&mut collect);
            let mut budget = (MAX_ENTRIES / 10).min(counts.len());
            if budget > 0 {
                let (_, cutoff, _) = counts.select_nth_unstable(budget - 1);
                let cutoff = *cutoff;
                self.retain(|e| {
                    if e.kept(now) || rank(e) > cutoff || budget == 0 {
                        true
                    } else {
                        budget -= 1;
                        false
                    }
                });
            }
            if self.len() >= MAX_ENTRIES {
                tracing::warn!(
                    entries = self.len(),
                    "lockout: the failure table is full of bans in force"
                );
            }
        }
        self.next_sweep = (2 * self.len()).clamp(SWEEP_AT, MAX_ENTRIES);
    }
}

pub struct Lockout {
    settings: Settings,
    clock: Clock,
    counters: Mutex<Counters>,
    /// client -> user -> time of the last successful sign-in.
    known: Mutex<Known>,
}

#[derive(Default)]
struct Known {
    by_client: HashMap<ClientKey, HashMap<String, Duration>>,
    count: usize,
    next_sweep: usize,
}

/// The table size below which no sweep runs.
const SWEEP_AT: usize = 10_000;
/// Counters (or known clients) kept at most, bans in force aside: ~40 MB at most.
const MAX_ENTRIES: usize = 250_000;

/// A lock whose holder panicked still guards plain data: keep using it rather than turn the
/// protection off.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Lockout {
    pub fn new(settings: Settings, clock: Clock) -> Self {
        Lockout {
            settings,
            clock,
            counters: Mutex::new(Counters::default()),
            known: Mutex::new(Known::default()),
        }
    }

    /// Whether this attempt may be verified. `Err(seconds)` is the `Retry-After`.
    pub fn check(&self, client: IpAddr, user: &str) -> Result<(), u64> {
        if !self.settings.enabled {
            return Ok(());
        }
        let client = ClientKey::of(client);
        let counters = lock(&self.counters);
        // The normal case: nobody has failed lately, so nothing to look up (nor a clock to
        // read).
        if counters.is_empty() {
            return Ok(());
        }
        let now = self.clock.now();
        let (mut banned, user_ban) = counters.bans_until(client, user);
        drop(counters);
        if user_ban > now && !self.is_known(client, user, now) {
            banned = banned.max(user_ban);
        }
        if banned > now {
            Err((banned - now).as_secs().max(1))
        } else {
            Ok(())
        }
    }

    /// Before a password is hashed: refused (`Err(seconds)`, the `Retry-After`) when the
    /// failures so far and the attempts already being hashed would reach a threshold (for
    /// the user's, only from a client not known for the user, as in [`Lockout::check`]);
    /// otherwise this attempt counts as in flight until the returned guard drops. Without
    /// this, concurrent guesses all pass [`Lockout::check`] before the first one has failed,
    /// and one client could have as many guesses hashed as the hashing queue holds, however
    /// low the thresholds.
    ///
    /// A client that has not failed in the window and was never banned may have up to twice
    /// its threshold in flight: many people signing in at once behind one NAT are many users,
    /// each limited by their own pair and user counts (identical credentials share one hash,
    /// so a real user has one attempt in flight). Once it has failed, or was banned before,
    /// its failures and attempts in flight together meet its threshold.
    pub fn attempt(&self, client: IpAddr, user: &str) -> Result<Attempt<'_>, u64> {
        if !self.settings.enabled {
            return Ok(Attempt { counted: None });
        }
        let client = ClientKey::of(client);
        let now = self.clock.now();
        let s = &self.settings;
        let known = self.is_known(client, user, now);
        let mut counters = lock(&self.counters);
        // A ban imposed since `check` (by an attempt that failed meanwhile).
        let (mut banned, user_ban) = counters.bans_until(client, user);
        if !known {
            banned = banned.max(user_ban);
        }
        if banned > now {
            return Err((banned - now).as_secs().max(1));
        }
        let full = |e: Option<&Entry>, threshold: u32| {
            e.is_some_and(|e| e.load(now, s.window) >= threshold)
        };
        // A client that has not failed in the window and was never banned may have up to
        // twice its threshold in flight (a NAT of colleagues); any other, its threshold.
        let client_full = counters.clients.get(&client).is_some_and(|e| {
            let clean = e.load(now, s.window) == e.pending && e.bans == 0;
            let limit = if clean {
                s.client_threshold.saturating_mul(2)
            } else {
                s.client_threshold
            };
            e.load(now, s.window) >= limit
        });
        if client_full
            || full(counters.pair(client, user), s.pair_threshold)
            || (!known && full(counters.users.get(user), s.user_threshold))
        {
            return Err(1);
        }
        counters.make_room(now, s);
        counters.each_entry(client, user, s, |e, _| {
            e.pending = e.pending.saturating_add(1);
        });
        Ok(Attempt {
            counted: Some((self, client, user.to_owned())),
        })
    }

    /// Counts a failed attempt; returns true if it imposed a new ban.
    pub fn failure(&self, client: IpAddr, user: &str) -> bool {
        if !self.settings.enabled {
            return false;
        }
        let client = ClientKey::of(client);
        let now = self.clock.now();
        let s = &self.settings;
        let mut counters = lock(&self.counters);
        counters.make_room(now, s);
        let mut banned = false;
        counters.each_entry(client, user, s, |e, threshold| {
            banned |= count(e, threshold, now, s);
        });
        banned
    }

    /// A successful sign-in: remembers the client for the user and, if the password was
    /// just hashed (`fresh`, not answered from the verification cache), clears the pair's
    /// failures. A cached answer does not: with a shared /64 or NAT, a real user's requests
    /// would otherwise keep clearing the count of someone guessing at them from the same
    /// address. Allocates only for a client or user not seen before.
    pub fn success(&self, client: IpAddr, user: &str, fresh: bool) {
        if !self.settings.enabled {
            return;
        }
        let client = ClientKey::of(client);
        if fresh {
            let mut counters = lock(&self.counters);
            let in_flight = counters.pair_mut(client, user).is_some_and(|e| {
                e.failures = 0;
                e.bans = 0;
                e.pending > 0
            });
            // Other attempts of the pair in flight keep their count; otherwise it goes.
            if !in_flight {
                counters.remove_pair(client, user);
            }
        }
        let now = self.clock.now();
        let mut known = lock(&self.known);
        if let Some(t) = known
            .by_client
            .get_mut(&client)
            .and_then(|m| m.get_mut(user))
        {
            *t = now;
            return;
        }
        if known.count >= known.next_sweep.max(SWEEP_AT) {
            let keep = self.settings.known_client;
            let fresh = |t: &Duration| t.saturating_add(keep) > now;
            known.by_client.retain(|_, by_user| {
                by_user.retain(|_, t| fresh(t));
                !by_user.is_empty()
            });
            if known.by_client.values().map(HashMap::len).sum::<usize>() >= MAX_ENTRIES {
                // Full of recent sign-ins: forget the oldest tenth.
                let mut times: Vec<Duration> = known
                    .by_client
                    .values()
                    .flat_map(HashMap::values)
                    .copied()
                    .collect();
                let (_, cutoff, _) = times.select_nth_unstable(MAX_ENTRIES / 10);
                let cutoff = *cutoff;
                known.by_client.retain(|_, by_user| {
                    by_user.retain(|_, t| *t > cutoff);
                    !by_user.is_empty()
                });
            }
            known.count = known.by_client.values().map(HashMap::len).sum();
            known.next_sweep = (2 * known.count).clamp(SWEEP_AT, MAX_ENTRIES);
        }
        known
            .by_client
            .entry(client)
            .or_default()
            .insert(user.to_owned(), now);
        known.count += 1;
    }

    fn is_known(&self, client: ClientKey, user: &str, now: Duration) -> bool {
        lock(&self.known)
            .by_client
            .get(&client)
            .and_then(|m| m.get(user))
            .is_some_and(|t| t.saturating_add(self.settings.known_client) > now)
    }

    /// The bans in force now, for the dashboard.
    pub fn bans(&self) -> Vec<Ban> {
        let now = self.clock.now();
        let counters = lock(&self.counters);
        let ban = |kind, client: Option<ClientKey>, user: Option<&String>, e: &Entry| Ban {
            kind,
            client: client.map(ClientKey::show),
            user: user.cloned(),
            seconds_left: (e.banned_until - now).as_secs().max(1),
            bans: e.bans,
        };
        let banned = |e: &&Entry| e.banned_until > now;
        let mut bans: Vec<Ban> = Vec::new();
        for (c, e) in &counters.clients {
            if banned(&e) {
                bans.push(ban("client", Some(*c), None, e));
            }
        }
        for (u, e) in &counters.users {
            if banned(&e) {
                bans.push(ban("user", None, Some(u), e));
            }
        }
        for (c, by_user) in &counters.pairs {
            for (u, e) in by_user {
                if banned(&e) {
                    bans.push(ban("pair", Some(*c), Some(u), e));
                }
            }
        }
        bans.sort_by_key(|b| std::cmp::Reverse(b.seconds_left));
        bans
    }

    /// Lifts a ban (and forgets its failures). `client` is an address (for IPv6, any of its
    /// /64) or the form the dashboard shows. Returns whether there was one.
    pub fn unban(&self, kind: &str, client: Option<&str>, user: Option<&str>) -> bool {
        let client = client.and_then(ClientKey::parse);
        let mut counters = lock(&self.counters);
        match (kind, client, user) {
            ("client", Some(c), _) => counters.clients.remove(&c).is_some(),
            ("user", _, Some(u)) => counters.users.remove(u).is_some(),
            ("pair", Some(c), Some(u)) => counters.remove_pair(c, u),
            _ => false,
        }
    }

    /// Clients and user names banned now, for metrics.
    pub fn active_bans(&self) -> usize {
        let now = self.clock.now();
        let counters = lock(&self.counters);
        let banned = |e: &Entry| e.banned_until > now;
        counters.clients.values().filter(|e| banned(e)).count()
            + counters.users.values().filter(|e| banned(e)).count()
            + counters
                .pairs
                .values()
                .flat_map(HashMap::values)
                .filter(|e| banned(e))
                .count()
    }
}

/// An attempt being hashed (see [`Lockout::attempt`]); dropping it ends it, whatever the
/// outcome (a failure is counted by [`Lockout::failure`] before the guard drops).
pub struct Attempt<'a> {
    counted: Option<(&'a Lockout, ClientKey, String)>,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let Some((lockout, client, user)) = self.counted.take() else {
            return;
        };
        let mut counters = lock(&lockout.counters);
        // A counter that only this attempt made (no failure, no ban) goes again, so that
        // after a successful sign-in the table is as empty as before and `check` stays the
        // early return it is when nobody has failed.
        let end = |e: &mut Entry| {
            e.pending = e.pending.saturating_sub(1);
            e.pending == 0 && e.failures == 0 && e.bans == 0
        };
        let counters = &mut *counters;
        if counters.clients.get_mut(&client).is_some_and(end) {
            counters.clients.remove(&client);
        }
        if counters.users.get_mut(user.as_str()).is_some_and(end) {
            counters.users.remove(user.as_str());
        }
        let pair_done = counters.pair_mut(client, &user).is_some_and(end);
        if pair_done {
            counters.remove_pair(client, &user);
        }
    }
}

/// One more failure on `e`; true if it imposed a new ban.
fn count(e: &mut Entry, threshold: u32, now: Duration, s: &Settings) -> bool {
    // Attempts already in flight when the ban came fail during it: they are not counted, or
    // they would leave a wall of refusals after the ban (and behind a NAT, for everyone).
    if e.banned_until > now {
        return false;
    }
    if now >= e.window_start.saturating_add(s.window) {
        e.window_start = now;
        e.failures = 0;
    }
    e.failures = e.failures.saturating_add(1);
    if e.failures >= threshold {
        let factor = 1u32.checked_shl(e.bans.min(16)).unwrap_or(u32::MAX);
        let ban = s.ban.saturating_mul(factor).min(s.max_ban);
        e.banned_until = now.saturating_add(ban);
        e.bans = e.bans.saturating_add(1);
        e.failures = 0;
        e.window_start = now;
        return true;
    }
    false
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
            tarpit: Duration::ZERO,
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
        l.success(home, "alice", true);
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

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        let mut s = settings();
        s.client_threshold = 3;
        s.pair_threshold = 100;
        s.user_threshold = 100;
        let l = Lockout::new(s, Clock::default());
        // One host moving through its /64, a new address and user name for each guess.
        for (i, a) in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:aaaa::3"]
            .iter()
            .enumerate()
        {
            l.failure(a.parse().expect("ip"), &format!("user{i}"));
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        assert!(l.check(same_64, "alice").is_err(), "the /64 is banned");
        let next_64: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert!(l.check(next_64, "alice").is_ok(), "the next /64 is not");
        // IPv4-mapped addresses are their IPv4 address.
        let v4: IpAddr = "192.0.2.7".parse().expect("ip");
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(ClientKey::of(v4), ClientKey::of(mapped));
        // The dashboard shows the /64, and unban takes that or any address in it.
        let bans = l.bans();
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].client.as_deref(), Some("2001:db8:1:2::/64"));
        assert!(!l.unban("client", Some("2001:db8:1:2::/48"), None));
        assert!(l.unban("client", Some("2001:db8:1:2::/64"), None));
        l.failure(same_64, "x");
        l.failure(same_64, "y");
        l.failure(same_64, "z");
        assert!(l.check(same_64, "alice").is_err());
        assert!(l.unban("client", Some("2001:db8:1:2::1234"), None));
        assert!(l.check(same_64, "alice").is_ok());
    }

    #[test]
    fn the_tables_stay_bounded_and_keep_bans_in_force() {
        let l = Lockout::new(settings(), Clock::default());
        let attacker: IpAddr = "198.51.100.1".parse().expect("ip");
        l.failure(attacker, "bob");
        l.failure(attacker, "bob");
        assert!(l.check(attacker, "bob").is_err(), "pair banned");
        // A flood of single failures, each from a new address for a new user name: three
        // new counters each, none reaching a threshold.
        for i in 0..(MAX_ENTRIES / 2) {
            let [_, b, c, d] = u32::try_from(i).expect("small").to_be_bytes();
            l.failure(IpAddr::from([10, b, c, d]), &format!("u{i}"));
            let len = lock(&l.counters).len();
            assert!(len <= MAX_ENTRIES + 3, "{len} counters");
        }
        assert!(l.check(attacker, "bob").is_err(), "the ban survived");
        // Each successful sign-in is remembered, within the same bound.
        for i in 0..(MAX_ENTRIES + MAX_ENTRIES / 5) {
            let [_, b, c, d] = u32::try_from(i).expect("small").to_be_bytes();
            l.success(IpAddr::from([10, b, c, d]), "carol", true);
        }
        let known = lock(&l.known);
        assert!(known.count <= MAX_ENTRIES, "{} known", known.count);
        assert_eq!(
            known.count,
            known.by_client.values().map(HashMap::len).sum::<usize>()
        );
    }

    #[test]
    fn durations_past_the_clock_do_not_panic() {
        let mut s = settings();
        s.window = Duration::MAX;
        s.ban = Duration::MAX;
        s.max_ban = Duration::MAX;
        s.known_client = Duration::MAX;
        let l = Lockout::new(s, Clock::default());
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        l.success(a, "alice", true);
        for _ in 0..6 {
            l.failure(a, "bob");
        }
        assert!(l.check(a, "bob").is_err());
        assert!(l.check(a, "alice").is_err(), "the client is banned too");
    }

    #[test]
    fn attempts_in_flight_count_toward_the_thresholds() {
        // Thresholds: pair 2, user 3, client 5.
        let l = Lockout::new(settings(), Clock::default());
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let first = l.attempt(a, "bob").expect("first");
        let second = l.attempt(a, "bob").expect("second");
        assert_eq!(
            l.attempt(a, "bob").err(),
            Some(1),
            "past the pair's threshold"
        );
        let carol = l
            .attempt(a, "carol")
            .expect("another user from the same client");
        drop(second);
        let third = l.attempt(a, "bob").expect("room again once one has ended");
        // A counted failure and an attempt in flight reach the threshold together.
        l.failure(a, "bob");
        drop(first);
        assert!(l.attempt(a, "bob").is_err());
        drop(third);
        drop(carol);
        assert!(
            l.attempt(a, "bob").is_ok(),
            "one failure, nothing in flight"
        );
        // The user's threshold spares a client known for the user, as `check` does.
        let home: IpAddr = "192.0.2.50".parse().expect("ip");
        l.success(home, "dave", true);
        let strangers: Vec<Attempt<'_>> = (0..3u8)
            .map(|i| {
                l.attempt(IpAddr::from([198, 51, 100, i]), "dave")
                    .expect("stranger")
            })
            .collect();
        assert!(l
            .attempt("203.0.113.1".parse().expect("ip"), "dave")
            .is_err());
        assert!(l.attempt(home, "dave").is_ok());
        drop(strangers);
        // Many users signing in at once from one address that has not failed (an office
        // behind NAT): more in flight than the client threshold (5), none refused.
        let office: IpAddr = "192.0.2.80".parse().expect("ip");
        let many: Vec<Attempt<'_>> = (0..8)
            .map(|i| {
                l.attempt(office, &format!("staff{i}"))
                    .expect("a colleague")
            })
            .collect();
        // Once it fails, its attempts in flight count.
        l.failure(office, "staff0");
        assert!(l.attempt(office, "staff9").is_err());
        drop(many);
        // Attempts that neither failed nor were banned leave nothing behind.
        let l = Lockout::new(settings(), Clock::default());
        drop(l.attempt(office, "staff0").expect("attempt"));
        l.success(office, "staff0", true);
        assert!(lock(&l.counters).is_empty());
    }

    /// A clock moved by writing seconds to the returned file.
    fn test_clock() -> (tempfile::TempDir, std::path::PathBuf, Clock) {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("clock");
        std::fs::write(&file, "0").expect("write");
        (dir, file.clone(), Clock::with_offset_file(file))
    }

    fn set(file: &std::path::Path, seconds: u64) {
        std::fs::write(file, seconds.to_string()).expect("write");
    }

    #[test]
    fn a_client_banned_before_gets_no_allowance_and_failures_during_a_ban_do_not_count() {
        let (_dir, clock_file, clock) = test_clock();
        let mut s = settings();
        s.client_threshold = 5;
        s.pair_threshold = 100;
        s.user_threshold = 100;
        let l = Lockout::new(s, clock);
        let a: IpAddr = "198.51.100.7".parse().expect("ip");
        // A client that never failed: up to twice its threshold in flight, one user each.
        let wave: Vec<Attempt<'_>> = (0..10)
            .map(|i| {
                l.attempt(a, &format!("u{i}"))
                    .expect("within the allowance")
            })
            .collect();
        assert!(l.attempt(a, "u10").is_err(), "past the allowance");
        // All fail: the fifth failure bans the client, the other five fail during the ban.
        for i in 0..10 {
            l.failure(a, &format!("u{i}"));
        }
        drop(wave);
        assert!(l.check(a, "x").is_err());
        set(&clock_file, 61);
        assert!(
            l.check(a, "x").is_ok() && l.attempt(a, "x").is_ok(),
            "failures during the ban left no wall of refusals behind it"
        );
        // Banned before: no allowance; as many in flight as failures would ban it, no more.
        let second: Vec<Attempt<'_>> = (0..5)
            .map(|i| l.attempt(a, &format!("v{i}")).expect("up to the threshold"))
            .collect();
        assert!(l.attempt(a, "v5").is_err());
        drop(second);
    }

    #[test]
    fn a_forced_sweep_does_not_reset_the_doubling_of_bans() {
        let (_dir, clock_file, clock) = test_clock();
        let l = Lockout::new(settings(), clock);
        let a: IpAddr = "198.51.100.8".parse().expect("ip");
        l.failure(a, "bob");
        l.failure(a, "bob");
        let first = l.check(a, "bob").expect_err("first ban");
        assert!(first <= 60, "{first}");
        // The ban and the window are over; then someone makes enough counters for a sweep.
        set(&clock_file, 700);
        for i in 0..SWEEP_AT {
            let [_, b, c, d] = u32::try_from(i).expect("small").to_be_bytes();
            l.failure(IpAddr::from([10, b, c, d]), &format!("u{i}"));
        }
        l.failure(a, "bob");
        l.failure(a, "bob");
        let second = l.check(a, "bob").expect_err("second ban");
        assert!(second > 60, "the second ban doubled: {second}");
    }

    #[test]
    fn only_a_hashed_success_clears_the_pairs_failures() {
        let a: IpAddr = "192.0.2.9".parse().expect("ip");
        for (fresh, banned) in [(false, true), (true, false)] {
            let l = Lockout::new(settings(), Clock::default());
            l.failure(a, "bob");
            l.success(a, "bob", fresh);
            l.failure(a, "bob");
            assert_eq!(l.check(a, "bob").is_err(), banned, "fresh = {fresh}");
        }
    }
}
