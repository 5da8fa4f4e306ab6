//! Linking, accounts and sync: the operations that talk to a provider.

use crate::*;

impl ChartLink {
    /// Discovers a provider's SMART endpoints.
    pub async fn discover(&self, fhir_base: &str) -> Result<ServerInfo> {
        Ok(discovery::discover(&self.http, fhir_base).await?)
    }

    /// Starts linking: returns the portal URL to open. Finish with [`ChartLink::complete_link`].
    pub async fn begin_link(&self, fhir_base: &str) -> Result<AuthorizationRequest> {
        self.guard()?;
        self.linker.begin(fhir_base, None).await
    }

    /// Like [`ChartLink::begin_link`] with another redirect URI (a desktop loopback port).
    pub async fn begin_link_with_redirect(
        &self,
        fhir_base: &str,
        redirect_uri: &str,
    ) -> Result<AuthorizationRequest> {
        self.guard()?;
        self.linker.begin(fhir_base, Some(redirect_uri)).await
    }

    /// Finishes linking with the URL the portal redirected to (from the app's deep-link handler). The new account
    /// becomes the active patient when none was.
    pub async fn complete_link(&self, redirect_url: &str) -> Result<LinkedAccount> {
        self.complete_link_detailed(redirect_url)
            .await
            .map_err(|f| f.error)
    }

    /// [`ChartLink::complete_link`], saying whether an `invalid_scope` refusal left a narrower request to retry once
    /// (which the next [`ChartLink::begin_link`] at that server asks: a host driving its own browser retries by
    /// starting again; [`ChartLink::link`] does it by itself).
    async fn complete_link_detailed(
        &self,
        redirect_url: &str,
    ) -> std::result::Result<LinkedAccount, link::LinkFailure> {
        self.guard()?;
        let account = self
            .linker
            .complete_detailed(redirect_url, &self.accounts)
            .await?;
        // Its key pair now, so that a background sync can run before the first unlocked one.
        if let Ok(keys) = self.account_keys(&account.id) {
            self.prepare_account(&keys, &account.id);
        }
        let not_granted = account.not_granted();
        if !not_granted.is_empty() || !account.can_renew {
            self.emit(Event::LinkLimited {
                account_id: account.id.clone(),
                not_granted,
                can_renew: account.can_renew,
            });
        }
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if active.is_none() {
            *active = Some(account.id.clone());
        }
        Ok(account)
    }

    /// Links in one call through the host's [`AuthBrowser`]. When the server refuses the scope (`invalid_scope`, at
    /// the redirect or the token endpoint), the browser opens once more with a narrower request (only the scopes
    /// the server lists, or the minimal patient request when it lists none: see
    /// [`scopes::retry_after_invalid_scope`]); what that leaves out is reported as not granted.
    pub async fn link(&self, fhir_base: &str) -> Result<LinkedAccount> {
        let browser = self
            .host
            .browser
            .clone()
            .ok_or_else(|| Error::InvalidInput("no AuthBrowser was provided".into()))?;
        let mut retried = false;
        loop {
            let req = self.begin_link(fhir_base).await?;
            let redirect = self.browse(browser.as_ref(), &req).await?;
            match self.complete_link_detailed(&redirect).await {
                Ok(account) => return Ok(account),
                Err(f) if f.retry_narrowed && !retried => retried = true,
                Err(f) => return Err(f.error),
            }
        }
    }

    async fn browse(
        &self,
        browser: &dyn AuthBrowser,
        req: &AuthorizationRequest,
    ) -> Result<String> {
        match browser
            .authorize(req.url.to_string(), req.redirect_uri.clone())
            .await
        {
            Ok(redirect) => Ok(redirect),
            Err(BrowserError::Cancelled) => {
                self.linker.cancel_all()?;
                Err(Error::Cancelled)
            }
            Err(BrowserError::Failed(m)) => {
                self.linker.cancel_all()?;
                Err(Error::authorization(
                    AuthorizationReason::BrowserFailed,
                    format!("the browser failed: {m}"),
                ))
            }
        }
    }

    /// Abandons any link in progress.
    pub fn cancel_link(&self) -> Result<()> {
        self.linker.cancel_all()
    }

    /// The linked accounts.
    pub fn accounts(&self) -> Result<Vec<LinkedAccount>> {
        self.guard()?;
        Ok(self.accounts.list())
    }

    /// A valid access token for an account (refreshing it when needed; concurrent callers share one refresh).
    pub async fn access_token(&self, account_id: &str) -> Result<Secret> {
        self.guard()?;
        self.accounts.access_token(account_id).await
    }

    /// Registers this device with the provider so access continues through the jwt-bearer grant.
    pub async fn register_device(&self, account_id: &str) -> Result<String> {
        self.guard()?;
        self.accounts
            .register_device(account_id, &self.config.app_name)
            .await
    }

