//! Token endpoint answers, read strictly where it matters and leniently where servers differ: every grant (the
//! authorization code, a refresh, the jwt-bearer grant of a device client) goes through [`request`], which turns
//! the answer into either a usable token or a [`TokenError`] that says *what the server meant*.
//!
//! That classification is what revocation depends on, so it is conservative: only the authorization server's own
//! well-formed OAuth error `invalid_grant` says the grant is gone ([`TokenError::GrantGone`]). A 5xx, a 429, an
//! HTML page from a load balancer, `temporarily_unavailable`, a timeout or a 200 that is not a token response are
//! [`TokenError::Unavailable`]: try later, keep everything. Any other well-formed refusal (`invalid_client`,
//! `unauthorized_client`, ...) is [`TokenError::Refused`]: this grant cannot be renewed by us, the user must link
//! again, and the record stays.
//!
//! The `Date` header of every answer gives the server's clock ([`ServerClock`]), which client assertions use, so a
//! phone whose clock is minutes off still gets its tokens.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::Value;
use url::Url;

use crate::error::{NetworkFailure, NetworkKind};
use crate::http::{Http, HttpError, Response, SMALL_BODY_LIMIT};
use crate::secret::Secret;

/// The longest token lifetime believed (a server's `expires_in` above this is clamped; ten years).
pub const MAX_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// How much an OAuth error code or description is kept (after sanitising).
const MAX_CODE_CHARS: usize = 40;
const MAX_DESCRIPTION_CHARS: usize = 200;

/// What a failed token request means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The authorization server said, in a well-formed OAuth error, that the grant is gone (`invalid_grant`).
    #[error("the provider says this grant is no longer valid (invalid_grant)")]
    GrantGone {
        /// The server's `Date`, when it sent one (for the clock-skew retry of client assertions).
        server_date_ms: Option<i64>,
        /// The server's `error_description`, sanitised and bounded.
        description: Option<String>,
    },
    /// A well-formed, definitive refusal that does not end the grant by itself (`invalid_client`,
    /// `unauthorized_client`, `invalid_scope`, ...): renewing needs the user to link again.
    #[error("the provider refused the request ({code})")]
    Refused {
        code: String,
        /// The server's `error_description`, sanitised and bounded (safe to show; never a token).
        description: Option<String>,
        server_date_ms: Option<i64>,
    },
    /// Transient: a 5xx, a 429, `temporarily_unavailable`, an HTML page, a timeout.
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(NetworkFailure),
    /// A success status with an answer that is not a usable token response (no JSON, no access token). Transient
    /// for a refresh (a captive portal, a proxy); a failed link at the code exchange.
    #[error("the token response is not usable: {0}")]
    Malformed(String),
    /// A token this SDK must not use as a bearer token (`token_type` DPoP or unknown).
    #[error(
        "the provider issued a {0} token, which this app cannot use (only Bearer is supported)"
    )]
    UnsupportedTokenType(String),
}

/// A usable token response.
#[derive(Clone)]
pub struct TokenAnswer {
    pub access: Secret,
    /// Seconds, clamped to `0..=MAX_LIFETIME_SECS`.
    pub expires_in_secs: Option<u64>,
    pub refresh: Option<Secret>,
    pub scope: Option<String>,
    pub patient: Option<String>,
    pub id_token: Option<String>,
    /// The server's clock at the answer (its `Date` header), in Unix milliseconds.
    pub server_date_ms: Option<i64>,
}

impl std::fmt::Debug for TokenAnswer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAnswer")
            .field("expires_in_secs", &self.expires_in_secs)
            .field("has_refresh", &self.refresh.is_some())
            .field("scope", &self.scope)
            .field("has_id_token", &self.id_token.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenAnswer {
    /// When the access token expires, on the local clock (`now_ms` taken when the answer arrived), without
    /// overflow whatever the server said.
    pub fn expires_at_ms(&self, now_ms: i64) -> Option<i64> {
        self.expires_in_secs.map(|s| {
            now_ms.saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX))
        })
    }
}

#[derive(Deserialize)]
struct Raw {
    access_token: Option<Value>,
    token_type: Option<Value>,
    expires_in: Option<Value>,
    refresh_token: Option<Value>,
    scope: Option<Value>,
    patient: Option<Value>,
    id_token: Option<Value>,
}

