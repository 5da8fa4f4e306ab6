//! Record sync: from the granted scope and the server's CapabilityStatement, plan the queries (Patient read, a
//! search per granted type, Observation fanned out per category since Epic answers 400 without one,
//! DocumentReference plus their Binary content) and run them into the encrypted store.
//!
//! - One failing query does not fail the others: the report names it and the next sync retries it; a 403 is "not
//!   granted", not a failure of the sync.
//! - Incremental: `_lastUpdated=ge{since}` where the server supports it; a full pass otherwise, and at least every
//!   [`SyncOptions::full_pass_every_ms`] to reconcile deletions (gone on the server → gone locally).
//! - Each page is written in one transaction together with the query's position, so a sync cut off by a crash,
//!   a kill, the idle lock or the network resumes at the page it stopped at; upserts by (type, id) make repeats
//!   harmless, so nothing is lost or duplicated, and syncing twice changes nothing.
//! - Only this patient's data: every resource a search returns must name the linked patient (its `subject`,
//!   `patient`, `beneficiary` or, for an Appointment, a participant); anything else is refused, counted in
//!   [`SyncReport::refused`] and never stored.
//! - Consent withdrawn: on a full pass, a query the grant no longer covers, or one the FHIR server now answers 403
//!   with its own OperationOutcome while the pass's other queries succeed, loses exactly its data (what the patient
//!   no longer shares is no longer readable here). A firewall's HTML 403, or a pass in which every query fails,
//!   deletes nothing.
//! - A query that hits the page cap or a paging loop is not resumed forever: it ends there, its position is
//!   dropped, and the next incremental run asks only for what changed since.
//! - Token trouble stops the sync with its own error (revoked, re-link needed, transient); whether access is
//!   revoked is decided by [`crate::account`], never here.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt;

use serde_json::Value;
use url::Url;

use crate::account::{Accounts, LinkedAccount};
use crate::error::{Error, Result, StorageKind};
use crate::fhir::{FhirClient, FhirError, RetryPolicy};
use crate::http::Http;
use crate::store::{AccountKeys, Change, Incoming, QueryState, SealingKey, Store, StoreError};

mod compartment;
pub mod locked;
pub mod news;
mod plan;
mod query;
mod references;

pub use compartment::belongs_to;
use compartment::withdraw_ungranted;
pub use locked::{RecordKind, Writer};
use plan::longest_first;
pub use plan::{
    Learned, NEEDS_CATEGORY, NOT_PERMITTED, PlannedQuery, REFERENCED, ServerSupport, UNSUPPORTED,
    plan, searched_types,
};
pub use query::FALLBACK_PAGE_SIZE;
use query::run_query;

/// How to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Page size asked of the server (the largest a server is asked for; a server that refuses it is asked for
    /// [`FALLBACK_PAGE_SIZE`]).
    pub page_size: usize,
    /// Queries in flight at once against the server (each query's pages stay in order).
    pub concurrency: usize,
    /// Give up a query after this many pages (a runaway server).
    pub max_pages: usize,
    /// Reconcile deletions with a full pass at least this often.
    pub full_pass_every_ms: i64,
    /// Force a full pass now.
    pub force_full: bool,
    /// Download the content of documents (after-visit summaries, notes).
    pub fetch_documents: bool,
    pub retry: RetryPolicy,
    /// Largest single answer read (a page, a document); a larger one fails its query without being downloaded
    /// again.
    pub max_response_bytes: usize,
    /// Stop once this sync has received this many bytes of records and documents (`None`: no cap): checked
    /// between requests, inside the account's pass (each query keeps its position, what was stored or sealed is
    /// whole; the next sync goes on). The sync then answers [`Error::Cancelled`]. A background run passes what is
    /// left of [`crate::SyncBudget::max_bytes`].
    pub max_bytes: Option<u64>,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            page_size: 1000,
            concurrency: 4,
            max_pages: 2_000,
            full_pass_every_ms: 7 * 24 * 3600 * 1000,
            force_full: false,
            fetch_documents: true,
            retry: RetryPolicy::default(),
            max_response_bytes: crate::fhir::PAGE_BODY_LIMIT,
            max_bytes: None,
        }
    }
}

