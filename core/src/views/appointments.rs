//! Appointments.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// A booked, past or cancelled appointment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Appointment {
    pub id: String,
    pub source: Option<String>,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    /// "booked", "fulfilled", "cancelled", ...
    pub status: String,
    pub description: Option<String>,
    /// The participants other than the patient (clinicians, locations), by display name.
    pub with_whom: Vec<String>,
    pub service: Option<String>,
}

/// An appointment.
pub fn appointment(r: &Value) -> Option<Appointment> {
    let id = resource_id(r, "Appointment")?;
    let with_whom = list(&r["participant"])
        .iter()
        .map(|p| &p["actor"])
        .filter(|actor| {
            let reference = actor["reference"].as_str().and_then(reference_parts);
            !matches!(reference, Some((Some("Patient"), _)))
        })
        .filter_map(|actor| string(&actor["display"]))
        .collect();
    Some(Appointment {
        id,
        source: None,
        start: date(&r["start"]),
        end: date(&r["end"]),
        status: status(r),
        description: string(&r["description"]),
        with_whom,
        service: list(&r["serviceType"])
            .iter()
            .find_map(concept_name)
            .or_else(|| concept_name(&r["appointmentType"])),
    })
}

super::view!(
    Appointment,
    ["Appointment"],
    appointment,
    start,
    SoonestFirst
);

impl Line for Appointment {
    fn line(&self) -> String {
        format!(
            "{} [{}] {}",
            full_date(self.start.as_ref()),
            self.status,
            opt(&self.description)
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
    fn appointments_list_who_but_the_patient() {
        let r = json!({
            "resourceType": "Appointment", "id": "ap", "status": "booked", "description": "Follow-up visit",
            "start": "2026-12-01T15:00:00Z", "end": "2026-12-01T15:30:00Z",
            "serviceType": [{"text": "Office Visit"}],
            "participant": [
                {"actor": {"reference": "Patient/p1", "display": "Maria Garcia"}},
                {"actor": {"reference": "Practitioner/d1", "display": "Dr. Anna Lee"}},
                {"actor": {"display": "Lakeview Clinic"}},
                {"actor": {"reference": "Practitioner/d2"}},
            ],
        });
        let a = appointment(&r).unwrap();
        assert_eq!(a.with_whom, ["Dr. Anna Lee", "Lakeview Clinic"]);
        assert_eq!(
            (
                a.status.as_str(),
                a.description.as_deref(),
                a.service.as_deref()
            ),
            ("booked", Some("Follow-up visit"), Some("Office Visit"))
        );
        assert_eq!(a.start, Some(d("2026-12-01T15:00:00Z")));
    }
}
