//! What the host app provides: secure storage (Keychain / Android Keystore), the system browser for the portal's
//! login, and the clock. Each is a trait injected when the SDK is built, so core stays free of platform code; core
//! ships an in-memory and a file-backed [`SecureStore`] for tests and desktop hosts, and a system [`Clock`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

/// A failure of the host's secure storage. The message comes from the host and must not contain secrets.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("secure storage failed: {0}")]
pub struct SecureStoreError(pub String);

/// Secure key-value storage owned by the host: the iOS Keychain or the Android Keystore on phones, a 0600 file on
/// desktop. ChartLink keeps every token, key and pending PKCE verifier here and nowhere else.
pub trait SecureStore: Send + Sync {
    /// The value under `key`, if any.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SecureStoreError>;
    /// Stores `value` under `key`, replacing what was there. Must be durable when it returns.
    fn put(&self, key: &str, value: &[u8]) -> Result<(), SecureStoreError>;
    /// Removes `key` (no error if absent).
    fn delete(&self, key: &str) -> Result<(), SecureStoreError>;
    /// Every key that starts with `prefix`.
    fn keys(&self, prefix: &str) -> Result<Vec<String>, SecureStoreError>;
}

/// Why the browser step of a link did not return a redirect.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BrowserError {
    /// The user closed the browser or the sheet.
    #[error("the user cancelled the login")]
    Cancelled,
    /// The browser could not be shown or failed.
    #[error("the browser failed: {0}")]
    Failed(String),
}

/// The system browser for the portal's pages: Custom Tabs on Android, ASWebAuthenticationSession on iOS, the
/// default browser plus a loopback listener on desktop. `authorize` opens `url` and returns the full URL the portal
/// redirected to (starting with `redirect_uri`).
#[async_trait]
pub trait AuthBrowser: Send + Sync {
    /// Shows the portal and waits for the redirect.
    async fn authorize(&self, url: String, redirect_uri: String) -> Result<String, BrowserError>;
}

/// Time, as the SDK needs it. `now_unix_ms` is wall-clock time (token expiry, stored dates);
/// `monotonic_ms` must keep counting while the device sleeps and must not move when the user changes the wall
/// clock (Android `SystemClock.elapsedRealtime`, iOS `clock_gettime(CLOCK_MONOTONIC_RAW)`/boot time).
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_unix_ms(&self) -> i64;
    /// Milliseconds since an arbitrary fixed point, counting through sleep.
    fn monotonic_ms(&self) -> i64;
}

/// The operating system's clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    fn monotonic_ms(&self) -> i64 {
        boot_time_ms()
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn boot_time_ms() -> i64 {
    // CLOCK_BOOTTIME keeps counting while suspended; /proc/uptime reads it without unsafe code.
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map(|secs| (secs * 1000.0) as i64)
        .unwrap_or_else(instant_ms)
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn boot_time_ms() -> i64 {
    instant_ms()
}

fn instant_ms() -> i64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as i64
}

/// A clock the test moves by hand: wall and monotonic time advance together unless set apart.
#[derive(Debug)]
pub struct ManualClock {
    wall_ms: std::sync::atomic::AtomicI64,
    mono_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// Starts at the current wall time and monotonic zero.
    pub fn new() -> Self {
        Self {
            wall_ms: SystemClock.now_unix_ms().into(),
            mono_ms: 0.into(),
        }
    }

    /// Lets time pass (both clocks).
    pub fn advance_ms(&self, ms: i64) {
        use std::sync::atomic::Ordering::SeqCst;
        self.wall_ms.fetch_add(ms, SeqCst);
        self.mono_ms.fetch_add(ms, SeqCst);
    }

    /// Changes only the wall clock (the user setting the date), as a device does.
    pub fn set_wall_ms(&self, ms: i64) {
        self.wall_ms.store(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now_unix_ms(&self) -> i64 {
        self.wall_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn monotonic_ms(&self) -> i64 {
        self.mono_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A [`SecureStore`] in memory, for tests.
#[derive(Debug, Default)]
pub struct MemorySecureStore {
    items: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemorySecureStore {
    fn items(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<u8>>> {
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SecureStore for MemorySecureStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SecureStoreError> {
        Ok(self.items().get(key).cloned())
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), SecureStoreError> {
        self.items().insert(key.to_owned(), value.to_vec());
        Ok(())
    }
    fn delete(&self, key: &str) -> Result<(), SecureStoreError> {
        self.items().remove(key);
        Ok(())
    }
    fn keys(&self, prefix: &str) -> Result<Vec<String>, SecureStoreError> {
        Ok(self
            .items()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn SecureStore) {
        store.put("chartlink/a/1", b"one").expect("put");
        store.put("chartlink/a/2", b"two").expect("put");
        store.put("other", b"x").expect("put");
        assert_eq!(
            store.get("chartlink/a/1").expect("get").as_deref(),
            Some(&b"one"[..])
        );
        assert_eq!(
            store.keys("chartlink/a/").expect("keys"),
            ["chartlink/a/1", "chartlink/a/2"]
        );
        store.put("chartlink/a/1", b"uno").expect("put");
        assert_eq!(
            store.get("chartlink/a/1").expect("get").as_deref(),
            Some(&b"uno"[..])
        );
        store.delete("chartlink/a/1").expect("delete");
        store.delete("chartlink/a/1").expect("delete twice");
        assert_eq!(store.get("chartlink/a/1").expect("get"), None);
    }

    #[test]
    fn memory_store_behaves() {
        exercise(&MemorySecureStore::default());
    }

    #[test]
    fn system_clock_moves_forward() {
        let c = SystemClock;
        assert!(c.now_unix_ms() > 1_600_000_000_000);
        let a = c.monotonic_ms();
        assert!(c.monotonic_ms() >= a);
    }
}
