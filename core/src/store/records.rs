//! Reading and writing the sealed resources and document contents of an account.

use super::*;

impl Store {
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
            .prepare_cached("SELECT version, last_updated FROM resources WHERE account = ? AND type = ? AND id_tag = ?")?
            .query_row(
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
            tx.prepare_cached("UPDATE resources SET pass = ?, query = ? WHERE account = ? AND type = ? AND id_tag = ?")?.execute(
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
        tx.prepare_cached("INSERT INTO resources (account, type, id_tag, version, last_updated, query, pass, code_tag, category_tag, nonce, payload,
                 brief_nonce, brief)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
             ON CONFLICT (account, type, id_tag) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated,
                 query = excluded.query, pass = excluded.pass, code_tag = excluded.code_tag,
                 category_tag = excluded.category_tag, nonce = excluded.nonce, payload = excluded.payload,
                 brief_nonce = excluded.brief_nonce, brief = excluded.brief")?.execute(
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
            .reader()?
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

    /// Whether a resource is stored (without decrypting it).
    pub fn contains(&self, keys: &AccountKeys, account: &str, ty: &str, id: &str) -> Result<bool> {
        let n: i64 = self.reader()?.query_row(
            "SELECT COUNT(*) FROM resources WHERE account = ? AND type = ? AND id_tag = ?",
            params![account, ty, keys.tag(id)],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Whether a document's content is stored.
    pub fn has_binary(&self, keys: &AccountKeys, account: &str, id: &str) -> Result<bool> {
        let n: i64 = self.reader()?.query_row(
            "SELECT COUNT(*) FROM binaries WHERE account = ? AND id_tag = ?",
            params![account, keys.tag(id)],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    pub(super) fn decrypt_rows(
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
    pub(super) fn drop_damaged(
        &self,
        account: &str,
        damaged: Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
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

    pub(super) fn select(&self, sql: &str, args: &[&dyn rusqlite::ToSql]) -> Result<Vec<Row>> {
        let conn = self.reader()?;
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

    /// (type, id, versionId) of every stored resource of an account's record, sorted: what tests compare with the
    /// server. The referenced resources kept for their names (a visit's doctor) are not part of it. Decrypts every
    /// row.
    pub fn inventory(
        &self,
        keys: &AccountKeys,
        account: &str,
    ) -> Result<Vec<(String, String, Option<String>)>> {
        let rows = self.select(
            "SELECT type, id_tag, nonce, payload FROM resources WHERE account = ? AND query NOT LIKE 'ref:%'",
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
        out.sort_unstable();
        Ok(out)
    }

    /// Resource counts per type for an account.
    pub fn counts(&self, account: &str) -> Result<Vec<(String, i64)>> {
        let conn = self.reader()?;
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
                "account_keypairs",
                "locked_inbox",
                "locked_pages",
                "locked_passes",
                "whats_new",
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
}
