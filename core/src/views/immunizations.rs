//! Vaccinations (Immunization).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// A vaccination given (or recorded as not given: see `status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Immunization {
    pub id: String,
    pub source: Option<String>,
    pub vaccine: String,
    pub date: Option<FhirDate>,
    /// "completed", "not-done" or "entered-in-error".
    pub status: String,
    pub lot: Option<String>,
}

/// An immunization, dated from occurrenceDateTime or occurrenceString (when that holds a date).
pub fn immunization(r: &Value) -> Option<Immunization> {
    let id = resource_id(r, "Immunization")?;
    Some(Immunization {
        id,
        source: None,
        vaccine: concept_name(&r["vaccineCode"]).unwrap_or_else(|| "Unnamed vaccine".into()),
        date: first_date(&[&r["occurrenceDateTime"], &r["occurrenceString"], &r["date"]]),
        status: status(r),
        lot: string(&r["lotNumber"]),
    })
}

super::view!(Immunization, ["Immunization"], immunization, date);

impl Line for Immunization {
    fn line(&self) -> String {
        format!("{} {}", full_date(self.date.as_ref()), self.vaccine)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    #[test]
    fn immunizations() {
        let r = json!({"resourceType": "Immunization", "id": "i", "status": "completed",
            "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "140"}]},
            "occurrenceDateTime": "2023-10-02T10:00:00-05:00", "lotNumber": "AB1234"});
        let i = immunization(&r).unwrap();
        assert_eq!(i.vaccine, "140 (CVX)");
        assert_eq!(
            (i.date, i.lot.as_deref()),
            (Some(d("2023-10-02T10:00:00-05:00")), Some("AB1234"))
        );
        let string = json!({"resourceType": "Immunization", "id": "s", "vaccineCode": {"text": "Tetanus"},
            "occurrenceString": "2019-05"});
        assert_eq!(immunization(&string).unwrap().date, Some(d("2019-05")));
        let vague =
            json!({"resourceType": "Immunization", "id": "v", "occurrenceString": "as a child"});
        assert_eq!(immunization(&vague).unwrap().date, None);
    }
}
