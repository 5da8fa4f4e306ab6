//! The FHIR API behind an authorization server the sandbox did not write: its JWT access tokens (RFC 9068) are
//! verified against its JWKS, and the SMART configuration points at its endpoints.
//!
//! ```no_run
//! # async fn run() -> Result<(), chartlink_sandbox::SandboxError> {
//! use chartlink_sandbox::{Config, ExternalAuth, Sandbox};
//! let config = Config { external_auth: Some(ExternalAuth::new("https://login.example")), ..Config::default() };
//! let sandbox = Sandbox::start(config).await?;
//! # Ok(()) }
//! ```
//!
//! At start the issuer's `/.well-known/openid-configuration` (OpenID Connect Discovery, RFC 8414) and its JWKS are
//! read. A bearer token then opens the FHIR API when it is a JWT signed by one of those keys (RS256, RS384, ES256,
//! ES384; never `none` or HMAC) of type `at+jwt`, whose `iss` is the issuer, whose `aud` names the audience (the FHIR
//! base unless said otherwise), that has not expired by the sandbox clock (`nbf` respected), and that carries a
//! `patient` claim naming a patient here; its `scope` claim limits it as the sandbox's own grants are limited
//! (scopes the FHIR API does not know are ignored). The sandbox's own portal, grants and proxy rules play no part:
//! the authorization server decided who may see which patient.
//!
//! Keys are read once: a token signed with a key the issuer added later is refused.

use axum::Json;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::scopes::Scopes;
use crate::store::GrantRow;
use crate::{Shared, jose};

/// The JWS algorithms accepted on access tokens.
const ACCESS_TOKEN_ALGORITHMS: [&str; 4] = ["RS256", "RS384", "ES256", "ES384"];

/// An authorization server in front of the sandbox's FHIR API (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalAuth {
    /// Its issuer identifier; `{issuer}/.well-known/openid-configuration` describes it.
    pub issuer: String,
    /// The `aud` its access tokens must carry; `None`: the sandbox's FHIR base.
    pub audience: Option<String>,
    /// The `scopes_supported` of the SMART configuration; `None`: the authorization server's own list.
    pub scopes_supported: Option<Vec<String>>,
    /// Whether the SMART configuration names `issuer`, `jwks_uri` and the `sso-openid-connect` capability. Off
    /// is the variation SMART App Launch allows a server without `sso-openid-connect`.
    pub advertise_issuer: bool,
}

impl ExternalAuth {
    /// The authorization server at `issuer`, tokens for the FHIR base, the SMART configuration naming it.
    pub fn new(issuer: &str) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience: None,
            scopes_supported: None,
            advertise_issuer: true,
        }
    }
}

/// An [`ExternalAuth`] with what was read from the authorization server at start.
#[derive(Debug)]
pub struct External {
    pub auth: ExternalAuth,
    /// The authorization server's metadata.
    pub metadata: Value,
    jwks: Value,
    audience: String,
}

/// Why the authorization server could not be read at start.
#[derive(Debug, thiserror::Error)]
#[error("the external authorization server {url} could not be read: {reason}")]
pub struct ExternalError {
    pub url: String,
    pub reason: String,
}

async fn get_json(http: &reqwest::Client, url: &str) -> Result<Value, ExternalError> {
    let fail = |reason: String| ExternalError {
        url: url.to_owned(),
        reason,
    };
    let resp = http
        .get(url)
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| fail(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(fail(format!("HTTP {}", resp.status().as_u16())));
    }
    resp.json().await.map_err(|e| fail(e.to_string()))
}

