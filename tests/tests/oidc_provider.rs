//! ChartLink against an authorization server nobody here wrote (issue 15): npm's `oidc-provider` (panva, OpenID
//! Certified; tests/oidc/server.mjs) in front of the sandbox's FHIR API, which takes its JWT access tokens verified
//! with its JWKS (`chartlink_sandbox::ExternalAuth`). The real ChartLink core links with PKCE through a real headless
//! Chromium on oidc-provider's own login and consent pages (devInteractions), then syncs.
//!
//! Two forms of the server (see server.mjs): `plain` (oidc-provider's defaults: `offline_access` dropped without
//! `prompt=consent`, SMART scopes unknown except whole-type v2 resource scopes, no revocation endpoint) and `smart`
//! (SMART scopes, refresh tokens, RFC 7009 revocation, 30-second tokens for client `chartlink-short`).
//!
//! Five tests (prompt=consent, dropped granular scopes, 30-second tokens, RFC 7009 with JWT access tokens, no
//! `issuer`) fail on the client before issue 15's work: each failed for exactly the reason the issue gives.
//!
//! The tests read the refresh token from the host's secure store (the host owns it) to replay it at the provider
//! themselves; no assertion prints a token. oidc-provider's own output (its start-up warnings) goes to
//! `target/test-artifacts/oidc-provider-*.log`.
//!
//! Cost: `npm ci` of tests/oidc (oidc-provider and fhirclient, about 30 MB) once per machine; the suite takes about
//! 25 s for all ten on two cores, mostly Chromium and the sandbox's demo data starting in each test.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chartlink_core::{
    AccountStatus, AppConfig, ChartLink, Error, Event, EventListener, Host, LinkedAccount,
    ManualClock, MemorySecureStore, SecureStore,
};
use chartlink_sandbox::{Config, ExternalAuth, Sandbox, SandboxError};
use chartlink_tests::{HeadlessChromium, LoopbackRedirect, query_param, submit, workspace_root};
use fantoccini::{Client, Locator};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const PATIENT: &str = "maria-garcia";

/// How many of these tests run at once in one test process: each starts node, a sandbox, chromedriver and
/// Chromium, and on two shared cores more at once only makes each slower (and a start-up timeout likelier).
static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
static STARTED: AtomicUsize = AtomicUsize::new(0);

/// A running `node tests/oidc/server.mjs`, with the events it printed; killed on drop (it also exits when its
/// stdin closes, should this process die first).
struct OidcProvider {
    issuer: String,
    scopes_supported: Vec<String>,
    events: Arc<Mutex<Vec<Value>>>,
    _child: Child,
    _slot: tokio::sync::SemaphorePermit<'static>,
}

