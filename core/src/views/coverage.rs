//! Insurance (Coverage): who pays, under which plan, the member id to give at the desk.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// An insurance coverage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    pub id: String,
    pub source: Option<String>,
    /// The payer, by the name the server gave, else the coverage type, else "Coverage".
    pub payer: String,
    /// The coverage type ("Medical", "PPO").
    pub kind: Option<String>,
    /// "active", "cancelled", ...
    pub status: String,
    /// The plan (or group) name, else its value.
    pub plan: Option<String>,
    /// The subscriber id, else the first identifier.
    pub member_id: Option<String>,
    /// The patient's relationship to the subscriber ("self", "spouse", "child").
    pub relationship: Option<String>,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
}

/// A coverage from a Coverage.
pub fn coverage(r: &Value) -> Option<Coverage> {
    let id = resource_id(r, "Coverage")?;
    let kind = concept_name(&r["type"]);
    let classes = list(&r["class"]);
    let plan = ["plan", "group"].iter().find_map(|code| {
        classes
            .iter()
            .filter(|c| {
                list(&c["type"]["coding"])
                    .iter()
                    .any(|x| x["code"] == *code)
            })
            .find_map(|c| string(&c["name"]).or_else(|| string(&c["value"])))
    });
    let (start, end) = period(&r["period"]);
    Some(Coverage {
        id,
        source: None,
        payer: list(&r["payor"])
            .iter()
            .find_map(display)
            .or_else(|| kind.clone())
            .unwrap_or_else(|| "Coverage".into()),
        kind,
        status: status(r),
        plan,
        member_id: string(&r["subscriberId"]).or_else(|| {
            list(&r["identifier"])
                .iter()
                .find_map(|i| string(&i["value"]))
        }),
        relationship: concept_code(&r["relationship"]),
        start,
        end,
    })
}

super::view!(Coverage, ["Coverage"], coverage, start);

impl Line for Coverage {
    fn line(&self) -> String {
        format!(
            "{} [{}] {} member {}",
            self.payer,
            self.status,
            opt(&self.plan),
            opt(&self.member_id)
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
    fn a_coverage() {
        let r = json!({"resourceType": "Coverage", "id": "cov", "status": "active",
            "type": {"text": "PPO"}, "subscriberId": "W123", "beneficiary": {"reference": "Patient/p"},
            "relationship": {"coding": [{"code": "self"}]}, "period": {"start": "2024-01-01", "end": "2024-12-31"},
            "payor": [{"display": "Acme Health"}],
            "class": [{"type": {"coding": [{"code": "group"}]}, "value": "G1"},
                {"type": {"coding": [{"code": "plan"}]}, "value": "P1", "name": "Gold Plan"}]});
        let c = coverage(&r).unwrap();
        assert_eq!(
            (c.payer.as_str(), c.plan.as_deref(), c.member_id.as_deref()),
            ("Acme Health", Some("Gold Plan"), Some("W123"))
        );
        assert_eq!(
            (c.relationship.as_deref(), c.end),
            (Some("self"), Some(d("2024-12-31")))
        );
    }
}