fn string(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// `expires_in` as servers send it: a number (integer or not, possibly negative or huge) or a numeric string.
fn lifetime(v: Option<&Value>) -> Option<u64> {
    let secs = match v? {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    if !secs.is_finite() {
        return None;
    }
    // `as` saturates for floats: negative → 0, huge → u64::MAX, then clamped.
    Some((secs as u64).min(MAX_LIFETIME_SECS))
}

/// Keeps what RFC 6749 allows in an error code.
pub fn sanitize_code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(MAX_CODE_CHARS)
        .collect()
}

/// An `error_description` made safe to show: printable characters only (RFC 6749 allows %x20-21 / %x23-5B /
/// %x5D-7E), bounded.
pub fn sanitize_description(s: &str) -> Option<String> {
    let out: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .filter(|c| (' '..='~').contains(c))
        .take(MAX_DESCRIPTION_CHARS)
        .collect();
    let out = out.trim().to_owned();
    (!out.is_empty()).then_some(out)
}

/// The `Date` header of an answer, in Unix milliseconds.
pub fn server_date_ms(resp: &Response) -> Option<i64> {
    date_header_ms(&resp.headers)
}

/// The `Date` header among `headers`, in Unix milliseconds.
pub fn date_header_ms(headers: &reqwest::header::HeaderMap) -> Option<i64> {
    let raw = headers.get("date")?.to_str().ok()?;
    let t = httpdate::parse_http_date(raw).ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    i64::try_from(d.as_millis()).ok()
}

/// Reads a token endpoint's answer.
pub fn classify(resp: &Response) -> Result<TokenAnswer, TokenError> {
    let server_date_ms = server_date_ms(resp);
    let status = resp.status.as_u16();
    if resp.status.is_success() {
        let raw: Raw = resp
            .json()
            .ok()
            .and_then(|v| serde_json::from_value(v).ok())
            .ok_or_else(|| TokenError::Malformed("the answer is not a token response".into()))?;
        let token_type = string(raw.token_type).unwrap_or_default();
        if !token_type.eq_ignore_ascii_case("bearer") {
            let shown = sanitize_code(&token_type);
            return Err(TokenError::UnsupportedTokenType(if shown.is_empty() {
                "untyped".into()
            } else {
                shown
            }));
        }
        let access = string(raw.access_token)
            .ok_or_else(|| TokenError::Malformed("the answer carries no access token".into()))?;
        return Ok(TokenAnswer {
            access: Secret::new(access),
            expires_in_secs: lifetime(raw.expires_in.as_ref()),
            refresh: string(raw.refresh_token).map(Secret::new),
            scope: string(raw.scope),
            patient: string(raw.patient),
            id_token: string(raw.id_token),
            server_date_ms,
        });
    }
    if status >= 500 || status == 429 {
        let retry_after = resp
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| std::time::Duration::from_secs(s.min(120)));
        return Err(TokenError::Unavailable(NetworkFailure {
            kind: if status == 429 || (status == 503 && retry_after.is_some()) {
                NetworkKind::Throttled
            } else {
                NetworkKind::ServerError
            },
            retry_after,
            message: format!("the token endpoint answered {status}"),
        }));
    }
    // Only a JSON OAuth error is the authorization server speaking; an HTML page is whatever stands in front of it.
    let Ok(body) = resp.json() else {
        return Err(unavailable(format!(
            "the token endpoint answered {status} without an OAuth error"
        )));
    };
    let Some(code) = body["error"].as_str().map(sanitize_code) else {
        return Err(unavailable(format!(
            "the token endpoint answered {status} without an OAuth error"
        )));
    };
    let description = body["error_description"]
        .as_str()
        .and_then(sanitize_description);
    match code.as_str() {
        "invalid_grant" => Err(TokenError::GrantGone {
            server_date_ms,
            description,
        }),
        "temporarily_unavailable" | "server_error" | "slow_down" => {
            Err(unavailable(format!("the token endpoint answered {code}")))
        }
        "" => Err(unavailable(format!(
            "the token endpoint answered {status} without an OAuth error"
        ))),
        _ => Err(TokenError::Refused {
            code,
            description,
            server_date_ms,
        }),
    }
}

/// A transient failure of the token endpoint: the server failed, or something not the authorization server answered.
pub(crate) fn unavailable(message: String) -> TokenError {
    TokenError::Unavailable(NetworkFailure::new(NetworkKind::ServerError, message))
}

/// POSTs a token request form and reads the answer.
pub async fn request(
    http: &Http,
    token_url: &Url,
    form: &[(&str, &str)],
) -> Result<TokenAnswer, TokenError> {
    let resp = match http
        .post_form(token_url, form, None, SMALL_BODY_LIMIT)
        .await
    {
        Ok(r) => r,
        Err(HttpError::Network(f)) => return Err(TokenError::Unavailable(f)),
        Err(e) => return Err(unavailable(e.to_string())),
    };
    classify(&resp)
}

/// What each server's clock says compared with ours, from the `Date` headers of its answers.
#[derive(Debug, Default)]
pub struct ServerClock {
    skew_ms: Mutex<HashMap<String, i64>>,
}

/// Skews smaller than this are noise (Date has one-second resolution, and requests take time).
const SKEW_NOISE_MS: i64 = 2_000;

impl ServerClock {
    /// Records a server's `Date` (Unix ms) seen when our clock said `local_ms`.
    pub fn observe(&self, origin: &Url, server_ms: Option<i64>, local_ms: i64) {
        let Some(server_ms) = server_ms else {
            return;
        };
        let skew = server_ms.saturating_sub(local_ms);
        let skew = if skew.abs() < SKEW_NOISE_MS { 0 } else { skew };
        self.lock()
            .insert(origin.origin().ascii_serialization(), skew);
    }

