//! The Swift shell's cancellation path, in Rust against the sandbox: the FFI `ChartLink` with host capabilities
//! implemented the way a shell implements them, a sync cancelled through a `CancelToken` from another thread while
//! it runs. The call answers `Cancelled`, the Rust work stops (no progress event after the call returned), the store
//! holds whole pages only (reads work, nothing damaged), a cancelled token cancels before starting, and the next
//! sync completes the same record a fresh, uncancelled sync gets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{Portal, Store};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use chartlink_ffi::{
    CancelToken, ChartLink, ChartLinkConfig, ChartLinkError, Event, EventListener,
};
use chartlink_sandbox::{Config, PortalRobot, Sandbox};

/// Cancels the token from another thread at the first progress of a sync with queries left; counts progress.
struct CancelMidSync {
    token: Option<Arc<CancelToken>>,
    fired: AtomicBool,
    progress: AtomicU64,
    /// A progress event with every query done: the sync was not stopped midway.
    saw_last_query: AtomicBool,
}

impl EventListener for CancelMidSync {
    fn on_event(&self, event: Event) {
        let Event::SyncProgress { progress } = event else {
            return;
        };
        self.progress.fetch_add(1, Ordering::SeqCst);
        if progress.queries_done == progress.queries_total {
            self.saw_last_query.store(true, Ordering::SeqCst);
        }
        let midway = progress.queries_done >= 1 && progress.queries_done < progress.queries_total;
        if let Some(token) = &self.token
            && midway
            && !self.fired.swap(true, Ordering::SeqCst)
        {
            let token = token.clone();
            std::thread::spawn(move || token.cancel());
        }
    }
}

fn config() -> ChartLinkConfig {
    ChartLinkConfig {
        client_id: "chartlink-demo".into(),
        redirect_uri: "chartlink-demo://callback".into(),
        app_name: "cancel test".into(),
        data_dir: None,
        lock_timeout_seconds: 600,
        lock_warning_seconds: 0,
        background_grace_seconds: 30,
        revocation: None,
        wanted: Vec::new(),
    }
}

fn sdk(listener: Arc<CancelMidSync>) -> Arc<ChartLink> {
    let robot = PortalRobot::allowing("daniel", "daniel-demo", Some("daniel-chen"));
    ChartLink::new(
        config(),
        Arc::new(Store::default()),
        Some(Arc::new(Portal(robot))),
        Some(listener),
        None,
    )
    .unwrap()
}

async fn lab_ids(sdk: &ChartLink) -> Vec<String> {
    sdk.lab_results(None)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.id)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_token_stops_a_sync_midway_and_leaves_whole_pages() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sb = Sandbox::start(Config::default()).await.unwrap();
    let token = CancelToken::new();
    let listener = Arc::new(CancelMidSync {
        token: Some(token.clone()),
        fired: AtomicBool::new(false),
        progress: AtomicU64::new(0),
        saw_last_query: AtomicBool::new(false),
    });
    let cancelled = sdk(listener.clone());
    let account = cancelled.link(sb.fhir_base(), None).await.unwrap();

    let out = cancelled
        .sync(account.id.clone(), Some(token.clone()))
        .await;
    assert_eq!(out.err(), Some(ChartLinkError::Cancelled));
    let at_cancel = listener.progress.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        listener.progress.load(Ordering::SeqCst),
        at_cancel,
        "the sync ran on after Cancelled"
    );
    assert!(
        !listener.saw_last_query.load(Ordering::SeqCst),
        "the cancelled sync still finished its last query"
    );

    let partial: BTreeSet<String> = lab_ids(&cancelled).await.into_iter().collect();
    assert!(
        cancelled.take_store_notices().is_empty(),
        "a cancelled sync damaged rows"
    );
    let again = cancelled.sync(account.id.clone(), Some(token)).await;
    assert_eq!(
        again.err(),
        Some(ChartLinkError::Cancelled),
        "a cancelled token cancels before starting"
    );
    assert_eq!(listener.progress.load(Ordering::SeqCst), at_cancel);

    cancelled.sync(account.id.clone(), None).await.unwrap();
    let resumed = lab_ids(&cancelled).await;
    let resumed_set: BTreeSet<String> = resumed.iter().cloned().collect();
    assert_eq!(resumed.len(), resumed_set.len(), "a record twice");
    assert!(resumed_set.is_superset(&partial));

    // The same patient synced in one go, never cancelled: the same record.
    let whole = sdk(Arc::new(CancelMidSync {
        token: None,
        fired: AtomicBool::new(false),
        progress: AtomicU64::new(0),
        saw_last_query: AtomicBool::new(false),
    }));
    let other = whole.link(sb.fhir_base(), None).await.unwrap();
    whole.sync(other.id, None).await.unwrap();
    let full: BTreeSet<String> = lab_ids(&whole).await.into_iter().collect();
    assert!(partial.is_subset(&full));
    assert_eq!(resumed_set, full);
}