/// Progress of one query, reported after each page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncProgress {
    pub account_id: String,
    pub query: String,
    pub pages: usize,
    pub resources: usize,
    /// Queries done so far and in all.
    pub queries_done: usize,
    pub queries_total: usize,
}

/// New, changed and deleted resources of one type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeCounts {
    pub new: u32,
    pub changed: u32,
    pub deleted: u32,
}

/// A query that did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryFailure {
    pub query: String,
    /// The grant does not cover it (403): expected, not an error to show.
    pub not_granted: bool,
    pub reason: String,
}

/// What a sync did: what an app needs for a "new results" notice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub account_id: String,
    pub full_pass: bool,
    pub per_type: BTreeMap<String, TypeCounts>,
    pub failures: Vec<QueryFailure>,
    pub resources_seen: usize,
    /// Resources the server returned that do not belong to the linked patient: refused, never stored.
    pub refused: usize,
    pub documents_fetched: usize,
    pub duration_ms: u64,
    /// Whether the sync ran locked (written sealed to the account's public key, readable after unlock). Then the
    /// `new` counts are "new or changed" (which of the two is known only at unlock), and deletions are found at
    /// unlock.
    pub locked: bool,
    /// New or changed records per kind (lab results, vital signs, ...): what a "new results" notice says. Holds
    /// counts only.
    pub per_kind: BTreeMap<RecordKind, u32>,
    /// Bytes of records and documents received (what a background budget counts).
    pub bytes: u64,
    /// The records this sync brought, new or changed (kind, id, display name, date), for a notice inside the
    /// app. Empty for a locked sync (it cannot read what it wrote: see [`crate::ChartLink::whats_new`] after
    /// unlock) and for a query's first run (the whole record is not "new results").
    pub new_records: Vec<news::NewRecord>,
}

impl SyncReport {
    /// Total new + changed.
    pub fn updated(&self) -> u32 {
        self.per_type.values().map(|c| c.new + c.changed).sum()
    }
}

/// Everything a sync needs.
#[derive(Debug)]
pub struct SyncContext<'a> {
    pub http: &'a Http,
    pub accounts: &'a Accounts,
    pub store: &'a Store,
    pub now_ms: i64,
}

/// Syncs one account into the store.
pub async fn sync_account(
    ctx: &SyncContext<'_>,
    account: &LinkedAccount,
    keys: Writer<'_>,
    options: &SyncOptions,
    progress: &mut (dyn FnMut(SyncProgress) + Send),
    cancelled: &(dyn Fn() -> bool + Send + Sync),
) -> Result<SyncReport> {
    // Bytes received so far, against `options.max_bytes`: past it the sync stops as at the idle lock (between
    // requests, positions kept), and says it was its budget.
    let received = AtomicU64::new(0);
    let over_budget = || {
        options
            .max_bytes
            .is_some_and(|m| received.load(Ordering::SeqCst) >= m)
    };
    let stop = || cancelled() || over_budget();
    match sync_pass(ctx, account, keys, options, progress, &stop, &received).await {
        Err(Error::Locked) if over_budget() && !cancelled() => Err(Error::Cancelled),
        other => other,
    }
}

