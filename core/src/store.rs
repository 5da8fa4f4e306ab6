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
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;
use zeroize::Zeroizing;

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
            _ => StoreError::Sqlite(e.to_string()),
        }
    }
}

fn io(e: &std::io::Error) -> StoreError {
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

const MIGRATIONS: [&str; 3] = ["
CREATE TABLE resources (
    account TEXT NOT NULL, type TEXT NOT NULL, id_tag BLOB NOT NULL,
    version TEXT, last_updated TEXT,
    query TEXT NOT NULL, pass INTEGER NOT NULL,
    code_tag BLOB, category_tag BLOB,
    nonce BLOB NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (account, type, id_tag));
CREATE INDEX resources_by_code ON resources (account, code_tag);
CREATE INDEX resources_by_query ON resources (account, query, pass);
CREATE TABLE binaries (
    account TEXT NOT NULL, id_tag BLOB NOT NULL, nonce BLOB NOT NULL, payload BLOB NOT NULL,
    PRIMARY KEY (account, id_tag));
CREATE TABLE sync_queries (
    account TEXT NOT NULL, query TEXT NOT NULL,
    since TEXT, pending_since TEXT, resume_nonce BLOB, resume_sealed BLOB, pass INTEGER NOT NULL DEFAULT 0, full_pass_done INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    PRIMARY KEY (account, query));
CREATE TABLE sync_accounts (
    account TEXT PRIMARY KEY, pass INTEGER NOT NULL DEFAULT 0, last_full_ms INTEGER, last_sync_ms INTEGER);
", "
-- v2: a small sealed projection of each result (what trends and summaries read instead of the whole resource),
-- and the newest result per code, kept up to date by sync.
ALTER TABLE resources ADD COLUMN brief_nonce BLOB;
ALTER TABLE resources ADD COLUMN brief BLOB;
ALTER TABLE resources ADD COLUMN sort_key INTEGER;
CREATE TABLE latest (
    account TEXT NOT NULL, code_tag BLOB NOT NULL, id_tag BLOB NOT NULL, nonce BLOB NOT NULL, brief BLOB NOT NULL,
    PRIMARY KEY (account, code_tag));
", "
-- v3: no clinical date in the clear (the date lives only in the sealed brief); a sealed canary that tells a wrong key
-- from damage; the codes whose newest result must be chosen again (after deletions), done in Rust with the key.
ALTER TABLE resources DROP COLUMN sort_key;
-- lastUpdated stamps are often the clinical time: from now on only their keyed hash is kept (equality is all sync
-- needs); the clear ones go, so the next sync sees those rows as changed and writes them again.
UPDATE resources SET last_updated = NULL;
CREATE TABLE meta (name TEXT PRIMARY KEY, nonce BLOB NOT NULL, sealed BLOB NOT NULL);
CREATE TABLE latest_stale (account TEXT NOT NULL, code_tag BLOB NOT NULL, PRIMARY KEY (account, code_tag));
"];

/// A stored row: type, id tag, nonce, sealed payload.
type Row = (String, Vec<u8>, Vec<u8>, Vec<u8>);
/// A stored row with its account.
type AccountRow = (String, String, Vec<u8>, Vec<u8>, Vec<u8>);
/// A sealed brief: id tag, nonce, sealed bytes.
type BriefRow = (Vec<u8>, Vec<u8>, Vec<u8>);

/// The keys of one account, derived from the master key. Only the derived bytes are held, in a zeroizing buffer;
/// ring's key objects are built per operation and dropped at once.
pub struct AccountKeys {
    okm: Zeroizing<[u8; 64]>,
}

impl std::fmt::Debug for AccountKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountKeys([redacted])")
    }
}

struct Len(usize);
impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl AccountKeys {
    /// Derives an account's keys from the 32-byte master key.
    pub fn derive(master: &[u8; 32], account: &str) -> Result<Self> {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"chartlink-store-v1").extract(master);
        let mut okm = Zeroizing::new([0u8; 64]);
        let info = [account.as_bytes()];
        prk.expand(&info, Len(64))
            .and_then(|o| o.fill(&mut okm[..]))
            .map_err(|_| StoreError::Encrypt)?;
        Ok(Self { okm })
    }

    fn aead(&self) -> Result<LessSafeKey> {
        Ok(LessSafeKey::new(
            UnboundKey::new(&AES_256_GCM, &self.okm[..32]).map_err(|_| StoreError::Encrypt)?,
        ))
    }

    /// A keyed hash of a search value (a code, a category, an id), so equal values can be found without storing
    /// them.
    pub fn tag(&self, value: &str) -> Vec<u8> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.okm[32..]);
        hmac::sign(&key, value.as_bytes()).as_ref()[..16].to_vec()
    }

    fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let mut nonce = [0u8; 12];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| StoreError::Encrypt)?;
        let mut buf = plaintext.to_vec();
        self.aead()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut buf,
            )
            .map_err(|_| StoreError::Encrypt)?;
        Ok((nonce.to_vec(), buf))
    }

    fn open(&self, aad: &str, nonce: &[u8], mut ciphertext: Vec<u8>) -> Result<Zeroizing<Vec<u8>>> {
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| StoreError::Decrypt)?;
        let plain = self
            .aead()?
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad.as_bytes()),
                &mut ciphertext,
            )
            .map_err(|_| StoreError::Decrypt)?;
        let out = Zeroizing::new(plain.to_vec());
        // The decrypted bytes also sit in `ciphertext`'s buffer: wipe it.
        zeroize::Zeroize::zeroize(&mut ciphertext);
        Ok(out)
    }
}

