//! The newest result per code, chosen in Rust from the sealed briefs (no clinical date is stored in the clear).

use super::*;

/// The clinical date of a brief (a serialized lab result), as sort key; `i64::MIN` without one.
pub(super) fn brief_sort_key(brief: &[u8]) -> i64 {
    #[derive(serde::Deserialize)]
    struct Dated {
        date: Option<crate::views::FhirDate>,
    }
    serde_json::from_slice::<Dated>(brief)
        .ok()
        .and_then(|d| d.date)
        .map_or(i64::MIN, |d| d.sort_key())
}

impl Store {
    /// Keeps the newest brief per code. The date of the current latest result is read from its sealed brief (no
    /// date is stored in the clear).
    pub(super) fn update_latest(
        tx: &Transaction<'_>,
        keys: &AccountKeys,
        account: &str,
        code_tag: &[u8],
        id_tag: &[u8],
        sort_key: i64,
        (nonce, brief): (Vec<u8>, Vec<u8>),
    ) -> Result<()> {
        let current: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = tx
            .prepare_cached(
                "SELECT id_tag, nonce, brief FROM latest WHERE account = ? AND code_tag = ?",
            )?
            .query_row(params![account, code_tag], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
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
            tx.prepare_cached("INSERT OR REPLACE INTO latest (account, code_tag, id_tag, nonce, brief) VALUES (?, ?, ?, ?, ?)")?.execute(
                params![account, code_tag, id_tag, nonce, brief],
            )?;
        }
        if recompute {
            tx.prepare_cached(
                "INSERT OR IGNORE INTO latest_stale (account, code_tag) VALUES (?, ?)",
            )?
            .execute(params![account, code_tag])?;
        }
        Ok(())
    }

    /// Opens sealed briefs; one that does not open is damage to its row, which is removed and reported.
    pub(super) fn open_briefs(
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

    pub(super) fn brief_rows(&self, account: &str, code_tag: &[u8]) -> Result<Vec<BriefRow>> {
        let conn = self.reader()?;
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
            let conn = self.reader()?;
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
    pub(super) fn refresh_stale_latest(&self, keys: &AccountKeys, account: &str) -> Result<()> {
        let stale: Vec<Vec<u8>> = {
            let conn = self.reader()?;
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
    pub(super) fn repair_latest(tx: &Transaction<'_>, account: &str) -> Result<()> {
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
}
