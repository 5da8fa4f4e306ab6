//! The FHIR client the sync engine uses: the bearer token only ever goes to the grant's FHIR origin (a next link,
//! reference or attachment on another origin is refused, never followed with the token); searchset paging with
//! loop detection and a page cap; gzip; timeouts; retries with exponential backoff and jitter on connection errors,
//! 5xx and 429 (Retry-After honoured); OperationOutcome turned into typed errors. A 401 gets one refresh and one
//! retry; a 401 to the renewed token is [`FhirError::Unauthorized`] (the query fails, nothing is concluded about
//! the grant, and later 401s in the same sync do not refresh again). Whether access is revoked is decided only by
//! the token endpoint's answer (see [`crate::account`]). Deterministic failures (a body over the size limit, a
//! 4xx) are not retried.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use url::Url;

use crate::account::Accounts;
use crate::error::AuthorizationReason;
use crate::error::{Error, NetworkFailure, NetworkKind, ServerFailure};
use crate::http::{self, HttpError};
use crate::secret::Secret;
use crate::store::StoreError;

/// How often a wait or a request in flight checks whether the idle lock fired.
const CANCEL_POLL: Duration = Duration::from_millis(100);

/// The `code` of a [`FhirError::Status`] whose body was not a FHIR answer (a middlebox's page).
pub const NOT_FHIR: &str = "not a FHIR answer";

/// Largest single FHIR response read (a page of resources, a document).
pub const PAGE_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// A failed FHIR request.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum FhirError {
    #[error("network problem: {0}")]
    Network(NetworkFailure),
    #[error("the server answered {status} ({code})")]
    Status {
        status: u16,
        code: String,
        /// The server's Retry-After (seconds, capped at 120), when it sent one.
        retry_after: Option<Duration>,
    },
    /// The grant does not cover this (a 403): not a failure of the sync, just not shared.
    #[error("not granted")]
    Forbidden,
    #[error("not found")]
    NotFound,
    /// Getting or renewing the access token failed; the sync stops with this error (revoked, re-link needed,
    /// locked, transient, storage).
    #[error("{0}")]
    Token(Error),
    /// The server refused an access token that had just been renewed: not a revocation (retried next sync).
    #[error("the server refused a freshly renewed access token")]
    Unauthorized,
    /// The local store failed while writing what was fetched.
    #[error("local storage: {0}")]
    Local(#[from] StoreError),
    /// The answer was larger than accepted (not retried: it would be again).
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the server's answer is not usable: {0}")]
    Malformed(String),
    #[error("refused to send the token to another origin")]
    ForeignOrigin,
    #[error("paging went in a loop")]
    PagingLoop,
    #[error("more than {0} pages")]
    TooManyPages(usize),
    /// The idle lock fired: the request was stopped (the tokens leave memory now).
    #[error("stopped: ChartLink locked")]
    Locked,
}

impl FhirError {
    /// Whether a later attempt may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            FhirError::Network(_)
                | FhirError::Status {
                    status: 500..=599 | 429,
                    ..
                }
        )
    }
}

impl From<FhirError> for Error {
    fn from(e: FhirError) -> Self {
        match e {
            FhirError::Network(f) => Error::Network(f),
            FhirError::Status {
                status,
                retry_after,
                ..
            } if status >= 500 || status == 429 => Error::Network(NetworkFailure {
                kind: if status == 429 || (status == 503 && retry_after.is_some()) {
                    NetworkKind::Throttled
                } else {
                    NetworkKind::ServerError
                },
                retry_after,
                message: format!("the server answered {status}"),
            }),
            FhirError::Token(e) => e,
            FhirError::Unauthorized => Error::network(
                NetworkKind::ServerError,
                "the provider refused a freshly renewed access token; try again later",
            ),
            FhirError::Local(e) => e.into(),
            FhirError::Locked => Error::Locked,
            // Refused for this grant: an authorization matter.
            FhirError::Forbidden | FhirError::ForeignOrigin => {
                Error::authorization(AuthorizationReason::Refused, e.to_string())
            }
            FhirError::Status { status, .. } => Error::Server(ServerFailure {
                status: Some(status),
                message: e.to_string(),
            }),
            FhirError::NotFound => Error::Server(ServerFailure {
                status: Some(404),
                message: e.to_string(),
            }),
            other => Error::Server(ServerFailure {
                status: None,
                message: other.to_string(),
            }),
        }
    }
}

