//! # chartlink-sandbox: a local SMART-on-FHIR EHR
//!
//! A stand-in for a patient portal such as Epic MyChart, for developing and testing patient apps without an
//! account anywhere: a SMART App Launch 2.2 authorization server with the portal's own pages (log in, pick whose
//! record, read the app's questionnaire, Allow Access, manage linked apps), a FHIR R4 API over realistic
//! synthetic data (or real FHIR Bundles you load), the portal's proxy rules for families, and fault injection.
//!
//! Start it as a binary (`chartlink-sandbox --addr 127.0.0.1:8080`) or in process:
//!
//! ```no_run
//! # async fn run() -> Result<(), chartlink_sandbox::SandboxError> {
//! let sandbox = chartlink_sandbox::Sandbox::start(chartlink_sandbox::Config::default()).await?;
//! println!("FHIR base: {}", sandbox.fhir_base());
//! sandbox.admin().advance_clock(3600); // an hour later, without sleeping
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! Layout: [`oauth`] (authorize, token, revoke, introspect, register), [`portal`] (the HTML pages), [`fhir`] (the
//! FHIR API), [`scopes`] (v1/v2 scope rules), [`access`] (the proxy age rules), [`faults`] and [`admin`] (test
//! controls), [`store`] (SQLite), [`generator`] (the synthetic family), [`loader`] (`--data`).

// Handler helpers return axum's `Response` as their error: it is what the client gets, built once per failed
// request, so boxing it would only add an allocation.
#![allow(clippy::result_large_err)]

pub mod access;
pub mod admin;
pub mod apps;
pub mod brands;
pub mod clock;
pub mod external;
pub mod faults;
pub mod fhir;
pub mod flows;
pub mod generator;
pub mod index;
pub mod jose;
pub mod loader;
pub mod oauth;
pub mod portal;
pub mod quirks;
pub mod robot;
pub mod scopes;
pub mod store;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

pub use admin::Admin;
pub use apps::{App, ClientAuth, DEMO_CLIENT_ID, Questionnaire};
pub use external::ExternalAuth;
pub use faults::{FaultConfig, FaultKind, LoggedRequest, ScriptedFault};
pub use quirks::Quirks;
pub use robot::PortalRobot;

/// How to run a sandbox.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks a free one. Loopback by default.
    pub addr: SocketAddr,
    /// Seed of the synthetic data and of the fault injector: the same seed gives the same data and faults.
    pub seed: u64,
    /// FHIR R4 Bundles (transaction, batch, collection), single resources or NDJSON files or directories to serve.
    pub data: Vec<PathBuf>,
    /// Whether to generate the demo family (on by default; off serves only `data`).
    pub demo_data: bool,
    /// Adds one patient with about this many resources (login `large` / `large-demo`), for benchmarks.
    pub large_patient: Option<usize>,
    /// Keep everything in this SQLite file instead of in memory; a fresh file is filled, an existing one reused.
    pub db: Option<PathBuf>,
    /// Access token lifetime in seconds.
    pub token_lifetime: i64,
    /// Answer an Observation search without `category` with 400, as Epic does.
    pub require_observation_category: bool,
    /// Default and maximum page sizes of searches.
    pub default_page_size: usize,
    pub max_page_size: usize,
    /// Faults injected into the FHIR API from the start.
    pub faults: FaultConfig,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Another authorization server in front of the FHIR API: its JWT access tokens open it, and the SMART
    /// configuration names its endpoints ([`external`]). `None`: the sandbox's own.
    pub external_auth: Option<ExternalAuth>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            data: Vec::new(),
            demo_data: true,
            large_patient: None,
            db: None,
            token_lifetime: 3600,
            require_observation_category: true,
            default_page_size: 100,
            max_page_size: 1000,
            faults: FaultConfig::default(),
            max_body_bytes: 64 * 1024,
            external_auth: None,
        }
    }
}

/// Why the sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error(transparent)]
    Load(#[from] loader::LoadError),
    #[error("cannot create the signing key")]
    Key,
    #[error(transparent)]
    External(#[from] external::ExternalError),
}

/// Counters the tests read (how many refresh requests reached the server, and so on).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    /// Token requests by `grant_type`.
    pub token_requests: HashMap<String, u64>,
    pub fhir_requests: u64,
    pub authorize_requests: u64,
    pub revocations: u64,
    /// How many times the resource table was scanned to count types (the CapabilityStatement's types are
    /// cached, so this stays at one or two however often `/metadata` is asked).
    pub type_scans: u64,
}