impl OidcProvider {
    async fn start(form: &str, fhir_base: &str) -> Self {
        let slot = SLOTS.acquire().await.unwrap();
        let dir = workspace_root().join("tests/oidc");
        assert!(
            dir.join("node_modules/oidc-provider/package.json")
                .is_file(),
            "oidc-provider is not installed in {} — run `cargo xtask tools` (it runs `npm ci` there)",
            dir.display()
        );
        let log = chartlink_tests::artifacts_dir().join(format!(
            "oidc-provider-{form}-{}-{}.log",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::SeqCst)
        ));
        let mut child =
            Command::new(std::env::var_os("CHARTLINK_NODE").unwrap_or_else(|| "node".into()))
                .arg(dir.join("server.mjs"))
                .args([form, fhir_base])
                .current_dir(&dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(
                    std::fs::File::create(&log)
                        .map(Stdio::from)
                        .unwrap_or_else(|_| Stdio::null()),
                )
                .kill_on_drop(true)
                .spawn()
                .expect("node starts (node is a prerequisite: see the README)");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("oidc-provider ready within 60 s")
            .unwrap()
            .unwrap_or_else(|| panic!("oidc-provider exited; see {}", log.display()));
        let ready: Value = serde_json::from_str(&ready).unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        Self {
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            scopes_supported: ready["scopes_supported"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect(),
            events,
            _child: child,
            _slot: slot,
        }
    }

    /// Successful token requests of this grant type so far.
    fn grants(&self, grant_type: &str) -> usize {
        self.count(|e| e["event"] == "grant.success" && e["grant_type"] == grant_type)
    }

    fn count(&self, pred: impl Fn(&Value) -> bool) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| pred(e))
            .count()
    }

    /// A refresh-token grant sent by the test itself: the error code, or `None` when the provider accepted it.
    async fn refresh_error(&self, client_id: &str, refresh_token: &str) -> Option<String> {
        let resp = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", client_id),
            ])
            .send()
            .await
            .unwrap();
        if resp.status().is_success() {
            return None;
        }
        let body: Value = resp.json().await.unwrap_or_default();
        Some(body["error"].as_str().unwrap_or("?").to_owned())
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl EventListener for Events {
    fn on_event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

/// oidc-provider, the sandbox's FHIR API behind it, and a ChartLink (public client `client_id`, a manual clock)
/// with a headless Chromium.
struct Rig {
    op: OidcProvider,
    sb: Sandbox,
    sdk: ChartLink,
    clock: Arc<ManualClock>,
    store: Arc<MemorySecureStore>,
    events: Arc<Events>,
    _chromium: HeadlessChromium,
    browser: Client,
}

/// oidc-provider in `form` and the sandbox's FHIR API behind it.
async fn servers(form: &str, tweak: impl Fn(&mut ExternalAuth)) -> (OidcProvider, Sandbox) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The FHIR base must be known to the provider (its resource server) before the sandbox, which reads the
    // provider's metadata at start, listens: a free port is chosen first (and again, should another process take
    // it meanwhile).
    for _ in 0..3 {
        let port = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let fhir_base = format!("http://{addr}/fhir");
        let op = OidcProvider::start(form, &fhir_base).await;
        let mut auth = ExternalAuth::new(&op.issuer);
        auth.scopes_supported = Some(op.scopes_supported.clone());
        tweak(&mut auth);
        let config = Config {
            addr,
            external_auth: Some(auth),
            ..Config::default()
        };
        match Sandbox::start(config).await {
            Ok(sb) => {
                assert_eq!(sb.fhir_base(), fhir_base);
                return (op, sb);
            }
            Err(SandboxError::Bind { .. }) => continue,
            Err(e) => panic!("the sandbox did not start: {e}"),
        }
    }
    panic!("no free port for the sandbox in three tries");
}

async fn rig(form: &str, client_id: &str, tweak: impl Fn(&mut ExternalAuth)) -> Rig {
    let (op, sb) = servers(form, tweak).await;
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(MemorySecureStore::default());
    let events = Arc::new(Events::default());
    let host = Host {
        listener: Some(events.clone()),
        clock: clock.clone(),
        ..Host::new(store.clone())
    };
    let sdk = ChartLink::new(AppConfig::new(client_id, "http://127.0.0.1/callback"), host).unwrap();
    let chromium = HeadlessChromium::start().await;
    let browser = chromium.session().await;
    Rig {
        op,
        sb,
        sdk,
        clock,
        store,
        events,
        _chromium: chromium,
        browser,
    }
}

