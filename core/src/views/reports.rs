//! Reports (DiagnosticReport): a lab panel, an imaging study's report, a pathology report, with the results it
//! lists resolved from the same provider's Observations in the store.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fhir::*;
use super::line::*;
use super::observations::{Observation, any_observation};

/// A diagnostic report and its results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticReport {
    pub id: String,
    pub source: Option<String>,
    /// The report's name (its code), else "Report".
    pub name: String,
    pub code: Option<CodeRef>,
    /// "final", "preliminary", "amended", ...
    pub status: String,
    /// The category codes ("LAB", "RAD", ...).
    pub category: Vec<String>,
    /// effectiveDateTime, else effectivePeriod.start, else issued.
    pub date: Option<FhirDate>,
    pub issued: Option<FhirDate>,
    /// The first performer, by the name the server gave.
    pub performer: Option<String>,
    /// The conclusion as written, else the conclusion codes' names.
    pub conclusion: Option<String>,
    /// The ids of the Observations it lists, in its order.
    pub result_ids: Vec<String>,
    /// The listed Observations found in the store (a result the grant or the server did not give is missing
    /// here, still listed in `result_ids`).
    pub results: Vec<Observation>,
    /// The Encounter it was part of.
    pub visit_id: Option<String>,
}

/// A report from a DiagnosticReport (its results are resolved by the read path).
pub fn diagnostic_report(r: &Value) -> Option<DiagnosticReport> {
    let id = resource_id(r, "DiagnosticReport")?;
    let conclusion = string(&r["conclusion"]).or_else(|| {
        let names = concept_names(&r["conclusionCode"]);
        (!names.is_empty()).then(|| names.join(", "))
    });
    Some(DiagnosticReport {
        id,
        source: None,
        name: concept_name(&r["code"]).unwrap_or_else(|| "Report".into()),
        code: preferred_code(&r["code"]),
        status: status(r),
        category: category_codes(&r["category"]),
        date: first_date(&[
            &r["effectiveDateTime"],
            &r["effectivePeriod"]["start"],
            &r["issued"],
        ]),
        issued: date(&r["issued"]),
        performer: list(&r["performer"]).iter().find_map(display),
        conclusion,
        result_ids: list(&r["result"])
            .iter()
            .filter_map(|x| reference_to(x, "Observation"))
            .collect(),
        results: Vec::new(),
        visit_id: reference_to(&r["encounter"], "Encounter"),
    })
}

impl super::View for DiagnosticReport {
    const RESOURCE_TYPES: &'static [&'static str] = &["DiagnosticReport"];
    const RELATED: &'static [&'static str] = &["Observation"];
    fn parse(resource: &Value) -> Option<Self> {
        diagnostic_report(resource)
    }
    fn id(&self) -> &str {
        &self.id
    }
    fn date(&self) -> Option<&FhirDate> {
        self.date.as_ref()
    }
    fn set_source(&mut self, source: &str) {
        self.source = Some(source.to_owned());
        for r in &mut self.results {
            r.source = Some(source.to_owned());
        }
    }
    fn link(records: &mut [Self], related: &super::Related) {
        link_results(records, related.of("Observation"));
    }
}

/// Fills each report's `results` with the Observations of `observations` it lists, in the report's order.
pub fn link_results(reports: &mut [DiagnosticReport], observations: &[Value]) {
    let by_id: std::collections::HashMap<&str, &Value> = observations
        .iter()
        .filter_map(|o| Some((o["id"].as_str()?, o)))
        .collect();
    for report in reports {
        report.results = report
            .result_ids
            .iter()
            .filter_map(|id| by_id.get(id.as_str()).and_then(|o| any_observation(o)))
            .collect();
    }
}

impl Line for DiagnosticReport {
    fn line(&self) -> String {
        let results: Vec<String> = self
            .results
            .iter()
            .map(|r| format!("{} {}", r.name, value_text(r.value.as_ref())))
            .collect();
        format!(
            "{:<10} {} [{}] {} of {} results: {}",
            day(self.date.as_ref()),
            self.name,
            self.status,
            self.results.len(),
            self.result_ids.len(),
            results.join("; ")
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
    fn a_report_with_its_results() {
        let r = json!({"resourceType": "DiagnosticReport", "id": "r1", "status": "final",
            "category": [{"coding": [{"code": "LAB"}]}], "code": lab_concept("51990-0", "Basic metabolic panel"),
            "effectiveDateTime": "2024-03-01T08:00:00Z", "issued": "2024-03-01T12:00:00Z",
            "performer": [{"display": "Lakeview Lab"}], "conclusionCode": [{"text": "Normal"}],
            "result": [{"reference": "Observation/o2"}, {"reference": "urn:uuid:o1"}, {"reference": "Observation/gone"}]});
        let obs = |id: &str, v: f64| {
            json!({"resourceType": "Observation", "id": id,
            "code": {"text": id}, "valueQuantity": {"value": v}})
        };
        let mut reports = vec![diagnostic_report(&r).unwrap()];
        link_results(
            &mut reports,
            &[obs("o1", 1.0), obs("o2", 2.0), obs("other", 3.0)],
        );
        let report = &reports[0];
        assert_eq!(report.name, "Basic metabolic panel");
        assert_eq!(report.result_ids, ["o2", "o1", "gone"]);
        let names: Vec<&str> = report.results.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["o2", "o1"]);
        assert_eq!(
            (
                report.conclusion.as_deref(),
                report.performer.as_deref(),
                report.date.clone()
            ),
            (
                Some("Normal"),
                Some("Lakeview Lab"),
                Some(d("2024-03-01T08:00:00Z"))
            )
        );
    }
}