/// How hard to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

/// A FHIR client bound to one linked account.
pub struct FhirClient<'a> {
    http: &'a http::Http,
    accounts: &'a Accounts,
    account_id: String,
    base: Url,
    retry: RetryPolicy,
    /// Stop page after page when this says so (the idle lock).
    cancelled: &'a (dyn Fn() -> bool + Send + Sync),
    /// Set when the server refused a token right after it was renewed: later 401s fail without refreshing again.
    fresh_token_refused: AtomicBool,
    /// Largest answer read.
    body_limit: usize,
    /// The server asked to slow down (429, or 503 with Retry-After): no request of this client (every query of
    /// the sync shares it) starts before this instant.
    paused_until: std::sync::Mutex<Option<tokio::time::Instant>>,
    /// Requests in flight to the server at once: every query and document download of the sync shares these.
    permits: tokio::sync::Semaphore,
}

impl std::fmt::Debug for FhirClient<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FhirClient")
            .field("account_id", &self.account_id)
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// What a GET returned.
#[derive(Debug)]
pub struct Fetched {
    pub content_type: String,
    pub body: Vec<u8>,
}

impl<'a> FhirClient<'a> {
    /// A client for `account_id`, whose FHIR base is `base`.
    pub fn new(
        http: &'a http::Http,
        accounts: &'a Accounts,
        account_id: &str,
        base: Url,
        retry: RetryPolicy,
        cancelled: &'a (dyn Fn() -> bool + Send + Sync),
    ) -> Self {
        Self {
            http,
            accounts,
            account_id: account_id.to_owned(),
            base,
            retry,
            cancelled,
            fresh_token_refused: AtomicBool::new(false),
            body_limit: PAGE_BODY_LIMIT,
            paused_until: std::sync::Mutex::new(None),
            permits: tokio::sync::Semaphore::new(1),
        }
    }

    /// The server's time at our `local_ms` (corrected by the skew its `Date` headers showed), less a second for
    /// `Date`'s resolution, as a FHIR instant: the cursor of a search whose Bundle has no `meta.lastUpdated`.
    pub fn server_instant_now(&self, local_ms: i64) -> Option<String> {
        let ms = self
            .accounts
            .server_clock()
            .server_now_ms(&self.base, local_ms)
            .saturating_sub(1000);
        let secs = ms.div_euclid(1000);
        let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        Some(format!(
            "{}T{:02}:{:02}:{:02}Z",
            crate::context::date_from_unix_days(days),
            of_day / 3600,
            of_day % 3600 / 60,
            of_day % 60
        ))
    }

