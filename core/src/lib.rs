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
//! [`store`] (the encrypted database), [`background`] (background sync while locked, "what's new"), [`views`]
//! (typed records), [`lock`] (idle lockout), [`context`] (patients
//! and proxies), [`host`], [`secret`], [`error`].

pub mod account;
mod api;
pub mod background;
pub mod context;
pub mod directory;
pub mod discovery;
pub mod error;
pub mod fhir;
pub mod host;
pub mod http;
pub mod jose;
pub mod kinds;
pub mod link;
pub mod lock;
pub mod merge;
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

pub use account::{AccountStatus, ClientAuth, LinkedAccount, Revocation, UnlinkOutcome};
pub use api::{AnyRecord, ExportFormat, MAX_PAGE, Page, RecordQuery};
pub use background::{
    AccountNews, BackgroundOutcome, BackgroundReport, KindCount, NewRecord, SyncBudget,
};
pub use context::{PatientContext, Relation};
pub use discovery::{ScopeSyntax, ServerInfo};
pub use error::{
    AuthorizationFailure, AuthorizationReason, Error, NetworkFailure, NetworkKind, Result,
    ServerFailure, StorageFailure, StorageKind,
};
pub use host::{
    AuthBrowser, BrowserError, Clock, ManualClock, MemorySecureStore, SecureStore,
    SecureStoreError, SystemClock,
};
pub use link::{AuthorizationRequest, PostForm};
pub use lock::{LockConfig, LockEvent, LockReason};
pub use merge::{MergeReason, MergeSuggestion};
pub use scopes::{CategoryConsent, Consent, DataCategory};
pub use secret::Secret;
pub use store::StoreNotice;
pub use sync::{RecordKind, SyncOptions, SyncProgress, SyncReport};

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
            revocation: RevocationPolicy::KeepReadOnlyUntilConfirmed,
        }
    }
}

/// What happens to local data when the provider's authorization server answers `invalid_grant` (access ended).
///
/// That answer does not say *why* access ended: RFC 6749 §5.2 uses `invalid_grant` for an expired grant too
/// (Keycloak's offline session idles out after 30 days; smart-launcher-v2 answers an expired refresh token so), as
/// well as for a child who turned 18, a withdrawn proxy or an app removed on the portal. Deleting the record is the
/// patient's decision, so the default keeps it: the record stays readable, the host gets
/// [`Event::AccessRevoked`], linking again restores the account in place, and only the user's own
/// [`ChartLink::confirm_revoked`] or [`ChartLink::unlink`] deletes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RevocationPolicy {
    /// Delete the record as soon as access ends. Opt-in, for hosts whose users chose it (a shared device, say):
    /// an expired grant then deletes the record too.
    PurgeNow,
    /// Keep it, readable, until the user deletes it ([`ChartLink::confirm_revoked`], [`ChartLink::unlink`]) or
    /// links again (the default).
    #[default]
    KeepReadOnlyUntilConfirmed,
}

