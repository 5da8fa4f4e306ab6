//! Linking against the sandbox EHR over loopback: the whole SMART standalone launch, proxy accounts, deny,
//! expired and replayed flows, refresh races, rotation and reuse detection, revocation from the app and from the
//! portal, dynamic registration with the jwt-bearer grant, private_key_jwt, and misbehaving servers.
//! Requirement ids (SMART App Launch 2.2 client requirements CSV) are cited where a test shows one.
#![allow(clippy::unwrap_used)]

mod common;

use common::RobotBrowser;
use std::sync::Arc;

use async_trait::async_trait;
use chartlink_core::jose::{Signer, SoftwareSigner};
use chartlink_core::{
    AccountStatus, AppConfig, AuthBrowser, BrowserError, ChartLink, ClientAuth, DataCategory,
    Error, Host, ManualClock, MemorySecureStore, SecureStore,
};
use chartlink_sandbox::{App, Config, PortalRobot, Sandbox};
use serde_json::{Value, json};

struct Cancelling;

#[async_trait]
impl AuthBrowser for Cancelling {
    async fn authorize(&self, _url: String, _redirect_uri: String) -> Result<String, BrowserError> {
        Err(BrowserError::Cancelled)
    }
}

struct Fixture {
    sb: Sandbox,
    store: Arc<MemorySecureStore>,
    clock: Arc<ManualClock>,
}

async fn fixture() -> Fixture {
    let sb = Sandbox::start(Config::default()).await.unwrap();
    Fixture {
        sb,
        store: Arc::new(MemorySecureStore::default()),
        clock: Arc::new(ManualClock::new()),
    }
}

fn config() -> AppConfig {
    AppConfig {
        client_id: "chartlink-demo".into(),
        redirect_uri: "chartlink-demo://callback".into(),
        wanted: DataCategory::ALL.to_vec(),
        client_auth: ClientAuth::Public,
        app_name: "ChartLink tests".into(),
        data_dir: None,
        // These tests jump the clock by hours; the idle lock has its own tests.
        lock: chartlink_core::LockConfig {
            timeout_ms: 365 * 24 * 3600 * 1000,
            warning_ms: None,
            background_grace_ms: 0,
        },
        revocation: chartlink_core::RevocationPolicy::PurgeNow,
    }
}

impl Fixture {
    fn sdk(&self, browser: Option<Arc<dyn AuthBrowser>>) -> ChartLink {
        self.sdk_with(config(), browser)
    }

    fn sdk_with(&self, config: AppConfig, browser: Option<Arc<dyn AuthBrowser>>) -> ChartLink {
        let host = Host {
            secure_store: self.store.clone(),
            browser,
            clock: self.clock.clone(),
            listener: None,
        };
        ChartLink::new(config, host).unwrap()
    }

    fn robot(user: &str, patient: Option<&str>) -> Option<Arc<dyn AuthBrowser>> {
        Some(Arc::new(RobotBrowser(PortalRobot::allowing(
            user,
            &format!("{user}-demo"),
            patient,
        ))))
    }

    /// Lets time pass on both sides (the SDK's clock and the sandbox's).
    fn advance(&self, ms: i64) {
        self.clock.advance_ms(ms);
        self.sb.admin().advance_clock(ms / 1000);
    }

    fn refreshes(&self) -> u64 {
        self.sb
            .admin()
            .stats()
            .token_requests
            .get("refresh_token")
            .copied()
            .unwrap_or(0)
    }
}

