//! The randomized fault matrix with the token endpoint in it: over many seeds (`FAULT_MATRIX_SEEDS`, default 200;
//! `FAULT_MATRIX_FIRST_SEED` to start elsewhere), each sync runs with a seeded mix of
//!
//! - random FHIR faults (500/503, 429, connections cut mid-body, truncated JSON),
//! - scripted token-endpoint faults: a load balancer's HTML 503 page, `temporarily_unavailable` (400 and 503), a
//!   429, a 500 `server_error`, a slow answer,
//! - something that makes a refresh necessary mid-sync: access tokens the server ends early
//!   (`expire_access_tokens`), the server's clock moved past their lifetime (`advance_clock`), or both clocks moved,
//! - and, sometimes, the SDK locked in the middle of the sync (which must stop with `Error::Locked`).
//!
//! None of these is a revocation. After each seed the faults are cleared, the SDK unlocked and synced until no
//! query fails, and then the account must still be active (not revoked, not purged) and hold exactly the
//! server's record: nothing lost, nothing duplicated. Every failing seed is collected and reported at the end.
//! One sandbox and one linked account serve all seeds (a seed that kills the account links a new one, so the
//! report shows every failing seed rather than only the first).
#![allow(clippy::unwrap_used)]

mod common;

use common::RobotBrowser;
use std::sync::Arc;
use std::time::Duration;

use chartlink_core::fhir::RetryPolicy;
use chartlink_core::sync::SyncOptions;
use chartlink_core::{
    AccountStatus, AppConfig, ChartLink, ClientAuth, DataCategory, Error, Host, ManualClock,
    MemorySecureStore,
};
use chartlink_sandbox::{Config, FaultConfig, FaultKind, PortalRobot, Sandbox, ScriptedFault};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PATIENT: &str = "leo-garcia";

fn sdk(clock: Arc<ManualClock>) -> ChartLink {
    let host = Host {
        secure_store: Arc::new(MemorySecureStore::default()),
        browser: Some(Arc::new(RobotBrowser(PortalRobot::allowing(
            "maria",
            "maria-demo",
            Some(PATIENT),
        )))),
        clock,
        listener: None,
    };
    let config = AppConfig {
        client_id: "chartlink-demo".into(),
        redirect_uri: "chartlink-demo://callback".into(),
        wanted: DataCategory::ALL.to_vec(),
        client_auth: ClientAuth::Public,
        app_name: "fault matrix".into(),
        data_dir: None,
        // The clock jumps by hours; only the explicit lock() of the matrix may lock.
        lock: chartlink_core::LockConfig {
            timeout_ms: 365 * 24 * 3600 * 1000,
            warning_ms: None,
            background_grace_ms: 0,
        },
        // A wrong revocation shows as a purge too.
        revocation: chartlink_core::RevocationPolicy::PurgeNow,
    };
    ChartLink::new(config, host).unwrap()
}

fn options(force_full: bool) -> SyncOptions {
    SyncOptions {
        retry: RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        page_size: 50,
        force_full,
        fetch_documents: false,
        ..SyncOptions::default()
    }
}

fn truth(sb: &Sandbox) -> Vec<(String, String, Option<String>)> {
    let mut t: Vec<_> = sb
        .admin()
        .truth(PATIENT, true)
        .unwrap()
        .into_iter()
        .filter(|(ty, _, _)| !matches!(ty.as_str(), "Binary" | "RelatedPerson"))
        .map(|(ty, id, v)| (ty, id, Some(v.to_string())))
        .collect();
    t.sort();
    t
}

fn inventory(sdk: &ChartLink, account: &str) -> Vec<(String, String, Option<String>)> {
    let keys = sdk.account_keys(account).unwrap();
    sdk.store().inventory(&keys, account).unwrap()
}

