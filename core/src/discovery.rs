//! Finding a FHIR server's SMART endpoints: `{base}/.well-known/smart-configuration` first (relative URLs resolved
//! against the base), the CapabilityStatement's oauth-uris extension as the legacy fallback. A server that does not
//! offer PKCE S256 is refused; the scope syntax (v1 or v2) follows its capabilities, never a mix.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use crate::http::{Http, HttpError, SMALL_BODY_LIMIT};

const OAUTH_URIS: &str = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";

/// Which scope syntax to speak to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeSyntax {
    /// `patient/Observation.read`
    V1,
    /// `patient/Observation.rs?category=…`
    V2,
}

/// What an app needs to know about a server to link to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub fhir_base: Url,
    /// OpenID issuer (for id_token checks); the FHIR base when the server does not say.
    pub issuer: Option<String>,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub revocation_endpoint: Option<Url>,
    pub registration_endpoint: Option<Url>,
    pub management_endpoint: Option<Url>,
    pub jwks_uri: Option<Url>,
    pub capabilities: Vec<String>,
    pub scope_syntax: ScopeSyntax,
    /// Found through the legacy CapabilityStatement extension rather than `.well-known`.
    pub legacy_discovery: bool,
    /// The server advertises `authorization_response_iss_parameter_supported` (RFC 9207): its redirects always
    /// carry `iss`, so one without it is refused.
    #[serde(default)]
    pub iss_parameter_supported: bool,
    /// The rest of the SMART configuration that shapes a link (scopes offered, the provider's brand).
    #[serde(default)]
    pub metadata: ServerMetadata,
}

/// SMART configuration fields beyond the endpoints.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerMetadata {
    /// `scopes_supported`, when the server publishes it (not an exhaustive list, SMART 2.2 §conformance; it
    /// decides whether category-restricted scopes are asked for).
    pub scopes_supported: Option<Vec<String>>,
    /// `user_access_brand_bundle`: the provider's own Brand Bundle (preferred over a vendor's, SMART client
    /// reqs. 415, 416).
    pub user_access_brand_bundle: Option<Url>,
    /// `user_access_brand_identifier`: which Organization of that bundle is this endpoint's brand.
    pub user_access_brand_identifier: Option<Value>,
}

impl ServerInfo {
    /// A SMART v2 server at `base` whose endpoints are all `base`, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(base: &str) -> Self {
        let base = Url::parse(base).expect("a test URL");
        ServerInfo {
            fhir_base: base.clone(),
            issuer: None,
            authorization_endpoint: base.clone(),
            token_endpoint: base,
            revocation_endpoint: None,
            registration_endpoint: None,
            management_endpoint: None,
            jwks_uri: None,
            capabilities: vec![],
            scope_syntax: ScopeSyntax::V2,
            legacy_discovery: false,
            iss_parameter_supported: false,
            metadata: Default::default(),
        }
    }

    /// Whether the server lists a SMART capability.
    pub fn has(&self, capability: &str) -> bool {
        self.capabilities.iter().any(|c| c == capability)
    }

    /// Whether the server lists `scope` in `scopes_supported` (`None`: it publishes no list).
    pub fn lists_scope(&self, pred: impl Fn(&str) -> bool) -> Option<bool> {
        self.metadata
            .scopes_supported
            .as_ref()
            .map(|l| l.iter().any(|s| pred(s)))
    }

    /// Whether the server does OpenID Connect: it says so (`sso-openid-connect`) or offers the `openid` scope.
    pub fn does_openid_connect(&self) -> bool {
        self.has("sso-openid-connect") || self.lists_scope(|s| s == "openid") == Some(true)
    }
}

