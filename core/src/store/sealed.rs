//! What a locked sync writes: sealed to the account's public key, so it can be written without the master key and
//! read only after unlock.
//!
//! Each account has an X25519 key pair. The public key is stored in the clear; the private key is stored sealed
//! (AES-256-GCM) under the account's master-key-derived keys, so it exists in memory only while unlocked. A locked
//! sync seals each page it receives (the resources with the query and pass they came from, or a deletion marker)
//! to the public key with HPKE (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305;
//! the `hpke` crate) into the `locked_inbox` table, in arrival order. It can compute no keyed hash (the HMAC key is
//! behind the master key too), so the ids stay inside the envelope; at unlock the inbox is opened and applied in
//! order to the normal rows (see `sync::locked`), which is where an edit replaces its older copy and a full pass
//! removes what the server deleted.
//!
//! Also here: the sealed "what's new" list (which records a sync brought, for the host to show after unlock).

use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};

use super::*;

type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::ChaCha20Poly1305;
type PublicKey = <Kem as hpke::Kem>::PublicKey;
type PrivateKey = <Kem as hpke::Kem>::PrivateKey;
type EncappedKey = <Kem as hpke::Kem>::EncappedKey;

/// HPKE `info`: binds every envelope to this use and version.
const INFO: &[u8] = b"chartlink locked-sync v1";

/// An account's public key: what a locked sync seals to. Holds no secret.
#[derive(Clone)]
pub struct SealingKey {
    account: String,
    pk: PublicKey,
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealingKey").finish_non_exhaustive()
    }
}

/// An account's private key (only while unlocked; opened from its sealed copy with the account keys).
pub struct OpeningKey {
    account: String,
    sk: PrivateKey,
}

impl std::fmt::Debug for OpeningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpeningKey([redacted])")
    }
}

fn envelope_aad(account: &str) -> Vec<u8> {
    format!("{account}\u{1f}locked-inbox").into_bytes()
}

impl SealingKey {
    /// Seals `plaintext` to the account's public key: (encapsulated key, ciphertext).
    pub fn seal(&self, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
        let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
            &OpModeS::Base,
            &self.pk,
            INFO,
            plaintext,
            &envelope_aad(&self.account),
        )
        .map_err(|_| StoreError::Encrypt)?;
        Ok((enc.to_bytes().to_vec(), ct))
    }
}

impl OpeningKey {
    /// Opens what [`SealingKey::seal`] sealed for this account.
    pub fn open(&self, enc: &[u8], ciphertext: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        let enc = EncappedKey::from_bytes(enc).map_err(|_| StoreError::Decrypt)?;
        let plain = hpke::single_shot_open::<Aead, Kdf, Kem>(
            &OpModeR::Base,
            &self.sk,
            &enc,
            INFO,
            ciphertext,
            &envelope_aad(&self.account),
        )
        .map_err(|_| StoreError::Decrypt)?;
        Ok(Zeroizing::new(plain))
    }
}

/// One sealed inbox row: its sequence number, encapsulated key and ciphertext.
pub type InboxRow = (i64, Vec<u8>, Vec<u8>);

