//! Sync on the network a phone has (issue 13): the initial sync of the 10,000-resource patient with 0 ms and
//! 100 ms added to every FHIR request (the sandbox's latency fault), one query at a time and with the default
//! concurrency, against the page-chain floor (the pages of the longest query × the latency, since the pages of one
//! query must follow each other), and against SMART's client-py fetching the same searches in the same run.
//!
//! Run with `cargo bench -p chartlink-core --bench network` (set `NETWORK_BENCH_RUNS` for more runs per case; the
//! median is reported). client-py runs when the test venv exists (`cargo xtask tools` makes it) or
//! `CHARTLINK_PYTHON` names a Python with `fhirclient`.

#[path = "../tests/common/mod.rs"]
mod common;

use common::RobotBrowser;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chartlink_core::{AppConfig, ChartLink, Host, LockConfig, MemorySecureStore, SyncOptions};
use chartlink_sandbox::{Config, FaultConfig, PortalRobot, Sandbox};

const LARGE: usize = 10_000;

fn sdk() -> ChartLink {
    let host = Host {
        browser: Some(Arc::new(RobotBrowser(PortalRobot::allowing(
            "large",
            "large-demo",
            None,
        )))),
        ..Host::new(Arc::new(MemorySecureStore::default()))
    };
    let dir = std::env::temp_dir().join(format!(
        "cl-netbench-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let config = AppConfig {
        data_dir: Some(dir),
        lock: LockConfig {
            timeout_ms: i64::MAX / 4,
            warning_ms: None,
            background_grace_ms: i64::MAX / 4,
        },
        ..AppConfig::new("chartlink-demo", "chartlink-demo://callback")
    };
    ChartLink::new(config, host).expect("sdk")
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

struct Run {
    secs: f64,
    requests: u64,
    /// Pages of the longest query (the chain no concurrency can shorten).
    longest_chain: usize,
    resources: usize,
}

fn chartlink_sync(rt: &tokio::runtime::Runtime, sb: &Sandbox, concurrency: usize) -> Run {
    let s = sdk();
    let id = rt.block_on(s.link(&sb.fhir_base())).expect("link").id;
    let options = SyncOptions {
        page_size: page(),
        concurrency,
        ..SyncOptions::default()
    };
    let before = sb.admin().stats().fhir_requests;
    let mut pages: BTreeMap<String, usize> = BTreeMap::new();
    let started = Instant::now();
    let report = rt
        .block_on(s.sync_with(&id, &options, &mut |p| {
            let e = pages.entry(p.query.clone()).or_default();
            *e = (*e).max(p.pages);
        }))
        .expect("sync");
    let secs = started.elapsed().as_secs_f64();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    if let Some(dir) = s.store().path().and_then(|p| p.parent()).map(PathBuf::from) {
        drop(s);
        let _ = std::fs::remove_dir_all(dir);
    }
    Run {
        secs,
        requests: sb.admin().stats().fhir_requests - before,
        longest_chain: pages.values().copied().max().unwrap_or(0),
        resources: report.resources_seen,
    }
}

/// SMART's client-py (`tests/py/client_py_sync.py`): the same searches, one request after another.
fn client_py(sb: &Sandbox) -> Option<(f64, u64)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = std::env::var_os("CHARTLINK_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            let p = target.join("tools/venv/bin/python");
            p.exists().then_some(p)
        })?;
    let before = sb.admin().stats().fhir_requests;
    let started = Instant::now();
    let out = std::process::Command::new(python)
        .arg(root.join("tests/py/client_py_sync.py"))
        .args([&sb.fhir_base(), "large", "large-demo", &page().to_string()])
        .output()
        .ok()?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        eprintln!(
            "client-py failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    Some((secs, sb.admin().stats().fhir_requests - before))
}

/// The page size asked for: the SDK's default, or `NETWORK_BENCH_PAGE`.
fn page() -> usize {
    std::env::var("NETWORK_BENCH_PAGE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SyncOptions::default().page_size)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runs: usize = std::env::var("NETWORK_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    // The sandbox on a runtime of its own, as a server is.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sb = server_rt
        .block_on(Sandbox::start(Config {
            large_patient: Some(LARGE),
            ..Config::default()
        }))
        .expect("sandbox");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    println!(
        "initial sync of the {LARGE}-resource patient, {} per page, median of {runs} (client-py: 1 run)",
        page()
    );
    println!(
        "{:>8} {:>12} {:>9} {:>9} {:>10} {:>13} {:>12}",
        "latency", "concurrency", "time s", "requests", "chain", "time / floor", "vs client-py"
    );
    for latency in [0u64, 100] {
        sb.admin().set_faults(FaultConfig {
            latency_ms: latency,
            ..FaultConfig::default()
        });
        let peer = client_py(&sb);
        for concurrency in [1usize, SyncOptions::default().concurrency] {
            let mut last = None;
            let times: Vec<f64> = (0..runs)
                .map(|_| {
                    let r = chartlink_sync(&rt, &sb, concurrency);
                    let t = r.secs;
                    last = Some(r);
                    t
                })
                .collect();
            let r = last.expect("a run");
            let t = median(times);
            let floor = r.longest_chain as f64 * latency as f64 / 1000.0;
            println!(
                "{:>6}ms {:>12} {:>9.2} {:>9} {:>10} {:>13} {:>12}",
                latency,
                concurrency,
                t,
                r.requests,
                r.longest_chain,
                if floor > 0.0 {
                    format!("{:.2}x", t / floor)
                } else {
                    "-".into()
                },
                peer.map_or("-".into(), |(p, _)| format!("{:.2}x", t / p)),
            );
            assert!(r.resources >= LARGE * 9 / 10);
        }
        if let Some((p, requests)) = peer {
            println!("{latency:>6}ms client-py: {p:.2} s, {requests} requests (one after another)");
        }
    }
    sb.admin().clear_faults();
    std::thread::sleep(Duration::from_millis(10));
}
