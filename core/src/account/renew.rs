//! Renewing access: the refresh and jwt-bearer grants, client assertions timed by the server's clock.

use super::*;

impl Accounts {
    /// Refreshes, applying the classification rules of this module to the account's status.
    ///
    /// One refresh per grant across processes: the refresh lock is taken first (two CLI runs, the app and its
    /// background job, an app and its extension share one rotating refresh token; a provider that sees a spent
    /// refresh token come back takes it for theft and ends the grant). Under the lock the entry is read again from
    /// the secure store: when another process renewed the tokens meanwhile, those are used and the spent refresh
    /// token is never sent.
    pub(super) async fn refresh_locked(&self, st: &mut Stored) -> Result<Secret> {
        let _held = super::refresh_lock::acquire(self.lock_dir.as_deref(), &st.account.id).await?;
        if let Some(now_stored) = self.stored(&st.account.id)?
            && (now_stored.tokens.access.expose() != st.tokens.access.expose()
                || now_stored.account.status != st.account.status)
        {
            // Another process renewed (or ended) this grant while we waited: take its result.
            st.tokens = now_stored.tokens;
            st.account = now_stored.account;
            self.meta()
                .insert(st.account.id.clone(), st.account.clone());
            super::usable(&st.account)?;
            let now = self.clock.now_unix_ms();
            let fresh = st
                .tokens
                .access_expires_at_ms
                .is_none_or(|exp| exp.saturating_sub(refresh_margin_ms(&st.tokens)) > now);
            if fresh {
                tracing::info!(target: "chartlink", "another process renewed access; using its tokens");
                return Ok(st.tokens.access.clone());
            }
        }
        let result = if let (Some(device), Some(key)) = (
            st.account.device_client_id.clone(),
            st.tokens.device_key.clone(),
        ) {
            self.jwt_bearer(&st.account, &device, &key).await
        } else if let Some(refresh) = st.tokens.refresh.clone() {
            self.refresh_grant(&st.account, &refresh).await
        } else {
            st.account.status = AccountStatus::RelinkNeeded;
            self.persist(st)?;
            return Err(Error::RelinkNeeded);
        };
        match result {
            Ok(answer) => {
                let now = self.clock.now_unix_ms();
                st.tokens.access = answer.access.clone();
                st.tokens.access_expires_at_ms = answer.expires_at_ms(now);
                st.tokens.access_issued_at_ms = Some(now);
                if let Some(r) = &answer.refresh {
                    // Rotation: the new refresh token replaces the spent one on disk before anyone uses it.
                    st.tokens.refresh = Some(r.clone());
                }
                if let Some(scope) = &answer.scope {
                    // Never wider than what the patient granted at link; narrower is taken.
                    let ceiling = match &st.account.linked_scope {
                        Some(raw) => GrantedScope::parse(raw),
                        None => st.account.granted.clone(),
                    };
                    let held = GrantedScope::parse(scope).within(&ceiling);
                    if held.raw != GrantedScope::parse(scope).raw {
                        tracing::warn!(target: "chartlink", "a refresh answered a scope wider than the patient granted; it is held to the grant");
                    }
                    st.account.granted = held;
                }
                // The new tokens stay in memory even if the secure store fails (the spent refresh token must not
                // be sent again); the failure is reported, and the tokens are saved again before their next use.
                if let Err(e) = self.persist(st) {
                    st.unsaved = true;
                    return Err(e);
                }
                Ok(st.tokens.access.clone())
            }
            Err(TokenError::GrantGone { .. }) => {
                st.account.status = AccountStatus::Revoked;
                self.persist(st)?;
                Err(Error::AccessRevoked)
            }
            Err(TokenError::Refused {
                code, description, ..
            }) => {
                tracing::warn!(target: "chartlink", "the provider refused to renew access ({code})");
                let _ = description;
                st.account.status = AccountStatus::RelinkNeeded;
                self.persist(st)?;
                Err(Error::RelinkNeeded)
            }
            Err(TokenError::UnsupportedTokenType(t)) => Err(Error::authorization(
                AuthorizationReason::InvalidAnswer,
                format!("the provider issued a {t} token, which this app cannot use"),
            )),
            Err(TokenError::Unavailable(f)) => Err(Error::Network(f)),
            Err(TokenError::Malformed(m)) => Err(Error::network(NetworkKind::ServerError, m)),
        }
    }

    pub(super) fn assertion(&self, token_url: &Url, client_id: &str) -> Result<Option<Secret>> {
        match &self.client_auth {
            ClientAuth::Public => Ok(None),
            ClientAuth::PrivateKeyJwt(signer) => {
                let now = self.server_now_secs(token_url);
                Ok(Some(jose::client_assertion(
                    signer.as_ref(),
                    client_id,
                    token_url.as_str(),
                    now,
                )?))
            }
        }
    }

