//! Syncing while locked: how a sync writes without the master key ([`Writer::Locked`]: each page sealed to the
//! account's public key into the locked inbox), and how the inbox becomes normal rows at unlock
//! ([`apply_inbox`]), in arrival order, so an edit replaces its older copy and a locked full pass removes what the
//! server deleted. Also the record kinds a "new results" notice counts.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::*;

/// How a sync writes what it receives.
#[derive(Debug, Clone, Copy)]
pub enum Writer<'a> {
    /// Unlocked: rows are sealed with the account's keys, found by keyed hashes, and compared with what is stored.
    Keys(&'a AccountKeys),
    /// Locked: pages are sealed to the account's public key into the locked inbox. Nothing written can be read
    /// back, so nothing is compared: what is new or changed is judged by `meta.lastUpdated` against the query's
    /// last run (the server's time, which is stored in the clear).
    Locked(&'a SealingKey),
}

/// The kind of record a "new results" notice counts (the app says "3 new lab results").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordKind {
    LabResult,
    VitalSign,
    /// Other observations (surveys, exams, social history, ...).
    Observation,
    Medication,
    MedicationDispense,
    MedicationStatement,
    Allergy,
    Problem,
    Immunization,
    Visit,
    Document,
    Appointment,
    Procedure,
    Report,
    CarePlan,
    Goal,
    CareTeam,
    Device,
    Order,
    Coverage,
    Questionnaire,
    Demographics,
    Other,
}

impl RecordKind {
    /// The kind of the records a sync query brings (`Observation:laboratory` → lab results).
    pub fn of_query(query: &str) -> Self {
        match query.split_once(':') {
            Some(("Observation", "laboratory")) => Self::LabResult,
            Some(("Observation", "vital-signs" | "vital-sign")) => Self::VitalSign,
            Some(("Observation", _)) => Self::Observation,
            _ => Self::of_type(query),
        }
    }

    /// The kind of a stored resource: an Observation by its categories (one search may bring every category),
    /// else by the query it came with.
    pub fn of_resource(query: &str, r: &Value) -> Self {
        if r["resourceType"] != "Observation" {
            return Self::of_query(query);
        }
        let categories = crate::views::category_codes(&r["category"]);
        if categories.iter().any(|c| c == "laboratory") {
            Self::LabResult
        } else if categories
            .iter()
            .any(|c| c == "vital-signs" || c == "vital-sign")
        {
            Self::VitalSign
        } else if categories.is_empty() {
            Self::of_query(query)
        } else {
            Self::Observation
        }
    }

    /// The kind of a resource type (Observations by their category: see [`RecordKind::of_query`]).
    pub fn of_type(ty: &str) -> Self {
        match ty {
            "Observation" => Self::Observation,
            "MedicationRequest" => Self::Medication,
            "MedicationDispense" => Self::MedicationDispense,
            "MedicationStatement" => Self::MedicationStatement,
            "AllergyIntolerance" => Self::Allergy,
            "Condition" => Self::Problem,
            "Immunization" => Self::Immunization,
            "Encounter" => Self::Visit,
            "DocumentReference" => Self::Document,
            "Appointment" => Self::Appointment,
            "Procedure" => Self::Procedure,
            "DiagnosticReport" => Self::Report,
            "CarePlan" => Self::CarePlan,
            "Goal" => Self::Goal,
            "CareTeam" => Self::CareTeam,
            "Device" => Self::Device,
            "ServiceRequest" => Self::Order,
            "Coverage" => Self::Coverage,
            "QuestionnaireResponse" => Self::Questionnaire,
            "Patient" => Self::Demographics,
            _ => Self::Other,
        }
    }
}

/// One operation a locked sync recorded, applied in order at unlock.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(super) enum LockedOp {
    /// A page's resources, seen by `query` in pass `pass`; `news` when the query had run before (so what is new or
    /// changed among them belongs in "what's new").
    Upsert {
        query: String,
        pass: i64,
        news: bool,
        resources: Vec<Value>,
    },
    /// The query completed a full pass: what it did not see is gone on the server.
    Reconcile { query: String, pass: i64 },
    /// The patient no longer shares this query's data: what earlier inbox entries brought for it goes too.
    Forget { query: String },
    /// A document's content.
    Binary {
        id: String,
        content_type: String,
        /// base64
        bytes: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct LockedBatch {
    pub ops: Vec<LockedOp>,
}

/// One "what's new" entry (sealed in the store): a record a sync brought, new or changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewsEntry {
    pub query: String,
    pub resource_type: String,
    pub id: String,
    pub changed: bool,
    /// The sync's time (Unix ms).
    pub at_ms: i64,
}

fn encode(batch: &LockedBatch) -> std::result::Result<Zeroizing<Vec<u8>>, StoreError> {
    serde_json::to_vec(batch)
        .map(Zeroizing::new)
        .map_err(|_| StoreError::Encrypt)
}

