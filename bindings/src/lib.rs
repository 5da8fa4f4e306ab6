//! # chartlink-ffi
//!
//! ChartLink for Kotlin and Swift: the one crate that depends on UniFFI. It exports a [`ChartLink`] object over
//! `chartlink_core::ChartLink`, the records and enums an app shows ([`records`]), one error type shaped by what
//! the caller should do ([`ChartLinkError`]), and the host capabilities as foreign traits ([`SecureStore`],
//! [`AuthBrowser`], [`EventListener`], [`HostClock`], [`ChartLinkLogger`]). Core knows nothing of this crate.
//!
//! - Async methods (link, sync, unlink, ...) become Kotlin `suspend` and Swift `async` functions; they run on one
//!   tokio runtime ([`runtime`]), and cancelling the coroutine or task aborts the Rust work.
//! - No panic crosses the boundary: async work runs in a runtime task whose panic becomes
//!   [`ChartLinkError::Internal`], synchronous calls go through `catch_unwind`, host callbacks that throw are
//!   contained ([`host`]). `debug_panic_for_test` (feature `test-support`) proves it from Kotlin.
//! - [`ChartLink::start_idle_timer`] returns a [`SubscriptionHandle`]; `cancel()` or dropping it stops the timer.
//! - On Android, a JNI hook (`android.rs`) hands the app context to the TLS certificate verifier of core's HTTP
//!   client; the Kotlin shell calls it before building the SDK.
//!
//! Generate the bindings with the pinned generator (`cargo xtask bindings` does this and runs the Kotlin tests):
//!
//! ```text
//! cargo build -p chartlink-ffi --features bindgen
//! target/debug/uniffi-bindgen generate target/debug/libchartlink_ffi.so --language kotlin --out-dir out/
//! ```
//!
//! The Kotlin package is `dev.chartlink.sdk` and the Swift C module `ChartLinkFFI` (see `uniffi.toml`); the thin
//! platform shells live in `android/` and `ios/`.

uniffi::setup_scaffolding!();

#[cfg(target_os = "android")]
mod android;
pub mod background;
pub mod cancel;
pub mod error;
pub mod host;
pub mod logger;
pub mod pages;
pub mod records;
pub mod runtime;

use std::sync::{Arc, Weak};
use std::time::Duration;

use chartlink_core as core;

pub use background::*;
pub use cancel::CancelToken;
pub use error::{AuthorizationReason, BrowserError, ChartLinkError, SecureStoreError};
pub use host::{AuthBrowser, EventListener, HostClock, SecureStore};
pub use logger::{ChartLinkLogger, LogLevel, set_logger};
pub use pages::*;
pub use records::*;
pub use runtime::SubscriptionHandle;

#[cfg(feature = "test-support")]
use runtime::run;
use runtime::{guard, guard_or, run_blocking, run_cancellable};

type Result<T> = std::result::Result<T, ChartLinkError>;

/// How often the idle timer evaluates the lock.
const IDLE_TICK: Duration = Duration::from_secs(1);

/// The host capabilities the core takes, from the foreign implementations.
fn host_of(
    secure_store: Arc<dyn SecureStore>,
    browser: Option<Arc<dyn AuthBrowser>>,
    listener: Option<Arc<dyn EventListener>>,
    clock: Option<Arc<dyn HostClock>>,
) -> core::Host {
    core::Host {
        secure_store: Arc::new(host::StoreAdapter(secure_store)),
        browser: browser.map(|b| Arc::new(host::BrowserAdapter(b)) as _),
        clock: match clock {
            Some(c) => Arc::new(host::ClockAdapter(c)),
            None => Arc::new(core::SystemClock),
        },
        listener: listener.map(|l| Arc::new(host::ListenerAdapter(l)) as _),
    }
}

/// Hands the application of the locked inbox to the SDK's runtime, so that `new` and `unlock` return at once (a
/// large inbox took seconds on the caller's thread, often the main thread).
fn apply_inbox_off_thread(sdk: &Arc<core::ChartLink>) {
    let sdk = sdk.clone();
    runtime::spawn_blocking_detached(move || {
        // `Locked` (locked again meanwhile) leaves it for the next unlock; other failures are logged by the core.
        let _ = sdk.apply_locked_inbox();
    });
}

