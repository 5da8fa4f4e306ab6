//! Ending and extending a link: device registration, unlink with RFC 7009 revocation.

use super::*;

impl Accounts {
    /// Registers this device as a client of the provider (Epic-style dynamic registration with a device key) and
    /// switches the account to the jwt-bearer grant, so access continues without a refresh token.
    pub async fn register_device(&self, id: &str, client_name: &str) -> Result<String> {
        let slot = self.slot(id)?;
        let mut st = slot.state.lock().await;
        let endpoint = st
            .account
            .server
            .registration_endpoint
            .clone()
            .ok_or_else(|| {
                Error::InvalidInput("the provider does not offer dynamic registration".into())
            })?;
        let signer = SoftwareSigner::generate()?;
        let body = serde_json::json!({
            "software_id": st.account.client_id, "client_name": client_name,
            "jwks": {"keys": [signer.public_jwk()]},
            "token_endpoint_auth_method": "private_key_jwt", "grant_types": [JWT_BEARER],
        });
        let access = st.tokens.access.clone();
        let resp = self
            .http
            .post_json(&endpoint, &body, Some(&access), SMALL_BODY_LIMIT)
            .await?;
        if resp.status.as_u16() == 401 {
            return Err(Error::authorization(
                AuthorizationReason::Refused,
                "the provider refused the access token for registration".into(),
            ));
        }
        if !resp.status.is_success() {
            return Err(Error::authorization(
                AuthorizationReason::Refused,
                format!("registration refused (HTTP {})", resp.status.as_u16()),
            ));
        }
        let client_id = resp.json()?["client_id"]
            .as_str()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| {
                Error::authorization(
                    AuthorizationReason::InvalidAnswer,
                    "registration answer without client_id".into(),
                )
            })?
            .to_owned();
        st.account.device_client_id = Some(client_id.clone());
        st.account.can_renew = true;
        st.tokens.device_key = Some(signer.pkcs8_b64().clone());
        self.persist(&st)?;
        Ok(client_id)
    }

    /// Revokes the account's tokens at the provider (RFC 7009), then removes every local trace of it.
    pub async fn unlink(&self, id: &str) -> Result<UnlinkOutcome> {
        let slot = self.slot(id)?;
        let st = slot.state.lock().await;
        let revocation = match st.account.server.revocation_endpoint.clone() {
            None => Revocation::NoEndpoint,
            Some(url) => self.revoke_all(&st.account, &url, &st.tokens).await,
        };
        self.store.delete(&key(id))?;
        drop(st);
        self.slots().remove(id);
        self.meta().remove(id);
        Ok(UnlinkOutcome {
            revoked_at_provider: revocation == Revocation::Revoked,
            revocation,
        })
    }

    /// The refresh token first (revoking it ends the whole grant, RFC 7009 §2.1), then the access token. A
    /// provider that revokes only refresh tokens answers `unsupported_token_type` for the access token (§2.2.1):
    /// that is not a failure, the access token lapses at its expiry.
    pub(super) async fn revoke_all(
        &self,
        account: &LinkedAccount,
        url: &Url,
        tokens: &Tokens,
    ) -> Revocation {
        let mut grant_revoked = false;
        if let Some(r) = &tokens.refresh {
            match self.revoke(account, url, r, "refresh_token").await {
                RevokeAnswer::Revoked => grant_revoked = true,
                RevokeAnswer::Unreachable => return Revocation::Unreachable,
                // A refresh token a server will not revoke is a refusal.
                RevokeAnswer::UnsupportedTokenType | RevokeAnswer::Refused => {
                    return Revocation::Refused;
                }
            }
        }
        match self
            .revoke(account, url, &tokens.access, "access_token")
            .await
        {
            RevokeAnswer::Revoked => Revocation::Revoked,
            _ if grant_revoked => Revocation::Revoked,
            RevokeAnswer::UnsupportedTokenType => Revocation::AccessTokenLapses,
            RevokeAnswer::Unreachable => Revocation::Unreachable,
            RevokeAnswer::Refused => Revocation::Refused,
        }
    }

    /// RFC 7009 revocation: a form POST with the token, its type hint and the client's authentication. (The oauth2
    /// crate's revocation refuses plain-HTTP loopback servers, which local development needs; discovery already
    /// holds every endpoint to HTTPS with that one exception.)
    pub(super) async fn revoke(
        &self,
        account: &LinkedAccount,
        url: &Url,
        token: &Secret,
        hint: &str,
    ) -> RevokeAnswer {
        let assertion = match self.assertion(&account.server.token_endpoint, &account.client_id) {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(target: "chartlink", "no client assertion for the revocation: {e}");
                return RevokeAnswer::Refused;
            }
        };
        let mut form = vec![("token", token.expose()), ("token_type_hint", hint)];
        if let Some(a) = &assertion {
            form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
            form.push(("client_assertion", a.expose()));
        } else {
            form.push(("client_id", account.client_id.as_str()));
        }
        let resp = match self
            .http
            .post_form(url, &form, None, SMALL_BODY_LIMIT)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(target: "chartlink", "revocation at the provider failed: {e}");
                return RevokeAnswer::Unreachable;
            }
        };
        let status = resp.status.as_u16();
        let code = resp
            .json()
            .ok()
            .and_then(|b| b["error"].as_str().map(token::sanitize_code));
        match (status, code.as_deref()) {
            (200, _) => RevokeAnswer::Revoked,
            (400, Some("unsupported_token_type")) => RevokeAnswer::UnsupportedTokenType,
            // RFC 7009 §2.2.1: 503 means "try again later"; any 5xx or 429 is the same here.
            (429 | 500..=599, _) => RevokeAnswer::Unreachable,
            (_, c) => {
                tracing::warn!(target: "chartlink", "the provider refused the revocation (HTTP {status}, {})", c.unwrap_or("no OAuth error"));
                RevokeAnswer::Refused
            }
        }
    }
}

/// One revocation request's answer.
pub(super) enum RevokeAnswer {
    Revoked,
    UnsupportedTokenType,
    Unreachable,
    Refused,
}
