//! Record sync: from the granted scope and the server's CapabilityStatement, plan the queries (Patient read, a
//! search per granted type, Observation fanned out per category since Epic answers 400 without one,
//! DocumentReference plus their Binary content) and run them into the encrypted store.
//!
//! - One failing query does not fail the others: the report names it and the next sync retries it; a 403 is "not
//!   granted", not a failure of the sync.
//! - Incremental: `_lastUpdated=gt{since}` where the server supports it; a full pass otherwise, and at least every
//!   [`SyncOptions::full_pass_every_ms`] to reconcile deletions (gone on the server → gone locally).
//! - Each page is written in one transaction together with the query's position, so a sync cut off by a crash,
//!   a kill, the idle lock or the network resumes at the page it stopped at; upserts by (type, id) make repeats
//!   harmless, so nothing is lost or duplicated, and syncing twice changes nothing.
//! - Only this patient's data: every resource a search returns must name the linked patient (its `subject`,
//!   `patient`, `beneficiary` or, for an Appointment, a participant); anything else is refused, counted in
//!   [`SyncReport::refused`] and never stored.
//! - Consent withdrawn: on a full pass, a query the grant no longer covers, or one the server now answers 403,
//!   loses exactly its data (what the patient no longer shares is no longer readable here).
//! - A query that hits the page cap or a paging loop is not resumed forever: it ends there, its position is
//!   dropped, and the next incremental run asks only for what changed since.
//! - Token trouble stops the sync with its own error (revoked, re-link needed, transient); whether access is
//!   revoked is decided by [`crate::account`], never here.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use futures_util::StreamExt;

use serde_json::Value;
use url::Url;

use crate::account::{Accounts, LinkedAccount};
use crate::error::{Error, Result};
use crate::fhir::{FhirClient, FhirError, RetryPolicy};
use crate::http::Http;
use crate::store::{AccountKeys, Change, Incoming, QueryState, Store, StoreError};

/// The observation categories fanned out over when the grant does not restrict them: the observation-category
/// code system, "functional-status" (US Core), "sdoh" (US Core 4+), and Synthea's "vital-sign".
const OBSERVATION_CATEGORIES: [&str; 12] = [
    "laboratory",
    "vital-signs",
    "vital-sign",
    "social-history",
    "sdoh",
    "survey",
    "exam",
    "imaging",
    "procedure",
    "therapy",
    "activity",
    "functional-status",
];
/// The searched types, in the order they are synced (Patient is read, not searched). Only the granted ones are
/// searched (see [`plan`]).
pub const SEARCHED_TYPES: [&str; 19] = [
    "AllergyIntolerance",
    "MedicationRequest",
    "MedicationDispense",
    "MedicationStatement",
    "Immunization",
    "Condition",
    "Observation",
    "DiagnosticReport",
    "Procedure",
    "Encounter",
    "DocumentReference",
    "Appointment",
    "CarePlan",
    "Goal",
    "CareTeam",
    "Device",
    "ServiceRequest",
    "Coverage",
    "QuestionnaireResponse",
];

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
}

impl SyncReport {
    /// Total new + changed.
    pub fn updated(&self) -> u32 {
        self.per_type.values().map(|c| c.new + c.changed).sum()
    }
}

/// One planned query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedQuery {
    /// Stable name: `Patient`, `Condition`, `Observation:laboratory`.
    pub key: String,
    pub resource_type: String,
    /// Path and query relative to the FHIR base.
    pub path: String,
    pub read: bool,
}

/// What the server's CapabilityStatement says matters for planning.
#[derive(Debug, Clone, Default)]
pub struct ServerSupport {
    /// Types the server lists (empty: unknown, assume all).
    pub types: Vec<String>,
    /// Types whose search supports `_lastUpdated`.
    pub last_updated: Vec<String>,
}

impl ServerSupport {
    /// Reads a CapabilityStatement.
    pub fn from_capability_statement(cs: &Value) -> Self {
        let mut out = Self::default();
        for rest in cs["rest"].as_array().into_iter().flatten() {
            let global_lu = rest["searchParam"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == "_lastUpdated");
            for r in rest["resource"].as_array().into_iter().flatten() {
                let Some(ty) = r["type"].as_str() else {
                    continue;
                };
                out.types.push(ty.to_owned());
                if global_lu
                    || r["searchParam"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == "_lastUpdated")
                {
                    out.last_updated.push(ty.to_owned());
                }
            }
        }
        out
    }

