//! The audit log: one JSON line per decision, written by a background thread so a slow disk
//! never holds up a request.
//!
//! Fields: `time` (RFC 3339, UTC), `request_id`, `client` (address, after trusted proxies),
//! `peer` (the TCP peer), `route`, `method`, `path`, `user` (when known, also for wrong
//! passwords), `scheme`, `token` (the id of an authgate API token, never its secret), `outcome` (`allow` or `deny`), `status`, `reason`, `detail` (what
//! the client is not told, e.g. `unknown_user`), `latency_ms`. Never a password, a token or
//! an `Authorization` value. `latency_ms` is a JSON number of milliseconds to the microsecond
//! (`0.412`, `83.333`, `5.0`).

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::AuditTarget;

#[derive(Debug, Serialize)]
pub struct Record {
    /// Formatted from `at` off the request path: by the audit writer (which writes one shared
    /// string per millisecond in its place) and by the dashboard when it shows a record.
    pub time: String,
    #[serde(skip)]
    pub at: SystemTime,
    /// authgate's id of the request (or a trusted proxy's): the same value as the
    /// `X-Request-Id` sent upstream and to the client, shared rather than copied.
    #[serde(serialize_with = "header_text")]
    pub request_id: http::HeaderValue,
    /// The matched route's index, for metrics.
    #[serde(skip)]
    pub route_index: Option<usize>,
    /// The client's address (after trusted proxies); written as text by the writer thread.
    #[serde(rename = "client", serialize_with = "display")]
    pub client_ip: std::net::IpAddr,
    /// The TCP peer; None for a dry run.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "display_some"
    )]
    pub peer: Option<std::net::SocketAddr>,
    /// The matched route's label, made once per route and shared by its records.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "some_str")]
    pub route: Option<std::sync::Arc<str>>,
    #[serde(serialize_with = "display")]
    pub method: http::Method,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<&'static str>,
    /// The id of the authgate API token presented (its public part, as `token ls` shows
    /// it), allowed or not: which token to look at or revoke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub outcome: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
    /// From the request's arrival to its answer; written as `latency_ms`, to the microsecond.
    #[serde(rename = "latency_ms", serialize_with = "millis")]
    pub latency: Duration,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            time: String::new(),
            at: SystemTime::now(),
            request_id: http::HeaderValue::from_static(""),
            route_index: None,
            client_ip: std::net::IpAddr::from([0, 0, 0, 0]),
            peer: None,
            route: None,
            method: http::Method::GET,
            path: String::new(),
            user: None,
            scheme: None,
            token: None,
            outcome: "deny",
            status: 0,
            reason: None,
            detail: None,
            latency: Duration::ZERO,
        }
    }
}

impl Record {
    /// The request id as text (`gateway::request_id` keeps only visible ASCII).
    pub fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or("")
    }

    /// Appends the record as one JSON object, exactly as `serde_json` writes it (the test
    /// below holds the two to the same bytes), without serde's per-field machinery: the
    /// writer thread shares the gateway's CPU.
    pub fn write_json(&self, out: &mut String) {
        self.write_json_at(&self.time, &mut LastIp::default(), out);
    }

    /// [`Record::write_json`] with `time` in place of `self.time`: the writer thread formats
    /// the time once per millisecond and shares it between records, and keeps the text of
    /// the last address it wrote in `ips`.
    fn write_json_at(&self, time: &str, ips: &mut LastIp, out: &mut String) {
        // The time is humantime's RFC 3339 text, and a request id is authgate's hex or a
        // trusted proxy's id of `[A-Za-z0-9._:-]` (`gateway::request_id` keeps no other).
        out.push_str("{\"time\":");
        push_plain(out, time);
        out.push_str(",\"request_id\":");
        push_plain(out, self.request_id());
        out.push_str(",\"client\":\"");
        ips.push(out, self.client_ip);
        out.push('"');
        if let Some(peer) = self.peer {
            out.push_str(",\"peer\":\"");
            match peer {
                std::net::SocketAddr::V4(a) => {
                    ips.push(out, std::net::IpAddr::V4(*a.ip()));
                    out.push(':');
                    crate::ascii::push_u16(out, a.port());
                }
                v6 => crate::ascii::push_socket_addr(out, v6),
            }
            out.push('"');
        }
        if let Some(route) = &self.route {
            out.push_str(",\"route\":");
            push_json_str(out, route);
        }
        out.push_str(",\"method\":");
        push_plain(out, self.method.as_str());
        out.push_str(",\"path\":");
        push_json_str(out, &self.path);
        if let Some(user) = &self.user {
            out.push_str(",\"user\":");
            push_json_str(out, user);
        }
        if let Some(scheme) = self.scheme {
            out.push_str(",\"scheme\":");
            push_plain(out, scheme);
        }
        if let Some(token) = &self.token {
            out.push_str(",\"token\":");
            push_json_str(out, token);
        }
        out.push_str(",\"outcome\":");
        push_plain(out, self.outcome);
        out.push_str(",\"status\":");
        crate::ascii::push_u16(out, self.status);
        if let Some(reason) = self.reason {
            out.push_str(",\"reason\":");
            push_plain(out, reason);
        }
        if let Some(detail) = self.detail {
            out.push_str(",\"detail\":");
            push_plain(out, detail);
        }
        out.push_str(",\"latency_ms\":");
        push_millis(out, micros(self.latency));
        out.push('}');
    }
}

