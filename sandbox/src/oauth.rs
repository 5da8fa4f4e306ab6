//! The SMART App Launch 2.2 authorization server: discovery documents, `/authorize`, `/token` (authorization
//! code with PKCE, refresh with rotation and reuse detection, the jwt-bearer grant of device clients), RFC 7009
//! revocation, RFC 7662 introspection and RFC 7591 dynamic registration.
//!
//! Until the client and its redirect URI are known an error is an HTML page; after that, an `error=` redirect with
//! `state` and `iss`. Token endpoint errors are RFC 6749 JSON. Tokens are random, opaque (not JWTs) and stored only
//! as SHA-256 hashes.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::access::{self, Relation};
use crate::apps::{App, ClientAuth};
use crate::flows::{Pending, error_redirect};
use crate::scopes::Scopes;
use crate::store::{GrantRow, TokenRow};
use crate::wire::{Params, random_token, secrets_equal, token_hash};
use crate::{Shared, portal};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Client assertions may not be valid for longer than this (SMART: exp no more than 5 minutes ahead).
const MAX_ASSERTION_LIFETIME: i64 = 300;

// ---------------------------------------------------------------------------------------------------------------
// Discovery

/// `GET /fhir/.well-known/smart-configuration`.
pub async fn smart_configuration(State(s): State<Arc<Shared>>) -> Response {
    if let Some(external) = &s.external {
        return external.smart_configuration();
    }
    let base = &s.base_url;
    let fhir = s.fhir_base();
    let mut scopes: Vec<String> = [
        "openid",
        "fhirUser",
        "profile",
        "launch/patient",
        "offline_access",
        "online_access",
    ]
    .map(String::from)
    .to_vec();
    for ty in crate::scopes::PATIENT_TYPES {
        scopes.push(format!("patient/{ty}.read"));
        scopes.push(format!("patient/{ty}.rs"));
    }
    // The resources records point to (a visit's doctor, a claim's provider), readable by id only: a client that asks
    // only for listed scopes can name them.
    for ty in ["Practitioner", "Organization", "Location", "Medication"] {
        scopes.push(format!("patient/{ty}.read"));
        scopes.push(format!("patient/{ty}.r"));
    }
    scopes.push("patient/*.read".into());
    scopes.push("patient/*.rs".into());
    let mut capabilities = vec![
        "launch-standalone",
        "client-public",
        "client-confidential-symmetric",
        "client-confidential-asymmetric",
        "context-standalone-patient",
        "context-passthrough-banner",
        "permission-patient",
        "permission-offline",
        "permission-online",
        "permission-v1",
        "sso-openid-connect",
        "authorize-post",
    ];
    if s.permission_v2.load(std::sync::atomic::Ordering::SeqCst) {
        capabilities.push("permission-v2");
    }
    let quirks = s.quirks();
    if !quirks.drop_granular_scopes {
        // The category-restricted scopes it understands (SMART 2.2 §scopes-and-launch-context, finer-grained).
        for code in crate::scopes::CONSENT_OBSERVATION_GROUPS
            .iter()
            .flat_map(|(_, codes)| codes.iter())
        {
            scopes.push(format!(
                "patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|{code}"
            ));
        }
    }
    scopes.retain(|sc| !quirks.unlisted_scopes.contains(sc));
    let mut body = json!({
        "issuer": fhir,
        "jwks_uri": format!("{base}/oauth2/jwks"),
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "revocation_endpoint": format!("{base}/oauth2/revoke"),
        "introspection_endpoint": format!("{base}/oauth2/introspect"),
        "registration_endpoint": format!("{base}/oauth2/register"),
        "management_endpoint": format!("{base}/portal/apps"),
        "user_access_brand_bundle": format!("{base}/brands.json"),
        "grant_types_supported": ["authorization_code", "refresh_token", JWT_BEARER],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "client_secret_post", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "capabilities": capabilities,
    });
    if quirks.separate_issuer {
        if let Some(o) = body.as_object_mut() {
            o.remove("issuer");
            o.remove("jwks_uri");
        }
        if let Some(caps) = body["capabilities"].as_array_mut() {
            caps.retain(|c| c != "sso-openid-connect");
        }
    }
    if quirks.no_revocation_endpoint
        && let Some(o) = body.as_object_mut()
    {
        o.remove("revocation_endpoint");
    }
    if quirks.no_scopes_supported
        && let Some(o) = body.as_object_mut()
    {
        o.remove("scopes_supported");
    }
    Json(body).into_response()
}