impl Writer<'_> {
    pub fn is_locked(&self) -> bool {
        matches!(self, Writer::Locked(_))
    }

    pub(super) fn query_state(
        &self,
        store: &Store,
        account: &str,
        query: &str,
    ) -> std::result::Result<QueryState, StoreError> {
        match self {
            Writer::Keys(k) => store.query_state(k, account, query),
            Writer::Locked(_) => store.query_state_clear(account, query),
        }
    }

    /// Saves a query's state. Locked: the resume link cannot be sealed (it would need the account keys) and is not
    /// kept; an interrupted locked run starts that query again (what it wrote is applied idempotently).
    pub(super) fn set_query_state(
        &self,
        tx: &rusqlite::Transaction<'_>,
        account: &str,
        query: &str,
        s: &QueryState,
        error: Option<&str>,
    ) -> std::result::Result<(), StoreError> {
        match self {
            Writer::Keys(k) => Store::set_query_state(tx, k, account, query, s, error),
            Writer::Locked(_) => {
                let clear = QueryState {
                    resume_url: None,
                    ..s.clone()
                };
                Store::set_query_state_clear(tx, account, query, &clear, error)
            }
        }
    }

    /// Writes a page. Returns what each resource is: unlocked, compared with the stored copy; locked, `New` for
    /// new-or-changed (its `meta.lastUpdated` is after the query's last run, or the query never ran) and
    /// `Unchanged` otherwise.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn put_page(
        &self,
        tx: &rusqlite::Transaction<'_>,
        account: &str,
        query: &str,
        pass: i64,
        since: Option<&str>,
        now_ms: i64,
        resources: &[&Value],
    ) -> std::result::Result<(Vec<Change>, u64), StoreError> {
        match self {
            Writer::Keys(keys) => {
                let mut out = Vec::with_capacity(resources.len());
                let mut bytes = 0u64;
                for r in resources {
                    let (c, n) = query::upsert(tx, keys, account, query, pass, r)?;
                    bytes += n as u64;
                    if since.is_some()
                        && c != Change::Unchanged
                        && let Some(entry) = news_entry(query, r, c, now_ms)
                    {
                        Store::add_news(tx, keys, account, &entry)?;
                    }
                    out.push(c);
                }
                if since.is_some() && out.iter().any(|c| *c != Change::Unchanged) {
                    Store::trim_news(tx, account)?;
                }
                Ok((out, bytes))
            }
            Writer::Locked(key) => {
                let changes = resources
                    .iter()
                    .map(|r| {
                        if updated_after(r["meta"]["lastUpdated"].as_str(), since) {
                            Change::New
                        } else {
                            Change::Unchanged
                        }
                    })
                    .collect();
                let batch = LockedBatch {
                    ops: vec![LockedOp::Upsert {
                        query: query.to_owned(),
                        pass,
                        news: since.is_some(),
                        resources: resources.iter().map(|r| (*r).clone()).collect(),
                    }],
                };
                let plain = encode(&batch)?;
                Store::put_locked(tx, key, account, &plain)?;
                Ok((changes, plain.len() as u64))
            }
        }
    }

    /// After a complete full pass of a query: removes (unlocked) or marks for removal at unlock (locked) what the
    /// pass did not see. Returns the types removed now.
    pub(super) fn reconcile(
        &self,
        tx: &rusqlite::Transaction<'_>,
        account: &str,
        query: &str,
        pass: i64,
    ) -> std::result::Result<Vec<String>, StoreError> {
        match self {
            Writer::Keys(_) => Store::reconcile(tx, account, query, pass),
            Writer::Locked(key) => {
                let batch = LockedBatch {
                    ops: vec![LockedOp::Reconcile {
                        query: query.to_owned(),
                        pass,
                    }],
                };
                Store::put_locked(tx, key, account, &encode(&batch)?)?;
                Ok(Vec::new())
            }
        }
    }

    /// Removes a query's data (consent withdrawn). Locked: the stored rows go at once (no key is needed to delete)
    /// and a marker makes unlock drop what earlier locked runs brought for it.
    pub(super) fn forget_query(
        &self,
        tx: &rusqlite::Transaction<'_>,
        account: &str,
        query: &str,
    ) -> std::result::Result<Vec<String>, StoreError> {
        let gone = Store::forget_query(tx, account, query)?;
        if let Writer::Locked(key) = self {
            let batch = LockedBatch {
                ops: vec![LockedOp::Forget {
                    query: query.to_owned(),
                }],
            };
            Store::put_locked(tx, key, account, &encode(&batch)?)?;
        }
        Ok(gone)
    }

    /// Whether a document's content is stored already (locked: unknown, so contents are fetched only for documents
    /// that are new or changed).
    pub(super) fn has_binary(&self, store: &Store, account: &str, id: &str) -> bool {
        match self {
            Writer::Keys(k) => store.has_binary(k, account, id).unwrap_or(false),
            Writer::Locked(_) => false,
        }
    }

    pub(super) fn put_binary(
        &self,
        tx: &rusqlite::Transaction<'_>,
        account: &str,
        id: &str,
        content_type: &str,
        bytes: &[u8],
    ) -> std::result::Result<(), StoreError> {
        match self {
            Writer::Keys(k) => Store::put_binary(tx, k, account, id, content_type, bytes),
            Writer::Locked(key) => {
                let batch = LockedBatch {
                    ops: vec![LockedOp::Binary {
                        id: id.to_owned(),
                        content_type: content_type.to_owned(),
                        bytes: base64::engine::general_purpose::STANDARD.encode(bytes),
                    }],
                };
                Store::put_locked(tx, key, account, &encode(&batch)?)
            }
        }
    }
}

