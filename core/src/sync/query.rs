//! Running one query: paging, retries with a smaller page, storing each page with the query's position.

use super::*;

use super::plan::{PAGE_SIZE_KEY, PAGE_SIZE_MARK, url_encode};
/// The primary code (LOINC preferred, as every view reads it) and the first category code of a resource, for the
/// store's tags.
pub(super) fn tags(r: &Value) -> (Option<String>, Option<String>) {
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

#[allow(clippy::too_many_arguments)]
pub(super) async fn run_query(
    ctx: &SyncContext<'_>,
    fhir: &FhirClient<'_>,
    account: &LinkedAccount,
    keys: Writer<'_>,
    q: &PlannedQuery,
    pass: i64,
    full: bool,
    support: &ServerSupport,
    options: &SyncOptions,
    report: &mut SyncReport,
    refs: &Mutex<BTreeSet<(String, String)>>,
    received: &AtomicU64,
    progress: &mut (dyn FnMut(usize, usize) + Send),
) -> std::result::Result<(), FhirError> {
    let store = ctx.store;
    let id = account.id.as_str();
    let err = FhirError::Local;
    let mut state = keys.query_state(store, id, &q.key).map_err(err)?;
    let now_ms = ctx.now_ms;
    // What counts as new while locked: changed on the server since the query's last complete run.
    let since = state.since.clone();
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
            // A read has no `since`: the demographics are never "new results".
            let (c, n) = keys.put_page(tx, id, &q.key, pass, None, now_ms, &[&resource])?;
            if full || c.iter().any(|c| *c != Change::Unchanged) {
                let mut found = refs.lock().unwrap_or_else(|e| e.into_inner());
                crate::views::unnamed_references(
                    &resource,
                    account.server.fhir_base.as_str(),
                    &mut found,
                );
            }
            let done = QueryState {
                pass,
                full_pass_done: full || state.full_pass_done,
                ..QueryState::default()
            };
            keys.set_query_state(tx, id, &q.key, &done, None)?;
            Ok((c, n))
        });
        let (changed, n) = changed.map_err(err)?;
        report.bytes += n;
        received.fetch_add(n, Ordering::SeqCst);
        for c in changed {
            count(report, q, &resource, c);
        }
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
                // `ge`, not `gt`: a record changed within the same instant as the last run's search (a second, on
                // servers that stamp in seconds) is asked for again rather than missed until the next full pass;
                // asking twice is harmless (an unchanged record is not counted or stored again).
                path.push_str(&format!("&_lastUpdated=ge{}", url_encode(since)));
            }
            state.pending_since = None;
            fhir.resolve(&path)?
        }
    };
    // Only a full pass clears the mark; an incremental run keeps the pass number of the last full pass.
    let was_done = state.full_pass_done && state.pass == pass;
    state.pass = pass;
    state.full_pass_done = !full && was_done;
    let started_at = fhir.server_instant_now(ctx.now_ms);
    let mut pages = 0;
    let mut resources = 0;
    let mut refused = 0;
    let base = account.server.fhir_base.as_str();
    let mut docs: Vec<(String, Url)> = Vec::new();
    // The largest page is asked for; a server that refuses that page size (a 400 before any page) is asked again
    // with a page size every server takes.
    let mut first = first;
    let mut lowered = false;
    let result = loop {
        let r = fhir
            .pages(first.clone(), options.max_pages, |bundle, next| {
                pages += 1;
                if state.pending_since.is_none() {
                    // The server's time of the first page: its Bundle's lastUpdated, else the time the run
                    // started by the server's clock (our clock corrected by the skew its `Date` headers show).
                    state.pending_since = bundle["meta"]["lastUpdated"]
                        .as_str()
                        .map(str::to_owned)
                        .or_else(|| started_at.clone());
                }
                let entries = bundle["entry"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let mut kept: Vec<&Value> = Vec::with_capacity(entries.len());
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
                    kept.push(r);
                }
                let (changes, n) = store
                    .write(|tx| {
                        let out =
                            keys.put_page(tx, id, &q.key, pass, since.as_deref(), now_ms, &kept)?;
                        state.resume_url = next.map(|u| u.to_string());
                        keys.set_query_state(tx, id, &q.key, &state, None)?;
                        Ok(out)
                    })
                    .map_err(err)?;
                report.bytes += n;
                received.fetch_add(n, Ordering::SeqCst);
                for (c, r) in changes.iter().zip(&kept) {
                    count(report, q, r, *c);
                    resources += 1;
                    // On a full pass every record's references (to refresh their names); else only those of new
                    // and changed records (locked: of those changed since the last run).
                    if full || *c != Change::Unchanged {
                        let mut found = refs.lock().unwrap_or_else(|e| e.into_inner());
                        crate::views::unnamed_references(r, base, &mut found);
                    }
                    if !keys.is_locked() && since.is_some() && *c != Change::Unchanged {
                        report.new_records.push(super::news::new_record(
                            account,
                            &q.key,
                            r,
                            *c == Change::Changed,
                            now_ms,
                        ));
                    }
                    // Locked, a document's content is fetched only when the document is new or changed.
                    if q.resource_type == "DocumentReference"
                        && options.fetch_documents
                        && (!keys.is_locked() || *c != Change::Unchanged)
                    {
                        docs.extend(attachments(fhir, r));
                    }
                }
                progress(pages, resources);
                Ok(true)
            })
            .await;
        if let Err(FhirError::Status { status: 400, .. }) = &r
            && pages == 0
            && !resuming
            && !lowered
            && let Some(smaller) = smaller_page(&first)
        {
            first = smaller;
            lowered = true;
            continue;
        }
        break r;
    };
    if lowered && pages > 0 {
        // The smaller page was taken: every later sync of this account asks for it first (see `Learned`).
        let remembered = format!("{PAGE_SIZE_MARK}{FALLBACK_PAGE_SIZE}@{now_ms}");
        store
            .write(|tx| {
                keys.set_query_state(
                    tx,
                    id,
                    PAGE_SIZE_KEY,
                    &QueryState::default(),
                    Some(&remembered),
                )
            })
            .map_err(err)?;
    }
    report.resources_seen += resources;
    report.refused += refused;
    if let Err(FhirError::Status { status: 400, .. }) = &result
        && pages == 0
        && !resuming
        && q.key.starts_with("Observation:")
    {
        // A category this server does not know (when other queries work: see `sync_account`): nothing to fetch,
        // asked again at the next full pass. Nothing is left to do in this pass either.
        state.resume_url = None;
        state.full_pass_done = true;
        store
            .write(|tx| keys.set_query_state(tx, id, &q.key, &state, Some(UNSUPPORTED)))
            .map_err(err)?;
        return result.map(|_| ());
    }
    if let Err(FhirError::Forbidden) = result {
        // Not shared (the caller removes its data on a full pass). It does not keep the full pass open: a query
        // that is always refused must not make every later sync a full one: nothing is left to do in this pass.
        state.resume_url = None;
        state.full_pass_done = true;
        store
            .write(|tx| keys.set_query_state(tx, id, &q.key, &state, Some(NOT_PERMITTED)))
            .map_err(err)?;
        return Err(FhirError::Forbidden);
    }
    if let Err(e @ (FhirError::TooManyPages(_) | FhirError::PagingLoop)) = result {
        // A runaway server: keep what arrived, drop the position (resuming would go on forever) and ask only for
        // changes from now on; the next full pass tries the whole query once more.
        state.resume_url = None;
        state.since = state.pending_since.take().or(state.since.take());
        state.full_pass_done = true;
        let _ =
            store.write(|tx| keys.set_query_state(tx, id, &q.key, &state, Some(&e.to_string())));
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
        let _ =
            store.write(|tx| keys.set_query_state(tx, id, &q.key, &state, Some(&e.to_string())));
        return Err(e);
    }
    // Complete: reconcile deletions on a full pass; the server time at the start becomes the next `since`.
    let deleted = if full {
        store
            .write(|tx| keys.reconcile(tx, id, &q.key, pass))
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
        .write(|tx| keys.set_query_state(tx, id, &q.key, &state, None))
        .map_err(err)?;
    // The documents' contents download concurrently (within the client's permits), each stored as it arrives.
    let wanted: Vec<(String, Url)> = docs
        .into_iter()
        .filter(|(b, _)| !keys.has_binary(store, id, b))
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
                    .write(|tx| keys.put_binary(tx, id, &binary_id, &ct, &f.body))
                    .map_err(err)?;
                report.documents_fetched += 1;
                report.bytes += f.body.len() as u64;
                received.fetch_add(f.body.len() as u64, Ordering::SeqCst);
            }
            Err(e @ (FhirError::Token(_) | FhirError::Locked | FhirError::Local(_))) => {
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

/// The page size asked for when a server refuses a larger one.
pub const FALLBACK_PAGE_SIZE: usize = 100;

/// `url` with a `_count` above [`FALLBACK_PAGE_SIZE`] lowered to it (None when it asks for no more already).
pub(super) fn smaller_page(url: &Url) -> Option<Url> {
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

pub(super) fn upsert(
    tx: &rusqlite::Transaction<'_>,
    keys: &AccountKeys,
    account: &str,
    query: &str,
    pass: i64,
    r: &Value,
) -> std::result::Result<(Change, usize), StoreError> {
    let (Some(ty), Some(rid)) = (r["resourceType"].as_str(), r["id"].as_str()) else {
        return Ok((Change::Unchanged, 0));
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
    let change = Store::upsert(
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
    )?;
    Ok((change, json.len()))
}

/// The Binary attachments of DocumentReferences on the grant's origin (others are skipped: the token never leaves).
pub(super) fn attachments(fhir: &FhirClient<'_>, resource: &Value) -> Vec<(String, Url)> {
    let mut out = Vec::new();
    {
        for c in resource["content"].as_array().into_iter().flatten() {
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
