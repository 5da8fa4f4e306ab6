//! What every part of the sandbox writes and reads the same way, with no dependency on any of them: random
//! tokens and their hashes, constant-time secret comparison, form parameters, OperationOutcomes, and the portal's
//! HTML page frame. A leaf module: the authorization server, the portal, the FHIR API and the store share it
//! instead of importing each other.

use std::collections::HashMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};

/// The content type of FHIR answers.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// A random URL-safe token of 256 bits.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// SHA-256 of a token, base64url: what the database keeps.
pub fn token_hash(token: &str) -> String {
    B64.encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets through their SHA-256 digests, so the time taken says nothing about the secret.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// Form or query parameters, with repeated parameters refused (RFC 6749 §3.1: parameters MUST NOT repeat).
#[derive(Debug, Default)]
pub struct Params {
    map: HashMap<String, String>,
    pub repeated: Option<String>,
}

impl Params {
    /// Parses `application/x-www-form-urlencoded` bytes.
    pub fn parse(bytes: &[u8]) -> Self {
        let mut out = Self::default();
        for (k, v) in url::form_urlencoded::parse(bytes) {
            if out.map.insert(k.to_string(), v.into_owned()).is_some() && out.repeated.is_none() {
                out.repeated = Some(k.into_owned());
            }
        }
        out
    }

    /// A parameter, `None` when absent or empty.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.map
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// An OperationOutcome response.
pub fn outcome(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    r
}

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;background:#f3f6f9;color:#1d2b36;margin:0}
header{background:#0b5394;color:#fff;padding:14px 24px;font-size:20px;font-weight:600}
main{max-width:640px;margin:24px auto;background:#fff;border-radius:10px;padding:24px 28px;box-shadow:0 1px 4px #0002}
h1{font-size:22px;margin-top:0} h2{font-size:17px;margin-bottom:6px}
label{display:block;margin:8px 0} input[type=text],input[type=password]{width:100%;padding:9px;font-size:16px;box-sizing:border-box}
button{font-size:16px;padding:10px 22px;border-radius:6px;border:1px solid #0b5394;margin:12px 8px 0 0;cursor:pointer}
button.primary{background:#0b5394;color:#fff} button.secondary{background:#fff;color:#0b5394}
.error{background:#fde8e8;border:1px solid #e0a0a0;color:#8a1c1c;padding:10px;border-radius:6px}
.warning{background:#fff4e0;border:1px solid #e5b766;padding:12px;border-radius:6px}
.note{background:#eef5fc;border:1px solid #a9c8e8;padding:10px;border-radius:6px}
dl{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:6px 14px} dt{font-weight:600} dd{margin:0;overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #dde;padding:8px;text-align:left;vertical-align:top}
.muted{color:#5b6b78;font-size:14px}
";

pub fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{} - ChartLink Sandbox Portal</title><style>{STYLE}</style></head>\
         <body><header>ChartLink Sandbox Portal</header><main>{body}</main></body></html>",
        esc(title)
    ))
}

/// An error page (shown when the portal cannot trust the app's redirect, or a form is not what it should be).
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p class=\"error\" id=\"error\">{}</p>",
        esc(title),
        esc(message)
    );
    (status, page(title, &body)).into_response()
}
