//! The FHIR R4 API at `{base}/fhir`: the CapabilityStatement (with SMART's oauth-uris extension for legacy
//! clients), read and search inside the patient compartment of the caller's grant, searchset Bundles with opaque
//! next links, and an OperationOutcome on every error.
//!
//! Access follows the grant: 401 without a valid token, 403 for a type or category the scopes do not cover, and
//! a parent of a 13 to 17 year old never sees items marked confidential (they are simply not there: 404 on read).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};

use crate::access::{self, AccessLevel};
use crate::oauth::bearer_grant;
use crate::scopes::{Interaction, Scopes};
use crate::store::{GrantRow, Prefix, SearchQuery, StoredResource};
use crate::wire::Params;
use crate::{Shared, category_rule, clock, index};

use crate::wire::{FHIR_JSON, outcome};

/// Search parameters the server understands (others are ignored, as FHIR's lenient handling allows).
const SEARCH_PARAMS: [(&str, &str); 8] = [
    ("_id", "token"),
    ("_lastUpdated", "date"),
    ("_count", "number"),
    ("patient", "reference"),
    ("subject", "reference"),
    ("category", "token"),
    ("code", "token"),
    ("date", "date"),
];

fn fhir_json(body: String) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    r
}

/// The caller's grant, scopes and access level, or the 401/403 to answer.
struct Caller {
    grant: GrantRow,
    scopes: Scopes,
    level: AccessLevel,
}

fn caller(s: &Shared, headers: &HeaderMap) -> Result<Caller, Response> {
    s.stats().fhir_requests += 1;
    let unauthorized = || {
        outcome(
            StatusCode::UNAUTHORIZED,
            "login",
            "a valid access token is required",
        )
    };
    if let Some(external) = &s.external {
        // The external authorization server decided whose record this token opens (crate::external).
        let grant = external.bearer_grant(s, headers).ok_or_else(unauthorized)?;
        return Ok(Caller {
            scopes: crate::external::known_scopes(&grant.scope),
            grant,
            level: AccessLevel::Full,
        });
    }
    let (grant, _) = bearer_grant(s, headers).ok_or_else(unauthorized)?;
    let store = s.store();
    let access = access::access_of(&store, &grant.username, &grant.patient_id, s.clock.today())
        .map_err(|_| {
            outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "storage failure",
            )
        })?;
    let Some(access) = access else {
        // The proxy authorization ended or the child came of age: the grant dies with it.
        let _ = store.revoke_grant(&grant.id, "proxy access ended", s.clock.now());
        return Err(unauthorized());
    };
    let scopes = Scopes::parse(&grant.scope).unwrap_or_default();
    Ok(Caller {
        grant,
        scopes,
        level: access.level,
    })
}

/// `GET /fhir/metadata`.
pub async fn metadata(State(s): State<Arc<Shared>>) -> Response {
    let base = &s.base_url;
    let types: Vec<String> = {
        let mut t: Vec<String> = crate::scopes::PATIENT_TYPES
            .iter()
            .map(|t| (*t).to_owned())
            .collect();
        for (ty, _) in s.store().type_counts().unwrap_or_default() {
            if !t.contains(&ty) {
                t.push(ty);
            }
        }
        t
    };
    let resources: Vec<Value> = types
        .iter()
        .map(|ty| {
            let mut r = json!({
                "type": ty,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "versioning": "versioned",
                "readHistory": false,
                "searchParam": SEARCH_PARAMS.iter().map(|(n, t)| json!({"name": n, "type": t})).collect::<Vec<_>>(),
            });
            if ty == "Observation" && category_rule(&s) {
                r["documentation"] = json!("Searches must include category (as Epic requires).");
            }
            r
        })
        .collect();
    let ext = |name: &str, url: String| json!({"url": name, "valueUri": url});
    let oauth_uris: Vec<Value> = match &s.external {
        Some(external) => external
            .oauth_uris()
            .into_iter()
            .map(|(name, url)| ext(name, url))
            .collect(),
        None => vec![
            ext("authorize", format!("{base}/oauth2/authorize")),
            ext("token", format!("{base}/oauth2/token")),
            ext("revoke", format!("{base}/oauth2/revoke")),
            ext("introspect", format!("{base}/oauth2/introspect")),
            ext("register", format!("{base}/oauth2/register")),
            ext("manage", format!("{base}/portal/apps")),
        ],
    };
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": clock::instant(s.clock.now()),
        "kind": "instance",
        "software": {"name": "chartlink-sandbox", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "ChartLink Sandbox EHR", "url": s.fhir_base()},
        "fhirVersion": "4.0.1",
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "security": {
                "cors": false,
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}]}],
                "extension": [{
                    "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                    "extension": oauth_uris,
                }],
            },
            "resource": resources,
        }],
    });
    fhir_json(body.to_string())
}