impl Rig {
    /// Links through oidc-provider's own pages: ChartLink's authorization URL in Chromium, the devInteractions
    /// login form (any login; the login is the patient), its consent page, the loopback redirect.
    async fn link(&self, login: &str) -> Result<LinkedAccount, Error> {
        let app = LoopbackRedirect::listen().await;
        let req = self
            .sdk
            .begin_link_with_redirect(&self.sb.fhir_base(), &app.redirect_uri())
            .await?;
        assert!(
            req.url.as_str().starts_with(&self.op.issuer),
            "the provider's authorization endpoint"
        );
        assert_eq!(
            query_param(req.url.as_str(), "code_challenge_method").as_deref(),
            Some("S256")
        );
        let c = &self.browser;
        c.goto(req.url.as_str()).await.unwrap();
        c.wait()
            .for_element(Locator::Css("input[name=login]"))
            .await
            .unwrap();
        c.find(Locator::Css("input[name=login]"))
            .await
            .unwrap()
            .send_keys(login)
            .await
            .unwrap();
        c.find(Locator::Css("input[name=password]"))
            .await
            .unwrap()
            .send_keys("any-password")
            .await
            .unwrap();
        submit(c, "button[type=submit]").await;
        // The consent page ("Continue"), unless the provider skips it.
        if c.find(Locator::Css("input[name=prompt][value=consent]"))
            .await
            .is_ok()
        {
            submit(c, "button[type=submit]").await;
        }
        let redirect = app.wait().await;
        self.sdk.complete_link(&redirect).await
    }

    /// Lets `ms` pass on ChartLink's clock; the idle lock that fires meanwhile is unlocked, as a returning user does.
    fn later(&self, ms: i64) {
        self.clock.advance_ms(ms);
        self.sdk.tick();
        self.sdk.unlock().unwrap();
    }

    /// The tokens ChartLink keeps for `account_id` in the host's secure store (the host's own data).
    fn stored_tokens(&self, account_id: &str) -> Value {
        let bytes = self
            .store
            .get(&format!("chartlink/account/{account_id}"))
            .unwrap()
            .expect("the account's secure-store entry");
        serde_json::from_slice::<Value>(&bytes).unwrap()["tokens"].clone()
    }

    fn refresh_token(&self, account_id: &str) -> Option<String> {
        self.stored_tokens(account_id)["refresh"]
            .as_str()
            .map(str::to_owned)
    }

    async fn shutdown(self) {
        let _ = self.browser.close().await;
        self.sb.shutdown().await;
    }
}

/// The claims of a JWT, unverified (the test only reads what the provider put in its own token).
fn jwt_claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

async fn get_json(url: &str) -> Value {
    let resp = reqwest::get(url).await.unwrap();
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.json().await.unwrap()
}

