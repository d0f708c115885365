//! What the dashboard shows: recent denials, denials per minute by reason, and the clients and
//! user names that fail most. Only denials are recorded (one short lock each); allowed requests
//! cost nothing here.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::audit::Record;

/// Recent denials kept for the dashboard.
const RECENT: usize = 200;
/// Minutes of timeline kept.
const MINUTES: usize = 60;
/// Distinct clients or user names counted before the least useful are dropped.
const TOP_CAP: usize = 10_000;

#[derive(Debug, Clone, Serialize)]
pub struct Denial {
    /// RFC 3339, filled in from `at` when the dashboard asks (not on the request path).
    pub time: String,
    pub request_id: String,
    /// Filled in from `client_ip` when the dashboard asks.
    pub client: String,
    #[serde(skip)]
    at: SystemTime,
    #[serde(skip)]
    client_ip: IpAddr,
    /// Written as its text; a standard method is held without an allocation.
    #[serde(serialize_with = "as_str")]
    pub method: http::Method,
    pub path: String,
    #[serde(serialize_with = "crate::audit::some_str")]
    pub route: Option<std::sync::Arc<str>>,
    pub user: Option<String>,
    pub status: u16,
    pub reason: &'static str,
    pub detail: Option<&'static str>,
    /// The decision in plain words (`authgate explain`'s text), made when the dashboard asks.
    pub trace: String,
    #[serde(skip)]
    scheme: Option<&'static str>,
    #[serde(skip)]
    outcome: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Minute {
    /// Unix time of the minute's start, in seconds.
    pub at: u64,
    pub by_reason: HashMap<&'static str, u64>,
}

/// A minute of the timeline as it is counted: a list rather than a map, since a minute sees
/// a handful of reasons and the codes are authgate's own (nothing a client can choose), so a
/// short scan costs less than hashing the code.
struct Counted {
    at: u64,
    by_reason: Vec<(&'static str, u64)>,
}

impl Counted {
    fn minute(&self) -> Minute {
        Minute {
            at: self.at,
            by_reason: self.by_reason.iter().copied().collect(),
        }
    }
}

#[derive(Default)]
struct State {
    recent: VecDeque<Denial>,
    timeline: VecDeque<Counted>,
    clients: HashMap<IpAddr, u64>,
    /// The last client denied and its denials not yet added to `clients`: a refused client
    /// is mostly refused again next (a script, a guesser), and adding its denials up here
    /// spares hashing its address (with SipHash: addresses are the client's choice) for each.
    pending: Option<(IpAddr, u64)>,
    users: HashMap<String, u64>,
}

#[derive(Default)]
pub struct Insights {
    state: Mutex<State>,
}

#[derive(Debug, Serialize)]
pub struct Summary {
    pub timeline: Vec<Minute>,
    pub top_clients: Vec<(String, u64)>,
    pub top_users: Vec<(String, u64)>,
    pub recent: Vec<Denial>,
}

impl Insights {
    /// Records a decision if it was a denial.
    pub fn record(&self, r: &Record) {
        let Some(reason) = r.reason else { return };
        let minute =
            r.at.duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() / 60 * 60);
        let Ok(mut s) = self.state.lock() else { return };
        if s.timeline.back().is_none_or(|m| m.at != minute) {
            s.timeline.push_back(Counted {
                at: minute,
                by_reason: Vec::new(),
            });
            if s.timeline.len() > MINUTES {
                s.timeline.pop_front();
            }
        }
        if let Some(m) = s.timeline.back_mut() {
            match m.by_reason.iter_mut().find(|(code, _)| *code == reason) {
                Some((_, n)) => *n += 1,
                None => m.by_reason.push((reason, 1)),
            }
        }
        match &mut s.pending {
            Some((ip, n)) if *ip == r.client_ip => *n += 1,
            _ => {
                if let Some((ip, n)) = s.pending.replace((r.client_ip, 1)) {
                    add(&mut s.clients, &ip, n, |ip| *ip);
                }
            }
        }
        if let Some(u) = &r.user {
            add(&mut s.users, u.as_str(), 1, str::to_owned);
        }
        // Once the list is full, the oldest denial's strings take the newest one's text:
        // no allocation on the request path.
        let oldest = if s.recent.len() >= RECENT {
            s.recent.pop_front()
        } else {
            None
        };
        let mut d = oldest.unwrap_or_else(|| Denial {
            time: String::new(),
            request_id: String::new(),
            client: String::new(),
            at: r.at,
            client_ip: r.client_ip,
            method: http::Method::GET,
            path: String::new(),
            route: None,
            user: None,
            status: 0,
            reason,
            detail: None,
            trace: String::new(),
            scheme: None,
            outcome: "",
        });
        d.request_id.clear();
        d.request_id.push_str(r.request_id());
        d.path.clone_from(&r.path);
        d.user.clone_from(&r.user);
        d.route.clone_from(&r.route);
        d.method.clone_from(&r.method);
        (d.at, d.client_ip, d.status, d.reason) = (r.at, r.client_ip, r.status, reason);
        (d.detail, d.scheme, d.outcome) = (r.detail, r.scheme, r.outcome);
        s.recent.push_back(d);
    }