/// The SDK: link a patient's record at their provider, sync it into the encrypted store, read it, lock when idle,
/// switch between family members. One per app; share it.
#[derive(Debug, uniffi::Object)]
pub struct ChartLink {
    inner: Arc<core::ChartLink>,
}

#[uniffi::export]
impl ChartLink {
    /// Builds the SDK: opens the encrypted store (reading its key from `secure_store`) and loads the accounts
    /// linked earlier. Starts unlocked. Fails with `InvalidInput` for a bad configuration, `Storage` when the
    /// secure store or the database cannot be used, with its `kind`: `WrongKey` when the store key does not open
    /// the database, `NewerVersion` after a downgrade, `Busy` when another process holds it (see `reset_chartlink`
    /// and `take_store_notices`).
    #[uniffi::constructor(default(browser = None, listener = None, clock = None))]
    pub fn new(
        config: ChartLinkConfig,
        secure_store: Arc<dyn SecureStore>,
        browser: Option<Arc<dyn AuthBrowser>>,
        listener: Option<Arc<dyn EventListener>>,
        clock: Option<Arc<dyn HostClock>>,
    ) -> Result<Arc<Self>> {
        guard(|| {
            let host = host_of(secure_store, browser, listener, clock);
            let inner = Arc::new(core::ChartLink::new_deferred(config.into_core()?, host)?);
            apply_inbox_off_thread(&inner);
            Ok(Arc::new(Self { inner }))
        })
    }

    /// Builds the SDK locked, without reading the store key (so no Face ID / fingerprint prompt while the app
    /// starts): every read answers `Locked` until `unlock` / `unlock_async`. The same errors as `new` otherwise.
    #[uniffi::constructor(default(browser = None, listener = None, clock = None))]
    pub fn new_locked(
        config: ChartLinkConfig,
        secure_store: Arc<dyn SecureStore>,
        browser: Option<Arc<dyn AuthBrowser>>,
        listener: Option<Arc<dyn EventListener>>,
        clock: Option<Arc<dyn HostClock>>,
    ) -> Result<Arc<Self>> {
        guard(|| {
            let host = host_of(secure_store, browser, listener, clock);
            let inner = core::ChartLink::new_locked(config.into_core()?, host)?;
            Ok(Arc::new(Self {
                inner: Arc::new(inner),
            }))
        })
    }

    // ---- linking ----