/// The SMART configuration of the FHIR base names oidc-provider's endpoints (from its OpenID discovery), and so
/// does the CapabilityStatement's legacy oauth-uris extension; without `advertise_issuer`, no issuer, jwks_uri or
/// `sso-openid-connect`.
#[tokio::test]
async fn the_smart_configuration_names_the_providers_endpoints() {
    let (op, sb) = servers("smart", |_| {}).await;
    let smart = get_json(&format!(
        "{}/.well-known/smart-configuration",
        sb.fhir_base()
    ))
    .await;
    assert_eq!(smart["issuer"], op.issuer.as_str());
    assert_eq!(smart["jwks_uri"], format!("{}/jwks", op.issuer));
    assert_eq!(
        smart["authorization_endpoint"],
        format!("{}/auth", op.issuer)
    );
    assert_eq!(smart["token_endpoint"], format!("{}/token", op.issuer));
    assert_eq!(
        smart["revocation_endpoint"],
        format!("{}/token/revocation", op.issuer)
    );
    assert_eq!(
        smart["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        smart["authorization_response_iss_parameter_supported"],
        true
    );
    assert!(
        smart["capabilities"]
            .as_array()
            .unwrap()
            .contains(&"sso-openid-connect".into())
    );
    assert!(smart["scopes_supported"].as_array().unwrap().contains(
        &"patient/Observation.rs?category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory".into()
    ));
    let metadata = get_json(&format!("{}/metadata", sb.fhir_base())).await;
    let uris = &metadata["rest"][0]["security"]["extension"][0]["extension"];
    assert!(
        uris.as_array()
            .unwrap()
            .iter()
            .any(|u| u["url"] == "token" && u["valueUri"] == format!("{}/token", op.issuer))
    );
    sb.shutdown().await;
    drop(op);

    let (op, sb) = servers("plain", |auth| auth.advertise_issuer = false).await;
    let smart = get_json(&format!(
        "{}/.well-known/smart-configuration",
        sb.fhir_base()
    ))
    .await;
    assert!(smart["issuer"].is_null() && smart["jwks_uri"].is_null());
    assert!(
        smart["revocation_endpoint"].is_null(),
        "plain oidc-provider revokes nothing"
    );
    assert!(
        !smart["capabilities"]
            .as_array()
            .unwrap()
            .contains(&"sso-openid-connect".into())
    );
    assert_eq!(smart["token_endpoint"], format!("{}/token", op.issuer));
    sb.shutdown().await;
}

/// (a) The plain default oidc-provider: PKCE link on its own pages, a JWT access token for the FHIR API naming the
/// patient, a sync, and an unlink that truthfully reports no revocation (this form has no revocation endpoint).
#[tokio::test]
async fn plain_oidc_provider_links_with_pkce_and_syncs() {
    let rig = rig("plain", "chartlink", |_| {}).await;
    let account = rig.link(PATIENT).await.unwrap();
    assert_eq!(account.patient_id, PATIENT);
    assert_eq!(
        account.server.authorization_endpoint.as_str(),
        format!("{}/auth", rig.op.issuer)
    );
    assert_eq!(account.server.revocation_endpoint, None);
    let claims = jwt_claims(rig.sdk.access_token(&account.id).await.unwrap().expose());
    assert_eq!(claims["iss"], rig.op.issuer.as_str());
    assert_eq!(claims["aud"], rig.sb.fhir_base().as_str());
    assert_eq!(claims["patient"], PATIENT);
    assert_eq!(rig.op.grants("authorization_code"), 1);

    let report = rig.sdk.sync(&account.id).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    rig.sdk.switch_patient(&account.id).unwrap();
    assert!(!rig.sdk.problems().unwrap().is_empty());
    assert!(!rig.sdk.allergies().unwrap().is_empty());
    assert!(!rig.sdk.immunizations().unwrap().is_empty());
    assert_eq!(
        rig.sdk.demographics().unwrap().map(|d| d.id),
        Some(PATIENT.to_owned())
    );

    let outcome = rig.sdk.unlink(&account.id).await.unwrap();
    assert!(
        !outcome.revoked_at_provider,
        "no revocation endpoint: nothing was confirmed"
    );
    assert!(rig.sdk.accounts().unwrap().is_empty());
    rig.shutdown().await;
}

/// (b) A provider that never issues a refresh token (the client is not allowed the refresh_token grant): once the
/// access token has expired, the server refuses it and the account says RelinkNeeded; the record stays.
#[tokio::test]
async fn without_a_refresh_token_the_account_asks_to_relink_and_keeps_the_record() {
    let rig = rig("plain", "chartlink-norefresh", |_| {}).await;
    let account = rig.link(PATIENT).await.unwrap();
    assert!(
        rig.refresh_token(&account.id).is_none(),
        "this provider issued none"
    );
    rig.sdk.sync(&account.id).await.unwrap();
    let stored = rig.sdk.store().counts(&account.id).unwrap();
    assert!(!stored.is_empty());

    // Two hours later (the plain provider's tokens live one hour): both clocks move, the FHIR API refuses the token.
    rig.later(2 * 3600 * 1000);
    rig.sb.admin().advance_clock(2 * 3600);
    assert_eq!(
        rig.sdk.sync(&account.id).await.unwrap_err(),
        Error::RelinkNeeded
    );
    assert_eq!(
        rig.sdk.accounts().unwrap()[0].status,
        AccountStatus::RelinkNeeded
    );
    assert!(
        rig.events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::RelinkNeeded { account_id } if *account_id == account.id))
    );
    assert_eq!(
        rig.sdk.store().counts(&account.id).unwrap(),
        stored,
        "the record is intact"
    );
    rig.sdk.switch_patient(&account.id).unwrap();
    assert!(!rig.sdk.problems().unwrap().is_empty());
    assert_eq!(rig.op.grants("refresh_token"), 0);
    rig.shutdown().await;
}

