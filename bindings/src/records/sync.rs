//! Sync results and what the SDK reports: [`SyncReport`], [`SyncProgress`], [`Event`], [`StoreNotice`].

use chartlink_core as core;
use chartlink_core::LockReason;

use super::count;

/// New, changed and deleted resources of one FHIR type in one sync.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct TypeCounts {
    pub resource_type: String,
    pub new: i64,
    pub changed: i64,
    pub deleted: i64,
}

/// A query of a sync that did not complete (the next sync retries it).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncFailure {
    pub query: String,
    /// The patient did not grant this data: expected, not an error to show.
    pub not_granted: bool,
    pub reason: String,
}

/// What a sync did: enough for a "3 new results" notice.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    pub account_id: String,
    pub full_pass: bool,
    pub per_type: Vec<TypeCounts>,
    pub failures: Vec<SyncFailure>,
    /// New plus changed, over all types.
    pub updated: i64,
    pub resources_seen: i64,
    /// Resources the server returned for another patient: refused, never stored.
    pub refused: i64,
    pub documents_fetched: i64,
    pub duration_ms: i64,
}

impl From<core::SyncReport> for SyncReport {
    fn from(r: core::SyncReport) -> Self {
        Self {
            updated: i64::from(r.updated()),
            account_id: r.account_id,
            full_pass: r.full_pass,
            per_type: r
                .per_type
                .into_iter()
                .map(|(resource_type, c)| TypeCounts {
                    resource_type,
                    new: c.new.into(),
                    changed: c.changed.into(),
                    deleted: c.deleted.into(),
                })
                .collect(),
            failures: r
                .failures
                .into_iter()
                .map(|f| SyncFailure {
                    query: f.query,
                    not_granted: f.not_granted,
                    reason: f.reason,
                })
                .collect(),
            resources_seen: count(r.resources_seen),
            refused: count(r.refused),
            documents_fetched: count(r.documents_fetched),
            duration_ms: i64::try_from(r.duration_ms).unwrap_or(i64::MAX),
        }
    }
}

/// Progress of a sync, after each page of each query.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    pub account_id: String,
    pub query: String,
    pub pages: i64,
    pub resources: i64,
    pub queries_done: i64,
    pub queries_total: i64,
}

impl From<core::SyncProgress> for SyncProgress {
    fn from(p: core::SyncProgress) -> Self {
        Self {
            account_id: p.account_id,
            query: p.query,
            pages: count(p.pages),
            resources: count(p.resources),
            queries_done: count(p.queries_done),
            queries_total: count(p.queries_total),
        }
    }
}

/// Why the SDK locked. Core's own enum, exported as it is.
#[uniffi::remote(Enum)]
pub enum LockReason {
    /// No activity for the timeout.
    Idle,
    /// The app stayed in the background longer than the grace period.
    Background,
    /// `lock()` was called.
    Explicit,
}

/// Something the app should know about, delivered to the `EventListener` (and the shells' Flow / AsyncStream).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum Event {
    SyncProgress {
        progress: SyncProgress,
    },
    SyncFinished {
        report: SyncReport,
    },
    /// A background sync finished: counts per account and kind only (safe for a lock-screen notification).
    BackgroundSyncFinished {
        report: crate::background::BackgroundReport,
    },
    /// The idle lock fires in `remaining_ms` unless the user does something (`record_activity`).
    LockWarning {
        remaining_ms: i64,
    },
    /// The records are unreadable until `unlock()`.
    Locked {
        reason: LockReason,
    },
    Unlocked,
    /// The provider ended access to this account's record.
    AccessRevoked {
        account_id: String,
    },
    /// Access to this account can no longer be renewed; its record stays readable. Ask the user to link again.
    RelinkNeeded {
        account_id: String,
    },
    /// A link was made with less than asked: kinds of data not granted, or no way to renew access (`can_renew`
    /// false: the user links again when the access token expires). Tell the user now.
    LinkLimited {
        account_id: String,
        not_granted: Vec<core::DataCategory>,
        can_renew: bool,
    },
    /// What background syncs wrote while locked was applied (`batches` sealed pages): read the records again.
    /// `new` and `unlock` return before it is applied (on the SDK's runtime); until this event their reads show the
    /// record as it was before. `unlock_async` returns after it.
    LockedInboxApplied {
        batches: u64,
    },
}

/// Something the app should know about the device's own files (`ChartLink.take_store_notices`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum StoreNotice {
    /// The database was damaged: it was moved to `moved_to` and a fresh one started; the next sync fills it again.
    /// The copy is deleted by an unlink or a reset.
    DatabaseMovedAside { moved_to: String },
    /// `count` rows of an account were damaged: removed, and fetched again by its next sync.
    DamagedRows { account_id: String, count: u64 },
    /// An account entry of the secure store could not be read; the account was skipped.
    UnreadableAccountEntry { key: String },
}

impl From<core::StoreNotice> for StoreNotice {
    fn from(n: core::StoreNotice) -> Self {
        match n {
            core::StoreNotice::DatabaseMovedAside { moved_to } => Self::DatabaseMovedAside {
                moved_to: moved_to.to_string_lossy().into_owned(),
            },
            core::StoreNotice::DamagedRows { account_id, count } => Self::DamagedRows {
                account_id,
                count: count as u64,
            },
            core::StoreNotice::UnreadableAccountEntry { key } => {
                Self::UnreadableAccountEntry { key }
            }
        }
    }
}

impl From<core::Event> for Event {
    fn from(e: core::Event) -> Self {
        match e {
            core::Event::SyncProgress(p) => Self::SyncProgress { progress: p.into() },
            core::Event::SyncFinished(r) => Self::SyncFinished { report: r.into() },
            core::Event::BackgroundSyncFinished(r) => {
                Self::BackgroundSyncFinished { report: r.into() }
            }
            core::Event::LockWarning { remaining_ms } => Self::LockWarning { remaining_ms },
            core::Event::Locked(reason) => Self::Locked { reason },
            core::Event::Unlocked => Self::Unlocked,
            core::Event::AccessRevoked { account_id } => Self::AccessRevoked { account_id },
            core::Event::RelinkNeeded { account_id } => Self::RelinkNeeded { account_id },
            core::Event::LinkLimited {
                account_id,
                not_granted,
                can_renew,
            } => Self::LinkLimited {
                account_id,
                not_granted: not_granted.into_iter().map(|c| c.category).collect(),
                can_renew,
            },
            core::Event::LockedInboxApplied { batches } => Self::LockedInboxApplied { batches },
        }
    }
}
