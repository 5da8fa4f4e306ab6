//! Record sync against the sandbox over loopback: everything granted arrives and is accounted for; syncing twice
//! changes nothing; edits and deletions on the server follow; every fault the sandbox injects is survived; a sync
//! cut off mid-way resumes without loss or duplicates; a randomized fault run over 200 seeds ends with exactly the
//! server's data; the database file holds no plaintext health data; real Synthea data syncs completely.
#![allow(clippy::unwrap_used)]

mod common;

use common::RobotBrowser;
use std::sync::Arc;
use std::time::Duration;

use chartlink_core::fhir::RetryPolicy;
use chartlink_core::sync::{SyncOptions, SyncReport};
use chartlink_core::{
    AppConfig, ChartLink, ClientAuth, DataCategory, Host, ManualClock, MemorySecureStore,
};
use chartlink_sandbox::{Config, FaultConfig, FaultKind, PortalRobot, Sandbox, ScriptedFault};

fn sdk(
    robot: PortalRobot,
    data_dir: Option<std::path::PathBuf>,
    clock: Arc<ManualClock>,
) -> ChartLink {
    let host = Host {
        secure_store: Arc::new(MemorySecureStore::default()),
        browser: Some(Arc::new(RobotBrowser(robot))),
        clock,
        listener: None,
    };
    let config = AppConfig {
        client_id: "chartlink-demo".into(),
        redirect_uri: "chartlink-demo://callback".into(),
        wanted: DataCategory::ALL.to_vec(),
        client_auth: ClientAuth::Public,
        app_name: "sync tests".into(),
        data_dir,
        // These tests jump the clock by hours; the idle lock has its own tests.
        lock: chartlink_core::LockConfig {
            timeout_ms: 365 * 24 * 3600 * 1000,
            warning_ms: None,
            background_grace_ms: 0,
        },
        revocation: chartlink_core::RevocationPolicy::PurgeNow,
    };
    ChartLink::new(config, host).unwrap()
}

fn fast() -> SyncOptions {
    SyncOptions {
        retry: RetryPolicy {
            attempts: 8,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        page_size: 50,
        ..SyncOptions::default()
    }
}

/// The server's record as the grant sees it: every resource of the synced types, confidential ones only when the
/// access is full.
fn truth(sb: &Sandbox, patient: &str, confidential: bool) -> Vec<(String, String, Option<String>)> {
    let mut t: Vec<_> = sb
        .admin()
        .truth(patient, confidential)
        .unwrap()
        .into_iter()
        .filter(|(ty, _, _)| !matches!(ty.as_str(), "Binary" | "RelatedPerson"))
        .map(|(ty, id, v)| (ty, id, Some(v.to_string())))
        .collect();
    t.sort();
    t
}

async fn linked(
    sb: &Sandbox,
    user: &str,
    patient: Option<&str>,
    dir: Option<std::path::PathBuf>,
) -> (ChartLink, String) {
    let sdk = sdk(
        PortalRobot::allowing(user, &format!("{user}-demo"), patient),
        dir,
        Arc::new(ManualClock::new()),
    );
    let account = sdk.link(&sb.fhir_base()).await.unwrap();
    (sdk, account.id)
}

fn inventory(sdk: &ChartLink, account: &str) -> Vec<(String, String, Option<String>)> {
    sdk.store()
        .inventory(&sdk_keys(sdk, account), account)
        .unwrap()
}

fn sdk_keys(sdk: &ChartLink, account: &str) -> chartlink_core::store::AccountKeys {
    sdk.account_keys(account).unwrap()
}

#[tokio::test]
async fn a_first_sync_brings_everything_granted_and_a_second_changes_nothing() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let (sdk, account) = linked(&sb, "daniel", Some("daniel-chen"), None).await;
    let mut pages = 0;
    let report = sdk
        .sync_with(&account, &fast(), &mut |_p| pages += 1)
        .await
        .unwrap();
    assert!(report.full_pass);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(inventory(&sdk, &account), truth(&sb, "daniel-chen", true));
    assert!(
        report.documents_fetched > 0,
        "after-visit summaries and notes are downloaded"
    );
    assert!(pages > 10);
    let requests = sb.admin().stats().fhir_requests;
    let mut queries = 0;
    let again = sdk
        .sync_with(&account, &fast(), &mut |p| queries = p.queries_total)
        .await
        .unwrap();
    assert!(!again.full_pass, "the second sync is incremental");
    assert_eq!(again.updated(), 0, "{again:?}");
    // A no-change resync costs one request per query (and the CapabilityStatement), concurrency or not.
    assert!(
        sb.admin().stats().fhir_requests - requests <= queries as u64 + 1,
        "{} requests for {queries} queries",
        sb.admin().stats().fhir_requests - requests
    );
    assert_eq!(inventory(&sdk, &account), truth(&sb, "daniel-chen", true));
    sb.shutdown().await;
}

