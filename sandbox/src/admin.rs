//! Test and developer controls, as Rust methods ([`Admin`]) and as a JSON API under `/admin` for tests in other
//! languages: advance the clock, inject faults, revoke grants, expire tokens, end proxy authorizations, edit or
//! delete resources, load data, register apps, and read the ground truth and counters. The admin API has no
//! authentication: the sandbox listens on loopback and is a development tool.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::faults::{FaultConfig, ScriptedFault};
use crate::store::GrantRow;
use crate::{App, Shared, Stats};

/// Controls of a running sandbox.
#[derive(Debug, Clone)]
pub struct Admin {
    shared: Arc<Shared>,
}

/// A failed admin action.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("not found")]
    NotFound,
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Load(#[from] crate::loader::LoadError),
}

impl Admin {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Moves the sandbox clock (tokens, codes, sessions and ages follow it).
    pub fn advance_clock(&self, secs: i64) {
        self.shared.clock.advance(secs);
    }

    /// The sandbox's current time (Unix seconds).
    pub fn now(&self) -> i64 {
        self.shared.clock.now()
    }

    /// Replaces the random faults.
    pub fn set_faults(&self, config: FaultConfig) {
        self.shared.faults.configure(config);
    }

    /// Replaces the random faults and reseeds the injector (a randomized run over many seeds).
    pub fn set_faults_seeded(&self, config: FaultConfig, seed: u64) {
        self.shared.faults.configure_seeded(config, seed);
    }

    /// Adds a fault for the next requests under a path prefix.
    pub fn script_fault(&self, fault: ScriptedFault) {
        self.shared.faults.script(fault);
    }

    /// Removes all faults.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// How many faults have been injected.
    pub fn faults_injected(&self) -> u64 {
        self.shared.faults.injected()
    }

    /// Whether new grants get refresh tokens (off: every grant from now on is one that cannot renew itself).
    pub fn set_refresh_tokens(&self, on: bool) {
        self.shared.refresh_tokens.store(on, Ordering::SeqCst);
    }

    /// Whether search Bundles carry `meta.lastUpdated` (off: clients must keep their cursor another way).
    pub fn set_bundle_last_updated(&self, on: bool) {
        self.shared.bundle_last_updated.store(on, Ordering::SeqCst);
    }

    /// Whether the SMART configuration advertises SMART v2 scopes (off: clients ask in v1 syntax, whole types).
    pub fn set_permission_v2(&self, on: bool) {
        self.shared.permission_v2.store(on, Ordering::SeqCst);
    }

    /// Switches server variations on or off ([`crate::Quirks`]; all off by default).
    pub fn set_quirks(&self, quirks: crate::Quirks) {
        *self.shared.quirks.lock().unwrap_or_else(|e| e.into_inner()) = quirks;
    }

    /// Turns the Epic-style "Observation searches need a category" rule on or off.
    pub fn set_category_rule(&self, on: bool) {
        self.shared.category_rule.store(on, Ordering::SeqCst);
    }

    /// Every grant, newest first.
    pub fn grants(&self) -> Result<Vec<GrantRow>, AdminError> {
        Ok(self.shared.store().grants(None)?)
    }

    /// Ends a grant and all its tokens, as "Remove access" does.
    pub fn revoke_grant(&self, grant_id: &str) -> Result<bool, AdminError> {
        Ok(self.shared.store().revoke_grant(
            grant_id,
            "revoked by the sandbox admin",
            self.shared.clock.now(),
        )?)
    }

    /// Makes live access tokens (of one grant, or all) expire now: "tokens that expire early".
    pub fn expire_access_tokens(&self, grant_id: Option<&str>) -> Result<usize, AdminError> {
        Ok(self
            .shared
            .store()
            .expire_access_tokens(grant_id, self.shared.clock.now())?)
    }

    /// Ends the proxy authorization of `proxy_patient` over `patient_id`; every grant made under it dies too.
    pub fn end_proxy(&self, proxy_patient: &str, patient_id: &str) -> Result<bool, AdminError> {
        let now = self.shared.clock.now();
        let store = self.shared.store();
        let ended = store.end_proxy(proxy_patient, patient_id, now)?;
        let proxy_user = store.person(proxy_patient)?.and_then(|p| p.username);
        for g in store.grants(proxy_user.as_deref())? {
            if g.patient_id == patient_id && g.revoked_at.is_none() {
                store.revoke_grant(&g.id, "proxy authorization ended", now)?;
            }
        }
        Ok(ended)
    }

