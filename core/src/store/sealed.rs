//! What a locked sync writes: sealed to the account's public key, so it can be written without the master key and
//! read only after unlock; authenticated with a secret the database does not hold, so that nobody who can only
//! write the database can add to it.
//!
//! Each account has an X25519 key pair. The public key is stored in the clear; the private key is stored sealed
//! (AES-256-GCM) under the account's master-key-derived keys, so it exists in memory only while unlocked. Each
//! account also has an inbox secret: 32 random bytes kept in the host's secure store in the tokens' class
//! (`chartlink/inbox-psk/<account>`, readable while locked like the account entries, never in the database; see
//! `sync::locked::InboxSecret`). A locked sync seals each page it receives (the resources with the query and pass
//! they came from, or a deletion marker) with HPKE (RFC 9180, **PSK mode** with the inbox secret,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305; the `hpke` crate) into the `locked_inbox` table, in
//! arrival order. The account id is bound in the HPKE `info`, the account id and a per-account sequence number
//! (`nseq`, counted up by every envelope) in the AAD: an envelope opens only for its account, at its place, and only
//! if it was sealed by someone holding the inbox secret (HPKE base mode, which needs only the public key, let anyone
//! who could write the file forge envelopes). A substituted public key does not help an attacker read either: the
//! key schedule mixes in the inbox secret.
//!
//! A locked sync can compute no keyed hash of the record (the HMAC key is behind the master key), so the ids stay
//! inside the envelope; at unlock the inbox is opened and applied in order to the normal rows (see
//! `sync::locked`), which is where an edit replaces its older copy and a full pass removes what the server deleted.
//! What it can compute is a digest keyed by the inbox secret ([`SealingKey::digest`]): the `locked_pages` table
//! keeps those of the pages sealed since the last unlocked write, so a page that did not change is not sealed again.
//! The inbox of an account is capped ([`SealingKey::cap`], set by the host's `SyncBudget`).
//!
//! Also here: the sealed "what's new" list (which records a sync brought, for the host to show after unlock).

use std::sync::atomic::{AtomicBool, Ordering};

use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, PskBundle, Serializable};

use super::*;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;
type PublicKey = <Kem as hpke::Kem>::PublicKey;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// HPKE `info` prefix (the account id follows): binds every envelope to this use, this version and its account.
/// Version 1 (base mode, no sequence number) is no longer opened.
const INFO: &[u8] = b"chartlink locked-sync v2\x1f";
/// The HPKE PSK id of the inbox secret.
const PSK_ID: &[u8] = b"chartlink inbox-psk v1";
/// What the page-digest key is derived from the inbox secret for.
const DIGEST_LABEL: &[u8] = b"chartlink locked-page digest v1";

/// An account's public key and inbox secret: what a locked sync seals with. Holds no key of the record.
pub struct SealingKey {
    account: String,
    pk: PublicKey,
    psk: Zeroizing<Vec<u8>>,
    digest_key: hmac::Key,
    /// The last sequence number applied (from the secure store): new envelopes are numbered above it even if the
    /// database's counter was set back.
    floor: i64,
    /// The most bytes the account's inbox may hold.
    cap: u64,
    /// Set when an envelope was refused because the inbox is full.
    full: AtomicBool,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey").finish_non_exhaustive()
    }
}

/// An account's private key and inbox secret (only while unlocked; the private key is opened from its sealed copy
/// with the account keys).
pub struct OpeningKey {
    account: String,
    sk: PrivateKey,
    psk: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for OpeningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpeningKey([redacted])")
    }
}

fn envelope_info(account: &str) -> Vec<u8> {
    [INFO, account.as_bytes()].concat()
}

fn envelope_aad(account: &str, nseq: i64) -> Vec<u8> {
    format!("{account}\u{1f}{nseq}\u{1f}locked-inbox-v2").into_bytes()
}

fn psk_bundle(psk: &[u8]) -> Result<PskBundle<'_>> {
    if psk.len() < 32 {
        return Err(StoreError::Encrypt);
    }
    PskBundle::new(psk, PSK_ID).map_err(|_| StoreError::Encrypt)
}

