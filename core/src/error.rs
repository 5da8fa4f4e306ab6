//! The SDK's public error: few kinds, shaped by what the caller should do, each with a message that is safe to
//! show or log (no token, no health data). The rich per-module errors convert into it here, in one place.

use crate::discovery::DiscoveryError;
use crate::host::SecureStoreError;
use crate::http::HttpError;
use crate::jose::JwtError;
use crate::store::StoreError;

/// What went wrong, and so what the app should do about it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The network or the server failed transiently: try again later.
    #[error("network problem: {0}")]
    Network(String),
    /// The provider's server could not be discovered (no SMART configuration, an unusable one, no PKCE S256, an
    /// unsupported FHIR version): the address is probably not a SMART-enabled FHIR endpoint. Linking again does not
    /// help; check the address, or ask the provider.
    #[error("the provider's SMART configuration could not be used: {0}")]
    Discovery(String),
    /// The link could not be made or used (the user denied, the flow expired or was replayed, the server answered
    /// something invalid). The user may try linking again.
    #[error("authorization failed: {0}")]
    Authorization(AuthorizationFailure),
    /// Access ended: the provider's authorization server answered `invalid_grant` (expired, or revoked: a proxy
    /// relationship ended, access removed at the portal; the answer does not say which). The account must be linked
    /// again; its record stays readable unless the host opted into [`crate::RevocationPolicy::PurgeNow`].
    #[error("access to this record was revoked")]
    AccessRevoked,
    /// Access can no longer be renewed (the provider issued no refresh token and now refuses the token, or refused
    /// to renew it). The record stays readable; linking the account again restores it in place and syncing resumes.
    #[error("access to this record has to be renewed: link the account again")]
    RelinkNeeded,
    /// The store is locked (idle lockout): ask the user to unlock.
    #[error("ChartLink is locked")]
    Locked,
    /// The app passed something invalid.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Secure storage or the database failed.
    #[error("storage problem: {0}")]
    Storage(String),
    /// The user cancelled (closed the browser).
    #[error("cancelled by the user")]
    Cancelled,
    /// The store key held by the host does not open this device's database (the message names the cause: a
    /// restored backup, a re-enrolled biometric, another secure store, or a missing or damaged key). Nothing was
    /// read or deleted: retry with the right key, or call [`crate::ChartLink::reset`] to start over empty.
    #[error("the store key does not open this database: {0}")]
    WrongStoreKey(String),
    /// The database was written by a newer version of ChartLink (the app was downgraded). The file was left
    /// untouched: update the app, or [`crate::ChartLink::reset`] to start over empty.
    #[error("{0}")]
    StoreFromNewerVersion(String),
    /// The database is in use by another process and stayed busy: try again later.
    #[error("the database is busy in another process")]
    StoreBusy,
}

/// Why a link could not be made or used: what the app tells the user, and whether starting again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthorizationReason {
    /// The patient chose Deny at the portal (`access_denied`).
    Denied,
    /// The portal's pages took longer than the link may (10 minutes): start again.
    Expired,
    /// No link is in progress for this redirect (already completed, cancelled, or never started here).
    NoLinkInProgress,
    /// The redirect does not belong to the link in progress (`state`, `iss` or the address differ): possibly
    /// forged; nothing was exchanged.
    Mismatch,
    /// The authorization server refused (an `error=` redirect, a refused code exchange or registration); its
    /// description, sanitised, is in the message.
    Refused,
    /// The server's answer is not usable (no code, no patient, a malformed or unverifiable answer or id_token).
    InvalidAnswer,
    /// The browser could not be shown or failed.
    BrowserFailed,
}

/// A failed authorization: its reason, and a message safe to show (no token, no health data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationFailure {
    pub reason: AuthorizationReason,
    pub message: String,
}

impl std::fmt::Display for AuthorizationFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error {
    /// An [`Error::Authorization`] with its reason.
    pub fn authorization(reason: AuthorizationReason, message: String) -> Self {
        Error::Authorization(AuthorizationFailure { reason, message })
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Network(_) | Error::StoreBusy)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::WrongKey => Error::WrongStoreKey(
                "it was sealed under another key (a restored backup, a re-enrolled biometric or another secure store)"
                    .into(),
            ),
            e @ StoreError::NewerVersion { .. } => Error::StoreFromNewerVersion(e.to_string()),
            StoreError::Busy => Error::StoreBusy,
            other => Error::Storage(other.to_string()),
        }
    }
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Network(m) => Error::Network(m),
            other => Error::authorization(
                AuthorizationReason::InvalidAnswer,
                format!("the server's answer was not usable: {other}"),
            ),
        }
    }
}

impl From<DiscoveryError> for Error {
    fn from(e: DiscoveryError) -> Self {
        match e {
            DiscoveryError::Http(HttpError::Network(m)) => Error::Network(m),
            DiscoveryError::InvalidBase => Error::InvalidInput(e.to_string()),
            other => Error::Discovery(other.to_string()),
        }
    }
}

impl From<SecureStoreError> for Error {
    fn from(e: SecureStoreError) -> Self {
        Error::Storage(e.to_string())
    }
}

impl From<JwtError> for Error {
    fn from(e: JwtError) -> Self {
        Error::authorization(
            AuthorizationReason::InvalidAnswer,
            format!("id_token rejected: {e}"),
        )
    }
}

/// Shorthand.
pub type Result<T> = std::result::Result<T, Error>;