/// (b) Plain OpenID Connect drops `offline_access` unless the request carries `prompt=consent` (OIDC Core §11):
/// ChartLink asks with it, so the plain provider issues a refresh token and the account renews itself.
#[tokio::test]
async fn plain_oidc_issues_a_refresh_token_because_chartlink_asks_with_prompt_consent() {
    let rig = rig("plain", "chartlink", |_| {}).await;
    let account = rig.link(PATIENT).await.unwrap();
    assert!(
        rig.refresh_token(&account.id).is_some(),
        "offline_access was granted"
    );
    rig.sdk.sync(&account.id).await.unwrap();
    rig.later(2 * 3600 * 1000);
    let report = rig.sdk.sync(&account.id).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(rig.op.grants("refresh_token"), 1, "renewed itself once");
    assert_eq!(rig.sdk.accounts().unwrap()[0].status, AccountStatus::Active);
    rig.shutdown().await;
}

/// (c) The plain provider knows whole-type scopes only and drops `patient/Observation.rs?category=…` from the
/// grant. Its scopes_supported lists `patient/Observation.rs`, which covers labs and vital signs: ChartLink asks
/// for (or falls back to) that, and the labs arrive instead of silently being none.
#[tokio::test]
async fn granular_scopes_the_server_drops_fall_back_to_whole_observations() {
    let rig = rig("plain", "chartlink", |_| {}).await;
    let account = rig.link(PATIENT).await.unwrap();
    let report = rig.sdk.sync(&account.id).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    rig.sdk.switch_patient(&account.id).unwrap();
    assert!(!rig.sdk.lab_results().unwrap().is_empty(), "labs arrive");
    assert!(
        !rig.sdk.vital_signs().unwrap().is_empty(),
        "vital signs arrive"
    );
    rig.shutdown().await;
}

/// (d) 30-second access tokens: a sync makes no refresh storm (at most one refresh while the token is fresh), and
/// once the token has expired the next sync renews it exactly once for all its concurrent requests.
#[tokio::test]
async fn thirty_second_tokens_cause_no_refresh_storm() {
    let rig = rig("smart", "chartlink-short", |_| {}).await;
    let account = rig.link(PATIENT).await.unwrap();
    let report = rig.sdk.sync(&account.id).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert!(
        rig.op.grants("refresh_token") <= 1,
        "{} refreshes in one sync",
        rig.op.grants("refresh_token")
    );

    let before = rig.op.grants("refresh_token");
    rig.later(31_000);
    let report = rig.sdk.sync(&account.id).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        rig.op.grants("refresh_token") - before,
        1,
        "one refresh per expiry"
    );
    rig.shutdown().await;
}

/// (e) Refresh-token rotation, and (f) revocation at unlink: every refresh returns a new refresh token that
/// ChartLink keeps; the spent ones are refused; unlinking revokes the grant at the provider (RFC 7009), so the
/// last refresh token is refused too.
#[tokio::test]
async fn refresh_tokens_rotate_and_unlink_revokes_the_grant() {
    let rig = rig("smart", "chartlink", |_| {}).await;
    let account = rig.link(PATIENT).await.unwrap();
    assert!(account.server.revocation_endpoint.is_some());
    let mut spent = Vec::new();
    let mut current = rig.refresh_token(&account.id).expect("a refresh token");
    for round in 1..=2 {
        // The provider's tokens live 5 minutes.
        rig.later(301_000);
        let report = rig.sdk.sync(&account.id).await.unwrap();
        assert!(report.failures.is_empty(), "{:?}", report.failures);
        assert_eq!(
            rig.op.grants("refresh_token"),
            round,
            "one refresh per expiry"
        );
        let next = rig.refresh_token(&account.id).unwrap();
        // Compared without printing either token.
        assert!(next != current, "rotated");
        spent.push(std::mem::replace(&mut current, next));
    }
    let claims = jwt_claims(rig.sdk.access_token(&account.id).await.unwrap().expose());
    assert_eq!(claims["patient"], PATIENT);

    assert_eq!(rig.op.count(|e| e["event"] == "grant.revoked"), 0);
    rig.sdk.unlink(&account.id).await.unwrap();
    assert_eq!(
        rig.op.count(|e| e["event"] == "grant.revoked"),
        1,
        "RFC 7009 at the provider"
    );
    assert!(rig.sdk.accounts().unwrap().is_empty());
    assert_eq!(
        rig.op.refresh_error("chartlink", &current).await.as_deref(),
        Some("invalid_grant"),
        "the grant was revoked at unlink"
    );
    for token in &spent {
        assert_eq!(
            rig.op.refresh_error("chartlink", token).await.as_deref(),
            Some("invalid_grant")
        );
    }
    rig.shutdown().await;
}