/// Why discovery failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum DiscoveryError {
    #[error("the FHIR base URL must be an https URL (plain http only on this computer)")]
    InvalidBase,
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("the server publishes no SMART configuration (HTTP {status})")]
    NotSmart { status: u16 },
    /// The server speaks a FHIR version ChartLink does not read (it reads R4: 4.0.x and R4B 4.3.x).
    #[error(
        "the server speaks FHIR {0}; ChartLink needs FHIR R4 (ask the provider for its R4 endpoint)"
    )]
    UnsupportedFhirVersion(String),
    #[error("the SMART configuration is missing {0}")]
    Missing(&'static str),
    #[error("the SMART configuration has an invalid {0}")]
    InvalidField(&'static str),
    #[error("the server does not offer PKCE with S256, so ChartLink will not link to it")]
    NoPkceS256,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SmartConfiguration {
    issuer: Option<String>,
    jwks_uri: Option<String>,
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    registration_endpoint: Option<String>,
    management_endpoint: Option<String>,
    capabilities: Vec<String>,
    code_challenge_methods_supported: Option<Vec<String>>,
    /// Read leniently (a non-boolean means "not advertised").
    authorization_response_iss_parameter_supported: Option<Value>,
    /// Read leniently (a list of strings, else ignored).
    scopes_supported: Option<Value>,
    user_access_brand_bundle: Option<Value>,
    user_access_brand_identifier: Option<Value>,
}

/// Whether ChartLink may send a token or code to `url`: HTTPS, or plain HTTP to a loopback host (local
/// development against the sandbox). SMART App Launch 2.2 client requirement 1.
pub fn is_secure_transport(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d == "localhost",
            None => false,
        },
        _ => false,
    }
}

/// Parses and normalises a FHIR base URL (no trailing slash; HTTPS, or HTTP on loopback).
pub fn parse_base(fhir_base: &str) -> Result<Url, DiscoveryError> {
    let trimmed = fhir_base.trim().trim_end_matches('/');
    let url = Url::parse(trimmed).map_err(|_| DiscoveryError::InvalidBase)?;
    if !is_secure_transport(&url) || url.host_str().is_none() || url.query().is_some() {
        return Err(DiscoveryError::InvalidBase);
    }
    Ok(url)
}

/// Appends a path to a base without losing the base's own path.
pub fn join(base: &Url, path: &str) -> Url {
    let mut u = base.clone();
    let joined = format!(
        "{}/{}",
        base.path().trim_end_matches('/'),
        path.trim_start_matches('/')
    );
    u.set_path(&joined);
    u
}

/// Discovers a server's SMART endpoints.
pub async fn discover(http: &Http, fhir_base: &str) -> Result<ServerInfo, DiscoveryError> {
    let base = parse_base(fhir_base)?;
    let well_known = join(&base, ".well-known/smart-configuration");
    let resp = http
        .get(&well_known, None, "application/json", SMALL_BODY_LIMIT)
        .await?;
    if resp.status.is_success() {
        let info = parse_smart_configuration(base, &resp.json()?)?;
        // The FHIR version, from the CapabilityStatement (a server without one is taken as it is).
        let metadata = http
            .get(
                &join(&info.fhir_base, "metadata"),
                None,
                "application/fhir+json",
                4 * SMALL_BODY_LIMIT,
            )
            .await;
        if let Ok(m) = metadata
            && m.status.is_success()
            && let Ok(cs) = m.json()
        {
            check_fhir_version(&cs)?;
        }
        return Ok(info);
    }
    // Legacy servers (and SMART v1 clients such as client-py) use the CapabilityStatement.
    let status = resp.status.as_u16();
    let metadata = http
        .get(
            &join(&base, "metadata"),
            None,
            "application/fhir+json",
            4 * SMALL_BODY_LIMIT,
        )
        .await?;
    if !metadata.status.is_success() {
        return Err(DiscoveryError::NotSmart { status });
    }
    let cs = metadata.json()?;
    check_fhir_version(&cs)?;
    parse_capability_statement(base, &cs).ok_or(DiscoveryError::NotSmart { status })
}

