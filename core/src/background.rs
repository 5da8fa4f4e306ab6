//! Background sync: what the host's scheduler (Android JobScheduler, iOS BGAppRefreshTask) calls, and the
//! "what's new" list the app shows after unlock.
//!
//! - [`ChartLink::sync_due`] says which accounts are due (Active ones whose last sync is older than the budget's
//!   interval); [`ChartLink::background_sync`] syncs them within the host's budget (time, data, metered network,
//!   low battery).
//! - Locked or not: while locked it runs on what is readable after the device's first unlock (the tokens and the
//!   accounts' inbox secrets in the host's secure store, the accounts' public keys in the database) and writes
//!   sealed to the public keys, authenticated with the inbox secrets (see [`crate::sync::locked`]); the store key,
//!   and so every read, stays behind the host's unlock. An account's inbox holds at most
//!   [`SyncBudget::locked_inbox_max_bytes`]; reaching it ends that account's run with
//!   [`BackgroundOutcome::InboxFull`] until an unlock applies the inbox. Its [`BackgroundReport`] and
//!   [`crate::Event::BackgroundSyncFinished`] carry counts per account and kind only ("3 new lab results from
//!   fhir.hartford.example"): no names, values, codes or ids, so a lock-screen notification is safe.
//! - After unlock, [`ChartLink::whats_new`] lists the records syncs brought (kind, id, display name, date), locked
//!   runs and unlocked ones alike, until [`ChartLink::mark_whats_new_seen`].

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::sync::locked::NewsEntry;
pub use crate::sync::news::NewRecord;
use crate::sync::{RecordKind, Writer};
use crate::*;

/// What the host lets a background sync spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncBudget {
    /// Stop after this long (the OS's allowance: iOS gives a refresh task about 30 s). Checked between requests; an
    /// interrupted query starts again at the next run.
    pub max_duration_ms: u64,
    /// Stop once this many bytes of records and documents were received (`None`: no cap): held within an account's
    /// pass too (checked between requests; the account that reaches it ends with
    /// [`BackgroundOutcome::BudgetExhausted`], what it stored or sealed so far kept whole, and the next run goes on
    /// from there), and no further account starts.
    pub max_bytes: Option<u64>,
    /// On a metered network: document contents are left for a later sync.
    pub metered: bool,
    /// The battery is low: nothing is synced.
    pub low_battery: bool,
    /// An account synced less than this long ago is not due.
    pub min_interval_ms: i64,
    /// The most bytes an account's locked inbox may hold (what locked runs received, waiting for unlock). A page
    /// that would pass it is not written and ends the account's run with [`BackgroundOutcome::InboxFull`]; the
    /// query goes on from there after the next unlock. Default [`DEFAULT_LOCKED_INBOX_MAX_BYTES`].
    pub locked_inbox_max_bytes: u64,
}

/// The default cap of an account's locked inbox: 64 MiB (a whole first sync of a large record is about 25 MB).
pub const DEFAULT_LOCKED_INBOX_MAX_BYTES: u64 = 64 << 20;

impl Default for SyncBudget {
    fn default() -> Self {
        Self {
            max_duration_ms: 25_000,
            max_bytes: None,
            metered: false,
            low_battery: false,
            min_interval_ms: 60 * 60_000,
            locked_inbox_max_bytes: DEFAULT_LOCKED_INBOX_MAX_BYTES,
        }
    }
}

/// What became of one account in a background sync (no message: nothing that could carry health data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackgroundOutcome {
    Synced,
    /// Synced less than the budget's interval ago.
    NotDue,
    /// The battery is low.
    LowBattery,
    /// The budget (time or data) ran out before or during this account; the next run goes on.
    BudgetExhausted,
    /// The account needs linking again, or its access was revoked: not synced.
    NotActive,
    /// The account was never opened unlocked on this device since this version (it has no key pair yet).
    NeedsUnlock,
    /// The network or the server failed: try again later.
    NetworkFailed,
    /// Access ended or must be renewed (found by this run; see the events).
    AuthorizationFailed,
    /// The secure store or the database failed.
    StorageFailed,
    /// The account's locked inbox reached [`SyncBudget::locked_inbox_max_bytes`]: nothing more is written until
    /// an unlock applies it (what arrived so far is kept).
    InboxFull,
}

/// How many new or changed records of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindCount {
    pub kind: RecordKind,
    pub count: u32,
}

