//! The authorization flows in progress, shared by the authorization server and the portal's pages: pending
//! authorizations, portal sessions, issued codes, and the two ways a flow ends (a code, or an `error=` redirect).

use std::collections::HashMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};

use crate::Shared;
use crate::apps::App;
use crate::scopes::Scopes;
use crate::wire::{error_page, random_token, token_hash};

/// Authorization codes live this long (sandbox clock).
pub const CODE_LIFETIME: i64 = 300;
/// A pending authorization (the patient is on the portal's pages) lives this long.
const PENDING_LIFETIME: i64 = 1800;
/// Portal web sessions end after 20 minutes without activity, as the portal's web site does.
pub const SESSION_IDLE_LIMIT: i64 = 20 * 60;

/// A pending authorization: the app's request, and what the patient has done on the portal's pages so far.
#[derive(Debug, Clone)]
pub struct Pending {
    pub app: App,
    pub redirect_uri: String,
    pub state: String,
    pub scopes: Scopes,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub username: Option<String>,
    pub patient_id: Option<String>,
    pub created_at: i64,
    /// The request carried `prompt=consent` (OpenID Connect Core §11; see [`crate::Quirks`]).
    pub prompt_consent: bool,
}

/// A portal login (cookie `cl_portal`).
#[derive(Debug, Clone)]
pub struct Session {
    pub username: String,
    pub csrf: String,
    pub last_seen: i64,
}

/// An issued authorization code.
#[derive(Debug, Clone)]
pub struct Code {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub nonce: Option<String>,
    pub username: String,
    pub patient_id: String,
    pub scope: String,
    pub expires_at: i64,
    /// The authorization request carried `prompt=consent`.
    pub prompt_consent: bool,
    /// Set once exchanged; a second exchange revokes this grant (RFC 6749 §4.1.2).
    pub grant_id: Option<String>,
}

/// In-memory state of flows in progress.
#[derive(Debug, Default)]
pub struct Flows {
    pub pending: HashMap<String, Pending>,
    pub sessions: HashMap<String, Session>,
    /// By code hash.
    pub codes: HashMap<String, Code>,
    /// `jti` of client assertions seen, with their expiry, to refuse replays.
    pub jtis: HashMap<String, i64>,
}

impl Flows {
    /// Forgets what has expired.
    pub fn sweep(&mut self, now: i64) {
        self.pending
            .retain(|_, p| now - p.created_at < PENDING_LIFETIME);
        self.sessions
            .retain(|_, s| now - s.last_seen < SESSION_IDLE_LIMIT);
        self.codes.retain(|_, c| now < c.expires_at + CODE_LIFETIME);
        self.jtis.retain(|_, exp| now <= *exp);
    }
}

/// The redirect to the app with an error (after the redirect URI is trusted).
pub fn error_redirect(
    s: &Shared,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    let mut params = vec![("error", error), ("error_description", description)];
    if let Some(st) = state {
        params.push(("state", st));
    }
    let iss = s.quirks().issuer(s);
    params.push(("iss", &iss));
    redirect_with(redirect_uri, &params)
}

/// A 303 to `uri` with `params` added to its query.
pub fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    let mut target = uri.to_owned();
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    target.push(if uri.contains('?') { '&' } else { '?' });
    target.push_str(&query);
    Redirect::to(&target).into_response()
}

/// Called by the consent page on "Allow Access": issues the code and redirects to the app.
pub fn issue_code(s: &Shared, pending: Pending, granted_scope: String) -> Response {
    let (Some(username), Some(patient_id)) = (pending.username.clone(), pending.patient_id.clone())
    else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Incomplete request",
            "Please start again from the app.",
        );
    };
    let code = random_token();
    let record = Code {
        client_id: pending.app.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.code_challenge.clone(),
        nonce: pending.nonce.clone(),
        username,
        patient_id,
        scope: granted_scope,
        expires_at: s.clock.now() + CODE_LIFETIME,
        prompt_consent: pending.prompt_consent,
        grant_id: None,
    };
    s.flows().codes.insert(token_hash(&code), record);
    let iss = s.quirks().issuer(s);
    redirect_with(
        &pending.redirect_uri,
        &[("code", &code), ("state", &pending.state), ("iss", &iss)],
    )
}
