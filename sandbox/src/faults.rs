//! Fault injection for the FHIR API and the token, revocation and introspection endpoints: added latency, a share
//! of 500/503 answers, 429 with Retry-After, a connection cut mid-body, truncated JSON, and (scripted) any answer a
//! real server or the load balancer in front of it gives: an HTML error page, an OAuth error such as
//! `temporarily_unavailable`, a 401 that a fresh token does not cure. Random faults draw from a generator seeded with the sandbox seed,
//! one draw per request, so a sequential test sees the same faults every run. Scripted faults hit the next N
//! requests under a path prefix, for tests that need one exact failure.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::Shared;
use crate::wire::outcome;

/// Random faults, each a share of matching requests (0.0 to 1.0).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FaultConfig {
    /// Added to every matching request.
    pub latency_ms: u64,
    /// Answered 500 or 503 (alternately).
    pub error_rate: f64,
    /// Answered 429 with `Retry-After: retry_after_secs`.
    pub rate_limit_rate: f64,
    pub retry_after_secs: u64,
    /// The connection is cut halfway through the body.
    pub reset_rate: f64,
    /// The body is cut halfway, with a matching Content-Length (the client gets broken JSON).
    pub truncate_rate: f64,
    /// Only paths starting with this (default `/fhir/`; the CapabilityStatement is never faulted).
    pub path_prefix: Option<String>,
}

/// One kind of fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultKind {
    /// The status with an OperationOutcome (FHIR paths) or an OAuth `server_error` (the OAuth endpoints).
    Status {
        status: u16,
    },
    /// Exactly this answer: e.g. a load balancer's HTML page, `{"error":"temporarily_unavailable"}`, or a 401.
    Body {
        status: u16,
        content_type: String,
        body: String,
    },
    RateLimit {
        retry_after_secs: u64,
    },
    Reset,
    Truncate,
    Latency {
        ms: u64,
    },
}

/// A fault for the next `count` requests whose path starts with `path_prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptedFault {
    pub path_prefix: String,
    #[serde(flatten)]
    pub kind: FaultKind,
    pub count: u32,
}

#[derive(Debug)]
struct Inner {
    config: FaultConfig,
    rng: ChaCha8Rng,
    scripted: Vec<ScriptedFault>,
    injected: u64,
}

/// The fault injector.
#[derive(Debug)]
pub struct Faults {
    seed: u64,
    inner: Mutex<Inner>,
}

