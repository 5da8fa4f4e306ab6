//! The locked inbox (issue 20), against the sandbox over loopback with a real SQLite file: authenticated (an
//! envelope written with only what the database holds, or replayed from an earlier copy of it, is never applied and
//! the record stays intact) and bounded (a locked full pass of an unchanged record adds nothing to the inbox, and
//! deletions still arrive).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use chartlink_core::{
    AppConfig, ChartLink, Host, RevocationPolicy, StoreNotice, SyncBudget, SyncOptions,
};
use common::{Fixture, config, fast};
use hpke::{Deserializable, Serializable};
use serde_json::{Value, json};

const PATIENT: &str = "maria-garcia";

fn temp_dir(tag: &str) -> PathBuf {
    common::temp_dir("cl-inbox", tag)
}

fn file_config(dir: &Path) -> AppConfig {
    AppConfig {
        data_dir: Some(dir.to_owned()),
        ..config(RevocationPolicy::KeepReadOnlyUntilConfirmed)
    }
}

fn host(f: &Fixture) -> Host {
    Host {
        secure_store: f.store.clone(),
        browser: Some(std::sync::Arc::new(common::RobotBrowser(Fixture::robot(
            "maria",
        )))),
        clock: f.clock.clone(),
        listener: Some(f.events.clone()),
    }
}

/// The server's record of the patient, as the store's inventory lists it.
fn truth(f: &Fixture) -> Vec<(String, String, Option<String>)> {
    let mut t: Vec<_> =
        f.sb.admin()
            .truth(PATIENT, true)
            .unwrap()
            .into_iter()
            .filter(|(ty, _, _)| !matches!(ty.as_str(), "Binary" | "RelatedPerson"))
            .map(|(ty, id, v)| (ty, id, Some(v.to_string())))
            .collect();
    t.sort();
    t
}

fn inventory(sdk: &ChartLink, account: &str) -> Vec<(String, String, Option<String>)> {
    let keys = sdk.account_keys(account).unwrap();
    sdk.store().inventory(&keys, account).unwrap()
}

fn db(dir: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(dir.join("chartlink.db")).unwrap();
    c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    c
}

fn columns(c: &rusqlite::Connection, table: &str) -> Vec<String> {
    let mut st = c.prepare(&format!("PRAGMA table_info({table})")).unwrap();
    st.query_map([], |r| r.get::<_, String>(1))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn lab_value(sdk: &ChartLink, id: &str) -> Option<f64> {
    let labs = sdk.lab_results().unwrap();
    let l = labs.iter().find(|l| l.id == id)?;
    match &l.value {
        Some(chartlink_core::views::ObservationValue::Quantity(q)) => Some(q.value),
        _ => None,
    }
}

fn damaged_notices(sdk: &ChartLink) -> usize {
    sdk.take_store_notices()
        .into_iter()
        .map(|n| match n {
            StoreNotice::DamagedRows { count, .. } => count,
            _ => 0,
        })
        .sum()
}

/// What an attacker who can write chartlink.db (and holds no key) can seal: HPKE to the public key stored in the
/// clear, with every mode and number it could guess.
fn forge(dir: &Path, account: &str, ops: &Value) {
    type Kem = hpke::kem::X25519HkdfSha256;
    type Kdf = hpke::kdf::HkdfSha256;
    type Aead = hpke::aead::ChaCha20Poly1305;
    let c = db(dir);
    let pk: Vec<u8> = c
        .query_row(
            "SELECT public_key FROM account_keypairs WHERE account = ?",
            [account],
            |r| r.get(0),
        )
        .unwrap();
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&pk).unwrap();
    let plain = serde_json::to_vec(&json!({ "ops": ops })).unwrap();
    // The format of before (base mode, account in the AAD).
    let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
        &hpke::OpModeS::Base,
        &pk,
        b"chartlink locked-sync v1",
        &plain,
        format!("{account}\u{1f}locked-inbox").as_bytes(),
    )
    .unwrap();
    c.execute(
        "INSERT INTO locked_inbox (account, enc, sealed) VALUES (?, ?, ?)",
        rusqlite::params![account, enc.to_bytes().to_vec(), ct],
    )
    .unwrap();
    // The new format, numbered after every envelope there is, with a guessed PSK (the attacker cannot read the
    // secure store).
    if columns(&c, "locked_inbox").iter().any(|n| n == "nseq") {
        let next: i64 = c
            .query_row(
                "SELECT next_seq + 1 FROM account_keypairs WHERE account = ?",
                [account],
                |r| r.get(0),
            )
            .unwrap();
        let psk = [0u8; 32];
        let bundle = hpke::PskBundle::new(&psk, b"chartlink inbox-psk v1").unwrap();
        let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
            &hpke::OpModeS::Psk(bundle),
            &pk,
            [&b"chartlink locked-sync v2\x1f"[..], account.as_bytes()]
                .concat()
                .as_slice(),
            &plain,
            format!("{account}\u{1f}{next}\u{1f}locked-inbox-v2").as_bytes(),
        )
        .unwrap();
        c.execute(
            "INSERT INTO locked_inbox (account, enc, sealed, nseq) VALUES (?, ?, ?, ?)",
            rusqlite::params![account, enc.to_bytes().to_vec(), ct, next],
        )
        .unwrap();
    }
}

