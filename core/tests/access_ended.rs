//! Never delete what the patient did not ask to delete (issue 20), against the sandbox over loopback: signals that
//! do not carry the patient's decision (an expired grant's `invalid_grant`, a firewall's HTML 403, a pass in which
//! every query fails, a refresh that answers a wider scope, two SDK instances sharing one rotating refresh token)
//! each get their typed outcome, and the record is intact afterwards. Deleting stays the user's act.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use chartlink_core::{
    AccountStatus, AppConfig, ChartLink, DataCategory, Error, Event, Host, RevocationPolicy,
    SyncOptions,
};
use chartlink_sandbox::{FaultKind, Quirks, ScriptedFault};
use common::{Fixture, RobotBrowser, body_fault, config, fast, record};

fn full() -> SyncOptions {
    SyncOptions {
        force_full: true,
        ..fast()
    }
}

fn status(sdk: &ChartLink, id: &str) -> AccountStatus {
    sdk.accounts()
        .unwrap()
        .into_iter()
        .find(|a| a.id == id)
        .unwrap()
        .status
}

/// The SDK as a host builds it by default: `AppConfig::new`'s revocation policy.
fn default_config() -> AppConfig {
    AppConfig {
        revocation: AppConfig::new("chartlink-demo", "chartlink-demo://callback").revocation,
        ..config(RevocationPolicy::PurgeNow)
    }
}

/// Expired grants answer `invalid_grant` (RFC 6749 §5.2): Keycloak once its offline session idles out (400), and
/// smart-launcher-v2 for an expired refresh token (403). By default that ends access and keeps the record: it stays
/// readable, the host is told, and linking again restores the same account with its record.
#[tokio::test]
async fn an_expired_grant_ends_access_and_keeps_the_record() {
    assert_eq!(
        AppConfig::new("a", "a://cb").revocation,
        RevocationPolicy::KeepReadOnlyUntilConfirmed,
        "the default never purges by itself"
    );
    for (label, http_status, body) in [
        (
            "Keycloak: offline session idled out",
            400,
            r#"{"error":"invalid_grant","error_description":"Offline user session not found"}"#,
        ),
        (
            "smart-launcher-v2: expired refresh token, HTTP 403",
            403,
            r#"{"error":"invalid_grant","error_description":"Invalid token (expired)"}"#,
        ),
    ] {
        let f = Fixture::new().await;
        let sdk = f.sdk(default_config(), Some(Fixture::robot("maria")));
        let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
        sdk.sync_with(&account.id, &fast(), &mut |_| {})
            .await
            .unwrap();
        let before = record(&sdk, &account.id);
        let labs = sdk.lab_results().unwrap().len();
        assert!(before.len() > 100 && labs > 0, "{label}: a real record");

        f.sb.admin().expire_access_tokens(None).unwrap();
        f.sb.admin().script_fault(body_fault(
            "/oauth2/token",
            http_status,
            "application/json",
            body,
            5,
        ));
        let err = sdk
            .sync_with(&account.id, &fast(), &mut |_| {})
            .await
            .expect_err(label);
        assert_eq!(err, Error::AccessRevoked, "{label}");
        assert_eq!(status(&sdk, &account.id), AccountStatus::Revoked, "{label}");
        assert!(f.events.saw(
            |e| matches!(e, Event::AccessRevoked { account_id } if *account_id == account.id)
        ));
        assert_eq!(
            record(&sdk, &account.id),
            before,
            "{label}: the record is intact"
        );
        assert_eq!(
            sdk.lab_results().unwrap().len(),
            labs,
            "{label}: still readable"
        );
        assert_eq!(
            sdk.accounts().unwrap().len(),
            1,
            "{label}: the account stays"
        );

        // Linking again restores the same account in place, with its record, and it syncs again.
        f.sb.admin().clear_faults();
        let again = sdk.link(&f.sb.fhir_base()).await.unwrap();
        assert_eq!(again.id, account.id, "{label}: restored in place");
        assert_eq!(status(&sdk, &account.id), AccountStatus::Active);
        let report = sdk
            .sync_with(&account.id, &fast(), &mut |_| {})
            .await
            .unwrap();
        assert!(report.failures.is_empty(), "{label}: {:?}", report.failures);
        assert_eq!(
            record(&sdk, &account.id),
            before,
            "{label}: after linking again"
        );

        // Deleting is the user's act, and it leaves nothing: the locked inbox's secret goes with the record.
        use chartlink_core::SecureStore;
        assert!(!f.store.keys("chartlink/inbox-psk/").unwrap().is_empty());
        sdk.unlink(&account.id).await.unwrap();
        assert!(sdk.accounts().unwrap().is_empty());
        assert!(f.store.keys("chartlink/inbox-psk/").unwrap().is_empty());
        f.sb.shutdown().await;
    }
}