#[tokio::test]
async fn edits_arrive_incrementally_and_deletions_on_the_next_full_pass() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let (sdk, account) = linked(&sb, "ava", None, None).await;
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    let conditions = sdk.resources(&account, "Condition").unwrap();
    let mut edited = conditions[0].clone();
    edited["note"] = serde_json::json!([{"text": "reviewed"}]);
    sb.admin().advance_clock(2);
    sb.admin().put_resource(edited.clone()).unwrap();
    let victim = sdk.resources(&account, "Immunization").unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sb.admin().delete_resource("Immunization", &victim).unwrap();
    let inc = sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert!(!inc.full_pass);
    assert_eq!(
        inc.per_type.get("Condition").map(|c| c.changed),
        Some(1),
        "{inc:?}"
    );
    let stored = sdk.resources(&account, "Condition").unwrap();
    assert!(
        stored
            .iter()
            .any(|c| c["id"] == edited["id"] && c["note"][0]["text"] == "reviewed")
    );
    let full = sdk
        .sync_with(
            &account,
            &SyncOptions {
                force_full: true,
                ..fast()
            },
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(full.per_type["Immunization"].deleted, 1);
    assert_eq!(inventory(&sdk, &account), truth(&sb, "ava-thompson", true));
    sb.shutdown().await;
}

