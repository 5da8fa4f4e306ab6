//! The SMART App Launch 2.2 standalone patient launch, as an explicit state machine:
//!
//! 1. [`Linker::begin`]: discover the server, make `state` (256 random bits) and a PKCE S256 pair, persist the
//!    pending flow in the secure store (the app may be killed while the browser is open; the flow expires after 10
//!    minutes) and return the authorization URL.
//! 2. The host shows it — through its [`crate::host::AuthBrowser`], or its own browser and deep-link handler.
//! 3. [`Linker::complete`] with the redirect URL: `state` must match a pending flow (used once), `iss` the server;
//!    (and required when the server advertises `authorization_response_iss_parameter_supported`, RFC 9207 §2.4);
//!    OAuth errors become typed errors; the code is exchanged (PKCE verifier, client_id; the answer read by
//!    [`crate::token`], so only a Bearer token is accepted); the id_token is verified against the server's JWKS;
//!    the granted scope, `patient` and `fhirUser` are recorded. The oauth2 crate builds the authorization URL and
//!    the PKCE pair.

use std::sync::Arc;

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
};
use oauth2::{
    AuthType, AuthUrl, ClientId, CsrfToken, PkceCodeChallenge, RedirectUrl, Scope,
    StandardRevocableToken, TokenUrl,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::account::{
    AccountStatus, Accounts, CLIENT_ASSERTION_TYPE, ClientAuth, LinkedAccount, Tokens,
};
use crate::discovery::{self, ServerInfo};
use crate::error::AuthorizationReason;
use crate::error::{Error, Result, StorageKind};
use crate::host::{Clock, SecureStore};
use crate::http::{Http, SMALL_BODY_LIMIT};
use crate::jose;
use crate::scopes::{DataCategory, GrantedScope, ScopeStyle, compare_grant, request_scope_styled};
use crate::secret::Secret;
use crate::token::{self, TokenAnswer, TokenError};

const PENDING_PREFIX: &str = "chartlink/pending/";
/// A pending authorization expires after this long.
pub const FLOW_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// Leeway for the id_token's `exp` (clocks differ).
const CLOCK_SKEW_SECS: i64 = 120;

/// An authorization to show in the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    /// Open this in the system browser.
    pub url: Url,
    /// The redirect the browser will end at (for `ASWebAuthenticationSession`'s callback scheme).
    pub redirect_uri: String,
    pub expires_at_ms: i64,
    /// The same request as a form POST, when the server offers `authorize-post` (SMART client reqs. 50, 52, 133:
    /// POST avoids URL length limits). A host that can show a page posts it with [`PostForm::auto_submit_html`];
    /// `url` (GET) works too.
    pub post: Option<PostForm>,
}

/// An authorization request as `application/x-www-form-urlencoded` fields for a POST to the authorization endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostForm {
    /// The authorization endpoint (no query).
    pub action: Url,
    /// The request parameters, in order (`response_type`, `client_id`, `state`, `code_challenge`, `scope`, …; no
    /// secret: the PKCE verifier stays in the secure store).
    pub fields: Vec<(String, String)>,
}

impl PostForm {
    fn from_get(url: &Url) -> Self {
        let mut action = url.clone();
        let fields = url.query_pairs().into_owned().collect();
        action.set_query(None);
        Self { action, fields }
    }

    /// A page that posts the form as soon as it loads (a button without JavaScript), for a browser to open.
    pub fn auto_submit_html(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;")
        };
        let mut inputs = String::new();
        for (k, v) in &self.fields {
            inputs.push_str(&format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                esc(k),
                esc(v)
            ));
        }
        format!(
            "<!doctype html><meta charset=\"utf-8\"><title>Continue to your provider</title>\
             <body onload=\"document.forms[0].submit()\"><form method=\"post\" action=\"{}\" data-autosubmit>{inputs}\
             <noscript><button type=\"submit\">Continue to your provider</button></noscript></form></body>",
            esc(self.action.as_str())
        )
    }
}

#[derive(Serialize, Deserialize)]
struct PendingFlow {
    verifier: Secret,
    server: ServerInfo,
    redirect_uri: String,
    scope: String,
    expires_at_ms: i64,
    /// This flow is the one retry after an `invalid_scope` (there is no second).
    #[serde(default)]
    retry: bool,
}

