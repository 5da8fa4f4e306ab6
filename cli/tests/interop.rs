//! Issue 15 through the real `chartlink` binary: after linking it says what the provider did not share and
//! whether access will last; `unlink` says what the provider answered (RFC 7009); a non-SMART address exits with
//! the discovery code; `--help` documents every exit code.
#![allow(clippy::unwrap_used)]

mod common;

use chartlink_sandbox::{Config, PortalRobot, Quirks, Sandbox};
use common::{chartlink, link, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_reports_consent_and_renewal_and_unlink_reports_revocation() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    sandbox.admin().set_refresh_tokens(false);
    sandbox.admin().set_quirks(Quirks {
        revoke_refresh_tokens_only: true,
        ..Quirks::default()
    });
    let dir = temp_dir("consent");
    let mut robot = PortalRobot::allowing("maria", "maria-demo", Some("maria-garcia"));
    robot.untick = vec!["Immunizations".into()];
    let (out, opened) = link(&sandbox.fhir_base(), &dir, robot).await;
    // The sandbox offers authorize-post: the browser opens the CLI's own page, which posts the request (client
    // req. 133).
    assert!(
        opened.starts_with("http://127.0.0.1:") && opened.ends_with("/start"),
        "{opened}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("not shared by the provider (will not sync): immunizations"),
        "{stdout}"
    );
    assert!(stdout.contains("access will not last"), "{stdout}");
    let account = stdout
        .split("(account ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap()
        .to_owned();
    let out = chartlink(&dir).args(["unlink", &account]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("revokes only refresh tokens") && !stdout.contains("could not be reached"),
        "{stdout}"
    );
    sandbox.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_smart_address_exits_with_the_discovery_code() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("discovery");
    let out = chartlink(&dir)
        .args(["link", &format!("{}/no-such-fhir", sandbox.base_url())])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let help = chartlink(&dir).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for code in [
        "3  network",
        "6  authorization",
        "9  access must be renewed",
        "10 not a usable SMART server",
        "11 cancelled",
    ] {
        assert!(help.contains(code), "{code}: {help}");
    }
    sandbox.shutdown().await;
}
