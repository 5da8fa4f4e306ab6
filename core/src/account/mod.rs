//! Linked accounts and their tokens: what a link to one patient's record at one provider is, where it is kept
//! (only in the host's [`SecureStore`]), and how its access token stays fresh.
//!
//! Refresh rules, from the field: one refresh at a time per account (concurrent callers wait for its result); a
//! rotated refresh token is persisted before anything uses it, and a spent one is never sent again; whether we can
//! refresh depends on having a refresh token, not on the scope the server echoes.
//!
//! What a failure means ([`crate::token`] classifies the answers): only the authorization server's own
//! `invalid_grant` to a refresh or a jwt-bearer grant (after one retry with the server's clock when a client
//! assertion was involved) marks an account [`AccountStatus::Revoked`] ("access ended": expired or revoked, the
//! answer does not say which, so the record stays unless the host opted into purging). A definitive refusal of another kind, or a
//! grant that has no way to renew itself once the server refuses its token, marks it
//! [`AccountStatus::RelinkNeeded`]: the record stays readable and linking again restores the same account. Anything
//! else (5xx, 429, HTML, timeouts, `temporarily_unavailable`, a secure-store failure, the lock) changes nothing and
//! is reported as transient. Both refresh paths (before expiry and after a 401) share these rules.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::discovery::ServerInfo;
use crate::error::AuthorizationReason;
use crate::error::{Error, NetworkKind, Result, StorageKind};
use crate::host::{Clock, SecureStore};
use crate::http::{Http, SMALL_BODY_LIMIT};
use crate::jose::{self, Signer, SoftwareSigner};
use crate::scopes::{CategoryConsent, Consent, GrantedScope};
use crate::secret::Secret;
use crate::token::{self, ServerClock, TokenAnswer, TokenError};

mod refresh_lock;
mod renew;
mod unlink;

use renew::{can_renew, refresh_margin_ms};

pub(crate) const ACCOUNT_PREFIX: &str = "chartlink/account/";
/// Refresh at most this long before the access token expires (a tenth of its lifetime when that is shorter, so a
/// token that lives a minute is not renewed before every request).
const REFRESH_MARGIN_MS: i64 = 60_000;
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
pub(crate) const CLIENT_ASSERTION_TYPE: &str =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A client assertion refused while the server's clock differs from ours by more than this is sent again, timed
/// by the server's clock.
const SKEW_RETRY_MS: i64 = 10_000;

/// The state of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    Active,
    /// Access ended: the provider's authorization server said the grant is gone (`invalid_grant`, which covers an
    /// expired grant as well as a revoked one). The account must be linked again; its record stays readable unless
    /// the host opted into [`crate::RevocationPolicy::PurgeNow`].
    Revoked,
    /// Access can no longer be renewed by the SDK (no refresh token and the token is refused, or the provider
    /// refused to renew it): the data stays readable, and linking again restores this account in place.
    RelinkNeeded,
}

/// One link: this app's access to one patient's record at one provider. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedAccount {
    /// ChartLink's id for the link.
    pub id: String,
    pub server: ServerInfo,
    pub client_id: String,
    pub redirect_uri: String,
    /// The FHIR id of the patient whose record this is.
    pub patient_id: String,
    /// Who the user is: `…/Patient/…` (themselves) or `…/RelatedPerson/…` (a proxy), from the verified id_token.
    pub fhir_user: Option<String>,
    /// The OpenID subject of the user (the same person across the family members they link).
    pub user_subject: Option<String>,
    pub granted: GrantedScope,
    pub linked_at_ms: i64,
    pub status: AccountStatus,
    /// A device client from dynamic registration, if any.
    pub device_client_id: Option<String>,
    /// What the provider granted of each kind of data asked for, compared at link time (see
    /// [`crate::scopes::compare_grant`]). Empty for accounts linked before this was recorded.
    #[serde(default)]
    pub consent: Vec<CategoryConsent>,
    /// Whether the link can renew its own access (the provider issued a refresh token, or the device is
    /// registered). When false, access ends when the access token expires and the user has to link again.
    #[serde(default = "renewable_by_default")]
    pub can_renew: bool,
    /// The signed-in user's name (the patient themselves, or the parent or proxy), read from their `fhirUser`
    /// resource at link time (SMART client req. 202). `None` when the server names no `fhirUser` or does not let
    /// the app read it.
    #[serde(default)]
    pub user_name: Option<String>,
    /// The scope the patient granted when linking: what a refresh may narrow but never widen
    /// ([`GrantedScope::within`]). `None` for accounts linked before this was recorded (their grant as it stands is
    /// the ceiling).
    #[serde(default)]
    pub linked_scope: Option<String>,
}

