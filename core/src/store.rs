//! The encrypted on-device store: one SQLite database (bundled SQLite, WAL, one writer) holding each linked
//! account's FHIR resources, their Binary contents, and the sync bookkeeping, so the record reads offline.
//!
//! Every payload is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from the host-held master key and the
//! account id, with a fresh random nonce per record and the account, type and id as associated data: a row cannot
//! be read under another account's key or moved to another id. Look-ups by code and category use keyed hashes
//! (HMAC-SHA256 under the account's key), and so do resource ids (real ids can embed names); the position of an
//! interrupted search (a next link naming the patient) is sealed too. The file holds no names, codes, values, notes
//! or ids in the clear; what is in the clear: account ids (random), resource types, versionIds, the server's
//! lastUpdated stamps and sync counters.
//!
//! Corrupt database policy: a file that fails SQLite's `quick_check` (or is not a database) is moved aside and a
//! fresh one is created; the next sync rebuilds it from the provider. A single row that fails to decrypt is
//! dropped and its query resynced.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}

type Result<T> = std::result::Result<T, StoreError>;

const MIGRATIONS: [&str; 2] = ["
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
"];

/// A stored row: type, id tag, nonce, sealed payload.
type Row = (String, Vec<u8>, Vec<u8>, Vec<u8>);

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
}

