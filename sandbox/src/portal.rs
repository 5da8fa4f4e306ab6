//! The portal's pages, server-rendered HTML in the order a patient meets them: log in, "Which account are you
//! linking this app to?", the app's page (what it asks for, its questionnaire answers, "I have read the statements
//! above", Allow Access / Deny), and "Manage my linked apps and devices". No JavaScript: plain forms, so any
//! browser (or an HTTP client in a test) can walk them.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use crate::access::{self, AccessLevel, Relation};
use crate::flows::{Pending, SESSION_IDLE_LIMIT, Session};
use crate::scopes::{self, Scopes};
use crate::wire::{Params, error_page, esc, page};
use crate::{Shared, clock};

const COOKIE: &str = "cl_portal";

/// Any unknown path.
pub async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page at this address.",
    )
}

/// `GET /`: what this sandbox is, its endpoints, users and apps.
pub async fn home(State(s): State<Arc<Shared>>) -> Response {
    let banner = crate::banner(&s);
    let body = format!(
        "<h1>ChartLink Sandbox</h1><p>A local SMART-on-FHIR EHR for developing patient apps.</p>\
         <p><a href=\"/portal/apps\">Manage my linked apps and devices</a> &middot; \
         <a href=\"/fhir/metadata\">CapabilityStatement</a> &middot; \
         <a href=\"/fhir/.well-known/smart-configuration\">SMART configuration</a></p><pre>{}</pre>",
        esc(&banner)
    );
    page("Home", &body).into_response()
}

/// The user of a live portal session in this browser, if any (and refreshes its idle timer).
pub fn session_user(
    flows: &mut crate::flows::Flows,
    headers: &HeaderMap,
    now: i64,
) -> Option<String> {
    let sid = cookie(headers)?;
    let session = flows.sessions.get_mut(&sid)?;
    if now - session.last_seen >= SESSION_IDLE_LIMIT {
        flows.sessions.remove(&sid);
        return None;
    }
    session.last_seen = now;
    Some(session.username.clone())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            c.trim()
                .strip_prefix(&format!("{COOKIE}="))
                .map(str::to_owned)
        })
}

/// The login form, for an authorization in progress (`tx`) or for the linked-apps page (`next`).
pub fn login_form(tx: &str, error: Option<&str>, next: Option<&str>) -> Response {
    let mut body = String::from("<h1>Log in to your health record</h1>");
    if let Some(e) = error {
        let _ = write!(body, "<p class=\"error\" id=\"error\">{}</p>", esc(e));
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"/portal/login\">\
         <input type=\"hidden\" name=\"tx\" value=\"{}\"><input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label>Username <input type=\"text\" id=\"username\" name=\"username\" autocomplete=\"username\" autofocus></label>\
         <label>Password <input type=\"password\" id=\"password\" name=\"password\" autocomplete=\"current-password\"></label>\
         <button class=\"primary\" id=\"login\" type=\"submit\">Log in</button></form>\
         <p class=\"muted\">Sandbox users are listed on the <a href=\"/\">home page</a>.</p>",
        esc(tx),
        esc(next.unwrap_or(""))
    );
    page("Log in", &body).into_response()
}

/// `GET /portal/login`.
pub async fn login_page(RawQuery(q): RawQuery) -> Response {
    let p = Params::parse(q.unwrap_or_default().as_bytes());
    login_form("", None, p.get("next"))
}

/// `POST /portal/login`.
pub async fn login(State(s): State<Arc<Shared>>, body: Bytes) -> Response {
    let p = Params::parse(&body);
    let tx = p.get("tx").unwrap_or("").to_owned();
    let next = p.get("next").map(str::to_owned);
    let (username, password) = (
        p.get("username").unwrap_or(""),
        p.get("password").unwrap_or(""),
    );
    let now = s.clock.now();
    if !tx.is_empty() && !s.flows().pending.contains_key(&tx) {
        return expired();
    }
    let user = match s.store().login(username, password) {
        Ok(u) => u,
        Err(_) => {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Portal unavailable",
                "Please try again.",
            );
        }
    };
    let Some(user) = user.and_then(|u| u.username) else {
        // Never say which of the two was wrong.
        return login_form(
            &tx,
            Some("The username or password is incorrect."),
            next.as_deref(),
        );
    };
    let sid = crate::wire::random_token();
    let csrf = crate::wire::random_token();
    s.flows().sessions.insert(
        sid.clone(),
        Session {
            username: user.clone(),
            csrf,
            last_seen: now,
        },
    );
    let mut response = if tx.is_empty() {
        Redirect::to("/portal/apps").into_response()
    } else {
        after_login(&s, &tx, &user)
    };
    if let Ok(v) = HeaderValue::from_str(&format!("{COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax"))
    {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

fn expired() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "This request has expired",
        "The link between the app and the portal timed out or was already used. Please go back to the app and start again.",
    )
}

