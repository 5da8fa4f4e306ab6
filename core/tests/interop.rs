//! Issue 15: how ChartLink copes with conformant servers that differ from the sandbox's defaults. Each test switches
//! on one server variation ([`chartlink_sandbox::Quirks`]) and links through the real sandbox over loopback HTTP.
//! Every test here failed on main before issue 15 (the reason is given in each test's doc comment).
//! Requirement ids are those of the SMART App Launch 2.2 client requirements CSV ("client req. N").
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use chartlink_core::jose::{RsaSigner, Signer};
use chartlink_core::{
    AccountStatus, AppConfig, ClientAuth, Consent, DataCategory, Error, Event, LinkedAccount,
    Revocation, RevocationPolicy,
};
use chartlink_sandbox::{App, Config, Quirks};
use common::{Fixture, config, fast};
use serde_json::json;

fn consent_of(account: &LinkedAccount, category: DataCategory) -> Consent {
    account
        .consent
        .iter()
        .find(|c| c.category == category)
        .map(|c| c.consent)
        .unwrap_or_else(|| {
            panic!(
                "no consent recorded for {category:?}: {:?}",
                account.consent
            )
        })
}

fn quirks(f: &Fixture, q: Quirks) {
    f.sb.admin().set_quirks(q);
}

fn observations(sdk: &chartlink_core::ChartLink, account: &str) -> usize {
    sdk.resources(account, "Observation").unwrap().len()
}

/// A server that lists its scopes without any category-restricted one, and drops such scopes from grants: the
/// client asks for `patient/Observation.rs` instead (client req. 147). Main asked for
/// `patient/Observation.rs?category=…` regardless, the grant came back without Observations, and labs synced as 0
/// with no failure reported.
#[tokio::test]
async fn a_server_without_granular_scopes_is_asked_for_whole_types() {
    let f = Fixture::new().await;
    quirks(
        &f,
        Quirks {
            drop_granular_scopes: true,
            ..Quirks::default()
        },
    );
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("ava")),
    );
    let req = sdk.begin_link(&f.sb.fhir_base()).await.unwrap();
    let scope: String = req
        .url
        .query_pairs()
        .find(|(k, _)| k == "scope")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    assert!(
        scope.split(' ').any(|s| s == "patient/Observation.rs"),
        "{scope}"
    );
    assert!(!scope.contains("?category="), "{scope}");
    sdk.cancel_link().unwrap();

    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    for c in [
        DataCategory::LabResults,
        DataCategory::VitalSigns,
        DataCategory::SocialHistory,
    ] {
        assert_eq!(consent_of(&account, c), Consent::Granted, "{c:?}");
    }
    sdk.sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    assert!(
        observations(&sdk, &account.id) > 0,
        "labs and vitals are synced"
    );
    f.sb.shutdown().await;
}

/// A server that grants the whole type for category-restricted scopes: the categories asked for are covered by the
/// broader grant (`Covered`, not `NotGranted`), and their data syncs. Main recorded no consent at all.
#[tokio::test]
async fn a_broader_grant_covers_what_was_asked() {
    let f = Fixture::new().await;
    quirks(
        &f,
        Quirks {
            widen_granular_scopes: true,
            ..Quirks::default()
        },
    );
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("ava")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    assert!(
        account
            .granted
            .raw
            .split(' ')
            .any(|s| s == "patient/Observation.rs")
    );
    assert_eq!(
        consent_of(&account, DataCategory::LabResults),
        Consent::Covered
    );
    assert_eq!(
        consent_of(&account, DataCategory::VitalSigns),
        Consent::Covered
    );
    assert_eq!(
        consent_of(&account, DataCategory::Allergies),
        Consent::Granted
    );
    assert!(account.not_granted().is_empty());
    assert!(
        !f.events.saw(|e| matches!(e, Event::LinkLimited { .. })),
        "nothing to report"
    );
    f.sb.shutdown().await;
}