    fn supports(&self, ty: &str) -> bool {
        self.types.is_empty() || self.types.iter().any(|t| t == ty)
    }
}

/// Plans the queries of an account: nothing the patient did not grant, nothing the server does not offer.
pub fn plan(
    account: &LinkedAccount,
    support: &ServerSupport,
    page_size: usize,
) -> Vec<PlannedQuery> {
    let pid = url_encode(&account.patient_id);
    let granted = &account.granted;
    let mut out = Vec::new();
    let patient_readable = granted
        .resources
        .iter()
        .any(|r| r.read && r.resource_type.as_deref().is_none_or(|t| t == "Patient"));
    if patient_readable {
        out.push(PlannedQuery {
            key: "Patient".into(),
            resource_type: "Patient".into(),
            path: format!("Patient/{pid}"),
            read: true,
        });
    }
    for ty in SEARCHED_TYPES {
        if !granted.can_search(ty) || !support.supports(ty) {
            continue;
        }
        let base = format!("{ty}?patient={pid}&_count={page_size}");
        if ty == "Observation" {
            let categories = granted.searchable_categories(ty).unwrap_or_else(|| {
                OBSERVATION_CATEGORIES
                    .iter()
                    .map(|c| (*c).to_owned())
                    .collect()
            });
            for c in categories {
                out.push(PlannedQuery {
                    key: format!("Observation:{c}"),
                    resource_type: ty.into(),
                    path: format!("{base}&category={}", url_encode(&c)),
                    read: false,
                });
            }
        } else {
            out.push(PlannedQuery {
                key: ty.into(),
                resource_type: ty.into(),
                path: base,
                read: false,
            });
        }
    }
    out
}

fn url_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Everything a sync needs.
#[derive(Debug)]
pub struct SyncContext<'a> {
    pub http: &'a Http,
    pub accounts: &'a Accounts,
    pub store: &'a Store,
    pub now_ms: i64,
}

fn storage(e: StoreError) -> Error {
    Error::Storage(e.to_string())
}

/// The primary code (LOINC preferred, as every view reads it) and the first category code of a resource, for the
/// store's tags.
fn tags(r: &Value) -> (Option<String>, Option<String>) {
    let concept = ["code", "vaccineCode", "medicationCodeableConcept"]
        .iter()
        .map(|f| &r[*f])
        .find(|v| v.is_object());
    let code = concept
        .and_then(crate::views::preferred_code)
        .and_then(|c| c.code);
    let category_of = |v: &Value| v["coding"][0]["code"].as_str().map(str::to_owned);
    let category = match &r["category"] {
        Value::Array(list) => list.iter().find_map(category_of),
        v @ Value::Object(_) => category_of(v),
        _ => None,
    };
    (code, category)
}

