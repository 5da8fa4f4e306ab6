//! Servers differ (issues 12 and 15): some need a category on every Observation search and others do not, some
//! do not know every category, some refuse a query for good, some do not stamp their Bundles. Each test runs the
//! real SDK against the sandbox over loopback with the variation switched on, and reads the sandbox's request log
//! to show what was asked, not only what arrived.
#![allow(clippy::unwrap_used)]

mod common;

use chartlink_core::{ChartLink, RevocationPolicy, SyncOptions, SyncReport};
use chartlink_sandbox::{FaultKind, LoggedRequest, ScriptedFault};
use common::{Fixture, config, fast};
use serde_json::json;

async fn linked(f: &Fixture) -> (ChartLink, chartlink_core::LinkedAccount) {
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("maria")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    (sdk, account)
}

async fn sync(sdk: &ChartLink, account: &str, options: &SyncOptions) -> SyncReport {
    sdk.sync_with(account, options, &mut |_| {}).await.unwrap()
}

/// The FHIR searches of one type the sandbox saw since the log was cleared.
fn searches(f: &Fixture, ty: &str) -> Vec<LoggedRequest> {
    f.sb.admin()
        .request_log()
        .into_iter()
        .filter(|r| r.path == format!("/fhir/{ty}"))
        .collect()
}

fn status_fault(prefix: String, status: u16, count: u32) -> ScriptedFault {
    ScriptedFault {
        path_prefix: prefix,
        kind: FaultKind::Status { status },
        count,
    }
}

#[tokio::test]
async fn every_observation_arrives_through_one_search_when_the_grant_covers_them_all() {
    let f = Fixture::new().await;
    // A server of SMART v1 scopes (whole types) that takes Observation searches without a category.
    f.sb.admin().set_permission_v2(false);
    f.sb.admin().set_category_rule(false);
    let (sdk, account) = linked(&f).await;
    assert!(
        account
            .granted
            .searchable_categories("Observation")
            .is_none(),
        "{}",
        account.granted.raw
    );
    // An Observation with no category at all, and one spelled the way Synthea spells vital signs.
    let subject = json!({"reference": format!("Patient/{}", account.patient_id)});
    for (id, category) in [
        ("uncategorised-1", None),
        ("synthea-vital-1", Some("vital-sign")),
    ] {
        let mut obs = json!({
            "resourceType": "Observation", "id": id, "status": "final", "subject": subject,
            "code": {"coding": [{"system": "http://loinc.org", "code": "8302-2", "display": "Body height"}]},
            "effectiveDateTime": "2024-05-01", "valueQuantity": {"value": 170, "unit": "cm"},
        });
        if let Some(c) = category {
            obs["category"] = json!([{"coding": [{"code": c}]}]);
        }
        f.sb.admin().put_resource(obs).unwrap();
    }
    f.sb.admin().clear_request_log();
    let report = sync(&sdk, &account.id, &fast()).await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let asked = searches(&f, "Observation");
    assert_eq!(asked.len(), 1, "one search, one page: {asked:?}");
    assert!(!asked[0].query.contains("category="), "{asked:?}");
    let stored = sdk.resources(&account.id, "Observation").unwrap();
    for id in ["uncategorised-1", "synthea-vital-1"] {
        assert!(stored.iter().any(|o| o["id"] == id), "{id} was not synced");
    }
    let truth = f.sb.admin().truth(&account.patient_id, true).unwrap();
    let on_server = truth.iter().filter(|(t, _, _)| t == "Observation").count();
    assert_eq!(stored.len(), on_server, "every Observation of the patient");
    f.sb.shutdown().await;
}

