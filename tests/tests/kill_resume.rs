//! Data safety under SIGKILL: the real `chartlink` CLI links an account at the sandbox (the portal completed over
//! plain HTTP by the scripted patient, the redirect delivered to the CLI's loopback listener), then `chartlink
//! sync` is started again and again and SIGKILLed at seeded random moments. A final sync runs to completion, and
//! the encrypted store, opened with chartlink-core on the same data directory, must hold every resource of the
//! server's record exactly once, each equal to the server's.
//!
//! `CHARTLINK_KILL_SEED` (default 10) picks the kill moments, `CHARTLINK_KILLS` (default 24) their number,
//! `CHARTLINK_KILL_RESOURCES` (default 8000) the size of the record. The CLI binary is built from this workspace
//! by the test (`cargo build -p chartlink-cli`), or taken from `CHARTLINK_CLI` when set.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chartlink_cli::FileSecureStore;
use chartlink_core::{AppConfig, ChartLink, Host, LockConfig, SystemClock};
use chartlink_sandbox::{Config, FaultConfig, PortalRobot, Sandbox};
use chartlink_tests::workspace_root;
use rand::{Rng, SeedableRng};
use serde_json::Value;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The `chartlink` binary of this checkout: built here (a shared target directory may hold another checkout's
/// build), then copied so that a concurrent build cannot swap it mid-test.
fn cli_binary(scratch: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("CHARTLINK_CLI") {
        return PathBuf::from(p);
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(workspace_root())
        .args([
            "build",
            "-p",
            "chartlink-cli",
            "--bin",
            "chartlink",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .expect("cargo runs");
    assert!(out.status.success(), "cargo build -p chartlink-cli failed");
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "chartlink")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo names the chartlink executable");
    let copy = scratch.join("chartlink-under-test");
    std::fs::copy(&exe, &copy).unwrap();
    copy
}

fn cli(bin: &Path, data_dir: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--data-dir")
        .arg(data_dir)
        .arg("--json")
        // No browser opener on PATH: the scripted patient does the portal.
        .env("PATH", data_dir)
        .env_remove("CHARTLINK_DATA_DIR")
        .stdin(Stdio::null());
    c
}

/// `chartlink link FHIR_BASE`, with the scripted patient on the portal and the redirect sent to the CLI's loopback.
async fn link(bin: &Path, data_dir: &Path, fhir_base: &str) -> Value {
    let mut child = cli(bin, data_dir)
        .args(["link", fhir_base])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.starts_with("http"))
    })
    .await
    .unwrap()
    .expect("the CLI prints the portal URL");
    let redirect = PortalRobot::allowing("large", "large-demo", None)
        .authorize(&url)
        .await
        .unwrap();
    assert!(redirect.starts_with("http://127.0.0.1:"), "{redirect}");
    let _ = chartlink_core::http::Http::new().unwrap();
    let page = reqwest::get(&redirect).await.unwrap();
    assert!(page.status().is_success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(out.status.success(), "chartlink link failed");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The SDK on the CLI's data directory, as the CLI opens it.
fn open_store(data_dir: &Path) -> ChartLink {
    let host = Host::new(Arc::new(
        FileSecureStore::new(data_dir.join("keys")).unwrap(),
    ));
    let host = Host {
        clock: Arc::new(SystemClock),
        ..host
    };
    let config = AppConfig {
        data_dir: Some(data_dir.to_path_buf()),
        lock: LockConfig::desktop(),
        ..AppConfig::new("chartlink-demo", "http://127.0.0.1/callback")
    };
    ChartLink::new(config, host).unwrap()
}

fn stored_count(data_dir: &Path, account: &str) -> usize {
    let sdk = open_store(data_dir);
    let keys = sdk.account_keys(account).unwrap();
    sdk.store().inventory(&keys, account).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_killed_at_random_moments_resumes_with_every_record_exactly_once() {
    let seed: u64 = env_or("CHARTLINK_KILL_SEED", 10);
    let kills: usize = env_or("CHARTLINK_KILLS", 24);
    let size: usize = env_or("CHARTLINK_KILL_RESOURCES", 8000);
    let scratch = std::env::temp_dir().join(format!("cl-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).unwrap();
    let data_dir = scratch.join("data");
    let bin = cli_binary(&scratch);
    let sb = Sandbox::start(Config {
        large_patient: Some(size),
        ..Config::default()
    })
    .await
    .unwrap();
    let account = link(&bin, &data_dir, &sb.fhir_base()).await;
    let account_id = account["id"].as_str().unwrap().to_owned();
    assert_eq!(account["patient_id"], "large-patient");

    // Every FHIR request a little slow, so a full sync spans many kill windows.
    sb.admin().set_faults(FaultConfig {
        latency_ms: 15,
        ..FaultConfig::default()
    });
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut landed = 0;
    let mut exited_first = 0;
    let mut progress = Vec::new();
    for i in 0..kills {
        let delay = Duration::from_millis(rng.random_range(5..=400));
        let mut child = cli(&bin, &data_dir)
            .arg("sync")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        tokio::time::sleep(delay).await;
        match child.try_wait().unwrap() {
            Some(status) => {
                exited_first += 1;
                eprintln!(
                    "kill {i}: the sync had already exited ({status}) after {:?}",
                    started.elapsed()
                );
            }
            None => {
                // std's Child::kill is SIGKILL on unix: no destructor, no flush, no cleanup.
                child.kill().unwrap();
                let status = child.wait().unwrap();
                assert_eq!(
                    std::os::unix::process::ExitStatusExt::signal(&status),
                    Some(9),
                    "kill {i}: killed by SIGKILL"
                );
                landed += 1;
            }
        }
        progress.push(stored_count(&data_dir, &account_id));
    }
    eprintln!(
        "seed {seed}: {landed} of {kills} kills landed mid-sync ({exited_first} after the sync had exited); resources stored after each kill: {progress:?}"
    );

    sb.admin().clear_faults();
    let out = cli(&bin, &data_dir)
        .arg("sync")
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "the final sync completes");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report[0]["failures"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );

    // The server's record: every resource of the synced types (Binary content is stored apart, RelatedPerson is
    // not searched).
    let mut want: Vec<(String, String, Option<String>)> = sb
        .admin()
        .truth("large-patient", true)
        .unwrap()
        .into_iter()
        .filter(|(ty, _, _)| !matches!(ty.as_str(), "Binary" | "RelatedPerson"))
        .map(|(ty, id, v)| (ty, id, Some(v.to_string())))
        .collect();
    want.sort();
    let sdk = open_store(&data_dir);
    let keys = sdk.account_keys(&account_id).unwrap();
    let got = sdk.store().inventory(&keys, &account_id).unwrap();
    let mut unique = got.clone();
    unique.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
    assert_eq!(unique.len(), got.len(), "a resource is stored twice");
    let missing: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(5).collect();
    let extra: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    assert_eq!(got, want);
    // And not corrupted: each stored resource equals the server's.
    let mut types: Vec<&str> = want.iter().map(|(t, _, _)| t.as_str()).collect();
    types.dedup();
    for ty in types {
        for local in sdk.resources(&account_id, ty).unwrap() {
            let id = local["id"].as_str().unwrap();
            let server = sb.admin().resource(ty, id).unwrap().unwrap();
            assert_eq!(local, server, "{ty}/{id}");
        }
    }
    assert!(
        landed >= 20,
        "at least 20 kills must land mid-sync, {landed} did (seed {seed})"
    );
    eprintln!(
        "{} resources, each exactly once and equal to the server's",
        got.len()
    );
    sb.shutdown().await;
    let _ = std::fs::remove_dir_all(&scratch);
}
