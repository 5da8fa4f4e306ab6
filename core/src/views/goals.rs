//! Goals (Goal): what the patient and the care team aim for ("HbA1c below 7 %", "Lose 5 kg").

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;

/// A goal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub id: String,
    pub source: Option<String>,
    /// What the goal is, else "Goal".
    pub description: String,
    /// "proposed", "active", "completed", "cancelled", ...
    pub lifecycle_status: String,
    /// "in-progress", "achieved", "not-achieved", ...
    pub achievement: Option<String>,
    pub start: Option<FhirDate>,
    /// The first target's due date.
    pub due: Option<FhirDate>,
    /// Each target as text: the measure and the detail ("Hemoglobin A1c < 7 %").
    pub targets: Vec<String>,
    /// The problems it addresses, by the name the server gave.
    pub addresses: Vec<String>,
}

/// A goal from a Goal.
pub fn goal(r: &Value) -> Option<Goal> {
    let id = resource_id(r, "Goal")?;
    let targets = list(&r["target"])
        .iter()
        .filter_map(|t| {
            let detail = quantity(&t["detailQuantity"])
                .map(|q| quantity_text(&q))
                .or_else(|| string(&t["detailString"]))
                .or_else(|| concept_name(&t["detailCodeableConcept"]))
                .or_else(|| {
                    let (low, high) = (
                        quantity(&t["detailRange"]["low"]),
                        quantity(&t["detailRange"]["high"]),
                    );
                    match (low, high) {
                        (Some(l), Some(h)) => Some(format!("{}–{}", l.value, quantity_text(&h))),
                        (None, Some(h)) => Some(format!("<= {}", quantity_text(&h))),
                        (Some(l), None) => Some(format!(">= {}", quantity_text(&l))),
                        (None, None) => None,
                    }
                });
            let parts: Vec<String> = [concept_name(&t["measure"]), detail]
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
        .collect();
    Some(Goal {
        id,
        source: None,
        description: concept_name(&r["description"]).unwrap_or_else(|| "Goal".into()),
        lifecycle_status: string(&r["lifecycleStatus"]).unwrap_or_else(|| "unknown".into()),
        achievement: concept_code(&r["achievementStatus"]),
        start: date(&r["startDate"]),
        due: list(&r["target"]).iter().find_map(|t| date(&t["dueDate"])),
        targets,
        addresses: list(&r["addresses"]).iter().filter_map(display).collect(),
    })
}

super::view!(Goal, ["Goal"], goal, start);

impl Line for Goal {
    fn line(&self) -> String {
        dated(
            self.start.as_ref(),
            &self.description,
            &self.lifecycle_status,
            &self.targets.join("; "),
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
    fn goals_with_targets() {
        let r = json!({"resourceType": "Goal", "id": "g", "lifecycleStatus": "active",
            "achievementStatus": {"coding": [{"code": "in-progress"}]},
            "description": {"text": "Hemoglobin A1c total in Blood < 7.0"}, "startDate": "2020-01",
            "target": [{"measure": {"text": "HbA1c"}, "detailQuantity": {"value": 7, "unit": "%", "comparator": "<"},
                "dueDate": "2020-12-31"}, {"detailRange": {"high": {"value": 120, "unit": "mm[Hg]"}}}]});
        let g = goal(&r).unwrap();
        assert_eq!(g.description, "Hemoglobin A1c total in Blood < 7.0");
        assert_eq!(g.targets, ["HbA1c <7 %", "<= 120 mm[Hg]"]);
        assert_eq!(
            (g.start, g.due),
            (Some(d("2020-01")), Some(d("2020-12-31")))
        );
        assert_eq!(g.achievement.as_deref(), Some("in-progress"));
    }
}