#[tokio::test]
async fn a_server_that_wants_a_category_is_asked_per_category_at_once_and_from_then_on() {
    let f = Fixture::new().await;
    f.sb.admin().set_permission_v2(false); // the grant covers every category; the server still wants one (Epic)
    let (sdk, account) = linked(&f).await;
    f.sb.admin().clear_request_log();
    let first = sync(&sdk, &account.id, &fast()).await;
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    let asked = searches(&f, "Observation");
    let unfiltered = asked
        .iter()
        .filter(|r| !r.query.contains("category="))
        .count();
    // One try without a category (at the largest page, then the fallback page size), then per category.
    assert!((1..=2).contains(&unfiltered), "{asked:?}");
    assert!(
        asked
            .iter()
            .any(|r| r.query.contains("category=laboratory"))
    );
    let labs = sdk.lab_results().unwrap();
    assert!(!labs.is_empty(), "the labs arrived in the same sync");
    f.sb.admin().clear_request_log();
    let second = sync(&sdk, &account.id, &fast()).await;
    assert!(second.failures.is_empty(), "{:?}", second.failures);
    let asked = searches(&f, "Observation");
    assert!(
        asked.iter().all(|r| r.query.contains("category=")),
        "remembered: {asked:?}"
    );
    f.sb.shutdown().await;
}

#[tokio::test]
async fn a_category_the_server_does_not_support_is_remembered_and_not_a_failure() {
    let f = Fixture::new().await;
    let (sdk, account) = linked(&f).await;
    for count in [1000, 100] {
        f.sb.admin().script_fault(status_fault(
            format!(
                "/fhir/Observation?patient={}&_count={count}&category=sdoh",
                account.patient_id
            ),
            400,
            50,
        ));
    }
    let first = sync(&sdk, &account.id, &fast()).await;
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    assert!(!sdk.lab_results().unwrap().is_empty());
    f.sb.admin().clear_request_log();
    let second = sync(&sdk, &account.id, &fast()).await;
    assert!(!second.full_pass);
    let asked = searches(&f, "Observation");
    assert!(
        !asked.iter().any(|r| r.query.contains("category=sdoh")),
        "not asked again before the next full pass: {asked:?}"
    );
    assert!(
        asked
            .iter()
            .any(|r| r.query.contains("category=laboratory"))
    );
    f.sb.admin().clear_faults();
    f.sb.admin().clear_request_log();
    let full = sync(
        &sdk,
        &account.id,
        &SyncOptions {
            force_full: true,
            ..fast()
        },
    )
    .await;
    assert!(full.failures.is_empty(), "{:?}", full.failures);
    assert!(
        searches(&f, "Observation")
            .iter()
            .any(|r| r.query.contains("category=sdoh")),
        "a full pass asks again"
    );
    f.sb.shutdown().await;
}

#[tokio::test]
async fn a_query_always_refused_does_not_make_every_later_sync_a_full_pass() {
    let f = Fixture::new().await;
    let (sdk, account) = linked(&f).await;
    f.sb.admin()
        .script_fault(status_fault("/fhir/Procedure".into(), 403, 1000));
    let first = sync(&sdk, &account.id, &fast()).await;
    assert!(first.full_pass);
    let refused: Vec<_> = first.failures.iter().filter(|q| q.not_granted).collect();
    assert_eq!(refused.len(), 1, "{:?}", first.failures);
    assert_eq!(refused[0].query, "Procedure");
    for n in 2..5 {
        let next = sync(&sdk, &account.id, &fast()).await;
        assert!(!next.full_pass, "sync {n}: a 403 kept the full pass open");
        assert!(next.failures.iter().all(|q| q.not_granted), "{next:?}");
    }
    f.sb.shutdown().await;
}