/// State shared by every handler.
#[derive(Debug)]
pub struct Shared {
    pub base_url: String,
    pub config: Config,
    store: Mutex<store::Store>,
    pub clock: clock::Clock,
    pub key: jose::SigningKey,
    pub flows: Mutex<crate::flows::Flows>,
    pub faults: faults::Faults,
    stats: Mutex<Stats>,
    /// When each FHIR request started and ended (the most recent [`faults::REQUEST_LOG_CAP`]).
    pub request_log: Mutex<Vec<faults::LoggedRequest>>,
    /// The authorization server in front of the FHIR API, when it is not the sandbox's own.
    pub external: Option<external::External>,
    pub category_rule: AtomicBool,
    /// Whether grants with `offline_access` get a refresh token (off: a server like plain OpenID Connect that
    /// drops it, for testing clients against grants that cannot renew themselves).
    pub refresh_tokens: AtomicBool,
    /// Whether search Bundles carry `meta.lastUpdated` (off: a server that does not stamp them, as many do not).
    pub bundle_last_updated: AtomicBool,
    /// Whether the SMART configuration lists `permission-v2` (off: a server of SMART v1 scopes only).
    pub permission_v2: AtomicBool,
    /// Server variations the tests switch on ([`Quirks`]).
    pub quirks: Mutex<Quirks>,
}

/// Locks a mutex even if a panicking thread poisoned it: the data behind these locks stays consistent because
/// every write either completes or is one SQLite transaction.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// The FHIR base URL (also the OAuth issuer and the required `aud`).
    pub fn fhir_base(&self) -> String {
        format!("{}/fhir", self.base_url)
    }

    /// The database.
    pub fn store(&self) -> MutexGuard<'_, store::Store> {
        lock(&self.store)
    }

    /// The pending authorizations, sessions, codes and used assertion ids.
    pub fn flows(&self) -> MutexGuard<'_, crate::flows::Flows> {
        lock(&self.flows)
    }

    /// The server variations in force.
    pub fn quirks(&self) -> Quirks {
        lock(&self.quirks).clone()
    }

    /// The counters.
    pub fn stats(&self) -> MutexGuard<'_, Stats> {
        lock(&self.stats)
    }
}

/// A running sandbox. Dropping it does not stop the server; call [`Sandbox::shutdown`].
#[derive(Debug)]
pub struct Sandbox {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sandbox {
    /// Opens the store, fills it (demo family, `--data`), binds and starts serving.
    pub async fn start(config: Config) -> Result<Self, SandboxError> {
        let listener =
            TcpListener::bind(config.addr)
                .await
                .map_err(|source| SandboxError::Bind {
                    addr: config.addr,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| SandboxError::Bind {
            addr: config.addr,
            source,
        })?;
        let base_url = format!("http://{addr}");
        let clock = clock::Clock::default();
        let mut db = store::Store::open(config.db.as_deref())?;
        let key = match db.meta("signing_key")? {
            Some(pkcs8) => jose::SigningKey::from_pkcs8(&pkcs8).map_err(|_| SandboxError::Key)?,
            None => {
                let key = jose::SigningKey::generate().map_err(|_| SandboxError::Key)?;
                db.set_meta("signing_key", key.pkcs8())?;
                key
            }
        };
        if db.is_empty()? {
            loader::fill(&mut db, &config, clock.today(), clock.now())?;
        }
        for app in apps::demo_apps() {
            if db.app(&app.client_id)?.is_none() {
                db.put_app(
                    &app.client_id,
                    &serde_json::to_string(&app).unwrap_or_default(),
                )?;
            }
        }
        let external = match config.external_auth.clone() {
            Some(auth) => {
                Some(external::External::resolve(auth, &format!("{base_url}/fhir")).await?)
            }
            None => None,
        };
        let shared = Arc::new(Shared {
            base_url,
            faults: faults::Faults::new(config.seed, config.faults.clone()),
            category_rule: AtomicBool::new(config.require_observation_category),
            refresh_tokens: AtomicBool::new(true),
            bundle_last_updated: AtomicBool::new(true),
            permission_v2: AtomicBool::new(true),
            quirks: Mutex::new(Quirks::default()),
            config,
            store: Mutex::new(db),
            clock,
            key,
            flows: Mutex::new(crate::flows::Flows::default()),
            stats: Mutex::new(Stats::default()),
            request_log: Mutex::new(Vec::new()),
            external,
        });
        let app = router(shared.clone());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let serve = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            });
            // A failing accept loop ends the server; the tests then fail on connection errors.
            let _ = serve.await;
        });
        Ok(Self {
            shared,
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// `http://127.0.0.1:PORT/fhir`: what an app is configured with.
    pub fn fhir_base(&self) -> String {
        self.shared.fhir_base()
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Test and developer controls (also served as JSON under `/admin`).
    pub fn admin(&self) -> Admin {
        Admin::new(self.shared.clone())
    }

    /// Stops accepting connections and waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// A human-readable description: URLs, demo users and passwords, registered apps.
    pub fn banner(&self) -> String {
        banner(&self.shared)
    }
}

fn router(shared: Arc<Shared>) -> Router {
    let body_limit = DefaultBodyLimit::max(shared.config.max_body_bytes);
    let fhir = Router::new()
        .route("/fhir/metadata", get(fhir::metadata))
        .route("/fhir/{ty}", get(fhir::search))
        .route("/fhir/{ty}/_search", post(fhir::search_post))
        .route("/fhir/{ty}/{id}", get(fhir::read))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            faults::inject,
        ));
    // The OAuth endpoints a client calls in the background take scripted faults too (random ones only when the
    // fault config's path prefix says so).
    let oauth = Router::new()
        .route("/oauth2/token", post(oauth::token))
        .route("/oauth2/revoke", post(oauth::revoke))
        .route("/oauth2/introspect", post(oauth::introspect))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            faults::inject,
        ));
    Router::new()
        .route("/", get(portal::home))
        .route(
            "/fhir/.well-known/smart-configuration",
            get(oauth::smart_configuration),
        )
        .route(
            "/fhir/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .route(
            "/oauth2/.well-known/openid-configuration",
            get(oauth::openid_configuration),
        )
        .route("/oauth2/jwks", get(oauth::jwks))
        .route(
            "/brands.json",
            get(brands::bundle).options(brands::preflight),
        )
        .route(
            "/oauth2/authorize",
            get(oauth::authorize_get).post(oauth::authorize_post),
        )
        .route("/oauth2/register", post(oauth::register))
        .route("/portal/login", get(portal::login_page).post(portal::login))
        .route("/portal/choose", post(portal::choose))
        .route("/portal/consent", post(portal::consent))
        .route("/portal/apps", get(portal::linked_apps))
        .route("/portal/apps/remove", post(portal::remove_access))
        .route("/portal/logout", post(portal::logout))
        .merge(fhir)
        .merge(oauth)
        .nest(
            "/admin",
            admin::router().layer(DefaultBodyLimit::max(16 * 1024 * 1024)),
        )
        .layer(body_limit)
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            server_date,
        ))
        .fallback(portal::not_found)
        .with_state(shared)
}

