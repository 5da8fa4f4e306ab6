//! Linked accounts and their tokens: what a link to one patient's record at one provider is, where it is kept
//! (only in the host's [`SecureStore`]), and how its access token stays fresh.
//!
//! Refresh rules, from the field: one refresh at a time per account (concurrent callers wait for its result); a
//! rotated refresh token is persisted before anything uses it, and a spent one is never sent again;
//! `invalid_grant` means the access was revoked, a timeout does not; whether we can refresh depends on having a
//! refresh token, not on the scope the server echoes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, ClientId, ExtraTokenFields, RefreshToken, RequestTokenError, StandardRevocableToken,
    StandardTokenResponse, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::discovery::ServerInfo;
use crate::error::{Error, Result};
use crate::host::{Clock, SecureStore};
use crate::http::{Http, HttpError, SMALL_BODY_LIMIT};
use crate::jose::{self, Signer, SoftwareSigner};
use crate::scopes::GrantedScope;
use crate::secret::Secret;

pub(crate) const ACCOUNT_PREFIX: &str = "chartlink/account/";
/// Refresh this long before the access token expires.
const REFRESH_MARGIN_MS: i64 = 60_000;
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// SMART's extra token response fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmartFields {
    #[serde(default)]
    pub patient: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub need_patient_banner: Option<bool>,
    #[serde(default)]
    pub encounter: Option<String>,
}
impl ExtraTokenFields for SmartFields {}

/// A token response with SMART's fields.
pub type SmartTokenResponse = StandardTokenResponse<SmartFields, BasicTokenType>;

/// The state of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccountStatus {
    Active,
    /// The provider ended access; the account must be linked again.
    Revoked,
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
}

/// The secrets of a link.
#[derive(Clone, Serialize, Deserialize)]
pub struct Tokens {
    pub access: Secret,
    pub access_expires_at_ms: Option<i64>,
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
}