    /// Allows `n` requests in flight at once (at least one).
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.permits = tokio::sync::Semaphore::new(n.max(1));
        self
    }

    /// Waits while the server asked every request to wait (ended by the lock, like every wait here).
    async fn respect_pause(&self) -> Result<(), FhirError> {
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(t) if t > tokio::time::Instant::now() => {
                    self.wait(t - tokio::time::Instant::now()).await?
                }
                _ => return Ok(()),
            }
        }
    }

    /// Sleeps `delay` (a backoff, a server's Retry-After of up to two minutes), ended early with
    /// [`FhirError::Locked`] when the idle lock fires meanwhile: locked means the tokens leave memory now, not
    /// after the server's pause.
    async fn wait(&self, delay: Duration) -> Result<(), FhirError> {
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            if (self.cancelled)() {
                return Err(FhirError::Locked);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(());
            }
            tokio::time::sleep((deadline - now).min(CANCEL_POLL)).await;
        }
    }

    /// Runs a request, ended with [`FhirError::Locked`] as soon as the lock fires: a slow answer in flight does
    /// not keep the tokens in use past the lock (the request is dropped; nothing of it is written).
    async fn unless_locked<T>(
        &self,
        request: impl std::future::Future<Output = Result<T, FhirError>>,
    ) -> Result<T, FhirError> {
        tokio::pin!(request);
        loop {
            tokio::select! {
                answer = &mut request => return answer,
                () = tokio::time::sleep(CANCEL_POLL) => {
                    if (self.cancelled)() {
                        return Err(FhirError::Locked);
                    }
                }
            }
        }
    }

    /// Holds every request of this client back for `delay` (extends, never shortens, a pause in force).
    fn pause_all(&self, delay: Duration) {
        let until = tokio::time::Instant::now() + delay;
        let mut p = self.paused_until.lock().unwrap_or_else(|e| e.into_inner());
        if p.is_none_or(|t| t < until) {
            *p = Some(until);
        }
    }

    /// Reads at most `limit` bytes of any answer (a larger one fails with [`FhirError::TooLarge`], not retried).
    pub fn with_body_limit(mut self, limit: usize) -> Self {
        self.body_limit = limit;
        self
    }

    /// Resolves a reference or link against the base and checks it stays on the grant's origin.
    pub fn resolve(&self, reference: &str) -> Result<Url, FhirError> {
        let dir = Url::parse(&format!("{}/", self.base.as_str().trim_end_matches('/')))
            .map_err(|_| FhirError::Malformed("base".into()))?;
        let url = dir
            .join(reference)
            .map_err(|_| FhirError::Malformed("a link is not a URL".into()))?;
        if url.origin() != self.base.origin() {
            return Err(FhirError::ForeignOrigin);
        }
        Ok(url)
    }

    /// GET with retries, refresh-on-401 and typed errors.
    pub async fn get(&self, url: &Url, accept: &str) -> Result<Fetched, FhirError> {
        if url.origin() != self.base.origin() {
            return Err(FhirError::ForeignOrigin);
        }
        if (self.cancelled)() {
            return Err(FhirError::Locked);
        }
        let mut token = self.token().await?;
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            if (self.cancelled)() {
                return Err(FhirError::Locked);
            }
            attempt += 1;
            let result = {
                // A closed semaphore cannot happen (it is never closed); without a permit the request still goes.
                let _permit = self.permits.acquire().await.ok();
                // The pause is checked with the permit in hand: a request that waited for a permit while another
                // was throttled does not slip out before the pause ends.
                self.respect_pause().await?;
                if (self.cancelled)() {
                    return Err(FhirError::Locked);
                }
                self.unless_locked(self.once(url, accept, &token)).await
            };
            let retry_after = match &result {
                Ok((status, _, _)) if *status == StatusCode::UNAUTHORIZED => {
                    if refreshed || self.fresh_token_refused.load(Ordering::SeqCst) {
                        self.fresh_token_refused.store(true, Ordering::SeqCst);
                        return Err(FhirError::Unauthorized);
                    }
                    refreshed = true;
                    token = self
                        .accounts
                        .after_unauthorized(&self.account_id, &token)
                        .await
                        .map_err(FhirError::Token)?;
                    attempt -= 1;
                    continue;
                }
                Ok((status, headers, body)) if status.is_success() => {
                    // The server's clock, for cursors of servers that do not stamp their Bundles.
                    self.accounts.server_clock().observe(
                        &self.base,
                        crate::token::date_header_ms(headers),
                        self.accounts.now_ms(),
                    );
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    return Ok(Fetched {
                        content_type,
                        body: body.clone(),
                    });
                }
                Ok((status, headers, body)) => {
                    let content_type = headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let asked = headers
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|s| Duration::from_secs(s.min(120)));
                    let mut err = status_error(*status, content_type, body);
                    if let FhirError::Status { retry_after, .. } = &mut err {
                        *retry_after = asked;
                    }
                    if !err.is_transient() || attempt >= self.retry.attempts {
                        return Err(err);
                    }
                    // Throttling (429, 503, or any Retry-After) is the server's word for every query, not just
                    // this one.
                    if *status == StatusCode::TOO_MANY_REQUESTS
                        || *status == StatusCode::SERVICE_UNAVAILABLE
                        || asked.is_some()
                    {
                        self.pause_all(asked.unwrap_or_else(|| self.backoff(attempt)));
                    }
                    asked
                }
                Err(e) => {
                    // Only a broken connection is worth another try; a body over the limit would be again.
                    if !matches!(e, FhirError::Network(_)) || attempt >= self.retry.attempts {
                        return Err(e.clone());
                    }
                    None
                }
            };
            self.wait(retry_after.unwrap_or_else(|| self.backoff(attempt)))
                .await?;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.retry.base_delay.saturating_mul(1 << attempt.min(10));
        let capped = exp.min(self.retry.max_delay);
        // Full jitter: anywhere between half and all of the capped delay.
        let ms = u64::try_from(capped.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut r = [0u8; 8];
        // No randomness (never seen) only means no jitter.
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut r);
        let half = ms / 2;
        Duration::from_millis(half + u64::from_le_bytes(r) % (ms - half + 1))
    }

    async fn token(&self) -> Result<Secret, FhirError> {
        self.accounts
            .access_token(&self.account_id)
            .await
            .map_err(FhirError::Token)
    }

    async fn once(
        &self,
        url: &Url,
        accept: &str,
        token: &Secret,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>), FhirError> {
        let resp = self
            .http
            .client()
            .get(url.clone())
            .header("accept", accept)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| FhirError::Network(http::failure(&e)))?;
        let r = http::read(resp, self.body_limit)
            .await
            .map_err(|e| match e {
                HttpError::Network(f) => FhirError::Network(f),
                HttpError::TooLarge { limit } => FhirError::TooLarge(limit),
                other => FhirError::Malformed(other.to_string()),
            })?;
        Ok((r.status, r.headers, r.body))
    }

    /// GET a resource or Bundle as JSON. A body that does not parse is a transient failure (a truncated answer) and
    /// is retried.
    pub async fn get_json(&self, url: &Url) -> Result<Value, FhirError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let fetched = self.get(url, "application/fhir+json").await?;
            match serde_json::from_slice::<Value>(&fetched.body) {
                Ok(v) if v.is_object() => return Ok(v),
                _ if attempt < self.retry.attempts => self.wait(self.backoff(attempt)).await?,
                _ => {
                    return Err(FhirError::Malformed(
                        "the answer is not a JSON object".into(),
                    ));
                }
            }
        }
    }

    /// Follows a search's pages from `first`, calling `on_page` with each Bundle and the URL of the next page. Stops
    /// on a repeated link or after `max_pages`. `on_page` returns false to stop early.
    pub async fn pages(
        &self,
        first: Url,
        max_pages: usize,
        mut on_page: impl FnMut(&Value, Option<&Url>) -> Result<bool, FhirError>,
    ) -> Result<usize, FhirError> {
        let mut seen: HashSet<String> = HashSet::new();
        let mut url = first;
        for n in 1..=max_pages {
            if !seen.insert(url.to_string()) {
                return Err(FhirError::PagingLoop);
            }
            let bundle = self.get_json(&url).await?;
            if bundle["resourceType"] != "Bundle" {
                return Err(FhirError::Malformed(
                    "a search did not answer a Bundle".into(),
                ));
            }
            let next = bundle["link"]
                .as_array()
                .and_then(|links| links.iter().find(|l| l["relation"] == "next"))
                .and_then(|l| l["url"].as_str())
                .map(|u| self.resolve(u))
                .transpose()?;
            if !on_page(&bundle, next.as_ref())? {
                return Ok(n);
            }
            match next {
                Some(n) => url = n,
                None => return Ok(n),
            }
        }
        Err(FhirError::TooManyPages(max_pages))
    }
}

