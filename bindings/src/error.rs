//! The errors that cross the boundary: [`ChartLinkError`], which every fallible call returns, and the two errors a
//! host implementation throws back into Rust ([`SecureStoreError`], [`BrowserError`]).
//!
//! `ChartLinkError` is shaped by what the caller should do, and converted from [`chartlink_core::Error`] here and
//! nowhere else. Its messages are the core's, which never hold a token or health data; a panic becomes
//! [`ChartLinkError::Internal`] with a fixed message (the panic's own text stays on the Rust side).

pub use chartlink_core::{AuthorizationReason, NetworkKind, StorageKind};

/// What went wrong, and so what the app should do. Kotlin: `ChartLinkException.*`; Swift: `ChartLinkError.*`.
/// Every variant carries a message that is safe to show or log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum ChartLinkError {
    /// The network or the server failed transiently: try again later.
    #[error("network problem: {detail}")]
    Network {
        /// How: unreachable, timed out, interrupted, a refused certificate, a server error, throttled.
        kind: NetworkKind,
        /// How long the server asked to wait (its Retry-After, at most 120 s), when it said: retry no sooner.
        retry_after_seconds: Option<i64>,
        /// What failed, safe to show (a host name at most).
        detail: String,
    },
    /// Linking failed or the link cannot be used (denied, expired, replayed, an invalid answer): link again.
    #[error("authorization failed: {detail}")]
    Authorization {
        /// Why: the patient pressed Deny, the login took too long, the redirect was not this link's, the server
        /// refused, ...: what to tell the user, and whether trying again can help.
        reason: AuthorizationReason,
        /// What the provider said (sanitised), safe to show.
        detail: String,
    },
    /// The address is not a usable SMART server (no or an unusable SMART configuration, no PKCE S256, not FHIR R4).
    #[error("the provider's SMART configuration could not be used: {0}")]
    Discovery(String),
    /// Access ended at the provider (expired or revoked): the record stays readable (unless the app chose
    /// `PurgeNow`); link the account again to update it.
    #[error("access to this record was revoked")]
    AccessRevoked,
    /// Access can no longer be renewed (no refresh token, or renewal refused): the record stays readable; ask the
    /// user to link again (`link` restores the same account).
    #[error("access to this record has to be renewed: link the account again")]
    RelinkNeeded,
    /// The provider's FHIR server answered this request with something that cannot be used (a 404 or 400 on a read,
    /// an answer that is not FHIR, one too large): not an authorization problem, and not transient.
    #[error("the provider's server could not answer this: {detail}")]
    Server {
        /// The HTTP status, when the server answered with an error status.
        status: Option<i64>,
        detail: String,
    },
    /// The SDK is locked (idle lockout): ask the user to unlock.
    #[error("ChartLink is locked")]
    Locked,
    /// The app passed something invalid (a bad URL, an unknown patient, a missing browser).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Secure storage or the local database failed: `kind` says how, and so what to do (busy: retry later; wrong
    /// key: the right key or `reset`; newer version: update the app; damaged, full, secure store). Nothing was
    /// deleted.
    #[error("storage problem: {detail}")]
    Storage {
        kind: StorageKind,
        /// What failed, safe to show (no key, no health data).
        detail: String,
    },
    /// The user cancelled (closed the browser).
    #[error("cancelled by the user")]
    Cancelled,
    /// A bug in ChartLink (a panic, caught before it reached the app). Report it; the SDK stays usable.
    #[error("internal error in ChartLink: {0}")]
    Internal(String),
}

/// Why a link could not be made or used. Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum AuthorizationReason {
    /// The patient chose Deny at the portal.
    Denied,
    /// The portal's pages took longer than a link may (10 minutes): start again.
    Expired,
    /// No link is in progress for this redirect (already completed, cancelled, or never started here).
    NoLinkInProgress,
    /// The redirect does not belong to the link in progress (possibly forged): nothing was exchanged.
    Mismatch,
    /// The provider's authorization server refused; its reason, sanitised, is in the message.
    Refused,
    /// The server's answer is not usable.
    InvalidAnswer,
    /// The browser could not be shown or failed.
    BrowserFailed,
}

/// How the network failed. Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum NetworkKind {
    /// No connection could be made (offline, the name does not resolve, the server is down).
    Unreachable,
    /// The server did not answer in time.
    TimedOut,
    /// The connection broke while the answer was being read.
    Interrupted,
    /// The server's certificate was refused (expired, another name, a captive portal or middlebox in the way).
    Certificate,
    /// The server failed (a 5xx).
    ServerError,
    /// The server asked to slow down (429, or 503 with Retry-After).
    Throttled,
}

/// How storage failed. Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum StorageKind {
    /// Another process holds the database: try again later.
    Busy,
    /// The store key does not open this device's database (a restored backup, a re-enrolled biometric, another
    /// secure store, a missing key): retry with the right key, or `reset` to start over.
    WrongKey,
    /// The database was written by a newer version of the app (a downgrade); it was left untouched.
    NewerVersion,
    /// The database, or a record in it, is damaged.
    Damaged,
    /// The device is out of space.
    Full,
    /// The host's secure storage failed (Keychain/Keystore, a failed or dismissed biometric check).
    SecureStore,
    /// Another failure of the database or its files.
    Other,
}

