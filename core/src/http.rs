//! The HTTP client every part of core shares: reqwest over rustls (ring), with timeouts, a cap on response sizes,
//! content-type checks, and an adapter that lets the `oauth2` crate send its requests through it.
//!
//! Errors never carry a response body or a URL query (either may hold a token or health data).

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;

use crate::error::{NetworkFailure, NetworkKind};
use crate::secret::Secret;

/// Largest discovery, token or registration response accepted.
pub const SMALL_BODY_LIMIT: usize = 1024 * 1024;

/// A failed HTTP exchange.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum HttpError {
    /// Could not connect, the connection broke, or it timed out: worth retrying later.
    #[error("network error: {0}")]
    Network(NetworkFailure),
    /// The body was larger than we accept.
    #[error("response larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// The server answered something that is not JSON where JSON was required.
    #[error("expected JSON, got {content_type:?}")]
    NotJson { content_type: String },
    /// JSON that does not parse.
    #[error("malformed JSON at line {line}, column {column}")]
    BadJson { line: usize, column: usize },
    /// A URL we refuse to call.
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
}

/// One response, read in full (up to a limit).
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as JSON, if the content type says JSON (or says nothing) and it parses.
    pub fn json(&self) -> Result<Value, HttpError> {
        let ct = self
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        if !ct.is_empty() && !ct.contains("json") {
            return Err(HttpError::NotJson {
                content_type: ct.split(';').next().unwrap_or("").to_owned(),
            });
        }
        serde_json::from_slice(&self.body).map_err(|e| HttpError::BadJson {
            line: e.line(),
            column: e.column(),
        })
    }
}

/// The shared client.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    /// A client with ChartLink's timeouts. Installs rustls' ring provider if the process has none.
    pub fn new() -> Result<Self, HttpError> {
        Self::build(None)
    }

    /// A client that trusts only the given root certificates (DER) instead of the platform's: for a private
    /// deployment's CA, and for tests with a local CA over real TLS.
    pub fn with_roots(roots_der: &[Vec<u8>]) -> Result<Self, HttpError> {
        let certs = roots_der
            .iter()
            .map(|d| reqwest::Certificate::from_der(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| HttpError::Network(failure(&e)))?;
        Self::build(Some(certs))
    }

    fn build(roots: Option<Vec<reqwest::Certificate>>) -> Result<Self, HttpError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if let Some(certs) = roots {
            builder = builder.tls_certs_only(certs);
        }
        let client = builder
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("ChartLink/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| HttpError::Network(failure(&e)))?;
        Ok(Self { client })
    }

    /// The underlying reqwest client (for streaming FHIR pages).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// GET `url`, reading at most `limit` bytes.
    pub async fn get(
        &self,
        url: &Url,
        bearer: Option<&Secret>,
        accept: &str,
        limit: usize,
    ) -> Result<Response, HttpError> {
        let mut req = self.client.get(url.clone()).header("accept", accept);
        if let Some(token) = bearer {
            req = req.bearer_auth(token.expose());
        }
        read(
            req.send()
                .await
                .map_err(|e| HttpError::Network(failure(&e)))?,
            limit,
        )
        .await
    }

    /// POST a form, reading at most `limit` bytes of the answer.
    pub async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        bearer: Option<&Secret>,
        limit: usize,
    ) -> Result<Response, HttpError> {
        let mut req = self
            .client
            .post(url.clone())
            .header("accept", "application/json")
            .form(form);
        if let Some(token) = bearer {
            req = req.bearer_auth(token.expose());
        }
        read(
            req.send()
                .await
                .map_err(|e| HttpError::Network(failure(&e)))?,
            limit,
        )
        .await
    }

    /// POST JSON, reading at most `limit` bytes of the answer.
    pub async fn post_json(
        &self,
        url: &Url,
        body: &Value,
        bearer: Option<&Secret>,
        limit: usize,
    ) -> Result<Response, HttpError> {
        let mut req = self
            .client
            .post(url.clone())
            .header("accept", "application/json")
            .json(body);
        if let Some(token) = bearer {
            req = req.bearer_auth(token.expose());
        }
        read(
            req.send()
                .await
                .map_err(|e| HttpError::Network(failure(&e)))?,
            limit,
        )
        .await
    }

    /// Sends a request built by the `oauth2` crate.
    pub async fn oauth2_call(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let (parts, body) = request.into_parts();
        let url = Url::parse(&parts.uri.to_string())
            .map_err(|_| HttpError::InvalidUrl("oauth2 request".into()))?;
        let method = Method::from_bytes(parts.method.as_str().as_bytes())
            .map_err(|_| HttpError::InvalidUrl("method".into()))?;
        let mut req = self.client.request(method, url).body(body);
        for (name, value) in &parts.headers {
            req = req.header(name.as_str(), value.as_bytes());
        }
        let resp = read(
            req.send()
                .await
                .map_err(|e| HttpError::Network(failure(&e)))?,
            SMALL_BODY_LIMIT,
        )
        .await?;
        let mut out = http::Response::builder().status(resp.status.as_u16());
        for (name, value) in &resp.headers {
            out = out.header(name.as_str(), value.as_bytes());
        }
        out.body(resp.body).map_err(|_| {
            HttpError::Network(NetworkFailure::new(
                NetworkKind::Interrupted,
                "unreadable response head",
            ))
        })
    }
}

/// Reads a whole body, refusing more than `limit` bytes (checked as it streams, not after).
pub async fn read(mut resp: reqwest::Response, limit: usize) -> Result<Response, HttpError> {
    if resp.content_length().is_some_and(|n| n as usize > limit) {
        return Err(HttpError::TooLarge { limit });
    }
    let status = resp.status();
    let headers = resp.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| HttpError::Network(failure(&e)))?
    {
        if body.len() + chunk.len() > limit {
            return Err(HttpError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A reqwest error as a [`NetworkFailure`]: its kind, and a message without its URL (the query may hold a code or a
/// token): the host name at most.
pub fn failure(e: &reqwest::Error) -> NetworkFailure {
    let certificate = {
        // rustls's refusal of a certificate sits a few sources down (hyper, io, rustls).
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        let mut found = false;
        while let Some(s) = source {
            if s.to_string().to_ascii_lowercase().contains("certificate") {
                found = true;
                break;
            }
            source = s.source();
        }
        found
    };
    let (kind, what) = if certificate {
        (
            NetworkKind::Certificate,
            "the server's certificate was refused",
        )
    } else if e.is_timeout() {
        (NetworkKind::TimedOut, "timed out")
    } else if e.is_connect() {
        (NetworkKind::Unreachable, "could not connect")
    } else if e.is_body() || e.is_decode() {
        (
            NetworkKind::Interrupted,
            "the connection broke while reading the answer",
        )
    } else if e.is_request() {
        (NetworkKind::Unreachable, "the request could not be sent")
    } else {
        (NetworkKind::Interrupted, "HTTP failure")
    };
    let host = e
        .url()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    let message = if host.is_empty() {
        what.to_owned()
    } else {
        format!("{what} ({host})")
    };
    NetworkFailure::new(kind, message)
}
