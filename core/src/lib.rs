//! # chartlink-core
//!
//! The SDK a patient app embeds to link to the patient's own health record at their provider (SMART on FHIR),
//! keep it on the device, and show it. Plain Rust: no UniFFI, no platform code. The host app provides its
//! capabilities ([`host::SecureStore`], [`host::AuthBrowser`], [`host::Clock`]) when building a [`ChartLink`].
//!
//! Modules: [`discovery`] (SMART configuration), [`link`] (the authorization flow), [`account`] (linked accounts,
//! tokens, refresh, device registration, unlink), [`scopes`] (what to ask for and what was granted), [`jose`]
//! (id_token checks, client assertions), [`directory`] (find a provider), [`host`] (the host's capabilities),
//! [`secret`] (redacted, zeroized secrets), [`error`] (the public error).

pub mod account;
pub mod directory;
pub mod discovery;
pub mod error;
pub mod fhir;
pub mod host;
pub mod http;
pub mod jose;
pub mod link;
pub mod scopes;
pub mod secret;
pub mod store;
pub mod sync;
pub mod views;

use std::sync::Arc;

pub use account::{AccountStatus, ClientAuth, LinkedAccount, UnlinkOutcome};
pub use discovery::{ScopeSyntax, ServerInfo};
pub use error::{Error, Result};
pub use host::{
    AuthBrowser, BrowserError, Clock, FileSecureStore, ManualClock, MemorySecureStore, SecureStore,
    SecureStoreError, SystemClock,
};
pub use link::AuthorizationRequest;
pub use scopes::DataCategory;
pub use secret::Secret;

/// What the app is, as registered with the provider.
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
    pub data_dir: Option<std::path::PathBuf>,
}

/// The host's capabilities.
#[derive(Clone)]
pub struct Host {
    pub secure_store: Arc<dyn SecureStore>,
    pub browser: Option<Arc<dyn AuthBrowser>>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("browser", &self.browser.is_some())
            .finish_non_exhaustive()
    }
}

/// The SDK: link, keep access, sync, read, unlink.
#[derive(Debug)]
pub struct ChartLink {
    config: AppConfig,
    host: Host,
    http: http::Http,
    linker: link::Linker,
    accounts: account::Accounts,
    store: store::Store,
    /// The store's master key, while unlocked.
    master_key: std::sync::Mutex<Option<zeroize::Zeroizing<[u8; 32]>>>,
}

/// Where the store's master key is kept in the host's secure store.
pub const STORE_KEY: &str = "chartlink/store-key";

impl ChartLink {
    /// Builds the SDK and loads the accounts linked earlier from the secure store.
    pub fn new(config: AppConfig, host: Host) -> Result<Self> {
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
        .map_err(|e| Error::Storage(e.to_string()))?;
        let master = Self::load_or_create_master_key(host.secure_store.as_ref())?;
        Ok(Self {
            config,
            host,
            http,
            linker,
            accounts,
            store,
            master_key: std::sync::Mutex::new(Some(master)),
        })
    }