impl SealingKey {
    /// Seals `plaintext` as the account's envelope number `nseq`: (encapsulated key, ciphertext).
    pub fn seal(&self, nseq: i64, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
            &OpModeS::Psk(psk_bundle(&self.psk)?),
            &self.pk,
            &envelope_info(&self.account),
            plaintext,
            &envelope_aad(&self.account, nseq),
        )
        .map_err(|_| StoreError::Encrypt)?;
        Ok((enc.to_bytes().to_vec(), ct))
    }

    /// A digest of `parts` keyed by the inbox secret (HMAC-SHA256 under a key derived from it): equal for equal
    /// content, meaningless without the secret. Parts are length-prefixed.
    pub fn digest(&self, parts: &[&[u8]]) -> Vec<u8> {
        let mut ctx = hmac::Context::with_key(&self.digest_key);
        ctx.update(self.account.as_bytes());
        for p in parts {
            ctx.update(&(p.len() as u64).to_be_bytes());
            ctx.update(p);
        }
        ctx.sign().as_ref().to_vec()
    }

    /// The most bytes the account's inbox may hold.
    pub fn cap(&self) -> u64 {
        self.cap
    }

    /// Whether an envelope was refused because the account's inbox reached [`SealingKey::cap`].
    pub fn inbox_full(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }
}

impl OpeningKey {
    /// Opens what [`SealingKey::seal`] sealed for this account as envelope number `nseq`: fails for another account,
    /// another number, a tampered envelope, or one not sealed with the account's inbox secret.
    pub fn open(&self, nseq: i64, enc: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let enc = EncappedKey::from_bytes(enc).map_err(|_| StoreError::Decrypt)?;
        let plain = hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Psk(psk_bundle(&self.psk).map_err(|_| StoreError::Decrypt)?),
            &self.sk,
            &enc,
            &envelope_info(&self.account),
            ciphertext,
            &envelope_aad(&self.account, nseq),
        )
        .map_err(|_| StoreError::Decrypt)?;
        Ok(Zeroizing::new(plain))
    }
}

/// One sealed inbox row: its arrival order, its sequence number (`None`: sealed before envelopes were
/// authenticated), encapsulated key and ciphertext.
pub type InboxRow = (i64, Option<i64>, Vec<u8>, Vec<u8>);

/// What a locked full pass of a query must do at its end (see [`Store::end_locked_pass`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LockedPassEnd {
    /// Every page was sealed in this pass: seal a reconcile marker (what the pass did not see is gone).
    Reconcile,
    /// Every page was one sealed before, and every page sealed before was seen: nothing changed, nothing to seal.
    Unchanged,
    /// Some pages were not sealed again and the query changed: a reconcile now would remove what those pages hold.
    /// The query is marked to be sealed whole (no page skipped) by the next run of this pass.
    Reseal,
}

impl Store {
    /// Gives the account a key pair when it has none (needs the account keys, so only while unlocked). Returns
    /// whether it made one (then the account's inbox secret must be new too: see `background`). A new key pair
    /// starts a new inbox: the page digests and counters of an earlier one go.
    pub fn ensure_keypair(&self, keys: &AccountKeys, account: &str) -> Result<bool> {
        self.write(|tx| {
            let has: i64 = tx.query_row(
                "SELECT count(*) FROM account_keypairs WHERE account = ?",
                [account],
                |r| r.get(0),
            )?;
            if has > 0 {
                return Ok(false);
            }
            let mut ikm = Zeroizing::new([0u8; 32]);
            SystemRandom::new()
                .fill(&mut ikm[..])
                .map_err(|_| StoreError::Encrypt)?;
            let (sk, pk) = Kem::derive_keypair(&ikm[..]);
            let sk_bytes = Zeroizing::new(sk.to_bytes().to_vec());
            let (nonce, sealed) = keys.seal(&aad(account, "keypair", b""), &sk_bytes)?;
            tx.execute(
                "INSERT INTO account_keypairs (account, public_key, sk_nonce, sk_sealed) VALUES (?, ?, ?, ?)",
                params![account, pk.to_bytes().to_vec(), nonce, sealed],
            )?;
            for table in ["locked_pages", "locked_passes", "locked_inbox"] {
                tx.execute(&format!("DELETE FROM {table} WHERE account = ?"), [account])?;
            }
            Ok(true)
        })
    }

