//! What the integration tests share: the sandbox, a portal-driving browser, a recorder of the SDK's events, and an
//! SDK built on a manual clock and an in-memory secure store (kept across SDK instances, like a phone's Keychain).
#![allow(clippy::unwrap_used, dead_code)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chartlink_core::{
    AppConfig, AuthBrowser, BrowserError, ChartLink, ClientAuth, DataCategory, Event,
    EventListener, Host, LockConfig, ManualClock, MemorySecureStore, RevocationPolicy, SyncOptions,
};
use chartlink_sandbox::{Config, FaultKind, PortalRobot, Sandbox, ScriptedFault};

/// A new, empty directory for one test: `prefix`, the test's `tag`, the process and the time keep it apart from
/// every other run.
pub fn temp_dir(prefix: &str, tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "{prefix}-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Completes the sandbox portal's pages over HTTP as the user would in the browser.
pub struct RobotBrowser(pub PortalRobot);

#[async_trait]
impl AuthBrowser for RobotBrowser {
    async fn authorize(&self, url: String, _redirect_uri: String) -> Result<String, BrowserError> {
        self.0
            .authorize(&url)
            .await
            .map_err(|e| BrowserError::Failed(e.to_string()))
    }
}

/// Completes the portal's pages as one user after another: each login takes the next robot (several links in one
/// test, as different people or at different providers).
pub struct RobotQueue(pub Mutex<Vec<PortalRobot>>);

#[async_trait]
impl AuthBrowser for RobotQueue {
    async fn authorize(&self, url: String, _redirect_uri: String) -> Result<String, BrowserError> {
        let robot = self.0.lock().unwrap().remove(0);
        robot
            .authorize(&url)
            .await
            .map_err(|e| BrowserError::Failed(e.to_string()))
    }
}

/// Every event the SDK emitted.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Event>>);

impl EventListener for Recorder {
    fn on_event(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn saw(&self, f: impl Fn(&Event) -> bool) -> bool {
        self.0.lock().unwrap().iter().any(f)
    }
}

/// A sandbox, and the host side of one phone.
pub struct Fixture {
    pub sb: Sandbox,
    pub store: Arc<MemorySecureStore>,
    pub clock: Arc<ManualClock>,
    pub events: Arc<Recorder>,
}

/// Sync options for tests: quick retries.
pub fn fast() -> SyncOptions {
    SyncOptions {
        retry: chartlink_core::fhir::RetryPolicy {
            attempts: 2,
            base_delay: std::time::Duration::from_millis(5),
            max_delay: std::time::Duration::from_millis(20),
        },
        ..SyncOptions::default()
    }
}

pub fn config(revocation: RevocationPolicy) -> AppConfig {
    AppConfig {
        client_id: "chartlink-demo".into(),
        redirect_uri: "chartlink-demo://callback".into(),
        wanted: DataCategory::ALL.to_vec(),
        client_auth: ClientAuth::Public,
        app_name: "ChartLink tests".into(),
        data_dir: None,
        // These tests jump the clock by hours; the idle lock has its own tests.
        lock: LockConfig {
            timeout_ms: 365 * 24 * 3600 * 1000,
            warning_ms: None,
            background_grace_ms: 0,
        },
        revocation,
    }
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_config(Config::default()).await
    }

    /// A fixture whose sandbox runs with `config` (a short token lifetime, say).
    pub async fn with_config(config: Config) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            sb: Sandbox::start(config).await.unwrap(),
            store: Arc::new(MemorySecureStore::default()),
            clock: Arc::new(ManualClock::new()),
            events: Arc::new(Recorder::default()),
        }
    }

    pub fn sdk(&self, config: AppConfig, robot: Option<PortalRobot>) -> ChartLink {
        let host = Host {
            secure_store: self.store.clone(),
            browser: robot.map(|r| Arc::new(RobotBrowser(r)) as Arc<dyn AuthBrowser>),
            clock: self.clock.clone(),
            listener: Some(self.events.clone()),
        };
        ChartLink::new(config, host).unwrap()
    }

    /// A robot that logs `user` in with the demo password and allows everything.
    pub fn robot(user: &str) -> PortalRobot {
        PortalRobot::allowing(user, &format!("{user}-demo"), None)
    }

    /// Lets time pass on both sides (the SDK's clock and the sandbox's).
    pub fn advance(&self, ms: i64) {
        self.clock.advance_ms(ms);
        self.sb.admin().advance_clock(ms / 1000);
    }

    pub fn token_requests(&self, grant: &str) -> u64 {
        self.sb
            .admin()
            .stats()
            .token_requests
            .get(grant)
            .copied()
            .unwrap_or(0)
    }
}

/// Every stored resource of an account, as `type/id`, sorted: the whole local record, to compare before and after.
pub fn record(sdk: &ChartLink, account: &str) -> Vec<String> {
    let mut out = Vec::new();
    for ty in ["Patient"]
        .into_iter()
        .chain(chartlink_core::sync::searched_types())
    {
        for r in sdk.resources(account, ty).unwrap() {
            out.push(format!("{ty}/{}", r["id"].as_str().unwrap_or("?")));
        }
    }
    out.sort();
    out
}

/// A scripted fault that answers the next `count` requests under `path` with exactly this status, type and body
/// (a load balancer's HTML page, an OAuth error, a firewall's 403).
pub fn body_fault(
    path: &str,
    status: u16,
    content_type: &str,
    body: &str,
    count: u32,
) -> ScriptedFault {
    ScriptedFault {
        path_prefix: path.into(),
        kind: FaultKind::Body {
            status,
            content_type: content_type.into(),
            body: body.into(),
        },
        count,
    }
}
