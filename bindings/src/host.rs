//! The host's capabilities as foreign traits (implemented in Kotlin or Swift), and the adapters that plug them into
//! core's traits.
//!
//! A host implementation can fail in ways Rust cannot see coming (a Kotlin `RuntimeException`, a Swift crash
//! guard): the adapters keep those on this side — a store or browser failure becomes a typed error through the
//! `From<UnexpectedUniFFICallbackError>` conversions, a throwing listener or clock is contained with
//! `catch_unwind` (an event is dropped, the system clock stands in) so the SDK never panics because of its host.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use chartlink_core as core;

use crate::error::{BrowserError, SecureStoreError};
use crate::records::Event;

/// Secure key-value storage owned by the host: the Android Keystore, the iOS Keychain. ChartLink keeps every token,
/// key and pending login verifier here and nowhere else. Calls come from ChartLink's threads, never the main thread
/// (a biometric prompt behind `get` is fine).
#[uniffi::export(foreign)]
pub trait SecureStore: Send + Sync {
    /// The value under `key`, or null/nil.
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, SecureStoreError>;
    /// Stores `value` under `key`, replacing what was there; durable when it returns.
    fn put(&self, key: String, value: Vec<u8>) -> Result<(), SecureStoreError>;
    /// Removes `key` (no error when absent).
    fn delete(&self, key: String) -> Result<(), SecureStoreError>;
    /// Every key that starts with `prefix`.
    fn keys(&self, prefix: String) -> Result<Vec<String>, SecureStoreError>;
}

/// The system browser for the provider's login and consent pages: Custom Tabs on Android,
/// `ASWebAuthenticationSession` on iOS. Opens `url` and returns the full URL the portal redirected to (it starts
/// with `redirect_uri`); throws `BrowserError.Cancelled` when the user closes it.
#[uniffi::export(foreign)]
#[async_trait::async_trait]
pub trait AuthBrowser: Send + Sync {
    async fn authorize(&self, url: String, redirect_uri: String) -> Result<String, BrowserError>;
}

/// Receives the SDK's events: sync progress, lock warnings, locked and unlocked, revoked access. Called on
/// ChartLink's threads: keep it quick and hand off to the UI thread (the shells turn it into a Flow / AsyncStream).
#[uniffi::export(foreign)]
pub trait EventListener: Send + Sync {
    fn on_event(&self, event: Event);
}

/// The device's clocks, when the default is not right for the platform. `monotonic_ms` must keep counting while
/// the device sleeps and ignore wall-clock changes (Android `SystemClock.elapsedRealtime()`, iOS
/// `clock_gettime_nsec_np(CLOCK_MONOTONIC_RAW)`); the idle lock is measured with it. Tests pass a manual clock.
#[uniffi::export(foreign)]
pub trait HostClock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> i64;
    /// Milliseconds since a fixed point, counting through sleep.
    fn monotonic_ms(&self) -> i64;
}

pub(crate) struct StoreAdapter(pub Arc<dyn SecureStore>);

fn store_error(e: SecureStoreError) -> core::SecureStoreError {
    core::SecureStoreError(e.to_string())
}

impl core::SecureStore for StoreAdapter {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, core::SecureStoreError> {
        self.0.get(key.to_owned()).map_err(store_error)
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), core::SecureStoreError> {
        self.0
            .put(key.to_owned(), value.to_vec())
            .map_err(store_error)
    }
    fn delete(&self, key: &str) -> Result<(), core::SecureStoreError> {
        self.0.delete(key.to_owned()).map_err(store_error)
    }
    fn keys(&self, prefix: &str) -> Result<Vec<String>, core::SecureStoreError> {
        self.0.keys(prefix.to_owned()).map_err(store_error)
    }
}

pub(crate) struct BrowserAdapter(pub Arc<dyn AuthBrowser>);

#[async_trait::async_trait]
impl core::AuthBrowser for BrowserAdapter {
    async fn authorize(
        &self,
        url: String,
        redirect_uri: String,
    ) -> Result<String, core::BrowserError> {
        match self.0.authorize(url, redirect_uri).await {
            Ok(redirect) => Ok(redirect),
            Err(BrowserError::Cancelled) => Err(core::BrowserError::Cancelled),
            Err(BrowserError::Failed { reason }) => Err(core::BrowserError::Failed(reason)),
        }
    }
}

pub(crate) struct ListenerAdapter(pub Arc<dyn EventListener>);

impl core::EventListener for ListenerAdapter {
    fn on_event(&self, event: core::Event) {
        let event = Event::from(event);
        // A listener that throws loses that one event; the SDK carries on.
        if catch_unwind(AssertUnwindSafe(|| self.0.on_event(event))).is_err() {
            tracing::warn!(target: "chartlink", "the app's event listener threw; the event was dropped");
        }
    }
}

pub(crate) struct ClockAdapter(pub Arc<dyn HostClock>);

impl core::Clock for ClockAdapter {
    fn now_unix_ms(&self) -> i64 {
        catch_unwind(AssertUnwindSafe(|| self.0.now_unix_ms()))
            .unwrap_or_else(|_| core::SystemClock.now_unix_ms())
    }
    fn monotonic_ms(&self) -> i64 {
        catch_unwind(AssertUnwindSafe(|| self.0.monotonic_ms()))
            .unwrap_or_else(|_| core::SystemClock.monotonic_ms())
    }
}
