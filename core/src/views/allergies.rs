//! Allergies and intolerances (AllergyIntolerance).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// An allergy or intolerance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allergy {
    pub id: String,
    pub source: Option<String>,
    pub substance: String,
    /// The manifestations of every reaction, without duplicates.
    pub reactions: Vec<String>,
    /// The most severe reaction's severity ("mild", "moderate", "severe").
    pub severity: Option<String>,
    /// "low", "high" or "unable-to-assess".
    pub criticality: Option<String>,
    /// "active", "inactive" or "resolved".
    pub clinical_status: Option<String>,
    pub recorded: Option<FhirDate>,
}

/// An allergy from an AllergyIntolerance.
pub fn allergy(r: &Value) -> Option<Allergy> {
    let id = resource_id(r, "AllergyIntolerance")?;
    let reactions = list(&r["reaction"]);
    let mut manifestations = Vec::new();
    for name in reactions
        .iter()
        .flat_map(|x| list(&x["manifestation"]))
        .filter_map(concept_name)
    {
        if !manifestations.contains(&name) {
            manifestations.push(name);
        }
    }
    let substance = concept_name(&r["code"])
        .or_else(|| reactions.iter().find_map(|x| concept_name(&x["substance"])))
        .unwrap_or_else(|| "Unknown substance".into());
    Some(Allergy {
        id,
        source: None,
        substance,
        reactions: manifestations,
        severity: reactions
            .iter()
            .filter_map(|x| string(&x["severity"]))
            .max_by_key(|s| severity_rank(s)),
        criticality: string(&r["criticality"]),
        clinical_status: concept_code(&r["clinicalStatus"]),
        recorded: first_date(&[&r["recordedDate"], &r["assertedDate"]]),
    })
}

fn severity_rank(severity: &str) -> u8 {
    match severity {
        "severe" => 3,
        "moderate" => 2,
        "mild" => 1,
        _ => 0,
    }
}

super::view!(Allergy, ["AllergyIntolerance"], allergy, recorded, AsStored);

impl Line for Allergy {
    fn line(&self) -> String {
        format!("{} {}", self.substance, self.reactions.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    #[test]
    fn allergies() {
        let r = json!({
            "resourceType": "AllergyIntolerance", "id": "al",
            "clinicalStatus": {"coding": [{"code": "active"}]}, "criticality": "high",
            "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "7980", "display": "Penicillin G"}]},
            "recordedDate": "2015-06",
            "reaction": [
                {"manifestation": [{"text": "Hives"}, {"coding": [{"display": "Wheezing"}]}], "severity": "moderate"},
                {"manifestation": {"text": "Hives"}, "severity": "severe"},
            ],
        });
        let a = allergy(&r).unwrap();
        assert_eq!(a.substance, "Penicillin G");
        assert_eq!(a.reactions, ["Hives", "Wheezing"]);
        assert_eq!(a.severity.as_deref(), Some("severe"));
        assert_eq!(a.criticality.as_deref(), Some("high"));
        assert_eq!(a.clinical_status.as_deref(), Some("active"));
        assert_eq!(a.recorded, Some(d("2015-06")));
        let stu3 = json!({"resourceType": "AllergyIntolerance", "id": "old", "clinicalStatus": "active",
            "assertedDate": "2001"});
        let a = allergy(&stu3).unwrap();
        assert_eq!(
            (a.substance.as_str(), a.clinical_status.as_deref()),
            ("Unknown substance", Some("active"))
        );
        assert_eq!(a.recorded, Some(d("2001")));
    }
}