/// `GET /fhir/.well-known/openid-configuration`.
pub async fn openid_configuration(State(s): State<Arc<Shared>>, uri: axum::http::Uri) -> Response {
    let base = &s.base_url;
    let issuer = s.quirks().issuer(&s);
    // Served at `{issuer}/.well-known/openid-configuration` only (OpenID Connect Discovery §4).
    if uri.path()
        != format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_start_matches(base.as_str())
        )
    {
        return portal::not_found().await;
    }
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{base}/oauth2/authorize"),
        "token_endpoint": format!("{base}/oauth2/token"),
        "jwks_uri": format!("{base}/oauth2/jwks"),
        "registration_endpoint": format!("{base}/oauth2/register"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES384"],
        "scopes_supported": ["openid", "fhirUser", "profile"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "fhirUser", "name", "nonce"],
        "code_challenge_methods_supported": ["S256"],
    }))
    .into_response()
}

/// `GET /oauth2/jwks`.
pub async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    Json(s.key.jwks()).into_response()
}

// ---------------------------------------------------------------------------------------------------------------
// Authorize

/// `GET /oauth2/authorize`.
pub async fn authorize_get(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    if s.quirks().authorize_post_only {
        return crate::wire::error_page(
            StatusCode::METHOD_NOT_ALLOWED,
            "Use POST",
            "This portal takes authorization requests by POST only.",
        );
    }
    authorize(
        &s,
        &headers,
        Params::parse(q.unwrap_or_default().as_bytes()),
    )
}

/// `POST /oauth2/authorize` (SMART `authorize-post`).
pub async fn authorize_post(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    authorize(&s, &headers, Params::parse(&body))
}

