//! The SDK and a real browser together (issue 7's end-to-end test): ChartLink starts a link with a loopback
//! redirect; headless Chromium logs in at the portal, picks the child's account, shows the app's questionnaire,
//! ticks "I have read the statements above" and allows access; the redirect completes the link and the record
//! syncs. Also the deny path, and "Remove access" on the portal's linked-apps page, after which the SDK reports
//! access ended, keeps the record until the user deletes it.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use chartlink_core::{
    AppConfig, ChartLink, Error, Event, EventListener, Host, MemorySecureStore, Relation,
};
use chartlink_sandbox::{Config, Sandbox};
use chartlink_tests::{HeadlessChromium, LoopbackRedirect, click, portal_login, submit, text};

#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl EventListener for Events {
    fn on_event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

#[tokio::test]
async fn the_sdk_links_syncs_and_sees_access_removed_through_a_real_browser() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let events = Arc::new(Events::default());
    let host = Host {
        listener: Some(events.clone()),
        ..Host::new(Arc::new(MemorySecureStore::default()))
    };
    let sdk = ChartLink::new(
        AppConfig::new("chartlink-demo", "http://127.0.0.1/callback"),
        host,
    )
    .unwrap();
    let chromium = HeadlessChromium::start().await;
    let c = chromium.session().await;

    // Link: the SDK makes the request, the browser walks the portal, the loopback redirect completes it.
    let app = LoopbackRedirect::listen().await;
    let req = sdk
        .begin_link_with_redirect(&sb.fhir_base(), &app.redirect_uri())
        .await
        .unwrap();
    c.goto(req.url.as_str()).await.unwrap();
    portal_login(&c, "maria", "maria-demo").await;
    click(&c, "#patient-leo-garcia").await;
    submit(&c, "#choose").await;
    assert!(
        text(&c, "#questionnaire")
            .await
            .contains("Does the app sell your data?")
    );
    click(&c, "#acknowledged").await;
    submit(&c, "#allow").await;
    let account = sdk.complete_link(&app.wait().await).await.unwrap();
    assert_eq!(account.patient_id, "leo-garcia");
    let report = sdk.sync(&account.id).await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    let leo = sdk.patients().unwrap().remove(0);
    assert_eq!(leo.relation, Relation::Child);
    sdk.switch_patient(&leo.id).unwrap();
    assert!(
        sdk.allergies()
            .unwrap()
            .iter()
            .any(|a| a.substance.to_lowercase().contains("peanut"))
    );
    assert!(!sdk.immunizations().unwrap().is_empty());

    // Deny: the SDK gets a typed error and keeps nothing.
    let app = LoopbackRedirect::listen().await;
    let req = sdk
        .begin_link_with_redirect(&sb.fhir_base(), &app.redirect_uri())
        .await
        .unwrap();
    c.goto(req.url.as_str()).await.unwrap();
    click(&c, "#patient-sofia-garcia").await;
    submit(&c, "#choose").await;
    submit(&c, "#deny").await;
    let err = sdk.complete_link(&app.wait().await).await.unwrap_err();
    assert!(
        matches!(&err, Error::Authorization(f) if f.reason == chartlink_core::AuthorizationReason::Denied && f.message.contains("access_denied")),
        "{err:?}"
    );
    assert_eq!(sdk.accounts().unwrap().len(), 1);

    // Remove access on the portal's linked-apps page: the next sync reports that access ended. The record stays
    // readable (deleting it is the patient's decision, not a conclusion from `invalid_grant`) until the user
    // confirms, which deletes it.
    c.goto(&format!("{}/portal/apps", sb.base_url()))
        .await
        .unwrap();
    assert!(text(&c, "table").await.contains("Leo Garcia"));
    submit(&c, "#remove-0").await;
    assert_eq!(
        sdk.sync(&account.id).await.unwrap_err(),
        Error::AccessRevoked
    );
    assert!(
        events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::AccessRevoked { account_id } if *account_id == account.id))
    );
    assert!(
        !sdk.store().counts(&account.id).unwrap().is_empty(),
        "kept until the user deletes it"
    );
    assert!(!sdk.allergies().unwrap().is_empty(), "still readable");
    sdk.confirm_revoked(&account.id).await.unwrap();
    assert!(
        sdk.store().counts(&account.id).unwrap().is_empty(),
        "deleted at the user's word"
    );
    assert!(sdk.accounts().unwrap().is_empty());
    c.close().await.unwrap();
    sb.shutdown().await;
}