#[tokio::test]
async fn without_bundle_timestamps_sync_is_incremental_by_the_servers_clock() {
    let f = Fixture::new().await;
    // No Bundle.meta.lastUpdated, and a server clock an hour behind the phone's: a cursor taken from the phone's
    // clock would ask for changes after a time the server has not reached and miss them.
    f.sb.admin().set_bundle_last_updated(false);
    f.sb.admin().advance_clock(-3600);
    let (sdk, account) = linked(&f).await;
    let first = sync(&sdk, &account.id, &fast()).await;
    assert!(first.full_pass && first.failures.is_empty(), "{first:?}");
    f.advance(10_000);
    let mut edited = sdk.resources(&account.id, "Condition").unwrap()[0].clone();
    edited["note"] = json!([{"text": "reviewed"}]);
    f.sb.admin().put_resource(edited.clone()).unwrap();
    f.sb.admin().clear_request_log();
    let second = sync(&sdk, &account.id, &fast()).await;
    assert!(!second.full_pass);
    let asked = searches(&f, "Condition");
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].query.contains("_lastUpdated=ge"),
        "incremental without Bundle timestamps: {asked:?}"
    );
    assert_eq!(
        second.per_type.get("Condition").map(|c| c.changed),
        Some(1),
        "{second:?}"
    );
    let stored = sdk.resources(&account.id, "Condition").unwrap();
    assert!(
        stored
            .iter()
            .any(|c| c["id"] == edited["id"] && c["note"][0]["text"] == "reviewed")
    );
    f.sb.shutdown().await;
}

/// Issue 20: a server that refuses the page size asked for (a 400 to `_count=1000`, as servers with a lower limit
/// answer) is asked for the fallback page size at once, and from then on: the account's bookkeeping remembers the
/// size it accepted, so the next sync is not refused again. Before: every sync asked `_count=1000` first and was
/// refused once per query.
#[tokio::test]
async fn a_page_size_the_server_refused_is_remembered() {
    let f = Fixture::new().await;
    let (sdk, account) = linked(&f).await;
    for ty in ["Condition", "Encounter"] {
        f.sb.admin().script_fault(status_fault(
            format!("/fhir/{ty}?patient={}&_count=1000", account.patient_id),
            400,
            50,
        ));
    }
    let first = sync(&sdk, &account.id, &fast()).await;
    assert!(first.failures.is_empty(), "{:?}", first.failures);
    let refused = f.sb.admin().faults_injected();
    assert_eq!(
        refused, 2,
        "each refused once, then asked at the fallback size"
    );
    let before = common::record(&sdk, &account.id);
    assert!(before.iter().any(|r| r.starts_with("Condition/")));
    assert!(before.iter().any(|r| r.starts_with("Encounter/")));

    for full in [false, true] {
        f.sb.admin().clear_request_log();
        let next = sync(
            &sdk,
            &account.id,
            &SyncOptions {
                force_full: full,
                ..fast()
            },
        )
        .await;
        assert!(next.failures.is_empty(), "{:?}", next.failures);
        assert_eq!(
            f.sb.admin().faults_injected(),
            refused,
            "not refused again (full pass: {full})"
        );
        let asked = searches(&f, "Condition");
        assert!(!asked.is_empty());
        assert!(
            asked
                .iter()
                .all(|r| r.query.contains("_count=100") && !r.query.contains("_count=1000")),
            "{asked:?}"
        );
        assert_eq!(
            common::record(&sdk, &account.id),
            before,
            "the record is intact"
        );
    }

    // A month on (the SDK's clock), the larger size is asked again: this server still refuses it, once per type,
    // and the smaller size is remembered again; the sync after that is not refused.
    f.clock.advance_ms(31 * 24 * 3600 * 1000);
    f.sb.admin().clear_request_log();
    let retried = sync(&sdk, &account.id, &fast()).await;
    assert!(retried.failures.is_empty(), "{:?}", retried.failures);
    assert_eq!(f.sb.admin().faults_injected(), refused + 2);
    assert!(
        searches(&f, "Condition")
            .iter()
            .any(|r| r.query.contains("_count=1000")),
        "asked at the full size again"
    );
    let after = sync(&sdk, &account.id, &fast()).await;
    assert!(after.failures.is_empty(), "{:?}", after.failures);
    assert_eq!(
        f.sb.admin().faults_injected(),
        refused + 2,
        "remembered again"
    );
    assert_eq!(common::record(&sdk, &account.id), before);
    f.sb.shutdown().await;
}
