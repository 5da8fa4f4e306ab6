//! Whose record the reads show: the patients the user may see, and switching between them.

use crate::*;

impl ChartLink {
    pub(crate) fn today(&self) -> String {
        context::date_from_unix_days(self.host.clock.now_unix_ms().div_euclid(86_400_000))
    }

    /// Every patient the user has linked (themselves, children, adults under proxy), one per person.
    pub fn patients(&self) -> Result<Vec<PatientContext>> {
        self.guard()?;
        let today = self.today();
        let mut contexts = Vec::new();
        for a in self.accounts.list() {
            let keys = self.account_keys(&a.id)?;
            let patient = self
                .store
                .get(&keys, &a.id, "Patient", &a.patient_id)
                .map_err(storage)?;
            contexts.push(context::for_account(&a, patient.as_ref(), &today));
        }
        Ok(merge::apply(contexts, &self.merges()?))
    }

    /// The groups of accounts the user confirmed are one person.
    fn merges(&self) -> Result<Vec<Vec<String>>> {
        merge::load(self.host.secure_store.as_ref())
    }

    /// Patients linked at different providers who look like one person (a shared identifier, or the same name,
    /// birth date and sex), for the host to ask the user about. Nothing is merged until
    /// [`ChartLink::confirm_merge`].
    pub fn merge_suggestions(&self) -> Result<Vec<merge::MergeSuggestion>> {
        self.guard()?;
        let mut with_records = Vec::new();
        for p in self.patients()? {
            let mut resources = Vec::new();
            for id in &p.account_ids {
                let account = self.accounts.get(id)?;
                let keys = self.account_keys(id)?;
                if let Some(r) = self
                    .store
                    .get(&keys, id, "Patient", &account.patient_id)
                    .map_err(storage)?
                {
                    resources.push(r);
                }
            }
            with_records.push((p, resources));
        }
        Ok(merge::suggest(&with_records))
    }

    /// Shows the patients `context_ids` as one person from now on (the user confirmed it): one patient whose
    /// records keep their providers. Returns the merged patient.
    pub fn confirm_merge(&self, context_ids: &[String]) -> Result<PatientContext> {
        let patients = self.patients()?;
        let mut accounts = Vec::new();
        let mut relations = Vec::new();
        for id in context_ids {
            let p = patients
                .iter()
                .find(|p| &p.id == id || p.account_ids.contains(id))
                .ok_or_else(|| Error::InvalidInput("no such patient".into()))?;
            accounts.extend(p.account_ids.iter().cloned());
            relations.push(p.relation);
        }
        accounts.sort_unstable();
        accounts.dedup();
        if accounts.len() < 2 {
            return Err(Error::InvalidInput("a merge needs two patients".into()));
        }
        // Two records at one provider are two people (a provider keeps one record per patient), and so are the
        // user and someone they are proxy for: merging either would show one person's labs as the other's.
        let linked = self.accounts.list();
        let mut bases: Vec<&str> = linked
            .iter()
            .filter(|a| accounts.contains(&a.id))
            .map(|a| a.server.fhir_base.as_str().trim_end_matches('/'))
            .collect();
        let before = bases.len();
        bases.sort_unstable();
        bases.dedup();
        if bases.len() < before {
            return Err(Error::InvalidInput(
                "these are two records at the same provider, so two different people; they cannot be merged"
                    .into(),
            ));
        }
        if relations.windows(2).any(|w| w[0] != w[1]) {
            return Err(Error::InvalidInput(
                "these are you and someone you are proxy for (or two different relations): they cannot be merged"
                    .into(),
            ));
        }
        let mut groups = self.merges()?;
        merge::join(&mut groups, &accounts);
        merge::save(self.host.secure_store.as_ref(), &groups)?;
        self.patients()?
            .into_iter()
            .find(|p| p.account_ids.contains(&accounts[0]))
            .ok_or_else(|| Error::InvalidInput("no such patient".into()))
    }

    /// Undoes a merge: the patient's accounts are shown as separate patients again.
    pub fn split_patient(&self, context_id: &str) -> Result<()> {
        self.guard()?;
        let mut groups = self.merges()?;
        groups.retain(|g| !g.iter().any(|a| a == context_id));
        merge::save(self.host.secure_store.as_ref(), &groups)
    }

    /// The patient whose record the reads show.
    pub fn active_patient(&self) -> Result<Option<PatientContext>> {
        let id = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let patients = self.patients()?;
        Ok(id.and_then(|id| {
            patients
                .into_iter()
                .find(|p| p.id == id || p.account_ids.contains(&id))
        }))
    }

    /// Makes `context_id` the active patient: every read after it shows only that patient's record.
    pub fn switch_patient(&self, context_id: &str) -> Result<PatientContext> {
        let patients = self.patients()?;
        let ctx = patients
            .into_iter()
            .find(|p| p.id == context_id || p.account_ids.iter().any(|a| a == context_id))
            .ok_or_else(|| Error::InvalidInput("no such patient".into()))?;
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = Some(ctx.id.clone());
        Ok(ctx)
    }

    /// The active patient's accounts, with their keys and provider labels.
    pub(crate) fn active_accounts(&self) -> Result<Vec<(String, store::AccountKeys, String)>> {
        self.guard()?;
        let active = self
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::InvalidInput("no patient is active".into()))?;
        // The context's accounts: the active account plus others merged with it (same person, other providers).
        let today = self.today();
        let accounts = self.accounts.list();
        let groups = self.merges()?;
        let contexts: Vec<PatientContext> = merge::apply(
            accounts
                .iter()
                .map(|a| {
                    let patient = self.account_keys(&a.id).ok().and_then(|k| {
                        self.store
                            .get(&k, &a.id, "Patient", &a.patient_id)
                            .ok()
                            .flatten()
                    });
                    context::for_account(a, patient.as_ref(), &today)
                })
                .collect(),
            &groups,
        );
        let ctx = contexts
            .into_iter()
            .find(|c| c.id == active || c.account_ids.contains(&active))
            .ok_or_else(|| Error::InvalidInput("no patient is active".into()))?;
        ctx.account_ids
            .iter()
            .map(|id| {
                let label = accounts
                    .iter()
                    .find(|a| &a.id == id)
                    .map(|a| a.server.fhir_base.to_string())
                    .unwrap_or_default();
                Ok((id.clone(), self.account_keys(id)?, label))
            })
            .collect()
    }
}
