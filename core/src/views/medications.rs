//! Prescriptions (MedicationRequest), with the dosage as written or rendered from its structure.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// A prescription (MedicationRequest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Medication {
    pub id: String,
    pub source: Option<String>,
    pub name: String,
    /// The dosage instructions as written, else a rendering of the structured dose and timing.
    pub dosage: Option<String>,
    pub status: String,
    pub prescriber: Option<String>,
    pub authored: Option<FhirDate>,
    /// The end of the period the order covers (timing bounds, else the dispense validity). For an active order
    /// this may be in the future: it is when the order runs out, not when the patient stopped.
    pub ended: Option<FhirDate>,
    /// Why it was prescribed: the reasonCode names and the reasonReference names (a referenced Condition that the
    /// server did not name is named by the read path from the provider's problem list), without duplicates.
    pub reason: Vec<String>,
    /// The Conditions given as the reason (reasonReference), by id: the problem to open.
    pub reason_ids: Vec<String>,
}

/// A medication from a MedicationRequest: the name from medicationCodeableConcept, medicationReference.display
/// or a contained Medication.
pub fn medication(r: &Value) -> Option<Medication> {
    let id = resource_id(r, "MedicationRequest")?;
    let bounds = &first(&r["dosageInstruction"])["timing"]["repeat"]["boundsPeriod"];
    let mut reason = concept_names(&r["reasonCode"]);
    let references = list(&r["reasonReference"]);
    for name in references.iter().filter_map(display) {
        if !reason.contains(&name) {
            reason.push(name);
        }
    }
    Some(Medication {
        id,
        source: None,
        name: medication_name(r),
        dosage: dosage_text(&r["dosageInstruction"]),
        status: status(r),
        prescriber: display(&r["requester"]),
        authored: date(&r["authoredOn"]),
        ended: first_date(&[
            &bounds["end"],
            &r["dispenseRequest"]["validityPeriod"]["end"],
        ]),
        reason,
        reason_ids: references
            .iter()
            .filter_map(|x| reference_to(x, "Condition"))
            .collect(),
    })
}

impl super::View for Medication {
    const RESOURCE_TYPES: &'static [&'static str] = &["MedicationRequest"];
    /// The problem list, to name the reasons given only by reference (Synthea's, and many servers').
    const RELATED: &'static [&'static str] = &["Condition"];
    fn parse(resource: &Value) -> Option<Self> {
        medication(resource)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn date(&self) -> Option<&FhirDate> {
        self.authored.as_ref()
    }
    fn set_source(&mut self, source: &str) {
        self.source = Some(source.to_owned());
    }
    fn link(records: &mut [Self], related: &super::Related) {
        link_reasons(records, related.of("Condition"));
    }
}

/// Names the reasons of prescriptions that point to a Condition without naming it, from the same provider's
/// Conditions. A reason the prescription already names is not added twice.
pub fn link_reasons(medications: &mut [Medication], conditions: &[Value]) {
    if conditions.is_empty() {
        return;
    }
    let names: std::collections::HashMap<String, String> = conditions
        .iter()
        .filter_map(|c| {
            let id = resource_id(c, "Condition")?;
            Some((id, concept_name(&c["code"])?))
        })
        .collect();
    for m in medications {
        for id in &m.reason_ids {
            if let Some(name) = names.get(id).filter(|n| !m.reason.contains(n)) {
                m.reason.push(name.clone());
            }
        }
    }
}

/// The drug a MedicationRequest, MedicationDispense or MedicationStatement names: medicationCodeableConcept,
/// else medicationReference.display, else a contained Medication.
pub(super) fn medication_name(r: &Value) -> String {
    concept_name(&r["medicationCodeableConcept"])
        .or_else(|| display(&r["medicationReference"]))
        .or_else(|| contained_medication(r))
        .unwrap_or_else(|| "Unnamed medication".into())
}

/// The dosage instructions as written (every instruction's text), else the first one's structure rendered.
pub(super) fn dosage_text(instructions: &Value) -> Option<String> {
    let instructions = list(instructions);
    let texts: Vec<String> = instructions
        .iter()
        .filter_map(|d| string(&d["text"]).or_else(|| string(&d["patientInstruction"])))
        .collect();
    if texts.is_empty() {
        instructions.first().and_then(structured_dosage)
    } else {
        Some(texts.join("; "))
    }
}

fn contained_medication(r: &Value) -> Option<String> {
    let local = r["medicationReference"]["reference"]
        .as_str()?
        .strip_prefix('#')?;
    list(&r["contained"])
        .iter()
        .find(|c| c["resourceType"] == "Medication" && c["id"] == local)
        .and_then(|m| concept_name(&m["code"]))
}

