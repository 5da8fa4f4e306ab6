//! Apps registered with the portal: their client type, redirect URIs and the answers their developer gave to the
//! portal's questionnaire about how the app treats patient data. The sandbox starts with a few demo apps; more can
//! be registered through the admin API.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ClientAuth {
    /// A native or browser app with no secret: it sends `client_id` and must use PKCE.
    Public,
    /// `client_secret_basic` (or `client_secret_post`).
    ConfidentialSymmetric { secret: String },
    /// `private_key_jwt` with the public keys registered here (RS384 or ES384).
    ConfidentialAsymmetric { jwks: Value },
}

/// The portal's questionnaire, as the app's developer answered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Questionnaire {
    /// "How is this app funded?"
    pub funding: String,
    /// "Does the app sell your data?"
    pub sells_data: bool,
    /// "Does the app share your data with anyone other than to provide its service?" (and with whom)
    pub shares_data: Option<String>,
    /// "Can you ask the app to delete your data?"
    pub user_can_delete: bool,
    /// "Can you see the data the app has collected about you?"
    pub user_can_see_collected: bool,
    /// "Does the app store your data outside the United States?"
    pub stores_outside_us: bool,
    pub terms_url: String,
    pub privacy_url: String,
}

/// A registered app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub client_id: String,
    pub name: String,
    pub developer: String,
    pub redirect_uris: Vec<String>,
    pub auth: ClientAuth,
    /// `None`: the developer did not answer, and the consent page says so.
    pub questionnaire: Option<Questionnaire>,
    /// Whether the app may register device clients (Epic-style dynamic registration).
    #[serde(default)]
    pub dynamic_registration: bool,
    /// Legacy SMART v1 confidential clients that never sent PKCE (SMART's client-py); off for every other app.
    /// Public clients always need PKCE S256.
    #[serde(default)]
    pub legacy_pkce_optional: bool,
    /// For a device client made by `/register`: the grant it is bound to.
    #[serde(default)]
    pub bound_grant: Option<String>,
}

impl App {
    /// Whether `uri` is one of the app's redirect URIs. Exact match, except that a loopback IP redirect
    /// (`http://127.0.0.1/...` or `http://[::1]/...`) may carry any port, as RFC 8252 §7.3 requires of servers.
    pub fn allows_redirect(&self, uri: &str) -> bool {
        self.redirect_uris.iter().any(|registered| {
            if registered == uri {
                return true;
            }
            let (Ok(reg), Ok(got)) = (url::Url::parse(registered), url::Url::parse(uri)) else {
                return false;
            };
            let loopback = |u: &url::Url| {
                u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]"))
            };
            loopback(&reg)
                && loopback(&got)
                && reg.host_str() == got.host_str()
                && reg.path() == got.path()
                && reg.query() == got.query()
        })
    }

    /// The client's registered public keys, when it authenticates with `private_key_jwt`.
    pub fn jwks(&self) -> Option<&Value> {
        match &self.auth {
            ClientAuth::ConfidentialAsymmetric { jwks } => Some(jwks),
            _ => None,
        }
    }
}

/// The client id of the ChartLink demo app that the SDK, the CLI and the tests use.
pub const DEMO_CLIENT_ID: &str = "chartlink-demo";

/// The apps every sandbox starts with.
pub fn demo_apps() -> Vec<App> {
    let answered = Questionnaire {
        funding: "Paid for by the ChartLink open-source project; no advertising".into(),
        sells_data: false,
        shares_data: None,
        user_can_delete: true,
        user_can_see_collected: true,
        stores_outside_us: false,
        terms_url: "https://chartlink.example/terms".into(),
        privacy_url: "https://chartlink.example/privacy".into(),
    };
    vec![
        App {
            client_id: DEMO_CLIENT_ID.into(),
            name: "ChartLink Demo".into(),
            developer: "ChartLink".into(),
            redirect_uris: vec![
                "chartlink-demo://callback".into(),
                "http://127.0.0.1/callback".into(),
            ],
            auth: ClientAuth::Public,
            questionnaire: Some(answered.clone()),
            dynamic_registration: true,
            legacy_pkce_optional: false,
            bound_grant: None,
        },
        App {
            client_id: "quiet-fitness".into(),
            name: "Quiet Fitness Tracker".into(),
            developer: "Quiet Apps LLC".into(),
            redirect_uris: vec![
                "quietfitness://oauth".into(),
                "http://127.0.0.1/callback".into(),
            ],
            auth: ClientAuth::Public,
            questionnaire: None,
            dynamic_registration: false,
            legacy_pkce_optional: false,
            bound_grant: None,
        },
        App {
            client_id: "client-py".into(),
            name: "SMART client-py example".into(),
            developer: "SMART Health IT".into(),
            redirect_uris: vec!["http://127.0.0.1/client-py/callback".into()],
            auth: ClientAuth::ConfidentialSymmetric {
                secret: "client-py-secret".into(),
            },
            questionnaire: Some(Questionnaire {
                funding: "Open-source example, no funding".into(),
                shares_data: Some("Nobody".into()),
                ..answered
            }),
            dynamic_registration: false,
            legacy_pkce_optional: true,
            bound_grant: None,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_may_use_any_port() {
        let app = &demo_apps()[0];
        assert!(app.allows_redirect("http://127.0.0.1:53122/callback"));
        assert!(app.allows_redirect("chartlink-demo://callback"));
        assert!(!app.allows_redirect("chartlink-demo://callback/extra"));
        assert!(!app.allows_redirect("http://127.0.0.1:53122/other"));
        assert!(
            !app.allows_redirect("http://localhost:53122/callback"),
            "only loopback IP literals"
        );
        assert!(!app.allows_redirect("https://127.0.0.1:53122/callback"));
        assert!(!app.allows_redirect("http://evil.example/callback"));
    }
}
