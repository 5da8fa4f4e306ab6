//! The sandbox's storage: one SQLite database (in memory, or the `--db` file) holding the FHIR resources with the
//! columns search needs, the people and their proxy authorizations, the registered apps, the grants and the
//! tokens. Tokens are stored as SHA-256 hashes, never in the clear.
//!
//! Every multi-row write runs in one transaction, so a failed load (say, broken JSON in `--data`) leaves the
//! database exactly as it was.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use serde_json::Value;

use crate::clock::instant;
use crate::index::{self, Index};

/// Storage failures. They carry SQLite's text, which never contains resource content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored JSON is damaged: {0}")]
    Json(#[from] serde_json::Error),
    #[error("a resource needs a resourceType and an id")]
    MissingId,
}

type Result<T> = std::result::Result<T, StoreError>;

const SCHEMA_VERSION: i64 = 1;
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS resources (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL, id TEXT NOT NULL, patient TEXT,
    version INTEGER NOT NULL, last_updated INTEGER NOT NULL,
    categories TEXT NOT NULL, codes TEXT NOT NULL, date_lo INTEGER, date_hi INTEGER,
    confidential INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0,
    json TEXT NOT NULL,
    UNIQUE (type, id));
CREATE INDEX IF NOT EXISTS resources_by_patient ON resources (patient, type, seq);
CREATE TABLE IF NOT EXISTS people (
    patient_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, birth_date TEXT NOT NULL,
    username TEXT UNIQUE, password TEXT);
CREATE TABLE IF NOT EXISTS proxies (
    proxy_patient TEXT NOT NULL, patient_id TEXT NOT NULL, kind TEXT NOT NULL, related_person_id TEXT NOT NULL,
    ended_at INTEGER, PRIMARY KEY (proxy_patient, patient_id));
CREATE TABLE IF NOT EXISTS apps (client_id TEXT PRIMARY KEY, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY, client_id TEXT NOT NULL, username TEXT NOT NULL, patient_id TEXT NOT NULL,
    scope TEXT NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER, revoked_reason TEXT);
CREATE TABLE IF NOT EXISTS tokens (
    hash TEXT PRIMARY KEY, kind TEXT NOT NULL, grant_id TEXT NOT NULL, client_id TEXT NOT NULL,
    issued_at INTEGER NOT NULL, expires_at INTEGER, spent INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS tokens_by_grant ON tokens (grant_id);
";

/// One stored resource as search and read return it.
#[derive(Debug, Clone)]
pub struct StoredResource {
    pub seq: i64,
    pub json: String,
    pub patient: Option<String>,
    pub categories: Vec<(Option<String>, String)>,
    pub confidential: bool,
}

/// A `[prefix]value` date comparison of a search, already turned into a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

/// A search over one type inside one patient's compartment. Lists inside lists are AND of ORs.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub resource_type: String,
    pub patient: Option<String>,
    pub include_confidential: bool,
    pub ids: Vec<String>,
    pub last_updated: Vec<(Prefix, (i64, i64))>,
    pub dates: Vec<(Prefix, (i64, i64))>,
    pub categories: Vec<Vec<(Option<String>, String)>>,
    pub codes: Vec<Vec<(Option<String>, String)>>,
    pub after_seq: i64,
    pub limit: usize,
}

/// A person of the sandbox: a patient, maybe with a portal login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonRow {
    pub patient_id: String,
    pub display_name: String,
    pub birth_date: String,
    pub username: Option<String>,
}

/// A proxy authorization: `proxy_patient` may see `patient_id`'s record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRow {
    pub proxy_patient: String,
    pub patient_id: String,
    pub kind: String,
    pub related_person_id: String,
    pub ended_at: Option<i64>,
}

/// An authorization a user gave an app for one patient's record.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GrantRow {
    pub id: String,
    pub client_id: String,
    pub username: String,
    pub patient_id: String,
    pub scope: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