fn authorize(s: &Shared, headers: &HeaderMap, p: Params) -> Response {
    s.stats().authorize_requests += 1;
    let now = s.clock.now();
    let Some(client_id) = p.get("client_id") else {
        return crate::wire::error_page(
            StatusCode::BAD_REQUEST,
            "Missing app",
            "The request does not say which app is asking (client_id).",
        );
    };
    let Some(app) = load_app(s, client_id) else {
        return crate::wire::error_page(
            StatusCode::BAD_REQUEST,
            "Unknown app",
            "This app is not registered with the portal.",
        );
    };
    if app.bound_grant.is_some() {
        return crate::wire::error_page(
            StatusCode::BAD_REQUEST,
            "Unknown app",
            "Device clients cannot start a login.",
        );
    }
    let Some(redirect_uri) = p.get("redirect_uri").filter(|r| app.allows_redirect(r)) else {
        return crate::wire::error_page(
            StatusCode::BAD_REQUEST,
            "Invalid redirect",
            "The app's redirect address is missing or is not one the app registered, so the portal will not send you back to it.",
        );
    };
    let state = p.get("state").map(str::to_owned);
    let fail = |error: &str, description: &str| {
        error_redirect(s, redirect_uri, state.as_deref(), error, description)
    };
    if let Some(key) = &p.repeated {
        return fail("invalid_request", &format!("parameter {key} is repeated"));
    }
    if p.get("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let Some(state) = state.clone() else {
        return fail("invalid_request", "state is required");
    };
    let aud = p.get("aud").map(|a| a.trim_end_matches('/'));
    if aud != Some(s.fhir_base().as_str()) {
        return fail("invalid_request", "aud must be this server's FHIR base URL");
    }
    let challenge = p.get("code_challenge");
    match (p.get("code_challenge_method"), challenge) {
        (Some("S256"), Some(c)) if c.len() == 43 && B64.decode(c).is_ok() => {}
        (Some("plain"), _) => {
            return fail(
                "invalid_request",
                "code_challenge_method plain is not supported; use S256",
            );
        }
        (None, None) if app.legacy_pkce_optional => {}
        _ => {
            return fail(
                "invalid_request",
                "PKCE is required: code_challenge with code_challenge_method=S256",
            );
        }
    }
    let quirks = s.quirks();
    if quirks.refuse_unlisted_scopes
        && let Some(unknown) = p
            .get("scope")
            .unwrap_or("")
            .split_ascii_whitespace()
            .find(|sc| quirks.unlisted_scopes.iter().any(|u| u == sc))
    {
        return fail("invalid_scope", &format!("unknown scope {unknown}"));
    }
    let scopes = match Scopes::parse(p.get("scope").unwrap_or("")) {
        Ok(mut sc) if quirks.drop_granular_scopes || quirks.widen_granular_scopes => {
            let mut kept: Vec<crate::scopes::ResourceScope> = Vec::new();
            for r in std::mem::take(&mut sc.resources) {
                let text = r.to_string();
                let scope = match text.split_once('?') {
                    None => r,
                    Some(_) if quirks.drop_granular_scopes => continue,
                    Some((whole, _)) => match crate::scopes::ResourceScope::parse(whole) {
                        Ok(w) => w,
                        Err(_) => continue,
                    },
                };
                if !kept.contains(&scope) {
                    kept.push(scope);
                }
            }
            sc.resources = kept;
            sc
        }
        Ok(sc) if !sc.resources.is_empty() || sc.openid => sc,
        Ok(_) => return fail("invalid_scope", "no scope requested"),
        Err(e) => return fail("invalid_scope", &e.to_string()),
    };
    let tx = random_token();
    let pending = Pending {
        app,
        redirect_uri: redirect_uri.to_owned(),
        state,
        scopes,
        code_challenge: challenge.map(str::to_owned),
        nonce: p.get("nonce").map(str::to_owned),
        username: None,
        patient_id: None,
        created_at: now,
        prompt_consent: p
            .get("prompt")
            .is_some_and(|v| v.split(' ').any(|x| x == "consent")),
    };
    let mut flows = s.flows();
    flows.sweep(now);
    flows.pending.insert(tx.clone(), pending);
    // A patient already logged in to the portal in this browser goes straight on.
    let user = portal::session_user(&mut flows, headers, now);
    drop(flows);
    match user {
        Some(username) => portal::after_login(s, &tx, &username),
        None => portal::login_form(&tx, None, None),
    }
}

fn load_app(s: &Shared, client_id: &str) -> Option<App> {
    let json = s.store().app(client_id).ok()??;
    serde_json::from_str(&json).ok()
}

// ---------------------------------------------------------------------------------------------------------------
// Token

/// An RFC 6749 §5.2 error response.
#[derive(Debug)]
pub struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> Self {
        let status = if error == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        Self {
            status,
            error,
            description: description.into(),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let mut r = (
            self.status,
            Json(json!({"error": self.error, "error_description": self.description})),
        )
            .into_response();
        no_store(r.headers_mut());
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"token\""),
            );
        }
        r
    }
}

fn no_store(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn store_err(_: crate::store::StoreError) -> OAuthError {
    OAuthError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error: "server_error",
        description: "storage failure".into(),
    }
}

/// `POST /oauth2/token`.
pub async fn token(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let p = Params::parse(&body);
    let grant_type = p.get("grant_type").unwrap_or("").to_owned();
    *s.stats()
        .token_requests
        .entry(grant_type.clone())
        .or_default() += 1;
    let result = match grant_type.as_str() {
        _ if p.repeated.is_some() => Err(OAuthError::new(
            "invalid_request",
            "a parameter is repeated",
        )),
        "authorization_code" => authorization_code(&s, &headers, &p),
        "refresh_token" => refresh(&s, &headers, &p),
        JWT_BEARER => jwt_bearer(&s, &p),
        "" => Err(OAuthError::new("invalid_request", "grant_type is required")),
        _ => Err(OAuthError::new(
            "unsupported_grant_type",
            "supported: authorization_code, refresh_token, jwt-bearer",
        )),
    };
    match result {
        Ok(body) => {
            let mut r = Json(body).into_response();
            no_store(r.headers_mut());
            r
        }
        Err(e) => e.into_response(),
    }
}

