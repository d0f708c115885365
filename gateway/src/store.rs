//! The embedded store: one SQLite file holding users, API tokens and browser sessions.
//!
//! - Created on first use, with the schema applied by numbered migrations (`PRAGMA
//!   user_version` says how many have run), each in its own transaction.
//! - WAL journal with `synchronous = FULL`: a committed write is on disk before the call
//!   returns, so a `kill -9` at any moment leaves either the old or the new state, never a
//!   torn one (SQLite's atomic commit; WAL lets the gateway read while the CLI writes).
//! - The gateway reads users and tokens from an in-memory [`Snapshot`] that is rebuilt when
//!   another process (the `authgate user` / `token` CLI) commits (`PRAGMA data_version`),
//!   so requests never wait for the disk.
//! - Hot-path state (a token's last use, a session's last activity) lives in atomics and is
//!   written back in batches by [`Live::flush`], never once per request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::users::hash::PasswordHash;

/// The schema, one migration per entry. Never edit a released entry: add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: users, API tokens, sessions.
    "CREATE TABLE users (
        name TEXT PRIMARY KEY NOT NULL,
        hash TEXT NOT NULL,
        groups TEXT NOT NULL DEFAULT '',
        created INTEGER NOT NULL,
        password_changed INTEGER NOT NULL,
        expires INTEGER,
        password_expired INTEGER NOT NULL DEFAULT 0,
        locked INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY NOT NULL,
        user TEXT NOT NULL,
        name TEXT NOT NULL DEFAULT '',
        scopes TEXT NOT NULL DEFAULT '',
        secret_sha256 BLOB NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER,
        last_used INTEGER,
        revoked INTEGER
    ) STRICT;
    CREATE INDEX tokens_user ON tokens(user);
    CREATE TABLE sessions (
        id_sha256 BLOB PRIMARY KEY NOT NULL,
        user TEXT NOT NULL,
        created INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    ) STRICT;",
];

/// Errors from the store, with the file they are about.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: written by a newer authgate (schema {found}, this one knows {known})")]
    TooNew {
        path: String,
        found: i64,
        known: usize,
    },
    #[error("{0}")]
    Invalid(String),
}

/// One open connection to the store file.
pub struct Store {
    path: PathBuf,
    conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// A user as stored.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub name: String,
    pub hash: String,
    pub groups: Vec<String>,
    pub created: u64,
    pub password_changed: u64,
    /// The account stops working at this time (Unix seconds).
    pub expires: Option<u64>,
    /// Set by `authgate user expire --password`: the password must be changed.
    pub password_expired: bool,
    pub locked: bool,
}

/// An API token as stored (the secret itself is never stored, only its SHA-256).
#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: String,
    pub user: String,
    pub name: String,
    pub scopes: Vec<String>,
    pub secret_sha256: [u8; 32],
    pub created: u64,
    pub expires: Option<u64>,
    pub last_used: Option<u64>,
    pub revoked: Option<u64>,
}

/// A browser session as stored (by the SHA-256 of its cookie value).
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub id_sha256: [u8; 32],
    pub user: String,
    pub created: u64,
    pub last_seen: u64,
}

fn list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