/// A token record, looked up by the hash of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub kind: String,
    pub grant_id: String,
    pub client_id: String,
    pub issued_at: i64,
    pub expires_at: Option<i64>,
    pub spent: bool,
    pub revoked: bool,
}

/// The database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    /// Live resources per type, counted once (on first use) and then kept up to date by every write, so the
    /// CapabilityStatement and the banner never scan the table again.
    type_counts: RefCell<Option<BTreeMap<String, i64>>>,
    /// How many times the table was scanned to count types (tests check the cache with it).
    type_scans: Cell<u64>,
}

/// Per-type changes of the live count made by a write, applied to the cache once the write committed.
type CountDeltas = HashMap<String, i64>;

impl Store {
    /// Opens (and creates or migrates) the database; `None` keeps it in memory.
    pub fn open(path: Option<&Path>) -> Result<Self> {
        let conn = match path {
            Some(p) => Connection::open(p)?,
            None => Connection::open_in_memory()?,
        };
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version < SCHEMA_VERSION {
            conn.execute_batch(SCHEMA)?;
            conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        }
        Ok(Self {
            conn,
            type_counts: RefCell::new(None),
            type_scans: Cell::new(0),
        })
    }

    /// Adds committed changes to the cached type counts.
    fn apply(&self, deltas: CountDeltas) {
        apply(&self.type_counts, deltas);
    }

