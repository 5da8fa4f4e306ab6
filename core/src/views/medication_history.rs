//! What was dispensed (MedicationDispense) and what the patient takes or took (MedicationStatement, which older
//! servers use instead of MedicationRequest). The drug name and the dosage are read as for prescriptions.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;
use super::medications::{dosage_text, medication_name};

/// A medication handed out by a pharmacy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MedicationDispense {
    pub id: String,
    pub source: Option<String>,
    pub name: String,
    /// "completed", "in-progress", "cancelled", ...
    pub status: String,
    /// The amount dispensed ("30 tablets").
    pub quantity: Option<String>,
    pub days_supply: Option<f64>,
    pub dosage: Option<String>,
    pub prepared: Option<FhirDate>,
    pub handed_over: Option<FhirDate>,
    /// The MedicationRequest it fills.
    pub prescription_id: Option<String>,
}

/// A dispense from a MedicationDispense.
pub fn medication_dispense(r: &Value) -> Option<MedicationDispense> {
    let id = resource_id(r, "MedicationDispense")?;
    Some(MedicationDispense {
        id,
        source: None,
        name: medication_name(r),
        status: status(r),
        quantity: quantity(&r["quantity"]).map(|q| quantity_text(&q)),
        days_supply: quantity(&r["daysSupply"]).map(|q| q.value),
        dosage: dosage_text(&r["dosageInstruction"]),
        prepared: date(&r["whenPrepared"]),
        handed_over: date(&r["whenHandedOver"]),
        prescription_id: list(&r["authorizingPrescription"])
            .iter()
            .find_map(|p| reference_to(p, "MedicationRequest")),
    })
}

impl super::View for MedicationDispense {
    const RESOURCE_TYPES: &'static [&'static str] = &["MedicationDispense"];
    fn parse(resource: &Value) -> Option<Self> {
        medication_dispense(resource)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn date(&self) -> Option<&FhirDate> {
        self.handed_over.as_ref().or(self.prepared.as_ref())
    }
    fn set_source(&mut self, source: &str) {
        self.source = Some(source.to_owned());
    }
}

/// A medication the patient takes, took or will take, as recorded (MedicationStatement).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MedicationStatement {
    pub id: String,
    pub source: Option<String>,
    pub name: String,
    /// "active", "completed", "stopped", "not-taken", ...
    pub status: String,
    pub dosage: Option<String>,
    /// effectiveDateTime, else effectivePeriod.start.
    pub taken: Option<FhirDate>,
    /// The end of effectivePeriod.
    pub ended: Option<FhirDate>,
    pub asserted: Option<FhirDate>,
    /// Who said so (the patient, a clinician), by the name the server gave.
    pub information_source: Option<String>,
    pub reason: Option<String>,
}

/// A statement from a MedicationStatement.
pub fn medication_statement(r: &Value) -> Option<MedicationStatement> {
    let id = resource_id(r, "MedicationStatement")?;
    let (start, end) = period(&r["effectivePeriod"]);
    Some(MedicationStatement {
        id,
        source: None,
        name: medication_name(r),
        status: status(r),
        dosage: dosage_text(&r["dosage"]),
        taken: date(&r["effectiveDateTime"]).or(start),
        ended: end,
        asserted: date(&r["dateAsserted"]),
        information_source: display(&r["informationSource"]),
        reason: concept_names(&r["reasonCode"]).into_iter().next(),
    })
}

impl super::View for MedicationStatement {
    const RESOURCE_TYPES: &'static [&'static str] = &["MedicationStatement"];
    fn parse(resource: &Value) -> Option<Self> {
        medication_statement(resource)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn date(&self) -> Option<&FhirDate> {
        self.taken.as_ref().or(self.asserted.as_ref())
    }
    fn set_source(&mut self, source: &str) {
        self.source = Some(source.to_owned());
    }
}

impl Line for MedicationDispense {
    fn line(&self) -> String {
        dated(
            self.handed_over.as_ref().or(self.prepared.as_ref()),
            &self.name,
            &self.status,
            opt(&self.quantity),
        )
    }
}

impl Line for MedicationStatement {
    fn line(&self) -> String {
        dated(
            self.taken.as_ref(),
            &self.name,
            &self.status,
            opt(&self.dosage),
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
    fn dispenses_and_statements() {
        let r = json!({"resourceType": "MedicationDispense", "id": "md", "status": "completed",
            "medicationCodeableConcept": {"text": "Metformin 500 mg"}, "quantity": {"value": 60, "unit": "tablets"},
            "daysSupply": {"value": 30}, "whenHandedOver": "2024-01-11",
            "authorizingPrescription": [{"reference": "MedicationRequest/m1"}],
            "dosageInstruction": [{"text": "1 tablet twice daily"}]});
        let m = medication_dispense(&r).unwrap();
        assert_eq!(
            (m.name.as_str(), m.quantity.as_deref(), m.days_supply),
            ("Metformin 500 mg", Some("60 tablets"), Some(30.0))
        );
        assert_eq!(
            (m.handed_over, m.prescription_id.as_deref()),
            (Some(d("2024-01-11")), Some("m1"))
        );
        let s = json!({"resourceType": "MedicationStatement", "id": "ms", "status": "active",
            "medicationReference": {"display": "Lisinopril 10 mg"}, "effectivePeriod": {"start": "2019", "end": "2020-06"},
            "dosage": [{"text": "once daily"}], "informationSource": {"display": "Maria Garcia"}});
        let s = medication_statement(&s).unwrap();
        assert_eq!(
            (s.name.as_str(), s.dosage.as_deref()),
            ("Lisinopril 10 mg", Some("once daily"))
        );
        assert_eq!((s.taken, s.ended), (Some(d("2019")), Some(d("2020-06"))));
    }
}