/// What the patient did not share is reported per category at link time, with an event (client req. 147), instead
/// of a link that looks complete and a sync with "0 failures".
#[tokio::test]
async fn categories_not_granted_are_reported_to_the_host() {
    let f = Fixture::new().await;
    let mut robot = Fixture::robot("ava");
    robot.untick = vec!["Lab results".into(), "Immunizations".into()];
    let sdk = f.sdk(config(RevocationPolicy::PurgeNow), Some(robot));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    assert_eq!(
        consent_of(&account, DataCategory::Immunizations),
        Consent::NotGranted
    );
    // Labs are Observations (unticked) and DiagnosticReports (still granted): in part.
    assert_eq!(
        consent_of(&account, DataCategory::LabResults),
        Consent::Partial
    );
    assert_eq!(
        consent_of(&account, DataCategory::Allergies),
        Consent::Granted
    );
    let reported: Vec<DataCategory> = account.not_granted().iter().map(|c| c.category).collect();
    assert!(
        reported.contains(&DataCategory::Immunizations)
            && reported.contains(&DataCategory::LabResults)
    );
    assert!(f.events.saw(|e| matches!(e, Event::LinkLimited { account_id, not_granted, can_renew: true }
        if account_id == &account.id && not_granted.iter().any(|c| c.category == DataCategory::Immunizations))));
    f.sb.shutdown().await;
}

/// OpenID Connect Core §11: an OpenID provider issues a refresh token for `offline_access` only when the request
/// carries `prompt=consent` (client req. 216). Main never sent it: no refresh token, and the link needed relinking
/// an hour later.
#[tokio::test]
async fn offline_access_at_an_openid_provider_asks_for_consent() {
    let f = Fixture::new().await;
    quirks(
        &f,
        Quirks {
            offline_needs_prompt_consent: true,
            ..Quirks::default()
        },
    );
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("ava")),
    );
    let req = sdk.begin_link(&f.sb.fhir_base()).await.unwrap();
    assert!(
        req.url
            .query_pairs()
            .any(|(k, v)| k == "prompt" && v == "consent")
    );
    sdk.cancel_link().unwrap();
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    assert!(account.can_renew, "a refresh token was issued");
    f.advance(2 * 3600 * 1000);
    sdk.access_token(&account.id).await.unwrap();
    assert_eq!(f.token_requests("refresh_token"), 1);
    assert!(!f.events.saw(|e| matches!(e, Event::LinkLimited { .. })));
    f.sb.shutdown().await;
}

/// A grant without a refresh token is known at link time: `can_renew` is false and the host gets
/// `LinkLimited { can_renew: false }` (main said nothing until the token expired).
#[tokio::test]
async fn a_link_that_cannot_renew_itself_says_so() {
    let f = Fixture::new().await;
    f.sb.admin().set_refresh_tokens(false);
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("ava")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    assert!(!account.can_renew);
    assert!(
        f.events
            .saw(|e| matches!(e, Event::LinkLimited { can_renew: false, account_id, .. } if account_id == &account.id))
    );
    assert!(!sdk.accounts().unwrap()[0].can_renew, "persisted");
    f.sb.shutdown().await;
}

