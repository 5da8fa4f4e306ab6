//! Whose data it is: the patient-compartment check, and the consent withdrawn since the last full pass.

use super::plan::covered;
use super::*;

/// On a full pass: removes the data of every query the grant no longer covers (a category the patient unticked,
/// a type no longer granted). The server's CapabilityStatement plays no part: a server that stops listing a type
/// is not the patient withdrawing consent.
pub(super) fn withdraw_ungranted(
    ctx: &SyncContext<'_>,
    account: &LinkedAccount,
    keys: Writer<'_>,
    report: &mut SyncReport,
) -> Result<()> {
    for key in ctx.store.query_keys(&account.id).map_err(Error::from)? {
        if covered(account, &key) {
            continue;
        }
        let gone = ctx
            .store
            .write(|tx| keys.forget_query(tx, &account.id, &key))
            .map_err(Error::from)?;
        for ty in gone {
            report.per_type.entry(ty).or_default().deleted += 1;
        }
    }
    Ok(())
}

/// The reference fields that place a resource in a patient's compartment.
pub(super) const PATIENT_FIELDS: [&str; 3] = ["subject", "patient", "beneficiary"];

/// Whether `r` names the linked patient (`Patient/{id}`, relative or under the server's base) in one of its
/// patient references. A resource that names no patient at all cannot be shown to be this patient's.
pub fn belongs_to(r: &Value, patient_id: &str, base: &str) -> bool {
    let names = |v: &Value| {
        v["reference"]
            .as_str()
            .is_some_and(|reference| names_patient(reference, patient_id, base))
    };
    if r["resourceType"] == "Patient" {
        return r["id"].as_str() == Some(patient_id);
    }
    if PATIENT_FIELDS.iter().any(|f| names(&r[*f])) {
        return true;
    }
    r["participant"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| names(&p["actor"]))
}

pub(super) fn names_patient(reference: &str, patient_id: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    let rel = match reference.strip_prefix(base) {
        Some(rest) if rest.starts_with('/') => &rest[1..],
        Some(_) => return false,
        None if reference.contains("://") => return false,
        None => reference,
    };
    let rel = rel.split("/_history/").next().unwrap_or(rel);
    rel.strip_prefix("Patient/") == Some(patient_id)
}
