//! A scripted patient: walks the portal's pages over HTTP the way a person would in the browser — log in, pick
//! whose record, untick some data, tick "I have read the statements above", Allow Access or Deny — and returns the
//! URL the portal redirected to. The CLI demo, the SDK's tests and the Kotlin host tests use it as their
//! `AuthBrowser`; the real browser path is covered by the headless Chromium tests.

use reqwest::{Client, StatusCode, redirect};

/// What the scripted patient does on the portal's pages.
#[derive(Debug, Clone)]
pub struct PortalRobot {
    pub username: String,
    pub password: String,
    /// The patient to pick in "Which account are you linking this app to?" (`None`: the first, their own).
    pub patient: Option<String>,
    /// Allow Access (true) or Deny.
    pub allow: bool,
    /// Data categories to untick, by a word in their label ("Vital signs").
    pub untick: Vec<String>,
}

/// Why the robot could not finish.
#[derive(Debug, thiserror::Error)]
pub enum RobotError {
    #[error("HTTP error: {0}")]
    Http(String),
    #[error("the portal showed an unexpected page: {0}")]
    UnexpectedPage(String),
    #[error("the portal refused the login")]
    LoginRefused,
}

impl PortalRobot {
    /// A patient who logs in and allows everything for their own record (or `patient`'s).
    pub fn allowing(username: &str, password: &str, patient: Option<&str>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
            patient: patient.map(Into::into),
            allow: true,
            untick: Vec::new(),
        }
    }

    /// Follows an authorization URL to the redirect back to the app; returns the redirect URL.
    pub async fn authorize(&self, url: &str) -> Result<String, RobotError> {
        let http = client()?;
        let base = url::Url::parse(url).map_err(|e| RobotError::Http(e.to_string()))?;
        let origin = base.origin().ascii_serialization();
        let resp = http
            .get(url)
            .send()
            .await
            .map_err(|e| RobotError::Http(e.to_string()))?;
        if let Some(loc) = location(&resp) {
            return Ok(loc);
        }
        let page = text(resp).await?;
        // A page that posts the authorization request (SMART `authorize-post`): submit it, as a browser does.
        if page.contains("data-autosubmit") {
            let (action, fields) =
                autosubmit_form(&page).ok_or_else(|| RobotError::UnexpectedPage(title(&page)))?;
            return self.post_with(&http, &action, &fields).await;
        }
        self.portal(&http, &origin, page).await
    }

    /// Sends an authorization request as a form POST (SMART `authorize-post`) and completes the portal's pages.
    pub async fn authorize_form(
        &self,
        action: &str,
        fields: &[(String, String)],
    ) -> Result<String, RobotError> {
        self.post_with(&client()?, action, fields).await
    }

    async fn post_with(
        &self,
        http: &Client,
        action: &str,
        fields: &[(String, String)],
    ) -> Result<String, RobotError> {
        let origin = url::Url::parse(action)
            .map_err(|e| RobotError::Http(e.to_string()))?
            .origin()
            .ascii_serialization();
        let resp = http
            .post(action)
            .form(fields)
            .send()
            .await
            .map_err(|e| RobotError::Http(e.to_string()))?;
        if let Some(loc) = location(&resp) {
            return Ok(loc);
        }
        let page = text(resp).await?;
        self.portal(http, &origin, page).await
    }

    /// Logs in, picks the patient and answers the consent page.
    async fn portal(
        &self,
        http: &Client,
        origin: &str,
        page: String,
    ) -> Result<String, RobotError> {
        let tx = input(&page, "tx").ok_or_else(|| RobotError::UnexpectedPage(title(&page)))?;
        let resp = http
            .post(format!("{origin}/portal/login"))
            .form(&[
                ("tx", tx.as_str()),
                ("username", &self.username),
                ("password", &self.password),
            ])
            .send()
            .await
            .map_err(|e| RobotError::Http(e.to_string()))?;
        let mut page = text(resp).await?;
        if page.contains("id=\"error\"") && page.contains("username or password") {
            return Err(RobotError::LoginRefused);
        }
        if page.contains("Which account are you linking this app to?") {
            let patient = match &self.patient {
                Some(p) => p.clone(),
                None => input(&page, "patient")
                    .ok_or_else(|| RobotError::UnexpectedPage(title(&page)))?,
            };
            let resp = http
                .post(format!("{origin}/portal/choose"))
                .form(&[("tx", tx.as_str()), ("patient", patient.as_str())])
                .send()
                .await
                .map_err(|e| RobotError::Http(e.to_string()))?;
            page = text(resp).await?;
        }
        if !page.contains("I have read the statements above") {
            return Err(RobotError::UnexpectedPage(title(&page)));
        }
        let mut form: Vec<(String, String)> = vec![
            ("tx".into(), tx),
            (
                "decision".into(),
                if self.allow { "allow" } else { "deny" }.into(),
            ),
            ("acknowledged".into(), "yes".into()),
        ];
        for (value, label) in checkboxes(&page) {
            if !self.untick.iter().any(|u| label.contains(u.as_str())) {
                form.push(("scope".into(), value));
            }
        }
        let resp = http
            .post(format!("{origin}/portal/consent"))
            .form(&form)
            .send()
            .await
            .map_err(|e| RobotError::Http(e.to_string()))?;
        location(&resp).ok_or(RobotError::UnexpectedPage(
            "the consent page did not redirect".into(),
        ))
    }
}