impl External {
    /// Reads the authorization server's metadata and keys.
    pub async fn resolve(auth: ExternalAuth, fhir_base: &str) -> Result<Self, ExternalError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| ExternalError {
                url: auth.issuer.clone(),
                reason: e.to_string(),
            })?;
        let discovery = format!("{}/.well-known/openid-configuration", auth.issuer);
        let metadata = get_json(&http, &discovery).await?;
        if metadata["issuer"].as_str().map(|i| i.trim_end_matches('/'))
            != Some(auth.issuer.as_str())
        {
            return Err(ExternalError {
                url: discovery,
                reason: "its metadata names another issuer".into(),
            });
        }
        let jwks_uri = metadata["jwks_uri"].as_str().ok_or_else(|| ExternalError {
            url: discovery.clone(),
            reason: "its metadata names no jwks_uri".into(),
        })?;
        let jwks = get_json(&http, jwks_uri).await?;
        let audience = auth
            .audience
            .clone()
            .unwrap_or_else(|| fhir_base.to_owned());
        Ok(Self {
            auth,
            metadata,
            jwks,
            audience,
        })
    }

    /// `/.well-known/smart-configuration` for the FHIR base: the authorization server's endpoints.
    pub fn smart_configuration(&self) -> Response {
        let m = &self.metadata;
        let scopes = self
            .auth
            .scopes_supported
            .clone()
            .map(Value::from)
            .unwrap_or_else(|| m["scopes_supported"].clone());
        let mut capabilities = vec![
            "launch-standalone",
            "client-public",
            "context-standalone-patient",
            "permission-patient",
            "permission-v2",
            "permission-offline",
        ];
        let mut body = json!({
            "authorization_endpoint": m["authorization_endpoint"],
            "token_endpoint": m["token_endpoint"],
            "grant_types_supported": m["grant_types_supported"],
            "token_endpoint_auth_methods_supported": m["token_endpoint_auth_methods_supported"],
            "scopes_supported": scopes,
            "response_types_supported": ["code"],
            "code_challenge_methods_supported": m["code_challenge_methods_supported"],
        });
        let Some(o) = body.as_object_mut() else {
            return Json(body).into_response();
        };
        for optional in [
            "revocation_endpoint",
            "introspection_endpoint",
            "registration_endpoint",
            "authorization_response_iss_parameter_supported",
        ] {
            if !m[optional].is_null() {
                o.insert(optional.into(), m[optional].clone());
            }
        }
        if self.auth.advertise_issuer {
            o.insert("issuer".into(), json!(self.auth.issuer));
            o.insert("jwks_uri".into(), m["jwks_uri"].clone());
            capabilities.push("sso-openid-connect");
        }
        o.insert("capabilities".into(), json!(capabilities));
        Json(body).into_response()
    }

    /// The CapabilityStatement's oauth-uris (the legacy discovery): the authorization server's endpoints.
    pub fn oauth_uris(&self) -> Vec<(&'static str, String)> {
        [
            ("authorize", "authorization_endpoint"),
            ("token", "token_endpoint"),
            ("revoke", "revocation_endpoint"),
            ("introspect", "introspection_endpoint"),
            ("register", "registration_endpoint"),
        ]
        .into_iter()
        .filter_map(|(name, field)| Some((name, self.metadata[field].as_str()?.to_owned())))
        .collect()
    }

    /// The grant a bearer access token stands for, if it passes every check in the module docs. The grant is
    /// made up from the token's claims (`id` is `external:` and its `jti`); the sandbox stores nothing.
    pub fn bearer_grant(&self, s: &Shared, headers: &HeaderMap) -> Option<GrantRow> {
        let token = headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")?
            .trim();
        let claims = self.verify(token, s.clock.now())?;
        let patient = claims["patient"].as_str().filter(|p| !p.is_empty())?;
        s.store().person(patient).ok()??;
        Some(GrantRow {
            id: format!("external:{}", claims["jti"].as_str().unwrap_or_default()),
            client_id: claims["client_id"].as_str().unwrap_or_default().to_owned(),
            username: claims["sub"].as_str().unwrap_or_default().to_owned(),
            patient_id: patient.to_owned(),
            scope: claims["scope"].as_str().unwrap_or_default().to_owned(),
            created_at: claims["iat"].as_i64().unwrap_or_default(),
            revoked_at: None,
            revoked_reason: None,
        })
    }

    /// The claims of a valid access token at `now` (seconds).
    pub fn verify(&self, token: &str, now: i64) -> Option<Value> {
        let jwt = jose::decode(token).ok()?;
        // RFC 9068 §4: the resource server checks the type, so an id_token is never taken for an access token.
        let typ = jwt.header["typ"].as_str().unwrap_or_default();
        if !typ.eq_ignore_ascii_case("at+jwt") && !typ.eq_ignore_ascii_case("application/at+jwt") {
            return None;
        }
        let claims = jwt
            .verify_allowing(&self.jwks, &ACCESS_TOKEN_ALGORITHMS)
            .ok()?;
        if claims["iss"].as_str().map(|i| i.trim_end_matches('/'))
            != Some(self.auth.issuer.as_str())
        {
            return None;
        }
        let aud_ok = match &claims["aud"] {
            Value::String(a) => a.trim_end_matches('/') == self.audience.trim_end_matches('/'),
            Value::Array(list) => list.iter().any(|a| {
                a.as_str()
                    .is_some_and(|a| a.trim_end_matches('/') == self.audience.trim_end_matches('/'))
            }),
            _ => false,
        };
        if !aud_ok || claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
            return None;
        }
        if claims["nbf"].as_i64().is_some_and(|nbf| nbf > now) {
            return None;
        }
        Some(claims)
    }
}