/// Syncs one account into the store.
pub async fn sync_account(
    ctx: &SyncContext<'_>,
    account: &LinkedAccount,
    keys: &AccountKeys,
    options: &SyncOptions,
    progress: &mut (dyn FnMut(SyncProgress) + Send),
    cancelled: &(dyn Fn() -> bool + Send + Sync),
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
        Err(FhirError::Cancelled) => return Err(Error::Locked),
        Err(_) => ServerSupport::default(),
    };
    let queries = plan(account, &support, options.page_size);
    let (mut pass, last_full) = ctx.store.account_state(&account.id).map_err(storage)?;
    let due = last_full.is_none_or(|t| ctx.now_ms - t >= options.full_pass_every_ms);
    // A full pass in progress (cut off earlier) goes on with the same pass number.
    let mut interrupted_full = false;
    for q in &queries {
        let st = ctx
            .store
            .query_state(keys, &account.id, &q.key)
            .map_err(storage)?;
        if st.pass == pass && pass > 0 && !st.full_pass_done {
            interrupted_full = true;
        }
    }
    let full = options.force_full || due || interrupted_full;
    if full && !ctx.store.check_integrity().map_err(storage)? {
        return Err(Error::Storage(
            "the local database is damaged; it is rebuilt from the provider at the next start"
                .into(),
        ));
    }
    if full && !interrupted_full {
        pass += 1;
    }
    ctx.store
        .set_account_state(&account.id, pass, None, ctx.now_ms)
        .map_err(storage)?;
    let mut report = SyncReport {
        account_id: account.id.clone(),
        full_pass: full,
        ..Default::default()
    };
    if full {
        withdraw_ungranted(ctx, account, options, &mut report)?;
    }
    // Independent queries run concurrently over the one connection pool (at most `options.concurrency` in flight
    // to this server); the pages of one query stay in order, each written in its own transaction through the
    // store's single writer. The first query that meets a token, lock or storage failure stops the others from
    // starting; those in flight stop at their next request.
    let total = queries.len();
    let done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let progress = Mutex::new(progress);
    let emit = |p: SyncProgress| {
        let mut f = progress.lock().unwrap_or_else(|e| e.into_inner());
        (*f)(p);
    };
    let outcomes: Vec<(usize, SyncReport, std::result::Result<(), FhirError>)> =
        futures_util::stream::iter(longest_first(&queries))
            .map(|i| {
                let (fhir, support, stop, done, emit) = (&fhir, &support, &stop, &done, &emit);
                let q = &queries[i];
                async move {
                    let mut part = SyncReport::default();
                    // The idle lock stops the sync between queries too (each query's position is saved).
                    if stop.load(Ordering::SeqCst) || cancelled() {
                        return (i, part, Err(FhirError::Cancelled));
                    }
                    let outcome = run_query(
                        ctx,
                        fhir,
                        account,
                        keys,
                        q,
                        pass,
                        full,
                        support,
                        options,
                        &mut part,
                        &mut |pages, resources| {
                            emit(SyncProgress {
                                account_id: account.id.clone(),
                                query: q.key.clone(),
                                pages,
                                resources,
                                queries_done: done.load(Ordering::SeqCst),
                                queries_total: total,
                            })
                        },
                    )
                    .await;
                    if matches!(
                        outcome,
                        Err(FhirError::Token(_) | FhirError::Local(_) | FhirError::Cancelled)
                    ) {
                        stop.store(true, Ordering::SeqCst);
                    }
                    let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
                    emit(SyncProgress {
                        account_id: account.id.clone(),
                        query: q.key.clone(),
                        pages: 0,
                        resources: 0,
                        queries_done: finished,
                        queries_total: total,
                    });
                    (i, part, outcome)
                }
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
    let mut outcomes = outcomes;
    outcomes.sort_by_key(|(i, _, _)| *i);
    // A failure of the grant or the device ends the sync with its own error (revocation first: it decides).
    let fatal = outcomes
        .iter()
        .filter_map(|(_, _, o)| match o {
            Err(FhirError::Token(e)) => Some(e.clone()),
            Err(FhirError::Local(m)) => Some(Error::Storage(m.clone())),
            Err(FhirError::Cancelled) => Some(Error::Locked),
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
    // Failures that keep the full pass from counting as done (not those that would fail the same way again).
    let mut blocking = 0;
    for (i, part, outcome) in outcomes {
        let q = &queries[i];
        merge(&mut report, part);
        match outcome {
            Ok(()) => {}
            Err(_) if cancelled() => return Err(Error::Locked),
            Err(e) => {
                let not_granted = e == FhirError::Forbidden;
                if not_granted && full {
                    // The server answers, on a full pass, that this is no longer shared: so it is no longer here.
                    let gone = ctx
                        .store
                        .write(|tx| Store::forget_query(tx, &account.id, &q.key))
                        .map_err(storage)?;
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
    let all_done = blocking == 0
        && report
            .failures
            .iter()
            .all(|f| !f.query.starts_with("Binary/") || f.not_granted);
    if full && all_done {
        ctx.store
            .set_account_state(&account.id, pass, Some(ctx.now_ms), ctx.now_ms)
            .map_err(storage)?;
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

#[allow(clippy::too_many_arguments)]
async fn run_query(
    ctx: &SyncContext<'_>,
    fhir: &FhirClient<'_>,
    account: &LinkedAccount,
    keys: &AccountKeys,
    q: &PlannedQuery,
    pass: i64,
    full: bool,
    support: &ServerSupport,
    options: &SyncOptions,
    report: &mut SyncReport,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> std::result::Result<(), FhirError> {
    let store = ctx.store;
    let id = account.id.as_str();
    let err = |e: StoreError| FhirError::Local(e.to_string());
    let mut state = store.query_state(keys, id, &q.key).map_err(err)?;
    if q.read {
        let url = fhir.resolve(&q.path)?;
        let resource = fhir.get_json(&url).await?;
        if resource["resourceType"].as_str() != Some(q.resource_type.as_str())
            || resource["id"].as_str() != Some(account.patient_id.as_str())
        {
            report.refused += 1;
            return Err(FhirError::Malformed(
                "the server answered another record than the linked patient's".into(),
            ));
        }
        let changed = store.write(|tx| {
            let c = upsert(tx, keys, id, &q.key, pass, &resource)?;
            let done = QueryState {
                pass,
                full_pass_done: full || state.full_pass_done,
                ..QueryState::default()
            };
            Store::set_query_state(tx, keys, id, &q.key, &done, None)?;
            Ok(c)
        });
        count(report, &q.resource_type, changed.map_err(err)?);
        report.resources_seen += 1;
        progress(1, 1);
        return Ok(());
    }
    // Resume a run that was cut off in this same pass; otherwise start from the first page.
    let resuming = state.pass == pass && state.resume_url.is_some();
    let first = match (&state.resume_url, resuming) {
        (Some(u), true) => fhir.resolve(u)?,
        _ => {
            let mut path = q.path.clone();
            let incremental = !full && support.last_updated.iter().any(|t| t == &q.resource_type);
            if let (true, Some(since)) = (incremental, &state.since) {
                path.push_str(&format!("&_lastUpdated=gt{}", url_encode(since)));
            }
            state.pending_since = None;
            fhir.resolve(&path)?
        }
    };
    // Only a full pass clears the mark; an incremental run keeps the pass number of the last full pass.
    let was_done = state.full_pass_done && state.pass == pass;
    state.pass = pass;
    state.full_pass_done = !full && was_done;
    let mut pages = 0;
    let mut resources = 0;
    let mut refused = 0;
    let base = account.server.fhir_base.as_str();
    let mut docs: Vec<(String, Url)> = Vec::new();
    // The largest page is asked for; a server that refuses that page size (a 400 before any page) is asked again
    // with a page size every server takes.
    let mut first = first;
    let result = loop {
        let r = fhir
            .pages(first.clone(), options.max_pages, |bundle, next| {
                pages += 1;
                if state.pending_since.is_none() {
                    state.pending_since = bundle["meta"]["lastUpdated"].as_str().map(str::to_owned);
                }
                let entries = bundle["entry"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let mut changes = Vec::with_capacity(entries.len());
                store
                    .write(|tx| {
                        for e in entries {
                            let r = &e["resource"];
                            // Only what was searched (a server may include OperationOutcomes or _include'd resources).
                            if r["resourceType"].as_str() != Some(q.resource_type.as_str()) {
                                continue;
                            }
                            // Only this patient's: another patient's result must never appear in this record.
                            if !belongs_to(r, &account.patient_id, base) {
                                refused += 1;
                                continue;
                            }
                            changes.push(upsert(tx, keys, id, &q.key, pass, r)?);
                        }
                        state.resume_url = next.map(|u| u.to_string());
                        Store::set_query_state(tx, keys, id, &q.key, &state, None)
                    })
                    .map_err(err)?;
                for c in changes {
                    count(report, &q.resource_type, c);
                    resources += 1;
                }
                if q.resource_type == "DocumentReference" && options.fetch_documents {
                    docs.extend(attachments(fhir, entries));
                }
                progress(pages, resources);
                Ok(true)
            })
            .await;
        if let Err(FhirError::Status { status: 400, .. }) = &r
            && pages == 0
            && !resuming
            && let Some(smaller) = smaller_page(&first)
        {
            first = smaller;
            continue;
        }
        break r;
    };
    report.resources_seen += resources;
    report.refused += refused;
    if let Err(e @ (FhirError::TooManyPages(_) | FhirError::PagingLoop)) = result {
        // A runaway server: keep what arrived, drop the position (resuming would go on forever) and ask only for
        // changes from now on; the next full pass tries the whole query once more.
        state.resume_url = None;
        state.since = state.pending_since.take().or(state.since.take());
        state.full_pass_done = true;
        let _ = store
            .write(|tx| Store::set_query_state(tx, keys, id, &q.key, &state, Some(&e.to_string())));
        return Err(e);
    }
    if let Err(e) = result {
        // Keep the position (if the failure was mid-paging) so the next sync resumes; a bad resume link restarts.
        if resuming
            && matches!(
                e,
                FhirError::Status {
                    status: 400..=499,
                    ..
                } | FhirError::NotFound
            )
        {
            state.resume_url = None;
        }
        let _ = store
            .write(|tx| Store::set_query_state(tx, keys, id, &q.key, &state, Some(&e.to_string())));
        return Err(e);
    }
    // Complete: reconcile deletions on a full pass; the server time at the start becomes the next `since`.
    let deleted = if full {
        store
            .write(|tx| Store::reconcile(tx, id, &q.key, pass))
            .map_err(err)?
    } else {
        Vec::new()
    };
    for ty in deleted {
        report.per_type.entry(ty).or_default().deleted += 1;
    }
    state.since = state.pending_since.take().or(state.since.take());
    state.resume_url = None;
    state.full_pass_done = full || was_done;
    store
        .write(|tx| Store::set_query_state(tx, keys, id, &q.key, &state, None))
        .map_err(err)?;
    // The documents' contents download concurrently (within the client's permits), each stored as it arrives.
    let wanted: Vec<(String, Url)> = docs
        .into_iter()
        .filter(|(b, _)| !store.has_binary(keys, id, b).unwrap_or(false))
        .collect();
    let mut downloads = futures_util::stream::iter(wanted)
        .map(|(binary_id, url)| async move {
            let got = fhir.get(&url, "*/*").await;
            (binary_id, got)
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some((binary_id, got)) = downloads.next().await {
        match got {
            Ok(f) => {
                let ct = if f.content_type.is_empty() {
                    "application/octet-stream".to_owned()
                } else {
                    f.content_type
                };
                store
                    .write(|tx| Store::put_binary(tx, keys, id, &binary_id, &ct, &f.body))
                    .map_err(err)?;
                report.documents_fetched += 1;
            }
            Err(e @ (FhirError::Token(_) | FhirError::Cancelled | FhirError::Local(_))) => {
                return Err(e);
            }
            Err(e) => report.failures.push(QueryFailure {
                query: format!("Binary/{binary_id}"),
                not_granted: e == FhirError::Forbidden,
                reason: e.to_string(),
            }),
        }
    }
    Ok(())
}

/// On a full pass: removes the data of every query the grant no longer covers (a category the patient unticked,
/// a type no longer granted). The server's CapabilityStatement plays no part: a server that stops listing a type
/// is not the patient withdrawing consent.
fn withdraw_ungranted(
    ctx: &SyncContext<'_>,
    account: &LinkedAccount,
    options: &SyncOptions,
    report: &mut SyncReport,
) -> Result<()> {
    let granted: Vec<String> = plan(account, &ServerSupport::default(), options.page_size)
        .into_iter()
        .map(|q| q.key)
        .collect();
    for key in ctx.store.query_keys(&account.id).map_err(storage)? {
        if granted.contains(&key) {
            continue;
        }
        let gone = ctx
            .store
            .write(|tx| Store::forget_query(tx, &account.id, &key))
            .map_err(storage)?;
        for ty in gone {
            report.per_type.entry(ty).or_default().deleted += 1;
        }
    }
    Ok(())
}

/// The reference fields that place a resource in a patient's compartment.
const PATIENT_FIELDS: [&str; 3] = ["subject", "patient", "beneficiary"];

/// Whether `r` names the linked patient (`Patient/{id}`, relative or under the server's base) in one of its
/// patient references. A resource that names no patient at all cannot be shown to be this patient's.
pub fn belongs_to(r: &Value, patient_id: &str, base: &str) -> bool {
    let names = |v: &Value| {
        v["reference"]
            .as_str()
            .is_some_and(|reference| names_patient(reference, patient_id, base))
    };
    if r["resourceType"] == "Patient" {
        return r["id"].as_str() == Some(patient_id);
    }
    if PATIENT_FIELDS.iter().any(|f| names(&r[*f])) {
        return true;
    }
    r["participant"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| names(&p["actor"]))
}

fn names_patient(reference: &str, patient_id: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    let rel = match reference.strip_prefix(base) {
        Some(rest) if rest.starts_with('/') => &rest[1..],
        Some(_) => return false,
        None if reference.contains("://") => return false,
        None => reference,
    };
    let rel = rel.split("/_history/").next().unwrap_or(rel);
    rel.strip_prefix("Patient/") == Some(patient_id)
}

/// The order queries start in: those that tend to have the longest chains of pages (results, vital signs,
/// documents with their contents, visits) first, so that the chain that sets the sync's floor starts at once and
/// the short queries fill the other slots around it.
fn longest_first(queries: &[PlannedQuery]) -> Vec<usize> {
    let rank = |q: &PlannedQuery| match q.key.as_str() {
        "Observation:laboratory" => 0,
        "Observation:vital-signs" => 1,
        "DocumentReference" => 2,
        "Encounter" => 3,
        k if k.starts_with("Observation:") => 4,
        _ => 5,
    };
    let mut order: Vec<usize> = (0..queries.len()).collect();
    order.sort_by_key(|&i| (rank(&queries[i]), i));
    order
}

/// The page size asked for when a server refuses a larger one.
pub const FALLBACK_PAGE_SIZE: usize = 100;

/// `url` with a `_count` above [`FALLBACK_PAGE_SIZE`] lowered to it (None when it asks for no more already).
fn smaller_page(url: &Url) -> Option<Url> {
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let count = pairs
        .iter()
        .find(|(k, _)| k == "_count")
        .and_then(|(_, v)| v.parse::<usize>().ok())?;
    if count <= FALLBACK_PAGE_SIZE {
        return None;
    }
    let mut out = url.clone();
    out.query_pairs_mut()
        .clear()
        .extend_pairs(pairs.iter().map(|(k, v)| {
            if k == "_count" {
                (k.as_str(), FALLBACK_PAGE_SIZE.to_string())
            } else {
                (k.as_str(), v.clone())
            }
        }));
    Some(out)
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
}

fn count(report: &mut SyncReport, ty: &str, c: Change) {
    let entry = report.per_type.entry(ty.to_owned()).or_default();
    match c {
        Change::New => entry.new += 1,
        Change::Changed => entry.changed += 1,
        Change::Unchanged => {}
    }
}

fn upsert(
    tx: &rusqlite::Transaction<'_>,
    keys: &AccountKeys,
    account: &str,
    query: &str,
    pass: i64,
    r: &Value,
) -> std::result::Result<Change, StoreError> {
    let (Some(ty), Some(rid)) = (r["resourceType"].as_str(), r["id"].as_str()) else {
        return Ok(Change::Unchanged);
    };
    let (code, category) = tags(r);
    let json = serde_json::to_vec(r).map_err(|e| StoreError::Sqlite(e.to_string()))?;
    // Lab results also get a small projection (a private, versioned brief), so trends and the summary need not
    // parse whole resources.
    let brief = if ty == "Observation" {
        crate::views::lab_brief(r)
    } else {
        None
    };
    Store::upsert(
        tx,
        keys,
        account,
        query,
        pass,
        &Incoming {
            ty,
            id: rid,
            version: r["meta"]["versionId"].as_str(),
            last_updated: r["meta"]["lastUpdated"].as_str(),
            code: code.as_deref(),
            category: category.as_deref(),
            json: &json,
            brief: brief.as_ref().map(|(b, k)| (b.as_slice(), *k)),
        },
    )
}

/// The Binary attachments of DocumentReferences on the grant's origin (others are skipped: the token never leaves).
fn attachments(fhir: &FhirClient<'_>, entries: &[Value]) -> Vec<(String, Url)> {
    let mut out = Vec::new();
    for e in entries {
        for c in e["resource"]["content"].as_array().into_iter().flatten() {
            let Some(u) = c["attachment"]["url"].as_str() else {
                continue;
            };
            let Ok(url) = fhir.resolve(u) else { continue };
            let id = url.path().rsplit('/').next().unwrap_or_default().to_owned();
            if url.path().contains("/Binary/") && !id.is_empty() {
                out.push((id, url));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::AccountStatus;
    use crate::discovery::{ScopeSyntax, ServerInfo};
    use crate::scopes::GrantedScope;
    use serde_json::json;

    fn account(scope: &str) -> LinkedAccount {
        let base = Url::parse("https://ehr.example/fhir").expect("url");
        LinkedAccount {
            id: "a1".into(),
            server: ServerInfo {
                fhir_base: base.clone(),
                issuer: None,
                authorization_endpoint: base.clone(),
                token_endpoint: base,
                revocation_endpoint: None,
                registration_endpoint: None,
                management_endpoint: None,
                jwks_uri: None,
                capabilities: vec![],
                scope_syntax: ScopeSyntax::V2,
                legacy_discovery: false,
                iss_parameter_supported: false,
            },
            client_id: "c".into(),
            redirect_uri: "app://cb".into(),
            patient_id: "p 1".into(),
            fhir_user: None,
            user_subject: None,
            granted: GrantedScope::parse(scope),
            linked_at_ms: 0,
            status: AccountStatus::Active,
            device_client_id: None,
        }
    }

    #[test]
    fn the_plan_follows_the_grant() {
        let a = account(
            "launch/patient patient/Patient.rs patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory patient/Condition.rs",
        );
        let keys: Vec<String> = plan(&a, &ServerSupport::default(), 50)
            .into_iter()
            .map(|q| q.key)
            .collect();
        assert_eq!(keys, ["Patient", "Condition", "Observation:laboratory"]);
        let q = plan(&a, &ServerSupport::default(), 50);
        assert_eq!(q[1].path, "Condition?patient=p+1&_count=50");
        assert_eq!(
            q[2].path,
            "Observation?patient=p+1&_count=50&category=laboratory"
        );
    }

    #[test]
    fn unfiltered_observations_fan_out_per_category_and_unsupported_types_are_skipped() {
        let a = account("patient/*.read");
        let cs = json!({"rest": [{"resource": [{"type": "Patient"}, {"type": "Observation", "searchParam": [{"name": "_lastUpdated"}]}]}]});
        let support = ServerSupport::from_capability_statement(&cs);
        let keys: Vec<String> = plan(&a, &support, 50).into_iter().map(|q| q.key).collect();
        assert_eq!(keys.len(), 1 + OBSERVATION_CATEGORIES.len());
        assert!(
            keys.iter()
                .all(|k| k == "Patient" || k.starts_with("Observation:"))
        );
        assert_eq!(support.last_updated, ["Observation"]);
    }

    #[test]
    fn only_resources_naming_the_linked_patient_belong_to_the_record() {
        let base = "https://ehr.example/fhir";
        let yes = [
            json!({"resourceType": "Observation", "subject": {"reference": "Patient/p1"}}),
            json!({"resourceType": "Observation", "subject": {"reference": "https://ehr.example/fhir/Patient/p1"}}),
            json!({"resourceType": "Immunization", "patient": {"reference": "Patient/p1/_history/3"}}),
            json!({"resourceType": "Coverage", "beneficiary": {"reference": "Patient/p1"}}),
            json!({"resourceType": "Appointment", "participant": [{"actor": {"reference": "Practitioner/d"}}, {"actor": {"reference": "Patient/p1"}}]}),
            json!({"resourceType": "Patient", "id": "p1"}),
        ];
        for r in &yes {
            assert!(belongs_to(r, "p1", base), "{r}");
        }
        let no = [
            json!({"resourceType": "Condition", "subject": {"reference": "Patient/p2"}}),
            json!({"resourceType": "Condition", "subject": {"reference": "Patient/p10"}}),
            json!({"resourceType": "Condition", "subject": {"reference": "https://evil.example/fhir/Patient/p1"}}),
            json!({"resourceType": "Condition", "subject": {"reference": "https://ehr.example/fhirX/Patient/p1"}}),
            json!({"resourceType": "Condition", "subject": {"reference": "Group/p1"}}),
            json!({"resourceType": "Observation", "code": {"text": "no subject"}}),
            json!({"resourceType": "Observation", "subject": "Patient/p1"}),
            json!({"resourceType": "Patient", "id": "p2"}),
        ];
        for r in &no {
            assert!(!belongs_to(r, "p1", base), "{r}");
        }
    }

    #[test]
    fn tags_prefer_loinc() {
        let r = json!({"code": {"coding": [{"system": "urn:local", "code": "X"}, {"system": "http://loinc.org", "code": "4548-4"}]},
            "category": [{"coding": [{"code": "laboratory"}]}]});
        assert_eq!(tags(&r), (Some("4548-4".into()), Some("laboratory".into())));
        assert_eq!(
            tags(&json!({"vaccineCode": {"coding": [{"code": "08"}]}})),
            (Some("08".into()), None)
        );
        assert_eq!(tags(&json!({"code": "odd"})), (None, None));
    }
}
