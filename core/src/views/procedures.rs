//! Procedures done to or for the patient (Procedure): surgery, screening, counselling, therapy.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// A procedure (Procedure).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Procedure {
    pub id: String,
    pub source: Option<String>,
    /// The procedure's name (its code), else "Unnamed procedure".
    pub name: String,
    /// Every coding with a code (typically SNOMED CT, CPT).
    pub codes: Vec<CodeRef>,
    /// "completed", "in-progress", "not-done", ...
    pub status: String,
    /// performedDateTime, else performedPeriod.start, else performedString when it holds a date.
    pub performed: Option<FhirDate>,
    /// The end of performedPeriod.
    pub performed_end: Option<FhirDate>,
    /// The first performer, by the name the server gave (references are not resolved here).
    pub performer: Option<String>,
    pub location: Option<String>,
    pub reason: Option<String>,
    pub body_site: Option<String>,
    pub outcome: Option<String>,
    /// The Encounter it was part of.
    pub visit_id: Option<String>,
}

/// A procedure from a Procedure.
pub fn procedure(r: &Value) -> Option<Procedure> {
    let id = resource_id(r, "Procedure")?;
    let (start, end) = period(&r["performedPeriod"]);
    Some(Procedure {
        id,
        source: None,
        name: concept_name(&r["code"]).unwrap_or_else(|| "Unnamed procedure".into()),
        codes: codings(&r["code"])
            .into_iter()
            .filter(|c| c.code.is_some())
            .collect(),
        status: status(r),
        performed: date(&r["performedDateTime"])
            .or(start)
            .or_else(|| date(&r["performedString"])),
        performed_end: end,
        performer: list(&r["performer"])
            .iter()
            .find_map(|p| display(&p["actor"])),
        location: display(&r["location"]),
        reason: concept_names(&r["reasonCode"])
            .into_iter()
            .next()
            .or_else(|| list(&r["reasonReference"]).iter().find_map(display)),
        body_site: concept_names(&r["bodySite"]).into_iter().next(),
        outcome: concept_name(&r["outcome"]),
        visit_id: reference_to(&r["encounter"], "Encounter"),
    })
}

super::view!(Procedure, ["Procedure"], procedure, performed);

impl Line for Procedure {
    fn line(&self) -> String {
        dated(
            self.performed.as_ref(),
            &self.name,
            &self.status,
            opt(&self.reason),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    #[test]
    fn a_synthea_procedure() {
        let r = json!({"resourceType": "Procedure", "id": "pr", "status": "completed",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "430193006",
                "display": "Medication Reconciliation (procedure)"}], "text": "Medication Reconciliation"},
            "subject": {"reference": "Patient/p"}, "encounter": {"reference": "urn:uuid:e-1"},
            "performedPeriod": {"start": "2019-05-03T10:00:00-04:00", "end": "2019-05-03T10:15:00-04:00"},
            "performer": [{"actor": {"reference": "Practitioner/1"}}, {"actor": {"display": "Dr. Lee"}}],
            "reasonReference": [{"display": "Hypertension"}], "bodySite": [{"text": "Left arm"}]});
        let p = procedure(&r).unwrap();
        assert_eq!(p.name, "Medication Reconciliation");
        assert_eq!(p.codes[0].code.as_deref(), Some("430193006"));
        assert_eq!(
            (p.performed, p.performed_end),
            (
                Some(d("2019-05-03T10:00:00-04:00")),
                Some(d("2019-05-03T10:15:00-04:00"))
            )
        );
        assert_eq!(
            (
                p.performer.as_deref(),
                p.reason.as_deref(),
                p.body_site.as_deref()
            ),
            (Some("Dr. Lee"), Some("Hypertension"), Some("Left arm"))
        );
        assert_eq!(p.visit_id.as_deref(), Some("e-1"));
        let bare =
            procedure(&json!({"resourceType": "Procedure", "id": "b", "performedString": "2001"}))
                .unwrap();
        assert_eq!(
            (bare.name.as_str(), bare.performed),
            ("Unnamed procedure", Some(d("2001")))
        );
    }
}
