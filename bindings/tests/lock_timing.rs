//! The lock takes effect when it is due, not at the next call (issue 20): the background grace period ends in a
//! lock by itself while the app sits in the background, and a lock stops a sync that is waiting on a server's
//! Retry-After or on a slow answer at once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Portal, Store};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chartlink_ffi::{
    ChartLink, ChartLinkConfig, ChartLinkError, Event, EventListener, HostClock, LockReason,
};
use chartlink_sandbox::{Config, FaultKind, PortalRobot, Sandbox, ScriptedFault};

/// A clock the test moves (the device's clock, counting through sleep).
#[derive(Default)]
struct Clock(AtomicI64);

impl HostClock for Clock {
    fn now_unix_ms(&self) -> i64 {
        1_800_000_000_000 + self.0.load(Ordering::SeqCst)
    }
    fn monotonic_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl EventListener for Events {
    fn on_event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

fn config(grace_seconds: i64) -> ChartLinkConfig {
    ChartLinkConfig {
        client_id: "chartlink-demo".into(),
        redirect_uri: "chartlink-demo://callback".into(),
        app_name: String::new(),
        data_dir: None,
        lock_timeout_seconds: 600,
        lock_warning_seconds: 0,
        background_grace_seconds: grace_seconds,
        revocation: None,
        wanted: Vec::new(),
    }
}

#[test]
fn the_background_grace_period_ends_in_a_lock_without_another_call() {
    let clock = Arc::new(Clock::default());
    let events = Arc::new(Events::default());
    let sdk = ChartLink::new(
        config(30),
        Arc::new(Store::default()),
        None,
        Some(events.clone()),
        Some(clock.clone()),
    )
    .unwrap();
    sdk.app_backgrounded();
    clock.0.fetch_add(31_000, Ordering::SeqCst);
    // No SDK call from here on: the watcher alone must lock.
    let deadline = Instant::now() + Duration::from_secs(5);
    let locked = || {
        events.0.lock().unwrap().iter().any(|e| {
            matches!(
                e,
                Event::Locked {
                    reason: LockReason::Background
                }
            )
        })
    };
    while !locked() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(locked(), "no Locked(Background) while the app stayed away");

    // Back in the foreground before the grace period ends: no lock.
    let events = Arc::new(Events::default());
    let sdk2 = ChartLink::new(
        config(30),
        Arc::new(Store::default()),
        None,
        Some(events.clone()),
        Some(clock.clone()),
    )
    .unwrap();
    sdk2.app_backgrounded();
    clock.0.fetch_add(10_000, Ordering::SeqCst);
    sdk2.app_foregrounded();
    clock.0.fetch_add(60_000, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(2_500));
    assert!(
        events
            .0
            .lock()
            .unwrap()
            .iter()
            .all(|e| !matches!(e, Event::Locked { .. }))
    );
    drop(sdk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_stops_a_sync_waiting_on_retry_after_or_a_slow_answer_at_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    {
        let sandbox = Sandbox::start(Config::default()).await.unwrap();
        let sdk = ChartLink::new(
            config(30),
            Arc::new(Store::default()),
            Some(Arc::new(Portal(PortalRobot::allowing(
                "daniel",
                "daniel-demo",
                Some("daniel-chen"),
            )))),
            None,
            None,
        )
        .unwrap();
        let account = sdk.link(sandbox.fhir_base(), None).await.unwrap();
        for (label, kind) in [
            (
                "Retry-After: 120",
                FaultKind::RateLimit {
                    retry_after_secs: 120,
                },
            ),
            ("an answer 60 s away", FaultKind::Latency { ms: 60_000 }),
        ] {
            sandbox.admin().clear_faults();
            sandbox.admin().script_fault(ScriptedFault {
                path_prefix: "/fhir/".into(),
                kind,
                count: 10_000,
            });
            let started = Instant::now();
            let (result, ()) = tokio::join!(sdk.sync(account.id.clone(), None), async {
                tokio::time::sleep(Duration::from_millis(700)).await;
                sdk.lock().unwrap();
            });
            assert_eq!(result.unwrap_err(), ChartLinkError::Locked, "{label}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{label}: the sync went on for {:?} after the lock",
                started.elapsed()
            );
            sdk.unlock().unwrap();
        }
        sandbox.admin().clear_faults();
        sandbox.shutdown().await;
    }
}