/// Authenticates the client of a token, revoke or introspect request.
fn authenticate_client(s: &Shared, headers: &HeaderMap, p: &Params) -> Result<App, OAuthError> {
    if p.get("client_assertion_type").is_some() || p.get("client_assertion").is_some() {
        if p.get("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE) {
            return Err(OAuthError::new(
                "invalid_client",
                "unsupported client_assertion_type",
            ));
        }
        let assertion = p.get("client_assertion").unwrap_or("");
        let (app, _) = verify_client_jwt(s, assertion, "invalid_client")?;
        if p.get("client_id").is_some_and(|c| c != app.client_id) {
            return Err(OAuthError::new(
                "invalid_client",
                "client_id does not match the assertion",
            ));
        }
        return Ok(app);
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|b| {
            b.split_once(':')
                .map(|(id, secret)| (decode_form(id), decode_form(secret)))
        });
    let (client_id, secret) = match basic {
        Some((id, secret)) => (id, Some(secret)),
        None => (
            p.get("client_id").unwrap_or("").to_owned(),
            p.get("client_secret").map(str::to_owned),
        ),
    };
    let app = load_app(s, &client_id)
        .ok_or_else(|| OAuthError::new("invalid_client", "unknown client"))?;
    match (&app.auth, secret) {
        (ClientAuth::Public, None) => Ok(app),
        (ClientAuth::ConfidentialSymmetric { secret: want }, Some(got))
            if secrets_equal(want, &got) =>
        {
            Ok(app)
        }
        (ClientAuth::ConfidentialAsymmetric { .. }, _) => Err(OAuthError::new(
            "invalid_client",
            "this client must authenticate with private_key_jwt",
        )),
        _ => Err(OAuthError::new(
            "invalid_client",
            "client authentication failed",
        )),
    }
}

