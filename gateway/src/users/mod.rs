//! User sources: Apache htpasswd files (read-only, reloaded on change or SIGHUP) and the
//! embedded store (`authgate user ...`), combined in a [`Directory`]. A name in the store
//! takes precedence over the same name in the htpasswd file.

pub mod hash;
pub mod htpasswd;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;

use self::hash::PasswordHash;
use self::htpasswd::Htpasswd;
use crate::reason::{Expired, Reason};
use crate::store::{Live, LiveUser};

/// Every user source the configuration names.
pub struct Directory {
    pub htpasswd: Option<Arc<UserDb>>,
    pub store: Option<Arc<Live>>,
    /// For unknown users when there is no htpasswd file to imitate: an argon2id hash like
    /// the ones `authgate user add` writes.
    dummy: Arc<PasswordHash>,
}

/// Which version of each user source was in force: what [`Directory::find`] answered then
/// holds while [`Directory::is_current`] says so. A source's versions are replaced whole
/// (an htpasswd reload, a store snapshot rebuild), never changed in place. Weak references:
/// an old version's users are freed when it is replaced, while its allocation, kept, cannot
/// be reused by a newer version at the same address.
#[derive(Default)]
pub struct Version {
    htpasswd: Option<Weak<Htpasswd>>,
    store: Option<Weak<crate::store::Snapshot>>,
}

/// A user found in a source, with what a password check needs.
pub struct Account {
    pub hash: Arc<PasswordHash>,
    /// Identifies the hash version, for the verification cache key.
    pub fingerprint: [u8; 32],
    /// Status and groups, for store users.
    pub stored: Option<Arc<LiveUser>>,
}

impl Directory {
    pub fn new(htpasswd: Option<Arc<UserDb>>, store: Option<Arc<Live>>) -> Directory {
        let dummy = match &htpasswd {
            Some(db) => db.snapshot().dummy(),
            None => Arc::new(
                hash::hash_password(b"authgate-dummy-password", hash::NewHash::Argon2id)
                    .ok()
                    .and_then(|h| PasswordHash::parse(&h).ok())
                    .unwrap_or_else(|| PasswordHash::dummy_bcrypt(10)),
            ),
        };
        Directory {
            htpasswd,
            store,
            dummy,
        }
    }

    /// The user called `name`: the store first, then the htpasswd file.
    pub fn find(&self, name: &str) -> Option<Account> {
        if let Some(store) = &self.store {
            if let Some(u) = store.snapshot().users.get(name) {
                return Some(Account {
                    hash: Arc::clone(&u.hash),
                    fingerprint: u.fingerprint,
                    stored: Some(Arc::clone(u)),
                });
            }
        }
        let db = self.htpasswd.as_ref()?;
        let snapshot = db.snapshot();
        let e = snapshot.get(name)?;
        Some(Account {
            hash: Arc::clone(&e.hash),
            fingerprint: e.fingerprint,
            stored: None,
        })
    }

    /// The versions in force now. Take it before [`Directory::find`], so that a change in
    /// between makes the version out of date rather than the answer.
    pub fn version(&self) -> Version {
        Version {
            htpasswd: self.htpasswd.as_ref().map(|db| db.current_weak()),
            store: self.store.as_ref().map(|s| s.snapshot_weak()),
        }
    }

    /// Whether every source is still at `version`: two pointer comparisons, no lookup.
    pub fn is_current(&self, version: &Version) -> bool {
        let htpasswd = match (&self.htpasswd, &version.htpasswd) {
            (Some(db), Some(seen)) => db.is_current(seen),
            (None, None) => true,
            _ => false,
        };
        let store = match (&self.store, &version.store) {
            (Some(s), Some(seen)) => s.is_snapshot(seen),
            (None, None) => true,
            _ => false,
        };
        htpasswd && store
    }

    /// A hash to verify against for unknown users, so they take as long as known ones.
    pub fn dummy(&self) -> Arc<PasswordHash> {
        match &self.htpasswd {
            Some(db) => db.snapshot().dummy(),
            None => Arc::clone(&self.dummy),
        }
    }
}

/// Whether a store account may sign in at `now` (Unix seconds), after its password (or
/// token) checked out: not locked, not past its expiry date, and, when it signed in with
/// its password (`password_max_age` given), the password not expired. Tokens and sessions
/// pass None: an old password does not end them, a lock or account expiry does.
pub fn check_account(
    user: &LiveUser,
    now: u64,
    password_max_age: Option<Option<Duration>>,
) -> Result<(), Reason> {
    if user.locked {
        return Err(Reason::AccountLocked);
    }
    if user.expires.is_some_and(|at| at <= now) {
        return Err(Reason::ExpiredCredentials(Expired::Account));
    }
    let Some(max_age) = password_max_age else {
        return Ok(());
    };
    let too_old =
        max_age.is_some_and(|max| user.password_changed.saturating_add(max.as_secs()) <= now);
    if user.password_expired || too_old {
        return Err(Reason::ExpiredCredentials(Expired::Password));
    }
    Ok(())
}