async fn sync_pass(
    ctx: &SyncContext<'_>,
    account: &LinkedAccount,
    keys: Writer<'_>,
    options: &SyncOptions,
    progress: &mut (dyn FnMut(SyncProgress) + Send),
    cancelled: &(dyn Fn() -> bool + Send + Sync),
    received: &AtomicU64,
) -> Result<SyncReport> {
    let started = Instant::now();
    let fhir = FhirClient::new(
        ctx.http,
        ctx.accounts,
        &account.id,
        account.server.fhir_base.clone(),
        options.retry,
        cancelled,
    )
    .with_body_limit(options.max_response_bytes)
    .with_concurrency(options.concurrency);
    let support = match fhir
        .get_json(&fhir.resolve("metadata").map_err(Error::from)?)
        .await
    {
        Ok(cs) => ServerSupport::from_capability_statement(&cs),
        Err(FhirError::Token(e)) => return Err(e),
        Err(FhirError::Locked) => return Err(Error::Locked),
        Err(_) => ServerSupport::default(),
    };
    let learned = Learned::load(ctx.store, &account.id, ctx.now_ms).map_err(Error::from)?;
    let (mut pass, last_full) = ctx.store.account_state(&account.id).map_err(Error::from)?;
    // A stamp in the future (the clock ran ahead when it was written, then was corrected) counts as stale: otherwise
    // no full pass, and so no reconciliation of deletions, would run until the clock caught up.
    let due =
        last_full.is_none_or(|t| t > ctx.now_ms || ctx.now_ms - t >= options.full_pass_every_ms);
    // A full pass in progress (cut off earlier) goes on with the same pass number.
    let mut interrupted_full = false;
    for q in &plan(account, &support, options.page_size, &learned, true) {
        let st = keys
            .query_state(ctx.store, &account.id, &q.key)
            .map_err(Error::from)?;
        if st.pass == pass && pass > 0 && !st.full_pass_done {
            interrupted_full = true;
        }
    }
    let full = options.force_full || due || interrupted_full;
    let mut queries = plan(account, &support, options.page_size, &learned, full);
    if full && !ctx.store.check_integrity().map_err(Error::from)? {
        return Err(Error::storage(
            StorageKind::Damaged,
            "the local database is damaged; it is rebuilt from the provider at the next start",
        ));
    }
    if full && !interrupted_full {
        pass += 1;
    }
    ctx.store
        .set_account_state(&account.id, pass, None, ctx.now_ms)
        .map_err(Error::from)?;
    let mut report = SyncReport {
        account_id: account.id.clone(),
        full_pass: full,
        locked: keys.is_locked(),
        ..Default::default()
    };
    if full {
        withdraw_ungranted(ctx, account, keys, &mut report)?;
    }
    let wave = Wave {
        ctx,
        fhir: &fhir,
        account,
        keys,
        pass,
        full,
        support: &support,
        options,
        progress: Mutex::new(progress),
        done: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        cancelled,
        refs: Mutex::new(BTreeSet::new()),
        received,
    };
    let mut outcomes = wave.run(&queries, 0, queries.len()).await;
    // A server that wants a category for every Observation search (a 400 to the search without one) is asked per
    // category at once, and from now on.
    let needs_category = outcomes.iter().any(|(i, _, o)| {
        queries[*i].key == "Observation" && matches!(o, Err(FhirError::Status { status: 400, .. }))
    });
    if needs_category {
        mark(ctx, keys, &account.id, "Observation", NEEDS_CATEGORY)?;
        outcomes.retain(|(i, _, _)| queries[*i].key != "Observation");
        let learned = Learned {
            observation_needs_category: true,
            ..learned.clone()
        };
        let fan_out: Vec<PlannedQuery> = plan(account, &support, options.page_size, &learned, full)
            .into_iter()
            .filter(|q| q.key.starts_with("Observation:"))
            .collect();
        let offset = queries.len();
        queries.extend(fan_out);
        let total = queries.len() - 1;
        let more = wave.run(&queries[offset..], offset, total).await;
        outcomes.extend(more);
    }
    outcomes.sort_unstable_by_key(|(i, _, _)| *i);
    // A failure of the grant or the device ends the sync with its own error (revocation first: it decides).
    let fatal = outcomes
        .iter()
        .filter_map(|(_, _, o)| match o {
            Err(FhirError::Token(e)) => Some(e.clone()),
            Err(FhirError::Local(e)) => Some(e.clone().into()),
            Err(FhirError::Locked) => Some(Error::Locked),
            _ => None,
        })
        .min_by_key(|e| match e {
            Error::AccessRevoked => 0,
            Error::RelinkNeeded => 1,
            Error::Locked => 3,
            _ => 2,
        });
    if let Some(e) = fatal {
        return Err(e);
    }
    // The one search for every Observation, complete on a full pass: what the per-category searches of earlier
    // syncs brought in and it did not see again is gone on the server.
    let unfiltered_done = outcomes
        .iter()
        .any(|(i, _, o)| queries[*i].key == "Observation" && o.is_ok());
    if full && unfiltered_done {
        for key in ctx.store.query_keys(&account.id).map_err(Error::from)? {
            if key.starts_with("Observation:") {
                let gone = ctx
                    .store
                    .write(|tx| keys.forget_query(tx, &account.id, &key))
                    .map_err(Error::from)?;
                for ty in gone {
                    report.per_type.entry(ty).or_default().deleted += 1;
                }
            }
        }
    }
    // A 400 to one category's search while other queries work: a category this server does not know. Not a
    // failure; remembered (see `Learned`). When nothing works, it is a failure like the others.
    let server_works = outcomes.iter().any(|(_, _, o)| o.is_ok());
    // Failures that keep the full pass from counting as done (not those that would fail the same way again).
    let mut blocking = 0;
    for (i, part, outcome) in outcomes {
        let q = &queries[i];
        merge(&mut report, part);
        match outcome {
            Ok(()) => {}
            Err(FhirError::Status { status: 400, .. })
                if q.key.starts_with("Observation:") && server_works =>
            {
                tracing::debug!(target: "chartlink", query = %q.key, "the server does not support this search");
            }
            Err(e @ FhirError::Status { status: 400, .. }) if q.key.starts_with("Observation:") => {
                // Not known to be unsupported after all: asked again next time.
                mark(ctx, keys, &account.id, &q.key, &e.to_string())?;
                blocking += 1;
                report.failures.push(QueryFailure {
                    query: q.key.clone(),
                    not_granted: false,
                    reason: e.to_string(),
                });
            }
            Err(_) if cancelled() => return Err(Error::Locked),
            Err(e) => {
                let not_granted = e == FhirError::Forbidden;
                if not_granted && full && server_works {
                    // The FHIR server's own answer (an OperationOutcome: see `fhir::status_error`), on a full pass
                    // whose other queries work, that this is no longer shared: so it is no longer here. A pass in
                    // which every query fails deletes nothing (that is a server or a middlebox failing, not the
                    // patient's decision).
                    let gone = ctx
                        .store
                        .write(|tx| keys.forget_query(tx, &account.id, &q.key))
                        .map_err(Error::from)?;
                    for ty in gone {
                        report.per_type.entry(ty).or_default().deleted += 1;
                    }
                }
                if !matches!(
                    e,
                    FhirError::Forbidden | FhirError::TooManyPages(_) | FhirError::PagingLoop
                ) {
                    blocking += 1;
                }
                report.failures.push(QueryFailure {
                    query: q.key.clone(),
                    not_granted,
                    reason: e.to_string(),
                });
            }
        }
    }
    // The names of the doctors, places and drugs the records point to. On a first full pass (not one resumed
    // after a cut) every reference was seen, so the names no record points to any more go.
    let found = std::mem::take(&mut *wave.refs.lock().unwrap_or_else(|e| e.into_inner()));
    let reconcile = full && !interrupted_full && blocking == 0;
    references::resolve(&wave, found, reconcile, &mut report).await?;
    let all_done = blocking == 0
        && report
            .failures
            .iter()
            .all(|f| !f.query.starts_with("Binary/") || f.not_granted);
    if full && all_done {
        ctx.store
            .set_account_state(&account.id, pass, Some(ctx.now_ms), ctx.now_ms)
            .map_err(Error::from)?;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

type Outcome = (usize, SyncReport, std::result::Result<(), FhirError>);

/// One round of queries of a sync, run concurrently.
struct Wave<'s, 'c> {
    ctx: &'s SyncContext<'c>,
    fhir: &'s FhirClient<'s>,
    account: &'s LinkedAccount,
    keys: Writer<'s>,
    pass: i64,
    full: bool,
    support: &'s ServerSupport,
    options: &'s SyncOptions,
    progress: Mutex<&'s mut (dyn FnMut(SyncProgress) + Send)>,
    done: AtomicUsize,
    stop: AtomicBool,
    cancelled: &'s (dyn Fn() -> bool + Send + Sync),
    /// The references to resolve (see [`references`]), gathered from the pages.
    refs: Mutex<BTreeSet<(String, String)>>,
    /// Bytes received by this sync so far (see [`SyncOptions::max_bytes`]).
    received: &'s AtomicU64,
}

impl Wave<'_, '_> {
    fn emit(&self, p: SyncProgress) {
        let mut f = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        (*f)(p);
    }

    /// Runs `queries` (numbered from `offset` in the outcomes) over the one connection pool: at most
    /// `options.concurrency` in flight to this server; the pages of one query stay in order, each written in its
    /// own transaction through the store's single writer. The first query that meets a token, lock or storage
    /// failure stops the others from starting; those in flight stop at their next request.
    async fn run(&self, queries: &[PlannedQuery], offset: usize, total: usize) -> Vec<Outcome> {
        futures_util::stream::iter(longest_first(queries))
            .map(|i| {
                let q = &queries[i];
                async move {
                    let mut part = SyncReport::default();
                    // The idle lock stops the sync between queries too (each query's position is saved).
                    if self.stop.load(Ordering::SeqCst) || (self.cancelled)() {
                        return (offset + i, part, Err(FhirError::Locked));
                    }
                    let account_id = &self.account.id;
                    let outcome = run_query(
                        self.ctx,
                        self.fhir,
                        self.account,
                        self.keys,
                        q,
                        self.pass,
                        self.full,
                        self.support,
                        self.options,
                        &mut part,
                        &self.refs,
                        self.received,
                        &mut |pages, resources| {
                            self.emit(SyncProgress {
                                account_id: account_id.clone(),
                                query: q.key.clone(),
                                pages,
                                resources,
                                queries_done: self.done.load(Ordering::SeqCst),
                                queries_total: total,
                            })
                        },
                    )
                    .await;
                    if matches!(
                        outcome,
                        Err(FhirError::Token(_) | FhirError::Local(_) | FhirError::Locked)
                    ) {
                        self.stop.store(true, Ordering::SeqCst);
                    }
                    let finished = self.done.fetch_add(1, Ordering::SeqCst) + 1;
                    self.emit(SyncProgress {
                        account_id: account_id.clone(),
                        query: q.key.clone(),
                        pages: 0,
                        resources: 0,
                        queries_done: finished,
                        queries_total: total,
                    });
                    (offset + i, part, outcome)
                }
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await
    }
}

/// Saves one of sync's marks on a query (see [`Learned`]), keeping the rest of its state.
fn mark(
    ctx: &SyncContext<'_>,
    keys: Writer<'_>,
    account: &str,
    query: &str,
    what: &str,
) -> Result<()> {
    let st = keys
        .query_state(ctx.store, account, query)
        .map_err(Error::from)?;
    ctx.store
        .write(|tx| keys.set_query_state(tx, account, query, &st, Some(what)))
        .map_err(Error::from)
}

/// Adds one query's part of the report to the whole.
fn merge(report: &mut SyncReport, part: SyncReport) {
    for (ty, c) in part.per_type {
        let e = report.per_type.entry(ty).or_default();
        e.new += c.new;
        e.changed += c.changed;
        e.deleted += c.deleted;
    }
    report.failures.extend(part.failures);
    report.resources_seen += part.resources_seen;
    report.refused += part.refused;
    report.documents_fetched += part.documents_fetched;
    report.bytes += part.bytes;
    report.new_records.extend(part.new_records);
    for (k, n) in part.per_kind {
        *report.per_kind.entry(k).or_default() += n;
    }
}

fn count(report: &mut SyncReport, q: &PlannedQuery, r: &Value, c: Change) {
    let entry = report.per_type.entry(q.resource_type.clone()).or_default();
    match c {
        Change::New => entry.new += 1,
        Change::Changed => entry.changed += 1,
        Change::Unchanged => return,
    }
    let kind = RecordKind::of_resource(&q.key, r);
    if kind != RecordKind::Demographics {
        *report.per_kind.entry(kind).or_default() += 1;
    }
}

#[cfg(test)]
mod tests;