/// The message of [`ChartLinkError::Internal`] for a caught panic.
pub(crate) const PANIC_MESSAGE: &str =
    "an unexpected failure was caught (a bug); the call did not complete";

impl ChartLinkError {
    pub(crate) fn panicked() -> Self {
        ChartLinkError::Internal(PANIC_MESSAGE.into())
    }
}

impl From<chartlink_core::Error> for ChartLinkError {
    fn from(e: chartlink_core::Error) -> Self {
        use chartlink_core::Error as E;
        match e {
            E::Network(f) => ChartLinkError::Network {
                kind: f.kind,
                retry_after_seconds: f
                    .retry_after
                    .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                detail: f.message,
            },
            E::Server(f) => ChartLinkError::Server {
                status: f.status.map(i64::from),
                detail: f.message,
            },
            E::Authorization(f) => ChartLinkError::Authorization {
                reason: f.reason,
                detail: f.message,
            },
            E::Discovery(m) => ChartLinkError::Discovery(m),
            E::AccessRevoked => ChartLinkError::AccessRevoked,
            E::RelinkNeeded => ChartLinkError::RelinkNeeded,
            E::Locked => ChartLinkError::Locked,
            E::InvalidInput(m) => ChartLinkError::InvalidInput(m),
            E::Storage(f) => ChartLinkError::Storage {
                kind: f.kind,
                detail: f.message,
            },
            E::Cancelled => ChartLinkError::Cancelled,
        }
    }
}

/// A failure of the host's secure storage, thrown by a `SecureStore` implementation
/// (Kotlin: `SecureStoreException.Failed`). The reason must not contain secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SecureStoreError {
    /// The store failed (Keychain/Keystore error, the user failed or dismissed the biometric check, ...).
    #[error("{reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for SecureStoreError {
    /// An implementation threw something other than `SecureStoreError`; its text is not passed on (unknown
    /// content).
    fn from(_: uniffi::UnexpectedUniFFICallbackError) -> Self {
        SecureStoreError::Failed {
            reason: "the host's secure storage threw an unexpected error".into(),
        }
    }
}

/// Why the browser step of a link did not return a redirect, thrown by an `AuthBrowser` implementation
/// (Kotlin: `BrowserException.Cancelled` / `.Failed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum BrowserError {
    /// The user closed the browser or the sheet: the link ends with `ChartLinkError.Cancelled`.
    #[error("the user cancelled the login")]
    Cancelled,
    /// The browser could not be shown or failed.
    #[error("the browser failed: {reason}")]
    Failed { reason: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for BrowserError {
    fn from(_: uniffi::UnexpectedUniFFICallbackError) -> Self {
        BrowserError::Failed {
            reason: "the host's browser threw an unexpected error".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_keeps_its_kind_and_message() {
        use chartlink_core::Error as E;
        let cases = [
            (
                E::Network(chartlink_core::NetworkFailure {
                    kind: NetworkKind::Throttled,
                    retry_after: Some(std::time::Duration::from_secs(30)),
                    message: "down".into(),
                }),
                ChartLinkError::Network {
                    kind: NetworkKind::Throttled,
                    retry_after_seconds: Some(30),
                    detail: "down".into(),
                },
            ),
            (
                E::network(NetworkKind::Unreachable, "offline"),
                ChartLinkError::Network {
                    kind: NetworkKind::Unreachable,
                    retry_after_seconds: None,
                    detail: "offline".into(),
                },
            ),
            (
                E::Server(chartlink_core::ServerFailure {
                    status: Some(404),
                    message: "not found".into(),
                }),
                ChartLinkError::Server {
                    status: Some(404),
                    detail: "not found".into(),
                },
            ),
            (
                E::authorization(chartlink_core::AuthorizationReason::Denied, "denied".into()),
                ChartLinkError::Authorization {
                    reason: chartlink_core::AuthorizationReason::Denied,
                    detail: "denied".into(),
                },
            ),
            (E::AccessRevoked, ChartLinkError::AccessRevoked),
            (E::RelinkNeeded, ChartLinkError::RelinkNeeded),
            (E::Locked, ChartLinkError::Locked),
            (
                E::InvalidInput("bad".into()),
                ChartLinkError::InvalidInput("bad".into()),
            ),
            (
                E::storage(StorageKind::Full, "disk"),
                ChartLinkError::Storage {
                    kind: StorageKind::Full,
                    detail: "disk".into(),
                },
            ),
            (E::Cancelled, ChartLinkError::Cancelled),
            (
                E::storage(StorageKind::WrongKey, "restored"),
                ChartLinkError::Storage {
                    kind: StorageKind::WrongKey,
                    detail: "restored".into(),
                },
            ),
            (
                E::from(chartlink_core::store::StoreError::NewerVersion { found: 9, known: 8 }),
                ChartLinkError::Storage {
                    kind: StorageKind::NewerVersion,
                    detail: "the database was written by a newer ChartLink (schema version 9, this version knows up to 8)".into(),
                },
            ),
            (
                E::from(chartlink_core::store::StoreError::Busy),
                ChartLinkError::Storage {
                    kind: StorageKind::Busy,
                    detail: "the database is busy in another process".into(),
                },
            ),
        ];
        for (core, ffi) in cases {
            let text = core.to_string();
            let converted = ChartLinkError::from(core);
            assert_eq!(converted, ffi);
            assert_eq!(converted.to_string(), text, "same message as core");
        }
    }
}