#[tokio::test]
async fn every_injected_fault_is_survived() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let (sdk, account) = linked(&sb, "maria", Some("leo-garcia"), None).await;
    for kind in [
        FaultKind::Status { status: 500 },
        FaultKind::Status { status: 503 },
        FaultKind::RateLimit {
            retry_after_secs: 0,
        },
        FaultKind::Reset,
        FaultKind::Truncate,
        FaultKind::Latency { ms: 50 },
    ] {
        sb.admin().script_fault(ScriptedFault {
            path_prefix: "/fhir/".into(),
            kind,
            count: 2,
        });
    }
    // And an access token that expires mid-sync.
    sb.admin().script_fault(ScriptedFault {
        path_prefix: "/fhir/Immunization".into(),
        kind: FaultKind::Status { status: 503 },
        count: 1,
    });
    sb.admin().expire_access_tokens(None).unwrap();
    let report = sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(inventory(&sdk, &account), truth(&sb, "leo-garcia", true));
    assert!(sb.admin().faults_injected() >= 13);
    assert_eq!(
        sb.admin().stats().token_requests.get("refresh_token"),
        Some(&1),
        "the early expiry cost one refresh"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn a_failing_query_does_not_fail_the_others_and_is_retried_next_time() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let (sdk, account) = linked(&sb, "ava", None, None).await;
    sb.admin().script_fault(ScriptedFault {
        path_prefix: "/fhir/Immunization".into(),
        kind: FaultKind::Status { status: 500 },
        count: 100,
    });
    let report = sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert_eq!(report.failures[0].query, "Immunization");
    assert!(!report.failures[0].not_granted);
    assert!(
        report.per_type["Condition"].new > 0,
        "the other queries completed"
    );
    sb.admin().clear_faults();
    let again = sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert!(again.failures.is_empty());
    assert!(again.per_type["Immunization"].new > 0);
    assert_eq!(inventory(&sdk, &account), truth(&sb, "ava-thompson", true));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_sync_cut_off_mid_way_resumes_without_loss_or_duplicates() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("cl-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (sdk, account) = linked(&sb, "daniel", Some("daniel-chen"), Some(dir.clone())).await;
    for cut_after in [3usize, 9, 17] {
        // Drop the sync future after N pages: no destructor, no cleanup, like a killed process.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut tx = Some(tx);
        let mut pages = 0;
        let opts = fast();
        let mut on_progress = |p: chartlink_core::sync::SyncProgress| {
            if p.pages > 0 {
                pages += 1;
            }
            if pages == cut_after
                && let Some(t) = tx.take()
            {
                let _ = t.send(());
            }
        };
        let sync = sdk.sync_with(&account, &opts, &mut on_progress);
        tokio::select! {
            r = sync => panic!("the sync should have been cut off, finished with {r:?}"),
            _ = rx => {}
        }
    }
    let report: SyncReport = sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert!(report.full_pass, "the interrupted full pass goes on");
    let inv = inventory(&sdk, &account);
    assert_eq!(inv, truth(&sb, "daniel-chen", true));
    let mut dedup = inv.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), inv.len());
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn randomized_faults_over_200_seeds_lose_nothing() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let (sdk, account) = linked(&sb, "maria", Some("leo-garcia"), None).await;
    let want = truth(&sb, "leo-garcia", true);
    let opts = SyncOptions {
        force_full: true,
        page_size: 100,
        fetch_documents: false,
        ..fast()
    };
    let mut faults_seen = 0;
    for seed in 0..200u64 {
        sb.admin().set_faults_seeded(
            FaultConfig {
                error_rate: 0.08,
                rate_limit_rate: 0.04,
                retry_after_secs: 0,
                reset_rate: 0.04,
                truncate_rate: 0.04,
                ..FaultConfig::default()
            },
            seed,
        );
        // Every few seeds the server also edits or deletes something.
        if seed % 25 == 7 {
            sb.admin().clear_faults();
            let obs = sdk.resources(&account, "Immunization").unwrap();
            if let Some(first) = obs.first() {
                let mut e = first.clone();
                e["lotNumber"] = serde_json::json!(format!("LOT{seed}"));
                sb.admin().put_resource(e).unwrap();
            }
        }
        let before = sb.admin().faults_injected();
        let mut report = sdk.sync_with(&account, &opts, &mut |_| {}).await.unwrap();
        // A query can still fail when faults outlast the retries: the next sync picks it up.
        while !report.failures.is_empty() {
            report = sdk.sync_with(&account, &opts, &mut |_| {}).await.unwrap();
        }
        faults_seen += sb.admin().faults_injected() - before;
        let want = truth(&sb, "leo-garcia", true);
        let got = inventory(&sdk, &account);
        assert_eq!(got, want, "seed {seed}");
        // Not corrupted: each stored resource equals the server's.
        if seed % 20 == 0 {
            for (ty, id, _) in &got {
                let server = sb.admin().resource(ty, id).unwrap().unwrap();
                let local = sdk
                    .resources(&account, ty)
                    .unwrap()
                    .into_iter()
                    .find(|r| r["id"] == id.as_str())
                    .unwrap();
                assert_eq!(local, server, "seed {seed}: {ty}/{id}");
            }
        }
    }
    assert!(
        faults_seen > 200,
        "faults were really injected: {faults_seen}"
    );
    let _ = want;
    sb.shutdown().await;
}

