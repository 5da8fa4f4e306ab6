//! Revocation is a conclusion, not a guess (issue 10): against the sandbox over loopback, with its fault API making
//! the token endpoint and the FHIR API fail the way real ones do (a load balancer's HTML 503, OAuth's
//! `temporarily_unavailable`, 429, a 401 that a fresh token does not cure, a phone clock minutes off, a grant
//! without a refresh token), each test asserts the typed outcome, that the local record is intact afterwards, and
//! that the account syncs again once the server has recovered. Only the authorization server's own `invalid_grant`
//! revokes, and only the host's policy then purges.
#![allow(clippy::unwrap_used)]

mod common;

use chartlink_core::{AccountStatus, Error, Event, NetworkKind, RevocationPolicy, SyncOptions};
use chartlink_sandbox::{FaultKind, ScriptedFault};
use common::{Fixture, body_fault, config, fast, record};
use serde_json::json;
use std::time::Duration;

const LB_PAGE: &str = "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>";

/// Links maria, syncs her record once, and returns the SDK, the account id and the record.
async fn linked(f: &Fixture) -> (chartlink_core::ChartLink, String, Vec<String>) {
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("maria")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let report = sdk
        .sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let before = record(&sdk, &account.id);
    assert!(before.len() > 100, "a real record: {}", before.len());
    (sdk, account.id, before)
}

fn status(sdk: &chartlink_core::ChartLink, id: &str) -> AccountStatus {
    sdk.accounts()
        .unwrap()
        .into_iter()
        .find(|a| a.id == id)
        .unwrap()
        .status
}

/// The token endpoint failing transiently while the FHIR API answers 401 (the access token expired early): the
/// sync fails as transient, nothing is revoked or deleted, and the next sync against the healthy server works.
#[tokio::test]
async fn a_token_endpoint_outage_after_a_401_keeps_the_record_and_the_account() {
    let f = Fixture::new().await;
    let (sdk, id, before) = linked(&f).await;
    for (label, fault) in [
        (
            "HTML 503",
            body_fault("/oauth2/token", 503, "text/html", LB_PAGE, 50),
        ),
        (
            "temporarily_unavailable",
            body_fault(
                "/oauth2/token",
                400,
                "application/json",
                r#"{"error":"temporarily_unavailable","error_description":"try later"}"#,
                50,
            ),
        ),
        (
            "429",
            ScriptedFault {
                path_prefix: "/oauth2/token".into(),
                kind: FaultKind::RateLimit {
                    retry_after_secs: 1,
                },
                count: 50,
            },
        ),
        (
            "HTML 400 from a proxy",
            body_fault(
                "/oauth2/token",
                400,
                "text/html",
                "<h1>Bad Request</h1>",
                50,
            ),
        ),
        (
            "server_error",
            ScriptedFault {
                path_prefix: "/oauth2/token".into(),
                kind: FaultKind::Status { status: 500 },
                count: 50,
            },
        ),
    ] {
        f.sb.admin().expire_access_tokens(None).unwrap();
        f.sb.admin().script_fault(fault);
        let err = sdk
            .sync_with(&id, &fast(), &mut |_| {})
            .await
            .expect_err(label);
        assert!(err.is_transient(), "{label}: {err:?}");
        // The cause crosses as data: a throttled server's Retry-After says when to try again.
        let Error::Network(failure) = &err else {
            panic!("{label}: {err:?}")
        };
        if label == "429" {
            assert_eq!(failure.kind, NetworkKind::Throttled, "{label}");
            assert_eq!(failure.retry_after, Some(Duration::from_secs(1)), "{label}");
        } else {
            assert_eq!(failure.kind, NetworkKind::ServerError, "{label}");
            assert_eq!(failure.retry_after, None, "{label}");
        }
        assert_eq!(status(&sdk, &id), AccountStatus::Active, "{label}");
        assert_eq!(record(&sdk, &id), before, "{label}: the record is intact");
        assert!(!f.events.saw(|e| matches!(e, Event::AccessRevoked { .. })));
        f.sb.admin().clear_faults();
        let report = sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap();
        assert!(report.failures.is_empty(), "{label}: {:?}", report.failures);
        assert_eq!(record(&sdk, &id), before, "{label}: after recovery");
    }
    f.sb.shutdown().await;
}