/// Refuses a CapabilityStatement whose `fhirVersion` is not R4 (4.0.x) or R4B (4.3.x): DSTU2 and STU3 resources
/// have other shapes, so a link would sync a record the views misread. A missing or odd version is not refused.
pub fn check_fhir_version(cs: &Value) -> Result<(), DiscoveryError> {
    let Some(version) = cs["fhirVersion"].as_str() else {
        return Ok(());
    };
    let major = version
        .split('.')
        .next()
        .and_then(|m| m.trim().parse::<u32>().ok());
    match major {
        Some(4) | None => Ok(()),
        Some(_) => {
            let shown: String = version
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '-')
                .take(20)
                .collect();
            let name = match version.get(..3) {
                Some("1.0") => " (DSTU2)",
                Some("3.0") => " (STU3)",
                Some("5.0") => " (R5)",
                _ => "",
            };
            Err(DiscoveryError::UnsupportedFhirVersion(format!(
                "{shown}{name}"
            )))
        }
    }
}

/// Reads a `.well-known/smart-configuration` document for the server at `base` (what [`discover`] does with the
/// answer; public for property tests and fuzzing).
pub fn parse_smart_configuration(
    base: Url,
    document: &Value,
) -> Result<ServerInfo, DiscoveryError> {
    let conf: SmartConfiguration = serde_json::from_value(document.clone())
        .map_err(|_| DiscoveryError::InvalidField("document"))?;
    from_configuration(base, conf)
}

/// Reads the OAuth endpoints from a CapabilityStatement's oauth-uris extension (legacy discovery); None when it has
/// none.
pub fn parse_capability_statement(base: Url, cs: &Value) -> Option<ServerInfo> {
    from_capability_statement(base, cs)
}

fn resolve(
    base: &Url,
    value: Option<&str>,
    field: &'static str,
) -> Result<Option<Url>, DiscoveryError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    // Relative URLs are resolved against the FHIR base (as a directory).
    let dir = Url::parse(&format!("{}/", base.as_str().trim_end_matches('/')))
        .map_err(|_| DiscoveryError::InvalidBase)?;
    let url = dir
        .join(v)
        .map_err(|_| DiscoveryError::InvalidField(field))?;
    if !is_secure_transport(&url) {
        return Err(DiscoveryError::InvalidField(field));
    }
    Ok(Some(url))
}