impl Store {
    /// Gives the account a key pair when it has none (needs the account keys, so only while unlocked).
    pub fn ensure_keypair(&self, keys: &AccountKeys, account: &str) -> Result<()> {
        let conn = self.conn();
        let has: i64 = conn.query_row(
            "SELECT count(*) FROM account_keypairs WHERE account = ?",
            [account],
            |r| r.get(0),
        )?;
        if has > 0 {
            return Ok(());
        }
        let mut ikm = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut ikm[..])
            .map_err(|_| StoreError::Encrypt)?;
        let (sk, pk) = Kem::derive_keypair(&ikm[..]);
        let sk_bytes = Zeroizing::new(sk.to_bytes().to_vec());
        let (nonce, sealed) = keys.seal(&aad(account, "keypair", b""), &sk_bytes)?;
        conn.execute(
            "INSERT INTO account_keypairs (account, public_key, sk_nonce, sk_sealed) VALUES (?, ?, ?, ?)",
            params![account, pk.to_bytes().to_vec(), nonce, sealed],
        )?;
        Ok(())
    }

    /// The account's public key (readable while locked); `None` before the account was ever unlocked here.
    pub fn sealing_key(&self, account: &str) -> Result<Option<SealingKey>> {
        let pk: Option<Vec<u8>> = self
            .conn()
            .query_row(
                "SELECT public_key FROM account_keypairs WHERE account = ?",
                [account],
                |r| r.get(0),
            )
            .optional()?;
        pk.map(|pk| {
            Ok(SealingKey {
                account: account.to_owned(),
                pk: PublicKey::from_bytes(&pk).map_err(|_| StoreError::Decrypt)?,
            })
        })
        .transpose()
    }

    /// The account's private key, opened with its keys (`None` when it has no key pair).
    pub fn opening_key(&self, keys: &AccountKeys, account: &str) -> Result<Option<OpeningKey>> {
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
        }))
    }

    /// Appends one sealed batch to the account's locked inbox (in the transaction of the page it came with).
    pub fn put_locked(
        tx: &Transaction<'_>,
        key: &SealingKey,
        account: &str,
        plaintext: &[u8],
    ) -> Result<()> {
        let (enc, sealed) = key.seal(plaintext)?;
        tx.execute(
            "INSERT INTO locked_inbox (account, enc, sealed) VALUES (?, ?, ?)",
            params![account, enc, sealed],
        )?;
        Ok(())
    }

    /// The account's locked inbox, oldest first (inside the transaction that applies and removes it).
    pub fn locked_rows(tx: &Transaction<'_>, account: &str) -> Result<Vec<InboxRow>> {
        let mut stmt = tx.prepare_cached(
            "SELECT seq, enc, sealed FROM locked_inbox WHERE account = ? ORDER BY seq",
        )?;
        Ok(stmt
            .query_map([account], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<std::result::Result<_, _>>()?)
    }

    /// Removes inbox rows up to `seq` (applied, or damaged).
    pub fn drop_locked(tx: &Transaction<'_>, account: &str, up_to_seq: i64) -> Result<()> {
        tx.execute(
            "DELETE FROM locked_inbox WHERE account = ? AND seq <= ?",
            params![account, up_to_seq],
        )?;
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

    #[test]
    fn sealed_to_the_public_key_opens_only_with_the_accounts_private_key() {
        let store = Store::open_in_memory().unwrap();
        let keys = AccountKeys::derive(&[1; 32], "a1").unwrap();
        assert!(
            store.sealing_key("a1").unwrap().is_none(),
            "no key pair before unlock"
        );
        store.ensure_keypair(&keys, "a1").unwrap();
        store.ensure_keypair(&keys, "a1").unwrap();
        let public = store.sealing_key("a1").unwrap().unwrap();
        let (enc, ct) = public.seal(b"a new result").unwrap();
        assert!(!ct.windows(6).any(|w| w == b"result"));
        let private = store.opening_key(&keys, "a1").unwrap().unwrap();
        assert_eq!(&private.open(&enc, &ct).unwrap()[..], b"a new result");

        // Another account's key pair, a tampered envelope, or the wrong master key: nothing opens.
        let other = AccountKeys::derive(&[1; 32], "a2").unwrap();
        store.ensure_keypair(&other, "a2").unwrap();
        let other_private = store.opening_key(&other, "a2").unwrap().unwrap();
        assert_eq!(
            other_private.open(&enc, &ct).err(),
            Some(StoreError::Decrypt)
        );
        let mut bad = ct.clone();
        bad[0] ^= 1;
        assert_eq!(private.open(&enc, &bad).err(), Some(StoreError::Decrypt));
        let wrong = AccountKeys::derive(&[2; 32], "a1").unwrap();
        assert_eq!(
            store.opening_key(&wrong, "a1").err(),
            Some(StoreError::Decrypt),
            "the private key is sealed under the master-key-derived account key"
        );
    }

    #[test]
    fn the_inbox_keeps_arrival_order_and_purge_removes_it() {
        let store = Store::open_in_memory().unwrap();
        let keys = AccountKeys::derive(&[1; 32], "a1").unwrap();
        store.ensure_keypair(&keys, "a1").unwrap();
        let public = store.sealing_key("a1").unwrap().unwrap();
        store
            .write(|tx| {
                for i in 0..3u8 {
                    Store::put_locked(tx, &public, "a1", &[i])?;
                }
                Ok(())
            })
            .unwrap();
        let private = store.opening_key(&keys, "a1").unwrap().unwrap();
        let opened: Vec<u8> = store
            .write(|tx| Store::locked_rows(tx, "a1"))
            .unwrap()
            .into_iter()
            .map(|(_, e, c)| private.open(&e, &c).unwrap()[0])
            .collect();
        assert_eq!(opened, vec![0, 1, 2]);
        assert_eq!(store.locked_pending().unwrap(), 3);
        store.purge("a1").unwrap();
        assert_eq!(store.locked_pending().unwrap(), 0);
        assert!(store.sealing_key("a1").unwrap().is_none());
    }
}
