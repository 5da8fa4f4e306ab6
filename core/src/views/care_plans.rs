//! Care plans (CarePlan): what the care team and the patient plan to do, and for which problems.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// A care plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CarePlan {
    pub id: String,
    pub source: Option<String>,
    /// Its title, else its category's name ("Diabetes self management plan"), else "Care plan".
    pub title: String,
    /// "active", "completed", "revoked", ...
    pub status: String,
    pub intent: Option<String>,
    pub categories: Vec<String>,
    pub description: Option<String>,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    /// The planned activities ("Diabetic diet", "Exercise 30 minutes a day"), each with its status when given.
    pub activities: Vec<String>,
    /// The problems it addresses, by the name the server gave.
    pub addresses: Vec<String>,
}

/// A care plan from a CarePlan.
pub fn care_plan(r: &Value) -> Option<CarePlan> {
    let id = resource_id(r, "CarePlan")?;
    let categories = concept_names(&r["category"]);
    let (start, end) = period(&r["period"]);
    let activities = list(&r["activity"])
        .iter()
        .filter_map(|a| {
            let detail = &a["detail"];
            let name = concept_name(&detail["code"])
                .or_else(|| string(&detail["description"]))
                .or_else(|| display(&a["reference"]))?;
            Some(match string(&detail["status"]) {
                Some(s) => format!("{name} ({s})"),
                None => name,
            })
        })
        .collect();
    Some(CarePlan {
        id,
        source: None,
        title: string(&r["title"])
            .or_else(|| categories.last().cloned())
            .unwrap_or_else(|| "Care plan".into()),
        status: status(r),
        intent: string(&r["intent"]),
        categories,
        description: string(&r["description"]),
        start,
        end,
        activities,
        addresses: list(&r["addresses"]).iter().filter_map(display).collect(),
    })
}

super::view!(CarePlan, ["CarePlan"], care_plan, start);

impl Line for CarePlan {
    fn line(&self) -> String {
        dated(
            self.start.as_ref(),
            &self.title,
            &self.status,
            &self.activities.join("; "),
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
    fn a_synthea_care_plan() {
        let r = json!({"resourceType": "CarePlan", "id": "cp", "status": "active", "intent": "plan",
            "category": [{"coding": [{"system": "http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "code": "assess-plan"}]},
                {"coding": [{"system": "http://snomed.info/sct", "code": "698360004", "display": "Diabetes self management plan"}],
                 "text": "Diabetes self management plan"}],
            "period": {"start": "2015-03-04"}, "addresses": [{"reference": "urn:uuid:c1", "display": "Diabetes"}],
            "activity": [{"detail": {"code": {"text": "Diabetic diet"}, "status": "in-progress"}},
                {"detail": {"description": "Walk daily"}}, {"detail": {}}]});
        let p = care_plan(&r).unwrap();
        assert_eq!(p.title, "Diabetes self management plan");
        assert_eq!(p.activities, ["Diabetic diet (in-progress)", "Walk daily"]);
        assert_eq!(
            (p.start, p.addresses),
            (Some(d("2015-03-04")), vec!["Diabetes".to_owned()])
        );
        let bare = care_plan(&json!({"resourceType": "CarePlan", "id": "b"})).unwrap();
        assert_eq!(bare.title, "Care plan");
    }
}
