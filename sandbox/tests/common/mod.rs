//! Test harness: a sandbox in process, a real HTTP client with a cookie jar (a browser stand-in), PKCE, and a
//! walker for the portal's pages that reads the HTML forms like a patient would fill them.
#![allow(dead_code, clippy::unwrap_used)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chartlink_sandbox::{Config, Sandbox};
use rand::RngCore;
use reqwest::{Client, StatusCode, redirect};
use serde_json::Value;
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "chartlink-demo";
pub const REDIRECT: &str = "chartlink-demo://callback";
pub const ALL_SCOPES: &str = "launch/patient openid fhirUser offline_access patient/*.rs";

pub async fn start() -> Sandbox {
    start_with(Config::default()).await
}

pub async fn start_with(config: Config) -> Sandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sandbox::start(config).await.expect("sandbox starts")
}

/// A browser-like client: keeps cookies, does not follow redirects (the test reads them).
pub fn browser() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn random(n: usize) -> String {
    let mut b = vec![0u8; n];
    rand::rng().fill_bytes(&mut b);
    B64.encode(b)
}

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

pub fn pkce() -> Pkce {
    let verifier = random(32);
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// The value of a hidden (or any) input named `name` in a page.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(
        rest[..rest.find('"')?]
            .replace("&amp;", "&")
            .replace("&quot;", "\""),
    )
}

/// Every `value` of the checkboxes named `scope` on the consent page.
pub fn scope_boxes(html: &str) -> Vec<String> {
    html.match_indices("name=\"scope\" id=\"scope-")
        .filter_map(|(i, _)| {
            let rest = &html[i..];
            let v = rest.find("value=\"")? + 7;
            let end = rest[v..].find('"')?;
            Some(rest[v..v + end].replace("&amp;", "&"))
        })
        .collect()
}

/// The parameters of a redirect's Location.
pub fn location_params(resp: &reqwest::Response) -> Vec<(String, String)> {
    let loc = resp
        .headers()
        .get("location")
        .expect("a redirect")
        .to_str()
        .unwrap();
    let query = loc.split_once('?').map(|(_, q)| q).unwrap_or("");
    url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect()
}

pub fn param<'a>(params: &'a [(String, String)], key: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// One authorization in progress, walked page by page.
pub struct Flow {
    pub http: Client,
    pub base: String,
    pub fhir: String,
    pub state: String,
    pub pkce: Pkce,
    pub tx: String,
    pub page: String,
}

impl Flow {
    /// GET /authorize with the usual parameters (`extra` overrides or adds).
    pub async fn begin(
        sb: &Sandbox,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> (Flow, reqwest::Response) {
        let http = browser();
        let pkce = pkce();
        let state = random(16);
        let fhir = sb.fhir_base();
        let mut params: Vec<(&str, &str)> = vec![
            ("response_type", "code"),
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT),
            ("scope", scope),
            ("state", &state),
            ("aud", &fhir),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ];
        for (k, v) in extra {
            params.retain(|(pk, _)| pk != k);
            if !v.is_empty() {
                params.push((k, v));
            }
        }
        let url = reqwest::Url::parse_with_params(
            &format!("{}/oauth2/authorize", sb.base_url()),
            &params,
        )
        .unwrap();
        let resp = http.get(url).send().await.unwrap();
        let flow = Flow {
            http,
            base: sb.base_url().to_owned(),
            fhir,
            state,
            pkce,
            tx: String::new(),
            page: String::new(),
        };
        (flow, resp)
    }