/// Associated data of a sealed record: the account, the type and the id's keyed hash — a row cannot be moved to
/// another account, type or id.
fn aad(account: &str, ty: &str, id_tag: &[u8]) -> String {
    let hex: String = id_tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("{account}\u{1f}{ty}\u{1f}{hex}")
}

/// The clinical date of a brief (a serialized lab result), as sort key; `i64::MIN` without one.
fn brief_sort_key(brief: &[u8]) -> i64 {
    #[derive(serde::Deserialize)]
    struct Dated {
        date: Option<crate::views::FhirDate>,
    }
    serde_json::from_slice::<Dated>(brief)
        .ok()
        .and_then(|d| d.date)
        .map_or(i64::MIN, |d| d.sort_key())
}

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
    /// Server time of the last complete run: the next incremental run asks for `_lastUpdated=gt{since}`.
    pub since: Option<String>,
    /// Server time when the run in progress started; becomes `since` when it completes.
    pub pending_since: Option<String>,
    pub resume_url: Option<String>,
    pub pass: i64,
    pub full_pass_done: bool,
}

/// The database.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: Option<PathBuf>,
    notices: Mutex<Vec<StoreNotice>>,
}

/// Creates the database file with mode 0600 (SQLite gives its `-wal` and `-shm` files the mode of the database), and
/// narrows existing files to 0600.
fn create_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if !path.exists() {
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|e| io(&e))?;
        }
        for p in [
            path.to_owned(),
            sibling(path, "-wal"),
            sibling(path, "-shm"),
        ] {
            if let Ok(m) = std::fs::metadata(&p)
                && m.permissions().mode() & 0o077 != 0
            {
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| io(&e))?;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Whether the database file is shorter than its header says (a copy cut off, a full disk): SQLite itself would only
/// notice when it reads a missing page. Only decided when the header's size is valid and no WAL holds pages.
fn is_truncated(path: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 100];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let Ok(meta) = f.metadata() else {
        return false;
    };
    if f.read_exact(&mut header).is_err() || &header[..16] != b"SQLite format 3\0" {
        return false; // empty, or not a database: SQLite answers that itself
    }
    // Pages in a WAL, or a hot rollback journal, are SQLite's to apply first.
    let wal_in_use = ["-wal", "-journal"]
        .iter()
        .any(|s| std::fs::metadata(sibling(path, s)).is_ok_and(|m| m.len() > 0));
    let be32 =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let size_valid = be32(24) == be32(92);
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let pages = u64::from(be32(28));
    !wal_in_use && size_valid && meta.len() < pages * page_size
}