/// One account in a background sync: counts only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountNews {
    pub account_id: String,
    /// Which provider: the FHIR server's host name (the app maps it to the name it shows).
    pub provider: String,
    pub outcome: BackgroundOutcome,
    /// New or changed records per kind (while locked, new and changed cannot be told apart yet).
    pub counts: Vec<KindCount>,
}

/// What a background sync did: counts per account and kind, never names, values, codes or ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackgroundReport {
    /// Whether it ran locked (what it brought is readable after unlock).
    pub locked: bool,
    pub accounts: Vec<AccountNews>,
    pub duration_ms: u64,
}

impl BackgroundReport {
    /// All new or changed records.
    pub fn total(&self) -> u32 {
        self.accounts
            .iter()
            .flat_map(|a| a.counts.iter())
            .map(|c| c.count)
            .sum()
    }
}

/// Whether a background run holds the accounts' tokens in memory while the SDK is locked (so that the idle lock
/// and unlock leave them to it).
#[derive(Debug, Default)]
pub(crate) struct BackgroundState {
    /// Held while a background run has loaded the tokens of a locked SDK.
    holding_tokens: Mutex<bool>,
    /// One background run at a time.
    run: tokio::sync::Mutex<()>,
    /// One application of the locked inbox at a time (the one handed off after `unlock`, a sync's own, a link's).
    applying: Mutex<()>,
}

impl BackgroundState {
    pub(crate) fn holding(&self) -> std::sync::MutexGuard<'_, bool> {
        self.holding_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until no background run is in progress.
    pub(crate) async fn wait_for_run(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.run.lock().await
    }

    /// Whether a background run holds the tokens now.
    pub(crate) fn holds_tokens(&self) -> bool {
        *self.holding()
    }
}

fn provider(a: &LinkedAccount) -> String {
    a.server.fhir_base.host_str().unwrap_or_default().to_owned()
}

fn outcome_of(e: &Error) -> BackgroundOutcome {
    match e {
        Error::Network(_) => BackgroundOutcome::NetworkFailed,
        Error::AccessRevoked | Error::RelinkNeeded | Error::Authorization(_) => {
            BackgroundOutcome::AuthorizationFailed
        }
        Error::Locked | Error::Cancelled => BackgroundOutcome::BudgetExhausted,
        _ => BackgroundOutcome::StorageFailed,
    }
}

fn counts(per_kind: &BTreeMap<RecordKind, u32>) -> Vec<KindCount> {
    per_kind
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(kind, count)| KindCount {
            kind: *kind,
            count: *count,
        })
        .collect()
}

impl ChartLink {
    /// The accounts a background sync would sync now: Active ones not synced within `budget.min_interval_ms`.
    /// Works locked (it reads the account entries, which hold no health data, from the secure store).
    pub fn sync_due(&self, budget: &SyncBudget) -> Result<Vec<String>> {
        let list = self.accounts_for_background()?;
        let now = self.host.clock.now_unix_ms();
        let mut out = Vec::new();
        for a in list {
            if a.status == AccountStatus::Active && self.is_due(&a.id, now, budget)? {
                out.push(a.id);
            }
        }
        Ok(out)
    }

    fn is_due(&self, account_id: &str, now: i64, budget: &SyncBudget) -> Result<bool> {
        let last = self.store.last_sync_ms(account_id).map_err(storage)?;
        // A stamp in the future (written while the clock ran ahead) is stale, not "synced just now" for ever.
        Ok(last.is_none_or(|t| t > now || now - t >= budget.min_interval_ms))
    }

    /// The linked accounts, readable while locked too (from the secure store, without keeping any token).
    fn accounts_for_background(&self) -> Result<Vec<LinkedAccount>> {
        if self.idle.locked().is_none() || self.background.holds_tokens() {
            return Ok(self.accounts.list());
        }
        let fresh = account::Accounts::load(
            self.host.secure_store.clone(),
            self.host.clock.clone(),
            self.http.clone(),
            self.config.client_auth.clone(),
        )?;
        Ok(fresh.list())
    }

    /// Syncs the accounts that are due, within `budget`, locked or not (see the module docs). Returns, and sends
    /// as [`Event::BackgroundSyncFinished`], counts per account and kind only. While locked every read still
    /// answers [`Error::Locked`]; what arrived is readable after [`ChartLink::unlock`], and listed by
    /// [`ChartLink::whats_new`].
    ///
    /// Errors: [`Error::Storage`] when the secure store cannot return the tokens (an iPhone that was not unlocked
    /// since it started). An account's own failure is its [`BackgroundOutcome`], not an error.
    pub async fn background_sync(&self, budget: &SyncBudget) -> Result<BackgroundReport> {
        self.background_sync_with(budget, &SyncOptions::default())
            .await
    }