/// The last address the writer wrote, as text: a record's `client` and `peer` are the same
/// address unless the peer is a trusted proxy, and consecutive records mostly come from the
/// same few clients, so most addresses are copied rather than formatted.
#[derive(Default)]
struct LastIp {
    ip: Option<std::net::IpAddr>,
    text: String,
}

impl LastIp {
    /// Appends `ip` as [`crate::ascii::push_ip`] writes it.
    fn push(&mut self, out: &mut String, ip: std::net::IpAddr) {
        if self.ip != Some(ip) {
            self.text.clear();
            crate::ascii::push_ip(&mut self.text, ip);
            self.ip = Some(ip);
        }
        out.push_str(&self.text);
    }
}

/// A JSON string of text that has nothing to escape: authgate's own codes and names
/// (scheme, outcome, reason, detail), times and request ids, and a method (a token, RFC 9110
/// §9.1). Skips [`push_json_str`]'s scan; a debug build checks the premise.
fn push_plain(out: &mut String, s: &str) {
    debug_assert!(
        next_escape(s.as_bytes(), 0).is_none(),
        "{s:?} needs escaping"
    );
    out.push('"');
    out.push_str(s);
    out.push('"');
}

/// A JSON string (RFC 8259 §7) with serde_json's escapes: `"`, `\\` and control characters.
fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    while let Some(i) = next_escape(bytes, start) {
        let b = bytes[i];
        let escape: &str = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            _ => "",
        };
        out.push_str(&s[start..i]);
        if escape.is_empty() {
            out.push_str("\\u00");
            crate::ascii::push_hex(out, b);
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// The index of the first byte at or after `from` that JSON must escape (`"`, `\`, or a
/// control character below 0x20), testing eight bytes at a time: most strings in a record
/// have none, and this runs on the writer thread that shares the gateway's CPU.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTE: u64 = u64::from_ne_bytes([b'"'; 8]);
    const BACKSLASH: u64 = u64::from_ne_bytes([b'\\'; 8]);
    // Non-zero iff some byte of `x` is below `n` (n <= 0x80); exact as a yes/no answer.
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let needs = |b: u8| b < 0x20 || b == b'"' || b == b'\\';
    let mut i = from;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let word = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
        if below(word, 0x20) | below(word ^ QUOTE, 1) | below(word ^ BACKSLASH, 1) != 0 {
            break;
        }
        i += 8;
    }
    bytes[i..].iter().position(|&b| needs(b)).map(|p| i + p)
}