#[tokio::test]
async fn links_a_patients_own_record() {
    let f = fixture().await;
    let sdk = f.sdk(Fixture::robot("ava", None));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    assert_eq!(account.patient_id, "ava-thompson");
    assert!(
        account
            .fhir_user
            .as_deref()
            .unwrap()
            .ends_with("/Patient/ava-thompson"),
        "id_token verified, fhirUser recorded"
    );
    assert_eq!(account.user_subject.as_deref(), Some("ava"));
    // SMART client req. 202: fhirUser is a resource URL, and the app reads it (the signed-in user's name).
    assert_eq!(account.user_name.as_deref(), Some("Ava Thompson"));
    assert!(
        f.sb.admin()
            .request_log()
            .iter()
            .any(|r| r.path == "/fhir/Patient/ava-thompson"),
        "the fhirUser resource was read"
    );
    assert!(account.granted.offline_access);
    // v2 syntax (the sandbox advertises permission-v2) with category filters, never mixed with v1.
    assert!(
        account
            .granted
            .raw
            .contains("patient/Observation.rs?category=")
    );
    assert!(!account.granted.raw.contains(".read"));
    assert_eq!(account.status, AccountStatus::Active);
    // Tokens live only in the secure store; the account itself prints no secret.
    let printed = format!("{account:?}");
    let token = sdk.access_token(&account.id).await.unwrap();
    assert!(!printed.contains(token.expose()));
    assert_eq!(format!("{token:?}"), "[redacted]");
    assert_eq!(f.store.keys("chartlink/account/").unwrap().len(), 1);
    assert!(
        f.store.keys("chartlink/pending/").unwrap().is_empty(),
        "the pending flow is gone"
    );
    f.sb.shutdown().await;
}

#[tokio::test]
async fn a_parent_links_a_child_through_the_account_picker() {
    let f = fixture().await;
    let own = f
        .sdk(Fixture::robot("maria", Some("maria-garcia")))
        .link(&f.sb.fhir_base())
        .await
        .unwrap();
    let leo = f
        .sdk(Fixture::robot("maria", Some("leo-garcia")))
        .link(&f.sb.fhir_base())
        .await
        .unwrap();
    assert_eq!(leo.patient_id, "leo-garcia");
    assert!(
        leo.fhir_user
            .as_deref()
            .unwrap()
            .contains("/RelatedPerson/"),
        "a proxy is a RelatedPerson"
    );
    assert_eq!(
        own.user_subject, leo.user_subject,
        "both links belong to the same user"
    );
    assert_eq!(
        f.sdk(None).accounts().unwrap().len(),
        2,
        "accounts reload from the secure store"
    );
    f.sb.shutdown().await;
}

#[tokio::test]
async fn deny_and_cancel_are_typed_and_leave_nothing() {
    let f = fixture().await;
    let mut denying = PortalRobot::allowing("ava", "ava-demo", None);
    denying.allow = false;
    let err = f
        .sdk(Some(Arc::new(RobotBrowser(denying))))
        .link(&f.sb.fhir_base())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Authorization(f) if f.reason == chartlink_core::AuthorizationReason::Denied && f.message.contains("access_denied")),
        "{err:?}"
    );
    let err = f
        .sdk(Some(Arc::new(Cancelling)))
        .link(&f.sb.fhir_base())
        .await
        .unwrap_err();
    assert_eq!(err, Error::Cancelled);
    assert!(f.store.keys("chartlink/account/").unwrap().is_empty());
    assert!(f.store.keys("chartlink/pending/").unwrap().is_empty());
    f.sb.shutdown().await;
}

#[tokio::test]
async fn a_flow_survives_the_app_being_killed_and_is_used_once() {
    let f = fixture().await;
    // The app starts a link, then is killed while the browser is open.
    let req = f.sdk(None).begin_link(&f.sb.fhir_base()).await.unwrap();
    // SMART 2.2 client req. 2, 3: an unpredictable state of ≥ 128 bits on every request; PKCE S256 and aud.
    let params: Vec<(String, String)> = req.url.query_pairs().into_owned().collect();
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    // Client req. 2 and 40: unpredictable state, ≥ 122 bits: 32 random bytes, base64url, different every time.
    use base64::Engine;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(get("state"))
        .unwrap();
    assert_eq!(raw.len(), 32);
    let other = f.sdk(None).begin_link(&f.sb.fhir_base()).await.unwrap();
    let other_state = other
        .url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    assert_ne!(other_state, get("state"));
    assert_eq!(get("code_challenge_method"), "S256");
    assert_eq!(get("aud"), f.sb.fhir_base());
    let redirect = PortalRobot::allowing("ava", "ava-demo", None)
        .authorize(req.url.as_str())
        .await
        .unwrap();
    // A new process hands the deep link to a new SDK instance.
    let sdk = f.sdk(None);
    let account = sdk.complete_link(&redirect).await.unwrap();
    assert_eq!(account.patient_id, "ava-thompson");
    sdk.cancel_link().unwrap();
    // Client req. 4: the state of any redirect is validated; a replay finds no flow.
    let err = sdk.complete_link(&redirect).await.unwrap_err();
    assert!(
        matches!(&err, Error::Authorization(f) if f.reason == chartlink_core::AuthorizationReason::NoLinkInProgress && f.message.contains("no link in progress")),
        "{err:?}"
    );
    f.sb.shutdown().await;
}