    /// Links in one call: opens the provider's login and consent pages in the `AuthBrowser` and completes the
    /// link. `fhir_base` is the provider's FHIR R4 base URL. Fails with `Cancelled` when the user closes the
    /// browser, `Authorization` when they deny or the flow fails, `InvalidInput` for a bad URL or no browser.
    #[uniffi::method(default(cancel = None))]
    pub async fn link(
        &self,
        fhir_base: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<LinkedAccount> {
        let sdk = self.inner.clone();
        run_cancellable(
            cancel,
            async move { Ok(sdk.link(&fhir_base).await?.into()) },
        )
        .await
    }

    /// Starts a link the app completes itself: open the returned URL, then pass the redirect to `complete_link`.
    #[uniffi::method(default(cancel = None))]
    pub async fn begin_link(
        &self,
        fhir_base: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<AuthorizationRequest> {
        let sdk = self.inner.clone();
        run_cancellable(cancel, async move {
            Ok(sdk.begin_link(&fhir_base).await?.into())
        })
        .await
    }

    /// Finishes a link with the URL the provider redirected to (from the app's deep-link handler).
    #[uniffi::method(default(cancel = None))]
    pub async fn complete_link(
        &self,
        redirect_url: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<LinkedAccount> {
        let sdk = self.inner.clone();
        run_cancellable(cancel, async move {
            Ok(sdk.complete_link(&redirect_url).await?.into())
        })
        .await
    }

    /// Abandons any link in progress.
    pub fn cancel_link(&self) -> Result<()> {
        guard(|| Ok(self.inner.cancel_link()?))
    }

    /// The linked accounts.
    pub fn accounts(&self) -> Result<Vec<LinkedAccount>> {
        guard(|| Ok(records::all(self.inner.accounts()?)))
    }

    /// Registers this device with the provider (where it offers that) so access continues without the refresh
    /// token. Returns the device's client id.
    #[uniffi::method(default(cancel = None))]
    pub async fn register_device(
        &self,
        account_id: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<String> {
        let sdk = self.inner.clone();
        run_cancellable(cancel, async move {
            Ok(sdk.register_device(&account_id).await?)
        })
        .await
    }

    /// Revokes the account's access at the provider and deletes every local trace of it.
    #[uniffi::method(default(cancel = None))]
    pub async fn unlink(
        &self,
        account_id: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<UnlinkOutcome> {
        let sdk = self.inner.clone();
        run_cancellable(
            cancel,
            async move { Ok(sdk.unlink(&account_id).await?.into()) },
        )
        .await
    }

    /// After a revocation kept read-only: the user has seen it; delete the record and the account.
    #[uniffi::method(default(cancel = None))]
    pub async fn confirm_revoked(
        &self,
        account_id: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<()> {
        let sdk = self.inner.clone();
        run_cancellable(cancel, async move {
            Ok(sdk.confirm_revoked(&account_id).await?)
        })
        .await
    }

    // ---- sync ----

    /// Syncs one account's record into the encrypted store. Progress and the report also go to the listener.
    /// The idle lock stops a sync cleanly (`Locked`); the next sync resumes where it stopped. `AccessRevoked`
    /// when the provider ended access (the record is then handled by the revocation policy).
    #[uniffi::method(default(cancel = None))]
    pub async fn sync(
        &self,
        account_id: String,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<SyncReport> {
        let sdk = self.inner.clone();
        run_cancellable(
            cancel,
            async move { Ok(sdk.sync(&account_id).await?.into()) },
        )
        .await
    }

    // ---- patients ----

    /// Every patient the user linked (themselves, children, adults under proxy), one per person.
    pub async fn patients(&self) -> Result<Vec<PatientContext>> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(records::all(sdk.patients()?))).await
    }

    /// The patient the reads show, if any.
    pub async fn active_patient(&self) -> Result<Option<PatientContext>> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.active_patient()?.map(Into::into))).await
    }

    /// Makes a patient (a `PatientContext.id`, or one of its account ids) active: every read after it shows only
    /// that patient's record. `InvalidInput` for an unknown id.
    pub async fn switch_patient(&self, context_id: String) -> Result<PatientContext> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.switch_patient(&context_id)?.into())).await
    }

    /// Patients linked at different providers who look like one person (a shared identifier, or the same name,
    /// birth date and sex). Nothing is merged on a guess: show them to the user, then `confirm_merge`.
    pub async fn merge_suggestions(&self) -> Result<Vec<MergeSuggestion>> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(records::all(sdk.merge_suggestions()?))).await
    }

    /// Shows the patients `context_ids` as one person from now on (the user confirmed it).
    pub async fn confirm_merge(&self, context_ids: Vec<String>) -> Result<PatientContext> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.confirm_merge(&context_ids)?.into())).await
    }

    /// Undoes a merge: the patient's providers are shown as separate patients again.
    pub async fn split_patient(&self, context_id: String) -> Result<()> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.split_patient(&context_id)?)).await
    }

    // ---- reads of the active patient (all fail with `Locked` while locked) ----
    //
    // Async: SQLite and decryption run on the runtime's blocking pool, never on the caller's thread (Kotlin
    // `suspend`, Swift `async`). Short, so they take no `CancelToken`: a cancelled caller stops waiting.

    /// One test over time by its LOINC code (e.g. "4548-4", HbA1c); null/nil when there is no numeric result.
    pub async fn lab_trend(&self, code: String) -> Result<Option<LabTrend>> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.lab_trend(&code)?.map(Into::into))).await
    }

    /// A document's content (downloaded during sync); null/nil when there is none.
    pub async fn document_content(&self, document_id: String) -> Result<Option<DocumentContent>> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.document_content(&document_id)?.map(Into::into))).await
    }

    /// A document's content as text, for text and HTML documents (HTML as markup); null/nil otherwise.
    pub async fn document_text(&self, document_id: String) -> Result<Option<String>> {
        let sdk = self.inner.clone();
        run_blocking(move || {
            Ok(match sdk.document_content(&document_id)? {
                Some(core::views::DocumentContent::Text(text)) => Some(text),
                Some(core::views::DocumentContent::Html(html)) => Some(html),
                _ => None,
            })
        })
        .await
    }

    /// Who the record is about.
    pub async fn demographics(&self) -> Result<Option<Demographics>> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.demographics()?.map(Into::into))).await
    }

    /// Social history (smoking status, alcohol use), whichever category the provider files it under.
    pub async fn social_history(&self) -> Result<Vec<Observation>> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(records::all(sdk.social_history()?))).await
    }

    /// The health summary: allergies, active medications and problems, immunizations, the latest results.
    pub async fn summary(&self) -> Result<HealthSummary> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.summary()?.into())).await
    }

    /// One record of the active patient by its FHIR type and id, typed as its list shows it: what a "what's new"
    /// row (`NewRecord.resourceType`, `NewRecord.id`) opens. null/nil when none of the patient's providers holds
    /// it. `InvalidInput` for a malformed type or id, or a type ChartLink shows no record of (`recordJson` reads
    /// any).
    pub async fn record(&self, resource_type: String, id: String) -> Result<Option<ChartRecord>> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.record(&resource_type, &id)?.map(Into::into))).await
    }

    /// One stored record of the active patient as the FHIR JSON the provider sent, by type and id (a
    /// `NewRecord`'s `resourceType`-free `id` with its kind's type, or any id a view shows): null/nil when none of
    /// the patient's providers holds it. `InvalidInput` for a malformed type or id.
    pub async fn record_json(&self, resource_type: String, id: String) -> Result<Option<String>> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.record_json(&resource_type, &id)?)).await
    }

    /// The active patient's whole record, from every provider, as a FHIR Bundle (type collection) or as NDJSON.
    /// It holds health information: the app decides where it goes (a share sheet, a file the user picks).
    pub async fn export(&self, format: ExportFormat) -> Result<String> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.export(format)?)).await
    }

    // ---- idle lock and lifecycle ----

    /// Starts the timer that evaluates the idle lock once a second on ChartLink's runtime, so `LockWarning` and
    /// `Locked` events arrive while the user does nothing. Keep the handle while the app is in the foreground;
    /// `cancel()` it (or drop it) to stop. Without a timer the lock is still evaluated on every call.
    pub fn start_idle_timer(&self) -> Result<Arc<SubscriptionHandle>> {
        guard(|| {
            let sdk: Weak<core::ChartLink> = Arc::downgrade(&self.inner);
            let task = runtime::runtime()?.spawn(async move {
                let mut every = tokio::time::interval(IDLE_TICK);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    every.tick().await;
                    // The timer does not keep the SDK alive.
                    let Some(sdk) = sdk.upgrade() else { break };
                    guard_or((), || sdk.tick());
                }
            });
            Ok(Arc::new(SubscriptionHandle::new(task.abort_handle())))
        })
    }

    /// The user did something: restarts the idle timer. Call it on touches and key presses (the shells do).
    pub fn record_activity(&self) {
        guard_or((), || self.inner.record_activity())
    }

    /// The app went to the background. The background grace period then ends in a lock by itself (a watcher on
    /// ChartLink's runtime ticks while the app stays away), without waiting for the next call: the store key and
    /// the tokens leave memory when the grace period is over, not when the user comes back.
    pub fn app_backgrounded(&self) {
        guard_or((), || {
            self.inner.app_backgrounded();
            if !self.inner.grace_running() {
                return;
            }
            let sdk: Weak<core::ChartLink> = Arc::downgrade(&self.inner);
            if let Ok(rt) = runtime::runtime() {
                rt.spawn(async move {
                    loop {
                        tokio::time::sleep(IDLE_TICK).await;
                        // The watcher does not keep the SDK alive; it ends at the lock or the foreground.
                        let Some(sdk) = sdk.upgrade() else { break };
                        if !guard_or(false, || {
                            sdk.tick();
                            sdk.grace_running()
                        }) {
                            break;
                        }
                    }
                });
            }
        })
    }

    /// The app came back: locks if it stayed away longer than the grace period.
    pub fn app_foregrounded(&self) {
        guard_or((), || self.inner.app_foregrounded())
    }

    /// Locks now: the store key and tokens leave memory and reads fail with `Locked` until `unlock()`.
    pub fn lock(&self) -> Result<()> {
        guard(|| {
            self.inner.lock();
            Ok(())
        })
    }

    /// Unlocks: reads the store key from the secure store (where the platform asks for the biometric or
    /// passcode check). `Storage` when the secure store refuses (the check failed or was dismissed). Returns once
    /// the key is read: what background syncs wrote while locked is applied on the SDK's runtime afterwards
    /// (`Event.LockedInboxApplied` when there was something; reads until then show the record before it).
    pub fn unlock(&self) -> Result<()> {
        guard(|| {
            self.inner.unlock_deferred()?;
            apply_inbox_off_thread(&self.inner);
            Ok(())
        })
    }

    /// `unlock` off the caller's thread (a blocking thread of the SDK's runtime): call it from the main thread
    /// or a UI coroutine while the platform shows its biometric prompt. Returns after what background syncs wrote
    /// while locked is applied, so reads after it are complete.
    pub async fn unlock_async(&self) -> Result<()> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.unlock()?)).await
    }

    /// Why the SDK is locked, or null/nil when it is not (evaluates the timers first).
    pub fn locked(&self) -> Option<LockReason> {
        // Fail closed: if evaluating the lock ever failed, report locked.
        guard_or(Some(LockReason::Explicit), || self.inner.locked())
    }

    // ---- the device's own files ----

    /// What happened to the device's own files since the last call: a damaged database moved aside (rebuilt by the
    /// next sync), damaged rows removed (fetched again by the next sync), secure-store entries that could not be
    /// read. Show them, or attach them to a bug report; none holds health data.
    pub fn take_store_notices(&self) -> Vec<StoreNotice> {
        guard_or(Vec::new(), || records::all(self.inner.take_store_notices()))
    }

    /// Deletes the account entries the secure store could not return (see `StoreNotice.UnreadableAccountEntry`)
    /// and the records of those accounts. Returns how many were deleted. Deletes rows: on the SDK's blocking pool,
    /// like the reads.
    pub async fn discard_unreadable_account_entries(&self) -> Result<u64> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.discard_unreadable_account_entries()? as u64)).await
    }
}