/// The resource scopes of a token's `scope` claim the FHIR API knows; others (an issuer's own scopes) are ignored.
pub fn known_scopes(scope: &str) -> Scopes {
    let known: Vec<&str> = scope
        .split_ascii_whitespace()
        .filter(|t| Scopes::parse(t).is_ok())
        .collect();
    Scopes::parse(&known.join(" ")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUER: &str = "http://127.0.0.1:9000";
    const FHIR: &str = "http://127.0.0.1:9001/fhir";
    const NOW: i64 = 1_800_000_000;

    fn external(key: &jose::SigningKey) -> External {
        External {
            auth: ExternalAuth::new(ISSUER),
            metadata: json!({}),
            jwks: key.jwks(),
            audience: FHIR.into(),
        }
    }

    fn claims() -> Value {
        json!({"iss": ISSUER, "aud": FHIR, "exp": NOW + 60, "iat": NOW, "sub": "x", "patient": "p",
            "scope": "openid patient/*.rs"})
    }

    #[test]
    fn a_valid_access_token_passes() {
        let key = jose::SigningKey::generate().expect("key");
        let ext = external(&key);
        assert!(
            ext.verify(&key.sign_typed("at+jwt", &claims()), NOW)
                .is_some()
        );
        let mut listed = claims();
        listed["aud"] = json!(["other", format!("{FHIR}/")]);
        assert!(
            ext.verify(&key.sign_typed("at+jwt", &listed), NOW)
                .is_some()
        );
    }

    #[test]
    fn every_check_can_refuse() {
        let key = jose::SigningKey::generate().expect("key");
        let ext = external(&key);
        let refused = |change: &dyn Fn(&mut Value), typ: &str| {
            let mut c = claims();
            change(&mut c);
            ext.verify(&key.sign_typed(typ, &c), NOW).is_none()
        };
        assert!(refused(&|_| {}, "JWT"), "an id_token's type");
        assert!(refused(
            &|c| c["iss"] = json!("http://127.0.0.1:9002"),
            "at+jwt"
        ));
        assert!(refused(
            &|c| c["aud"] = json!("http://127.0.0.1:9003/fhir"),
            "at+jwt"
        ));
        assert!(refused(&|c| c["aud"] = json!(null), "at+jwt"));
        assert!(refused(&|c| c["exp"] = json!(NOW), "at+jwt"), "expired");
        assert!(
            refused(&|c| c["nbf"] = json!(NOW + 10), "at+jwt"),
            "not yet valid"
        );
        let other = jose::SigningKey::generate().expect("key");
        assert!(
            ext.verify(&other.sign_typed("at+jwt", &claims()), NOW)
                .is_none(),
            "another key"
        );
    }

    #[test]
    fn unknown_scopes_are_ignored_not_fatal() {
        let s = known_scopes("openid fhirUser patient/Condition.rs some-issuer-scope");
        assert!(s.openid && s.fhir_user);
        assert_eq!(s.resources.len(), 1);
    }
}