/// Whole microseconds of `d` (saturating; no request takes 584,000 years).
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Appends `micros` as a JSON number of milliseconds with up to three decimals, the way
/// `serde_json` writes `micros as f64 / 1000.0` (`0.001`, `83.333`, `5.0`; the test below
/// holds the two to the same bytes below 10^12 ms): integer arithmetic, not a float
/// formatter, on the writer thread that shares the gateway's CPU.
fn push_millis(out: &mut String, micros: u64) {
    crate::ascii::push_u64(out, micros / 1000);
    out.push('.');
    let frac = micros % 1000;
    if frac == 0 {
        out.push('0');
        return;
    }
    // Three digits, trailing zeros dropped: 120 -> "12", 5 -> "005".
    let digits = [
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ];
    let mut len = 3;
    while len > 1 && digits[len - 1] == b'0' {
        len -= 1;
    }
    // Only ASCII digits were written.
    out.push_str(std::str::from_utf8(&digits[..len]).unwrap_or_default());
}

/// `latency` for serde: the same number [`push_millis`] writes.
fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(micros(*d) as f64 / 1000.0)
}

/// A header value (the request id) as the text [`Record::request_id`] gives.
fn header_text<S: serde::Serializer>(v: &http::HeaderValue, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.to_str().unwrap_or(""))
}

/// Writes a value with its `Display` (an address), without an intermediate `String`.
fn display<T: std::fmt::Display, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// An optional shared string, as serde writes an `Option<String>`.
pub(crate) fn some_str<S: serde::Serializer>(
    v: &Option<std::sync::Arc<str>>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.serialize_some(&**v),
        None => s.serialize_none(),
    }
}

fn display_some<T: std::fmt::Display, S: serde::Serializer>(
    v: &Option<T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}

/// Records not yet written. Past this many, new records are counted as dropped and the count
/// is written as its own line, rather than growing without bound or slowing requests.
const QUEUE: usize = 65_536;

/// How often the writer wakes to write what has queued up while records keep coming. Requests
/// never wake it: a wake-up per request costs a futex call and a context switch, which on one
/// core is a large share of a proxied request. Short, because the writer's work comes in one
/// burst per tick and, on a busy core, the requests in flight wait for it: at 20 ms, a burst
/// (~3,000 records at 160k denials/s, ~1 ms) put the 401 row's p99 latency at ~1.1 ms; at
/// 5 ms it is ~0.5 ms, with the same throughput (`bench/RESULTS.md`).
const TICK: Duration = Duration::from_millis(5);

/// How long the writer sleeps after a tick that found nothing to write, so that an idle
/// gateway does not wake 200 times a second.
const IDLE_TICK: Duration = Duration::from_millis(50);

struct Shared {
    queue: Mutex<Vec<Record>>,
    /// Records refused because the queue was full, not yet reported in the log itself.
    dropped: AtomicU64,
    closed: AtomicBool,
    /// Records lost since start, for `/metrics`: refused by a full queue, or not written
    /// because the output failed (a full disk, a closed pipe).
    lost_queue_full: AtomicU64,
    lost_write_error: AtomicU64,
}

/// Records lost since start, by cause (see [`AuditLog::lost`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lost {
    pub queue_full: u64,
    pub write_error: u64,
}

/// How often, at most, a failing output is reported on stderr.
const ERROR_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Whether a failure last reported at `last` is due to be reported again; if so, notes now.
fn report_due(last: &mut Option<std::time::Instant>) -> bool {
    let due = last.is_none_or(|at| at.elapsed() >= ERROR_REPORT_INTERVAL);
    if due {
        *last = Some(std::time::Instant::now());
    }
    due
}

/// Where records go. Cloning is cheap.
#[derive(Clone)]
pub struct AuditLog {
    shared: Option<Arc<Shared>>,
    writer: Option<Arc<Mutex<Option<std::thread::JoinHandle<()>>>>>,
}

