//! Two `chartlink` processes on one data directory (issue 20): two runs of `chartlink sync` at once, just after
//! the access token expired, against a server that ends the whole grant when a spent refresh token comes back
//! (reuse detection, as oidc-provider and the sandbox do). The refresh is single-flight across the processes (a
//! lock file in the data directory; the one that waited reads the rotated token), store writes wait for each other
//! (IMMEDIATE transactions), and the file secure store never tears: 20 rounds, never revoked, never purged.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::process::Stdio;

use chartlink_sandbox::{Config, PortalRobot, Sandbox};
use common::{chartlink, link, temp_dir};

fn refresh_count(sandbox: &Sandbox) -> u64 {
    sandbox
        .admin()
        .stats()
        .token_requests
        .get("refresh_token")
        .copied()
        .unwrap_or(0)
}

fn lab_count(dir: &Path) -> usize {
    let out = chartlink(dir).args(["--json", "labs"]).output().unwrap();
    assert!(
        out.status.success(),
        "labs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cli_syncs_at_once_never_end_the_grant_or_tear_the_store() {
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let dir = temp_dir("sync");
    let (out, _) = link(
        &sandbox.fhir_base(),
        &dir,
        PortalRobot::allowing("maria", "maria-demo", Some("maria-garcia")),
    )
    .await;
    assert!(
        out.status.success(),
        "link: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = chartlink(&dir).arg("sync").output().unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let labs = lab_count(&dir);
    assert!(labs > 10, "a real record: {labs} labs");

    for round in 0..20 {
        sandbox.admin().expire_access_tokens(None).unwrap();
        let refreshes = refresh_count(&sandbox);
        let spawn = || {
            chartlink(&dir)
                .arg("sync")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (spawn(), spawn());
        for (name, child) in [("first", a), ("second", b)] {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: the {name} sync failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(
            refresh_count(&sandbox) - refreshes,
            1,
            "round {round}: one refresh for both processes"
        );
        let grants = sandbox.admin().grants().unwrap();
        assert!(
            grants.iter().all(|g| g.revoked_at.is_none()),
            "round {round}: the provider ended the grant (a refresh token was spent twice)"
        );
    }
    assert_eq!(lab_count(&dir), labs, "never purged, nothing lost");
    let _ = std::fs::remove_dir_all(&dir);
    sandbox.shutdown().await;
}