    fn load_or_create_master_key(secure: &dyn SecureStore) -> Result<zeroize::Zeroizing<[u8; 32]>> {
        let mut key = zeroize::Zeroizing::new([0u8; 32]);
        match secure.get(STORE_KEY)? {
            Some(bytes) if bytes.len() == 32 => key.copy_from_slice(&bytes),
            Some(_) => {
                return Err(Error::Storage(
                    "the store key in secure storage is damaged".into(),
                ));
            }
            None => {
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key[..])
                    .map_err(|_| Error::Storage("no randomness for the store key".into()))?;
                secure.put(STORE_KEY, &key[..])?;
            }
        }
        Ok(key)
    }

    /// The store keys of one account (fails when locked). Public for tests and diagnostics.
    pub fn account_keys(&self, account_id: &str) -> Result<store::AccountKeys> {
        self.keys(account_id)
    }

    /// The store keys of one account (fails when locked).
    fn keys(&self, account_id: &str) -> Result<store::AccountKeys> {
        let guard = self.master_key.lock().unwrap_or_else(|e| e.into_inner());
        let master = guard.as_ref().ok_or(Error::Locked)?;
        store::AccountKeys::derive(master, account_id).map_err(|e| Error::Storage(e.to_string()))
    }

    /// Syncs one account's record into the encrypted store.
    pub async fn sync(&self, account_id: &str) -> Result<sync::SyncReport> {
        self.sync_with(account_id, &sync::SyncOptions::default(), &mut |_| {})
            .await
    }

    /// Syncs with options and a progress callback.
    pub async fn sync_with(
        &self,
        account_id: &str,
        options: &sync::SyncOptions,
        progress: &mut (dyn FnMut(sync::SyncProgress) + Send),
    ) -> Result<sync::SyncReport> {
        let account = self.accounts.get(account_id).await?;
        if account.status == AccountStatus::Revoked {
            return Err(Error::AccessRevoked);
        }
        let keys = self.keys(account_id)?;
        let ctx = sync::SyncContext {
            http: &self.http,
            accounts: &self.accounts,
            store: &self.store,
            now_ms: self.host.clock.now_unix_ms(),
        };
        let not_cancelled = || false;
        match sync::sync_account(&ctx, &account, &keys, options, progress, &not_cancelled).await {
            Err(Error::AccessRevoked) => {
                self.accounts.mark_revoked(account_id).await?;
                Err(Error::AccessRevoked)
            }
            other => other,
        }
    }

    /// Every stored resource of a type for an account, as FHIR JSON (decrypted).
    pub fn resources(
        &self,
        account_id: &str,
        resource_type: &str,
    ) -> Result<Vec<serde_json::Value>> {
        let keys = self.keys(account_id)?;
        self.store
            .of_type(&keys, account_id, resource_type)
            .map_err(|e| Error::Storage(e.to_string()))
    }

    /// The encrypted store (tests and the CLI's diagnostics).
    pub fn store(&self) -> &store::Store {
        &self.store
    }

    /// Discovers a provider's SMART endpoints.
    pub async fn discover(&self, fhir_base: &str) -> Result<ServerInfo> {
        Ok(discovery::discover(&self.http, fhir_base).await?)
    }

    /// Starts linking: returns the portal URL to open. Finish with [`ChartLink::complete_link`].
    pub async fn begin_link(&self, fhir_base: &str) -> Result<AuthorizationRequest> {
        self.linker.begin(fhir_base, None).await
    }

    /// Like [`ChartLink::begin_link`] with another redirect URI (a desktop loopback port).
    pub async fn begin_link_with_redirect(
        &self,
        fhir_base: &str,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest> {
        self.linker.begin(fhir_base, Some(redirect_uri)).await
    }

    /// Finishes linking with the URL the portal redirected to (from the app's deep-link handler).
    pub async fn complete_link(&self, redirect_url: &str) -> Result<LinkedAccount> {
        self.linker.complete(redirect_url, &self.accounts).await
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
    pub async fn accounts(&self) -> Vec<LinkedAccount> {
        self.accounts.list().await
    }

    /// A valid access token for an account (refreshing it when needed; concurrent callers share one refresh).
    pub async fn access_token(&self, account_id: &str) -> Result<Secret> {
        self.accounts.access_token(account_id).await
    }

    /// Registers this device with the provider so access continues through the jwt-bearer grant.
    pub async fn register_device(&self, account_id: &str) -> Result<String> {
        self.accounts
            .register_device(account_id, &self.config.app_name)
            .await
    }

    /// Revokes the account's tokens at the provider and removes every local trace of it (tokens and records).
    pub async fn unlink(&self, account_id: &str) -> Result<UnlinkOutcome> {
        let outcome = self.accounts.unlink(account_id).await?;
        self.store
            .purge(account_id)
            .map_err(|e| Error::Storage(e.to_string()))?;
        Ok(outcome)
    }

    /// The account registry (for the sync engine).
    pub fn account_registry(&self) -> &account::Accounts {
        &self.accounts
    }

    /// The shared HTTP client.
    pub fn http(&self) -> &http::Http {
        &self.http
    }
}