impl AuditLog {
    pub fn open(target: &AuditTarget) -> std::io::Result<Self> {
        let out = match target {
            AuditTarget::Off => {
                return Ok(AuditLog {
                    shared: None,
                    writer: None,
                })
            }
            AuditTarget::Stdout => Output::stdout()?,
            AuditTarget::File(path) => Output::File(LogFile::open(path.clone())?),
        };
        let shared = Arc::new(Shared {
            queue: Mutex::new(Vec::with_capacity(1024)),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            lost_queue_full: AtomicU64::new(0),
            lost_write_error: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || writer(&s, out))?;
        Ok(AuditLog {
            shared: Some(shared),
            writer: Some(Arc::new(Mutex::new(Some(handle)))),
        })
    }

    /// A log that discards everything.
    pub fn off() -> Self {
        AuditLog {
            shared: None,
            writer: None,
        }
    }

    pub fn write(&self, record: Record) {
        let Some(shared) = &self.shared else { return };
        let Ok(mut queue) = shared.queue.lock() else {
            return;
        };
        if queue.len() < QUEUE {
            queue.push(record);
        } else {
            shared.dropped.fetch_add(1, Ordering::Relaxed);
            shared.lost_queue_full.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records lost since start (zero for a log that is off).
    pub fn lost(&self) -> Lost {
        self.shared.as_ref().map_or(Lost::default(), |s| Lost {
            queue_full: s.lost_queue_full.load(Ordering::Relaxed),
            write_error: s.lost_write_error.load(Ordering::Relaxed),
        })
    }

    /// Writes what is queued, stops the writer and waits for it.
    pub fn close(&mut self) {
        if let Some(shared) = &self.shared {
            shared.closed.store(true, Ordering::Release);
        }
        if let Some(handle) = self
            .writer
            .as_ref()
            .and_then(|w| w.lock().ok().and_then(|mut h| h.take()))
        {
            let _ = handle.join();
        }
    }
}

/// Where the writer writes.
enum Output {
    /// Standard output, through a file descriptor of its own: std's `Stdout` buffers what a
    /// partial write left over and reports it as written, which would hide records a full
    /// disk refused. Nothing else in `authgate serve` writes to stdout.
    #[cfg(unix)]
    Stdout(std::fs::File),
    #[cfg(not(unix))]
    Stdout(std::io::Stdout),
    File(LogFile),
}

impl Output {
    #[cfg(unix)]
    fn stdout() -> std::io::Result<Output> {
        use std::os::fd::AsFd;
        let fd = std::io::stdout().as_fd().try_clone_to_owned()?;
        Ok(Output::Stdout(std::fs::File::from(fd)))
    }

    #[cfg(not(unix))]
    fn stdout() -> std::io::Result<Output> {
        Ok(Output::Stdout(std::io::stdout()))
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::Stdout(o) => o.write(buf),
            Output::File(f) => f.file.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::Stdout(o) => o.flush(),
            Output::File(f) => f.file.flush(),
        }
    }
}

/// How often, at most, the writer checks whether its file was rotated away.
const ROTATION_CHECK: Duration = Duration::from_secs(1);

/// An audit log file that follows rotation: when the file at the path is no longer the one
/// open (logrotate renamed it and maybe created a new one, or someone deleted it), the path is
/// opened (and created) again, so nothing keeps going to a file no one reads and no signal
/// is needed. `copytruncate` works as well: the file is opened for appending, so writes after
/// the truncation start at its new end.
struct LogFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    checked: std::time::Instant,
    /// When a failed reopen was last reported (it is retried at every check, reported at
    /// most every [`ERROR_REPORT_INTERVAL`]).
    reported: Option<std::time::Instant>,
}

impl LogFile {
    fn open(path: std::path::PathBuf) -> std::io::Result<LogFile> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        Ok(LogFile {
            path,
            file,
            checked: std::time::Instant::now(),
            reported: None,
        })
    }

    /// Reopens the path if the file there is not the open one; at most every
    /// [`ROTATION_CHECK`]. True if it did.
    fn follow(&mut self) -> bool {
        if self.checked.elapsed() < ROTATION_CHECK {
            return false;
        }
        self.checked = std::time::Instant::now();
        let rotated = match (std::fs::metadata(&self.path), self.file.metadata()) {
            (Ok(at_path), Ok(open)) => !same_file(&at_path, &open),
            (Err(e), _) => e.kind() == std::io::ErrorKind::NotFound,
            (Ok(_), Err(_)) => false,
        };
        if !rotated {
            return false;
        }
        match LogFile::open(self.path.clone()) {
            Ok(reopened) => {
                *self = reopened;
                tracing::info!(path = %self.path.display(), "audit log: the file was rotated; writing to a new one");
                true
            }
            Err(e) => {
                if report_due(&mut self.reported) {
                    tracing::warn!(path = %self.path.display(), error = %e, "audit log: the file was rotated and cannot be opened again; still writing to the old one (retried every second)");
                }
                false
            }
        }
    }
}

