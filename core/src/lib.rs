//! # chartlink-core
//!
//! The SDK a patient app embeds to link to the patient's own health record at their provider (SMART on FHIR),
//! keep it on the device, encrypted and readable offline, lock it when idle, and switch between the family members
//! the user may see. Plain Rust: no UniFFI, no platform code. The host app provides its capabilities
//! ([`host::SecureStore`], [`host::AuthBrowser`], [`host::Clock`], an [`EventListener`]) when building a
//! [`ChartLink`].
//!
//! ```no_run
//! # async fn demo(host: chartlink_core::Host) -> chartlink_core::Result<()> {
//! use chartlink_core::*;
//! let sdk = ChartLink::new(AppConfig::new("my-client-id", "myapp://callback"), host)?;
//! let account = sdk.link("https://fhir.example.org/api/FHIR/R4").await?; // the portal, in the system browser
//! sdk.sync(&account.id).await?;
//! for lab in sdk.lab_results()? {
//!     println!("{} {:?} {:?}", lab.name, lab.value, lab.flag);
//! }
//! let trend = sdk.lab_trend("4548-4")?; // HbA1c over time, for a graph
//! # Ok(()) }
//! ```
//!
//! Modules: [`discovery`], [`link`] (the authorization flow), [`account`] (tokens, refresh, device registration,
//! unlink), [`scopes`], [`jose`], [`directory`] (find a provider), [`fhir`] (the FHIR client), [`sync`],
//! [`store`] (the encrypted database), [`views`] (typed records), [`lock`] (idle lockout), [`context`] (patients
//! and proxies), [`host`], [`secret`], [`error`].

pub mod account;
pub mod context;
pub mod directory;
pub mod discovery;
pub mod error;
pub mod fhir;
pub mod host;
pub mod http;
pub mod jose;
pub mod link;
pub mod lock;
pub mod scopes;
pub mod secret;
pub mod store;
pub mod sync;
pub mod token;
pub mod views;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use zeroize::Zeroizing;

pub use account::{AccountStatus, ClientAuth, LinkedAccount, UnlinkOutcome};
pub use context::{PatientContext, Relation};
pub use discovery::{ScopeSyntax, ServerInfo};
pub use error::{Error, Result};
pub use host::{
    AuthBrowser, BrowserError, Clock, FileSecureStore, ManualClock, MemorySecureStore, SecureStore,
    SecureStoreError, SystemClock,
};
pub use link::AuthorizationRequest;
pub use lock::{LockConfig, LockEvent, LockReason};
pub use scopes::DataCategory;
pub use secret::Secret;
pub use store::StoreNotice;
pub use sync::{SyncOptions, SyncProgress, SyncReport};

/// What the app is, as registered with the provider, and how the SDK should behave.
#[derive(Debug, Clone)]
pub struct AppConfig {
    pub client_id: String,
    /// The registered redirect URI (a custom scheme or universal link on phones; loopback on desktop).
    pub redirect_uri: String,
    /// The data the app asks for.
    pub wanted: Vec<DataCategory>,
    pub client_auth: ClientAuth,
    /// The app's name, used when registering a device client.
    pub app_name: String,
    /// Where the encrypted database lives (`None`: in memory, for tests).
    pub data_dir: Option<PathBuf>,
    /// Idle lockout settings (10 minutes on phones; [`LockConfig::desktop`] for 20).
    pub lock: LockConfig,
    /// What to do with a record whose access the provider ended.
    pub revocation: RevocationPolicy,
}

impl AppConfig {
    /// A public native app asking for every kind of data, with the default lock and an in-memory store.
    pub fn new(client_id: &str, redirect_uri: &str) -> Self {
        Self {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            wanted: DataCategory::ALL.to_vec(),
            client_auth: ClientAuth::Public,
            app_name: client_id.to_owned(),
            data_dir: None,
            lock: LockConfig::default(),
            revocation: RevocationPolicy::PurgeNow,
        }
    }
}

/// What happens to local data when the provider ends access (a child turned 18, a proxy was withdrawn, the
/// patient removed the app on the portal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationPolicy {
    /// Delete the record at once.
    PurgeNow,
    /// Keep it read-only until the user confirms ([`ChartLink::confirm_revoked`]).
    KeepReadOnlyUntilConfirmed,
}