#[tokio::test]
async fn state_mismatch_expiry_and_iss_are_checked() {
    let f = fixture().await;
    let sdk = f.sdk(None);
    let robot = PortalRobot::allowing("ava", "ava-demo", None);
    // A redirect whose state belongs to no flow while another flow is pending.
    let _pending = sdk.begin_link(&f.sb.fhir_base()).await.unwrap();
    let err = sdk
        .complete_link("chartlink-demo://callback?code=abc&state=forged")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Authorization(x) if x.reason == chartlink_core::AuthorizationReason::Mismatch && x.message.contains("state mismatch")),
        "{err:?}"
    );
    // A redirect from another server (RFC 9207 iss).
    let req = sdk.begin_link(&f.sb.fhir_base()).await.unwrap();
    let redirect = robot.authorize(req.url.as_str()).await.unwrap();
    let forged = redirect.replace(
        &urlencode(&f.sb.fhir_base()),
        &urlencode("https://evil.example/fhir"),
    );
    assert_ne!(forged, redirect);
    let err = sdk.complete_link(&forged).await.unwrap_err();
    assert!(
        matches!(&err, Error::Authorization(x) if x.reason == chartlink_core::AuthorizationReason::Mismatch && x.message.contains("iss")),
        "{err:?}"
    );
    // A flow that takes longer than 10 minutes.
    let req = sdk.begin_link(&f.sb.fhir_base()).await.unwrap();
    let redirect = robot.authorize(req.url.as_str()).await.unwrap();
    f.clock.advance_ms(11 * 60 * 1000);
    let err = sdk.complete_link(&redirect).await.unwrap_err();
    assert!(
        matches!(&err, Error::Authorization(x) if x.reason == chartlink_core::AuthorizationReason::Expired && x.message.contains("expired")),
        "{err:?}"
    );
    assert!(sdk.accounts().unwrap().is_empty());
    f.sb.shutdown().await;
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn a_hundred_concurrent_callers_share_one_refresh() {
    let f = fixture().await;
    let sdk = Arc::new(f.sdk(Fixture::robot("ava", None)));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let first = sdk.access_token(&account.id).await.unwrap();
    assert_eq!(f.refreshes(), 0, "a fresh token is used as it is");
    f.advance(3600 * 1000);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let sdk = sdk.clone();
            let id = account.id.clone();
            tokio::spawn(async move { sdk.access_token(&id).await })
        })
        .collect();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.unwrap().unwrap().expose().to_owned());
    }
    assert_eq!(
        f.refreshes(),
        1,
        "exactly one refresh request for 100 callers"
    );
    assert!(tokens.iter().all(|t| t == &tokens[0]));
    assert_ne!(tokens[0], first.expose());
    f.sb.shutdown().await;
}