/// Every answer's `Date` comes from the sandbox clock (which tests and the admin API move), so a client that
/// estimates the server's clock from `Date`, as ChartLink does, sees the same time the sandbox checks against.
async fn server_date(
    axum::extract::State(s): axum::extract::State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut resp = next.run(req).await;
    let secs = u64::try_from(s.clock.now()).unwrap_or(0);
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    if let Ok(v) = axum::http::HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
        resp.headers_mut().insert(axum::http::header::DATE, v);
    }
    resp
}

/// Whether the Epic-style category rule is on (an admin switch can turn it off while running).
pub fn category_rule(shared: &Shared) -> bool {
    shared.category_rule.load(Ordering::SeqCst)
}

/// The start-up text: URLs, users and passwords, apps.
pub fn banner(s: &Shared) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let base = &s.base_url;
    let _ = writeln!(out, "ChartLink sandbox EHR listening on {base}");
    let _ = writeln!(out, "  FHIR base (aud, iss):  {}", s.fhir_base());
    let _ = writeln!(
        out,
        "  SMART configuration:   {}/.well-known/smart-configuration",
        s.fhir_base()
    );
    let _ = writeln!(out, "  Linked apps page:      {base}/portal/apps");
    let _ = writeln!(out, "  Admin API:             {base}/admin/state");
    let store = s.store();
    let people = store.people().unwrap_or_default();
    let _ = writeln!(out, "\nPortal users (username / password):");
    for p in people.iter().filter(|p| p.username.is_some()) {
        let user = p.username.clone().unwrap_or_default();
        let password = store.password(&user).ok().flatten().unwrap_or_default();
        let proxies = store.proxies_of(&p.patient_id).unwrap_or_default();
        let mut line = format!(
            "  {user:<10} / {password:<14} {} (born {})",
            p.display_name, p.birth_date
        );
        for pr in proxies.iter().filter(|x| x.ended_at.is_none()) {
            if let Ok(Some(other)) = store.person(&pr.patient_id) {
                let _ = write!(line, "; {} for {}", pr.kind, other.display_name);
            }
        }
        let _ = writeln!(out, "{line}");
    }
    let _ = writeln!(out, "\nRegistered apps:");
    for json in store.apps().unwrap_or_default() {
        if let Ok(app) = serde_json::from_str::<App>(&json)
            && app.bound_grant.is_none()
        {
            let kind = match app.auth {
                crate::ClientAuth::Public => "public, PKCE",
                crate::ClientAuth::ConfidentialSymmetric { .. } => "confidential (client secret)",
                crate::ClientAuth::ConfidentialAsymmetric { .. } => {
                    "confidential (private_key_jwt)"
                }
            };
            let _ = writeln!(
                out,
                "  {:<16} {} [{kind}] redirect: {}",
                app.client_id,
                app.name,
                app.redirect_uris.join(", ")
            );
        }
    }
    let counts = store.type_counts().unwrap_or_default();
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let _ = writeln!(out, "\n{total} resources across {} types.", counts.len());
    out
}
