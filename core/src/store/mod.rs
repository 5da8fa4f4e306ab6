//! The encrypted on-device store: one SQLite database (bundled SQLite, WAL, one writer) holding each linked
//! account's FHIR resources, their Binary contents, and the sync bookkeeping, so the record reads offline.
//!
//! Every payload is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the host-held master key and the
//! account id, with a fresh random nonce per record and the account, type and id as associated data: a row cannot
//! be read under another account's key or moved to another id. Look-ups by code and category use keyed hashes
//! (HMAC-SHA256 under the account's key), and so do resource ids (real ids can embed names); the position of an
//! interrupted search (a next link naming the patient) is sealed too. The file holds no names, codes, values, notes
//! or ids in the clear; what is in the clear: account ids (random), resource types, versionIds, the server's time of
//! each sync query run and sync counters (a resource's lastUpdated stamp is kept only as a keyed hash: it is often
//! the clinical time).
//!
//! Background sync while locked (see `sealed.rs` and `crate::sync::locked`): each account also has an X25519 key
//! pair, the public key in the clear and the private key sealed under the account's key; a locked sync seals what it
//! receives to the public key (HPKE) into the `locked_inbox`, which unlock opens and applies as normal rows.
//!
//! No clinical date is stored in the clear either: the date of a result lives only inside its sealed projection
//! (the brief), and the newest result per code is chosen in Rust by opening the briefs of that code.
//!
//! Failure policy (the device's own files fail closed):
//! - A wrong master key (a restored backup, a re-enrolled biometric, another secure store) is detected up front by
//!   a sealed canary ([`Store::check_key`]) and answered with [`StoreError::WrongKey`]; no row is touched.
//! - A database from a newer ChartLink is refused with [`StoreError::NewerVersion`]; the file is left as it is.
//! - A database busy in another process is waited for (bounded), then [`StoreError::Busy`]; it is never moved.
//! - Only real corruption (the file is not a database, or it was marked by a failed `quick_check`) moves the file
//!   aside and starts empty; the host is told ([`StoreNotice::DatabaseMovedAside`]) and the moved copy is deleted by
//!   [`Store::purge`] and [`Store::delete_files`].
//! - A single row that fails to decrypt once the key is known to be right is damage to that row: it is removed, its
//!   queries are fetched again at the next sync, and the host is told ([`StoreNotice::DamagedRows`]).
//!
//! On unix the database and its `-wal`/`-shm` files are created with mode 0600.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hkdf;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::Value;
use zeroize::Zeroizing;

mod files;
mod keys;
mod latest;
mod records;
mod schema;
mod sealed;
mod state;

pub use keys::AccountKeys;
use keys::aad;
use schema::MIGRATIONS;
pub use sealed::{InboxRow, OpeningKey, SealingKey, WHATS_NEW_LIMIT};
/// Storage failures. The text never contains health data.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(String),
    #[error("a record could not be decrypted (wrong key or damaged)")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    /// The master key does not open this database (the canary did not open): nothing was read or changed.
    #[error("the store key does not open this database")]
    WrongKey,
    /// The database was written by a newer ChartLink (after an app downgrade): the file was left untouched.
    #[error(
        "the database was written by a newer ChartLink (schema version {found}, this version knows up to {known})"
    )]
    NewerVersion { found: i64, known: i64 },
    /// Another process holds the database and did not let go in time.
    #[error("the database is busy in another process")]
    Busy,
    /// The file is not a database or is damaged.
    #[error("the database file is damaged")]
    Corrupt,
    /// The device is out of space.
    #[error("the device is out of space")]
    Full,
    /// A file-system operation on the database's files failed.
    #[error("file system error: {0}")]
    Io(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked) => StoreError::Busy,
            Some(C::NotADatabase | C::DatabaseCorrupt) => StoreError::Corrupt,
            Some(C::DiskFull) => StoreError::Full,
            _ => StoreError::Sqlite(e.to_string()),
        }
    }
}

fn io(e: &std::io::Error) -> StoreError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        return StoreError::Full;
    }
    StoreError::Io(e.kind().to_string())
}

/// Something the host should know about the device's own files (see [`Store::take_notices`]). Holds no health data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreNotice {
    /// The database was damaged: it was moved to `moved_to` and a fresh one started, which the next sync of each
    /// account fills again. The copy is deleted when an account is unlinked or purged, and by a reset.
    DatabaseMovedAside { moved_to: PathBuf },
    /// `count` rows of an account were damaged (they no longer decrypt under the right key): they were removed and
    /// will be fetched again by the next sync of that account.
    DamagedRows { account_id: String, count: usize },
    /// An account entry in the secure store could not be read (the host failed to return it, or it is not a
    /// ChartLink entry); the account was skipped. `key` is the secure-store key.
    UnreadableAccountEntry { key: String },
}