impl Faults {
    /// An injector with `config` from the start.
    pub fn new(seed: u64, config: FaultConfig) -> Self {
        Self {
            seed,
            inner: Mutex::new(Inner {
                config,
                rng: ChaCha8Rng::seed_from_u64(seed),
                scripted: Vec::new(),
                injected: 0,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Replaces the random faults and restarts the generator from the seed (so a test run is reproducible).
    pub fn configure(&self, config: FaultConfig) {
        let mut inner = self.lock();
        inner.config = config;
        inner.rng = ChaCha8Rng::seed_from_u64(self.seed);
    }

    /// Replaces the random faults and restarts the generator from `seed`.
    pub fn configure_seeded(&self, config: FaultConfig, seed: u64) {
        let mut inner = self.lock();
        inner.config = config;
        inner.rng = ChaCha8Rng::seed_from_u64(seed);
    }

    /// The random faults in force.
    pub fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    /// Adds a scripted fault.
    pub fn script(&self, fault: ScriptedFault) {
        self.lock().scripted.push(fault);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.config = FaultConfig::default();
        inner.scripted.clear();
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.lock().injected
    }

    /// The faults for one request: an optional latency and an optional failure.
    /// A scripted fault's `path_prefix` with a `?` is matched against the path and its query string
    /// (`/fhir/Observation?patient=p&_count=1000&category=sdoh` is matched by `/fhir/Observation?patient=p`).
    fn decide(&self, path: &str, query: &str) -> (u64, Option<FaultKind>) {
        let mut inner = self.lock();
        let with_query = format!("{path}?{query}");
        let matches = |prefix: &str| {
            if prefix.contains('?') {
                with_query.starts_with(prefix)
            } else {
                path.starts_with(prefix)
            }
        };
        if let Some(i) = inner
            .scripted
            .iter()
            .position(|f| matches(&f.path_prefix) && f.count > 0)
        {
            let f = &mut inner.scripted[i];
            f.count -= 1;
            let kind = f.kind.clone();
            inner.scripted.retain(|f| f.count > 0);
            inner.injected += 1;
            return match kind {
                FaultKind::Latency { ms } => (ms, None),
                other => (0, Some(other)),
            };
        }
        let c = inner.config.clone();
        if !path.starts_with(c.path_prefix.as_deref().unwrap_or("/fhir/"))
            || path == "/fhir/metadata"
            || path.starts_with("/fhir/.well-known/")
        {
            return (0, None);
        }
        let draw: f64 = inner.rng.random();
        let mut edge = 0.0;
        let mut pick = None;
        for (rate, kind) in [
            (
                c.error_rate,
                FaultKind::Status {
                    status: if inner.injected.is_multiple_of(2) {
                        500
                    } else {
                        503
                    },
                },
            ),
            (
                c.rate_limit_rate,
                FaultKind::RateLimit {
                    retry_after_secs: c.retry_after_secs,
                },
            ),
            (c.reset_rate, FaultKind::Reset),
            (c.truncate_rate, FaultKind::Truncate),
        ] {
            edge += rate.clamp(0.0, 1.0);
            if draw < edge {
                pick = Some(kind);
                break;
            }
        }
        if pick.is_some() {
            inner.injected += 1;
        }
        (c.latency_ms, pick)
    }
}

/// One FHIR request as the server saw it: what was asked and when (ms since the sandbox started).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    pub path: String,
    pub query: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// How many requests the log keeps.
pub const REQUEST_LOG_CAP: usize = 100_000;

fn started() -> std::time::Instant {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *START.get_or_init(std::time::Instant::now)
}

/// The middleware in front of the FHIR API and the OAuth endpoints: logs each request's time span, then injects
/// the faults in force.
pub async fn inject(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let start = started().elapsed();
    let resp = inject_faults(&s, &path, &query, req, next).await;
    let end = started().elapsed();
    let mut log = s.request_log.lock().unwrap_or_else(|e| e.into_inner());
    if log.len() >= REQUEST_LOG_CAP {
        log.drain(..REQUEST_LOG_CAP / 10);
    }
    log.push(LoggedRequest {
        path,
        query,
        start_ms: start.as_millis() as u64,
        end_ms: end.as_millis() as u64,
    });
    resp
}

async fn inject_faults(s: &Shared, path: &str, query: &str, req: Request, next: Next) -> Response {
    let path = path.to_owned();
    let (latency, fault) = s.faults.decide(&path, query);
    if latency > 0 {
        tokio::time::sleep(Duration::from_millis(latency)).await;
    }
    match fault {
        None => next.run(req).await,
        Some(FaultKind::Status { status }) if path.starts_with("/oauth2/") => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut r = Response::new(Body::from(r#"{"error":"server_error"}"#));
            *r.status_mut() = status;
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Some(FaultKind::Status { status }) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            outcome(
                status,
                "transient",
                "injected fault: the server is having trouble",
            )
        }
        Some(FaultKind::Body {
            status,
            content_type,
            body,
        }) => {
            let mut r = Response::new(Body::from(body));
            *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            if let Ok(v) = HeaderValue::from_str(&content_type) {
                r.headers_mut().insert(header::CONTENT_TYPE, v);
            }
            r
        }
        Some(FaultKind::RateLimit { retry_after_secs }) => {
            let mut r = outcome(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                "injected fault: too many requests",
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            r
        }
        Some(FaultKind::Latency { .. }) => next.run(req).await,
        Some(kind @ (FaultKind::Reset | FaultKind::Truncate)) => {
            let response = next.run(req).await;
            let (mut parts, body) = response.into_parts();
            let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
                return Response::from_parts(parts, Body::empty());
            };
            let half = Bytes::copy_from_slice(&bytes[..bytes.len() / 2]);
            parts.headers.remove(header::CONTENT_LENGTH);
            if kind == FaultKind::Truncate {
                return Response::from_parts(parts, Body::from(half));
            }
            // A stream that fails after the first half: hyper aborts the connection mid-body.
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(half),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "injected reset",
                )),
            ];
            Response::from_parts(parts, Body::from_stream(futures_util::stream::iter(chunks)))
        }
    }
}
