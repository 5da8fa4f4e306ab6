//! Visits (Encounter), with the documents written for them.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::documents::Document;
use super::fhir::*;
use super::line::*;

/// A visit (Encounter).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Visit {
    pub id: String,
    pub source: Option<String>,
    /// The encounter type, else its class ("Ambulatory visit"), else "Visit".
    pub kind: String,
    pub start: Option<FhirDate>,
    pub end: Option<FhirDate>,
    pub provider: Option<String>,
    pub location_or_org: Option<String>,
    pub reason: Option<String>,
    /// The documents written for this visit; set by [`link_visit_documents`].
    pub summary_document_ids: Vec<String>,
}

/// A visit from an Encounter: its type, else its class.
pub fn visit(r: &Value) -> Option<Visit> {
    let id = resource_id(r, "Encounter")?;
    let kind = list(&r["type"])
        .iter()
        .find_map(concept_name)
        .or_else(|| class_name(&r["class"]))
        .unwrap_or_else(|| "Visit".into());
    let provider = list(&r["participant"]).iter().find_map(|p| {
        string(&p["individual"]["display"]).or_else(|| string(&p["actor"]["display"]))
    });
    let location = list(&r["location"])
        .iter()
        .find_map(|l| string(&l["location"]["display"]));
    let reason = list(&r["reasonCode"])
        .iter()
        .find_map(concept_name)
        .or_else(|| {
            list(&r["reasonReference"])
                .iter()
                .find_map(|x| string(&x["display"]))
        });
    Some(Visit {
        id,
        source: None,
        kind,
        start: date(&r["period"]["start"]),
        end: date(&r["period"]["end"]),
        provider,
        location_or_org: location.or_else(|| string(&r["serviceProvider"]["display"])),
        reason,
        summary_document_ids: Vec::new(),
    })
}

/// Sets each visit's `summary_document_ids` to the documents whose `visit_id` is that visit, in the documents'
/// order. Visits and documents match only within one `source`: two providers may use the same ids.
pub fn link_visit_documents(visits: &mut [Visit], documents: &[Document]) {
    let mut by_visit: HashMap<(Option<&str>, &str), Vec<String>> = HashMap::new();
    for doc in documents {
        if let Some(visit_id) = &doc.visit_id {
            by_visit
                .entry((doc.source.as_deref(), visit_id.as_str()))
                .or_default()
                .push(doc.id.clone());
        }
    }
    for visit in visits {
        let key = (visit.source.as_deref(), visit.id.as_str());
        visit.summary_document_ids = by_visit.get(&key).cloned().unwrap_or_default();
    }
}

fn class_name(class: &Value) -> Option<String> {
    // R4 has a Coding; R5 (and some servers) a CodeableConcept.
    let class = list(class).first()?;
    if class["coding"].is_array() || class["text"].is_string() {
        return concept_name(class);
    }
    string(&class["display"]).or_else(|| {
        let code = class["code"].as_str()?;
        let name = match code {
            "AMB" => "Ambulatory visit",
            "EMER" => "Emergency visit",
            "IMP" | "ACUTE" | "NONAC" => "Hospital stay",
            "OBSENC" => "Observation stay",
            "VR" => "Virtual visit",
            "HH" => "Home visit",
            other => other,
        };
        Some(name.to_owned())
    })
}

impl super::View for Visit {
    const RESOURCE_TYPES: &'static [&'static str] = &["Encounter"];
    const RELATED: &'static [&'static str] = &["DocumentReference"];
    fn parse(resource: &Value) -> Option<Self> {
        visit(resource)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn date(&self) -> Option<&FhirDate> {
        self.start.as_ref()
    }
    fn set_source(&mut self, source: &str) {
        self.source = Some(source.to_owned());
    }
    fn link(records: &mut [Self], related: &super::Related) {
        let documents: Vec<Document> = related
            .of("DocumentReference")
            .iter()
            .filter_map(super::documents::document)
            .collect();
        link_visit_documents(records, &documents);
    }
}

impl Line for Visit {
    fn line(&self) -> String {
        format!(
            "{} {} {}",
            full_date(self.start.as_ref()),
            self.kind,
            opt(&self.reason)
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
    fn visits_from_type_or_class() {
        let r = json!({
            "resourceType": "Encounter", "id": "e",
            "class": {"code": "AMB"},
            "type": {"text": "Office visit"},
            "period": {"start": "2024-03-01T08:30:00Z", "end": "2024-03-01T09:00:00Z"},
            "participant": [{"type": [{"text": "attender"}]}, {"individual": {"display": "Dr. Anna Lee"}}],
            "serviceProvider": {"display": "Lakeview Clinic"},
            "reasonCode": [{"coding": [{"display": "Cough"}]}],
        });
        let v = visit(&r).unwrap();
        assert_eq!(v.kind, "Office visit");
        assert_eq!(v.provider.as_deref(), Some("Dr. Anna Lee"));
        assert_eq!(v.location_or_org.as_deref(), Some("Lakeview Clinic"));
        assert_eq!(v.reason.as_deref(), Some("Cough"));
        assert_eq!(v.end, Some(d("2024-03-01T09:00:00Z")));
        let class_only = json!({"resourceType": "Encounter", "id": "c", "class": {"code": "EMER"},
            "location": [{"location": {"display": "ED"}}], "reasonReference": [{"display": "Fall"}]});
        let v = visit(&class_only).unwrap();
        assert_eq!(
            (
                v.kind.as_str(),
                v.location_or_org.as_deref(),
                v.reason.as_deref()
            ),
            ("Emergency visit", Some("ED"), Some("Fall"))
        );
        assert_eq!(
            visit(&json!({"resourceType": "Encounter", "id": "n"}))
                .unwrap()
                .kind,
            "Visit"
        );
    }
}