/// After login: the account picker when the user may open more than one record, else the app's page.
pub fn after_login(s: &Shared, tx: &str, username: &str) -> Response {
    let today = s.clock.today();
    let choices = {
        let store = s.store();
        let Ok(Some(user)) = store.person_by_username(username) else {
            return expired();
        };
        match access::accessible(&store, &user, today) {
            Ok(c) => c,
            Err(_) => {
                return error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Portal unavailable",
                    "Please try again.",
                );
            }
        }
    };
    let app_name = {
        let mut flows = s.flows();
        let Some(p) = flows.pending.get_mut(tx) else {
            return expired();
        };
        p.username = Some(username.to_owned());
        if choices.len() == 1 {
            p.patient_id = Some(choices[0].person.patient_id.clone());
        }
        p.app.name.clone()
    };
    if choices.len() == 1 {
        return consent_page(s, tx, None);
    }
    let mut body = format!(
        "<h1>Which account are you linking this app to?</h1><p>{} is asking to connect to a health record. \
         Choose whose record it may see.</p><form method=\"post\" action=\"/portal/choose\">\
         <input type=\"hidden\" name=\"tx\" value=\"{}\">",
        esc(&app_name),
        esc(tx)
    );
    for (i, c) in choices.iter().enumerate() {
        let who = match c.relation {
            Relation::Myself => "Me".to_owned(),
            Relation::Proxy { .. } => c.person.display_name.clone(),
        };
        let detail = match (&c.relation, c.level) {
            (Relation::Myself, _) => format!("{} (your own record)", c.person.display_name),
            (_, AccessLevel::Restricted) => {
                format!("born {} - limited proxy access", c.person.birth_date)
            }
            _ => format!("born {}", c.person.birth_date),
        };
        let _ = write!(
            body,
            "<label><input type=\"radio\" name=\"patient\" id=\"patient-{}\" value=\"{}\"{}> <strong>{}</strong> \
             <span class=\"muted\">{}</span></label>",
            esc(&c.person.patient_id),
            esc(&c.person.patient_id),
            if i == 0 { " checked" } else { "" },
            esc(&who),
            esc(&detail)
        );
    }
    body.push_str(
        "<button class=\"primary\" id=\"choose\" type=\"submit\">Continue</button></form>",
    );
    page("Choose an account", &body).into_response()
}

/// The pending request of `tx`, if the browser's session belongs to the user who logged in for it.
fn pending_for(s: &Shared, headers: &HeaderMap, tx: &str) -> Option<Pending> {
    let now = s.clock.now();
    let mut flows = s.flows();
    let user = session_user(&mut flows, headers, now)?;
    let p = flows.pending.get(tx)?;
    (p.username.as_deref() == Some(user.as_str())).then(|| p.clone())
}

/// `POST /portal/choose`.
pub async fn choose(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let p = Params::parse(&body);
    let tx = p.get("tx").unwrap_or("");
    let Some(pending) = pending_for(&s, &headers, tx) else {
        return expired();
    };
    let Some(patient) = p.get("patient") else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Choose an account",
            "Please choose whose record to link.",
        );
    };
    let username = pending.username.unwrap_or_default();
    let allowed = {
        let store = s.store();
        access::access_of(&store, &username, patient, s.clock.today())
            .ok()
            .flatten()
            .is_some()
    };
    if !allowed {
        return error_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "You do not have access to that record.",
        );
    }
    if let Some(p) = s.flows().pending.get_mut(tx) {
        p.patient_id = Some(patient.to_owned());
    }
    consent_page(&s, tx, None)
}

