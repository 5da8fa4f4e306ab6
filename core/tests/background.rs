//! Background sync while locked (issue 14), against the sandbox over loopback with a real SQLite file: a locked
//! ChartLink syncs what the server added, edited and deleted using only the tokens (readable after first unlock)
//! and the accounts' public keys; every read answers Locked; the event and the report carry counts only; the
//! database file holds none of the new records' ids, codes or values; after unlock the exact server record is
//! readable, edits win over the older copies, deletions are applied, and "what's new" lists exactly what arrived.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};

use chartlink_core::{
    AppConfig, BackgroundOutcome, BackgroundReport, ChartLink, Error, Event, Host, RecordKind,
    RevocationPolicy, STORE_KEY, SecureStore, SyncBudget, SyncOptions,
};
use common::{Fixture, config, fast};
use serde_json::{Value, json};

const PATIENT: &str = "maria-garcia";

fn temp_dir(tag: &str) -> PathBuf {
    common::temp_dir("cl-bg", tag)
}

fn file_config(dir: &Path) -> AppConfig {
    AppConfig {
        data_dir: Some(dir.to_owned()),
        ..config(RevocationPolicy::PurgeNow)
    }
}

fn host(f: &Fixture) -> Host {
    Host {
        secure_store: f.store.clone(),
        browser: None,
        clock: f.clock.clone(),
        listener: Some(f.events.clone()),
    }
}

/// The server's record of the patient: (type, id, versionId), as the store's inventory lists it.
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

fn lab(id: &str, code: &str, name: &str, value: f64, date: &str) -> Value {
    json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory", "display": "Laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}], "text": name},
        "subject": {"reference": format!("Patient/{PATIENT}")},
        "effectiveDateTime": date,
        "valueQuantity": {"value": value, "unit": "mg/dL", "system": "http://unitsofmeasure.org", "code": "mg/dL"}
    })
}

fn condition(id: &str, text: &str) -> Value {
    json!({
        "resourceType": "Condition", "id": id,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]},
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-category", "code": "problem-list-item"}]}],
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "987654321", "display": text}], "text": text},
        "subject": {"reference": format!("Patient/{PATIENT}")},
        "onsetDateTime": "2026-11-30"
    })
}

/// Every read of the record answers Locked.
fn assert_every_read_locked(sdk: &ChartLink, account: &str) {
    macro_rules! locked {
        ($e:expr) => {
            assert_eq!($e.err(), Some(Error::Locked), stringify!($e));
        };
    }
    locked!(sdk.lab_results());
    locked!(sdk.lab_trend("2345-7"));
    locked!(sdk.latest_results());
    locked!(sdk.summary());
    locked!(sdk.problems());
    locked!(sdk.vital_signs());
    locked!(sdk.observations());
    locked!(sdk.medications());
    locked!(sdk.documents());
    locked!(sdk.visits());
    locked!(sdk.patients());
    locked!(sdk.accounts());
    locked!(sdk.resources(account, "Observation"));
    locked!(sdk.resources_of_active("Condition"));
    locked!(sdk.document_content("any"));
    locked!(sdk.whats_new());
    locked!(sdk.account_keys(account));
}

/// The database and its WAL, as bytes.
fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for name in ["chartlink.db", "chartlink.db-wal"] {
        if let Ok(b) = std::fs::read(dir.join(name)) {
            out.extend(b);
        }
    }
    out
}