    /// Revokes the account's tokens at the provider and removes every local trace of it (tokens and records).
    pub async fn unlink(&self, account_id: &str) -> Result<UnlinkOutcome> {
        self.guard()?;
        let outcome = self.accounts.unlink(account_id).await?;
        self.purge_account(account_id)?;
        self.forget_active(account_id);
        Ok(outcome)
    }

    /// Deletes every local trace of an account's record: its rows, and the secret its locked syncs were
    /// authenticated with.
    pub(crate) fn purge_account(&self, account_id: &str) -> Result<()> {
        self.store.purge(account_id).map_err(storage)?;
        self.host.secure_store.delete(&format!(
            "{}{account_id}",
            sync::locked::INBOX_SECRET_PREFIX
        ))?;
        Ok(())
    }

    pub(crate) fn forget_active(&self, account_id: &str) {
        let mut active = self.active.lock().unwrap_or_else(|e| e.into_inner());
        if active.as_deref() == Some(account_id) {
            *active = None;
        }
    }

    // ---- sync ----

    /// Syncs one account's record into the encrypted store.
    pub async fn sync(&self, account_id: &str) -> Result<SyncReport> {
        self.sync_with(account_id, &SyncOptions::default(), &mut |_| {})
            .await
    }

    /// Syncs with options and a progress callback (progress also goes to the listener). The idle lock stops a sync
    /// cleanly between requests: it answers [`Error::Locked`] and resumes on the next run after unlock.
    pub async fn sync_with(
        &self,
        account_id: &str,
        options: &SyncOptions,
        progress: &mut (dyn FnMut(SyncProgress) + Send),
    ) -> Result<SyncReport> {
        self.guard()?;
        if self.background.holds_tokens() {
            // A background run that started locked is stopping (it stops at unlock) and then applies what it
            // wrote: wait for it, so that its older copies never land after this sync's newer ones.
            drop(self.background.wait_for_run().await);
            self.guard()?;
        }
        let account = self.accounts.get(account_id)?;
        match account.status {
            AccountStatus::Active => {}
            AccountStatus::Revoked => return Err(Error::AccessRevoked),
            AccountStatus::RelinkNeeded => return Err(Error::RelinkNeeded),
        }
        let keys = self.account_keys(account_id)?;
        // What locked syncs wrote comes first (unlock applies it; this catches an unlock whose apply failed).
        self.prepare_account(&keys, account_id);
        let ctx = sync::SyncContext {
            http: &self.http,
            accounts: &self.accounts,
            store: &self.store,
            now_ms: self.host.clock.now_unix_ms(),
        };
        let cancelled = || {
            self.tick();
            self.idle.locked().is_some()
        };
        let mut forward = |p: SyncProgress| {
            self.emit(Event::SyncProgress(p.clone()));
            progress(p);
        };
        let result = sync::sync_account(
            &ctx,
            &account,
            sync::Writer::Keys(&keys),
            options,
            &mut forward,
            &cancelled,
        )
        .await;
        drop(keys);
        match result {
            Ok(report) => {
                self.emit(Event::SyncFinished(report.clone()));
                Ok(report)
            }
            // Only the authorization server's own answer gets here (see `account`): the host's policy decides.
            Err(Error::AccessRevoked) => {
                self.revoked(account_id).await?;
                Err(Error::AccessRevoked)
            }
            Err(Error::RelinkNeeded) => {
                self.emit(Event::RelinkNeeded {
                    account_id: account_id.to_owned(),
                });
                Err(Error::RelinkNeeded)
            }
            Err(e) => Err(e),
        }
    }

    /// Syncs every account, one result each: an account that is revoked or needs linking again answers that
    /// error (it is not skipped silently).
    pub async fn sync_all(&self) -> Result<Vec<(String, Result<SyncReport>)>> {
        let mut out = Vec::new();
        for a in self.accounts()? {
            let r = self.sync(&a.id).await;
            out.push((a.id, r));
        }
        Ok(out)
    }

    pub(crate) async fn revoked(&self, account_id: &str) -> Result<()> {
        self.accounts.mark_revoked(account_id).await?;
        if self.config.revocation == RevocationPolicy::PurgeNow {
            self.purge_account(account_id)?;
        }
        self.emit(Event::AccessRevoked {
            account_id: account_id.to_owned(),
        });
        Ok(())
    }

    /// After a revocation kept read-only: the user has seen it; remove the record and the account.
    pub async fn confirm_revoked(&self, account_id: &str) -> Result<()> {
        self.guard()?;
        self.purge_account(account_id)?;
        self.accounts.forget(account_id)?;
        self.forget_active(account_id);
        Ok(())
    }

    // ---- patients ----
}
