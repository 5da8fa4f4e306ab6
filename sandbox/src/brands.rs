//! The sandbox's SMART App Launch 2.2 User-access Brands bundle (`GET /brands.json`), linked from the SMART
//! configuration as `user_access_brand_bundle`.
//!
//! Three brands a patient might look for in an app's "connect to my health records" screen:
//!
//! - "ChartLink Sandbox Health" (Springfield; aliases "CSH", "Sandbox Health System"), the primary brand of this
//!   server, with the portal "ChartLink Sandbox MyChart" and the sandbox's own FHIR endpoint;
//! - "Sandbox Children's Clinic" (Shelbyville), an affiliated practice that shares that portal and endpoint;
//! - "Offline Regional Medical Center", whose endpoint (`http://127.0.0.1:9/fhir`, the discard port) has nothing
//!   listening: the example of an endpoint whose SMART discovery fails, which an app must show as not working.
//!
//! Each Organization carries the 2.2 `organization-brand` and `organization-portal` extensions (what brands.md
//! specifies) and also the `user-access-brand` extension with a nested `portal`, the pre-publication shape that
//! `chartlink-core`'s directory parser reads today. Logos are inline `data:` SVGs so that the bundle points at
//! nothing the sandbox does not serve.
//!
//! The response is cacheable (brands.md "Caching Brand Bundles"): a strong `ETag` (the body is byte-for-byte
//! deterministic for a given base URL), `Cache-Control: max-age=3600`, and `304 Not Modified` when `If-None-Match`
//! matches. CORS is open, as brands.md requires of publishers, including the preflight a browser sends before a
//! script's own `If-None-Match`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::Shared;

/// Where the bundle is served, relative to the sandbox's base URL.
pub const PATH: &str = "/brands.json";
/// The FHIR base of "Offline Regional Medical Center": the discard port on loopback, where nothing listens.
pub const OFFLINE_FHIR_BASE: &str = "http://127.0.0.1:9/fhir";
/// The media type of the bundle.
pub const CONTENT_TYPE: &str = "application/fhir+json";
/// How long a client may reuse the bundle without asking again.
pub const CACHE_CONTROL: &str = "max-age=3600";

/// The time of the last change to the brands below (`Bundle.timestamp`, which brands.md requires). A constant, so
/// that the body, and with it the ETag, changes only when the content does.
const CONTENT_UPDATED: &str = "2025-06-01T00:00:00Z";

const PROFILE_BASE: &str = "http://hl7.org/fhir/smart-app-launch/StructureDefinition";
const USER_ACCESS_BRAND: &str =
    "http://hl7.org/fhir/smart-app-launch/StructureDefinition/user-access-brand";
const ORGANIZATION_BRAND: &str = "http://hl7.org/fhir/StructureDefinition/organization-brand";
const ORGANIZATION_PORTAL: &str = "http://hl7.org/fhir/StructureDefinition/organization-portal";
const FHIR_VERSION: &str = "http://hl7.org/fhir/StructureDefinition/endpoint-fhir-version";

const SANDBOX_ENDPOINT_ID: &str = "chartlink-sandbox-r4";
const OFFLINE_ENDPOINT_ID: &str = "offline-regional-r4";
const SANDBOX_PORTAL_NAME: &str = "ChartLink Sandbox MyChart";

/// The portal a brand offers its patients.
struct Portal<'a> {
    name: &'a str,
    url: String,
    endpoint_id: &'a str,
}

/// One brand (an Organization of the User Access Brand profile).
struct Brand<'a> {
    id: &'a str,
    name: &'a str,
    aliases: &'a [&'a str],
    city: &'a str,
    state: &'a str,
    website: String,
    initials: &'a str,
    colour: &'a str,
    part_of: Option<&'a str>,
    portal: Portal<'a>,
}

/// `GET /brands.json`: the brand bundle, or `304 Not Modified` (no body) when `If-None-Match` names its ETag.
pub async fn bundle(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let body = serde_json::to_vec(&brand_bundle(&s.base_url, &s.fhir_base()))
        .unwrap_or_else(|_| b"{}".to_vec());
    conditional_response(body, &headers)
}