fn consent_page(s: &Shared, tx: &str, error: Option<&str>) -> Response {
    let Some(pending) = s.flows().pending.get(tx).cloned() else {
        return expired();
    };
    let (Some(username), Some(patient_id)) =
        (pending.username.as_deref(), pending.patient_id.as_deref())
    else {
        return expired();
    };
    let Ok(Some(access)) = access::access_of(&s.store(), username, patient_id, s.clock.today())
    else {
        return error_page(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "You do not have access to that record.",
        );
    };
    let app = &pending.app;
    let whose = match access.relation {
        Relation::Myself => "your".to_owned(),
        Relation::Proxy { .. } => format!("{}'s", access.person.display_name),
    };
    let mut body = format!(
        "<h1>Allow {} to access {} health record?</h1>",
        esc(&app.name),
        esc(&whose)
    );
    if let Some(e) = error {
        let _ = write!(body, "<p class=\"error\" id=\"error\">{}</p>", esc(e));
    }
    let _ = write!(
        body,
        "<p>App: <strong id=\"app-name\">{}</strong> by {}<br>Record: <strong id=\"record-name\">{}</strong> (born {})</p>",
        esc(&app.name),
        esc(&app.developer),
        esc(&access.person.display_name),
        esc(&access.person.birth_date)
    );
    if access.level == AccessLevel::Restricted {
        body.push_str(
            "<p class=\"note\" id=\"restricted\">Because this patient is 13 or older, items marked confidential \
             (such as adolescent sensitive care) are not shared through proxy access.</p>",
        );
    }
    body.push_str("<form method=\"post\" action=\"/portal/consent\">");
    let _ = write!(
        body,
        "<input type=\"hidden\" name=\"tx\" value=\"{}\">",
        esc(tx)
    );
    body.push_str("<h2>The app is asking for</h2><p class=\"muted\">Untick anything you do not want to share.</p>");
    for (i, item) in scopes::consent_items_with(&pending.scopes, s.quirks().granular())
        .iter()
        .enumerate()
    {
        let _ = write!(
            body,
            "<label><input type=\"checkbox\" name=\"scope\" id=\"scope-{i}\" value=\"{}\" checked> {}</label>",
            esc(&item.scope),
            esc(&item.label)
        );
    }
    if pending.scopes.openid || pending.scopes.fhir_user {
        body.push_str("<p class=\"muted\">The app will also learn who you are (your name and portal identity).</p>");
    }
    if pending.scopes.offline_access {
        body.push_str(
            "<p class=\"muted\">Access lasts until you remove it on the linked-apps page.</p>",
        );
    }
    body.push_str("<h2>What the developer says about your data</h2>");
    match &app.questionnaire {
        Some(q) => {
            let yes_no = |b: bool| if b { "Yes" } else { "No" };
            let _ = write!(
                body,
                "<dl id=\"questionnaire\"><dt>How is the app funded?</dt><dd>{}</dd>\
                 <dt>Does the app sell your data?</dt><dd>{}</dd>\
                 <dt>Does it share your data with others?</dt><dd>{}</dd>\
                 <dt>Can you ask it to delete your data?</dt><dd>{}</dd>\
                 <dt>Can you see the data it collected?</dt><dd>{}</dd>\
                 <dt>Is your data stored outside the United States?</dt><dd>{}</dd>\
                 <dt>Terms of use</dt><dd><a href=\"{}\">{}</a></dd>\
                 <dt>Privacy policy</dt><dd><a href=\"{}\">{}</a></dd></dl>",
                esc(&q.funding),
                yes_no(q.sells_data),
                esc(q.shares_data.as_deref().unwrap_or("No")),
                yes_no(q.user_can_delete),
                yes_no(q.user_can_see_collected),
                yes_no(q.stores_outside_us),
                esc(&q.terms_url),
                esc(&q.terms_url),
                esc(&q.privacy_url),
                esc(&q.privacy_url)
            );
        }
        None => body.push_str(
            "<p class=\"warning\" id=\"unanswered\"><strong>This app has not answered</strong> the portal's questions \
             about how it collects, uses, shares and sells your data. Think carefully before you allow access.</p>",
        ),
    }
    body.push_str(
        "<label><input type=\"checkbox\" name=\"acknowledged\" id=\"acknowledged\" value=\"yes\"> \
         I have read the statements above</label>\
         <button class=\"primary\" id=\"allow\" type=\"submit\" name=\"decision\" value=\"allow\">Allow Access</button>\
         <button class=\"secondary\" id=\"deny\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
    );
    page("Allow access", &body).into_response()
}

/// `POST /portal/consent`: Allow Access (with the ticked data) or Deny.
pub async fn consent(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let tx = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "tx")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let Some(pending) = pending_for(&s, &headers, &tx) else {
        return expired();
    };
    if pending.patient_id.is_none() {
        return expired();
    }
    let mut ticked: Vec<String> = Vec::new();
    let (mut decision, mut acknowledged) = (None, false);
    for (k, v) in url::form_urlencoded::parse(&body) {
        match &*k {
            "scope" => ticked.push(v.into_owned()),
            "decision" => decision = Some(v.into_owned()),
            "acknowledged" => acknowledged = v == "yes",
            _ => {}
        }
    }
    match decision.as_deref() {
        Some("deny") => {
            s.flows().pending.remove(&tx);
            crate::flows::error_redirect(
                &s,
                &pending.redirect_uri,
                Some(&pending.state),
                "access_denied",
                "the patient denied access",
            )
        }
        Some("allow") if !acknowledged => consent_page(
            &s,
            &tx,
            Some("Please confirm that you have read the statements above."),
        ),
        Some("allow") => {
            // Only what was offered can be granted, whatever the form claims.
            let offered = scopes::consent_items_with(&pending.scopes, s.quirks().granular());
            let granted_resources: Vec<&str> = offered
                .iter()
                .filter(|i| ticked.contains(&i.scope))
                .map(|i| i.scope.as_str())
                .collect();
            let identity = Scopes {
                resources: Vec::new(),
                ..pending.scopes.clone()
            }
            .to_string();
            let granted = std::iter::once(identity.as_str())
                .chain(granted_resources)
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            s.flows().pending.remove(&tx);
            crate::flows::issue_code(&s, pending, granted)
        }
        _ => error_page(
            StatusCode::BAD_REQUEST,
            "Choose Allow or Deny",
            "The form was incomplete; please use the buttons.",
        ),
    }
}

