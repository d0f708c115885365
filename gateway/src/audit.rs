//! The audit log: one JSON line per decision, written by a background thread so a slow disk
//! never holds up a request.
//!
//! Fields: `time` (RFC 3339, UTC), `request_id`, `client` (address, after trusted proxies),
//! `peer` (the TCP peer), `route`, `method`, `path`, `user` (when known, also for wrong
//! passwords), `scheme`, `outcome` (`allow` or `deny`), `status`, `reason`, `detail` (what
//! the client is not told, e.g. `unknown_user`), `latency_ms`. Never a password, a token or
//! an `Authorization` value.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::time::SystemTime;

use serde::Serialize;

use crate::config::AuditTarget;

#[derive(Debug, Serialize, Default)]
pub struct Record {
    pub time: String,
    pub request_id: String,
    pub client: String,
    pub peer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    pub method: String,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<&'static str>,
    pub outcome: &'static str,
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<&'static str>,
    pub latency_ms: f64,
}

/// Where records go. Cloning is cheap.
#[derive(Clone)]
pub struct AuditLog {
    tx: Option<SyncSender<Record>>,
    dropped: std::sync::Arc<AtomicU64>,
}

/// Lines kept in memory when the writer falls behind; past that, records are counted as
/// dropped and the count is written as its own line, rather than slowing every request.
const QUEUE: usize = 65_536;

impl AuditLog {
    pub fn open(target: &AuditTarget) -> std::io::Result<Self> {
        let out: Box<dyn Write + Send> = match target {
            AuditTarget::Off => {
                return Ok(AuditLog {
                    tx: None,
                    dropped: Default::default(),
                })
            }
            AuditTarget::Stdout => Box::new(std::io::stdout()),
            AuditTarget::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ),
        };
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = std::sync::Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        std::thread::Builder::new()
            .name("audit".into())
            .spawn(move || writer(rx, out, d))?;
        Ok(AuditLog {
            tx: Some(tx),
            dropped,
        })
    }

    pub fn write(&self, record: Record) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Stops accepting records; the writer flushes what it has and exits.
    pub fn close(&mut self) {
        self.tx = None;
    }
}

fn writer(rx: Receiver<Record>, out: Box<dyn Write + Send>, dropped: std::sync::Arc<AtomicU64>) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut line = Vec::with_capacity(512);
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Write everything queued, then flush once.
        while let Some(record) = next {
            line.clear();
            if serde_json::to_writer(&mut line, &record).is_ok() {
                line.push(b'\n');
                let _ = out.write_all(&line);
            }
            next = rx.try_recv().ok();
        }
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                out,
                "{{\"time\":\"{}\",\"audit_records_dropped\":{lost}}}",
                now()
            );
        }
        let _ = out.flush();
    }
    let _ = out.flush();
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}