/// The error for a non-success status, with the OperationOutcome's issue code when there is one.
///
/// A 403 is [`FhirError::Forbidden`] ("not shared", which on a full pass removes that query's data) only when it is
/// the FHIR server's own answer: an OperationOutcome in a JSON or FHIR content type. A web application firewall's
/// or CDN's HTML page, an empty body or any other 403 says nothing about the patient's consent: it is a plain
/// failure of the query (`code` "not a FHIR answer"), retried at the next sync, and deletes nothing.
fn status_error(status: StatusCode, content_type: &str, body: &[u8]) -> FhirError {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    if status == StatusCode::FORBIDDEN {
        let media = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let fhir_type = media == "application/fhir+json" || media == "application/json";
        let outcome = parsed
            .as_ref()
            .is_some_and(|v| v["resourceType"] == "OperationOutcome");
        if !(fhir_type && outcome) {
            return FhirError::Status {
                status: 403,
                code: NOT_FHIR.to_owned(),
                retry_after: None,
            };
        }
    }
    let code = parsed
        .and_then(|v| {
            v["issue"][0]["code"].as_str().map(|c| {
                c.chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(30)
                    .collect()
            })
        })
        .unwrap_or_else(|| "no OperationOutcome".to_owned());
    match status.as_u16() {
        403 => FhirError::Forbidden,
        404 | 410 => FhirError::NotFound,
        s => FhirError::Status {
            status: s,
            code,
            retry_after: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{ManualClock, MemorySecureStore};
    use std::sync::Arc;

    #[test]
    fn a_failed_read_keeps_its_cause_in_the_public_error() {
        // A 404 or a 400 is the FHIR server's answer about this request: not an authorization problem.
        for (e, status) in [
            (FhirError::NotFound, Some(404)),
            (
                FhirError::Status {
                    status: 400,
                    code: "invalid".into(),
                    retry_after: None,
                },
                Some(400),
            ),
            (FhirError::Malformed("not JSON".into()), None),
            (FhirError::TooLarge(10), None),
        ] {
            match Error::from(e) {
                Error::Server(f) => assert_eq!(f.status, status),
                other => panic!("{other:?}"),
            }
        }
        // A throttled answer keeps the server's Retry-After; a 5xx is a server error; a broken store keeps its kind.
        let throttled = Error::from(FhirError::Status {
            status: 429,
            code: "throttled".into(),
            retry_after: Some(Duration::from_secs(30)),
        });
        assert_eq!(
            throttled,
            Error::Network(NetworkFailure {
                kind: NetworkKind::Throttled,
                retry_after: Some(Duration::from_secs(30)),
                message: "the server answered 429".into(),
            })
        );
        assert!(matches!(
            Error::from(FhirError::Status {
                status: 502,
                code: String::new(),
                retry_after: None
            }),
            Error::Network(NetworkFailure {
                kind: NetworkKind::ServerError,
                retry_after: None,
                ..
            })
        ));
        assert_eq!(
            Error::from(FhirError::Local(StoreError::Full)).storage_kind(),
            Some(crate::StorageKind::Full)
        );
        assert_eq!(Error::from(FhirError::Locked), Error::Locked);
        assert!(matches!(
            Error::from(FhirError::Forbidden),
            Error::Authorization(f) if f.reason == AuthorizationReason::Refused
        ));
    }

    fn with_client(f: impl FnOnce(&FhirClient<'_>)) {
        let http = http::Http::new().expect("http");
        let accounts = Accounts::load(
            Arc::new(MemorySecureStore::default()),
            Arc::new(ManualClock::new()),
            http.clone(),
            Default::default(),
        )
        .expect("accounts");
        let never = || false;
        let base = Url::parse("https://ehr.example/api/FHIR/R4").expect("url");
        f(&FhirClient::new(
            &http,
            &accounts,
            "a",
            base,
            RetryPolicy::default(),
            &never,
        ));
    }

    #[test]
    fn links_stay_on_the_grants_origin() {
        // SMART client req. 93, 97, 98: the token goes only to the FHIR server it was issued for.
        with_client(|c| {
            assert_eq!(
                c.resolve("Patient/1").expect("relative").as_str(),
                "https://ehr.example/api/FHIR/R4/Patient/1"
            );
            assert!(
                c.resolve("https://ehr.example/api/FHIR/R4/Observation?_getpages=x")
                    .is_ok()
            );
            assert_eq!(
                c.resolve("https://evil.example/api/FHIR/R4/Patient/1"),
                Err(FhirError::ForeignOrigin)
            );
            assert_eq!(
                c.resolve("http://ehr.example/api/FHIR/R4/Patient/1"),
                Err(FhirError::ForeignOrigin),
                "scheme is part of the origin"
            );
            assert_eq!(
                c.resolve("https://ehr.example:8443/Patient/1"),
                Err(FhirError::ForeignOrigin)
            );
        });
    }

    #[tokio::test]
    async fn a_foreign_url_is_refused_before_any_request() {
        let http = http::Http::new().expect("http");
        let accounts = Accounts::load(
            Arc::new(MemorySecureStore::default()),
            Arc::new(ManualClock::new()),
            http.clone(),
            Default::default(),
        )
        .expect("accounts");
        let never = || false;
        let c = FhirClient::new(
            &http,
            &accounts,
            "a",
            Url::parse("https://ehr.example/fhir").expect("url"),
            RetryPolicy::default(),
            &never,
        );
        let foreign = Url::parse("http://127.0.0.1:9/steal").expect("url");
        assert_eq!(
            c.get(&foreign, "*/*")
                .await
                .expect_err("a foreign origin is refused"),
            FhirError::ForeignOrigin
        );
    }

    #[test]
    fn status_errors_carry_the_outcome_code_not_the_text() {
        let body = br#"{"resourceType":"OperationOutcome","issue":[{"code":"throttled","diagnostics":"patient Jane Doe"}]}"#;
        let e = status_error(StatusCode::TOO_MANY_REQUESTS, "application/fhir+json", body);
        assert_eq!(
            e,
            FhirError::Status {
                status: 429,
                code: "throttled".into(),
                retry_after: None,
            }
        );
        assert!(e.is_transient());
        assert!(!e.to_string().contains("Jane"));
        let outcome = br#"{"resourceType":"OperationOutcome","issue":[{"code":"forbidden"}]}"#;
        assert_eq!(
            status_error(
                StatusCode::FORBIDDEN,
                "application/fhir+json; charset=utf-8",
                outcome
            ),
            FhirError::Forbidden
        );
        assert_eq!(
            status_error(StatusCode::FORBIDDEN, "application/json", outcome),
            FhirError::Forbidden
        );
    }

    /// A 403 that is not the FHIR server's own OperationOutcome (a firewall's HTML page, an empty body, JSON that is
    /// not an OperationOutcome, an OperationOutcome served as text/html) is a failed query, not "not shared".
    #[test]
    fn a_403_that_is_not_a_fhir_answer_is_not_consent_withdrawn() {
        let outcome = br#"{"resourceType":"OperationOutcome","issue":[{"code":"forbidden"}]}"#;
        for (ct, body) in [
            (
                "text/html",
                &b"<html><body><h1>403 Forbidden</h1>Request blocked by WAF</body></html>"[..],
            ),
            ("", &b""[..]),
            ("application/json", &br#"{"message":"Forbidden"}"#[..]),
            ("text/html", &outcome[..]),
        ] {
            let e = status_error(StatusCode::FORBIDDEN, ct, body);
            assert_eq!(
                e,
                FhirError::Status {
                    status: 403,
                    code: NOT_FHIR.into(),
                    retry_after: None,
                },
                "{ct}"
            );
            assert!(!e.is_transient());
        }
    }
}
