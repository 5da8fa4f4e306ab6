//! The portal's pages in a real headless Chromium: log in, pick the child's account, read the app's
//! questionnaire, tick "I have read the statements above", Allow Access; the deny path; a wrong password; and
//! "Remove access" on the linked-apps page. Saves a screenshot of the consent page under
//! `target/test-artifacts/consent-page.png`.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chartlink_sandbox::{Config, Sandbox};
use chartlink_tests::{
    HeadlessChromium, LoopbackRedirect, artifacts_dir, click, portal_login as login, query_param,
    submit, text,
};
use fantoccini::Locator;
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};

struct Request {
    url: String,
    state: String,
    verifier: String,
    redirect_uri: String,
}

fn authorize_url(sb: &Sandbox, redirect_uri: &str) -> Request {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let verifier = B64.encode(bytes);
    rand::rng().fill_bytes(&mut bytes);
    let state = B64.encode(&bytes[..16]);
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    let url = url::Url::parse_with_params(
        &format!("{}/oauth2/authorize", sb.base_url()),
        &[
            ("response_type", "code"),
            ("client_id", "chartlink-demo"),
            ("redirect_uri", redirect_uri),
            (
                "scope",
                "launch/patient openid fhirUser offline_access patient/*.rs",
            ),
            ("state", state.as_str()),
            ("aud", sb.fhir_base().as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .unwrap()
    .to_string();
    Request {
        url,
        state,
        verifier,
        redirect_uri: redirect_uri.to_owned(),
    }
}

#[tokio::test]
async fn a_patient_links_a_childs_record_in_chromium() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let chromium = HeadlessChromium::start().await;
    let c = chromium.session().await;

    // A wrong password shows the error and nothing else.
    let app = LoopbackRedirect::listen().await;
    let req = authorize_url(&sb, &app.redirect_uri());
    c.goto(&req.url).await.unwrap();
    login(&c, "maria", "not-her-password").await;
    assert_eq!(
        text(&c, "#error").await,
        "The username or password is incorrect."
    );
    assert!(c.find(Locator::Css("input[name=patient]")).await.is_err());

    // The right one: the account picker lists Maria and both children.
    login(&c, "maria", "maria-demo").await;
    assert_eq!(
        text(&c, "h1").await,
        "Which account are you linking this app to?"
    );
    for id in [
        "patient-maria-garcia",
        "patient-leo-garcia",
        "patient-sofia-garcia",
    ] {
        assert!(c.find(Locator::Id(id)).await.is_ok(), "{id}");
    }
    click(&c, "#patient-leo-garcia").await;
    submit(&c, "#choose").await;

    // The app's page: its name, the record, the data it asks for, the developer's answers.
    assert_eq!(text(&c, "#app-name").await, "ChartLink Demo");
    assert_eq!(text(&c, "#record-name").await, "Leo Garcia");
    let answers = text(&c, "#questionnaire").await;
    assert!(
        answers.contains("Does the app sell your data?"),
        "{answers}"
    );
    assert!(
        !c.find_all(Locator::Css("input[name=scope]"))
            .await
            .unwrap()
            .is_empty()
    );
    let png = c.screenshot().await.unwrap();
    let shot = artifacts_dir().join("consent-page.png");
    std::fs::write(&shot, &png).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real screenshot at {}",
        shot.display()
    );

    // Allow without the statements box: stays, with a message.
    submit(&c, "#allow").await;
    assert_eq!(
        text(&c, "#error").await,
        "Please confirm that you have read the statements above."
    );
    click(&c, "#acknowledged").await;
    click(&c, "#allow").await;
    let redirect = app.wait().await;
    assert_eq!(
        query_param(&redirect, "state").as_deref(),
        Some(req.state.as_str())
    );
    assert_eq!(query_param(&redirect, "iss"), Some(sb.fhir_base()));
    let code = query_param(&redirect, "code").unwrap();
    let tokens: Value = reqwest::Client::new()
        .post(format!("{}/oauth2/token", sb.base_url()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", req.redirect_uri.as_str()),
            ("client_id", "chartlink-demo"),
            ("code_verifier", req.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tokens["patient"], "leo-garcia");

    // Deny: the browser still has its portal session, so the picker comes first.
    let app = LoopbackRedirect::listen().await;
    let req = authorize_url(&sb, &app.redirect_uri());
    c.goto(&req.url).await.unwrap();
    click(&c, "#patient-sofia-garcia").await;
    submit(&c, "#choose").await;
    assert!(text(&c, "#restricted").await.contains("13 or older"));
    click(&c, "#deny").await;
    let redirect = app.wait().await;
    assert_eq!(
        query_param(&redirect, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_param(&redirect, "state").as_deref(),
        Some(req.state.as_str())
    );

    // The linked-apps page lists the link; Remove access ends it.
    c.goto(&format!("{}/portal/apps", sb.base_url()))
        .await
        .unwrap();
    assert!(text(&c, "table").await.contains("Leo Garcia"));
    submit(&c, "#remove-0").await;
    assert_eq!(
        text(&c, "#no-apps").await,
        "No apps have access to your records."
    );
    let introspect: Value = reqwest::Client::new()
        .post(format!("{}/oauth2/introspect", sb.base_url()))
        .basic_auth("client-py", Some("client-py-secret"))
        .form(&[("token", tokens["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspect["active"], false);
    c.close().await.unwrap();
    sb.shutdown().await;
}