/// A token-endpoint fault that is not a revocation.
fn token_fault(rng: &mut StdRng) -> (&'static str, FaultKind) {
    let json = |status: u16| {
        FaultKind::Body {
        status,
        content_type: "application/json".into(),
        body: r#"{"error":"temporarily_unavailable","error_description":"the authorization server is overloaded"}"#.into(),
    }
    };
    match rng.random_range(0..6) {
        0 => (
            "HTML 503 page",
            FaultKind::Body {
                status: 503,
                content_type: "text/html".into(),
                body: "<html><head><title>503 Service Temporarily Unavailable</title></head><body><center><h1>503 Service Temporarily Unavailable</h1></center><hr><center>nginx</center></body></html>".into(),
            },
        ),
        1 => ("temporarily_unavailable (503)", json(503)),
        2 => ("temporarily_unavailable (400)", json(400)),
        3 => (
            "429 with Retry-After",
            FaultKind::RateLimit {
                retry_after_secs: 0,
            },
        ),
        4 => ("500 server_error", FaultKind::Status { status: 500 }),
        _ => (
            "slow (1.2 s)",
            FaultKind::Latency { ms: 1_200 },
        ),
    }
}

#[derive(Debug, Default)]
struct Failure {
    seed: u64,
    case: String,
    what: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_faults_expiry_clock_jumps_and_locks_over_200_seeds_lose_nothing() {
    let seeds: u64 = std::env::var("FAULT_MATRIX_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let first: u64 = std::env::var("FAULT_MATRIX_FIRST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let clock = Arc::new(ManualClock::new());
    let sdk = sdk(clock.clone());
    let mut account = sdk.link(&sb.fhir_base()).await.unwrap().id;
    sdk.sync_with(&account, &options(true), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(inventory(&sdk, &account), truth(&sb));
    let mut failures: Vec<Failure> = Vec::new();
    let mut token_faults_hit = 0u64;
    let mut locked_syncs = 0;
    let mut refreshes_total = 0u64;
    for seed in first..first + seeds {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut case = Vec::new();
        // FHIR faults.
        if rng.random_bool(0.7) {
            let c = FaultConfig {
                error_rate: rng.random_range(0.0..0.08),
                rate_limit_rate: rng.random_range(0.0..0.04),
                retry_after_secs: 0,
                reset_rate: rng.random_range(0.0..0.04),
                truncate_rate: rng.random_range(0.0..0.04),
                ..FaultConfig::default()
            };
            case.push("FHIR faults".to_owned());
            sb.admin().set_faults_seeded(c, seed);
        }
        // Token-endpoint faults, one or two kinds.
        for _ in 0..rng.random_range(1..=2) {
            let (name, kind) = token_fault(&mut rng);
            let count = rng.random_range(1..=3);
            case.push(format!("token endpoint: {name} x{count}"));
            sb.admin().script_fault(ScriptedFault {
                path_prefix: "/oauth2/token".into(),
                kind,
                count,
            });
        }
        // What makes the SDK refresh during this sync.
        match rng.random_range(0..3) {
            0 => {
                case.push("access tokens expired early".into());
                sb.admin().expire_access_tokens(None).unwrap();
            }
            1 => {
                let secs = rng.random_range(3_601..7_200);
                case.push(format!("server clock +{secs} s"));
                sb.admin().advance_clock(secs);
            }
            _ => {
                let secs = rng.random_range(3_601..7_200);
                case.push(format!("both clocks +{secs} s"));
                sb.admin().advance_clock(secs);
                clock.advance_ms(secs * 1000);
            }
        }
        let lock_at = rng.random_bool(0.25).then(|| rng.random_range(1..12usize));
        if let Some(n) = lock_at {
            case.push(format!("locked after {n} pages"));
        }
        let force_full = rng.random_bool(0.3);
        if force_full {
            case.push("full pass".into());
        }
        let case = case.join(", ");
        let fault = |what: String, failures: &mut Vec<Failure>| {
            failures.push(Failure {
                seed,
                case: case.clone(),
                what,
            })
        };

        let injected_before = sb.admin().faults_injected();
        let refreshes_before = sb
            .admin()
            .stats()
            .token_requests
            .get("refresh_token")
            .copied()
            .unwrap_or(0);
        let mut pages = 0usize;
        let mut did_lock = false;
        let result = sdk
            .sync_with(&account, &options(force_full), &mut |p| {
                if p.pages > 0 {
                    pages += 1;
                }
                if lock_at.is_some_and(|n| pages >= n) && !did_lock {
                    did_lock = true;
                    sdk.lock();
                }
            })
            .await;
        match (&result, did_lock) {
            (Err(Error::AccessRevoked), _) => fault(
                "the faulted sync answered AccessRevoked: a transient failure was taken for a revocation".into(),
                &mut failures,
            ),
            (Err(Error::Locked), true) => locked_syncs += 1,
            (Ok(_), true) => {
                // The lock came with the last page: nothing left to cut.
            }
            (Err(Error::Locked), false) => fault("Locked without a lock".into(), &mut failures),
            (Err(Error::Network(_)), _) | (Ok(_), false) => {}
            (Err(e), _) => fault(format!("the faulted sync failed with {e:?}"), &mut failures),
        }
        let refreshes = sb
            .admin()
            .stats()
            .token_requests
            .get("refresh_token")
            .copied()
            .unwrap_or(0)
            - refreshes_before;
        refreshes_total += refreshes;
        token_faults_hit += sb.admin().faults_injected() - injected_before;

        // Recovery: no faults, unlocked, sync until nothing fails.
        sb.admin().clear_faults();
        if sdk.locked().is_some() {
            sdk.unlock().unwrap();
        }
        let mut recovered = false;
        for _ in 0..5 {
            match sdk.sync_with(&account, &options(false), &mut |_| {}).await {
                Ok(r) if r.failures.is_empty() => {
                    recovered = true;
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    fault(
                        format!("the recovery sync failed with {e:?}"),
                        &mut failures,
                    );
                    break;
                }
            }
        }
        let status = sdk
            .accounts()
            .unwrap()
            .into_iter()
            .find(|a| a.id == account)
            .map(|a| a.status);
        if status != Some(AccountStatus::Active) {
            fault(
                format!("the account is no longer usable after recovery: {status:?}"),
                &mut failures,
            );
        } else if !recovered {
            fault(
                "five syncs without faults still had failing queries".into(),
                &mut failures,
            );
        } else {
            let got = inventory(&sdk, &account);
            let want = truth(&sb);
            if got != want {
                let lost = want.iter().filter(|r| !got.contains(r)).count();
                let extra = got.len() + lost - want.len();
                fault(
                    format!(
                        "the record differs from the server's: {lost} lost or stale, {extra} extra or duplicated"
                    ),
                    &mut failures,
                );
            }
        }
        if failures.last().is_some_and(|f| f.seed == seed) {
            // The account is dead or damaged: link a fresh one so the next seeds are tested too.
            if status != Some(AccountStatus::Active) {
                if let Some(old) = sdk
                    .accounts()
                    .unwrap()
                    .into_iter()
                    .find(|a| a.id == account)
                {
                    let _ = sdk.confirm_revoked(&old.id).await;
                }
                account = sdk.link(&sb.fhir_base()).await.unwrap().id;
                let _ = sdk.sync_with(&account, &options(true), &mut |_| {}).await;
            }
        }
    }
    let report: String = failures
        .iter()
        .map(|f| format!("  seed {}: {} [{}]\n", f.seed, f.what, f.case))
        .collect();
    let mut failed_seeds: Vec<u64> = failures.iter().map(|f| f.seed).collect();
    failed_seeds.dedup();
    eprintln!(
        "fault matrix: seeds {first}..{}, {token_faults_hit} faults injected, {refreshes_total} refreshes reached the server, {locked_syncs} syncs cut by the lock, {} seeds failed: {failed_seeds:?}",
        first + seeds,
        failed_seeds.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {seeds} seeds failed:\n{report}",
        failed_seeds.len()
    );
    assert!(
        seeds < 20 || locked_syncs > 0,
        "the lock really cut syncs short"
    );
    sb.shutdown().await;
}