/// (f) oidc-provider cannot revoke its JWT access tokens and answers `400 unsupported_token_type` for them (a
/// normal RFC 7009 §2.2.1 answer) after revoking the refresh token, which ended the grant: the unlink reports the
/// revocation as done.
#[tokio::test]
async fn unlink_reports_the_revocation_although_jwt_access_tokens_are_unsupported() {
    let rig = rig("smart", "chartlink", |_| {}).await;
    let account = rig.link(PATIENT).await.unwrap();
    let refresh = rig.refresh_token(&account.id).unwrap();
    let outcome = rig.sdk.unlink(&account.id).await.unwrap();
    assert_eq!(
        rig.op.refresh_error("chartlink", &refresh).await.as_deref(),
        Some("invalid_grant")
    );
    assert!(
        outcome.revoked_at_provider,
        "the grant ended at the provider"
    );
    rig.shutdown().await;
}

/// (g) A SMART configuration without `issuer` (nor `jwks_uri` nor `sso-openid-connect`, which SMART allows): the
/// provider's redirect carries its own `iss` (RFC 9207) and its id_token is signed with keys its OpenID discovery
/// names. ChartLink links without a false "iss mismatch" and syncs.
#[tokio::test]
async fn a_smart_configuration_without_issuer_still_links() {
    let rig = rig("smart", "chartlink", |auth| auth.advertise_issuer = false).await;
    let account = rig.link(PATIENT).await.unwrap();
    assert_eq!(account.patient_id, PATIENT);
    let report = rig.sdk.sync(&account.id).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    rig.shutdown().await;
}

/// The FHIR API behind oidc-provider refuses what a resource server must refuse (RFC 9068 §4): no token, and a
/// token whose claims were changed after the provider signed it.
#[tokio::test]
async fn the_fhir_api_refuses_tokens_the_provider_did_not_issue_for_it() {
    let rig = rig("smart", "chartlink", |_| {}).await;
    let account = rig.link(PATIENT).await.unwrap();
    let token = rig.sdk.access_token(&account.id).await.unwrap();
    let url = format!("{}/Patient/{PATIENT}", rig.sb.fhir_base());
    let get = |bearer: Option<String>| {
        let url = url.clone();
        async move {
            let mut req = reqwest::Client::new().get(url);
            if let Some(b) = bearer {
                req = req.bearer_auth(b);
            }
            req.send().await.unwrap().status().as_u16()
        }
    };
    assert_eq!(get(Some(token.expose().to_owned())).await, 200);
    assert_eq!(get(None).await, 401);
    let mut parts: Vec<String> = token.expose().split('.').map(str::to_owned).collect();
    let mut claims = jwt_claims(token.expose());
    claims["patient"] = "leo-garcia".into();
    parts[1] = B64.encode(claims.to_string());
    assert_eq!(get(Some(parts.join("."))).await, 401, "a forged claim");
    rig.shutdown().await;
}