/// The refresh works but the FHIR API still answers 401 (a server whose token cache lags): every query fails as
/// "refused a fresh token", only one refresh is made, nothing is revoked; once the server is well, the sync works.
#[tokio::test]
async fn a_401_to_a_freshly_renewed_token_is_not_revocation() {
    let f = Fixture::new().await;
    let (sdk, id, before) = linked(&f).await;
    let refreshes = f.token_requests("refresh_token");
    f.sb.admin().script_fault(body_fault(
        "/fhir/",
        401,
        "application/fhir+json",
        r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]}"#,
        500,
    ));
    let report = sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap();
    assert!(!report.failures.is_empty());
    assert!(
        report
            .failures
            .iter()
            .all(|q| q.reason.contains("freshly renewed")),
        "{:?}",
        report.failures
    );
    assert_eq!(
        f.token_requests("refresh_token"),
        refreshes + 1,
        "one refresh per sync, not one per query"
    );
    assert_eq!(status(&sdk, &id), AccountStatus::Active);
    assert_eq!(record(&sdk, &id), before);
    f.sb.admin().clear_faults();
    let report = sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(record(&sdk, &id), before);
    f.sb.shutdown().await;
}

/// The refresh that runs shortly before expiry and the one after a 401 follow the same rules: a transient failure
/// of the first keeps using the still-valid token; of the second is transient too. Neither revokes.
#[tokio::test]
async fn both_refresh_paths_agree_on_transient_failures() {
    let f = Fixture::new().await;
    let (sdk, id, before) = linked(&f).await;
    // 59 minutes later the token (1 hour) is inside the refresh margin but still valid.
    f.advance(3_570 * 1000);
    f.sb.admin()
        .script_fault(body_fault("/oauth2/token", 503, "text/html", LB_PAGE, 50));
    let report = sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap();
    assert!(
        report.failures.is_empty(),
        "the still-valid token was used: {:?}",
        report.failures
    );
    // After expiry, the same outage: transient, nothing lost.
    f.advance(120 * 1000);
    let err = sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(status(&sdk, &id), AccountStatus::Active);
    f.sb.admin().clear_faults();
    sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap();
    assert_eq!(record(&sdk, &id), before);
    f.sb.shutdown().await;
}

/// A grant without a refresh token (a server that drops offline_access) is not "revoked" an hour later: it needs a
/// new link, its record stays readable, the host is told, and linking again restores the same account in place.
#[tokio::test]
async fn a_grant_without_a_refresh_token_needs_relinking_and_keeps_its_record() {
    let f = Fixture::new().await;
    f.sb.admin().set_refresh_tokens(false);
    let (sdk, id, before) = linked(&f).await;
    f.advance(2 * 3600 * 1000);
    let err = sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap_err();
    assert_eq!(err, Error::RelinkNeeded);
    assert_eq!(status(&sdk, &id), AccountStatus::RelinkNeeded);
    assert!(
        f.events
            .saw(|e| matches!(e, Event::RelinkNeeded { account_id } if *account_id == id))
    );
    assert!(!f.events.saw(|e| matches!(e, Event::AccessRevoked { .. })));
    assert_eq!(record(&sdk, &id), before, "the record stays readable");
    assert!(!sdk.lab_results().unwrap().is_empty());
    // Later syncs say so (not a silent skip), without a request.
    let requests = f.sb.admin().stats().fhir_requests;
    assert_eq!(
        sdk.sync_all().await.unwrap()[0].1.clone().unwrap_err(),
        Error::RelinkNeeded
    );
    assert_eq!(f.sb.admin().stats().fhir_requests, requests);
    // Link again: the same account, not a second copy of the patient.
    let again = sdk.link(&f.sb.fhir_base()).await.unwrap();
    assert_eq!(again.id, id);
    assert_eq!(sdk.accounts().unwrap().len(), 1);
    assert_eq!(status(&sdk, &id), AccountStatus::Active);
    let report = sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap();
    assert!(report.failures.is_empty());
    assert_eq!(record(&sdk, &id), before);
    f.sb.shutdown().await;
}