/// Something the app should know about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    SyncProgress(SyncProgress),
    SyncFinished(SyncReport),
    LockWarning {
        remaining_ms: i64,
    },
    Locked(LockReason),
    Unlocked,
    /// The provider's authorization server confirmed that access to this account's record ended (its data was
    /// removed or kept read-only by the [`RevocationPolicy`]).
    AccessRevoked {
        account_id: String,
    },
    /// Access to this account can no longer be renewed (no refresh token, or the provider refused to renew): the
    /// record stays readable; ask the user to link again ([`ChartLink::link`] restores the same account).
    RelinkNeeded {
        account_id: String,
    },
}

/// Receives the SDK's events (on the thread that caused them; keep it quick).
pub trait EventListener: Send + Sync {
    fn on_event(&self, event: Event);
}

/// The host's capabilities.
#[derive(Clone)]
pub struct Host {
    pub secure_store: Arc<dyn SecureStore>,
    pub browser: Option<Arc<dyn AuthBrowser>>,
    pub clock: Arc<dyn Clock>,
    pub listener: Option<Arc<dyn EventListener>>,
}

impl Host {
    /// Capabilities with the system clock and no browser or listener.
    pub fn new(secure_store: Arc<dyn SecureStore>) -> Self {
        Self {
            secure_store,
            browser: None,
            clock: Arc::new(SystemClock),
            listener: None,
        }
    }
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("browser", &self.browser.is_some())
            .field("listener", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

/// A patient's health summary: what the portal's home page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthSummary {
    pub patient: Option<views::Demographics>,
    pub allergies: Vec<views::Allergy>,
    /// Active medications.
    pub medications: Vec<views::Medication>,
    pub immunizations: Vec<views::Immunization>,
    /// Active problems.
    pub problems: Vec<views::Problem>,
    /// The newest result of each test, newest first.
    pub latest_results: Vec<views::LabResult>,
}

/// The SDK.
pub struct ChartLink {
    config: AppConfig,
    host: Host,
    http: http::Http,
    linker: link::Linker,
    accounts: account::Accounts,
    store: store::Store,
    /// The store's master key, while unlocked.
    master_key: Mutex<Option<Zeroizing<[u8; 32]>>>,
    idle: lock::IdleLock,
    active: Mutex<Option<String>>,
}

impl std::fmt::Debug for ChartLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChartLink")
            .field("client_id", &self.config.client_id)
            .field("locked", &self.idle.locked())
            .finish_non_exhaustive()
    }
}

/// Where the store's master key is kept in the host's secure store.
pub const STORE_KEY: &str = "chartlink/store-key";

fn storage(e: store::StoreError) -> Error {
    e.into()
}

impl ChartLink {
    /// Builds the SDK: opens the encrypted store and loads the accounts linked earlier. Starts unlocked.
    ///
    /// Fails closed: [`Error::WrongStoreKey`] when the secure store's key does not open the database (nothing is
    /// deleted), [`Error::StoreFromNewerVersion`] after an app downgrade (the file is untouched), [`Error::StoreBusy`]
    /// when another process holds the database. A damaged database is moved aside and reported by
    /// [`ChartLink::take_store_notices`], as are account entries the secure store cannot return (they are skipped).
    /// [`ChartLink::reset`] starts over.
    pub fn new(config: AppConfig, host: Host) -> Result<Self> {
        Self::build(config, host, false)
    }

    /// Builds the SDK locked: the store is opened but its key is not read, so no biometric or passcode prompt
    /// runs while the app starts (iOS: never from `App.init`); every read answers [`Error::Locked`] until
    /// [`ChartLink::unlock`] reads the key (and checks it against the store's canary) and the accounts.
    pub fn new_locked(config: AppConfig, host: Host) -> Result<Self> {
        Self::build(config, host, true)
    }

