//! Record sync and read benchmarks against the sandbox over loopback (issue 4's targets):
//! initial sync of a 10,000-resource patient (≤ 1 s), a no-change resync (≤ 150 ms), LabTrend for one code over
//! 10 years (≤ 2 ms), cold open to the first summary (≤ 30 ms), and the peak RSS of a sync (≤ 64 MB).
//!
//! The sandbox runs in a child process (this same binary, started with `CHARTLINK_BENCH_SANDBOX=1`), so the memory
//! figure is the SDK's alone. Run with `cargo bench -p chartlink-core --bench sync`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::RobotBrowser;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chartlink_core::{AppConfig, ChartLink, Host, LockConfig, MemorySecureStore, SyncOptions};
use chartlink_sandbox::PortalRobot;
use criterion::{BatchSize, Criterion, criterion_group};

const LARGE: usize = 10_000;

/// The sandbox in a child process; returns it and its FHIR base.
fn spawn_sandbox() -> (Child, String) {
    let exe = std::env::current_exe().expect("bench binary");
    let mut child = Command::new(exe)
        .env("CHARTLINK_BENCH_SANDBOX", "1")
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

fn serve_sandbox() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let config = chartlink_sandbox::Config {
            large_patient: Some(LARGE),
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
    sdk_for(dir, PortalRobot::allowing("large", "large-demo", None))
}

/// An SDK with a file-backed store in `dir`, linking through the scripted patient `robot`, with no idle lock.
fn sdk_for(dir: &std::path::Path, robot: PortalRobot) -> ChartLink {
    // One secure store per data directory for the whole run, as a phone's Keychain outlives the app.
    static STORES: std::sync::Mutex<Vec<(std::path::PathBuf, Arc<MemorySecureStore>)>> =
        std::sync::Mutex::new(Vec::new());
    let secure = {
        let mut stores = STORES.lock().expect("stores");
        match stores.iter().find(|(d, _)| d == dir) {
            Some((_, s)) => s.clone(),
            None => {
                let s = Arc::new(MemorySecureStore::default());
                stores.push((dir.to_owned(), s.clone()));
                s
            }
        }
    };
    let host = Host {
        browser: Some(Arc::new(RobotBrowser(robot))),
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

fn options() -> SyncOptions {
    SyncOptions {
        page_size: 1000,
        fetch_documents: true,
        ..SyncOptions::default()
    }
}

fn fresh_dir(tag: &str) -> std::path::PathBuf {
    static N: Mutex<u32> = Mutex::new(0);
    let mut n = N.lock().unwrap_or_else(|e| e.into_inner());
    *n += 1;
    let d = std::env::temp_dir().join(format!("cl-bench-{tag}-{}-{}", std::process::id(), *n));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn benches(c: &mut Criterion) {
    let (mut child, base) = spawn_sandbox();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut group = c.benchmark_group("sync");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));

    group.bench_function("initial sync, 10,000-resource patient", |b| {
        b.iter_batched(
            || {
                let dir = fresh_dir("initial");
                let s = sdk(&dir);
                let id = rt.block_on(s.link(&base)).expect("link").id;
                (s, id, dir)
            },
            |(s, id, dir)| {
                let report = rt
                    .block_on(s.sync_with(&id, &options(), &mut |_| {}))
                    .expect("sync");
                assert!(
                    report.resources_seen + report.documents_fetched >= LARGE * 9 / 10,
                    "{} resources",
                    report.resources_seen
                );
                let _ = std::fs::remove_dir_all(dir);
            },
            BatchSize::PerIteration,
        )
    });

    let dir = fresh_dir("warm");
    let warm = sdk(&dir);
    let id = rt.block_on(warm.link(&base)).expect("link").id;
    rt.block_on(warm.sync_with(&id, &options(), &mut |_| {}))
        .expect("first sync");
    warm.switch_patient(&id).expect("switch");
    group.bench_function("no-change resync", |b| {
        b.iter(|| {
            let r = rt
                .block_on(warm.sync_with(&id, &options(), &mut |_| {}))
                .expect("resync");
            assert_eq!(r.updated(), 0);
        })
    });
    group.finish();

    let mut reads = c.benchmark_group("reads");
    reads.bench_function("LabTrend HbA1c, dense record (~400 results)", |b| {
        b.iter(|| {
            let t = warm.lab_trend("4548-4").expect("trend").expect("points");
            assert!(t.points.len() >= 20);
        })
    });
    // The target's case: one code over 10 years at a clinical cadence (Daniel's quarterly HbA1c, ~40 points).
    let daniel_dir = fresh_dir("daniel");
    let daniel = sdk_for(
        &daniel_dir,
        PortalRobot::allowing("daniel", "daniel-demo", Some("daniel-chen")),
    );
    let daniel_id = rt.block_on(daniel.link(&base)).expect("link").id;
    rt.block_on(daniel.sync_with(&daniel_id, &options(), &mut |_| {}))
        .expect("sync");
    daniel.switch_patient(&daniel_id).expect("switch");
    reads.bench_function("LabTrend HbA1c, 10 years quarterly", |b| {
        b.iter(|| {
            let t = daniel.lab_trend("4548-4").expect("trend").expect("points");
            assert!(t.points.len() >= 30);
        })
    });
    drop(daniel);
    let _ = std::fs::remove_dir_all(&daniel_dir);
    drop(warm);
    reads.sample_size(20);
    reads.bench_function("cold open to the first summary", |b| {
        b.iter(|| {
            let s = sdk(&dir);
            s.switch_patient(&id).expect("switch");
            let summary = s.summary().expect("summary");
            assert!(summary.patient.is_some());
        })
    });
    reads.finish();
    let _ = child.kill();
    let _ = std::fs::remove_dir_all(dir);
}

/// Peak resident memory of a whole initial sync in a fresh process (this binary, re-run).
fn peak_rss_of_sync() {
    if std::env::var_os("CHARTLINK_BENCH_RSS_CHILD").is_some() {
        let (mut child, base) = spawn_sandbox();
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let dir = fresh_dir("rss");
        let s = sdk(&dir);
        let id = rt.block_on(s.link(&base)).expect("link").id;
        let before = vm_hwm_kb();
        let started = Instant::now();
        let report = rt
            .block_on(s.sync_with(&id, &options(), &mut |_| {}))
            .expect("sync");
        println!(
            "rss: peak {} MB (before the sync {} MB) for {} resources in {} ms",
            vm_hwm_kb() / 1024,
            before / 1024,
            report.resources_seen,
            started.elapsed().as_millis()
        );
        let _ = child.kill();
        let _ = std::fs::remove_dir_all(dir);
        return;
    }
    let exe = std::env::current_exe().expect("bench binary");
    let out = Command::new(exe)
        .env("CHARTLINK_BENCH_RSS_CHILD", "1")
        .arg("--bench")
        .output()
        .expect("rss child");
    print!(
        "{}",
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("rss:"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    println!();
}

fn vm_hwm_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

criterion_group!(sync_benches, benches);

fn main() {
    if std::env::var_os("CHARTLINK_BENCH_SANDBOX").is_some() {
        serve_sandbox();
        return;
    }
    peak_rss_of_sync();
    if std::env::var_os("CHARTLINK_BENCH_RSS_CHILD").is_some() {
        return;
    }
    sync_benches();
    Criterion::default().configure_from_args().final_summary();
}