#[tokio::test]
async fn an_envelope_forged_with_the_public_key_is_never_applied() {
    let f = Fixture::new().await;
    let dir = temp_dir("forged");
    let sdk = ChartLink::new(file_config(&dir), host(&f)).unwrap();
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.switch_patient(&account).unwrap();
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    let before = inventory(&sdk, &account);
    assert_eq!(before, truth(&f));
    let allergies = sdk.allergies().unwrap().len();
    assert!(allergies > 0);
    let queries: Vec<String> = {
        let c = db(&dir);
        let mut st = c
            .prepare("SELECT query FROM sync_queries WHERE account = ?")
            .unwrap();
        st.query_map([&account], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    sdk.lock();

    // A forged positive lab, and "every query completed a pass nobody saw": delete everything.
    let mut ops = vec![json!({
        "op": "upsert", "query": "Observation:laboratory", "pass": 1, "news": true,
        "resources": [{
            "resourceType": "Observation", "id": "forged-hiv", "status": "final",
            "meta": {"versionId": "1"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "7917-8", "display": "HIV 1 Ab"}], "text": "HIV 1 Ab"},
            "subject": {"reference": format!("Patient/{PATIENT}")},
            "effectiveDateTime": "2026-12-01",
            "valueString": "POSITIVE"
        }]
    })];
    for q in &queries {
        ops.push(json!({"op": "reconcile", "query": q, "pass": 1_000_000}));
    }
    forge(&dir, &account, &Value::Array(ops));

    sdk.unlock().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert_eq!(sdk.store().locked_pending().unwrap(), 0, "dropped");
    assert_eq!(inventory(&sdk, &account), before, "the record is intact");
    assert!(
        sdk.lab_results()
            .unwrap()
            .iter()
            .all(|l| l.id != "forged-hiv")
    );
    assert_eq!(sdk.allergies().unwrap().len(), allergies);
    assert!(damaged_notices(&sdk) >= 1, "the host is told");
    // The next sync is a whole one and still finds the server's record.
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert_eq!(inventory(&sdk, &account), truth(&f));
    let _ = std::fs::remove_dir_all(dir);
}

/// A file-backed SDK linked to the sandbox's patient and synced: (sdk, data directory, account id).
async fn linked_and_synced(f: &Fixture, tag: &str) -> (ChartLink, PathBuf, String) {
    let dir = temp_dir(tag);
    let sdk = ChartLink::new(file_config(&dir), host(f)).unwrap();
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.switch_patient(&account).unwrap();
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    (sdk, dir, account)
}