    /// Stores a new version of a resource (meta.versionId and lastUpdated move on). Returns the version.
    pub fn put_resource(&self, resource: Value) -> Result<i64, AdminError> {
        if !resource["resourceType"].is_string() || !resource["id"].is_string() {
            return Err(AdminError::Invalid(
                "a resource needs resourceType and id".into(),
            ));
        }
        Ok(self
            .shared
            .store()
            .update(resource, self.shared.clock.now())?)
    }

    /// Deletes a resource: it disappears from reads and searches.
    pub fn delete_resource(&self, ty: &str, id: &str) -> Result<bool, AdminError> {
        Ok(self
            .shared
            .store()
            .delete(ty, id, self.shared.clock.now())?)
    }

    /// One live resource.
    pub fn resource(&self, ty: &str, id: &str) -> Result<Option<Value>, AdminError> {
        let r = self.shared.store().read(ty, id)?;
        Ok(r.and_then(|r| serde_json::from_str(&r.json).ok()))
    }

    /// The ground truth of a patient's compartment: (type, id, versionId) of every live resource.
    pub fn truth(
        &self,
        patient_id: &str,
        include_confidential: bool,
    ) -> Result<Vec<(String, String, i64)>, AdminError> {
        Ok(self
            .shared
            .store()
            .truth(patient_id, include_confidential)?)
    }

    /// Loads more FHIR data (a Bundle or a resource) while running; returns the logins made for new patients.
    pub fn load(&self, document: Value) -> Result<Vec<(String, String)>, AdminError> {
        let people = crate::loader::load_document(
            &mut self.shared.store(),
            document,
            std::path::Path::new("upload"),
            self.shared.clock.now(),
        )?;
        Ok(people
            .into_iter()
            .filter_map(|(p, pw)| p.username.map(|u| (u, pw)))
            .collect())
    }

    /// Registers (or replaces) an app.
    pub fn register_app(&self, app: &App) -> Result<(), AdminError> {
        let json = serde_json::to_string(app).map_err(|e| AdminError::Invalid(e.to_string()))?;
        Ok(self.shared.store().put_app(&app.client_id, &json)?)
    }

    /// The FHIR and OAuth requests served, with their time spans, oldest first.
    pub fn request_log(&self) -> Vec<crate::faults::LoggedRequest> {
        self.shared
            .request_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Empties the request log.
    pub fn clear_request_log(&self) {
        self.shared
            .request_log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let type_scans = self.shared.store().type_scans();
        Stats {
            type_scans,
            ..self.shared.stats().clone()
        }
    }
}

pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/state", get(state))
        .route(
            "/stats",
            get(|State(s): State<Arc<Shared>>| async move { Json(admin(&s).stats()) }),
        )
        .route("/clock/advance", post(advance))
        .route(
            "/faults",
            get(get_faults).put(put_faults).delete(clear_faults),
        )
        .route("/faults/script", post(script_fault))
        .route("/category-rule", put(category_rule))
        .route(
            "/quirks",
            put(
                |State(s): State<Arc<Shared>>, Json(q): Json<crate::Quirks>| async move {
                    admin(&s).set_quirks(q);
                    StatusCode::NO_CONTENT
                },
            )
            .get(|State(s): State<Arc<Shared>>| async move { Json(s.quirks()) }),
        )
        .route("/grants/{id}/revoke", post(revoke_grant))
        .route("/tokens/expire", post(expire_tokens))
        .route("/proxies/end", post(end_proxy))
        .route("/resources", post(load))
        .route(
            "/resources/{ty}/{id}",
            put(put_resource).delete(delete_resource).get(get_resource),
        )
        .route("/truth/{patient}", get(truth))
        .route("/apps", post(register_app))
}

fn admin(s: &Arc<Shared>) -> Admin {
    Admin::new(s.clone())
}

