//! Issue 20: the FFI's synchronous `new` and `unlock` never apply the locked inbox on the caller's thread (the
//! Android quickstart builds the client on the main thread; a 262 MB inbox took 17 s inside them). They return at
//! once; the SDK's runtime applies the inbox and says so with `Event::LockedInboxApplied`; reads until then show the
//! record as it was before the inbox, and after it the whole record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Portal, Store};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use chartlink_ffi::{
    ChartLink, ChartLinkConfig, Event, EventListener, SecureStore, SecureStoreError, SyncBudget,
};
use chartlink_sandbox::{Config, PortalRobot, Sandbox};
use serde_json::json;

/// A secure store whose reads of inbox secrets wait while the gate is closed: an apply of the locked inbox (which
/// reads the account's inbox secret first) cannot finish until the test opens it.
#[derive(Default)]
struct Gated {
    inner: Store,
    closed: Mutex<bool>,
    opened: Condvar,
}

impl Gated {
    fn close(&self) {
        *self.closed.lock().unwrap() = true;
    }
    fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }
}

impl SecureStore for Gated {
    fn get(&self, key: String) -> Result<Option<Vec<u8>>, SecureStoreError> {
        if key.starts_with("chartlink/inbox-psk/") {
            let mut closed = self.closed.lock().unwrap();
            while *closed {
                closed = self.opened.wait(closed).unwrap();
            }
        }
        self.inner.get(key)
    }
    fn put(&self, key: String, value: Vec<u8>) -> Result<(), SecureStoreError> {
        self.inner.put(key, value)
    }
    fn delete(&self, key: String) -> Result<(), SecureStoreError> {
        self.inner.delete(key)
    }
    fn keys(&self, prefix: String) -> Result<Vec<String>, SecureStoreError> {
        self.inner.keys(prefix)
    }
}

#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl EventListener for Events {
    fn on_event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Events {
    fn applied(&self) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::LockedInboxApplied { batches } if *batches > 0))
    }
}

fn config(dir: &std::path::Path) -> ChartLinkConfig {
    ChartLinkConfig {
        client_id: "chartlink-demo".into(),
        redirect_uri: "chartlink-demo://callback".into(),
        app_name: String::new(),
        data_dir: Some(dir.to_string_lossy().into_owned()),
        lock_timeout_seconds: 3600,
        lock_warning_seconds: 0,
        background_grace_seconds: 0,
        revocation: None,
        wanted: Vec::new(),
    }
}

fn due_now() -> SyncBudget {
    SyncBudget {
        max_duration_ms: 60_000,
        max_bytes: 0,
        metered: false,
        low_battery: false,
        min_interval_seconds: 0,
        locked_inbox_max_bytes: 0,
    }
}

/// Files a new lab result for Daniel on the server, a little later by its clock (so it is new to an incremental
/// sync).
fn new_lab(sandbox: &Sandbox, id: &str) {
    sandbox.admin().advance_clock(120);
    sandbox
        .admin()
        .put_resource(json!({
            "resourceType": "Observation", "id": id, "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}], "text": "Glucose"},
            "subject": {"reference": "Patient/daniel-chen"}, "effectiveDateTime": "2026-11-30",
            "valueQuantity": {"value": 101, "unit": "mg/dL"}
        }))
        .unwrap();
}

/// Runs `f` on another thread: `Some(result)` when it returned within 10 s, `None` when it was still blocked.
fn returns_at_once<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10)).ok()
}

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "no {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn ids(sdk: &ChartLink) -> Vec<String> {
    let mut ids: Vec<String> = sdk
        .lab_results(None)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_and_unlock_hand_the_locked_inbox_to_the_runtime() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sandbox = Sandbox::start(Config::default()).await.unwrap();
    let dir = std::env::temp_dir().join(format!("cl-ffi-inbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Arc::new(Gated::default());
    let events = Arc::new(Events::default());
    let sdk = ChartLink::new(
        config(&dir),
        store.clone(),
        Some(Arc::new(Portal(PortalRobot::allowing(
            "daniel",
            "daniel-demo",
            Some("daniel-chen"),
        )))),
        Some(events.clone()),
        None,
    )
    .unwrap();
    let account = sdk.link(sandbox.fhir_base(), None).await.unwrap();
    sdk.switch_patient(account.id.clone()).await.unwrap();
    sdk.sync(account.id.clone(), None).await.unwrap();
    let before = ids(&sdk).await;
    assert!(!before.is_empty());

    // unlock: a locked run seals a new result; unlock returns while its application waits on the gate.
    sdk.lock().unwrap();
    new_lab(&sandbox, "inbox-lab-1");
    let report = sdk.background_sync(due_now(), None).await.unwrap();
    assert!(report.locked && report.total == 1, "{report:?}");
    store.close();
    let sdk = Arc::new(sdk);
    let unlocking = sdk.clone();
    let unlocked = returns_at_once(move || unlocking.unlock());
    assert!(
        matches!(unlocked, Some(Ok(()))),
        "unlock waited for the inbox on the caller's thread"
    );
    // Meanwhile: readable, the record as it was before the inbox (documented), nothing lost.
    assert_eq!(ids(&sdk).await, before);
    assert!(!events.applied());
    store.open();
    wait_for("LockedInboxApplied after unlock", || events.applied()).await;
    let mut after = before.clone();
    after.push("inbox-lab-1".into());
    after.sort();
    assert_eq!(
        ids(&sdk).await,
        after,
        "the whole record, the inbox applied"
    );

    // new: the app starts with an inbox waiting (a locked run after the last unlock).
    sdk.lock().unwrap();
    new_lab(&sandbox, "inbox-lab-2");
    let report = sdk.background_sync(due_now(), None).await.unwrap();
    assert!(report.locked && report.total == 1, "{report:?}");
    drop(sdk);
    events.0.lock().unwrap().clear();
    store.close();
    let (cfg, s, ev) = (config(&dir), store.clone(), events.clone());
    let built = returns_at_once(move || ChartLink::new(cfg, s, None, Some(ev), None));
    let sdk = match built {
        Some(Ok(sdk)) => sdk,
        Some(Err(e)) => panic!("{e:?}"),
        None => panic!("new waited for the inbox on the caller's thread"),
    };
    sdk.switch_patient(account.id.clone()).await.unwrap();
    assert_eq!(ids(&sdk).await, after, "before the inbox");
    store.open();
    wait_for("LockedInboxApplied after new", || events.applied()).await;
    after.push("inbox-lab-2".into());
    after.sort();
    assert_eq!(
        ids(&sdk).await,
        after,
        "the whole record, the inbox applied"
    );
    drop(sdk);
    sandbox.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