    /// Begins and expects the login page.
    pub async fn start(sb: &Sandbox, scope: &str) -> Flow {
        let (mut flow, resp) = Flow::begin(sb, scope, &[]).await;
        assert_eq!(resp.status(), StatusCode::OK);
        flow.page = resp.text().await.unwrap();
        assert!(
            flow.page.contains("Log in to your health record"),
            "login page expected"
        );
        flow.tx = input_value(&flow.page, "tx").expect("tx");
        flow
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Logs in; the next page (picker or consent) lands in `self.page`.
    pub async fn login(&mut self, user: &str, password: &str) -> StatusCode {
        let tx = self.tx.clone();
        let resp = self
            .post(
                "/portal/login",
                &[("tx", &tx), ("username", user), ("password", password)],
            )
            .await;
        let status = resp.status();
        self.page = resp.text().await.unwrap();
        status
    }

    pub async fn choose(&mut self, patient: &str) -> StatusCode {
        let tx = self.tx.clone();
        let resp = self
            .post("/portal/choose", &[("tx", &tx), ("patient", patient)])
            .await;
        let status = resp.status();
        self.page = resp.text().await.unwrap();
        status
    }

    /// Submits the consent form with `scopes` ticked.
    pub async fn decide(
        &mut self,
        decision: &str,
        acknowledged: bool,
        scopes: &[String],
    ) -> reqwest::Response {
        let tx = self.tx.clone();
        let mut form: Vec<(&str, &str)> = vec![("tx", &tx), ("decision", decision)];
        if acknowledged {
            form.push(("acknowledged", "yes"));
        }
        for s in scopes {
            form.push(("scope", s));
        }
        self.post("/portal/consent", &form).await
    }

    /// Allows everything offered and returns the code (after checking state and iss).
    pub async fn allow_all(&mut self) -> String {
        let boxes = scope_boxes(&self.page);
        let resp = self.decide("allow", true, &boxes).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "redirect to the app");
        let params = location_params(&resp);
        assert_eq!(param(&params, "state"), Some(self.state.as_str()));
        assert_eq!(param(&params, "iss"), Some(self.fhir.as_str()));
        param(&params, "code").expect("code").to_owned()
    }

    pub async fn exchange(&self, code: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/oauth2/token", self.base))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT_ID),
                ("code_verifier", &self.pkce.verifier),
            ])
            .send()
            .await
            .unwrap()
    }
}

/// Links `user` to `patient` (or their only record) with `scope`, allowing everything; returns the token response.
pub async fn link(sb: &Sandbox, user: &str, patient: Option<&str>, scope: &str) -> Value {
    let mut flow = Flow::start(sb, scope).await;
    assert_eq!(
        flow.login(user, &format!("{user}-demo")).await,
        StatusCode::OK
    );
    if let Some(p) = patient {
        assert!(
            flow.page
                .contains("Which account are you linking this app to?"),
            "account picker expected"
        );
        assert_eq!(flow.choose(p).await, StatusCode::OK);
    }
    let code = flow.allow_all().await;
    let resp = flow.exchange(&code).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// GET a FHIR path with a bearer token.
pub async fn fhir_get(sb: &Sandbox, token: &str, path: &str) -> (StatusCode, Value) {
    let resp = browser()
        .get(format!("{}/{path}", sb.fhir_base()))
        .bearer_auth(token)
        .header("accept", "application/fhir+json")
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Follows next links; returns every resource.
pub async fn search_all(sb: &Sandbox, token: &str, path: &str) -> Vec<Value> {
    let http = browser();
    let mut url = format!("{}/{path}", sb.fhir_base());
    let mut out = Vec::new();
    for _ in 0..10_000 {
        let resp = http.get(&url).bearer_auth(token).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        let bundle: Value = resp.json().await.unwrap();
        assert_eq!(bundle["type"], "searchset");
        out.extend(
            bundle["entry"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e["resource"].clone()),
        );
        match bundle["link"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
        {
            Some(next) => url = next["url"].as_str().unwrap().to_owned(),
            None => return out,
        }
    }
    panic!("paging did not end");
}

pub async fn token_form(sb: &Sandbox, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = browser()
        .post(format!("{}/oauth2/token", sb.base_url()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub async fn refresh(sb: &Sandbox, refresh_token: &str) -> (StatusCode, Value) {
    token_form(
        sb,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", CLIENT_ID),
        ],
    )
    .await
}

/// Decodes a JWT's claims without verifying (the tests verify separately where it matters).
pub fn jwt_claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(part).unwrap()).unwrap()
}