    fn build(config: AppConfig, host: Host, locked: bool) -> Result<Self> {
        if config.client_id.is_empty() {
            return Err(Error::InvalidInput("client_id is empty".into()));
        }
        url::Url::parse(&config.redirect_uri)
            .map_err(|_| Error::InvalidInput("redirect_uri is not a URL".into()))?;
        let http = http::Http::new()?;
        let accounts = account::Accounts::load(
            host.secure_store.clone(),
            host.clock.clone(),
            http.clone(),
            config.client_auth.clone(),
        )?;
        let linker = link::Linker {
            client_id: config.client_id.clone(),
            redirect_uri: config.redirect_uri.clone(),
            wanted: config.wanted.clone(),
            client_auth: config.client_auth.clone(),
            store: host.secure_store.clone(),
            clock: host.clock.clone(),
            http: http.clone(),
        };
        let store = match &config.data_dir {
            Some(dir) => store::Store::open(&dir.join("chartlink.db")),
            None => store::Store::open_in_memory(),
        }
        .map_err(storage)?;
        let master = if locked {
            None
        } else {
            Some(Self::load_or_create_master_key(
                host.secure_store.as_ref(),
                &store,
            )?)
        };
        for key in accounts.unreadable_entries() {
            store.notify(StoreNotice::UnreadableAccountEntry { key });
        }
        let idle = lock::IdleLock::new(config.lock, host.clock.clone());
        let sdk = Self {
            config,
            host,
            http,
            linker,
            accounts,
            store,
            master_key: Mutex::new(master),
            idle,
            active: Mutex::new(None),
        };
        if locked {
            // Locked means the tokens are out of memory too; `unlock` loads them again.
            sdk.apply(sdk.idle.lock(LockReason::Explicit));
        }
        Ok(sdk)
    }