/// What identifies a version of the file on disk without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some(Stamp {
        modified: meta.modified().ok(),
        len: meta.len(),
        inode,
    })
}

/// An htpasswd file that can be swapped while requests read it. Readers never block.
#[derive(Debug)]
pub struct UserDb {
    path: PathBuf,
    current: ArcSwap<Htpasswd>,
    seen: Mutex<Option<Stamp>>,
}

impl UserDb {
    pub fn new(path: PathBuf, initial: Arc<Htpasswd>) -> Self {
        let seen = stamp(&path);
        UserDb {
            path,
            current: ArcSwap::new(initial),
            seen: Mutex::new(seen),
        }
    }

    /// The file as last loaded successfully.
    pub fn snapshot(&self) -> Arc<Htpasswd> {
        self.current.load_full()
    }

    /// The file in force, as a weak reference for [`UserDb::is_current`].
    pub fn current_weak(&self) -> Weak<Htpasswd> {
        Arc::downgrade(&self.current.load())
    }

    /// Whether `seen` is the file in force.
    pub fn is_current(&self, seen: &Weak<Htpasswd>) -> bool {
        std::ptr::eq(seen.as_ptr(), Arc::as_ptr(&self.current.load()))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Re-reads the file if its size, time or inode changed (or always, with `force`).
    /// A file that does not parse is not loaded: the old one stays in force and the error is
    /// returned for the log. `Ok(true)` means a new version is now in force.
    pub fn reload(&self, force: bool) -> Result<bool, String> {
        let now = stamp(&self.path);
        {
            let seen = self.seen.lock().map_err(|_| "lock poisoned".to_string())?;
            if !force && now == *seen {
                return Ok(false);
            }
        }
        let result = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read {}: {e}", self.path.display()))
            .and_then(|text| {
                Htpasswd::parse(&text).map_err(|errors| {
                    let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
                    format!("{}: {}", self.path.display(), list.join("; "))
                })
            });
        // Remember this version even if it is broken, so a broken file is reported once and
        // not on every poll.
        if let Ok(mut seen) = self.seen.lock() {
            *seen = now;
        }
        let parsed = result?;
        self.current.store(Arc::new(parsed));
        Ok(true)
    }

    /// Polls the file every `interval` until the task is dropped.
    pub fn spawn_watcher(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let db = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let db2 = Arc::clone(&db);
                let result = tokio::task::spawn_blocking(move || db2.reload(false)).await;
                log_reload(&db, result.unwrap_or_else(|e| Err(e.to_string())));
            }
        })
    }
}

/// Logs the outcome of a reload.
pub fn log_reload(db: &UserDb, result: Result<bool, String>) {
    match result {
        Ok(true) => tracing::info!(
            file = %db.path.display(),
            users = db.snapshot().len(),
            "reloaded the htpasswd file"
        ),
        Ok(false) => {}
        Err(why) => {
            tracing::error!("kept the previous htpasswd file because the new one is broken: {why}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> (tempfile::TempDir, PathBuf, Arc<Htpasswd>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users.htpasswd");
        std::fs::write(&path, text).expect("write");
        let parsed = Htpasswd::parse(text).map_err(|_| ()).expect("parse");
        (dir, path, Arc::new(parsed))
    }

    #[test]
    fn a_version_holds_until_a_source_is_replaced() {
        // {SHA} of "password", the cheapest format to parse.
        let (_dir, path, initial) = file("alice:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n");
        let db = Arc::new(UserDb::new(path.clone(), initial));
        let directory = Directory::new(Some(Arc::clone(&db)), None);
        let version = directory.version();
        assert!(directory.is_current(&version));
        assert!(directory.find("alice").is_some());

        // Re-reading the same file is a new version too: what was found may have changed.
        db.reload(true).expect("reload");
        assert!(
            !directory.is_current(&version),
            "a reload keeps old answers"
        );
        let after = directory.version();
        assert!(directory.is_current(&after));

        // A file that does not parse is not loaded, and the version in force stays.
        std::fs::write(&path, "alice:not-a-hash\n").expect("write");
        assert!(db.reload(true).is_err());
        assert!(directory.is_current(&after));

        // A version from another directory (or none) is never current.
        assert!(!directory.is_current(&Version::default()));
    }
}
