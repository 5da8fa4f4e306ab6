//! Sync bookkeeping: per-query cursors and resume links, per-account pass counters, consent withdrawal.

use super::*;

impl Store {
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
            Option<String>,
        );
        let raw: Option<Raw> = self
            .reader()?
            .query_row(
                "SELECT since, pending_since, resume_nonce, resume_sealed, pass, full_pass_done, last_error FROM sync_queries WHERE account = ? AND query = ?",
                params![account, query],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
            )
            .optional()?;
        let Some((since, pending_since, nonce, sealed, pass, full_pass_done, last_error)) = raw
        else {
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
            last_error,
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
            .reader()?
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
        let conn = self.reader()?;
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