    /// Whether the account has a key pair (it was unlocked here since background sync exists).
    pub fn has_keypair(&self, account: &str) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM account_keypairs WHERE account = ?)",
            [account],
            |r| r.get(0),
        )?)
    }

    /// What a locked sync seals with: the account's public key (readable while locked) and its inbox secret `psk`
    /// (from the secure store); `applied` is the last sequence number applied as the secure store knows it, `cap`
    /// the most bytes the inbox may hold. `None` before the account was ever unlocked here.
    pub fn sealing_key(
        &self,
        account: &str,
        psk: &[u8],
        applied: i64,
        cap: u64,
    ) -> Result<Option<SealingKey>> {
        let pk: Option<Vec<u8>> = self
            .conn()
            .query_row(
                "SELECT public_key FROM account_keypairs WHERE account = ?",
                [account],
                |r| r.get(0),
            )
            .optional()?;
        let digest_seed = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, psk), DIGEST_LABEL);
        pk.map(|pk| {
            Ok(SealingKey {
                account: account.to_owned(),
                pk: PublicKey::from_bytes(&pk).map_err(|_| StoreError::Decrypt)?,
                psk: Zeroizing::new(psk.to_vec()),
                digest_key: hmac::Key::new(hmac::HMAC_SHA256, digest_seed.as_ref()),
                floor: applied,
                cap,
                full: AtomicBool::new(false),
            })
        })
        .transpose()
    }

    /// The account's private key, opened with its keys, with its inbox secret `psk` (`None` when it has no key
    /// pair).
    pub fn opening_key(
        &self,
        keys: &AccountKeys,
        account: &str,
        psk: &[u8],
    ) -> Result<Option<OpeningKey>> {
        let row: Option<(Vec<u8>, Vec<u8>)> = self
            .conn()
            .query_row(
                "SELECT sk_nonce, sk_sealed FROM account_keypairs WHERE account = ?",
                [account],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((nonce, sealed)) = row else {
            return Ok(None);
        };
        let sk_bytes = keys.open(&aad(account, "keypair", b""), &nonce, sealed)?;
        Ok(Some(OpeningKey {
            account: account.to_owned(),
            sk: PrivateKey::from_bytes(&sk_bytes).map_err(|_| StoreError::Decrypt)?,
            psk: Zeroizing::new(psk.to_vec()),
        }))
    }

    /// Appends one sealed batch to the account's locked inbox (in the transaction of the page it came with), as
    /// the account's next envelope number. Refused (and [`SealingKey::inbox_full`] set) when the inbox would grow
    /// past [`SealingKey::cap`].
    pub fn put_locked(
        tx: &Transaction<'_>,
        key: &SealingKey,
        account: &str,
        plaintext: &[u8],
    ) -> Result<()> {
        let held: i64 = tx
            .query_row(
                "SELECT inbox_bytes FROM account_keypairs WHERE account = ?",
                [account],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(StoreError::Encrypt)?;
        // HPKE adds the encapsulated key (32 bytes) and the tag (16).
        let adding = plaintext.len() as u64 + 48;
        if u64::try_from(held).unwrap_or(0).saturating_add(adding) > key.cap {
            key.full.store(true, Ordering::SeqCst);
            return Err(StoreError::Io("the locked inbox is full".into()));
        }
        let nseq: i64 = tx.query_row(
            "UPDATE account_keypairs SET next_seq = max(next_seq, applied_seq, ?1) + 1 WHERE account = ?2
             RETURNING next_seq",
            params![key.floor, account],
            |r| r.get(0),
        )?;
        let (enc, sealed) = key.seal(nseq, plaintext)?;
        let size = (enc.len() + sealed.len()) as i64;
        tx.execute(
            "INSERT INTO locked_inbox (account, enc, sealed, nseq) VALUES (?, ?, ?, ?)",
            params![account, enc, sealed, nseq],
        )?;
        tx.execute(
            "UPDATE account_keypairs SET inbox_bytes = inbox_bytes + ? WHERE account = ?",
            params![size, account],
        )?;
        Ok(())
    }

    /// The oldest `limit` rows of the account's locked inbox (inside the transaction that applies and removes
    /// them).
    pub fn locked_rows(tx: &Transaction<'_>, account: &str, limit: usize) -> Result<Vec<InboxRow>> {
        let mut stmt = tx.prepare_cached(
            "SELECT seq, nseq, enc, sealed FROM locked_inbox WHERE account = ? ORDER BY seq LIMIT ?",
        )?;
        Ok(stmt
            .query_map(params![account, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Removes inbox rows up to `seq` (applied, or refused) and records `applied` as the last sequence number
    /// applied.
    pub fn drop_locked(
        tx: &Transaction<'_>,
        account: &str,
        up_to_seq: i64,
        applied: i64,
    ) -> Result<()> {
        tx.execute(
            "DELETE FROM locked_inbox WHERE account = ? AND seq <= ?",
            params![account, up_to_seq],
        )?;
        tx.execute(
            "UPDATE account_keypairs SET applied_seq = max(applied_seq, ?1),
                 inbox_bytes = (SELECT coalesce(sum(length(enc) + length(sealed)), 0) FROM locked_inbox WHERE account = ?2)
             WHERE account = ?2",
            params![applied, account],
        )?;
        Ok(())
    }

    /// The last envelope number sealed into the account's inbox (0: none), as the database records it.
    pub fn sealed_seq(&self, account: &str) -> Result<i64> {
        Ok(self
            .conn()
            .query_row(
                "SELECT next_seq FROM account_keypairs WHERE account = ?",
                [account],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// The last sequence number applied, as the database records it.
    pub fn applied_seq(&self, account: &str) -> Result<i64> {
        Ok(self
            .conn()
            .query_row(
                "SELECT applied_seq FROM account_keypairs WHERE account = ?",
                [account],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(0))
    }

    /// How many bytes the account's locked inbox holds.
    pub fn locked_bytes(&self, account: &str) -> Result<u64> {
        let n: i64 = self.conn().query_row(
            "SELECT coalesce(sum(length(enc) + length(sealed)), 0) FROM locked_inbox WHERE account = ?",
            [account],
            |r| r.get(0),
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Notes a page a locked sync received for `query` in `pass`, by its keyed digest `tag`, and counts it for the
    /// pass. Returns whether the same page was sealed since the last unlocked write (it is applied or pending: it
    /// need not be sealed again). A query marked for a whole reseal never skips a page.
    pub fn note_locked_page(
        tx: &Transaction<'_>,
        account: &str,
        query: &str,
        pass: i64,
        tag: &[u8],
    ) -> Result<bool> {
        tx.execute(
            "INSERT INTO locked_passes (account, query, pass) VALUES (?1, ?2, ?3)
             ON CONFLICT (account, query) DO UPDATE SET
                 sealed = CASE WHEN pass = ?3 THEN sealed ELSE 0 END,
                 skipped = CASE WHEN pass = ?3 THEN skipped ELSE 0 END,
                 pass = ?3",
            params![account, query, pass],
        )?;
        let reseal: bool = tx.query_row(
            "SELECT reseal FROM locked_passes WHERE account = ? AND query = ?",
            params![account, query],
            |r| r.get(0),
        )?;
        let known = !reseal
            && tx
                .query_row(
                    "SELECT 1 FROM locked_pages WHERE account = ? AND query = ? AND tag = ?",
                    params![account, query, tag],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
        tx.execute(
            "INSERT INTO locked_pages (account, query, tag, seen_pass) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (account, query, tag) DO UPDATE SET seen_pass = max(seen_pass, ?4)",
            params![account, query, tag, pass],
        )?;
        let column = if known { "skipped" } else { "sealed" };
        tx.execute(
            &format!(
                "UPDATE locked_passes SET {column} = {column} + 1 WHERE account = ? AND query = ?"
            ),
            params![account, query],
        )?;
        Ok(known)
    }

    /// At the end of a locked full pass of `query`: whether it must seal a reconcile marker. Not when every page
    /// was one sealed before and every page sealed before was seen (nothing changed); nor when some pages were
    /// skipped and the query changed (a reconcile would remove what the skipped pages hold): then the query is
    /// marked for a whole reseal by the next run of this pass ([`Store::needs_reseal`]). Forgets the digests of
    /// pages the pass did not see (they no longer describe the record).
    pub fn end_locked_pass(
        tx: &Transaction<'_>,
        account: &str,
        query: &str,
        pass: i64,
    ) -> Result<bool> {
        Ok(Self::locked_pass_end(tx, account, query, pass)? == LockedPassEnd::Reconcile)
    }

    fn locked_pass_end(
        tx: &Transaction<'_>,
        account: &str,
        query: &str,
        pass: i64,
    ) -> Result<LockedPassEnd> {
        let counts: Option<(i64, i64, i64)> = tx
            .query_row(
                "SELECT pass, sealed, skipped FROM locked_passes WHERE account = ? AND query = ?",
                params![account, query],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (sealed, skipped) = match counts {
            Some((p, sealed, skipped)) if p == pass => (sealed, skipped),
            _ => (0, 0),
        };
        let gone: i64 = tx.query_row(
            "SELECT count(*) FROM locked_pages WHERE account = ? AND query = ? AND seen_pass < ?",
            params![account, query, pass],
            |r| r.get(0),
        )?;
        let end = if skipped == 0 {
            LockedPassEnd::Reconcile
        } else if sealed == 0 && gone == 0 {
            LockedPassEnd::Unchanged
        } else {
            LockedPassEnd::Reseal
        };
        match end {
            LockedPassEnd::Reseal => {
                tx.execute(
                    "DELETE FROM locked_pages WHERE account = ? AND query = ?",
                    params![account, query],
                )?;
                tx.execute(
                    "UPDATE locked_passes SET reseal = 1, sealed = 0, skipped = 0 WHERE account = ? AND query = ?",
                    params![account, query],
                )?;
            }
            _ => {
                tx.execute(
                    "DELETE FROM locked_pages WHERE account = ? AND query = ? AND seen_pass < ?",
                    params![account, query, pass],
                )?;
                tx.execute(
                    "UPDATE locked_passes SET reseal = 0 WHERE account = ? AND query = ?",
                    params![account, query],
                )?;
            }
        }
        Ok(end)
    }

    /// Whether a page of `query` was noted in `pass`.
    pub fn has_locked_pages(
        tx: &Transaction<'_>,
        account: &str,
        query: &str,
        pass: i64,
    ) -> Result<bool> {
        Ok(tx
            .query_row(
                "SELECT sealed + skipped FROM locked_passes WHERE account = ? AND query = ? AND pass = ?",
                params![account, query, pass],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .is_some_and(|n| n > 0))
    }

    /// Whether `query` waits for a whole reseal (see [`LockedPassEnd::Reseal`]).
    pub fn needs_reseal(tx: &Transaction<'_>, account: &str, query: &str) -> Result<bool> {
        Ok(tx
            .query_row(
                "SELECT reseal FROM locked_passes WHERE account = ? AND query = ?",
                params![account, query],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false))
    }

    /// Forgets the page digests of `query` (`None`: of every query of the account): the rows changed by other
    /// means (an unlocked write, consent withdrawn, an envelope refused), so its pages must be sealed again.
    pub fn forget_locked_pages(
        tx: &Transaction<'_>,
        account: &str,
        query: Option<&str>,
    ) -> Result<()> {
        for table in ["locked_pages", "locked_passes"] {
            match query {
                Some(q) => tx.execute(
                    &format!("DELETE FROM {table} WHERE account = ? AND query = ?"),
                    params![account, q],
                )?,
                None => tx.execute(&format!("DELETE FROM {table} WHERE account = ?"), [account])?,
            };
        }
        Ok(())
    }

    /// Whether sealed batches of the account wait for unlock.
    pub fn has_locked(&self, account: &str) -> Result<bool> {
        Ok(self.conn().query_row(
            "SELECT EXISTS (SELECT 1 FROM locked_inbox WHERE account = ?)",
            [account],
            |r| r.get(0),
        )?)
    }

    /// How many sealed batches wait for unlock (every account).
    pub fn locked_pending(&self) -> Result<i64> {
        Ok(self
            .conn()
            .query_row("SELECT count(*) FROM locked_inbox", [], |r| r.get(0))?)
    }

    /// Adds one entry (a sealed, opaque byte string) to the account's "what's new" list, keeping the newest
    /// [`WHATS_NEW_LIMIT`].
    pub fn add_news(
        tx: &Transaction<'_>,
        keys: &AccountKeys,
        account: &str,
        entry: &[u8],
    ) -> Result<()> {
        let (nonce, sealed) = keys.seal(&aad(account, "news", b""), entry)?;
        tx.execute(
            "INSERT INTO whats_new (account, nonce, sealed) VALUES (?, ?, ?)",
            params![account, nonce, sealed],
        )?;
        Ok(())
    }

    /// Trims the account's "what's new" list to its newest [`WHATS_NEW_LIMIT`] entries.
    pub fn trim_news(tx: &Transaction<'_>, account: &str) -> Result<()> {
        tx.execute(
            "DELETE FROM whats_new WHERE account = ?1 AND seq NOT IN
                 (SELECT seq FROM whats_new WHERE account = ?1 ORDER BY seq DESC LIMIT ?2)",
            params![account, WHATS_NEW_LIMIT],
        )?;
        Ok(())
    }

    /// The account's "what's new" entries, oldest first (entries that do not open are skipped).
    pub fn news(&self, keys: &AccountKeys, account: &str) -> Result<Vec<Zeroizing<Vec<u8>>>> {
        let rows: Vec<(Vec<u8>, Vec<u8>)> = {
            let conn = self.conn();
            let mut stmt = conn.prepare_cached(
                "SELECT nonce, sealed FROM whats_new WHERE account = ? ORDER BY seq",
            )?;
            stmt.query_map([account], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<std::result::Result<_, _>>()?
        };
        Ok(rows
            .into_iter()
            .filter_map(|(n, s)| keys.open(&aad(account, "news", b""), &n, s).ok())
            .collect())
    }

    /// Empties the account's "what's new" list (the user has seen it).
    pub fn clear_news(&self, account: &str) -> Result<()> {
        self.conn()
            .execute("DELETE FROM whats_new WHERE account = ?", [account])?;
        Ok(())
    }

    /// When the account last synced (Unix ms), if ever.
    pub fn last_sync_ms(&self, account: &str) -> Result<Option<i64>> {
        Ok(self
            .conn()
            .query_row(
                "SELECT last_sync_ms FROM sync_accounts WHERE account = ?",
                [account],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// Saves a query's state without its resume link (a locked sync cannot seal one): the link columns are
    /// cleared.
    pub fn set_query_state_clear(
        tx: &Transaction<'_>,
        account: &str,
        query: &str,
        s: &QueryState,
        error: Option<&str>,
    ) -> Result<()> {
        tx.execute(
            "INSERT INTO sync_queries (account, query, since, pending_since, resume_nonce, resume_sealed, pass, full_pass_done, last_error)
             VALUES (?1, ?2, ?3, ?4, NULL, NULL, ?5, ?6, ?7)
             ON CONFLICT (account, query) DO UPDATE SET since = ?3, pending_since = ?4, resume_nonce = NULL, resume_sealed = NULL,
                 pass = ?5, full_pass_done = ?6, last_error = ?7",
            params![account, query, s.since, s.pending_since, s.pass, s.full_pass_done, error],
        )?;
        Ok(())
    }

    /// The clear part of a query's state (what a locked sync can read: the resume link is sealed, so it is `None`).
    pub fn query_state_clear(&self, account: &str, query: &str) -> Result<QueryState> {
        type Raw = (Option<String>, Option<String>, i64, bool, Option<String>);
        let raw: Option<Raw> = self
            .conn()
            .query_row(
                "SELECT since, pending_since, pass, full_pass_done, last_error FROM sync_queries WHERE account = ? AND query = ?",
                params![account, query],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        Ok(raw.map_or_else(
            QueryState::default,
            |(since, pending_since, pass, full_pass_done, last_error)| QueryState {
                since,
                pending_since,
                resume_url: None,
                pass,
                full_pass_done,
                last_error,
            },
        ))
    }
}

/// The most "what's new" entries kept per account.
pub const WHATS_NEW_LIMIT: i64 = 1000;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PSK: [u8; 32] = [9; 32];

    #[test]
    fn sealed_with_the_inbox_secret_opens_only_with_the_accounts_private_key_and_number() {
        let store = Store::open_in_memory().unwrap();
        let keys = AccountKeys::derive(&[1; 32], "a1").unwrap();
        assert!(
            store
                .sealing_key("a1", &PSK, 0, u64::MAX)
                .unwrap()
                .is_none(),
            "no key pair before unlock"
        );
        assert!(store.ensure_keypair(&keys, "a1").unwrap());
        assert!(!store.ensure_keypair(&keys, "a1").unwrap());
        let public = store.sealing_key("a1", &PSK, 0, u64::MAX).unwrap().unwrap();
        let (enc, ct) = public.seal(1, b"a new result").unwrap();
        assert!(!ct.windows(6).any(|w| w == b"result"));
        let private = store.opening_key(&keys, "a1", &PSK).unwrap().unwrap();
        assert_eq!(&private.open(1, &enc, &ct).unwrap()[..], b"a new result");

        // Another number (a replay elsewhere in the inbox), another account's key pair, another inbox secret, a
        // tampered envelope, or the wrong master key: nothing opens.
        assert_eq!(private.open(2, &enc, &ct).err(), Some(StoreError::Decrypt));
        let other = AccountKeys::derive(&[1; 32], "a2").unwrap();
        store.ensure_keypair(&other, "a2").unwrap();
        let other_private = store.opening_key(&other, "a2", &PSK).unwrap().unwrap();
        assert_eq!(
            other_private.open(1, &enc, &ct).err(),
            Some(StoreError::Decrypt)
        );
        let guessed = store.opening_key(&keys, "a1", &[8; 32]).unwrap().unwrap();
        assert_eq!(guessed.open(1, &enc, &ct).err(), Some(StoreError::Decrypt));
        let forger = store
            .sealing_key("a1", &[8; 32], 0, u64::MAX)
            .unwrap()
            .unwrap();
        let (fenc, fct) = forger.seal(1, b"forged").unwrap();
        assert_eq!(
            private.open(1, &fenc, &fct).err(),
            Some(StoreError::Decrypt),
            "the public key alone does not make an envelope that opens"
        );
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(private.open(1, &enc, &bad).err(), Some(StoreError::Decrypt));
        let wrong = AccountKeys::derive(&[2; 32], "a1").unwrap();
        assert_eq!(
            store.opening_key(&wrong, "a1", &PSK).err(),
            Some(StoreError::Decrypt),
            "the private key is sealed under the master-key-derived account key"
        );
    }

    #[test]
    fn the_inbox_keeps_arrival_order_numbers_envelopes_and_purge_removes_it() {
        let store = Store::open_in_memory().unwrap();
        let keys = AccountKeys::derive(&[1; 32], "a1").unwrap();
        store.ensure_keypair(&keys, "a1").unwrap();
        let public = store.sealing_key("a1", &PSK, 0, u64::MAX).unwrap().unwrap();
        store
            .write(|tx| {
                for i in 0..3u8 {
                    Store::put_locked(tx, &public, "a1", &[i])?;
                }
                Ok(())
            })
            .unwrap();
        let private = store.opening_key(&keys, "a1", &PSK).unwrap().unwrap();
        let rows = store.write(|tx| Store::locked_rows(tx, "a1", 100)).unwrap();
        assert_eq!(
            rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            vec![Some(1), Some(2), Some(3)]
        );
        let opened: Vec<u8> = rows
            .into_iter()
            .map(|(_, n, e, c)| private.open(n.unwrap(), &e, &c).unwrap()[0])
            .collect();
        assert_eq!(opened, vec![0, 1, 2]);
        assert_eq!(store.locked_pending().unwrap(), 3);
        assert_eq!(store.locked_bytes("a1").unwrap(), 3 * (1 + 48));

        // Numbers keep rising past what was applied, even when the database's counter is set back.
        store
            .write(|tx| Store::drop_locked(tx, "a1", i64::MAX, 3))
            .unwrap();
        store
            .conn()
            .execute(
                "UPDATE account_keypairs SET next_seq = 0, applied_seq = 0",
                [],
            )
            .unwrap();
        let public = store.sealing_key("a1", &PSK, 3, u64::MAX).unwrap().unwrap();
        store
            .write(|tx| Store::put_locked(tx, &public, "a1", b"x"))
            .unwrap();
        let rows = store.write(|tx| Store::locked_rows(tx, "a1", 100)).unwrap();
        assert_eq!(rows[0].1, Some(4));

        // The cap refuses what would grow the inbox past it.
        let capped = store.sealing_key("a1", &PSK, 3, 100).unwrap().unwrap();
        assert!(
            store
                .write(|tx| Store::put_locked(tx, &capped, "a1", &[0; 60]))
                .is_err()
        );
        assert!(capped.inbox_full());
        assert_eq!(store.locked_pending().unwrap(), 1);

        store.purge("a1").unwrap();
        assert_eq!(store.locked_pending().unwrap(), 0);
        assert!(
            store
                .sealing_key("a1", &PSK, 0, u64::MAX)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_unchanged_page_is_not_sealed_again_and_a_changed_pass_asks_for_a_reseal() {
        let store = Store::open_in_memory().unwrap();
        let w = |f: &dyn Fn(&Transaction<'_>) -> Result<bool>| store.write(|tx| f(tx)).unwrap();
        let end = |pass| {
            store
                .write(|tx| Store::locked_pass_end(tx, "a1", "q", pass))
                .unwrap()
        };
        // Pass 1: both pages new.
        assert!(
            !w(&|tx| Store::note_locked_page(tx, "a1", "q", 1, b"A")),
            "new"
        );
        assert!(
            !w(&|tx| Store::note_locked_page(tx, "a1", "q", 1, b"B")),
            "new"
        );
        assert_eq!(end(1), LockedPassEnd::Reconcile);
        // Pass 2: the same pages: nothing to seal, nothing to reconcile.
        assert!(
            w(&|tx| Store::note_locked_page(tx, "a1", "q", 2, b"A")),
            "known"
        );
        assert!(
            w(&|tx| Store::note_locked_page(tx, "a1", "q", 2, b"B")),
            "known"
        );
        assert_eq!(end(2), LockedPassEnd::Unchanged);
        // Pass 3: page B is gone (a deletion): the skipped page A would be reconciled away, so reseal.
        assert!(
            w(&|tx| Store::note_locked_page(tx, "a1", "q", 3, b"A")),
            "known"
        );
        assert_eq!(end(3), LockedPassEnd::Reseal);
        // The reseal run of pass 3 seals every page, then reconciles.
        assert!(
            !w(&|tx| Store::note_locked_page(tx, "a1", "q", 3, b"A")),
            "new"
        );
        assert_eq!(end(3), LockedPassEnd::Reconcile);
        // An unlocked write forgets the digests.
        store
            .write(|tx| Store::forget_locked_pages(tx, "a1", Some("q")))
            .unwrap();
        assert!(
            !w(&|tx| Store::note_locked_page(tx, "a1", "q", 4, b"A")),
            "new"
        );
    }
}