fn quantity(v: &Option<chartlink_core::views::ObservationValue>) -> Option<f64> {
    match v {
        Some(chartlink_core::views::ObservationValue::Quantity(q)) => Some(q.value),
        _ => None,
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn background_reports(f: &Fixture) -> Vec<BackgroundReport> {
    f.events
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::BackgroundSyncFinished(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn count(report: &BackgroundReport, kind: RecordKind) -> u32 {
    report
        .accounts
        .iter()
        .flat_map(|a| &a.counts)
        .filter(|c| c.kind == kind)
        .map(|c| c.count)
        .sum()
}

/// What only the new and edited records hold: their ids, codes, names and values.
const SECRETS: [&str; 9] = [
    "bg-lab-zebra",
    "bg-cond-quokka",
    "99123-4",
    "Zebra antibody",
    "42.4242",
    "Quokka fever",
    "987654321",
    "77.7007",
    "88.8118",
];

#[tokio::test]
async fn a_locked_background_sync_writes_what_only_unlock_can_read() {
    let f = Fixture::new().await;
    let dir = temp_dir("locked");
    let sdk = ChartLink::new(
        file_config(&dir),
        Host {
            browser: Some(std::sync::Arc::new(common::RobotBrowser(Fixture::robot(
                "maria",
            )))),
            ..host(&f)
        },
    )
    .unwrap();
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.switch_patient(&account).unwrap();
    let first = sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    assert_eq!(inventory(&sdk, &account), truth(&f));

    // Records the server will edit and delete while the app is locked.
    let labs = sdk.lab_results().unwrap();
    let edited = labs[0].id.clone();
    let deleted_lab = labs[1].id.clone();
    let problems = sdk.problems().unwrap();
    let deleted_condition = problems[0].id.clone();
    let before = sdk.store().counts(&account).unwrap();
    drop(sdk);
    f.events.0.lock().unwrap().clear();

    // The app goes to the background and the process is killed; the OS later starts it for a refresh task:
    // locked from the start, no store key read.
    let sdk = ChartLink::new_locked(file_config(&dir), host(&f)).unwrap();
    f.advance(2 * 3600 * 1000);
    let admin = f.sb.admin();
    admin
        .put_resource(lab(
            "bg-lab-zebra",
            "99123-4",
            "Zebra antibody",
            42.4242,
            "2026-11-30T08:00:00Z",
        ))
        .unwrap();
    admin
        .put_resource(condition("bg-cond-quokka", "Quokka fever"))
        .unwrap();
    let mut edit = admin.resource("Observation", &edited).unwrap().unwrap();
    edit["valueQuantity"]["value"] = json!(77.7007);
    admin.put_resource(edit.clone()).unwrap();

    assert_eq!(
        sdk.sync_due(&SyncBudget::default()).unwrap(),
        vec![account.clone()]
    );
    let report = sdk
        .background_sync_with(&SyncBudget::default(), &fast())
        .await
        .unwrap();
    assert!(report.locked);
    assert_eq!(report.accounts.len(), 1);
    assert_eq!(report.accounts[0].outcome, BackgroundOutcome::Synced);
    assert_eq!(report.accounts[0].provider, "127.0.0.1");
    // Counts only: 2 lab results (one new, one edited: locked, they cannot be told apart yet), 1 problem.
    assert_eq!(count(&report, RecordKind::LabResult), 2, "{report:?}");
    assert_eq!(count(&report, RecordKind::Problem), 1, "{report:?}");
    assert_eq!(report.total(), 3, "{report:?}");
    assert_eq!(
        background_reports(&f),
        vec![report.clone()],
        "the event is the report"
    );
    let shown = format!("{report:?}");
    for s in SECRETS.iter().chain([&edited.as_str()]) {
        assert!(!shown.contains(s), "the report names {s}");
    }
    assert!(
        !f.events
            .saw(|e| matches!(e, Event::SyncFinished(_) | Event::SyncProgress(_))),
        "no detailed sync events while locked"
    );
    assert_every_read_locked(&sdk, &account);
    assert!(
        sdk.sync_due(&SyncBudget::default()).unwrap().is_empty(),
        "synced just now"
    );

    // A second locked run, later: the edited result is edited again, and a full pass finds two deletions.
    f.advance(2 * 3600 * 1000);
    edit["valueQuantity"]["value"] = json!(88.8118);
    admin.put_resource(edit).unwrap();
    assert!(admin.delete_resource("Observation", &deleted_lab).unwrap());
    assert!(
        admin
            .delete_resource("Condition", &deleted_condition)
            .unwrap()
    );
    let full = SyncOptions {
        force_full: true,
        ..fast()
    };
    let report = sdk
        .background_sync_with(&SyncBudget::default(), &full)
        .await
        .unwrap();
    assert_eq!(report.accounts[0].outcome, BackgroundOutcome::Synced);
    assert_eq!(count(&report, RecordKind::LabResult), 1, "{report:?}");
    assert_eq!(report.total(), 1, "{report:?}");
    assert_every_read_locked(&sdk, &account);
    // Nothing changed in the readable rows yet: the deletions wait for unlock.
    assert_eq!(sdk.store().counts(&account).unwrap(), before);
    assert!(sdk.store().locked_pending().unwrap() > 0);

    assert!(
        report
            .accounts
            .iter()
            .all(|a| !format!("{a:?}").contains("Zebra"))
    );
    // The file (and its WAL) holds none of what arrived while locked.
    let bytes = db_bytes(&dir);
    assert!(bytes.len() > 100_000);
    assert!(
        contains(&bytes, "Observation:laboratory"),
        "the search reads the file's bytes (query names are clear)"
    );
    for s in SECRETS.iter().chain([&edited.as_str()]) {
        assert!(
            !contains(&bytes, s),
            "the database file holds {s} in the clear"
        );
    }

    // Unlock: the exact server record, the edit's latest version, the deletions applied.
    sdk.unlock().unwrap();
    assert_eq!(sdk.store().locked_pending().unwrap(), 0);
    sdk.switch_patient(&account).unwrap();
    assert_eq!(inventory(&sdk, &account), truth(&f));
    let labs = sdk.lab_results().unwrap();
    let zebra = labs.iter().find(|l| l.id == "bg-lab-zebra").unwrap();
    assert_eq!(zebra.name, "Zebra antibody");
    assert_eq!(quantity(&zebra.value), Some(42.4242));
    let e = labs.iter().find(|l| l.id == edited).unwrap();
    assert_eq!(quantity(&e.value), Some(88.8118), "the newest edit wins");
    assert!(
        labs.iter().all(|l| l.id != deleted_lab),
        "deleted while locked: gone"
    );
    let problems = sdk.problems().unwrap();
    assert!(problems.iter().any(|p| p.id == "bg-cond-quokka"));
    assert!(problems.iter().all(|p| p.id != deleted_condition));
    assert!(
        sdk.lab_trend("99123-4").unwrap().is_some(),
        "the keyed code tags were made at unlock"
    );

    // What's new: exactly the three records, with names and dates.
    let news = sdk.whats_new().unwrap();
    let mut got: Vec<(String, RecordKind, bool)> = news
        .iter()
        .map(|n| (n.id.clone(), n.kind, n.changed))
        .collect();
    got.sort();
    let mut want = vec![
        ("bg-lab-zebra".to_owned(), RecordKind::LabResult, false),
        ("bg-cond-quokka".to_owned(), RecordKind::Problem, false),
        (edited.clone(), RecordKind::LabResult, true),
    ];
    want.sort();
    assert_eq!(got, want, "{news:?}");
    let z = news.iter().find(|n| n.id == "bg-lab-zebra").unwrap();
    assert_eq!(z.display_name, "Zebra antibody");
    assert_eq!(
        z.date.as_ref().map(|d| (d.year, d.month, d.day)),
        Some((2026, Some(11), Some(30)))
    );
    assert_eq!(
        news.iter()
            .find(|n| n.id == "bg-cond-quokka")
            .unwrap()
            .display_name,
        "Quokka fever"
    );
    // Each row opens its record, typed as its list shows it.
    for n in &news {
        match sdk.record(&n.resource_type, &n.id).unwrap() {
            Some(chartlink_core::AnyRecord::Observation(o)) => {
                assert_eq!(&o, labs.iter().find(|l| l.id == n.id).unwrap());
            }
            Some(chartlink_core::AnyRecord::Problem(p)) => {
                assert_eq!(&p, problems.iter().find(|c| c.id == n.id).unwrap());
            }
            other => panic!("{n:?} opened {other:?}"),
        }
    }
    sdk.mark_whats_new_seen().unwrap();
    assert!(sdk.whats_new().unwrap().is_empty());

    // Re-sealed under the account keys: still nothing in the clear.
    let bytes = db_bytes(&dir);
    for s in SECRETS {
        assert!(
            !contains(&bytes, s),
            "after unlock the database file holds {s}"
        );
    }
    // An unlocked sync now finds nothing new.
    let again = sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert_eq!(again.updated(), 0, "{:?}", again.per_type);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_unlocked_sync_fills_whats_new_too() {
    let f = Fixture::new().await;
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("maria")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert!(
        sdk.whats_new().unwrap().is_empty(),
        "the first sync is not news"
    );
    f.advance(60_000);
    f.sb.admin()
        .put_resource(lab(
            "fg-lab-1",
            "99123-4",
            "Zebra antibody",
            1.5,
            "2026-11-29",
        ))
        .unwrap();
    let report = sdk
        .background_sync_with(
            &SyncBudget {
                min_interval_ms: 0,
                ..SyncBudget::default()
            },
            &fast(),
        )
        .await
        .unwrap();
    assert!(!report.locked);
    assert_eq!(count(&report, RecordKind::LabResult), 1, "{report:?}");
    f.advance(60_000);
    f.sb.admin()
        .put_resource(lab(
            "fg-lab-2",
            "99123-4",
            "Zebra antibody",
            2.5,
            "2026-11-30",
        ))
        .unwrap();
    let sync = sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    let named: Vec<(&str, &str, bool)> = sync
        .new_records
        .iter()
        .map(|n| (n.id.as_str(), n.display_name.as_str(), n.changed))
        .collect();
    assert_eq!(
        named,
        vec![("fg-lab-2", "Zebra antibody", false)],
        "the unlocked report names what is new"
    );
    let news = sdk.whats_new().unwrap();
    assert_eq!(news.len(), 2, "{news:?}");
    assert_eq!(news[0].id, "fg-lab-2", "newest first");
    let news = &news[1..];
    assert_eq!(news[0].id, "fg-lab-1");
    assert_eq!(news[0].kind, RecordKind::LabResult);
    assert_eq!(news[0].display_name, "Zebra antibody");
}

#[tokio::test]
async fn a_wrong_master_key_at_unlock_touches_nothing() {
    let f = Fixture::new().await;
    let dir = temp_dir("wrongkey");
    let sdk = ChartLink::new(
        file_config(&dir),
        Host {
            browser: Some(std::sync::Arc::new(common::RobotBrowser(Fixture::robot(
                "maria",
            )))),
            ..host(&f)
        },
    )
    .unwrap();
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    let before = inventory(&sdk, &account);
    sdk.lock();
    f.advance(2 * 3600 * 1000);
    f.sb.admin()
        .put_resource(lab(
            "bg-lab-zebra",
            "99123-4",
            "Zebra antibody",
            42.4242,
            "2026-11-30",
        ))
        .unwrap();
    let report = sdk
        .background_sync_with(&SyncBudget::default(), &fast())
        .await
        .unwrap();
    assert_eq!(report.total(), 1);
    let pending = sdk.store().locked_pending().unwrap();
    assert!(pending > 0);

    let right = f.store.get(STORE_KEY).unwrap().unwrap();
    f.store.put(STORE_KEY, &[7u8; 32]).unwrap();
    assert_eq!(
        sdk.unlock().unwrap_err().storage_kind(),
        Some(chartlink_core::StorageKind::WrongKey)
    );
    assert!(sdk.locked().is_some());
    assert_eq!(
        sdk.store().locked_pending().unwrap(),
        pending,
        "nothing applied"
    );
    assert_every_read_locked(&sdk, &account);

    f.store.put(STORE_KEY, &right).unwrap();
    sdk.unlock().unwrap();
    assert_eq!(sdk.store().locked_pending().unwrap(), 0);
    let after = inventory(&sdk, &account);
    assert_eq!(after.len(), before.len() + 1);
    assert!(
        after
            .iter()
            .any(|(t, i, _)| t == "Observation" && i == "bg-lab-zebra")
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_budget_decides_what_runs() {
    let f = Fixture::new().await;
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("maria")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    sdk.lock();
    let budget = SyncBudget::default();
    assert!(sdk.sync_due(&budget).unwrap().is_empty(), "synced just now");
    let r = sdk.background_sync_with(&budget, &fast()).await.unwrap();
    assert_eq!(r.accounts[0].outcome, BackgroundOutcome::NotDue);

    f.advance(2 * 3600 * 1000);
    assert_eq!(sdk.sync_due(&budget).unwrap(), vec![account.clone()]);
    f.sb.admin().clear_request_log();
    let low = SyncBudget {
        low_battery: true,
        ..budget.clone()
    };
    let r = sdk.background_sync_with(&low, &fast()).await.unwrap();
    assert_eq!(r.accounts[0].outcome, BackgroundOutcome::LowBattery);
    assert!(
        f.sb.admin().request_log().is_empty(),
        "low battery: no request"
    );

    let none = SyncBudget {
        max_duration_ms: 0,
        ..budget.clone()
    };
    let r = sdk.background_sync_with(&none, &fast()).await.unwrap();
    assert_eq!(r.accounts[0].outcome, BackgroundOutcome::BudgetExhausted);

    // The tokens left memory again after each run: every read is still Locked.
    assert_every_read_locked(&sdk, &account);
    let r = sdk.background_sync_with(&budget, &fast()).await.unwrap();
    assert_eq!(r.accounts[0].outcome, BackgroundOutcome::Synced);
    assert_eq!(r.total(), 0);
    assert_every_read_locked(&sdk, &account);
}