fn stored_refresh_token(store: &MemorySecureStore) -> String {
    let key = store.keys("chartlink/account/").unwrap().remove(0);
    let v: Value = serde_json::from_slice(&store.get(&key).unwrap().unwrap()).unwrap();
    v["tokens"]["refresh"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn rotation_is_persisted_and_reuse_means_revoked() {
    let f = fixture().await;
    let sdk = f.sdk(Fixture::robot("ava", None));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let before = stored_refresh_token(&f.store);
    f.advance(3600 * 1000);
    sdk.access_token(&account.id).await.unwrap();
    let after = stored_refresh_token(&f.store);
    assert_ne!(before, after, "the rotated refresh token was persisted");
    // Someone replays the spent token (a stolen copy): the server revokes the whole grant.
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth2/token", f.sb.base_url()))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", before.as_str()),
            ("client_id", "chartlink-demo"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    f.advance(3600 * 1000);
    assert_eq!(
        sdk.access_token(&account.id).await.unwrap_err(),
        Error::AccessRevoked
    );
    assert_eq!(sdk.accounts().unwrap()[0].status, AccountStatus::Revoked);
    assert_eq!(
        sdk.access_token(&account.id).await.unwrap_err(),
        Error::AccessRevoked,
        "no further requests"
    );
    assert_eq!(f.refreshes(), 3);
    f.sb.shutdown().await;
}

#[tokio::test]
async fn network_trouble_is_transient_not_revocation() {
    let f = fixture().await;
    let sdk = f.sdk(Fixture::robot("ava", None));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let base = f.sb.fhir_base();
    f.sb.shutdown().await;
    f.clock.advance_ms(3600 * 1000);
    let err = sdk.access_token(&account.id).await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert_eq!(sdk.accounts().unwrap()[0].status, AccountStatus::Active);
    let _ = base;
}

#[tokio::test]
async fn removing_access_on_the_portal_is_seen_as_revoked() {
    let f = fixture().await;
    let sdk = f.sdk(Fixture::robot("maria", Some("sofia-garcia")));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let grant = f.sb.admin().grants().unwrap()[0].id.clone();
    f.sb.admin().revoke_grant(&grant).unwrap();
    f.advance(3600 * 1000);
    assert_eq!(
        sdk.access_token(&account.id).await.unwrap_err(),
        Error::AccessRevoked
    );
    f.sb.shutdown().await;
}

#[tokio::test]
async fn unlink_revokes_at_the_provider_and_forgets_everything() {
    let f = fixture().await;
    let sdk = f.sdk(Fixture::robot("ava", None));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let token = sdk.access_token(&account.id).await.unwrap();
    let outcome = sdk.unlink(&account.id).await.unwrap();
    eprintln!("{outcome:?}");
    assert!(outcome.revoked_at_provider);
    assert!(f.store.keys("chartlink/account/").unwrap().is_empty());
    assert!(f.store.keys("chartlink/pending/").unwrap().is_empty());
    assert!(sdk.accounts().unwrap().is_empty());
    assert!(f.sb.admin().grants().unwrap()[0].revoked_at.is_some());
    let status = reqwest::Client::new()
        .get(format!("{}/Patient/ava-thompson", f.sb.fhir_base()))
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
    assert!(matches!(
        sdk.access_token(&account.id).await.unwrap_err(),
        Error::InvalidInput(_)
    ));
    f.sb.shutdown().await;
}

#[tokio::test]
async fn a_registered_device_keeps_access_with_the_jwt_bearer_grant() {
    let f = fixture().await;
    let sdk = f.sdk(Fixture::robot("daniel", Some("wei-chen")));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let device = sdk.register_device(&account.id).await.unwrap();
    assert!(device.starts_with("device-"));
    f.advance(3600 * 1000);
    let token = sdk.access_token(&account.id).await.unwrap();
    let stats = f.sb.admin().stats();
    assert_eq!(
        stats
            .token_requests
            .get("urn:ietf:params:oauth:grant-type:jwt-bearer"),
        Some(&1)
    );
    assert_eq!(stats.token_requests.get("refresh_token"), None);
    let status = reqwest::Client::new()
        .get(format!("{}/Patient/wei-chen", f.sb.fhir_base()))
        .bearer_auth(token.expose())
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    // When the proxy authorization ends, the device's assertion is refused: revoked.
    f.sb.admin().end_proxy("daniel-chen", "wei-chen").unwrap();
    f.advance(3600 * 1000);
    assert_eq!(
        sdk.access_token(&account.id).await.unwrap_err(),
        Error::AccessRevoked
    );
    f.sb.shutdown().await;
}

#[tokio::test]
async fn a_confidential_client_uses_private_key_jwt() {
    let f = fixture().await;
    let signer = Arc::new(SoftwareSigner::generate().unwrap());
    f.sb.admin()
        .register_app(&App {
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
    let cfg = AppConfig {
        client_id: "confidential-app".into(),
        client_auth: ClientAuth::PrivateKeyJwt(signer),
        ..config()
    };
    let sdk = f.sdk_with(cfg, Fixture::robot("ava", None));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    f.advance(3600 * 1000);
    sdk.access_token(&account.id).await.unwrap();
    assert_eq!(f.refreshes(), 1);
    assert!(sdk.unlink(&account.id).await.unwrap().revoked_at_provider);
    f.sb.shutdown().await;
}
