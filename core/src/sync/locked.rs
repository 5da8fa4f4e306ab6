//! Syncing while locked: how a sync writes without the master key ([`Writer::Locked`]: each page sealed to the
//! account's public key and authenticated with its inbox secret into the locked inbox), and how the inbox becomes
//! normal rows at unlock ([`apply_inbox`]), in arrival order, so an edit replaces its older copy and a locked full
//! pass removes what the server deleted. Also the record kinds a "new results" notice counts.
//!
//! - **Authenticated.** The inbox secret ([`InboxSecret`]) lives in the host's secure store, in the tokens' class
//!   (readable while locked, never in the database). Envelopes are sealed in HPKE PSK mode with it, bound to the
//!   account and to their sequence number (see `store::sealed`). Unlock applies an envelope only if it opens, its
//!   number is above the last one applied (kept in the secure store and the database: a replayed or reordered
//!   envelope is refused) and every resource in it is the account's patient's (or, for the referenced doctors,
//!   places and drugs, of the type its query names). Envelopes missing at unlock (a gap in the numbers, or deleted
//!   from the end: the last number sealed is kept in the secure store after each locked pass) count as lost. What
//!   is refused is never applied: it is dropped, counted in
//!   [`Applied`], reported as a [`crate::StoreNotice::DamagedRows`], and the account's next sync is a whole one, so
//!   what a genuine envelope held is fetched again.
//! - **Bounded.** A page whose keyed digest matches one sealed since the last unlocked write (so applied, or
//!   pending) is not sealed again, and a locked full pass that found nothing changed seals no reconcile marker: an
//!   unchanged record adds nothing to the inbox. The inbox of an account is capped (`SyncBudget`); a page that
//!   would pass the cap ends the run ([`crate::BackgroundOutcome::InboxFull`]).
//! - **Applied in chunks.** [`apply_inbox`] opens and applies [`APPLY_CHUNK`] envelopes per transaction, deleting
//!   them in the same transaction: memory stays bounded by a chunk, and a kill loses nothing (what was committed
//!   is applied and gone; the rest waits for the next unlock).

use base64::Engine as _;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::*;

/// Where an account's inbox secret is kept in the host's secure store (tokens' class: any key but
/// [`crate::STORE_KEY`]).
pub const INBOX_SECRET_PREFIX: &str = "chartlink/inbox-psk/";

/// The secure-store key of an account's inbox secret.
pub fn inbox_secret_key(account: &str) -> String {
    format!("{INBOX_SECRET_PREFIX}{account}")
}

/// An account's inbox secret: the HPKE PSK that authenticates its locked inbox and keys its page digests, the last
/// envelope number applied (kept beside it so that a database set back cannot replay what was applied), and the
/// last envelope number a locked sync sealed (so that envelopes deleted from the end of the inbox are missed at
/// unlock, not silently lost). Stored in the host's secure store only: version byte, 32 bytes of key, 8 bytes of
/// each number (version 1 had no sealed number).
#[derive(Clone)]
pub struct InboxSecret {
    psk: Zeroizing<[u8; 32]>,
    applied: i64,
    sealed: i64,
}

impl std::fmt::Debug for InboxSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InboxSecret([redacted])")
    }
}

const SECRET_VERSION: u8 = 2;
/// The first layout: no sealed number.
const SECRET_VERSION_1: u8 = 1;

impl InboxSecret {
    /// A new random secret; nothing applied yet.
    pub fn generate() -> std::result::Result<Self, StoreError> {
        let mut psk = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(&mut psk[..])
            .map_err(|_| StoreError::Encrypt)?;
        Ok(Self {
            psk,
            applied: 0,
            sealed: 0,
        })
    }

    /// Reads a stored secret (`None`: not one). A version 1 secret reads with nothing sealed known.
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let number = |at: usize| -> Option<i64> {
            Some(i64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
        };
        let sealed = match (b.len(), b.first()) {
            (41, Some(&SECRET_VERSION_1)) => 0,
            (49, Some(&SECRET_VERSION)) => number(41)?,
            _ => return None,
        };
        let mut psk = Zeroizing::new([0u8; 32]);
        psk.copy_from_slice(&b[1..33]);
        Some(Self {
            psk,
            applied: number(33)?,
            sealed,
        })
    }