fn decode_form(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Verifies a JWT signed by a client (a client assertion or a jwt-bearer grant): signature against the client's
/// registered keys, iss = sub = client_id, aud = the token URL, exp in the future and at most 5 minutes ahead,
/// jti not seen before.
fn verify_client_jwt(
    s: &Shared,
    jwt: &str,
    error: &'static str,
) -> Result<(App, Value), OAuthError> {
    let bad = |d: &str| OAuthError::new(error, d.to_owned());
    let unverified = crate::jose::decode(jwt).map_err(|e| bad(&e.to_string()))?;
    let iss = unverified.claims["iss"].as_str().unwrap_or("").to_owned();
    let app = load_app(s, &iss).ok_or_else(|| bad("the JWT's iss is not a registered client"))?;
    let jwks = app
        .jwks()
        .ok_or_else(|| bad("the client has no registered keys"))?;
    let claims = unverified.verify(jwks).map_err(|e| bad(&e.to_string()))?;
    let now = s.clock.now();
    if claims["sub"].as_str() != Some(iss.as_str()) {
        return Err(bad("sub must equal iss (the client_id)"));
    }
    let token_url = format!("{}/oauth2/token", s.base_url);
    let aud_ok = match &claims["aud"] {
        Value::String(a) => a == &token_url,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(token_url.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(bad("aud must be the token endpoint URL"));
    }
    let exp = claims["exp"]
        .as_i64()
        .ok_or_else(|| bad("exp is required"))?;
    if exp <= now {
        return Err(bad("the JWT has expired"));
    }
    if exp > now + MAX_ASSERTION_LIFETIME + 5 {
        return Err(bad("exp may be at most 5 minutes in the future"));
    }
    let jti = claims["jti"]
        .as_str()
        .filter(|j| !j.is_empty())
        .ok_or_else(|| bad("jti is required"))?;
    let mut flows = s.flows();
    flows.sweep(now);
    let key = format!("{iss} {jti}");
    if flows.jtis.contains_key(&key) {
        return Err(bad("jti was already used"));
    }
    flows.jtis.insert(key, exp);
    Ok((app, claims))
}

fn authorization_code(s: &Shared, headers: &HeaderMap, p: &Params) -> Result<Value, OAuthError> {
    let app = authenticate_client(s, headers, p)?;
    let code = p
        .get("code")
        .ok_or_else(|| OAuthError::new("invalid_request", "code is required"))?;
    let now = s.clock.now();
    let hash = token_hash(code);
    let record = {
        let mut flows = s.flows();
        let Some(record) = flows.codes.get_mut(&hash) else {
            return Err(OAuthError::new("invalid_grant", "unknown or expired code"));
        };
        if let Some(grant) = record.grant_id.clone() {
            drop(flows);
            // A replayed code: the first exchange may have leaked, so everything it produced ends now.
            let _ = s
                .store()
                .revoke_grant(&grant, "authorization code replayed", now);
            return Err(OAuthError::new(
                "invalid_grant",
                "code already used; its tokens are revoked",
            ));
        }
        if record.expires_at <= now {
            return Err(OAuthError::new("invalid_grant", "code expired"));
        }
        if record.client_id != app.client_id {
            return Err(OAuthError::new(
                "invalid_grant",
                "code was issued to another client",
            ));
        }
        if p.get("redirect_uri") != Some(record.redirect_uri.as_str()) {
            return Err(OAuthError::new(
                "invalid_grant",
                "redirect_uri differs from the authorization request",
            ));
        }
        match (&record.code_challenge, p.get("code_verifier")) {
            (Some(challenge), Some(verifier)) => {
                let valid_shape = (43..=128).contains(&verifier.len())
                    && verifier
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
                if !valid_shape || &B64.encode(Sha256::digest(verifier.as_bytes())) != challenge {
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "code_verifier does not match code_challenge",
                    ));
                }
            }
            (Some(_), None) => {
                return Err(OAuthError::new(
                    "invalid_request",
                    "code_verifier is required",
                ));
            }
            (None, _) => {}
        }
        let grant_id = random_token();
        record.grant_id = Some(grant_id);
        record.clone()
    };
    let grant = GrantRow {
        id: record.grant_id.clone().unwrap_or_default(),
        client_id: app.client_id.clone(),
        username: record.username.clone(),
        patient_id: record.patient_id.clone(),
        scope: record.scope.clone(),
        created_at: now,
        revoked_at: None,
        revoked_reason: None,
    };
    s.store().insert_grant(&grant).map_err(store_err)?;
    // OpenID Connect Core §11: without prompt=consent, such a server ignores offline_access.
    let with_refresh = record.prompt_consent || !s.quirks().offline_needs_prompt_consent;
    issue_tokens(
        s,
        &grant,
        &app.client_id,
        with_refresh,
        record.nonce.as_deref(),
    )
}

fn refresh(s: &Shared, headers: &HeaderMap, p: &Params) -> Result<Value, OAuthError> {
    let app = match authenticate_client(s, headers, p) {
        // A public client need not name itself when it refreshes (RFC 6749 §6 asks only confidential clients to
        // authenticate; SMART App Launch 2.2 lists no client_id for a public app's refresh, and SMART's client-js
        // sends none): the refresh token says whose it is.
        Err(e) if names_no_client(headers, p) => public_owner(s, p).ok_or(e)?,
        other => other?,
    };
    let token = p
        .get("refresh_token")
        .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is required"))?;
    let now = s.clock.now();
    let hash = token_hash(token);
    let store = s.store();
    let row = store.token(&hash).map_err(store_err)?;
    let Some(row) = row.filter(|r| r.kind == "refresh") else {
        return Err(OAuthError::new("invalid_grant", "unknown refresh token"));
    };
    if row.client_id != app.client_id {
        return Err(OAuthError::new(
            "invalid_grant",
            "refresh token was issued to another client",
        ));
    }
    if row.revoked {
        return Err(OAuthError::new("invalid_grant", "refresh token revoked"));
    }
    if !store.spend_token(&hash).map_err(store_err)? {
        // Reuse of a rotated token: someone holds a copy. End the whole grant.
        store
            .revoke_grant(&row.grant_id, "refresh token reused", now)
            .map_err(store_err)?;
        return Err(OAuthError::new(
            "invalid_grant",
            "refresh token already used; the grant is revoked",
        ));
    }
    let mut grant = live_grant(s, &store, &row.grant_id)?;
    if let Some(wider) = s.quirks().widen_scope_on_refresh {
        store
            .set_grant_scope(&grant.id, &wider)
            .map_err(store_err)?;
        grant.scope = wider;
    }
    if let Some(narrow) = p.get("scope") {
        let granted: Vec<&str> = grant.scope.split_whitespace().collect();
        if !narrow.split_whitespace().all(|sc| granted.contains(&sc)) {
            return Err(OAuthError::new(
                "invalid_scope",
                "a refresh may only narrow the granted scope",
            ));
        }
    }
    drop(store);
    issue_tokens(s, &grant, &app.client_id, true, None)
}