/// Every linked account, with their tokens behind one async lock each.
pub struct Accounts {
    store: Arc<dyn SecureStore>,
    clock: Arc<dyn Clock>,
    http: Http,
    client_auth: ClientAuth,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    /// The accounts' metadata (no secrets), readable without waiting for a refresh in progress.
    meta: Mutex<HashMap<String, LinkedAccount>>,
    /// Secure-store keys of account entries skipped at the last load (unreadable or damaged).
    unreadable: Mutex<Vec<String>>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// What unlinking did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlinkOutcome {
    /// Whether the provider confirmed the revocation (false when it was unreachable or has no revocation endpoint;
    /// local traces are removed either way).
    pub revoked_at_provider: bool,
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
            let bytes = match store.get(&k) {
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
                    slots.insert(
                        stored.account.id.clone(),
                        Arc::new(Slot {
                            state: tokio::sync::Mutex::new(stored),
                        }),
                    );
                }
                Err(_) => {
                    tracing::warn!(target: "chartlink", "skipping an unreadable account entry");
                    unreadable.push(k);
                }
            }
        }
        Ok(Self {
            unreadable: Mutex::new(unreadable),
            store,
            clock,
            http,
            client_auth,
            slots: Mutex::new(slots),
            meta: Mutex::new(meta),
        })
    }

    /// Drops every token from memory (the idle lock). The secure store still holds them.
    pub fn forget_secrets(&self) {
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
        Ok(())
    }

    fn unreadable_guard(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        self.unreadable.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The secure-store keys of the account entries skipped at the last load because they could not be read.
    pub fn unreadable_entries(&self) -> Vec<String> {
        self.unreadable_guard().clone()
    }

    /// Deletes the skipped entries from the secure store; returns the ids of the accounts they were for.
    pub fn discard_unreadable(&self) -> Result<Vec<String>> {
        let keys = std::mem::take(&mut *self.unreadable_guard());
        let mut ids = Vec::new();
        for (i, k) in keys.iter().enumerate() {
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
        self.slots()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::InvalidInput("no linked account with this id".into()))
    }

    /// Every linked account, oldest first.
    pub fn list(&self) -> Vec<LinkedAccount> {
        let mut out: Vec<LinkedAccount> = self.meta().values().cloned().collect();
        out.sort_by(|a, b| a.linked_at_ms.cmp(&b.linked_at_ms).then(a.id.cmp(&b.id)));
        out
    }

    /// One account.
    pub fn get(&self, id: &str) -> Result<LinkedAccount> {
        self.meta()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::InvalidInput("no linked account with this id".into()))
    }

    /// Records a new link (persisted before it is returned).
    pub fn insert(&self, account: LinkedAccount, tokens: Tokens) -> Result<LinkedAccount> {
        let stored = Stored {
            account: account.clone(),
            tokens,
        };
        self.persist(&stored)?;
        self.slots().insert(
            account.id.clone(),
            Arc::new(Slot {
                state: tokio::sync::Mutex::new(stored),
            }),
        );
        Ok(account)
    }

    fn persist(&self, stored: &Stored) -> Result<()> {
        let bytes = serde_json::to_vec(stored).map_err(|e| Error::Storage(e.to_string()))?;
        self.store.put(&key(&stored.account.id), &bytes)?;
        self.meta()
            .insert(stored.account.id.clone(), stored.account.clone());
        Ok(())
    }

    /// A valid access token for the account, refreshing first when it expires within a minute. Concurrent callers
    /// share one refresh.
    pub async fn access_token(&self, id: &str) -> Result<Secret> {
        let slot = self.slot(id)?;
        let mut st = slot.state.lock().await;
        if st.account.status == AccountStatus::Revoked {
            return Err(Error::AccessRevoked);
        }
        let now = self.clock.now_unix_ms();
        if st
            .tokens
            .access_expires_at_ms
            .is_none_or(|exp| exp - REFRESH_MARGIN_MS > now)
        {
            return Ok(st.tokens.access.clone());
        }
        self.refresh_locked(&mut st).await
    }

    /// After a 401 with `failed`: refresh unless another caller already has (then return the newer token).
    pub async fn after_unauthorized(&self, id: &str, failed: &Secret) -> Result<Secret> {
        let slot = self.slot(id)?;
        let mut st = slot.state.lock().await;
        if st.account.status == AccountStatus::Revoked {
            return Err(Error::AccessRevoked);
        }
        if st.tokens.access.expose() != failed.expose() {
            return Ok(st.tokens.access.clone());
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

    async fn refresh_locked(&self, st: &mut Stored) -> Result<Secret> {
        let result = if let (Some(device), Some(key)) = (
            st.account.device_client_id.clone(),
            st.tokens.device_key.clone(),
        ) {
            self.jwt_bearer(&st.account, &device, &key).await
        } else if let Some(refresh) = st.tokens.refresh.clone() {
            self.refresh_grant(&st.account, &refresh).await
        } else {
            Err(Error::AccessRevoked)
        };
        match result {
            Ok(resp) => {
                let now = self.clock.now_unix_ms();
                st.tokens.access = Secret::new(resp.access_token().secret().clone());
                st.tokens.access_expires_at_ms =
                    resp.expires_in().map(|d| now + d.as_millis() as i64);
                if let Some(r) = resp.refresh_token() {
                    // Rotation: the new refresh token replaces the spent one on disk before anyone uses it.
                    st.tokens.refresh = Some(Secret::new(r.secret().clone()));
                }
                if let Some(scopes) = resp.scopes() {
                    let raw: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
                    st.account.granted = GrantedScope::parse(&raw.join(" "));
                }
                self.persist(st)?;
                Ok(st.tokens.access.clone())
            }
            Err(Error::AccessRevoked) => {
                st.account.status = AccountStatus::Revoked;
                self.persist(st)?;
                Err(Error::AccessRevoked)
            }
            Err(e) => Err(e),
        }
    }

    fn oauth_client(&self, account: &LinkedAccount) -> Result<OAuthClient> {
        let client = oauth2::Client::new(ClientId::new(account.client_id.clone()))
            .set_token_uri(TokenUrl::from_url(account.server.token_endpoint.clone()))
            .set_auth_type(AuthType::RequestBody);
        Ok(client)
    }

    fn assertion_params(&self, token_url: &Url, client_id: &str) -> Result<Option<Secret>> {
        match &self.client_auth {
            ClientAuth::Public => Ok(None),
            ClientAuth::PrivateKeyJwt(signer) => {
                let now = self.clock.now_unix_ms() / 1000;
                Ok(Some(jose::client_assertion(
                    signer.as_ref(),
                    client_id,
                    token_url.as_str(),
                    now,
                )?))
            }
        }
    }

    async fn refresh_grant(
        &self,
        account: &LinkedAccount,
        refresh: &Secret,
    ) -> Result<SmartTokenResponse> {
        if let Some(assertion) =
            self.assertion_params(&account.server.token_endpoint, &account.client_id)?
        {
            // A confidential client authenticates with its assertion and omits client_id (SMART client req. 72).
            let form = [
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose()),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", assertion.expose()),
            ];
            return token_request(&self.http, &account.server.token_endpoint, &form).await;
        }
        let client = self.oauth_client(account)?;
        let token = RefreshToken::new(refresh.expose().to_owned());
        let http = self.http.clone();
        let call = move |r| {
            let http = http.clone();
            async move { http.oauth2_call(r).await }
        };
        client
            .exchange_refresh_token(&token)
            .request_async(&call)
            .await
            .map_err(token_error)
    }

    async fn jwt_bearer(
        &self,
        account: &LinkedAccount,
        device_client: &str,
        key: &Secret,
    ) -> Result<SmartTokenResponse> {
        let signer = SoftwareSigner::from_pkcs8(key.expose())?;
        let now = self.clock.now_unix_ms() / 1000;
        let assertion = jose::client_assertion(
            &signer,
            device_client,
            account.server.token_endpoint.as_str(),
            now,
        )?;
        token_request(
            &self.http,
            &account.server.token_endpoint,
            &[
                ("grant_type", JWT_BEARER),
                ("assertion", assertion.expose()),
            ],
        )
        .await
    }

    /// Registers this device as a client of the provider (Epic-style dynamic registration with a device key) and
    /// switches the account to the jwt-bearer grant, so access continues without a refresh token.
    pub async fn register_device(&self, id: &str, client_name: &str) -> Result<String> {
        let slot = self.slot(id)?;
        let mut st = slot.state.lock().await;
        let endpoint = st
            .account
            .server
            .registration_endpoint
            .clone()
            .ok_or_else(|| {
                Error::InvalidInput("the provider does not offer dynamic registration".into())
            })?;
        let signer = SoftwareSigner::generate()?;
        let body = serde_json::json!({
            "software_id": st.account.client_id, "client_name": client_name,
            "jwks": {"keys": [signer.public_jwk()]},
            "token_endpoint_auth_method": "private_key_jwt", "grant_types": [JWT_BEARER],
        });
        let access = st.tokens.access.clone();
        let resp = self
            .http
            .post_json(&endpoint, &body, Some(&access), SMALL_BODY_LIMIT)
            .await?;
        if resp.status.as_u16() == 401 {
            return Err(Error::Authorization(
                "the provider refused the access token for registration".into(),
            ));
        }
        if !resp.status.is_success() {
            return Err(Error::Authorization(format!(
                "registration refused (HTTP {})",
                resp.status.as_u16()
            )));
        }
        let client_id = resp.json()?["client_id"]
            .as_str()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| Error::Authorization("registration answer without client_id".into()))?
            .to_owned();
        st.account.device_client_id = Some(client_id.clone());
        st.tokens.device_key = Some(signer.pkcs8_b64().clone());
        self.persist(&st)?;
        Ok(client_id)
    }

    /// Revokes the account's tokens at the provider (RFC 7009), then removes every local trace of it.
    pub async fn unlink(&self, id: &str) -> Result<UnlinkOutcome> {
        let slot = self.slot(id)?;
        let st = slot.state.lock().await;
        let mut revoked = false;
        if let Some(url) = st.account.server.revocation_endpoint.clone() {
            revoked = true;
            let mut tokens = vec![(&st.tokens.access, "access_token")];
            if let Some(r) = &st.tokens.refresh {
                // The refresh token first: revoking it ends the whole grant at most servers.
                tokens.insert(0, (r, "refresh_token"));
            }
            for (token, hint) in tokens {
                if let Err(e) = self.revoke(&st.account, &url, token, hint).await {
                    tracing::warn!(target: "chartlink", "revocation at the provider failed: {e}");
                    revoked = false;
                }
            }
        }
        self.store.delete(&key(id))?;
        drop(st);
        self.slots().remove(id);
        self.meta().remove(id);
        Ok(UnlinkOutcome {
            revoked_at_provider: revoked,
        })
    }

    /// RFC 7009 revocation: a form POST with the token, its type hint and the client's authentication. (The oauth2
    /// crate's revocation refuses plain-HTTP loopback servers, which local development needs; discovery already
    /// holds every endpoint to HTTPS with that one exception.)
    async fn revoke(
        &self,
        account: &LinkedAccount,
        url: &Url,
        token: &Secret,
        hint: &str,
    ) -> Result<()> {
        let assertion =
            self.assertion_params(&account.server.token_endpoint, &account.client_id)?;
        let mut form = vec![
            ("token", token.expose()),
            ("token_type_hint", hint),
            ("client_id", account.client_id.as_str()),
        ];
        if let Some(a) = &assertion {
            form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
            form.push(("client_assertion", a.expose()));
        }
        let resp = self
            .http
            .post_form(url, &form, None, SMALL_BODY_LIMIT)
            .await?;
        match resp.status.as_u16() {
            200 => Ok(()),
            code @ 500..=599 => Err(Error::Network(format!(
                "revocation endpoint answered {code}"
            ))),
            code => Err(Error::Authorization(format!(
                "the provider refused the revocation (HTTP {code})"
            ))),
        }
    }
}