    /// What the secure store keeps.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(49));
        out.push(SECRET_VERSION);
        out.extend_from_slice(&self.psk[..]);
        out.extend_from_slice(&self.applied.to_be_bytes());
        out.extend_from_slice(&self.sealed.to_be_bytes());
        out
    }

    pub fn psk(&self) -> &[u8] {
        &self.psk[..]
    }

    /// The last envelope number applied.
    pub fn applied(&self) -> i64 {
        self.applied
    }

    pub fn set_applied(&mut self, applied: i64) {
        self.applied = self.applied.max(applied);
    }

    /// The last envelope number a locked sync sealed, as recorded after its pass (0: none known).
    pub fn sealed(&self) -> i64 {
        self.sealed
    }

    pub fn set_sealed(&mut self, sealed: i64) {
        self.sealed = self.sealed.max(sealed);
    }
}

/// How many envelopes [`apply_inbox`] applies per transaction.
pub const APPLY_CHUNK: usize = 32;

/// The pseudo-query under which the digests of documents' contents are kept.
const BINARY_PAGES: &str = "\u{0}binary";

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

pub use crate::kinds::RecordKind;

impl RecordKind {
    /// The kind of the records a sync query brings (`Observation:laboratory` → lab results).
    pub fn of_query(query: &str) -> Self {
        match query.split_once(':') {
            Some(("Observation", category)) => {
                crate::kinds::observation_category_kind(category).unwrap_or(Self::Observation)
            }
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

    /// The kind of a resource type (Observations by their category: see [`RecordKind::of_query`]), from
    /// [`crate::kinds::RESOURCE_KINDS`].
    pub fn of_type(ty: &str) -> Self {
        crate::kinds::of_type(ty).map_or(Self::Other, |k| k.record_kind)
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
                // A query marked for a whole reseal keeps its full pass open, so the next run seals it whole.
                let reseal = Store::needs_reseal(tx, account, query)?;
                let clear = QueryState {
                    resume_url: None,
                    full_pass_done: s.full_pass_done && !reseal,
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
                // What a locked run sealed for this query no longer describes the rows.
                Store::forget_locked_pages(tx, account, Some(query))?;
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
                // An empty page brings nothing (an empty query's pass is noted at its reconcile).
                if resources.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                // The same page sealed since the last unlocked write is applied or pending: nothing is new in it.
                let json: Vec<Vec<u8>> = resources
                    .iter()
                    .map(serde_json::to_vec)
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| StoreError::Encrypt)?;
                let mut parts: Vec<&[u8]> = vec![query.as_bytes()];
                parts.extend(json.iter().map(Vec::as_slice));
                let tag = key.digest(&parts);
                drop(json);
                if Store::note_locked_page(tx, account, query, pass, &tag)? {
                    return Ok((vec![Change::Unchanged; resources.len()], 0));
                }
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
            Writer::Keys(_) => {
                Store::forget_locked_pages(tx, account, Some(query))?;
                Store::reconcile(tx, account, query, pass)
            }
            Writer::Locked(key) => {
                // Nothing changed (no marker needed), or pages were skipped in a pass that changed: then the query
                // is sealed whole by the next run of this pass (see `set_query_state`), which reconciles.
                if !Store::has_locked_pages(tx, account, query, pass)? {
                    // A pass that found nothing: noted as one "empty" page, so that the next empty pass of an
                    // empty query seals nothing either.
                    let empty = key.digest(&[query.as_bytes(), b"\0empty"]);
                    Store::note_locked_page(tx, account, query, pass, &empty)?;
                }
                if !Store::end_locked_pass(tx, account, query, pass)? {
                    return Ok(Vec::new());
                }
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
        Store::forget_locked_pages(tx, account, Some(query))?;
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
            Writer::Keys(k) => {
                Store::forget_locked_pages(tx, account, Some(BINARY_PAGES))?;
                Store::put_binary(tx, k, account, id, content_type, bytes)
            }
            Writer::Locked(key) => {
                let tag = key.digest(&[
                    BINARY_PAGES.as_bytes(),
                    id.as_bytes(),
                    content_type.as_bytes(),
                    bytes,
                ]);
                if Store::note_locked_page(tx, account, BINARY_PAGES, 0, &tag)? {
                    return Ok(());
                }
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
    /// Envelopes that did not open (damage, or not sealed with the account's inbox secret: forged, or from before
    /// envelopes were authenticated) or did not parse: dropped, never applied.
    pub damaged: usize,
    /// Envelopes that opened but were refused: replayed or out of order (a number not above the last applied), or
    /// holding a resource that is not the account's patient's. Dropped, never applied.
    pub refused: usize,
    /// Envelope numbers missing between those applied (rows removed from the file).
    pub missing: usize,
    /// The last envelope number applied.
    pub last_applied: i64,
}

impl Applied {
    /// Whether anything was dropped or missing (the account's next sync must be a whole one).
    pub fn lost(&self) -> usize {
        self.damaged + self.refused + self.missing
    }
}

/// Whether every resource of a page sealed for `query` may be stored for `account`: the linked patient's, or for
/// the referenced doctors, places and drugs (`ref:<type>`), a resource of that type.
fn admissible(account: &LinkedAccount, query: &str, resources: &[Value]) -> bool {
    let base = account.server.fhir_base.as_str();
    match query
        .strip_prefix(REFERENCED)
        .and_then(|q| q.strip_prefix(':'))
    {
        Some(ty) => {
            crate::views::REFERENCED_TYPES.contains(&ty)
                && resources.iter().all(|r| r["resourceType"] == ty)
        }
        None => resources
            .iter()
            .all(|r| belongs_to(r, &account.patient_id, base)),
    }
}

/// Opens the account's locked inbox with its private key and inbox secret and applies it, in order, to the normal
/// rows, [`APPLY_CHUNK`] envelopes per transaction, each transaction removing what it applied (a kill leaves the
/// rest for the next unlock). An envelope is applied only if it opens, its number is above the last applied
/// (`secret.applied()` and the database's record, whichever is higher) and every resource in it is the patient's;
/// anything else is dropped unapplied (see [`Applied`]), reported as a [`crate::StoreNotice::DamagedRows`], and the
/// account's next sync is made a whole one (every `since` and the full-pass stamp cleared, the page digests
/// forgotten) so that what a genuine envelope held is fetched again. Envelopes from before they were authenticated
/// (no number) are refused the same way: they cannot be told from forgeries. What is new or changed goes into
/// "what's new". After each chunk, `applied(n)` is told the last number applied (the caller keeps it in the secure
/// store); its failure stops the apply (what is left stays for the next unlock).
pub fn apply_inbox(
    store: &Store,
    keys: &AccountKeys,
    account: &LinkedAccount,
    secret: &InboxSecret,
    now_ms: i64,
    applied: &mut dyn FnMut(i64) -> std::result::Result<(), StoreError>,
) -> std::result::Result<Applied, StoreError> {
    let id = account.id.as_str();
    let floor = secret.applied().max(store.applied_seq(id)?);
    if !store.has_locked(id)? {
        // Nothing left to open: but what was sealed after the last envelope applied is missing.
        return missed_at_the_end(store, id, secret, floor, Applied::default(), applied);
    }
    let Some(opening) = store.opening_key(keys, id, secret.psk())? else {
        return Ok(Applied::default());
    };
    let mut total = Applied {
        last_applied: floor,
        ..Applied::default()
    };
    loop {
        let floor = total.last_applied;
        let chunk = store.write(|tx| {
            let rows = Store::locked_rows(tx, id, APPLY_CHUNK)?;
            let mut out = Applied {
                last_applied: floor,
                ..Applied::default()
            };
            let Some(last_row) = rows.last().map(|r| r.0) else {
                return Ok(None);
            };
            let mut news = false;
            for (_, nseq, enc, sealed) in rows {
                // Before sealing was authenticated: no number, and nothing tells it from a forgery.
                let Some(nseq) = nseq else {
                    out.damaged += 1;
                    continue;
                };
                if nseq <= out.last_applied {
                    out.refused += 1;
                    continue;
                }
                let batch = opening
                    .open(nseq, &enc, &sealed)
                    .ok()
                    .and_then(|p| serde_json::from_slice::<LockedBatch>(&p).ok());
                let Some(batch) = batch else {
                    out.damaged += 1;
                    continue;
                };
                let foreign = batch.ops.iter().any(|op| match op {
                    LockedOp::Upsert {
                        query, resources, ..
                    } => !admissible(account, query, resources),
                    _ => false,
                });
                if foreign {
                    out.refused += 1;
                    continue;
                }
                out.missing += usize::try_from(nseq - out.last_applied - 1).unwrap_or(0);
                out.last_applied = nseq;
                out.batches += 1;
                for op in batch.ops {
                    apply_op(tx, keys, id, op, now_ms, &mut out, &mut news)?;
                }
            }
            if news {
                Store::trim_news(tx, id)?;
            }
            if out.lost() > 0 {
                fetch_whole_next_time(tx, id)?;
            }
            Store::drop_locked(tx, id, last_row, out.last_applied)?;
            Ok(Some(out))
        })?;
        let Some(chunk) = chunk else { break };
        total.batches += chunk.batches;
        total.new += chunk.new;
        total.changed += chunk.changed;
        total.deleted += chunk.deleted;
        total.damaged += chunk.damaged;
        total.refused += chunk.refused;
        total.missing += chunk.missing;
        total.last_applied = chunk.last_applied;
        applied(total.last_applied)?;
    }
    let floor = total.last_applied;
    missed_at_the_end(store, id, secret, floor, total, applied)
}

/// The account's next sync fetches everything again: every query's `since` and the full-pass stamp cleared, the
/// page digests forgotten (what a dropped or missing envelope held comes back).
fn fetch_whole_next_time(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
) -> std::result::Result<(), StoreError> {
    tx.execute(
        "UPDATE sync_queries SET since = NULL WHERE account = ?",
        [id],
    )?;
    tx.execute(
        "UPDATE sync_accounts SET last_full_ms = NULL WHERE account = ?",
        [id],
    )?;
    Store::forget_locked_pages(tx, id, None)
}

/// The end of an apply: envelopes sealed after `last_applied` (by the secret's sealed number) that were not there to
/// apply were deleted from the end of the inbox. They count as missing, the next sync fetches the record whole, and
/// their numbers are passed (so a replay of them is refused and they are not missed twice). Then the notice of
/// anything lost.
fn missed_at_the_end(
    store: &Store,
    id: &str,
    secret: &InboxSecret,
    last_applied: i64,
    mut total: Applied,
    applied: &mut dyn FnMut(i64) -> std::result::Result<(), StoreError>,
) -> std::result::Result<Applied, StoreError> {
    if secret.sealed() > last_applied {
        total.missing += usize::try_from(secret.sealed() - last_applied).unwrap_or(usize::MAX);
        total.last_applied = secret.sealed();
        store.write(|tx| {
            fetch_whole_next_time(tx, id)?;
            Store::drop_locked(tx, id, 0, secret.sealed())
        })?;
        applied(secret.sealed())?;
    }
    if total.lost() > 0 {
        tracing::warn!(target: "chartlink", damaged = total.damaged, refused = total.refused, missing = total.missing,
            "locked-sync envelopes were refused (damaged, not authentic, replayed or not this patient's) and dropped; the next sync fetches the record whole");
        store.notify(crate::store::StoreNotice::DamagedRows {
            account_id: id.to_owned(),
            count: total.lost(),
        });
    }
    Ok(total)
}

/// Applies one operation of an opened envelope.
fn apply_op(
    tx: &rusqlite::Transaction<'_>,
    keys: &AccountKeys,
    account: &str,
    op: LockedOp,
    now_ms: i64,
    out: &mut Applied,
    news: &mut bool,
) -> std::result::Result<(), StoreError> {
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
                    *news = true;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn an_inbox_secret_keeps_its_numbers_and_reads_the_first_layout() {
        let mut secret = InboxSecret::generate().unwrap();
        secret.set_applied(7);
        secret.set_sealed(9);
        secret.set_sealed(3);
        let read = InboxSecret::from_bytes(&secret.to_bytes()).unwrap();
        assert_eq!((read.applied(), read.sealed()), (7, 9));
        assert_eq!(read.psk(), secret.psk());
        // Version 1: key and applied number only; nothing sealed known.
        let mut v1 = vec![1u8];
        v1.extend_from_slice(secret.psk());
        v1.extend_from_slice(&7i64.to_be_bytes());
        let old = InboxSecret::from_bytes(&v1).unwrap();
        assert_eq!((old.applied(), old.sealed()), (7, 0));
        let current = secret.to_bytes();
        for bad in [&v1[..40], &current[..48], &[2u8; 41][..], &[9u8; 49][..]] {
            assert!(InboxSecret::from_bytes(bad).is_none());
        }
    }
}
