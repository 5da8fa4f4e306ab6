//! The problem list and diagnoses (Condition).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// A problem or diagnosis (Condition).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub id: String,
    pub source: Option<String>,
    pub name: String,
    /// Every coding with a code (typically SNOMED CT and ICD-10-CM).
    pub codes: Vec<CodeRef>,
    pub clinical_status: Option<String>,
    pub onset: Option<FhirDate>,
    pub recorded: Option<FhirDate>,
    /// When it abated (resolved or in remission), if it did.
    pub resolved: Option<FhirDate>,
    /// The category codes ("problem-list-item", "encounter-diagnosis", ...).
    pub category: Vec<String>,
}

/// A problem from a Condition.
pub fn problem(r: &Value) -> Option<Problem> {
    let id = resource_id(r, "Condition")?;
    Some(Problem {
        id,
        source: None,
        name: concept_name(&r["code"]).unwrap_or_else(|| "Unnamed problem".into()),
        codes: codings(&r["code"])
            .into_iter()
            .filter(|c| c.code.is_some())
            .collect(),
        clinical_status: concept_code(&r["clinicalStatus"]),
        onset: first_date(&[
            &r["onsetDateTime"],
            &r["onsetPeriod"]["start"],
            &r["onsetString"],
        ]),
        recorded: first_date(&[&r["recordedDate"], &r["assertedDate"]]),
        resolved: first_date(&[&r["abatementDateTime"], &r["abatementPeriod"]["start"]]),
        category: category_codes(&r["category"]),
    })
}

super::view!(Problem, ["Condition"], problem, recorded, AsStored);

impl Line for Problem {
    fn line(&self) -> String {
        format!("{} [{}]", self.name, opt(&self.clinical_status))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    #[test]
    fn problems_keep_every_code() {
        let r = json!({
            "resourceType": "Condition", "id": "p",
            "clinicalStatus": {"coding": [{"code": "resolved"}]},
            "category": [{"coding": [{"code": "problem-list-item"}]}],
            "code": {"coding": [
                {"system": "http://snomed.info/sct", "code": "44054006", "display": "Diabetes mellitus type 2"},
                {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"},
                {"display": "no code"}]},
            "onsetDateTime": "2015", "recordedDate": "2015-03-04", "abatementDateTime": "2020-01",
        });
        let p = problem(&r).unwrap();
        assert_eq!(p.name, "Diabetes mellitus type 2");
        let codes: Vec<_> = p.codes.iter().map(|c| c.code.as_deref().unwrap()).collect();
        assert_eq!(codes, ["44054006", "E11.9"]);
        assert_eq!(p.clinical_status.as_deref(), Some("resolved"));
        assert_eq!(
            (p.onset, p.recorded, p.resolved),
            (Some(d("2015")), Some(d("2015-03-04")), Some(d("2020-01")))
        );
        assert_eq!(p.category, ["problem-list-item"]);
    }
}