/// `OPTIONS /brands.json`: the CORS preflight of a browser app that sends its own `If-None-Match`.
pub async fn preflight() -> Response {
    (
        StatusCode::NO_CONTENT,
        [
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::ACCESS_CONTROL_ALLOW_METHODS, "GET, HEAD, OPTIONS"),
            (
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "Accept, If-None-Match, If-Modified-Since",
            ),
            (header::ACCESS_CONTROL_MAX_AGE, "86400"),
        ],
    )
        .into_response()
}

/// The `user_access_brand_identifier` of this server for its SMART configuration: the identifier of the primary
/// brand, "ChartLink Sandbox Health" (brands.md requires it when the bundle has more than one brand).
pub fn primary_brand_identifier(base_url: &str) -> Value {
    json!({"system": "urn:ietf:rfc:3986", "value": base_url})
}

/// The strong ETag of a body: the quoted lower-case hex SHA-256.
pub fn etag(body: &[u8]) -> String {
    format!("\"{:x}\"", Sha256::digest(body))
}

/// Whether an `If-None-Match` header names `etag` (weak comparison, as RFC 9110 §13.1.2 prescribes; `*` matches).
pub fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let opaque = etag.trim_start_matches("W/");
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == opaque)
}

/// A 200 with `body`, or a 304 without it when the request's `If-None-Match` matches; both with the ETag, cache and
/// CORS headers.
pub fn conditional_response(body: Vec<u8>, request: &HeaderMap) -> Response {
    let tag = etag(&body);
    let headers = [
        (header::ETAG, tag.as_str()),
        (header::CACHE_CONTROL, CACHE_CONTROL),
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::ACCESS_CONTROL_EXPOSE_HEADERS, "ETag"),
    ];
    if if_none_match(request, &tag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (
        StatusCode::OK,
        headers,
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        body,
    )
        .into_response()
}

/// The bundle (type `collection`) of the sandbox's brands and their endpoints, for a sandbox at `base_url` serving
/// FHIR at `fhir_base`.
pub fn brand_bundle(base_url: &str, fhir_base: &str) -> Value {
    let sandbox_portal = || Portal {
        name: SANDBOX_PORTAL_NAME,
        url: format!("{base_url}/portal/apps"),
        endpoint_id: SANDBOX_ENDPOINT_ID,
    };
    let brands = [
        Brand {
            id: "chartlink-sandbox-health",
            name: "ChartLink Sandbox Health",
            aliases: &["CSH", "Sandbox Health System"],
            city: "Springfield",
            state: "IL",
            website: base_url.to_owned(),
            initials: "CSH",
            colour: "#1f6feb",
            part_of: None,
            portal: sandbox_portal(),
        },
        Brand {
            id: "sandbox-childrens-clinic",
            name: "Sandbox Children's Clinic",
            aliases: &[],
            city: "Shelbyville",
            state: "IL",
            website: "https://childrens.sandbox.example".to_owned(),
            initials: "SCC",
            colour: "#2da44e",
            part_of: Some("chartlink-sandbox-health"),
            portal: sandbox_portal(),
        },
        Brand {
            id: "offline-regional-medical-center",
            name: "Offline Regional Medical Center",
            aliases: &["ORMC"],
            city: "Ogdenville",
            state: "IL",
            website: "https://offline-regional.example".to_owned(),
            initials: "ORM",
            colour: "#6e7781",
            part_of: None,
            portal: Portal {
                name: "Offline Regional MyChart",
                url: "https://mychart.offline-regional.example".to_owned(),
                endpoint_id: OFFLINE_ENDPOINT_ID,
            },
        },
    ];
    let mut entries: Vec<Value> = brands
        .iter()
        .map(|b| json!({"resource": organization(b)}))
        .collect();
    entries.push(json!({"resource": endpoint(
        SANDBOX_ENDPOINT_ID,
        "ChartLink Sandbox FHIR R4",
        fhir_base,
        &format!("{base_url}/"),
    )}));
    entries.push(json!({"resource": endpoint(
        OFFLINE_ENDPOINT_ID,
        "Offline Regional Medical Center FHIR R4",
        OFFLINE_FHIR_BASE,
        "https://offline-regional.example/developers",
    )}));
    json!({
        "resourceType": "Bundle",
        "id": "chartlink-sandbox-brands",
        "meta": {"profile": [format!("{PROFILE_BASE}/user-access-brands-bundle")]},
        "type": "collection",
        "timestamp": CONTENT_UPDATED,
        "entry": entries,
    })
}