fn renewable_by_default() -> bool {
    true
}

impl LinkedAccount {
    /// The wanted kinds of data the provider did not grant, wholly or in part.
    pub fn not_granted(&self) -> Vec<CategoryConsent> {
        self.consent
            .iter()
            .filter(|c| matches!(c.consent, Consent::NotGranted | Consent::Partial))
            .copied()
            .collect()
    }
}

/// The secrets of a link.
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub access: Secret,
    pub access_expires_at_ms: Option<i64>,
    /// When the access token was issued (local clock), for a refresh margin proportional to its lifetime.
    #[serde(default)]
    pub access_issued_at_ms: Option<i64>,
    pub refresh: Option<Secret>,
    /// The device key (base64url PKCS#8) when a device client was registered.
    pub device_key: Option<Secret>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("access_expires_at_ms", &self.access_expires_at_ms)
            .field("has_refresh", &self.refresh.is_some())
            .field("has_device_key", &self.device_key.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    account: LinkedAccount,
    tokens: Tokens,
    /// Renewed tokens the secure store failed to save: saved again before the next use.
    #[serde(skip)]
    unsaved: bool,
}

/// How this app authenticates at the token endpoint.
#[derive(Clone, Default)]
pub enum ClientAuth {
    /// A native app: sends only its client_id (and uses PKCE).
    #[default]
    Public,
    /// A confidential client with `private_key_jwt`.
    PrivateKeyJwt(Arc<dyn Signer>),
}

impl std::fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientAuth::Public => f.write_str("Public"),
            ClientAuth::PrivateKeyJwt(s) => write!(f, "PrivateKeyJwt({})", s.algorithm()),
        }
    }
}

struct Slot {
    state: tokio::sync::Mutex<Stored>,
    /// After a transient refresh failure while the token is still valid: no new attempt before this (Unix ms), so
    /// an outage of the token endpoint does not cost a refresh attempt per request.
    refresh_not_before_ms: std::sync::atomic::AtomicI64,
}

impl Slot {
    fn new(stored: Stored) -> Arc<Self> {
        Arc::new(Self {
            state: tokio::sync::Mutex::new(stored),
            refresh_not_before_ms: std::sync::atomic::AtomicI64::new(i64::MIN),
        })
    }
}

/// How long to wait before another refresh attempt after a transient failure, while the token is still valid.
const REFRESH_RETRY_MS: i64 = 30_000;

/// Every linked account, with their tokens behind one async lock each.
pub struct Accounts {
    store: Arc<dyn SecureStore>,
    clock: Arc<dyn Clock>,
    http: Http,
    client_auth: ClientAuth,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// The accounts' metadata (no secrets), readable without waiting for a refresh in progress.
    meta: Mutex<HashMap<String, LinkedAccount>>,
    /// Set while the idle lock holds the tokens out of memory: token requests answer [`Error::Locked`].
    locked: AtomicBool,
    /// Each server's clock, from the `Date` of its token answers (client assertions are timed by it).
    server_clock: Arc<ServerClock>,
    /// Secure-store keys of account entries skipped at the last load (unreadable or damaged).
    unreadable: Mutex<Vec<String>>,
    /// Where the refresh lock files live (the data directory): one refresh per grant across every process that
    /// shares it (see [`refresh_lock`]). `None` (in memory): one per grant in this process.
    lock_dir: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// What unlinking did. Local traces are removed whatever the provider answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlinkOutcome {
    /// Whether the provider confirmed that the grant is revoked ([`Revocation::Revoked`]).
    pub revoked_at_provider: bool,
    /// What the provider answered (RFC 7009).
    pub revocation: Revocation,
}