#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::Metadata, _: &std::fs::Metadata) -> bool {
    true
}

fn writer(shared: &Shared, mut out: Output) {
    // A tick's lines go out in one write (more only if the output takes part of it), and
    // `ends` marks where each record's line ends, so that when the output fails the records
    // it did not take are counted as lost, not guessed at.
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut ends: Vec<usize> = Vec::with_capacity(1024);
    let mut batch: Vec<Record> = Vec::with_capacity(1024);
    let mut last: (u128, String) = (0, String::new());
    let mut line = String::with_capacity(512);
    let mut ips = LastIp::default();
    let mut reported: Option<std::time::Instant> = None;
    // The output failed in the middle of a line: the next write starts with a line break, so
    // the torn line stays one bad line and does not swallow the next record.
    let mut torn = false;
    loop {
        let closing = shared.closed.load(Ordering::Acquire);
        if let Ok(mut queue) = shared.queue.lock() {
            std::mem::swap(&mut *queue, &mut batch);
        }
        let idle = batch.is_empty();
        buf.clear();
        ends.clear();
        for record in batch.drain(..) {
            // Records of the same millisecond share one formatted time.
            let ms = record
                .at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            if ms != last.0 || last.1.is_empty() {
                last = (ms, format_time(record.at));
            }
            line.clear();
            record.write_json_at(&last.1, &mut ips, &mut line);
            line.push('\n');
            buf.extend_from_slice(line.as_bytes());
            ends.push(buf.len());
        }
        let records_end = buf.len();
        let dropped = shared.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(
                buf,
                "{{\"time\":\"{}\",\"audit_records_dropped\":{dropped}}}",
                now()
            );
        }
        if let Output::File(f) = &mut out {
            // A new file starts clean, whatever the old one's last line was.
            torn &= !f.follow();
        }
        if !buf.is_empty() {
            if let Some(failed) = write_tick(&mut out, &buf, &ends, records_end, &mut torn) {
                let total = shared
                    .lost_write_error
                    .fetch_add(failed.records, Ordering::Relaxed)
                    + failed.records;
                if report_due(&mut reported) {
                    tracing::error!(
                        error = %failed.error,
                        lost = total,
                        "audit log: cannot write, records are being lost \
                         (authgate_audit_records_lost_total on /metrics counts them)"
                    );
                }
                if failed.tail {
                    // The report of dropped records did not go out: keep it for the next
                    // tick.
                    shared.dropped.fetch_add(dropped, Ordering::Relaxed);
                }
            }
        }
        let _ = out.flush();
        if buf.capacity() > 4 << 20 {
            // A burst (the queue holds up to 65,536 records) needed a large buffer; do not
            // keep it.
            buf = Vec::with_capacity(64 * 1024);
        }
        if closing {
            return;
        }
        std::thread::sleep(if idle { IDLE_TICK } else { TICK });
    }
}

/// A tick whose write failed.
struct Failed {
    /// Records whose line did not go out.
    records: u64,
    /// Whether the line after the records (the count of dropped records) did not go out.
    tail: bool,
    error: std::io::Error,
}

/// Writes one tick's lines: `buf`, in which the records' lines end at `ends` (the first
/// `records_end` bytes; after them, at most a line about dropped records). If the output
/// fails, says what did not go out and why. `torn` says whether the last write stopped in
/// the middle of a line; then this one starts with a line break, so the torn line stays one
/// bad line and does not swallow the next record. A line that lacks only its line break is
/// whole: that line break ends it.
fn write_tick(
    out: &mut dyn Write,
    buf: &[u8],
    ends: &[usize],
    records_end: usize,
    torn: &mut bool,
) -> Option<Failed> {
    if *torn {
        match write_some(out, b"\n") {
            (1, None) => *torn = false,
            (_, e) => {
                return Some(Failed {
                    records: ends.len() as u64,
                    tail: buf.len() > records_end,
                    error: e.unwrap_or_else(|| std::io::ErrorKind::WriteZero.into()),
                });
            }
        }
    }
    let (written, error) = write_some(out, buf);
    let error = error?;
    *torn = !(written == 0 || ends.contains(&written));
    let out_whole = |end: usize| end <= written + 1;
    Some(Failed {
        records: ends.iter().filter(|&&end| !out_whole(end)).count() as u64,
        tail: buf.len() > records_end && !out_whole(buf.len()),
        error,
    })
}