    /// Reads the store key and checks it against the database's sealed canary; creates it only for a database that
    /// belongs to no key yet (a missing key is never silently replaced: the old rows would be unreadable).
    fn load_or_create_master_key(
        secure: &dyn SecureStore,
        store: &store::Store,
    ) -> Result<Zeroizing<[u8; 32]>> {
        let mut key = Zeroizing::new([0u8; 32]);
        match secure.get(STORE_KEY)? {
            Some(bytes) if bytes.len() == 32 => key.copy_from_slice(&bytes),
            Some(_) => {
                return Err(Error::WrongStoreKey(
                    "the store key in secure storage is damaged".into(),
                ));
            }
            None if store.is_keyed().map_err(storage)? => {
                return Err(Error::WrongStoreKey(
                    "the secure store holds no key for it (a restored or reset secure store)"
                        .into(),
                ));
            }
            None => {
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key[..])
                    .map_err(|_| Error::Storage("no randomness for the store key".into()))?;
                secure.put(STORE_KEY, &key[..])?;
            }
        }
        store.check_key(&key).map_err(storage)?;
        Ok(key)
    }

    /// Deletes everything ChartLink keeps on this device for `config` and `host`: the database with its `-wal`/`-shm`
    /// files and moved-aside copies, the store key and every account entry and pending link in the secure store.
    /// This is the way out of a store that can never be opened again ([`Error::WrongStoreKey`],
    /// [`Error::StoreFromNewerVersion`] the user does not want to update for, unreadable account entries); the next
    /// [`ChartLink::new`] starts empty and the user links again. Drop every `ChartLink` built on these files first.
    /// Nothing is revoked at the provider (the tokens may be unreadable).
    pub fn reset(config: &AppConfig, host: &Host) -> Result<()> {
        if let Some(dir) = &config.data_dir {
            store::Store::delete_files(&dir.join("chartlink.db")).map_err(storage)?;
        }
        let secure = host.secure_store.as_ref();
        secure.delete(STORE_KEY)?;
        for key in secure.keys("chartlink/")? {
            secure.delete(&key)?;
        }
        Ok(())
    }

    /// What happened to the device's own files since the last call: a damaged database moved aside, damaged rows
    /// removed (and fetched again by the next sync), account entries of the secure store that could not be read.
    /// Hosts show these (or attach them to a bug report); none holds health data.
    pub fn take_store_notices(&self) -> Vec<StoreNotice> {
        self.store.take_notices()
    }

    /// Deletes the account entries the secure store could not return at start-up or unlock (see
    /// [`StoreNotice::UnreadableAccountEntry`]) and the records of those accounts. Returns how many were deleted.
    pub fn discard_unreadable_account_entries(&self) -> Result<usize> {
        self.guard()?;
        let ids = self.accounts.discard_unreadable()?;
        for id in &ids {
            self.store.purge(id).map_err(storage)?;
        }
        Ok(ids.len())
    }

    fn emit(&self, event: Event) {
        if let Some(l) = &self.host.listener {
            l.on_event(event);
        }
    }

    fn master(&self) -> MutexGuard<'_, Option<Zeroizing<[u8; 32]>>> {
        self.master_key.lock().unwrap_or_else(|e| e.into_inner())
    }

    // ---- idle lock ----

    fn apply(&self, events: Vec<LockEvent>) {
        for e in events {
            match e {
                LockEvent::Locked(reason) => {
                    // Locked means unreadable: the key and the tokens leave memory (zeroized on drop).
                    *self.master() = None;
                    self.accounts.forget_secrets();
                    self.emit(Event::Locked(reason));
                }
                LockEvent::Warning { remaining_ms } => {
                    self.emit(Event::LockWarning { remaining_ms })
                }
                LockEvent::Unlocked => self.emit(Event::Unlocked),
            }
        }
    }

    /// Evaluates the idle timers (call it about once a second; the bindings run a timer that does).
    pub fn tick(&self) {
        self.apply(self.idle.tick());
    }

    /// The user did something in the app: restarts the idle timer.
    pub fn record_activity(&self) {
        self.apply(self.idle.activity());
    }

    /// The app went to the background.
    pub fn app_backgrounded(&self) {
        self.apply(self.idle.background());
    }

    /// The app came back to the foreground (locks if it stayed away too long).
    pub fn app_foregrounded(&self) {
        self.apply(self.idle.foreground());
    }

    /// Locks now.
    pub fn lock(&self) {
        self.apply(self.idle.lock(LockReason::Explicit));
    }

    /// Why the SDK is locked, if it is.
    pub fn locked(&self) -> Option<LockReason> {
        self.tick();
        self.idle.locked()
    }

    /// Unlocks: reads the store key from the host's secure store (where the host does its biometric or passcode
    /// check) and reloads the accounts. Syncs cut off by the lock resume on their next run.
    pub fn unlock(&self) -> Result<()> {
        if self.idle.locked().is_none() {
            return Ok(());
        }
        let key = Self::load_or_create_master_key(self.host.secure_store.as_ref(), &self.store)?;
        self.accounts.reload()?;
        for entry in self.accounts.unreadable_entries() {
            self.store
                .notify(StoreNotice::UnreadableAccountEntry { key: entry });
        }
        *self.master() = Some(key);
        self.apply(self.idle.unlock());
        Ok(())
    }

    /// Fails with [`Error::Locked`] when locked (after evaluating the timers).
    fn guard(&self) -> Result<()> {
        match self.locked() {
            Some(_) => Err(Error::Locked),
            None => Ok(()),
        }
    }

    /// The store keys of one account (fails when locked).
    pub fn account_keys(&self, account_id: &str) -> Result<store::AccountKeys> {
        let guard = self.master();
        let master = guard.as_ref().ok_or(Error::Locked)?;
        store::AccountKeys::derive(master, account_id).map_err(storage)
    }

    // ---- linking ----

    /// Discovers a provider's SMART endpoints.
    pub async fn discover(&self, fhir_base: &str) -> Result<ServerInfo> {
        Ok(discovery::discover(&self.http, fhir_base).await?)
    }

    /// Starts linking: returns the portal URL to open. Finish with [`ChartLink::complete_link`].
    pub async fn begin_link(&self, fhir_base: &str) -> Result<AuthorizationRequest> {
        self.guard()?;
        self.linker.begin(fhir_base, None).await
    }

    /// Like [`ChartLink::begin_link`] with another redirect URI (a desktop loopback port).
    pub async fn begin_link_with_redirect(
        &self,
        fhir_base: &str,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest> {
        self.guard()?;
        self.linker.begin(fhir_base, Some(redirect_uri)).await
    }

    /// Finishes linking with the URL the portal redirected to (from the app's deep-link handler). The new account
    /// becomes the active patient when none was.
    pub async fn complete_link(&self, redirect_url: &str) -> Result<LinkedAccount> {
        self.guard()?;
        let account = self.linker.complete(redirect_url, &self.accounts).await?;
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if active.is_none() {
            *active = Some(account.id.clone());
        }
        Ok(account)
    }

    /// Links in one call through the host's [`AuthBrowser`].
    pub async fn link(&self, fhir_base: &str) -> Result<LinkedAccount> {
        let browser = self
            .host
            .browser
            .clone()
            .ok_or_else(|| Error::InvalidInput("no AuthBrowser was provided".into()))?;
        let req = self.begin_link(fhir_base).await?;
        match browser
            .authorize(req.url.to_string(), req.redirect_uri.clone())
            .await
        {
            Ok(redirect) => self.complete_link(&redirect).await,
            Err(BrowserError::Cancelled) => {
                self.linker.cancel_all()?;
                Err(Error::Cancelled)
            }
            Err(BrowserError::Failed(m)) => {
                self.linker.cancel_all()?;
                Err(Error::Authorization(format!("the browser failed: {m}")))
            }
        }
    }

    /// Abandons any link in progress.
    pub fn cancel_link(&self) -> Result<()> {
        self.linker.cancel_all()
    }

    /// The linked accounts.
    pub fn accounts(&self) -> Result<Vec<LinkedAccount>> {
        self.guard()?;
        Ok(self.accounts.list())
    }

    /// A valid access token for an account (refreshing it when needed; concurrent callers share one refresh).
    pub async fn access_token(&self, account_id: &str) -> Result<Secret> {
        self.guard()?;
        self.accounts.access_token(account_id).await
    }

    /// Registers this device with the provider so access continues through the jwt-bearer grant.
    pub async fn register_device(&self, account_id: &str) -> Result<String> {
        self.guard()?;
        self.accounts
            .register_device(account_id, &self.config.app_name)
            .await
    }

    /// Revokes the account's tokens at the provider and removes every local trace of it (tokens and records).
    pub async fn unlink(&self, account_id: &str) -> Result<UnlinkOutcome> {
        self.guard()?;
        let outcome = self.accounts.unlink(account_id).await?;
        self.store.purge(account_id).map_err(storage)?;
        self.forget_active(account_id);
        Ok(outcome)
    }

    fn forget_active(&self, account_id: &str) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if active.as_deref() == Some(account_id) {
            *active = None;
        }
    }

    // ---- sync ----

    /// Syncs one account's record into the encrypted store.
    pub async fn sync(&self, account_id: &str) -> Result<SyncReport> {
        self.sync_with(account_id, &SyncOptions::default(), &mut |_| {})
            .await
    }

    /// Syncs with options and a progress callback (progress also goes to the listener). The idle lock stops a sync
    /// cleanly between requests: it answers [`Error::Locked`] and resumes on the next run after unlock.
    pub async fn sync_with(
        &self,
        account_id: &str,
        options: &SyncOptions,
        progress: &mut (dyn FnMut(SyncProgress) + Send),
    ) -> Result<SyncReport> {
        self.guard()?;
        let account = self.accounts.get(account_id)?;
        match account.status {
            AccountStatus::Active => {}
            AccountStatus::Revoked => return Err(Error::AccessRevoked),
            AccountStatus::RelinkNeeded => return Err(Error::RelinkNeeded),
        }
        let keys = self.account_keys(account_id)?;
        let ctx = sync::SyncContext {
            http: &self.http,
            accounts: &self.accounts,
            store: &self.store,
            now_ms: self.host.clock.now_unix_ms(),
        };
        let cancelled = || {
            self.tick();
            self.idle.locked().is_some()
        };
        let mut forward = |p: SyncProgress| {
            self.emit(Event::SyncProgress(p.clone()));
            progress(p);
        };
        let result =
            sync::sync_account(&ctx, &account, &keys, options, &mut forward, &cancelled).await;
        drop(keys);
        match result {
            Ok(report) => {
                self.emit(Event::SyncFinished(report.clone()));
                Ok(report)
            }
            // Only the authorization server's own answer gets here (see `account`): the host's policy decides.
            Err(Error::AccessRevoked) => {
                self.revoked(account_id).await?;
                Err(Error::AccessRevoked)
            }
            Err(Error::RelinkNeeded) => {
                self.emit(Event::RelinkNeeded {
                    account_id: account_id.to_owned(),
                });
                Err(Error::RelinkNeeded)
            }
            Err(e) => Err(e),
        }
    }

    /// Syncs every account, one result each: an account that is revoked or needs linking again answers that
    /// error (it is not skipped silently).
    pub async fn sync_all(&self) -> Result<Vec<(String, Result<SyncReport>)>> {
        let mut out = Vec::new();
        for a in self.accounts()? {
            let r = self.sync(&a.id).await;
            out.push((a.id, r));
        }
        Ok(out)
    }

    async fn revoked(&self, account_id: &str) -> Result<()> {
        self.accounts.mark_revoked(account_id).await?;
        if self.config.revocation == RevocationPolicy::PurgeNow {
            self.store.purge(account_id).map_err(storage)?;
        }
        self.emit(Event::AccessRevoked {
            account_id: account_id.to_owned(),
        });
        Ok(())
    }

    /// After a revocation kept read-only: the user has seen it; remove the record and the account.
    pub async fn confirm_revoked(&self, account_id: &str) -> Result<()> {
        self.guard()?;
        self.store.purge(account_id).map_err(storage)?;
        self.accounts.forget(account_id)?;
        self.forget_active(account_id);
        Ok(())
    }

    // ---- patients ----

    fn today(&self) -> String {
        context::date_from_unix_days(self.host.clock.now_unix_ms().div_euclid(86_400_000))
    }

    /// Every patient the user has linked (themselves, children, adults under proxy), one per person.
    pub fn patients(&self) -> Result<Vec<PatientContext>> {
        self.guard()?;
        let today = self.today();
        let mut contexts = Vec::new();
        for a in self.accounts.list() {
            let keys = self.account_keys(&a.id)?;
            let patient = self
                .store
                .get(&keys, &a.id, "Patient", &a.patient_id)
                .map_err(storage)?;
            contexts.push(context::for_account(&a, patient.as_ref(), &today));
        }
        Ok(context::merge(contexts))
    }

    /// The patient whose record the reads show.
    pub fn active_patient(&self) -> Result<Option<PatientContext>> {
        let id = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let patients = self.patients()?;
        Ok(id.and_then(|id| {
            patients
                .into_iter()
                .find(|p| p.id == id || p.account_ids.contains(&id))
        }))
    }

    /// Makes `context_id` the active patient: every read after it shows only that patient's record.
    pub fn switch_patient(&self, context_id: &str) -> Result<PatientContext> {
        let patients = self.patients()?;
        let ctx = patients
            .into_iter()
            .find(|p| p.id == context_id || p.account_ids.iter().any(|a| a == context_id))
            .ok_or_else(|| Error::InvalidInput("no such patient".into()))?;
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx.id.clone());
        Ok(ctx)
    }

    /// The active patient's accounts, with their keys and provider labels.
    fn active_accounts(&self) -> Result<Vec<(String, store::AccountKeys, String)>> {
        self.guard()?;
        let active = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::InvalidInput("no patient is active".into()))?;
        // The context's accounts: the active account plus others merged with it (same person, other providers).
        let today = self.today();
        let accounts = self.accounts.list();
        let contexts: Vec<PatientContext> = context::merge(
            accounts
                .iter()
                .map(|a| {
                    let patient = self.account_keys(&a.id).ok().and_then(|k| {
                        self.store
                            .get(&k, &a.id, "Patient", &a.patient_id)
                            .ok()
                            .flatten()
                    });
                    context::for_account(a, patient.as_ref(), &today)
                })
                .collect(),
        );
        let ctx = contexts
            .into_iter()
            .find(|c| c.id == active || c.account_ids.contains(&active))
            .ok_or_else(|| Error::InvalidInput("no patient is active".into()))?;
        ctx.account_ids
            .iter()
            .map(|id| {
                let label = accounts
                    .iter()
                    .find(|a| &a.id == id)
                    .map(|a| a.server.fhir_base.to_string())
                    .unwrap_or_default();
                Ok((id.clone(), self.account_keys(id)?, label))
            })
            .collect()
    }

    /// Every record of one kind of the active patient (the one read path of every view): each of the patient's
    /// accounts is read for the kind's resource types, parsed, linked to the related records of the same account,
    /// labelled with its provider, and the whole list sorted by the kind's order. Works for any [`views::View`]:
    /// `sdk.records::<views::Procedure>()`.
    pub fn records<V: views::View>(&self) -> Result<Vec<V>> {
        let mut out = Vec::new();
        for (id, keys, label) in self.active_accounts()? {
            let of_type = |ty: &str| self.store.of_type(&keys, &id, ty).map_err(storage);
            let mut related = views::Related::default();
            for ty in V::RELATED {
                related.insert(ty, of_type(ty)?);
            }
            let mut resources = Vec::new();
            for ty in V::RESOURCE_TYPES {
                resources.extend(of_type(ty)?);
            }
            out.extend(views::collect::<V>(&resources, &related, &label));
        }
        views::sort(&mut out);
        Ok(out)
    }

    /// Every FHIR resource of a type of the active patient, as JSON.
    pub fn resources_of_active(&self, resource_type: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        for (id, keys, _) in self.active_accounts()? {
            out.extend(
                self.store
                    .of_type(&keys, &id, resource_type)
                    .map_err(storage)?,
            );
        }
        Ok(out)
    }

    /// Every stored resource of a type for one account, as FHIR JSON (decrypted).
    pub fn resources(&self, account_id: &str, resource_type: &str) -> Result<Vec<Value>> {
        self.guard()?;
        let keys = self.account_keys(account_id)?;
        self.store
            .of_type(&keys, account_id, resource_type)
            .map_err(storage)
    }

    /// Lab results of the active patient, newest first, each with the report it belongs to.
    pub fn lab_results(&self) -> Result<Vec<views::LabResult>> {
        self.records()
    }

    /// One test over time (by LOINC code), for a graph.
    pub fn lab_trend(&self, code: &str) -> Result<Option<views::LabTrend>> {
        let mut results = Vec::new();
        for (id, keys, label) in self.active_accounts()? {
            // The results' small sealed projections; when one does not decode (records synced by an older
            // release, damage), the account's results of that code are parsed whole.
            let briefs = self
                .store
                .briefs_by_code(&keys, &id, code)
                .map_err(storage)?;
            let full = || {
                self.store
                    .by_code(&keys, &id, "Observation", code)
                    .map_err(storage)
            };
            for mut r in views::results_from_briefs(&briefs, full)? {
                r.source = Some(label.clone());
                results.push(r);
            }
        }
        Ok(views::lab_trend(&results, code))
    }

    /// Vital signs of the active patient, newest first.
    pub fn vital_signs(&self) -> Result<Vec<views::VitalSign>> {
        self.records()
    }

    /// Observations of the active patient that are neither lab results nor vital signs (surveys, exams,
    /// imaging, social history, ...), newest first.
    pub fn observations(&self) -> Result<Vec<views::Observation>> {
        self.records()
    }

    /// Social history of the active patient (smoking status, alcohol use, ...), whichever Observation category
    /// the provider files it under, newest first.
    pub fn social_history(&self) -> Result<Vec<views::Observation>> {
        let all: Vec<views::Observation> = self.records::<views::Observation>()?;
        let mut out: Vec<views::Observation> = all
            .into_iter()
            .filter(views::Observation::is_social_history)
            .collect();
        // Social history filed under laboratory (or uncategorised) shows as a lab result too: include it.
        for lab in self.lab_results()? {
            let o = views::Observation::from(lab);
            if o.is_social_history() {
                out.push(o);
            }
        }
        views::sort(&mut out);
        Ok(out)
    }

    /// Allergies of the active patient.
    pub fn allergies(&self) -> Result<Vec<views::Allergy>> {
        self.records()
    }

    /// Prescriptions of the active patient, newest first.
    pub fn medications(&self) -> Result<Vec<views::Medication>> {
        self.records()
    }

    /// Immunizations of the active patient, newest first.
    pub fn immunizations(&self) -> Result<Vec<views::Immunization>> {
        self.records()
    }

    /// The problem list of the active patient.
    pub fn problems(&self) -> Result<Vec<views::Problem>> {
        self.records()
    }

    /// Visits of the active patient, newest first, with their after-visit summaries.
    pub fn visits(&self) -> Result<Vec<views::Visit>> {
        self.records()
    }

    /// Documents (notes, after-visit summaries) of the active patient, newest first.
    pub fn documents(&self) -> Result<Vec<views::Document>> {
        self.records()
    }

    /// The content of a document of the active patient (downloaded during sync).
    pub fn document_content(&self, document_id: &str) -> Result<Option<views::DocumentContent>> {
        for (id, keys, _) in self.active_accounts()? {
            let Some(doc) = self
                .store
                .get(&keys, &id, "DocumentReference", document_id)
                .map_err(storage)?
            else {
                continue;
            };
            let Some(binary) = views::document(&doc).and_then(|d| d.binary_id) else {
                return Ok(None);
            };
            return Ok(self
                .store
                .binary(&keys, &id, &binary)
                .map_err(storage)?
                .map(|(ct, bytes)| views::document_content_raw(&ct, bytes)));
        }
        Ok(None)
    }

    /// Appointments of the active patient, soonest first.
    pub fn appointments(&self) -> Result<Vec<views::Appointment>> {
        self.records()
    }

    /// The active patient's demographics.
    pub fn demographics(&self) -> Result<Option<views::Demographics>> {
        Ok(self.records()?.into_iter().next())
    }

    /// Procedures of the active patient, newest first.
    pub fn procedures(&self) -> Result<Vec<views::Procedure>> {
        self.records()
    }

    /// Reports (DiagnosticReport) of the active patient, newest first, with their results.
    pub fn diagnostic_reports(&self) -> Result<Vec<views::DiagnosticReport>> {
        self.records()
    }

    /// Care plans of the active patient, newest first.
    pub fn care_plans(&self) -> Result<Vec<views::CarePlan>> {
        self.records()
    }

    /// Goals of the active patient, newest first.
    pub fn goals(&self) -> Result<Vec<views::Goal>> {
        self.records()
    }

    /// Care teams of the active patient.
    pub fn care_teams(&self) -> Result<Vec<views::CareTeam>> {
        self.records()
    }

    /// Devices (implants and others) of the active patient.
    pub fn devices(&self) -> Result<Vec<views::Device>> {
        self.records()
    }

    /// Orders and referrals (ServiceRequest) of the active patient, newest first.
    pub fn service_requests(&self) -> Result<Vec<views::ServiceRequest>> {
        self.records()
    }

    /// Insurance coverages of the active patient.
    pub fn coverages(&self) -> Result<Vec<views::Coverage>> {
        self.records()
    }

    /// Medications dispensed to the active patient, newest first.
    pub fn medication_dispenses(&self) -> Result<Vec<views::MedicationDispense>> {
        self.records()
    }

    /// Medication statements (what the patient takes, as recorded; older servers), newest first.
    pub fn medication_statements(&self) -> Result<Vec<views::MedicationStatement>> {
        self.records()
    }

    /// Questionnaires the active patient answered, newest first.
    pub fn questionnaire_responses(&self) -> Result<Vec<views::QuestionnaireResponse>> {
        self.records()
    }

    /// The newest result of each test of the active patient, newest first (from the store's latest-per-code table).
    pub fn latest_results(&self) -> Result<Vec<views::LabResult>> {
        let mut out = Vec::new();
        for (id, keys, label) in self.active_accounts()? {
            let briefs = self.store.latest_briefs(&keys, &id).map_err(storage)?;
            // A brief that does not decode: this account's lab results, parsed whole, instead.
            let full = || {
                self.store
                    .of_type(&keys, &id, "Observation")
                    .map_err(storage)
            };
            for mut r in views::results_from_briefs(&briefs, full)? {
                r.source = Some(label.clone());
                out.push(r);
            }
        }
        // Across providers (and over a full parse), keep the newest per code.
        let mut out = views::latest_per_code(&out);
        out.sort_by_key(|r| std::cmp::Reverse(r.date.as_ref().map(views::FhirDate::sort_key)));
        Ok(out)
    }

    /// The health summary of the active patient.
    pub fn summary(&self) -> Result<HealthSummary> {
        let active = |s: &Option<String>| s.as_deref().is_none_or(|s| s == "active");
        Ok(HealthSummary {
            patient: self.demographics()?,
            allergies: self.allergies()?,
            medications: self
                .medications()?
                .into_iter()
                .filter(|m| m.status == "active")
                .collect(),
            immunizations: self.immunizations()?,
            problems: self
                .problems()?
                .into_iter()
                .filter(|p| active(&p.clinical_status))
                .collect(),
            latest_results: self.latest_results()?,
        })
    }

    // ---- internals for tests and tools ----

    /// The encrypted store (tests and diagnostics).
    pub fn store(&self) -> &store::Store {
        &self.store
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &http::Http {
        &self.http
    }
}