/// Whether a resource's `meta.lastUpdated` is after `since` (both the server's instants). Without `since` (the
/// query never completed) everything is new; without a stamp, a resource counts as new or changed.
pub(super) fn updated_after(last_updated: Option<&str>, since: Option<&str>) -> bool {
    let (Some(lu), Some(since)) = (last_updated, since) else {
        return true;
    };
    match (
        crate::views::FhirDate::parse(lu),
        crate::views::FhirDate::parse(since),
    ) {
        (Some(a), Some(b)) => {
            let (ka, kb) = (a.sort_key(), b.sort_key());
            ka > kb || (ka == kb && lu > since)
        }
        _ => lu > since,
    }
}

fn news_entry(query: &str, r: &Value, c: Change, now_ms: i64) -> Option<Vec<u8>> {
    if query == "Patient" {
        return None;
    }
    let entry = NewsEntry {
        query: query.to_owned(),
        resource_type: r["resourceType"].as_str()?.to_owned(),
        id: r["id"].as_str()?.to_owned(),
        changed: c == Change::Changed,
        at_ms: now_ms,
    };
    serde_json::to_vec(&entry).ok()
}

/// What applying an account's inbox did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Sealed batches applied.
    pub batches: usize,
    pub new: usize,
    pub changed: usize,
    pub deleted: usize,
    /// Batches that did not open (damage): dropped; the account's queries are fetched whole at the next sync.
    pub damaged: usize,
}

/// Opens the account's locked inbox with its private key and applies it, in order, to the normal rows, in one
/// transaction that also empties the inbox (a crash leaves it whole, to be applied at the next unlock). What is new
/// or changed goes into "what's new".
pub fn apply_inbox(
    store: &Store,
    keys: &AccountKeys,
    account: &str,
    now_ms: i64,
) -> std::result::Result<Applied, StoreError> {
    if !store.has_locked(account)? {
        return Ok(Applied::default());
    }
    let Some(opening) = store.opening_key(keys, account)? else {
        return Ok(Applied::default());
    };
    let applied = store.write(|tx| {
        let rows = Store::locked_rows(tx, account)?;
        let mut out = Applied::default();
        let Some(last) = rows.last().map(|r| r.0) else {
            return Ok(out);
        };
        let mut news = false;
        for (_, enc, sealed) in rows {
            let batch = opening
                .open(&enc, &sealed)
                .ok()
                .and_then(|p| serde_json::from_slice::<LockedBatch>(&p).ok());
            let Some(batch) = batch else {
                out.damaged += 1;
                continue;
            };
            out.batches += 1;
            for op in batch.ops {
                match op {
                    LockedOp::Upsert {
                        query,
                        pass,
                        news: record,
                        resources,
                    } => {
                        for r in &resources {
                            let (c, _) = query::upsert(tx, keys, account, &query, pass, r)?;
                            match c {
                                Change::New => out.new += 1,
                                Change::Changed => out.changed += 1,
                                Change::Unchanged => continue,
                            }
                            if record && let Some(entry) = news_entry(&query, r, c, now_ms) {
                                Store::add_news(tx, keys, account, &entry)?;
                                news = true;
                            }
                        }
                    }
                    LockedOp::Reconcile { query, pass } => {
                        out.deleted += Store::reconcile(tx, account, &query, pass)?.len();
                    }
                    LockedOp::Forget { query } => {
                        out.deleted += Store::forget_query(tx, account, &query)?.len();
                    }
                    LockedOp::Binary {
                        id,
                        content_type,
                        bytes,
                    } => {
                        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(bytes) {
                            Store::put_binary(tx, keys, account, &id, &content_type, &bytes)?;
                        }
                    }
                }
            }
        }
        if news {
            Store::trim_news(tx, account)?;
        }
        if out.damaged > 0 {
            tx.execute(
                "UPDATE sync_queries SET since = NULL WHERE account = ?",
                [account],
            )?;
        }
        Store::drop_locked(tx, account, last)?;
        Ok(out)
    })?;
    if applied.damaged > 0 {
        tracing::warn!(target: "chartlink", count = applied.damaged, "damaged locked-sync batches were dropped; the next sync fetches them again");
        store.notify(crate::store::StoreNotice::DamagedRows {
            account_id: account.to_owned(),
            count: applied.damaged,
        });
    }
    Ok(applied)
}