/// `path` with `suffix` appended to its file name (`chartlink.db` -> `chartlink.db-wal`).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The prefix of the moved-aside copies of a damaged database (`chartlink.corrupt-<unix seconds>`).
fn aside_prefix(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{stem}.corrupt-")
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

    /// Moves a damaged database aside (kept for a bug report until a purge or reset deletes it).
    fn move_aside(path: &Path) -> Result<PathBuf> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let aside = path.with_file_name(format!("{}{stamp}", aside_prefix(path)));
        std::fs::rename(path, &aside).map_err(|e| io(&e))?;
        for p in [sibling(path, "-wal"), sibling(path, "-shm")] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&e)),
                _ => {}
            }
        }
        let _ = std::fs::remove_file(path.with_extension("rebuild"));
        Ok(aside)
    }

    /// Deletes the moved-aside copies of a damaged database next to `path`. Returns how many were deleted.
    pub fn delete_moved_aside(path: &Path) -> Result<usize> {
        let Some(dir) = path.parent() else {
            return Ok(0);
        };
        let prefix = aside_prefix(path);
        let mut n = 0;
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io(&e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io(&e))?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(&prefix))
            {
                std::fs::remove_file(entry.path()).map_err(|e| io(&e))?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Deletes the database at `path` with its `-wal`/`-shm` files, its rebuild mark and its moved-aside copies: the
    /// reset of a store that can never be opened again. No connection to it may be open.
    pub fn delete_files(path: &Path) -> Result<()> {
        for p in [
            path.to_owned(),
            sibling(path, "-wal"),
            sibling(path, "-shm"),
            path.with_extension("rebuild"),
        ] {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&e)),
                _ => {}
            }
        }
        Self::delete_moved_aside(path)?;
        Ok(())
    }

    /// SQLite's full integrity check. A damaged file is marked so that the next open rebuilds it.
    pub fn check_integrity(&self) -> Result<bool> {
        let ok: String = self
            .conn()
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .unwrap_or_default();
        if ok != "ok" {
            self.mark_for_rebuild();
            return Ok(false);
        }
        Ok(true)
    }

    fn mark_for_rebuild(&self) {
        if let Some(p) = &self.path {
            let _ = std::fs::write(p.with_extension("rebuild"), b"");
        }
    }

    fn open_checked(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io(&e))?;
        }
        if path.with_extension("rebuild").exists() {
            return Err(StoreError::Corrupt);
        }
        create_private(path)?;
        if is_truncated(path) {
            return Err(StoreError::Corrupt);
        }
        let conn = Connection::open(path)?;
        // Short waits inside SQLite; `open_with` retries for longer.
        conn.busy_timeout(Duration::from_millis(200))?;
        // A cheap check at open (a damaged header or a file that is not a database fails here); the full
        // integrity check runs at the start of each full-pass sync and marks the file for rebuild at the next open.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        Self::setup(conn, Some(path.to_owned()))
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
        let tx = conn.transaction()?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        conn.busy_timeout(Duration::from_secs(5))?;
        Ok(Self {
            conn: Mutex::new(conn),
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

    /// Runs `f` in one write transaction (the single writer).
    pub fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Stores a resource seen by `query` in sync pass `pass`.
    pub fn upsert(
        tx: &Transaction<'_>,
        keys: &AccountKeys,
        account: &str,
        query: &str,
        pass: i64,
        r: &Incoming<'_>,
    ) -> Result<Change> {
        let id_tag = keys.tag(r.id);
        let lu_tag = r
            .last_updated
            .map(|lu| keys.tag(&format!("lastUpdated\u{1f}{lu}")));
        let existing: Option<(Option<String>, Option<Vec<u8>>)> = tx
            .query_row(
                "SELECT version, last_updated FROM resources WHERE account = ? AND type = ? AND id_tag = ?",
                params![account, r.ty, id_tag],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let change = match &existing {
            None => Change::New,
            Some((v, lu)) if v.as_deref() == r.version && *lu == lu_tag && r.version.is_some() => {
                Change::Unchanged
            }
            Some(_) => Change::Changed,
        };
        if change == Change::Unchanged {
            tx.execute(
                "UPDATE resources SET pass = ?, query = ? WHERE account = ? AND type = ? AND id_tag = ?",
                params![pass, query, account, r.ty, id_tag],
            )?;
            return Ok(change);
        }
        let (nonce, payload) = keys.seal(&aad(account, r.ty, &id_tag), r.json)?;
        let brief = match r.brief {
            Some((b, _)) => Some(keys.seal(&aad(account, "brief", &id_tag), b)?),
            None => None,
        };
        let (brief_nonce, brief_blob) = brief
            .clone()
            .map_or((None, None), |(n, b)| (Some(n), Some(b)));
        if let (Some(code), Some((bn, bb)), Some((_, key))) = (r.code, brief, r.brief) {
            Self::update_latest(tx, keys, account, &keys.tag(code), &id_tag, key, (bn, bb))?;
        }
        tx.execute(
            "INSERT INTO resources (account, type, id_tag, version, last_updated, query, pass, code_tag, category_tag, nonce, payload,
                 brief_nonce, brief)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (account, type, id_tag) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
                 query = excluded.query, pass = excluded.pass, code_tag = excluded.code_tag,
                 category_tag = excluded.category_tag, nonce = excluded.nonce, payload = excluded.payload,
                 brief_nonce = excluded.brief_nonce, brief = excluded.brief",
            params![
                account,
                r.ty,
                id_tag,
                r.version,
                lu_tag,
                query,
                pass,
                r.code.map(|c| keys.tag(c)),
                r.category.map(|c| keys.tag(c)),
                nonce,
                payload,
                brief_nonce,
                brief_blob,
            ],
        )?;
        Ok(change)
    }

    /// Keeps the newest brief per code. The date of the current latest result is read from its sealed brief (no
    /// date is stored in the clear).
    fn update_latest(
        tx: &Transaction<'_>,
        keys: &AccountKeys,
        account: &str,
        code_tag: &[u8],
        id_tag: &[u8],
        sort_key: i64,
        (nonce, brief): (Vec<u8>, Vec<u8>),
    ) -> Result<()> {
        let current: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = tx
            .query_row(
                "SELECT id_tag, nonce, brief FROM latest WHERE account = ? AND code_tag = ?",
                params![account, code_tag],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (replace, recompute) = match current {
            None => (true, false),
            Some((cur_id, cur_nonce, cur_brief)) => {
                // An unreadable current row is replaced (and the code's newest chosen again).
                let cur_key = keys
                    .open(&aad(account, "brief", &cur_id), &cur_nonce, cur_brief)
                    .ok()
                    .map(|b| brief_sort_key(&b));
                match cur_key {
                    None => (true, true),
                    // The same result moved back in time: another result of the code may now be the newest.
                    Some(k) if cur_id == id_tag => (true, sort_key < k),
                    Some(k) => (sort_key >= k, false),
                }
            }
        };
        if replace {
            tx.execute(
                "INSERT OR REPLACE INTO latest (account, code_tag, id_tag, nonce, brief) VALUES (?, ?, ?, ?, ?)",
                params![account, code_tag, id_tag, nonce, brief],
            )?;
        }
        if recompute {
            tx.execute(
                "INSERT OR IGNORE INTO latest_stale (account, code_tag) VALUES (?, ?)",
                params![account, code_tag],
            )?;
        }
        Ok(())
    }

    /// Opens sealed briefs; one that does not open is damage to its row, which is removed and reported.
    fn open_briefs(
        &self,
        keys: &AccountKeys,
        account: &str,
        rows: Vec<BriefRow>,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        let mut out = Vec::with_capacity(rows.len());
        let mut damaged = Vec::new();
        for (id_tag, n, b) in rows {
            match keys.open(&aad(account, "brief", &id_tag), &n, b) {
                Ok(p) => out.push(p),
                Err(StoreError::Decrypt) => damaged.push(("Observation".to_owned(), id_tag)),
                Err(e) => return Err(e),
            }
        }
        self.drop_damaged(account, damaged)?;
        Ok(out)
    }

    /// The briefs of every result with `code` (for a trend).
    pub fn briefs_by_code(
        &self,
        keys: &AccountKeys,
        account: &str,
        code: &str,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        let rows = self.brief_rows(account, &keys.tag(code))?;
        self.open_briefs(keys, account, rows)
    }

    fn brief_rows(&self, account: &str, code_tag: &[u8]) -> Result<Vec<BriefRow>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id_tag, brief_nonce, brief FROM resources WHERE account = ? AND code_tag = ? AND brief IS NOT NULL",
        )?;
        Ok(stmt
            .query_map(params![account, code_tag], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<std::result::Result<_, _>>()?)
    }

    /// The newest brief of each code (for a summary's latest results): one row per code. Codes whose newest result
    /// was deleted are chosen again first, by opening the briefs of those codes only.
    pub fn latest_briefs(
        &self,
        keys: &AccountKeys,
        account: &str,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        self.refresh_stale_latest(keys, account)?;
        let rows: Vec<BriefRow> = {
            let conn = self.conn();
            let mut stmt =
                conn.prepare_cached("SELECT id_tag, nonce, brief FROM latest WHERE account = ?")?;
            stmt.query_map([account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<std::result::Result<_, _>>()?
        };
        let mut out = Vec::with_capacity(rows.len());
        let mut damaged = false;
        for (id_tag, n, b) in rows {
            match keys.open(&aad(account, "brief", &id_tag), &n, b) {
                Ok(p) => out.push(p),
                Err(StoreError::Decrypt) => {
                    // The copy in `latest` is damaged: choose that code's newest again from the results.
                    damaged = true;
                    self.write(|tx| {
                        tx.execute(
                            "INSERT OR IGNORE INTO latest_stale (account, code_tag)
                             SELECT account, code_tag FROM latest WHERE account = ? AND id_tag = ?",
                            params![account, id_tag],
                        )?;
                        tx.execute(
                            "DELETE FROM latest WHERE account = ? AND id_tag = ?",
                            params![account, id_tag],
                        )?;
                        Ok(())
                    })?;
                }
                Err(e) => return Err(e),
            }
        }
        if damaged {
            return self.latest_briefs(keys, account);
        }
        Ok(out)
    }

    /// Chooses the newest result again for the codes marked stale (deletions, damage), in Rust with the key.
    fn refresh_stale_latest(&self, keys: &AccountKeys, account: &str) -> Result<()> {
        let stale: Vec<Vec<u8>> = {
            let conn = self.conn();
            let mut stmt =
                conn.prepare_cached("SELECT code_tag FROM latest_stale WHERE account = ?")?;
            stmt.query_map([account], |r| r.get(0))?
                .collect::<std::result::Result<_, _>>()?
        };
        for code_tag in stale {
            let rows = self.brief_rows(account, &code_tag)?;
            let mut best: Option<(i64, BriefRow)> = None;
            let mut damaged = Vec::new();
            for (id_tag, n, b) in rows {
                match keys.open(&aad(account, "brief", &id_tag), &n, b.clone()) {
                    Ok(plain) => {
                        let k = brief_sort_key(&plain);
                        if best.as_ref().is_none_or(|(bk, ..)| k >= *bk) {
                            best = Some((k, (id_tag, n, b)));
                        }
                    }
                    Err(StoreError::Decrypt) => damaged.push(("Observation".to_owned(), id_tag)),
                    Err(e) => return Err(e),
                }
            }
            self.write(|tx| {
                tx.execute(
                    "DELETE FROM latest WHERE account = ? AND code_tag = ?",
                    params![account, code_tag],
                )?;
                if let Some((_, (id_tag, n, b))) = &best {
                    tx.execute(
                        "INSERT INTO latest (account, code_tag, id_tag, nonce, brief) VALUES (?, ?, ?, ?, ?)",
                        params![account, code_tag, id_tag, n, b],
                    )?;
                }
                tx.execute(
                    "DELETE FROM latest_stale WHERE account = ? AND code_tag = ?",
                    params![account, code_tag],
                )?;
                Ok(())
            })?;
            self.drop_damaged(account, damaged)?;
        }
        Ok(())
    }

    /// After deletions: drops latest rows whose result is gone and marks their codes, whose newest remaining result
    /// is chosen (with the key) at the next read.
    fn repair_latest(tx: &Transaction<'_>, account: &str) -> Result<()> {
        tx.execute(
            "INSERT OR IGNORE INTO latest_stale (account, code_tag)
             SELECT account, code_tag FROM latest WHERE account = ?1 AND NOT EXISTS
                 (SELECT 1 FROM resources r WHERE r.account = ?1 AND r.type = 'Observation' AND r.id_tag = latest.id_tag)",
            [account],
        )?;
        tx.execute(
            "DELETE FROM latest WHERE account = ?1 AND NOT EXISTS
                 (SELECT 1 FROM resources r WHERE r.account = ?1 AND r.type = 'Observation' AND r.id_tag = latest.id_tag)",
            [account],
        )?;
        Ok(())
    }

    /// Removes a resource (the server deleted it). Returns whether it was there.
    pub fn remove(
        tx: &Transaction<'_>,
        keys: &AccountKeys,
        account: &str,
        ty: &str,
        id: &str,
    ) -> Result<bool> {
        let removed = tx.execute(
            "DELETE FROM resources WHERE account = ? AND type = ? AND id_tag = ?",
            params![account, ty, keys.tag(id)],
        )? > 0;
        if removed && ty == "Observation" {
            Self::repair_latest(tx, account)?;
        }
        Ok(removed)
    }

    /// After a complete full pass of `query`: removes what the pass did not see (deleted on the server). Returns the
    /// type of each resource removed.
    pub fn reconcile(
        tx: &Transaction<'_>,
        account: &str,
        query: &str,
        pass: i64,
    ) -> Result<Vec<String>> {
        let mut stmt =
            tx.prepare("SELECT type FROM resources WHERE account = ? AND query = ? AND pass < ?")?;
        let gone: Vec<String> = stmt
            .query_map(params![account, query, pass], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        tx.execute(
            "DELETE FROM resources WHERE account = ? AND query = ? AND pass < ?",
            params![account, query, pass],
        )?;
        if !gone.is_empty() {
            Self::repair_latest(tx, account)?;
        }
        Ok(gone)
    }

    /// Stores a document's content.
    pub fn put_binary(
        tx: &Transaction<'_>,
        keys: &AccountKeys,
        account: &str,
        id: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> Result<()> {
        let mut plain = Zeroizing::new(Vec::with_capacity(bytes.len() + content_type.len() + 1));
        plain.extend_from_slice(content_type.as_bytes());
        plain.push(0);
        plain.extend_from_slice(bytes);
        let (nonce, payload) = keys.seal(&aad(account, "Binary#content", &keys.tag(id)), &plain)?;
        tx.execute(
            "INSERT OR REPLACE INTO binaries (account, id_tag, nonce, payload) VALUES (?, ?, ?, ?)",
            params![account, keys.tag(id), nonce, payload],
        )?;
        Ok(())
    }

    /// A document's content type and bytes.
    pub fn binary(
        &self,
        keys: &AccountKeys,
        account: &str,
        id: &str,
    ) -> Result<Option<(String, Vec<u8>)>> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT nonce, payload FROM binaries WHERE account = ? AND id_tag = ?",
                params![account, keys.tag(id)],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((nonce, payload)) = row else {
            return Ok(None);
        };
        let plain = keys.open(
            &aad(account, "Binary#content", &keys.tag(id)),
            &nonce,
            payload,
        )?;
        let split = plain
            .iter()
            .position(|b| *b == 0)
            .ok_or(StoreError::Decrypt)?;
        Ok(Some((
            String::from_utf8_lossy(&plain[..split]).into_owned(),
            plain[split + 1..].to_vec(),
        )))
    }

    /// Whether a document's content is stored.
    pub fn has_binary(&self, keys: &AccountKeys, account: &str, id: &str) -> Result<bool> {
        let n: i64 = self.conn().query_row(
            "SELECT COUNT(*) FROM binaries WHERE account = ? AND id_tag = ?",
            params![account, keys.tag(id)],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    fn decrypt_rows(
        &self,
        keys: &AccountKeys,
        account: &str,
        rows: Vec<Row>,
    ) -> Result<Vec<Value>> {
        let mut out = Vec::with_capacity(rows.len());
        let mut damaged = Vec::new();
        for (ty, id_tag, nonce, payload) in rows {
            match keys.open(&aad(account, &ty, &id_tag), &nonce, payload) {
                Ok(plain) => match serde_json::from_slice(&plain) {
                    Ok(v) => out.push(v),
                    Err(_) => damaged.push((ty, id_tag)),
                },
                Err(StoreError::Decrypt) => damaged.push((ty, id_tag)),
                Err(e) => return Err(e),
            }
        }
        self.drop_damaged(account, damaged)?;
        Ok(out)
    }

    /// Rows that do not open once the key is known to be right are damaged: they are removed (with their latest
    /// entries), the account's queries are fetched whole at the next sync, and the host is told.
    fn drop_damaged(&self, account: &str, damaged: Vec<(String, Vec<u8>)>) -> Result<()> {
        if damaged.is_empty() {
            return Ok(());
        }
        let count = damaged.len();
        self.write(|tx| {
            for (ty, id_tag) in &damaged {
                tx.execute(
                    "DELETE FROM resources WHERE account = ? AND type = ? AND id_tag = ?",
                    params![account, ty, id_tag],
                )?;
            }
            tx.execute(
                "UPDATE sync_queries SET since = NULL WHERE account = ?",
                params![account],
            )?;
            Self::repair_latest(tx, account)
        })?;
        tracing::warn!(target: "chartlink", count, "damaged rows were removed; the next sync fetches them again");
        self.notify(StoreNotice::DamagedRows {
            account_id: account.to_owned(),
            count,
        });
        Ok(())
    }

    fn select(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Row>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql)?;
        let rows = stmt.query_map(args, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<std::result::Result<Vec<_>, _>>()?)
    }

    /// Every resource of `ty` of an account.
    pub fn of_type(&self, keys: &AccountKeys, account: &str, ty: &str) -> Result<Vec<Value>> {
        let rows = self.select(
            "SELECT type, id_tag, nonce, payload FROM resources WHERE account = ? AND type = ?",
            &[&account, &ty],
        )?;
        self.decrypt_rows(keys, account, rows)
    }

    /// Every resource of `ty` with `code` (through its keyed hash).
    pub fn by_code(
        &self,
        keys: &AccountKeys,
        account: &str,
        ty: &str,
        code: &str,
    ) -> Result<Vec<Value>> {
        let tag = keys.tag(code);
        let rows = self.select(
            "SELECT type, id_tag, nonce, payload FROM resources WHERE account = ? AND code_tag = ? AND type = ?",
            &[&account, &tag, &ty],
        )?;
        self.decrypt_rows(keys, account, rows)
    }

    /// Every resource of `ty` in `category` (through its keyed hash).
    pub fn by_category(
        &self,
        keys: &AccountKeys,
        account: &str,
        ty: &str,
        category: &str,
    ) -> Result<Vec<Value>> {
        let tag = keys.tag(category);
        let rows = self.select(
            "SELECT type, id_tag, nonce, payload FROM resources WHERE account = ? AND category_tag = ? AND type = ?",
            &[&account, &tag, &ty],
        )?;
        self.decrypt_rows(keys, account, rows)
    }

    /// One resource.
    pub fn get(
        &self,
        keys: &AccountKeys,
        account: &str,
        ty: &str,
        id: &str,
    ) -> Result<Option<Value>> {
        let tag = keys.tag(id);
        let rows = self.select(
            "SELECT type, id_tag, nonce, payload FROM resources WHERE account = ? AND type = ? AND id_tag = ?",
            &[&account, &ty, &tag],
        )?;
        Ok(self.decrypt_rows(keys, account, rows)?.pop())
    }

    /// (type, id, versionId) of every stored resource of an account, sorted: what tests compare with the server.
    /// Decrypts every row.
    pub fn inventory(
        &self,
        keys: &AccountKeys,
        account: &str,
    ) -> Result<Vec<(String, String, Option<String>)>> {
        let rows = self.select(
            "SELECT type, id_tag, nonce, payload FROM resources WHERE account = ?",
            &[&account],
        )?;
        let mut out: Vec<(String, String, Option<String>)> = self
            .decrypt_rows(keys, account, rows)?
            .into_iter()
            .map(|v| {
                let s = |f: &Value| f.as_str().map(str::to_owned);
                (
                    s(&v["resourceType"]).unwrap_or_default(),
                    s(&v["id"]).unwrap_or_default(),
                    s(&v["meta"]["versionId"]),
                )
            })
            .collect();
        out.sort();
        Ok(out)
    }

    /// Resource counts per type for an account.
    pub fn counts(&self, account: &str) -> Result<Vec<(String, i64)>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT type, COUNT(*) FROM resources WHERE account = ? GROUP BY type ORDER BY type",
        )?;
        let rows = stmt.query_map([account], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Removes every trace of an account (unlink, revoked access).
    pub fn purge(&self, account: &str) -> Result<()> {
        self.write(|tx| {
            for table in [
                "resources",
                "binaries",
                "sync_queries",
                "sync_accounts",
                "latest",
                "latest_stale",
            ] {
                tx.execute(&format!("DELETE FROM {table} WHERE account = ?"), [account])?;
            }
            Ok(())
        })?;
        // Reclaim the pages so deleted ciphertext does not linger in the file.
        let conn = self.conn();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        drop(conn);
        // A moved-aside copy of a damaged database holds this account's records too.
        if let Some(p) = &self.path {
            Self::delete_moved_aside(p)?;
        }
        Ok(())
    }

    /// The state of one sync query.
    pub fn query_state(
        &self,
        keys: &AccountKeys,
        account: &str,
        query: &str,
    ) -> Result<QueryState> {
        type Raw = (
            Option<String>,
            Option<String>,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            i64,
            bool,
        );
        let raw: Option<Raw> = self
            .conn()
            .query_row(
                "SELECT since, pending_since, resume_nonce, resume_sealed, pass, full_pass_done FROM sync_queries WHERE account = ? AND query = ?",
                params![account, query],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
            )
            .optional()?;
        let Some((since, pending_since, nonce, sealed, pass, full_pass_done)) = raw else {
            return Ok(QueryState::default());
        };
        // An unreadable resume link just means starting the query over.
        let resume_url = match (nonce, sealed) {
            (Some(n), Some(b)) => keys
                .open(&aad(account, "resume", query.as_bytes()), &n, b)
                .ok()
                .and_then(|p| String::from_utf8(p.to_vec()).ok()),
            _ => None,
        };
        Ok(QueryState {
            since,
            pending_since,
            resume_url,
            pass,
            full_pass_done,
        })
    }

    /// Saves the state of a sync query (in the same transaction as the page it follows). The resume link is
    /// sealed: next links name the patient.
    pub fn set_query_state(
        tx: &Transaction<'_>,
        keys: &AccountKeys,
        account: &str,
        query: &str,
        s: &QueryState,
        error: Option<&str>,
    ) -> Result<()> {
        let sealed = match &s.resume_url {
            Some(u) => Some(keys.seal(&aad(account, "resume", query.as_bytes()), u.as_bytes())?),
            None => None,
        };
        let (nonce, blob) = sealed.map_or((None, None), |(n, b)| (Some(n), Some(b)));
        tx.execute(
            "INSERT INTO sync_queries (account, query, since, pending_since, resume_nonce, resume_sealed, pass, full_pass_done, last_error)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (account, query) DO UPDATE SET since = ?3, pending_since = ?4, resume_nonce = ?5, resume_sealed = ?6,
                 pass = ?7, full_pass_done = ?8, last_error = ?9",
            params![account, query, s.since, s.pending_since, nonce, blob, s.pass, s.full_pass_done, error],
        )?;
        Ok(())
    }

    /// The account's sync pass counter and the time of its last full pass.
    pub fn account_state(&self, account: &str) -> Result<(i64, Option<i64>)> {
        Ok(self
            .conn()
            .query_row(
                "SELECT pass, last_full_ms FROM sync_accounts WHERE account = ?",
                [account],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .unwrap_or((0, None)))
    }

    /// Records a sync of an account.
    pub fn set_account_state(
        &self,
        account: &str,
        pass: i64,
        last_full_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO sync_accounts (account, pass, last_full_ms, last_sync_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (account) DO UPDATE SET pass = ?2, last_full_ms = coalesce(?3, last_full_ms), last_sync_ms = ?4",
            params![account, pass, last_full_ms, now_ms],
        )?;
        Ok(())
    }
}

/// What consent withdrawal needs: the queries an account has data from, and removing one query's data.
impl Store {
    /// The sync queries that have run for an account (their names: `Condition`, `Observation:laboratory`).
    pub fn query_keys(&self, account: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT query FROM sync_queries WHERE account = ?1
             UNION SELECT DISTINCT query FROM resources WHERE account = ?1",
        )?;
        let rows = stmt.query_map([account], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Removes everything one query brought in (the patient no longer shares it) and its bookkeeping, so the next
    /// grant that covers it starts afresh. Document contents go with the DocumentReference query. Returns the type
    /// of each resource removed.
    pub fn forget_query(tx: &Transaction<'_>, account: &str, query: &str) -> Result<Vec<String>> {
        let mut stmt = tx.prepare("SELECT type FROM resources WHERE account = ? AND query = ?")?;
        let gone: Vec<String> = stmt
            .query_map(params![account, query], |r| r.get(0))?
            .collect::<std::result::Result<_, _>>()?;
        tx.execute(
            "DELETE FROM resources WHERE account = ? AND query = ?",
            params![account, query],
        )?;
        tx.execute(
            "DELETE FROM sync_queries WHERE account = ? AND query = ?",
            params![account, query],
        )?;
        if query == "DocumentReference" {
            tx.execute("DELETE FROM binaries WHERE account = ?", [account])?;
        }
        if !gone.is_empty() {
            Self::repair_latest(tx, account)?;
        }
        Ok(gone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(account: &str) -> AccountKeys {
        AccountKeys::derive(&[7u8; 32], account).expect("keys")
    }

    fn put(store: &Store, account: &str, id: &str, json: &str, version: &str) -> Change {
        let k = keys(account);
        store
            .write(|tx| {
                Store::upsert(
                    tx,
                    &k,
                    account,
                    "q",
                    1,
                    &Incoming {
                        ty: "Observation",
                        id,
                        version: Some(version),
                        last_updated: Some("2024-01-01T00:00:00Z"),
                        code: Some("4548-4"),
                        category: Some("laboratory"),
                        json: json.as_bytes(),
                        brief: None,
                    },
                )
            })
            .expect("upsert")
    }

    #[test]
    fn round_trip_and_change_detection() {
        let store = Store::open_in_memory().expect("open");
        assert_eq!(
            put(&store, "a", "o1", r#"{"id":"o1","value":6.1}"#, "1"),
            Change::New
        );
        assert_eq!(
            put(&store, "a", "o1", r#"{"id":"o1","value":6.1}"#, "1"),
            Change::Unchanged
        );
        assert_eq!(
            put(&store, "a", "o1", r#"{"id":"o1","value":6.4}"#, "2"),
            Change::Changed
        );
        let got = store
            .by_code(&keys("a"), "a", "Observation", "4548-4")
            .expect("read");
        assert_eq!(got[0]["value"], 6.4);
        assert_eq!(
            store
                .by_category(&keys("a"), "a", "Observation", "laboratory")
                .expect("read")
                .len(),
            1
        );
        assert!(
            store
                .by_code(&keys("a"), "a", "Observation", "2345-7")
                .expect("read")
                .is_empty()
        );
    }

    #[test]
    fn another_accounts_key_reads_nothing() {
        let store = Store::open_in_memory().expect("open");
        put(&store, "a", "o1", r#"{"id":"o1"}"#, "1");
        // Under b's key, a's row neither matches b's tags nor decrypts (and is dropped as damaged, not shown).
        assert!(
            store
                .of_type(&keys("b"), "b", "Observation")
                .expect("read")
                .is_empty()
        );
        let wrong = AccountKeys::derive(&[8u8; 32], "a").expect("keys");
        assert!(
            store
                .of_type(&wrong, "a", "Observation")
                .expect("read")
                .is_empty()
        );
    }

    #[test]
    fn reconcile_removes_what_a_full_pass_did_not_see() {
        let store = Store::open_in_memory().expect("open");
        put(&store, "a", "o1", "{}", "1");
        put(&store, "a", "o2", "{}", "1");
        let k = keys("a");
        store
            .write(|tx| {
                Store::upsert(
                    tx,
                    &k,
                    "a",
                    "q",
                    2,
                    &Incoming {
                        ty: "Observation",
                        id: "o1",
                        version: Some("1"),
                        last_updated: Some("2024-01-01T00:00:00Z"),
                        code: None,
                        category: None,
                        json: b"{}",
                        brief: None,
                    },
                )
            })
            .expect("upsert");
        let gone = store
            .write(|tx| Store::reconcile(tx, "a", "q", 2))
            .expect("reconcile");
        assert_eq!(gone, vec!["Observation".to_owned()]);
        assert_eq!(store.inventory(&k, "a").expect("inventory").len(), 1);
    }

    #[test]
    fn binaries_round_trip() {
        let store = Store::open_in_memory().expect("open");
        let k = keys("a");
        store
            .write(|tx| Store::put_binary(tx, &k, "a", "b1", "application/pdf", b"%PDF-1.4"))
            .expect("put");
        assert_eq!(
            store.binary(&k, "a", "b1").expect("get"),
            Some(("application/pdf".into(), b"%PDF-1.4".to_vec()))
        );
    }

    fn put_lab(store: &Store, id: &str, date: &str, pass: i64) {
        let k = keys("a");
        let date_value = crate::views::FhirDate::parse(date).expect("date");
        let when = date_value.sort_key();
        let brief = serde_json::json!({"id": id, "date": date_value}).to_string();
        store
            .write(|tx| {
                Store::upsert(
                    tx,
                    &k,
                    "a",
                    "q",
                    pass,
                    &Incoming {
                        ty: "Observation",
                        id,
                        version: Some("1"),
                        last_updated: Some(date),
                        code: Some("4548-4"),
                        category: Some("laboratory"),
                        json: b"{}",
                        brief: Some((brief.as_bytes(), when)),
                    },
                )
            })
            .expect("upsert");
    }

    fn latest_ids(store: &Store) -> Vec<String> {
        store
            .latest_briefs(&keys("a"), "a")
            .expect("latest")
            .iter()
            .map(|b| serde_json::from_slice::<Value>(b).expect("json")["id"].to_string())
            .collect()
    }

    #[test]
    fn the_newest_result_per_code_is_chosen_from_sealed_dates_and_again_after_a_deletion() {
        let store = Store::open_in_memory().expect("open");
        put_lab(&store, "old", "2019-05-03", 1);
        put_lab(&store, "new", "2021-01-01T10:00:00Z", 1);
        put_lab(&store, "mid", "2020-02-02", 1);
        assert_eq!(latest_ids(&store), [r#""new""#]);
        // A full pass that no longer sees "new" (and "mid" seen again): the code's newest is chosen again.
        put_lab(&store, "old", "2019-05-03", 2);
        put_lab(&store, "mid", "2020-02-02", 2);
        store
            .write(|tx| Store::reconcile(tx, "a", "q", 2))
            .expect("reconcile");
        assert_eq!(latest_ids(&store), [r#""mid""#]);
    }

    #[test]
    fn migration_v3_drops_the_clear_dates_and_keeps_the_latest_table() {
        let dir = std::env::temp_dir().join(format!("cl-store-v3-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("chartlink.db");
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(MIGRATIONS[0]).expect("v1");
            conn.execute_batch(MIGRATIONS[1]).expect("v2");
            conn.execute_batch(
                "INSERT INTO resources (account, type, id_tag, version, last_updated, query, pass, nonce, payload, sort_key)
                 VALUES ('a', 'Observation', x'01', '1', '2019-05-03T10:00:00Z', 'q', 1, x'00', x'00', 1556877600);
                 INSERT INTO latest VALUES ('a', x'02', x'01', x'00', x'00');
                 PRAGMA user_version = 2;",
            )
            .expect("v2 data");
        }
        let store = Store::open(&path).expect("migrates");
        let conn = store.conn();
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('resources')")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<std::result::Result<_, _>>()
            .expect("rows");
        assert!(!columns.iter().any(|c| c == "sort_key"));
        let lu: Option<String> = conn
            .query_row("SELECT last_updated FROM resources", [], |r| r.get(0))
            .expect("row");
        assert_eq!(lu, None);
        let n: i64 = conn
            .query_row("SELECT count(*) FROM latest", [], |r| r.get(0))
            .expect("latest");
        assert_eq!(n, 1);
        drop(conn);
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_corrupt_file_is_moved_aside_and_replaced() {
        let dir = std::env::temp_dir().join(format!("cl-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("chartlink.db");
        std::fs::write(
            &path,
            b"this is not a database, just garbage bytes of some length....",
        )
        .expect("write");
        let store = Store::open(&path).expect("recovers");
        put(&store, "a", "o1", "{}", "1");
        assert!(std::fs::read_dir(&dir).expect("dir").any(|e| {
            e.expect("e")
                .file_name()
                .to_string_lossy()
                .contains("corrupt")
        }));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