/// Something the app should know about.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    SyncProgress(SyncProgress),
    SyncFinished(SyncReport),
    /// A background sync ([`ChartLink::background_sync`]) finished: counts per account and kind only, safe for a
    /// lock-screen notification. The records are readable after unlock ([`ChartLink::whats_new`]).
    BackgroundSyncFinished(BackgroundReport),
    LockWarning {
        remaining_ms: i64,
    },
    Locked(LockReason),
    Unlocked,
    /// The provider's authorization server answered `invalid_grant`: access to this account's record ended
    /// (expired or revoked: the answer does not say which). The record stays readable unless the host opted into
    /// [`RevocationPolicy::PurgeNow`]; linking again restores the account in place.
    AccessRevoked {
        account_id: String,
    },
    /// Access to this account can no longer be renewed (no refresh token, or the provider refused to renew): the
    /// record stays readable; ask the user to link again ([`ChartLink::link`] restores the same account).
    RelinkNeeded {
        account_id: String,
    },
    /// A link was made with less than asked: kinds of data the provider did not grant (wholly or in part; see
    /// [`LinkedAccount::consent`]), or no way to renew access (no refresh token: the user will have to link again
    /// when the access token expires). Tell the user at link time.
    LinkLimited {
        account_id: String,
        not_granted: Vec<CategoryConsent>,
        can_renew: bool,
    },
    /// What background syncs wrote while locked was applied (`batches` sealed pages): the records changed; read
    /// them again. Sent by [`ChartLink::apply_locked_inbox`] (and by `new`/`unlock`, which apply it before they
    /// return) when there was something to apply.
    LockedInboxApplied {
        batches: u64,
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
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
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
    background: background::BackgroundState,
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
    /// Fails closed with an [`Error::Storage`] of kind [`StorageKind::WrongKey`] when the secure store's key does not
    /// open the database (nothing is deleted), [`StorageKind::NewerVersion`] after an app downgrade (the file is
    /// untouched), [`StorageKind::Busy`] when another process holds the database. A damaged database is moved aside
    /// and reported by [`ChartLink::take_store_notices`], as are account entries the secure store cannot return
    /// (they are skipped).
    /// [`ChartLink::reset`] starts over.
    ///
    /// What background syncs wrote while locked is applied before this returns (see
    /// [`ChartLink::apply_locked_inbox`]): on a large inbox that takes a while, so an app on its UI thread uses
    /// [`ChartLink::new_deferred`].
    pub fn new(config: AppConfig, host: Host) -> Result<Self> {
        Self::build(config, host, false, true)
    }

    /// [`ChartLink::new`] without applying the locked inbox: returns at once; call
    /// [`ChartLink::apply_locked_inbox`] on a worker thread ([`Event::LockedInboxApplied`] says when it is done;
    /// reads until then show the record as it was before the inbox).
    pub fn new_deferred(config: AppConfig, host: Host) -> Result<Self> {
        Self::build(config, host, false, false)
    }

    /// Builds the SDK locked: the store is opened but its key is not read, so no biometric or passcode prompt
    /// runs while the app starts (iOS: never from `App.init`); every read answers [`Error::Locked`] until
    /// [`ChartLink::unlock`] reads the key (and checks it against the store's canary) and the accounts.
    pub fn new_locked(config: AppConfig, host: Host) -> Result<Self> {
        Self::build(config, host, true, false)
    }

    fn build(config: AppConfig, host: Host, locked: bool, apply: bool) -> Result<Self> {
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
        )?
        .with_lock_dir(config.data_dir.clone());
        let linker = link::Linker {
            client_id: config.client_id.clone(),
            redirect_uri: config.redirect_uri.clone(),
            wanted: config.wanted.clone(),
            client_auth: config.client_auth.clone(),
            store: host.secure_store.clone(),
            clock: host.clock.clone(),
            http: http.clone(),
            narrowed: Default::default(),
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
            background: background::BackgroundState::default(),
        };
        if locked {
            // Locked means the tokens are out of memory too; `unlock` loads them again.
            sdk.apply(sdk.idle.lock(LockReason::Explicit));
        } else if apply {
            sdk.apply_pending();
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
                return Err(Error::storage(
                    StorageKind::WrongKey,
                    "the store key does not open this database: the store key in secure storage is damaged",
                ));
            }
            None if store.is_keyed().map_err(storage)? => {
                return Err(Error::storage(
                    StorageKind::WrongKey,
                    "the store key does not open this database: the secure store holds no key for it \
                     (a restored or reset secure store)",
                ));
            }
            None => {
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key[..])
                    .map_err(|_| {
                        Error::storage(StorageKind::Other, "no randomness for the store key")
                    })?;
                secure.put(STORE_KEY, &key[..])?;
            }
        }
        store.check_key(&key).map_err(storage)?;
        Ok(key)
    }

    /// Deletes everything ChartLink keeps on this device for `config` and `host`: the database with its `-wal`/`-shm`
    /// files and moved-aside copies, the store key and every account entry and pending link in the secure store.
    /// This is the way out of a store that can never be opened again ([`StorageKind::WrongKey`],
    /// [`StorageKind::NewerVersion`] the user does not want to update for, unreadable account entries); the next
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
            self.purge_account(id)?;
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
                    // Locked means unreadable: the key and the tokens leave memory (zeroized on drop). A
                    // background run in progress keeps the tokens until it ends (it drops them then).
                    *self.master() = None;
                    let holding = self.background.holding();
                    if !*holding {
                        self.accounts.forget_secrets();
                    }
                    drop(holding);
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

    /// Whether the app is in the background and not locked yet: the background grace period is running (the FFI's
    /// watcher ticks while this holds, so the lock fires without another call).
    pub fn grace_running(&self) -> bool {
        self.idle.in_background() && self.idle.locked().is_none()
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
    /// check) and reloads the accounts. Syncs cut off by the lock resume on their next run. What background syncs
    /// wrote while locked is applied before this returns ([`ChartLink::apply_locked_inbox`]); on the UI thread use
    /// [`ChartLink::unlock_deferred`].
    pub fn unlock(&self) -> Result<()> {
        self.unlock_with(true)
    }

    /// [`ChartLink::unlock`] without applying the locked inbox: returns once the key is read; call
    /// [`ChartLink::apply_locked_inbox`] on a worker thread ([`Event::LockedInboxApplied`] says when it is done;
    /// reads until then show the record as it was before the inbox).
    pub fn unlock_deferred(&self) -> Result<()> {
        self.unlock_with(false)
    }

    fn unlock_with(&self, apply: bool) -> Result<()> {
        if self.idle.locked().is_none() {
            return Ok(());
        }
        let key = Self::load_or_create_master_key(self.host.secure_store.as_ref(), &self.store)?;
        let holding = self.background.holding();
        // A background run holds the tokens already (reloading would race its refreshes): keep them.
        if !*holding {
            self.accounts.reload()?;
        }
        for entry in self.accounts.unreadable_entries() {
            self.store
                .notify(StoreNotice::UnreadableAccountEntry { key: entry });
        }
        *self.master() = Some(key);
        let events = self.idle.unlock();
        drop(holding);
        if apply {
            // What syncs wrote while locked becomes normal rows before anything reads.
            self.apply_pending();
        }
        self.apply(events);
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