/// Whether a token request carries no client identification at all.
fn names_no_client(headers: &HeaderMap, p: &Params) -> bool {
    !headers.contains_key(header::AUTHORIZATION)
        && [
            "client_id",
            "client_secret",
            "client_assertion",
            "client_assertion_type",
        ]
        .iter()
        .all(|k| p.get(k).is_none())
}

/// The public client a refresh token was issued to.
fn public_owner(s: &Shared, p: &Params) -> Option<App> {
    let row = s
        .store()
        .token(&token_hash(p.get("refresh_token")?))
        .ok()??;
    let app = load_app(s, &row.client_id)?;
    matches!(app.auth, ClientAuth::Public).then_some(app)
}

fn jwt_bearer(s: &Shared, p: &Params) -> Result<Value, OAuthError> {
    let assertion = p
        .get("assertion")
        .ok_or_else(|| OAuthError::new("invalid_request", "assertion is required"))?;
    let (app, _) = verify_client_jwt(s, assertion, "invalid_grant")?;
    let grant_id = app
        .bound_grant
        .clone()
        .ok_or_else(|| OAuthError::new("unauthorized_client", "not a device client"))?;
    let store = s.store();
    let grant = live_grant(s, &store, &grant_id)?;
    drop(store);
    issue_tokens(s, &grant, &app.client_id, false, None)
}

/// The grant, if it is still active and the user still has access to the patient (proxy rules, today).
fn live_grant(
    s: &Shared,
    store: &crate::store::Store,
    grant_id: &str,
) -> Result<GrantRow, OAuthError> {
    let grant = store
        .grant(grant_id)
        .map_err(store_err)?
        .filter(|g| g.revoked_at.is_none())
        .ok_or_else(|| OAuthError::new("invalid_grant", "access was revoked"))?;
    let today = s.clock.today();
    if access::access_of(store, &grant.username, &grant.patient_id, today)
        .map_err(store_err)?
        .is_none()
    {
        store
            .revoke_grant(&grant.id, "proxy access ended", s.clock.now())
            .map_err(store_err)?;
        return Err(OAuthError::new(
            "invalid_grant",
            "access to this record has ended",
        ));
    }
    Ok(grant)
}

fn issue_tokens(
    s: &Shared,
    grant: &GrantRow,
    client_id: &str,
    with_refresh: bool,
    nonce: Option<&str>,
) -> Result<Value, OAuthError> {
    let now = s.clock.now();
    let scopes = Scopes::parse(&grant.scope).unwrap_or_default();
    let access_token = random_token();
    let lifetime = s.config.token_lifetime;
    let store = s.store();
    let row = |kind: &str, expires_at| TokenRow {
        kind: kind.into(),
        grant_id: grant.id.clone(),
        client_id: client_id.into(),
        issued_at: now,
        expires_at,
        spent: false,
        revoked: false,
    };
    store
        .insert_token(
            &token_hash(&access_token),
            &row("access", Some(now + lifetime)),
        )
        .map_err(store_err)?;
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": lifetime,
        "scope": grant.scope,
        "patient": grant.patient_id,
        "need_patient_banner": true,
    });
    if with_refresh
        && (scopes.offline_access || scopes.online_access)
        && s.refresh_tokens.load(std::sync::atomic::Ordering::SeqCst)
    {
        let refresh_token = random_token();
        store
            .insert_token(&token_hash(&refresh_token), &row("refresh", None))
            .map_err(store_err)?;
        body["refresh_token"] = json!(refresh_token);
    }
    if scopes.openid && scopes.fhir_user {
        let fhir_user = fhir_user(s, &store, grant)?;
        let mut claims = json!({
            "iss": s.quirks().issuer(s), "sub": grant.username, "aud": client_id,
            "iat": now, "exp": now + lifetime, "fhirUser": fhir_user,
        });
        if let Some(n) = nonce {
            claims["nonce"] = json!(n);
        }
        if scopes.profile
            && let Some(p) = store
                .person_by_username(&grant.username)
                .map_err(store_err)?
        {
            claims["name"] = json!(p.display_name);
        }
        body["id_token"] = json!(s.key.sign(&claims));
    }
    Ok(body)
}