/// `GET /portal/apps`: "Manage my linked apps and devices".
pub async fn linked_apps(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let now = s.clock.now();
    let (user, csrf) = {
        let mut flows = s.flows();
        let Some(user) = session_user(&mut flows, &headers, now) else {
            return Redirect::to("/portal/login?next=apps").into_response();
        };
        let csrf = cookie(&headers)
            .and_then(|sid| flows.sessions.get(&sid).map(|x| x.csrf.clone()))
            .unwrap_or_default();
        (user, csrf)
    };
    let store = s.store();
    let grants = store.grants(Some(&user)).unwrap_or_default();
    let mut body = String::from("<h1>Manage my linked apps and devices</h1>");
    let active: Vec<_> = grants.iter().filter(|g| g.revoked_at.is_none()).collect();
    if active.is_empty() {
        body.push_str("<p id=\"no-apps\">No apps have access to your records.</p>");
    } else {
        body.push_str(
            "<table><tr><th>App</th><th>Record</th><th>Since</th><th>Data</th><th></th></tr>",
        );
        for (i, g) in active.iter().enumerate() {
            let app_name = store
                .app(&g.client_id)
                .ok()
                .flatten()
                .and_then(|j| serde_json::from_str::<crate::App>(&j).ok())
                .map(|a| a.name)
                .unwrap_or_else(|| g.client_id.clone());
            let record = store
                .person(&g.patient_id)
                .ok()
                .flatten()
                .map(|p| p.display_name)
                .unwrap_or_default();
            let mut data: Vec<String> = Scopes::parse(&g.scope)
                .map(|sc| {
                    scopes::consent_items(&sc)
                        .into_iter()
                        .map(|i| i.label)
                        .collect()
                })
                .unwrap_or_default();
            data.dedup();
            let since = clock::instant(g.created_at);
            let _ = write!(
                body,
                "<tr><td class=\"app\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>\
                 <form method=\"post\" action=\"/portal/apps/remove\"><input type=\"hidden\" name=\"grant\" value=\"{}\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                 <button class=\"secondary\" id=\"remove-{i}\" type=\"submit\">Remove access</button></form></td></tr>",
                esc(&app_name),
                esc(&record),
                esc(since.get(..10).unwrap_or(&since)),
                esc(&data.join(", ")),
                esc(&g.id),
                esc(&csrf)
            );
        }
        body.push_str("</table>");
    }
    body.push_str("<form method=\"post\" action=\"/portal/logout\"><button class=\"secondary\" id=\"logout\">Log out</button></form>");
    page("Linked apps", &body).into_response()
}

/// `POST /portal/apps/remove`: ends every token of the grant at once.
pub async fn remove_access(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::parse(&body);
    let now = s.clock.now();
    let (user, csrf_ok) = {
        let mut flows = s.flows();
        let Some(user) = session_user(&mut flows, &headers, now) else {
            return Redirect::to("/portal/login?next=apps").into_response();
        };
        let csrf =
            cookie(&headers).and_then(|sid| flows.sessions.get(&sid).map(|x| x.csrf.clone()));
        (
            user,
            csrf.is_some_and(|c| Some(c.as_str()) == p.get("csrf")),
        )
    };
    if !csrf_ok {
        return error_page(
            StatusCode::FORBIDDEN,
            "Please try again",
            "The form had expired.",
        );
    }
    let store = s.store();
    match store.grant(p.get("grant").unwrap_or("")) {
        Ok(Some(g)) if g.username == user => {
            if store
                .revoke_grant(&g.id, "removed by the patient on the linked-apps page", now)
                .is_err()
            {
                return error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Portal unavailable",
                    "Please try again.",
                );
            }
            Redirect::to("/portal/apps").into_response()
        }
        _ => error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "That app link does not exist.",
        ),
    }
}

/// `POST /portal/logout`.
pub async fn logout(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(sid) = cookie(&headers) {
        s.flows().sessions.remove(&sid);
    }
    let mut r = Redirect::to("/portal/login?next=apps").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("cl_portal=; Path=/; Max-Age=0"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }
}