/// Tokens that live 60 s or 30 s: renewed once per expiry, not before every request (main's fixed 60 s margin
/// refreshed before each of the sync's requests), and one refresh is shared by the sync's concurrent queries.
/// Counted in the sandbox's request log.
#[tokio::test]
async fn short_lived_tokens_are_refreshed_once_per_expiry() {
    for lifetime in [60_i64, 30] {
        let f = Fixture::with_config(Config {
            token_lifetime: lifetime,
            ..Config::default()
        })
        .await;
        let sdk = f.sdk(
            config(RevocationPolicy::PurgeNow),
            Some(Fixture::robot("ava")),
        );
        let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
        let token_calls = || {
            f.sb.admin()
                .request_log()
                .iter()
                .filter(|r| r.path == "/oauth2/token")
                .count()
        };
        f.sb.admin().clear_request_log();
        sdk.sync_with(&account.id, &fast(), &mut |_| {})
            .await
            .unwrap();
        let fhir_requests =
            f.sb.admin()
                .request_log()
                .iter()
                .filter(|r| r.path.starts_with("/fhir/"))
                .count();
        assert!(fhir_requests > 10, "{fhir_requests}");
        assert_eq!(
            token_calls(),
            0,
            "{lifetime} s: a fresh token is not renewed"
        );
        // Close to expiry (within a tenth of the lifetime): one refresh, shared by the concurrent queries.
        f.advance((lifetime - lifetime / 20) * 1000);
        f.sb.admin().clear_request_log();
        sdk.sync_with(&account.id, &fast(), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(token_calls(), 1, "{lifetime} s: one refresh per expiry");
        assert_eq!(f.token_requests("refresh_token"), 1);
        f.sb.shutdown().await;
    }
}

/// An authorization server that is its own issuer and is not named in the SMART configuration (no `issuer`, no
/// `jwks_uri`: allowed without `sso-openid-connect`), as an OpenID provider in front of a FHIR server is. Main
/// refused every redirect ("iss mismatch", it compared `iss` with the FHIR base) and could not verify the id_token
/// (no `jwks_uri`). Now `iss` is checked against the id_token's issuer (RFC 9207), whose keys come from OpenID
/// discovery (client req. 218) and whose OpenID configuration names the token endpoint that answered.
#[tokio::test]
async fn an_issuer_missing_from_the_smart_configuration_is_no_mismatch() {
    let f = Fixture::new().await;
    quirks(
        &f,
        Quirks {
            separate_issuer: true,
            ..Quirks::default()
        },
    );
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("ava")),
    );
    let server = sdk.discover(&f.sb.fhir_base()).await.unwrap();
    assert_eq!(
        (server.issuer.as_ref(), server.jwks_uri.as_ref()),
        (None, None)
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    assert!(
        account
            .fhir_user
            .as_deref()
            .unwrap()
            .ends_with("/Patient/ava-thompson"),
        "the id_token was verified with the keys from OpenID discovery"
    );

    // A redirect whose `iss` is not the id_token's issuer is still a mix-up, and refused (RFC 9207 §2.4).
    let req = sdk.begin_link(&f.sb.fhir_base()).await.unwrap();
    let redirect = Fixture::robot("ava")
        .authorize(req.url.as_str())
        .await
        .unwrap();
    let mut forged = url::Url::parse(&redirect).unwrap();
    let pairs: Vec<(String, String)> = forged
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "iss" {
                "https://evil.example".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let err = sdk.complete_link(forged.as_str()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Authorization(x) if x.reason == chartlink_core::AuthorizationReason::Mismatch && x.message.contains("iss")),
        "{err:?}"
    );
    f.sb.shutdown().await;
}

/// RFC 7009: a provider that revokes only refresh tokens answers `unsupported_token_type` for the access token.
/// That is a successful unlink (main said "the provider could not be reached"); without a refresh token the access
/// token just lapses; without an endpoint nothing was revoked, and each is reported as such.
#[tokio::test]
async fn revocation_answers_are_read_as_rfc_7009_says() {
    let f = Fixture::new().await;
    quirks(
        &f,
        Quirks {
            revoke_refresh_tokens_only: true,
            ..Quirks::default()
        },
    );
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("ava")),
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let outcome = sdk.unlink(&account.id).await.unwrap();
    assert_eq!(outcome.revocation, Revocation::Revoked);
    assert!(outcome.revoked_at_provider);
    assert!(
        f.sb.admin()
            .grants()
            .unwrap()
            .iter()
            .all(|g| g.revoked_at.is_some()),
        "the grant really ended at the provider"
    );

    f.sb.admin().set_refresh_tokens(false);
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    let outcome = sdk.unlink(&account.id).await.unwrap();
    assert_eq!(outcome.revocation, Revocation::AccessTokenLapses);
    assert!(!outcome.revoked_at_provider);

    f.sb.admin().set_refresh_tokens(true);
    quirks(
        &f,
        Quirks {
            no_revocation_endpoint: true,
            ..Quirks::default()
        },
    );
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    assert_eq!(account.server.revocation_endpoint, None);
    let outcome = sdk.unlink(&account.id).await.unwrap();
    assert_eq!(outcome.revocation, Revocation::NoEndpoint);
    assert!(sdk.accounts().unwrap().is_empty(), "unlinked here anyway");
    f.sb.shutdown().await;
}