fn fail(e: AdminError) -> Response {
    let status = match e {
        AdminError::NotFound => StatusCode::NOT_FOUND,
        AdminError::Invalid(_) | AdminError::Load(_) => StatusCode::BAD_REQUEST,
        AdminError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Response> {
    serde_json::from_slice(body).map_err(|e| {
        fail(AdminError::Invalid(format!(
            "bad JSON body: line {}, column {}",
            e.line(),
            e.column()
        )))
    })
}

async fn state(State(s): State<Arc<Shared>>) -> Response {
    let store = s.store();
    let people = store.people().unwrap_or_default();
    let users: Vec<Value> = people
        .iter()
        .map(|p| json!({"patient_id": p.patient_id, "name": p.display_name, "birth_date": p.birth_date, "username": p.username,
            "proxy_for": store.proxies_of(&p.patient_id).unwrap_or_default().iter()
                .map(|x| json!({"patient_id": x.patient_id, "kind": x.kind, "ended": x.ended_at.is_some()})).collect::<Vec<_>>()}))
        .collect();
    let apps: Vec<Value> = store
        .apps()
        .unwrap_or_default()
        .iter()
        .filter_map(|j| serde_json::from_str(j).ok())
        .collect();
    let grants = store.grants(None).unwrap_or_default();
    Json(json!({"base_url": s.base_url, "fhir_base": s.fhir_base(), "now": s.clock.now(), "people": users, "apps": apps, "grants": grants}))
        .into_response()
}

#[derive(Deserialize)]
struct Advance {
    seconds: i64,
}

async fn advance(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<Advance>(&body) {
        Ok(a) => {
            admin(&s).advance_clock(a.seconds);
            Json(json!({"now": s.clock.now()})).into_response()
        }
        Err(r) => r,
    }
}

async fn get_faults(State(s): State<Arc<Shared>>) -> Response {
    Json(json!({"config": s.faults.config(), "injected": s.faults.injected()})).into_response()
}

async fn put_faults(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<FaultConfig>(&body) {
        Ok(c) => {
            admin(&s).set_faults(c);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

async fn clear_faults(State(s): State<Arc<Shared>>) -> Response {
    admin(&s).clear_faults();
    StatusCode::NO_CONTENT.into_response()
}

async fn script_fault(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<ScriptedFault>(&body) {
        Ok(f) => {
            admin(&s).script_fault(f);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct Switch {
    enabled: bool,
}

async fn category_rule(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<Switch>(&body) {
        Ok(sw) => {
            admin(&s).set_category_rule(sw.enabled);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    }
}

async fn revoke_grant(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    match admin(&s).revoke_grant(&id) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => fail(AdminError::NotFound),
        Err(e) => fail(e),
    }
}

#[derive(Deserialize, Default)]
struct Expire {
    grant_id: Option<String>,
}

async fn expire_tokens(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let req = if body.is_empty() {
        Ok(Expire::default())
    } else {
        parse::<Expire>(&body)
    };
    match req {
        Ok(e) => match admin(&s).expire_access_tokens(e.grant_id.as_deref()) {
            Ok(n) => Json(json!({"expired": n})).into_response(),
            Err(e) => fail(e),
        },
        Err(r) => r,
    }
}

#[derive(Deserialize)]
struct EndProxy {
    proxy: String,
    patient: String,
}

async fn end_proxy(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<EndProxy>(&body) {
        Ok(e) => match admin(&s).end_proxy(&e.proxy, &e.patient) {
            Ok(true) => StatusCode::NO_CONTENT.into_response(),
            Ok(false) => fail(AdminError::NotFound),
            Err(e) => fail(e),
        },
        Err(r) => r,
    }
}

async fn load(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<Value>(&body) {
        Ok(doc) => match admin(&s).load(doc) {
            Ok(users) => Json(json!({"logins": users})).into_response(),
            Err(e) => fail(e),
        },
        Err(r) => r,
    }
}

async fn put_resource(
    State(s): State<Arc<Shared>>,
    Path((ty, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut resource = match parse::<Value>(&body) {
        Ok(v) if v.is_object() => v,
        Ok(_) => {
            return fail(AdminError::Invalid(
                "the body must be a FHIR resource".into(),
            ));
        }
        Err(r) => return r,
    };
    resource["resourceType"] = json!(ty);
    resource["id"] = json!(id);
    match admin(&s).put_resource(resource) {
        Ok(v) => Json(json!({"versionId": v.to_string()})).into_response(),
        Err(e) => fail(e),
    }
}

async fn delete_resource(
    State(s): State<Arc<Shared>>,
    Path((ty, id)): Path<(String, String)>,
) -> Response {
    match admin(&s).delete_resource(&ty, &id) {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => fail(AdminError::NotFound),
        Err(e) => fail(e),
    }
}

async fn get_resource(
    State(s): State<Arc<Shared>>,
    Path((ty, id)): Path<(String, String)>,
) -> Response {
    match admin(&s).resource(&ty, &id) {
        Ok(Some(v)) => Json(v).into_response(),
        Ok(None) => fail(AdminError::NotFound),
        Err(e) => fail(e),
    }
}

async fn truth(
    State(s): State<Arc<Shared>>,
    Path(patient): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let all = crate::wire::Params::parse(q.unwrap_or_default().as_bytes()).get("confidential")
        != Some("false");
    match admin(&s).truth(&patient, all) {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|(t, i, v)| json!({"type": t, "id": i, "versionId": v.to_string()}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => fail(e),
    }
}

async fn register_app(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    match parse::<App>(&body) {
        Ok(app) => match admin(&s).register_app(&app) {
            Ok(()) => (
                StatusCode::CREATED,
                Json(json!({"client_id": app.client_id})),
            )
                .into_response(),
            Err(e) => fail(e),
        },
        Err(r) => r,
    }
}
