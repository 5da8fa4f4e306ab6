//! Per-account keys derived from the master key: sealing (AES-256-GCM) and keyed hashes (HMAC-SHA256).

use super::*;

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

    pub(super) fn aead(&self) -> Result<LessSafeKey> {
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

    pub(super) fn seal(&self, aad: &str, plaintext: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
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

    pub(super) fn open(
        &self,
        aad: &str,
        nonce: &[u8],
        mut ciphertext: Vec<u8>,
    ) -> Result<Zeroizing<Vec<u8>>> {
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
pub(super) fn aad(account: &str, ty: &str, id_tag: &[u8]) -> String {
    let hex: String = id_tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("{account}\u{1f}{ty}\u{1f}{hex}")
}