/// `error_description` reaches the user, sanitised and bounded: from an authorization redirect and from the token
/// endpoint at the code exchange (main showed only "invalid_request" / "invalid_grant").
#[tokio::test]
async fn error_descriptions_are_shown_sanitised() {
    let f = Fixture::new().await;
    let sdk = f.sdk(config(RevocationPolicy::PurgeNow), None);
    let req = sdk.begin_link(&f.sb.fhir_base()).await.unwrap();
    let state = req
        .url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    let mut redirect = url::Url::parse("chartlink-demo://callback").unwrap();
    let long = "x".repeat(5000);
    redirect
        .query_pairs_mut()
        .append_pair("error", "invalid_request")
        .append_pair(
            "error_description",
            &format!("Invalid redirect_uri\u{1b}[31m\u{202e} {long}"),
        )
        .append_pair("state", &state)
        .append_pair("iss", &f.sb.fhir_base());
    let err = sdk.complete_link(redirect.as_str()).await.unwrap_err();
    let Error::Authorization(failure) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(failure.reason, chartlink_core::AuthorizationReason::Refused);
    let m = &failure.message;
    assert!(m.contains("invalid_request: Invalid redirect_uri"), "{m}");
    assert!(!m.contains('\u{1b}') && !m.contains('\u{202e}'), "{m:?}");
    assert!(m.len() < 400, "bounded: {}", m.len());

    // The token endpoint's reason at the code exchange: the code expired at the provider.
    let req = sdk.begin_link(&f.sb.fhir_base()).await.unwrap();
    let redirect = Fixture::robot("ava")
        .authorize(req.url.as_str())
        .await
        .unwrap();
    f.sb.admin().advance_clock(600);
    let err = sdk.complete_link(&redirect).await.unwrap_err();
    assert!(
        matches!(&err, Error::Authorization(x) if x.reason == chartlink_core::AuthorizationReason::Refused && x.message.contains("invalid_grant: code expired")),
        "{err:?}"
    );
    f.sb.shutdown().await;
}

/// A FHIR address with no SMART configuration is a discovery error (its own class and CLI exit code), not an
/// authorization failure as on main.
#[tokio::test]
async fn a_discovery_404_is_a_discovery_error() {
    let f = Fixture::new().await;
    let sdk = f.sdk(
        config(RevocationPolicy::PurgeNow),
        Some(Fixture::robot("ava")),
    );
    let err = sdk
        .link(&format!("{}/no-such-fhir", f.sb.base_url()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Discovery(m) if m.contains("404")),
        "{err:?}"
    );
    f.sb.shutdown().await;
}

