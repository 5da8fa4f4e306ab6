//! The SMART App Launch flow against a running sandbox over real HTTP: discovery, the portal's pages, the token
//! endpoint (code, refresh with rotation and reuse detection, jwt-bearer), revocation, introspection, dynamic
//! registration and private_key_jwt.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chartlink_sandbox::{App, ClientAuth};
use common::*;
use reqwest::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

#[tokio::test]
async fn discovery_documents_have_every_required_field() {
    let sb = start().await;
    let http = browser();
    let conf: Value = http
        .get(format!(
            "{}/.well-known/smart-configuration",
            sb.fhir_base()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for field in [
        "issuer",
        "jwks_uri",
        "authorization_endpoint",
        "token_endpoint",
        "revocation_endpoint",
        "introspection_endpoint",
        "registration_endpoint",
        "management_endpoint",
        "grant_types_supported",
        "scopes_supported",
        "capabilities",
        "code_challenge_methods_supported",
        "token_endpoint_auth_methods_supported",
        "response_types_supported",
    ] {
        assert!(!conf[field].is_null(), "smart-configuration lacks {field}");
    }
    assert_eq!(conf["code_challenge_methods_supported"], json!(["S256"]));
    let caps: Vec<&str> = conf["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for cap in [
        "launch-standalone",
        "client-public",
        "client-confidential-asymmetric",
        "context-standalone-patient",
        "permission-patient",
        "permission-offline",
        "permission-v1",
        "permission-v2",
        "sso-openid-connect",
    ] {
        assert!(caps.contains(&cap), "missing capability {cap}");
    }
    let oidc: Value = http
        .get(format!(
            "{}/.well-known/openid-configuration",
            sb.fhir_base()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(oidc["issuer"], conf["issuer"]);
    let jwks: Value = http
        .get(conf["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["alg"], "ES384");
    let meta: Value = http
        .get(format!("{}/metadata", sb.fhir_base()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ext = &meta["rest"][0]["security"]["extension"][0];
    assert_eq!(
        ext["url"],
        "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    );
    assert_eq!(
        ext["extension"][0]["valueUri"],
        conf["authorization_endpoint"]
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn parent_links_a_childs_record_through_the_account_picker() {
    let sb = start().await;
    let mut flow = Flow::start(&sb, ALL_SCOPES).await;
    assert_eq!(flow.login("maria", "maria-demo").await, StatusCode::OK);
    assert!(
        flow.page
            .contains("Which account are you linking this app to?")
    );
    for who in [
        "patient-maria-garcia",
        "patient-leo-garcia",
        "patient-sofia-garcia",
    ] {
        assert!(flow.page.contains(who), "picker lists {who}");
    }
    assert_eq!(flow.choose("leo-garcia").await, StatusCode::OK);
    // The app page: name, data asked for, the developer's questionnaire answers, the statement box.
    assert!(flow.page.contains("ChartLink Demo"));
    assert!(flow.page.contains("id=\"questionnaire\""));
    assert!(flow.page.contains("Does the app sell your data?"));
    assert!(flow.page.contains("I have read the statements above"));
    assert!(!scope_boxes(&flow.page).is_empty());
    let code = flow.allow_all().await;
    let resp = flow.exchange(&code).await;
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["patient"], "leo-garcia");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["need_patient_banner"], true);
    assert!(
        tokens["refresh_token"].is_string(),
        "offline_access gives a refresh token"
    );
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        access.split('.').count(),
        1,
        "access tokens are opaque, not JWTs"
    );
    // id_token: signed by the server's key, fhirUser names the parent as a RelatedPerson of the child.
    let jwks: Value = browser()
        .get(format!("{}/oauth2/jwks", sb.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let claims = chartlink_sandbox::jose::decode(tokens["id_token"].as_str().unwrap())
        .unwrap()
        .verify(&jwks)
        .unwrap();
    assert_eq!(claims["aud"], CLIENT_ID);
    assert_eq!(claims["iss"], sb.fhir_base());
    assert!(
        claims["fhirUser"]
            .as_str()
            .unwrap()
            .contains("/RelatedPerson/")
    );
    let (status, patient) = fhir_get(&sb, access, "Patient/leo-garcia").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(patient["id"], "leo-garcia");
    let (status, _) = fhir_get(&sb, access, "Patient/maria-garcia").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another record is outside the grant"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn own_record_skips_the_picker_and_names_the_patient() {
    let sb = start().await;
    let tokens = link(&sb, "ava", None, ALL_SCOPES).await;
    assert_eq!(tokens["patient"], "ava-thompson");
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert!(
        claims["fhirUser"]
            .as_str()
            .unwrap()
            .ends_with("/Patient/ava-thompson")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn wrong_password_shows_an_error_and_nothing_else() {
    let sb = start().await;
    let mut flow = Flow::start(&sb, ALL_SCOPES).await;
    assert_eq!(flow.login("maria", "wrong").await, StatusCode::OK);
    assert!(flow.page.contains("The username or password is incorrect."));
    assert!(!flow.page.contains("Maria"), "no hint of who the user is");
    assert!(!flow.page.contains("Which account"));
    assert_eq!(flow.login("nobody", "x").await, StatusCode::OK);
    assert!(flow.page.contains("The username or password is incorrect."));
    sb.shutdown().await;
}

#[tokio::test]
async fn deny_redirects_with_access_denied_and_state() {
    let sb = start().await;
    let mut flow = Flow::start(&sb, ALL_SCOPES).await;
    flow.login("ava", "ava-demo").await;
    let resp = flow.decide("deny", false, &[]).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let p = location_params(&resp);
    assert_eq!(param(&p, "error"), Some("access_denied"));
    assert_eq!(param(&p, "state"), Some(flow.state.as_str()));
    assert_eq!(param(&p, "iss"), Some(flow.fhir.as_str()));
    assert!(param(&p, "code").is_none());
    sb.shutdown().await;
}

#[tokio::test]
async fn allow_needs_the_statements_box() {
    let sb = start().await;
    let mut flow = Flow::start(&sb, ALL_SCOPES).await;
    flow.login("ava", "ava-demo").await;
    let boxes = scope_boxes(&flow.page);
    let resp = flow.decide("allow", false, &boxes).await;
    assert_eq!(resp.status(), StatusCode::OK, "no redirect without the box");
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("Please confirm that you have read the statements above.")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn an_app_without_answers_shows_the_warning() {
    let sb = start().await;
    let (mut flow, resp) = Flow::begin(
        &sb,
        ALL_SCOPES,
        &[
            ("client_id", "quiet-fitness"),
            ("redirect_uri", "quietfitness://oauth"),
        ],
    )
    .await;
    flow.page = resp.text().await.unwrap();
    flow.tx = input_value(&flow.page, "tx").unwrap();
    flow.login("ava", "ava-demo").await;
    assert!(flow.page.contains("This app has not answered"));
    assert!(!flow.page.contains("id=\"questionnaire\""));
    sb.shutdown().await;
}

#[tokio::test]
async fn unticked_categories_are_not_granted() {
    let sb = start().await;
    let mut flow = Flow::start(
        &sb,
        "launch/patient patient/Observation.rs patient/AllergyIntolerance.rs",
    )
    .await;
    flow.login("ava", "ava-demo").await;
    let boxes = scope_boxes(&flow.page);
    assert_eq!(
        boxes.len(),
        5,
        "lab, vitals, social history, other observations, allergies: {boxes:?}"
    );
    let keep: Vec<String> = boxes
        .iter()
        .filter(|b| b.contains("laboratory"))
        .cloned()
        .collect();
    let resp = flow.decide("allow", true, &keep).await;
    let code = param(&location_params(&resp), "code").unwrap().to_owned();
    let tokens: Value = flow.exchange(&code).await.json().await.unwrap();
    let scope = tokens["scope"].as_str().unwrap();
    assert!(scope.contains(
        "category=http://terminology.hl7.org/CodeSystem/observation-category|laboratory"
    ));
    assert!(!scope.contains("vital-signs") && !scope.contains("AllergyIntolerance"));
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access asked"
    );
    let token = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        fhir_get(&sb, token, "Observation?category=laboratory")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        fhir_get(&sb, token, "Observation?category=vital-signs")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        fhir_get(&sb, token, "AllergyIntolerance").await.0,
        StatusCode::FORBIDDEN
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn authorize_errors_before_and_after_the_redirect_is_trusted() {
    let sb = start().await;
    // Before the redirect is trusted: an HTML page, never a redirect.
    for extra in [
        [("client_id", "nope"), ("", "")],
        [("redirect_uri", "https://evil.example/cb"), ("", "")],
        [("client_id", ""), ("", "")],
    ] {
        let (_, resp) = Flow::begin(&sb, ALL_SCOPES, &extra).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{extra:?}");
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
    }
    // After: an error redirect with state and iss.
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("code_challenge_method", "plain")], "invalid_request"),
        (
            &[("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (&[("aud", "https://other.example/fhir")], "invalid_request"),
        (&[("response_type", "token")], "unsupported_response_type"),
        (&[("scope", "patient/Observation.fly")], "invalid_scope"),
        (&[("state", "")], "invalid_request"),
    ];
    for (extra, error) in cases {
        let (flow, resp) = Flow::begin(&sb, ALL_SCOPES, extra).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{extra:?}");
        let p = location_params(&resp);
        assert_eq!(param(&p, "error"), Some(error), "{extra:?}");
        if !extra.iter().any(|(k, _)| *k == "state") {
            assert_eq!(param(&p, "state"), Some(flow.state.as_str()));
        }
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_its_tokens() {
    let sb = start().await;
    let mut flow = Flow::start(&sb, ALL_SCOPES).await;
    flow.login("ava", "ava-demo").await;
    let code = flow.allow_all().await;
    let first: Value = flow.exchange(&code).await.json().await.unwrap();
    let token = first["access_token"].as_str().unwrap();
    assert_eq!(
        fhir_get(&sb, token, "Patient/ava-thompson").await.0,
        StatusCode::OK
    );
    let again = flow.exchange(&code).await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        again.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        fhir_get(&sb, token, "Patient/ava-thompson").await.0,
        StatusCode::UNAUTHORIZED
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn pkce_and_redirect_uri_are_verified_at_the_token_endpoint() {
    let sb = start().await;
    let mut flow = Flow::start(&sb, ALL_SCOPES).await;
    flow.login("ava", "ava-demo").await;
    let code = flow.allow_all().await;
    let wrong_verifier = pkce().verifier;
    let (status, body) = token_form(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("code_verifier", &wrong_verifier),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = token_form(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "chartlink-demo://other"),
            ("client_id", CLIENT_ID),
            ("code_verifier", &flow.pkce.verifier),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    let (status, body) = token_form(
        &sb,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "quiet-fitness"),
            ("code_verifier", &flow.pkce.verifier),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "another client"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_grant() {
    let sb = start().await;
    let tokens = link(&sb, "ava", None, ALL_SCOPES).await;
    let r1 = tokens["refresh_token"].as_str().unwrap();
    let (status, second) = refresh(&sb, r1).await;
    assert_eq!(status, StatusCode::OK);
    let r2 = second["refresh_token"].as_str().unwrap();
    assert_ne!(r1, r2, "each refresh returns a new refresh token");
    assert_eq!(second["patient"], "ava-thompson");
    let a2 = second["access_token"].as_str().unwrap();
    assert_eq!(
        fhir_get(&sb, a2, "Patient/ava-thompson").await.0,
        StatusCode::OK
    );
    // Reusing the spent token: refused, and the whole grant ends.
    let (status, body) = refresh(&sb, r1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(refresh(&sb, r2).await.1["error"], "invalid_grant");
    assert_eq!(
        fhir_get(&sb, a2, "Patient/ava-thompson").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sb.admin().grants().unwrap()[0].revoked_reason.as_deref(),
        Some("refresh token reused")
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn revoke_and_introspect() {
    let sb = start().await;
    let tokens = link(&sb, "ava", None, ALL_SCOPES).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh_token = tokens["refresh_token"].as_str().unwrap();
    let http = browser();
    let introspect = |token: String| {
        let http = http.clone();
        let url = format!("{}/oauth2/introspect", sb.base_url());
        let auth = access.to_owned();
        async move {
            http.post(url)
                .bearer_auth(auth)
                .form(&[("token", token)])
                .send()
                .await
                .unwrap()
        }
    };
    let info: Value = introspect(access.to_owned()).await.json().await.unwrap();
    assert_eq!(info["active"], true);
    assert_eq!(info["patient"], "ava-thompson");
    assert_eq!(info["client_id"], CLIENT_ID);
    assert!(info["exp"].as_i64().unwrap() > sb.admin().now());
    assert!(
        info["scope"]
            .as_str()
            .unwrap()
            .contains("patient/Immunization.rs")
    );
    let unauth = http
        .post(format!("{}/oauth2/introspect", sb.base_url()))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        unauth.status(),
        StatusCode::UNAUTHORIZED,
        "introspection needs authorization"
    );
    let revoked = http
        .post(format!("{}/oauth2/revoke", sb.base_url()))
        .form(&[
            ("token", refresh_token),
            ("token_type_hint", "refresh_token"),
            ("client_id", CLIENT_ID),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK);
    assert_eq!(
        fhir_get(&sb, access, "Patient/ava-thompson").await.0,
        StatusCode::UNAUTHORIZED,
        "revoking the refresh token ends the grant"
    );
    assert_eq!(
        refresh(&sb, refresh_token).await.1["error"],
        "invalid_grant"
    );
    // A second, live token to authorize the introspection of the dead one.
    let other = link(&sb, "daniel", Some("daniel-chen"), ALL_SCOPES).await;
    let resp = http
        .post(format!("{}/oauth2/introspect", sb.base_url()))
        .bearer_auth(other["access_token"].as_str().unwrap())
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"active": false})
    );
    // Unknown tokens revoke fine (RFC 7009 §2.2).
    let resp = http
        .post(format!("{}/oauth2/revoke", sb.base_url()))
        .form(&[("token", "nope"), ("client_id", CLIENT_ID)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    sb.shutdown().await;
}

fn es384_key() -> (EcdsaKeyPair, Value) {
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P384_SHA384_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-384", "kid": "k1", "x": B64.encode(&point[1..49]), "y": B64.encode(&point[49..])});
    (pair, jwk)
}

fn sign_es384(key: &EcdsaKeyPair, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(json!({"alg": "ES384", "kid": "k1", "typ": "JWT"}).to_string()),
        B64.encode(claims.to_string())
    );
    let sig = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(sig.as_ref()))
}

fn assertion_claims(client_id: &str, sb: &chartlink_sandbox::Sandbox, exp_in: i64) -> Value {
    let now = sb.admin().now();
    json!({"iss": client_id, "sub": client_id, "aud": format!("{}/oauth2/token", sb.base_url()), "exp": now + exp_in, "jti": random(12)})
}

#[tokio::test]
async fn dynamic_registration_and_the_jwt_bearer_grant() {
    let sb = start().await;
    let tokens = link(&sb, "maria", Some("leo-garcia"), ALL_SCOPES).await;
    let access = tokens["access_token"].as_str().unwrap();
    let (key, jwk) = es384_key();
    let http = browser();
    let reg_url = format!("{}/oauth2/register", sb.base_url());
    let body =
        json!({"software_id": CLIENT_ID, "jwks": {"keys": [jwk]}, "client_name": "Maria's phone"});
    let unauth = http.post(&reg_url).json(&body).send().await.unwrap();
    assert_eq!(
        unauth.status(),
        StatusCode::UNAUTHORIZED,
        "registration needs the user's access token"
    );
    let resp = http
        .post(&reg_url)
        .bearer_auth(access)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let device: Value = resp.json().await.unwrap();
    let device_id = device["client_id"].as_str().unwrap();
    let assertion = sign_es384(&key, &assertion_claims(device_id, &sb, 240));
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
        ("assertion", assertion.as_str()),
    ];
    let (status, got) = token_form(&sb, &form).await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(got["patient"], "leo-garcia");
    assert!(got.get("refresh_token").is_none());
    assert_eq!(
        fhir_get(
            &sb,
            got["access_token"].as_str().unwrap(),
            "Patient/leo-garcia"
        )
        .await
        .0,
        StatusCode::OK
    );
    // The same assertion again: jti replay.
    assert_eq!(token_form(&sb, &form).await.1["error"], "invalid_grant");
    // exp more than 5 minutes ahead, wrong aud, and a foreign key are refused.
    let too_long = sign_es384(&key, &assertion_claims(device_id, &sb, 3600));
    let mut wrong_aud = assertion_claims(device_id, &sb, 60);
    wrong_aud["aud"] = json!("https://elsewhere.example/token");
    let (other_key, _) = es384_key();
    for bad in [
        too_long,
        sign_es384(&key, &wrong_aud),
        sign_es384(&other_key, &assertion_claims(device_id, &sb, 60)),
    ] {
        let (status, body) = token_form(
            &sb,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &bad),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
    }
    // Removing the grant ends the device client's access too.
    sb.admin()
        .revoke_grant(&sb.admin().grants().unwrap()[0].id)
        .unwrap();
    let fresh = sign_es384(&key, &assertion_claims(device_id, &sb, 60));
    assert_eq!(
        token_form(
            &sb,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &fresh)
            ]
        )
        .await
        .1["error"],
        "invalid_grant"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn private_key_jwt_with_rs384_and_es384() {
    let sb = start().await;
    let rsa = RsaKeyPair::from_pkcs8(include_bytes!("fixtures/rs384-test-client.pk8")).unwrap();
    let parts = signature::RsaPublicKeyComponents::<Vec<u8>>::from(rsa.public());
    let rsa_jwk =
        json!({"kty": "RSA", "kid": "r1", "n": B64.encode(&parts.n), "e": B64.encode(&parts.e)});
    let (ec, ec_jwk) = es384_key();
    let app = App {
        client_id: "backend-app".into(),
        name: "Confidential test app".into(),
        developer: "Tests".into(),
        redirect_uris: vec![REDIRECT.into()],
        auth: ClientAuth::ConfidentialAsymmetric {
            jwks: json!({"keys": [rsa_jwk, ec_jwk]}),
        },
        questionnaire: None,
        dynamic_registration: false,
        legacy_pkce_optional: false,
        bound_grant: None,
    };
    sb.admin().register_app(&app).unwrap();
    let sign_rs384 = |claims: &Value| {
        let input = format!(
            "{}.{}",
            B64.encode(json!({"alg": "RS384", "kid": "r1"}).to_string()),
            B64.encode(claims.to_string())
        );
        let mut sig = vec![0u8; rsa.public().modulus_len()];
        rsa.sign(
            &signature::RSA_PKCS1_SHA384,
            &SystemRandom::new(),
            input.as_bytes(),
            &mut sig,
        )
        .unwrap();
        format!("{input}.{}", B64.encode(sig))
    };
    for signer in 0..2 {
        let (mut flow, resp) = Flow::begin(&sb, ALL_SCOPES, &[("client_id", "backend-app")]).await;
        flow.page = resp.text().await.unwrap();
        flow.tx = input_value(&flow.page, "tx").unwrap();
        flow.login("ava", "ava-demo").await;
        let code = flow.allow_all().await;
        let claims = assertion_claims("backend-app", &sb, 120);
        let assertion = if signer == 0 {
            sign_rs384(&claims)
        } else {
            sign_es384(&ec, &claims)
        };
        let base = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", flow.pkce.verifier.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
        ];
        let mut without = base.to_vec();
        without.push(("client_assertion", "not.a.jwt"));
        let (status, body) = token_form(&sb, &without).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client"))
        );
        let mut form = base.to_vec();
        form.push(("client_assertion", &assertion));
        let (status, body) = token_form(&sb, &form).await;
        assert_eq!(status, StatusCode::OK, "signer {signer}: {body}");
        assert!(body["refresh_token"].is_string());
    }
    // A confidential client may not fall back to sending only its client_id.
    let (status, body) = token_form(
        &sb,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "backend-app"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn linked_apps_page_removes_access() {
    let sb = start().await;
    let tokens = link(&sb, "maria", Some("sofia-garcia"), ALL_SCOPES).await;
    let access = tokens["access_token"].as_str().unwrap();
    let http = browser();
    let page = http
        .get(format!("{}/portal/apps", sb.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "login first");
    let resp = http
        .post(format!("{}/portal/login", sb.base_url()))
        .form(&[
            ("tx", ""),
            ("next", "apps"),
            ("username", "maria"),
            ("password", "maria-demo"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let html = http
        .get(format!("{}/portal/apps", sb.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("ChartLink Demo")
            && html.contains("Sofia Garcia")
            && html.contains("Remove access")
    );
    let grant = input_value(&html, "grant").unwrap();
    let csrf = input_value(&html, "csrf").unwrap();
    let forged = http
        .post(format!("{}/portal/apps/remove", sb.base_url()))
        .form(&[("grant", grant.as_str()), ("csrf", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        fhir_get(&sb, access, "Patient/sofia-garcia").await.0,
        StatusCode::OK
    );
    let removed = http
        .post(format!("{}/portal/apps/remove", sb.base_url()))
        .form(&[("grant", grant.as_str()), ("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        fhir_get(&sb, access, "Patient/sofia-garcia").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        refresh(&sb, tokens["refresh_token"].as_str().unwrap())
            .await
            .1["error"],
        "invalid_grant"
    );
    let html = http
        .get(format!("{}/portal/apps", sb.base_url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("No apps have access"));
    sb.shutdown().await;
}

#[tokio::test]
async fn portal_sessions_end_after_twenty_idle_minutes() {
    let sb = start().await;
    let http = browser();
    http.post(format!("{}/portal/login", sb.base_url()))
        .form(&[("tx", ""), ("username", "ava"), ("password", "ava-demo")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        http.get(format!("{}/portal/apps", sb.base_url()))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    sb.admin().advance_clock(21 * 60);
    assert_eq!(
        http.get(format!("{}/portal/apps", sb.base_url()))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER
    );
    sb.shutdown().await;
}
