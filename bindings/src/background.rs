//! Background sync for the shells' schedulers (Android JobScheduler, iOS BGAppRefreshTask) and the "what's new"
//! list: the FFI face of `chartlink_core::background`.
//!
//! A locked client can run `background_sync`: it uses only the tokens (readable after the device's first unlock)
//! and the accounts' public keys, writes what arrives sealed so that only `unlock` makes it readable, and reports
//! counts per account and kind, never names, values, codes or ids (safe for a lock-screen notification). After
//! unlock, `whats_new` lists the records themselves.

use std::sync::Arc;

use chartlink_core as core;
use chartlink_core::RecordKind;

use crate::runtime::{guard, run_blocking, run_cancellable};
use crate::{CancelToken, ChartLink, Result};

fn count(n: u32) -> i64 {
    i64::from(n)
}

/// What the host lets a background sync spend.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncBudget {
    /// Stop after this long (iOS gives a refresh task about 30 s; Android's JobScheduler up to 10 minutes).
    #[uniffi(default = 25000)]
    pub max_duration_ms: i64,
    /// Stop once this many bytes arrived, inside an account's sync too (that account ends `BudgetExhausted`, what
    /// arrived kept); no further account starts (0: no cap).
    #[uniffi(default = 0)]
    pub max_bytes: i64,
    /// On a metered network: document contents wait for a later sync.
    #[uniffi(default = false)]
    pub metered: bool,
    /// The battery is low: nothing is synced.
    #[uniffi(default = false)]
    pub low_battery: bool,
    /// An account synced less than this long ago is not due (default one hour).
    #[uniffi(default = 3600)]
    pub min_interval_seconds: i64,
    /// The most bytes an account's locked inbox may hold until an unlock applies it (0: the SDK's default, 64
    /// MiB). Reaching it ends that account's run with `InboxFull`.
    #[uniffi(default = 0)]
    pub locked_inbox_max_bytes: i64,
}

impl From<SyncBudget> for core::SyncBudget {
    fn from(b: SyncBudget) -> Self {
        Self {
            max_duration_ms: u64::try_from(b.max_duration_ms).unwrap_or(0),
            max_bytes: u64::try_from(b.max_bytes).ok().filter(|n| *n > 0),
            metered: b.metered,
            low_battery: b.low_battery,
            min_interval_ms: b.min_interval_seconds.saturating_mul(1000),
            locked_inbox_max_bytes: u64::try_from(b.locked_inbox_max_bytes)
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or(core::background::DEFAULT_LOCKED_INBOX_MAX_BYTES),
        }
    }
}

// The kind of record a "new results" notice counts: core's own enum, exported as it is (the variants are stated
// once, in core's `record_kind!`).
chartlink_core::record_kind!(#[uniffi::remote(Enum)]);

/// What became of one account in a background sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum BackgroundOutcome {
    Synced,
    NotDue,
    LowBattery,
    BudgetExhausted,
    /// Needs linking again, or access was revoked.
    NotActive,
    /// Never unlocked on this device since this version: unlock once.
    NeedsUnlock,
    NetworkFailed,
    AuthorizationFailed,
    StorageFailed,
    /// The account's locked inbox is full: nothing more is written until an unlock applies it.
    InboxFull,
}

impl From<core::BackgroundOutcome> for BackgroundOutcome {
    fn from(o: core::BackgroundOutcome) -> Self {
        use core::BackgroundOutcome as O;
        match o {
            O::Synced => Self::Synced,
            O::NotDue => Self::NotDue,
            O::LowBattery => Self::LowBattery,
            O::BudgetExhausted => Self::BudgetExhausted,
            O::NotActive => Self::NotActive,
            O::NeedsUnlock => Self::NeedsUnlock,
            O::NetworkFailed => Self::NetworkFailed,
            O::AuthorizationFailed => Self::AuthorizationFailed,
            O::StorageFailed => Self::StorageFailed,
            O::InboxFull => Self::InboxFull,
        }
    }
}