/// "1 tablet, twice a day, as needed" from a dosage without text.
fn structured_dosage(dosage: &Value) -> Option<String> {
    let dose = quantity(&first(&dosage["doseAndRate"])["doseQuantity"]).map(|q| match q.unit {
        Some(unit) => format!("{} {unit}", q.value),
        None => q.value.to_string(),
    });
    let timing = timing_phrase(&dosage["timing"]["repeat"]);
    let as_needed = (dosage["asNeededBoolean"] == true).then(|| "as needed".to_owned());
    let parts: Vec<String> = [dose, timing, as_needed].into_iter().flatten().collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// "twice a day", "once every 2 weeks" from a Timing.repeat.
fn timing_phrase(repeat: &Value) -> Option<String> {
    let frequency = repeat["frequency"].as_u64().unwrap_or(1);
    let period = repeat["period"].as_f64()?;
    let unit = match repeat["periodUnit"].as_str()? {
        "s" => "second",
        "min" => "minute",
        "h" => "hour",
        "d" => "day",
        "wk" => "week",
        "mo" => "month",
        "a" => "year",
        _ => return None,
    };
    let times = match frequency {
        1 => "once".to_owned(),
        2 => "twice".to_owned(),
        n => format!("{n} times"),
    };
    Some(if (period - 1.0).abs() < f64::EPSILON {
        format!("{times} a {unit}")
    } else {
        format!("{times} every {period} {unit}s")
    })
}

impl Line for Medication {
    fn line(&self) -> String {
        let reason = if self.reason.is_empty() {
            String::new()
        } else {
            format!(" (for {})", self.reason.join(", "))
        };
        format!(
            "{} [{}] {}{reason}",
            self.name,
            self.status,
            opt(&self.dosage)
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
    fn medications() {
        let r = json!({
            "resourceType": "MedicationRequest", "id": "m", "status": "active",
            "medicationCodeableConcept": {"coding": [{"code": "860975", "display": "Metformin 500 MG Oral Tablet"}]},
            "requester": {"reference": "Practitioner/1", "display": "Dr. Anna Lee"},
            "authoredOn": "2024-01-10T09:00:00Z",
            "dosageInstruction": [{"text": "1 tablet twice daily with meals"}],
            "dispenseRequest": {"validityPeriod": {"start": "2024-01-10", "end": "2025-01-10"}},
        });
        let m = medication(&r).unwrap();
        assert_eq!(m.name, "Metformin 500 MG Oral Tablet");
        assert_eq!(m.dosage.as_deref(), Some("1 tablet twice daily with meals"));
        assert_eq!(m.prescriber.as_deref(), Some("Dr. Anna Lee"));
        assert_eq!(
            (m.authored, m.ended),
            (Some(d("2024-01-10T09:00:00Z")), Some(d("2025-01-10")))
        );
        let by_reference = json!({"resourceType": "MedicationRequest", "id": "r",
            "medicationReference": {"reference": "Medication/9", "display": "Lisinopril 10 mg"}});
        assert_eq!(medication(&by_reference).unwrap().name, "Lisinopril 10 mg");
        let contained = json!({"resourceType": "MedicationRequest", "id": "c",
            "contained": [{"resourceType": "Medication", "id": "med1", "code": {"text": "Albuterol inhaler"}}],
            "medicationReference": {"reference": "#med1"},
            "dosageInstruction": [{"doseAndRate": [{"doseQuantity": {"value": 2, "unit": "puffs"}}],
                "timing": {"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}}, "asNeededBoolean": true,
                "_text": {"extension": []}}]});
        let m = medication(&contained).unwrap();
        assert_eq!(m.name, "Albuterol inhaler");
        assert_eq!(
            m.dosage.as_deref(),
            Some("2 puffs, once every 4 hours, as needed")
        );
        assert_eq!(m.status, "unknown");
        let bare = medication(&json!({"resourceType": "MedicationRequest", "id": "b"})).unwrap();
        assert!(bare.reason.is_empty() && bare.reason_ids.is_empty());
        assert_eq!(
            (bare.name.as_str(), bare.dosage),
            ("Unnamed medication", None)
        );
    }

    /// The reason on a prescription: coded, named by reference, or (Synthea) a bare reference to a Condition that
    /// the read path names from the problem list.
    #[test]
    fn the_reason_for_a_prescription() {
        let r = json!({"resourceType": "MedicationRequest", "id": "m",
            "reasonCode": [{"coding": [{"code": "38341003", "display": "Hypertension"}]}, {"text": "Hypertension"}],
            "reasonReference": [{"reference": "Condition/c1", "display": "High blood pressure"},
                {"reference": "Condition/c2"}, {"reference": "urn:uuid:c3"}, {"reference": "Observation/o1"}]});
        let mut meds = vec![medication(&r).unwrap()];
        assert_eq!(meds[0].reason, ["Hypertension", "High blood pressure"]);
        assert_eq!(meds[0].reason_ids, ["c1", "c2", "c3"]);
        let conditions = [
            json!({"resourceType": "Condition", "id": "c1", "code": {"text": "Hypertension"}}),
            json!({"resourceType": "Condition", "id": "c2", "code": {"text": "Chronic kidney disease"}}),
            json!({"resourceType": "Condition", "id": "c3"}),
            json!({"resourceType": "Observation", "id": "c2", "code": {"text": "Not a condition"}}),
        ];
        link_reasons(&mut meds, &conditions);
        assert_eq!(
            meds[0].reason,
            [
                "Hypertension",
                "High blood pressure",
                "Chronic kidney disease"
            ]
        );
        // Wrong shapes give no reason; nothing panics.
        for odd in [
            json!(5),
            json!("Hypertension"),
            json!([null, 1, {"reference": 2}]),
            json!({"coding": "x"}),
        ] {
            let r = json!({"resourceType": "MedicationRequest", "id": "m", "reasonCode": odd.clone(),
                "reasonReference": odd});
            let mut m = vec![medication(&r).unwrap()];
            link_reasons(&mut m, &conditions);
            assert!(m[0].reason.iter().all(|x| !x.is_empty()));
        }
    }
}