fn from_configuration(base: Url, c: SmartConfiguration) -> Result<ServerInfo, DiscoveryError> {
    let methods = c
        .code_challenge_methods_supported
        .ok_or(DiscoveryError::NoPkceS256)?;
    if !methods.iter().any(|m| m == "S256") {
        return Err(DiscoveryError::NoPkceS256);
    }
    let authorization_endpoint = resolve(
        &base,
        c.authorization_endpoint.as_deref(),
        "authorization_endpoint",
    )?
    .ok_or(DiscoveryError::Missing("authorization_endpoint"))?;
    let token_endpoint = resolve(&base, c.token_endpoint.as_deref(), "token_endpoint")?
        .ok_or(DiscoveryError::Missing("token_endpoint"))?;
    let scopes_supported: Option<Vec<String>> = c.scopes_supported.as_ref().and_then(|v| {
        v.as_array().map(|l| {
            l.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
    });
    let caps = |x: &str| c.capabilities.iter().any(|y| y == x);
    // The syntax follows the capabilities; a server that lists neither says it by the scopes it offers.
    let lists = |pred: fn(&str) -> bool| {
        scopes_supported
            .as_ref()
            .is_some_and(|l| l.iter().any(|s| pred(s)))
    };
    let v2_by_scopes = !caps("permission-v1")
        && lists(|s| {
            s.starts_with("patient/") && s.split('?').next().is_some_and(|p| p.ends_with(".rs"))
        })
        && !lists(|s| s.starts_with("patient/") && s.ends_with(".read"));
    let scope_syntax = if caps("permission-v2") || v2_by_scopes {
        ScopeSyntax::V2
    } else {
        ScopeSyntax::V1
    };
    let brand_bundle = c
        .user_access_brand_bundle
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|v| {
            resolve(&base, Some(v), "user_access_brand_bundle")
                .ok()
                .flatten()
        });
    let metadata = ServerMetadata {
        scopes_supported,
        user_access_brand_bundle: brand_bundle,
        user_access_brand_identifier: c
            .user_access_brand_identifier
            .clone()
            .filter(Value::is_object),
    };
    Ok(ServerInfo {
        revocation_endpoint: resolve(
            &base,
            c.revocation_endpoint.as_deref(),
            "revocation_endpoint",
        )?,
        registration_endpoint: resolve(
            &base,
            c.registration_endpoint.as_deref(),
            "registration_endpoint",
        )?,
        management_endpoint: resolve(
            &base,
            c.management_endpoint.as_deref(),
            "management_endpoint",
        )?,
        jwks_uri: resolve(&base, c.jwks_uri.as_deref(), "jwks_uri")?,
        issuer: c.issuer.filter(|i| !i.is_empty()),
        fhir_base: base,
        authorization_endpoint,
        token_endpoint,
        capabilities: c.capabilities,
        scope_syntax,
        legacy_discovery: false,
        iss_parameter_supported: c
            .authorization_response_iss_parameter_supported
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        metadata,
    })
}

fn from_capability_statement(base: Url, cs: &Value) -> Option<ServerInfo> {
    let rests = cs["rest"].as_array()?;
    let ext = rests
        .iter()
        .filter_map(|r| r["security"]["extension"].as_array())
        .flatten()
        .find(|e| e["url"] == OAUTH_URIS)?;
    let uri = |name: &str| -> Option<Url> {
        let v = ext["extension"]
            .as_array()?
            .iter()
            .find(|e| e["url"] == name)?["valueUri"]
            .as_str()?;
        resolve(&base, Some(v), "oauth-uris").ok().flatten()
    };
    Some(ServerInfo {
        authorization_endpoint: uri("authorize")?,
        token_endpoint: uri("token")?,
        revocation_endpoint: uri("revoke"),
        registration_endpoint: uri("register"),
        management_endpoint: uri("manage"),
        jwks_uri: None,
        issuer: None,
        fhir_base: base,
        capabilities: Vec::new(),
        scope_syntax: ScopeSyntax::V1,
        legacy_discovery: true,
        iss_parameter_supported: false,
        metadata: ServerMetadata::default(),
    })
}

#[cfg(test)]
mod version_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_r4_servers_are_linked() {
        for ok in ["4.0.1", "4.0.0", "4.3.0", "odd", ""] {
            assert!(
                check_fhir_version(&json!({"fhirVersion": ok})).is_ok(),
                "{ok}"
            );
        }
        assert!(check_fhir_version(&json!({})).is_ok());
        for (bad, named) in [("1.0.2", "DSTU2"), ("3.0.2", "STU3"), ("5.0.0", "R5")] {
            let e = check_fhir_version(&json!({"fhirVersion": bad})).expect_err(bad);
            assert!(
                e.to_string().contains(bad) && e.to_string().contains(named),
                "{e}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> Result<ServerInfo, DiscoveryError> {
        from_configuration(
            parse_base("https://ehr.example/api/FHIR/R4/").expect("base"),
            serde_json::from_value(v).expect("shape"),
        )
    }

    #[test]
    fn relative_endpoints_resolve_against_the_base() {
        let info = conf(json!({"authorization_endpoint": "../../oauth2/authorize", "token_endpoint": "https://auth.example/token",
            "code_challenge_methods_supported": ["S256"], "capabilities": ["permission-v2", "permission-v1"]}))
        .expect("ok");
        assert_eq!(
            info.authorization_endpoint.as_str(),
            "https://ehr.example/api/oauth2/authorize"
        );
        assert_eq!(info.token_endpoint.as_str(), "https://auth.example/token");
        assert_eq!(info.scope_syntax, ScopeSyntax::V2);
        assert_eq!(info.fhir_base.as_str(), "https://ehr.example/api/FHIR/R4");
    }

    /// Issue 15: `scopes_supported`, the brand bundle and its identifier are kept (client reqs. 415, 416); the
    /// scope syntax follows the scopes offered when the capabilities name none.
    #[test]
    fn scopes_and_brand_are_read() {
        let info = conf(json!({"authorization_endpoint": "/a", "token_endpoint": "/t",
            "code_challenge_methods_supported": ["S256"], "scopes_supported": ["openid", "patient/Observation.rs", 7],
            "user_access_brand_bundle": "../brands.json", "user_access_brand_identifier": {"system": "urn:ietf:rfc:3986", "value": "https://ehr.example"}}))
        .expect("ok");
        assert_eq!(
            info.metadata.scopes_supported,
            Some(vec![
                "openid".to_owned(),
                "patient/Observation.rs".to_owned()
            ])
        );
        assert_eq!(info.scope_syntax, ScopeSyntax::V2);
        assert!(info.does_openid_connect());
        assert_eq!(
            info.metadata
                .user_access_brand_bundle
                .as_ref()
                .map(Url::as_str),
            Some("https://ehr.example/api/FHIR/brands.json")
        );
        assert!(info.metadata.user_access_brand_identifier.is_some());
        let odd = conf(json!({"authorization_endpoint": "/a", "token_endpoint": "/t",
            "code_challenge_methods_supported": ["S256"], "scopes_supported": "openid", "user_access_brand_bundle": "javascript:x"}))
        .expect("lenient");
        assert_eq!(odd.metadata, ServerMetadata::default());
        assert_eq!(odd.scope_syntax, ScopeSyntax::V1);
        assert!(!odd.does_openid_connect());
    }

    #[test]
    fn pkce_s256_is_required() {
        let base = json!({"authorization_endpoint": "/a", "token_endpoint": "/t"});
        assert_eq!(conf(base.clone()), Err(DiscoveryError::NoPkceS256));
        let mut plain = base.clone();
        plain["code_challenge_methods_supported"] = json!(["plain"]);
        assert_eq!(conf(plain), Err(DiscoveryError::NoPkceS256));
    }

    #[test]
    fn missing_or_odd_fields_are_typed_errors() {
        assert_eq!(
            conf(json!({"code_challenge_methods_supported": ["S256"], "token_endpoint": "/t"})),
            Err(DiscoveryError::Missing("authorization_endpoint"))
        );
        assert_eq!(
            conf(
                json!({"code_challenge_methods_supported": ["S256"], "authorization_endpoint": "javascript:alert(1)", "token_endpoint": "/t"})
            ),
            Err(DiscoveryError::InvalidField("authorization_endpoint"))
        );
        assert!(
            serde_json::from_value::<SmartConfiguration>(json!({"capabilities": "not a list"}))
                .is_err()
        );
        assert_eq!(parse_base("ftp://x/fhir"), Err(DiscoveryError::InvalidBase));
        // SMART 2.2 client req. 1: tokens only over TLS (loopback excepted for local development).
        assert_eq!(
            parse_base("http://ehr.example/fhir"),
            Err(DiscoveryError::InvalidBase)
        );
        assert!(parse_base("http://127.0.0.1:8080/fhir").is_ok());
        assert!(parse_base("http://[::1]:8080/fhir").is_ok());
        assert!(parse_base("http://localhost:8080/fhir").is_ok());
        assert_eq!(
            conf(
                json!({"code_challenge_methods_supported": ["S256"], "authorization_endpoint": "/a", "token_endpoint": "http://ehr.example/token"})
            ),
            Err(DiscoveryError::InvalidField("token_endpoint"))
        );
        assert_eq!(parse_base("not a url"), Err(DiscoveryError::InvalidBase));
    }

    #[test]
    fn legacy_capability_statement_fallback() {
        let cs = json!({"rest": [{"security": {"extension": [{"url": OAUTH_URIS, "extension": [
            {"url": "authorize", "valueUri": "https://ehr.example/authorize"}, {"url": "token", "valueUri": "https://ehr.example/token"}]}]}}]});
        let info =
            from_capability_statement(parse_base("https://ehr.example/fhir").expect("base"), &cs)
                .expect("found");
        assert!(info.legacy_discovery);
        assert_eq!(info.scope_syntax, ScopeSyntax::V1);
        assert!(
            from_capability_statement(
                parse_base("https://ehr.example/fhir").expect("base"),
                &json!({"rest": "x"})
            )
            .is_none()
        );
    }
}