fn to_u64(v: Option<i64>) -> Option<u64> {
    v.and_then(|v| u64::try_from(v).ok())
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn sha32(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let blob: &[u8] = bytes;
    for (o, b) in out.iter_mut().zip(blob) {
        *o = *b;
    }
    out
}

impl Store {
    /// Opens the store, creating the file (and its directory) and applying migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Invalid(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let mut conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(err)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err)?;
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(err)?;
        let known = MIGRATIONS.len();
        if version > to_i64(known as u64) {
            return Err(StoreError::TooNew {
                path: path.display().to_string(),
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .skip(usize::try_from(version).unwrap_or(0))
        {
            let tx = conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.pragma_update(None, "user_version", to_i64(i as u64 + 1))
                .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(Store {
            path: path.to_owned(),
            conn,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError::Sqlite {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Changes whenever another connection commits (SQLite `PRAGMA data_version`).
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .map_err(self.err())
    }

    // ---- users --------------------------------------------------------------------------

    pub fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT name, hash, groups, created, password_changed, expires, \
                 password_expired, locked FROM users ORDER BY name",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(UserRow {
                    name: r.get(0)?,
                    hash: r.get(1)?,
                    groups: list(&r.get::<_, String>(2)?),
                    created: to_u64(r.get(3)?).unwrap_or(0),
                    password_changed: to_u64(r.get(4)?).unwrap_or(0),
                    expires: to_u64(r.get(5)?),
                    password_expired: r.get::<_, i64>(6)? != 0,
                    locked: r.get::<_, i64>(7)? != 0,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(self.users()?.into_iter().find(|u| u.name == name))
    }

    /// Adds a user; an existing name is an error.
    pub fn add_user(&mut self, row: &UserRow) -> Result<(), StoreError> {
        PasswordHash::parse(&row.hash)
            .map_err(|e| StoreError::Invalid(format!("user {}: {e}", row.name)))?;
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO users (name, hash, groups, created, password_changed, \
                 expires, password_expired, locked) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    row.name,
                    row.hash,
                    row.groups.join(","),
                    to_i64(row.created),
                    to_i64(row.password_changed),
                    row.expires.map(to_i64),
                    i64::from(row.password_expired),
                    i64::from(row.locked),
                ],
            )
            .map_err(self.err())?;
        if n == 0 {
            return Err(StoreError::Invalid(format!(
                "user {} already exists (use `authgate user passwd`)",
                row.name
            )));
        }
        Ok(())
    }

    /// Imports `(name, hash)` pairs in one transaction, keeping the hashes as they are.
    /// Existing users are left alone. `progress(done)` is called every 1,000 rows.
    /// Returns (added, skipped).
    pub fn import_users(
        &mut self,
        users: &[(String, String)],
        now: u64,
        progress: &mut dyn FnMut(usize),
    ) -> Result<(usize, usize), StoreError> {
        let path = self.path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let (mut added, mut skipped) = (0, 0);
        {
            let mut stmt = tx
                .prepare(
                    "INSERT OR IGNORE INTO users (name, hash, created, password_changed) \
                     VALUES (?1, ?2, ?3, ?3)",
                )
                .map_err(err)?;
            for (i, (name, hash)) in users.iter().enumerate() {
                if stmt
                    .execute(params![name, hash, to_i64(now)])
                    .map_err(err)?
                    == 1
                {
                    added += 1;
                } else {
                    skipped += 1;
                }
                if (i + 1) % 1000 == 0 {
                    progress(i + 1);
                }
            }
        }
        tx.commit().map_err(err)?;
        Ok((added, skipped))
    }

    fn update_user(
        &self,
        name: &str,
        sql: &str,
        p: &[&dyn rusqlite::ToSql],
    ) -> Result<(), StoreError> {
        let mut all: Vec<&dyn rusqlite::ToSql> = p.to_vec();
        all.push(&name);
        let n = self
            .conn
            .execute(sql, rusqlite::params_from_iter(all))
            .map_err(self.err())?;
        if n == 0 {
            return Err(StoreError::Invalid(format!("no user {name} in the store")));
        }
        Ok(())
    }

    pub fn set_password(&self, name: &str, hash: &str, now: u64) -> Result<(), StoreError> {
        PasswordHash::parse(hash).map_err(|e| StoreError::Invalid(format!("{e}")))?;
        self.update_user(
            name,
            "UPDATE users SET hash = ?1, password_changed = ?2, password_expired = 0 \
             WHERE name = ?3",
            &[&hash, &to_i64(now)],
        )
    }

    pub fn set_locked(&self, name: &str, locked: bool) -> Result<(), StoreError> {
        self.update_user(
            name,
            "UPDATE users SET locked = ?1 WHERE name = ?2",
            &[&i64::from(locked)],
        )
    }

    /// Sets (or clears, with None) the account's expiry time.
    pub fn set_expires(&self, name: &str, at: Option<u64>) -> Result<(), StoreError> {
        self.update_user(
            name,
            "UPDATE users SET expires = ?1 WHERE name = ?2",
            &[&at.map(to_i64)],
        )
    }

    pub fn set_password_expired(&self, name: &str, expired: bool) -> Result<(), StoreError> {
        self.update_user(
            name,
            "UPDATE users SET password_expired = ?1 WHERE name = ?2",
            &[&i64::from(expired)],
        )
    }

    pub fn set_groups(&self, name: &str, groups: &[String]) -> Result<(), StoreError> {
        self.update_user(
            name,
            "UPDATE users SET groups = ?1 WHERE name = ?2",
            &[&groups.join(",")],
        )
    }

    /// Removes a user with their tokens and sessions.
    pub fn remove_user(&mut self, name: &str) -> Result<(), StoreError> {
        let path = self.path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let n = tx
            .execute("DELETE FROM users WHERE name = ?1", [name])
            .map_err(err)?;
        tx.execute("DELETE FROM tokens WHERE user = ?1", [name])
            .map_err(err)?;
        tx.execute("DELETE FROM sessions WHERE user = ?1", [name])
            .map_err(err)?;
        if n == 0 {
            return Err(StoreError::Invalid(format!("no user {name} in the store")));
        }
        tx.commit().map_err(err)
    }

    // ---- tokens -------------------------------------------------------------------------

    pub fn add_token(&self, row: &TokenRow) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO tokens (id, user, name, scopes, secret_sha256, created, expires) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    row.id,
                    row.user,
                    row.name,
                    row.scopes.join(","),
                    row.secret_sha256.as_slice(),
                    to_i64(row.created),
                    row.expires.map(to_i64),
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, user, name, scopes, secret_sha256, created, expires, last_used, \
                 revoked FROM tokens ORDER BY created, id",
            )
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(TokenRow {
                    id: r.get(0)?,
                    user: r.get(1)?,
                    name: r.get(2)?,
                    scopes: list(&r.get::<_, String>(3)?),
                    secret_sha256: sha32(&r.get::<_, Vec<u8>>(4)?),
                    created: to_u64(r.get(5)?).unwrap_or(0),
                    expires: to_u64(r.get(6)?),
                    last_used: to_u64(r.get(7)?),
                    revoked: to_u64(r.get(8)?),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Marks a token revoked (it stays listed, refused from now on).
    pub fn revoke_token(&self, id: &str, now: u64) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE tokens SET revoked = ?1 WHERE id = ?2 AND revoked IS NULL",
                params![to_i64(now), id],
            )
            .map_err(self.err())?;
        if n == 0 {
            let exists = self
                .conn
                .query_row("SELECT 1 FROM tokens WHERE id = ?1", [id], |_| Ok(()))
                .optional()
                .map_err(self.err())?
                .is_some();
            return Err(StoreError::Invalid(if exists {
                format!("token {id} is already revoked")
            } else {
                format!("no token {id}")
            }));
        }
        Ok(())
    }

    /// Writes last-use times (only ever moving them forward), in one transaction.
    pub fn record_token_use(&mut self, uses: &[(String, u64)]) -> Result<(), StoreError> {
        let path = self.path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        for (id, at) in uses {
            tx.execute(
                "UPDATE tokens SET last_used = ?1 WHERE id = ?2 \
                 AND (last_used IS NULL OR last_used < ?1)",
                params![to_i64(*at), id],
            )
            .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    // ---- sessions -----------------------------------------------------------------------

    pub fn add_session(&self, row: &SessionRow) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO sessions (id_sha256, user, created, last_seen) VALUES (?1, ?2, ?3, ?4)",
                params![
                    row.id_sha256.as_slice(),
                    row.user,
                    to_i64(row.created),
                    to_i64(row.last_seen)
                ],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn remove_session(&self, id_sha256: &[u8; 32]) -> Result<(), StoreError> {
        self.conn
            .execute(
                "DELETE FROM sessions WHERE id_sha256 = ?1",
                [id_sha256.as_slice()],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id_sha256, user, created, last_seen FROM sessions")
            .map_err(self.err())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SessionRow {
                    id_sha256: sha32(&r.get::<_, Vec<u8>>(0)?),
                    user: r.get(1)?,
                    created: to_u64(r.get(2)?).unwrap_or(0),
                    last_seen: to_u64(r.get(3)?).unwrap_or(0),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<_, _>>().map_err(self.err())
    }

    /// Writes session activity and deletes sessions, in one transaction.
    pub fn sync_sessions(
        &mut self,
        seen: &[([u8; 32], u64)],
        gone: &[[u8; 32]],
    ) -> Result<(), StoreError> {
        let path = self.path.display().to_string();
        let err = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        for (id, at) in seen {
            tx.execute(
                "UPDATE sessions SET last_seen = ?1 WHERE id_sha256 = ?2 AND last_seen < ?1",
                params![to_i64(*at), id.as_slice()],
            )
            .map_err(err)?;
        }
        for id in gone {
            tx.execute("DELETE FROM sessions WHERE id_sha256 = ?1", [id.as_slice()])
                .map_err(err)?;
        }
        tx.commit().map_err(err)
    }
}

// ---- the gateway's live view ------------------------------------------------------------

/// A store user, ready for the request path.
#[derive(Debug)]
pub struct LiveUser {
    pub hash: Arc<PasswordHash>,
    /// SHA-256 of the stored hash string: part of the verification cache key, so a new
    /// password makes old cached results unreachable.
    pub fingerprint: [u8; 32],
    pub groups: Arc<[String]>,
    pub password_changed: u64,
    pub expires: Option<u64>,
    pub password_expired: bool,
    pub locked: bool,
}

/// An API token, ready for the request path.
#[derive(Debug)]
pub struct LiveToken {
    pub id: String,
    pub user: String,
    pub scopes: Arc<[String]>,
    pub secret_sha256: [u8; 32],
    pub created: u64,
    pub expires: Option<u64>,
    pub revoked: bool,
    /// The last use seen by this process or read from the store (Unix seconds; 0 = never).
    pub last_used: AtomicU64,
    /// What the store holds, to know what needs writing back.
    persisted: AtomicU64,
}

impl LiveToken {
    /// The later of the last use and the creation: idle time counts from there.
    pub fn active_at(&self) -> u64 {
        self.last_used.load(Ordering::Relaxed).max(self.created)
    }

    pub fn touch(&self, now: u64) {
        self.last_used.fetch_max(now, Ordering::Relaxed);
    }
}

/// What the request path reads: users and tokens, swapped whole on change.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub users: HashMap<String, Arc<LiveUser>>,
    pub tokens: HashMap<String, Arc<LiveToken>>,
}

/// A session in memory.
#[derive(Debug)]
pub struct LiveSession {
    pub user: String,
    pub created: u64,
    pub last_seen: AtomicU64,
    persisted: AtomicU64,
}

/// The gateway's handle on the store: snapshot for reads, one connection for writes.
pub struct Live {
    store: Mutex<Store>,
    snapshot: ArcSwap<Snapshot>,
    version: Mutex<i64>,
    sessions: Mutex<HashMap<[u8; 32], Arc<LiveSession>>>,
    /// Sessions deleted but not yet deleted in the store.
    gone: Mutex<Vec<[u8; 32]>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain data behind; keep serving.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Live {
    pub fn open(path: &Path) -> Result<Arc<Live>, StoreError> {
        let store = Store::open(path)?;
        let sessions = store
            .sessions()?
            .into_iter()
            .map(|s| {
                (
                    s.id_sha256,
                    Arc::new(LiveSession {
                        user: s.user,
                        created: s.created,
                        last_seen: AtomicU64::new(s.last_seen),
                        persisted: AtomicU64::new(s.last_seen),
                    }),
                )
            })
            .collect();
        let live = Arc::new(Live {
            store: Mutex::new(store),
            snapshot: ArcSwap::new(Arc::new(Snapshot::default())),
            version: Mutex::new(i64::MIN),
            sessions: Mutex::new(sessions),
            gone: Mutex::new(Vec::new()),
        });
        live.reload(true)?;
        Ok(live)
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// The snapshot in force, as a weak reference for [`Live::is_snapshot`].
    pub fn snapshot_weak(&self) -> std::sync::Weak<Snapshot> {
        Arc::downgrade(&self.snapshot.load())
    }

    /// Whether `seen` is the snapshot in force.
    pub fn is_snapshot(&self, seen: &std::sync::Weak<Snapshot>) -> bool {
        std::ptr::eq(seen.as_ptr(), Arc::as_ptr(&self.snapshot.load()))
    }

    /// Rebuilds the snapshot if another process changed the store (or always, with
    /// `force`). Returns whether it did. Last-use times seen here are kept.
    ///
    /// The store's version counts as seen only once the snapshot is rebuilt: a reload that
    /// fails part-way (the database busy beyond the busy timeout, a read error) leaves the
    /// old snapshot in force and is tried again at the next call, not skipped until another
    /// process changes the store again. (Reading rows newer than `version` is harmless: it
    /// only makes the next call rebuild once more.)
    pub fn reload(&self, force: bool) -> Result<bool, StoreError> {
        let store = lock(&self.store);
        let version = store.data_version()?;
        if !force && *lock(&self.version) == version {
            return Ok(false);
        }
        let old = self.snapshot.load_full();
        let mut users = HashMap::new();
        for u in store.users()? {
            let hash = match PasswordHash::parse(&u.hash) {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(user = %u.name, "store user has an unusable hash, skipped: {e}");
                    continue;
                }
            };
            users.insert(
                u.name.clone(),
                Arc::new(LiveUser {
                    hash: Arc::new(hash),
                    fingerprint: Sha256::digest(u.hash.as_bytes()).into(),
                    groups: u.groups.into(),
                    password_changed: u.password_changed,
                    expires: u.expires,
                    password_expired: u.password_expired,
                    locked: u.locked,
                }),
            );
        }
        let mut tokens = HashMap::new();
        for t in store.tokens()? {
            let stored = t.last_used.unwrap_or(0);
            let here = old
                .tokens
                .get(&t.id)
                .map_or(0, |o| o.last_used.load(Ordering::Relaxed));
            tokens.insert(
                t.id.clone(),
                Arc::new(LiveToken {
                    id: t.id,
                    user: t.user,
                    scopes: t.scopes.into(),
                    secret_sha256: t.secret_sha256,
                    created: t.created,
                    expires: t.expires,
                    revoked: t.revoked.is_some(),
                    last_used: AtomicU64::new(stored.max(here)),
                    persisted: AtomicU64::new(stored),
                }),
            );
        }
        // Sessions another process ended (`authgate user rm` deletes a user's sessions) end
        // here too; ones it added (another gateway on the same store) are adopted.
        let stored = store.sessions()?;
        {
            let gone = lock(&self.gone);
            let mut sessions = lock(&self.sessions);
            let ids: std::collections::HashSet<[u8; 32]> =
                stored.iter().map(|s| s.id_sha256).collect();
            sessions.retain(|id, _| ids.contains(id));
            for s in stored {
                if gone.contains(&s.id_sha256) {
                    continue;
                }
                sessions.entry(s.id_sha256).or_insert_with(|| {
                    Arc::new(LiveSession {
                        user: s.user,
                        created: s.created,
                        last_seen: AtomicU64::new(s.last_seen),
                        persisted: AtomicU64::new(s.last_seen),
                    })
                });
            }
        }
        self.snapshot.store(Arc::new(Snapshot { users, tokens }));
        *lock(&self.version) = version;
        Ok(true)
    }

    /// Writes back token uses and session activity/deletions since the last flush.
    pub fn flush(&self) -> Result<(), StoreError> {
        let snapshot = self.snapshot.load_full();
        let uses: Vec<(String, u64)> = snapshot
            .tokens
            .values()
            .filter_map(|t| {
                let now = t.last_used.load(Ordering::Relaxed);
                (now > t.persisted.load(Ordering::Relaxed)).then(|| (t.id.clone(), now))
            })
            .collect();
        let seen: Vec<([u8; 32], u64)> = lock(&self.sessions)
            .iter()
            .filter_map(|(id, s)| {
                let now = s.last_seen.load(Ordering::Relaxed);
                (now > s.persisted.load(Ordering::Relaxed)).then_some((*id, now))
            })
            .collect();
        let gone = std::mem::take(&mut *lock(&self.gone));
        if uses.is_empty() && seen.is_empty() && gone.is_empty() {
            return Ok(());
        }
        let mut store = lock(&self.store);
        if !uses.is_empty() {
            store.record_token_use(&uses)?;
        }
        store.sync_sessions(&seen, &gone)?;
        // Our own commits do not change data_version for this connection.
        for (id, at) in &uses {
            if let Some(t) = snapshot.tokens.get(id) {
                t.persisted.fetch_max(*at, Ordering::Relaxed);
            }
        }
        let sessions = lock(&self.sessions);
        for (id, at) in &seen {
            if let Some(s) = sessions.get(id) {
                s.persisted.fetch_max(*at, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    // ---- sessions -----------------------------------------------------------------------

    /// Stores a new session (written through before the cookie is handed out).
    pub fn create_session(
        &self,
        id_sha256: [u8; 32],
        user: &str,
        now: u64,
    ) -> Result<(), StoreError> {
        lock(&self.store).add_session(&SessionRow {
            id_sha256,
            user: user.to_owned(),
            created: now,
            last_seen: now,
        })?;
        lock(&self.sessions).insert(
            id_sha256,
            Arc::new(LiveSession {
                user: user.to_owned(),
                created: now,
                last_seen: AtomicU64::new(now),
                persisted: AtomicU64::new(now),
            }),
        );
        Ok(())
    }

    pub fn session(&self, id_sha256: &[u8; 32]) -> Option<Arc<LiveSession>> {
        lock(&self.sessions).get(id_sha256).cloned()
    }

    /// Deletes a session now (sign-out: written through, not batched).
    pub fn remove_session(&self, id_sha256: &[u8; 32]) -> Result<(), StoreError> {
        lock(&self.sessions).remove(id_sha256);
        lock(&self.store).remove_session(id_sha256)
    }

    /// Forgets a session that expired; the store forgets it at the next flush.
    pub fn expire_session(&self, id_sha256: &[u8; 32]) {
        if lock(&self.sessions).remove(id_sha256).is_some() {
            lock(&self.gone).push(*id_sha256);
        }
    }

    /// Forgets every session for which `dead(session)` holds (periodic clean-up).
    pub fn sweep_sessions(&self, dead: impl Fn(&LiveSession) -> bool) {
        let mut gone = Vec::new();
        lock(&self.sessions).retain(|id, s| {
            let keep = !dead(s);
            if !keep {
                gone.push(*id);
            }
            keep
        });
        lock(&self.gone).extend(gone);
    }

    /// Keeps polling for changes by other processes and flushing, every `interval`.
    pub fn spawn_maintenance(
        self: &Arc<Self>,
        interval: std::time::Duration,
        flush_every: u32,
    ) -> tokio::task::JoinHandle<()> {
        let live = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u32 = 0;
            loop {
                tick.tick().await;
                let Some(live) = live.upgrade() else { return };
                n = n.wrapping_add(1);
                let flush = n.is_multiple_of(flush_every.max(1));
                let result = tokio::task::spawn_blocking(move || {
                    let reloaded = live.reload(false);
                    if flush {
                        live.flush()?;
                    }
                    reloaded
                })
                .await;
                match result {
                    Ok(Ok(true)) => tracing::info!("reloaded users and tokens from the store"),
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::error!("store: {e}"),
                    Err(e) => tracing::error!("store maintenance task failed: {e}"),
                }
            }
        })
    }
}

/// SHA-256, for token secrets and session ids (high-entropy values: a fast hash is right;
/// password hashing would add nothing but cost).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn user(name: &str) -> UserRow {
        UserRow {
            name: name.into(),
            hash: crate::users::hash::hash_password(
                b"pw",
                crate::users::hash::NewHash::Bcrypt { cost: 4 },
            )
            .unwrap(),
            groups: vec!["a".into(), "b".into()],
            created: 10,
            password_changed: 10,
            expires: None,
            password_expired: false,
            locked: false,
        }
    }

    #[test]
    fn creates_migrates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/authgate.db");
        {
            let mut s = Store::open(&path).unwrap();
            s.add_user(&user("alice")).unwrap();
            assert!(s.add_user(&user("alice")).is_err());
        }
        let s = Store::open(&path).unwrap();
        let v: i64 = s
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode: String = s
            .conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let alice = s.user("alice").unwrap().unwrap();
        assert_eq!(alice.groups, ["a", "b"]);
        s.set_locked("alice", true).unwrap();
        assert!(s.user("alice").unwrap().unwrap().locked);
        assert!(s.set_locked("nobody", true).is_err());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        drop(Store::open(&path).unwrap());
        let c = Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", 99).unwrap();
        drop(c);
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }

    #[test]
    fn live_sees_other_connections_and_keeps_last_use() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let live = Live::open(&path).unwrap();
        assert!(live.snapshot().users.is_empty());
        let mut cli = Store::open(&path).unwrap();
        cli.add_user(&user("bob")).unwrap();
        cli.add_token(&TokenRow {
            id: "t1".into(),
            user: "bob".into(),
            name: "ci".into(),
            scopes: vec!["read".into()],
            secret_sha256: sha256(b"s"),
            created: 100,
            expires: None,
            last_used: None,
            revoked: None,
        })
        .unwrap();
        assert!(live.reload(false).unwrap());
        assert!(!live.reload(false).unwrap());
        let snap = live.snapshot();
        assert!(snap.users.contains_key("bob"));
        let t = Arc::clone(&snap.tokens["t1"]);
        t.touch(500);
        assert_eq!(t.active_at(), 500);
        live.flush().unwrap();
        assert_eq!(cli.tokens().unwrap()[0].last_used, Some(500));
        cli.revoke_token("t1", 600).unwrap();
        assert!(cli.revoke_token("t1", 600).is_err());
        assert!(live.reload(false).unwrap());
        let t = Arc::clone(&live.snapshot().tokens["t1"]);
        assert!(t.revoked);
        assert_eq!(t.active_at(), 500);
    }

    #[test]
    fn a_reload_that_fails_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let live = Live::open(&path).unwrap();
        // Another process adds a user, and the tokens cannot be read for a while (the table
        // is renamed away here: a stand-in for a read that fails after the store changed).
        let mut cli = Store::open(&path).unwrap();
        cli.add_user(&user("bob")).unwrap();
        cli.conn
            .execute_batch("ALTER TABLE tokens RENAME TO tokens_away")
            .unwrap();
        assert!(live.reload(false).is_err());
        assert!(live.snapshot().users.is_empty());
        // The reads work again with no further commit from another connection (this is the
        // gateway's own connection, so the store's version does not move).
        lock(&live.store)
            .conn
            .execute_batch("ALTER TABLE tokens_away RENAME TO tokens")
            .unwrap();
        assert!(live.reload(false).unwrap());
        assert!(live.snapshot().users.contains_key("bob"));
        assert!(!live.reload(false).unwrap());
    }

    #[test]
    fn sessions_are_written_through_and_swept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let live = Live::open(&path).unwrap();
        let id = sha256(b"cookie");
        live.create_session(id, "alice", 100).unwrap();
        live.session(&id)
            .unwrap()
            .last_seen
            .store(150, Ordering::Relaxed);
        live.flush().unwrap();
        drop(live);
        let live = Live::open(&path).unwrap();
        let s = live.session(&id).unwrap();
        assert_eq!(s.last_seen.load(Ordering::Relaxed), 150);
        live.sweep_sessions(|s| s.created < 200);
        live.flush().unwrap();
        assert!(live.session(&id).is_none());
        assert!(Store::open(&path).unwrap().sessions().unwrap().is_empty());
    }
}