#[tokio::test]
async fn the_database_file_holds_no_plaintext_health_data() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("cl-plain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (sdk, account) = linked(&sb, "daniel", Some("daniel-chen"), Some(dir.clone())).await;
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    // Known values of the synced record: name, ids, codes, a medication, a lab value, words of a note.
    let meds = sdk.resources(&account, "MedicationRequest").unwrap();
    let med_name = meds[0]["medicationCodeableConcept"]["text"]
        .as_str()
        .or(meds[0]["medicationCodeableConcept"]["coding"][0]["display"].as_str())
        .unwrap()
        .to_owned();
    let lab = sdk
        .resources(&account, "Observation")
        .unwrap()
        .into_iter()
        .find(|o| o["valueQuantity"]["value"].is_number())
        .unwrap();
    let lab_value = lab["valueQuantity"]["value"].to_string();
    let mut needles = vec![
        "Daniel".to_owned(),
        "Chen".to_owned(),
        "daniel-chen".to_owned(),
        "4548-4".to_owned(),
        "Hemoglobin".to_owned(),
        med_name,
    ];
    if lab_value.len() >= 4 {
        needles.push(lab_value);
    }
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    assert!(bytes.len() > 100_000, "the database and its WAL were read");
    for needle in &needles {
        let found = bytes
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
        assert!(!found, "plaintext {needle:?} found in the database files");
    }
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn real_synthea_data_syncs_with_every_resource_accounted_for() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/synthea-r4");
    let sb = Sandbox::start(Config {
        data: vec![dir],
        demo_data: false,
        ..Config::default()
    })
    .await
    .unwrap();
    let state = sb.admin().grants().unwrap();
    assert!(state.is_empty());
    // The first loaded patient (login made by the sandbox).
    // The SDK's client installs rustls' crypto provider; a bare reqwest call first would find none.
    let _ = chartlink_core::http::Http::new().unwrap();
    let people: serde_json::Value = reqwest::get(format!("{}/admin/state", sb.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let person = &people["people"][0];
    let user = person["username"].as_str().unwrap();
    let patient = person["patient_id"].as_str().unwrap();
    let robot = PortalRobot::allowing(user, chartlink_sandbox::loader::LOADED_PASSWORD, None);
    let sdk = sdk(robot, None, Arc::new(ManualClock::new()));
    let account = sdk.link(&sb.fhir_base()).await.unwrap();
    let report = sdk
        .sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let got = inventory(&sdk, &account.id);
    // Every resource of the synced types; Observations with a non-standard category code ("vital-sign") are
    // outside a category-filtered grant and are counted separately.
    let synced_types: Vec<&str> = std::iter::once("Patient")
        .chain(chartlink_core::sync::searched_types())
        .collect();
    let all = truth(&sb, patient, true);
    let want: Vec<_> = all
        .iter()
        .filter(|(t, _, _)| synced_types.contains(&t.as_str()))
        .cloned()
        .collect();
    let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).collect();
    // The app asked for lab results, vital signs and social history: other observation categories (surveys,
    // imaging, Synthea's odd "vital-sign") are not part of the grant and must be the only ones missing.
    let granted = account
        .granted
        .searchable_categories("Observation")
        .unwrap();
    for (ty, id, _) in &missing {
        let r = sb.admin().resource(ty, id).unwrap().unwrap();
        assert_eq!(
            ty, "Observation",
            "only observations outside the granted categories may be missing"
        );
        let cat = r["category"][0]["coding"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert!(!granted.contains(&cat), "{cat} was granted but not synced");
    }
    let other_types: Vec<_> = all
        .iter()
        .filter(|(t, _, _)| !synced_types.contains(&t.as_str()))
        .map(|(t, _, _)| t.clone())
        .collect();
    eprintln!(
        "synthea {patient}: {} synced, {} observations outside the granted categories, {} of unsynced types {:?}",
        got.len(),
        missing.len(),
        other_types.len(),
        {
            let mut t = other_types.clone();
            t.dedup();
            t
        }
    );
    assert_eq!(got.len() + missing.len(), want.len());
    // Billing records are synced (issue 21): every one of this patient's explanations of benefit and claims.
    for ty in ["ExplanationOfBenefit", "Claim"] {
        let on_server = all.iter().filter(|(t, _, _)| t == ty).count();
        assert!(on_server > 0, "every shipped patient has {ty}");
        assert_eq!(
            got.iter().filter(|(t, _, _)| t == ty).count(),
            on_server,
            "{ty}"
        );
    }
    assert!(!other_types.iter().any(|t| matches!(
        t.as_str(),
        "ExplanationOfBenefit" | "Claim" | "ImagingStudy"
    )));
    sb.shutdown().await;
}

#[tokio::test]
async fn the_fast_read_paths_agree_with_the_full_records() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let (sdk, account) = linked(&sb, "daniel", Some("daniel-chen"), None).await;
    sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    sdk.switch_patient(&account).unwrap();
    let check = |sdk: &ChartLink| {
        let labs = sdk.lab_results().unwrap();
        let want: Vec<String> = chartlink_core::views::latest_per_code(&labs)
            .into_iter()
            .map(|r| r.id)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let got: Vec<String> = sdk
            .latest_results()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(got, want, "latest per code");
        let full = chartlink_core::views::lab_trend(&labs, "4548-4").unwrap();
        let fast = sdk.lab_trend("4548-4").unwrap().unwrap();
        assert_eq!(fast.points, full.points, "trend from projections");
    };
    check(&sdk);
    // The newest HbA1c is deleted on the server: after the next full pass the latest is the one before.
    let newest = sdk
        .latest_results()
        .unwrap()
        .into_iter()
        .find(|r| r.code.as_ref().and_then(|c| c.code.as_deref()) == Some("4548-4"))
        .unwrap();
    sb.admin()
        .delete_resource("Observation", &newest.id)
        .unwrap();
    sdk.sync_with(
        &account,
        &SyncOptions {
            force_full: true,
            ..fast()
        },
        &mut |_| {},
    )
    .await
    .unwrap();
    check(&sdk);
    assert!(
        sdk.latest_results()
            .unwrap()
            .iter()
            .all(|r| r.id != newest.id)
    );
    sb.shutdown().await;
}

/// Queries run concurrently (issue 13): against a sandbox that answers each request after 60 ms, the request log
/// shows several searches in flight at once, never more than the setting (one at a time when set to 1), and the
/// record is the server's, exactly as a one-at-a-time sync makes it.
#[tokio::test]
async fn independent_queries_overlap_in_time_and_give_the_same_record() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let mut records = Vec::new();
    for concurrency in [1usize, 4] {
        let (sdk, account) = linked(&sb, "daniel", None, None).await;
        sb.admin().set_faults(chartlink_sandbox::FaultConfig {
            latency_ms: 60,
            ..Default::default()
        });
        sb.admin().clear_request_log();
        let options = SyncOptions {
            concurrency,
            ..fast()
        };
        let report = sdk
            .sync_with(&account, &options, &mut |_| {})
            .await
            .unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        sb.admin().clear_faults();
        let log: Vec<_> = sb
            .admin()
            .request_log()
            .into_iter()
            .filter(|r| r.path.starts_with("/fhir/") && r.path != "/fhir/metadata")
            .collect();
        // The most requests in flight at one moment (a sweep over starts and ends; an end before a start at the
        // same millisecond).
        let mut edges: Vec<(u64, i32)> = log
            .iter()
            .flat_map(|r| [(r.start_ms, 1), (r.end_ms, -1)])
            .collect();
        edges.sort();
        let (mut now, mut most) = (0i32, 0i32);
        for (_, d) in edges {
            now += d;
            most = most.max(now);
        }
        let most = most as usize;
        if concurrency == 1 {
            assert_eq!(most, 1, "one at a time");
        } else {
            assert!(most >= 3, "several queries in flight: {most}");
            assert!(most <= concurrency, "never more than the setting: {most}");
        }
        let got = inventory(&sdk, &account);
        assert_eq!(got, truth(&sb, "daniel-chen", true));
        records.push(got);
    }
    assert_eq!(records[0], records[1]);
    sb.shutdown().await;
}

