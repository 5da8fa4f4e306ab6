//! What a sync brought, record by record: the "what's new" list (kind, id, display name, date), for locked and
//! unlocked syncs alike. Only shown after unlock; a locked sync reports counts (see `crate::background`).

use serde_json::Value;

use super::RecordKind;
use crate::account::LinkedAccount;
use crate::views;

/// One record a sync brought (after unlock): what the "what's new" list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    pub account_id: String,
    pub provider: String,
    pub kind: RecordKind,
    pub resource_type: String,
    pub id: String,
    pub display_name: String,
    /// The record's clinical date, when it has one.
    pub date: Option<views::FhirDate>,
    /// Changed (an edit of a record seen before) rather than new.
    pub changed: bool,
    /// When the sync that brought it ran (Unix ms).
    pub synced_at_ms: i64,
}

/// The "what's new" entry of a stored resource.
pub(crate) fn new_record(
    account: &LinkedAccount,
    query: &str,
    r: &Value,
    changed: bool,
    synced_at_ms: i64,
) -> NewRecord {
    let kind = RecordKind::of_resource(query, r);
    NewRecord {
        account_id: account.id.clone(),
        provider: account
            .server
            .fhir_base
            .host_str()
            .unwrap_or_default()
            .to_owned(),
        kind,
        resource_type: r["resourceType"].as_str().unwrap_or_default().to_owned(),
        id: r["id"].as_str().unwrap_or_default().to_owned(),
        display_name: display_name(r, kind),
        date: clinical_date(r),
        changed,
        synced_at_ms,
    }
}

/// A record's name as lists show it, read one way for every kind.
fn display_name(r: &Value, kind: RecordKind) -> String {
    let concepts = [
        "code",
        "vaccineCode",
        "medicationCodeableConcept",
        "type",
        "serviceType",
        "class",
        "category",
    ];
    concepts
        .iter()
        .find_map(|f| {
            let v = &r[*f];
            views::concept_name(if v.is_array() { views::first(v) } else { v })
        })
        .or_else(|| {
            ["title", "description", "name", "questionnaire"]
                .iter()
                .find_map(|f| views::string(&r[*f]))
        })
        .or_else(|| views::string(&r["medicationReference"]["display"]))
        .unwrap_or_else(|| format!("{kind:?}"))
}

/// A record's clinical date: the first of the dates its type carries.
fn clinical_date(r: &Value) -> Option<views::FhirDate> {
    views::first_date(&[
        &r["effectiveDateTime"],
        &r["effectivePeriod"]["start"],
        &r["issued"],
        &r["performedDateTime"],
        &r["performedPeriod"]["start"],
        &r["occurrenceDateTime"],
        &r["authoredOn"],
        &r["onsetDateTime"],
        &r["recordedDate"],
        &r["period"]["start"],
        &r["start"],
        &r["date"],
        &r["created"],
        &r["whenHandedOver"],
        &r["dateAsserted"],
        &r["authored"],
        &r["started"],
        &r["billablePeriod"]["start"],
    ])
}