/// `Patient/…` when the user opened their own record, `RelatedPerson/…` when they act as a proxy.
fn fhir_user(
    s: &Shared,
    store: &crate::store::Store,
    grant: &GrantRow,
) -> Result<String, OAuthError> {
    let access = access::access_of(store, &grant.username, &grant.patient_id, s.clock.today())
        .map_err(store_err)?;
    let fhir = s.fhir_base();
    Ok(match access.map(|a| a.relation) {
        Some(Relation::Proxy {
            related_person_id, ..
        }) => format!("{fhir}/RelatedPerson/{related_person_id}"),
        _ => format!("{fhir}/Patient/{}", grant.patient_id),
    })
}

// ---------------------------------------------------------------------------------------------------------------
// Revoke, introspect, register

/// `POST /oauth2/revoke` (RFC 7009): always 200 for a well-formed request from a known client, whether or not the
/// token existed. Revoking a refresh token ends its whole grant.
pub async fn revoke(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let p = Params::parse(&body);
    let app = match authenticate_client(&s, &headers, &p) {
        Ok(app) => app,
        Err(e) => return e.into_response(),
    };
    let Some(token) = p.get("token") else {
        return OAuthError::new("invalid_request", "token is required").into_response();
    };
    s.stats().revocations += 1;
    let hash = token_hash(token);
    let quirks = s.quirks();
    if quirks.no_revocation_endpoint {
        return portal::not_found().await;
    }
    let store = s.store();
    if let Ok(Some(row)) = store.token(&hash)
        && row.client_id == app.client_id
    {
        if quirks.revoke_refresh_tokens_only && row.kind != "refresh" {
            return OAuthError::new(
                "unsupported_token_type",
                "only refresh tokens can be revoked here",
            )
            .into_response();
        }
        let done = if row.kind == "refresh" {
            store
                .revoke_grant(&row.grant_id, "revoked by the app", s.clock.now())
                .map(|_| ())
        } else {
            store.revoke_token(&hash)
        };
        if done.is_err() {
            return store_err_response();
        }
    }
    StatusCode::OK.into_response()
}

fn store_err_response() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "server_error"})),
    )
        .into_response()
}

/// What a bearer access token gives: its grant, if everything about it is still valid.
pub fn bearer_grant(s: &Shared, headers: &HeaderMap) -> Option<(GrantRow, TokenRow)> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    let store = s.store();
    let row = store.token(&token_hash(token)).ok()??;
    let now = s.clock.now();
    if row.kind != "access" || row.revoked || row.expires_at.is_some_and(|e| e <= now) {
        return None;
    }
    let grant = store.grant(&row.grant_id).ok()??;
    grant.revoked_at.is_none().then_some((grant, row))
}