/// Why [`Linker::complete_detailed`] failed, and whether the server's `invalid_scope` left a narrower request to retry
/// once (the next [`Linker::begin`] for that server asks it).
#[derive(Debug)]
pub(crate) struct LinkFailure {
    pub error: Error,
    pub retry_narrowed: bool,
}

impl From<Error> for LinkFailure {
    fn from(error: Error) -> Self {
        Self {
            error,
            retry_narrowed: false,
        }
    }
}

/// Starts and finishes links.
pub struct Linker {
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) wanted: Vec<DataCategory>,
    pub(crate) client_auth: ClientAuth,
    pub(crate) store: Arc<dyn SecureStore>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) http: Http,
    /// The narrower scope to ask a server for once, after it refused a link's scope with `invalid_scope` (keyed by
    /// FHIR base; see [`crate::scopes::retry_after_invalid_scope`]). Taken by the next [`Linker::begin`].
    pub(crate) narrowed: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl std::fmt::Debug for Linker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Linker")
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

fn pending_key(state: &str) -> String {
    let digest = Sha256::digest(state.as_bytes());
    format!(
        "{PENDING_PREFIX}{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

type AuthClient = oauth2::Client<
    BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

impl Linker {
    fn client(&self, server: &ServerInfo, redirect_uri: &str) -> Result<AuthClient> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|_| Error::InvalidInput("the redirect URI is not a URL".into()))?;
        Ok(oauth2::Client::new(ClientId::new(self.client_id.clone()))
            .set_auth_uri(AuthUrl::from_url(server.authorization_endpoint.clone()))
            .set_token_uri(TokenUrl::from_url(server.token_endpoint.clone()))
            .set_redirect_uri(redirect)
            .set_auth_type(AuthType::RequestBody))
    }

    /// Discovers `fhir_base` and prepares the authorization request. `redirect_uri` overrides the configured one
    /// (a desktop app's loopback port).
    pub async fn begin(
        &self,
        fhir_base: &str,
        redirect_uri: Option<&str>,
    ) -> Result<AuthorizationRequest> {
        let server = discovery::discover(&self.http, fhir_base).await?;
        self.begin_with(server, redirect_uri)
    }

    /// Prepares the authorization request for an already discovered server.
    pub fn begin_with(
        &self,
        server: ServerInfo,
        redirect_uri: Option<&str>,
    ) -> Result<AuthorizationRequest> {
        let redirect_uri = redirect_uri.unwrap_or(&self.redirect_uri).to_owned();
        let narrowed = self
            .narrowed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(server.fhir_base.as_str());
        let retry = narrowed.is_some();
        let scope = narrowed.unwrap_or_else(|| {
            crate::scopes::only_listed(
                &request_scope_styled(&self.wanted, ScopeStyle::for_server(&server)),
                &server,
            )
        });
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let client = self.client(&server, &redirect_uri)?;
        let mut req = client
            .authorize_url(|| CsrfToken::new_random_len(32))
            .set_pkce_challenge(challenge)
            .add_extra_param("aud", server.fhir_base.as_str());
        // OpenID Connect Core §11: an OpenID provider ignores offline_access unless the request carries
        // prompt=consent (and then asks the user), so a link would get no refresh token.
        if scope.split(' ').any(|s| s == "offline_access") && server.does_openid_connect() {
            req = req.add_extra_param("prompt", "consent");
        }
        for s in scope.split(' ') {
            req = req.add_scope(Scope::new(s.to_owned()));
        }
        let (url, state) = req.url();
        let post = server
            .has("authorize-post")
            .then(|| PostForm::from_get(&url));
        let expires_at_ms = self.clock.now_unix_ms() + FLOW_LIFETIME_MS;
        let pending = PendingFlow {
            verifier: Secret::new(verifier.secret().clone()),
            server,
            redirect_uri: redirect_uri.clone(),
            scope,
            expires_at_ms,
            retry,
        };
        let bytes = serde_json::to_vec(&pending)
            .map_err(|e| Error::storage(StorageKind::Other, e.to_string()))?;
        self.store.put(&pending_key(state.secret()), &bytes)?;
        self.sweep_expired();
        Ok(AuthorizationRequest {
            url,
            redirect_uri,
            expires_at_ms,
            post,
        })
    }

    /// Forgets pending flows that expired (their verifiers are secrets too).
    fn sweep_expired(&self) {
        let now = self.clock.now_unix_ms();
        for k in self.store.keys(PENDING_PREFIX).unwrap_or_default() {
            let expired = match self.store.get(&k) {
                Ok(Some(b)) => serde_json::from_slice::<PendingFlow>(&b)
                    .map(|p| p.expires_at_ms < now)
                    .unwrap_or(true),
                _ => false,
            };
            if expired {
                let _ = self.store.delete(&k);
            }
        }
    }

    /// Abandons every pending flow (the user closed the browser).
    pub fn cancel_all(&self) -> Result<()> {
        for k in self.store.keys(PENDING_PREFIX)? {
            self.store.delete(&k)?;
        }
        Ok(())
    }

    /// Finishes a link from the URL the portal redirected to.
    pub async fn complete(&self, redirect_url: &str, accounts: &Accounts) -> Result<LinkedAccount> {
        self.complete_detailed(redirect_url, accounts)
            .await
            .map_err(|f| f.error)
    }

    /// [`Linker::complete`], saying whether an `invalid_scope` refusal left a narrower request to retry once.
    pub(crate) async fn complete_detailed(
        &self,
        redirect_url: &str,
        accounts: &Accounts,
    ) -> std::result::Result<LinkedAccount, LinkFailure> {
        let url = Url::parse(redirect_url)
            .map_err(|_| Error::InvalidInput("the redirect is not a URL".into()))?;
        let params: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let Some(state) = get("state") else {
            return Err(Error::authorization(
                AuthorizationReason::Mismatch,
                "the redirect carries no state; it was not sent by the portal for this app".into(),
            )
            .into());
        };
        let key = pending_key(state);
        let Some(bytes) = self.store.get(&key).map_err(Error::from)? else {
            let any_pending = !self
                .store
                .keys(PENDING_PREFIX)
                .map_err(Error::from)?
                .is_empty();
            let reason = if any_pending {
                AuthorizationReason::Mismatch
            } else {
                AuthorizationReason::NoLinkInProgress
            };
            return Err(Error::authorization(
                reason,
                if any_pending {
                    "state mismatch: this redirect does not belong to the link in progress".into()
                } else {
                    "no link in progress (the redirect was already used, or never started here)"
                        .into()
                },
            )
            .into());
        };
        // One use: whatever happens next, this flow is over.
        self.store.delete(&key).map_err(Error::from)?;
        let pending: PendingFlow = serde_json::from_slice(&bytes)
            .map_err(|_| Error::storage(StorageKind::Damaged, "a pending link is damaged"))?;
        if pending.expires_at_ms < self.clock.now_unix_ms() {
            return Err(Error::authorization(
                AuthorizationReason::Expired,
                "the link took longer than 10 minutes and expired; please start again".into(),
            )
            .into());
        }
        if !same_endpoint(&url, &pending.redirect_uri) {
            return Err(Error::authorization(
                AuthorizationReason::Mismatch,
                "the redirect arrived at an unexpected address".into(),
            )
            .into());
        }
        // RFC 9207: `iss` names the authorization server that answered. When the SMART configuration names the
        // issuer, it must be that (or the FHIR base, which is what servers without a separate issuer send). When
        // it names none (allowed without `sso-openid-connect`) there is nothing to compare with here: `iss` is
        // kept and checked against the id_token's issuer, which is bound to the token endpoint (never fetched
        // from the redirect: SMART client req. 6).
        let redirect_iss = get("iss").map(str::to_owned);
        match (&redirect_iss, &pending.server.issuer) {
            (Some(iss), Some(issuer))
                if !same_issuer(iss, issuer)
                    && !same_issuer(iss, pending.server.fhir_base.as_str()) =>
            {
                return Err(Error::authorization(
                    AuthorizationReason::Mismatch,
                    "the redirect came from another server (iss mismatch)".into(),
                )
                .into());
            }
            // RFC 9207 §2.4: a server that says it sends `iss` always does; a redirect without it is refused (it may
            // come from another server the user was sent to: a mix-up attack).
            (None, _) if pending.server.iss_parameter_supported => {
                return Err(Error::authorization(
                    AuthorizationReason::Mismatch,
                    "the redirect carries no iss, which this server always sends (RFC 9207)".into(),
                )
                .into());
            }
            _ => {}
        }
        if let Some(error) = get("error") {
            let retry_narrowed = error == "invalid_scope" && self.narrow_for_retry(&pending);
            let description = get("error_description").and_then(token::sanitize_description);
            let error = match (error, description) {
                ("access_denied", _) => Error::authorization(
                    AuthorizationReason::Denied,
                    "access_denied: the patient did not allow access".into(),
                ),
                (other, Some(d)) => Error::authorization(
                    AuthorizationReason::Refused,
                    format!("the portal refused the request ({}: {d})", sanitize(other)),
                ),
                (other, None) => Error::authorization(
                    AuthorizationReason::Refused,
                    format!("the portal refused the request ({})", sanitize(other)),
                ),
            };
            return Err(LinkFailure {
                error,
                retry_narrowed,
            });
        }
        let code = get("code").ok_or_else(|| {
            Error::authorization(
                AuthorizationReason::InvalidAnswer,
                "the redirect carries no code".into(),
            )
        })?;
        let resp = match self.exchange(&pending, code, accounts).await {
            Ok(resp) => resp,
            Err((error, invalid_scope)) => {
                return Err(LinkFailure {
                    error,
                    retry_narrowed: invalid_scope && self.narrow_for_retry(&pending),
                });
            }
        };
        Ok(self
            .account_from(pending, resp, redirect_iss, accounts)
            .await?)
    }

    /// After `invalid_scope`: remembers the narrower request for the next [`Linker::begin`] at this server, unless
    /// this flow was already the retry or there is nothing narrower to ask (then the refusal is the answer).
    fn narrow_for_retry(&self, pending: &PendingFlow) -> bool {
        if pending.retry {
            return false;
        }
        let Some(scope) = crate::scopes::retry_after_invalid_scope(&pending.scope, &pending.server)
        else {
            return false;
        };
        tracing::info!(target: "chartlink", "the server refused the link's scope (invalid_scope); one retry with a narrower request");
        self.narrowed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pending.server.fhir_base.as_str().to_owned(), scope);
        true
    }

    async fn exchange(
        &self,
        pending: &PendingFlow,
        code: &str,
        accounts: &Accounts,
    ) -> std::result::Result<TokenAnswer, (Error, bool)> {
        let url = &pending.server.token_endpoint;
        let base = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", pending.redirect_uri.as_str()),
            ("code_verifier", pending.verifier.expose()),
        ];
        let answer = if let ClientAuth::PrivateKeyJwt(signer) = &self.client_auth {
            // A confidential client authenticates with its assertion and omits client_id (SMART client req. 72);
            // the assertion is timed by the server's clock (sent again once if the first answer shows the device's
            // clock is off).
            let build = |now: i64| -> Result<Vec<(String, Secret)>> {
                let assertion =
                    jose::client_assertion(signer.as_ref(), &self.client_id, url.as_str(), now)?;
                let mut form: Vec<(String, Secret)> = base
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), Secret::new((*v).to_owned())))
                    .collect();
                form.push((
                    "client_assertion_type".into(),
                    Secret::new(CLIENT_ASSERTION_TYPE.to_owned()),
                ));
                form.push(("client_assertion".into(), assertion));
                Ok(form)
            };
            accounts
                .assertion_call(url, build)
                .await
                .map_err(|e| (e, false))?
        } else {
            let mut form = base.to_vec();
            form.push(("client_id", self.client_id.as_str()));
            token::request(&self.http, url, &form).await
        };
        let invalid_scope =
            matches!(&answer, Err(TokenError::Refused { code, .. }) if code == "invalid_scope");
        answer.map_err(|e| {
            let e = match e {
                // At the code exchange invalid_grant means a bad or replayed code, not a revoked link.
                TokenError::GrantGone { description, .. } => Error::authorization(
                    AuthorizationReason::Refused,
                    match description {
                        Some(d) => {
                            format!(
                                "the portal refused the authorization code (invalid_grant: {d})"
                            )
                        }
                        None => "the portal refused the authorization code (invalid_grant)".into(),
                    },
                ),
                TokenError::Refused {
                    code, description, ..
                } => Error::authorization(
                    AuthorizationReason::Refused,
                    match description {
                        Some(d) => format!("the portal refused the request ({code}: {d})"),
                        None => format!("the portal refused the request ({code})"),
                    },
                ),
                TokenError::UnsupportedTokenType(t) => Error::authorization(
                    AuthorizationReason::InvalidAnswer,
                    format!(
                        "the provider issued a {t} token, which this app cannot use (only Bearer)"
                    ),
                ),
                TokenError::Malformed(m) => {
                    Error::authorization(AuthorizationReason::InvalidAnswer, m)
                }
                TokenError::Unavailable(f) => Error::Network(f),
            };
            (e, invalid_scope)
        })
    }

    async fn account_from(
        &self,
        pending: PendingFlow,
        resp: TokenAnswer,
        redirect_iss: Option<String>,
        accounts: &Accounts,
    ) -> Result<LinkedAccount> {
        let now = self.clock.now_unix_ms();
        accounts
            .server_clock()
            .observe(&pending.server.token_endpoint, resp.server_date_ms, now);
        let patient_id = resp.patient.clone().ok_or_else(|| {
            Error::authorization(
                AuthorizationReason::InvalidAnswer,
                "the token response names no patient".into(),
            )
        })?;
        // No scope in the answer means the requested scope was granted (RFC 6749 §5.1).
        let granted = resp.scope.clone().unwrap_or_else(|| pending.scope.clone());
        let (fhir_user, subject) = match &resp.id_token {
            Some(id_token) => {
                let claims = self
                    .verify_id_token(&pending.server, id_token, redirect_iss.as_deref())
                    .await?;
                (
                    claims["fhirUser"].as_str().map(str::to_owned),
                    claims["sub"].as_str().map(str::to_owned),
                )
            }
            None => (None, None),
        };
        let user_name = match &fhir_user {
            Some(u) => self.read_fhir_user(&pending.server, u, &resp.access).await,
            None => None,
        };
        let mut id_bytes = [0u8; 12];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id_bytes)
            .map_err(|_| Error::storage(StorageKind::Other, "no randomness for an account id"))?;
        let account = LinkedAccount {
            id: id_bytes.iter().map(|b| format!("{b:02x}")).collect(),
            client_id: self.client_id.clone(),
            redirect_uri: pending.redirect_uri,
            patient_id,
            fhir_user,
            user_subject: subject,
            consent: compare_grant(
                &self.wanted,
                ScopeStyle::for_server(&pending.server),
                &GrantedScope::parse(&granted),
            ),
            granted: GrantedScope::parse(&granted),
            linked_at_ms: now,
            status: AccountStatus::Active,
            device_client_id: None,
            can_renew: resp.refresh.is_some(),
            user_name,
            linked_scope: Some(granted.clone()),
            server: pending.server,
        };
        let tokens = Tokens {
            access: resp.access.clone(),
            access_expires_at_ms: resp.expires_at_ms(now),
            access_issued_at_ms: Some(now),
            refresh: resp.refresh.clone(),
            device_key: None,
        };
        accounts.insert(account, tokens)
    }

    /// Reads the signed-in user's `fhirUser` resource (SMART client req. 202: a resource URL, relative to the FHIR
    /// base or absolute under it) and returns their name. Best effort: a server that does not let the app read it,
    /// or names a resource on another origin (the token never leaves the grant's origin), only means no name.
    async fn read_fhir_user(
        &self,
        server: &ServerInfo,
        fhir_user: &str,
        access: &Secret,
    ) -> Option<String> {
        let base = server.fhir_base.as_str().trim_end_matches('/');
        let relative = fhir_user
            .strip_prefix(base)
            .map(|r| r.trim_start_matches('/'))
            .unwrap_or(fhir_user);
        let (ty, id) = relative.split_once('/')?;
        let known = ["Patient", "RelatedPerson", "Practitioner", "Person"];
        let safe_id = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !known.contains(&ty) || !safe_id {
            return None;
        }
        let url = Url::parse(&format!("{base}/{ty}/{id}")).ok()?;
        if url.origin() != server.fhir_base.origin() {
            return None;
        }
        let resp = self
            .http
            .get(
                &url,
                Some(access),
                "application/fhir+json",
                SMALL_BODY_LIMIT,
            )
            .await
            .ok()?;
        if !resp.status.is_success() {
            tracing::debug!(target: "chartlink", status = resp.status.as_u16(), "the fhirUser resource was not readable");
            return None;
        }
        let r: serde_json::Value = serde_json::from_slice(&resp.body).ok()?;
        if r["resourceType"] != ty || r["id"] != id {
            return None;
        }
        crate::context::display_name(&r)
    }

    /// Verifies the id_token (SMART client reqs. 201, 218): keys from the SMART configuration's `jwks_uri`, or,
    /// when it has none, from OpenID Connect discovery at `{issuer}/.well-known/openid-configuration`. The issuer is
    /// the SMART configuration's; when it names none, the id_token's own `iss`, accepted only if the redirect's
    /// `iss` (when sent) agrees and that issuer's OpenID configuration names the token endpoint the token came
    /// from (so the keys belong to the server that answered).
    async fn verify_id_token(
        &self,
        server: &ServerInfo,
        id_token: &str,
        redirect_iss: Option<&str>,
    ) -> Result<serde_json::Value> {
        let issuer = match &server.issuer {
            Some(i) => i.clone(),
            None => {
                let claimed = jose::unverified_claims(id_token)?["iss"]
                    .as_str()
                    .map(str::to_owned);
                match (claimed, redirect_iss) {
                    (Some(c), Some(r)) if !same_issuer(&c, r) => {
                        return Err(Error::authorization(AuthorizationReason::Mismatch,
                            "the redirect came from another server (iss differs from the id_token's)".into(),
                        ));
                    }
                    (Some(c), _) => c,
                    (None, _) => server.fhir_base.to_string(),
                }
            }
        };
        let jwks_uri = match &server.jwks_uri {
            Some(u) => u.clone(),
            None => self.openid_jwks_uri(server, &issuer).await?,
        };
        let jwks = self
            .http
            .get(&jwks_uri, None, "application/json", SMALL_BODY_LIMIT)
            .await?
            .json()?;
        let claims = jose::verify(id_token, &jwks)?;
        jose::check_id_token(
            &claims,
            &issuer,
            &self.client_id,
            self.clock.now_unix_ms() / 1000,
            CLOCK_SKEW_SECS,
        )?;
        Ok(claims)
    }

    /// OpenID Connect Discovery §4: the issuer's `jwks_uri`, from `{issuer}/.well-known/openid-configuration`.
    async fn openid_jwks_uri(&self, server: &ServerInfo, issuer: &str) -> Result<Url> {
        let refuse = |m: &str| {
            Error::authorization(
                AuthorizationReason::InvalidAnswer,
                format!("the id_token cannot be verified: {m}"),
            )
        };
        let issuer_url = Url::parse(issuer.trim_end_matches('/'))
            .ok()
            .filter(discovery::is_secure_transport)
            .ok_or_else(|| refuse("its issuer is not an https URL"))?;
        let url = discovery::join(&issuer_url, ".well-known/openid-configuration");
        let resp = self
            .http
            .get(&url, None, "application/json", SMALL_BODY_LIMIT)
            .await?;
        if !resp.status.is_success() {
            return Err(refuse(&format!(
                "the server publishes no jwks_uri, and its OpenID configuration answered HTTP {}",
                resp.status.as_u16()
            )));
        }
        let doc = resp.json()?;
        if !doc["issuer"]
            .as_str()
            .is_some_and(|i| same_issuer(i, issuer))
        {
            return Err(refuse("the OpenID configuration names another issuer"));
        }
        let names_our_token_endpoint = doc["token_endpoint"]
            .as_str()
            .and_then(|t| Url::parse(t).ok())
            .is_some_and(|t| t == server.token_endpoint);
        if server.issuer.is_none() && !names_our_token_endpoint {
            return Err(refuse(
                "the id_token's issuer is not the server whose token endpoint answered",
            ));
        }
        doc["jwks_uri"]
            .as_str()
            .and_then(|u| Url::parse(u).ok())
            .filter(discovery::is_secure_transport)
            .ok_or_else(|| refuse("the OpenID configuration has no usable jwks_uri"))
    }
}

/// Issuer identifiers compared as RFC 9207 §2.4 says (simple string comparison), forgiving a trailing slash.
fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

fn same_endpoint(got: &Url, expected: &str) -> bool {
    let Ok(want) = Url::parse(expected) else {
        return false;
    };
    got.scheme() == want.scheme()
        && got.host_str() == want.host_str()
        && got.port() == want.port()
        && got.path() == want.path()
}

/// An OAuth error code from a redirect, reduced to the characters RFC 6749 allows.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(40)
        .collect()
}