/// How long an open waits for a database busy in another process before failing with [`StoreError::Busy`].
pub const DEFAULT_BUSY_WAIT: Duration = Duration::from_secs(10);

/// The pseudo-account under which the canary is sealed (not a possible account id: those are random and printable).
const CANARY_ACCOUNT: &str = "\u{0}canary";
const CANARY_TEXT: &[u8] = b"chartlink store canary v1";

type Result<T> = std::result::Result<T, StoreError>;

/// A stored row: type, id tag, nonce, sealed payload.
type Row = (String, Vec<u8>, Vec<u8>, Vec<u8>);
/// A stored row with its account.
type AccountRow = (String, String, Vec<u8>, Vec<u8>, Vec<u8>);
/// A sealed brief: id tag, nonce, sealed bytes.
type BriefRow = (Vec<u8>, Vec<u8>, Vec<u8>);

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    New,
    Changed,
    Unchanged,
}

/// One resource to store, with its search tags.
#[derive(Debug)]
pub struct Incoming<'a> {
    pub ty: &'a str,
    pub id: &'a str,
    pub version: Option<&'a str>,
    pub last_updated: Option<&'a str>,
    pub code: Option<&'a str>,
    pub category: Option<&'a str>,
    pub json: &'a [u8],
    /// A small projection for trends and summaries (sealed like the payload), with the clinical date as a sort
    /// key used only to pick the newest result per code (it is not stored in the clear).
    pub brief: Option<(&'a [u8], i64)>,
}

/// The bookkeeping of one sync query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryState {
    /// Server time of the last complete run: the next incremental run asks for `_lastUpdated=ge{since}`.
    pub since: Option<String>,
    /// Server time when the run in progress started; becomes `since` when it completes.
    pub pending_since: Option<String>,
    pub resume_url: Option<String>,
    pub pass: i64,
    pub full_pass_done: bool,
    /// What the last run ended with (saved by [`Store::set_query_state`]'s `error`): the reason of a failure, or
    /// one of sync's marks (a search the server does not support, an Observation search that needs a category).
    /// Holds no health data.
    pub last_error: Option<String>,
}

/// The database.
#[derive(Debug)]
pub struct Store {
    /// The one writer (sync's page transactions, migrations, the canary).
    conn: Mutex<Connection>,
    /// Idle read connections beside the writer (file databases, in WAL mode): the app's reads do not wait behind
    /// sync's page transactions. An in-memory database reads through the writer.
    readers: Mutex<Vec<Connection>>,
    path: Option<PathBuf>,
    notices: Mutex<Vec<StoreNotice>>,
}

