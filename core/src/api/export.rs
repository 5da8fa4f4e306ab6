//! The active patient's record as FHIR, for what the views do not show and for taking it elsewhere: one stored
//! record by type and id (a "what's new" row opens its record), and the whole record, across the patient's
//! providers, as a FHIR Bundle (`type` collection) or as NDJSON (one resource a line, FHIR Bulk Data's format).

use serde_json::json;

use crate::*;

/// The form of an export ([`ChartLink::export`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One FHIR Bundle of type `collection`, each entry with the resource's `fullUrl` at its provider.
    Bundle,
    /// Newline-delimited JSON: one resource a line (FHIR Bulk Data), the `Patient` first.
    Ndjson,
}

/// Every type an export holds: the patient, what sync searches, and the doctors, places and medicines the records
/// name (so a prescription's drug and a visit's doctor travel with them).
fn exported_types() -> Vec<&'static str> {
    let mut types = vec!["Patient"];
    for ty in sync::searched_types().chain(views::REFERENCED_TYPES) {
        if !types.contains(&ty) {
            types.push(ty);
        }
    }
    types
}

/// Whether `s` is a FHIR resource type name (`[A-Z][A-Za-z]{0,63}`) and `id` a FHIR id (`[A-Za-z0-9.-]{1,64}`).
pub(super) fn valid_reference(ty: &str, id: &str) -> bool {
    let ty_ok = ty.len() <= 64
        && ty.starts_with(|c: char| c.is_ascii_uppercase())
        && ty.chars().all(|c| c.is_ascii_alphabetic());
    let id_ok = (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    ty_ok && id_ok
}

impl ChartLink {
    /// One stored record of the active patient, as the FHIR JSON the provider sent (decrypted; keys in sorted
    /// order), looked up across the patient's providers. `None` when none of them holds it.
    ///
    /// Errors: [`Error::InvalidInput`] for a malformed type or id, or no active patient; [`Error::Locked`].
    pub fn record_json(&self, resource_type: &str, id: &str) -> Result<Option<String>> {
        if !valid_reference(resource_type, id) {
            return Err(Error::InvalidInput(
                "not a FHIR resource type and id (e.g. Observation, lab-1)".into(),
            ));
        }
        for (account, keys, _) in self.active_accounts()? {
            if let Some(r) = self
                .store
                .get(&keys, &account, resource_type, id)
                .map_err(storage)?
            {
                return serde_json::to_string(&r).map(Some).map_err(|e| {
                    Error::storage(
                        StorageKind::Other,
                        format!("a stored record does not serialise: {e}"),
                    )
                });
            }
        }
        Ok(None)
    }

    /// The active patient's whole record, from every provider it was linked at, as one FHIR Bundle (type
    /// `collection`) or as NDJSON. Each resource appears once per provider that sent it; a Bundle entry's
    /// `fullUrl` says which (`{fhir base}/{type}/{id}`). Holds health information: the host decides where it goes.
    ///
    /// Errors: [`Error::InvalidInput`] when no patient is active; [`Error::Locked`]; [`Error::Storage`].
    pub fn export(&self, format: ExportFormat) -> Result<String> {
        let accounts = self.active_accounts()?;
        let mut out = String::new();
        let mut entries = Vec::new();
        for ty in exported_types() {
            for (account, keys, base) in &accounts {
                for r in self.store.of_type(keys, account, ty).map_err(storage)? {
                    match format {
                        ExportFormat::Ndjson => {
                            out.push_str(&serde_json::to_string(&r).map_err(|e| {
                                Error::storage(
                                    StorageKind::Other,
                                    format!("a stored record does not serialise: {e}"),
                                )
                            })?);
                            out.push('\n');
                        }
                        ExportFormat::Bundle => {
                            let full_url = r["id"]
                                .as_str()
                                .map(|id| format!("{}/{ty}/{id}", base.trim_end_matches('/')));
                            entries.push(json!({"fullUrl": full_url, "resource": r}));
                        }
                    }
                }
            }
        }
        if format == ExportFormat::Bundle {
            // An instant (FHIR `instant`, UTC): the date from core's own calendar, the time of day by hand.
            let now_ms = self.host.clock.now_unix_ms();
            let secs = now_ms.div_euclid(1000).rem_euclid(86_400);
            let timestamp = format!(
                "{}T{:02}:{:02}:{:02}Z",
                context::date_from_unix_days(now_ms.div_euclid(86_400_000)),
                secs / 3600,
                secs / 60 % 60,
                secs % 60
            );
            let bundle = json!({
                "resourceType": "Bundle",
                "type": "collection",
                "timestamp": timestamp,
                "total": entries.len(),
                "entry": entries,
            });
            out = serde_json::to_string(&bundle).map_err(|e| {
                Error::storage(
                    StorageKind::Other,
                    format!("the export does not serialise: {e}"),
                )
            })?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::valid_reference;

    #[test]
    fn only_fhir_types_and_ids_are_looked_up() {
        assert!(valid_reference("Observation", "lab-1.2"));
        for (ty, id) in [
            ("observation", "1"),
            ("Observation", ""),
            ("Observation", "../x"),
            ("Observation", "a b"),
            ("Obs3rvation", "1"),
            ("Observation", &"x".repeat(65)),
        ] {
            assert!(!valid_reference(ty, id), "{ty} {id}");
        }
    }
}
