//! Server variations that conformant SMART servers show and the sandbox can imitate, for testing clients against
//! more than one server's habits (all off by default): an authorization server that names itself apart from the
//! FHIR base and is not described in the SMART configuration, one that does not understand category-restricted
//! scopes, OpenID Connect's rule that `offline_access` needs `prompt=consent`, RFC 7009 variants, no SMART
//! configuration at all, and authorization requests by POST only.

/// What the sandbox does differently from its default behaviour. Set with [`crate::Admin::set_quirks`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Quirks {
    /// The authorization server is its own OpenID issuer, `{base}/oauth2` (the `iss` of its redirects and
    /// id_tokens; its `/.well-known/openid-configuration` there), and the SMART configuration names neither
    /// `issuer` nor `jwks_uri` nor `sso-openid-connect` (allowed without that capability).
    pub separate_issuer: bool,
    /// Category-restricted scopes (`patient/Observation.rs?category=…`) are not listed in `scopes_supported` and
    /// are dropped from every grant, as a server that does not understand them does.
    pub drop_granular_scopes: bool,
    /// Category-restricted scopes are listed but granted as their whole type (`patient/Observation.rs`).
    pub widen_granular_scopes: bool,
    /// OpenID Connect Core §11: a refresh token for `offline_access` only when the request carried
    /// `prompt=consent`.
    pub offline_needs_prompt_consent: bool,
    /// RFC 7009 §2.2.1: the revocation endpoint answers `400 unsupported_token_type` for access tokens.
    pub revoke_refresh_tokens_only: bool,
    /// The SMART configuration names no revocation endpoint (and the endpoint answers 404).
    pub no_revocation_endpoint: bool,
    /// `/.well-known/smart-configuration` answers 404 (and so does the CapabilityStatement's OAuth extension).
    pub no_smart_configuration: bool,
    /// Authorization requests only by POST (`authorize-post`); a GET answers with an error page.
    pub authorize_post_only: bool,
    /// A refresh widens the grant to this scope and answers it (seen: linked for Patient + Condition only, a
    /// refresh answering `patient/*.rs user/*.rs`): the FHIR API then serves everything the wider scope covers.
    pub widen_scope_on_refresh: Option<String>,
    /// Scopes left out of `scopes_supported` (a Keycloak realm without a `fhirUser` client scope).
    pub unlisted_scopes: Vec<String>,
    /// An authorization request naming one of `unlisted_scopes` is refused with `invalid_scope`, as Keycloak
    /// refuses a scope it does not know.
    pub refuse_unlisted_scopes: bool,
    /// The SMART configuration carries no `scopes_supported` at all.
    pub no_scopes_supported: bool,
}

impl Quirks {
    /// Whether the server knows category-restricted scopes.
    pub fn granular(&self) -> bool {
        !(self.drop_granular_scopes || self.widen_granular_scopes)
    }

    /// The issuer the authorization server names itself by.
    pub fn issuer(&self, shared: &crate::Shared) -> String {
        if self.separate_issuer {
            format!("{}/oauth2", shared.base_url)
        } else {
            shared.fhir_base()
        }
    }
}