/// `GET /fhir/{type}/{id}`.
pub async fn read(
    State(s): State<Arc<Shared>>,
    Path((ty, id)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let c = match caller(&s, &headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !type_allowed(&c.scopes, &ty, Interaction::Read) {
        return outcome(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("the grant does not cover reading {ty}"),
        );
    }
    let found = s.store().read(&ty, &id);
    let r = match found {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(&ty, &id),
        Err(_) => {
            return outcome(
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "storage failure",
            );
        }
    };
    if !visible(&c, &r) {
        return not_found(&ty, &id);
    }
    if ty != "Binary" && !c.scopes.allows(&ty, Interaction::Read, &r.categories) {
        return outcome(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the grant does not cover this category",
        );
    }
    let wants_fhir = Params::parse(q.unwrap_or_default().as_bytes())
        .get("_format")
        .is_some()
        || headers
            .get(header::ACCEPT)
            .and_then(|a| a.to_str().ok())
            .is_some_and(|a| a.contains("fhir+json") || a.contains("application/json"));
    if ty == "Binary" && !wants_fhir {
        return raw_binary(&r.json);
    }
    fhir_json(r.json)
}

fn not_found(ty: &str, id: &str) -> Response {
    // Neither id nor type are health data; they come from the request.
    let id: String = id.chars().take(64).collect();
    outcome(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!("{ty}/{id} is not known"),
    )
}

/// Binary content is readable with a DocumentReference or Binary scope (the note it belongs to).
fn type_allowed(scopes: &Scopes, ty: &str, i: Interaction) -> bool {
    scopes.allows_type(ty, i)
        || (ty == "Binary" && scopes.allows_type("DocumentReference", Interaction::Read))
}

/// Whether a stored resource is inside the caller's compartment and access level.
fn visible(c: &Caller, r: &StoredResource) -> bool {
    let in_compartment = r.patient.as_deref().is_none_or(|p| p == c.grant.patient_id);
    in_compartment && !(r.confidential && c.level == AccessLevel::Restricted)
}

fn raw_binary(json: &str) -> Response {
    let v: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let data = v["data"]
        .as_str()
        .and_then(|d| STANDARD.decode(d).ok())
        .unwrap_or_default();
    let ct = v["contentType"]
        .as_str()
        .unwrap_or("application/octet-stream");
    let mut r = (StatusCode::OK, data).into_response();
    if let Ok(h) = HeaderValue::from_str(ct) {
        r.headers_mut().insert(header::CONTENT_TYPE, h);
    }
    r
}

/// `GET /fhir/{type}?…`.
pub async fn search(
    State(s): State<Arc<Shared>>,
    Path(ty): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    run_search(&s, &ty, &headers, q.unwrap_or_default())
}

/// `POST /fhir/{type}/_search` with a form body.
pub async fn search_post(
    State(s): State<Arc<Shared>>,
    Path(ty): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    run_search(
        &s,
        &ty,
        &headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

/// The opaque continuation of a search: the original query and the last row seen.
#[derive(serde::Serialize, serde::Deserialize)]
struct Cursor {
    q: String,
    after: i64,
}

fn run_search(s: &Shared, ty: &str, headers: &HeaderMap, query: String) -> Response {
    let c = match caller(s, headers) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !ty.chars().all(|ch| ch.is_ascii_alphanumeric()) || ty.is_empty() {
        return outcome(StatusCode::BAD_REQUEST, "invalid", "not a resource type");
    }
    // A next link carries the original query and the position, encoded so clients treat it as opaque.
    let (query, after) = match Params::parse(query.as_bytes()).get("_getpages") {
        Some(cursor) => match B64
            .decode(cursor)
            .ok()
            .and_then(|b| serde_json::from_slice::<Cursor>(&b).ok())
        {
            Some(cur) => (cur.q, cur.after),
            None => {
                return outcome(
                    StatusCode::BAD_REQUEST,
                    "invalid",
                    "the page link is damaged or expired",
                );
            }
        },
        None => (query, 0),
    };
    if !type_allowed(&c.scopes, ty, Interaction::Search) {
        return outcome(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("the grant does not cover searching {ty}"),
        );
    }
    let mut q = SearchQuery {
        resource_type: ty.to_owned(),
        patient: Some(c.grant.patient_id.clone()),
        include_confidential: c.level == AccessLevel::Full,
        after_seq: after,
        limit: s.config.default_page_size,
        ..Default::default()
    };
    let mut has_id = false;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        let (name, _modifier) = k.split_once(':').unwrap_or((&k, ""));
        match name {
            "patient" | "subject" => {
                let id = v.trim_start_matches("Patient/");
                if id != c.grant.patient_id {
                    return outcome(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        "the patient is outside this grant",
                    );
                }
            }
            "_id" => {
                has_id = true;
                q.ids.extend(v.split(',').map(str::to_owned));
            }
            "_count" => match v.parse::<usize>() {
                Ok(n) => q.limit = n.clamp(1, s.config.max_page_size),
                Err(_) => {
                    return outcome(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        "_count must be a number",
                    );
                }
            },
            "category" | "code" => {
                let any_of: Vec<(Option<String>, String)> = v
                    .split(',')
                    .filter(|t| !t.is_empty())
                    .map(|t| match t.split_once('|') {
                        Some((sys, code)) => {
                            ((!sys.is_empty()).then(|| sys.to_owned()), code.to_owned())
                        }
                        None => (None, t.to_owned()),
                    })
                    .collect();
                if any_of.is_empty() {
                    return outcome(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        &format!("{name} needs a value"),
                    );
                }
                if name == "category" {
                    if let Some((_, code)) = any_of.iter().find(|(sys, code)| {
                        !c.scopes.allows_search_category(ty, sys.as_deref(), code)
                    }) {
                        return outcome(
                            StatusCode::FORBIDDEN,
                            "forbidden",
                            &format!("the grant does not cover category {code}"),
                        );
                    }
                    q.categories.push(any_of);
                } else {
                    q.codes.push(any_of);
                }
            }
            "date" | "_lastUpdated" => match parse_prefixed(&v) {
                Some(cmp) if name == "date" => q.dates.push(cmp),
                Some(cmp) => q.last_updated.push(cmp),
                None => {
                    return outcome(
                        StatusCode::BAD_REQUEST,
                        "invalid",
                        &format!("{name} is not a valid date"),
                    );
                }
            },
            _ => {}
        }
    }
    if ty == "Observation" && category_rule(s) && q.categories.is_empty() && !has_id {
        return outcome(
            StatusCode::BAD_REQUEST,
            "required",
            "Observation searches must include a category parameter",
        );
    }
    // A grant limited to some categories (v2 filters, or categories the patient unticked) narrows the search
    // itself, so pages stay full and the total stays exact.
    if let Some(allowed) = c.scopes.search_categories(ty) {
        q.categories.push(allowed);
    }
    let (rows, total) = {
        let store = s.store();
        let rows = store.search(&q);
        let total = if after > 0 {
            Ok(None)
        } else {
            store.count(&q).map(Some)
        };
        match (rows, total) {
            (Ok(r), Ok(t)) => (r, t),
            _ => {
                return outcome(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "exception",
                    "storage failure",
                );
            }
        }
    };
    let next = (rows.len() == q.limit)
        .then(|| rows.last().map(|r| r.seq))
        .flatten();
    let fhir = s.fhir_base();
    let mut body =
        String::with_capacity(rows.iter().map(|r| r.json.len() + 128).sum::<usize>() + 512);
    let meta = if s
        .bundle_last_updated
        .load(std::sync::atomic::Ordering::SeqCst)
    {
        format!(
            ",\"meta\":{{\"lastUpdated\":\"{}\"}}",
            clock::instant(s.clock.now())
        )
    } else {
        String::new()
    };
    let _ = write!(
        body,
        "{{\"resourceType\":\"Bundle\",\"id\":\"{}\"{meta},\"type\":\"searchset\"",
        crate::wire::random_token().get(..16).unwrap_or_default(),
    );
    if let Some(t) = total {
        let _ = write!(body, ",\"total\":{t}");
    }
    let self_link = json!(format!("{fhir}/{ty}?{query}"));
    let _ = write!(
        body,
        ",\"link\":[{{\"relation\":\"self\",\"url\":{self_link}}}"
    );
    if let Some(last) = next {
        let cursor = B64.encode(
            serde_json::to_vec(&Cursor {
                q: query.clone(),
                after: last,
            })
            .unwrap_or_default(),
        );
        let _ = write!(
            body,
            ",{{\"relation\":\"next\",\"url\":\"{fhir}/{ty}?_getpages={cursor}\"}}"
        );
    }
    body.push_str("],\"entry\":[");
    let mut first = true;
    for r in &rows {
        if !first {
            body.push(',');
        }
        first = false;
        let id = serde_json::from_str::<Value>(&r.json)
            .ok()
            .and_then(|v| v["id"].as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = write!(
            body,
            "{{\"fullUrl\":{},\"resource\":{},\"search\":{{\"mode\":\"match\"}}}}",
            json!(format!("{fhir}/{ty}/{id}")),
            r.json
        );
    }
    body.push_str("]}");
    fhir_json(body)
}

/// Parses `[prefix]date` (`ge2020-01-01`, `2020`, `lt2024-05-01T10:00:00Z`).
fn parse_prefixed(v: &str) -> Option<(Prefix, (i64, i64))> {
    let prefixes = [
        ("eq", Prefix::Eq),
        ("ne", Prefix::Ne),
        ("gt", Prefix::Gt),
        ("lt", Prefix::Lt),
        ("ge", Prefix::Ge),
        ("le", Prefix::Le),
    ];
    let (prefix, rest) = prefixes
        .iter()
        .find_map(|(p, e)| v.strip_prefix(p).map(|rest| (*e, rest)))
        .unwrap_or((Prefix::Eq, v));
    Some((prefix, index::parse_range(rest)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse() {
        assert_eq!(parse_prefixed("ge2020").map(|p| p.0), Some(Prefix::Ge));
        assert_eq!(parse_prefixed("2020-05-01").map(|p| p.0), Some(Prefix::Eq));
        assert!(parse_prefixed("gexyz").is_none());
    }
}