    /// [`ChartLink::background_sync`] with sync options (tests, tools).
    pub async fn background_sync_with(
        &self,
        budget: &SyncBudget,
        options: &SyncOptions,
    ) -> Result<BackgroundReport> {
        let started = Instant::now();
        let _one = self.background.run.lock().await;
        self.tick();
        let locked = self.idle.locked().is_some();
        if locked {
            // The tokens come back into memory for this run only (the idle lock and unlock leave them to it).
            let mut holding = self.background.holding();
            self.accounts.reload()?;
            *holding = true;
        }
        let result = self.background_run(budget, options, locked, started).await;
        if locked {
            let mut holding = self.background.holding();
            *holding = false;
            let still_locked = self.idle.locked().is_some();
            if still_locked {
                self.accounts.forget_secrets();
            }
            drop(holding);
            if !still_locked {
                // Unlocked while this ran: what it wrote after the unlock applied the inbox is applied now.
                self.prepare_accounts();
            }
        }
        let report = result?;
        self.emit(Event::BackgroundSyncFinished(report.clone()));
        Ok(report)
    }

    async fn background_run(
        &self,
        budget: &SyncBudget,
        options: &SyncOptions,
        locked: bool,
        started: Instant,
    ) -> Result<BackgroundReport> {
        let deadline = started + Duration::from_millis(budget.max_duration_ms);
        let mut report = BackgroundReport {
            locked,
            accounts: Vec::new(),
            duration_ms: 0,
        };
        let mut bytes = 0u64;
        let now = self.host.clock.now_unix_ms();
        let options = SyncOptions {
            fetch_documents: options.fetch_documents && !budget.metered,
            ..options.clone()
        };
        for a in self.accounts.list() {
            let news = |outcome| AccountNews {
                account_id: a.id.clone(),
                provider: provider(&a),
                outcome,
                counts: Vec::new(),
            };
            let outcome = if budget.low_battery {
                Some(BackgroundOutcome::LowBattery)
            } else if a.status != AccountStatus::Active {
                Some(BackgroundOutcome::NotActive)
            } else if !self.is_due(&a.id, now, budget)? {
                Some(BackgroundOutcome::NotDue)
            } else if Instant::now() >= deadline || budget.max_bytes.is_some_and(|m| bytes >= m) {
                Some(BackgroundOutcome::BudgetExhausted)
            } else {
                None
            };
            if let Some(outcome) = outcome {
                report.accounts.push(news(outcome));
                continue;
            }
            // Out of time, or the lock state changed: a run that started locked stops when the user unlocks (the
            // app syncs in the foreground then), one that started unlocked stops at the idle lock (as `sync` does).
            let cancelled = || {
                self.tick();
                Instant::now() >= deadline || self.idle.locked().is_some() != locked
            };
            // What is left of the data budget, held inside this account's pass.
            let options = SyncOptions {
                max_bytes: budget.max_bytes.map(|m| m.saturating_sub(bytes)),
                ..options.clone()
            };
            let result = if locked {
                let secret = match self.inbox_secret(&a.id) {
                    Ok(Some(secret)) => secret,
                    // Never unlocked here since inbox secrets exist: the first unlock makes one.
                    Ok(None) => {
                        report.accounts.push(news(BackgroundOutcome::NeedsUnlock));
                        continue;
                    }
                    Err(_) => {
                        report.accounts.push(news(BackgroundOutcome::StorageFailed));
                        continue;
                    }
                };
                let cap = budget.locked_inbox_max_bytes;
                let key = self
                    .store
                    .sealing_key(&a.id, secret.psk(), secret.applied(), cap)
                    .map_err(storage)?;
                drop(secret);
                match key {
                    Some(_) if self.store.locked_bytes(&a.id).map_err(storage)? >= cap => {
                        report.accounts.push(news(BackgroundOutcome::InboxFull));
                        continue;
                    }
                    Some(key) => {
                        let result = self
                            .sync_account_quietly(&a, Writer::Locked(&key), &options, &cancelled)
                            .await;
                        self.record_sealed(&a.id);
                        if key.inbox_full() {
                            report.accounts.push(news(BackgroundOutcome::InboxFull));
                            continue;
                        }
                        result
                    }
                    None => {
                        report.accounts.push(news(BackgroundOutcome::NeedsUnlock));
                        continue;
                    }
                }
            } else {
                match self.account_keys(&a.id) {
                    Ok(keys) => {
                        self.prepare_account(&keys, &a.id);
                        self.sync_account_quietly(&a, Writer::Keys(&keys), &options, &cancelled)
                            .await
                    }
                    Err(e) => Err(e),
                }
            };
            match result {
                Ok(r) => {
                    bytes += r.bytes;
                    report.accounts.push(AccountNews {
                        counts: counts(&r.per_kind),
                        ..news(BackgroundOutcome::Synced)
                    });
                }
                Err(e) => {
                    if matches!(e, Error::Cancelled)
                        && let Some(max) = budget.max_bytes
                    {
                        // Stopped by the data budget: it is spent.
                        bytes = bytes.max(max);
                    }
                    report.accounts.push(news(outcome_of(&e)));
                }
            }
        }
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// One account's sync for a background run: no progress events, the grant's own failures handled as in
    /// [`ChartLink::sync`] (revocation by the host's policy, re-link needed as an event).
    async fn sync_account_quietly(
        &self,
        account: &LinkedAccount,
        writer: Writer<'_>,
        options: &SyncOptions,
        cancelled: &(dyn Fn() -> bool + Send + Sync),
    ) -> Result<SyncReport> {
        let ctx = sync::SyncContext {
            http: &self.http,
            accounts: &self.accounts,
            store: &self.store,
            now_ms: self.host.clock.now_unix_ms(),
        };
        let result =
            sync::sync_account(&ctx, account, writer, options, &mut |_| {}, cancelled).await;
        match &result {
            Err(Error::AccessRevoked) => self.revoked(&account.id).await?,
            Err(Error::RelinkNeeded) => self.emit(Event::RelinkNeeded {
                account_id: account.id.clone(),
            }),
            _ => {}
        }
        result
    }

    /// Gives every account its key pair and applies what locked syncs wrote (at start-up and unlock). A failure
    /// leaves the inbox for the next time (it is retried by the next sync) and is logged without detail.
    /// Applies what locked syncs wrote, for every account (see [`ChartLink::apply_locked_inbox`]). Returns the
    /// number of sealed batches applied.
    pub(crate) fn prepare_accounts(&self) -> u64 {
        let mut batches = 0;
        for a in self.accounts.list() {
            if let Ok(keys) = self.account_keys(&a.id) {
                batches += self.prepare_account(&keys, &a.id);
            }
        }
        batches
    }

    /// Applies the locked inbox now, on this thread, in chunks of [`sync::locked::APPLY_CHUNK`] envelopes that each
    /// commit (a kill loses nothing): what background syncs wrote while locked becomes normal rows. Emits
    /// [`Event::LockedInboxApplied`] when there was something to apply, and returns the number of sealed batches
    /// applied. [`ChartLink::new`] and [`ChartLink::unlock`] do this before they return; an app that builds or
    /// unlocks the SDK on its UI thread uses [`ChartLink::new_deferred`] / [`ChartLink::unlock_deferred`] and calls
    /// this from a worker thread (the FFI does it on its runtime). Until it has run, reads show the record as it
    /// was before the inbox; a sync started meanwhile waits for it (it applies the inbox first). `Locked` when
    /// locked.
    pub fn apply_locked_inbox(&self) -> Result<u64> {
        self.guard()?;
        Ok(self.apply_pending())
    }

    /// [`ChartLink::apply_locked_inbox`] without the lock check (the SDK was just built or unlocked).
    pub(crate) fn apply_pending(&self) -> u64 {
        let batches = self.prepare_accounts();
        if batches > 0 {
            self.emit(Event::LockedInboxApplied { batches });
        }
        batches
    }

    /// Makes the account's key pair and inbox secret if it has none, and applies its locked inbox. Returns the
    /// number of sealed batches applied.
    pub(crate) fn prepare_account(&self, keys: &store::AccountKeys, account_id: &str) -> u64 {
        let created = match self.store.ensure_keypair(keys, account_id) {
            Ok(created) => created,
            Err(_) => {
                tracing::warn!(target: "chartlink", "an account's background-sync key pair could not be made");
                return 0;
            }
        };
        let Some(secret) = self.ensure_inbox_secret(account_id, created) else {
            tracing::warn!(target: "chartlink", "an account's background-sync secret could not be read or made; what locked syncs wrote is kept");
            return 0;
        };
        let Ok(account) = self.accounts.get(account_id) else {
            return 0;
        };
        let _one_at_a_time = self
            .background
            .applying
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let now = self.host.clock.now_unix_ms();
        let secure = self.host.secure_store.clone();
        let key = sync::locked::inbox_secret_key(account_id);
        // The last number applied goes to the secure store after each chunk, where a database set back cannot
        // lower it.
        let mut stored = secret.clone();
        let mut keep = |n: i64| {
            stored.set_applied(n);
            secure
                .put(&key, &stored.to_bytes())
                .map_err(|_| store::StoreError::Io("the secure store failed".into()))
        };
        match sync::locked::apply_inbox(&self.store, keys, &account, &secret, now, &mut keep) {
            Ok(applied) => applied.batches as u64,
            Err(_) => {
                tracing::warn!(target: "chartlink", "what a locked sync wrote could not be applied yet; it is kept");
                0
            }
        }
    }

    /// After a locked pass: the last envelope number sealed goes to the secure store beside the inbox secret, where
    /// deleting envelopes from the end of the inbox cannot lower it (unlock then misses them: see
    /// `sync::locked::apply_inbox`). Best effort: if it fails, a deletion at the end goes unnoticed, nothing else.
    fn record_sealed(&self, account_id: &str) {
        let Ok(sealed) = self.store.sealed_seq(account_id) else {
            return;
        };
        let Ok(Some(mut secret)) = self.inbox_secret(account_id) else {
            return;
        };
        if sealed <= secret.sealed() {
            return;
        }
        secret.set_sealed(sealed);
        let key = sync::locked::inbox_secret_key(account_id);
        if self
            .host
            .secure_store
            .put(&key, &secret.to_bytes())
            .is_err()
        {
            tracing::warn!(target: "chartlink", "the locked inbox's last number could not be kept in the secure store");
        }
    }

    /// The account's inbox secret, read from the secure store (`None`: it has none yet). Readable while locked.
    fn inbox_secret(&self, account_id: &str) -> Result<Option<sync::locked::InboxSecret>> {
        let raw = self
            .host
            .secure_store
            .get(&sync::locked::inbox_secret_key(account_id))?;
        Ok(raw.and_then(|b| sync::locked::InboxSecret::from_bytes(&Zeroizing::new(b))))
    }

    /// The account's inbox secret, made (and stored) when it has none or its key pair was just made (a new key
    /// pair starts a new inbox: the old secret's numbers mean nothing to it). `None` when the secure store fails:
    /// then nothing is applied now (a transient failure must not make genuine envelopes look forged).
    fn ensure_inbox_secret(
        &self,
        account_id: &str,
        fresh: bool,
    ) -> Option<sync::locked::InboxSecret> {
        if !fresh {
            match self.inbox_secret(account_id) {
                Ok(Some(secret)) => return Some(secret),
                Ok(None) => {}
                Err(_) => return None,
            }
        }
        let secret = sync::locked::InboxSecret::generate().ok()?;
        self.host
            .secure_store
            .put(
                &sync::locked::inbox_secret_key(account_id),
                &secret.to_bytes(),
            )
            .ok()?;
        Some(secret)
    }

    /// The records syncs brought since [`ChartLink::mark_whats_new_seen`], newest first, for every linked account:
    /// kind, id, display name and date (locked and unlocked syncs alike; a record deleted since is left out).
    /// Fails with [`Error::Locked`] while locked.
    pub fn whats_new(&self) -> Result<Vec<NewRecord>> {
        self.guard()?;
        let mut out = Vec::new();
        for a in self.accounts.list() {
            let keys = self.account_keys(&a.id)?;
            let mut seen = std::collections::HashSet::new();
            let entries = self.store.news(&keys, &a.id).map_err(storage)?;
            // Newest first; a record brought twice is listed once, by its latest sync.
            for raw in entries.iter().rev() {
                let Ok(e) = serde_json::from_slice::<NewsEntry>(raw) else {
                    continue;
                };
                if !seen.insert((e.resource_type.clone(), e.id.clone())) {
                    continue;
                }
                let Some(r) = self
                    .store
                    .get(&keys, &a.id, &e.resource_type, &e.id)
                    .map_err(storage)?
                else {
                    continue;
                };
                out.push(crate::sync::news::new_record(
                    &a, &e.query, &r, e.changed, e.at_ms,
                ));
            }
        }
        out.sort_unstable_by_key(|r| std::cmp::Reverse(r.synced_at_ms));
        Ok(out)
    }

    /// Empties the "what's new" list (the user has seen it).
    pub fn mark_whats_new_seen(&self) -> Result<()> {
        self.guard()?;
        for a in self.accounts.list() {
            self.store.clear_news(&a.id).map_err(storage)?;
        }
        Ok(())
    }
}