/// Locks, lets two hours pass, has the provider edit lab `id` to `value`, and runs a locked background sync (which
/// seals the edit into the inbox).
async fn locked_edit(f: &Fixture, sdk: &ChartLink, id: &str, value: f64) {
    sdk.lock();
    f.advance(2 * 3600 * 1000);
    let admin = f.sb.admin();
    let mut edit = admin.resource("Observation", id).unwrap().unwrap();
    edit["valueQuantity"]["value"] = json!(value);
    admin.put_resource(edit).unwrap();
    sdk.background_sync_with(&SyncBudget::default(), &fast())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_replayed_envelope_is_refused() {
    let f = Fixture::new().await;
    let (sdk, dir, account) = linked_and_synced(&f, "replay").await;
    let edited = sdk.lab_results().unwrap()[0].id.clone();

    // A locked run brings an edit; the attacker copies the inbox before unlock.
    locked_edit(&f, &sdk, &edited, 77.7007).await;
    let cols: Vec<String> = columns(&db(&dir), "locked_inbox")
        .into_iter()
        .filter(|c| c != "seq")
        .collect();
    let copied: Vec<Vec<rusqlite::types::Value>> = {
        let c = db(&dir);
        let mut st = c
            .prepare(&format!(
                "SELECT {} FROM locked_inbox ORDER BY seq",
                cols.join(", ")
            ))
            .unwrap();
        st.query_map([], |r| (0..cols.len()).map(|i| r.get(i)).collect())
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert!(!copied.is_empty());
    sdk.unlock().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert_eq!(lab_value(&sdk, &edited), Some(77.7007));

    // A later locked run brings a newer edit, applied at unlock.
    locked_edit(&f, &sdk, &edited, 88.8118).await;
    sdk.unlock().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert_eq!(lab_value(&sdk, &edited), Some(88.8118));
    let before = inventory(&sdk, &account);
    let _ = sdk.take_store_notices();

    // The attacker puts the old envelopes back, and sets back every counter the database holds.
    sdk.lock();
    {
        let c = db(&dir);
        let marks = vec!["?"; cols.len()].join(", ");
        for row in &copied {
            c.execute(
                &format!(
                    "INSERT INTO locked_inbox ({}) VALUES ({marks})",
                    cols.join(", ")
                ),
                rusqlite::params_from_iter(row.iter()),
            )
            .unwrap();
        }
        for col in ["next_seq", "applied_seq"] {
            if columns(&c, "account_keypairs").iter().any(|n| n == col) {
                c.execute(&format!("UPDATE account_keypairs SET {col} = 0"), [])
                    .unwrap();
            }
        }
    }
    sdk.unlock().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert_eq!(sdk.store().locked_pending().unwrap(), 0);
    assert_eq!(
        lab_value(&sdk, &edited),
        Some(88.8118),
        "the old edit is not replayed"
    );
    assert_eq!(inventory(&sdk, &account), before);
    assert!(damaged_notices(&sdk) >= 1);
    let _ = std::fs::remove_dir_all(dir);
}

/// An attacker who can write chartlink.db deletes the newest envelopes (here: all of them) and sets the database's
/// counters back. Unlock misses them (the last number sealed is kept in the secure store), says so, and the next
/// sync fetches the record whole: the edit they held arrives.
#[tokio::test]
async fn envelopes_deleted_from_the_end_of_the_inbox_are_missed_and_fetched_again() {
    let f = Fixture::new().await;
    let (sdk, dir, account) = linked_and_synced(&f, "tail").await;
    let edited = sdk.lab_results().unwrap()[0].id.clone();

    locked_edit(&f, &sdk, &edited, 66.6006).await;
    {
        let c = db(&dir);
        let sealed: i64 = c
            .query_row("SELECT count(*) FROM locked_inbox", [], |r| r.get(0))
            .unwrap();
        assert!(sealed > 0, "the locked pass sealed the edit");
        c.execute("DELETE FROM locked_inbox", []).unwrap();
        c.execute(
            "UPDATE account_keypairs SET next_seq = 0, inbox_bytes = 0",
            [],
        )
        .unwrap();
    }
    let _ = sdk.take_store_notices();
    sdk.unlock().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert!(
        damaged_notices(&sdk) >= 1,
        "the missing envelopes are reported"
    );
    assert_ne!(
        lab_value(&sdk, &edited),
        Some(66.6006),
        "not applied: deleted"
    );

    // The next sync is a whole one, and brings the edit; a later unlock misses nothing more.
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert_eq!(lab_value(&sdk, &edited), Some(66.6006));
    assert_eq!(inventory(&sdk, &account), truth(&f));
    sdk.lock();
    sdk.unlock().unwrap();
    assert_eq!(damaged_notices(&sdk), 0, "missed once, not at every unlock");

    // A locked pass after that seals above the numbers passed, and is applied.
    locked_edit(&f, &sdk, &edited, 55.5005).await;
    sdk.unlock().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert_eq!(lab_value(&sdk, &edited), Some(55.5005));
    assert_eq!(damaged_notices(&sdk), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_locked_pass_of_an_unchanged_record_adds_nothing_and_deletions_still_arrive() {
    let f = Fixture::new().await;
    let dir = temp_dir("bounded");
    let sdk = ChartLink::new(file_config(&dir), host(&f)).unwrap();
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.switch_patient(&account).unwrap();
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    let full = SyncOptions {
        force_full: true,
        ..fast()
    };
    let pending_bytes = || -> i64 {
        db(&dir)
            .query_row(
                "SELECT coalesce(sum(length(enc) + length(sealed)), 0) FROM locked_inbox",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };

    sdk.lock();
    f.advance(2 * 3600 * 1000);
    sdk.background_sync_with(&SyncBudget::default(), &full)
        .await
        .unwrap();
    let rows = sdk.store().locked_pending().unwrap();
    let bytes = pending_bytes();
    for _ in 0..2 {
        f.advance(2 * 3600 * 1000);
        let r = sdk
            .background_sync_with(&SyncBudget::default(), &full)
            .await
            .unwrap();
        assert_eq!(r.total(), 0, "{r:?}");
        assert_eq!(
            sdk.store().locked_pending().unwrap(),
            rows,
            "an unchanged record is not sealed again"
        );
        assert_eq!(pending_bytes(), bytes);
    }
    sdk.unlock().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert_eq!(inventory(&sdk, &account), truth(&f));
    assert_eq!(damaged_notices(&sdk), 0);

    // Applied: a locked full pass of the same record seals nothing at all.
    sdk.lock();
    f.advance(2 * 3600 * 1000);
    sdk.background_sync_with(&SyncBudget::default(), &full)
        .await
        .unwrap();
    assert_eq!(sdk.store().locked_pending().unwrap(), 0);

    // A deletion and an edit on the server: a locked full pass (and the run that reseals what changed) brings
    // them, and unlock applies them.
    let admin = f.sb.admin();
    let labs: Vec<String> = {
        sdk.unlock().unwrap();
        sdk.switch_patient(&account).unwrap();
        let l = sdk
            .lab_results()
            .unwrap()
            .iter()
            .map(|l| l.id.clone())
            .collect();
        sdk.lock();
        l
    };
    assert!(admin.delete_resource("Observation", &labs[3]).unwrap());
    let mut edit = admin.resource("Observation", &labs[0]).unwrap().unwrap();
    edit["valueQuantity"]["value"] = json!(55.5005);
    admin.put_resource(edit).unwrap();
    f.advance(2 * 3600 * 1000);
    sdk.background_sync_with(&SyncBudget::default(), &full)
        .await
        .unwrap();
    f.advance(2 * 3600 * 1000);
    sdk.background_sync_with(&SyncBudget::default(), &fast())
        .await
        .unwrap();
    sdk.unlock().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert_eq!(inventory(&sdk, &account), truth(&f));
    assert_eq!(lab_value(&sdk, &labs[0]), Some(55.5005));
    assert_eq!(damaged_notices(&sdk), 0);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_full_inbox_ends_the_locked_run_with_its_own_outcome() {
    let f = Fixture::new().await;
    let dir = temp_dir("cap");
    let sdk = ChartLink::new(file_config(&dir), host(&f)).unwrap();
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.switch_patient(&account).unwrap();
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    let before = inventory(&sdk, &account);
    let full = SyncOptions {
        force_full: true,
        ..fast()
    };
    let cap = 40_000;
    let budget = SyncBudget {
        locked_inbox_max_bytes: cap,
        ..SyncBudget::default()
    };
    sdk.lock();
    for _ in 0..2 {
        f.advance(2 * 3600 * 1000);
        let r = sdk.background_sync_with(&budget, &full).await.unwrap();
        assert_eq!(
            r.accounts[0].outcome,
            chartlink_core::BackgroundOutcome::InboxFull,
            "{r:?}"
        );
        assert!(sdk.store().locked_bytes(&account).unwrap() <= cap);
    }
    sdk.unlock().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert_eq!(sdk.store().locked_pending().unwrap(), 0);
    assert_eq!(inventory(&sdk, &account), before, "the record is intact");
    assert_eq!(damaged_notices(&sdk), 0);
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert_eq!(inventory(&sdk, &account), truth(&f));
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 20: the host's data budget (`SyncBudget.max_bytes`) holds inside one account's locked pass: the run stops
/// between requests once it is spent, with `BudgetExhausted`, having asked for a fraction of the pass; what it sealed
/// applies at unlock without a damaged row, the record intact, and the next sync completes it. Before: the budget was
/// checked only before each account, so the one account received its whole pass (`Synced`).
#[tokio::test]
async fn the_data_budget_holds_inside_an_accounts_locked_pass() {
    let f = Fixture::new().await;
    let dir = temp_dir("budget");
    let sdk = ChartLink::new(file_config(&dir), host(&f)).unwrap();
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.switch_patient(&account).unwrap();
    let small_pages = SyncOptions {
        page_size: 20,
        concurrency: 1,
        force_full: true,
        ..fast()
    };
    let requests = || f.sb.admin().stats().fhir_requests;
    let start = requests();
    let whole = sdk
        .sync_with(&account, &small_pages, &mut |_| {})
        .await
        .unwrap();
    let whole_requests = requests() - start;
    assert!(whole.bytes > 200_000, "{}", whole.bytes);
    let before = inventory(&sdk, &account);
    let max = 60_000;
    let budget = SyncBudget {
        max_bytes: Some(max),
        ..SyncBudget::default()
    };
    sdk.lock();
    f.advance(2 * 3600 * 1000);
    let start = requests();
    let r = sdk
        .background_sync_with(&budget, &small_pages)
        .await
        .unwrap();
    let budget_requests = requests() - start;
    assert_eq!(
        r.accounts[0].outcome,
        chartlink_core::BackgroundOutcome::BudgetExhausted,
        "{r:?}"
    );
    assert!(
        budget_requests * 2 < whole_requests,
        "stopped inside the pass: {budget_requests} of {whole_requests} requests"
    );
    let sealed = sdk.store().locked_bytes(&account).unwrap();
    eprintln!(
        "budget {max} B: {budget_requests} of {whole_requests} requests, {sealed} B sealed (whole pass {} B)",
        whole.bytes
    );
    assert!(sealed > 0, "what arrived before the budget ran out is kept");
    // One page in flight may finish past the budget, no more.
    assert!(sealed < max + 40_000, "{sealed}");
    sdk.unlock().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert_eq!(sdk.store().locked_pending().unwrap(), 0);
    assert_eq!(damaged_notices(&sdk), 0);
    assert_eq!(inventory(&sdk, &account), before, "the record is intact");
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert_eq!(inventory(&sdk, &account), truth(&f));
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 20: `unlock_deferred` returns without applying the locked inbox (reads show the record before it), and
/// `apply_locked_inbox` applies it on the caller's worker thread and says so with `LockedInboxApplied`. Before:
/// only `unlock`, which applied the whole inbox inline.
#[tokio::test]
async fn unlock_deferred_leaves_the_inbox_to_apply_locked_inbox() {
    let f = Fixture::new().await;
    let dir = temp_dir("deferred");
    let sdk = ChartLink::new(file_config(&dir), host(&f)).unwrap();
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.switch_patient(&account).unwrap();
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    let before = inventory(&sdk, &account);
    sdk.lock();
    f.advance(2 * 3600 * 1000);
    let lab = sdk_lab(&f);
    let r = sdk
        .background_sync_with(&SyncBudget::default(), &fast())
        .await
        .unwrap();
    assert_eq!(
        r.accounts[0].outcome,
        chartlink_core::BackgroundOutcome::Synced
    );
    assert!(sdk.store().locked_pending().unwrap() > 0);
    sdk.unlock_deferred().unwrap();
    sdk.switch_patient(&account).unwrap();
    assert_eq!(
        inventory(&sdk, &account),
        before,
        "the record before the inbox"
    );
    assert!(
        !f.events
            .saw(|e| matches!(e, chartlink_core::Event::LockedInboxApplied { .. }))
    );
    let batches = sdk.apply_locked_inbox().unwrap();
    assert!(batches > 0);
    assert!(f.events.saw(
        |e| matches!(e, chartlink_core::Event::LockedInboxApplied { batches: b } if *b == batches)
    ));
    assert_eq!(sdk.store().locked_pending().unwrap(), 0);
    let after = inventory(&sdk, &account);
    assert!(
        after
            .iter()
            .any(|(ty, id, _)| ty == "Observation" && *id == lab)
    );
    assert_eq!(after, truth(&f));
    assert_eq!(damaged_notices(&sdk), 0);
    let _ = std::fs::remove_dir_all(dir);
}

/// Files a new lab result for the patient on the server; returns its id.
fn sdk_lab(f: &Fixture) -> String {
    let id = "deferred-lab".to_owned();
    f.sb.admin()
        .put_resource(json!({
            "resourceType": "Observation", "id": id, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "Glucose"},
            "subject": {"reference": format!("Patient/{PATIENT}")}, "effectiveDateTime": "2026-11-30",
            "valueQuantity": {"value": 101, "unit": "mg/dL"}
        }))
        .unwrap();
    id
}

/// The fixture's secure store, whose writes of inbox secrets fail while `fail` is set (a kill between two chunks of
/// an apply, as far as the inbox can tell).
struct Flaky {
    inner: std::sync::Arc<chartlink_core::MemorySecureStore>,
    fail: std::sync::atomic::AtomicBool,
}

impl chartlink_core::SecureStore for Flaky {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, chartlink_core::SecureStoreError> {
        self.inner.get(key)
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), chartlink_core::SecureStoreError> {
        if key.starts_with("chartlink/inbox-psk/")
            && self.fail.load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(chartlink_core::SecureStoreError("unavailable".into()));
        }
        self.inner.put(key, value)
    }
    fn delete(&self, key: &str) -> Result<(), chartlink_core::SecureStoreError> {
        self.inner.delete(key)
    }
    fn keys(&self, prefix: &str) -> Result<Vec<String>, chartlink_core::SecureStoreError> {
        self.inner.keys(prefix)
    }
}

#[tokio::test]
async fn the_inbox_is_applied_in_chunks_that_each_commit() {
    let f = Fixture::new().await;
    let dir = temp_dir("chunks");
    let flaky = std::sync::Arc::new(Flaky {
        inner: f.store.clone(),
        fail: std::sync::atomic::AtomicBool::new(false),
    });
    let sdk = ChartLink::new(
        file_config(&dir),
        Host {
            secure_store: flaky.clone(),
            ..host(&f)
        },
    )
    .unwrap();
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    sdk.lock();
    f.advance(2 * 3600 * 1000);
    let full = SyncOptions {
        force_full: true,
        ..fast()
    };
    sdk.background_sync_with(&SyncBudget::default(), &full)
        .await
        .unwrap();
    let rows = sdk.store().locked_pending().unwrap();
    assert!(rows > 40, "{rows}");

    // The apply stops after its first chunk: that chunk is applied and gone, the rest waits.
    flaky.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    sdk.unlock().unwrap();
    let left = sdk.store().locked_pending().unwrap();
    assert!(left > 0 && left < rows, "{left} of {rows}");
    assert_eq!(inventory(&sdk, &account), truth(&f));

    flaky.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    sdk.lock();
    sdk.unlock().unwrap();
    assert_eq!(sdk.store().locked_pending().unwrap(), 0);
    sdk.switch_patient(&account).unwrap();
    assert_eq!(inventory(&sdk, &account), truth(&f));
    assert_eq!(damaged_notices(&sdk), 0);
    let _ = std::fs::remove_dir_all(dir);
}