    pub(super) fn server_now_secs(&self, url: &Url) -> i64 {
        self.server_clock
            .server_now_ms(url, self.clock.now_unix_ms())
            .div_euclid(1000)
    }

    /// A token request; its answer's `Date` updates the server clock.
    pub(super) async fn token_call(
        &self,
        url: &Url,
        form: &[(&str, &str)],
    ) -> std::result::Result<TokenAnswer, TokenError> {
        let result = token::request(&self.http, url, form).await;
        let date = match &result {
            Ok(a) => a.server_date_ms,
            Err(
                TokenError::GrantGone { server_date_ms, .. }
                | TokenError::Refused { server_date_ms, .. },
            ) => *server_date_ms,
            Err(_) => None,
        };
        self.server_clock
            .observe(url, date, self.clock.now_unix_ms());
        result
    }

    /// A request carrying a client assertion: refused with a skewed server clock, it is sent once more with an
    /// assertion timed by the server's clock (a phone whose clock is off is not a revoked grant).
    pub(crate) async fn assertion_call(
        &self,
        url: &Url,
        build: impl Fn(i64) -> Result<Vec<(String, Secret)>>,
    ) -> Result<std::result::Result<TokenAnswer, TokenError>> {
        let before = self.server_clock.skew_ms(url);
        let form = build(self.server_now_secs(url))?;
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
        let first = self.token_call(url, &pairs).await;
        let refused = matches!(&first, Err(TokenError::GrantGone { .. }))
            || matches!(&first, Err(TokenError::Refused { code, .. }) if code == "invalid_client");
        let after = self.server_clock.skew_ms(url);
        if refused && after.abs() > SKEW_RETRY_MS && after != before {
            tracing::info!(target: "chartlink", "retrying a client assertion with the server's clock");
            let form = build(self.server_now_secs(url))?;
            let pairs: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.expose())).collect();
            return Ok(self.token_call(url, &pairs).await);
        }
        Ok(first)
    }

    pub(super) async fn refresh_grant(
        &self,
        account: &LinkedAccount,
        refresh: &Secret,
    ) -> std::result::Result<TokenAnswer, TokenError> {
        let url = &account.server.token_endpoint;
        if let ClientAuth::PrivateKeyJwt(signer) = &self.client_auth {
            // A confidential client authenticates with its assertion and omits client_id (SMART client req. 72).
            let signer = signer.clone();
            let build = |now: i64| -> Result<Vec<(String, Secret)>> {
                let assertion =
                    jose::client_assertion(signer.as_ref(), &account.client_id, url.as_str(), now)?;
                Ok(vec![
                    ("grant_type".into(), Secret::new("refresh_token".to_owned())),
                    ("refresh_token".into(), refresh.clone()),
                    (
                        "client_assertion_type".into(),
                        Secret::new(CLIENT_ASSERTION_TYPE.to_owned()),
                    ),
                    ("client_assertion".into(), assertion),
                ])
            };
            return self
                .assertion_call(url, build)
                .await
                .unwrap_or_else(|e| Err(crate::token::unavailable(e.to_string())));
        }
        // A public client sends its client_id with the refresh (RFC 6749 §6, SMART client req. 54).
        self.token_call(
            url,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.expose()),
                ("client_id", account.client_id.as_str()),
            ],
        )
        .await
    }

    pub(super) async fn jwt_bearer(
        &self,
        account: &LinkedAccount,
        device_client: &str,
        key: &Secret,
    ) -> std::result::Result<TokenAnswer, TokenError> {
        let url = &account.server.token_endpoint;
        let signer = match SoftwareSigner::from_pkcs8(key.expose()) {
            Ok(s) => s,
            Err(_) => {
                return Err(TokenError::Refused {
                    code: "device_key_unreadable".into(),
                    description: None,
                    server_date_ms: None,
                });
            }
        };
        let build = |now: i64| -> Result<Vec<(String, Secret)>> {
            let assertion = jose::client_assertion(&signer, device_client, url.as_str(), now)?;
            Ok(vec![
                ("grant_type".into(), Secret::new(JWT_BEARER.to_owned())),
                ("assertion".into(), assertion),
            ])
        };
        self.assertion_call(url, build)
            .await
            .unwrap_or_else(|e| Err(crate::token::unavailable(e.to_string())))
    }
}

/// How long before expiry a token is renewed: a tenth of its lifetime, at most [`REFRESH_MARGIN_MS`].
pub(super) fn refresh_margin_ms(tokens: &Tokens) -> i64 {
    match (tokens.access_issued_at_ms, tokens.access_expires_at_ms) {
        (Some(issued), Some(exp)) => (exp.saturating_sub(issued) / 10).clamp(0, REFRESH_MARGIN_MS),
        _ => REFRESH_MARGIN_MS,
    }
}

/// Whether the grant can renew its access token (a refresh token, or a registered device key).
pub(super) fn can_renew(tokens: &Tokens) -> bool {
    tokens.refresh.is_some() || tokens.device_key.is_some()
}