/// Deletes everything ChartLink keeps on this device for `config`: the database and its copies, the store key and
/// every account entry in `secure_store`. The way out of a `Storage` error of kind `WrongKey` or `NewerVersion`, or
/// of unreadable entries when the user chooses to start over; release every `ChartLink` first. Nothing is revoked
/// at the provider.
#[uniffi::export]
pub fn reset_chartlink(config: ChartLinkConfig, secure_store: Arc<dyn SecureStore>) -> Result<()> {
    guard(|| {
        let host = core::Host::new(Arc::new(host::StoreAdapter(secure_store)));
        Ok(core::ChartLink::reset(&config.into_core()?, &host)?)
    })
}

/// Functions only the host tests call, compiled only with the `test-support` feature (which `cargo xtask bindings`
/// enables; the libraries android/build-rust.sh and ios/build-xcframework.sh ship are built without it, so an app
/// never sees them).
#[cfg(feature = "test-support")]
mod test_support {
    use super::{Result, guard, run};

    /// TEST ONLY — panics inside a synchronous ChartLink call, to prove the panic reaches the app as
    /// `ChartLinkError.Internal` and not as a crash.
    #[uniffi::export]
    pub fn debug_panic_for_test() -> Result<()> {
        guard(|| panic!("debug_panic_for_test: a deliberate panic"))
    }

    /// TEST ONLY — panics inside an async ChartLink call on the runtime (the path of `link`, `sync`, ...), to
    /// prove it arrives as `ChartLinkError.Internal`.
    #[uniffi::export]
    pub async fn debug_panic_async_for_test() -> Result<()> {
        run(async { panic!("debug_panic_async_for_test: a deliberate panic") }).await
    }
}