/// `POST /oauth2/introspect` (RFC 7662, SMART token introspection). The caller authenticates with a valid access
/// token (`Authorization: Bearer`) or as a client.
pub async fn introspect(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let p = Params::parse(&body);
    let authorized = bearer_grant(&s, &headers).is_some()
        || (headers.get(header::AUTHORIZATION).is_some() || p.get("client_assertion").is_some())
            && authenticate_client(&s, &headers, &p).is_ok();
    if !authorized {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client", "error_description": "authenticate with a bearer token or as a client"})))
            .into_response();
    }
    let Some(token) = p.get("token") else {
        return OAuthError::new("invalid_request", "token is required").into_response();
    };
    let now = s.clock.now();
    let store = s.store();
    let row = store.token(&token_hash(token)).ok().flatten();
    let grant = row
        .as_ref()
        .and_then(|r| store.grant(&r.grant_id).ok().flatten());
    let (Some(row), Some(grant)) = (row, grant) else {
        return Json(json!({"active": false})).into_response();
    };
    let live_access =
        access::access_of(&store, &grant.username, &grant.patient_id, s.clock.today())
            .ok()
            .flatten()
            .is_some();
    let spent_refresh = row.kind == "refresh" && row.spent;
    let active = !row.revoked
        && !spent_refresh
        && row.expires_at.is_none_or(|e| e > now)
        && grant.revoked_at.is_none()
        && live_access;
    if !active {
        return Json(json!({"active": false})).into_response();
    }
    let mut out = json!({
        "active": true, "scope": grant.scope, "client_id": row.client_id, "patient": grant.patient_id,
        "sub": grant.username, "iat": row.issued_at, "iss": s.fhir_base(),
        "token_type": if row.kind == "access" { "Bearer" } else { "refresh_token" },
    });
    if let Some(exp) = row.expires_at {
        out["exp"] = json!(exp);
    }
    if Scopes::parse(&grant.scope).is_ok_and(|sc| sc.fhir_user)
        && let Ok(user) = fhir_user(&s, &store, &grant)
    {
        out["fhirUser"] = json!(user);
    }
    Json(out).into_response()
}

/// `POST /oauth2/register` (RFC 7591, Epic style for native apps): with a user's access token as the initial
/// access token, registers the device's public key and answers a device-bound `client_id` for the jwt-bearer
/// grant.
pub async fn register(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let reg_error = |status: StatusCode, error: &str, d: &str| {
        (
            status,
            Json(json!({"error": error, "error_description": d})),
        )
            .into_response()
    };
    let Some((grant, token)) = bearer_grant(&s, &headers) else {
        return reg_error(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "a valid access token is required as the initial access token",
        );
    };
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return reg_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "the body must be a JSON object",
        );
    };
    let software_id = req["software_id"].as_str().unwrap_or_default();
    if software_id != token.client_id {
        return reg_error(
            StatusCode::BAD_REQUEST,
            "invalid_software_statement",
            "software_id must be the client_id the access token was issued to",
        );
    }
    match load_app(&s, software_id) {
        Some(app) if app.dynamic_registration => {}
        _ => {
            return reg_error(
                StatusCode::BAD_REQUEST,
                "unapproved_software_statement",
                "this app may not register device clients",
            );
        }
    }
    let keys = req["jwks"]["keys"].as_array().cloned().unwrap_or_default();
    let usable = |k: &Value| {
        (k["kty"] == "EC" && k["crv"] == "P-384" && k["x"].is_string() && k["y"].is_string())
            || (k["kty"] == "RSA" && k["n"].is_string() && k["e"].is_string())
    };
    if keys.is_empty() || !keys.iter().all(usable) {
        return reg_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "jwks must hold P-384 EC or RSA public keys",
        );
    }
    if keys.iter().any(|k| k.get("d").is_some()) {
        return reg_error(
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            "jwks must not contain private keys",
        );
    }
    let client_id = format!("device-{}", &random_token()[..22]);
    let device = App {
        client_id: client_id.clone(),
        name: req["client_name"]
            .as_str()
            .unwrap_or("Device client")
            .chars()
            .take(100)
            .collect(),
        developer: software_id.to_owned(),
        redirect_uris: Vec::new(),
        auth: ClientAuth::ConfidentialAsymmetric {
            jwks: json!({"keys": keys}),
        },
        questionnaire: None,
        dynamic_registration: false,
        legacy_pkce_optional: false,
        bound_grant: Some(grant.id.clone()),
    };
    if s.store()
        .put_app(
            &client_id,
            &serde_json::to_string(&device).unwrap_or_default(),
        )
        .is_err()
    {
        return store_err_response();
    }
    let mut r = (
        StatusCode::CREATED,
        Json(json!({
            "client_id": client_id, "software_id": software_id, "client_id_issued_at": s.clock.now(),
            "token_endpoint_auth_method": "private_key_jwt", "grant_types": [JWT_BEARER],
            "jwks": {"keys": device.jwks().and_then(|j| j["keys"].as_array()).cloned().unwrap_or_default()},
        })),
    )
        .into_response();
    no_store(r.headers_mut());
    r
}