/// The ids each view shows of the active patient, by the resource type they come from.
fn shown(
    sdk: &ChartLink,
) -> std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>> {
    let mut m: std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>> =
        Default::default();
    let mut add = |ty: &'static str, ids: Vec<String>| m.entry(ty).or_default().extend(ids);
    add(
        "Patient",
        sdk.demographics()
            .unwrap()
            .into_iter()
            .map(|d| d.id)
            .collect(),
    );
    add(
        "Observation",
        sdk.lab_results()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "Observation",
        sdk.vital_signs()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "Observation",
        sdk.observations()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "AllergyIntolerance",
        sdk.allergies().unwrap().into_iter().map(|r| r.id).collect(),
    );
    add(
        "MedicationRequest",
        sdk.medications()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "MedicationDispense",
        sdk.medication_dispenses()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "MedicationStatement",
        sdk.medication_statements()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "Immunization",
        sdk.immunizations()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "Condition",
        sdk.problems().unwrap().into_iter().map(|r| r.id).collect(),
    );
    add(
        "DiagnosticReport",
        sdk.diagnostic_reports()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "Procedure",
        sdk.procedures()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "Encounter",
        sdk.visits().unwrap().into_iter().map(|r| r.id).collect(),
    );
    add(
        "DocumentReference",
        sdk.documents().unwrap().into_iter().map(|r| r.id).collect(),
    );
    add(
        "Appointment",
        sdk.appointments()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "CarePlan",
        sdk.care_plans()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "Goal",
        sdk.goals().unwrap().into_iter().map(|r| r.id).collect(),
    );
    add(
        "CareTeam",
        sdk.care_teams()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "Device",
        sdk.devices().unwrap().into_iter().map(|r| r.id).collect(),
    );
    add(
        "ServiceRequest",
        sdk.service_requests()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "Coverage",
        sdk.coverages().unwrap().into_iter().map(|r| r.id).collect(),
    );
    add(
        "QuestionnaireResponse",
        sdk.questionnaire_responses()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "ExplanationOfBenefit",
        sdk.explanations_of_benefit()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    add(
        "Claim",
        sdk.claims().unwrap().into_iter().map(|r| r.id).collect(),
    );
    add(
        "ImagingStudy",
        sdk.imaging_studies()
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect(),
    );
    m
}

/// Issue 12's "Done means": the shipped Synthea patients, synced through the sandbox with everything allowed at
/// consent, show every resource of every granted type in some view, and every one the server holds arrived.
#[tokio::test]
async fn every_granted_synthea_resource_shows_in_a_view() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/synthea-r4");
    let sb = Sandbox::start(Config {
        data: vec![dir],
        demo_data: false,
        ..Config::default()
    })
    .await
    .unwrap();
    let _ = chartlink_core::http::Http::new().unwrap();
    let people: serde_json::Value = reqwest::get(format!("{}/admin/state", sb.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let people = people["people"].as_array().unwrap();
    assert!(people.len() >= 4, "the shipped bundles");
    let mut totals: std::collections::BTreeMap<String, (usize, usize, usize)> = Default::default();
    let mut smokers = 0;
    let mut prescriptions_with_reasons = 0;
    for person in people {
        let user = person["username"].as_str().unwrap();
        let patient = person["patient_id"].as_str().unwrap();
        let robot = PortalRobot::allowing(user, chartlink_sandbox::loader::LOADED_PASSWORD, None);
        let sdk = sdk(robot, None, Arc::new(ManualClock::new()));
        let account = sdk.link(&sb.fhir_base()).await.unwrap();
        let report = sdk
            .sync_with(&account.id, &fast(), &mut |_| {})
            .await
            .unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        sdk.switch_patient(&account.id).unwrap();
        let shown = shown(&sdk);
        let server = truth(&sb, patient, true);
        for ty in std::iter::once("Patient").chain(chartlink_core::sync::searched_types()) {
            if ty != "Patient" && !account.granted.can_search(ty) {
                continue;
            }
            let stored: std::collections::BTreeSet<String> = sdk
                .resources(&account.id, ty)
                .unwrap()
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_owned())
                .collect();
            let on_server = server.iter().filter(|(t, _, _)| t == ty).count();
            let in_views = shown.get(ty).cloned().unwrap_or_default();
            let missing: Vec<_> = stored.difference(&in_views).collect();
            assert!(
                missing.is_empty(),
                "{patient}: {ty} stored but in no view: {missing:?}"
            );
            assert_eq!(
                stored.len(),
                on_server,
                "{patient}: every {ty} of the server arrived"
            );
            let t = totals.entry(ty.to_owned()).or_default();
            t.0 += on_server;
            t.1 += stored.len();
            t.2 += stored.intersection(&in_views).count();
        }
        // References resolved (Synthea names no one in its references): every visit that points to a doctor or
        // a place of care names them, every prescription its prescriber.
        let visits = sdk.visits().unwrap();
        let raw = sdk.resources(&account.id, "Encounter").unwrap();
        let mut unnamed = Vec::new();
        for r in &raw {
            let v = visits.iter().find(|v| r["id"] == v.id.as_str()).unwrap();
            let has_doctor = r["participant"][0]["individual"]["reference"].is_string();
            let has_place = r["serviceProvider"]["reference"].is_string()
                || r["location"][0]["location"]["reference"].is_string();
            if (has_doctor && v.provider.is_none()) || (has_place && v.location_or_org.is_none()) {
                unnamed.push(v.id.clone());
            }
        }
        assert!(
            !visits.is_empty() && unnamed.is_empty(),
            "{patient}: visits that do not name their doctor or place: {unnamed:?}"
        );
        let meds = sdk.medications().unwrap();
        assert!(
            meds.iter().all(|m| m.prescriber.is_some()),
            "{patient}: every prescription names its prescriber"
        );
        // The reason on a prescription (issue 21): Synthea gives it as a bare reference to a Condition, named
        // from the problem list.
        for r in sdk.resources(&account.id, "MedicationRequest").unwrap() {
            let m = meds.iter().find(|m| r["id"] == m.id.as_str()).unwrap();
            if r["reasonReference"][0]["reference"].is_string() {
                assert!(
                    !m.reason.is_empty() && !m.reason_ids.is_empty(),
                    "{patient}: prescription {} names no reason",
                    m.id
                );
                prescriptions_with_reasons += 1;
            }
        }
        // What the patient was billed: each explanation names what was billed and what the insurer paid, each
        // claim its total.
        for e in sdk.explanations_of_benefit().unwrap() {
            assert!(
                e.date.is_some() && !e.services.is_empty() && !e.totals.is_empty(),
                "{patient}: {e:?}"
            );
            assert!(e.payment.is_some() && e.provider.is_some() && e.insurer.is_some());
        }
        for c in sdk.claims().unwrap() {
            assert!(
                c.date.is_some() && c.total.is_some() && c.provider.is_some(),
                "{c:?}"
            );
        }
        for s in sdk.imaging_studies().unwrap() {
            assert!(
                s.started.is_some() && !s.modalities.is_empty() && s.series_count.is_some(),
                "{s:?}"
            );
        }
        // Smoking status, which Synthea files under "survey", shows as social history.
        let social = sdk.social_history().unwrap();
        if social
            .iter()
            .any(|o| o.code.as_ref().and_then(|c| c.code.as_deref()) == Some("72166-2"))
        {
            smokers += 1;
        }
    }
    eprintln!("synthea, per type (on server, stored, shown): {totals:?}");
    for ty in [
        "Observation",
        "Procedure",
        "DiagnosticReport",
        "CarePlan",
        "Goal",
        "AllergyIntolerance",
    ] {
        assert!(totals[ty].2 > 0, "{ty} shown");
    }
    // What the held-out records hold and ChartLink once dropped (issue 21), every one on the server arrived and
    // shows: (on server, stored, shown).
    assert_eq!(totals["ExplanationOfBenefit"], (104, 104, 104));
    assert_eq!(totals["Claim"], (115, 115, 115));
    assert_eq!(totals["ImagingStudy"], (4, 4, 4));
    assert_eq!(prescriptions_with_reasons, 9);
    assert_eq!(
        smokers,
        people.len(),
        "every patient's smoking status is social history"
    );
    sb.shutdown().await;
}

/// One throttled answer slows every query to that server (issue 13): after a 429 with `Retry-After: 1`, no other
/// request to the FHIR API starts until the second has passed, though four queries were in flight.
#[tokio::test]
async fn a_throttled_answer_pauses_every_query_to_the_server() {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let (sdk, account) = linked(&sb, "daniel", None, None).await;
    sb.admin().script_fault(chartlink_sandbox::ScriptedFault {
        path_prefix: "/fhir/Condition".into(),
        kind: chartlink_sandbox::FaultKind::RateLimit {
            retry_after_secs: 1,
        },
        count: 1,
    });
    sb.admin().clear_request_log();
    let report = sdk.sync_with(&account, &fast(), &mut |_| {}).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let log: Vec<_> = sb
        .admin()
        .request_log()
        .into_iter()
        .filter(|r| r.path.starts_with("/fhir/"))
        .collect();
    let throttled = log
        .iter()
        .find(|r| r.path == "/fhir/Condition")
        .expect("the throttled request");
    // (A request the client had sent before the 429 reached it may arrive a few ms after the server answered.)
    let during: Vec<_> = log
        .iter()
        .filter(|r| r.start_ms > throttled.end_ms + 20 && r.start_ms < throttled.end_ms + 900)
        .collect();
    assert!(during.is_empty(), "requests during the pause: {during:?}");
    assert!(
        log.iter().any(|r| r.start_ms >= throttled.end_ms + 900),
        "the sync went on after the pause"
    );
    assert_eq!(inventory(&sdk, &account), truth(&sb, "daniel-chen", true));
    sb.shutdown().await;
}