impl Store {
    /// Opens (creating or migrating) the database at `path`, applying the corrupt-database policy.
    pub fn open(path: &Path) -> Result<Self> {
        match Self::open_checked(path) {
            Ok(s) => Ok(s),
            Err(_) => {
                // Move the damaged file aside (keep it for a bug report) and start empty; sync rebuilds it.
                let stamp = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                let aside = path.with_extension(format!("corrupt-{stamp}"));
                let _ = std::fs::rename(path, &aside);
                for ext in ["db-wal", "db-shm"] {
                    let _ = std::fs::remove_file(path.with_extension(ext));
                }
                tracing::warn!(target: "chartlink", "the local database was damaged; it was moved aside and will be rebuilt by a sync");
                let _ = std::fs::remove_file(path.with_extension("rebuild"));
                Self::open_checked(path)
            }
        }
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
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Sqlite(e.kind().to_string()))?;
        }
        let conn = Connection::open(path)?;
        // A cheap check at open (a damaged header or a file that is not a database fails here); the full
        // integrity check runs at the start of each full-pass sync, and corruption met while reading marks the file
        // for rebuild at the next open.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
            r.get::<_, i64>(0)
        })?;
        if path.with_extension("rebuild").exists() {
            return Err(StoreError::Sqlite("marked for rebuild".into()));
        }
        Self::setup(conn, Some(path.to_owned()))
    }

    /// An in-memory database (tests).
    pub fn open_in_memory() -> Result<Self> {
        Self::setup(Connection::open_in_memory()?, None)
    }

    fn setup(mut conn: Connection, path: Option<PathBuf>) -> Result<Self> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let version = usize::try_from(version).unwrap_or(usize::MAX);
        if version > MIGRATIONS.len() {
            return Err(StoreError::Sqlite(
                "the database is from a newer ChartLink".into(),
            ));
        }
        let tx = conn.transaction()?;
        for (i, m) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.execute_batch(m)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
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
        let existing: Option<(Option<String>, Option<String>)> = tx
            .query_row(
                "SELECT version, last_updated FROM resources WHERE account = ? AND type = ? AND id_tag = ?",
                params![account, r.ty, id_tag],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?;
        let change = match &existing {
            None => Change::New,
            Some((v, lu))
                if v.as_deref() == r.version
                    && lu.as_deref() == r.last_updated
                    && r.version.is_some() =>
            {
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
        let sort_key = r.brief.map(|(_, k)| k);
        if let (Some(code), Some((bn, bb)), Some(key)) = (r.code, brief, sort_key) {
            Self::update_latest(tx, keys, account, &keys.tag(code), &id_tag, key, (bn, bb))?;
        }
        tx.execute(
            "INSERT INTO resources (account, type, id_tag, version, last_updated, query, pass, code_tag, category_tag, nonce, payload,
                 brief_nonce, brief, sort_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)
             ON CONFLICT (account, type, id_tag) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
                 query = excluded.query, pass = excluded.pass, code_tag = excluded.code_tag,
                 category_tag = excluded.category_tag, nonce = excluded.nonce, payload = excluded.payload,
                 brief_nonce = excluded.brief_nonce, brief = excluded.brief, sort_key = excluded.sort_key",
            params![
                account,
                r.ty,
                id_tag,
                r.version,
                r.last_updated,
                query,
                pass,
                r.code.map(|c| keys.tag(c)),
                r.category.map(|c| keys.tag(c)),
                nonce,
                payload,
                brief_nonce,
                brief_blob,
                sort_key
            ],
        )?;
        Ok(change)
    }

    /// Keeps the newest brief per code. The comparison uses the sort key stored next to the current latest row.
    fn update_latest(
        tx: &Transaction<'_>,
        _keys: &AccountKeys,
        account: &str,
        code_tag: &[u8],
        id_tag: &[u8],
        sort_key: i64,
        (nonce, brief): (Vec<u8>, Vec<u8>),
    ) -> Result<()> {
        let current: Option<(Vec<u8>, Option<i64>)> = tx
            .query_row(
                "SELECT l.id_tag, r.sort_key FROM latest l LEFT JOIN resources r
                   ON r.account = l.account AND r.id_tag = l.id_tag AND r.type = 'Observation'
                 WHERE l.account = ? AND l.code_tag = ?",
                params![account, code_tag],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let replace = match current {
            None => true,
            Some((cur_id, _)) if cur_id == id_tag => true,
            Some((_, cur_key)) => cur_key.is_none_or(|k| sort_key >= k),
        };
        if replace {
            tx.execute(
                "INSERT OR REPLACE INTO latest (account, code_tag, id_tag, nonce, brief) VALUES (?, ?, ?, ?, ?)",
                params![account, code_tag, id_tag, nonce, brief],
            )?;
        }
        Ok(())
    }

    fn open_briefs(
        &self,
        keys: &AccountKeys,
        account: &str,
        rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)>,
    ) -> Vec<Zeroizing<Vec<u8>>> {
        rows.into_iter()
            .filter_map(|(id_tag, n, b)| keys.open(&aad(account, "brief", &id_tag), &n, b).ok())
            .collect()
    }

    /// The briefs of every result with `code` (for a trend).
    pub fn briefs_by_code(
        &self,
        keys: &AccountKeys,
        account: &str,
        code: &str,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT id_tag, brief_nonce, brief FROM resources WHERE account = ? AND code_tag = ? AND brief IS NOT NULL",
            )?;
            stmt.query_map(params![account, keys.tag(code)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect::<std::result::Result<_, _>>()?
        };
        Ok(self.open_briefs(keys, account, rows))
    }

    /// The newest brief of each code (for a summary's latest results): one row per code.
    pub fn latest_briefs(
        &self,
        keys: &AccountKeys,
        account: &str,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = {
            let conn = self.conn();
            let mut stmt =
                conn.prepare_cached("SELECT id_tag, nonce, brief FROM latest WHERE account = ?")?;
            stmt.query_map([account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<std::result::Result<_, _>>()?
        };
        Ok(self.open_briefs(keys, account, rows))
    }

    /// After deletions: drops latest rows whose result is gone and puts the newest remaining result of those codes
    /// back, in one grouped pass.
    fn repair_latest(tx: &Transaction<'_>, account: &str) -> Result<()> {
        tx.execute(
            "DELETE FROM latest WHERE account = ?1 AND NOT EXISTS
                 (SELECT 1 FROM resources r WHERE r.account = ?1 AND r.type = 'Observation' AND r.id_tag = latest.id_tag)",
            [account],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO latest (account, code_tag, id_tag, nonce, brief)
             SELECT r.account, r.code_tag, r.id_tag, r.brief_nonce, r.brief
             FROM resources r
             JOIN (SELECT code_tag, max(sort_key) AS k FROM resources
                   WHERE account = ?1 AND type = 'Observation' AND brief IS NOT NULL AND code_tag IS NOT NULL
                     AND code_tag NOT IN (SELECT code_tag FROM latest WHERE account = ?1)
                   GROUP BY code_tag) m ON m.code_tag = r.code_tag AND m.k = r.sort_key
             WHERE r.account = ?1 AND r.type = 'Observation' AND r.brief IS NOT NULL",
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
        Ok(tx.execute(
            "DELETE FROM resources WHERE account = ? AND type = ? AND id_tag = ?",
            params![account, ty, keys.tag(id)],
        )? > 0)
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
        if !damaged.is_empty() {
            // Drop what cannot be read; the next sync fetches it again (a full pass, as `since` is cleared).
            let conn = self.conn();
            for (ty, id_tag) in damaged {
                conn.execute(
                    "DELETE FROM resources WHERE account = ? AND type = ? AND id_tag = ?",
                    params![account, ty, id_tag],
                )?;
            }
            conn.execute(
                "UPDATE sync_queries SET since = NULL WHERE account = ?",
                params![account],
            )?;
        }
        Ok(out)
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
            ] {
                tx.execute(&format!("DELETE FROM {table} WHERE account = ?"), [account])?;
            }
            Ok(())
        })?;
        // Reclaim the pages so deleted ciphertext does not linger in the file.
        let conn = self.conn();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
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