    /// The server's time now, by our clock corrected with its last known skew.
    pub fn server_now_ms(&self, origin: &Url, local_ms: i64) -> i64 {
        let skew = self
            .lock()
            .get(&origin.origin().ascii_serialization())
            .copied()
            .unwrap_or(0);
        local_ms.saturating_add(skew)
    }

    /// The last known skew of a server (server minus local), in ms.
    pub fn skew_ms(&self, origin: &Url) -> i64 {
        self.lock()
            .get(&origin.origin().ascii_serialization())
            .copied()
            .unwrap_or(0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, i64>> {
        self.skew_ms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;
    use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};

    fn resp(status: u16, ct: &str, body: &str) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(ct).expect("ct"));
        headers.insert(
            "date",
            HeaderValue::from_static("Tue, 01 Dec 2026 10:00:00 GMT"),
        );
        Response {
            status: StatusCode::from_u16(status).expect("status"),
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn only_invalid_grant_in_a_well_formed_oauth_error_means_the_grant_is_gone() {
        let gone = classify(&resp(
            400,
            "application/json",
            r#"{"error":"invalid_grant"}"#,
        ));
        assert!(matches!(
            gone,
            Err(TokenError::GrantGone {
                server_date_ms: Some(_),
                ..
            })
        ));
        for (status, ct, body) in [
            (
                503,
                "text/html",
                "<html><body>502 Bad Gateway</body></html>",
            ),
            (503, "application/json", r#"{"error":"invalid_grant"}"#),
            (
                400,
                "application/json",
                r#"{"error":"temporarily_unavailable"}"#,
            ),
            (400, "application/json", r#"{"error":"server_error"}"#),
            (429, "application/json", r#"{"error":"slow_down"}"#),
            (400, "text/html", "<h1>invalid_grant</h1>"),
            (401, "application/json", "not json"),
        ] {
            assert!(
                matches!(
                    classify(&resp(status, ct, body)),
                    Err(TokenError::Unavailable(_))
                ),
                "{status} {body}"
            );
        }
        let refused = classify(&resp(
            401,
            "application/json",
            "{\"error\":\"invalid_client\",\"error_description\":\"Client \\u001b[31mauthentication failed\"}",
        ));
        assert_eq!(
            refused.expect_err("refused"),
            TokenError::Refused {
                code: "invalid_client".into(),
                description: Some("Client  [31mauthentication failed".into()),
                server_date_ms: Some(1_796_119_200_000),
            }
        );
    }

    #[test]
    fn a_success_without_a_token_is_malformed() {
        for (ct, body) in [
            ("text/html", "<html>captive portal</html>"),
            ("application/json", r#"{"token_type":"Bearer"}"#),
            ("application/json", "[1,2]"),
        ] {
            assert!(matches!(
                classify(&resp(200, ct, body)),
                Err(TokenError::Malformed(_))
            ));
        }
    }

    #[test]
    fn token_type_must_be_bearer_in_any_case() {
        let ok = classify(&resp(
            200,
            "application/json",
            r#"{"access_token":"a","token_type":"bEaReR","expires_in":"3600"}"#,
        ))
        .expect("bearer");
        assert_eq!(ok.expires_in_secs, Some(3600));
        for tt in [r#""DPoP""#, r#""mac""#, "null", "7"] {
            let body = format!(r#"{{"access_token":"a","token_type":{tt}}}"#);
            assert!(matches!(
                classify(&resp(200, "application/json", &body)),
                Err(TokenError::UnsupportedTokenType(_))
            ));
        }
    }

    #[test]
    fn server_numbers_are_clamped() {
        for (raw, want) in [
            ("1e300", Some(MAX_LIFETIME_SECS)),
            ("18446744073709551615", Some(MAX_LIFETIME_SECS)),
            ("-5", Some(0)),
            ("59.9", Some(59)),
            (r#""abc""#, None),
            ("[]", None),
        ] {
            let body =
                format!(r#"{{"access_token":"a","token_type":"Bearer","expires_in":{raw}}}"#);
            let t = classify(&resp(200, "application/json", &body)).expect("token");
            assert_eq!(t.expires_in_secs, want, "{raw}");
            assert!(
                t.expires_at_ms(i64::MAX - 5)
                    .is_none_or(|e| e >= i64::MAX - 5)
            );
        }
    }

    #[test]
    fn the_server_clock_is_estimated_per_origin() {
        let clock = ServerClock::default();
        let a = Url::parse("https://a.example/token").expect("url");
        let b = Url::parse("https://b.example/token").expect("url");
        clock.observe(&a, Some(1_000_000 + 120_000), 1_000_000);
        clock.observe(&b, Some(1_000_500), 1_000_000);
        assert_eq!(clock.server_now_ms(&a, 2_000_000), 2_120_000);
        assert_eq!(clock.skew_ms(&b), 0, "sub-second differences are noise");
    }
}