impl Store {
    /// Opens (creating or migrating) the database at `path`, waiting up to [`DEFAULT_BUSY_WAIT`] for another
    /// process, and applying the corrupt-database policy.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_with(path, DEFAULT_BUSY_WAIT)
    }

    /// Like [`Store::open`], waiting at most `busy_wait` for a database busy in another process.
    ///
    /// Errors: [`StoreError::Busy`] when it stays busy, [`StoreError::NewerVersion`] for a database of a newer
    /// ChartLink (untouched), [`StoreError::Io`]/[`StoreError::Sqlite`] for other failures (the file is not moved).
    /// Only a damaged file is moved aside: the store then opens empty with a [`StoreNotice::DatabaseMovedAside`].
    pub fn open_with(path: &Path, busy_wait: Duration) -> Result<Self> {
        let deadline = Instant::now() + busy_wait;
        let mut delay = Duration::from_millis(10);
        loop {
            match Self::open_checked(path) {
                Ok(s) => return Ok(s),
                Err(StoreError::Busy) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(StoreError::Busy);
                    }
                    std::thread::sleep(delay.min(left));
                    delay = (delay * 2).min(Duration::from_millis(250));
                }
                Err(StoreError::Corrupt) => {
                    let moved_to = Self::move_aside(path)?;
                    tracing::warn!(target: "chartlink", "the local database was damaged; it was moved aside and will be rebuilt by a sync");
                    let store = Self::open_checked(path)?;
                    store.notify(StoreNotice::DatabaseMovedAside { moved_to });
                    return Ok(store);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?, None)
    }

    fn setup(mut conn: Connection, path: Option<PathBuf>) -> Result<Self> {
        // The version is read before anything writes: a newer database is left exactly as it is.
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::NewerVersion {
                found: version,
                known,
            });
        }
        let version = usize::try_from(version).unwrap_or(0);
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read again under the write lock: another process may have migrated while this one waited for it.
        let version = tx
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map(|v| usize::try_from(v).unwrap_or(0))
            .unwrap_or(version);
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Sync's upserts reuse their statements (a page is hundreds of them); the default cache holds 16.
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self {
            conn: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
            path,
            notices: Mutex::new(Vec::new()),
        })
    }

    /// Checks that `master` is the key of this database, through the sealed canary; a database without one gets it
    /// (after checking, for a database from before the canary, that its rows open under `master`).
    ///
    /// Errors: [`StoreError::WrongKey`] when the canary (or the old rows) do not open; nothing is changed then.
    pub fn check_key(&self, master: &[u8; 32]) -> Result<()> {
        let keys = AccountKeys::derive(master, CANARY_ACCOUNT)?;
        let canary_aad = aad(CANARY_ACCOUNT, "canary", b"");
        let conn = self.conn();
        let canary: Option<(Vec<u8>, Vec<u8>)> = conn
            .query_row(
                "SELECT nonce, sealed FROM meta WHERE name = 'canary'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((nonce, sealed)) = canary {
            return match keys.open(&canary_aad, &nonce, sealed) {
                Ok(p) if p.as_slice() == CANARY_TEXT => Ok(()),
                _ => Err(StoreError::WrongKey),
            };
        }
        // No canary yet: rows written before it must open under this key (one that opens is enough: a damaged row
        // is not a wrong key).
        let sample: Vec<AccountRow> = {
            let mut stmt = conn.prepare(
                "SELECT account, type, id_tag, nonce, payload FROM resources ORDER BY rowid LIMIT 8",
            )?;
            stmt.query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })?
            .collect::<std::result::Result<_, _>>()?
        };
        if !sample.is_empty() {
            let opens = sample
                .into_iter()
                .any(|(account, ty, id_tag, nonce, payload)| {
                    AccountKeys::derive(master, &account)
                        .and_then(|k| k.open(&aad(&account, &ty, &id_tag), &nonce, payload))
                        .is_ok()
                });
            if !opens {
                return Err(StoreError::WrongKey);
            }
        }
        let (nonce, sealed) = keys.seal(&canary_aad, CANARY_TEXT)?;
        conn.execute(
            "INSERT INTO meta (name, nonce, sealed) VALUES ('canary', ?, ?)",
            params![nonce, sealed],
        )?;
        Ok(())
    }

    /// Whether this database belongs to a key already (it has a canary or records): a missing key must then not be
    /// replaced by a new one.
    pub fn is_keyed(&self) -> Result<bool> {
        let n: i64 = self.conn().query_row(
            "SELECT (SELECT count(*) FROM meta WHERE name = 'canary') + (SELECT count(*) FROM (SELECT 1 FROM resources LIMIT 1))",
            [],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Records something the host should know (an identical notice still pending is not repeated; damaged-row
    /// counts of an account add up).
    pub fn notify(&self, notice: StoreNotice) {
        let mut list = self.notices.lock().unwrap_or_else(|e| e.into_inner());
        if let StoreNotice::DamagedRows { account_id, count } = &notice
            && let Some(StoreNotice::DamagedRows { count: c, .. }) = list.iter_mut().find(
                |n| matches!(n, StoreNotice::DamagedRows { account_id: a, .. } if a == account_id),
            )
        {
            *c += count;
            return;
        }
        if !list.contains(&notice) {
            list.push(notice);
        }
    }

    /// The notices since the last call (the host shows them, or sends them with a bug report).
    pub fn take_notices(&self) -> Vec<StoreNotice> {
        std::mem::take(&mut *self.notices.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Where the database lives (None in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection for reading: an idle read connection (opened read-only when none is idle), or the writer for an
    /// in-memory database. Reads see every committed write.
    fn reader(&self) -> Result<Reader<'_>> {
        let Some(path) = &self.path else {
            return Ok(Reader::Writer(self.conn()));
        };
        let idle = self.readers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    path,
                    rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(Duration::from_secs(5))?;
                c
            }
        };
        Ok(Reader::Pooled {
            conn: Some(conn),
            store: self,
        })
    }

    /// Runs `f` in one write transaction (the single writer).
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        // IMMEDIATE: the write lock is taken at BEGIN, so a second process writing the same database waits for this
        // transaction (busy timeout) instead of failing both at the upgrade from reader to writer (SQLITE_BUSY
        // without waiting), which left two syncs of one store half-written.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;

/// How many idle read connections are kept.
const IDLE_READERS: usize = 4;

/// A read connection, back to the pool when dropped.
enum Reader<'a> {
    Writer(std::sync::MutexGuard<'a, Connection>),
    Pooled {
        conn: Option<Connection>,
        store: &'a Store,
    },
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Reader::Writer(c) => c,
            // `conn` is only taken in `drop`.
            Reader::Pooled { conn, .. } => conn.as_ref().unwrap_or_else(|| unreachable!()),
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Reader::Pooled { conn, store } = self
            && let Some(c) = conn.take()
        {
            let mut idle = store.readers.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(c);
            }
        }
    }
}