fn organization(b: &Brand<'_>) -> Value {
    let logo = logo(b.initials, b.colour);
    let endpoint_ref = json!({"reference": format!("Endpoint/{}", b.portal.endpoint_id)});
    // brands.md recommends the brand's web presence (no "www.", no path) as a `urn:ietf:rfc:3986` identifier.
    let identifier = json!({"system": "urn:ietf:rfc:3986", "value": b.website});
    let mut org = json!({
        "resourceType": "Organization",
        "id": b.id,
        "meta": {"profile": [USER_ACCESS_BRAND]},
        "extension": [
            {"url": ORGANIZATION_BRAND, "extension": [{"url": "brandLogo", "valueUrl": logo}]},
            {"url": ORGANIZATION_PORTAL, "extension": [
                {"url": "portalName", "valueString": b.portal.name},
                {"url": "portalUrl", "valueUrl": b.portal.url},
                {"url": "portalEndpoint", "valueReference": endpoint_ref},
            ]},
        ],
        "identifier": [identifier],
        "active": true,
        "type": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/organization-type",
            "code": "prov",
            "display": "Healthcare Provider",
        }]}],
        "name": b.name,
        "alias": b.aliases,
        "telecom": [{"system": "url", "value": b.website}],
        "address": [{"city": b.city, "state": b.state, "country": "US"}],
        "endpoint": [endpoint_ref],
    });
    if b.aliases.is_empty() {
        org.as_object_mut().map(|o| o.remove("alias"));
    }
    if let (Some(parent), Some(o)) = (b.part_of, org.as_object_mut()) {
        o.insert(
            "partOf".into(),
            json!({"reference": format!("Organization/{parent}")}),
        );
    }
    org
}

fn endpoint(id: &str, name: &str, address: &str, developer_site: &str) -> Value {
    json!({
        "resourceType": "Endpoint",
        "id": id,
        "meta": {"profile": [format!("{PROFILE_BASE}/user-access-endpoint")]},
        "extension": [{"url": FHIR_VERSION, "valueCode": "4.0.1"}],
        "status": "active",
        "connectionType": {
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type",
            "code": "hl7-fhir-rest",
        },
        "name": name,
        "contact": [{"system": "url", "value": developer_site}],
        "payloadType": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/endpoint-payload-type",
            "code": "none",
        }]}],
        "address": address,
    })
}

