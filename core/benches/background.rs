//! Background sync benchmarks (issue 14's targets), against the sandbox over loopback with file-backed stores:
//! a locked sync of the 10,000-resource patient against an unlocked one (target ≤ 1.5×), for the first sync of the
//! record and for a forced full pass over a record already stored, and unlocking after 1,000 locked-written rows
//! (target ≤ 100 ms: opening the sealed batches and writing them as normal rows).
//!
//! Each sandbox runs in a child process (this binary with `CHARTLINK_BENCH_SANDBOX=<patient size>`). Run with
//! `cargo bench -p chartlink-core --bench background`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chartlink_core::{
    AppConfig, AuthBrowser, BrowserError, ChartLink, Host, LockConfig, MemorySecureStore,
    SyncBudget, SyncOptions,
};
use chartlink_sandbox::PortalRobot;
use criterion::{BatchSize, Criterion, criterion_group};

struct Robot(PortalRobot);

#[async_trait]
impl AuthBrowser for Robot {
    async fn authorize(&self, url: String, _r: String) -> Result<String, BrowserError> {
        self.0
            .authorize(&url)
            .await
            .map_err(|e| BrowserError::Failed(e.to_string()))
    }
}

/// A sandbox whose large patient has `size` resources, in a child process; returns it and its FHIR base.
fn spawn_sandbox(size: usize) -> (Child, String) {
    let exe = std::env::current_exe().expect("bench binary");
    let mut child = Command::new(exe)
        .env("CHARTLINK_BENCH_SANDBOX", size.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sandbox child");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("banner");
    let base = line.trim().rsplit(' ').next().expect("url").to_owned();
    (child, format!("{base}/fhir"))
}

fn serve_sandbox(size: usize) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let config = chartlink_sandbox::Config {
            large_patient: Some(size),
            ..chartlink_sandbox::Config::default()
        };
        let sb = chartlink_sandbox::Sandbox::start(config)
            .await
            .expect("sandbox");
        println!("listening {}", sb.base_url());
        std::future::pending::<()>().await;
    });
}

fn sdk(dir: &std::path::Path) -> ChartLink {
    // The secure store lives as long as the SDK (a phone's Keychain outlives the app; here one run is enough).
    let secure = Arc::new(MemorySecureStore::default());
    let host = Host {
        browser: Some(Arc::new(Robot(PortalRobot::allowing(
            "large",
            "large-demo",
            None,
        )))),
        ..Host::new(secure)
    };
    let config = AppConfig {
        data_dir: Some(dir.to_owned()),
        lock: LockConfig {
            timeout_ms: i64::MAX / 4,
            warning_ms: None,
            background_grace_ms: i64::MAX / 4,
        },
        ..AppConfig::new("chartlink-demo", "chartlink-demo://callback")
    };
    ChartLink::new(config, host).expect("sdk")
}

fn options(full: bool) -> SyncOptions {
    SyncOptions {
        page_size: 1000,
        fetch_documents: true,
        force_full: full,
        ..SyncOptions::default()
    }
}

/// Every run is due.
fn budget() -> SyncBudget {
    SyncBudget {
        max_duration_ms: 600_000,
        min_interval_ms: 0,
        ..SyncBudget::default()
    }
}

fn fresh_dir(tag: &str) -> std::path::PathBuf {
    static N: Mutex<u32> = Mutex::new(0);
    let mut n = N.lock().unwrap_or_else(|e| e.into_inner());
    *n += 1;
    let d = std::env::temp_dir().join(format!("cl-bgbench-{tag}-{}-{}", std::process::id(), *n));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (mut large, base) = spawn_sandbox(10_000);
    let mut group = c.benchmark_group("background");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));

    // The first sync of the record: every resource is new.
    for locked in [false, true] {
        let name = if locked {
            "first sync, 10,000-resource patient, locked (sealed to the public key)"
        } else {
            "first sync, 10,000-resource patient, unlocked"
        };
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = fresh_dir("first");
                    let s = sdk(&dir);
                    let id = rt.block_on(s.link(&base)).expect("link").id;
                    if locked {
                        s.lock();
                    }
                    (s, id, dir)
                },
                |(s, id, dir)| {
                    if locked {
                        let r = rt
                            .block_on(s.background_sync_with(&budget(), &options(false)))
                            .expect("locked sync");
                        assert!(r.locked && r.total() >= 9_000, "{r:?}");
                    } else {
                        let r = rt
                            .block_on(s.sync_with(&id, &options(false), &mut |_| {}))
                            .expect("sync");
                        assert!(r.updated() >= 9_000);
                    }
                    drop(s);
                    let _ = std::fs::remove_dir_all(dir);
                },
                BatchSize::PerIteration,
            )
        });
    }

    // A full pass over a record already stored (what a weekly reconciliation does): unlocked compares and keeps;
    // locked seals every page again, to be compared at unlock.
    for locked in [false, true] {
        let dir = fresh_dir("full");
        let s = sdk(&dir);
        let id = rt.block_on(s.link(&base)).expect("link").id;
        rt.block_on(s.sync_with(&id, &options(false), &mut |_| {}))
            .expect("first sync");
        if locked {
            s.lock();
        }
        let name = if locked {
            "full pass over the stored 10,000-resource record, locked"
        } else {
            "full pass over the stored 10,000-resource record, unlocked"
        };
        group.bench_function(name, |b| {
            b.iter(|| {
                if locked {
                    rt.block_on(s.background_sync_with(&budget(), &options(true)))
                        .expect("locked full pass");
                } else {
                    rt.block_on(s.sync_with(&id, &options(true), &mut |_| {}))
                        .expect("full pass");
                }
            })
        });
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = large.kill();

    // Unlock after 1,000 locked-written rows: a 1,000-resource record synced while locked, applied at unlock.
    let (mut small, base) = spawn_sandbox(1_000);
    group.bench_function("unlock after 1,000 locked-written rows", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = fresh_dir("unlock");
                let s = sdk(&dir);
                rt.block_on(s.link(&base)).expect("link");
                s.lock();
                let r = rt
                    .block_on(s.background_sync_with(&budget(), &options(false)))
                    .expect("locked sync");
                assert!(r.total() >= 900, "{r:?}");
                let t = Instant::now();
                s.unlock().expect("unlock");
                total += t.elapsed();
                assert_eq!(s.store().locked_pending().expect("inbox"), 0);
                drop(s);
                let _ = std::fs::remove_dir_all(dir);
            }
            total
        })
    });
    let _ = small.kill();
    group.finish();
}

criterion_group!(background_benches, benches);

fn main() {
    if let Some(size) = std::env::var_os("CHARTLINK_BENCH_SANDBOX") {
        serve_sandbox(size.to_string_lossy().parse().unwrap_or(10_000));
        return;
    }
    background_benches();
    Criterion::default().configure_from_args().final_summary();
}
