//! Counters for the admin listener's `/metrics` (Prometheus text format 0.0.4).
//!
//! Every counter is a fixed atomic laid out at start-up (routes and reasons are known then),
//! so recording a decision is one relaxed atomic add: no lock, no allocation.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `authgate_decisions_total` | counter | `route`, `outcome` (`allow`/`deny`), `reason` (empty for allow) |
//! | `authgate_authentication_duration_seconds` | histogram | `scheme` |
//! | `authgate_verification_cache_hits_total` / `_misses_total` | counter | |
//! | `authgate_password_hashes_total` | counter | (hash computations: cache misses that ran bcrypt/argon2/...) |
//! | `authgate_upstream_errors_total` | counter | `kind` (`unavailable`, `timeout`) |
//! | `authgate_audit_records_lost_total` | counter | `cause` (`queue_full`, `write_error`) |

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::config::{Config, Scheme};
use crate::reason::Reason;

/// Histogram bucket upper bounds, in seconds: a cache hit is microseconds, a bcrypt-10
/// verification tens of milliseconds.
const BUCKETS: &[f64] = &[
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

struct Histogram {
    buckets: Vec<AtomicU64>,
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_nanos: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            if let Some(b) = self.buckets.get(i) {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.sum_nanos.fetch_add(
            u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// The schemes with an authentication-time histogram, in exposition order.
const SCHEMES: [Scheme; 3] = [Scheme::Basic, Scheme::Bearer, Scheme::Session];

pub struct Metrics {
    /// Route labels by route index, then one for "no route".
    routes: Vec<String>,
    /// Reason codes; decisions are indexed by position + 1, 0 meaning "allow".
    reasons: Vec<&'static str>,
    decisions: Vec<AtomicU64>,
    /// Authentication time by scheme, in [`SCHEMES`] order.
    auth: [Histogram; 3],
    cache_hits: AtomicU64,
    cache_misses: AtomicU64,
    hashes: AtomicU64,
    bans: AtomicU64,
    busy: AtomicU64,
    /// The audit log, for its count of lost records.
    audit: Option<crate::audit::AuditLog>,
}

impl Metrics {
    pub fn new(config: &Config) -> Self {
        let mut routes: Vec<String> = vec![String::new(); config.routes.len()];
        for r in &config.routes {
            if let Some(slot) = routes.get_mut(r.index) {
                *slot = r.label();
            }
        }
        routes.push(String::new());
        let reasons: Vec<&'static str> = Reason::all().iter().map(Reason::code).collect();
        let n = routes.len() * (reasons.len() + 1);
        Metrics {
            routes,
            reasons,
            decisions: (0..n).map(|_| AtomicU64::new(0)).collect(),
            auth: [Histogram::new(), Histogram::new(), Histogram::new()],
            cache_hits: AtomicU64::new(0),
            cache_misses: AtomicU64::new(0),
            hashes: AtomicU64::new(0),
            bans: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            audit: None,
        }
    }

    /// Also reports the audit log's lost records.
    pub fn with_audit(mut self, audit: crate::audit::AuditLog) -> Self {
        self.audit = Some(audit);
        self
    }

    /// Counts one decision. `route` is the route's index (None: no route matched); `reason`
    /// is None for an allowed request.
    pub fn decision(&self, route: Option<usize>, reason: Option<&'static str>) {
        let r = route
            .unwrap_or(self.routes.len() - 1)
            .min(self.routes.len() - 1);
        let k = match reason {
            None => 0,
            Some(code) => self
                .reasons
                .iter()
                .position(|c| *c == code)
                .map_or(0, |i| i + 1),
        };
        if let Some(c) = self.decisions.get(r * (self.reasons.len() + 1) + k) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn basic_authentication(&self, took: Duration) {
        self.authentication(Scheme::Basic, took);
    }

    /// Time spent authenticating one request with `scheme` (successful or not).
    pub fn authentication(&self, scheme: Scheme, took: Duration) {
        let i = SCHEMES.iter().position(|s| *s == scheme).unwrap_or(0);
        if let Some(h) = self.auth.get(i) {
            h.observe(took);
        }
    }

    pub fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    pub fn cache_miss(&self) {
        self.cache_misses.fetch_add(1, Ordering::Relaxed);
    }

    pub fn hashing_busy(&self) {
        self.busy.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ban(&self) {
        self.bans.fetch_add(1, Ordering::Relaxed);
    }

    pub fn password_hash(&self) {
        self.hashes.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    /// The gauges of upstream connections (`forward::pool`): open now, and the most that may
    /// be. Appended to [`Metrics::render`]'s text by the admin listener, which has the gateway.
    pub fn render_upstream_connections(out: &mut String, (open, max): (usize, usize)) {
        let _ = writeln!(
            out,
            "# HELP authgate_upstream_connections Upstream connections open now (busy, pinned to a client connection, or idle)."
        );
        let _ = writeln!(out, "# TYPE authgate_upstream_connections gauge");
        let _ = writeln!(out, "authgate_upstream_connections {open}");
        let _ = writeln!(
            out,
            "# HELP authgate_upstream_connections_max The most upstream connections open at once (twice max_connections); past it requests wait, then get 503 upstream_busy."
        );
        let _ = writeln!(out, "# TYPE authgate_upstream_connections_max gauge");
        let _ = writeln!(out, "authgate_upstream_connections_max {max}");
    }

    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP authgate_decisions_total Decisions by route, outcome and reason."
        );
        let _ = writeln!(out, "# TYPE authgate_decisions_total counter");
        let width = self.reasons.len() + 1;
        for (ri, route) in self.routes.iter().enumerate() {
            for k in 0..width {
                let n = self
                    .decisions
                    .get(ri * width + k)
                    .map_or(0, |c| c.load(Ordering::Relaxed));
                if n == 0 {
                    continue;
                }
                let (outcome, reason) = match k.checked_sub(1).and_then(|i| self.reasons.get(i)) {
                    None => ("allow", ""),
                    Some(code) => ("deny", *code),
                };
                let _ = writeln!(
                    out,
                    "authgate_decisions_total{{route=\"{}\",outcome=\"{outcome}\",reason=\"{reason}\"}} {n}",
                    escape(route)
                );
            }
        }
        let mut upstream = [0u64; 3];
        for (ri, _) in self.routes.iter().enumerate() {
            for (slot, code) in [
                (0, "upstream_unavailable"),
                (1, "upstream_timeout"),
                (2, "upstream_busy"),
            ] {
                if let Some(i) = self.reasons.iter().position(|c| *c == code) {
                    if let Some(c) = self.decisions.get(ri * width + i + 1) {
                        upstream[slot] += c.load(Ordering::Relaxed);
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "# HELP authgate_upstream_errors_total Requests the upstream did not answer."
        );
        let _ = writeln!(out, "# TYPE authgate_upstream_errors_total counter");
        let _ = writeln!(
            out,
            "authgate_upstream_errors_total{{kind=\"unavailable\"}} {}",
            upstream[0]
        );
        let _ = writeln!(
            out,
            "authgate_upstream_errors_total{{kind=\"timeout\"}} {}",
            upstream[1]
        );
        let _ = writeln!(
            out,
            "authgate_upstream_errors_total{{kind=\"busy\"}} {}",
            upstream[2]
        );

        let _ = writeln!(out, "# HELP authgate_authentication_duration_seconds Time to authenticate a request, by scheme.");
        let _ = writeln!(
            out,
            "# TYPE authgate_authentication_duration_seconds histogram"
        );
        for (scheme, h) in SCHEMES.iter().zip(&self.auth) {
            let scheme = scheme.name();
            let mut cumulative = 0u64;
            for (bound, count) in BUCKETS.iter().zip(&h.buckets) {
                cumulative += count.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "authgate_authentication_duration_seconds_bucket{{scheme=\"{scheme}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "authgate_authentication_duration_seconds_bucket{{scheme=\"{scheme}\",le=\"+Inf\"}} {count}");
            let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "authgate_authentication_duration_seconds_sum{{scheme=\"{scheme}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "authgate_authentication_duration_seconds_count{{scheme=\"{scheme}\"}} {count}"
            );
        }

        for (name, help, v) in [
            (
                "authgate_verification_cache_hits_total",
                "Basic verifications answered from the cache.",
                &self.cache_hits,
            ),
            (
                "authgate_verification_cache_misses_total",
                "Basic verifications not in the cache.",
                &self.cache_misses,
            ),
            (
                "authgate_hashing_busy_total",
                "Sign-ins refused with 503 because the hashing queue stayed full.",
                &self.busy,
            ),
            (
                "authgate_bans_total",
                "Bans imposed on a client, a user name or a (client, user) pair.",
                &self.bans,
            ),
            (
                "authgate_password_hashes_total",
                "Password hash computations (the expensive part).",
                &self.hashes,
            ),
        ] {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", v.load(Ordering::Relaxed));
        }

        if let Some(audit) = &self.audit {
            let lost = audit.lost();
            let name = "authgate_audit_records_lost_total";
            let _ = writeln!(
                out,
                "# HELP {name} Audit records not written: the writer fell behind by the whole \
                 queue (queue_full), or the output failed (write_error)."
            );
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name}{{cause=\"queue_full\"}} {}", lost.queue_full);
            let _ = writeln!(out, "{name}{{cause=\"write_error\"}} {}", lost.write_error);
        }
        out
    }
}

/// Label values escape `\`, `"` and newlines (Prometheus text format).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn renders_counters_and_histogram() {
        let loaded = crate::config::load_str(
            Path::new("/x/t.toml"),
            "[[route]]\npath = \"/a\"\nupstream = \"http://127.0.0.1:1\"\nauth = \"none\"\n",
        );
        let m = Metrics::new(&loaded.config.expect("config"));
        m.decision(Some(0), None);
        m.decision(Some(0), None);
        m.decision(None, Some("no_route"));
        m.decision(Some(0), Some("upstream_timeout"));
        m.basic_authentication(Duration::from_millis(3));
        m.authentication(Scheme::Bearer, Duration::from_micros(20));
        let text = m.render();
        assert!(
            text.contains(
                "authgate_authentication_duration_seconds_bucket{scheme=\"bearer\",le=\"0.00005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("authgate_authentication_duration_seconds_count{scheme=\"session\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("authgate_decisions_total{route=\"/a\",outcome=\"allow\",reason=\"\"} 2"),
            "{text}"
        );
        assert!(
            text.contains(
                "authgate_decisions_total{route=\"\",outcome=\"deny\",reason=\"no_route\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("authgate_upstream_errors_total{kind=\"timeout\"} 1"),
            "{text}"
        );
        assert!(
            text.contains(
                "authgate_authentication_duration_seconds_bucket{scheme=\"basic\",le=\"0.005\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "authgate_authentication_duration_seconds_bucket{scheme=\"basic\",le=\"0.001\"} 0"
            ),
            "{text}"
        );
    }
}