    /// A bulk write: everything put through it is one transaction, committed by [`Bulk::commit`] (dropping it
    /// rolls everything back). Statements are prepared once and reused.
    pub fn bulk(&mut self) -> Result<Bulk<'_>> {
        Ok(Bulk {
            tx: self.conn.transaction()?,
            deltas: CountDeltas::new(),
            counts: &self.type_counts,
        })
    }

    /// Every username in use.
    pub fn usernames(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT username FROM people WHERE username IS NOT NULL")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// How many times the resources table has been scanned to count types.
    pub fn type_scans(&self) -> u64 {
        self.type_scans.get()
    }

    /// Whether the database holds no resources yet (a fresh `--db` gets the generated population).
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM resources", [], |r| r.get::<_, i64>(0))?
            == 0)
    }

    /// A value of the small key-value table (the signing key, the data seed).
    pub fn meta(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?", [key], |r| r.get(0))
            .optional()?)
    }

    /// Sets a value of the key-value table.
    pub fn set_meta(&self, key: &str, value: &[u8]) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            params![key, value],
        )?;
        Ok(())
    }

    /// Stores many resources in one transaction: new ones at version 1 (or the version their `meta` gives),
    /// existing ones as a new version. `Binary` resources join the compartment of their `securityContext`.
    pub fn put_all(
        &mut self,
        resources: impl IntoIterator<Item = Value>,
        now: i64,
    ) -> Result<usize> {
        let mut bulk = self.bulk()?;
        let mut n = 0;
        for r in resources {
            bulk.put(r, now)?;
            n += 1;
        }
        bulk.commit()?;
        Ok(n)
    }

    /// Stores one resource as a new version (an edit); returns its new `versionId`.
    pub fn update(&mut self, resource: Value, now: i64) -> Result<i64> {
        let tx = self.conn.transaction()?;
        let mut deltas = CountDeltas::new();
        let v = put(&tx, resource, now, true, &mut deltas)?;
        tx.commit()?;
        self.apply(deltas);
        Ok(v)
    }

    /// Marks a resource deleted: it disappears from reads and searches. Returns whether it existed.
    pub fn delete(&self, ty: &str, id: &str, now: i64) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE resources SET deleted = 1, version = version + 1, last_updated = ? WHERE type = ? AND id = ? AND deleted = 0",
            params![now, ty, id],
        )?;
        if n > 0 {
            self.apply(CountDeltas::from([(ty.to_owned(), -1)]));
        }
        Ok(n > 0)
    }

    /// Reads one live resource.
    pub fn read(&self, ty: &str, id: &str) -> Result<Option<StoredResource>> {
        Ok(self
            .conn
            .query_row(
                "SELECT seq, json, patient, categories, confidential FROM resources WHERE type = ? AND id = ? AND deleted = 0",
                params![ty, id],
                row_to_resource,
            )
            .optional()?)
    }

    /// Runs a search; at most `limit` rows in `seq` order after `after_seq`.
    pub fn search(&self, q: &SearchQuery) -> Result<Vec<StoredResource>> {
        let (filter, mut args) = where_clause(q);
        let sql = format!(
            "SELECT seq, json, patient, categories, confidential FROM resources WHERE {filter} AND seq > ? ORDER BY seq LIMIT ?"
        );
        args.push(SqlValue::Integer(q.after_seq));
        args.push(SqlValue::Integer(q.limit as i64));
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(params_from_iter(args), row_to_resource)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// How many resources a search matches in all.
    pub fn count(&self, q: &SearchQuery) -> Result<i64> {
        let (filter, args) = where_clause(q);
        let sql = format!("SELECT COUNT(*) FROM resources WHERE {filter}");
        Ok(self
            .conn
            .prepare_cached(&sql)?
            .query_row(params_from_iter(args), |r| r.get(0))?)
    }

    /// The ground truth of one patient's compartment: (type, id, versionId) of every live resource, optionally
    /// without confidential items. Tests compare what a client synced against this.
    pub fn truth(
        &self,
        patient: &str,
        include_confidential: bool,
    ) -> Result<Vec<(String, String, i64)>> {
        let mut stmt = self.conn.prepare(
            "SELECT type, id, version FROM resources WHERE patient = ? AND deleted = 0 AND (confidential = 0 OR ?) ORDER BY type, id",
        )?;
        let rows = stmt.query_map(params![patient, include_confidential], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// The resource types present, with counts (for the CapabilityStatement and the start-up banner). The table
    /// is scanned only the first time; every write keeps the counts current after that.
    pub fn type_counts(&self) -> Result<Vec<(String, i64)>> {
        if let Some(counts) = self.type_counts.borrow().as_ref() {
            return Ok(counts.iter().map(|(t, n)| (t.clone(), *n)).collect());
        }
        let mut stmt = self.conn.prepare(
            "SELECT type, COUNT(*) FROM resources WHERE deleted = 0 GROUP BY type ORDER BY type",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        let counts: Vec<(String, i64)> = rows.collect::<std::result::Result<_, _>>()?;
        self.type_scans.set(self.type_scans.get() + 1);
        *self.type_counts.borrow_mut() = Some(counts.iter().cloned().collect());
        Ok(counts)
    }

    // --- people and proxies ---

    /// Adds or replaces a person.
    pub fn put_person(&self, p: &PersonRow, password: Option<&str>) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO people (patient_id, display_name, birth_date, username, password) VALUES (?, ?, ?, ?, ?)",
            params![p.patient_id, p.display_name, p.birth_date, p.username, password],
        )?;
        Ok(())
    }

    /// Every person, in a stable order.
    pub fn people(&self) -> Result<Vec<PersonRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT patient_id, display_name, birth_date, username FROM people ORDER BY rowid",
        )?;
        let rows = stmt.query_map([], row_to_person)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// One person by patient id.
    pub fn person(&self, patient_id: &str) -> Result<Option<PersonRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT patient_id, display_name, birth_date, username FROM people WHERE patient_id = ?",
                [patient_id],
                row_to_person,
            )
            .optional()?)
    }

    /// The person with this login, if the password matches.
    pub fn login(&self, username: &str, password: &str) -> Result<Option<PersonRow>> {
        let row: Option<(PersonRow, Option<String>)> = self
            .conn
            .query_row(
                "SELECT patient_id, display_name, birth_date, username, password FROM people WHERE username = ?",
                [username],
                |r| Ok((row_to_person(r)?, r.get(4)?)),
            )
            .optional()?;
        Ok(row.and_then(|(p, pw)| {
            let ok = pw.is_some_and(|pw| crate::wire::secrets_equal(&pw, password));
            ok.then_some(p)
        }))
    }

    /// The sandbox password of a login (demo data: printed in the start-up banner).
    pub fn password(&self, username: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT password FROM people WHERE username = ?",
                [username],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// The person with this login, without a password (for a live portal session).
    pub fn person_by_username(&self, username: &str) -> Result<Option<PersonRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT patient_id, display_name, birth_date, username FROM people WHERE username = ?",
                [username],
                row_to_person,
            )
            .optional()?)
    }

    /// Adds or replaces a proxy authorization.
    pub fn put_proxy(&self, p: &ProxyRow) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO proxies (proxy_patient, patient_id, kind, related_person_id, ended_at) VALUES (?, ?, ?, ?, ?)",
            params![p.proxy_patient, p.patient_id, p.kind, p.related_person_id, p.ended_at],
        )?;
        Ok(())
    }

    /// The proxy authorizations held by `proxy_patient`, ended ones included.
    pub fn proxies_of(&self, proxy_patient: &str) -> Result<Vec<ProxyRow>> {
        let mut stmt = self.conn.prepare(
            "SELECT proxy_patient, patient_id, kind, related_person_id, ended_at FROM proxies WHERE proxy_patient = ? ORDER BY rowid",
        )?;
        let rows = stmt.query_map([proxy_patient], |r| {
            Ok(ProxyRow {
                proxy_patient: r.get(0)?,
                patient_id: r.get(1)?,
                kind: r.get(2)?,
                related_person_id: r.get(3)?,
                ended_at: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Ends a proxy authorization; returns whether one was active.
    pub fn end_proxy(&self, proxy_patient: &str, patient_id: &str, now: i64) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE proxies SET ended_at = ? WHERE proxy_patient = ? AND patient_id = ? AND ended_at IS NULL",
            params![now, proxy_patient, patient_id],
        )?;
        Ok(n > 0)
    }

    // --- apps ---

    /// Registers or replaces an app (stored as JSON).
    pub fn put_app(&self, client_id: &str, json: &str) -> Result<()> {
        self.conn.execute(
            "INSERT OR REPLACE INTO apps (client_id, json) VALUES (?, ?)",
            params![client_id, json],
        )?;
        Ok(())
    }

    /// An app's JSON.
    pub fn app(&self, client_id: &str) -> Result<Option<String>> {
        Ok(self
            .conn
            .query_row(
                "SELECT json FROM apps WHERE client_id = ?",
                [client_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Every app's JSON.
    pub fn apps(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT json FROM apps ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    // --- grants and tokens ---

    /// Records a new grant.
    pub fn insert_grant(&self, g: &GrantRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO grants (id, client_id, username, patient_id, scope, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            params![g.id, g.client_id, g.username, g.patient_id, g.scope, g.created_at],
        )?;
        Ok(())
    }

    /// Replaces a grant's scope (the `widen_scope_on_refresh` quirk: a server that widens a grant on refresh).
    pub fn set_grant_scope(&self, id: &str, scope: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE grants SET scope = ? WHERE id = ?",
            params![scope, id],
        )?;
        Ok(())
    }

    /// One grant.
    pub fn grant(&self, id: &str) -> Result<Option<GrantRow>> {
        Ok(self
            .conn
            .query_row(&format!("{GRANT_SELECT} WHERE id = ?"), [id], row_to_grant)
            .optional()?)
    }

    /// Grants of a user (`Some`) or all grants (`None`), newest first.
    pub fn grants(&self, username: Option<&str>) -> Result<Vec<GrantRow>> {
        let mut stmt = self.conn.prepare(&format!(
            "{GRANT_SELECT} WHERE ?1 IS NULL OR username = ?1 ORDER BY created_at DESC, rowid DESC"
        ))?;
        let rows = stmt.query_map([username], row_to_grant)?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Ends a grant and every token issued under it. Returns whether it was active.
    pub fn revoke_grant(&self, id: &str, reason: &str, now: i64) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE grants SET revoked_at = ?, revoked_reason = ? WHERE id = ? AND revoked_at IS NULL",
            params![now, reason, id],
        )?;
        self.conn
            .execute("UPDATE tokens SET revoked = 1 WHERE grant_id = ?", [id])?;
        Ok(n > 0)
    }

    /// Stores a token record under the token's hash.
    pub fn insert_token(&self, hash: &str, t: &TokenRow) -> Result<()> {
        self.conn.execute(
            "INSERT INTO tokens (hash, kind, grant_id, client_id, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
            params![hash, t.kind, t.grant_id, t.client_id, t.issued_at, t.expires_at],
        )?;
        Ok(())
    }

    /// The token record for a hash.
    pub fn token(&self, hash: &str) -> Result<Option<TokenRow>> {
        Ok(self
            .conn
            .query_row(
                "SELECT kind, grant_id, client_id, issued_at, expires_at, spent, revoked FROM tokens WHERE hash = ?",
                [hash],
                |r| {
                    Ok(TokenRow {
                        kind: r.get(0)?,
                        grant_id: r.get(1)?,
                        client_id: r.get(2)?,
                        issued_at: r.get(3)?,
                        expires_at: r.get(4)?,
                        spent: r.get(5)?,
                        revoked: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// Marks a refresh token used. Returns false when it was already spent (a reuse).
    pub fn spend_token(&self, hash: &str) -> Result<bool> {
        Ok(self.conn.execute(
            "UPDATE tokens SET spent = 1 WHERE hash = ? AND spent = 0",
            [hash],
        )? == 1)
    }

    /// Revokes one token.
    pub fn revoke_token(&self, hash: &str) -> Result<()> {
        self.conn
            .execute("UPDATE tokens SET revoked = 1 WHERE hash = ?", [hash])?;
        Ok(())
    }

    /// Makes the live access tokens of a grant (or of every grant) expire at `at`: the "tokens that expire early"
    /// fault. Returns how many were changed.
    pub fn expire_access_tokens(&self, grant_id: Option<&str>, at: i64) -> Result<usize> {
        Ok(self.conn.execute(
            "UPDATE tokens SET expires_at = ?1 WHERE kind = 'access' AND revoked = 0 AND (?2 IS NULL OR grant_id = ?2) AND (expires_at IS NULL OR expires_at > ?1)",
            params![at, grant_id],
        )?)
    }
}

const GRANT_SELECT: &str = "SELECT id, client_id, username, patient_id, scope, created_at, revoked_at, revoked_reason FROM grants";

fn row_to_grant(r: &rusqlite::Row<'_>) -> rusqlite::Result<GrantRow> {
    Ok(GrantRow {
        id: r.get(0)?,
        client_id: r.get(1)?,
        username: r.get(2)?,
        patient_id: r.get(3)?,
        scope: r.get(4)?,
        created_at: r.get(5)?,
        revoked_at: r.get(6)?,
        revoked_reason: r.get(7)?,
    })
}

fn row_to_person(r: &rusqlite::Row<'_>) -> rusqlite::Result<PersonRow> {
    Ok(PersonRow {
        patient_id: r.get(0)?,
        display_name: r.get(1)?,
        birth_date: r.get(2)?,
        username: r.get(3)?,
    })
}

fn row_to_resource(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredResource> {
    let categories: String = r.get(3)?;
    Ok(StoredResource {
        seq: r.get(0)?,
        json: r.get(1)?,
        patient: r.get(2)?,
        categories: categories
            .split_whitespace()
            .filter_map(|t| t.split_once('|'))
            .map(|(s, c)| ((!s.is_empty()).then(|| s.to_owned()), c.to_owned()))
            .collect(),
        confidential: r.get(4)?,
    })
}

/// Many writes in one transaction (a `--data` load, an upload): see [`Store::bulk`].
#[derive(Debug)]
pub struct Bulk<'a> {
    tx: rusqlite::Transaction<'a>,
    deltas: CountDeltas,
    counts: &'a RefCell<Option<BTreeMap<String, i64>>>,
}

impl Bulk<'_> {
    /// Stores a resource: new at version 1 (or the version its `meta` gives), existing as a new version.
    pub fn put(&mut self, r: Value, now: i64) -> Result<i64> {
        put(&self.tx, r, now, false, &mut self.deltas)
    }

    /// Adds or replaces a person.
    pub fn put_person(&self, p: &PersonRow, password: Option<&str>) -> Result<()> {
        self.tx.prepare_cached(
            "INSERT OR REPLACE INTO people (patient_id, display_name, birth_date, username, password) VALUES (?, ?, ?, ?, ?)",
        )?
        .execute(params![p.patient_id, p.display_name, p.birth_date, p.username, password])?;
        Ok(())
    }

    /// Adds or replaces a proxy authorization.
    pub fn put_proxy(&self, p: &ProxyRow) -> Result<()> {
        self.tx.prepare_cached(
            "INSERT OR REPLACE INTO proxies (proxy_patient, patient_id, kind, related_person_id, ended_at) VALUES (?, ?, ?, ?, ?)",
        )?
        .execute(params![p.proxy_patient, p.patient_id, p.kind, p.related_person_id, p.ended_at])?;
        Ok(())
    }

    /// The id of a live resource of a type with this identifier (`system` `None`: any system), for conditional
    /// references (`Practitioner?identifier=system|value`) to resources stored before.
    pub fn find_by_identifier(
        &self,
        ty: &str,
        system: Option<&str>,
        value: &str,
    ) -> Result<Option<String>> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT r.id FROM resources r, json_each(r.json, '$.identifier') i
                 WHERE r.type = ?1 AND r.deleted = 0 AND json_extract(i.value, '$.value') = ?2
                   AND (?3 IS NULL OR json_extract(i.value, '$.system') = ?3)
                 ORDER BY r.seq LIMIT 1",
            )?
            .query_row(params![ty, value, system], |r| r.get(0))
            .optional()?)
    }

    /// Puts `Binary` resources into the compartment of their `securityContext` and commits everything.
    pub fn commit(self) -> Result<()> {
        self.tx.execute(
            "UPDATE resources SET patient = (SELECT d.patient FROM resources d
                 WHERE d.type = substr(json_extract(resources.json, '$.securityContext.reference'), 1,
                           instr(json_extract(resources.json, '$.securityContext.reference'), '/') - 1)
                   AND d.id = substr(json_extract(resources.json, '$.securityContext.reference'),
                           instr(json_extract(resources.json, '$.securityContext.reference'), '/') + 1))
             WHERE type = 'Binary' AND patient IS NULL
               AND instr(json_extract(json, '$.securityContext.reference'), '/') > 1",
            [],
        )?;
        self.tx.commit()?;
        apply(self.counts, self.deltas);
        Ok(())
    }
}

/// Adds committed changes to cached type counts (when they are cached at all).
fn apply(cache: &RefCell<Option<BTreeMap<String, i64>>>, deltas: CountDeltas) {
    if let Some(counts) = cache.borrow_mut().as_mut() {
        for (ty, d) in deltas {
            *counts.entry(ty).or_insert(0) += d;
        }
        counts.retain(|_, n| *n > 0);
    }
}

fn put(
    tx: &rusqlite::Transaction<'_>,
    mut r: Value,
    now: i64,
    bump: bool,
    deltas: &mut CountDeltas,
) -> Result<i64> {
    let ty = r["resourceType"]
        .as_str()
        .ok_or(StoreError::MissingId)?
        .to_owned();
    let id = r["id"].as_str().ok_or(StoreError::MissingId)?.to_owned();
    if !r.is_object() || ty.is_empty() || id.is_empty() {
        return Err(StoreError::MissingId);
    }
    let existing: Option<(i64, bool)> = tx
        .prepare_cached("SELECT version, deleted FROM resources WHERE type = ? AND id = ?")?
        .query_row(params![ty, id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let previous = existing.map(|(v, _)| v);
    if existing.is_none_or(|(_, deleted)| deleted) {
        *deltas.entry(ty.clone()).or_insert(0) += 1;
    }
    let given_version = r["meta"]["versionId"]
        .as_str()
        .and_then(|v| v.parse::<i64>().ok());
    let version = match (previous, bump) {
        (Some(v), _) => v + 1,
        (None, true) => 1,
        (None, false) => given_version.unwrap_or(1),
    };
    let given_updated = r["meta"]["lastUpdated"]
        .as_str()
        .and_then(index::parse_range)
        .map(|(lo, _)| lo);
    let last_updated = if bump || previous.is_some() {
        now
    } else {
        given_updated.unwrap_or(now)
    };
    if !r["meta"].is_object() {
        r["meta"] = Value::Object(Default::default());
    }
    r["meta"]["versionId"] = Value::String(version.to_string());
    r["meta"]["lastUpdated"] = Value::String(instant(last_updated));
    let Index {
        patient,
        categories,
        codes,
        date,
        confidential,
    } = index::index(&r);
    let json = serde_json::to_string(&r)?;
    tx.prepare_cached(
        "INSERT INTO resources (type, id, patient, version, last_updated, categories, codes, date_lo, date_hi, confidential, deleted, json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?11)
         ON CONFLICT (type, id) DO UPDATE SET patient = excluded.patient, version = excluded.version,
             last_updated = excluded.last_updated, categories = excluded.categories, codes = excluded.codes,
             date_lo = excluded.date_lo, date_hi = excluded.date_hi, confidential = excluded.confidential,
             deleted = 0, json = excluded.json",
    )?
    .execute(params![ty, id, patient, version, last_updated, categories, codes, date.map(|d| d.0), date.map(|d| d.1), confidential, json],
    )?;
    Ok(version)
}

fn where_clause(q: &SearchQuery) -> (String, Vec<SqlValue>) {
    let mut sql = String::from("type = ? AND deleted = 0");
    let mut args = vec![SqlValue::Text(q.resource_type.clone())];
    if let Some(p) = &q.patient {
        sql.push_str(" AND patient = ?");
        args.push(SqlValue::Text(p.clone()));
    }
    if !q.include_confidential {
        sql.push_str(" AND confidential = 0");
    }
    if !q.ids.is_empty() {
        sql.push_str(&format!(
            " AND id IN ({})",
            vec!["?"; q.ids.len()].join(",")
        ));
        args.extend(q.ids.iter().cloned().map(SqlValue::Text));
    }
    for (prefix, range) in &q.last_updated {
        // last_updated is an instant: a one-second range.
        range_clause(
            &mut sql,
            &mut args,
            "last_updated",
            "last_updated + 1",
            *prefix,
            *range,
        );
    }
    for (prefix, range) in &q.dates {
        range_clause(&mut sql, &mut args, "date_lo", "date_hi", *prefix, *range);
    }
    for (column, groups) in [("categories", &q.categories), ("codes", &q.codes)] {
        for any_of in groups {
            let parts: Vec<String> = any_of
                .iter()
                .map(|_| format!("instr({column}, ?) > 0"))
                .collect();
            sql.push_str(&format!(" AND ({})", parts.join(" OR ")));
            args.extend(any_of.iter().map(|(system, code)| {
                SqlValue::Text(match system {
                    Some(s) => format!(" {s}|{code} "),
                    None => format!("|{code} "),
                })
            }));
        }
    }
    (sql, args)
}

fn range_clause(
    sql: &mut String,
    args: &mut Vec<SqlValue>,
    lo: &str,
    hi: &str,
    prefix: Prefix,
    (p_lo, p_hi): (i64, i64),
) {
    // FHIR search on ranges: the resource's range [lo, hi) against the search value's [p_lo, p_hi).
    let (clause, values): (String, Vec<i64>) = match prefix {
        Prefix::Eq => (format!("{lo} >= ? AND {hi} <= ?"), vec![p_lo, p_hi]),
        Prefix::Ne => (format!("NOT ({lo} >= ? AND {hi} <= ?)"), vec![p_lo, p_hi]),
        Prefix::Gt => (format!("{hi} > ?"), vec![p_hi]),
        Prefix::Lt => (format!("{lo} < ?"), vec![p_lo]),
        Prefix::Ge => (format!("{hi} > ?"), vec![p_lo]),
        Prefix::Le => (format!("{lo} < ?"), vec![p_hi]),
    };
    sql.push_str(&format!(" AND {lo} IS NOT NULL AND ({clause})"));
    args.extend(values.into_iter().map(SqlValue::Integer));
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obs(id: &str, date: &str, cat: &str) -> Value {
        json!({"resourceType": "Observation", "id": id, "subject": {"reference": "Patient/p"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": cat}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "4548-4"}]}, "effectiveDateTime": date})
    }

    fn query(store: &Store, q: SearchQuery) -> Vec<String> {
        store
            .search(&q)
            .expect("search")
            .into_iter()
            .map(|r| {
                serde_json::from_str::<Value>(&r.json).expect("json")["id"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect()
    }

    fn base() -> SearchQuery {
        SearchQuery {
            resource_type: "Observation".into(),
            patient: Some("p".into()),
            limit: 100,
            ..Default::default()
        }
    }

    #[test]
    fn search_filters_by_date_category_and_code() {
        let mut store = Store::open(None).expect("open");
        store
            .put_all(
                [
                    obs("a", "2020-01-01T00:00:00Z", "laboratory"),
                    obs("b", "2022-06-01", "vital-signs"),
                ],
                100,
            )
            .expect("put");
        let mut q = base();
        q.dates
            .push((Prefix::Ge, index::parse_range("2021").expect("range")));
        assert_eq!(query(&store, q), ["b"]);
        let mut q = base();
        q.categories.push(vec![(None, "laboratory".into())]);
        assert_eq!(query(&store, q), ["a"]);
        let mut q = base();
        q.codes
            .push(vec![(Some("http://loinc.org".into()), "4548-4".into())]);
        assert_eq!(query(&store, q).len(), 2);
        let mut q = base();
        q.dates
            .push((Prefix::Eq, index::parse_range("2020-01").expect("range")));
        assert_eq!(query(&store, q), ["a"]);
    }

    #[test]
    fn updates_bump_the_version_and_deletes_hide() {
        let mut store = Store::open(None).expect("open");
        store
            .put_all([obs("a", "2020-01-01", "laboratory")], 100)
            .expect("put");
        assert_eq!(
            store
                .update(obs("a", "2020-01-02", "laboratory"), 200)
                .expect("update"),
            2
        );
        assert_eq!(
            store.truth("p", true).expect("truth"),
            vec![("Observation".into(), "a".into(), 2)]
        );
        assert!(store.delete("Observation", "a", 300).expect("delete"));
        assert!(store.read("Observation", "a").expect("read").is_none());
        assert!(store.truth("p", true).expect("truth").is_empty());
    }

    #[test]
    fn a_failed_batch_changes_nothing() {
        let mut store = Store::open(None).expect("open");
        store
            .put_all([obs("a", "2020", "laboratory")], 1)
            .expect("put");
        let broken = json!({"resourceType": "Observation"});
        assert!(
            store
                .put_all([obs("b", "2020", "laboratory"), broken], 1)
                .is_err()
        );
        assert_eq!(store.truth("p", true).expect("truth").len(), 1);
    }

    #[test]
    fn binaries_join_their_documents_compartment() {
        let mut store = Store::open(None).expect("open");
        let bin = json!({"resourceType": "Binary", "id": "b1", "securityContext": {"reference": "DocumentReference/d1"}});
        let doc = json!({"resourceType": "DocumentReference", "id": "d1", "subject": {"reference": "Patient/p"}});
        store.put_all([bin, doc], 1).expect("put");
        assert_eq!(
            store
                .read("Binary", "b1")
                .expect("read")
                .and_then(|r| r.patient)
                .as_deref(),
            Some("p")
        );
    }
}