/// A host that opted into purging gets what it asked for (and only then does the SDK delete on its own).
#[tokio::test]
async fn purging_on_access_ended_is_the_hosts_opt_in() {
    let f = Fixture::new().await;
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("maria")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    sdk.sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    f.sb.admin().expire_access_tokens(None).unwrap();
    f.sb.admin().script_fault(body_fault(
        "/oauth2/token",
        400,
        "application/json",
        r#"{"error":"invalid_grant"}"#,
        5,
    ));
    let err = sdk
        .sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(err, Error::AccessRevoked);
    assert!(
        record(&sdk, &account.id).is_empty(),
        "purged, as the host chose"
    );
    f.sb.shutdown().await;
}

const WAF_PAGE: &str = "<html><head><title>403 Forbidden</title></head><body><h1>Access Denied</h1><p>Request blocked by the web application firewall. Reference #18.2f4e1</p></body></html>";

/// A web application firewall's HTML 403 on every request of the weekly full pass says nothing about consent: the
/// pass fails, nothing is deleted, and the next sync through a working network completes.
#[tokio::test]
async fn a_firewalls_html_403_on_a_full_pass_deletes_nothing() {
    let f = Fixture::new().await;
    let sdk = f.sdk(default_config(), Some(Fixture::robot("maria")));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    sdk.sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    let before = record(&sdk, &account.id);

    // Every FHIR request but the CapabilityStatement (which the fault API never faults).
    f.sb.admin()
        .script_fault(body_fault("/fhir/", 403, "text/html", WAF_PAGE, 10_000));
    let report = sdk
        .sync_with(&account.id, &full(), &mut |_| {})
        .await
        .unwrap();
    assert!(!report.failures.is_empty());
    assert!(
        report.failures.iter().all(|q| !q.not_granted),
        "an HTML 403 is not 'not granted': {:?}",
        report.failures
    );
    assert!(
        report.per_type.values().all(|t| t.deleted == 0),
        "{report:?}"
    );
    assert_eq!(record(&sdk, &account.id), before, "the record is intact");
    assert!(
        report
            .failures
            .iter()
            .all(|q| !q.reason.contains("Access Denied")),
        "the page's text stays out of the report"
    );

    // One query behind the firewall while the rest work: still nothing deleted.
    f.sb.admin().clear_faults();
    f.sb.admin().script_fault(body_fault(
        "/fhir/AllergyIntolerance",
        403,
        "text/html",
        WAF_PAGE,
        10_000,
    ));
    let report = sdk
        .sync_with(&account.id, &full(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert!(!sdk.allergies().unwrap().is_empty());
    assert_eq!(record(&sdk, &account.id), before);

    f.sb.admin().clear_faults();
    let report = sdk
        .sync_with(&account.id, &full(), &mut |_| {})
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(record(&sdk, &account.id), before);
    f.sb.shutdown().await;
}

/// Even the FHIR server's own 403 OperationOutcome, when every query of the pass gets it, deletes nothing: a pass
/// in which nothing works is a server failing, not the patient unsharing their whole record.
#[tokio::test]
async fn a_full_pass_in_which_every_query_is_refused_deletes_nothing() {
    let f = Fixture::new().await;
    let sdk = f.sdk(default_config(), Some(Fixture::robot("maria")));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    sdk.sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    let before = record(&sdk, &account.id);
    f.sb.admin().script_fault(ScriptedFault {
        path_prefix: "/fhir/".into(),
        kind: FaultKind::Status { status: 403 },
        count: 10_000,
    });
    let report = sdk
        .sync_with(&account.id, &full(), &mut |_| {})
        .await
        .unwrap();
    assert!(report.failures.iter().all(|q| q.not_granted));
    assert_eq!(record(&sdk, &account.id), before, "the record is intact");
    f.sb.shutdown().await;
}

/// A refresh never widens the grant: linked for demographics and problems only, a refresh answering (and the
/// server granting) `patient/*.rs user/*.rs` does not make the next sync store what the patient did not share.
#[tokio::test]
async fn a_refresh_that_answers_a_wider_scope_does_not_widen_the_grant() {
    let f = Fixture::new().await;
    let sdk = f.sdk(
        AppConfig {
            wanted: vec![DataCategory::Demographics, DataCategory::Problems],
            ..default_config()
        },
        Some(Fixture::robot("maria")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    sdk.sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    let shared = record(&sdk, &account.id);
    assert!(shared.iter().any(|r| r.starts_with("Condition/")));
    assert!(!shared.iter().any(|r| r.starts_with("Observation/")));

    f.sb.admin().set_quirks(Quirks {
        widen_scope_on_refresh: Some(
            "launch/patient openid fhirUser offline_access patient/*.rs user/*.rs".into(),
        ),
        ..Quirks::default()
    });
    f.sb.admin().expire_access_tokens(None).unwrap();
    let refreshes = f.token_requests("refresh_token");
    let report = sdk
        .sync_with(&account.id, &full(), &mut |_| {})
        .await
        .unwrap();
    assert!(
        f.token_requests("refresh_token") > refreshes,
        "the refresh happened"
    );
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let after = record(&sdk, &account.id);
    for ty in [
        "Observation/",
        "AllergyIntolerance/",
        "DocumentReference/",
        "MedicationRequest/",
    ] {
        assert!(
            !after.iter().any(|r| r.starts_with(ty)),
            "stored {ty} the patient did not share"
        );
    }
    assert_eq!(after, shared, "exactly what was shared");
    let granted = &sdk.accounts().unwrap()[0].granted;
    assert!(!granted.can_search("Observation"), "{}", granted.raw);
    assert!(granted.can_search("Condition"));
    f.sb.shutdown().await;
}

/// Two SDK instances on one data directory and one secure store (the app and its background job, an app and its
/// extension), 20 rounds of syncing at once just after the access token expired, against a server that ends the
/// grant when a spent refresh token comes back: one refresh per round, never revoked, never purged, the store
/// consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_sharing_a_rotating_refresh_token_never_end_the_grant() {
    let f = Fixture::new().await;
    let dir = std::env::temp_dir().join(format!("cl-two-instances-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = AppConfig {
        data_dir: Some(dir.clone()),
        ..default_config()
    };
    let first = f.sdk(cfg.clone(), Some(Fixture::robot("maria")));
    let account = first.link(&f.sb.fhir_base()).await.unwrap();
    first
        .sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    let before = record(&first, &account.id);
    let second = ChartLink::new(
        cfg,
        Host {
            secure_store: f.store.clone(),
            browser: Some(Arc::new(RobotBrowser(Fixture::robot("maria")))),
            clock: f.clock.clone(),
            listener: None,
        },
    )
    .unwrap();
    for round in 0..20 {
        f.sb.admin().expire_access_tokens(None).unwrap();
        let refreshes = f.token_requests("refresh_token");
        let (opts_a, opts_b) = (fast(), fast());
        let (mut progress_a, mut progress_b) = (|_| {}, |_| {});
        let (a, b) = tokio::join!(
            first.sync_with(&account.id, &opts_a, &mut progress_a),
            second.sync_with(&account.id, &opts_b, &mut progress_b),
        );
        let a = a.unwrap_or_else(|e| panic!("round {round}: first: {e:?}"));
        let b = b.unwrap_or_else(|e| panic!("round {round}: second: {e:?}"));
        assert!(
            a.failures.is_empty() && b.failures.is_empty(),
            "round {round}"
        );
        assert_eq!(
            f.token_requests("refresh_token") - refreshes,
            1,
            "round {round}: one refresh for both"
        );
        assert_eq!(
            status(&first, &account.id),
            AccountStatus::Active,
            "round {round}"
        );
        assert!(
            f.sb.admin()
                .grants()
                .unwrap()
                .iter()
                .all(|g| g.revoked_at.is_none()),
            "round {round}"
        );
    }
    assert!(!f.events.saw(|e| matches!(e, Event::AccessRevoked { .. })));
    assert_eq!(record(&first, &account.id), before, "the store is whole");
    assert_eq!(record(&second, &account.id), before);
    drop((first, second));
    let _ = std::fs::remove_dir_all(&dir);
    f.sb.shutdown().await;
}

/// `confirm_merge` is the user's statement that two records are one person; it refuses what cannot be: two records
/// at one provider (seen: `chartlink merge <maria> <leo>` made Leo's labs Maria's), and the user with someone they
/// are proxy for. Nothing is merged, and each record stays its own.
#[tokio::test]
async fn a_merge_of_two_people_is_refused() {
    let f = Fixture::new().await;
    let robots = vec![
        chartlink_sandbox::PortalRobot::allowing("maria", "maria-demo", Some("maria-garcia")),
        chartlink_sandbox::PortalRobot::allowing("maria", "maria-demo", Some("leo-garcia")),
    ];
    let sdk = ChartLink::new(
        default_config(),
        Host {
            secure_store: f.store.clone(),
            browser: Some(Arc::new(common::RobotQueue(std::sync::Mutex::new(robots)))),
            clock: f.clock.clone(),
            listener: None,
        },
    )
    .unwrap();
    let maria = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let leo = sdk.link(&f.sb.fhir_base()).await.unwrap();
    sdk.sync_with(&maria.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    sdk.sync_with(&leo.id, &fast(), &mut |_| {}).await.unwrap();
    let err = sdk
        .confirm_merge(&[maria.id.clone(), leo.id.clone()])
        .unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(m) if m.contains("same provider")),
        "{err:?}"
    );
    assert_eq!(sdk.patients().unwrap().len(), 2, "still two people");
    sdk.switch_patient(&maria.id).unwrap();
    let maria_labs: Vec<String> = sdk
        .lab_results()
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    sdk.switch_patient(&leo.id).unwrap();
    let leo_labs: Vec<String> = sdk
        .lab_results()
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    assert!(
        maria_labs.iter().all(|l| !leo_labs.contains(l)),
        "records never mix"
    );
    f.sb.shutdown().await;
}

/// A full-pass stamp written while the phone's clock ran months ahead counts as stale once the clock is right
/// again: the next sync is a full pass (deletions reconciled), not an incremental one for a year.
#[tokio::test]
async fn a_full_pass_stamp_from_a_clock_that_ran_ahead_is_stale() {
    let f = Fixture::new().await;
    let sdk = f.sdk(default_config(), Some(Fixture::robot("maria")));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let ahead_ms = 200 * 24 * 3600 * 1000; // ahead by months (the tests' idle lock is a year)
    f.clock.advance_ms(ahead_ms);
    let first = sdk
        .sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    assert!(first.full_pass);
    {
        use chartlink_core::Clock;
        f.clock.set_wall_ms(f.clock.now_unix_ms() - ahead_ms);
    }
    let next = sdk
        .sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    assert!(
        next.full_pass,
        "a stamp in the future is not 'synced just now'"
    );
    f.sb.shutdown().await;
}