    /// The trace of a recent denial, by request id.
    pub fn trace(&self, request_id: &str) -> Option<String> {
        let s = self.state.lock().ok()?;
        let d = s
            .recent
            .iter()
            .find(|d| d.request_id == request_id)?
            .clone();
        Some(with_trace(d).trace)
    }

    pub fn summary(&self) -> Summary {
        let Ok(mut s) = self.state.lock() else {
            return Summary {
                timeline: vec![],
                top_clients: vec![],
                top_users: vec![],
                recent: vec![],
            };
        };
        if let Some((ip, n)) = s.pending.take() {
            add(&mut s.clients, &ip, n, |ip| *ip);
        }
        Summary {
            timeline: s.timeline.iter().map(Counted::minute).collect(),
            top_clients: top(&s.clients, 10)
                .into_iter()
                .map(|(ip, n)| (ip.to_string(), n))
                .collect(),
            top_users: top(&s.users, 10),
            recent: s.recent.iter().rev().cloned().map(with_trace).collect(),
        }
    }
}

/// Fills in the time, the client and the plain-words trace (only for what the dashboard
/// shows, not on the request path).
fn with_trace(mut d: Denial) -> Denial {
    d.time = humantime::format_rfc3339_millis(d.at).to_string();
    d.client = d.client_ip.to_string();
    let v = serde_json::json!({
        "request_id": d.request_id, "time": d.time, "method": d.method.as_str(), "path": d.path,
        "client": d.client, "route": d.route.as_deref(), "user": d.user, "scheme": d.scheme,
        "outcome": d.outcome, "status": d.status, "reason": d.reason, "detail": d.detail,
    });
    d.trace = crate::explain::explain_json(&v);
    d
}

fn as_str<S: serde::Serializer>(m: &http::Method, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(m.as_str())
}

/// Counts `n` more for `key`; the owned key is made only for a new entry.
fn add<K, Q>(map: &mut HashMap<K, u64>, key: &Q, n: u64, owned: impl FnOnce(&Q) -> K)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: std::hash::Hash + Eq + ?Sized,
{
    if let Some(count) = map.get_mut(key) {
        *count += n;
        return;
    }
    if map.len() >= TOP_CAP {
        // Keep the heavy hitters: drop everything seen only once.
        map.retain(|_, count| *count > 1);
    }
    map.insert(owned(key), n);
}

fn top<K: Clone + Ord>(map: &HashMap<K, u64>, n: usize) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = map.iter().map(|(k, c)| (k.clone(), *c)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v.truncate(n);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_counted_across_runs_of_the_same_address() {
        let insights = Insights::default();
        // One minute for all, so the timeline has one entry.
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let deny = |ip: &str| Record {
            at,
            client_ip: ip.parse().expect("ip"),
            reason: Some("missing_credentials"),
            status: 401,
            ..Record::default()
        };
        for ip in ["10.0.0.1", "10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.1"] {
            insights.record(&deny(ip));
        }
        let want = vec![("10.0.0.1".to_string(), 4), ("10.0.0.2".to_string(), 1)];
        assert_eq!(insights.summary().top_clients, want);
        // Asking again (with nothing pending) and after more denials.
        assert_eq!(insights.summary().top_clients, want);
        insights.record(&deny("10.0.0.2"));
        insights.record(&deny("10.0.0.2"));
        assert_eq!(
            insights.summary().top_clients,
            vec![("10.0.0.1".to_string(), 4), ("10.0.0.2".to_string(), 3)]
        );
        let minute = &insights.summary().timeline[0];
        assert_eq!(minute.by_reason.get("missing_credentials"), Some(&7));
    }

    #[test]
    fn the_newest_denials_are_kept_each_with_its_own_fields() {
        let insights = Insights::default();
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        for i in 0..RECENT + 5 {
            let (method, reason, status) = match i % 2 {
                0 => (http::Method::GET, "invalid_credentials", 401),
                _ => (http::Method::POST, "forbidden", 403),
            };
            insights.record(&Record {
                at,
                request_id: http::HeaderValue::from_str(&format!("id-{i}")).expect("id"),
                path: format!("/p/{i}"),
                // Every other one has a user: a reused entry must not keep the old one.
                user: (i % 2 == 0).then(|| format!("u{i}")),
                route: (i % 3 == 0).then(|| std::sync::Arc::from("route[0] /")),
                method,
                reason: Some(reason),
                status,
                ..Record::default()
            });
        }
        let recent = insights.summary().recent;
        assert_eq!(recent.len(), RECENT);
        // Newest first; the five oldest were dropped.
        for (d, i) in recent.iter().zip((5..RECENT + 5).rev()) {
            assert_eq!(d.request_id, format!("id-{i}"));
            assert_eq!(d.path, format!("/p/{i}"));
            assert_eq!(d.user, (i % 2 == 0).then(|| format!("u{i}")));
            assert_eq!(d.route.is_some(), i % 3 == 0);
            assert_eq!(d.method == http::Method::GET, i % 2 == 0);
            assert_eq!(d.status, if i % 2 == 0 { 401 } else { 403 });
            assert!(!d.time.is_empty(), "filled in when asked");
        }
    }
}