/// The provider's side of an unlink (RFC 7009).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Revocation {
    /// The provider revoked the grant (200 to the refresh token, or to the access token when there is none).
    Revoked,
    /// The link had no refresh token and the provider revokes only refresh tokens (`unsupported_token_type`,
    /// RFC 7009 §2.2.1): nothing is left to revoke, the access token lapses at its expiry.
    AccessTokenLapses,
    /// The provider publishes no revocation endpoint: the grant stays until it expires or the user removes this
    /// app in the provider's portal.
    NoEndpoint,
    /// The revocation endpoint could not be reached or answered 5xx/429: the grant may still be live at the
    /// provider.
    Unreachable,
    /// The provider refused the revocation (an OAuth error such as `invalid_client`).
    Refused,
}

fn key(id: &str) -> String {
    format!("{ACCOUNT_PREFIX}{id}")
}

impl Accounts {
    /// Loads every account from the secure store.
    pub fn load(
        store: Arc<dyn SecureStore>,
        clock: Arc<dyn Clock>,
        http: Http,
        client_auth: ClientAuth,
    ) -> Result<Self> {
        let mut slots = HashMap::new();
        let mut meta = HashMap::new();
        let mut unreadable = Vec::new();
        for k in store.keys(ACCOUNT_PREFIX)? {
            // An entry the host cannot return, or that is damaged, is skipped and reported (see `unreadable`), not
            // fatal: the other accounts still work.
            // A secure store may fail for a moment (a Keychain item while the device unlocks): one more try before
            // the entry counts as unreadable.
            let bytes = match store.get(&k).or_else(|_| store.get(&k)) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => continue,
                Err(_) => {
                    tracing::warn!(target: "chartlink", "skipping an account entry the secure store could not return");
                    unreadable.push(k);
                    continue;
                }
            };
            match serde_json::from_slice::<Stored>(&bytes) {
                Ok(stored) => {
                    meta.insert(stored.account.id.clone(), stored.account.clone());
                    slots.insert(stored.account.id.clone(), Slot::new(stored));
                }
                Err(_) => {
                    tracing::warn!(target: "chartlink", "skipping an unreadable account entry");
                    unreadable.push(k);
                }
            }
        }
        Ok(Self {
            store,
            clock,
            http,
            client_auth,
            slots: Mutex::new(slots),
            meta: Mutex::new(meta),
            locked: AtomicBool::new(false),
            server_clock: Arc::new(ServerClock::default()),
            unreadable: Mutex::new(unreadable),
            lock_dir: None,
        })
    }

    /// Refreshes take a lock file in `dir` (the data directory), so two processes sharing the grant never refresh
    /// it at once (see [`refresh_lock`]).
    pub fn with_lock_dir(mut self, dir: Option<std::path::PathBuf>) -> Self {
        self.lock_dir = dir;
        self
    }

    /// The account's entry as the secure store holds it now (another process may have renewed its tokens).
    fn stored(&self, id: &str) -> Result<Option<Stored>> {
        Ok(self
            .store
            .get(&key(id))?
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok()))
    }

    /// The servers' clocks as seen in their answers.
    pub fn server_clock(&self) -> &Arc<ServerClock> {
        &self.server_clock
    }

    /// The host clock's time (Unix ms).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_unix_ms()
    }

    /// Drops every token from memory (the idle lock). The secure store still holds them.
    pub fn forget_secrets(&self) {
        self.locked.store(true, Ordering::SeqCst);
        self.slots().clear();
        self.meta().clear();
    }

    fn meta(&self) -> std::sync::MutexGuard<'_, HashMap<String, LinkedAccount>> {
        self.meta.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reloads the accounts from the secure store (after unlock).
    pub fn reload(&self) -> Result<()> {
        let fresh = Self::load(
            self.store.clone(),
            self.clock.clone(),
            self.http.clone(),
            self.client_auth.clone(),
        )?;
        let slots = std::mem::take(&mut *fresh.slots());
        let meta = std::mem::take(&mut *fresh.meta());
        *self.slots() = slots;
        *self.meta() = meta;
        *self.unreadable_guard() = fresh.unreadable_entries();
        self.locked.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn unreadable_guard(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.unreadable.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The secure-store keys of the account entries skipped at the last load because they could not be read.
    pub fn unreadable_entries(&self) -> Vec<String> {
        self.unreadable_guard().clone()
    }

    /// Deletes the skipped entries from the secure store; returns the ids of the accounts they were for. Each entry
    /// is read again first: one that the secure store now returns whole (its failure at start-up was transient) is
    /// not deleted but loaded again, and its account is back.
    pub fn discard_unreadable(&self) -> Result<Vec<String>> {
        let keys = std::mem::take(&mut *self.unreadable_guard());
        let mut ids = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            match self.store.get(k) {
                Ok(None) => continue,
                Ok(Some(bytes)) => {
                    if let Ok(stored) = serde_json::from_slice::<Stored>(&bytes)
                        && k.strip_prefix(ACCOUNT_PREFIX) == Some(stored.account.id.as_str())
                    {
                        tracing::info!(target: "chartlink", "an account entry is readable again; kept");
                        self.meta()
                            .insert(stored.account.id.clone(), stored.account.clone());
                        self.slots()
                            .insert(stored.account.id.clone(), Slot::new(stored));
                        continue;
                    }
                }
                Err(_) => {}
            }
            if let Err(e) = self.store.delete(k) {
                self.unreadable_guard().extend_from_slice(&keys[i..]);
                return Err(e.into());
            }
            if let Some(id) = k.strip_prefix(ACCOUNT_PREFIX) {
                ids.push(id.to_owned());
            }
        }
        Ok(ids)
    }

    /// Removes an account locally without contacting the provider (its access already ended).
    pub fn forget(&self, id: &str) -> Result<()> {
        self.store.delete(&key(id))?;
        self.slots().remove(id);
        self.meta().remove(id);
        Ok(())
    }

    fn slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot(&self, id: &str) -> Result<Arc<Slot>> {
        if self.locked.load(Ordering::SeqCst) {
            return Err(Error::Locked);
        }
        self.slots()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::InvalidInput("no linked account with this id".into()))
    }

    /// Every linked account, oldest first.
    pub fn list(&self) -> Vec<LinkedAccount> {
        let mut out: Vec<LinkedAccount> = self.meta().values().cloned().collect();
        out.sort_unstable_by(|a, b| a.linked_at_ms.cmp(&b.linked_at_ms).then(a.id.cmp(&b.id)));
        out
    }

    /// One account.
    pub fn get(&self, id: &str) -> Result<LinkedAccount> {
        self.meta()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::InvalidInput("no linked account with this id".into()))
    }

    /// Records a new link (persisted before it is returned). Linking the same patient at the same provider as the
    /// same user again (after a revocation, or when access could not be renewed) restores that account in place:
    /// same id, so its record is kept and nothing is duplicated.
    pub fn insert(&self, mut account: LinkedAccount, tokens: Tokens) -> Result<LinkedAccount> {
        if let Some(existing) = self.list().into_iter().find(|a| {
            a.server.fhir_base == account.server.fhir_base
                && a.patient_id == account.patient_id
                && a.fhir_user == account.fhir_user
                && a.client_id == account.client_id
        }) {
            account.id = existing.id;
            account.linked_at_ms = existing.linked_at_ms;
        }
        let stored = Stored {
            account: account.clone(),
            tokens,
            unsaved: false,
        };
        self.persist(&stored)?;
        self.slots().insert(account.id.clone(), Slot::new(stored));
        Ok(account)
    }

    fn save_unsaved(&self, st: &mut Stored) -> Result<()> {
        if st.unsaved {
            self.persist(st)?;
            st.unsaved = false;
        }
        Ok(())
    }

    fn persist(&self, stored: &Stored) -> Result<()> {
        let bytes = serde_json::to_vec(stored)
            .map_err(|e| Error::storage(StorageKind::Other, e.to_string()))?;
        self.store.put(&key(&stored.account.id), &bytes)?;
        self.meta()
            .insert(stored.account.id.clone(), stored.account.clone());
        Ok(())
    }

    /// A valid access token for the account, refreshing first when it expires within the refresh margin.
    /// Concurrent callers share one refresh. When the refresh fails transiently and the current token has not
    /// expired yet, the current token is used; a token that cannot be renewed at all is used until the server
    /// refuses it.
    pub async fn access_token(&self, id: &str) -> Result<Secret> {
        let slot = self.slot(id)?;
        let mut st = slot.state.lock().await;
        usable(&st.account)?;
        self.save_unsaved(&mut st)?;
        let now = self.clock.now_unix_ms();
        let due = st
            .tokens
            .access_expires_at_ms
            .is_some_and(|exp| exp.saturating_sub(refresh_margin_ms(&st.tokens)) <= now);
        let still_valid = st.tokens.access_expires_at_ms.is_some_and(|exp| exp > now);
        let backing_off = still_valid && now < slot.refresh_not_before_ms.load(Ordering::SeqCst);
        if !due || !can_renew(&st.tokens) || backing_off {
            return Ok(st.tokens.access.clone());
        }
        match self.refresh_locked(&mut st).await {
            Ok(t) => Ok(t),
            Err(Error::Network(m)) => {
                if still_valid {
                    tracing::info!(target: "chartlink", "refresh failed transiently; the current token is still valid");
                    slot.refresh_not_before_ms
                        .store(now.saturating_add(REFRESH_RETRY_MS), Ordering::SeqCst);
                    Ok(st.tokens.access.clone())
                } else {
                    Err(Error::Network(m))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// After a 401 with `failed`: refresh unless another caller already has (then return the newer token). A grant
    /// with no way to renew itself becomes [`AccountStatus::RelinkNeeded`] here (the server refused its token).
    pub async fn after_unauthorized(&self, id: &str, failed: &Secret) -> Result<Secret> {
        let slot = self.slot(id)?;
        let mut st = slot.state.lock().await;
        usable(&st.account)?;
        self.save_unsaved(&mut st)?;
        if st.tokens.access.expose() != failed.expose() {
            return Ok(st.tokens.access.clone());
        }
        if !can_renew(&st.tokens) {
            st.account.status = AccountStatus::RelinkNeeded;
            self.persist(&st)?;
            return Err(Error::RelinkNeeded);
        }
        self.refresh_locked(&mut st).await
    }

    /// Marks an account revoked (the provider said so) and persists that.
    pub async fn mark_revoked(&self, id: &str) -> Result<()> {
        let slot = self.slot(id)?;
        let mut st = slot.state.lock().await;
        st.account.status = AccountStatus::Revoked;
        self.persist(&st)
    }
}

/// Whether the account may ask for tokens at all.
fn usable(account: &LinkedAccount) -> Result<()> {
    match account.status {
        AccountStatus::Active => Ok(()),
        AccountStatus::Revoked => Err(Error::AccessRevoked),
        AccountStatus::RelinkNeeded => Err(Error::RelinkNeeded),
    }
}