/// A square logo with the brand's initials, inline as a `data:` URL (brands.md allows `https:` or `data:`).
fn logo(initials: &str, colour: &str) -> String {
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 64 64\">\
         <rect width=\"64\" height=\"64\" rx=\"12\" fill=\"{colour}\"/>\
         <text x=\"32\" y=\"40\" font-family=\"sans-serif\" font-size=\"20\" font-weight=\"bold\" \
         text-anchor=\"middle\" fill=\"#ffffff\">{initials}</text></svg>"
    );
    format!("data:image/svg+xml;base64,{}", STANDARD.encode(svg))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use axum::http::HeaderValue;

    const BASE: &str = "http://127.0.0.1:8080";
    const FHIR: &str = "http://127.0.0.1:8080/fhir";

    fn resources(bundle: &Value, ty: &str) -> Vec<Value> {
        bundle["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["resource"].clone())
            .filter(|r| r["resourceType"] == ty)
            .collect()
    }

    fn org(bundle: &Value, name: &str) -> Value {
        resources(bundle, "Organization")
            .into_iter()
            .find(|o| o["name"] == name)
            .unwrap()
    }

    fn ext<'a>(parent: &'a Value, url: &str) -> &'a Value {
        parent["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"] == url)
            .unwrap()
    }

    fn endpoint_address(bundle: &Value, reference: &str) -> String {
        let id = reference.strip_prefix("Endpoint/").unwrap();
        resources(bundle, "Endpoint")
            .into_iter()
            .find(|e| e["id"] == id)
            .unwrap()["address"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn bundle_is_a_timestamped_collection_of_brands_and_endpoints() {
        let b = brand_bundle(BASE, FHIR);
        assert_eq!(b["resourceType"], "Bundle");
        assert_eq!(b["type"], "collection");
        assert!(b["timestamp"].as_str().unwrap().ends_with('Z'));
        let names: Vec<String> = resources(&b, "Organization")
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            names,
            [
                "ChartLink Sandbox Health",
                "Sandbox Children's Clinic",
                "Offline Regional Medical Center"
            ]
        );
        assert_eq!(resources(&b, "Endpoint").len(), 2);
    }

    #[test]
    fn endpoints_are_active_fhir_rest_endpoints() {
        let b = brand_bundle(BASE, FHIR);
        for e in resources(&b, "Endpoint") {
            assert_eq!(e["status"], "active");
            assert_eq!(e["connectionType"]["code"], "hl7-fhir-rest");
            assert_eq!(
                e["connectionType"]["system"],
                "http://terminology.hl7.org/CodeSystem/endpoint-connection-type"
            );
            assert_eq!(e["payloadType"][0]["coding"][0]["code"], "none");
            assert_eq!(ext(&e, FHIR_VERSION)["valueCode"], "4.0.1");
        }
        let health = org(&b, "ChartLink Sandbox Health");
        let clinic = org(&b, "Sandbox Children's Clinic");
        let offline = org(&b, "Offline Regional Medical Center");
        let reference = |o: &Value| o["endpoint"][0]["reference"].as_str().unwrap().to_owned();
        assert_eq!(endpoint_address(&b, &reference(&health)), FHIR);
        assert_eq!(
            reference(&clinic),
            reference(&health),
            "the clinic shares the endpoint"
        );
        assert_eq!(
            endpoint_address(&b, &reference(&offline)),
            OFFLINE_FHIR_BASE
        );
    }

    #[test]
    fn brands_carry_names_aliases_places_logos_and_portals() {
        let b = brand_bundle(BASE, FHIR);
        let health = org(&b, "ChartLink Sandbox Health");
        assert_eq!(health["alias"], json!(["CSH", "Sandbox Health System"]));
        assert_eq!(health["address"][0]["city"], "Springfield");
        assert_eq!(health["identifier"][0], primary_brand_identifier(BASE));
        assert_eq!(health["telecom"][0]["system"], "url");
        let clinic = org(&b, "Sandbox Children's Clinic");
        assert_eq!(clinic["address"][0]["city"], "Shelbyville");
        assert!(clinic.get("alias").is_none());
        assert_eq!(
            clinic["partOf"]["reference"],
            "Organization/chartlink-sandbox-health"
        );
        for o in resources(&b, "Organization") {
            // Only the published 2.2 extensions (core reads them since issue 15).
            let brand = ext(&o, ORGANIZATION_BRAND);
            assert!(
                ext(brand, "brandLogo")["valueUrl"]
                    .as_str()
                    .unwrap()
                    .starts_with("data:image/svg+xml;base64,")
            );
            let portal = ext(&o, ORGANIZATION_PORTAL);
            assert_eq!(
                ext(portal, "portalEndpoint")["valueReference"],
                o["endpoint"][0]
            );
            assert!(
                o["extension"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|e| e["url"] != USER_ACCESS_BRAND)
            );
        }
        let portal = ext(&health, ORGANIZATION_PORTAL);
        assert_eq!(
            ext(portal, "portalName")["valueString"],
            "ChartLink Sandbox MyChart"
        );
        assert_eq!(
            ext(portal, "portalUrl")["valueUrl"],
            format!("{BASE}/portal/apps")
        );
        let primary = primary_brand_identifier(BASE);
        assert_eq!(
            resources(&b, "Organization")
                .iter()
                .filter(|o| o["identifier"][0] == primary)
                .count(),
            1,
            "the primary identifier matches exactly one brand"
        );
    }

    #[test]
    fn body_and_etag_are_deterministic() {
        let a = serde_json::to_vec(&brand_bundle(BASE, FHIR)).unwrap();
        let b = serde_json::to_vec(&brand_bundle(BASE, FHIR)).unwrap();
        assert_eq!(a, b);
        let tag = etag(&a);
        assert_eq!(tag.len(), 66);
        assert!(tag.starts_with('"') && tag.ends_with('"') && !tag.starts_with("W/"));
        assert_ne!(
            tag,
            etag(&serde_json::to_vec(&brand_bundle("http://127.0.0.1:9999", FHIR)).unwrap())
        );
    }

    fn with_if_none_match(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn if_none_match_uses_weak_comparison_and_lists() {
        let tag = "\"abc\"";
        assert!(if_none_match(&with_if_none_match("\"abc\""), tag));
        assert!(if_none_match(&with_if_none_match("W/\"abc\""), tag));
        assert!(if_none_match(&with_if_none_match("\"x\", \"abc\""), tag));
        assert!(if_none_match(&with_if_none_match("*"), tag));
        assert!(!if_none_match(&with_if_none_match("\"abcd\""), tag));
        assert!(!if_none_match(&with_if_none_match("abc"), tag));
        assert!(!if_none_match(&HeaderMap::new(), tag));
    }

    #[test]
    fn responses_are_cacheable_and_conditional() {
        let body = b"{\"resourceType\":\"Bundle\"}".to_vec();
        let tag = etag(&body);
        let full = conditional_response(body.clone(), &HeaderMap::new());
        assert_eq!(full.status(), StatusCode::OK);
        let h = full.headers();
        assert_eq!(h[header::CONTENT_TYPE], CONTENT_TYPE);
        assert_eq!(h[header::ETAG], tag.as_str());
        assert_eq!(h[header::CACHE_CONTROL], "max-age=3600");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        let stale = conditional_response(body.clone(), &with_if_none_match("\"old\""));
        assert_eq!(stale.status(), StatusCode::OK);
        let fresh = conditional_response(body, &with_if_none_match(&tag));
        assert_eq!(fresh.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(fresh.headers()[header::ETAG], tag.as_str());
        assert_eq!(fresh.headers()[header::CACHE_CONTROL], "max-age=3600");
        assert!(fresh.headers().get(header::CONTENT_TYPE).is_none());
    }

    #[tokio::test]
    async fn served_and_linked_from_the_smart_configuration() {
        let sb = crate::Sandbox::start(crate::Config::default())
            .await
            .unwrap();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let conf: Value = client
            .get(format!(
                "{}/.well-known/smart-configuration",
                sb.fhir_base()
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = conf["user_access_brand_bundle"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(url, format!("{}{PATH}", sb.base_url()));
        let first = client.get(&url).send().await.unwrap();
        assert_eq!(first.status(), 200);
        assert_eq!(first.headers()["content-type"], CONTENT_TYPE);
        let tag = first.headers()["etag"].to_str().unwrap().to_owned();
        let body: Value = first.json().await.unwrap();
        assert_eq!(body, brand_bundle(sb.base_url(), &sb.fhir_base()));
        let again = client
            .get(&url)
            .header("if-none-match", &tag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304);
        assert!(again.bytes().await.unwrap().is_empty());
        let preflight = client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", "https://app.example")
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "if-none-match")
            .send()
            .await
            .unwrap();
        assert_eq!(preflight.status(), 204);
        assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
        sb.shutdown().await;
    }
}