fn client() -> Result<Client, RobotError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::builder()
        .cookie_store(true)
        .redirect(redirect::Policy::none())
        .build()
        .map_err(|e| RobotError::Http(e.to_string()))
}

/// The action and hidden fields of an auto-submitting form (HTML-unescaped).
fn autosubmit_form(page: &str) -> Option<(String, Vec<(String, String)>)> {
    let unescape = |s: &str| {
        s.replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    };
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
        let end = tag[start..].find('"')? + start;
        Some(unescape(&tag[start..end]))
    };
    let form_start = page.find("<form")?;
    let form_tag = &page[form_start..form_start + page[form_start..].find('>')?];
    let action = attr(form_tag, "action")?;
    let mut fields = Vec::new();
    let mut rest = &page[form_start..];
    while let Some(i) = rest.find("<input") {
        let end = rest[i..].find('>')? + i;
        let tag = &rest[i..end];
        if let (Some(n), Some(v)) = (attr(tag, "name"), attr(tag, "value")) {
            fields.push((n, v));
        }
        rest = &rest[end..];
    }
    Some((action, fields))
}

fn location(resp: &reqwest::Response) -> Option<String> {
    if resp.status() != StatusCode::SEE_OTHER && !resp.status().is_redirection() {
        return None;
    }
    resp.headers()
        .get("location")?
        .to_str()
        .ok()
        .map(str::to_owned)
}

async fn text(resp: reqwest::Response) -> Result<String, RobotError> {
    resp.text()
        .await
        .map_err(|e| RobotError::Http(e.to_string()))
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of the first input named `name`.
fn input(page: &str, name: &str) -> Option<String> {
    let needle = format!("name=\"{name}\"");
    let at = page.find(&needle)?;
    let rest = &page[at..];
    let v = rest.find("value=\"")? + 7;
    let end = rest[v..].find('"')?;
    Some(unescape(&rest[v..v + end]))
}

/// (value, label) of each data checkbox on the consent page.
fn checkboxes(page: &str) -> Vec<(String, String)> {
    page.match_indices("name=\"scope\"")
        .filter_map(|(i, _)| {
            let rest = &page[i..];
            let v = rest.find("value=\"")? + 7;
            let end = rest[v..].find('"')?;
            let after = &rest[v + end..];
            let label_start = after.find('>')? + 1;
            let label_end = after.find("</label>")?;
            Some((
                unescape(&rest[v..v + end]),
                unescape(after.get(label_start..label_end)?.trim()),
            ))
        })
        .collect()
}

fn title(page: &str) -> String {
    page.split("<h1>")
        .nth(1)
        .and_then(|s| s.split("</h1>").next())
        .map(unescape)
        .unwrap_or_else(|| "no title".into())
}