/// Writes as much of `buf` as the output takes: how many bytes went out, and the error that
/// stopped it, if one did.
fn write_some(out: &mut dyn Write, buf: &[u8]) -> (usize, Option<std::io::Error>) {
    let mut written = 0;
    while written < buf.len() {
        match out.write(buf.get(written..).unwrap_or_default()) {
            Ok(0) => return (written, Some(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => written += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (written, Some(e)),
        }
    }
    (written, None)
}

fn format_time(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    format_time(SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes `room` bytes, then fails as a full disk does.
    struct Full {
        room: usize,
        took: Vec<u8>,
    }

    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.room == 0 {
                return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
            }
            let n = buf.len().min(self.room).min(4);
            self.room -= n;
            self.took
                .extend_from_slice(buf.get(..n).unwrap_or_default());
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_tick_that_fails_mid_line_counts_its_records_and_the_next_starts_a_new_line() {
        let lines = b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n";
        let ends = [8, 16, 24];
        let mut out = Full {
            room: 12,
            took: Vec::new(),
        };
        let mut torn = false;
        let f = write_tick(&mut out, lines, &ends, 24, &mut torn).expect("fails");
        assert_eq!(f.records, 2, "the torn line and the one after it");
        assert!(torn);
        // Still full: nothing goes out, every record of the tick is counted, still torn.
        let f = write_tick(&mut out, b"{\"d\":4}\n", &[8], 8, &mut torn).expect("fails");
        assert_eq!(f.records, 1);
        assert!(torn);
        // Room again: a line break first, then the tick's lines.
        out.room = 100;
        assert!(write_tick(&mut out, b"{\"e\":5}\n", &[8], 8, &mut torn).is_none());
        assert!(!torn);
        assert_eq!(out.took, b"{\"a\":1}\n{\"b\"\n{\"e\":5}\n");
        // A failure at a line's end tears nothing.
        out.room = 8;
        let f = write_tick(&mut out, lines, &ends, 24, &mut torn).expect("fails");
        assert_eq!(f.records, 2);
        assert!(!torn);
        // A failure just before a line break: the line is whole (the next write's line break
        // ends it), so only the records after it are lost, and the tail's count is kept.
        let tail = b"{\"a\":1}\n{\"dropped\":3}\n";
        let mut out = Full {
            room: 8 + 13,
            took: Vec::new(),
        };
        let mut torn = false;
        let f = write_tick(&mut out, tail, &[8], 8, &mut torn).expect("fails");
        assert_eq!(f.records, 0);
        assert!(!f.tail, "the tail lacks only its line break");
        assert!(torn);
        let mut out = Full {
            room: 12,
            took: Vec::new(),
        };
        let f = write_tick(&mut out, tail, &[8], 8, &mut false).expect("fails");
        assert!(f.tail, "the tail did not go out");
    }

    #[test]
    fn a_failing_output_reports_how_much_it_took() {
        let mut out = Full {
            room: 10,
            took: Vec::new(),
        };
        let (n, e) = write_some(&mut out, b"line one\nline two\n");
        assert_eq!(n, 10);
        assert_eq!(out.took, b"line one\nl");
        assert_eq!(e.map(|e| e.raw_os_error()), Some(Some(28)));
        let mut ok = Full {
            room: 100,
            took: Vec::new(),
        };
        assert_eq!(write_some(&mut ok, b"a\nb\n").0, 4);
    }

    #[test]
    fn the_fields_written_without_escaping_have_nothing_to_escape() {
        use crate::config::Scheme;
        let plain = |s: &str| next_escape(s.as_bytes(), 0).is_none();
        for reason in crate::reason::Reason::all() {
            assert!(plain(reason.code()), "{reason:?}");
            assert!(reason.audit_detail().is_none_or(plain), "{reason:?}");
        }
        for scheme in [Scheme::Basic, Scheme::Bearer, Scheme::Session] {
            assert!(plain(scheme.name()));
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them_at_every_offset() {
        // Every byte that must be escaped, one that must not, and a multi-byte character,
        // at every position across three eight-byte words and the tail after them.
        let specials = [
            "\"", "\\", "\n", "\u{0}", "\u{1f}", " ", "\u{7f}", "é", "🦀",
        ];
        for len in 0..27 {
            for at in 0..=len {
                for special in specials {
                    let s = format!("{}{special}{}", "a".repeat(at), "b".repeat(len - at));
                    let mut out = String::new();
                    push_json_str(&mut out, &s);
                    let want = serde_json::to_string(&s).expect("serialize");
                    assert_eq!(out, want, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn hand_written_lines_are_serde_jsons_bytes() {
        let strange = "q\"uo\\te\n\r\t\u{8}\u{c}\u{1}\u{1f}\u{7f} é 日本 🦀";
        let records = [
            Record::default(),
            Record {
                time: "2026-11-28T11:22:26.635Z".into(),
                request_id: http::HeaderValue::from_static("7abeba5d12e443a55ca1f52a429ad2f0"),
                client_ip: "127.0.0.1".parse().expect("ip"),
                peer: Some("127.0.0.1:57918".parse().expect("addr")),
                route: Some("/".into()),
                method: http::Method::GET,
                path: "/".into(),
                user: Some("bench".into()),
                scheme: Some("basic"),
                outcome: "allow",
                status: 200,
                latency: Duration::from_nanos(83_333_418),
                ..Record::default()
            },
            Record {
                // Time and request id are authgate's (written without escaping): a trusted
                // proxy's id of every character `gateway::request_id` keeps.
                time: "2026-11-28T11:22:26.635Z".into(),
                request_id: http::HeaderValue::from_static("Az09-_.:"),
                client_ip: "2001:db8::1".parse().expect("ip"),
                peer: Some("[fe80::1%2]:443".parse().expect("addr")),
                route: Some(strange.into()),
                // A method is a token (RFC 9110 §9.1): nothing in it to escape.
                method: http::Method::from_bytes(b"M-SEARCH").expect("method"),
                path: strange.into(),
                user: Some(strange.into()),
                scheme: Some("session"),
                token: Some("abc123".into()),
                outcome: "deny",
                status: 401,
                reason: Some("invalid_credentials"),
                detail: Some("unknown_user"),
                latency: Duration::ZERO,
                ..Record::default()
            },
            Record {
                latency: Duration::from_secs(86_400),
                status: u16::MAX,
                ..Record::default()
            },
            Record {
                // Below a microsecond: written as 0.0.
                latency: Duration::from_nanos(999),
                ..Record::default()
            },
        ];
        for r in &records {
            let mut ours = String::new();
            r.write_json(&mut ours);
            assert_eq!(ours, serde_json::to_string(r).expect("json"));
        }
        // As the writer writes them, one after another, with the addresses it remembers.
        let mut ips = LastIp::default();
        for r in records.iter().chain(&records) {
            let mut ours = String::new();
            r.write_json_at(&r.time, &mut ips, &mut ours);
            assert_eq!(ours, serde_json::to_string(r).expect("json"));
        }
    }

    #[test]
    fn latency_is_milliseconds_to_the_microsecond_as_serde_json_writes_them() {
        let serde = |micros: u64| serde_json::to_string(&(micros as f64 / 1000.0)).expect("json");
        let ours = |micros: u64| {
            let mut s = String::new();
            push_millis(&mut s, micros);
            s
        };
        assert_eq!(ours(83_333), "83.333");
        assert_eq!(ours(120), "0.12");
        assert_eq!(ours(5), "0.005");
        assert_eq!(ours(5_000), "5.0");
        assert_eq!(ours(0), "0.0");
        for micros in (0..200_000).chain((0..1_000_000).map(|i| i * 999_983)) {
            assert_eq!(ours(micros), serde(micros), "{micros} µs");
        }
        // Up to 10^12 ms (31 years), every power of ten and its neighbours.
        for e in 0..=15 {
            let p = 10u64.pow(e);
            for micros in [p - 1, p, p + 1] {
                assert_eq!(ours(micros), serde(micros), "{micros} µs");
            }
        }
    }
}