/// The provider refusing to renew for another reason than a dead grant (`invalid_client`: say, the app's
/// registration changed) needs a new link too; it is not a revocation and deletes nothing.
#[tokio::test]
async fn a_refusal_other_than_invalid_grant_needs_relinking() {
    let f = Fixture::new().await;
    let (sdk, id, before) = linked(&f).await;
    f.sb.admin().expire_access_tokens(None).unwrap();
    f.sb.admin().script_fault(body_fault(
        "/oauth2/token",
        401,
        "application/json",
        "{\"error\":\"invalid_client\",\"error_description\":\"Client \\u001b]8;;http://evil\\u0007unknown\"}",
        1,
    ));
    let err = sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap_err();
    assert_eq!(err, Error::RelinkNeeded);
    assert_eq!(record(&sdk, &id), before);
    sdk.link(&f.sb.fhir_base()).await.unwrap();
    sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap();
    assert_eq!(record(&sdk, &id), before);
    f.sb.shutdown().await;
}

/// The authorization server's own `invalid_grant` is the one conclusive answer: revoked; the host's policy decides
/// about the data (kept read-only here, purged only when the user confirms).
#[tokio::test]
async fn invalid_grant_is_revocation_and_the_policy_decides_about_the_data() {
    let f = Fixture::new().await;
    let sdk = f.sdk(
        config(RevocationPolicy::KeepReadOnlyUntilConfirmed),
        Some(Fixture::robot("maria")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    sdk.sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    let before = record(&sdk, &account.id);
    let grant = f.sb.admin().grants().unwrap()[0].id.clone();
    f.sb.admin().revoke_grant(&grant).unwrap();
    let err = sdk
        .sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(err, Error::AccessRevoked);
    assert_eq!(status(&sdk, &account.id), AccountStatus::Revoked);
    assert_eq!(record(&sdk, &account.id), before, "kept read-only");
    sdk.confirm_revoked(&account.id).await.unwrap();
    assert!(sdk.accounts().unwrap().is_empty());
    f.sb.shutdown().await;
}

/// A phone whose clock is minutes off (either way) still renews a device client's access: the jwt-bearer grant's
/// assertion is timed by the server's clock, which the SDK knows from the `Date` of the server's answers (here the
/// CapabilityStatement the sync reads first), so the first assertion is accepted. (An assertion refused because the
/// skew was not known yet is sent again timed by the refusal's `Date`: see the code-exchange case below.)
#[tokio::test]
async fn a_device_client_on_a_phone_with_a_wrong_clock_keeps_access() {
    for skew_secs in [150_i64, -400] {
        let f = Fixture::new().await;
        let (sdk, id, before) = linked(&f).await;
        sdk.register_device(&id).await.unwrap();
        // The phone's clock only (the sandbox keeps the right time).
        f.clock.advance_ms(skew_secs * 1000);
        f.sb.admin().expire_access_tokens(None).unwrap();
        let bearer_before = f.token_requests("urn:ietf:params:oauth:grant-type:jwt-bearer");
        let report = sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap();
        assert!(
            report.failures.is_empty(),
            "{skew_secs}: {:?}",
            report.failures
        );
        assert_eq!(status(&sdk, &id), AccountStatus::Active, "{skew_secs}");
        assert_eq!(
            f.token_requests("urn:ietf:params:oauth:grant-type:jwt-bearer"),
            bearer_before + 1,
            "{skew_secs}: one assertion, timed by the server's clock"
        );
        assert_eq!(record(&sdk, &id), before);
        f.sb.shutdown().await;
    }
}

/// Another patient's resources in a search answer (a server bug, a mixed-up cache) are refused, counted and never
/// stored: they must not appear in this patient's problems or labs.
#[tokio::test]
async fn another_patients_resources_are_refused_and_counted() {
    let f = Fixture::new().await;
    let (sdk, id, before) = linked(&f).await;
    let account = sdk.accounts().unwrap()[0].clone();
    let pid = account.patient_id.clone();
    let bundle = json!({
        "resourceType": "Bundle", "type": "searchset",
        "entry": [
            {"resource": {"resourceType": "Condition", "id": "foreign-hiv", "subject": {"reference": "Patient/someone-else"},
                "code": {"text": "HIV infection"}, "clinicalStatus": {"coding": [{"code": "active"}]}}},
            {"resource": {"resourceType": "Condition", "id": "no-subject", "code": {"text": "Orphan"}}},
            {"resource": {"resourceType": "Condition", "id": "hers", "subject": {"reference": format!("Patient/{pid}")},
                "code": {"text": "Seasonal allergic rhinitis"}, "clinicalStatus": {"coding": [{"code": "active"}]}}}
        ]
    });
    f.sb.admin().script_fault(body_fault(
        "/fhir/Condition",
        200,
        "application/fhir+json",
        &bundle.to_string(),
        1,
    ));
    let report = sdk
        .sync_with(
            &id,
            &SyncOptions {
                force_full: false,
                ..fast()
            },
            &mut |_| {},
        )
        .await
        .unwrap();
    assert_eq!(report.refused, 2);
    let problems: Vec<String> = sdk
        .problems()
        .unwrap()
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert!(
        !problems
            .iter()
            .any(|p| p.contains("HIV") || p.contains("Orphan"))
    );
    assert!(problems.iter().any(|p| p.contains("rhinitis")));
    let mut after = record(&sdk, &id);
    after.retain(|r| r != "Condition/hers");
    assert_eq!(after, before);
    f.sb.shutdown().await;
}

/// Consent withdrawn: the server answering 403 on a full pass removes exactly that query's data; the rest stays.
#[tokio::test]
async fn a_query_now_refused_on_a_full_pass_loses_exactly_its_data() {
    let f = Fixture::new().await;
    let (sdk, id, before) = linked(&f).await;
    assert!(!sdk.allergies().unwrap().is_empty());
    f.sb.admin().script_fault(ScriptedFault {
        path_prefix: "/fhir/AllergyIntolerance".into(),
        kind: FaultKind::Status { status: 403 },
        count: 1,
    });
    let report = sdk
        .sync_with(
            &id,
            &SyncOptions {
                force_full: true,
                ..fast()
            },
            &mut |_| {},
        )
        .await
        .unwrap();
    assert!(report.failures.iter().all(|q| q.not_granted));
    assert!(sdk.allergies().unwrap().is_empty());
    let mut expected = before.clone();
    expected.retain(|r| !r.starts_with("AllergyIntolerance/"));
    assert_eq!(record(&sdk, &id), expected);
    f.sb.shutdown().await;
}

/// Consent withdrawn at the portal: linking again with a category unticked removes that category's data at the
/// next full pass (the account is restored in place, so nothing else is lost).
#[tokio::test]
async fn a_category_no_longer_granted_is_removed_on_the_next_full_pass() {
    let f = Fixture::new().await;
    let (sdk, id, before) = linked(&f).await;
    assert!(!sdk.vital_signs().unwrap().is_empty());
    let mut robot = Fixture::robot("maria");
    robot.untick = vec!["Vital signs".into()];
    let req = sdk.begin_link(&f.sb.fhir_base()).await.unwrap();
    let redirect = robot.authorize(req.url.as_str()).await.unwrap();
    let again = sdk.complete_link(&redirect).await.unwrap();
    assert_eq!(again.id, id);
    let report = sdk
        .sync_with(
            &id,
            &SyncOptions {
                force_full: true,
                ..fast()
            },
            &mut |_| {},
        )
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(sdk.vital_signs().unwrap().is_empty());
    assert!(!sdk.lab_results().unwrap().is_empty());
    let after = record(&sdk, &id);
    assert!(after.len() < before.len());
    assert!(after.iter().all(|r| before.contains(r)));
    f.sb.shutdown().await;
}

/// A query that hits the page cap is not resumed on every later sync (that would page forever): the next sync asks
/// only for what changed.
#[tokio::test]
async fn a_query_that_hit_the_page_cap_is_not_resumed_forever() {
    let f = Fixture::new().await;
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("daniel")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let capped = SyncOptions {
        page_size: 5,
        max_pages: 3,
        ..fast()
    };
    let first = sdk
        .sync_with(&account.id, &capped, &mut |_| {})
        .await
        .unwrap();
    let capped_queries: Vec<String> = first
        .failures
        .iter()
        .filter(|q| q.reason.contains("pages"))
        .map(|q| q.query.clone())
        .collect();
    assert!(!capped_queries.is_empty(), "{:?}", first.failures);
    let requests = f.sb.admin().stats().fhir_requests;
    let mut queries = 0;
    let second = sdk
        .sync_with(&account.id, &capped, &mut |p| queries = p.queries_total)
        .await
        .unwrap();
    assert!(!second.full_pass, "the capped pass still counts as done");
    assert!(
        second.failures.is_empty(),
        "nothing is resumed: {:?}",
        second.failures
    );
    let made = f.sb.admin().stats().fhir_requests - requests;
    assert!(
        made <= queries as u64 + 1,
        "one request per query (and the CapabilityStatement) for what changed, not the chain again: {made} for {queries}"
    );
    f.sb.shutdown().await;
}

/// A deterministic failure (an answer over the size limit) is not downloaded again and again: one request per
/// query, each failing with its reason, the rest of the record untouched.
#[tokio::test]
async fn an_answer_over_the_size_limit_is_not_downloaded_five_times() {
    let f = Fixture::new().await;
    let (sdk, id, before) = linked(&f).await;
    let requests = f.sb.admin().stats().fhir_requests;
    let mut queries = 0;
    let small = SyncOptions {
        max_response_bytes: 3_000,
        force_full: true,
        retry: chartlink_core::fhir::RetryPolicy {
            attempts: 5,
            base_delay: std::time::Duration::from_millis(1),
            max_delay: std::time::Duration::from_millis(2),
        },
        ..fast()
    };
    let report = sdk
        .sync_with(&id, &small, &mut |p| queries = p.queries_total)
        .await
        .unwrap();
    let too_large = report
        .failures
        .iter()
        .filter(|q| q.reason.contains("larger than"))
        .count();
    assert!(too_large > 0, "{:?}", report.failures);
    let made = f.sb.admin().stats().fhir_requests - requests;
    assert!(
        made <= (queries + 1) as u64 + report.documents_fetched as u64 * 2,
        "{made} requests for {queries} queries"
    );
    assert_eq!(
        record(&sdk, &id),
        before,
        "nothing removed by a failed pass"
    );
    f.sb.shutdown().await;
}

/// A secure store that fails its writes while `fail` is set (a Keychain error, a full disk).
struct FlakyStore {
    inner: chartlink_core::MemorySecureStore,
    fail: std::sync::atomic::AtomicBool,
}

impl chartlink_core::SecureStore for FlakyStore {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, chartlink_core::SecureStoreError> {
        self.inner.get(key)
    }
    fn put(&self, key: &str, value: &[u8]) -> Result<(), chartlink_core::SecureStoreError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(chartlink_core::SecureStoreError(
                "keychain unavailable".into(),
            ));
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

/// The secure store failing to save a renewed token is "needs attention", not revocation: the renewed tokens stay
/// in memory (the spent refresh token is never sent again), are saved once the store works, and a new SDK started
/// from the store then still has access.
#[tokio::test]
async fn a_secure_store_failure_during_a_refresh_is_not_revocation() {
    let f = Fixture::new().await;
    let flaky = std::sync::Arc::new(FlakyStore {
        inner: chartlink_core::MemorySecureStore::default(),
        fail: false.into(),
    });
    let host = |browser: bool| chartlink_core::Host {
        secure_store: flaky.clone(),
        browser: browser.then(|| {
            std::sync::Arc::new(common::RobotBrowser(Fixture::robot("maria")))
                as std::sync::Arc<dyn chartlink_core::AuthBrowser>
        }),
        clock: f.clock.clone(),
        listener: None,
    };
    let sdk =
        chartlink_core::ChartLink::new(config(RevocationPolicy::PurgeNow), host(true)).unwrap();
    let id = sdk.link(&f.sb.fhir_base()).await.unwrap().id;
    sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap();
    let before = record(&sdk, &id);
    flaky.fail.store(true, std::sync::atomic::Ordering::SeqCst);
    f.sb.admin().expire_access_tokens(None).unwrap();
    let err = sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap_err();
    assert!(matches!(err, Error::Storage(_)), "{err:?}");
    assert_eq!(status(&sdk, &id), AccountStatus::Active);
    assert_eq!(record(&sdk, &id), before);
    flaky.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    sdk.sync_with(&id, &fast(), &mut |_| {}).await.unwrap();
    // A fresh start reads the saved (rotated) refresh token: access continues, nothing was reused.
    drop(sdk);
    let again =
        chartlink_core::ChartLink::new(config(RevocationPolicy::PurgeNow), host(false)).unwrap();
    f.advance(2 * 3600 * 1000);
    assert!(again.access_token(&id).await.is_ok());
    assert_eq!(status(&again, &id), AccountStatus::Active);
    f.sb.shutdown().await;
}

/// A confidential app (private_key_jwt) on a device whose clock is minutes ahead still links and refreshes: the
/// client assertion is sent again timed by the server's clock.
#[tokio::test]
async fn a_confidential_client_with_a_wrong_clock_links_and_refreshes() {
    use chartlink_core::jose::{Signer, SoftwareSigner};
    let f = Fixture::new().await;
    let signer = std::sync::Arc::new(SoftwareSigner::generate().unwrap());
    f.sb.admin()
        .register_app(&chartlink_sandbox::App {
            client_id: "confidential-app".into(),
            name: "Confidential".into(),
            developer: "Tests".into(),
            redirect_uris: vec!["chartlink-demo://callback".into()],
            auth: chartlink_sandbox::ClientAuth::ConfidentialAsymmetric {
                jwks: json!({"keys": [signer.public_jwk()]}),
            },
            questionnaire: None,
            dynamic_registration: false,
            legacy_pkce_optional: false,
            bound_grant: None,
        })
        .unwrap();
    // The phone is 4 minutes ahead of the provider: an assertion's exp would be more than 5 minutes away.
    f.clock.advance_ms(240 * 1000);
    let sdk = f.sdk(
        chartlink_core::AppConfig {
            client_id: "confidential-app".into(),
            client_auth: chartlink_core::ClientAuth::PrivateKeyJwt(signer),
            ..config(RevocationPolicy::PurgeNow)
        },
        Some(Fixture::robot("ava")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    f.sb.admin().expire_access_tokens(None).unwrap();
    let report = sdk
        .sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(status(&sdk, &account.id), AccountStatus::Active);
    f.sb.shutdown().await;
}