/// Client reqs. 308, 314, 320, 321: a confidential client with an RS384 key links, refreshes and revokes (main
/// could sign only ES384). The JWK carries `kty`, `kid`, `n` and `e`.
#[tokio::test]
async fn an_rs384_confidential_client_links_and_refreshes() {
    let f = Fixture::new().await;
    let signer = Arc::new(
        RsaSigner::from_pkcs8_der(include_bytes!("fixtures/rs384-test-client.pk8")).unwrap(),
    );
    let jwk = signer.public_jwk();
    assert_eq!(jwk["kty"], "RSA");
    assert_eq!(jwk["kid"].as_str(), Some(signer.key_id().as_str()));
    assert!(jwk["n"].is_string() && jwk["e"].is_string() && jwk.get("d").is_none());
    f.sb.admin()
        .register_app(&App {
            client_id: "rs384-app".into(),
            name: "RS384".into(),
            developer: "Tests".into(),
            redirect_uris: vec!["chartlink-demo://callback".into()],
            auth: chartlink_sandbox::ClientAuth::ConfidentialAsymmetric {
                jwks: json!({"keys": [jwk]}),
            },
            questionnaire: None,
            dynamic_registration: false,
            legacy_pkce_optional: false,
            bound_grant: None,
        })
        .unwrap();
    let cfg = AppConfig {
        client_id: "rs384-app".into(),
        client_auth: ClientAuth::PrivateKeyJwt(signer),
        ..config(RevocationPolicy::PurgeNow)
    };
    let sdk = f.sdk(cfg, Some(Fixture::robot("ava")));
    let account = sdk.link(&f.sb.fhir_base()).await.unwrap();
    assert_eq!(account.status, AccountStatus::Active);
    f.advance(3600 * 1000);
    sdk.access_token(&account.id).await.unwrap();
    assert_eq!(f.token_requests("refresh_token"), 1);
    assert_eq!(
        sdk.unlink(&account.id).await.unwrap().revocation,
        Revocation::Revoked
    );
    f.sb.shutdown().await;
}

/// Client reqs. 415, 416: the Brand Bundle named by the SMART configuration (`user_access_brand_bundle`) is read
/// at discovery (main ignored it).
#[tokio::test]
async fn the_brand_bundle_of_the_smart_configuration_is_read() {
    let f = Fixture::new().await;
    let sdk = f.sdk(config(RevocationPolicy::PurgeNow), None);
    let server = sdk.discover(&f.sb.fhir_base()).await.unwrap();
    assert_eq!(
        server
            .metadata
            .user_access_brand_bundle
            .as_ref()
            .map(|u| u.as_str().to_owned()),
        Some(format!("{}/brands.json", f.sb.base_url()))
    );
    assert!(
        server
            .metadata
            .scopes_supported
            .as_ref()
            .is_some_and(|l| l.iter().any(|s| s == "offline_access"))
    );
    f.sb.shutdown().await;
}

/// Client reqs. 50, 52, 133: a server that offers `authorize-post` gets the request as a form POST (here one that
/// refuses GET). Main offered only the GET URL.
#[tokio::test]
async fn authorization_requests_are_posted_where_the_server_takes_post() {
    let f = Fixture::new().await;
    quirks(
        &f,
        Quirks {
            authorize_post_only: true,
            ..Quirks::default()
        },
    );
    let sdk = f.sdk(config(RevocationPolicy::PurgeNow), None);
    let req = sdk.begin_link(&f.sb.fhir_base()).await.unwrap();
    let form = req.post.clone().expect("the sandbox offers authorize-post");
    assert_eq!(form.action.query(), None);
    assert!(form.action.as_str().ends_with("/oauth2/authorize"));
    for k in [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "aud",
        "code_challenge",
        "code_challenge_method",
    ] {
        assert!(form.fields.iter().any(|(n, _)| n == k), "{k}");
    }
    // Client reqs. 36, 211: a standalone launch sends no `launch`, and no `max_age`/`auth_time`.
    for k in ["launch", "max_age", "auth_time"] {
        assert!(!form.fields.iter().any(|(n, _)| n == k), "{k}");
    }
    let html = form.auto_submit_html();
    assert!(html.contains("method=\"post\"") && html.contains("data-autosubmit"));
    assert!(
        !html.contains("<script"),
        "no script beyond the onload submit"
    );
    // GET is refused by this server; the POST goes through.
    assert!(
        Fixture::robot("ava")
            .authorize(req.url.as_str())
            .await
            .is_err()
    );
    let redirect = Fixture::robot("ava")
        .authorize_form(form.action.as_str(), &form.fields)
        .await
        .unwrap();
    let account = sdk.complete_link(&redirect).await.unwrap();
    assert_eq!(account.patient_id, "ava-thompson");
    f.sb.shutdown().await;
}