/// The oauth2 client type used for token, refresh and revocation requests.
pub type OAuthClient = oauth2::Client<
    BasicErrorResponse,
    SmartTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

/// A token request sent as a plain form POST (grants and client authentication the oauth2 crate does not shape
/// as SMART needs: jwt-bearer, and private_key_jwt without client_id), parsed into the same token response.
pub(crate) async fn token_request(
    http: &Http,
    token_url: &Url,
    form: &[(&str, &str)],
) -> Result<SmartTokenResponse> {
    let resp = http
        .post_form(token_url, form, None, SMALL_BODY_LIMIT)
        .await?;
    if resp.status.is_success() {
        let parsed: SmartTokenResponse = serde_json::from_slice(&resp.body)
            .map_err(|_| Error::Authorization("malformed token response".into()))?;
        return Ok(parsed);
    }
    let body = resp.json().unwrap_or(Value::Null);
    match body["error"].as_str() {
        Some("invalid_grant") => Err(Error::AccessRevoked),
        _ if resp.status.is_server_error() => Err(Error::Network(format!(
            "token endpoint answered {}",
            resp.status.as_u16()
        ))),
        Some(code) => Err(Error::Authorization(format!(
            "the token endpoint refused the request ({})",
            code.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                .take(40)
                .collect::<String>()
        ))),
        None => Err(Error::Authorization(format!(
            "token endpoint answered {}",
            resp.status.as_u16()
        ))),
    }
}

/// Maps a token endpoint failure: `invalid_grant` is a revocation, transport trouble is transient, anything else
/// is an authorization failure with the OAuth error code (never the description, which a server may fill with
/// anything).
pub fn token_error(e: RequestTokenError<HttpError, BasicErrorResponse>) -> Error {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant => Error::AccessRevoked,
            other => Error::Authorization(format!(
                "the token endpoint refused the request ({})",
                other.as_ref()
            )),
        },
        RequestTokenError::Request(HttpError::Network(m)) => Error::Network(m),
        RequestTokenError::Request(other) => {
            Error::Authorization(format!("token endpoint: {other}"))
        }
        RequestTokenError::Parse(_, _) => Error::Authorization("malformed token response".into()),
        RequestTokenError::Other(m) => {
            if m.contains("500") || m.contains("502") || m.contains("503") || m.contains("504") {
                Error::Network(format!("token endpoint: {m}"))
            } else {
                Error::Authorization(format!("token endpoint: {m}"))
            }
        }
    }
}
