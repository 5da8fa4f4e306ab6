//! Family history (FamilyMemberHistory): the conditions of the patient's relatives, as a portal's "Family history"
//! page shows them ("Father: type 2 diabetes at 50; heart attack, cause of death").

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;
use std::fmt::Write as _;

/// One relative and the conditions they had.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FamilyHistory {
    pub id: String,
    pub source: Option<String>,
    /// Who, to the patient: the relationship's name ("Father", "Maternal grandmother"), else "Relative".
    pub relationship: String,
    /// The relative's name, when recorded.
    pub name: Option<String>,
    /// "Male", "Female", ... (the sex's name).
    pub sex: Option<String>,
    /// "partial", "completed", "entered-in-error", "health-unknown".
    pub status: String,
    /// Whether and when the relative died, as recorded: "yes", an age ("at 67 years"), a date or a text.
    pub deceased: Option<String>,
    pub conditions: Vec<FamilyCondition>,
    /// When the history was taken.
    pub date: Option<FhirDate>,
}

/// A condition a relative had.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FamilyCondition {
    /// Its name ("Type 2 diabetes mellitus"), else "Unnamed condition".
    pub name: String,
    /// When it began, as recorded: an age ("at 50 years"), an age range, a date or a text.
    pub onset: Option<String>,
    /// What came of it ("Deceased", "Recovered"), when recorded.
    pub outcome: Option<String>,
    /// The relative died of it.
    pub contributed_to_death: bool,
}

/// A relative's history from a FamilyMemberHistory.
pub fn family_history(r: &Value) -> Option<FamilyHistory> {
    let id = resource_id(r, "FamilyMemberHistory")?;
    let conditions = list(&r["condition"])
        .iter()
        .filter(|c| c.is_object())
        .map(|c| FamilyCondition {
            name: concept_name(&c["code"]).unwrap_or_else(|| "Unnamed condition".into()),
            onset: when(c, "onset"),
            outcome: concept_name(&c["outcome"]),
            contributed_to_death: c["contributedToDeath"] == true,
        })
        .collect();
    Some(FamilyHistory {
        id,
        source: None,
        relationship: concept_name(&r["relationship"]).unwrap_or_else(|| "Relative".into()),
        name: string(&r["name"]),
        sex: concept_name(&r["sex"]),
        status: status(r),
        deceased: match &r["deceasedBoolean"] {
            Value::Bool(true) => Some("yes".into()),
            Value::Bool(false) => None,
            _ => when(r, "deceased"),
        },
        conditions,
        date: date(&r["date"]),
    })
}

/// A FHIR `{prefix}[x]` time as recorded: `{prefix}Age` ("at 50 years"), `{prefix}Range` ("at 40–50 years"),
/// `{prefix}Period` or `{prefix}Date` (its start), `{prefix}String` (as written).
fn when(r: &Value, prefix: &str) -> Option<String> {
    let age = |q: &Value| -> Option<String> {
        let value = q["value"].as_f64()?;
        let unit = string(&q["unit"]).or_else(|| string(&q["code"]))?;
        let unit = match unit.as_str() {
            "a" | "yr" | "year" => "years".to_owned(),
            "mo" => "months".to_owned(),
            _ => unit,
        };
        Some(format!("{value} {unit}"))
    };
    if let Some(a) = age(&r[format!("{prefix}Age")]) {
        return Some(format!("at {a}"));
    }
    let range = &r[format!("{prefix}Range")];
    if let (Some(low), Some(high)) = (age(&range["low"]), age(&range["high"])) {
        let low = low.split(' ').next().unwrap_or_default().to_owned();
        return Some(format!("at {low}–{high}"));
    }
    date(&r[format!("{prefix}Date")])
        .or_else(|| date(&r[format!("{prefix}Period")]["start"]))
        .map(|d| d.to_fhir_string())
        .or_else(|| string(&r[format!("{prefix}String")]))
}

super::view!(FamilyHistory, ["FamilyMemberHistory"], family_history, date);

impl Line for FamilyHistory {
    fn line(&self) -> String {
        let conditions: Vec<String> = self
            .conditions
            .iter()
            .map(|c| {
                let mut text = c.name.clone();
                if let Some(onset) = &c.onset {
                    let _ = write!(text, " ({onset})");
                }
                if c.contributed_to_death {
                    text.push_str(", cause of death");
                }
                text
            })
            .collect();
        let deceased = match &self.deceased {
            Some(d) if d == "yes" => " [deceased]".to_owned(),
            Some(d) => format!(" [deceased {d}]"),
            None => String::new(),
        };
        format!("{}{deceased}: {}", self.relationship, conditions.join("; "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::views::test_support::*;
    use serde_json::json;

    #[test]
    fn a_father_with_two_conditions() {
        let r = json!({"resourceType": "FamilyMemberHistory", "id": "fmh-1", "status": "completed",
        "patient": {"reference": "Patient/p"}, "date": "2021-03-04",
        "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode",
            "code": "FTH", "display": "father"}], "text": "Father"},
        "sex": {"coding": [{"system": "http://hl7.org/fhir/administrative-gender", "code": "male", "display": "Male"}]},
        "deceasedAge": {"value": 67, "unit": "yr", "system": "http://unitsofmeasure.org", "code": "a"},
        "condition": [
            {"code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006",
                "display": "Diabetes mellitus type 2"}]}, "onsetAge": {"value": 50, "unit": "a"}},
            {"code": {"text": "Heart attack"}, "contributedToDeath": true,
                "outcome": {"text": "Deceased"}, "onsetString": "in his sixties"}
        ]});
        let f = family_history(&r).unwrap();
        assert_eq!(
            (f.relationship.as_str(), f.sex.as_deref(), f.status.as_str()),
            ("Father", Some("Male"), "completed")
        );
        assert_eq!(f.deceased.as_deref(), Some("at 67 years"));
        assert_eq!(f.date, Some(d("2021-03-04")));
        assert_eq!(f.conditions.len(), 2);
        assert_eq!(
            (
                f.conditions[0].name.as_str(),
                f.conditions[0].onset.as_deref()
            ),
            ("Diabetes mellitus type 2", Some("at 50 years"))
        );
        let heart = &f.conditions[1];
        assert!(heart.contributed_to_death);
        assert_eq!(heart.outcome.as_deref(), Some("Deceased"));
        assert_eq!(heart.onset.as_deref(), Some("in his sixties"));
    }

    #[test]
    fn an_untidy_history_still_names_the_relative_and_each_condition() {
        let r = json!({"resourceType": "FamilyMemberHistory", "id": "fmh-2", "status": "partial",
            "relationship": {}, "deceasedBoolean": true,
            "condition": [{"code": {}, "onsetRange": {"low": {"value": 40, "unit": "a"}, "high": {"value": 45, "unit": "a"}}},
                "not a condition", {"onsetPeriod": {"start": "1990-05"}}]});
        let f = family_history(&r).unwrap();
        assert_eq!(f.relationship, "Relative");
        assert_eq!(f.deceased.as_deref(), Some("yes"));
        let onsets: Vec<_> = f.conditions.iter().map(|c| c.onset.as_deref()).collect();
        assert_eq!(onsets, [Some("at 40–45 years"), Some("1990-05")]);
        assert!(f.conditions.iter().all(|c| c.name == "Unnamed condition"));
        assert!(family_history(&json!({"resourceType": "Condition", "id": "x"})).is_none());
    }
}
