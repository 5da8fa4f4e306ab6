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
    /// The network or the server failed transiently: try again later ([`NetworkFailure::retry_after`] says when,
    /// when the server said).
    #[error("network problem: {0}")]
    Network(NetworkFailure),
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
    /// The provider's FHIR server answered a request with something that cannot be used: a 404 or 400 on a read,
    /// an answer that is not FHIR, one too large, paging that loops. Not an authorization problem, and not
    /// transient: the same request would get the same answer.
    #[error("the provider's server could not answer this: {0}")]
    Server(ServerFailure),
    /// The store is locked (idle lockout): ask the user to unlock.
    #[error("ChartLink is locked")]
    Locked,
    /// The app passed something invalid.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Secure storage or the database failed; [`StorageFailure::kind`] says how (busy, wrong key, newer version,
    /// damaged, full, ...) and so what to do. Nothing was deleted.
    #[error("storage problem: {0}")]
    Storage(StorageFailure),
    /// The user cancelled (closed the browser).
    #[error("cancelled by the user")]
    Cancelled,
}

/// How the network failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NetworkKind {
    /// No connection could be made (offline, the name does not resolve, the server is down).
    Unreachable,
    /// The server did not answer in time.
    TimedOut,
    /// The connection broke while the answer was being read.
    Interrupted,
    /// The server's TLS certificate was refused (expired, another name, or a captive portal or middlebox in the
    /// way): retrying helps only once the network or the server changes.
    Certificate,
    /// The server failed (a 5xx) or gave an answer a retry may fix.
    ServerError,
    /// The server asked to slow down (429, or 503 with Retry-After).
    Throttled,
}

/// A failed network exchange: how, and when to retry if the server said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkFailure {
    pub kind: NetworkKind,
    /// How long the server asked to wait (its Retry-After), when it said.
    pub retry_after: Option<std::time::Duration>,
    /// What failed, safe to show (a host name at most).
    pub message: String,
}

impl NetworkFailure {
    /// A failure of this kind without a server's Retry-After.
    pub fn new(kind: NetworkKind, message: impl Into<String>) -> Self {
        NetworkFailure {
            kind,
            retry_after: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for NetworkFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A FHIR answer that could not be used: its HTTP status when there was one, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFailure {
    /// The HTTP status (404, 400, ...); `None` when the status was a success but the body was unusable.
    pub status: Option<u16>,
    pub message: String,
}

impl std::fmt::Display for ServerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How storage failed, and so what to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageKind {
    /// Another process held the database and did not let go in time: try again later.
    Busy,
    /// The store key held by the host does not open this device's database (a restored backup, a re-enrolled
    /// biometric, another secure store, or a missing or damaged key). Nothing was read or deleted: retry with the
    /// right key, or [`crate::ChartLink::reset`] to start over empty.
    WrongKey,
    /// The database was written by a newer version of ChartLink (the app was downgraded). The file was left
    /// untouched: update the app, or [`crate::ChartLink::reset`] to start over empty.
    NewerVersion,
    /// The database file, or a record in it, is damaged (does not decrypt or is not a database).
    Damaged,
    /// The device is out of space.
    Full,
    /// The host's secure storage failed (Keychain/Keystore error, the user failed or dismissed the biometric
    /// check).
    SecureStore,
    /// Another failure of the database or its files.
    Other,
}

/// A storage failure: its kind and a message safe to show (no key, no health data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageFailure {
    pub kind: StorageKind,
    pub message: String,
}

impl std::fmt::Display for StorageFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
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

    /// An [`Error::Network`] of a kind, without a Retry-After.
    pub fn network(kind: NetworkKind, message: impl Into<String>) -> Self {
        Error::Network(NetworkFailure::new(kind, message))
    }

    /// An [`Error::Storage`] of a kind.
    pub fn storage(kind: StorageKind, message: impl Into<String>) -> Self {
        Error::Storage(StorageFailure {
            kind,
            message: message.into(),
        })
    }

    /// The storage kind, when this is a storage failure.
    pub fn storage_kind(&self) -> Option<StorageKind> {
        match self {
            Error::Storage(f) => Some(f.kind),
            _ => None,
        }
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Network(_)) || self.storage_kind() == Some(StorageKind::Busy)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::WrongKey => StorageKind::WrongKey,
            StoreError::NewerVersion { .. } => StorageKind::NewerVersion,
            StoreError::Busy => StorageKind::Busy,
            StoreError::Corrupt | StoreError::Decrypt => StorageKind::Damaged,
            StoreError::Full => StorageKind::Full,
            StoreError::Sqlite(_) | StoreError::Encrypt | StoreError::Io(_) => StorageKind::Other,
        };
        let message = match e {
            StoreError::WrongKey => {
                "the store key does not open this database: it was sealed under another key \
                 (a restored backup, a re-enrolled biometric or another secure store)"
                    .to_owned()
            }
            other => other.to_string(),
        };
        Error::Storage(StorageFailure { kind, message })
    }
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        match e {
            HttpError::Network(f) => Error::Network(f),
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
            DiscoveryError::Http(HttpError::Network(f)) => Error::Network(f),
            DiscoveryError::InvalidBase => Error::InvalidInput(e.to_string()),
            other => Error::Discovery(other.to_string()),
        }
    }
}

impl From<SecureStoreError> for Error {
    fn from(e: SecureStoreError) -> Self {
        Error::storage(StorageKind::SecureStore, e.to_string())
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
