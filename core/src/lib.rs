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
pub mod host;
pub mod http;
pub mod jose;
pub mod link;
pub mod scopes;
pub mod secret;

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

/// The SDK: link, keep access, unlink.
#[derive(Debug)]
pub struct ChartLink {
    config: AppConfig,
    host: Host,
    http: http::Http,
    linker: link::Linker,
    accounts: account::Accounts,
}

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
        Ok(Self {
            config,
            host,
            http,
            linker,
            accounts,
        })
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

    /// Revokes the account's tokens at the provider and removes every local trace of it.
    pub async fn unlink(&self, account_id: &str) -> Result<UnlinkOutcome> {
        self.accounts.unlink(account_id).await
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