/// How many new or changed records of one kind.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct KindCount {
    pub kind: RecordKind,
    pub count: i64,
}

/// One account in a background sync: counts only.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct AccountNews {
    pub account_id: String,
    /// The provider's FHIR server host (map it to the name the app shows).
    pub provider: String,
    pub outcome: BackgroundOutcome,
    pub counts: Vec<KindCount>,
}

/// What a background sync did: counts per account and kind, never names, values, codes or ids.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BackgroundReport {
    /// It ran locked: what it brought is readable after `unlock`.
    pub locked: bool,
    pub accounts: Vec<AccountNews>,
    /// All new or changed records.
    pub total: i64,
    pub duration_ms: i64,
}

impl From<core::BackgroundReport> for BackgroundReport {
    fn from(r: core::BackgroundReport) -> Self {
        Self {
            total: count(r.total()),
            locked: r.locked,
            duration_ms: i64::try_from(r.duration_ms).unwrap_or(i64::MAX),
            accounts: r
                .accounts
                .into_iter()
                .map(|a| AccountNews {
                    account_id: a.account_id,
                    provider: a.provider,
                    outcome: a.outcome.into(),
                    counts: a
                        .counts
                        .into_iter()
                        .map(|c| KindCount {
                            kind: c.kind,
                            count: count(c.count),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// One record a sync brought (readable after unlock).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NewRecord {
    pub account_id: String,
    pub provider: String,
    pub kind: RecordKind,
    pub resource_type: String,
    pub id: String,
    pub display_name: String,
    /// The record's clinical date as the server wrote it, at its precision.
    pub date: Option<String>,
    /// An edit of a record seen before, rather than a new one.
    pub changed: bool,
    pub synced_at_ms: i64,
}

impl From<core::NewRecord> for NewRecord {
    fn from(r: core::NewRecord) -> Self {
        Self {
            account_id: r.account_id,
            provider: r.provider,
            kind: r.kind,
            resource_type: r.resource_type,
            id: r.id,
            display_name: r.display_name,
            date: r.date.map(|d| d.to_string()),
            changed: r.changed,
            synced_at_ms: r.synced_at_ms,
        }
    }
}

#[uniffi::export]
impl ChartLink {
    /// Syncs the accounts that are due within `budget`, locked or not. Locked, it uses only the tokens and the
    /// accounts' public keys; every read still throws `Locked`, and what arrived is readable after `unlock`. The
    /// report (also sent as `Event.BackgroundSyncFinished`) holds counts only. `Storage` when the secure store
    /// cannot return the tokens (an iPhone not unlocked since it started).
    /// `cancel` (the Swift shell's path; Kotlin cancels the coroutine) stops it at its next request; what it wrote
    /// so far is kept.
    #[uniffi::method(default(cancel = None))]
    pub async fn background_sync(
        &self,
        budget: SyncBudget,
        cancel: Option<Arc<CancelToken>>,
    ) -> Result<BackgroundReport> {
        let sdk: Arc<core::ChartLink> = self.inner.clone();
        run_cancellable(cancel, async move {
            Ok(sdk.background_sync(&budget.into()).await?.into())
        })
        .await
    }

    /// The account ids a `background_sync` with this budget would sync now (works locked).
    pub fn sync_due(&self, budget: SyncBudget) -> Result<Vec<String>> {
        guard(|| Ok(self.inner.sync_due(&budget.into())?))
    }

    /// The records syncs brought since `mark_whats_new_seen`, newest first (locked syncs too). `Locked` while
    /// locked.
    pub async fn whats_new(&self) -> Result<Vec<NewRecord>> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.whats_new()?.into_iter().map(Into::into).collect())).await
    }

    /// Empties the "what's new" list.
    pub async fn mark_whats_new_seen(&self) -> Result<()> {
        let sdk = self.inner.clone();
        run_blocking(move || Ok(sdk.mark_whats_new_seen()?)).await
    }
}