/// A browser that logs `user` in at every authorization and records the scope each request asked for.
struct ScopeRecorder {
    user: &'static str,
    asked: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl chartlink_core::AuthBrowser for ScopeRecorder {
    async fn authorize(
        &self,
        url: String,
        _redirect_uri: String,
    ) -> Result<String, chartlink_core::BrowserError> {
        let scope = url::Url::parse(&url)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        self.asked.lock().unwrap().push(scope);
        Fixture::robot(self.user)
            .authorize(&url)
            .await
            .map_err(|e| chartlink_core::BrowserError::Failed(e.to_string()))
    }
}

/// An SDK on the fixture's host whose browser is a [`ScopeRecorder`] for `user`.
fn recording_sdk(
    f: &Fixture,
    user: &'static str,
) -> (chartlink_core::ChartLink, Arc<ScopeRecorder>) {
    let browser = Arc::new(ScopeRecorder {
        user,
        asked: std::sync::Mutex::new(Vec::new()),
    });
    let host = chartlink_core::Host {
        secure_store: f.store.clone(),
        browser: Some(browser.clone()),
        clock: f.clock.clone(),
        listener: Some(f.events.clone()),
    };
    (
        chartlink_core::ChartLink::new(config(RevocationPolicy::KeepReadOnlyUntilConfirmed), host)
            .unwrap(),
        browser,
    )
}

/// Links and syncs `ava` on the plain sandbox: the record that must come through the refused link intact.
async fn linked_record(f: &Fixture, sdk: &chartlink_core::ChartLink) -> (String, Vec<String>) {
    let first = sdk.link(&f.sb.fhir_base()).await.unwrap();
    sdk.sync_with(&first.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    let before = common::record(sdk, &first.id);
    assert!(before.len() > 10, "{}", before.len());
    (first.id, before)
}

const INVALID_SCOPE: &str =
    r#"{"error":"invalid_scope","error_description":"the requested scope is not allowed"}"#;

/// Issue 20 (interop): a Keycloak-like server that does not list `fhirUser` and refuses the whole authorization
/// request for it (`error=invalid_scope` at the redirect). The link retries once with only the listed scopes and
/// succeeds; the record linked before is untouched. Before: the link failed (`Authorization(Refused)`), no retry.
#[tokio::test]
async fn an_invalid_scope_redirect_is_retried_once_with_only_listed_scopes() {
    let f = Fixture::new().await;
    let (sdk, browser) = recording_sdk(&f, "ava");
    let (first, before) = linked_record(&f, &sdk).await;
    quirks(
        &f,
        Quirks {
            unlisted_scopes: vec!["fhirUser".into()],
            refuse_unlisted_scopes: true,
            ..Quirks::default()
        },
    );
    browser.asked.lock().unwrap().clear();
    let account = sdk.link(&f.sb.fhir_base()).await.expect("the retry links");
    let asked = browser.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "one retry: {asked:?}");
    assert!(asked[0].split(' ').any(|s| s == "fhirUser"), "{}", asked[0]);
    assert!(
        !asked[1].split(' ').any(|s| s == "fhirUser"),
        "{}",
        asked[1]
    );
    assert!(
        asked[1].split(' ').any(|s| s == "offline_access"),
        "{}",
        asked[1]
    );
    assert_eq!(account.status, AccountStatus::Active);
    assert!(account.can_renew);
    assert_eq!(
        consent_of(&account, DataCategory::LabResults),
        Consent::Granted
    );
    assert_eq!(common::record(&sdk, &first), before, "the record is intact");
    sdk.sync_with(&account.id, &fast(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(common::record(&sdk, &account.id).len(), before.len());

    // Refused again on the retry (here by the token endpoint): that refusal is the answer, no third request.
    browser.asked.lock().unwrap().clear();
    f.sb.admin().script_fault(common::body_fault(
        "/oauth2/token",
        400,
        "application/json",
        INVALID_SCOPE,
        1,
    ));
    let err = sdk.link(&f.sb.fhir_base()).await.unwrap_err();
    assert!(
        matches!(err, Error::Authorization(ref a) if a.reason == chartlink_core::AuthorizationReason::Refused),
        "{err:?}"
    );
    assert_eq!(browser.asked.lock().unwrap().len(), 2, "one retry only");
    assert_eq!(common::record(&sdk, &first), before, "the record is intact");
    f.sb.shutdown().await;
}

/// Issue 20 (interop): the token endpoint answers the code exchange with `invalid_scope` (a server that checks the
/// scope there); `fhirUser` is not listed. One retry without it links. Before: the link failed.
#[tokio::test]
async fn an_invalid_scope_token_answer_is_retried_once_with_only_listed_scopes() {
    let f = Fixture::new().await;
    let (sdk, browser) = recording_sdk(&f, "ava");
    let (first, before) = linked_record(&f, &sdk).await;
    quirks(
        &f,
        Quirks {
            unlisted_scopes: vec!["fhirUser".into()],
            ..Quirks::default()
        },
    );
    f.sb.admin().script_fault(common::body_fault(
        "/oauth2/token",
        400,
        "application/json",
        INVALID_SCOPE,
        1,
    ));
    browser.asked.lock().unwrap().clear();
    let account = sdk.link(&f.sb.fhir_base()).await.expect("the retry links");
    let asked = browser.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "one retry: {asked:?}");
    assert!(asked[0].split(' ').any(|s| s == "fhirUser"), "{}", asked[0]);
    assert!(
        !asked[1].split(' ').any(|s| s == "fhirUser"),
        "{}",
        asked[1]
    );
    assert!(account.can_renew);
    assert_eq!(common::record(&sdk, &first), before, "the record is intact");
    f.sb.shutdown().await;
}

/// Issue 20 (interop): a server without `scopes_supported` refuses the scope at the token endpoint. The one retry
/// asks for the minimal patient request (never wider than the first), links, and reports the rest as not granted
/// (`LinkLimited`, no renewal). Before: the link failed.
#[tokio::test]
async fn without_a_scope_list_the_retry_asks_the_minimal_patient_request() {
    let f = Fixture::new().await;
    let (sdk, browser) = recording_sdk(&f, "ava");
    let (first, before) = linked_record(&f, &sdk).await;
    quirks(
        &f,
        Quirks {
            no_scopes_supported: true,
            ..Quirks::default()
        },
    );
    f.sb.admin().script_fault(common::body_fault(
        "/oauth2/token",
        400,
        "application/json",
        INVALID_SCOPE,
        1,
    ));
    browser.asked.lock().unwrap().clear();
    let account = sdk.link(&f.sb.fhir_base()).await.expect("the retry links");
    let asked = browser.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "one retry: {asked:?}");
    let retry: Vec<&str> = asked[1].split(' ').collect();
    assert_eq!(retry[0], "launch/patient", "{retry:?}");
    assert_eq!(retry.len(), 2, "{retry:?}");
    assert!(retry[1].starts_with("patient/Patient."), "{retry:?}");
    assert!(asked[0].split(' ').any(|s| s == retry[1]), "never wider");
    assert_eq!(
        consent_of(&account, DataCategory::Demographics),
        Consent::Granted
    );
    assert_eq!(
        consent_of(&account, DataCategory::LabResults),
        Consent::NotGranted
    );
    assert!(!account.can_renew);
    assert!(f.events.saw(|e| matches!(e, Event::LinkLimited { account_id, can_renew: false, .. } if *account_id == account.id)));
    assert_eq!(common::record(&sdk, &first), before, "the record is intact");
    f.sb.shutdown().await;
}
