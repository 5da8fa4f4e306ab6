//! A second SMART client nobody here wrote — SMART's client-js (npm `fhirclient` 2.6.3, in its Node form:
//! tests/oidc/client_js.mjs) — completes a standalone launch against the sandbox as a public client: discovery
//! through `.well-known/smart-configuration`, PKCE (which the sandbox requires of public clients), the portal's
//! login, account picker and consent in a real headless Chromium, the code exchange, reads and paged searches,
//! and a refresh.
#![allow(clippy::unwrap_used)]

use std::process::Stdio;
use std::time::Duration;

use chartlink_sandbox::{Config, Sandbox};
use chartlink_tests::{HeadlessChromium, click, portal_login, submit, workspace_root};
use fantoccini::Locator;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::test]
async fn client_js_completes_a_standalone_launch() {
    let dir = workspace_root().join("tests/oidc");
    assert!(
        dir.join("node_modules/fhirclient/package.json").is_file(),
        "fhirclient is not installed in {} — run `cargo xtask tools` (it runs `npm ci` there)",
        dir.display()
    );
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let mut node = tokio::process::Command::new(
        std::env::var_os("CHARTLINK_NODE").unwrap_or_else(|| "node".into()),
    )
    .arg(dir.join("client_js.mjs"))
    .args([sb.fhir_base().as_str(), "quiet-fitness"])
    .current_dir(&dir)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .expect("node starts (node is a prerequisite: see the README)");
    let mut lines = BufReader::new(node.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("client-js answers within 30 s")
            .unwrap()
            .expect("client-js printed a line");
        serde_json::from_str(&line).unwrap()
    };
    let ready = next().await;
    let launch = ready["launch"].as_str().unwrap().to_owned();

    let chromium = HeadlessChromium::start().await;
    let c = chromium.session().await;
    c.goto(&launch).await.unwrap();
    c.wait().for_element(Locator::Id("username")).await.unwrap();
    portal_login(&c, "maria", "maria-demo").await;
    click(&c, "#patient-maria-garcia").await;
    submit(&c, "#choose").await;
    if c.find(Locator::Id("acknowledged")).await.is_ok() {
        click(&c, "#acknowledged").await;
    }
    submit(&c, "#allow").await;

    let summary = next().await;
    assert!(
        summary["error"].is_null(),
        "client-js failed: {}",
        summary["error"]
    );
    assert_eq!(summary["patient_id"], "maria-garcia");
    assert_eq!(summary["name"], "Maria Garcia");
    assert!(summary["conditions"].as_u64().unwrap() > 0);
    assert!(summary["labs"].as_u64().unwrap() > 0);
    assert_eq!(summary["had_refresh_token"], true);
    assert_eq!(summary["refreshed"], true);
    assert_eq!(summary["read_after_refresh"], true);
    let grants = sb.admin().grants().unwrap();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].client_id, "quiet-fitness");
    assert_eq!(grants[0].patient_id, "maria-garcia");
    assert_eq!(node.wait().await.unwrap().code(), Some(0));
    c.close().await.unwrap();
    sb.shutdown().await;
}
